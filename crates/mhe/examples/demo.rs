//! The engine end to end, in one process: four institutions set up a collective key, each
//! encrypts its own counts (events by TLP level × month, from a small synthetic generator), the
//! aggregator sums the ciphertexts, and the institutions key-switch the sum to a researcher's
//! public key, so that only the researcher can read it. Prints the released table and what
//! travelled.
//!
//! `cargo run --release -p concord-mhe --example demo`
//!
//! (The networked demo — nodes and coordinator as processes over gRPC/mTLS on MISP data — is
//! `concord demo`, issue 3. This example exercises the same engine calls those roles make.)

use concord_bfv::{params, BfvParameters, Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange};
use concord_mhe::{
    CommonReferenceString, NoiseEstimate, PartyId, PublicKeyGen, PublicKeySwitch, SmudgingPlan,
};
use std::time::Instant;

const TLP: [&str; 5] = ["clear", "green", "amber", "amber+strict", "red"];
const MONTHS: usize = 12;
const MAX_EVENTS_PER_CELL: u64 = 1000;

/// A deterministic, institution-specific table of event counts: cells (tlp, month).
fn institution_counts(institution: u32) -> Vec<i64> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ institution as u64;
    (0..TLP.len() * MONTHS)
        .map(|cell| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let weight = [30, 50, 15, 4, 1][cell / MONTHS];
            ((state >> 33) % (weight * institution as u64 + 1)) as i64
        })
        .collect()
}

fn main() {
    let params = BfvParameters::new(&params::ADD_8192).expect("named set");
    let institutions: Vec<PartyId> = (1..=4).map(PartyId).collect();
    let started = Instant::now();

    // Setup: every institution keeps its key share; only the CKG shares travel.
    let crs = CommonReferenceString::random();
    let keys: Vec<SecretKey> = institutions
        .iter()
        .map(|_| SecretKey::generate(&params))
        .collect();
    let ckg = PublicKeyGen::new(&params, &crs);
    let mut setup = ckg.aggregator();
    let mut setup_bytes = 0;
    for (sk, &id) in keys.iter().zip(&institutions) {
        let share = ckg.share(sk, id).unwrap();
        setup_bytes += share.to_bytes().len();
        setup.add(&share).unwrap();
    }
    let collective_key = ckg.finish(setup, &institutions).unwrap();

    // The researcher's own key pair.
    let researcher = SecretKey::generate(&params);
    let researcher_pk = PublicKey::generate(&researcher);

    // Contributions: each institution encrypts its table and sends it at the transmit level.
    let mut expected = vec![0i64; TLP.len() * MONTHS];
    let mut contribution_bytes = 0;
    let contributions: Vec<Ciphertext> = institutions
        .iter()
        .map(|id| {
            let counts = institution_counts(id.0);
            for (e, c) in expected.iter_mut().zip(&counts) {
                *e += c;
            }
            let pt = Plaintext::encode(&params, &counts, ValueRange::counts(MAX_EVENTS_PER_CELL))
                .unwrap();
            let mut ct = collective_key.encrypt(&pt).unwrap();
            ct.switch_to_transmit_level().unwrap();
            let bytes = ct.to_bytes();
            contribution_bytes += bytes.len();
            Ciphertext::from_bytes(&params, &bytes).unwrap()
        })
        .collect();

    // Aggregation, then key switching to the researcher: the aggregator never sees the result.
    let aggregate = Ciphertext::sum(&contributions).unwrap();
    let n = institutions.len();
    let plan =
        SmudgingPlan::for_key_switch(&params, NoiseEstimate::aggregate(&params, n, n), n).unwrap();
    let pcks = PublicKeySwitch::new(&aggregate, &researcher_pk, plan).unwrap();
    let mut switch = pcks.aggregator();
    let mut share_bytes = 0;
    for (sk, &id) in keys.iter().zip(&institutions) {
        let share = pcks.share(sk, id).unwrap();
        share_bytes += share.to_bytes().len();
        switch.add(&share).unwrap();
    }
    let for_researcher = pcks.finish(&switch, &institutions).unwrap();

    // Only the researcher decrypts.
    let released = researcher.decrypt(&for_researcher).unwrap().decode();
    let elapsed = started.elapsed();

    println!(
        "Concord engine demo — {} institutions, parameter set {}",
        n,
        params.name()
    );
    println!(
        "events by TLP × month, summed across institutions (released to the researcher only)\n"
    );
    print!("{:<13}", "TLP \\ month");
    for m in 1..=MONTHS {
        print!("{m:>6}");
    }
    println!("{:>8}", "total");
    for (row, name) in TLP.iter().enumerate() {
        print!("{name:<13}");
        let cells = &released[row * MONTHS..(row + 1) * MONTHS];
        for c in cells {
            print!("{c:>6}");
        }
        println!("{:>8}", cells.iter().sum::<i64>());
    }
    let exact = released[..expected.len()] == expected[..];
    println!(
        "\nequals the plaintext sum of the institutions' tables: {}",
        if exact { "yes" } else { "NO" }
    );
    println!(
        "smudging: λ = {:.1} bits per coefficient; noise margin left {:.1} bits",
        plan.lambda, plan.margin_bits
    );
    println!(
        "bytes: setup {} KB, contributions {} KB, key-switch shares {} KB; time {:.1} ms",
        setup_bytes / 1000,
        contribution_bytes / 1000,
        share_bytes / 1000,
        elapsed.as_secs_f64() * 1e3
    );
    if !exact {
        std::process::exit(1);
    }
}
