//! Exact arithmetic across RNS bases, after Halevi, Polyakov and Shoup, "An Improved RNS
//! Variant of the BFV Homomorphic Encryption Scheme" (CT-RSA 2019), §2.3–2.4 — the two
//! operations under BFV multiplication and key switching (DESIGN.md §2, engine part 2):
//!
//! - [`BaseConverter`]: the residues of `x mod Q` in a basis `Q = q_0⋯q_{k-1}` to the residues
//!   of its *centred* representative (`|x| ≤ Q/2`) in another basis `P` — to extend a
//!   ciphertext from `Q` to `Q ∪ R` before tensoring, to bring a scaled product back from `R`,
//!   and to extend key-switching digits to `Q ∪ P`.
//! - [`Scaler`]: the residues of `x` in `D ∪ K` to those of `round(t·x/D)` in `K` — BFV's
//!   `round(t/Q · c₁⊗c₂)` (`D = Q`, `K = R`), and the division by the special modulus at the
//!   end of key switching (`t = 1`, `D = P`, `K = Q`).
//!
//! HPS rather than Bajard–Eynard–Hasan–Zucca (BEHZ): HPS corrects the overflow of the fast
//! base conversion with a fixed-point estimate of `Σ yᵢ/qᵢ`, so conversions are exact without
//! BEHZ's extra modulus `m_sk` and its Montgomery reduction step, and scaling is one pass. It
//! is the default of OpenFHE for the same reason. The estimate here is a 128-bit binary
//! fraction per term (HPS use a double): a result differs from the exact one only when the
//! true fractional part lies within `k·2^-63` of one half — for uniformly random inputs, with
//! probability below `2^-57` per coefficient for the bases Concord uses; the tests compare
//! against big-integer arithmetic.

use crate::Modulus;
use num_bigint::BigUint;

/// A real number in `[0, 1)` as a 128-bit binary fraction (`value / 2^128`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fraction(u128);

impl Fraction {
    /// `floor(num / den · 2^128)` for `num < den`.
    fn of(num: &BigUint, den: &BigUint) -> Self {
        debug_assert!(num < den);
        let scaled: BigUint = (num << 128u32) / den;
        let digits = scaled.to_u64_digits();
        Self(
            digits.first().copied().unwrap_or(0) as u128
                | (digits.get(1).copied().unwrap_or(0) as u128) << 64,
        )
    }
}

/// `round(Σ xᵢ·fᵢ)` for word-size `xᵢ` and fractions `fᵢ`, with 64 fractional bits kept per
/// term (each term's error is below `2^-64`, plus `2^-128·xᵢ` from `fᵢ`'s truncation).
#[inline]
fn round_dot(terms: impl Iterator<Item = (u64, Fraction)>) -> u128 {
    let (mut whole, mut fraction) = (0u128, 0u128);
    for (x, f) in terms {
        let (hi, lo) = ((f.0 >> 64) as u64, f.0 as u64);
        // x·f·2^64 = x·hi + x·lo/2^64, below 2^128
        let scaled = x as u128 * hi as u128 + ((x as u128 * lo as u128) >> 64);
        whole += scaled >> 64;
        fraction += scaled & u64::MAX as u128;
    }
    whole + (fraction >> 64) + ((fraction as u64) >> 63) as u128
}

/// `(start + Σ aᵢ·bᵢ) mod m` for words below `2^62` (the two sides may belong to different
/// moduli): products summed in 128 bits, reduced every 8 terms (8 products stay below
/// `2^127`). The reduction is a full 128-bit remainder: Barrett's needs `x < m²`.
#[inline]
fn dot_mod(m: &Modulus, start: u128, a: &[u64], b: &[u64]) -> u64 {
    let q = m.value() as u128;
    let mut acc = (start % q) as u64;
    for (ca, cb) in a.chunks(8).zip(b.chunks(8)) {
        let sum = ca
            .iter()
            .zip(cb)
            .fold(acc as u128, |s, (&x, &y)| s + x as u128 * y as u128);
        acc = (sum % q) as u64;
    }
    acc
}

fn product(moduli: &[Modulus]) -> BigUint {
    moduli
        .iter()
        .fold(BigUint::from(1u8), |acc, m| acc * m.value())
}

fn residue(x: &BigUint, m: &Modulus) -> u64 {
    (x % m.value())
        .to_u64_digits()
        .first()
        .copied()
        .unwrap_or(0)
}

/// Converts residues in a basis `Q` to residues of the centred representative in a basis `P`.
#[derive(Clone, Debug)]
pub struct BaseConverter {
    from: Vec<Modulus>,
    to: Vec<Modulus>,
    /// `(Q/qᵢ)^{-1} mod qᵢ` and its Shoup companion.
    q_hat_inv: Vec<(u64, u64)>,
    /// `1/qᵢ`.
    q_inv: Vec<Fraction>,
    /// `[j][i] = (Q/qᵢ) mod pⱼ`.
    q_hat_mod_p: Vec<Vec<u64>>,
    /// `Q mod pⱼ`.
    q_mod_p: Vec<u64>,
}

impl BaseConverter {
    /// A converter from the basis `from` to the basis `to` (distinct primes).
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Self {
        assert!(from.len() <= 64, "at most 64 moduli in a basis");
        let q = product(from);
        let q_hat: Vec<BigUint> = from.iter().map(|m| &q / m.value()).collect();
        Self {
            q_hat_inv: from
                .iter()
                .zip(&q_hat)
                .map(|(m, hat)| {
                    let inv = m.inv(residue(hat, m)).expect("distinct primes");
                    (inv, m.shoup(inv))
                })
                .collect(),
            q_inv: from
                .iter()
                .map(|m| Fraction::of(&BigUint::from(1u8), &BigUint::from(m.value())))
                .collect(),
            q_hat_mod_p: to
                .iter()
                .map(|p| q_hat.iter().map(|hat| residue(hat, p)).collect())
                .collect(),
            q_mod_p: to.iter().map(|p| residue(&q, p)).collect(),
            from: from.to_vec(),
            to: to.to_vec(),
        }
    }

    /// One value: `x[i] = x mod qᵢ` in, `out[j]` = (centred `x`) `mod pⱼ` out.
    pub fn convert(&self, x: &[u64], out: &mut [u64]) {
        let mut y = [0u64; 64];
        let y = &mut y[..self.from.len()];
        for (i, m) in self.from.iter().enumerate() {
            let (w, ws) = self.q_hat_inv[i];
            y[i] = m.mul_shoup(x[i], w, ws);
        }
        // Σ yᵢ·(Q/qᵢ) = x + v·Q with v = round(Σ yᵢ/qᵢ) for the centred x
        let v = round_dot(y.iter().copied().zip(self.q_inv.iter().copied())) as u64;
        for (j, p) in self.to.iter().enumerate() {
            let acc = dot_mod(p, 0, y, &self.q_hat_mod_p[j]);
            out[j] = p.sub(acc, p.mul(p.reduce(v), self.q_mod_p[j]));
        }
    }

    /// Every coefficient of a polynomial: `input[i]` holds the coefficients mod `qᵢ`, `output[j]`
    /// receives them mod `pⱼ`.
    pub fn convert_poly(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        assert_eq!(input.len(), self.from.len());
        assert_eq!(output.len(), self.to.len());
        let n = input[0].len();
        let (mut x, mut out) = (vec![0u64; self.from.len()], vec![0u64; self.to.len()]);
        for c in 0..n {
            for (xi, column) in x.iter_mut().zip(input) {
                *xi = column[c];
            }
            self.convert(&x, &mut out);
            for (column, &o) in output.iter_mut().zip(&out) {
                column[c] = o;
            }
        }
    }
}

/// Scales by `t/D` with rounding: residues of `x` in `D ∪ K` to residues of `round(t·x/D)` in
/// `K` (HPS Lemma 2, "simple scaling").
#[derive(Clone, Debug)]
pub struct Scaler {
    divisor: Vec<Modulus>,
    keep: Vec<Modulus>,
    /// For each `dᵢ ∈ D`: `t·(M/dᵢ)^{-1}_{dᵢ}·K / dᵢ = ωᵢ + θᵢ`; `[k][i] = ωᵢ mod kₖ`.
    omega: Vec<Vec<u64>>,
    theta: Vec<Fraction>,
    /// For each `kₖ ∈ K`: `t·(M/kₖ)^{-1}_{kₖ}·(K/kₖ) mod kₖ`.
    lambda: Vec<(u64, u64)>,
}

impl Scaler {
    /// `round(t·x/D)` from `D ∪ K` (residues in that order) to `K`.
    pub fn new(t: u64, divisor: &[Modulus], keep: &[Modulus]) -> Self {
        let (d, k) = (product(divisor), product(keep));
        let m = &d * &k;
        let t = BigUint::from(t);
        let tilde = |modulus: &Modulus| {
            let hat = &m / modulus.value();
            modulus
                .inv(residue(&hat, modulus))
                .expect("distinct primes")
        };
        let mut omega = vec![Vec::new(); keep.len()];
        let mut theta = Vec::new();
        for di in divisor {
            let numerator = &t * tilde(di) * &k;
            let di_big = BigUint::from(di.value());
            let whole = &numerator / &di_big;
            theta.push(Fraction::of(&(&numerator % &di_big), &di_big));
            for (row, km) in omega.iter_mut().zip(keep) {
                row.push(residue(&whole, km));
            }
        }
        let lambda = keep
            .iter()
            .map(|km| {
                let l = residue(&(&t * tilde(km) * (&k / km.value())), km);
                (l, km.shoup(l))
            })
            .collect();
        Self {
            divisor: divisor.to_vec(),
            keep: keep.to_vec(),
            omega,
            theta,
            lambda,
        }
    }

    /// One value: `x` = residues in `D` then `K`; `out[k]` = `round(t·x/D) mod kₖ`.
    pub fn scale(&self, x: &[u64], out: &mut [u64]) {
        let (xd, xk) = x.split_at(self.divisor.len());
        let rounded = round_dot(xd.iter().copied().zip(self.theta.iter().copied()));
        for (k, km) in self.keep.iter().enumerate() {
            let acc = dot_mod(km, rounded, xd, &self.omega[k]);
            let (l, ls) = self.lambda[k];
            out[k] = km.add(acc, km.mul_shoup(xk[k], l, ls));
        }
    }

    /// Every coefficient: `input` holds the residue columns of `D` then `K`; `output[k]`
    /// receives the scaled coefficients mod `kₖ`.
    pub fn scale_poly(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        assert_eq!(input.len(), self.divisor.len() + self.keep.len());
        assert_eq!(output.len(), self.keep.len());
        let n = input[0].len();
        let (mut x, mut out) = (vec![0u64; input.len()], vec![0u64; self.keep.len()]);
        for c in 0..n {
            for (xi, column) in x.iter_mut().zip(input) {
                *xi = column[c];
            }
            self.scale(&x, &mut out);
            for (column, &o) in output.iter_mut().zip(&out) {
                column[c] = o;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ntt_primes;
    use num_bigint::{BigInt, Sign};
    use proptest::prelude::*;

    fn moduli(bits: u32, count: usize, exclude: &[u64]) -> Vec<Modulus> {
        ntt_primes(bits, count, 1 << 14, exclude)
            .into_iter()
            .map(|q| Modulus::new(q).unwrap())
            .collect()
    }

    /// A uniformly drawn value below `bound`, from proptest's bytes.
    fn below(bytes: &[u8], bound: &BigUint) -> BigUint {
        BigUint::from_bytes_le(bytes) % bound
    }

    fn centred(x: &BigUint, m: &BigUint) -> BigInt {
        let x = BigInt::from(x.clone());
        let m = BigInt::from(m.clone());
        if &x * 2 > m {
            x - m
        } else {
            x
        }
    }

    fn mod_of(x: &BigInt, p: &Modulus) -> u64 {
        let r = x % BigInt::from(p.value());
        let r = if r.sign() == Sign::Minus {
            r + BigInt::from(p.value())
        } else {
            r
        };
        r.to_u64_digits().1.first().copied().unwrap_or(0)
    }

    /// `round(a/b)` for integers, halves away from zero (ties never occur in the tests).
    fn round_div(a: &BigInt, b: &BigInt) -> BigInt {
        let twice = a * 2
            + if a.sign() == Sign::Minus {
                -b
            } else {
                b.clone()
            };
        twice / (b * 2)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Q of six 50-bit primes to P of four 60-bit ones, and P to Q: always the centred
        /// representative, exactly.
        #[test]
        fn base_conversion_is_exact_for_the_centred_representative(
            bytes in proptest::collection::vec(any::<u8>(), 48),
            sign in any::<bool>(),
        ) {
            let q = moduli(50, 6, &[]);
            let p = moduli(60, 4, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
            let qq = product(&q);
            let x = below(&bytes, &qq);
            let x = if sign { x } else { (&qq - &x) % &qq };
            let residues: Vec<u64> = q.iter().map(|m| residue(&x, m)).collect();
            let mut out = vec![0; p.len()];
            BaseConverter::new(&q, &p).convert(&residues, &mut out);
            let c = centred(&x, &qq);
            let expect: Vec<u64> = p.iter().map(|m| mod_of(&c, m)).collect();
            prop_assert_eq!(out, expect);
            // and from the larger primes to the smaller ones
            let pp = product(&p);
            let y = below(&bytes, &pp);
            let residues: Vec<u64> = p.iter().map(|m| residue(&y, m)).collect();
            let mut back = vec![0; q.len()];
            BaseConverter::new(&p, &q).convert(&residues, &mut back);
            let c = centred(&y, &pp);
            let expect: Vec<u64> = q.iter().map(|m| mod_of(&c, m)).collect();
            prop_assert_eq!(back, expect);
        }

        /// BFV's scaling: x in Q ∪ R (Q five 50-bit primes, R five 60-bit ones), round(t·x/Q)
        /// in R exactly.
        #[test]
        fn scaling_rounds_t_x_over_d_exactly(
            bytes in proptest::collection::vec(any::<u8>(), 80),
            t in prop_oneof![Just(65537u64), Just(1u64), (2u64..1 << 40)],
        ) {
            let d = moduli(50, 5, &[]);
            let k = moduli(60, 5, &d.iter().map(|m| m.value()).collect::<Vec<_>>());
            let all: Vec<Modulus> = d.iter().chain(&k).copied().collect();
            let m = product(&all);
            let x = below(&bytes, &m);
            let residues: Vec<u64> = all.iter().map(|md| residue(&x, md)).collect();
            let mut out = vec![0; k.len()];
            Scaler::new(t, &d, &k).scale(&residues, &mut out);
            let exact = round_div(&(centred(&x, &m) * BigInt::from(t)), &BigInt::from(product(&d)));
            let expect: Vec<u64> = k.iter().map(|md| mod_of(&exact, md)).collect();
            prop_assert_eq!(out, expect);
        }
    }

    #[test]
    fn polynomials_convert_and_scale_coefficient_by_coefficient() {
        let q = moduli(40, 3, &[]);
        let p = moduli(45, 2, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
        let values: Vec<i64> = vec![0, 1, -1, 1 << 40, -(1 << 41), 123_456_789];
        let columns: Vec<Vec<u64>> = q
            .iter()
            .map(|m| values.iter().map(|&v| m.from_i64(v)).collect())
            .collect();
        let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
        let mut out = vec![vec![0u64; values.len()]; p.len()];
        let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        BaseConverter::new(&q, &p).convert_poly(&input, &mut views);
        for (m, column) in p.iter().zip(&out) {
            let expect: Vec<u64> = values.iter().map(|&v| m.from_i64(v)).collect();
            assert_eq!(column, &expect);
        }
        // dividing by P with rounding (key switching's last step): x·P + e over P ∪ Q is x
        let all: Vec<Modulus> = p.iter().chain(&q).copied().collect();
        let big_p = product(&p);
        let scaled: Vec<BigInt> = values
            .iter()
            .map(|&v| BigInt::from(v) * BigInt::from(big_p.clone()) + BigInt::from(v % 1000))
            .collect();
        let columns: Vec<Vec<u64>> = all
            .iter()
            .map(|m| scaled.iter().map(|v| mod_of(v, m)).collect())
            .collect();
        let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
        let mut out = vec![vec![0u64; values.len()]; q.len()];
        let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        Scaler::new(1, &p, &q).scale_poly(&input, &mut views);
        for (m, column) in q.iter().zip(&out) {
            let expect: Vec<u64> = values.iter().map(|&v| m.from_i64(v)).collect();
            assert_eq!(column, &expect);
        }
    }
}
