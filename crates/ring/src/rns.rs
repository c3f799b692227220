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
//! is the default of OpenFHE for the same reason. The estimate is a double (as in HPS), and
//! where it lies within `2^-20` of one half — where its `k·2^-52` error could flip the
//! rounding — a 128-bit binary fraction per term decides: a result differs from the exact one
//! only when the true fractional part lies within `k·2^-63` of one half, for uniformly random
//! inputs with probability below `2^-57` per coefficient for the bases Concord uses. Scaling
//! is a conversion too: `round(t·x/D) = (t·x − [t·x]_D)/D`, with `[t·x]_D` extended exactly.
//! The tests compare against big-integer arithmetic.
//!
//! **Speed.** The kernels run column by column over blocks of 256 coefficients (the scratch
//! stays in L1), with lazily reduced products summed in registers and reduced once per output.
//! When every modulus is below `2^51` (Concord's multiplicative sets) the products estimate
//! their quotient in double precision — every step an AVX-512 instruction — and the loops
//! vectorise (through `pulp`'s run-time dispatch); otherwise they use Shoup's products.
//! `cargo bench -p concord-benches --bench primitives -- rns` measures both kernels.

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

/// A constant `w < m` with what the two product kernels need: Shoup's companion `⌊w·2^64/m⌋`
/// and the ratio `w/m` as a double.
#[derive(Clone, Copy, Debug)]
struct Constant {
    w: u64,
    shoup: u64,
    ratio: f64,
}

impl Constant {
    fn new(m: &Modulus, w: u64) -> Self {
        Self {
            w,
            shoup: m.shoup(w),
            ratio: w as f64 / m.value() as f64,
        }
    }

    /// `x·w mod m` up to one extra `m` (in `[0, 2m)`). With `FLOAT`, for `x, m < 2^51`, the
    /// quotient `⌊x·w/m⌋` is estimated as `⌊x·(w/m)⌋` in double precision — off by at most one
    /// (relative error below `2^-51` on a value below `2^51`), so one branch-free correction
    /// lands in `[0, 2m)` — every step an AVX-512 instruction, so loops of it vectorise.
    /// Without, Shoup's product without its final correction, for any word `x`.
    #[inline(always)]
    fn lazy_mul<const FLOAT: bool>(&self, x: u64, m: u64) -> u64 {
        if FLOAT {
            // SAFETY: x < 2^51 and 0 ≤ w/m < 1, so the product is finite, non-negative and
            // below 2^51: in range for u64, and the unchecked conversion (one instruction, no
            // saturation logic) is exact for the floor.
            let estimate: u64 = unsafe { (x as f64 * self.ratio).to_int_unchecked() };
            let r = x
                .wrapping_mul(self.w)
                .wrapping_sub(estimate.wrapping_mul(m));
            r.wrapping_add(m & ((r as i64 >> 63) as u64))
        } else {
            let hi = ((x as u128 * self.shoup as u128) >> 64) as u64;
            x.wrapping_mul(self.w).wrapping_sub(hi.wrapping_mul(m))
        }
    }

    /// `x·w mod m`, reduced.
    #[inline(always)]
    fn mul<const FLOAT: bool>(&self, x: u64, m: u64) -> u64 {
        let r = self.lazy_mul::<FLOAT>(x, m);
        r.min(r.wrapping_sub(m))
    }
}

/// `a + b` for `a, b < 2m`, kept below `2m` (branch-free).
#[inline(always)]
fn add_lazy(a: u64, b: u64, two_m: u64) -> u64 {
    let s = a + b;
    s.min(s.wrapping_sub(two_m))
}

/// Whether every modulus fits the double-precision kernels (below `2^51`).
fn floats_fit(moduli: &[Modulus]) -> bool {
    moduli.iter().all(|m| m.bits() <= 51)
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
    /// `(Q/qᵢ)^{-1} mod qᵢ`.
    q_hat_inv: Vec<Constant>,
    /// `1/qᵢ`, exactly enough for the rare coefficient the double estimate cannot round.
    q_inv: Vec<Fraction>,
    /// `1/qᵢ` as a double.
    q_inv_f64: Vec<f64>,
    /// `[j][i] = (Q/qᵢ) mod pⱼ`.
    q_hat_mod_p: Vec<Vec<Constant>>,
    /// `−Q mod pⱼ`: the overflow correction, times `v`.
    minus_q_mod_p: Vec<Constant>,
    /// Every modulus below `2^51`: the vectorisable kernels apply.
    float: bool,
}

impl BaseConverter {
    /// A converter from the basis `from` to the basis `to` (distinct primes).
    pub fn new(from: &[Modulus], to: &[Modulus]) -> Self {
        Self::with_factor(from, to, 1)
    }

    /// A converter of `[factor·x]_Q` (centred) rather than of `x`: the factor costs nothing,
    /// folded into the first step's constants.
    pub fn with_factor(from: &[Modulus], to: &[Modulus], factor: u64) -> Self {
        assert!(from.len() <= 64, "at most 64 moduli in a basis");
        let q = product(from);
        let q_hat: Vec<BigUint> = from.iter().map(|m| &q / m.value()).collect();
        Self {
            q_hat_inv: from
                .iter()
                .zip(&q_hat)
                .map(|(m, hat)| {
                    let inv = m.inv(residue(hat, m)).expect("distinct primes");
                    Constant::new(m, m.mul(inv, m.reduce(factor)))
                })
                .collect(),
            q_inv: from
                .iter()
                .map(|m| Fraction::of(&BigUint::from(1u8), &BigUint::from(m.value())))
                .collect(),
            q_inv_f64: from.iter().map(|m| 1.0 / m.value() as f64).collect(),
            q_hat_mod_p: to
                .iter()
                .map(|p| {
                    q_hat
                        .iter()
                        .map(|hat| Constant::new(p, residue(hat, p)))
                        .collect()
                })
                .collect(),
            minus_q_mod_p: to
                .iter()
                .map(|p| Constant::new(p, p.neg(residue(&q, p))))
                .collect(),
            float: floats_fit(from) && floats_fit(to),
            from: from.to_vec(),
            to: to.to_vec(),
        }
    }

    /// One value: `x[i] = x mod qᵢ` in, `out[j]` = (centred `x`) `mod pⱼ` out.
    pub fn convert(&self, x: &[u64], out: &mut [u64]) {
        let input: Vec<&[u64]> = x.iter().map(std::slice::from_ref).collect();
        let mut output: Vec<&mut [u64]> = out.iter_mut().map(std::slice::from_mut).collect();
        self.convert_poly(&input, &mut output);
    }

    /// Every coefficient of a polynomial: `input[i]` holds the coefficients mod `qᵢ`, `output[j]`
    /// receives them mod `pⱼ`. Column by column, so that with moduli below `2^51` every loop
    /// vectorises (double-precision quotient estimates, AVX-512 where the CPU has it).
    pub fn convert_poly(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        if self.float {
            crate::vectorized(
                #[inline(always)]
                || self.convert_columns::<true>(input, output),
            )
        } else {
            self.convert_columns::<false>(input, output)
        }
    }

    #[inline(always)]
    fn convert_columns<const FLOAT: bool>(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        let k = self.from.len();
        assert_eq!(input.len(), k);
        assert_eq!(output.len(), self.to.len());
        let n = input[0].len();
        // blocks of coefficients small enough that the scratch stays in the L1 cache
        const BLOCK: usize = 256;
        const LANES: usize = 8;
        let mut y = vec![0u64; k * BLOCK];
        let (mut sum, mut v) = ([0f64; BLOCK], [0u64; BLOCK]);
        for start in (0..n).step_by(BLOCK) {
            let len = BLOCK.min(n - start);
            let block = start..start + len;
            // yᵢ = xᵢ·(Q/qᵢ)^{-1} mod qᵢ, and Σ yᵢ/qᵢ in double precision
            sum[..len].fill(0.0);
            for (i, (m, column)) in self.from.iter().zip(input).enumerate() {
                let (w, inv, q) = (self.q_hat_inv[i], self.q_inv_f64[i], m.value());
                let yi = &mut y[i * BLOCK..i * BLOCK + len];
                for ((yc, s), &x) in yi
                    .iter_mut()
                    .zip(&mut sum[..len])
                    .zip(&column[block.clone()])
                {
                    *yc = w.mul::<FLOAT>(x, q);
                    *s += *yc as f64 * inv;
                }
            }
            // Σ yᵢ·(Q/qᵢ) = x + v·Q with v = round(Σ yᵢ/qᵢ) for the centred x. The double sum
            // is within k·2^-52 of the truth; where that could flip the rounding (a fractional
            // part within 2^-20 of one half), the 128-bit fractions decide.
            for (c, (vc, &s)) in v[..len].iter_mut().zip(&sum[..len]).enumerate() {
                *vc = if (s - s.floor() - 0.5).abs() > 1.0 / (1 << 20) as f64 {
                    s.round() as u64
                } else {
                    let terms = (0..k).map(|i| (y[i * BLOCK + c], self.q_inv[i]));
                    round_dot(terms) as u64
                };
            }
            for (j, (p, column)) in self.to.iter().zip(output.iter_mut()).enumerate() {
                let (q, two_q) = (p.value(), 2 * p.value());
                let correction = self.minus_q_mod_p[j];
                let out = &mut column[block.clone()];
                let weights = &self.q_hat_mod_p[j];
                // eight coefficients at a time, their sums held in registers across the k terms
                for (lane, o) in out.chunks_mut(LANES).enumerate() {
                    let base = lane * LANES;
                    let mut acc = [0u64; LANES];
                    for (l, a) in acc.iter_mut().enumerate().take(o.len()) {
                        *a = correction.lazy_mul::<FLOAT>(v[base + l], q);
                    }
                    for (i, w) in weights.iter().enumerate() {
                        let yi = &y[i * BLOCK + base..i * BLOCK + base + LANES];
                        for (a, &yc) in acc.iter_mut().zip(yi) {
                            *a = add_lazy(*a, w.lazy_mul::<FLOAT>(yc, q), two_q);
                        }
                    }
                    for (o, a) in o.iter_mut().zip(acc) {
                        *o = a.min(a.wrapping_sub(q));
                    }
                }
            }
        }
    }
}

/// Scales by `t/D` with rounding: residues of `x` in `D ∪ K` to residues of `round(t·x/D)` in
/// `K`. With `r = [t·x]_D` centred, `round(t·x/D) = (t·x − r)/D` exactly (`D` is odd, so there
/// are no ties): `r` is extended exactly from `D` to `K` by a [`BaseConverter`] (with `t`
/// folded into its constants), and the division by `D` is a product by `D^{-1} mod kₖ` — the
/// conversion's kernels, so scaling is exact and vectorises where conversion does.
#[derive(Clone, Debug)]
pub struct Scaler {
    divisor: Vec<Modulus>,
    keep: Vec<Modulus>,
    /// `t mod kₖ`.
    t_mod_k: Vec<Constant>,
    /// `D^{-1} mod kₖ`.
    d_inv_mod_k: Vec<Constant>,
    extend: BaseConverter,
}

impl Scaler {
    /// `round(t·x/D)` from `D ∪ K` (residues in that order) to `K`.
    pub fn new(t: u64, divisor: &[Modulus], keep: &[Modulus]) -> Self {
        let d = product(divisor);
        let t_big = BigUint::from(t);
        Self {
            t_mod_k: keep
                .iter()
                .map(|m| Constant::new(m, residue(&t_big, m)))
                .collect(),
            d_inv_mod_k: keep
                .iter()
                .map(|m| Constant::new(m, m.inv(residue(&d, m)).expect("distinct primes")))
                .collect(),
            extend: BaseConverter::with_factor(divisor, keep, t),
            divisor: divisor.to_vec(),
            keep: keep.to_vec(),
        }
    }

    /// One value: `x` = residues in `D` then `K`; `out[k]` = `round(t·x/D) mod kₖ`.
    pub fn scale(&self, x: &[u64], out: &mut [u64]) {
        let input: Vec<&[u64]> = x.iter().map(std::slice::from_ref).collect();
        let mut output: Vec<&mut [u64]> = out.iter_mut().map(std::slice::from_mut).collect();
        self.scale_poly(&input, &mut output);
    }

    /// Every coefficient: `input` holds the residue columns of `D` then `K`; `output[k]`
    /// receives the scaled coefficients mod `kₖ`.
    pub fn scale_poly(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        if self.extend.float {
            crate::vectorized(
                #[inline(always)]
                || self.scale_columns::<true>(input, output),
            )
        } else {
            self.scale_columns::<false>(input, output)
        }
    }

    #[inline(always)]
    fn scale_columns<const FLOAT: bool>(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        let d = self.divisor.len();
        assert_eq!(input.len(), d + self.keep.len());
        assert_eq!(output.len(), self.keep.len());
        // r = [t·x]_D, centred, in K
        self.extend.convert_columns::<FLOAT>(&input[..d], output);
        // (t·x − r)·D^{-1} in K
        for (k, (m, column)) in self.keep.iter().zip(output.iter_mut()).enumerate() {
            let (t, d_inv, q) = (self.t_mod_k[k], self.d_inv_mod_k[k], m.value());
            for (out, &x) in column.iter_mut().zip(input[d + k]) {
                let diff = m.sub(t.mul::<FLOAT>(x, q), *out);
                *out = d_inv.mul::<FLOAT>(diff, q);
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

    /// The double-precision kernels (every modulus below 2^51), on multiplication's bases:
    /// exact for random values and for values within `Q·2^-50` of ±Q/2, where the double
    /// estimate of `v` cannot round and the 128-bit fractions decide. (Within `k·2^-63·Q` of
    /// ±Q/2 both representatives are possible — the module doc's `2^-57` per random value.)
    #[test]
    fn float_kernels_are_exact_including_next_to_half_the_modulus() {
        let q = moduli(50, 6, &[]);
        let p = moduli(50, 7, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
        let qq = BigInt::from(product(&q));
        let half = &qq / 2;
        let step: BigInt = &qq >> 56u32;
        let mut values: Vec<BigInt> = Vec::new();
        for d in 1..50i64 {
            values.push(&half - &step * d);
            values.push(-&half + &step * d);
            values.push(BigInt::from(d) * 1_000_003 - 25_000_000);
        }
        let mut seed = 7u64;
        for _ in 0..500 {
            let mut bytes = [0u8; 40];
            for b in &mut bytes {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (seed >> 33) as u8;
            }
            values.push(BigInt::from(BigUint::from_bytes_le(&bytes) % product(&q)) - &half);
        }
        let columns: Vec<Vec<u64>> = q
            .iter()
            .map(|m| values.iter().map(|v| mod_of(v, m)).collect())
            .collect();
        let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
        let mut out = vec![vec![0u64; values.len()]; p.len()];
        let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        let converter = BaseConverter::new(&q, &p);
        assert!(converter.float);
        converter.convert_poly(&input, &mut views);
        for (m, column) in p.iter().zip(&out) {
            let expect: Vec<u64> = values.iter().map(|v| mod_of(v, m)).collect();
            assert_eq!(column, &expect);
        }
        // and the scale: x over Q ∪ P, round(65537·x/Q) in P
        let all: Vec<Modulus> = q.iter().chain(&p).copied().collect();
        let columns: Vec<Vec<u64>> = all
            .iter()
            .map(|m| values.iter().map(|v| mod_of(&(v * 12345), m)).collect())
            .collect();
        let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
        let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        Scaler::new(65537, &q, &p).scale_poly(&input, &mut views);
        for (m, column) in p.iter().zip(&out) {
            let expect: Vec<u64> = values
                .iter()
                .map(|v| mod_of(&round_div(&(v * 12345 * 65537), &qq), m))
                .collect();
            assert_eq!(column, &expect);
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
