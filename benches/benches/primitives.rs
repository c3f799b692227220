//! Primitives: NTT per ring degree (IFMA-sized and 60-bit primes), BFV per parameter set —
//! encrypt, modulus switch, add, decrypt, serialize, deserialize — and, for the multiplicative
//! sets, multiply (tensor and scale), relinearize, and both, with the relinearization key's
//! generation; the RNS conversion and scaling kernels under them; and what a node pays per
//! contribution to check the sum it decrypts (`release-check`: digest, parse and add one
//! ciphertext; verify one contributor's signature over the roster).
//!
//! `cargo bench -p concord-benches --bench primitives`

use concord_bfv::params::{ALL_SETS, MULTIPLICATIVE_SETS};
use concord_bfv::{
    BfvParameters, Ciphertext, Plaintext, PublicKey, RelinearizationKey, SecretKey, ValueRange,
};
use concord_ring::rns::{BaseConverter, Scaler};
use concord_ring::{ntt_primes, Modulus};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use tfhe_ntt::prime64::Plan;

fn ntt(c: &mut Criterion) {
    let mut g = c.benchmark_group("ntt");
    for log_n in 12..=15 {
        let n = 1usize << log_n;
        for bits in [49u32, 60] {
            let q = ntt_primes(bits, 1, n, &[])[0];
            let plan = Plan::try_new(n, q).unwrap();
            let mut buf: Vec<u64> = (0..n as u64).map(|i| i * 7919 % q).collect();
            g.bench_function(BenchmarkId::new(format!("forward/{bits}-bit"), n), |b| {
                b.iter(|| plan.fwd(black_box(&mut buf)))
            });
            g.bench_function(BenchmarkId::new(format!("inverse/{bits}-bit"), n), |b| {
                b.iter(|| plan.inv(black_box(&mut buf)))
            });
        }
    }
    g.finish();
}

/// The RNS kernels under multiplication and key switching, on MUL-16384's bases (N = 16384,
/// six 50-bit primes to seven): exact base conversion and BFV's rounding scale by t/Q.
fn rns(c: &mut Criterion) {
    let n = 1 << 14;
    let moduli = |bits: u32, from: usize, count: usize| -> Vec<Modulus> {
        ntt_primes(bits, from + count, n, &[])[from..]
            .iter()
            .map(|&q| Modulus::new(q).unwrap())
            .collect()
    };
    let (q, r) = (moduli(50, 0, 6), moduli(50, 6, 7));
    let column = |m: &Modulus| -> Vec<u64> {
        (0..n as u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) % m.value())
            .collect()
    };
    let all: Vec<Vec<u64>> = q.iter().chain(&r).map(column).collect();
    let mut out = vec![vec![0u64; n]; r.len()];
    let mut g = c.benchmark_group("rns");
    let convert = BaseConverter::new(&q, &r);
    g.bench_function("convert/6-to-7/16384", |b| {
        b.iter(|| {
            let input: Vec<&[u64]> = all[..6].iter().map(Vec::as_slice).collect();
            let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
            convert.convert_poly(black_box(&input), &mut views)
        })
    });
    let scale = Scaler::new(65537, &q, &r);
    g.bench_function("scale/13-to-7/16384", |b| {
        b.iter(|| {
            let input: Vec<&[u64]> = all.iter().map(Vec::as_slice).collect();
            let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
            scale.scale_poly(black_box(&input), &mut views)
        })
    });
    g.finish();
}

fn bfv(c: &mut Criterion) {
    let mut g = c.benchmark_group("bfv");
    for spec in ALL_SETS {
        let p = BfvParameters::new(spec).unwrap();
        let sk = SecretKey::generate(&p);
        let pk = PublicKey::generate(&sk);
        let values: Vec<i64> = (0..p.degree() as i64).map(|i| i % 100).collect();
        let pt = Plaintext::encode(&p, &values, ValueRange::counts(100)).unwrap();
        let name = spec.name;
        g.bench_function(BenchmarkId::new("encode", name), |b| {
            b.iter(|| Plaintext::encode(&p, black_box(&values), ValueRange::counts(100)).unwrap())
        });
        g.bench_function(BenchmarkId::new("encrypt_pk", name), |b| {
            b.iter(|| pk.encrypt(black_box(&pt)).unwrap())
        });
        let top = pk.encrypt(&pt).unwrap();
        g.bench_function(BenchmarkId::new("mod_switch_to_transmit", name), |b| {
            b.iter(|| {
                let mut ct = top.clone();
                ct.switch_to_transmit_level().unwrap();
                ct
            })
        });
        let mut ct = top.clone();
        ct.switch_to_transmit_level().unwrap();
        let other = ct.clone();
        g.bench_function(BenchmarkId::new("add", name), |b| {
            b.iter(|| {
                let mut x = ct.clone();
                x.add_assign(black_box(&other)).unwrap();
                x
            })
        });
        g.bench_function(BenchmarkId::new("decrypt", name), |b| {
            b.iter(|| sk.decrypt(black_box(&ct)).unwrap())
        });
        g.bench_function(BenchmarkId::new("serialize", name), |b| {
            b.iter(|| black_box(&ct).to_bytes())
        });
        let bytes = ct.to_bytes();
        g.bench_function(BenchmarkId::new("deserialize", name), |b| {
            b.iter(|| Ciphertext::from_bytes(&p, black_box(&bytes)).unwrap())
        });
    }
    g.finish();
}

fn multiplication(c: &mut Criterion) {
    let mut g = c.benchmark_group("bfv-mul");
    for spec in MULTIPLICATIVE_SETS {
        let p = BfvParameters::new(spec).unwrap();
        let sk = SecretKey::generate(&p);
        let pk = PublicKey::generate(&sk);
        let values: Vec<i64> = (0..p.degree() as i64).map(|i| i % 200).collect();
        let pt = Plaintext::encode(&p, &values, ValueRange::counts(255)).unwrap();
        let (a, b) = (pk.encrypt(&pt).unwrap(), pk.encrypt(&pt).unwrap());
        let name = spec.name;
        g.bench_function(BenchmarkId::new("relinearization_key", name), |bench| {
            bench.iter(|| RelinearizationKey::generate(black_box(&sk)).unwrap())
        });
        let rlk = RelinearizationKey::generate(&sk).unwrap();
        g.bench_function(BenchmarkId::new("multiply", name), |bench| {
            bench.iter(|| black_box(&a).multiply(black_box(&b)).unwrap())
        });
        let product = a.multiply(&b).unwrap();
        g.bench_function(BenchmarkId::new("relinearize", name), |bench| {
            bench.iter(|| {
                let mut x = product.clone();
                x.relinearize(black_box(&rlk)).unwrap();
                x
            })
        });
        g.bench_function(BenchmarkId::new("multiply_relinearize", name), |bench| {
            bench.iter(|| {
                black_box(&a)
                    .multiply_relinearize(black_box(&b), &rlk)
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// A node recomputes the sum it releases from every contribution on the roster: per
/// ciphertext of a contribution, the digest it checks against the commitment, the parse and
/// the addition; per contributor, one ECDSA P-256 signature over the roster.
fn release_check(c: &mut Criterion) {
    use concord_api::evidence::{digest, QueryBinding};
    use concord_api::pki::{DevCa, Role};
    let mut g = c.benchmark_group("release-check");
    for spec in concord_bfv::params::ADDITIVE_SETS {
        let p = BfvParameters::new(spec).unwrap();
        let pk = PublicKey::generate(&SecretKey::generate(&p));
        let pt = Plaintext::encode(&p, &[1, 2, 3], ValueRange::counts(100)).unwrap();
        let mut ct = pk.encrypt(&pt).unwrap();
        ct.switch_to_transmit_level().unwrap();
        let bytes = ct.to_bytes();
        g.bench_function(BenchmarkId::new("ciphertext", spec.name), |b| {
            b.iter(|| {
                let mut sum = ct.clone();
                let d = digest(std::slice::from_ref(black_box(&bytes)));
                let next = Ciphertext::from_bytes(&p, black_box(&bytes)).unwrap();
                sum.add_assign(&next).unwrap();
                (d, sum)
            })
        });
    }
    let ca = DevCa::generate("bench").unwrap();
    let node = ca.issue(Role::Node, "node-1", &["localhost"]).unwrap();
    let der = concord_api::submission::certificate_der(&node.certificate_pem).unwrap();
    let binding = QueryBinding::new("q-0123456789abcdef", &Default::default(), &[0; 32]);
    let commitment = binding.commit(&node.key_pem, &der, [1; 32]).unwrap();
    let roster = binding.roster_digest(std::slice::from_ref(&commitment));
    let signature = binding.sign_roster(&node.key_pem, &roster).unwrap();
    g.bench_function("roster-signature", |b| {
        b.iter(|| {
            binding
                .verify_roster(
                    ca.certificate_pem(),
                    &roster,
                    &commitment,
                    black_box(&signature),
                )
                .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = ntt, rns, bfv, multiplication, release_check
}
criterion_main!(benches);
