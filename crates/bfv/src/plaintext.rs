//! Plaintexts: `N` integer slots packed into a polynomial modulo `t` (SIMD batching), and the
//! public range of values each slot may hold.
//!
//! The range is what stops silent wrap-around: a plaintext modulus `t` can only represent `t`
//! distinct values, so every operation that can widen a range (a sum of contributions, a
//! product) recomputes it and refuses the result when its width reaches `t`
//! ([`BfvError::PlaintextOverflow`]). Decoding maps each slot into `[lo, lo + t)`, so signed
//! results (differences, noisy counts) come back exactly. Ranges are declared from public
//! bounds (a statistics template's value bounds), never from the data.

use crate::error::BfvError;
use crate::params::BfvParameters;
use concord_ring::{Poly, Representation};
use std::sync::Arc;

/// The public interval `[lo, hi]` every slot of a plaintext or ciphertext lies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ValueRange {
    pub lo: i128,
    pub hi: i128,
}

impl ValueRange {
    /// `[lo, hi]`; it must contain 0, since unused slots hold 0.
    pub fn new(lo: i128, hi: i128) -> Result<Self, BfvError> {
        if lo > 0 || hi < 0 {
            return Err(BfvError::InvalidRange { lo, hi });
        }
        Ok(Self { lo, hi })
    }

    /// Counts bounded by `max`: `[0, max]`.
    pub fn counts(max: u64) -> Self {
        Self {
            lo: 0,
            hi: max as i128,
        }
    }

    /// Every residue mod `t`, centred: `[−⌊t/2⌋, ⌊t/2⌋]`.
    pub fn residues(t: u64) -> Self {
        let half = (t / 2) as i128;
        Self {
            lo: -half,
            hi: half,
        }
    }

    pub fn width(&self) -> i128 {
        self.hi - self.lo
    }

    pub(crate) fn checked(self, op: &'static str, t: u64) -> Result<Self, BfvError> {
        if self.width() >= t as i128 {
            return Err(BfvError::PlaintextOverflow {
                op,
                lo: self.lo,
                hi: self.hi,
                width: self.width(),
                t,
            });
        }
        Ok(self)
    }

    pub(crate) fn add(self, other: Self) -> Self {
        Self {
            lo: self.lo + other.lo,
            hi: self.hi + other.hi,
        }
    }

    pub(crate) fn neg(self) -> Self {
        Self {
            lo: -self.hi,
            hi: -self.lo,
        }
    }

    pub(crate) fn mul(self, other: Self) -> Self {
        let c = [
            self.lo.saturating_mul(other.lo),
            self.lo.saturating_mul(other.hi),
            self.hi.saturating_mul(other.lo),
            self.hi.saturating_mul(other.hi),
        ];
        Self {
            lo: *c.iter().min().unwrap(),
            hi: *c.iter().max().unwrap(),
        }
    }
}

/// A batched plaintext: the polynomial `m(X)` with coefficients in `[0, t)` whose evaluations
/// are the slot values, and the public range of those values.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext {
    pub(crate) params: Arc<BfvParameters>,
    /// Coefficients of `m(X)` modulo `t`.
    pub(crate) coeffs: Vec<u64>,
    pub(crate) range: ValueRange,
}

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plaintext")
            .field("params", &self.params.name())
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

impl Plaintext {
    /// Batch up to `N` values into slots 0, 1, …; the rest hold 0. Every value must lie in
    /// `range`, and the range must fit `t`.
    pub fn encode(
        params: &Arc<BfvParameters>,
        values: &[i64],
        range: ValueRange,
    ) -> Result<Self, BfvError> {
        let n = params.degree();
        if values.len() > n {
            return Err(BfvError::TooManyValues {
                given: values.len(),
                slots: n,
            });
        }
        let range =
            ValueRange::new(range.lo, range.hi)?.checked("encode", params.plaintext_modulus())?;
        let t = params.t();
        let mut evals = vec![0u64; n];
        for (slot, &v) in values.iter().enumerate() {
            if (v as i128) < range.lo || (v as i128) > range.hi {
                return Err(BfvError::ValueOutOfRange {
                    slot,
                    value: v,
                    lo: range.lo,
                    hi: range.hi,
                });
            }
            evals[params.slot_position()[slot]] = t.from_i64(v);
        }
        params.t_plan().inv(&mut evals);
        params.t_plan().normalize(&mut evals);
        Ok(Self {
            params: params.clone(),
            coeffs: evals,
            range,
        })
    }

    /// The slot values, each the unique representative in `[lo, lo + t)` of the range.
    pub fn decode(&self) -> Vec<i64> {
        let mut evals = self.coeffs.clone();
        self.params.t_plan().fwd(&mut evals);
        let t = self.params.plaintext_modulus() as i128;
        let lo = self.range.lo;
        self.params
            .slot_position()
            .iter()
            .map(|&pos| {
                let x = evals[pos] as i128;
                (lo + (x - lo).rem_euclid(t)) as i64
            })
            .collect()
    }

    /// The constant coefficient `m_0`. The slots hold `m(ζ^{2i+1})` for a primitive `2N`-th
    /// root `ζ` mod `t`, and `Σ_i ζ^{(2i+1)k} = 0` for `0 < k < N`, so `Σ_slots m = N·m_0 mod t`:
    /// the constant coefficient alone carries the sum over the slots (what
    /// [`crate::Ciphertext::value_counts`] relies on).
    pub fn constant_coefficient(&self) -> u64 {
        self.coeffs[0]
    }

    /// The coefficients `m_0 … m_{N-1}`, in `[0, t)` (a released set of counts holds count `j`
    /// in `m_j`: `concord-mhe`'s `Extent::Constants`).
    pub fn coefficients(&self) -> &[u64] {
        &self.coeffs
    }

    /// A plaintext from decrypted coefficients (used by decryption and by the multiparty fusion).
    pub fn from_coefficients(
        params: &Arc<BfvParameters>,
        coeffs: Vec<u64>,
        range: ValueRange,
    ) -> Self {
        debug_assert_eq!(coeffs.len(), params.degree());
        Self {
            params: params.clone(),
            coeffs,
            range,
        }
    }

    pub fn range(&self) -> ValueRange {
        self.range
    }

    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }

    /// `round(Q_ℓ · m / t)` in `R_{Q_ℓ}` (coefficient form): the message as it sits in `c_0`.
    ///
    /// Rounding (rather than `⌊Q/t⌋·m`) keeps the scaled message exact under modulus switching
    /// and plaintext products: the error is at most 1/2 per coefficient, whatever `m`.
    /// Computed without division: with `Q·m = t·a + r`, `r` centered (never `t/2`: `t` is odd),
    /// `round(Q·m/t) = (Q·m − r)/t ≡ −r·t^{-1} (mod q_j)`, and `r = [(Q mod t)·m]_t`.
    pub(crate) fn scaled(&self, level: usize) -> Poly {
        let params = &self.params;
        let ring = params.ring();
        let t = params.t();
        let qt = params.q_mod_t(level);
        let remainders: Vec<i64> = self
            .coeffs
            .iter()
            .map(|&m| t.center(t.mul(qt, m)))
            .collect();
        let mut out = Poly::zero(ring, level, Representation::Coefficient);
        for (j, m) in ring.moduli()[..level].iter().enumerate() {
            let w = params.neg_t_inv()[j];
            let w_shoup = m.shoup(w);
            for (res, &r) in out.residues_mut(j).iter_mut().zip(&remainders) {
                *res = m.mul_shoup(m.from_i64(r), w, w_shoup);
            }
        }
        out
    }

    /// `m(X)` with coefficients lifted to `(-t/2, t/2]`, in `R_{Q_ℓ}`, NTT form.
    pub(crate) fn lifted_ntt(&self, level: usize) -> Poly {
        let t = self.params.t();
        let centered: Vec<i64> = self.coeffs.iter().map(|&c| t.center(c)).collect();
        // |c| ≤ t/2 may exceed a small modulus (ADD-8192-T33): the general lift
        let mut p = Poly::from_signed(self.params.ring(), level, &centered);
        p.to_ntt(self.params.ring());
        p
    }
}
