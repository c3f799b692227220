//! The e2e test's malicious coordinator: it drives honest node processes by hand with the
//! coordinator's certificate and tries to get something decrypted that is not the agreed sum
//! of one roster of contributions (issue 14).

use concord_api::chunks::{collect, stream};
use concord_api::evidence::QueryBinding;
use concord_api::pki::{DevCa, IssuedCertificate, Role};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::*;
use concord_coordinator::NodeAddress;
use tonic::transport::Channel;

/// Clients of every node with the coordinator's certificate.
pub async fn clients(
    ca: &DevCa,
    coordinator: &IssuedCertificate,
    addresses: &[NodeAddress],
) -> Vec<NodeClient<Channel>> {
    let mut nodes = Vec::new();
    for a in addresses {
        nodes.push(
            concord_system_tests::node_client(ca.certificate_pem(), coordinator, &a.name, &a.url)
                .await,
        );
    }
    nodes
}

/// Proposes the query to every node, each of which must agree, and gathers their commitments.
async fn agree_and_commit(
    nodes: &mut [NodeClient<Channel>],
    proposal: Proposal,
) -> Vec<Commitment> {
    let mut commitments = Vec::new();
    for node in nodes.iter_mut() {
        let decision = node.propose(proposal.clone()).await.unwrap().into_inner();
        assert!(decision.agree, "{decision:?}");
        let commitment = node
            .commit(CommitRequest {
                query_id: proposal.query_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        commitments.push(commitment);
    }
    commitments
}

async fn reveal(
    node: &mut NodeClient<Channel>,
    query_id: &str,
    roster: &[Commitment],
) -> Result<Contribution, tonic::Status> {
    let parts = node
        .reveal(RevealRequest {
            query_id: query_id.into(),
            roster: roster.to_vec(),
        })
        .await?
        .into_inner();
    collect(parts, |_| Ok(usize::MAX)).await
}

async fn decrypt(
    node: &mut NodeClient<Channel>,
    request: DecryptRequest,
) -> Result<DecryptShares, tonic::Status> {
    let parts = node.decrypt(stream(request)).await?.into_inner();
    collect(parts, |_| Ok(usize::MAX)).await
}

fn refused(outcome: Result<impl std::fmt::Debug, tonic::Status>, reason: &str, detail: &str) {
    let status = outcome.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");
    assert!(
        status.message().starts_with(reason) && status.message().contains(detail),
        "{reason} / {detail}: {status}"
    );
}

/// What a coordinator that lies gets from honest nodes. `fresh` makes a query the researcher
/// signed (a new one at every call); `captured` is one the nodes already ran (q0). It
///
/// - proposes the captured query under a fresh id (to spend the researcher's budget again, or
///   to have it computed anew): refused, the id is not the one the signed query derives;
/// - proposes a fresh query under the captured query's id: refused (`query-id-reused`);
/// - proposes a fresh query `q-evil` under a deployment no node pinned: refused
///   (`deployment-not-pinned`), then under the pinned one (deployment `deployment`), and:
/// - collects the four commitments (nothing is revealed: a commitment is all a node answers);
/// - asks a node to reveal against rosters it cannot stand behind — without its own
///   commitment, with two where three are required, with a commitment replayed from another
///   query (q0), with one signed outside the deployment, with a contributor twice: each refused,
///   nothing revealed;
/// - shows node-a the full roster and node-b the roster without node-a (the two aggregates
///   whose difference is node-a's statistic): each signs the first roster it sees and no other,
///   so neither roster gathers every contributor's signature and neither is decrypted, however
///   the coordinator presents it;
/// - presents a contribution that is not the one its node committed to: refused.
///
/// Then a fresh query `q-evil-2` is run honestly by hand and released once, and a second,
/// different request for it is refused. Returns the ids of `q-evil` and `q-evil-2`. The test
/// runs it for a table and for an overlap query, whose released counts each node computes
/// from the sum it verified: a substituted contribution is refused there as well.
pub async fn malicious_coordinator(
    nodes: &mut [NodeClient<Channel>],
    fresh: impl Fn() -> QuerySpec,
    captured: &QuerySpec,
    researcher_certificate: &[u8],
    deployment: [u8; 32],
    q0_commitments: &[Commitment],
) -> (String, String) {
    let proposal = |id: &str, spec: &QuerySpec, deployment: [u8; 32]| Proposal {
        query_id: id.into(),
        spec: Some(spec.clone()),
        researcher: "alice".into(),
        researcher_certificate: researcher_certificate.to_vec(),
        deployment: deployment.to_vec(),
    };
    let spec = fresh();
    let id_of = concord_api::submission::query_id;
    let replays = [
        (
            proposal("q-fresh-0123456", captured, deployment),
            "invalid-query",
            "not the one the signed query derives",
        ),
        (
            proposal(&id_of(captured), &spec, deployment),
            "query-id-reused",
            "another query under the id",
        ),
        // a deployment no node pinned (a key of the coordinator's choosing would be one)
        (
            proposal(&id_of(&spec), &spec, [7; 32]),
            "deployment-not-pinned",
            "has not pinned",
        ),
    ];
    for (replay, reason, detail) in replays {
        for node in nodes.iter_mut() {
            let decision = node.propose(replay.clone()).await.unwrap().into_inner();
            assert!(!decision.agree);
            assert_eq!(decision.reason, reason, "{decision:?}");
            assert!(decision.detail.contains(detail), "{decision:?}");
        }
    }

    let query_id = &id_of(&spec);
    let commitments = agree_and_commit(nodes, proposal(query_id, &spec, deployment)).await;
    // asked again, a node commits to the same contribution
    let again = nodes[0]
        .commit(CommitRequest {
            query_id: query_id.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, commitments[0]);
    let c = |i: usize| commitments[i].clone();

    // rosters no node signs
    refused(
        reveal(&mut nodes[0], query_id, &[c(1), c(2), c(3)]).await,
        "aggregate-not-verified",
        "own contribution is not among",
    );
    refused(
        reveal(&mut nodes[0], query_id, &[c(0), c(1)]).await,
        "too-few-contributions",
        "2 contributions",
    );
    let from_q0 = q0_commitments
        .iter()
        .find(|q0| q0.certificate == c(2).certificate)
        .unwrap()
        .clone();
    refused(
        reveal(&mut nodes[0], query_id, &[c(0), c(1), from_q0, c(3)]).await,
        "aggregate-not-verified",
        "does not verify",
    );
    let outsider_ca = DevCa::generate("outsider").unwrap();
    let outsider = outsider_ca
        .issue(Role::Node, "node-x", &["localhost"])
        .unwrap();
    let forged = QueryBinding::new(query_id, &spec, &deployment)
        .commit(
            &outsider.key_pem,
            &concord_api::submission::certificate_der(&outsider.certificate_pem).unwrap(),
            [0; 32],
        )
        .unwrap();
    refused(
        reveal(&mut nodes[0], query_id, &[c(0), c(1), c(2), forged]).await,
        "aggregate-not-verified",
        "not issued",
    );
    refused(
        reveal(&mut nodes[0], query_id, &[c(0), c(0), c(1)]).await,
        "aggregate-not-verified",
        "twice",
    );

    // disjoint quorums: node-a sees all four, node-b the three others; c and d the full roster
    let full = vec![c(0), c(1), c(2), c(3)];
    let without_a = vec![c(1), c(2), c(3)];
    let a = reveal(&mut nodes[0], query_id, &full).await.unwrap();
    let b = reveal(&mut nodes[1], query_id, &without_a).await.unwrap();
    let cc = reveal(&mut nodes[2], query_id, &full).await.unwrap();
    let d = reveal(&mut nodes[3], query_id, &full).await.unwrap();
    // each signed the first roster it saw, for good
    refused(
        reveal(&mut nodes[1], query_id, &full).await,
        "roster-conflict",
        "signs one",
    );
    refused(
        reveal(&mut nodes[2], query_id, &without_a).await,
        "roster-conflict",
        "signs one",
    );
    let request = |roster: Vec<Commitment>, revealed: &[&Contribution]| DecryptRequest {
        query_id: query_id.into(),
        ciphertexts: revealed
            .iter()
            .flat_map(|r| r.ciphertexts.iter().cloned())
            .collect(),
        roster,
        roster_signatures: revealed
            .iter()
            .map(|r| r.roster_signature.clone())
            .collect(),
        active_parties: Vec::new(),
    };
    // the full roster, with node-b's signature over the other one: every node refuses it
    let full_request = request(full.clone(), &[&a, &b, &cc, &d]);
    for (i, node) in nodes.iter_mut().enumerate() {
        let outcome = decrypt(node, full_request.clone()).await;
        match i {
            1 => refused(outcome, "roster-conflict", "not the list this node signed"),
            _ => refused(outcome, "aggregate-not-verified", "node-b did not sign"),
        }
    }
    // the roster without node-a: node-c and node-d signed the full one
    let partial = request(without_a, &[&b, &cc, &d]);
    refused(
        decrypt(&mut nodes[1], partial.clone()).await,
        "aggregate-not-verified",
        "node-c did not sign",
    );
    refused(
        decrypt(&mut nodes[2], partial).await,
        "roster-conflict",
        "not the list this node signed",
    );

    // an honest run of q-evil-2 by hand: commit, one roster, reveal, release
    let evil = query_id.clone();
    let spec = fresh();
    let query_id = &id_of(&spec);
    let commitments = agree_and_commit(nodes, proposal(query_id, &spec, deployment)).await;
    let mut revealed = Vec::new();
    for node in nodes.iter_mut() {
        revealed.push(reveal(node, query_id, &commitments).await.unwrap());
    }
    // nothing in clear depends on an institution's data: four institutions with different data
    // send commitments of one shape and contributions of the very same sizes
    let sizes = |r: &Contribution| r.ciphertexts.iter().map(Vec::len).collect::<Vec<_>>();
    assert!(revealed.iter().all(|r| sizes(r) == sizes(&revealed[0])));
    assert!(commitments.iter().all(|c| c.digest.len() == 32));
    let all: Vec<&Contribution> = revealed.iter().collect();
    let honest = DecryptRequest {
        query_id: query_id.into(),
        ..request(commitments.clone(), &all)
    };
    // node-c's contribution swapped for node-a's: not what node-c committed to
    let mut swapped = honest.clone();
    let per = revealed[0].ciphertexts.len();
    for k in 0..per {
        swapped.ciphertexts[2 * per + k] = revealed[0].ciphertexts[k].clone();
    }
    refused(
        decrypt(&mut nodes[0], swapped).await,
        "aggregate-not-verified",
        "presented as node-c's is not the one it committed to",
    );
    // the contributions streamed one ciphertext short, or with one too many: each node sums
    // them as they arrive and refuses either, reading no further than one past the roster's
    let mut short = honest.clone();
    short.ciphertexts.pop();
    refused(
        decrypt(&mut nodes[0], short).await,
        "aggregate-not-verified",
        "ciphertexts for",
    );
    let mut long = honest.clone();
    long.ciphertexts.push(revealed[0].ciphertexts[0].clone());
    refused(
        decrypt(&mut nodes[0], long).await,
        "aggregate-not-verified",
        "more than the",
    );
    // one share per released plaintext: per ciphertext of the sum, or one for the counts of
    // an overlap query (computed by each node from the sum it verified, never sent to it)
    let released = spec.agreement(nodes.len()).unwrap().plan.released();
    for node in nodes.iter_mut() {
        let shares = decrypt(node, honest.clone()).await.unwrap();
        assert_eq!(shares.shares.len(), released);
        // the same request again: the same shares, nothing new
        assert_eq!(decrypt(node, honest.clone()).await.unwrap(), shares);
    }
    // any other request of the released query: refused before anything else is looked at
    let mut other = honest.clone();
    other.active_parties = vec![1, 2, 3, 4];
    refused(
        decrypt(&mut nodes[0], other).await,
        "roster-conflict",
        "another request",
    );
    (evil, query_id.clone())
}
