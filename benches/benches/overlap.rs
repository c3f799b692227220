//! Indicator overlap at SACTI's target scale (TNO's SACTI: 100 participants × 10,000
//! indicators each, stated as a target, not demonstrated), the institutions simulated in one
//! process (issue 18): every step of one `indicator-overlap` query as Concord's protocol runs it,
//! on the engine, with the bytes each message would carry and the time each role spends.
//!
//! ```sh
//! cargo bench -p concord-benches --bench overlap -- [--institutions 100] [--indicators 10000] \
//!     [--pool 100000] [--bins 1048576] [--set MUL-32768-T26]
//! ```
//!
//! **Data.** Each institution holds `--indicators` distinct indicators drawn from a pool of
//! `--pool` with Zipf(1) popularity (feeds share the popular indicators and differ in the long
//! tail), a third each domains, IPv4 addresses and SHA-256 hashes, normalised and digested by
//! `concord-stats` `indicators` and binned by `overlap::Bins` under a binning key, exactly as a
//! node bins them.
//!
//! **Steps** (DESIGN.md; docs/overlap.md): collective public key (CKG) and relinearization key
//! (RKG, two rounds); each institution encrypts its presence bits (`C = bins / N` ciphertexts);
//! the sums; the circuit `value_counts` (the `n + 1` equality indicators of the sum, degree `n`);
//! the `n` counts released by one PCKS share per institution (their constant coefficients
//! alone), opened by the researcher. The released histogram is checked against the plain one
//! (bins summed in the clear) — exactly — and against the exact distinct-indicator histogram
//! (the difference is the merges the report predicts).
//!
//! **Per role.** In Concord every node re-sums the contributions and evaluates the circuit
//! itself before it gives its share (it never decrypts what the coordinator computed), and takes
//! every party's signed round-one RKG share rather than their sum: the report gives those costs
//! per node as measured here once (each node's run is the same computation).

use concord_benches::{human, simulated_community, usage};
use concord_bfv::params::{self, BfvParameters};
use concord_bfv::{Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange};
use concord_mhe::protocol::Protocol;
use concord_mhe::{
    CommonReferenceString, EvaluationKeyAggregate, EvaluationKeyShare, KeySwitchShare,
    NoiseEstimate, PartyId, PublicKeySwitch, RelinearizationKeyGen, SmudgingPlan,
};
use concord_stats::indicators::{indicators, IndicatorDigest};
use concord_stats::overlap::{estimated_distinct, merge_rate, BinningKey, Bins};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

struct Args {
    institutions: usize,
    indicators: usize,
    pool: usize,
    bins: Option<usize>,
    set: String,
}

fn args() -> Args {
    let mut a = Args {
        institutions: 100,
        indicators: 10_000,
        pool: 100_000,
        bins: None,
        set: "MUL-32768-T26".into(),
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
            "--institutions" => a.institutions = number(),
            "--indicators" => a.indicators = number(),
            "--pool" => a.pool = number(),
            "--bins" => a.bins = Some(number()),
            "--set" => a.set = value.clone(),
            // cargo bench passes --bench
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    assert!(
        a.indicators <= a.pool,
        "--indicators above --pool: an institution holds distinct indicators of the pool"
    );
    a
}

/// Indicator `rank` of the pool, as a MISP attribute would carry it (type, value).
fn attribute(rank: usize) -> (&'static str, String) {
    match rank % 3 {
        0 => ("domain", format!("i{rank}.Example.ORG")),
        1 => (
            "ip-dst",
            format!("10.{}.{}.{}", rank >> 16 & 255, rank >> 8 & 255, rank & 255),
        ),
        _ => (
            "sha256",
            format!("{:064X}", rank as u128 * 0x9e37_79b9_7f4a_7c15),
        ),
    }
}

/// Each institution's distinct indicators: `count` ranks drawn by Zipf(1) over `pool`.
fn institutions(n: usize, count: usize, pool: usize) -> Vec<Vec<IndicatorDigest>> {
    let mut cdf = Vec::with_capacity(pool);
    let mut total = 0.0;
    for r in 0..pool {
        total += 1.0 / (r + 1) as f64;
        cdf.push(total);
    }
    let digests: Vec<IndicatorDigest> = (0..pool)
        .map(|r| {
            let (kind, value) = attribute(r);
            indicators(kind, &value)[0].digest()
        })
        .collect();
    let mut rng = ChaCha20Rng::seed_from_u64(18);
    (0..n)
        .map(|_| {
            let mut held = BTreeSet::new();
            while held.len() < count {
                let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
                held.insert(cdf.partition_point(|&c| c < u).min(pool - 1));
            }
            held.into_iter().map(|r| digests[r]).collect()
        })
        .collect()
}

fn mb(bytes: usize) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn main() {
    let a = args();
    let spec = params::spec_by_name(&a.set).unwrap_or_else(|| panic!("no parameter set {}", a.set));
    let params = BfvParameters::new(spec).unwrap();
    let n = params.degree();
    let bins = Bins {
        per_group: a.bins.unwrap_or(32 * n),
        by_group: false,
    };
    assert!(
        bins.per_group.is_multiple_of(n),
        "--bins: a multiple of N = {n}"
    );
    let ciphertexts = bins.per_group / n;
    let parties: Vec<PartyId> = (1..=a.institutions as u32).map(PartyId).collect();
    let mut phases: Vec<(&str, Duration, String)> = Vec::new();
    println!(
        "indicator overlap: {} institutions × {} indicators (Zipf(1) over a pool of {}), {} bins = {ciphertexts} ciphertexts of {} under {}",
        a.institutions, a.indicators, a.pool, bins.per_group, n, spec.name
    );

    // the data, and the histograms in the clear
    let start = Instant::now();
    let held = institutions(a.institutions, a.indicators, a.pool);
    let key = BinningKey::new([7; 32]).for_query("q-overlap-bench");
    let mut sums = vec![0u32; bins.total()];
    let mut holders: BTreeMap<IndicatorDigest, usize> = BTreeMap::new();
    let presence: Vec<Vec<i64>> = held
        .iter()
        .map(|digests| {
            let mut bits = vec![0i64; bins.total()];
            for d in digests {
                bits[bins.bin(&key, d)] = 1;
                *holders.entry(*d).or_default() += 1;
            }
            for (s, &b) in sums.iter_mut().zip(&bits) {
                *s += b as u32;
            }
            bits
        })
        .collect();
    let binned = concord_stats::overlap::histogram(&sums, &bins, a.institutions);
    let mut exact = vec![0u64; a.institutions];
    for &j in holders.values() {
        exact[j - 1] += 1;
    }
    let distinct = holders.len();
    phases.push((
        "data: draw, normalise, digest, bin (all institutions)",
        start.elapsed(),
        format!(
            "{distinct} distinct indicators; merge rate {:.2}% predicted",
            100.0 * merge_rate(distinct as f64, bins.per_group as u64)
        ),
    ));

    // keys: CKG and RKG, every share serialized as it travels
    let start = Instant::now();
    let (keys, pk, ckg_share) = simulated_community(&params, &parties);
    let crs = CommonReferenceString::random();
    let gen = RelinearizationKeyGen::new(&params, &crs).unwrap();
    let mut round_one = gen.round_one_aggregator();
    let mut ephemeral = Vec::new();
    let mut r1_share = 0;
    let mut per_party_keygen = Duration::ZERO;
    for (sk, &p) in keys.iter().zip(&parties) {
        let t = Instant::now();
        let (u, share) = gen.round_one(sk, p).unwrap();
        let bytes = share.to_bytes();
        per_party_keygen += t.elapsed();
        r1_share = bytes.len();
        round_one
            .add(&EvaluationKeyShare::from_bytes(&params, &bytes).unwrap())
            .unwrap();
        ephemeral.push(u);
    }
    let round_one = EvaluationKeyAggregate::from_bytes(&params, &round_one.to_bytes()).unwrap();
    let mut round_two = gen.round_two_aggregator(&round_one).unwrap();
    let mut r2_share = 0;
    for ((sk, &p), u) in keys.iter().zip(&parties).zip(&ephemeral) {
        let t = Instant::now();
        let share = gen.round_two(sk, u, &round_one, p).unwrap();
        let bytes = share.to_bytes();
        per_party_keygen += t.elapsed();
        r2_share = bytes.len();
        round_two
            .add(&EvaluationKeyShare::from_bytes(&params, &bytes).unwrap())
            .unwrap();
    }
    drop(ephemeral);
    let rlk = gen.finish(&round_one, &round_two, &parties).unwrap();
    let keys_time = start.elapsed();
    phases.push((
        "setup: CKG + RKG (two rounds), all parties and the aggregation",
        keys_time,
        format!(
            "per institution: {} of its own shares' work; sends {} (CKG) + {} + {} (RKG); receives {} (every party's signed round-one share, summed itself)",
            human(per_party_keygen.as_nanos() as f64 / a.institutions as f64),
            mb(ckg_share),
            mb(r1_share),
            mb(r2_share),
            mb(r1_share * a.institutions),
        ),
    ));

    // contributions: each institution encrypts its presence bits; the sums as they arrive
    let start = Instant::now();
    let mut sum: Vec<Option<Ciphertext>> = vec![None; ciphertexts];
    let mut contribution = 0;
    for bits in &presence {
        for (c, chunk) in bits.chunks(n).enumerate() {
            let pt = Plaintext::encode(&params, chunk, ValueRange::counts(1)).unwrap();
            let mut ct = pk.encrypt(&pt).unwrap();
            ct.switch_to_transmit_level().unwrap();
            contribution += ct.serialized_len();
            match &mut sum[c] {
                Some(s) => s.add_assign(&ct).unwrap(),
                slot => *slot = Some(ct),
            }
        }
    }
    drop(presence);
    let sum: Vec<Ciphertext> = sum.into_iter().map(Option::unwrap).collect();
    let encrypt_time = start.elapsed();
    let per_institution = contribution / a.institutions;
    phases.push((
        "contribution: encrypt + sum (all institutions)",
        encrypt_time,
        format!(
            "per institution {} to encrypt, {} sent; each node receives every contribution to re-sum them: {}",
            human(encrypt_time.as_nanos() as f64 / a.institutions as f64),
            mb(per_institution),
            mb(contribution)
        ),
    ));

    // the circuit, as every node (and the coordinator) evaluates it
    let start = Instant::now();
    let institutions = a.institutions as i64;
    let counts = Ciphertext::value_counts(&sum, 0..=institutions, 1..=institutions, &rlk).unwrap();
    let circuit = start.elapsed();
    phases.push((
        "circuit: value_counts (n + 1 equality indicators, degree n)",
        circuit,
        format!(
            "at every node and the coordinator: {} per ciphertext of bins, {} powers each",
            human(circuit.as_nanos() as f64 / ciphertexts as f64),
            a.institutions
        ),
    ));

    // release: one PCKS share of the constant coefficients per institution
    let start = Instant::now();
    let model = NoiseEstimate::aggregate(&params, a.institutions, a.institutions).value_counted(
        &params,
        a.institutions,
        a.institutions + 1,
        ciphertexts,
    );
    let plan = SmudgingPlan::for_key_switch_at_lowest_level(
        &params,
        model,
        a.institutions,
        a.institutions,
    )
    .unwrap();
    let at_plan: Vec<Ciphertext> = counts
        .into_iter()
        .map(|mut ct| {
            ct.switch_to_level(plan.level).unwrap();
            ct
        })
        .collect();
    let receiver = SecretKey::generate(&params);
    let receiver_pk = PublicKey::generate(&receiver);
    let pcks = PublicKeySwitch::constants(&at_plan, &receiver_pk, plan).unwrap();
    let mut agg = pcks.aggregator();
    let mut share_bytes = 0;
    let mut share_time = Duration::ZERO;
    for (sk, &p) in keys.iter().zip(&parties) {
        let t = Instant::now();
        let bytes = pcks.share(sk, p).unwrap().to_bytes();
        share_time += t.elapsed();
        share_bytes = bytes.len();
        agg.add(&KeySwitchShare::from_bytes(&params, &bytes).unwrap())
            .unwrap();
    }
    let sealed = pcks.finish(&agg, &parties).unwrap();
    let released = receiver.decrypt(&sealed).unwrap();
    let release_time = start.elapsed();
    phases.push((
        "release: PCKS of the constant coefficients + the researcher's decryption",
        release_time,
        format!(
            "per institution {} for its share of {} ({} counts, λ = {:.1} bits at level {}); the sealed result {}",
            human(share_time.as_nanos() as f64 / a.institutions as f64),
            mb(share_bytes),
            a.institutions,
            plan.lambda,
            plan.level,
            mb(sealed.serialized_len())
        ),
    ));

    // exactly the plain histogram of the binned sums
    let histogram: Vec<u64> = released.coefficients()[..a.institutions].to_vec();
    assert_eq!(histogram, binned, "the released histogram is the plain one");
    let occupied: u64 = histogram.iter().sum();

    println!();
    for (phase, time, detail) in &phases {
        println!(
            "{phase:<72} {:>10}  {detail}",
            human(time.as_nanos() as f64)
        );
    }
    let me = usage(std::process::id());
    println!(
        "\npeak memory of the process (every party simulated in it): {:.2} GB; CPU {:.1} s",
        me.peak_kib as f64 / 1e6 * 1.024,
        me.cpu.as_secs_f64()
    );
    println!(
        "released histogram = the plain one over the bins (exact). Exact distinct-indicator histogram beside it (the difference: merges):"
    );
    let shown: Vec<usize> = (1..=a.institutions)
        .filter(|j| exact[j - 1] > 0 || histogram[j - 1] > 0)
        .collect();
    for chunk in shown.chunks(10) {
        let cells: Vec<String> = chunk
            .iter()
            .map(|&j| format!("{j}: {}/{}", histogram[j - 1], exact[j - 1]))
            .collect();
        println!("  {}", cells.join("  "));
    }
    println!(
        "occupied bins {occupied} of {}; estimated distinct {:.0} (exact {distinct}); merge rate {:.2}% predicted from the estimate",
        bins.per_group,
        estimated_distinct(occupied, bins.per_group as u64).unwrap_or(f64::NAN),
        100.0 * merge_rate(
            estimated_distinct(occupied, bins.per_group as u64).unwrap_or(f64::NAN),
            bins.per_group as u64
        )
    );
}
