//! The whole cryptographic path on real MISP data, in one process: the pooled data split across
//! four institutions by creator organisation; each computes every template on its own events,
//! encrypts under the collective key; the sums are jointly decrypted; the cells must equal the
//! plaintext statistic exactly. (The same over gRPC/mTLS between processes is the node and
//! coordinator's e2e test.)

use concord_bfv::{Ciphertext, Plaintext, SecretKey};
use concord_mhe::{
    CollectiveDecryption, CommonReferenceString, NoiseEstimate, PartyId, Protocol, PublicKeyGen,
    SmudgingPlan,
};
use concord_query::{QueryError, QueryPlan};
use concord_stats::{load, Event, Institution, Template, Window, YearMonth, TEMPLATES};
use std::path::{Path, PathBuf};

fn data_dir() -> Option<PathBuf> {
    concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// Four institutions: the three big producers, and everyone else together.
fn institutions(dir: &Path) -> Vec<(Institution, Vec<Event>)> {
    let mut pooled = Vec::new();
    for group in [
        "feed-tweetfeed",
        "feed-infoblox",
        "events/eset",
        "events/pymisp",
        "events/misp-training",
    ] {
        pooled.extend(load(&dir.join(group)).unwrap().events);
    }
    let big = |name: &str| {
        pooled
            .iter()
            .find(|e| e.creator.as_ref().and_then(|o| o.name.as_deref()) == Some(name))
            .and_then(|e| e.creator_uuid())
            .unwrap()
            .to_owned()
    };
    let bigs = [big("TweetFeed"), big("Infoblox"), big("ESET")];
    // each institution also holds answers to the community survey
    let answers = |i: usize| {
        let text = concord_stats::generator::survey_answers(&format!("institution-{i}"));
        Some(concord_stats::survey::parse(&text).unwrap())
    };
    let mut out: Vec<(Institution, Vec<Event>)> = bigs
        .iter()
        .enumerate()
        .map(|(i, u)| {
            (
                Institution {
                    organisation_uuids: vec![u.clone()],
                    survey: answers(i),
                    ..Default::default()
                },
                Vec::new(),
            )
        })
        .collect();
    let mut rest_orgs = std::collections::BTreeSet::new();
    let mut rest = Vec::new();
    for e in pooled {
        match bigs
            .iter()
            .position(|b| Some(b.as_str()) == e.creator_uuid())
        {
            Some(i) => out[i].1.push(e),
            None => {
                rest_orgs.extend(e.creator_uuid().map(str::to_owned));
                rest.push(e);
            }
        }
    }
    out.push((
        Institution {
            organisation_uuids: rest_orgs.into_iter().collect(),
            survey: answers(3),
            ..Default::default()
        },
        rest,
    ));
    out
}

#[test]
fn four_institutions_jointly_decrypt_every_template_exactly() {
    let Some(dir) = data_dir() else { return };
    let institutions = institutions(&dir);
    assert!(institutions.iter().all(|(_, events)| !events.is_empty()));
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    let parties: Vec<PartyId> = (1..=institutions.len() as u32).map(PartyId).collect();
    for template in TEMPLATES {
        if template.is_overlap() {
            // bins under the nodes' binning key and a circuit under their relinearization
            // key: run over real node processes in tests/e2e.rs
            continue;
        }
        let mut plan = QueryPlan::new(*template, window, institutions.len()).unwrap();
        // a training template's first round: every institution's gradient at the model 0
        let round = template.first_round(1);
        if let Some((model, config)) = &round {
            plan = plan
                .with_training(Some(concord_query::TrainingTerms {
                    model,
                    learning_rate: config.learning_rate,
                    scale_bits: config.scale_bits,
                    round: 0,
                    rounds: 1,
                    objective: config.objective.id(),
                }))
                .unwrap();
        }
        let params = &plan.params;
        // setup
        let keys: Vec<SecretKey> = parties
            .iter()
            .map(|_| SecretKey::generate(params))
            .collect();
        let ckg = PublicKeyGen::new(params, &CommonReferenceString::random());
        let mut agg = ckg.aggregator();
        for (sk, &p) in keys.iter().zip(&parties) {
            agg.add(&ckg.share(sk, p).unwrap()).unwrap();
        }
        let pk = ckg.finish(&agg, &parties).unwrap();
        // contributions, and the plaintext statistic they must sum to
        let mut expected = vec![0i128; plan.layout.cells()];
        let mut sums: Vec<Ciphertext> = Vec::new();
        for (institution, events) in &institutions {
            let stat = match &round {
                Some((model, config)) => template
                    .compute_training(&window, events, model, config)
                    .unwrap(),
                None => template.compute(&window, institution, events).unwrap(),
            };
            assert_eq!(stat.clipped_cells, 0);
            for (e, v) in expected.iter_mut().zip(&stat.values) {
                *e += *v as i128;
            }
            let cts = plan.encrypt(&pk, &stat).unwrap();
            assert_eq!(cts.len(), plan.ciphertexts());
            if sums.is_empty() {
                sums = cts;
            } else {
                for (s, c) in sums.iter_mut().zip(&cts) {
                    s.add_assign(c).unwrap();
                }
            }
        }
        // joint decryption of every ciphertext of the aggregate
        let n = parties.len();
        let plan_cks =
            SmudgingPlan::for_decryption(params, NoiseEstimate::aggregate(params, n, n), n)
                .unwrap();
        let plaintexts: Vec<Plaintext> = sums
            .iter()
            .map(|ct| {
                let cks = CollectiveDecryption::new(ct, plan_cks).unwrap();
                let mut shares = cks.aggregator();
                for (sk, &p) in keys.iter().zip(&parties) {
                    shares.add(&cks.share(sk, p).unwrap()).unwrap();
                }
                cks.finish(&shares, &parties).unwrap()
            })
            .collect();
        let cells = plan.decode(&plaintexts).unwrap();
        assert_eq!(cells, expected, "{}", template.info().id);
        assert!(expected.iter().any(|&c| c > 0));
    }
}

#[test]
fn plans_refuse_more_institutions_than_the_plaintext_modulus_holds() {
    let window = Window::new(YearMonth::parse("2024-01").unwrap(), 12).unwrap();
    let ok = QueryPlan::new(Template::EventsByMonthTlpDistribution, window, 16).unwrap();
    assert_eq!(ok.ciphertexts(), 1);
    let err = QueryPlan::new(Template::EventsByMonthTlpDistribution, window, 17).unwrap_err();
    assert!(
        matches!(err, QueryError::TooManyInstitutions { max: 16, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("at most 16 institutions"));
    // a window of 120 months × 6 × 6 cells still fits one ciphertext of 8192 slots
    let wide = QueryPlan::new(
        Template::EventsByMonthTlpDistribution,
        Window::new(YearMonth::parse("2016-01").unwrap(), 120).unwrap(),
        4,
    )
    .unwrap();
    assert_eq!((wide.layout.slots(), wide.ciphertexts()), (4320, 1));
}
