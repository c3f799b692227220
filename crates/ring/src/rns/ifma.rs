//! The IFMA kernel: [`super::BaseConverter::convert_poly`] with Shoup's products on the 52-bit limbs
//! of AVX-512 IFMA (three fused multiply-adds per product, none of the 64-bit multiplies AVX-512
//! lacks), eight coefficients per instruction. Exact like the others; the tests compare all
//! three.

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
