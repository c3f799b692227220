//! BFV against plain arithmetic, over every named parameter set.

use concord_bfv::params::{self, BfvParameters, ParameterSpec, PlaintextModulus, ALL_SETS};
use concord_bfv::{BfvError, Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange, WireError};
use concord_ring::sampling::uniform_poly;
use concord_ring::{Poly, Representation};
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use std::sync::Arc;

fn all_params() -> Vec<Arc<BfvParameters>> {
    ALL_SETS
        .iter()
        .map(|s| BfvParameters::new(s).unwrap())
        .collect()
}

#[test]
fn every_named_set_meets_the_he_standard_and_batches() {
    for p in all_params() {
        let n = p.degree();
        let max = params::he_standard_max_log_qp(n).unwrap() as f64;
        assert!(p.log_qp() <= max, "{}: {} > {max}", p.name(), p.log_qp());
        let t = p.plaintext_modulus();
        assert!(
            concord_ring::is_prime(t) && t % (2 * n as u64) == 1,
            "{}",
            p.name()
        );
        for m in p.ring().moduli() {
            assert!(
                m.value() < 1 << 50,
                "{}: prime above 2^50 misses the IFMA path",
                p.name()
            );
        }
    }
    let large = BfvParameters::new(&params::ADD_8192_T33).unwrap();
    assert!(large.plaintext_modulus() > 1 << 32);
    assert_eq!(
        BfvParameters::new(&params::ADD_8192)
            .unwrap()
            .plaintext_modulus(),
        65537
    );
}

#[test]
fn an_insecure_set_is_refused() {
    let insecure = ParameterSpec {
        id: 999,
        name: "INSECURE-4096",
        log_n: 12,
        ciphertext_moduli_bits: &[50, 50, 20],
        special_moduli_bits: &[],
        plaintext_modulus: PlaintextModulus::Prime(65537),
        transmit_level: 2,
    };
    let err = BfvParameters::new(&insecure).unwrap_err();
    assert!(
        matches!(err, params::ParameterError::Insecure { max: 109, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("insecure"));
    // a key-switching modulus counts toward the bound too
    let with_p = ParameterSpec {
        ciphertext_moduli_bits: &[40, 40],
        special_moduli_bits: &[35],
        ..insecure
    };
    assert!(matches!(
        BfvParameters::new(&with_p),
        Err(params::ParameterError::Insecure { .. })
    ));
    let bad_t = ParameterSpec {
        plaintext_modulus: PlaintextModulus::Prime(65539),
        ciphertext_moduli_bits: &[40],
        ..insecure
    };
    assert!(matches!(
        BfvParameters::new(&bad_t),
        Err(params::ParameterError::PlaintextModulus { .. })
    ));
}

/// Negacyclic schoolbook product modulo q, accumulated exactly in u128.
fn schoolbook(a: &[u64], b: &[u64], q: u64) -> Vec<u64> {
    let n = a.len();
    let (mut pos, mut neg) = (vec![0u128; n], vec![0u128; n]);
    for i in 0..n {
        let ai = a[i] as u128;
        for k in 0..n {
            let p = ai * b[k] as u128;
            if i + k < n {
                pos[i + k] += p;
            } else {
                neg[i + k - n] += p;
            }
        }
        if i % 1024 == 1023 {
            // keep the accumulators far from overflow
            for v in pos.iter_mut().chain(neg.iter_mut()) {
                *v %= q as u128;
            }
        }
    }
    (0..n)
        .map(|i| ((pos[i] % q as u128 + q as u128 - neg[i] % q as u128) % q as u128) as u64)
        .collect()
}

#[test]
fn ntt_product_equals_schoolbook_for_every_prime_of_every_set() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    for p in all_params() {
        let ring = p.ring();
        let level = p.max_level();
        let a = uniform_poly(ring, level, &mut rng);
        let b = uniform_poly(ring, level, &mut rng);
        // reinterpret the random residues as coefficients
        let a_coeff =
            Poly::from_residues(ring, level, Representation::Coefficient, a.data().to_vec())
                .unwrap();
        let b_coeff =
            Poly::from_residues(ring, level, Representation::Coefficient, b.data().to_vec())
                .unwrap();
        let (mut an, mut bn) = (a_coeff.clone(), b_coeff.clone());
        an.to_ntt(ring);
        bn.to_ntt(ring);
        let product = Poly::product_to_coefficients(ring, &an, &bn);
        for (j, m) in ring.moduli().iter().enumerate() {
            let expect = schoolbook(a_coeff.residues(j), b_coeff.residues(j), m.value());
            assert_eq!(
                product.residues(j),
                &expect[..],
                "{} prime {}",
                p.name(),
                m.value()
            );
        }
    }
}

#[test]
fn slots_round_trip_and_products_are_slot_wise() {
    for p in all_params() {
        let n = p.degree();
        let vals: Vec<i64> = (0..n as i64).map(|i| (i * 37) % 200 - 100).collect();
        let pt = Plaintext::encode(&p, &vals, ValueRange::new(-100, 100).unwrap()).unwrap();
        assert_eq!(pt.decode(), vals);
    }
}

fn random_values(rng: &mut ChaCha20Rng, n: usize, max: i64) -> Vec<i64> {
    use rand_chacha::rand_core::RngCore;
    (0..n)
        .map(|_| (rng.next_u64() % (max as u64 + 1)) as i64)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn homomorphic_ops_match_plain_arithmetic_mod_t(seed in any::<u64>()) {
      for spec in ALL_SETS {
        let p = BfvParameters::new(spec).unwrap();
        let t = p.plaintext_modulus() as i64;
        let n = p.degree();
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let max = (t - 1) / 4;
        let (a, b, c) = (random_values(&mut rng, n, max), random_values(&mut rng, n, max), random_values(&mut rng, n, 3));
        let r = ValueRange::counts(max as u64);
        let sk = SecretKey::generate(&p);
        let pk = PublicKey::generate(&sk);
        let enc = |v: &[i64], range| pk.encrypt(&Plaintext::encode(&p, v, range).unwrap()).unwrap();
        let (ca, cb) = (enc(&a, r), sk.encrypt(&Plaintext::encode(&p, &b, r).unwrap()).unwrap());

        let mut sum = ca.clone();
        sum.add_assign(&cb).unwrap();
        let expect: Vec<i64> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
        prop_assert_eq!(sk.decrypt(&sum).unwrap().decode(), expect);

        let mut diff = ca.clone();
        diff.sub_assign(&cb).unwrap();
        let expect: Vec<i64> = a.iter().zip(&b).map(|(x, y)| x - y).collect();
        prop_assert_eq!(sk.decrypt(&diff).unwrap().decode(), expect);

        let mut neg = ca.clone();
        neg.neg_assign();
        prop_assert_eq!(sk.decrypt(&neg).unwrap().decode(), a.iter().map(|x| -x).collect::<Vec<_>>());

        let pc = Plaintext::encode(&p, &c, ValueRange::counts(3)).unwrap();
        let mut plus = ca.clone();
        plus.add_plain_assign(&pc).unwrap();
        prop_assert_eq!(sk.decrypt(&plus).unwrap().decode(), a.iter().zip(&c).map(|(x, y)| x + y).collect::<Vec<_>>());

        let mut prod = ca.clone();
        prod.mul_plain_assign(&pc).unwrap();
        prod.switch_to_transmit_level().unwrap();
        prop_assert_eq!(sk.decrypt(&prod).unwrap().decode(), a.iter().zip(&c).map(|(x, y)| x * y).collect::<Vec<_>>());
        prop_assert!(sk.noise_budget(&prod).unwrap() > 0.0);

        // modulus switching keeps the plaintext and shrinks the ciphertext (a set whose
        // contributions travel at the top level, for products, stays there)
        let mut switched = sum.clone();
        switched.switch_to_transmit_level().unwrap();
        prop_assert_eq!(sk.decrypt(&switched).unwrap().decode(), sk.decrypt(&sum).unwrap().decode());
        if p.transmit_level() < p.max_level() {
            prop_assert!(switched.serialized_len() < sum.serialized_len());
        } else {
            prop_assert_eq!(switched.serialized_len(), sum.serialized_len());
        }
      }
    }
}

#[test]
fn sums_up_to_t_minus_one_decrypt_exactly_and_one_more_is_an_overflow_error() {
    let p = BfvParameters::new(&params::ADD_8192).unwrap();
    let t = p.plaintext_modulus(); // 65537
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    // 16 contributions bounded by 4096 each: the sum's range [0, 65536] fits t = 65537 exactly.
    let per = 4096u64;
    let pt = Plaintext::encode(&p, &[per as i64, 0, 1], ValueRange::counts(per)).unwrap();
    let cts: Vec<Ciphertext> = (0..16).map(|_| pk.encrypt(&pt).unwrap()).collect();
    let sum = Ciphertext::sum(&cts).unwrap();
    assert_eq!(sum.range().hi, 16 * per as i128);
    assert_eq!(&sk.decrypt(&sum).unwrap().decode()[..3], &[65536, 0, 16]);
    // a 17th contribution could push a slot past t − 1: refused, not wrapped
    let mut more = sum.clone();
    let err = more.add_assign(&cts[0]).unwrap_err();
    assert!(
        matches!(err, BfvError::PlaintextOverflow { t: 65537, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("larger t"));
    assert_eq!(
        more, sum,
        "a refused addition leaves the ciphertext unchanged"
    );
    // a range that cannot fit t is refused at encoding
    assert!(Plaintext::encode(&p, &[1], ValueRange::counts(t)).is_err());
    assert!(matches!(
        Plaintext::encode(&p, &[11], ValueRange::counts(10)),
        Err(BfvError::ValueOutOfRange {
            slot: 0,
            value: 11,
            ..
        })
    ));
}

#[test]
fn noise_budget_is_measured_and_shrinks_with_work() {
    let p = BfvParameters::new(&params::ADD_8192).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let pt = Plaintext::encode(&p, &[7; 100], ValueRange::counts(8)).unwrap();
    let ct = pk.encrypt(&pt).unwrap();
    let fresh = sk.noise_budget(&ct).unwrap();
    // Q ≈ 2^108, t ≈ 2^16, fresh noise well below 2^12
    assert!(fresh > 108.0 - 17.0 - 13.0, "fresh budget {fresh}");
    let mut prod = ct.clone();
    prod.mul_plain_assign(&Plaintext::encode(&p, &[8; 100], ValueRange::counts(8)).unwrap())
        .unwrap();
    let after = sk.noise_budget(&prod).unwrap();
    assert!(
        after < fresh - 10.0,
        "plaintext product must eat budget: {fresh} → {after}"
    );
    let mut switched = ct.clone();
    switched.switch_to_transmit_level().unwrap();
    let sw = sk.noise_budget(&switched).unwrap();
    assert!(sw > 0.0 && sw < fresh, "switched budget {sw}");
}

#[test]
fn serialization_round_trips_with_the_bit_packed_size() {
    for p in all_params() {
        let sk = SecretKey::generate(&p);
        let pk = PublicKey::generate(&sk);
        let mut ct = pk
            .encrypt(&Plaintext::encode(&p, &[1, 2], ValueRange::counts(2)).unwrap())
            .unwrap();
        for level in [p.max_level(), p.transmit_level()] {
            ct.switch_to_level(level).unwrap();
            let bytes = ct.to_bytes();
            let n = p.degree();
            let bits: usize = p.ring().moduli()[..level]
                .iter()
                .map(|m| m.bits() as usize)
                .sum();
            // header 8 + level 1 + degree 1 + range 32 + 2 polys + checksum 16
            // (each modulus packs to whole bytes: N is a multiple of 8)
            assert_eq!(bytes.len(), 8 + 1 + 1 + 32 + 2 * n * bits / 8 + 16);
            assert_eq!(bytes.len(), ct.serialized_len());
            assert_eq!(Ciphertext::from_bytes(&p, &bytes).unwrap(), ct);
        }
        let pk_bytes = pk.to_bytes();
        assert_eq!(pk_bytes.len(), pk.serialized_len());
        assert_eq!(PublicKey::from_bytes(&p, &pk_bytes).unwrap(), pk);
        let sk2 = SecretKey::from_bytes(&p, &sk.to_bytes()).unwrap();
        assert_eq!(sk2.poly(), sk.poly());
    }
}

#[test]
fn malformed_values_are_refused_with_a_reason() {
    let p = BfvParameters::new(&params::ADD_4096).unwrap();
    let other = BfvParameters::new(&params::ADD_8192).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let ct = pk
        .encrypt(&Plaintext::encode(&p, &[5], ValueRange::counts(5)).unwrap())
        .unwrap();
    let bytes = ct.to_bytes();
    let wire = |r: Result<Ciphertext, BfvError>| match r {
        Err(BfvError::Wire(w)) => w,
        other => panic!("expected a wire error, got {other:?}"),
    };
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &bytes[..bytes.len() - 1])),
        WireError::Checksum
    ));
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &bytes[..10])),
        WireError::Truncated { .. }
    ));
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &[])),
        WireError::Truncated { .. }
    ));
    let mut tampered = bytes.clone();
    tampered[100] ^= 1;
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &tampered)),
        WireError::Checksum
    ));
    assert!(matches!(
        wire(Ciphertext::from_bytes(&other, &bytes)),
        WireError::Parameters {
            expected: 2,
            found: 1,
            ..
        }
    ));
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &pk.to_bytes())),
        WireError::Kind { .. }
    ));
    let mut magic = bytes.clone();
    magic[0] = b'X';
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &magic)),
        WireError::Magic
    ));
    let mut version = bytes.clone();
    version[4] = 9;
    assert!(matches!(
        wire(Ciphertext::from_bytes(&p, &version)),
        WireError::Version(9)
    ));
    // operations across sets or levels are refused
    let sk8 = SecretKey::generate(&other);
    assert!(matches!(
        sk8.decrypt(&ct),
        Err(BfvError::ParameterMismatch { .. })
    ));
    let mut low = ct.clone();
    low.switch_to_transmit_level().unwrap();
    let mut a = ct.clone();
    assert!(matches!(
        a.add_assign(&low),
        Err(BfvError::LevelMismatch { .. })
    ));
    assert!(matches!(
        low.switch_to_level(3),
        Err(BfvError::Level { .. })
    ));
}

#[test]
fn encryption_is_randomized() {
    let p = BfvParameters::new(&params::ADD_4096).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let pt = Plaintext::encode(&p, &[1], ValueRange::counts(1)).unwrap();
    assert_ne!(pk.encrypt(&pt).unwrap(), pk.encrypt(&pt).unwrap());
    assert_ne!(
        pk.encrypt(&pt).unwrap().tag(),
        pk.encrypt(&pt).unwrap().tag()
    );
}

#[test]
fn degree_two_ciphertexts_decrypt_through_every_power_of_the_secret() {
    // (c_0 − c_2·s², c_1, c_2) encrypts what (c_0, c_1) does: decryption must use s².
    let p = BfvParameters::new(&params::ADD_4096).unwrap();
    let ring = p.ring();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let ct = pk
        .encrypt(&Plaintext::encode(&p, &[3, 1, 4], ValueRange::counts(9)).unwrap())
        .unwrap();
    let c2 = uniform_poly(ring, p.max_level(), &mut ChaCha20Rng::seed_from_u64(5));
    let mut c2s2 = c2.clone();
    c2s2.mul_assign(ring, sk.poly());
    c2s2.mul_assign(ring, sk.poly());
    c2s2.to_coefficients(ring);
    let mut c0 = ct.c0().clone();
    c0.sub_assign(ring, &c2s2);
    let wide = Ciphertext::from_parts(&p, vec![c0, ct.c1().clone(), c2], ct.range());
    assert_eq!(wide.degree(), 2);
    assert_eq!(&sk.decrypt(&wide).unwrap().decode()[..3], &[3, 1, 4]);
    let bytes = wide.to_bytes();
    assert_eq!(Ciphertext::from_bytes(&p, &bytes).unwrap(), wide);
    // adding a degree-1 ciphertext to it keeps both messages
    let mut sum = wide.clone();
    sum.add_assign(&ct).unwrap();
    assert_eq!(&sk.decrypt(&sum).unwrap().decode()[..3], &[6, 2, 8]);
}
