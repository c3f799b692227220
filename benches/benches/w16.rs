//! The W16 workload: 16 parties, N = 8192, t = 65537 (Concord's `ADD-8192` set), measured step by
//! step with criterion, then printed as a table — beside the `fhe` crate's multiparty BFV (`mbfv`)
//! in the same run when built with `--features peers`, and beside Lattigo v5's published figures
//! for this machine kind (from the engine issue; not re-measured here).
//!
//! `cargo bench -p concord-benches --features peers --bench w16`
//!
//! Single thread: neither engine parallelises these steps.

use concord_benches::{criterion_dir, human, median_ns};
use concord_bfv::{params, BfvParameters, Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange};
use concord_mhe::{
    CollectiveDecryption, CommonReferenceString, NoiseEstimate, PartyId, PublicKeyGen,
    PublicKeySwitch, SmudgingPlan,
};
use criterion::{black_box, Criterion};
use std::time::Duration;

const PARTIES: usize = 16;
const GROUP: &str = "w16";

/// (step, Lattigo v5 single-thread figure in ms on this machine kind, from the engine issue)
const STEPS: &[(&str, &str, Option<f64>)] = &[
    (
        "joint_public_key",
        "joint public key (16 shares + aggregation)",
        Some(15.9),
    ),
    (
        "encrypt",
        "encrypt, per party (incl. switch to transmit level)",
        Some(2.38),
    ),
    ("sum", "sum of 16 ciphertexts", Some(0.56)),
    (
        "partial_decrypt",
        "partial decryption, per party",
        Some(0.50),
    ),
    ("fusion", "fusion of 16 shares + decode", Some(1.04)),
    ("pcks_share", "PCKS share, per party", None),
];

struct Sizes {
    ciphertext: usize,
    decryption_share: usize,
    pcks_share: usize,
    lambda: f64,
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
            ckg.finish(agg, &parties).unwrap()
        })
    });
    let ckg = PublicKeyGen::new(&p, &crs);
    let mut agg = ckg.aggregator();
    for (sk, &id) in keys.iter().zip(&parties) {
        agg.add(&ckg.share(sk, id).unwrap()).unwrap();
    }
    let pk = ckg.finish(agg, &parties).unwrap();

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
            cks.decrypt(&agg, &parties).unwrap().decode()
        })
    });
    let mut agg = cks.aggregator();
    for s in &shares {
        agg.add(s).unwrap();
    }
    let expect: Vec<i64> = values.iter().map(|v| v * PARTIES as i64).collect();
    assert_eq!(
        cks.decrypt(&agg, &parties).unwrap().decode(),
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
    Sizes {
        ciphertext: cts[0].to_bytes().len(),
        decryption_share: shares[0].to_bytes().len(),
        pcks_share: pcks_share.to_bytes().len(),
        lambda: plan.lambda,
    }
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
    c.final_summary();

    let dir = criterion_dir(env!("CARGO_TARGET_TMPDIR"));
    println!("\nW16: 16 parties, N = 8192, t = 65537 (ADD-8192), single thread; medians of criterion samples");
    println!(
        "smudging of decryption shares: λ = {:.1} bits per coefficient (≥ 40)",
        sizes.lambda
    );
    println!(
        "| {:<52} | {:>10} | {:>10} | {:>9} | {:>10} | {:>12} |",
        "step", "Concord", "fhe.rs", "fhe/Conc.", "Lattigo v5", "Lattigo/Conc."
    );
    println!(
        "|{:-<54}|{:-<12}|{:-<12}|{:-<11}|{:-<12}|{:-<14}|",
        "", "", "", "", "", ""
    );
    for (id, label, lattigo_ms) in STEPS {
        let ours = median_ns(&dir, GROUP, &format!("concord_{id}"))
            .or_else(|| median_ns(&dir, GROUP, &format!("concord/{id}")));
        let theirs = median_ns(&dir, GROUP, &format!("fhe_{id}"));
        let fmt = |x: Option<f64>| x.map(human).unwrap_or_else(|| "—".into());
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{:.2}×", a / b),
            _ => "—".into(),
        };
        let lattigo = lattigo_ms.map(|ms| ms * 1e6);
        println!(
            "| {:<52} | {:>10} | {:>10} | {:>9} | {:>10} | {:>12} |",
            label,
            fmt(ours),
            fmt(theirs),
            ratio(theirs, ours),
            fmt(lattigo),
            ratio(lattigo, ours)
        );
    }
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
}
