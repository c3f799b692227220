//! Mutual TLS on loopback, with real certificates from the development CA: the coordinator
//! collects signed CKG shares from three nodes over gRPC, checks each node's signature for the
//! deployment, and obtains a working collective key; a wrong
//! role, a certificate from another CA, no certificate, an oversized and a malformed message
//! are each refused with a clear error.

use concord_api::deployment;
use concord_api::pki::{DevCa, IssuedCertificate, Role};
use concord_api::tls::{client_config, require_role, server_config, MAX_MESSAGE_BYTES};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::node_server::{Node, NodeServer};
use concord_api::v1::{Deployment, Party, SetupRequest, SignedKeyShare};
use concord_bfv::{params, BfvParameters, Ciphertext, Plaintext, SecretKey, ValueRange};
use concord_mhe::{
    CollectiveDecryption, CommonReferenceString, NoiseEstimate, PartyId, Protocol, PublicKeyGen,
    PublicKeyShare, SmudgingPlan,
};
use std::sync::Arc;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Code, Request, Response, Status};

/// A minimal node: answers Setup with its CKG share signed for the deployment, for the
/// coordinator role only.
struct TestNode {
    key: Arc<SecretKey>,
    certificate_pem: String,
    key_pem: String,
}

#[tonic::async_trait]
impl Node for TestNode {
    async fn setup(
        &self,
        request: Request<SetupRequest>,
    ) -> Result<Response<SignedKeyShare>, Status> {
        require_role(&request, Role::Coordinator)?;
        let d = request
            .into_inner()
            .deployment
            .ok_or_else(|| Status::invalid_argument("no deployment"))?;
        let der = concord_api::submission::certificate_der(&self.certificate_pem)
            .map_err(|e| Status::internal(e.to_string()))?;
        let me = concord_api::pki::identity_of(&der)
            .map_err(|e| Status::internal(e.to_string()))?
            .name;
        let party =
            deployment::check(&d, &me, 2).map_err(|e| Status::invalid_argument(e.to_string()))?;
        let spec = params::spec_by_name(&d.parameter_set).ok_or_else(|| {
            Status::invalid_argument(format!("unknown parameter set {:?}", d.parameter_set))
        })?;
        let seed: [u8; 32] = d.crs_seed.as_slice().try_into().expect("checked");
        let params = BfvParameters::new(spec).map_err(|e| Status::internal(e.to_string()))?;
        let share = PublicKeyGen::new(&params, &CommonReferenceString::from_seed(seed))
            .share(&self.key, PartyId(party))
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let signed = deployment::sign_key_share(
            &self.key_pem,
            &der,
            &deployment::digest(&d),
            share.to_bytes(),
        )
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(signed))
    }

    async fn pin(
        &self,
        _: Request<tonic::Streaming<concord_api::v1::PinRequest>>,
    ) -> Result<Response<concord_api::v1::PinnedKey>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn relinearize_one(
        &self,
        _: Request<concord_api::v1::RelinearizeRequest>,
    ) -> Result<Response<concord_api::v1::RelinearizeShare>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn relinearize_two(
        &self,
        _: Request<tonic::Streaming<concord_api::v1::RelinearizeRequest>>,
    ) -> Result<Response<concord_api::v1::RelinearizeShare>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn pin_relinearization(
        &self,
        _: Request<tonic::Streaming<concord_api::v1::RelinearizeRequest>>,
    ) -> Result<Response<concord_api::v1::PinnedKey>, Status> {
        Err(Status::unimplemented("test node"))
    }

    // Only setup matters to this test; the other RPCs are the node's, tested in node/tests.
    async fn exchange_key_of(
        &self,
        _: Request<concord_api::v1::ExchangeKeyRequest>,
    ) -> Result<Response<concord_api::v1::ExchangeKey>, Status> {
        Err(Status::unimplemented("test node"))
    }

    type ReshareStream = concord_api::chunks::Replies<concord_api::v1::Resharings>;
    async fn reshare(
        &self,
        _: Request<concord_api::v1::ReshareRequest>,
    ) -> Result<Response<Self::ReshareStream>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn budget(
        &self,
        _: Request<concord_api::v1::BudgetRequest>,
    ) -> Result<Response<concord_api::v1::BudgetReport>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn combine(
        &self,
        _: Request<tonic::Streaming<concord_api::v1::CombineRequest>>,
    ) -> Result<Response<concord_api::v1::CombineReply>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn propose(
        &self,
        _: Request<concord_api::v1::Proposal>,
    ) -> Result<Response<concord_api::v1::Decision>, Status> {
        Err(Status::unimplemented("test node"))
    }

    async fn commit(
        &self,
        _: Request<concord_api::v1::CommitRequest>,
    ) -> Result<Response<concord_api::v1::Commitment>, Status> {
        Err(Status::unimplemented("test node"))
    }

    type RevealStream = concord_api::chunks::Replies<concord_api::v1::Contribution>;
    async fn reveal(
        &self,
        _: Request<concord_api::v1::RevealRequest>,
    ) -> Result<Response<Self::RevealStream>, Status> {
        Err(Status::unimplemented("test node"))
    }

    type DecryptStream = concord_api::chunks::Replies<concord_api::v1::DecryptShares>;
    async fn decrypt(
        &self,
        _: Request<tonic::Streaming<concord_api::v1::DecryptRequest>>,
    ) -> Result<Response<Self::DecryptStream>, Status> {
        Err(Status::unimplemented("test node"))
    }
}

async fn start_node(ca: &DevCa, cert: &IssuedCertificate, key: Arc<SecretKey>) -> u16 {
    let (certificate_pem, key_pem) = (cert.certificate_pem.clone(), cert.key_pem.to_string());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = server_config(ca.certificate_pem(), &cert.certificate_pem, &cert.key_pem);
    let service = NodeServer::new(TestNode {
        key,
        certificate_pem,
        key_pem,
    })
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    tokio::spawn(async move {
        Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    port
}

async fn connect(
    ca_pem: &str,
    cert: &IssuedCertificate,
    port: u16,
) -> Result<NodeClient<Channel>, tonic::transport::Error> {
    let tls = client_config(ca_pem, &cert.certificate_pem, &cert.key_pem, "localhost");
    let channel = Endpoint::from_shared(format!("https://localhost:{port}"))?
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(NodeClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collective_key_over_mutual_tls_and_refusals() {
    let ca = DevCa::generate("Concord test CA").unwrap();
    let hosts = ["localhost", "127.0.0.1"];
    let params = BfvParameters::new(&params::ADD_4096).unwrap();
    // three nodes, each with its own key share and certificate
    let keys: Vec<Arc<SecretKey>> = (0..3)
        .map(|_| Arc::new(SecretKey::generate(&params)))
        .collect();
    let mut ports = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let cert = ca
            .issue(Role::Node, &format!("node-{}", i + 1), &hosts)
            .unwrap();
        ports.push(start_node(&ca, &cert, key.clone()).await);
    }
    let coordinator = ca.issue(Role::Coordinator, "coordinator", &hosts).unwrap();
    let crs = CommonReferenceString::from_seed([42; 32]);
    let parties: Vec<PartyId> = (1..=3).map(PartyId).collect();
    let d = Deployment {
        parameter_set: "ADD-4096".into(),
        crs_seed: crs.seed().to_vec(),
        parties: parties
            .iter()
            .map(|p| Party {
                number: p.0,
                name: format!("node-{}", p.0),
            })
            .collect(),
        threshold: 0,
    };
    let digest = deployment::digest(&d);

    // the coordinator gathers the signed shares, checks each signer, and aggregates them
    let ckg = PublicKeyGen::new(&params, &crs);
    let mut agg = ckg.aggregator();
    for (&port, &party) in ports.iter().zip(&parties) {
        let mut client = connect(ca.certificate_pem(), &coordinator, port)
            .await
            .unwrap();
        let reply = client
            .setup(SetupRequest {
                deployment: Some(d.clone()),
            })
            .await
            .unwrap()
            .into_inner();
        let name = format!("node-{}", party.0);
        deployment::verify_key_share(ca.certificate_pem(), &digest, &name, &reply).unwrap();
        let other = format!("node-{}", party.0 % 3 + 1);
        assert!(
            deployment::verify_key_share(ca.certificate_pem(), &digest, &other, &reply).is_err()
        );
        agg.add(&PublicKeyShare::from_bytes(&params, &reply.share).unwrap())
            .unwrap();
    }
    let pk = ckg.finish(&agg, &parties).unwrap();
    // the key works: encrypt, and the three key shares decrypt jointly
    let mut ct = pk
        .encrypt(&Plaintext::encode(&params, &[7, 8, 9], ValueRange::counts(9)).unwrap())
        .unwrap();
    ct.switch_to_transmit_level().unwrap();
    let sum = Ciphertext::sum([&ct, &ct]).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&params, NoiseEstimate::aggregate(&params, 3, 2), 3).unwrap();
    let cks = CollectiveDecryption::new(&sum, plan).unwrap();
    let mut shares = cks.aggregator();
    for (key, &party) in keys.iter().zip(&parties) {
        shares.add(&cks.share(key, party).unwrap()).unwrap();
    }
    assert_eq!(
        &cks.finish(&shares, &parties).unwrap().decode()[..3],
        &[14, 16, 18]
    );

    let request = || SetupRequest {
        deployment: Some(d.clone()),
    };
    let with = |change: &dyn Fn(&mut Deployment)| {
        let mut d = d.clone();
        change(&mut d);
        SetupRequest {
            deployment: Some(d),
        }
    };

    // a researcher may not drive setup: the role comes from the certificate
    let researcher = ca.issue(Role::Researcher, "alice", &hosts).unwrap();
    let status = connect(ca.certificate_pem(), &researcher, ports[0])
        .await
        .unwrap()
        .setup(request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status}");
    assert!(
        status.message().contains("researcher"),
        "{}",
        status.message()
    );

    // a certificate from another CA fails the handshake: no request is served
    let rogue = DevCa::generate("Rogue CA").unwrap();
    let mallory = rogue
        .issue(Role::Coordinator, "coordinator", &hosts)
        .unwrap();
    let outcome = match connect(ca.certificate_pem(), &mallory, ports[0]).await {
        Err(_) => None,
        Ok(mut c) => Some(c.setup(request()).await),
    };
    assert!(
        matches!(outcome, None | Some(Err(_))),
        "an unknown certificate must be refused"
    );

    // no client certificate at all
    let anonymous = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            ca.certificate_pem(),
        ))
        .domain_name("localhost");
    let outcome = match Endpoint::from_shared(format!("https://localhost:{}", ports[0]))
        .unwrap()
        .tls_config(anonymous)
        .unwrap()
        .connect()
        .await
    {
        Err(_) => None,
        Ok(ch) => Some(NodeClient::new(ch).setup(request()).await),
    };
    assert!(
        matches!(outcome, None | Some(Err(_))),
        "a client without a certificate must be refused"
    );

    // malformed and oversized requests: clear errors, and the node keeps serving
    let mut client = connect(ca.certificate_pem(), &coordinator, ports[0])
        .await
        .unwrap();
    let bad_seed = client
        .setup(with(&|d| d.crs_seed = vec![1; 5]))
        .await
        .unwrap_err();
    assert_eq!(bad_seed.code(), Code::InvalidArgument);
    assert!(bad_seed.message().contains("32 bytes"));
    let bad_set = client
        .setup(with(&|d| d.parameter_set = "NOPE".into()))
        .await
        .unwrap_err();
    assert_eq!(bad_set.code(), Code::InvalidArgument);
    let huge = client
        .setup(with(&|d| d.crs_seed = vec![0; MAX_MESSAGE_BYTES + 1]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            huge.code(),
            Code::OutOfRange | Code::ResourceExhausted | Code::Internal
        ),
        "{huge}"
    );
    assert!(
        client.setup(request()).await.is_ok(),
        "the node still serves after bad input"
    );
}

#[test]
fn certificates_carry_role_and_name_and_keys_are_private_files() {
    let ca = DevCa::generate("Concord test CA").unwrap();
    let cert = ca
        .issue(Role::Node, "CERT-National", &["localhost"])
        .unwrap();
    let der = rustls_pemfile_der(&cert.certificate_pem);
    let id = concord_api::pki::identity_of(&der).unwrap();
    assert_eq!((id.role, id.name.as_str()), (Role::Node, "CERT-National"));
    let dir = tempfile::tempdir().unwrap();
    ca.write(dir.path()).unwrap();
    cert.write(dir.path(), "node").unwrap();
    let again = DevCa::load(dir.path()).unwrap();
    assert_eq!(again.certificate_pem(), ca.certificate_pem());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for key in ["ca.key", "node.key"] {
            let mode = std::fs::metadata(dir.path().join(key))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{key}");
        }
    }
    assert!("admin".parse::<Role>().is_err());
}

/// The DER inside a one-certificate PEM.
fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}
