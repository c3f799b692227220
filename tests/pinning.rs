//! A lying coordinator at key setup (issue 14), against three real node processes: it holds a
//! certificate of the deployment's CA with the coordinator role and drives the nodes' gRPC API
//! by hand. It cannot
//!
//! - drive the nodes at all with a coordinator certificate of another name;
//! - get a node to take part in a deployment with `T = 1`, a threshold below the node's
//!   minimum, party numbers of its choosing, or without that node;
//! - get two different key-generation shares for one deployment by asking again;
//! - get a node to pin a collective key other than the sum of every party's share, each signed
//!   by that party for this very deployment (no substituted share, no share of another
//!   deployment, no party left out);
//! - propose a query under a key no node pinned (its own, say), a query past its expiry, or more
//!   new queries in an hour than a node's policy takes;
//! - run a threshold setup other than the pinned deployment's.

use concord_api::chunks::stream;
use concord_api::deployment;
use concord_api::pki::{DevCa, IssuedCertificate, Role};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::*;
use concord_bfv::{params, BfvParameters, SecretKey};
use concord_mhe::{CommonReferenceString, PartyId, Protocol, PublicKeyGen, PublicKeyShare};
use concord_testbed::{self as testbed, binaries_beside_tests, Setup, Testbed};
use sha2::{Digest, Sha256};
use std::path::Path;
use tonic::transport::Channel;

async fn client(
    ca: &DevCa,
    coordinator: &IssuedCertificate,
    node: &testbed::NodeInfo,
) -> NodeClient<Channel> {
    concord_system_tests::node_client(ca.certificate_pem(), coordinator, &node.name, &node.url())
        .await
}

fn deployment_of(names: &[&str], crs: u8, threshold: u32) -> Deployment {
    Deployment {
        parameter_set: "ADD-4096".into(),
        crs_seed: vec![crs; 32],
        parties: names
            .iter()
            .enumerate()
            .map(|(i, name)| Party {
                number: i as u32 + 1,
                name: (*name).into(),
            })
            .collect(),
        threshold,
    }
}

fn setup(d: &Deployment) -> SetupRequest {
    SetupRequest {
        deployment: Some(d.clone()),
    }
}

fn invalid(outcome: Result<impl std::fmt::Debug, tonic::Status>, detail: &str) {
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status}");
    assert!(status.message().contains(detail), "{detail}: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_coordinator_cannot_choose_keys_parties_or_thresholds() {
    let Some(data) =
        concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let names = ["node-1", "node-2", "node-3"];
    let mut institutions = Vec::new();
    for name in names {
        let mut institution = testbed::Institution::new(name, data.join("feed-tweetfeed"));
        // node-3 takes part in threshold mode only from T = 3
        institution.policy.min_threshold = if name == "node-3" { 3 } else { 2 };
        // node-1 takes at most three new queries per researcher and hour
        institution.policy.max_proposals_per_hour = 3;
        institutions.push(institution);
    }
    let nodes = Testbed::start(&Setup {
        work: work.path().to_owned(),
        binaries: binaries_beside_tests(),
        institutions,
        coordinator: None,
    })
    .unwrap();
    let ca = DevCa::load(work.path()).unwrap();
    let coordinator = ca
        .issue(Role::Coordinator, "coordinator", &["localhost"])
        .unwrap();
    let mut clients = Vec::new();
    for node in nodes.nodes() {
        clients.push(client(&ca, &coordinator, node).await);
    }
    let d = deployment_of(&names, 1, 0);

    // a coordinator certificate of the CA, but not the coordinator the nodes serve
    let mallory = ca
        .issue(Role::Coordinator, "mallory", &["localhost"])
        .unwrap();
    let status = client(&ca, &mallory, nodes.node(0))
        .await
        .setup(setup(&d))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status}");
    assert!(
        status.message().contains("serves the coordinator"),
        "{status}"
    );

    // deployments no node takes part in
    invalid(
        clients[0].setup(setup(&deployment_of(&names, 1, 1))).await,
        "threshold 1",
    );
    invalid(
        clients[2].setup(setup(&deployment_of(&names, 1, 2))).await,
        "at least 3",
    );
    let mut points = d.clone();
    points.parties[2].number = 1_000_003;
    invalid(clients[0].setup(setup(&points)).await, "1..N");
    invalid(
        clients[0]
            .setup(setup(&deployment_of(&["node-2", "node-3"], 1, 0)))
            .await,
        "not a party",
    );

    // asked again and again, a node gives the same share for the same deployment
    let first = clients[0].setup(setup(&d)).await.unwrap().into_inner();
    for _ in 0..50 {
        let again = clients[0].setup(setup(&d)).await.unwrap().into_inner();
        assert_eq!(again.share, first.share, "a second, fresh share");
    }

    // every node's signed share; what a node pins is their sum, recomputed
    let mut shares = Vec::new();
    for client in &mut clients {
        shares.push(client.setup(setup(&d)).await.unwrap().into_inner());
    }
    let params = BfvParameters::new(&params::ADD_4096).unwrap();
    let pin = |shares: Vec<SignedKeyShare>| PinRequest {
        deployment: Some(d.clone()),
        shares,
    };
    // node-2's share swapped for one of the coordinator's own secret, under node-2's signature
    let own = SecretKey::generate(&params);
    let crs = CommonReferenceString::from_seed([1; 32]);
    let substituted = PublicKeyGen::new(&params, &crs)
        .share(&own, PartyId(2))
        .unwrap();
    let mut forged = shares.clone();
    forged[1].share = substituted.to_bytes();
    invalid(
        clients[0].pin(stream(pin(forged))).await,
        "node-2's key share",
    );
    // node-2's genuine share for another deployment (another CRS)
    let other = deployment_of(&names, 2, 0);
    let mut replayed = shares.clone();
    replayed[1] = clients[1].setup(setup(&other)).await.unwrap().into_inner();
    invalid(
        clients[0].pin(stream(pin(replayed))).await,
        "node-2's key share",
    );
    // a party left out, and a share signed by another party than the one listed
    invalid(
        clients[0].pin(stream(pin(shares[..2].to_vec()))).await,
        "2 key shares for 3 parties",
    );
    let mut swapped = shares.clone();
    swapped.swap(1, 2);
    invalid(clients[0].pin(stream(pin(swapped))).await, "signed by");

    // the honest pin: every node pins the same key, the sum of the three shares
    let ckg = PublicKeyGen::new(&params, &crs);
    let mut sum = ckg.aggregator();
    for s in &shares {
        sum.add(&PublicKeyShare::from_bytes(&params, &s.share).unwrap())
            .unwrap();
    }
    let key = ckg
        .finish(&sum, &[PartyId(1), PartyId(2), PartyId(3)])
        .unwrap();
    let digest: [u8; 32] = Sha256::digest(key.to_bytes()).into();
    for client in &mut clients {
        let pinned = client
            .pin(stream(pin(shares.clone())))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(pinned.key_digest, digest);
    }

    // a query under a key no node pinned — one whose secret the coordinator knows — is refused
    let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
    let mut spec = QuerySpec {
        template: "time-to-publish".into(),
        template_version: 1,
        window_first: "2025-01".into(),
        window_months: 12,
        min_institutions: 3,
        recipient_key: concord_bfv::PublicKey::generate(&own).to_bytes(),
        ..Default::default()
    };
    concord_api::submission::sign(&mut spec, &alice.key_pem).unwrap();
    let proposal = Proposal {
        query_id: "q-own-key".into(),
        spec: Some(spec),
        researcher: "alice".into(),
        researcher_certificate: concord_api::submission::certificate_der(&alice.certificate_pem)
            .unwrap(),
        deployment: deployment::digest(&other).to_vec(),
    };
    let decision = clients[0]
        .propose(proposal.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.reason, "deployment-not-pinned", "{decision:?}");

    // a query past its expiry; then more new queries in an hour than node-1 takes
    let mut expired = proposal.spec.clone().unwrap();
    expired.expires_at = concord_api::submission::now() - 10;
    expired.nonce.clear();
    concord_api::submission::sign(&mut expired, &alice.key_pem).unwrap();
    let decision = clients[0]
        .propose(Proposal {
            query_id: concord_api::submission::query_id(&expired),
            spec: Some(expired),
            ..proposal.clone()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(decision.reason, "query-expired", "{decision:?}");
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let mut spec = proposal.spec.clone().unwrap();
        spec.nonce.clear();
        concord_api::submission::sign(&mut spec, &alice.key_pem).unwrap();
        let fresh = Proposal {
            query_id: concord_api::submission::query_id(&spec),
            spec: Some(spec),
            ..proposal.clone()
        };
        let decision = clients[0]
            .propose(fresh.clone())
            .await
            .unwrap()
            .into_inner();
        // proposed again (a coordinator polling), the same query does not count twice
        let again = clients[0].propose(fresh).await.unwrap().into_inner();
        assert_eq!(again.reason, decision.reason);
        reasons.push(decision.reason);
    }
    assert_eq!(
        reasons,
        [
            "deployment-not-pinned",
            "deployment-not-pinned",
            "rate-limited"
        ],
        "the query under an unpinned key and two more make three (the expired one is not counted)"
    );

    // a threshold setup where the pinned deployment has none
    let key = clients[0]
        .exchange_key_of(ExchangeKeyRequest {})
        .await
        .unwrap()
        .into_inner();
    let threshold = ThresholdSetup {
        parameter_set: "ADD-4096".into(),
        crs_seed: vec![1; 32],
        threshold: 2,
        parties: vec![ThresholdParty {
            party: 1,
            key: Some(key),
        }],
    };
    invalid(
        clients[0]
            .reshare(ReshareRequest {
                setup: Some(threshold.clone()),
            })
            .await,
        "where the pinned deployment has none",
    );
    invalid(
        clients[0]
            .reshare(ReshareRequest {
                setup: Some(ThresholdSetup {
                    threshold: 1,
                    ..threshold
                }),
            })
            .await,
        "T = 1",
    );

    // every key-generation share and the pin are in the audit log
    let audit =
        std::fs::read_to_string(work.path().join("keys-node-1").join("audit.jsonl")).unwrap();
    assert!(audit.matches("\"key-generation\"").count() >= 52, "{audit}");
    assert_eq!(audit.matches("\"deployment-pinned\"").count(), 1, "{audit}");
}
