//! Prints every named parameter set with its security, sizes and smudging plan.
//!
//! `cargo run --release -p concord-mhe --example parameters`

use concord_bfv::params::{he_standard_max_log_qp, ALL_SETS};
use concord_bfv::{BfvParameters, Plaintext, SecretKey, ValueRange};
use concord_mhe::{CollectiveDecryption, NoiseEstimate, PartyId, Protocol, SmudgingPlan};

fn main() {
    println!(
        "{:<14} {:>6} {:>8} {:>6} {:>12} {:>9} {:>10} | {:>7} {:>4} {:>4} {:>6} {:>11} {:>11}",
        "set",
        "N",
        "logQP",
        "bound",
        "t",
        "tx bits",
        "ct bytes",
        "parties",
        "b",
        "d",
        "λ",
        "share B",
        "max parties"
    );
    for spec in ALL_SETS {
        let p = BfvParameters::new(spec).unwrap();
        let n = p.degree();
        let tx = p.ring().packed_bits_per_coefficient(p.transmit_level());
        // sizes of real values, as sent
        let sk = SecretKey::generate(&p);
        let mut ct = sk
            .encrypt(&Plaintext::encode(&p, &[0], ValueRange::counts(1)).unwrap())
            .unwrap();
        ct.switch_to_transmit_level().unwrap();
        let ct_bytes = ct.serialized_len();
        // the largest community whose aggregate smudging hides with λ ≥ 40 (by bisection)
        let releases = |k: usize| {
            SmudgingPlan::for_decryption(&p, NoiseEstimate::aggregate(&p, k, k), k).is_ok()
        };
        let (mut max_parties, mut beyond) = (0usize, 1usize << 20);
        while beyond - max_parties > 1 {
            let mid = max_parties + (beyond - max_parties) / 2;
            if releases(mid) {
                max_parties = mid;
            } else {
                beyond = mid;
            }
        }
        for parties in [4usize, 16, 64] {
            let Ok(plan) = SmudgingPlan::for_decryption(
                &p,
                NoiseEstimate::aggregate(&p, parties, parties),
                parties,
            ) else {
                println!(
                    "{:<14} {:>6} {:>92}",
                    spec.name,
                    n,
                    format!("{parties} parties: not supported")
                );
                continue;
            };
            println!(
                "{:<14} {:>6} {:>8.1} {:>6} {:>12} {:>9} {:>10} | {:>7} {:>4} {:>4} {:>6.1} {:>11} {:>11}",
                spec.name,
                n,
                p.log_qp(),
                he_standard_max_log_qp(n).unwrap(),
                p.plaintext_modulus(),
                tx,
                ct_bytes,
                parties,
                plan.bits,
                plan.compressed_bits,
                plan.lambda,
                CollectiveDecryption::new(&ct, plan).unwrap().share(&sk, PartyId(1)).unwrap().serialized_len(),
                max_parties
            );
        }
    }
}
