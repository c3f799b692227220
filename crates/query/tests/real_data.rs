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

/// Every party's secret key and their collective public key (CKG).
fn setup(
    params: &std::sync::Arc<concord_bfv::BfvParameters>,
    parties: &[PartyId],
) -> (Vec<SecretKey>, concord_bfv::PublicKey) {
    let keys: Vec<SecretKey> = parties
        .iter()
        .map(|_| SecretKey::generate(params))
        .collect();
    let ckg = PublicKeyGen::new(params, &CommonReferenceString::random());
    let mut agg = ckg.aggregator();
    for (sk, &p) in keys.iter().zip(parties) {
        agg.add(&ckg.share(sk, p).unwrap()).unwrap();
    }
    (keys, ckg.finish(&agg, parties).unwrap())
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
        let (keys, pk) = setup(params, &parties);
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
fn a_plan_takes_a_wider_plaintext_modulus_where_the_first_would_wrap() {
    let window = Window::new(YearMonth::parse("2024-01").unwrap(), 12).unwrap();
    let ok = QueryPlan::new(Template::EventsByMonthTlpDistribution, window, 16).unwrap();
    assert_eq!((ok.params.name(), ok.ciphertexts()), ("ADD-8192", 1));
    // 17 institutions' counts of up to 4,095 can reach 69,615 > t = 65,537
    let wider = QueryPlan::new(Template::EventsByMonthTlpDistribution, window, 17).unwrap();
    assert_eq!(wider.params.name(), "ADD-8192-T33");
    // attribute counts of up to 2^26 − 1 wrap every 33-bit t above 127 institutions
    let err = QueryPlan::new(Template::AttributesByCategoryTypeToIds, window, 128).unwrap_err();
    assert!(
        matches!(err, QueryError::TooManyInstitutions { max: 127, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("at most 127 institutions"));
    // a window of 120 months × 6 × 6 cells still fits one ciphertext of 8192 slots
    let wide = QueryPlan::new(
        Template::EventsByMonthTlpDistribution,
        Window::new(YearMonth::parse("2016-01").unwrap(), 120).unwrap(),
        4,
    )
    .unwrap();
    assert_eq!((wide.layout.slots(), wide.ciphertexts()), (4320, 1));
}

/// A community larger than `ADD-8192-T33`'s smudging hides (153): the real events dealt out to
/// 160 institutions, each computing the template on its share; the plan takes
/// `ADD-8192-T33-Q120`, the 160 key-switch shares seal the sum to the researcher with at least
/// 40 bits of statistical security, and the opened cells equal the plaintext sum exactly.
#[test]
fn a_community_of_160_institutions_is_released_exactly_under_the_wide_set() {
    use concord_bfv::PublicKey;
    use concord_mhe::PublicKeySwitch;
    let Some(dir) = data_dir() else { return };
    const INSTITUTIONS: usize = 160;
    let mut dealt: Vec<Vec<Event>> = vec![Vec::new(); INSTITUTIONS];
    for (i, e) in load(&dir.join("events/misp-training"))
        .unwrap()
        .events
        .into_iter()
        .chain(load(&dir.join("feed-tweetfeed")).unwrap().events)
        .enumerate()
    {
        dealt[i % INSTITUTIONS].push(e);
    }
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    let parties: Vec<PartyId> = (1..=INSTITUTIONS as u32).map(PartyId).collect();
    for template in [
        Template::TimeToPublish,
        Template::EventsByMonthTlpDistribution,
    ] {
        let plan = QueryPlan::new(template, window, INSTITUTIONS).unwrap();
        assert_eq!(plan.params.name(), "ADD-8192-T33-Q120");
        let params = &plan.params;
        let (keys, pk) = setup(params, &parties);
        let mut expected = vec![0i128; plan.layout.cells()];
        let mut sums: Vec<Ciphertext> = Vec::new();
        for events in &dealt {
            let stat = template
                .compute(&window, &Institution::default(), events)
                .unwrap();
            for (e, v) in expected.iter_mut().zip(&stat.values) {
                *e += *v as i128;
            }
            let cts = plan.encrypt(&pk, &stat).unwrap();
            if sums.is_empty() {
                sums = cts;
            } else {
                for (s, c) in sums.iter_mut().zip(&cts) {
                    s.add_assign(c).unwrap();
                }
            }
        }
        let n = INSTITUTIONS;
        let smudging =
            SmudgingPlan::for_key_switch(params, NoiseEstimate::aggregate(params, n, n), n)
                .unwrap();
        assert!(smudging.lambda >= 40.0);
        // the narrower set cannot release it
        let narrow = concord_bfv::BfvParameters::new(&concord_bfv::params::ADD_8192_T33).unwrap();
        assert!(
            SmudgingPlan::for_key_switch(&narrow, NoiseEstimate::aggregate(&narrow, n, n), n)
                .is_err()
        );
        let researcher = SecretKey::generate(params);
        let recipient = PublicKey::generate(&researcher);
        let plaintexts: Vec<Plaintext> = plan
            .key_switches(&sums, &recipient, smudging)
            .unwrap()
            .iter()
            .map(|pcks| {
                let mut shares = pcks.aggregator();
                for (sk, &p) in keys.iter().zip(&parties) {
                    shares.add(&pcks.share(sk, p).unwrap()).unwrap();
                }
                let sealed: Ciphertext = PublicKeySwitch::finish(pcks, &shares, &parties).unwrap();
                researcher.decrypt(&sealed).unwrap()
            })
            .collect();
        let cells = plan.decode(&plaintexts).unwrap();
        assert_eq!(cells, expected, "{}", template.info().id);
        assert!(expected.iter().any(|&c| c > 0));
    }
}
