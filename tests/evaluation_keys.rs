//! The evaluation keys of a multiplicative deployment over the network (issue 18), against
//! three real node processes: RKG in two rounds and the overlap queries' binning key, driven
//! once by the coordinator and once by hand by a lying coordinator, which cannot
//!
//! - get a second, fresh round-one share by asking again;
//! - get a round-two share for a round-one sum other than that of every party's signed share
//!   (a substituted share, a share of another deployment, a party left out);
//! - get a node to keep a binning key without every party's sealed secret, or with a secret
//!   sealed to another node;
//! - get a node to pin a relinearization key other than the one every party's signed shares
//!   of both rounds make;
//! - run RKG on a deployment the node did not pin, or on an additive one;
//! - get an overlap query admitted on a deployment whose evaluation keys are not made: the
//!   node refuses it (`deployment-not-pinned`) until they are, then agrees to the same query.
//!
//! The honest run ends with every node holding the same relinearization key (the one the
//! coordinator computed) and the same binning key, which the coordinator never saw.

use concord_api::chunks::stream;
use concord_api::pki::{DevCa, IssuedCertificate, Role};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::*;
use concord_bfv::{params, BfvParameters, SecretKey};
use concord_coordinator::store::QueryStore;
use concord_coordinator::Coordinator;
use concord_mhe::{CommonReferenceString, EvaluationKeyShare, PartyId, RelinearizationKeyGen};
use concord_testbed::{self as testbed, binaries_beside_tests, Setup, Testbed};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::Channel;

const SET: &str = "MUL-16384-T26";

async fn client(
    ca: &DevCa,
    coordinator: &IssuedCertificate,
    node: &testbed::NodeInfo,
) -> NodeClient<Channel> {
    concord_system_tests::node_client(ca.certificate_pem(), coordinator, &node.name, &node.url())
        .await
}

fn invalid(outcome: Result<impl std::fmt::Debug, tonic::Status>, detail: &str) {
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains(detail), "{detail}: {status}");
}

fn start(work: &Path, data: &Path) -> Testbed {
    let institutions = ["node-1", "node-2", "node-3"]
        .iter()
        .map(|name| testbed::Institution::new(*name, data.join("feed-tweetfeed")))
        .collect();
    Testbed::start(&Setup {
        work: work.to_owned(),
        binaries: binaries_beside_tests(),
        institutions,
        coordinator: None,
    })
    .unwrap()
}

fn binning_key(work: &Path, node: &str) -> Vec<u8> {
    std::fs::read(
        work.join(format!("keys-{node}"))
            .join(format!("{SET}.binning")),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_coordinator_cannot_steer_the_evaluation_keys_or_the_binning_key() {
    let Some(data) =
        concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let nodes = start(work.path(), &data);
    let ca = DevCa::load(work.path()).unwrap();
    let coordinator = ca
        .issue(Role::Coordinator, "coordinator", &["localhost"])
        .unwrap();
    let mut clients = Vec::new();
    for node in nodes.nodes() {
        clients.push(client(&ca, &coordinator, node).await);
    }
    let names = ["node-1", "node-2", "node-3"];
    let d = Deployment {
        parameter_set: SET.into(),
        crs_seed: vec![5; 32],
        parties: names
            .iter()
            .enumerate()
            .map(|(i, name)| Party {
                number: i as u32 + 1,
                name: (*name).into(),
            })
            .collect(),
        threshold: 0,
    };
    let digest = concord_api::deployment::digest(&d).to_vec();
    let request = |shares: Vec<SignedKeyShare>, sealed: Vec<SealedSecret>| RelinearizeRequest {
        deployment: digest.clone(),
        shares,
        sealed,
        ..Default::default()
    };

    // before the pin: nothing
    let status = clients[0]
        .relinearize_one(request(Vec::new(), Vec::new()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");

    // CKG and the pin, honestly
    let mut ckg = Vec::new();
    for client in &mut clients {
        let setup = SetupRequest {
            deployment: Some(d.clone()),
        };
        ckg.push(client.setup(setup).await.unwrap().into_inner());
    }
    for client in &mut clients {
        let pin = PinRequest {
            deployment: Some(d.clone()),
            shares: ckg.clone(),
        };
        client.pin(stream(pin)).await.unwrap();
    }

    // an overlap query needs the deployment's binning and relinearization keys: refused
    // before RKG made them
    let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
    let set_params = BfvParameters::new(params::spec_by_name(SET).unwrap()).unwrap();
    let overlap_query = || {
        let mut spec = QuerySpec {
            template: "indicator-overlap".into(),
            template_version: 1,
            window_first: "2016-12".into(),
            window_months: 120,
            min_institutions: 3,
            recipient_key: concord_bfv::PublicKey::generate(&SecretKey::generate(&set_params))
                .to_bytes(),
            ..Default::default()
        };
        concord_api::submission::sign(&mut spec, &alice.key_pem).unwrap();
        Proposal {
            query_id: concord_api::submission::query_id(&spec),
            spec: Some(spec),
            researcher: "alice".into(),
            researcher_certificate: concord_api::submission::certificate_der(
                &alice.certificate_pem,
            )
            .unwrap(),
            deployment: digest.clone(),
        }
    };
    let decision = clients[0]
        .propose(overlap_query())
        .await
        .unwrap()
        .into_inner();
    assert!(!decision.agree);
    assert_eq!(decision.reason, "deployment-not-pinned", "{decision:?}");
    assert!(decision.detail.contains("binning key"), "{decision:?}");

    // round one needs every party's exchange key, each signed by that party
    let mut parties = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let key = client
            .exchange_key_of(ExchangeKeyRequest {})
            .await
            .unwrap()
            .into_inner();
        parties.push(ThresholdParty {
            party: i as u32 + 1,
            key: Some(key),
        });
    }
    let one = RelinearizeRequest {
        deployment: digest.clone(),
        parties: parties.clone(),
        ..Default::default()
    };
    let mut short = one.clone();
    short.parties.pop();
    invalid(
        clients[0].relinearize_one(short).await,
        "2 exchange keys for 3 parties",
    );
    let mut swapped = one.clone();
    swapped.parties.swap(1, 2);
    invalid(clients[0].relinearize_one(swapped).await, "exchange key");

    // asked again, the same round-one share
    let mut first = Vec::new();
    for client in &mut clients {
        first.push(
            client
                .relinearize_one(one.clone())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    for _ in 0..3 {
        let again = clients[0]
            .relinearize_one(one.clone())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            again.share.unwrap().share,
            first[0].share.as_ref().unwrap().share
        );
    }
    let signed: Vec<SignedKeyShare> = first.iter().map(|r| r.share.clone().unwrap()).collect();
    let sealed_to = |party: u32| -> Vec<SealedSecret> {
        first
            .iter()
            .flat_map(|r| r.sealed.iter().filter(|s| s.to == party).cloned())
            .collect()
    };

    // round two refuses a sum it could not recompute from every party's signed share
    let params = BfvParameters::new(params::spec_by_name(SET).unwrap()).unwrap();
    let crs = CommonReferenceString::from_seed([5; 32]);
    let gen = RelinearizationKeyGen::new(&params, &crs).unwrap();
    let (_, own) = gen
        .round_one(&SecretKey::generate(&params), PartyId(2))
        .unwrap();
    let mut forged = signed.clone();
    forged[1].share = own.to_bytes();
    invalid(
        clients[0]
            .relinearize_two(stream(request(forged, sealed_to(1))))
            .await,
        "node-2's round-one share",
    );
    invalid(
        clients[0]
            .relinearize_two(stream(request(signed[..2].to_vec(), sealed_to(1))))
            .await,
        "2 round-one shares for 3 parties",
    );
    let mut reordered = signed.clone();
    reordered.swap(1, 2);
    invalid(
        clients[0]
            .relinearize_two(stream(request(reordered, sealed_to(1))))
            .await,
        "node-2's round-one share: the key share of party node-2 is signed by node-3",
    );
    // and a binning key without every party's secret, or with one sealed to another node
    let mut missing = sealed_to(1);
    missing.pop();
    invalid(
        clients[0]
            .relinearize_two(stream(request(signed.clone(), missing)))
            .await,
        "binning secrets from 2 of 3 parties",
    );
    let mut misaddressed = sealed_to(1);
    misaddressed[2] = sealed_to(2)[2].clone();
    invalid(
        clients[0]
            .relinearize_two(stream(request(signed.clone(), misaddressed)))
            .await,
        "sealed to party 2",
    );
    // pinning before round two ran
    let status = clients[0]
        .pin_relinearization(stream(request(
            [signed.clone(), signed.clone()].concat(),
            Vec::new(),
        )))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");

    // the honest round two; the key from every share of both rounds
    let mut second = Vec::new();
    for (i, client) in clients.iter_mut().enumerate() {
        let reply = client
            .relinearize_two(stream(request(signed.clone(), sealed_to(i as u32 + 1))))
            .await
            .unwrap()
            .into_inner();
        second.push(reply.share.unwrap());
    }
    let mut round_one = gen.round_one_aggregator();
    for s in &signed {
        round_one
            .add(&EvaluationKeyShare::from_bytes(&params, &s.share).unwrap())
            .unwrap();
    }
    let mut round_two = gen.round_two_aggregator(&round_one).unwrap();
    for s in &second {
        round_two
            .add(&EvaluationKeyShare::from_bytes(&params, &s.share).unwrap())
            .unwrap();
    }
    let parties_ids = [PartyId(1), PartyId(2), PartyId(3)];
    let rlk = gen.finish(&round_one, &round_two, &parties_ids).unwrap();
    let rlk_digest: [u8; 32] = Sha256::digest(rlk.to_bytes()).into();

    let mut substituted = second.clone();
    substituted.swap(0, 1);
    invalid(
        clients[0]
            .pin_relinearization(stream(request(
                [signed.clone(), substituted].concat(),
                Vec::new(),
            )))
            .await,
        "node-1's round-two share: the key share of party node-1 is signed by node-2",
    );
    for client in &mut clients {
        let pinned = client
            .pin_relinearization(stream(request(
                [signed.clone(), second.clone()].concat(),
                Vec::new(),
            )))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(pinned.key_digest, rlk_digest);
    }
    // one binning key at every node, made of secrets the coordinator relayed sealed
    let key = binning_key(work.path(), "node-1");
    assert_eq!(key.len(), 64);
    assert_eq!(&key[..32], &digest[..]);
    for node in &names[1..] {
        assert_eq!(binning_key(work.path(), node), key);
    }
    for reply in &first {
        for sealed in &reply.sealed {
            assert!(!sealed.ciphertext.windows(32).any(|w| w == &key[32..]));
        }
    }
    // with both keys made, the same overlap query is agreed to
    let decision = clients[0]
        .propose(overlap_query())
        .await
        .unwrap()
        .into_inner();
    assert!(decision.agree, "{decision:?}");

    // an additive deployment has no evaluation keys
    let additive = Deployment {
        parameter_set: "ADD-4096".into(),
        ..d.clone()
    };
    let mut ckg = Vec::new();
    for client in &mut clients {
        let setup = SetupRequest {
            deployment: Some(additive.clone()),
        };
        ckg.push(client.setup(setup).await.unwrap().into_inner());
    }
    clients[0]
        .pin(stream(PinRequest {
            deployment: Some(additive.clone()),
            shares: ckg,
        }))
        .await
        .unwrap();
    invalid(
        clients[0]
            .relinearize_one(RelinearizeRequest {
                deployment: concord_api::deployment::digest(&additive).to_vec(),
                parties,
                ..Default::default()
            })
            .await,
        "additive",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinator_sets_up_a_multiplicative_deployment_with_its_evaluation_keys() {
    let Some(data) =
        concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let nodes = start(work.path(), &data);
    let deployment = nodes.deployment(Duration::from_secs(120), None).unwrap();
    let store = Arc::new(QueryStore::open(&work.path().join("coordinator.redb")).unwrap());
    let mut coordinator = Coordinator::connect(&deployment, store.clone()).unwrap();
    let params = BfvParameters::new(params::spec_by_name(SET).unwrap()).unwrap();
    coordinator.setup(&params).await.unwrap();
    let stored = store.collective_key(SET).unwrap().unwrap();
    let digest: [u8; 32] = stored.deployment[..].try_into().unwrap();
    let rlk = store.relinearization_key(SET, &digest).unwrap().unwrap();
    assert_eq!(
        concord_bfv::RelinearizationKey::from_bytes(&params, &rlk)
            .unwrap()
            .params()
            .name(),
        SET
    );
    let key = binning_key(work.path(), "node-1");
    assert_eq!(&key[..32], &digest[..]);
    for node in ["node-2", "node-3"] {
        assert_eq!(binning_key(work.path(), node), key);
    }
    for i in 0..3 {
        let log = nodes.log(&format!("node-{}", i + 1));
        assert!(log.contains("pinned the relinearization key"), "{log}");
    }
}
