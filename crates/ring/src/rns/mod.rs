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

use crate::{Modulus, Poly, Representation, RnsContext};
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
    /// `⌊w·2^52/m⌋`: Shoup's companion on the 52-bit limbs of AVX-512 IFMA.
    shoup52: u64,
    ratio: f64,
}

impl Constant {
    fn new(m: &Modulus, w: u64) -> Self {
        Self {
            w,
            shoup: m.shoup(w),
            shoup52: (((w as u128) << 52) / m.value() as u128) as u64,
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

/// Which conversion kernel runs: chosen once per converter from its moduli and the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    /// Shoup's products, one coefficient at a time: any modulus below `2^62`.
    Shoup,
    /// Double-precision quotient estimates, auto-vectorised: moduli below `2^51`.
    Float,
    /// Shoup's products on AVX-512 IFMA's 52-bit limbs: moduli below `2^50`, polynomials of
    /// whole blocks, and a CPU with IFMA.
    Ifma,
}

impl Kernel {
    fn for_moduli(moduli: &[&[Modulus]]) -> Self {
        let bits = moduli
            .iter()
            .flat_map(|ms| ms.iter())
            .map(|m| m.bits())
            .max();
        match bits.unwrap_or(64) {
            ..=50 if ifma::available() => Kernel::Ifma,
            ..=51 => Kernel::Float,
            _ => Kernel::Shoup,
        }
    }
}

/// Coefficients per block of the conversion kernels: the scratch stays in the L1 cache.
const BLOCK: usize = 256;

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
    kernel: Kernel,
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
            kernel: Kernel::for_moduli(&[from, to]),
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
        let whole_blocks = input.first().is_some_and(|c| c.len() % BLOCK == 0);
        match self.kernel {
            Kernel::Ifma if whole_blocks => ifma::convert(self, input, output),
            Kernel::Ifma | Kernel::Float => crate::vectorized(
                #[inline(always)]
                || self.convert_columns::<true>(input, output),
            ),
            Kernel::Shoup => self.convert_columns::<false>(input, output),
        }
    }

    /// The conversion of `input`'s residues (every column of it) as a new polynomial of `to`,
    /// the target basis's context, in coefficient form.
    pub fn convert_to_poly(&self, input: &[&[u64]], to: &RnsContext) -> Poly {
        assert!(
            to.moduli().starts_with(&self.to),
            "the target basis's context"
        );
        Poly::overwritten(to, self.to.len(), Representation::Coefficient, |out| {
            self.convert_poly(input, out)
        })
    }

    /// `v = round(Σ yᵢ/qᵢ)` per coefficient of a block, from the double-precision sums: within
    /// `k·2^-52` of the truth, so where a fractional part lies within `2^-20` of one half, the
    /// 128-bit fractions decide.
    fn overflow_counts(&self, y: &[u64], sum: &[f64], v: &mut [u64]) {
        self.overflow_counts_at(y, sum, v, 0..sum.len());
    }

    /// [`Self::overflow_counts`] for the coefficients `lanes` of a block only.
    fn overflow_counts_at(
        &self,
        y: &[u64],
        sum: &[f64],
        v: &mut [u64],
        lanes: std::ops::Range<usize>,
    ) {
        for c in lanes {
            let (vc, s) = (&mut v[c], sum[c]);
            // s ≥ 0: its floor is its truncation, one instruction (no libm call)
            let whole = s as u64;
            let fraction = s - whole as f64;
            *vc = if (fraction - 0.5).abs() > 1.0 / (1 << 20) as f64 {
                whole + u64::from(fraction > 0.5)
            } else {
                let terms = (0..self.from.len()).map(|i| (y[i * BLOCK + c], self.q_inv[i]));
                round_dot(terms) as u64
            };
        }
    }

    #[inline(always)]
    fn convert_columns<const FLOAT: bool>(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        let k = self.from.len();
        assert_eq!(input.len(), k);
        assert_eq!(output.len(), self.to.len());
        let n = input[0].len();
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
            // Σ yᵢ·(Q/qᵢ) = x + v·Q with v = round(Σ yᵢ/qᵢ) for the centred x
            self.overflow_counts(&y, &sum[..len], &mut v[..len]);
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
        let d = self.divisor.len();
        assert_eq!(input.len(), d + self.keep.len());
        assert_eq!(output.len(), self.keep.len());
        // r = [t·x]_D, centred, in K
        self.extend.convert_poly(&input[..d], output);
        if self.extend.kernel == Kernel::Shoup {
            self.divide::<false>(input, output)
        } else {
            crate::vectorized(
                #[inline(always)]
                || self.divide::<true>(input, output),
            )
        }
    }

    /// The scaled polynomial as a new polynomial of `keep`, the kept basis's context, in
    /// coefficient form.
    pub fn scale_to_poly(&self, input: &[&[u64]], keep: &RnsContext) -> Poly {
        assert!(
            keep.moduli().starts_with(&self.keep),
            "the kept basis's context"
        );
        Poly::overwritten(keep, self.keep.len(), Representation::Coefficient, |out| {
            self.scale_poly(input, out)
        })
    }

    /// `(t·x − r)·D^{-1}` in `K`, over `r` in `output`.
    #[inline(always)]
    fn divide<const FLOAT: bool>(&self, input: &[&[u64]], output: &mut [&mut [u64]]) {
        let d = self.divisor.len();
        for (k, (m, column)) in self.keep.iter().zip(output.iter_mut()).enumerate() {
            let (t, d_inv, q) = (self.t_mod_k[k], self.d_inv_mod_k[k], m.value());
            for (out, &x) in column.iter_mut().zip(input[d + k]) {
                let diff = m.sub(t.mul::<FLOAT>(x, q), *out);
                *out = d_inv.mul::<FLOAT>(diff, q);
            }
        }
    }
}

/// The AVX-512 IFMA kernel of the conversion.
mod ifma;

#[cfg(test)]
mod tests;
