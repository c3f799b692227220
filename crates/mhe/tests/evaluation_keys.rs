//! RKG and GKG with many parties and with a threshold, then products, rotations and inner sums
//! under the collective keys, decrypted jointly (CKS) and switched to a receiver (PCKS) —
//! against plain arithmetic, with the noise model checked against measured noise.

use concord_bfv::params;
use concord_bfv::{
    BfvError, Ciphertext, GaloisKeys, Plaintext, PublicKey, RelinearizationKey, SecretKey,
    ValueRange, WireError,
};
use concord_mhe::*;
use concord_ring::{Poly, Representation};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

mod common;
use common::*;

/// RKG among `keys`, every share and the round-one aggregate travelling serialized.
fn rkg(s: &Setup, keys: &[(PartyId, SecretKey)]) -> RelinearizationKey {
    let gen = RelinearizationKeyGen::new(&s.params, &s.crs).unwrap();
    let mut round_one = gen.round_one_aggregator();
    let mut ephemeral = Vec::new();
    for (p, sk) in keys {
        let (u, share) = gen.round_one(sk, *p).unwrap();
        round_one
            .add(&EvaluationKeyShare::from_bytes(&s.params, &share.to_bytes()).unwrap())
            .unwrap();
        ephemeral.push(u);
    }
    // the coordinator sends the aggregate back to every party
    let round_one = EvaluationKeyAggregate::from_bytes(&s.params, &round_one.to_bytes()).unwrap();
    let mut round_two = gen.round_two_aggregator(&round_one).unwrap();
    for ((p, sk), u) in keys.iter().zip(&ephemeral) {
        let share = gen.round_two(sk, u, &round_one, *p).unwrap();
        round_two
            .add(&EvaluationKeyShare::from_bytes(&s.params, &share.to_bytes()).unwrap())
            .unwrap();
    }
    let expected: Vec<PartyId> = keys.iter().map(|(p, _)| *p).collect();
    gen.finish(&round_one, &round_two, &expected).unwrap()
}

/// GKG among `keys`.
fn gkg(s: &Setup, gen: &GaloisKeyGen, keys: &[(PartyId, SecretKey)]) -> GaloisKeys {
    let mut agg = gen.aggregator();
    for (p, sk) in keys {
        for share in gen.shares(sk, *p).unwrap() {
            agg.add(&EvaluationKeyShare::from_bytes(&s.params, &share.to_bytes()).unwrap())
                .unwrap();
        }
    }
    let expected: Vec<PartyId> = keys.iter().map(|(p, _)| *p).collect();
    gen.finish(&agg, &expected).unwrap()
}

/// `log2 ‖b_j + a_j·s − w_j·x‖_∞` over the digits of a key-switching key from `x` to `s`.
fn key_noise_bits(s: &Setup, parts: &[[Poly; 2]], secret: &SecretKey, x: &Poly) -> f64 {
    let ring = s.params.key_ring();
    parts
        .iter()
        .enumerate()
        .map(|(digit, [b, a])| {
            let mut e = a.clone();
            e.mul_assign(ring, secret.poly());
            e.add_assign(ring, b);
            let mut wx = Poly::zero(ring, ring.max_level(), Representation::Ntt);
            s.params.add_gadget_multiple(&mut wx, digit, x);
            e.sub_assign(ring, &wx);
            e.to_coefficients(ring);
            let m = ring.moduli()[0];
            let max = e
                .residues(0)
                .iter()
                .map(|&r| m.center(r).unsigned_abs())
                .max();
            (max.unwrap_or(0).max(1) as f64).log2()
        })
        .fold(0.0, f64::max)
}

fn bits(rng: &mut ChaCha20Rng, n: usize) -> Vec<i64> {
    // mostly ones, so that a product of 16 is often 1
    (0..n)
        .map(|_| i64::from(!rng.next_u64().is_multiple_of(16)))
        .collect()
}

#[test]
fn sixteen_parties_multiply_sum_slots_and_count_overlaps_exactly() {
    let s = setup(&params::MUL_16384, 16);
    let keys = party_keys(&s);
    let secret = collective_secret(&s);
    let ring = s.params.ring();
    let rlk = rkg(&s, &keys);
    let gk = gkg(
        &s,
        &GaloisKeyGen::for_inner_sum(&s.params, &s.crs).unwrap(),
        &keys,
    );
    // the keys satisfy their equations under the collective secret, with small noise
    let mut s2 = secret.poly().truncated(ring, s.params.max_level());
    s2.mul_assign(ring, secret.poly());
    let rlk_noise = key_noise_bits(&s, rlk.parts(), &secret, &s2);
    assert!(
        rlk_noise < 30.0,
        "relinearization key noise 2^{rlk_noise:.1}"
    );
    for g in gk.elements().collect::<Vec<_>>() {
        let noise = key_noise_bits(
            &s,
            gk.parts(g).unwrap(),
            &secret,
            &secret.galois_image(g).unwrap(),
        );
        assert!(noise < 12.0, "Galois key {g} noise 2^{noise:.1}");
    }

    // every party encrypts an indicator vector; the product says "all sixteen have it"
    let n = s.params.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(6);
    let vectors: Vec<Vec<i64>> = (0..16).map(|_| bits(&mut rng, n)).collect();
    let mut level: Vec<(Ciphertext, NoiseEstimate)> = vectors
        .iter()
        .map(|v| {
            let pt = Plaintext::encode(&s.params, v, ValueRange::counts(1)).unwrap();
            let ct = s.pk.encrypt(&pt).unwrap();
            let ct = Ciphertext::from_bytes(&s.params, &ct.to_bytes()).unwrap();
            (ct, NoiseEstimate::fresh(&s.params, 16))
        })
        .collect();
    let level_zero = level[0].0.clone();
    let level_zero_rest: Vec<Ciphertext> = level[1..].iter().map(|(ct, _)| ct.clone()).collect();
    let mut depth = 0;
    while level.len() > 1 {
        depth += 1;
        level = level
            .chunks(2)
            .map(|pair| {
                let ct = pair[0].0.multiply_relinearize(&pair[1].0, &rlk).unwrap();
                let model = pair[0].1.multiplied(pair[1].1, &s.params, 16);
                let measured = secret.noise_bits(&ct).unwrap();
                assert!(
                    measured < model.log_bound(),
                    "depth {depth}: noise 2^{measured:.1} above the model's 2^{:.1}",
                    model.log_bound()
                );
                (ct, model)
            })
            .collect();
        println!(
            "depth {depth}: noise budget {:.0} bits, noise 2^{:.1}, model 2^{:.1}",
            secret.noise_budget(&level[0].0).unwrap(),
            secret.noise_bits(&level[0].0).unwrap(),
            level[0].1.log_bound()
        );
    }
    let (product, product_model) = level.pop().unwrap();
    let all: Vec<i64> = (0..n)
        .map(|i| vectors.iter().map(|v| v[i]).product())
        .collect();
    assert!(all.contains(&1) && all.contains(&0));
    assert_eq!(secret.decrypt(&product).unwrap().decode(), all);

    // the number of indicators all sixteen share, in every slot
    let count = product.inner_sum(&gk).unwrap();
    let model = product_model.inner_summed(&s.params, 16);
    assert!(secret.noise_bits(&count).unwrap() < model.log_bound());
    let total: i64 = all.iter().sum();
    // far too noisy for 62-bit smudging at the top: switched down first
    assert!(SmudgingPlan::for_decryption(&s.params, model, 16).is_err());
    let plan = SmudgingPlan::for_decryption_at_lowest_level(&s.params, model, 16, 16).unwrap();
    assert!(plan.lambda >= 40.0, "λ = {:.1}", plan.lambda);
    println!(
        "inner sum: decrypted at level {}, smudging λ = {:.1}, margin {:.0} bits",
        plan.level, plan.lambda, plan.margin_bits
    );
    let mut count = count;
    count.switch_to_level(plan.level).unwrap();
    assert_eq!(
        joint_decrypt(&s, &count, &keys, plan).unwrap(),
        vec![total; n]
    );
    let product_plan =
        SmudgingPlan::for_decryption_at_lowest_level(&s.params, product_model, 16, 16).unwrap();
    let mut product = product;
    product.switch_to_level(product_plan.level).unwrap();
    assert_eq!(
        joint_decrypt(&s, &product, &keys, product_plan).unwrap(),
        all
    );

    // the overlap histogram: in how many of the 16 parties' vectors each slot is set, counted
    // over all slots — slot j of the result holds how many slots are set in exactly j of them
    let mut sum = level_zero.clone();
    for ct in &level_zero_rest {
        sum.add_assign(ct).unwrap();
    }
    let histogram = sum.slot_histogram(0..=16, &rlk, &gk).unwrap();
    let t = s.params.plaintext_modulus() as f64;
    let summed = NoiseEstimate::fresh(&s.params, 16).summed(16);
    let mut power = summed;
    for _ in 0..4 {
        power = power.multiplied(power, &s.params, 16); // x^16, at depth 4
    }
    let histogram_model = power
        .scaled(17.0 * t / 2.0) // the indicator's coefficients
        .inner_summed(&s.params, 16)
        .scaled(n as f64 * t / 2.0) // the unit vector
        .scaled(17.0); // the bins
    assert!(secret.noise_bits(&histogram).unwrap() < histogram_model.log_bound());
    let plan =
        SmudgingPlan::for_decryption_at_lowest_level(&s.params, histogram_model, 16, 16).unwrap();
    assert!(plan.lambda >= 40.0);
    let mut histogram = histogram;
    histogram.switch_to_level(plan.level).unwrap();
    let mut expect = vec![0i64; n];
    for i in 0..n {
        expect[vectors.iter().map(|v| v[i]).sum::<i64>() as usize] += 1;
    }
    assert_eq!(joint_decrypt(&s, &histogram, &keys, plan).unwrap(), expect);

    // PCKS: only the receiver reads it
    let receiver = SecretKey::generate(&s.params);
    let receiver_pk = PublicKey::generate(&receiver);
    let plan = SmudgingPlan::for_key_switch_at_lowest_level(&s.params, model, 16, 16).unwrap();
    assert!(plan.lambda >= 40.0);
    assert_eq!(plan.level, count.level());
    let pcks = PublicKeySwitch::new(&count, &receiver_pk, plan).unwrap();
    let mut agg = pcks.aggregator();
    for (p, sk) in &keys {
        agg.add(&pcks.share(sk, *p).unwrap()).unwrap();
    }
    let switched = pcks.finish(&agg, &s.parties).unwrap();
    assert_eq!(
        receiver.decrypt(&switched).unwrap().decode(),
        vec![total; n]
    );
    assert_ne!(secret.decrypt(&switched).unwrap().decode(), vec![total; n]);
}

#[test]
fn threshold_five_of_nine_generates_evaluation_keys_with_four_parties_absent() {
    let s = setup(&params::MUL_16384, 9);
    let (config, threshold) = threshold_keys(&s, 5);
    let weighted = |active: &[u32]| -> Vec<(PartyId, SecretKey)> {
        let active: Vec<PartyId> = active.iter().map(|&i| PartyId(i)).collect();
        active
            .iter()
            .map(|&p| {
                let k = threshold[(p.0 - 1) as usize]
                    .for_active_set(&config, &active)
                    .unwrap();
                (p, k)
            })
            .collect()
    };
    // keys from parties 2, 3, 5, 7, 8; parties 1, 4, 6, 9 absent
    let generating = weighted(&[2, 3, 5, 7, 8]);
    let rlk = rkg(&s, &generating);
    let gk = gkg(
        &s,
        &GaloisKeyGen::for_rotations(&s.params, &s.crs, &[1], true).unwrap(),
        &generating,
    );
    // the key is for the collective secret of all nine
    let secret = collective_secret(&s);
    let ring = s.params.ring();
    let mut s2 = secret.poly().truncated(ring, s.params.max_level());
    s2.mul_assign(ring, secret.poly());
    assert!(key_noise_bits(&s, rlk.parts(), &secret, &s2) < 30.0);

    // all nine contribute; a product of four and a rotation, decrypted by another five
    let n = s.params.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(9);
    let vectors: Vec<Vec<i64>> = (0..4)
        .map(|_| (0..n).map(|_| (rng.next_u64() % 16) as i64).collect())
        .collect();
    let cts: Vec<Ciphertext> = vectors
        .iter()
        .map(|v| {
            s.pk.encrypt(&Plaintext::encode(&s.params, v, ValueRange::counts(15)).unwrap())
                .unwrap()
        })
        .collect();
    let left = cts[0].multiply_relinearize(&cts[1], &rlk).unwrap();
    let right = cts[2].multiply_relinearize(&cts[3], &rlk).unwrap();
    let product = left.multiply_relinearize(&right, &rlk).unwrap();
    let rotated = product.rotate_rows(1, &gk).unwrap().swap_rows(&gk).unwrap();
    let half = n / 2;
    let plain: Vec<i64> = (0..n)
        .map(|i| vectors.iter().map(|v| v[i]).product())
        .collect();
    let expect: Vec<i64> = (0..n)
        .map(|i| {
            let (row, col) = (1 - i / half, (i % half + 1) % half);
            plain[row * half + col]
        })
        .collect();
    let fresh = NoiseEstimate::fresh(&s.params, 9);
    let d1 = fresh.multiplied(fresh, &s.params, 9);
    let model = d1
        .multiplied(d1, &s.params, 9)
        .key_switched(&s.params, 9)
        .key_switched(&s.params, 9);
    let plan = SmudgingPlan::for_decryption_at_lowest_level(&s.params, model, 9, 5).unwrap();
    assert!(plan.lambda >= 40.0);
    let mut rotated = rotated;
    rotated.switch_to_level(plan.level).unwrap();
    for active in [[1u32, 4, 6, 8, 9], [2, 3, 5, 7, 8]] {
        let keys = weighted(&active);
        assert_eq!(
            joint_decrypt(&s, &rotated, &keys, plan).unwrap(),
            expect,
            "active {active:?}"
        );
    }
    // four parties cannot run RKG at all
    assert!(matches!(
        threshold[0].for_active_set(&config, &[1, 2, 3, 4].map(PartyId)),
        Err(MheError::Threshold(_))
    ));
}

#[test]
fn evaluation_key_shares_are_checked_and_refused_with_a_reason() {
    let s = setup(&params::MUL_16384, 3);
    let keys = party_keys(&s);
    // an additive set has no evaluation keys
    let additive = concord_bfv::BfvParameters::new(&params::ADD_4096).unwrap();
    assert!(matches!(
        RelinearizationKeyGen::new(&additive, &s.crs),
        Err(MheError::Bfv(BfvError::NotMultiplicative(_)))
    ));
    assert!(matches!(
        GaloisKeyGen::new(&s.params, &s.crs, &[4]),
        Err(MheError::Bfv(BfvError::GaloisElement { element: 4, .. }))
    ));
    let gen = RelinearizationKeyGen::new(&s.params, &s.crs).unwrap();
    let mut round_one = gen.round_one_aggregator();
    let mut ephemeral = Vec::new();
    for (p, sk) in &keys {
        let (u, share) = gen.round_one(sk, *p).unwrap();
        round_one.add(&share).unwrap();
        assert_eq!(round_one.add(&share), Err(MheError::DuplicateShare(*p)));
        ephemeral.push((u, share));
    }
    // a round-two share answering another round one is refused
    let mut other = gen.round_one_aggregator();
    other.add(&ephemeral[0].1).unwrap();
    let stray = gen
        .round_two(&keys[0].1, &ephemeral[0].0, &other, keys[0].0)
        .unwrap();
    let mut round_two = gen.round_two_aggregator(&round_one).unwrap();
    assert!(matches!(
        round_two.add(&stray),
        Err(MheError::IncompatibleShare { .. })
    ));
    // a round-one share is not a round-two share; another party's ephemeral is refused
    assert!(matches!(
        round_two.add(&ephemeral[1].1),
        Err(MheError::IncompatibleShare { .. })
    ));
    assert!(matches!(
        gen.round_two(&keys[1].1, &ephemeral[0].0, &round_one, keys[1].0),
        Err(MheError::IncompatibleShare { .. })
    ));
    for ((p, sk), (u, _)) in keys.iter().zip(&ephemeral).take(2) {
        round_two
            .add(&gen.round_two(sk, u, &round_one, *p).unwrap())
            .unwrap();
    }
    // a missing party: no key
    assert_eq!(
        gen.finish(&round_one, &round_two, &s.parties).unwrap_err(),
        MheError::MissingShares(vec![PartyId(3)])
    );
    // another CRS
    let other_crs = CommonReferenceString::random();
    let other_gen = RelinearizationKeyGen::new(&s.params, &other_crs).unwrap();
    let (_, foreign) = other_gen.round_one(&keys[0].1, keys[0].0).unwrap();
    assert!(matches!(
        gen.round_one_aggregator().add(&foreign),
        Err(MheError::CrsMismatch { .. })
    ));
    // GKG: a share of an element outside the run
    let rot = GaloisKeyGen::for_rotations(&s.params, &s.crs, &[1], false).unwrap();
    let swap = GaloisKeyGen::for_rotations(&s.params, &s.crs, &[], true).unwrap();
    let g = swap.elements().next().unwrap();
    let share = swap.share(&keys[0].1, keys[0].0, g).unwrap();
    assert!(matches!(
        rot.aggregator().add(&share),
        Err(MheError::IncompatibleShare { .. })
    ));
    // wire: sizes, round trip, corruption, another kind
    let bytes = share.to_bytes();
    assert_eq!(bytes.len(), share.serialized_len());
    assert_eq!(
        EvaluationKeyShare::from_bytes(&s.params, &bytes).unwrap(),
        share
    );
    let mut corrupt = bytes.clone();
    corrupt[100] ^= 1;
    assert_eq!(
        EvaluationKeyShare::from_bytes(&s.params, &corrupt).unwrap_err(),
        MheError::Wire(WireError::Checksum)
    );
    assert!(matches!(
        EvaluationKeyAggregate::from_bytes(&s.params, &bytes),
        Err(MheError::Wire(WireError::Kind { .. }))
    ));
    let agg_bytes = round_one.to_bytes();
    assert_eq!(agg_bytes.len(), round_one.serialized_len());
    // a party's id of the round one it parsed is the coordinator's, and names nothing else
    let parsed = EvaluationKeyAggregate::from_bytes(&s.params, &agg_bytes).unwrap();
    assert_eq!(parsed.digest(), round_one.digest());
    assert_ne!(other.digest(), round_one.digest());
    println!(
        "MUL-16384: RKG round-one share {} B, round-two share {} B, Galois key share {} B",
        ephemeral[0].1.serialized_len(),
        stray.serialized_len(),
        share.serialized_len()
    );
}

#[test]
fn too_deep_a_circuit_is_refused_before_joint_decryption() {
    let s = setup(&params::MUL_16384, 4);
    let keys = party_keys(&s);
    let secret = collective_secret(&s);
    let rlk = rkg(&s, &keys);
    let n = s.params.degree();
    let ones = Plaintext::encode(&s.params, &vec![1; n], ValueRange::counts(1)).unwrap();
    let mut ct = s.pk.encrypt(&ones).unwrap();
    let mut noise = NoiseEstimate::fresh(&s.params, 4);
    // x^(2^d) by squaring: the plan is made while the set's budget holds, refused once it is spent
    for depth in 1..=9 {
        ct = ct.multiply_relinearize(&ct, &rlk).unwrap();
        noise = noise.multiplied(noise, &s.params, 4);
        let plan = SmudgingPlan::for_decryption_at_lowest_level(&s.params, noise, 4, 4);
        let budget = secret.noise_budget(&ct).unwrap();
        match plan {
            Ok(plan) => {
                assert!(budget > 0.0, "depth {depth}: a plan for a spent budget");
                let mut low = ct.clone();
                low.switch_to_level(plan.level).unwrap();
                assert_eq!(joint_decrypt(&s, &low, &keys, plan).unwrap(), vec![1; n]);
            }
            Err(e) => {
                assert!(matches!(e, MheError::InsufficientSmudging { .. }));
                assert!(depth >= 6, "depth {depth} refused: {e}");
                println!("depth {depth} refused ({budget:.0} bits left): {e}");
                return;
            }
        }
    }
    panic!("depth 9 was not refused");
}

#[test]
fn mul_32768_multiplies_64_ciphertexts_under_a_collective_key_and_decrypts_jointly() {
    let s = setup(&params::MUL_32768, 4);
    let keys = party_keys(&s);
    let secret = collective_secret(&s);
    let rlk = rkg(&s, &keys);
    let n = s.params.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(64);
    // indicators that are mostly one, so that the product of 64 is one in about a third
    let vectors: Vec<Vec<i64>> = (0..64)
        .map(|_| {
            (0..n)
                .map(|_| i64::from(rng.next_u64() % 64 != 0))
                .collect()
        })
        .collect();
    let fresh = NoiseEstimate::fresh(&s.params, 4);
    let mut level: Vec<(Ciphertext, NoiseEstimate)> = vectors
        .iter()
        .map(|v| {
            let pt = Plaintext::encode(&s.params, v, ValueRange::counts(1)).unwrap();
            (s.pk.encrypt(&pt).unwrap(), fresh)
        })
        .collect();
    let mut budgets = Vec::new();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| {
                let ct = pair[0].0.multiply_relinearize(&pair[1].0, &rlk).unwrap();
                (ct, pair[0].1.multiplied(pair[1].1, &s.params, 4))
            })
            .collect();
        let (ct, model) = &level[0];
        let measured = secret.noise_bits(ct).unwrap();
        assert!(
            measured < model.log_bound(),
            "noise 2^{measured:.1} above the model"
        );
        budgets.push(secret.noise_budget(ct).unwrap().round());
    }
    println!("MUL-32768, 4-party key: noise budget by depth {budgets:?}");
    assert_eq!(budgets.len(), 6);
    let (product, model) = level.pop().unwrap();
    let plan = SmudgingPlan::for_decryption_at_lowest_level(&s.params, model, 4, 4).unwrap();
    assert!(plan.lambda >= 40.0, "λ = {:.1}", plan.lambda);
    println!(
        "depth 6: decrypted at level {} with λ = {:.1}",
        plan.level, plan.lambda
    );
    let mut product = product;
    product.switch_to_level(plan.level).unwrap();
    let all: Vec<i64> = (0..n)
        .map(|i| vectors.iter().map(|v| v[i]).product())
        .collect();
    assert!(all.contains(&1) && all.contains(&0));
    assert_eq!(joint_decrypt(&s, &product, &keys, plan).unwrap(), all);
}

/// The overlap of 16 parties' presence vectors over two ciphertexts of bins, counted under the
/// collective keys (`value_counts`: powers summed over the ciphertexts, no rotations), and
/// released by shares of the constant coefficient alone — jointly decrypted, and switched to a
/// receiver — each count exactly the plain one.
#[test]
fn sixteen_parties_count_overlaps_and_release_the_counts_alone() {
    let s = setup(&params::MUL_16384_T26, 16);
    let keys = party_keys(&s);
    let secret = collective_secret(&s);
    let rlk = rkg(&s, &keys);
    let n = s.params.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(31);
    let presence: Vec<Vec<Vec<i64>>> = (0..16)
        .map(|_| {
            (0..2)
                .map(|_| {
                    (0..n)
                        .map(|_| i64::from(rng.next_u64().is_multiple_of(3)))
                        .collect()
                })
                .collect()
        })
        .collect();
    let sums: Vec<Ciphertext> = (0..2)
        .map(|c| {
            let cts: Vec<Ciphertext> = presence
                .iter()
                .map(|bits| {
                    let pt = Plaintext::encode(&s.params, &bits[c], ValueRange::counts(1)).unwrap();
                    let mut ct = s.pk.encrypt(&pt).unwrap();
                    ct.switch_to_transmit_level().unwrap();
                    ct
                })
                .collect();
            Ciphertext::sum(&cts).unwrap()
        })
        .collect();
    let mut expected = [0u64; 17];
    for c in 0..2 {
        for slot in 0..n {
            expected[presence.iter().map(|bits| bits[c][slot]).sum::<i64>() as usize] += 1;
        }
    }
    let counts = Ciphertext::value_counts(&sums, 0..=16, 1..=16, &rlk).unwrap();
    let model = NoiseEstimate::aggregate(&s.params, 16, 16).value_counted(&s.params, 16, 17, 2);
    for count in &counts {
        assert!(secret.noise_bits(count).unwrap() < model.log_bound());
    }
    let plan = SmudgingPlan::for_decryption_at_lowest_level(&s.params, model, 16, 16).unwrap();
    assert!(plan.lambda >= 40.0);
    let receiver = SecretKey::generate(&s.params);
    let receiver_pk = PublicKey::generate(&receiver);
    let kplan = SmudgingPlan::for_key_switch_at_lowest_level(&s.params, model, 16, 16).unwrap();
    // the 16 counts released together: one share per party, one plaintext whose coefficient
    // j - 1 is count j
    let at_plan: Vec<Ciphertext> = counts
        .iter()
        .map(|count| {
            let mut ct = count.clone();
            ct.switch_to_level(plan.level).unwrap();
            ct
        })
        .collect();
    let cks = CollectiveDecryption::constants(&at_plan, plan).unwrap();
    let mut agg = cks.aggregator();
    for (p, sk) in &keys {
        let share = cks.share(sk, *p).unwrap();
        let bytes = share.to_bytes();
        assert!(bytes.len() < 64 + 16 * 8, "a share is one value per count");
        agg.add(&DecryptionShare::from_bytes(&s.params, &bytes).unwrap())
            .unwrap();
    }
    let released = cks.finish(&agg, &s.parties).unwrap();
    assert_eq!(released.coefficients()[..16], expected[1..]);
    assert!(released.coefficients()[16..].iter().all(|&c| c == 0));

    let at_kplan: Vec<Ciphertext> = counts
        .iter()
        .map(|count| {
            let mut ct = count.clone();
            ct.switch_to_level(kplan.level).unwrap();
            ct
        })
        .collect();
    let pcks = PublicKeySwitch::constants(&at_kplan, &receiver_pk, kplan).unwrap();
    let mut agg = pcks.aggregator();
    for (p, sk) in &keys {
        let share = pcks.share(sk, *p).unwrap();
        agg.add(&KeySwitchShare::from_bytes(&s.params, &share.to_bytes()).unwrap())
            .unwrap();
    }
    let switched = pcks.finish(&agg, &s.parties).unwrap();
    assert_eq!(
        receiver.decrypt(&switched).unwrap().coefficients()[..16],
        expected[1..],
        "switched"
    );
    // noise each party adds inside its share (differential privacy of a computed result)
    // shifts each released count by exactly the sum of the parties' noise, under CKS and PCKS
    let t = s.params.plaintext_modulus() as i64;
    let noise: Vec<Vec<i64>> = (0..keys.len() as i64)
        .map(|i| (0..16).map(|j| (i * 7 + j) % 11 - 5).collect())
        .collect();
    let noised = |j: usize| {
        (expected[j + 1] as i64 + noise.iter().map(|n| n[j]).sum::<i64>()).rem_euclid(t) as u64
    };
    let mut agg = cks.aggregator();
    let mut kagg = pcks.aggregator();
    for ((p, sk), noise) in keys.iter().zip(&noise) {
        agg.add(&cks.share_with_noise(sk, *p, noise).unwrap())
            .unwrap();
        kagg.add(&pcks.share_with_noise(sk, *p, noise).unwrap())
            .unwrap();
    }
    let with_noise = cks.finish(&agg, &s.parties).unwrap();
    let switched_with_noise = receiver
        .decrypt(&pcks.finish(&kagg, &s.parties).unwrap())
        .unwrap();
    for j in 0..16 {
        assert_eq!(with_noise.coefficients()[j], noised(j), "j = {}", j + 1);
        assert_eq!(
            switched_with_noise.coefficients()[j],
            noised(j),
            "j = {}",
            j + 1
        );
    }
    assert!(matches!(
        cks.share_with_noise(&keys[0].1, keys[0].0, &[0; 17]),
        Err(MheError::NoiseLength {
            given: 17,
            released: 16
        })
    ));
    // one ciphertext for the 16 counts, however many there are
    assert_eq!(switched.to_bytes().len(), at_kplan[0].to_bytes().len());

    // shares of another extent do not mix
    let constant = CollectiveDecryption::constants(&at_plan[..1], plan).unwrap();
    let whole = CollectiveDecryption::new(&at_plan[0], plan).unwrap();
    let (p, sk) = &keys[0];
    assert!(matches!(
        constant.aggregator().add(&whole.share(sk, *p).unwrap()),
        Err(MheError::WrongCiphertext { .. })
    ));
    assert!(matches!(
        whole.aggregator().add(&constant.share(sk, *p).unwrap()),
        Err(MheError::WrongCiphertext { .. })
    ));
    // nor do shares of the same counts in another order
    let reversed: Vec<Ciphertext> = at_plan.iter().rev().cloned().collect();
    let other = CollectiveDecryption::constants(&reversed, plan).unwrap();
    assert!(matches!(
        cks.aggregator().add(&other.share(sk, *p).unwrap()),
        Err(MheError::WrongCiphertext { .. })
    ));
}

/// SACTI's scale of community (100 institutions) on `MUL-32768-T26`: 100 parties' presence
/// bits summed, the 101 equality indicators of the sum (degree 100, depth 7) counted under the
/// 100-party collective keys, and the 100 counts released by one constant-coefficient share per
/// party, sealed to a receiver — each count exactly the plain one, with the noise model above
/// the measured noise and λ ≥ 40 bits of smudging.
#[test]
fn a_hundred_parties_count_overlaps_of_degree_one_hundred() {
    let parties = 100;
    let s = setup(&params::MUL_32768_T26, parties);
    let keys = party_keys(&s);
    let secret = collective_secret(&s);
    let rlk = rkg(&s, &keys);
    let n = s.params.degree();
    // slot i is held by (i mod 101) parties, a different random subset each slot: every count
    // j = 0..=100 occurs, each ≈ 324 times
    let mut rng = ChaCha20Rng::seed_from_u64(100);
    let mut presence = vec![vec![0i64; n]; parties as usize];
    let mut expected = vec![0u64; parties as usize + 1];
    // (slot indexes a column of the parties' rows)
    #[allow(clippy::needless_range_loop)]
    for slot in 0..n {
        let holders = slot % (parties as usize + 1);
        let mut order: Vec<usize> = (0..parties as usize).collect();
        for i in 0..holders {
            let j = i + (rng.next_u64() % (order.len() - i) as u64) as usize;
            order.swap(i, j);
            presence[order[i]][slot] = 1;
        }
        expected[holders] += 1;
    }
    let cts: Vec<Ciphertext> = presence
        .iter()
        .map(|bits| {
            let pt = Plaintext::encode(&s.params, bits, ValueRange::counts(1)).unwrap();
            s.pk.encrypt(&pt).unwrap()
        })
        .collect();
    let sum = Ciphertext::sum(&cts).unwrap();
    let values = parties as usize + 1;
    let counts =
        Ciphertext::value_counts(&[sum], 0..=i64::from(parties), 1..=i64::from(parties), &rlk)
            .unwrap();
    let model = NoiseEstimate::aggregate(&s.params, parties as usize, parties as usize)
        .value_counted(&s.params, parties as usize, values, 1);
    let measured = counts
        .iter()
        .map(|count| secret.noise_bits(count).unwrap())
        .fold(0.0, f64::max);
    let budget = counts
        .iter()
        .map(|count| secret.noise_budget(count).unwrap())
        .fold(f64::INFINITY, f64::min);
    println!(
        "MUL-32768-T26, 100 parties, degree 100: noise 2^{measured:.1} (model 2^{:.1}), budget {budget:.0} bits",
        model.log_bound()
    );
    assert!(measured < model.log_bound());
    let receiver = SecretKey::generate(&s.params);
    let receiver_pk = PublicKey::generate(&receiver);
    let plan = SmudgingPlan::for_key_switch_at_lowest_level(&s.params, model, 100, 100).unwrap();
    assert!(plan.lambda >= 40.0, "λ = {:.1}", plan.lambda);
    let at_plan: Vec<Ciphertext> = counts
        .into_iter()
        .map(|mut count| {
            count.switch_to_level(plan.level).unwrap();
            count
        })
        .collect();
    let pcks = PublicKeySwitch::constants(&at_plan, &receiver_pk, plan).unwrap();
    let mut agg = pcks.aggregator();
    for (p, sk) in &keys {
        let share = pcks.share(sk, *p).unwrap();
        agg.add(&KeySwitchShare::from_bytes(&s.params, &share.to_bytes()).unwrap())
            .unwrap();
    }
    let switched = pcks.finish(&agg, &s.parties).unwrap();
    assert_eq!(
        receiver.decrypt(&switched).unwrap().coefficients()[..100],
        expected[1..]
    );
}
