//! The e2e test's malicious coordinator: it drives honest node processes by hand with a
//! coordinator certificate and tries to get what is not an agreed aggregate decrypted.

use concord_api::pki::{DevCa, Role};
use concord_api::v1::{Commitment, QuerySpec};
use concord_bfv::Ciphertext;
use concord_coordinator::NodeAddress;
use concord_query::QueryPlan;
use concord_stats::{Template, Window, YearMonth};

/// What a coordinator that lies gets from honest nodes (aggregate verification, DESIGN.md §5).
/// It proposes a properly signed query `q-evil` and collects the four contributions, then
/// asks every node to decrypt:
/// 1. one institution's contribution, presented with all four commitments and fingerprints;
/// 2. the sum of two contributions, presented as what it is (2 of the 3 required);
/// 3. the sum with a commitment replayed from another query (q0) in place of node-c's;
/// 4. the sum with an extra commitment signed by a key outside the deployment;
/// 5. the sum of three with node-a's commitment presented twice;
///
/// every node refuses each with its reason; then the true aggregate is released, and a second,
/// different aggregate of the same query is refused.
pub async fn malicious_coordinator(
    ca: &DevCa,
    coordinator: &concord_api::pki::IssuedCertificate,
    addresses: &[NodeAddress],
    spec: QuerySpec,
    researcher_certificate: &[u8],
    collective_key: &[u8],
    q0_commitments: &[Commitment],
) {
    use concord_api::chunks::{collect, stream};
    use concord_api::evidence;
    use concord_api::v1::node_client::NodeClient;
    use concord_api::v1::*;

    let query_id = "q-evil";
    let mut nodes = Vec::new();
    for a in addresses {
        let tls = concord_api::tls::client_config(
            ca.certificate_pem(),
            &coordinator.certificate_pem,
            &coordinator.key_pem,
            &a.name,
        );
        let channel = tonic::transport::Endpoint::from_shared(a.url.clone())
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect()
            .await
            .unwrap();
        nodes.push(NodeClient::new(channel).max_decoding_message_size(64 << 20));
    }
    let proposal = Proposal {
        query_id: query_id.into(),
        spec: Some(spec),
        institutions: 4,
        researcher: "alice".into(),
        researcher_certificate: researcher_certificate.to_vec(),
    };
    let mut contributions = Vec::new();
    for node in &mut nodes {
        assert!(
            node.propose(proposal.clone())
                .await
                .unwrap()
                .into_inner()
                .agree
        );
        let parts = node
            .contribute(ContributeRequest {
                query_id: query_id.into(),
                collective_key: collective_key.to_vec(),
                institutions: 4,
            })
            .await
            .unwrap()
            .into_inner();
        contributions.push(collect(parts, |_| Ok(usize::MAX)).await.unwrap());
    }
    let plan = QueryPlan::new(
        Template::EventsByMonthTlpDistribution,
        Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap(),
        4,
    )
    .unwrap();
    let sum_of = |which: &[usize]| -> Vec<Vec<u8>> {
        (0..plan.ciphertexts())
            .map(|k| {
                let cts: Vec<Ciphertext> = which
                    .iter()
                    .map(|&i| {
                        Ciphertext::from_bytes(&plan.params, &contributions[i].ciphertexts[k])
                            .unwrap()
                    })
                    .collect();
                Ciphertext::sum(&cts).unwrap().to_bytes()
            })
            .collect()
    };
    let commitment = |i: usize| contributions[i].commitment.clone().unwrap();
    // the evidence as an honest coordinator would gather it: each committed node's signed
    // fingerprint at the challenge fixed by this aggregate and these commitments
    let gather = |aggregate: Vec<Vec<u8>>, commitments: Vec<Commitment>, signers: Vec<usize>| {
        let mut nodes = nodes.clone();
        async move {
            let request = FingerprintRequest {
                query_id: query_id.into(),
                aggregate_digest: evidence::digest(&aggregate).to_vec(),
                commitments: commitments.clone(),
            };
            let mut fingerprints = Vec::new();
            for i in signers {
                fingerprints.push(
                    nodes[i]
                        .fingerprint(request.clone())
                        .await
                        .unwrap()
                        .into_inner(),
                );
            }
            DecryptRequest {
                query_id: query_id.into(),
                ciphertexts: aggregate,
                party: 0,
                sharing_parties: 4,
                key_parties: 4,
                commitments,
                fingerprints,
                active_parties: Vec::new(),
                crs_seed: Vec::new(),
            }
        }
    };
    let ask = |i: usize, mut request: DecryptRequest| {
        let mut node = nodes[i].clone();
        request.party = i as u32 + 1;
        async move {
            let parts = node.decrypt(stream(request)).await?.into_inner();
            collect(parts, |_| Ok(usize::MAX)).await
        }
    };
    let refused_by_all = |request: DecryptRequest, reason: &'static str, detail: &'static str| {
        let ask = &ask;
        async move {
            for i in 0..4 {
                let status = ask(i, request.clone()).await.unwrap_err();
                assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status}");
                assert!(
                    status.message().starts_with(reason) && status.message().contains(detail),
                    "node {i}: {status}"
                );
            }
        }
    };
    let all: Vec<Commitment> = (0..4).map(commitment).collect();

    // 1. node-a's contribution alone, as if it were the sum of all four
    let single = gather(sum_of(&[0]), all.clone(), vec![0, 1, 2, 3]).await;
    refused_by_all(single, "aggregate-not-verified", "not the sum").await;
    // 2. two contributions, where three are required
    let two = gather(
        sum_of(&[0, 1]),
        vec![commitment(0), commitment(1)],
        vec![0, 1],
    )
    .await;
    refused_by_all(two, "too-few-contributions", "2 contributions").await;
    // 3. node-c's commitment replayed from q0
    let mut replayed = gather(sum_of(&[0, 1, 2, 3]), all.clone(), vec![0, 1, 2, 3]).await;
    let from_q0 = q0_commitments
        .iter()
        .find(|c| c.certificate == commitment(2).certificate)
        .unwrap();
    replayed.commitments[2] = from_q0.clone();
    refused_by_all(replayed, "aggregate-not-verified", "does not verify").await;
    // 4. an extra commitment by a node key outside the deployment
    let outsider_ca = DevCa::generate("outsider").unwrap();
    let outsider = outsider_ca
        .issue(Role::Node, "node-x", &["localhost"])
        .unwrap();
    let spec = proposal.spec.clone().unwrap();
    let mut extra = all.clone();
    extra.push(
        evidence::QueryBinding::new(query_id, &spec)
            .commit(
                &outsider.key_pem,
                &concord_api::submission::certificate_der(&outsider.certificate_pem).unwrap(),
                [0; 32],
            )
            .unwrap(),
    );
    let mut forged = gather(sum_of(&[0, 1, 2, 3]), extra, vec![0, 1, 2, 3]).await;
    forged.fingerprints.push(SignedFingerprint::default());
    refused_by_all(forged, "aggregate-not-verified", "not issued").await;
    // 5. node-a counted twice
    let twice = gather(
        sum_of(&[0, 0, 1]),
        vec![commitment(0), commitment(0), commitment(1)],
        vec![0, 0, 1],
    )
    .await;
    refused_by_all(twice, "aggregate-not-verified", "twice").await;

    // the true aggregate is released by every node, once
    let honest = gather(sum_of(&[0, 1, 2, 3]), all.clone(), vec![0, 1, 2, 3]).await;
    for i in 0..4 {
        let shares = ask(i, honest.clone()).await.unwrap();
        assert_eq!(shares.shares.len(), plan.ciphertexts());
    }
    // and no other aggregate of it afterwards: refused before anything else is looked at
    let other = gather(sum_of(&[0, 1, 2, 3, 3]), all, vec![0, 1, 2, 3]).await;
    let status = ask(0, other).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status}");
}
