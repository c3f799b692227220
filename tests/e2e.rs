//! End to end over real processes: four `concord-node` processes on loopback, each with a
//! different institution's real MISP data from `../shared/data/misp/` (split by creator
//! organisation), real certificates, mutual TLS; the coordinator runs setup and one query per
//! template. Every released aggregate must equal the sum of the institutions' plaintext
//! statistics (and every overlap histogram — overall and per type — the one binned in the
//! clear with the nodes' key); DP results, of a table and of an overlap histogram, carry noise
//! within their public bounds; a policy refusal is reported with its reason; too few
//! institutions means nothing is decrypted; a coordinator that replays a released query with a fresh aggregate
//! gets no second decryption shares.
//!
//! The nodes are started by `concord-testbed`; the coordinator runs in this test, so that
//! it can also play a coordinator that replays.

use concord_api::pki::{DevCa, Role};
use concord_api::v1::{Commitment, QuerySpec};
use concord_bfv::{BfvParameters, Ciphertext, PublicKey, SecretKey};
use concord_coordinator::store::QueryStore;
use concord_coordinator::{Coordinator, CoordinatorError, QueryOutcome};
use concord_query::QueryPlan;
use concord_stats::{Institution, Template, Window, YearMonth, TEMPLATES};
use concord_testbed::{self as testbed, binaries_beside_tests, Setup, Testbed};

#[path = "e2e/malicious.rs"]
mod malicious;
use malicious::malicious_coordinator;
use prost::Message;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

fn data_dir() -> Option<PathBuf> {
    concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|e| e == "json") {
            out.push(p);
        }
    }
    out
}

/// A sealed result opened with the researcher's key, decoded by the plan.
fn open(sk: &SecretKey, plan: &QueryPlan, sealed: &[Vec<u8>]) -> Vec<i128> {
    let plaintexts: Vec<_> = sealed
        .iter()
        .map(|b| {
            sk.decrypt(&Ciphertext::from_bytes(&plan.params, b).unwrap())
                .unwrap()
        })
        .collect();
    plan.decode(&plaintexts).unwrap()
}

/// Runs a sealed query to its release and opens the result with the researcher's key of the
/// plan's parameter set: the outcome, and the cells.
async fn run_sealed(
    coordinator: &mut Coordinator,
    spec: QuerySpec,
    researcher_certificate: &[u8],
    researcher: &HashMap<&'static str, SecretKey>,
    plan: &QueryPlan,
) -> (QueryOutcome, Vec<i128>) {
    let outcome = coordinator
        .run_query(spec, researcher_certificate)
        .await
        .unwrap();
    let cells = open(
        &researcher[plan.layout.parameter_set],
        plan,
        &outcome.sealed,
    );
    (outcome, cells)
}

/// What an overlap query must release, in the clear: every institution's presence bits binned
/// under the query's key — derived from the binning key the nodes agreed at setup, read here
/// from node-a's key directory (the coordinator never held it) — summed, histogram by
/// histogram, `j = 1..=4` (four institutions). With the bins' merges
/// reproduced exactly; and the merge rate the result reports is checked against the exact
/// distinct indicators.
fn overlap_reference(
    root: &Path,
    query_id: &str,
    plan: &QueryPlan,
    window: &Window,
    institutions: &[(Institution, Vec<concord_stats::Event>)],
) -> Vec<i128> {
    use concord_stats::overlap::{estimated_distinct, exact, reference, BinningKey};
    let set = plan.params.name();
    let stored = std::fs::read(root.join("keys-node-a").join(format!("{set}.binning"))).unwrap();
    let key = BinningKey::new(stored[32..].try_into().unwrap()).for_query(query_id);
    let bins = plan.layout.overlap.unwrap();
    let events: Vec<&[concord_stats::Event]> =
        institutions.iter().map(|(_, e)| e.as_slice()).collect();
    let binned = reference(&events, window, &bins, &key);
    let distinct = exact(&events, window, bins.by_group);
    let n = institutions.len();
    let mut cells = Vec::new();
    for (h, d) in binned.chunks(n).zip(distinct.chunks(n)) {
        let occupied: u64 = h.iter().sum();
        let truth: u64 = d.iter().sum();
        assert!(occupied <= truth, "bins hold no more than the indicators");
        if truth > 100 {
            // the estimate from the occupied bins recovers the distinct indicators
            let estimate = estimated_distinct(occupied, bins.per_group as u64).unwrap();
            assert!(
                (estimate - truth as f64).abs() < 0.05 * truth as f64,
                "estimated {estimate:.0} distinct indicators, {truth} held"
            );
        }
        cells.extend(h.iter().map(|&c| c as i128));
    }
    cells
}

/// The institutions' plaintext statistics summed: what an exact aggregate holds (`created`:
/// what a DP query's aggregate holds before its noise, each over the events it created).
fn pooled_counting(
    template: Template,
    window: &Window,
    institutions: &[(Institution, Vec<concord_stats::Event>)],
    created: bool,
) -> Vec<i128> {
    let mut total = vec![0i128; template.layout(window).cells()];
    let round = template.first_round(1);
    for (institution, events) in institutions {
        let stat = match (&round, created) {
            (Some((model, config)), _) => template.compute_training(window, events, model, config),
            (None, false) => template.compute(window, institution, events),
            (None, true) => template.compute_created(window, institution, events),
        }
        .unwrap();
        for (t, v) in total.iter_mut().zip(&stat.values) {
            *t += *v as i128;
        }
    }
    total
}

fn pooled(
    template: Template,
    window: &Window,
    institutions: &[(Institution, Vec<concord_stats::Event>)],
) -> Vec<i128> {
    pooled_counting(template, window, institutions, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_node_processes_answer_every_template_exactly() {
    let Some(data) = data_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let root = work.path();

    // institutions: TweetFeed and Infoblox feeds as they are; the event exports split by creator
    let (eset_dir, others_dir) = (root.join("data-eset"), root.join("data-others"));
    for dir in [&eset_dir, &others_dir] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let events_root = data.join("events");
    for path in walk(&events_root) {
        let Ok(events) = concord_stats::parse_events(&std::fs::read(&path).unwrap()) else {
            continue;
        };
        let eset = events[0].creator.as_ref().and_then(|o| o.name.as_deref()) == Some("ESET");
        let name = path
            .strip_prefix(&events_root)
            .unwrap()
            .to_string_lossy()
            .replace('/', "_");
        std::fs::copy(&path, if eset { &eset_dir } else { &others_dir }.join(name)).unwrap();
    }
    let sources = [
        data.join("feed-tweetfeed"),
        data.join("feed-infoblox"),
        eset_dir,
        others_dir,
    ];

    let mut setup = Setup {
        work: root.to_owned(),
        binaries: binaries_beside_tests(),
        institutions: Vec::new(),
        coordinator: None, // driven from this test
    };
    let mut institutions = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        let name = format!("node-{}", (b'a' + i as u8) as char);
        let set = concord_stats::load(source).unwrap();
        let orgs: Vec<String> = set
            .events
            .iter()
            .filter_map(|e| e.creator_uuid().map(str::to_owned))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut node = testbed::Institution::new(&name, source);
        node.organisation_uuids = orgs.clone();
        node.policy.min_institutions = 3;
        // node d does not take part in time-to-publish
        if i == 3 {
            node.policy.allowed_templates = TEMPLATES
                .iter()
                .map(|t| t.info().id.to_owned())
                .filter(|id| id != Template::TimeToPublish.info().id)
                .collect();
        } else {
            node.policy.allow_public_results = true;
        }
        // what each institution declares itself (the templates by sector)
        let (sector, kind) = [
            ("IT - Security", "CSIRT"),
            ("Finance", "ISAC"),
            ("IT - Security", "CSIRT"),
            ("Government, Administration", "government agency"),
        ][i];
        node.sector = Some(sector.into());
        node.organisation_type = Some(kind.into());
        // each institution's answers to the community survey
        let survey = concord_stats::generator::survey_answers(&name);
        node.survey = Some(survey.clone());
        setup.institutions.push(node);
        institutions.push((
            Institution {
                organisation_uuids: orgs,
                survey: Some(concord_stats::survey::parse(&survey).unwrap()),
                sector: Some(sector.into()),
                organisation_type: Some(kind.into()),
            },
            set.events,
        ));
    }
    // every node listens once its data is loaded
    let nodes = Testbed::start(&setup).unwrap_or_else(|e| panic!("{e}"));
    let deployment = nodes.deployment(Duration::from_secs(120), None).unwrap();
    let addresses = deployment.nodes.clone();
    let coordinator_cert = concord_api::pki::IssuedCertificate {
        certificate_pem: deployment.certificate_pem.clone(),
        key_pem: deployment.key_pem.clone(),
    };
    let ca = DevCa::load(root).unwrap();
    let store = Arc::new(QueryStore::open(&root.join("coordinator.redb")).unwrap());
    let mut coordinator = Coordinator::connect(&deployment, store.clone()).unwrap();

    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    // the researcher signs every query (nodes require it), recipient key included
    let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
    let alice_der = concord_api::submission::certificate_der(&alice.certificate_pem).unwrap();
    let unsigned = |template: &Template, min: u32| QuerySpec {
        template: template.info().id.into(),
        template_version: template.info().version,
        window_first: "2016-12".into(),
        window_months: 120,
        min_institutions: min,
        recipient_key: Vec::new(),
        signature: Vec::new(),
        // a training template's first round: every node's gradient at the model 0
        training: concord_api::v1::TrainingRound::first(template, 1),
        ..Default::default()
    };
    // signing stamps a fresh nonce and an expiry: the query id derives from the signed query
    let id_of = concord_api::submission::query_id;
    let signed = |mut spec: QuerySpec| {
        concord_api::submission::sign(&mut spec, &alice.key_pem).unwrap();
        spec
    };
    let spec = |template: &Template, min: u32| signed(unsigned(template, min));
    // the researcher's result keys, one per parameter set
    let researcher: HashMap<&'static str, SecretKey> = TEMPLATES
        .iter()
        .map(|t| {
            let set = concord_bfv::params::spec_by_name(t.parameter_set()).unwrap();
            (
                set.name,
                SecretKey::generate(&BfvParameters::new(set).unwrap()),
            )
        })
        .collect();
    let sealed_spec = |template: &Template, min: u32| {
        signed(QuerySpec {
            recipient_key: PublicKey::generate(&researcher[template.parameter_set()]).to_bytes(),
            ..unsigned(template, min)
        })
    };
    let mut ids = Vec::new();
    let mut specs = Vec::new();
    let q0_spec = sealed_spec(&TEMPLATES[0], 3);
    for (q, template) in TEMPLATES.iter().enumerate() {
        let spec = match q {
            0 => q0_spec.clone(),
            _ => sealed_spec(template, 3),
        };
        let query_id = id_of(&spec);
        ids.push(query_id.clone());
        specs.push(spec.clone());
        let result = coordinator.run_query(spec, &alice_der).await;
        if *template == Template::TimeToPublish {
            match result {
                Err(CoordinatorError::Refused { node, reason, .. }) => {
                    assert_eq!(node, "node-d");
                    assert!(reason.starts_with("template-not-allowed"), "{reason}");
                }
                other => panic!("node-d's refusal must stop time-to-publish: {other:?}"),
            }
            continue;
        }
        let outcome = result.unwrap_or_else(|e| panic!("{}: {e}", template.info().id));
        // sealed: the coordinator holds ciphertexts only the researcher's key opens
        assert!(outcome.cells.is_empty());
        let plan = QueryPlan::new(*template, window, 4).unwrap();
        let cells = open(
            &researcher[plan.layout.parameter_set],
            &plan,
            &outcome.sealed,
        );
        let expected = if template.is_overlap() {
            overlap_reference(root, &query_id, &plan, &window, &institutions)
        } else {
            pooled(*template, &window, &institutions)
        };
        assert_eq!(cells, expected, "{}", template.info().id);
        // what the coordinator stored is that same sealed result, and no other key opens it:
        // the coordinator holds no BFV secret at all, and a key it could make is just another
        let stored = store.sealed_result(&query_id).unwrap();
        assert_eq!(stored, outcome.sealed);
        let other = SecretKey::generate(&plan.params);
        let opened: Vec<_> = stored
            .iter()
            .map(|b| {
                other
                    .decrypt(&Ciphertext::from_bytes(&plan.params, b).unwrap())
                    .unwrap()
            })
            .collect();
        assert_ne!(plan.decode(&opened).unwrap(), expected);
        assert!(outcome.smudging_lambda >= 40.0);
        assert_eq!(outcome.contributors.len(), 4);
    }

    // training across the four node processes (docs/learning.md): rounds of train-to-ids, each
    // a query carrying the public model — logistic regression, then linear — each round's
    // release exactly the summed parts; the model equals the same rounds in the clear exactly,
    // and gradient descent on the pooled data within the fixed-point bound
    {
        use concord_stats::learning::{
            train_federated, train_pooled, Design, LocalGradient, Model, Objective, Sample,
            TrainConfig,
        };
        let template = Template::TrainToIds;
        let design = Design::new(template.training_label().unwrap());
        let plan = QueryPlan::new(template, window, 4).unwrap();
        let round_spec = |model: Vec<f64>, round: u32, config: &TrainConfig| {
            signed(QuerySpec {
                recipient_key: PublicKey::generate(&researcher[template.parameter_set()])
                    .to_bytes(),
                training: Some(concord_api::v1::TrainingRound {
                    model,
                    learning_rate: config.learning_rate,
                    scale_bits: config.scale_bits,
                    round,
                    rounds: config.rounds,
                    objective: config.objective.id().into(),
                }),
                ..unsigned(&template, 3)
            })
        };
        let parts: Vec<Vec<Sample>> = institutions
            .iter()
            .map(|(_, events)| design.samples(events, &window))
            .collect();
        let d = design.dimension();
        let linear = TrainConfig {
            rounds: 2,
            learning_rate: TrainConfig::max_learning_rate(Objective::Linear, d),
            scale_bits: 16,
            objective: Objective::Linear,
        };
        for config in [TrainConfig::standard(d, 4), linear] {
            let mut model = Model::start(&design, config).unwrap();
            for round in 0..config.rounds {
                let spec = round_spec(model.coefficients.clone(), round, &config);
                let (outcome, cells) =
                    run_sealed(&mut coordinator, spec, &alice_der, &researcher, &plan).await;
                // what the round reveals is the design's and nothing more: the slots of the
                // summed parts (samples, loss, the offset gradient), every other slot zero
                let mut expected = vec![0i64; plan.params.degree()];
                for samples in &parts {
                    let part = LocalGradient::compute(samples, &model.coefficients, &config);
                    let slots = plan.layout.to_slots(&part.values(&config).unwrap());
                    for (e, v) in expected.iter_mut().zip(slots) {
                        *e += v;
                    }
                }
                let sealed = Ciphertext::from_bytes(&plan.params, &outcome.sealed[0]).unwrap();
                let released = researcher[plan.layout.parameter_set]
                    .decrypt(&sealed)
                    .unwrap()
                    .decode();
                assert_eq!(outcome.sealed.len(), 1);
                assert_eq!(released, expected, "{:?} round {round}", config.objective);
                model
                    .step(&LocalGradient::from_cells(&cells, &config).unwrap())
                    .unwrap();
            }
            let slices: Vec<&[Sample]> = parts.iter().map(Vec::as_slice).collect();
            let clear = train_federated(&design, &slices, config).unwrap();
            assert_eq!(model.coefficients, clear.coefficients);
            let reference = train_pooled(&design, &parts.concat(), config).unwrap();
            let bound = config.divergence_bound(d);
            for (a, b) in model.coefficients.iter().zip(&reference.coefficients) {
                assert!(
                    (a - b).abs() <= bound,
                    "{:?}: federated {a}, pooled {b}, bound {bound}",
                    config.objective
                );
            }
            assert!(model.losses.last() < model.losses.first());
        }
        // a model that is not the design's (one coefficient short), or not finite, or a step
        // too large for linear regression: refused
        let logistic = TrainConfig::standard(d, 4);
        let short = round_spec(vec![0.0; d - 1], 0, &logistic);
        assert!(coordinator.run_query(short, &alice_der).await.is_err());
        let mut infinite = vec![0.0; d];
        infinite[2] = f64::INFINITY;
        let err = coordinator
            .run_query(round_spec(infinite, 0, &logistic), &alice_der)
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("coefficient 2 of the model is inf"),
            "{err}"
        );
        let too_fast = TrainConfig {
            objective: Objective::Linear,
            ..logistic
        };
        let err = coordinator
            .run_query(round_spec(vec![0.0; d], 0, &too_fast), &alice_der)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("learning rate"), "{err}");
    }

    // differential privacy with the attribute table (its unit: one attribute): the released
    // cells are the pooled statistic plus noise of the declared scale
    // (ε = 1, δ = 1e-6 over at least 3 institutions, sealed to alice)
    let dp_spec = |template: &Template| {
        signed(QuerySpec {
            epsilon: 1.0,
            delta: 1e-6,
            recipient_key: PublicKey::generate(&researcher[template.parameter_set()]).to_bytes(),
            ..unsigned(template, 3)
        })
    };
    let dp_plan = |template: Template| {
        QueryPlan::new(template, window, 4)
            .unwrap()
            .with_dp(1.0, 1e-6, 3)
            .unwrap()
    };
    let template = Template::AttributesByCategoryTypeToIds;
    let plan = dp_plan(template);
    let asked = dp_spec(&template);
    let (_, noisy) = run_sealed(&mut coordinator, asked, &alice_der, &researcher, &plan).await;
    let dp = plan.dp.as_ref().unwrap();
    let exact = pooled_counting(template, &window, &institutions, true);
    let errors: Vec<f64> = noisy
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b) as f64)
        .collect();
    assert!(errors.iter().all(|e| e.abs() <= 4.0 * dp.bound as f64));
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / errors.len() as f64).sqrt();
    // four contributions: σ² = 4·s²
    let sigma = dp.scale * 2.0;
    assert!(
        (0.75 * sigma..1.25 * sigma).contains(&rms),
        "rms {rms}, σ {sigma} over {} cells",
        errors.len()
    );

    // DP of an overlap histogram (its unit: one indicator held by one institution): the noise
    // is added at release, inside every sharing node's share, one sample per count
    let template = Template::IndicatorOverlap;
    let plan = dp_plan(template);
    let asked = dp_spec(&template);
    let dp_id = id_of(&asked);
    let (outcome, noisy) =
        run_sealed(&mut coordinator, asked, &alice_der, &researcher, &plan).await;
    let exact = overlap_reference(root, &dp_id, &plan, &window, &institutions);
    let bound = plan.dp.as_ref().unwrap().bound as i128;
    assert_eq!(outcome.shares_from.len(), 4);
    for (j, (a, b)) in noisy.iter().zip(&exact).enumerate() {
        if j < 4 {
            assert!((a - b).abs() <= 4 * bound, "j = {}: {a} vs {b}", j + 1);
        } else {
            assert_eq!((a, b), (&0, &0), "no institution count above 4");
        }
    }
    // four counts, each with four nodes' noise of σ ≈ 4.4: all four exact has probability
    // below 1e-5
    assert_ne!(noisy[..4], exact[..4], "the released counts carry noise");

    // DP of the indicators held (the same unit: one indicator held by one institution): each
    // node counts what it holds (received events too, not only those it created; here each
    // holds what it created) and adds its noise to its contribution
    let template = Template::IndicatorsHeld;
    let plan = dp_plan(template);
    let (_, noisy) = run_sealed(
        &mut coordinator,
        dp_spec(&template),
        &alice_der,
        &researcher,
        &plan,
    )
    .await;
    let held = pooled(template, &window, &institutions);
    let bound = plan.dp.as_ref().unwrap().bound as i128;
    for (group, (a, b)) in noisy.iter().zip(&held).enumerate() {
        assert!((a - b).abs() <= 4 * bound, "group {group}: {a} vs {b}");
    }
    assert_ne!(noisy, held, "the released counts carry noise");

    // an overlap query asking for its own number of bins — 32,768 (two ciphertexts) where the
    // template has 131,072: every node bins into the query's bins, and the histogram is the
    // one binned in the clear into as many
    let template = Template::IndicatorOverlap;
    let fewer_bins = signed(QuerySpec {
        bins: 32768,
        recipient_key: PublicKey::generate(&researcher[template.parameter_set()]).to_bytes(),
        ..unsigned(&template, 3)
    });
    let fewer_id = id_of(&fewer_bins);
    let plan = QueryPlan::new(template, window, 4)
        .unwrap()
        .with_bins(32768)
        .unwrap();
    assert_eq!(plan.ciphertexts(), 2);
    let (_, cells) = run_sealed(&mut coordinator, fewer_bins, &alice_der, &researcher, &plan).await;
    assert_eq!(
        cells,
        overlap_reference(root, &fewer_id, &plan, &window, &institutions)
    );

    // a result public to the community (CKS): node-d's policy does not allow it
    let public = spec(&Template::EventsByMonthTlpDistribution, 3);
    let public_id = id_of(&public);
    match coordinator.run_query(public, &alice_der).await {
        Err(CoordinatorError::Refused { node, reason, .. }) => {
            assert_eq!(node, "node-d");
            assert!(reason.starts_with("public-result-not-allowed"), "{reason}");
        }
        other => panic!("node-d's policy must stop a public result: {other:?}"),
    }

    // more institutions required than exist: every node refuses, nothing is computed
    match coordinator
        .run_query(spec(&Template::EventsByMonthTlpDistribution, 5), &alice_der)
        .await
    {
        Err(CoordinatorError::TooFewAgreed {
            agreed: 0,
            required: 5,
            refusals,
            ..
        }) => assert!(refusals.contains("too-few-institutions"), "{refusals}"),
        other => panic!("expected a refusal for too few institutions: {other:?}"),
    }

    // a query the researcher did not sign, one whose recipient key was swapped after signing
    // (a coordinator trying to read the result), and one whose model was: every node refuses
    // (swapped to a key of the query's own parameter set, as a coordinator would: a key of
    // another set is refused by the query's agreement before anything is proposed)
    let mut swapped = sealed_spec(&Template::EventsByMonthTlpDistribution, 3);
    let params = BfvParameters::new(
        concord_bfv::params::spec_by_name(Template::EventsByMonthTlpDistribution.parameter_set())
            .unwrap(),
    )
    .unwrap();
    swapped.recipient_key = PublicKey::generate(&SecretKey::generate(&params)).to_bytes();
    // a round of training whose model was changed after signing (a coordinator choosing the
    // point the gradient is taken at, to probe the data): still a valid round, and refused
    let mut probed = sealed_spec(&Template::TrainToIds, 3);
    let round = probed.training.as_mut().unwrap();
    round.model[1] = 3.0;
    for (id, query) in [
        (
            "q-unsigned",
            unsigned(&Template::EventsByMonthTlpDistribution, 3),
        ),
        ("q-swapped", swapped),
        ("q-probed", probed),
    ] {
        match coordinator.run_query(query, &alice_der).await {
            Err(CoordinatorError::TooFewAgreed {
                agreed: 0,
                refusals,
                ..
            }) => assert_eq!(refusals.matches("unsigned-query").count(), 4, "{refusals}"),
            other => panic!("{id}: every node must refuse: {other:?}"),
        }
    }

    // a released query is final: the coordinator serves it again from its store
    let again = coordinator
        .run_query(q0_spec.clone(), &alice_der)
        .await
        .unwrap();
    assert!(!again.sealed.is_empty());

    // a malicious coordinator, driving the nodes by hand with the coordinator's certificate
    let q0_commitments: Vec<Commitment> = store
        .commitments(&ids[0])
        .unwrap()
        .iter()
        .map(|b| Commitment::decode(b.as_slice()).unwrap())
        .collect();
    assert_eq!(q0_commitments.len(), 4);
    let pinned: [u8; 32] = store
        .collective_key(Template::EventsByMonthTlpDistribution.parameter_set())
        .unwrap()
        .unwrap()
        .deployment
        .try_into()
        .unwrap();
    let mut nodes = malicious::clients(&ca, &coordinator_cert, &addresses).await;
    let (evil, evil_2) = malicious_coordinator(
        &mut nodes,
        || sealed_spec(&Template::EventsByMonthTlpDistribution, 3),
        &q0_spec,
        &alice_der,
        pinned,
        &q0_commitments,
    )
    .await;
    // the same against an overlap query, on the multiplicative deployment: the output is the
    // circuit's, evaluated by each node from the sum it verified
    let overlap = TEMPLATES
        .iter()
        .position(|t| *t == Template::IndicatorOverlap)
        .unwrap();
    let overlap_commitments: Vec<Commitment> = store
        .commitments(&ids[overlap])
        .unwrap()
        .iter()
        .map(|b| Commitment::decode(b.as_slice()).unwrap())
        .collect();
    let multiplicative: [u8; 32] = store
        .collective_key(Template::IndicatorOverlap.parameter_set())
        .unwrap()
        .unwrap()
        .deployment
        .try_into()
        .unwrap();
    malicious_coordinator(
        &mut nodes,
        || sealed_spec(&Template::IndicatorOverlap, 3),
        &specs[overlap],
        &alice_der,
        multiplicative,
        &overlap_commitments,
    )
    .await;
    for name in ["node-a", "node-b", "node-c", "node-d"] {
        let audit =
            std::fs::read_to_string(root.join(format!("keys-{name}")).join("audit.jsonl")).unwrap();
        let events: Vec<serde_json::Value> = audit
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .collect();
        let count = |event: &str, query: &str| {
            events
                .iter()
                .filter(|e| e["event"] == event && e["query"] == query)
                .count()
        };
        assert_eq!(
            count("release", &evil),
            0,
            "{name}: nothing of q-evil released"
        );
        let unverified = events
            .iter()
            .filter(|e| e["event"] == "verification" && e["query"] == evil.as_str())
            .all(|e| e["verified"] == false);
        assert!(unverified, "{name}: no q-evil aggregate verified");
        assert!(
            count("refusal", &evil) + count("verification", &evil) >= 1,
            "{name}: refusals logged"
        );
        assert_eq!(count("roster", &evil), 1, "{name}: one roster signed");
        assert_eq!(count("release", &evil_2), 1, "{name}: released once");
        // every count from the pinned deployment: four parties give shares
        let release = events
            .iter()
            .find(|e| e["event"] == "release" && e["query"] == evil_2.as_str())
            .unwrap();
        assert_eq!(release["sharing_parties"], 4, "{name}");
    }

    // node-a counted its refusals after agreement by step and reason: in each of the two runs
    // of the malicious coordinator, one roster too short and four it could not verify
    let (code, metrics) = concord_system_tests::http_get(
        concord_system_tests::node_config(root, "node-a")
            .operations
            .unwrap()
            .listen,
        "/metrics",
    );
    assert_eq!(code, 200);
    let refusals = |labels: &str| {
        concord_system_tests::sample(&metrics, "concord_refusals_total", labels).unwrap_or(0.0)
    };
    assert_eq!(
        refusals("step=\"reveal\",reason=\"too-few-contributions\""),
        2.0,
        "{metrics}"
    );
    assert!(refusals("step=\"reveal\",reason=\"aggregate-not-verified\"") >= 8.0);
    // every refused call, by method and gRPC code (the reveals above, and more)
    let errors = concord_system_tests::sample(
        &metrics,
        "concord_grpc_errors_total",
        "method=\"/concord.v1.Node/Reveal\",code=\"FailedPrecondition\"",
    )
    .unwrap_or(0.0);
    assert!(errors >= 10.0, "{metrics}");

    // node-d's audit log: its refusals with their reasons, its verification, its release, the
    // refused replay
    let audit: Vec<serde_json::Value> =
        std::fs::read_to_string(root.join("keys-node-d").join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let find = |event: &str, query: &str| {
        audit
            .iter()
            .filter(|e| e["event"] == event && e["query"] == query)
            .collect::<Vec<_>>()
    };
    let refused = find("proposal", &ids[3]);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["agree"], false);
    assert_eq!(refused[0]["reason"], "template-not-allowed");
    assert_eq!(
        find("proposal", &public_id)[0]["reason"],
        "public-result-not-allowed"
    );
    let proposals = find("proposal", &ids[0]);
    assert_eq!(proposals.len(), 2);
    assert_eq!(proposals[0]["release"], "sealed");
    assert_eq!(proposals[1]["reason"], "query-id-reused");
    let contributions = find("contribution", &ids[0]);
    assert_eq!(contributions.len(), 1, "the replay contributed again");
    assert_eq!(contributions[0]["digest"].as_str().unwrap().len(), 64);
    let verified = find("verification", &ids[0]);
    assert_eq!(verified.len(), 1);
    assert_eq!(verified[0]["verified"], true);
    assert_eq!(verified[0]["contributors"].as_array().unwrap().len(), 4);
    let released = find("release", &ids[0]);
    assert_eq!(released.len(), 1);
    assert!(released[0]["kind"].as_str().unwrap().contains("PCKS"));

    // the log is hash-chained: `concord-node audit verify` vouches for it, and finds one
    // changed line (a refusal turned into an agreement)
    let log = root.join("keys-node-d").join("audit.jsonl");
    let verify = || {
        Command::new(concord_system_tests::bin("concord-node"))
            .args(["audit", "verify", "--log"])
            .arg(&log)
            .output()
            .unwrap()
    };
    let intact = verify();
    let report = String::from_utf8_lossy(&intact.stdout);
    assert!(intact.status.success(), "{report}");
    assert!(report.contains("chain intact"), "{report}");
    let text = std::fs::read_to_string(&log).unwrap();
    let at = text
        .lines()
        .position(|l| l.contains("\"template-not-allowed\""))
        .unwrap();
    let tampered: Vec<String> = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i == at {
                l.replace("\"agree\":false", "\"agree\":true")
            } else {
                l.to_owned()
            }
        })
        .collect();
    std::fs::write(&log, tampered.join("\n") + "\n").unwrap();
    let broken = verify();
    let report = String::from_utf8_lossy(&broken.stdout);
    assert_eq!(broken.status.code(), Some(2), "{report}");
    assert!(
        report.contains(&format!("BROKEN at line {}", at + 2)),
        "{report}"
    );
}
