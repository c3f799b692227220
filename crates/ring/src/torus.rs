//! The map from `Z_{Q_ℓ}` to the discretised torus `Z_{2^64} ≅ [0,1)`: `x ↦ round(2^64·x/Q_ℓ)`.
//!
//! By the CRT, `x/Q = Σ_j y_j/q_j mod 1` with `y_j = [x_j · (Q/q_j)^{-1}]_{q_j}`, so each
//! coefficient costs one modular product and one 64×128-bit product per modulus, with an
//! absolute error below `ℓ+1` units of `2^-64`. This one map serves three purposes:
//! - BFV decoding: `m = round(t · x/Q) mod t` (error far below the `1/(2t)` decision margin);
//! - compression of decryption shares: only the top `d` bits of `x/Q` are sent, since the
//!   smudging noise already covers the bits below; compressed shares add modulo `2^d`;
//! - decompression back into `R_Q` where a share must rejoin a ciphertext (PCKS).

use crate::context::RnsContext;
use crate::poly::{Poly, Representation};
use num_bigint::{BigInt, BigUint};

/// `round(2^64 · x / Q_ℓ) mod 2^64` for every coefficient of a coefficient-form polynomial.
pub fn to_torus(ctx: &RnsContext, p: &Poly) -> Vec<u64> {
    assert_eq!(p.representation(), Representation::Coefficient);
    let level = p.level();
    let q_hat_inv = ctx.q_hat_inv(level);
    let scale = ctx.torus_scale();
    let mut out = vec![0u64; ctx.degree()];
    // Scalar on purpose: every step is a 64×64→128-bit product, which vector units lack.
    for (j, m) in ctx.moduli()[..level].iter().enumerate() {
        let (hinv, s) = (q_hat_inv[j], scale[j]);
        let hinv_shoup = m.shoup(hinv);
        let (s_lo, s_hi) = (s as u64 as u128, (s >> 64) as u64 as u128);
        for (acc, &x) in out.iter_mut().zip(p.residues(j)) {
            let y = m.mul_shoup(x, hinv, hinv_shoup) as u128;
            // (y · s) >> 64 with s < 2^128 split in halves; y · s < 2^128 since y < q_j.
            let term = ((y * s_lo) >> 64) + y * s_hi;
            *acc = acc.wrapping_add(term as u64);
        }
    }
    out
}

/// `round(T · x / 2^64) mod T` for torus values `x` and a modulus `T < 2^63` (e.g. the plaintext
/// modulus `t`).
pub fn torus_to_modulus(torus: &[u64], modulus: u64) -> Vec<u64> {
    torus
        .iter()
        .map(|&x| {
            let v = ((modulus as u128 * x as u128 + (1u128 << 63)) >> 64) as u64;
            if v == modulus {
                0
            } else {
                v
            }
        })
        .collect()
}

/// The top `bits` bits of a torus value, rounded: `round(x / 2^(64-bits)) mod 2^bits`.
#[inline]
pub fn compress(x: u64, bits: u32) -> u64 {
    debug_assert!((1..64).contains(&bits));
    let shift = 64 - bits;
    (x.wrapping_add(1u64 << (shift - 1)) >> shift) & ((1u64 << bits) - 1)
}

/// Back from `bits`-bit torus values into `R_{Q_ℓ}`: `h̃ ↦ round(h̃ · Q_ℓ / 2^bits) mod Q_ℓ`.
pub fn from_compressed_torus(ctx: &RnsContext, level: usize, values: &[u64], bits: u32) -> Poly {
    assert!((1..64).contains(&bits));
    let mask = (1u64 << bits) - 1;
    let half = 1u64 << (bits - 1);
    let q_low = ctx.q_mod_2_64(level);
    let mut out = Poly::zero(ctx, level, Representation::Coefficient);
    // round(X / 2^d) = (X − c) / 2^d with c = [X]_{2^d} centered; X = h̃·Q ≡ 0 (mod q_j),
    // so the residue is −c · 2^{-d} mod q_j, and c only needs X mod 2^d = h̃·(Q mod 2^64) mod 2^d.
    let centered: Vec<i64> = values
        .iter()
        .map(|&h| {
            let low = h.wrapping_mul(q_low).wrapping_add(half) & mask;
            half as i64 - low as i64
        })
        .collect();
    for (j, m) in ctx.moduli()[..level].iter().enumerate() {
        let inv = m
            .inv(m.reduce_u128(1u128 << bits))
            .expect("odd prime modulus");
        for (r, &c) in out.residues_mut(j).iter_mut().zip(&centered) {
            *r = m.mul(m.from_i64(c), inv);
        }
    }
    out
}

/// Exact CRT lift of every coefficient to `(-Q/2, Q/2]`.
pub fn crt_lift_centered(ctx: &RnsContext, p: &Poly) -> Vec<BigInt> {
    assert_eq!(p.representation(), Representation::Coefficient);
    let level = p.level();
    let moduli = &ctx.moduli()[..level];
    let q: BigUint = moduli.iter().map(|m| BigUint::from(m.value())).product();
    let half = &q >> 1;
    let basis: Vec<BigUint> = moduli
        .iter()
        .enumerate()
        .map(|(j, m)| (&q / m.value()) * ctx.q_hat_inv(level)[j])
        .collect();
    (0..ctx.degree())
        .map(|i| {
            let x: BigUint = basis
                .iter()
                .enumerate()
                .map(|(j, b)| b * p.residues(j)[i])
                .sum::<BigUint>()
                % &q;
            if x > half {
                BigInt::from(x) - BigInt::from(q.clone())
            } else {
                BigInt::from(x)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modulus::ntt_primes;
    use num_bigint::ToBigInt;
    use num_traits::Euclid;
    use proptest::prelude::*;

    fn ctx() -> RnsContext {
        RnsContext::new(16, &ntt_primes(45, 3, 16, &[])).unwrap()
    }

    proptest! {
        #[test]
        fn torus_matches_exact_scaling(vals in proptest::collection::vec(any::<i64>(), 16)) {
            let ctx = ctx();
            let p = Poly::from_signed(&ctx, 3, &vals);
            let torus = to_torus(&ctx, &p);
            let q: BigInt = ctx.moduli().iter().map(|m| BigInt::from(m.value())).product();
            for (i, &v) in vals.iter().enumerate() {
                // exact: round(2^64 · v / Q) mod 2^64
                let num = BigInt::from(v) << 64u32;
                let exact = (&num + (&q >> 1u32)).div_euclid(&q);
                let exact = exact.rem_euclid(&(BigInt::from(1u8) << 64u32));
                let diff = (BigInt::from(torus[i]) - exact).rem_euclid(&(BigInt::from(1u8) << 64u32));
                let diff = diff.to_bigint().unwrap();
                let small = diff <= BigInt::from(4) || diff >= (BigInt::from(1u8) << 64u32) - 4;
                prop_assert!(small, "coefficient {} off by {}", i, diff);
            }
        }

        #[test]
        fn compression_round_trip_error_is_bounded(vals in proptest::collection::vec(any::<i64>(), 16), bits in 8u32..40) {
            let ctx = ctx();
            let p = Poly::from_signed(&ctx, 3, &vals);
            let compressed: Vec<u64> = to_torus(&ctx, &p).iter().map(|&x| compress(x, bits)).collect();
            let mut back = from_compressed_torus(&ctx, 3, &compressed, bits);
            back.sub_assign(&ctx, &p);
            let q: f64 = ctx.log_modulus(3);
            let bound = 2f64.powf(q - bits as f64 - 1.0) * 1.01 + 2.0;
            for e in crt_lift_centered(&ctx, &back) {
                let e: f64 = e.to_string().parse().unwrap();
                prop_assert!(e.abs() <= bound, "error {} above {}", e, bound);
            }
        }
    }
}
