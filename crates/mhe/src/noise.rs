//! Noise model of the additive flow and of products and rotations (engine part 2), and the
//! smudging plan of decryption and key-switch shares.
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

    /// The product of two top-level ciphertexts (multiplicative sets), relinearized. Writing
    /// `c_0 + c_1·s = Δm + v + Q·r` with `r` the wrap-around (coefficients of variance about
    /// `N·V_s/12`), the tensor scaled by `t/Q` is `Δ·m·m' + t·(v·r' + v'·r) + …`, so the noise
    /// variance is about `t²·N²·(V_s/12)·(V + V')`, plus smaller terms (`m·v'`, rounding) that
    /// a factor 4 covers; relinearization adds [`Self::key_switched`]'s term. Checked against
    /// measured noise at every depth by the tests.
    pub fn multiplied(self, other: Self, params: &BfvParameters, n_key_parties: usize) -> Self {
        let (n, t) = (params.degree() as f64, params.plaintext_modulus() as f64);
        let vs = n_key_parties as f64 * TERNARY_VAR;
        Self {
            variance: 4.0 * t * t * n * n * vs / 12.0 * (self.variance + other.variance),
            level: params.max_level(),
        }
        .key_switched(params, n_key_parties)
    }

    /// After one key switch (relinearization or a rotation) with a collective key: per digit
    /// `Q_j` (coefficients uniform below it) times the key's noise `s·e_0 + u·e_1 + e_2`
    /// (each sum over `n` parties), divided by `P`, plus the rounding of the division.
    pub fn key_switched(self, params: &BfvParameters, n_key_parties: usize) -> Self {
        let ring = params.key_ring();
        let n = params.degree() as f64;
        let k = n_key_parties as f64;
        let sigma2 = ERROR_STD_DEV * ERROR_STD_DEV;
        let vs = k * TERNARY_VAR;
        let key = n * vs * k * sigma2 + n * vs * k * sigma2 + k * sigma2;
        let l = params.max_level();
        let log_p = ring.log_modulus(ring.max_level()) - ring.log_modulus(l);
        let digits = params.gadget_length().max(1) as f64;
        let log_digit = ring.log_modulus(l) / digits;
        let switch = digits * n * 2f64.powf(2.0 * (log_digit - log_p)) / 12.0 * key;
        Self {
            variance: self.variance + switch + (1.0 + n * vs) / 12.0,
            ..self
        }
    }

    /// Times a factor bounding how much a linear step can grow the noise: `|c|` for a scalar
    /// `c`, `Σ|cᵢ|` for a combination `Σ cᵢ·xᵢ` of ciphertexts like this one, `N·‖m‖_∞` for a
    /// plaintext product by `m` — worst cases, as the bounds of a sum of aligned terms.
    pub fn scaled(self, factor: f64) -> Self {
        Self {
            variance: self.variance * factor * factor,
            ..self
        }
    }

    /// After [`concord_bfv::Ciphertext::inner_sum`]: `log2(N)` rotations, each adding the
    /// rotated noise — bounded as if every copy's noise lined up, `N²` times the variance.
    pub fn inner_summed(self, params: &BfvParameters, n_key_parties: usize) -> Self {
        let n = params.degree() as f64;
        let switched = self.key_switched(params, n_key_parties);
        Self {
            variance: switched.variance * n * n,
            ..switched
        }
    }

    /// After `concord_bfv::Ciphertext::value_counts` over `ciphertexts` ciphertexts like this
    /// one, on a domain of `values` values: the highest power `x^{values−1}` (at depth
    /// `⌈log2(values − 1)⌉`, each product of two powers no noisier than it), summed over the
    /// ciphertexts, times the scalar combination of `values` coefficients below `t/2`.
    pub fn value_counted(
        self,
        params: &BfvParameters,
        n_key_parties: usize,
        values: usize,
        ciphertexts: usize,
    ) -> Self {
        let degree = values.saturating_sub(1).max(1);
        let depth = usize::BITS - (degree - 1).leading_zeros();
        let mut power = self;
        for _ in 0..depth {
            power = power.multiplied(power, params, n_key_parties);
        }
        let t = params.plaintext_modulus() as f64;
        power.summed(ciphertexts).scaled(values as f64 * t / 2.0)
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

    /// Joint decryption of a ciphertext with `noise` (at its level) at the lowest level where
    /// the plan works: switch the ciphertext to `plan.level` first. Products carry far more
    /// noise than smudging of at most 62 bits can hide; switching down divides it by the
    /// dropped moduli (to the rounding floor) and makes every share smaller.
    pub fn for_decryption_at_lowest_level(
        params: &BfvParameters,
        noise: NoiseEstimate,
        n_key_parties: usize,
        n_shares: usize,
    ) -> Result<Self, MheError> {
        Self::lowest(params, noise, n_key_parties, |at| {
            Self::for_decryption(params, at, n_shares)
        })
    }

    /// [`Self::for_key_switch`] at the lowest level where it works; switch there first.
    pub fn for_key_switch_at_lowest_level(
        params: &BfvParameters,
        noise: NoiseEstimate,
        n_key_parties: usize,
        n_shares: usize,
    ) -> Result<Self, MheError> {
        Self::lowest(params, noise, n_key_parties, |at| {
            Self::for_key_switch(params, at, n_shares)
        })
    }

    /// `make` a plan for the noise switched to each level from the bottom up: the first that
    /// works.
    fn lowest(
        params: &BfvParameters,
        noise: NoiseEstimate,
        n_key_parties: usize,
        make: impl Fn(NoiseEstimate) -> Result<Self, MheError>,
    ) -> Result<Self, MheError> {
        let plan_at = |level| make(noise.switched(params, level, n_key_parties));
        // the first level that works; if none does, the refusal closest to working
        let mut closest: Option<MheError> = None;
        for level in 1..=noise.level {
            match plan_at(level) {
                Ok(plan) => return Ok(plan),
                Err(e) => {
                    let lambda = |e: &MheError| match e {
                        MheError::InsufficientSmudging { lambda, .. } => *lambda,
                        _ => f64::NEG_INFINITY,
                    };
                    if closest.as_ref().is_none_or(|c| lambda(&e) > lambda(c)) {
                        closest = Some(e);
                    }
                }
            }
        }
        Err(closest.expect("at least one level"))
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
