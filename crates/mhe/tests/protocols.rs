//! The multiparty protocols end to end, with many parties, against plain arithmetic.

use concord_bfv::params::{self, ALL_SETS};
use concord_bfv::{
    BfvParameters, Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange, WireError,
};
use concord_mhe::*;
use concord_ring::{Poly, Representation};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

mod common;
use common::*;

/// Every party encrypts a random vector bounded by `max`; returns the transmitted ciphertexts
/// and the plaintext sum.
fn contributions(s: &Setup, max: u64, seed: u64) -> (Vec<Ciphertext>, Vec<i64>) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let n = s.params.degree();
    let mut total = vec![0i64; n];
    let cts = s
        .parties
        .iter()
        .map(|_| {
            let v: Vec<i64> = (0..n)
                .map(|_| (rng.next_u64() % (max + 1)) as i64)
                .collect();
            for (t, x) in total.iter_mut().zip(&v) {
                *t += x;
            }
            let mut ct =
                s.pk.encrypt(&Plaintext::encode(&s.params, &v, ValueRange::counts(max)).unwrap())
                    .unwrap();
            ct.switch_to_transmit_level().unwrap();
            // what is sent is what the aggregator parses
            Ciphertext::from_bytes(&s.params, &ct.to_bytes()).unwrap()
        })
        .collect();
    (cts, total)
}

#[test]
fn collective_public_key_satisfies_p_plus_a_s_is_small() {
    let s = setup(&params::ADD_8192, 16);
    let ring = s.params.ring();
    let secret = collective_secret(&s);
    let (p, a) = s.pk.at_level(s.params.max_level());
    let mut e = a.clone();
    e.mul_assign(ring, secret.poly());
    e.add_assign(ring, &p);
    e.to_coefficients(ring);
    let max = e
        .lift_centered(ring)
        .into_iter()
        .map(|c| c.magnitude().clone())
        .max()
        .unwrap();
    // Σ e_i of 16 Gaussians cut at 19: at most 16·19
    assert!(
        max <= num_bigint::BigUint::from(16u32 * 19),
        "‖p + a·s‖ = {max}"
    );
    assert!(max > num_bigint::BigUint::from(0u32));
}

#[test]
fn sixteen_parties_sum_and_jointly_decrypt_exactly() {
    let s = setup(&params::ADD_8192, 16);
    let (cts, total) = contributions(&s, 4095, 1);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 16, 16), 16)
            .unwrap();
    assert!(plan.lambda >= 40.0 && plan.margin_bits > 0.0, "{plan:?}");
    assert_eq!(
        joint_decrypt(&s, &sum, &party_keys(&s), plan).unwrap(),
        total
    );
    // the model's bound holds for the measured noise of the aggregate
    let secret = collective_secret(&s);
    let measured = secret.noise_bits(&sum).unwrap();
    let model = NoiseEstimate::aggregate(&s.params, 16, 16).log_bound();
    assert!(
        measured <= model,
        "measured noise 2^{measured:.1} above the model's bound 2^{model:.1}"
    );
    assert!(
        measured >= model - 6.0,
        "model far too pessimistic: 2^{measured:.1} vs 2^{model:.1}"
    );
}

#[test]
fn decryption_shares_really_carry_the_planned_smudging() {
    let s = setup(&params::ADD_8192, 4);
    let (cts, _) = contributions(&s, 10, 2);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 4, 4), 4)
            .unwrap();
    let cks = CollectiveDecryption::new(&sum, plan).unwrap();
    let share = cks.share(&s.keys[0], PartyId(1)).unwrap();
    // decompress h_1 and subtract s_1·c_1: what is left is the smudging plus compression error
    let ring = s.params.ring();
    let bytes = share.to_bytes();
    let d = plan.compressed_bits;
    let body = &bytes[8 + 4 + 16 + 4..bytes.len() - 16];
    let mut r = concord_ring::packing::BitReader::new(body);
    let values: Vec<u64> = (0..s.params.degree()).map(|_| r.read(d).unwrap()).collect();
    let mut h = concord_ring::torus::from_compressed_torus(ring, plan.level, &values, d);
    let mut c1 = sum.c1().clone();
    c1.to_ntt(ring);
    h.sub_assign(
        ring,
        &Poly::product_to_coefficients(ring, &c1, s.keys[0].poly()),
    );
    let e: Vec<f64> = h
        .lift_centered(ring)
        .iter()
        .map(|x| x.to_string().parse::<f64>().unwrap())
        .collect();
    let max = e.iter().fold(0f64, |m, x| m.max(x.abs()));
    let std = (e.iter().map(|x| x * x).sum::<f64>() / e.len() as f64).sqrt();
    let b = 2f64.powi(plan.bits as i32);
    assert!(
        max <= 1.26 * b,
        "smudging above its bound: {max:e} vs 2^{}",
        plan.bits
    );
    // uniform on [-2^b, 2^b): std = 2^b/√3
    assert!(
        (std / (b / 3f64.sqrt()) - 1.0).abs() < 0.05,
        "std {std:e}, expected {:e}",
        b / 3f64.sqrt()
    );
}

#[test]
fn public_key_switching_lets_only_the_receiver_decrypt() {
    let s = setup(&params::ADD_8192, 16);
    let (cts, total) = contributions(&s, 4095, 3);
    let sum = Ciphertext::sum(&cts).unwrap();
    let receiver = SecretKey::generate(&s.params);
    let receiver_pk =
        PublicKey::from_bytes(&s.params, &PublicKey::generate(&receiver).to_bytes()).unwrap();
    let plan =
        SmudgingPlan::for_key_switch(&s.params, NoiseEstimate::aggregate(&s.params, 16, 16), 16)
            .unwrap();
    assert!(plan.lambda >= 40.0);
    let pcks = PublicKeySwitch::new(&sum, &receiver_pk, plan).unwrap();
    let mut agg = pcks.aggregator();
    for (p, sk) in party_keys(&s) {
        let share = pcks.share(&sk, p).unwrap();
        agg.add(&KeySwitchShare::from_bytes(&s.params, &share.to_bytes()).unwrap())
            .unwrap();
    }
    let switched = pcks.finish(&agg, &s.parties).unwrap();
    assert_eq!(receiver.decrypt(&switched).unwrap().decode(), total);
    // smudging is present in the result, and the budget left is what the plan said
    let noise = receiver.noise_bits(&switched).unwrap();
    assert!(
        noise >= plan.bits as f64,
        "noise 2^{noise:.1} below the smudging 2^{}",
        plan.bits
    );
    assert!(receiver.noise_budget(&switched).unwrap() > 0.0);
    // the collective key (what the parties hold together) no longer decrypts it, nor does a stranger
    assert_ne!(
        collective_secret(&s).decrypt(&switched).unwrap().decode(),
        total
    );
    assert_ne!(
        SecretKey::generate(&s.params)
            .decrypt(&switched)
            .unwrap()
            .decode(),
        total
    );
}

/// The largest threshold configuration supported: N = 16, T = 8 (11,440 sub-shares), on the
/// statistics set. Eight parties decrypt, and two different sets of eight; PCKS too; seven are
/// not enough.
#[test]
fn threshold_eight_of_sixteen_decrypts_exactly() {
    let s = setup(&params::ADD_8192, 16);
    let (config, threshold_keys) = threshold_keys(&s, 8);
    assert_eq!(config.subsets(), 11_440);
    assert!(config.key_expansions() <= MAX_KEY_EXPANSIONS);
    let (cts, total) = contributions(&s, 1000, 16);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 16, 16), 8)
            .unwrap();
    let key = |p: PartyId, active: &[PartyId]| {
        threshold_keys[(p.0 - 1) as usize]
            .for_active_set(&config, active)
            .unwrap()
    };
    let active: Vec<PartyId> = [1, 3, 4, 8, 9, 12, 15, 16].map(PartyId).to_vec();
    let keys: Vec<(PartyId, SecretKey)> = active.iter().map(|&p| (p, key(p, &active))).collect();
    assert_eq!(joint_decrypt(&s, &sum, &keys, plan).unwrap(), total);
    let receiver = SecretKey::generate(&s.params);
    let kplan =
        SmudgingPlan::for_key_switch(&s.params, NoiseEstimate::aggregate(&s.params, 16, 16), 8)
            .unwrap();
    let other: Vec<PartyId> = (9..=16).map(PartyId).collect();
    let pcks = PublicKeySwitch::new(&sum, &PublicKey::generate(&receiver), kplan).unwrap();
    let mut agg = pcks.aggregator();
    for &p in &other {
        agg.add(&pcks.share(&key(p, &other), p).unwrap()).unwrap();
    }
    assert_eq!(
        receiver
            .decrypt(&pcks.finish(&agg, &other).unwrap())
            .unwrap()
            .decode(),
        total
    );
    assert!(matches!(
        threshold_keys[0].for_active_set(&config, &active[..7]),
        Err(MheError::Threshold(_))
    ));
}

/// Configurations beyond [`MAX_KEY_EXPANSIONS`] are refused with the supported range.
#[test]
fn threshold_configurations_out_of_range_are_refused_with_the_range() {
    for t in 2..=16 {
        ThresholdConfig::new(t, &ids(16)).unwrap();
    }
    let Err(MheError::Threshold(message)) = ThresholdConfig::new(9, &ids(17)) else {
        panic!("9 of 17 is out of range");
    };
    assert!(
        message.contains("supported thresholds are 2–7, 11–17"),
        "{message}"
    );
    let Err(MheError::Threshold(message)) = ThresholdConfig::new(16, &ids(32)) else {
        panic!("16 of 32 is out of range");
    };
    assert!(message.contains("2–3, 30–32"), "{message}");
    ThresholdConfig::new(2, &ids(256)).unwrap();
    assert!(ThresholdConfig::new(2, &ids(257)).is_err());
}

#[test]
fn threshold_five_of_nine_decrypts_with_four_parties_absent() {
    let s = setup(&params::ADD_8192, 9);
    let (config, threshold_keys) = threshold_keys(&s, 5);
    let (cts, total) = contributions(&s, 1000, 4);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 9, 9), 5)
            .unwrap();
    for active in [[1u32, 3, 5, 7, 9], [2, 4, 6, 8, 9], [5, 6, 7, 8, 9]] {
        let active: Vec<PartyId> = active.iter().map(|&i| PartyId(i)).collect();
        let keys: Vec<(PartyId, SecretKey)> = active
            .iter()
            .map(|&p| {
                (
                    p,
                    threshold_keys[(p.0 - 1) as usize]
                        .for_active_set(&config, &active)
                        .unwrap(),
                )
            })
            .collect();
        assert_eq!(
            joint_decrypt(&s, &sum, &keys, plan).unwrap(),
            total,
            "active set {active:?}"
        );
    }
    // PCKS with a threshold set as well
    let receiver = SecretKey::generate(&s.params);
    let rpk = PublicKey::generate(&receiver);
    let active: Vec<PartyId> = [1, 2, 3, 4, 5].map(PartyId).to_vec();
    let kplan =
        SmudgingPlan::for_key_switch(&s.params, NoiseEstimate::aggregate(&s.params, 9, 9), 5)
            .unwrap();
    let pcks = PublicKeySwitch::new(&sum, &rpk, kplan).unwrap();
    let mut agg = pcks.aggregator();
    for &p in &active {
        let sk = threshold_keys[(p.0 - 1) as usize]
            .for_active_set(&config, &active)
            .unwrap();
        agg.add(&pcks.share(&sk, p).unwrap()).unwrap();
    }
    assert_eq!(
        receiver
            .decrypt(&pcks.finish(&agg, &active).unwrap())
            .unwrap()
            .decode(),
        total
    );
    // four parties are not enough; a wrongly weighted set decrypts to garbage, which is why the
    // expected set is checked
    let four: Vec<PartyId> = [1, 2, 3, 4].map(PartyId).to_vec();
    assert!(matches!(
        threshold_keys[0].for_active_set(&config, &four),
        Err(MheError::Threshold(_))
    ));
    let five: Vec<PartyId> = [1, 2, 3, 4, 5].map(PartyId).to_vec();
    let wrong: Vec<(PartyId, SecretKey)> = [1u32, 2, 3, 4, 6]
        .iter()
        .map(|&i| {
            (
                PartyId(i),
                threshold_keys[(i - 1) as usize]
                    .for_active_set(&config, &[1, 2, 3, 4, 6].map(PartyId))
                    .unwrap(),
            )
        })
        .collect();
    let cks = CollectiveDecryption::new(&sum, plan).unwrap();
    let mut agg = cks.aggregator();
    for (p, sk) in &wrong {
        agg.add(&cks.share(sk, *p).unwrap()).unwrap();
    }
    assert!(matches!(
        cks.finish(&agg, &five),
        Err(MheError::UnexpectedShare(PartyId(6)))
    ));
}

#[test]
fn sixty_four_parties_at_n_4096() {
    let s = setup(&params::ADD_4096, 64);
    let (cts, total) = contributions(&s, 1000, 5);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 64, 64), 64)
            .unwrap();
    assert!(plan.lambda >= 40.0, "{plan:?}");
    assert_eq!(
        joint_decrypt(&s, &sum, &party_keys(&s), plan).unwrap(),
        total
    );
}

#[test]
fn large_counters_beyond_two_to_the_32_sum_exactly() {
    let s = setup(&params::ADD_8192_T33, 8);
    // the largest per-party bound whose sum over 8 parties still fits t (> 2^32)
    let max = (s.params.plaintext_modulus() - 1) / 8;
    let (cts, total) = contributions(&s, max, 6);
    let sum = Ciphertext::sum(&cts).unwrap();
    assert!(
        total.iter().any(|&x| x > 1 << 32),
        "the test must cross 2^32"
    );
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 8, 8), 8)
            .unwrap();
    assert_eq!(
        joint_decrypt(&s, &sum, &party_keys(&s), plan).unwrap(),
        total
    );
}

#[test]
fn every_set_smudges_with_at_least_40_bits_for_16_parties() {
    for spec in ALL_SETS {
        let p = BfvParameters::new(spec).unwrap();
        for plan in [
            SmudgingPlan::for_decryption(&p, NoiseEstimate::aggregate(&p, 16, 16), 16).unwrap(),
            SmudgingPlan::for_key_switch(&p, NoiseEstimate::aggregate(&p, 16, 16), 16).unwrap(),
        ] {
            assert!(
                plan.lambda >= 40.0 && plan.margin_bits > 0.0,
                "{}: {plan:?}",
                p.name()
            );
        }
    }
    // far too many parties for a set: a clear error, not a share that leaks or fails to decrypt
    let p = BfvParameters::new(&params::ADD_4096).unwrap();
    let err =
        SmudgingPlan::for_decryption(&p, NoiseEstimate::aggregate(&p, 100_000, 100_000), 100_000)
            .unwrap_err();
    assert!(
        matches!(err, MheError::InsufficientSmudging { .. }),
        "{err}"
    );
}

#[test]
fn bad_shares_are_refused_with_a_reason() {
    let s = setup(&params::ADD_4096, 4);
    let ckg = PublicKeyGen::new(&s.params, &s.crs);
    // a share from another CRS
    let other = PublicKeyGen::new(&s.params, &CommonReferenceString::random());
    let mut agg = ckg.aggregator();
    assert!(matches!(
        agg.add(&other.share(&s.keys[0], PartyId(1)).unwrap()),
        Err(MheError::CrsMismatch { .. })
    ));
    // a share of another parameter set
    let p8 = BfvParameters::new(&params::ADD_8192).unwrap();
    let sk8 = SecretKey::generate(&p8);
    let share8 = PublicKeyGen::new(&p8, &s.crs)
        .share(&sk8, PartyId(1))
        .unwrap();
    assert!(matches!(
        agg.add(&share8),
        Err(MheError::Bfv(
            concord_bfv::BfvError::ParameterMismatch { .. }
        ))
    ));
    assert!(matches!(
        PublicKeyShare::from_bytes(&s.params, &share8.to_bytes()),
        Err(MheError::Wire(WireError::Parameters { .. }))
    ));
    // duplicate and missing shares
    let sh = ckg.share(&s.keys[0], PartyId(1)).unwrap();
    agg.add(&sh).unwrap();
    assert!(matches!(
        agg.add(&sh),
        Err(MheError::DuplicateShare(PartyId(1)))
    ));
    agg.add(&ckg.share(&s.keys[1], PartyId(2)).unwrap())
        .unwrap();
    assert_eq!(
        ckg.finish(&agg, &s.parties).unwrap_err(),
        MheError::MissingShares(vec![PartyId(3), PartyId(4)])
    );
    // tampered and truncated serialized shares
    let mut bytes = sh.to_bytes();
    bytes[40] ^= 0x10;
    assert!(matches!(
        PublicKeyShare::from_bytes(&s.params, &bytes),
        Err(MheError::Wire(WireError::Checksum))
    ));
    let bytes = sh.to_bytes();
    assert!(matches!(
        PublicKeyShare::from_bytes(&s.params, &bytes[..bytes.len() / 2]),
        Err(MheError::Wire(WireError::Checksum))
    ));
    assert!(matches!(
        PublicKeyShare::from_bytes(&s.params, &bytes[..5]),
        Err(MheError::Wire(WireError::Truncated { .. }))
    ));
    // a decryption share made for another ciphertext
    let (cts, _) = contributions(&s, 5, 7);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 4, 4), 4)
            .unwrap();
    let cks = CollectiveDecryption::new(&sum, plan).unwrap();
    let cks_other = CollectiveDecryption::new(&cts[0], plan).unwrap();
    let mut dagg = cks.aggregator();
    assert!(matches!(
        dagg.add(&cks_other.share(&s.keys[0], PartyId(1)).unwrap()),
        Err(MheError::WrongCiphertext { .. })
    ));
    // a missing decryption share: no output rather than a wrong one
    for (sk, &p) in s.keys.iter().zip(&s.parties).take(3) {
        dagg.add(&cks.share(sk, p).unwrap()).unwrap();
    }
    assert_eq!(
        cks.finish(&dagg, &s.parties).unwrap_err(),
        MheError::MissingShares(vec![PartyId(4)])
    );
    // a share truncated in transit
    let dbytes = cks.share(&s.keys[3], PartyId(4)).unwrap().to_bytes();
    assert!(DecryptionShare::from_bytes(&s.params, &dbytes[..dbytes.len() - 3]).is_err());
    // a plan for another level
    let mut top = cts[0].clone();
    top.switch_to_level(1).unwrap();
    assert!(CollectiveDecryption::new(&top, plan).is_err());
    // threshold configuration errors
    assert!(ThresholdConfig::new(5, &s.parties).is_err());
    assert!(ThresholdConfig::new(2, &[PartyId(0), PartyId(1)]).is_err());
    assert!(ThresholdConfig::new(2, &[PartyId(1), PartyId(1)]).is_err());
    // T = 1 (every share the whole key), points other than 1..N
    assert!(ThresholdConfig::new(1, &s.parties).is_err());
    assert!(ThresholdConfig::new(2, &[PartyId(1), PartyId(2), PartyId(9)]).is_err());
    // a dealing relayed under another configuration (T = 3 dealt, T = 2 combined), twice from
    // one dealer, or without one: refused, nothing kept
    let (two, three) = (
        ThresholdConfig::new(2, &s.parties).unwrap(),
        ThresholdConfig::new(3, &s.parties).unwrap(),
    );
    let to_one = |config: &ThresholdConfig| -> Vec<Resharing> {
        s.keys
            .iter()
            .zip(&s.parties)
            .flat_map(|(sk, &p)| reshare(sk, p, config, b"misuse").unwrap())
            .filter(|r| r.to == PartyId(1))
            .collect()
    };
    let Err(MheError::Threshold(message)) =
        ThresholdSecretKey::combine(&s.params, PartyId(1), &two, &to_one(&three))
    else {
        panic!("a dealing of another threshold was combined");
    };
    assert!(message.contains("dealt for T = 3 of N = 4"), "{message}");
    let mut twice = to_one(&two);
    twice.push(to_one(&two).remove(0));
    assert!(matches!(
        ThresholdSecretKey::combine(&s.params, PartyId(1), &two, &twice),
        Err(MheError::DuplicateShare(PartyId(1)))
    ));
    let mut short = to_one(&two);
    short.pop();
    assert!(matches!(
        ThresholdSecretKey::combine(&s.params, PartyId(1), &two, &short),
        Err(MheError::MissingShares(_))
    ));
    assert!(ThresholdSecretKey::combine(&s.params, PartyId(1), &two, &to_one(&two)).is_ok());
}

#[test]
fn shares_serialize_with_their_packed_sizes() {
    let s = setup(&params::ADD_8192, 16);
    let n = s.params.degree();
    let ring = s.params.ring();
    let ckg = PublicKeyGen::new(&s.params, &s.crs);
    let share = ckg.share(&s.keys[0], PartyId(1)).unwrap();
    let top_bits: usize = ring.packed_bits_per_coefficient(s.params.max_level());
    assert_eq!(share.to_bytes().len(), 8 + 4 + 16 + n * top_bits / 8 + 16);
    assert_eq!(
        PublicKeyShare::from_bytes(&s.params, &share.to_bytes()).unwrap(),
        share
    );

    let (cts, _) = contributions(&s, 100, 8);
    let sum = Ciphertext::sum(&cts).unwrap();
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 16, 16), 16)
            .unwrap();
    let d = CollectiveDecryption::new(&sum, plan)
        .unwrap()
        .share(&s.keys[0], PartyId(1))
        .unwrap();
    let d_bytes = d.to_bytes();
    assert_eq!(
        d_bytes.len(),
        8 + 4 + 16 + 4 + n * plan.compressed_bits as usize / 8 + 16
    );
    assert_eq!(d_bytes.len(), d.serialized_len());
    assert_eq!(DecryptionShare::from_bytes(&s.params, &d_bytes).unwrap(), d);

    let receiver = PublicKey::generate(&SecretKey::generate(&s.params));
    let kplan =
        SmudgingPlan::for_key_switch(&s.params, NoiseEstimate::aggregate(&s.params, 16, 16), 16)
            .unwrap();
    let k = PublicKeySwitch::new(&sum, &receiver, kplan)
        .unwrap()
        .share(&s.keys[0], PartyId(1))
        .unwrap();
    let tl_bits = ring.packed_bits_per_coefficient(s.params.transmit_level());
    assert_eq!(
        k.to_bytes().len(),
        8 + 4 + 16 + 4 + n * kplan.compressed_bits as usize / 8 + n * tl_bits / 8 + 16
    );
    assert_eq!(
        KeySwitchShare::from_bytes(&s.params, &k.to_bytes()).unwrap(),
        k
    );
}

#[test]
fn joint_decryption_refuses_a_degree_two_ciphertext() {
    let s = setup(&params::ADD_4096, 2);
    let (cts, _) = contributions(&s, 5, 9);
    let ring = s.params.ring();
    let c2 = Poly::zero(ring, cts[0].level(), Representation::Coefficient);
    let wide = Ciphertext::from_parts(
        &s.params,
        vec![cts[0].c0().clone(), cts[0].c1().clone(), c2],
        cts[0].range(),
    );
    let plan =
        SmudgingPlan::for_decryption(&s.params, NoiseEstimate::aggregate(&s.params, 2, 2), 2)
            .unwrap();
    assert!(matches!(
        CollectiveDecryption::new(&wide, plan),
        Err(MheError::Bfv(concord_bfv::BfvError::Degree(2)))
    ));
    let receiver = PublicKey::generate(&SecretKey::generate(&s.params));
    assert!(matches!(
        PublicKeySwitch::new(&wide, &receiver, plan),
        Err(MheError::Bfv(concord_bfv::BfvError::Degree(2)))
    ));
}
