//! The W16 workload: 16 parties, N = 8192, t = 65537 (Concord's `ADD-8192` set), measured step by
//! step with criterion, then printed as a table — beside the `fhe` crate's multiparty BFV (`mbfv`)
//! in the same run when built with `--features peers`, and beside Lattigo v5's (and, where the
//! engine issues give them, OpenFHE's) figures for this machine kind (from the engine issues;
//! not re-measured here).
//!
//! Part 2 (engine part 2): 16 parties at N = 16384 (`MUL-16384`): the joint relinearization key
//! (both RKG rounds, every share, aggregation), multiply + relinearize, a row rotation, the
//! inner sum, and the equality test for n = 16 — one indicator `x = j` (Paterson–Stockmeyer on
//! its degree-16 Lagrange polynomial), the one-hot encoding of `x ∈ [0, 16]` (17 indicators
//! from one shared power basis), and the overlap histogram (the one-hot indicators, each summed
//! over all slots). The `fhe` crate has no collective Galois keys and no
//! polynomial evaluation; its rotations use a single-party key (the cost of applying a key
//! does not depend on how it was made).
//!
//! `cargo bench -p concord-benches --features peers --bench w16`
//!
//! Single thread: neither engine parallelises these steps.

use concord_benches::{criterion_dir, human, median_ns};
use concord_bfv::{
    params, BfvParameters, Ciphertext, Plaintext, PublicKey, RelinearizationKey, SecretKey,
    SlotPolynomial, ValueRange,
};
use concord_mhe::{
    reshare, CollectiveDecryption, CommonReferenceString, EvaluationKeyAggregate, GaloisKeyGen,
    NoiseEstimate, PartyId, Protocol, PublicKeyGen, PublicKeySwitch, RelinearizationKeyGen,
    Resharing, SmudgingPlan, ThresholdConfig, ThresholdSecretKey,
};
use criterion::{black_box, Criterion};
use std::time::Duration;

const PARTIES: usize = 16;
const GROUP: &str = "w16";
const GROUP_MUL: &str = "w16-mul";

/// (step, label, Lattigo v5 and OpenFHE single-thread figures in ms on this machine kind, from
/// the engine issues)
type Step = (&'static str, &'static str, Option<f64>, Option<f64>);

const STEPS: &[Step] = &[
    (
        "joint_public_key",
        "joint public key (16 shares + aggregation)",
        Some(15.9),
        None,
    ),
    (
        "encrypt",
        "encrypt, per party (incl. switch to transmit level)",
        Some(2.38),
        None,
    ),
    ("sum", "sum of 16 ciphertexts", Some(0.56), None),
    (
        "partial_decrypt",
        "partial decryption, per party",
        Some(0.50),
        None,
    ),
    ("fusion", "fusion of 16 shares + decode", Some(1.04), None),
    ("pcks_share", "PCKS share, per party", None, None),
];

/// Threshold mode, T = 8 of the 16 (replicated sharing, `concord-mhe` `threshold`).
const THRESHOLD_STEPS: &[Step] = &[
    (
        "threshold_dealing",
        "dealing, per party (setup, once: 11,439 expansions)",
        None,
        None,
    ),
    (
        "threshold_key",
        "key for an active set of 8, per party (once per set)",
        None,
        None,
    ),
    (
        "threshold_partial_decrypt",
        "partial decryption, per party (T = 8)",
        None,
        None,
    ),
    (
        "threshold_fusion",
        "fusion of 8 shares + decode",
        None,
        None,
    ),
];
const THRESHOLD: usize = 8;

const MUL_STEPS: &[Step] = &[
    (
        "joint_relinearization_key",
        "joint relinearization key (16 parties, 2 rounds)",
        Some(568.0),
        Some(518.0),
    ),
    (
        "multiply_relinearize",
        "multiply + relinearize",
        Some(30.4),
        Some(40.0),
    ),
    (
        "round_one_received",
        "RKG round one received, per party (parse + digest)",
        None,
        None,
    ),
    ("rotate", "row rotation by 1", None, None),
    ("inner_sum", "inner sum (all slots)", None, None),
    (
        "galois_key_share",
        "Galois key share, per party and element",
        None,
        None,
    ),
    (
        "equality",
        "equality x = j, n = 16 (one indicator)",
        None,
        None,
    ),
    (
        "one_hot",
        "one-hot of x in [0, 16] (17 indicators)",
        None,
        None,
    ),
    (
        "overlap_histogram",
        "overlap histogram of x in [0, 16] (one-hot + 17 inner sums)",
        None,
        None,
    ),
    (
        "value_counts",
        "overlap counts of x in [0, 16], per ciphertext of bins (powers, no rotations)",
        None,
        None,
    ),
    (
        "constants_share_16",
        "decryption share of the 16 counts (their constant coefficients, one message), per party",
        None,
        None,
    ),
];

struct Sizes {
    ciphertext: usize,
    decryption_share: usize,
    pcks_share: usize,
    lambda: f64,
    threshold_share: usize,
    threshold_lambda: f64,
    /// One party's dealing at the threshold setup, before sealing.
    threshold_dealing: usize,
    /// What a party keeps of the threshold setup.
    threshold_key: usize,
}

fn concord(c: &mut Criterion) -> Sizes {
    let p = BfvParameters::new(&params::ADD_8192).unwrap();
    let parties: Vec<PartyId> = (1..=PARTIES as u32).map(PartyId).collect();
    let keys: Vec<SecretKey> = parties.iter().map(|_| SecretKey::generate(&p)).collect();
    let crs = CommonReferenceString::random();
    let mut g = c.benchmark_group(GROUP);

    g.bench_function("concord/joint_public_key", |b| {
        b.iter(|| {
            let ckg = PublicKeyGen::new(&p, &crs);
            let mut agg = ckg.aggregator();
            for (sk, &id) in keys.iter().zip(&parties) {
                agg.add(&ckg.share(sk, id).unwrap()).unwrap();
            }
            ckg.finish(&agg, &parties).unwrap()
        })
    });
    let ckg = PublicKeyGen::new(&p, &crs);
    let mut agg = ckg.aggregator();
    for (sk, &id) in keys.iter().zip(&parties) {
        agg.add(&ckg.share(sk, id).unwrap()).unwrap();
    }
    let pk = ckg.finish(&agg, &parties).unwrap();

    let values: Vec<i64> = (0..p.degree() as i64).map(|i| i % 4096).collect();
    let pt = Plaintext::encode(&p, &values, ValueRange::counts(4095)).unwrap();
    g.bench_function("concord/encrypt", |b| {
        b.iter(|| {
            let mut ct = pk.encrypt(black_box(&pt)).unwrap();
            ct.switch_to_transmit_level().unwrap();
            ct
        })
    });
    let cts: Vec<Ciphertext> = (0..PARTIES)
        .map(|_| {
            let mut ct = pk.encrypt(&pt).unwrap();
            ct.switch_to_transmit_level().unwrap();
            ct
        })
        .collect();
    g.bench_function("concord/sum", |b| {
        b.iter(|| Ciphertext::sum(black_box(&cts)).unwrap())
    });
    let sum = Ciphertext::sum(&cts).unwrap();

    let plan =
        SmudgingPlan::for_decryption(&p, NoiseEstimate::aggregate(&p, PARTIES, PARTIES), PARTIES)
            .unwrap();
    g.bench_function("concord/partial_decrypt", |b| {
        b.iter(|| {
            CollectiveDecryption::new(black_box(&sum), plan)
                .unwrap()
                .share(&keys[0], parties[0])
                .unwrap()
        })
    });
    let cks = CollectiveDecryption::new(&sum, plan).unwrap();
    let shares: Vec<_> = keys
        .iter()
        .zip(&parties)
        .map(|(sk, &id)| cks.share(sk, id).unwrap())
        .collect();
    g.bench_function("concord/fusion", |b| {
        b.iter(|| {
            let mut agg = cks.aggregator();
            for s in &shares {
                agg.add(s).unwrap();
            }
            cks.finish(&agg, &parties).unwrap().decode()
        })
    });
    let mut agg = cks.aggregator();
    for s in &shares {
        agg.add(s).unwrap();
    }
    let expect: Vec<i64> = values.iter().map(|v| v * PARTIES as i64).collect();
    assert_eq!(
        cks.finish(&agg, &parties).unwrap().decode(),
        expect,
        "W16 must decrypt exactly"
    );

    let receiver = PublicKey::generate(&SecretKey::generate(&p));
    let kplan =
        SmudgingPlan::for_key_switch(&p, NoiseEstimate::aggregate(&p, PARTIES, PARTIES), PARTIES)
            .unwrap();
    g.bench_function("concord/pcks_share", |b| {
        b.iter(|| {
            PublicKeySwitch::new(black_box(&sum), &receiver, kplan)
                .unwrap()
                .share(&keys[0], parties[0])
                .unwrap()
        })
    });
    let pcks_share = PublicKeySwitch::new(&sum, &receiver, kplan)
        .unwrap()
        .share(&keys[0], parties[0])
        .unwrap();
    g.finish();
    let threshold = concord_threshold(c, &p, &keys, &parties, &sum, &expect);
    Sizes {
        ciphertext: cts[0].to_bytes().len(),
        decryption_share: shares[0].to_bytes().len(),
        pcks_share: pcks_share.to_bytes().len(),
        lambda: plan.lambda,
        threshold_share: threshold.0,
        threshold_lambda: threshold.1,
        threshold_dealing: threshold.2,
        threshold_key: threshold.3,
    }
}

/// Threshold mode, 8 of 16: the setup's dealing, a party's key for an active set, its share and
/// the fusion of 8 shares. Returns (share bytes, λ, dealing bytes, key bytes kept).
fn concord_threshold(
    c: &mut Criterion,
    p: &std::sync::Arc<BfvParameters>,
    keys: &[SecretKey],
    parties: &[PartyId],
    sum: &Ciphertext,
    expect: &[i64],
) -> (usize, f64, usize, usize) {
    let config = ThresholdConfig::new(THRESHOLD, parties).unwrap();
    let mut g = c.benchmark_group(GROUP);
    g.sample_size(10);
    g.bench_function("concord/threshold_dealing", |b| {
        b.iter(|| reshare(&keys[0], parties[0], &config, b"w16").unwrap())
    });
    let mut inbox: Vec<Vec<Resharing>> = parties.iter().map(|_| Vec::new()).collect();
    for (sk, &id) in keys.iter().zip(parties) {
        for r in reshare(sk, id, &config, b"w16").unwrap() {
            inbox[(r.to.0 - 1) as usize].push(r);
        }
    }
    let threshold_keys: Vec<ThresholdSecretKey> = parties
        .iter()
        .zip(&inbox)
        .map(|(&id, received)| ThresholdSecretKey::combine(p, id, &config, received).unwrap())
        .collect();
    // the 8 lowest-numbered of 12 contributors, as a node derives it
    let active: Vec<PartyId> = [1, 2, 4, 5, 7, 9, 10, 12].map(PartyId).to_vec();
    let last = active[THRESHOLD - 1];
    g.bench_function("concord/threshold_key", |b| {
        b.iter(|| {
            threshold_keys[(last.0 - 1) as usize]
                .for_active_set(&config, black_box(&active))
                .unwrap()
        })
    });
    let active_keys: Vec<SecretKey> = active
        .iter()
        .map(|p| {
            threshold_keys[(p.0 - 1) as usize]
                .for_active_set(&config, &active)
                .unwrap()
        })
        .collect();
    let plan =
        SmudgingPlan::for_decryption(p, NoiseEstimate::aggregate(p, PARTIES, PARTIES), THRESHOLD)
            .unwrap();
    g.bench_function("concord/threshold_partial_decrypt", |b| {
        b.iter(|| {
            CollectiveDecryption::new(black_box(sum), plan)
                .unwrap()
                .share(&active_keys[0], active[0])
                .unwrap()
        })
    });
    let cks = CollectiveDecryption::new(sum, plan).unwrap();
    let shares: Vec<_> = active_keys
        .iter()
        .zip(&active)
        .map(|(sk, &id)| cks.share(sk, id).unwrap())
        .collect();
    g.bench_function("concord/threshold_fusion", |b| {
        b.iter(|| {
            let mut agg = cks.aggregator();
            for s in &shares {
                agg.add(s).unwrap();
            }
            cks.finish(&agg, &active).unwrap().decode()
        })
    });
    let mut agg = cks.aggregator();
    for s in &shares {
        agg.add(s).unwrap();
    }
    assert_eq!(
        cks.finish(&agg, &active).unwrap().decode(),
        expect,
        "W16 must decrypt exactly with 8 of 16"
    );
    g.finish();
    (
        shares[0].to_bytes().len(),
        plan.lambda,
        config.dealing_len(p),
        threshold_keys[PARTIES - 1].to_bytes().len(),
    )
}

/// Engine part 2 at N = 16384 (`MUL-16384`), 16 parties.
fn concord_mul(c: &mut Criterion) {
    let p = BfvParameters::new(&params::MUL_16384).unwrap();
    let parties: Vec<PartyId> = (1..=PARTIES as u32).map(PartyId).collect();
    let keys: Vec<SecretKey> = parties.iter().map(|_| SecretKey::generate(&p)).collect();
    let crs = CommonReferenceString::random();
    let mut g = c.benchmark_group(GROUP_MUL);
    g.sample_size(10);
    let joint_rlk = || -> RelinearizationKey {
        let rkg = RelinearizationKeyGen::new(&p, &crs).unwrap();
        let mut one = rkg.round_one_aggregator();
        let ephemeral: Vec<_> = keys
            .iter()
            .zip(&parties)
            .map(|(sk, &id)| {
                let (u, share) = rkg.round_one(sk, id).unwrap();
                one.add(&share).unwrap();
                u
            })
            .collect();
        let mut two = rkg.round_two_aggregator(&one).unwrap();
        for ((sk, &id), u) in keys.iter().zip(&parties).zip(&ephemeral) {
            two.add(&rkg.round_two(sk, u, &one, id).unwrap()).unwrap();
        }
        rkg.finish(&one, &two, &parties).unwrap()
    };
    g.bench_function("concord/joint_relinearization_key", |b| b.iter(joint_rlk));
    let rlk = joint_rlk();
    // what each party does, beyond the in-process run above, with the aggregate it receives
    let rkg = RelinearizationKeyGen::new(&p, &crs).unwrap();
    let mut one = rkg.round_one_aggregator();
    for (sk, &id) in keys.iter().zip(&parties) {
        one.add(&rkg.round_one(sk, id).unwrap().1).unwrap();
    }
    let sent = one.to_bytes();
    g.bench_function("concord/round_one_received", |b| {
        b.iter(|| {
            EvaluationKeyAggregate::from_bytes(&p, black_box(&sent))
                .unwrap()
                .digest()
        })
    });
    let ckg = PublicKeyGen::new(&p, &crs);
    let mut agg = ckg.aggregator();
    for (sk, &id) in keys.iter().zip(&parties) {
        agg.add(&ckg.share(sk, id).unwrap()).unwrap();
    }
    let pk = ckg.finish(&agg, &parties).unwrap();
    let n = p.degree();
    let x: Vec<i64> = (0..n as i64).map(|i| i % 17).collect();
    let ct = pk
        .encrypt(&Plaintext::encode(&p, &x, ValueRange::counts(16)).unwrap())
        .unwrap();
    let ones = pk
        .encrypt(&Plaintext::encode(&p, &vec![1; n], ValueRange::counts(1)).unwrap())
        .unwrap();
    g.bench_function("concord/multiply_relinearize", |b| {
        b.iter(|| black_box(&ct).multiply_relinearize(&ones, &rlk).unwrap())
    });
    let gkg = GaloisKeyGen::for_inner_sum(&p, &crs).unwrap();
    let element = p.galois_element_for_rotation(1);
    g.bench_function("concord/galois_key_share", |b| {
        b.iter(|| gkg.share(&keys[0], parties[0], element).unwrap())
    });
    let mut gagg = gkg.aggregator();
    for (sk, &id) in keys.iter().zip(&parties) {
        for share in gkg.shares(sk, id).unwrap() {
            gagg.add(&share).unwrap();
        }
    }
    let gk = gkg.finish(&gagg, &parties).unwrap();
    g.bench_function("concord/rotate", |b| {
        b.iter(|| black_box(&ct).rotate_rows(1, &gk).unwrap())
    });
    g.bench_function("concord/inner_sum", |b| {
        b.iter(|| black_box(&ones).inner_sum(&gk).unwrap())
    });
    let t = p.plaintext_modulus();
    let indicator = SlotPolynomial::indicator(t, 0..=16, 5).unwrap();
    g.bench_function("concord/equality", |b| {
        b.iter(|| {
            black_box(&ct)
                .evaluate_polynomial(&indicator, &rlk)
                .unwrap()
        })
    });
    g.bench_function("concord/one_hot", |b| {
        b.iter(|| black_box(&ct).equals_each(0..=16, &rlk).unwrap())
    });
    g.bench_function("concord/overlap_histogram", |b| {
        b.iter(|| black_box(&ct).slot_histogram(0..=16, &rlk, &gk).unwrap())
    });
    // what the overlap queries run: the counts of every value over a ciphertext of bins, in
    // the constant coefficient, each released by one-value shares
    let cts = [ct.clone()];
    g.bench_function("concord/value_counts", |b| {
        b.iter(|| Ciphertext::value_counts(black_box(&cts), 0..=16, 1..=16, &rlk).unwrap())
    });
    let counts = Ciphertext::value_counts(&cts, 0..=16, 1..=16, &rlk).unwrap();
    let model = NoiseEstimate::fresh(&p, PARTIES)
        .summed(PARTIES)
        .value_counted(&p, PARTIES, 17, 1);
    let plan = SmudgingPlan::for_decryption_at_lowest_level(&p, model, PARTIES, PARTIES).unwrap();
    let counts: Vec<Ciphertext> = counts
        .into_iter()
        .map(|mut count| {
            count.switch_to_level(plan.level).unwrap();
            count
        })
        .collect();
    let cks = CollectiveDecryption::constants(&counts, plan).unwrap();
    g.bench_function("concord/constants_share_16", |b| {
        b.iter(|| cks.share(&keys[0], parties[0]).unwrap())
    });
    println!(
        "overlap counts: smudging lambda {:.1} bits at level {}, a share of the 16 counts is {} bytes",
        plan.lambda,
        plan.level,
        cks.share(&keys[0], parties[0]).unwrap().to_bytes().len()
    );
    g.finish();
}

#[cfg(feature = "peers")]
mod peer {
    //! The same steps with the `fhe` crate's mbfv (fhe.rs), on the same N, t and modulus sizes.
    //! Note: fhe.rs adds no smudging noise to its decryption/key-switch shares.
    use super::*;
    use fhe::bfv::{BfvParametersBuilder, Ciphertext, Encoding, Plaintext, PublicKey, SecretKey};
    use fhe::mbfv::{
        AggregateIter, CommonRandomPoly, DecryptionShare, PublicKeyShare, PublicKeySwitchShare,
    };
    use fhe_traits::{FheDecoder, FheEncoder, FheEncrypter, Serialize};
    use std::sync::Arc;

    pub fn run(c: &mut Criterion) -> usize {
        let mut rng = rand09::rng();
        let par = BfvParametersBuilder::new()
            .set_degree(8192)
            .set_plaintext_modulus(65537)
            .set_moduli_sizes(&[38, 38, 32])
            .build_arc()
            .unwrap();
        let keys: Vec<SecretKey> = (0..PARTIES)
            .map(|_| SecretKey::random(&par, &mut rng))
            .collect();
        let crp = CommonRandomPoly::new(&par, &mut rng).unwrap();
        let mut g = c.benchmark_group(GROUP);
        g.bench_function("fhe/joint_public_key", |b| {
            b.iter(|| {
                let mut rng = rand09::rng();
                keys.iter()
                    .map(|sk| PublicKeyShare::new(sk, crp.clone(), &mut rng).unwrap())
                    .aggregate::<PublicKey>()
                    .unwrap()
            })
        });
        let pk: PublicKey = keys
            .iter()
            .map(|sk| PublicKeyShare::new(sk, crp.clone(), &mut rng).unwrap())
            .aggregate()
            .unwrap();
        let values: Vec<u64> = (0..8192u64).map(|i| i % 4096).collect();
        let pt = Plaintext::try_encode(&values, Encoding::simd(), &par).unwrap();
        g.bench_function("fhe/encrypt", |b| {
            b.iter(|| pk.try_encrypt(black_box(&pt), &mut rand09::rng()).unwrap())
        });
        let cts: Vec<Ciphertext> = (0..PARTIES)
            .map(|_| pk.try_encrypt(&pt, &mut rng).unwrap())
            .collect();
        g.bench_function("fhe/sum", |b| {
            b.iter(|| {
                let mut acc = cts[0].clone();
                for ct in &cts[1..] {
                    acc += ct;
                }
                acc
            })
        });
        let mut sum = cts[0].clone();
        for ct in &cts[1..] {
            sum += ct;
        }
        let sum = Arc::new(sum);
        g.bench_function("fhe/partial_decrypt", |b| {
            b.iter(|| DecryptionShare::new(&keys[0], black_box(&sum), &mut rand09::rng()).unwrap())
        });
        let shares: Vec<DecryptionShare> = keys
            .iter()
            .map(|sk| DecryptionShare::new(sk, &sum, &mut rng).unwrap())
            .collect();
        g.bench_function("fhe/fusion", |b| {
            b.iter_batched(
                || {
                    keys.iter()
                        .map(|sk| DecryptionShare::new(sk, &sum, &mut rand09::rng()).unwrap())
                        .collect::<Vec<_>>()
                },
                |s| {
                    let pt: Plaintext = s.into_iter().aggregate().unwrap();
                    Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap()
                },
                criterion::BatchSize::SmallInput,
            )
        });
        let pt: Plaintext = shares.into_iter().aggregate().unwrap();
        let decoded = Vec::<u64>::try_decode(&pt, Encoding::simd()).unwrap();
        assert_eq!(
            decoded[..8192],
            values.iter().map(|v| v * 16).collect::<Vec<_>>()[..],
            "fhe.rs W16 must decrypt"
        );
        let out = PublicKey::new(&SecretKey::random(&par, &mut rng), &mut rng);
        g.bench_function("fhe/pcks_share", |b| {
            b.iter(|| {
                PublicKeySwitchShare::new(&keys[0], &out, black_box(&sum), &mut rand09::rng())
                    .unwrap()
            })
        });
        g.finish();
        cts[0].to_bytes().len()
    }

    /// Part 2 at N = 16384 with the same 6 × 50-bit ciphertext moduli (fhe.rs relinearizes
    /// with an RNS-digit key, no special modulus).
    pub fn run_mul(c: &mut Criterion) {
        use fhe::bfv::{EvaluationKeyBuilder, Multiplicator, RelinearizationKey};
        use fhe::mbfv::{round::R1Aggregated, RelinKeyGenerator, RelinKeyShare};
        let mut rng = rand09::rng();
        let par = BfvParametersBuilder::new()
            .set_degree(16384)
            .set_plaintext_modulus(65537)
            .set_moduli_sizes(&[50; 6])
            .build_arc()
            .unwrap();
        let keys: Vec<SecretKey> = (0..PARTIES)
            .map(|_| SecretKey::random(&par, &mut rng))
            .collect();
        let crp = CommonRandomPoly::new_vec(&par, &mut rng).unwrap();
        let mut g = c.benchmark_group(GROUP_MUL);
        g.sample_size(10);
        let joint_rlk = || -> RelinearizationKey {
            let mut rng = rand09::rng();
            let generators: Vec<RelinKeyGenerator> = keys
                .iter()
                .map(|sk| RelinKeyGenerator::new(sk, &crp, &mut rng).unwrap())
                .collect();
            let one: RelinKeyShare<R1Aggregated> = generators
                .iter()
                .map(|gen| gen.round_1(&mut rng).unwrap())
                .aggregate()
                .unwrap();
            let one = Arc::new(one);
            generators
                .iter()
                .map(|gen| gen.round_2(&one, &mut rng).unwrap())
                .aggregate()
                .unwrap()
        };
        g.bench_function("fhe/joint_relinearization_key", |b| b.iter(joint_rlk));
        let rlk = joint_rlk();
        let pk: PublicKey = keys
            .iter()
            .map(|sk| PublicKeyShare::new(sk, crp[0].clone(), &mut rng).unwrap())
            .aggregate()
            .unwrap();
        let values: Vec<u64> = (0..16384u64).map(|i| i % 17).collect();
        let pt = Plaintext::try_encode(&values, Encoding::simd(), &par).unwrap();
        let ct = pk.try_encrypt(&pt, &mut rng).unwrap();
        let mul = Multiplicator::default(&rlk).unwrap();
        g.bench_function("fhe/multiply_relinearize", |b| {
            b.iter(|| mul.multiply(black_box(&ct), &ct).unwrap())
        });
        // a single-party key: applying it costs the same as applying a collective one
        let sk = &keys[0];
        let ek = EvaluationKeyBuilder::new(sk)
            .unwrap()
            .enable_column_rotation(1)
            .unwrap()
            .enable_inner_sum()
            .unwrap()
            .build(&mut rng)
            .unwrap();
        g.bench_function("fhe/rotate", |b| {
            b.iter(|| ek.rotates_columns_by(black_box(&ct), 1).unwrap())
        });
        g.bench_function("fhe/inner_sum", |b| {
            b.iter(|| ek.computes_inner_sum(black_box(&ct)).unwrap())
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .output_directory(&criterion_dir(env!("CARGO_TARGET_TMPDIR")))
        .configure_from_args();
    let sizes = concord(&mut c);
    #[cfg(feature = "peers")]
    let fhe_ct_bytes = Some(peer::run(&mut c));
    #[cfg(not(feature = "peers"))]
    let fhe_ct_bytes: Option<usize> = None;
    concord_mul(&mut c);
    #[cfg(feature = "peers")]
    peer::run_mul(&mut c);
    c.final_summary();

    let dir = criterion_dir(env!("CARGO_TARGET_TMPDIR"));
    println!("\nW16: 16 parties, N = 8192, t = 65537 (ADD-8192), single thread; medians of criterion samples");
    println!(
        "smudging of decryption shares: λ = {:.1} bits per coefficient (≥ 40)",
        sizes.lambda
    );
    table(&dir, GROUP, STEPS);
    println!(
        "\nW16 threshold mode, T = {THRESHOLD} of 16 (replicated sharing); smudging λ = {:.1} bits",
        sizes.threshold_lambda
    );
    table(&dir, GROUP, THRESHOLD_STEPS);
    println!("\nW16 part 2: 16 parties, N = 16384, t = 65537 (MUL-16384), single thread");
    table(&dir, GROUP_MUL, MUL_STEPS);
    let pct = |x: usize, of: f64| format!("{:.1}% of Lattigo's", 100.0 * x as f64 / of);
    println!("\nbytes as sent:");
    println!(
        "  ciphertext        {:>8} B  ({}; fhe.rs {})",
        sizes.ciphertext,
        pct(sizes.ciphertext, 262_459.0),
        fhe_ct_bytes
            .map(|b| format!("{b} B"))
            .unwrap_or_else(|| "not run".into())
    );
    println!(
        "  decryption share  {:>8} B  ({})",
        sizes.decryption_share,
        pct(sizes.decryption_share, 131_096.0)
    );
    println!("  PCKS share        {:>8} B", sizes.pcks_share);
    println!(
        "  threshold share   {:>8} B  (T = {THRESHOLD}: {} B to the coordinator per ciphertext, {} B in all-party mode)",
        sizes.threshold_share,
        THRESHOLD * sizes.threshold_share,
        PARTIES * sizes.decryption_share
    );
    println!(
        "  threshold setup   {:>8} B  sent per party (its dealing, one resharing per party)",
        sizes.threshold_dealing
    );
    println!(
        "  threshold key     {:>8} B  kept per party",
        sizes.threshold_key
    );
}

/// One markdown table: Concord, fhe.rs and the published figures, with ratios.
fn table(dir: &std::path::Path, group: &str, steps: &[Step]) {
    println!(
        "| {:<52} | {:>10} | {:>10} | {:>9} | {:>10} | {:>13} | {:>10} | {:>13} |",
        "step",
        "Concord",
        "fhe.rs",
        "fhe/Conc.",
        "Lattigo v5",
        "Lattigo/Conc.",
        "OpenFHE",
        "OpenFHE/Conc."
    );
    println!(
        "|{:-<54}|{:-<12}|{:-<12}|{:-<11}|{:-<12}|{:-<15}|{:-<12}|{:-<15}|",
        "", "", "", "", "", "", "", ""
    );
    for (id, label, lattigo_ms, openfhe_ms) in steps {
        let ours = median_ns(dir, group, &format!("concord_{id}"));
        let theirs = median_ns(dir, group, &format!("fhe_{id}"));
        let fmt = |x: Option<f64>| x.map(human).unwrap_or_else(|| "—".into());
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".into(),
        };
        let (lattigo, openfhe) = (lattigo_ms.map(|ms| ms * 1e6), openfhe_ms.map(|ms| ms * 1e6));
        println!(
            "| {:<52} | {:>10} | {:>10} | {:>9} | {:>10} | {:>13} | {:>10} | {:>13} |",
            label,
            fmt(ours),
            fmt(theirs),
            ratio(theirs, ours),
            fmt(lattigo),
            ratio(lattigo, ours),
            fmt(openfhe),
            ratio(openfhe, ours)
        );
    }
}
