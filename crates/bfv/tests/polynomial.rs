//! Polynomial evaluation over slots and the equality test, against plain arithmetic mod t.

use concord_bfv::params;
use concord_bfv::{
    BfvError, BfvParameters, Ciphertext, GaloisKeys, Plaintext, PowerBasis, PublicKey,
    RelinearizationKey, SecretKey, SlotPolynomial, ValueRange,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

struct Keys {
    p: std::sync::Arc<BfvParameters>,
    sk: SecretKey,
    pk: PublicKey,
    rlk: RelinearizationKey,
}

fn keys() -> Keys {
    let p = BfvParameters::new(&params::MUL_16384).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let rlk = RelinearizationKey::generate(&sk).unwrap();
    Keys { p, sk, pk, rlk }
}

fn encrypt(k: &Keys, v: &[i64], range: ValueRange) -> Ciphertext {
    k.pk.encrypt(&Plaintext::encode(&k.p, v, range).unwrap())
        .unwrap()
}

fn centred(t: u64, x: u64) -> i64 {
    if x > t / 2 {
        x as i64 - t as i64
    } else {
        x as i64
    }
}

#[test]
fn random_polynomials_of_every_depth_evaluate_exactly() {
    let k = keys();
    let t = k.p.plaintext_modulus();
    let n = k.p.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(11);
    let x: Vec<i64> = (0..n).map(|_| (rng.next_u64() % 256) as i64).collect();
    let ct = encrypt(&k, &x, ValueRange::counts(255));
    for degree in [1usize, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31] {
        let coefficients: Vec<i64> = (0..=degree).map(|_| (rng.next_u64() % t) as i64).collect();
        let p = SlotPolynomial::new(t, &coefficients);
        let out = ct.evaluate_polynomial(&p, &k.rlk).unwrap();
        assert_eq!(out.degree(), 1);
        let expect: Vec<i64> = x
            .iter()
            .map(|&v| centred(t, p.evaluate_plain(t, v)))
            .collect();
        assert_eq!(
            k.sk.decrypt(&out).unwrap().decode(),
            expect,
            "degree {degree}"
        );
        let budget = k.sk.noise_budget(&out).unwrap();
        println!("degree {degree}: {budget:.0} bits left");
        assert!(budget > 40.0, "degree {degree}: {budget:.0} bits left");
    }
    // constants and the identity
    let seven = ct
        .evaluate_polynomial(&SlotPolynomial::new(t, &[7]), &k.rlk)
        .unwrap();
    assert_eq!(k.sk.decrypt(&seven).unwrap().decode(), vec![7; n]);
    let same = ct
        .evaluate_polynomial(&SlotPolynomial::new(t, &[0, 1]), &k.rlk)
        .unwrap();
    assert_eq!(k.sk.decrypt(&same).unwrap().decode(), x);
}

#[test]
fn equality_indicators_are_one_hot_and_add_like_counts() {
    let k = keys();
    let t = k.p.plaintext_modulus();
    let n = k.p.degree();
    // the Lagrange basis is exact in the clear
    for j in 0..=16 {
        let p = SlotPolynomial::indicator(t, 0..=16, j).unwrap();
        assert_eq!(p.degree(), 16);
        for v in 0..=16 {
            assert_eq!(p.evaluate_plain(t, v), u64::from(v == j));
        }
    }
    let mut rng = ChaCha20Rng::seed_from_u64(12);
    let x: Vec<i64> = (0..n).map(|_| (rng.next_u64() % 17) as i64).collect();
    let ct = encrypt(&k, &x, ValueRange::counts(16));
    let indicators = ct.equals_each(0..=16, &k.rlk).unwrap();
    assert_eq!(indicators.len(), 17);
    for (j, ind) in indicators.iter().enumerate() {
        assert_eq!(ind.range(), ValueRange::counts(1));
        let expect: Vec<i64> = x.iter().map(|&v| i64::from(v == j as i64)).collect();
        assert_eq!(k.sk.decrypt(ind).unwrap().decode(), expect, "x = {j}");
    }
    let budget = k.sk.noise_budget(&indicators[16]).unwrap();
    println!("equality test, n = 16: {budget:.0} bits left");
    assert!(budget > 40.0);
    // the indicators add like counts: their sum is 1 in every slot
    let total = Ciphertext::sum(&indicators).unwrap();
    assert_eq!(k.sk.decrypt(&total).unwrap().decode(), vec![1; n]);
}

#[test]
fn slot_histograms_count_every_value_of_the_domain() {
    let k = keys();
    let n = k.p.degree();
    let galois = GaloisKeys::for_inner_sum(&k.sk).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(13);
    let x: Vec<i64> = (0..n).map(|_| (rng.next_u64() % 5) as i64).collect();
    let ct = encrypt(&k, &x, ValueRange::counts(4));
    let histogram = ct.slot_histogram(0..=4, &k.rlk, &galois).unwrap();
    let mut expect = vec![0i64; n];
    for &v in &x {
        expect[v as usize] += 1;
    }
    assert_eq!(histogram.range(), ValueRange::counts(n as u64));
    assert_eq!(k.sk.decrypt(&histogram).unwrap().decode(), expect);
    // a value outside the domain could land in any bin: refused
    assert!(matches!(
        ct.slot_histogram(0..=3, &k.rlk, &galois),
        Err(BfvError::Domain { value: 4, .. })
    ));
}

#[test]
fn polynomial_misuse_is_refused() {
    let k = keys();
    let t = k.p.plaintext_modulus();
    let ct = encrypt(&k, &[3, 20], ValueRange::counts(20));
    // the input may take values outside the domain
    assert!(matches!(
        ct.equals_each(0..=16, &k.rlk),
        Err(BfvError::Domain { value: 20, .. })
    ));
    // a domain of t values or more, or one that misses j
    assert!(matches!(
        SlotPolynomial::indicator(t, 0..=(t as i64), 1),
        Err(BfvError::Domain { .. })
    ));
    assert!(matches!(
        SlotPolynomial::indicator(t, 0..=4, 9),
        Err(BfvError::Domain { .. })
    ));
    // a basis evaluates polynomials up to its degree only
    let basis = PowerBasis::new(&ct, 4, &k.rlk).unwrap();
    assert!(matches!(
        basis.evaluate(&SlotPolynomial::new(t, &[1, 1, 1, 1, 1, 1]), &k.rlk),
        Err(BfvError::PolynomialDegree {
            degree: 5,
            basis: 4
        })
    ));
    // an additive set does not multiply
    let add = BfvParameters::new(&params::ADD_4096).unwrap();
    let sk = SecretKey::generate(&add);
    let ct = PublicKey::generate(&sk)
        .encrypt(&Plaintext::encode(&add, &[1], ValueRange::counts(1)).unwrap())
        .unwrap();
    assert!(matches!(
        RelinearizationKey::generate(&sk),
        Err(BfvError::NotMultiplicative(_))
    ));
    assert!(matches!(
        ct.multiply(&ct),
        Err(BfvError::NotMultiplicative(_))
    ));
}

#[test]
fn value_counts_sit_in_the_constant_coefficient_and_count_over_every_ciphertext() {
    let p = BfvParameters::new(&params::MUL_16384_T26).unwrap();
    assert_eq!(p.plaintext_modulus(), 67_043_329);
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let rlk = RelinearizationKey::generate(&sk).unwrap();
    // the key travels and is stored in the wire format
    let bytes = rlk.to_bytes();
    assert_eq!(bytes.len(), rlk.serialized_len());
    assert_eq!(RelinearizationKey::from_bytes(&p, &bytes).unwrap(), rlk);
    assert!(RelinearizationKey::from_bytes(&p, &bytes[..bytes.len() - 1]).is_err());
    let n = p.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(14);
    // three ciphertexts of sums of four parties' 0/1 presence bits
    let values: Vec<Vec<i64>> = (0..3)
        .map(|_| (0..n).map(|_| (rng.next_u64() % 5) as i64).collect())
        .collect();
    let cts: Vec<Ciphertext> = values
        .iter()
        .map(|v| {
            pk.encrypt(&Plaintext::encode(&p, v, ValueRange::counts(4)).unwrap())
                .unwrap()
        })
        .collect();
    let counts = Ciphertext::value_counts(&cts, 0..=4, 1..=4, &rlk).unwrap();
    assert_eq!(counts.len(), 4);
    for (j, count) in (1..=4).zip(&counts) {
        let expect = values.iter().flatten().filter(|&&v| v == j).count() as u64;
        assert_eq!(
            sk.decrypt(count).unwrap().constant_coefficient(),
            expect,
            "j = {j}"
        );
    }
    let budget = sk.noise_budget(&counts[3]).unwrap();
    println!("value counts, domain 0..=4 over 3 ciphertexts: {budget:.0} bits left");
    assert!(budget > 60.0);

    // the sum over the slots is N times the constant coefficient, for any plaintext
    let pt = Plaintext::encode(&p, &values[0], ValueRange::counts(4)).unwrap();
    let sum: u64 = values[0].iter().map(|&v| v as u64).sum();
    assert_eq!(
        pt.constant_coefficient() * n as u64 % p.plaintext_modulus(),
        sum
    );

    // misuse: nothing to count, a value outside the domain, j outside the domain
    assert_eq!(
        Ciphertext::value_counts(&[], 0..=4, 1..=4, &rlk).unwrap_err(),
        BfvError::NothingToCount
    );
    assert!(matches!(
        Ciphertext::value_counts(&cts, 0..=3, 1..=3, &rlk),
        Err(BfvError::Domain { value: 4, .. })
    ));
    assert!(matches!(
        Ciphertext::value_counts(&cts, 0..=4, 1..=5, &rlk),
        Err(BfvError::Domain { value: 5, .. })
    ));
}

#[test]
fn value_counts_refuse_more_slots_than_t_can_count() {
    // t = 65537 counts at most 4 ciphertexts of 16,384 slots (65,536 < t)
    let k = keys();
    let zero = encrypt(&k, &[0], ValueRange::counts(1));
    let four = vec![zero.clone(); 4];
    let counts = Ciphertext::value_counts(&four, 0..=1, 0..=0, &k.rlk).unwrap();
    assert_eq!(
        k.sk.decrypt(&counts[0]).unwrap().constant_coefficient(),
        65_536
    );
    assert_eq!(
        Ciphertext::value_counts(&[four, vec![zero]].concat(), 0..=1, 0..=0, &k.rlk).unwrap_err(),
        BfvError::CountOverflow {
            slots: 81_920,
            t: 65_537
        }
    );
}
