//! Federated logistic regression at SPINDLE's scale (Froelicher et al., PETS 2021: one million
//! samples with 32 features among 160 data providers, trained in under three minutes on their
//! cluster), the providers simulated in one process (issue 19): every round as Concord runs it
//! (docs/learning.md) — each provider's fixed-point gradient at the public model
//! (`concord-stats` `learning::LocalGradient`), encoded in the cells of `learning::layout` and
//! encrypted under the collective key of 160 parties, the sum, one PCKS share per provider to
//! the researcher, the researcher's decryption and step — with the bytes each message would
//! carry and the time each role spends. The parameter set is the one a round's query plan takes
//! for that many institutions (`concord-query` `QueryPlan`): `ADD-8192-T33` up to 153,
//! `ADD-8192-T33-Q120` above (160 providers).
//!
//! ```sh
//! cargo bench -p concord-benches --bench learning -- [--providers 160] [--samples 1000000] \
//!     [--rounds 5]
//! ```
//!
//! **Data.** 32 features in `[0, 1]` and the intercept per sample (the 33 coefficients of
//! `Design::new(Label::FalsePositive)`, the design with every feature), drawn uniformly; labels
//! drawn from a logistic model with fixed random coefficients. **Checks.** The model trained
//! through encryption equals `learning::train_federated` (the same rounds summed in the
//! clear) exactly, and is within `TrainConfig::divergence_bound` of `train_pooled`.

use concord_benches::{human, simulated_community, usage};
use concord_bfv::{Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange};
use concord_mhe::protocol::Protocol;
use concord_mhe::{KeySwitchShare, NoiseEstimate, PartyId, PublicKeySwitch, SmudgingPlan};
use concord_query::QueryPlan;
use concord_stats::learning::{
    sigmoid, train_federated, train_pooled, Design, Label, LocalGradient, Model, Objective, Sample,
    TrainConfig,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::time::{Duration, Instant};

struct Args {
    providers: usize,
    samples: usize,
    rounds: u32,
}

fn args() -> Args {
    let mut a = Args {
        providers: 160,
        samples: 1_000_000,
        rounds: 5,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        let number = || -> usize {
            value
                .parse()
                .unwrap_or_else(|_| panic!("{} takes a number, not {value:?}", argv[i]))
        };
        match argv[i].as_str() {
            "--providers" => a.providers = number(),
            "--samples" => a.samples = number(),
            "--rounds" => a.rounds = number() as u32,
            // cargo bench passes --bench
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn uniform(rng: &mut ChaCha20Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Each provider's samples: the intercept and `d − 1` uniform features, labels from a logistic
/// model with coefficients in `[−2, 2]`.
fn data(providers: usize, samples: usize, d: usize) -> Vec<Vec<Sample>> {
    let mut rng = ChaCha20Rng::seed_from_u64(19);
    let truth: Vec<f64> = (0..d).map(|_| 4.0 * uniform(&mut rng) - 2.0).collect();
    (0..providers)
        .map(|p| {
            let count = samples / providers + usize::from(p < samples % providers);
            (0..count)
                .map(|_| {
                    let mut x = vec![1.0];
                    x.extend((1..d).map(|_| uniform(&mut rng)));
                    let z: f64 = truth.iter().zip(&x).map(|(w, v)| w * v).sum();
                    let y = uniform(&mut rng) < sigmoid(z);
                    Sample { x, y }
                })
                .collect()
        })
        .collect()
}

fn mb(bytes: usize) -> String {
    format!("{:.2} MB", bytes as f64 / 1e6)
}

fn main() {
    let a = args();
    let design = Design::new(Label::FalsePositive);
    let d = design.dimension();
    // a round's plan for this many institutions: its cells and its parameter set
    let window =
        concord_stats::Window::new(concord_stats::YearMonth::parse("2025-01").unwrap(), 12)
            .unwrap();
    let plan = QueryPlan::new(
        concord_stats::Template::TrainFalsePositive,
        window,
        a.providers,
    )
    .unwrap_or_else(|e| {
        eprintln!("a round for {} providers: {e}", a.providers);
        std::process::exit(2)
    });
    let cells = plan.layout.clone();
    let params = plan.params.clone();
    let spec = params.spec();
    let config = TrainConfig {
        rounds: a.rounds,
        learning_rate: TrainConfig::max_learning_rate(Objective::Logistic, d),
        scale_bits: 16,
        objective: Objective::Logistic,
    };
    println!(
        "federated logistic regression: {} providers, {} samples, {} coefficients ({} features and the intercept), {} rounds, η = {:.3}, scale 2^{} under {}",
        a.providers,
        a.samples,
        d,
        d - 1,
        a.rounds,
        config.learning_rate,
        config.scale_bits,
        spec.name
    );
    let start = Instant::now();
    let parts = data(a.providers, a.samples, d);
    println!("data drawn in {}", human(start.elapsed().as_nanos() as f64));

    // setup: the collective key of every provider, every share serialized
    let start = Instant::now();
    let parties: Vec<PartyId> = (1..=a.providers as u32).map(PartyId).collect();
    let (keys, pk, ckg_share) = simulated_community(&params, &parties);
    let researcher = SecretKey::generate(&params);
    let researcher_pk = PublicKey::generate(&researcher);
    let setup = start.elapsed();

    // the release as a node plans it (the plan's set reaches 40 bits for this many)
    let smudging = SmudgingPlan::for_key_switch(
        &params,
        NoiseEstimate::aggregate(&params, a.providers, a.providers),
        a.providers,
    )
    .unwrap_or_else(|e| {
        eprintln!(
            "{} cannot release the sum of {} providers' contributions by {} key-switch shares: {e}",
            spec.name, a.providers, a.providers
        );
        std::process::exit(2)
    });
    let range = ValueRange::counts(cells.slot_bound());
    let mut model = Model::start(&design, config).unwrap();
    let (mut local, mut encrypt, mut aggregate, mut share, mut open) = (
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
        Duration::ZERO,
    );
    let (mut contribution_bytes, mut share_bytes, mut sealed_bytes) = (0, 0, 0);
    let rounds_started = Instant::now();
    for _ in 0..a.rounds {
        // each provider: its gradient at the public model, encrypted
        let mut sum: Option<Ciphertext> = None;
        for samples in &parts {
            let t = Instant::now();
            let part = LocalGradient::compute(samples, &model.coefficients, &config);
            let slots = cells.to_slots(&part.values(&config).unwrap());
            local += t.elapsed();
            let t = Instant::now();
            let mut ct = pk
                .encrypt(&Plaintext::encode(&params, &slots, range).unwrap())
                .unwrap();
            ct.switch_to_transmit_level().unwrap();
            let bytes = ct.to_bytes();
            encrypt += t.elapsed();
            contribution_bytes = bytes.len();
            // the coordinator: the sum as contributions arrive
            let t = Instant::now();
            let ct = Ciphertext::from_bytes(&params, &bytes).unwrap();
            match &mut sum {
                Some(s) => s.add_assign(&ct).unwrap(),
                slot => *slot = Some(ct),
            }
            aggregate += t.elapsed();
        }
        let sum = sum.unwrap();
        // every provider's PCKS share to the researcher
        let pcks = PublicKeySwitch::new(&sum, &researcher_pk, smudging).unwrap();
        let mut combined = pcks.aggregator();
        for (sk, &p) in keys.iter().zip(&parties) {
            let t = Instant::now();
            let bytes = pcks.share(sk, p).unwrap().to_bytes();
            share += t.elapsed();
            share_bytes = bytes.len();
            let t = Instant::now();
            combined
                .add(&KeySwitchShare::from_bytes(&params, &bytes).unwrap())
                .unwrap();
            aggregate += t.elapsed();
        }
        let t = Instant::now();
        let sealed = pcks.finish(&combined, &parties).unwrap();
        aggregate += t.elapsed();
        sealed_bytes = sealed.serialized_len();
        // the researcher: open, decode, step
        let t = Instant::now();
        let slots = researcher.decrypt(&sealed).unwrap().decode();
        let released = cells.from_slots(&slots).unwrap();
        let round = LocalGradient::from_cells(&released, &config).unwrap();
        model.step(&round).unwrap();
        open += t.elapsed();
    }
    let rounds_time = rounds_started.elapsed();

    // the same rounds in the clear: equal exactly; the pooled descent within the bound
    let slices: Vec<&[Sample]> = parts.iter().map(Vec::as_slice).collect();
    let clear = train_federated(&design, &slices, config).unwrap();
    assert_eq!(
        model.coefficients, clear.coefficients,
        "the encrypted rounds are the clear ones"
    );
    let pooled: Vec<Sample> = parts.iter().flatten().cloned().collect();
    let reference = train_pooled(&design, &pooled, config).unwrap();
    let bound = config.divergence_bound(d);
    let largest = model
        .coefficients
        .iter()
        .zip(&reference.coefficients)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    assert!(largest <= bound, "{largest} above the bound {bound}");

    let per_round = |t: Duration| human(t.as_nanos() as f64 / a.rounds as f64);
    let per_provider_round =
        |t: Duration| human(t.as_nanos() as f64 / a.rounds as f64 / a.providers as f64);
    println!();
    println!(
        "setup (CKG, {} parties)            {:>10}  each sends {}",
        a.providers,
        human(setup.as_nanos() as f64),
        mb(ckg_share)
    );
    println!(
        "per round, all roles             {:>10}  ({} rounds in {})",
        per_round(rounds_time),
        a.rounds,
        human(rounds_time.as_nanos() as f64)
    );
    println!(
        "  provider: local gradient       {:>10}  per provider ({} samples each)",
        per_provider_round(local),
        a.samples / a.providers
    );
    println!(
        "  provider: encrypt              {:>10}  per provider; sends {} per round",
        per_provider_round(encrypt),
        mb(contribution_bytes)
    );
    println!(
        "  provider: PCKS share           {:>10}  per provider; sends {} per round (λ = {:.1} bits)",
        per_provider_round(share),
        mb(share_bytes),
        smudging.lambda
    );
    println!(
        "  coordinator: sum and combine   {:>10}  per round; receives {} per round, sends {} (the sealed gradient)",
        per_round(aggregate),
        mb((contribution_bytes + share_bytes) * a.providers),
        mb(sealed_bytes)
    );
    println!(
        "  researcher: open and step      {:>10}  per round",
        per_round(open)
    );
    println!(
        "model: loss {:.4} → {:.4}; equal to the rounds in the clear; largest distance to pooled descent {largest:.2e} (bound {bound:.2e})",
        model.losses[0],
        model.losses.last().unwrap()
    );
    let me = usage(std::process::id());
    println!(
        "process: peak memory {:.2} GB, CPU {:.1} s (every provider simulated in it, one thread)",
        me.peak_kib as f64 / 1e6 * 1.024,
        me.cpu.as_secs_f64()
    );
    println!(
        "SPINDLE (PETS 2021): 1,000,000 samples × 32 features × 160 providers trained in under 3 minutes on their cluster (a figure recorded from the paper, not measured here)"
    );
}
