//! Polynomial arithmetic against schoolbook products and plain modular arithmetic.

use super::*;
use crate::modulus::ntt_primes;
use crate::sampling::uniform_poly;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

/// Schoolbook negacyclic product modulo q.
fn schoolbook(a: &[u64], b: &[u64], q: u64) -> Vec<u64> {
    let n = a.len();
    let mut out = vec![0u128; n];
    let q128 = q as u128;
    for i in 0..n {
        for k in 0..n {
            let p = a[i] as u128 * b[k] as u128 % q128;
            if i + k < n {
                out[i + k] = (out[i + k] + p) % q128;
            } else {
                out[i + k - n] = (out[i + k - n] + q128 - p) % q128;
            }
        }
    }
    out.into_iter().map(|x| x as u64).collect()
}

#[test]
fn ntt_product_equals_schoolbook_for_small_degree() {
    let n = 64;
    let primes = ntt_primes(49, 2, n, &[]);
    let ctx = RnsContext::new(n, &primes).unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let mut a = uniform_poly(&ctx, 2, &mut rng);
    let mut b = uniform_poly(&ctx, 2, &mut rng);
    a.repr = Representation::Coefficient;
    b.repr = Representation::Coefficient;
    let expect: Vec<Vec<u64>> = (0..2)
        .map(|j| schoolbook(a.residues(j), b.residues(j), primes[j]))
        .collect();
    let (mut an, mut bn) = (a.clone(), b.clone());
    an.to_ntt(&ctx);
    bn.to_ntt(&ctx);
    let fused = Poly::product_to_coefficients(&ctx, &an, &bn);
    an.mul_assign(&ctx, &bn);
    an.to_coefficients(&ctx);
    for (j, e) in expect.iter().enumerate() {
        assert_eq!(an.residues(j), &e[..]);
        assert_eq!(fused.residues(j), &e[..]);
    }
}

#[test]
fn drop_last_modulus_rounds_to_nearest() {
    let n = 16;
    let primes = ntt_primes(40, 3, n, &[]);
    let ctx = RnsContext::new(n, &primes).unwrap();
    let q2 = primes[2] as i64;
    // x = k·q2 + r for small k and r around ±q2/2.
    let vals: Vec<i64> = (0..n as i64)
        .map(|i| (i - 8) * q2 + (i * 7919 % q2) - q2 / 2)
        .collect();
    let mut p = Poly::from_signed(&ctx, 3, &vals);
    p.drop_last_modulus_rounding(&ctx);
    let expect: Vec<i64> = vals
        .iter()
        .map(|&v| ((v as f64) / q2 as f64).round() as i64)
        .collect();
    assert_eq!(p, Poly::from_signed(&ctx, 2, &expect));
}

#[test]
fn the_constant_of_a_product_is_its_constant_coefficient() {
    // 50- and 61-bit primes (the latter reduces its sums every 32 terms), N = 4096
    for bits in [50, 61] {
        let n = 4096;
        let primes = ntt_primes(bits, 2, n, &[]);
        let ctx = RnsContext::new(n, &primes).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(u64::from(bits));
        let mut a = uniform_poly(&ctx, 2, &mut rng);
        let mut b = uniform_poly(&ctx, 2, &mut rng);
        a.repr = Representation::Coefficient;
        b.repr = Representation::Coefficient;
        let (mut an, mut bn) = (a.clone(), b.clone());
        an.to_ntt(&ctx);
        bn.to_ntt(&ctx);
        let product = Poly::product_to_coefficients(&ctx, &an, &bn);
        let expect: Vec<u64> = (0..2).map(|j| product.residues(j)[0]).collect();
        assert_eq!(a.constant_of_product(&ctx, &b), expect, "{bits}-bit primes");
    }
}
