//! Threshold mode with real processes at the largest supported size: 16 nodes, T = 8
//! (replicated sharing, issue 15), on generated MISP feeds of 16 institutions. node-1's operator
//! approves by hand, which holds every query after the others agreed — the moment to kill nodes:
//!
//! 1. all 16 up: setup (key, then the threshold dealing), the query released by the shares of
//!    parties 1–8, exactly the pooled statistic of all 16;
//!    A survey query, at nodes that hold no survey answers: each refuses at proposal, saying so.
//! 2. churn: two nodes killed before the query, two after agreeing: released from the 12
//!    contributions by the shares of the 8 lowest-numbered contributors, exactly their pooled
//!    statistic;
//! 3. the coordinator stopped, the test plays it with its certificate, its stored roster and the
//!    contributions revealed again: the same decryption request again gets the very same shares
//!    (nothing new is smudged), any other request of the query — another active set — is
//!    refused;
//! 4. a node whose threshold share belongs to another setup refuses to decrypt, and says why;
//! 5. five more nodes killed after agreeing: seven contributions, fewer than T, and the query
//!    fails cleanly, saying so.

#![cfg(unix)]

use concord_api::chunks::{collect, stream};
use concord_api::pki::{DevCa, IssuedCertificate};
use concord_api::v1::{Commitment, Contribution, DecryptRequest, DecryptShares, RevealRequest};
use concord_stats::{Template, Window, YearMonth};
use concord_system_tests::*;
use prost::Message;
use std::process::{Command, Output};

const NODES: usize = 16;
const T: usize = 8;

async fn decrypt(
    ca: &DevCa,
    coordinator: &IssuedCertificate,
    d: &Deployment,
    node: usize,
    request: DecryptRequest,
) -> Result<DecryptShares, tonic::Status> {
    let info = d.testbed.node(node);
    let mut client = node_client(ca.certificate_pem(), coordinator, &info.name, &info.url()).await;
    let parts = client.decrypt(stream(request)).await?.into_inner();
    collect(parts, |_| Ok(usize::MAX)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_of_sixteen_release_with_churn_and_never_share_twice() {
    let work = generated_deployment(NODES, Some(T), |i, institution| {
        if i == 0 {
            institution.policy.approval = Approval::Manual;
        }
    });
    let mut d = Deployment::start(work);
    let approve = |d: &Deployment, id: &str| -> Output {
        Command::new(bin("concord-node"))
            .arg("--config")
            .arg(d.work.path().join("node-1.toml"))
            .args(["approvals", "approve", id])
            .output()
            .unwrap()
    };
    let window = Window::new(YearMonth::parse("2025-01").unwrap(), 12).unwrap();
    let names =
        |nodes: &[usize]| -> Vec<String> { nodes.iter().map(|i| format!("node-{i}")).collect() };
    // party numbers follow the order in which the nodes enrolled
    let party = d.party_numbers();
    assert_eq!(party.len(), NODES);
    let number = |i: usize| party[&format!("node-{i}")];
    // node-i by party number p
    let by_number: Vec<usize> = {
        let mut nodes: Vec<usize> = (1..=NODES).collect();
        nodes.sort_by_key(|&i| number(i));
        nodes
    };
    // the T contributors with the lowest party numbers
    let releasing = |contributors: &[usize]| -> Vec<usize> {
        let mut sorted = contributors.to_vec();
        sorted.sort_by_key(|&i| number(i));
        sorted.truncate(T);
        sorted
    };
    let check = |d: &Deployment, id: &str, contributors: &[usize]| {
        let (result, released) = d.result_json(id);
        // the result carries the query's terms
        assert_eq!(
            (&result["template"], &result["window"]),
            (
                &serde_json::json!("events-by-month-tlp-distribution"),
                &serde_json::json!({"first": "2025-01", "months": 12})
            )
        );
        assert!(result["template_version"].as_u64() >= Some(1));
        let expected = pooled(
            d.work.path(),
            contributors.iter().copied(),
            Template::EventsByMonthTlpDistribution,
            &window,
        );
        assert!(expected.iter().any(|&v| v > 0));
        assert_eq!(
            released, expected,
            "exactly the contributors' pooled statistic"
        );
        let mut listed: Vec<String> = result["contributors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        listed.sort();
        let mut want = names(contributors);
        want.sort();
        assert_eq!(listed, want);
        let mut givers = names(&releasing(contributors));
        givers.sort();
        assert_eq!(result["shares_from"], serde_json::json!(givers));
    };

    // 1. every node up
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    assert!(approve(&d, &id).status.success());
    d.wait_listed(&id, "released");
    check(&d, &id, &(1..=NODES).collect::<Vec<_>>());

    // a template the nodes hold nothing for (no survey answers here): each says so at proposal
    // and takes no part, so the query fails saying why
    let out = d.query_until_up(&[
        "submit",
        "--template",
        "survey-sharing-motivations",
        "--from",
        "2025-01",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = d.wait_listed(text(&out.stdout).trim(), "failed");
    assert!(
        line.contains("template-not-allowed")
            && line.contains("needs the institution's survey answers"),
        "{line}"
    );

    // 2. the two highest-numbered nodes down before the query, and two of the lowest-numbered
    // (not node-1, which approves) killed after agreeing
    let low: Vec<usize> = by_number
        .iter()
        .copied()
        .filter(|&i| i != 1)
        .take(2)
        .collect();
    let high = &by_number[NODES - 2..];
    let high: Vec<usize> = high.iter().copied().filter(|&i| i != 1).collect();
    for &i in &high {
        d.testbed.stop_node(i - 1);
    }
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    for &i in &low {
        d.testbed.stop_node(i - 1);
    }
    assert!(approve(&d, &id).status.success());
    d.wait_listed(&id, "released");
    let contributors: Vec<usize> = (1..=NODES)
        .filter(|i| !low.contains(i) && !high.contains(i))
        .collect();
    assert!(contributors.len() >= 12);
    check(&d, &id, &contributors);
    let releasing_now = releasing(&contributors);
    let mut givers = names(&releasing_now);
    givers.sort();
    let table = text(&d.query(&["result", &id]).stdout);
    assert!(
        table.contains(&format!("released by the shares of: {}", givers.join(", "))),
        "{table}"
    );

    // 3. the coordinator stopped; a test with its certificate rebuilds the decryption request
    // from the stored roster and the contributions the contributors reveal again
    d.testbed.stop_coordinator();
    let ca = DevCa::load(d.work.path()).unwrap();
    let coordinator = IssuedCertificate {
        certificate_pem: std::fs::read_to_string(d.work.path().join("coordinator.pem")).unwrap(),
        key_pem: std::fs::read_to_string(d.work.path().join("coordinator.key"))
            .unwrap()
            .into(),
    };
    let (contributed, roster) = {
        let store =
            concord_coordinator::store::QueryStore::open(&d.work.path().join("coordinator.redb"))
                .unwrap();
        let record = store.get(&id).unwrap().unwrap();
        let roster: Vec<Commitment> = store
            .commitments(&id)
            .unwrap()
            .iter()
            .map(|b| Commitment::decode(b.as_slice()).unwrap())
            .collect();
        (record.contributed, roster)
    };
    let mut active: Vec<u32> = releasing_now.iter().map(|&i| number(i)).collect();
    active.sort_unstable();
    let mut request = DecryptRequest {
        query_id: id.clone(),
        roster: roster.clone(),
        active_parties: active,
        ..Default::default()
    };
    for name in &contributed {
        let i: usize = name.strip_prefix("node-").unwrap().parse().unwrap();
        let info = d.testbed.node(i - 1);
        let mut client =
            node_client(ca.certificate_pem(), &coordinator, &info.name, &info.url()).await;
        let parts = client
            .reveal(RevealRequest {
                query_id: id.clone(),
                roster: roster.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        let c: Contribution = collect(parts, |_| Ok(usize::MAX)).await.unwrap();
        request.roster_signatures.push(c.roster_signature);
        request.ciphertexts.extend(c.ciphertexts);
    }
    // a share-giver of the released query, asked again
    let giver = releasing_now[T - 1] - 1;
    let first = decrypt(&ca, &coordinator, &d, giver, request.clone())
        .await
        .unwrap();
    assert!(!first.shares.is_empty());
    assert_eq!(
        decrypt(&ca, &coordinator, &d, giver, request.clone())
            .await
            .unwrap(),
        first,
        "the same request again: the recorded shares, nothing new"
    );
    // another active set: the next contributor instead of the last, or the first left out
    let mut others: Vec<Vec<u32>> = Vec::new();
    let spare = contributors
        .iter()
        .map(|&i| number(i))
        .filter(|p| !request.active_parties.contains(p))
        .min()
        .unwrap();
    let mut swapped = request.active_parties.clone();
    swapped[0] = spare;
    swapped.sort_unstable();
    others.push(swapped);
    let mut grown = request.active_parties.clone();
    grown.push(spare);
    grown.sort_unstable();
    others.push(grown);
    for active in others {
        let other = DecryptRequest {
            active_parties: active,
            ..request.clone()
        };
        let refused = decrypt(&ca, &coordinator, &d, giver, other)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused}");
        assert!(
            refused.message().starts_with("roster-conflict")
                && refused.message().contains("another request"),
            "{refused}"
        );
    }
    d.testbed.start_coordinator().unwrap();

    // 4. node-1's threshold share made to belong to another setup (its stored CRS seed changed,
    // as after a re-run setup it missed): it refuses to decrypt, and says why
    let share = d.work.path().join("keys-node-1").join("ADD-8192.threshold");
    let kept = std::fs::read(&share).unwrap();
    let mut other = kept.clone();
    other[0] ^= 1;
    std::fs::write(&share, &other).unwrap();
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    assert!(approve(&d, &id).status.success());
    let line = d.wait_listed(&id, "failed");
    assert!(
        line.contains("node-1") && line.contains("belongs to another setup"),
        "{line}"
    );
    std::fs::write(&share, &kept).unwrap();

    // 5. five more killed after agreeing: seven contributions, fewer than T
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    for &i in contributors.iter().filter(|&&i| i != 1).take(5) {
        d.testbed.stop_node(i - 1);
    }
    assert!(approve(&d, &id).status.success());
    let line = d.wait_listed(&id, "failed");
    assert!(
        line.contains("7 contributions") && line.contains("threshold mode needs at least 8"),
        "{line}"
    );
}
