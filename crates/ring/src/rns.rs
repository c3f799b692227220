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

/// The IFMA kernel: [`BaseConverter::convert_poly`] with Shoup's products on the 52-bit limbs
/// of AVX-512 IFMA (three fused multiply-adds per product, none of the 64-bit multiplies AVX-512
/// lacks), eight coefficients per instruction. Exact like the others; the tests compare all
/// three.
mod ifma {
    use super::BaseConverter;

    /// Whether this CPU runs the kernel.
    pub(super) fn available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512ifma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Every column a multiple of [`BLOCK`] long, every modulus below `2^50`, and
    /// [`available`] — as [`super::Kernel::for_moduli`] and `convert_poly` ensure.
    pub(super) fn convert(conv: &BaseConverter, input: &[&[u64]], output: &mut [&mut [u64]]) {
        #[cfg(target_arch = "x86_64")]
        {
            assert!(available());
            // SAFETY: the CPU has the features (checked above); the kernel reads and writes
            // only within the columns, whose lengths it checks.
            unsafe { x86::convert(conv, input, output) }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (conv, input, output);
            unreachable!("no IFMA kernel on this architecture")
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use super::super::{BaseConverter, Constant, BLOCK};
        use std::arch::x86_64::*;

        /// `x·w mod m` in `[0, 2m)` for `x < 2^52` and `m < 2^50`: with `w' = ⌊w·2^52/m⌋` and
        /// `q = ⌊x·w'/2^52⌋`, `x·w − q·m ∈ [0, 2m)`, so its low 52 bits are it.
        #[inline(always)]
        unsafe fn lazy(x: __m512i, c: &Constant, m: __m512i) -> __m512i {
            let zero = _mm512_setzero_si512();
            let q = _mm512_madd52hi_epu64(zero, x, _mm512_set1_epi64(c.shoup52 as i64));
            let xw = _mm512_madd52lo_epu64(zero, x, _mm512_set1_epi64(c.w as i64));
            let qm = _mm512_madd52lo_epu64(zero, q, m);
            _mm512_and_si512(_mm512_sub_epi64(xw, qm), _mm512_set1_epi64((1 << 52) - 1))
        }

        /// `a` reduced once: from `[0, 2m)` to `[0, m)` (`bound` = `m`), or from `[0, 4m)` to
        /// `[0, 2m)` (`bound` = `2m`).
        #[inline(always)]
        unsafe fn reduce_once(a: __m512i, bound: __m512i) -> __m512i {
            _mm512_min_epu64(a, _mm512_sub_epi64(a, bound))
        }

        #[target_feature(enable = "avx512f,avx512dq,avx512ifma")]
        pub(super) unsafe fn convert(
            conv: &BaseConverter,
            input: &[&[u64]],
            output: &mut [&mut [u64]],
        ) {
            let k = conv.from.len();
            assert_eq!(input.len(), k);
            assert_eq!(output.len(), conv.to.len());
            let n = input[0].len();
            assert!(n.is_multiple_of(BLOCK) && input.iter().all(|c| c.len() == n));
            assert!(output.iter().all(|c| c.len() == n));
            let mut y = vec![0u64; k * BLOCK];
            let (mut sum, mut v) = ([0f64; BLOCK], [0u64; BLOCK]);
            for start in (0..n).step_by(BLOCK) {
                // yᵢ = xᵢ·(Q/qᵢ)^{-1} mod qᵢ, and Σ yᵢ/qᵢ in double precision
                for (i, (m, column)) in conv.from.iter().zip(input).enumerate() {
                    let (w, q) = (&conv.q_hat_inv[i], _mm512_set1_epi64(m.value() as i64));
                    let inv = _mm512_set1_pd(conv.q_inv_f64[i]);
                    for c in (0..BLOCK).step_by(8) {
                        let x = _mm512_loadu_si512(column.as_ptr().add(start + c).cast());
                        let yc = reduce_once(lazy(x, w, q), q);
                        _mm512_storeu_si512(y.as_mut_ptr().add(i * BLOCK + c).cast(), yc);
                        let s = if i == 0 {
                            _mm512_setzero_pd()
                        } else {
                            _mm512_loadu_pd(sum.as_ptr().add(c))
                        };
                        let s = _mm512_fmadd_pd(_mm512_cvtepu64_pd(yc), inv, s);
                        _mm512_storeu_pd(sum.as_mut_ptr().add(c), s);
                    }
                }
                // v = round(Σ yᵢ/qᵢ): a lane whose fractional part lies within 2^-20 of one
                // half is decided by the exact fractions (overflow_counts), eight at a time
                let (half, margin) = (_mm512_set1_pd(0.5), _mm512_set1_pd(1.0 / (1 << 20) as f64));
                for c in (0..BLOCK).step_by(8) {
                    let s = _mm512_loadu_pd(sum.as_ptr().add(c));
                    let whole = _mm512_cvttpd_epu64(s);
                    let fraction = _mm512_sub_pd(s, _mm512_cvtepu64_pd(whole));
                    let up = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(fraction, half);
                    let off_half = _mm512_abs_pd(_mm512_sub_pd(fraction, half));
                    let clear = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(off_half, margin);
                    let vc = _mm512_mask_add_epi64(whole, up, whole, _mm512_set1_epi64(1));
                    _mm512_storeu_si512(v.as_mut_ptr().add(c).cast(), vc);
                    if clear != 0xff {
                        let lanes = c..c + 8;
                        conv.overflow_counts_at(&y, &sum, &mut v, lanes);
                    }
                }
                // Σ yᵢ·(Q/qᵢ) − v·Q mod pⱼ, eight coefficients per register
                for (j, (p, column)) in conv.to.iter().zip(output.iter_mut()).enumerate() {
                    let q = _mm512_set1_epi64(p.value() as i64);
                    let two_q = _mm512_set1_epi64(2 * p.value() as i64);
                    let weights = &conv.q_hat_mod_p[j];
                    for c in (0..BLOCK).step_by(8) {
                        let vc = _mm512_loadu_si512(v.as_ptr().add(c).cast());
                        let mut acc = lazy(vc, &conv.minus_q_mod_p[j], q);
                        for (i, w) in weights.iter().enumerate() {
                            let yc = _mm512_loadu_si512(y.as_ptr().add(i * BLOCK + c).cast());
                            acc = reduce_once(_mm512_add_epi64(acc, lazy(yc, w, q)), two_q);
                        }
                        let out = reduce_once(acc, q);
                        _mm512_storeu_si512(column.as_mut_ptr().add(start + c).cast(), out);
                    }
                }
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

    /// Every kernel (IFMA where the CPU has it, double precision, Shoup), on multiplication's
    /// bases, gives the same exact results — blocks of 256 coefficients and a shorter tail.
    #[test]
    fn every_kernel_converts_and_scales_alike() {
        let q = moduli(50, 6, &[]);
        let p = moduli(50, 7, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
        let all: Vec<Modulus> = q.iter().chain(&p).copied().collect();
        let mut seed = 11u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed
        };
        for len in [4 * BLOCK, 40] {
            let columns: Vec<Vec<u64>> = all
                .iter()
                .map(|m| (0..len).map(|_| next() % m.value()).collect())
                .collect();
            let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
            let mut results = Vec::new();
            let mut kernels = vec![Kernel::Shoup, Kernel::Float];
            if ifma::available() {
                kernels.push(Kernel::Ifma);
            } else {
                println!("no AVX-512 IFMA on this CPU: its kernel is not compared");
            }
            for kernel in kernels {
                let mut converter = BaseConverter::new(&q, &p);
                converter.kernel = kernel;
                let mut scaler = Scaler::new(65537, &q, &p);
                scaler.extend.kernel = kernel;
                let mut converted = vec![vec![0u64; len]; p.len()];
                let mut views: Vec<&mut [u64]> =
                    converted.iter_mut().map(Vec::as_mut_slice).collect();
                converter.convert_poly(&input[..q.len()], &mut views);
                let mut scaled = vec![vec![0u64; len]; p.len()];
                let mut views: Vec<&mut [u64]> = scaled.iter_mut().map(Vec::as_mut_slice).collect();
                scaler.scale_poly(&input, &mut views);
                results.push((kernel, converted, scaled));
            }
            for (kernel, converted, scaled) in &results[1..] {
                assert_eq!(
                    converted, &results[0].1,
                    "{kernel:?} conversion, {len} values"
                );
                assert_eq!(scaled, &results[0].2, "{kernel:?} scaling, {len} values");
            }
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
        // whole blocks, so that the IFMA kernel runs where the CPU has it
        values.resize(values.len().next_multiple_of(BLOCK), BigInt::from(0));
        let columns: Vec<Vec<u64>> = q
            .iter()
            .map(|m| values.iter().map(|v| mod_of(v, m)).collect())
            .collect();
        let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
        let mut out = vec![vec![0u64; values.len()]; p.len()];
        let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        let converter = BaseConverter::new(&q, &p);
        assert_ne!(converter.kernel, Kernel::Shoup);
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
