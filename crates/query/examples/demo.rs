//! Concord end to end in one process, on MISP data from the project's generator: four
//! institutions each hold their own MISP feed; they set up collective keys; for every template
//! of the catalogue each computes its local statistic, encrypts it, and the aggregator sums the
//! contributions; the institutions key-switch the sum to the researcher's public key (PCKS), so
//! only the researcher reads the result. Prints the released tables and checks them against the
//! plaintext sums.
//!
//! `cargo run --release -p concord-query --example demo`
//!
//! (Nodes and coordinator as separate processes over gRPC/mTLS — `concord demo` — make the same
//! engine calls; they are the next milestone of issue 3.)

use concord_bfv::{BfvParameters, Ciphertext, PublicKey, SecretKey};
use concord_mhe::{
    CommonReferenceString, NoiseEstimate, PartyId, Protocol, PublicKeyGen, PublicKeySwitch,
    SmudgingPlan,
};
use concord_query::QueryPlan;
use concord_stats::catalogue::{DELAY_BUCKETS, DISTRIBUTIONS, TLP_LEVELS};
use concord_stats::generator::{organisation_uuid, write_feed, Profile};
use concord_stats::{load, Event, Institution, Template, Window, YearMonth, TEMPLATES};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const INSTITUTIONS: &[(&str, usize, f64)] = &[
    ("CERT-National", 400, 0.6),
    ("Finance-ISAC", 250, 0.2),
    ("Energy-CSIRT", 150, 0.35),
    ("University-CERT", 100, 0.1),
];

fn main() {
    let started = Instant::now();
    let first = YearMonth::parse("2025-01").unwrap();
    let window = Window::new(first, 12).unwrap();
    let work = tempfile::tempdir().expect("temporary directory");

    // Every institution's own MISP feed, read back through the real loader.
    let orgs: Vec<(String, String)> = INSTITUTIONS
        .iter()
        .map(|(name, ..)| (name.to_string(), organisation_uuid(name)))
        .chain(std::iter::once((
            "OSINT-Feed".to_string(),
            organisation_uuid("OSINT-Feed"),
        )))
        .collect();
    let mut holdings: Vec<(Institution, Vec<Event>)> = Vec::new();
    for (i, &(name, events, own_share)) in INSTITUTIONS.iter().enumerate() {
        let profile = Profile {
            name: name.into(),
            organisation_uuid: organisation_uuid(name),
            events,
            own_share,
            peers: orgs.iter().filter(|(n, _)| n != name).cloned().collect(),
            first,
            months: 12,
            seed: 1000 + i as u64,
        };
        let dir = work.path().join(name);
        write_feed(&dir, &profile).expect("write feed");
        let set = load(&dir).expect("load feed");
        assert!(set.report.errors.is_empty());
        holdings.push((
            Institution {
                organisation_uuids: vec![profile.organisation_uuid],
                survey: concord_stats::survey::parse(&concord_stats::generator::survey_answers(
                    name,
                ))
                .ok(),
                ..Default::default()
            },
            set.events,
        ));
    }
    let parties: Vec<PartyId> = (1..=INSTITUTIONS.len() as u32).map(PartyId).collect();
    println!("Concord demo — {} institutions, MISP feeds from the project's generator, window {first} + 12 months", parties.len());
    for ((name, ..), (_, events)) in INSTITUTIONS.iter().zip(&holdings) {
        println!("  {name:<16} {:>4} events", events.len());
    }

    // Setup, once per parameter set the catalogue uses: key shares stay with each institution.
    struct Setup {
        keys: Vec<SecretKey>,
        collective: PublicKey,
        researcher: SecretKey,
        researcher_pk: PublicKey,
    }
    let mut setups: HashMap<&'static str, Setup> = HashMap::new();
    let mut bytes_on_wire = 0usize;
    let mut all_exact = true;

    for template in TEMPLATES {
        if template.is_overlap() || template.training_label().is_some() {
            // bins under the nodes' binning key and a circuit under their relinearization
            // key: run over real node processes in tests/e2e.rs; a round of training carries
            // its model: tests/real_data.rs and the learning bench
            continue;
        }
        let plan = QueryPlan::new(*template, window, parties.len()).expect("plan");
        let params: Arc<BfvParameters> = plan.params.clone();
        let setup = setups.entry(plan.layout.parameter_set).or_insert_with(|| {
            let keys: Vec<SecretKey> = parties
                .iter()
                .map(|_| SecretKey::generate(&params))
                .collect();
            let ckg = PublicKeyGen::new(&params, &CommonReferenceString::random());
            let mut agg = ckg.aggregator();
            for (sk, &p) in keys.iter().zip(&parties) {
                let share = ckg.share(sk, p).unwrap();
                bytes_on_wire += share.serialized_len();
                agg.add(&share).unwrap();
            }
            let researcher = SecretKey::generate(&params);
            let researcher_pk = PublicKey::generate(&researcher);
            Setup {
                keys,
                collective: ckg.finish(&agg, &parties).unwrap(),
                researcher,
                researcher_pk,
            }
        });

        // Contributions: computed and encrypted at each institution; only ciphertexts travel.
        let mut expected = vec![0i128; plan.layout.cells()];
        let mut sum: Vec<Ciphertext> = Vec::new();
        for (institution, events) in &holdings {
            let stat = template.compute(&window, institution, events).unwrap();
            for (e, v) in expected.iter_mut().zip(&stat.values) {
                *e += *v as i128;
            }
            for (i, ct) in plan
                .encrypt(&setup.collective, &stat)
                .unwrap()
                .into_iter()
                .enumerate()
            {
                bytes_on_wire += ct.serialized_len();
                match sum.get_mut(i) {
                    Some(s) => s.add_assign(&ct).unwrap(),
                    None => sum.push(ct),
                }
            }
        }

        // Release: key switching to the researcher; the aggregator never sees the result.
        let n = parties.len();
        let smudging =
            SmudgingPlan::for_key_switch(&params, NoiseEstimate::aggregate(&params, n, n), n)
                .unwrap();
        let plaintexts: Vec<_> = sum
            .iter()
            .map(|ct| {
                let pcks = PublicKeySwitch::new(ct, &setup.researcher_pk, smudging).unwrap();
                let mut agg = pcks.aggregator();
                for (sk, &p) in setup.keys.iter().zip(&parties) {
                    let share = pcks.share(sk, p).unwrap();
                    bytes_on_wire += share.serialized_len();
                    agg.add(&share).unwrap();
                }
                setup
                    .researcher
                    .decrypt(&pcks.finish(&agg, &parties).unwrap())
                    .unwrap()
            })
            .collect();
        let cells = plan.decode(&plaintexts).unwrap();
        let exact = cells == expected;
        all_exact &= exact;

        let info = template.info();
        println!("\n{} v{} — {}", info.id, info.version, info.question);
        print_result(*template, &plan.layout, &cells);
        println!(
            "  [{} ciphertext(s) of set {}, smudging λ = {:.1} bits; equals the plaintext sum: {}]",
            plan.ciphertexts(),
            params.name(),
            smudging.lambda,
            if exact { "yes" } else { "NO" }
        );
    }
    println!(
        "\n{} KB on the wire in all (setup, contributions, key-switch shares); {:.2} s",
        bytes_on_wire / 1000,
        started.elapsed().as_secs_f64()
    );
    if !all_exact {
        std::process::exit(1);
    }
}

fn print_result(template: Template, layout: &concord_stats::Layout, cells: &[i128]) {
    match template {
        Template::EventsByMonthTlpDistribution => {
            // collapse months: TLP × distribution over the window
            print!("  {:<13}", "TLP \\ dist.");
            for d in DISTRIBUTIONS {
                print!("{:>14}", d);
            }
            println!();
            for (t, tlp) in TLP_LEVELS.iter().enumerate() {
                print!("  {tlp:<13}");
                for d in 0..DISTRIBUTIONS.len() {
                    let total: i128 = cells
                        .chunks(TLP_LEVELS.len() * DISTRIBUTIONS.len())
                        .map(|m| m[t * DISTRIBUTIONS.len() + d])
                        .sum();
                    print!("{total:>14}");
                }
                println!();
            }
        }
        Template::AttributesByCategoryTypeToIds => {
            let mut pairs: Vec<(usize, i128, i128)> = cells
                .chunks(2)
                .enumerate()
                .map(|(i, c)| (i, c[0], c[1]))
                .collect();
            pairs.sort_by_key(|&(_, a, b)| std::cmp::Reverse(a + b));
            let table = concord_stats::describe_types::CATEGORY_TYPES;
            println!(
                "  {:<48} {:>8} {:>8}",
                "category / type (top 8)", "to_ids", "other"
            );
            for (i, other, ids) in pairs.into_iter().take(8) {
                let label = table
                    .get(i)
                    .map(|(c, t)| format!("{c} / {t}"))
                    .unwrap_or_else(|| "other".into());
                println!("  {label:<48} {ids:>8} {other:>8}");
            }
        }
        Template::AttributesByMonthCategoryTypeToIds => {
            let row = cells.len() / layout.dimensions[0].labels.len();
            println!("  {:<8} {:>10} {:>10}", "month", "attributes", "to_ids");
            for (month, cells) in layout.dimensions[0].labels.iter().zip(cells.chunks(row)) {
                let all: i128 = cells.iter().sum();
                let ids: i128 = cells.iter().skip(1).step_by(2).sum();
                if all > 0 {
                    println!("  {month:<8} {all:>10} {ids:>10}");
                }
            }
        }
        Template::ProducerVsReceiverByMonth => {
            println!(
                "  {:<8} {:>9} {:>9} {:>9}",
                "month", "produced", "received", "unknown"
            );
            for (month, row) in layout.dimensions[0].labels.iter().zip(cells.chunks(3)) {
                println!("  {month:<8} {:>9} {:>9} {:>9}", row[0], row[1], row[2]);
            }
        }
        Template::TimeToPublish => {
            for (label, v) in DELAY_BUCKETS.iter().zip(cells) {
                println!("  {label:<22} {v:>6}");
            }
            let n = DELAY_BUCKETS.len();
            let (count, sum, sumsq) = (cells[n] as f64, cells[n + 1] as f64, cells[n + 2] as f64);
            let mean = sum / count;
            println!("  mean delay {mean:.1} days, standard deviation {:.1} days, over {count} published events", (sumsq / count - mean * mean).max(0.0).sqrt());
        }
        Template::AttributesPerEvent => {
            for (label, v) in layout.dimensions[0].labels.iter().zip(cells) {
                println!("  {label:<16} {v:>6}");
            }
            let n = layout.table_cells();
            let (count, sum, sumsq) = (cells[n] as f64, cells[n + 1] as f64, cells[n + 2] as f64);
            let mean = sum / count;
            println!("  mean {mean:.1} attributes per event, standard deviation {:.1}, over {count} events", (sumsq / count - mean * mean).max(0.0).sqrt());
        }
        Template::EventsByMonthThreatLevel => {
            println!(
                "  {:<8} {:>6} {:>6} {:>6} {:>9} {:>7}",
                "month", "high", "medium", "low", "undefined", "unknown"
            );
            for (month, row) in layout.dimensions[0].labels.iter().zip(cells.chunks(5)) {
                println!(
                    "  {month:<8} {:>6} {:>6} {:>6} {:>9} {:>7}",
                    row[0], row[1], row[2], row[3], row[4]
                );
            }
        }
        Template::SurveySharingMotivations => {
            for (label, v) in layout.dimensions[0].labels.iter().zip(cells) {
                println!("  {label:<50} {v:>3}");
            }
        }
        // the rest: every non-zero cell, labelled
        _ => {
            let table = layout.table_cells();
            let mut shown = 0;
            for (i, &v) in cells[..table].iter().enumerate().filter(|(_, &v)| v != 0) {
                let mut rest = i;
                let mut labels = Vec::new();
                for d in layout.dimensions.iter().rev() {
                    labels.push(d.labels[rest % d.labels.len()].as_str());
                    rest /= d.labels.len();
                }
                labels.reverse();
                if shown < 12 {
                    println!("  {:<60} {v:>8}", labels.join(" · "));
                }
                shown += 1;
            }
            if shown > 12 {
                println!("  … {} more non-zero cells", shown - 12);
            }
            for (cell, v) in layout.summary.iter().zip(&cells[table..]) {
                println!("  {:<60} {v:>8}", cell.name);
            }
        }
    }
}
