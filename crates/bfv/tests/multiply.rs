//! Ciphertext multiplication and relinearization against plain arithmetic, and the noise
//! budget each multiplicative set keeps at the depth it is sized for.

use concord_bfv::params::{self, MULTIPLICATIVE_SETS};
use concord_bfv::{
    BfvError, BfvParameters, Ciphertext, Plaintext, PublicKey, RelinearizationKey, SecretKey,
    ValueRange,
};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use std::sync::Arc;

fn values(rng: &mut ChaCha20Rng, n: usize, max: u64) -> Vec<i64> {
    (0..n)
        .map(|_| (rng.next_u64() % (max + 1)) as i64)
        .collect()
}

struct Keys {
    p: Arc<BfvParameters>,
    sk: SecretKey,
    pk: PublicKey,
    rlk: RelinearizationKey,
}

fn keys(spec: &params::ParameterSpec) -> Keys {
    let p = BfvParameters::new(spec).unwrap();
    let sk = SecretKey::generate(&p);
    let pk = PublicKey::generate(&sk);
    let rlk = RelinearizationKey::generate(&sk).unwrap();
    Keys { p, sk, pk, rlk }
}

impl Keys {
    fn encrypt(&self, v: &[i64], max: u64) -> Ciphertext {
        self.pk
            .encrypt(&Plaintext::encode(&self.p, v, ValueRange::counts(max)).unwrap())
            .unwrap()
    }
}

#[test]
fn products_and_squares_decrypt_to_the_slotwise_products() {
    let k = keys(&params::MUL_16384);
    let n = k.p.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let (a, b) = (values(&mut rng, n, 255), values(&mut rng, n, 255));
    let (ca, cb) = (k.encrypt(&a, 255), k.encrypt(&b, 255));
    let expect: Vec<i64> = a.iter().zip(&b).map(|(x, y)| x * y).collect();
    // degree 2 decrypts under (1, s, s²); relinearized, under (1, s)
    let mut product = ca.multiply(&cb).unwrap();
    assert_eq!(product.degree(), 2);
    assert_eq!(k.sk.decrypt(&product).unwrap().decode(), expect);
    let before = k.sk.noise_budget(&product).unwrap();
    product.relinearize(&k.rlk).unwrap();
    assert_eq!(product.degree(), 1);
    assert_eq!(k.sk.decrypt(&product).unwrap().decode(), expect);
    let after = k.sk.noise_budget(&product).unwrap();
    assert!(
        before - after < 2.0,
        "relinearization costs {before} → {after} bits"
    );
    let squares: Vec<i64> = a.iter().map(|x| x * x).collect();
    let mut square = ca.square().unwrap();
    square.relinearize(&k.rlk).unwrap();
    assert_eq!(k.sk.decrypt(&square).unwrap().decode(), squares);
}

/// The product of `2^depth` fresh ciphertexts by a balanced tree; the noise budget at each
/// level, and the decrypted product.
fn tree_product(k: &Keys, depth: u32, max: u64, seed: u64) -> Vec<f64> {
    let n = k.p.degree();
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let inputs: Vec<Vec<i64>> = (0..1 << depth)
        .map(|_| match max {
            // mostly ones, so that a long product is not all zeros
            1 => (0..n).map(|_| (rng.next_u64() % 128 != 0) as i64).collect(),
            _ => values(&mut rng, n, max),
        })
        .collect();
    let mut level: Vec<Ciphertext> = inputs.iter().map(|v| k.encrypt(v, max)).collect();
    let mut budgets = vec![k.sk.noise_budget(&level[0]).unwrap()];
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| pair[0].multiply_relinearize(&pair[1], &k.rlk).unwrap())
            .collect();
        budgets.push(k.sk.noise_budget(&level[0]).unwrap());
    }
    let expect: Vec<i64> = (0..n)
        .map(|i| inputs.iter().map(|v| v[i]).product())
        .collect();
    assert_eq!(k.sk.decrypt(&level[0]).unwrap().decode(), expect);
    // the product at the set's depth still decrypts once switched down to be sent
    let mut sent = level[0].clone();
    sent.switch_to_transmit_level().unwrap();
    assert_eq!(k.sk.decrypt(&sent).unwrap().decode(), expect);
    let budget = k.sk.noise_budget(&sent).unwrap();
    assert!(
        budget > 60.0,
        "{}: {budget} bits at the transmit level",
        k.p.name()
    );
    eprintln!(
        "{}: {budget:.1} bits left at the transmit level",
        k.p.name()
    );
    budgets
}

#[test]
fn mul_16384_multiplies_8_ciphertexts_exactly_with_budget_to_spare() {
    let k = keys(&params::MUL_16384);
    let budgets = tree_product(&k, 3, 3, 2);
    eprintln!("MUL-16384 noise budget by depth: {budgets:.1?}");
    assert!(budgets.windows(2).all(|w| w[1] < w[0]));
    assert!(budgets[3] > 60.0, "{budgets:?}");
}

#[test]
fn mul_32768_multiplies_64_ciphertexts_exactly_with_budget_to_spare() {
    let k = keys(&params::MUL_32768);
    let budgets = tree_product(&k, 6, 1, 3);
    eprintln!("MUL-32768 noise budget by depth: {budgets:.1?}");
    assert!(budgets.windows(2).all(|w| w[1] < w[0]));
    assert!(budgets[6] > 60.0, "{budgets:?}");
}

#[test]
fn misuse_is_refused_with_a_clear_error() {
    let k = keys(&params::MUL_16384);
    let ones = vec![1i64; 4];
    let c = k.encrypt(&ones, 255);
    // the product's range must fit t = 65537: 255·255 does, 255³ does not
    let mut square = c.square().unwrap();
    square.relinearize(&k.rlk).unwrap();
    assert!(matches!(
        square.multiply(&c),
        Err(BfvError::PlaintextOverflow { .. })
    ));
    // degree 2 must be relinearized first
    assert!(matches!(
        c.square().unwrap().multiply(&c),
        Err(BfvError::Degree(2))
    ));
    // off the top level
    let mut low = c.clone();
    low.switch_to_level(3).unwrap();
    assert!(matches!(
        low.multiply(&c),
        Err(BfvError::NotTopLevel { level: 3, top: 6 })
    ));
    // an additive set
    let add = BfvParameters::new(&params::ADD_8192).unwrap();
    let sk = SecretKey::generate(&add);
    assert!(matches!(
        RelinearizationKey::generate(&sk),
        Err(BfvError::NotMultiplicative("ADD-8192"))
    ));
    let ct = sk
        .encrypt(&Plaintext::encode(&add, &ones, ValueRange::counts(9)).unwrap())
        .unwrap();
    assert!(matches!(
        ct.multiply(&ct),
        Err(BfvError::NotMultiplicative("ADD-8192"))
    ));
    // a key of another set
    let other = keys(&params::MUL_32768);
    assert!(matches!(
        c.square().unwrap().relinearize(&other.rlk),
        Err(BfvError::ParameterMismatch { .. })
    ));
    assert_eq!(MULTIPLICATIVE_SETS.len(), 4);
}
