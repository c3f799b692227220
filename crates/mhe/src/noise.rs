//! Noise model of the additive flow and the smudging plan of decryption and key-switch shares.
//!
//! # Noise of the aggregate
//!
//! Per coefficient, with `N` the ring degree, `n` the parties whose ternary secrets make up
//! `s = Σ s_i` (variance `V_s = 2n/3` per coefficient), `σ = 3.2`, `V_u = 2/3`:
//!
//! - fresh encryption under the collective key `(p = −s·a + Σe_i, a)`:
//!   `e = u·Σe_i + e_0 + e_1·s`, variance `N·V_u·n·σ² + σ² + N·σ²·V_s`;
//! - switching from `Q_L` to `Q_ℓ`: the noise scales by `Q_ℓ/Q_L` and the rounding of
//!   `c_0`, `c_1` and of the scaled message adds `(1 + N·V_s)/12 + 1/12`;
//! - a sum of `k` independent contributions: `k` times the variance.
//!
//! A coefficient is a sum of at least `N` independent bounded terms, so it is sub-Gaussian and
//! `B_ct = 10·√variance` bounds it except with probability `2·e^{-50} < 2^{-71}`.
//!
//! # Smudging (Mouchet et al. §IV-C; PROTOCOLS.md "Smudging")
//!
//! A decryption share `h_i = s_i·c_1 + e_i` reveals, once all shares are summed and `c_0` is
//! added, `Δm + e_ct + Σ e_i`: the smudging `e_i` must hide the ciphertext noise `e_ct`, which
//! depends on every party's secret and errors. Each party draws `e_i` uniform on
//! `[-2^b, 2^b)` on its own (the others may collude). For a shift `|x| ≤ B_ct`, the statistical
//! distance between uniform on `2^{b+1}` integers and its shift by `x` is `|x|/2^{b+1}`, so the
//! statistical security per coefficient is `λ = b + 1 − log2(B_ct)`; over the `N` coefficients
//! of a share the distance is at most `N·2^{-λ}`. Concord requires `λ ≥ 40`
//! ([`MIN_STATISTICAL_SECURITY`]) and picks the largest `b` that still decrypts:
//! `B_ct + n_shares·(2^b + C) + extra < Q_ℓ/(2t)`, where `C` is the compression error below and
//! `extra` the key-switching noise of PCKS (`Σ u_i·e' + s'·Σ e_{1,i}`).
//!
//! # Compression
//!
//! A share's bits below `2^b` are noise already: a share is sent as the top
//! `d = ⌈log2 Q_ℓ⌉ + 1 − b` bits (at most 63) of `h_i/Q_ℓ` on the torus, which adds at most
//! `C = Q_ℓ/2^{d+1} + (ℓ+2)·Q_ℓ/2^64 + 1 ≤ 2^{b-2} + …` per share — and rounding a smudged
//! value is post-processing, so it costs no privacy. Compressed shares add modulo `2^d`.

use crate::MheError;
use concord_bfv::BfvParameters;
use concord_ring::sampling::ERROR_STD_DEV;

/// Required statistical security of smudging, in bits, per coefficient.
pub const MIN_STATISTICAL_SECURITY: u32 = 40;
/// Tail factor of the high-probability noise bounds.
const TAIL: f64 = 10.0;
const TERNARY_VAR: f64 = 2.0 / 3.0;

/// The variance of a ciphertext's noise, per coefficient, in absolute units at its level.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseEstimate {
    pub variance: f64,
    pub level: usize,
}

impl NoiseEstimate {
    /// A fresh encryption under the collective key of `n_key_parties`, at the top level.
    pub fn fresh(params: &BfvParameters, n_key_parties: usize) -> Self {
        let n = params.degree() as f64;
        let sigma2 = ERROR_STD_DEV * ERROR_STD_DEV;
        let vs = n_key_parties as f64 * TERNARY_VAR;
        Self {
            variance: n * TERNARY_VAR * n_key_parties as f64 * sigma2 + sigma2 + n * sigma2 * vs,
            level: params.max_level(),
        }
    }

    /// After switching down to `level`.
    pub fn switched(self, params: &BfvParameters, level: usize, n_key_parties: usize) -> Self {
        let ring = params.ring();
        let ratio = 2f64.powf(ring.log_modulus(level) - ring.log_modulus(self.level));
        let vs = n_key_parties as f64 * TERNARY_VAR;
        let rounding = (1.0 + params.degree() as f64 * vs) / 12.0 + 1.0 / 12.0;
        Self {
            variance: self.variance * ratio * ratio
                + if level < self.level { rounding } else { 0.0 },
            level,
        }
    }

    /// The sum of `k` independent ciphertexts like this one.
    pub fn summed(self, k: usize) -> Self {
        Self {
            variance: self.variance * k as f64,
            ..self
        }
    }

    /// The noise of Concord's additive flow: `contributions` fresh encryptions under the key of
    /// `n_key_parties`, each switched to the transmit level, summed.
    pub fn aggregate(params: &BfvParameters, n_key_parties: usize, contributions: usize) -> Self {
        Self::fresh(params, n_key_parties)
            .switched(params, params.transmit_level(), n_key_parties)
            .summed(contributions)
    }

    /// `log2` of the high-probability bound `10·√variance`.
    pub fn log_bound(&self) -> f64 {
        (TAIL * self.variance.sqrt()).max(1.0).log2()
    }
}

/// How decryption or key-switch shares are smudged and compressed for one ciphertext.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmudgingPlan {
    /// Smudging noise is uniform on `[-2^bits, 2^bits)`.
    pub bits: u32,
    /// Bits per coefficient of a compressed share.
    pub compressed_bits: u32,
    /// Statistical security per coefficient, in bits.
    pub lambda: f64,
    /// Remaining margin, `log2(Q/(2t)) − log2(total noise bound)`: decryption is exact while > 0.
    pub margin_bits: f64,
    pub level: usize,
    pub n_shares: usize,
}

impl SmudgingPlan {
    /// Plan for joint decryption (CKS) by `n_shares` parties of a ciphertext with noise `noise`.
    pub fn for_decryption(
        params: &BfvParameters,
        noise: NoiseEstimate,
        n_shares: usize,
    ) -> Result<Self, MheError> {
        Self::plan(params, noise, n_shares, 0.0, "joint decryption")
    }

    /// Plan for key switching (PCKS) to a receiver's public key.
    pub fn for_key_switch(
        params: &BfvParameters,
        noise: NoiseEstimate,
        n_shares: usize,
    ) -> Result<Self, MheError> {
        // Σ_i u_i·e' + s'·Σ_i e_{1,i}: 2·n·N·V_u·σ² per coefficient.
        let sigma2 = ERROR_STD_DEV * ERROR_STD_DEV;
        let extra = 2.0 * n_shares as f64 * params.degree() as f64 * TERNARY_VAR * sigma2;
        Self::plan(
            params,
            noise,
            n_shares,
            TAIL * extra.sqrt(),
            "key switching",
        )
    }

    fn plan(
        params: &BfvParameters,
        noise: NoiseEstimate,
        n_shares: usize,
        extra: f64,
        context: &'static str,
    ) -> Result<Self, MheError> {
        let ring = params.ring();
        let level = noise.level;
        let log_q = ring.log_modulus(level);
        let log_q_ceil = ring.packed_bits_per_coefficient(level) as u32; // ⌈log2 Q⌉ or one above
        let log_margin = log_q - (params.plaintext_modulus() as f64).log2() - 1.0;
        let b_ct = 2f64.powf(noise.log_bound());
        let total = |b: u32| {
            let d = (log_q_ceil + 1).saturating_sub(b).clamp(1, 63);
            let compression = 2f64.powf(log_q - d as f64 - 1.0)
                + (level as f64 + 2.0) * 2f64.powf(log_q - 64.0)
                + 1.0;
            (
                d,
                b_ct + n_shares as f64 * (2f64.powi(b as i32) + compression) + extra,
            )
        };
        // largest b ≤ 62 that still decrypts (a 2^-20 safety margin covers float rounding here)
        let fits = |b: u32| total(b).1.log2() < log_margin - 2f64.powi(-20);
        let Some(bits) = (1..=62).rev().find(|&b| fits(b)) else {
            return Err(MheError::InsufficientSmudging {
                context,
                set: params.name(),
                lambda: f64::NEG_INFINITY,
                required: MIN_STATISTICAL_SECURITY,
            });
        };
        let (compressed_bits, bound) = total(bits);
        let lambda = bits as f64 + 1.0 - noise.log_bound();
        if lambda < MIN_STATISTICAL_SECURITY as f64 {
            return Err(MheError::InsufficientSmudging {
                context,
                set: params.name(),
                lambda,
                required: MIN_STATISTICAL_SECURITY,
            });
        }
        Ok(Self {
            bits,
            compressed_bits,
            lambda,
            margin_bits: log_margin - bound.log2(),
            level,
            n_shares,
        })
    }
}
