//! Encrypted-addition throughput: tfhe's integer API (FheUint32 add, sum of 16) beside Concord's
//! BFV slot additions (one ciphertext addition adds N = 8192 slots), in the same run.
//!
//! `cargo bench -p concord-benches --features tfhe-peer --bench throughput`
//! (tfhe is a long compile: about 5 minutes on 2 cores.)

use concord_benches::{criterion_dir, human, median_ns};
use concord_bfv::{params, BfvParameters, Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange};
use criterion::{black_box, Criterion};
use std::time::Duration;
use tfhe::prelude::*;
use tfhe::{generate_keys, set_server_key, ConfigBuilder, FheUint32};

const GROUP: &str = "throughput";

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(5))
        .output_directory(&criterion_dir(env!("CARGO_TARGET_TMPDIR")))
        .configure_from_args();
    let mut g = c.benchmark_group(GROUP);

    // Concord: 16 ciphertexts of 8192 counters each (ADD-8192-T33 holds 32-bit sums).
    let p = BfvParameters::new(&params::ADD_8192_T33).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let values: Vec<i64> = (0..p.degree() as i64).collect();
    let cts: Vec<Ciphertext> = (0..16)
        .map(|_| {
            let mut ct = pk
                .encrypt(&Plaintext::encode(&p, &values, ValueRange::counts(1 << 27)).unwrap())
                .unwrap();
            ct.switch_to_transmit_level().unwrap();
            ct
        })
        .collect();
    g.bench_function("concord_add", |b| {
        b.iter(|| {
            let mut x = cts[0].clone();
            x.add_assign(black_box(&cts[1])).unwrap();
            x
        })
    });
    g.bench_function("concord_sum16", |b| {
        b.iter(|| Ciphertext::sum(black_box(&cts)).unwrap())
    });

    // tfhe: FheUint32, default (128-bit) parameters, server key set for this thread.
    let config = ConfigBuilder::default().build();
    let (client_key, server_key) = generate_keys(config);
    set_server_key(server_key);
    let xs: Vec<FheUint32> = (0..16u32)
        .map(|i| FheUint32::encrypt(i * 1000, &client_key))
        .collect();
    g.bench_function("tfhe_add", |b| {
        b.iter(|| black_box(&xs[0]) + black_box(&xs[1]))
    });
    g.bench_function("tfhe_sum16", |b| {
        b.iter(|| {
            let mut acc = xs[0].clone();
            for x in &xs[1..] {
                acc += x;
            }
            acc
        })
    });
    let mut acc = xs[0].clone();
    for x in &xs[1..] {
        acc += x;
    }
    let total: u32 = acc.decrypt(&client_key);
    assert_eq!(total, (0..16u32).map(|i| i * 1000).sum::<u32>());
    g.finish();
    c.final_summary();

    let dir = criterion_dir(env!("CARGO_TARGET_TMPDIR"));
    let n = p.degree() as f64;
    println!("\nencrypted additions per second (sum of 16 operands = 15 additions per slot)");
    for (name, id, slots) in [
        (
            "Concord BFV, one ciphertext add (8192 slots)",
            "concord_add",
            n,
        ),
        (
            "Concord BFV, sum of 16 (8192 slots)",
            "concord_sum16",
            n * 15.0,
        ),
        ("tfhe FheUint32 add", "tfhe_add", 1.0),
        ("tfhe FheUint32 sum of 16", "tfhe_sum16", 15.0),
    ] {
        if let Some(ns) = median_ns(&dir, GROUP, id) {
            println!(
                "  {name:<46} {:>10}   {:>14.0} slot-additions/s",
                human(ns),
                slots / (ns / 1e9)
            );
        }
    }
}
