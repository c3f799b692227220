//! Samplers of `R_Q` elements.
//!
//! - uniform residues, from any CSPRNG — a seeded ChaCha20 for common reference polynomials
//!   (see [`seeded_rng`]), so every party expands the same seed to the same polynomial;
//! - ternary secrets, uniform on `{-1, 0, 1}`;
//! - discrete Gaussian errors (σ = 3.2, tail cut at 6σ) by a constant-time cumulative table;
//! - wide uniform noise on `[-2^b, 2^b)` for smudging decryption shares.
//!
//! Secret randomness comes from [`secret_rng`]: ChaCha12 keyed from the operating system's
//! CSPRNG per operation — the construction of `rand`'s `StdRng`/`ThreadRng` (the best attacks
//! on ChaCha reach 7 rounds), without thread-local state. The public CRS expansion uses
//! ChaCha20.
//! Small-coefficient vectors are returned in [`zeroize::Zeroizing`] so secrets vanish on drop.
//! The branch on a sample's value is avoided wherever the value is secret.

use crate::context::RnsContext;
use crate::poly::{Poly, Representation};
pub use rand_chacha::rand_core::RngCore;
use rand_chacha::rand_core::{OsRng, SeedableRng};
use rand_chacha::{ChaCha12Rng, ChaCha20Rng};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Standard deviation of the RLWE error distribution (Homomorphic Encryption Standard).
pub const ERROR_STD_DEV: f64 = 3.2;
/// Errors are cut at `⌊6σ⌋`.
pub const ERROR_BOUND: i64 = 19;

/// A fresh ChaCha12 keyed by the operating system's CSPRNG.
pub fn secret_rng() -> ChaCha12Rng {
    let mut seed = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(seed.as_mut());
    ChaCha12Rng::from_seed(*seed)
}

/// A ChaCha20 stream determined by a public 32-byte seed, a domain label and an index: the
/// expansion of a common reference string.
pub fn seeded_rng(seed: &[u8; 32], domain: &[u8], index: u64) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"concord/crs/v1");
    h.update(seed);
    h.update((domain.len() as u64).to_le_bytes());
    h.update(domain);
    h.update(index.to_le_bytes());
    ChaCha20Rng::from_seed(h.finalize().into())
}

/// A uniformly random element of `R_{Q_ℓ}`. Uniform residues are uniform in either
/// representation; the result is labelled NTT so that it multiplies without a transform.
pub fn uniform_poly(ctx: &RnsContext, level: usize, rng: &mut impl RngCore) -> Poly {
    let mut p = Poly::zero(ctx, level, Representation::Ntt);
    add_uniform(ctx, &mut p, rng);
    p
}

/// `acc ← acc + u` for `u` uniformly random in `R_{Q_ℓ}` at `acc`'s level, without allocating:
/// for sums of many expansions (the threshold sub-shares of `concord-mhe`).
pub fn add_uniform(ctx: &RnsContext, acc: &mut Poly, rng: &mut impl RngCore) {
    for (j, m) in ctx.moduli()[..acc.level()].iter().enumerate() {
        let q = m.value();
        let mask = u64::MAX >> q.leading_zeros();
        for r in acc.residues_mut(j) {
            // Rejection sampling: exact uniformity; the public value leaks nothing.
            let x = loop {
                let x = rng.next_u64() & mask;
                if x < q {
                    break x;
                }
            };
            let s = *r + x;
            *r = if s >= q { s - q } else { s };
        }
    }
}

/// `n` coefficients uniform on `{-1, 0, 1}` (bias below 2^-64 per coefficient).
pub fn ternary(n: usize, rng: &mut impl RngCore) -> Zeroizing<Vec<i64>> {
    Zeroizing::new(
        (0..n)
            .map(|_| (((rng.next_u64() as u128 * 3) >> 64) as i64) - 1)
            .collect(),
    )
}

/// Cumulative table of the discrete Gaussian on `[-B, B]`: entry `k` is
/// `⌊2^64 · P(X ≤ k − B)⌋` (saturating).
fn gaussian_table() -> &'static [u64] {
    static TABLE: OnceLock<Vec<u64>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let w: Vec<f64> = (-ERROR_BOUND..=ERROR_BOUND)
            .map(|x| (-((x * x) as f64) / (2.0 * ERROR_STD_DEV * ERROR_STD_DEV)).exp())
            .collect();
        let total: f64 = w.iter().sum();
        let mut acc = 0.0;
        w[..w.len() - 1]
            .iter()
            .map(|p| {
                acc += p / total;
                (acc * 2f64.powi(64)).min(u64::MAX as f64) as u64
            })
            .collect()
    })
}

/// `n` discrete Gaussian samples (σ = 3.2, |x| ≤ 19). Every sample is compared with the whole
/// table (constant time in the value); the loop runs table-outer so it vectorises across samples.
pub fn gaussian(n: usize, rng: &mut impl RngCore) -> Zeroizing<Vec<i64>> {
    let table = gaussian_table();
    let mut r = Zeroizing::new(vec![0u64; n]);
    for x in r.iter_mut() {
        *x = rng.next_u64();
    }
    let mut out = Zeroizing::new(vec![-ERROR_BOUND; n]);
    crate::vectorized(
        #[inline(always)]
        || {
            for &c in table {
                for (o, &x) in out.iter_mut().zip(r.iter()) {
                    *o += (x >= c) as i64;
                }
            }
        },
    );
    out
}

/// `n` samples uniform on `[-2^bits, 2^bits)`, exactly (masking, no rejection), `bits ≤ 62`.
pub fn uniform_centered(n: usize, bits: u32, rng: &mut impl RngCore) -> Zeroizing<Vec<i64>> {
    assert!(bits <= 62);
    let mask = (1u64 << (bits + 1)) - 1;
    Zeroizing::new(
        (0..n)
            .map(|_| (rng.next_u64() & mask) as i64 - (1i64 << bits))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_has_the_declared_moments() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let xs = gaussian(1 << 18, &mut rng);
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<i64>() as f64 / n;
        let var = xs.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!(
            (var.sqrt() - ERROR_STD_DEV).abs() < 0.03,
            "std {}",
            var.sqrt()
        );
        assert!(xs.iter().all(|x| x.abs() <= ERROR_BOUND));
    }

    #[test]
    fn ternary_and_uniform_centered_cover_their_ranges_evenly() {
        let mut rng = ChaCha20Rng::seed_from_u64(8);
        let t = ternary(30_000, &mut rng);
        for v in -1..=1 {
            let c = t.iter().filter(|&&x| x == v).count();
            assert!((9_400..10_600).contains(&c), "{v}: {c}");
        }
        let u = uniform_centered(30_000, 3, &mut rng);
        assert!(u.iter().all(|&x| (-8..8).contains(&x)));
        assert!(u.contains(&-8) && u.contains(&7));
    }

    #[test]
    fn seeded_expansion_is_deterministic_and_domain_separated() {
        let ctx = RnsContext::new(16, &crate::modulus::ntt_primes(40, 2, 16, &[])).unwrap();
        let seed = [3u8; 32];
        let a = uniform_poly(&ctx, 2, &mut seeded_rng(&seed, b"ckg", 0));
        let b = uniform_poly(&ctx, 2, &mut seeded_rng(&seed, b"ckg", 0));
        let c = uniform_poly(&ctx, 2, &mut seeded_rng(&seed, b"ckg", 1));
        let d = uniform_poly(&ctx, 2, &mut seeded_rng(&seed, b"rkg", 0));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
    }
}
