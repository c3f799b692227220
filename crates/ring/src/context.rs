//! The RNS context of `R_Q = Z_Q[X]/(X^N+1)`: the moduli `q_0 … q_{L-1}`, one tfhe-ntt plan per
//! modulus, and the constants that map a residue vector to the torus `Z_Q/Q ≅ [0,1)`
//! (see [`crate::torus`]). Built once per parameter set and shared behind an `Arc`.

use crate::modulus::Modulus;
use std::sync::Once;
use tfhe_ntt::prime64::Plan;

/// Why a context cannot be built.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContextError {
    #[error("ring degree {0} is not a power of two between 2^4 and 2^17")]
    Degree(usize),
    #[error("modulus {0} is not an NTT-friendly prime below 2^62 for this degree (need q prime, q ≡ 1 mod 2N)")]
    Modulus(u64),
    #[error("modulus {0} appears twice in the RNS basis")]
    Duplicate(u64),
    #[error("an RNS basis needs at least one modulus")]
    Empty,
}

/// Per-level constants for the CRT map to the torus.
#[derive(Debug)]
struct LevelConstants {
    /// `((Q_ℓ / q_j)^{-1} mod q_j)` for `j < ℓ`.
    q_hat_inv: Vec<u64>,
    /// `Q_ℓ mod 2^64`.
    q_mod_2_64: u64,
}

/// Moduli, NTT plans and CRT constants for one ring.
#[derive(Debug)]
pub struct RnsContext {
    n: usize,
    moduli: Vec<Modulus>,
    plans: Vec<Plan>,
    /// `floor(2^128 / q_j)`, so that `(y · m_j) >> 64 ≈ 2^64 · y / q_j`.
    torus_scale: Vec<u128>,
    /// Index ℓ-1 holds the constants of level ℓ (the first ℓ moduli).
    levels: Vec<LevelConstants>,
}

static IFMA_LOG: Once = Once::new();

impl RnsContext {
    pub fn new(n: usize, moduli: &[u64]) -> Result<Self, ContextError> {
        if !n.is_power_of_two() || !(16..=1 << 17).contains(&n) {
            return Err(ContextError::Degree(n));
        }
        if moduli.is_empty() {
            return Err(ContextError::Empty);
        }
        let mut ms = Vec::with_capacity(moduli.len());
        let mut plans = Vec::with_capacity(moduli.len());
        for (i, &q) in moduli.iter().enumerate() {
            if moduli[..i].contains(&q) {
                return Err(ContextError::Duplicate(q));
            }
            let m = Modulus::new(q).ok_or(ContextError::Modulus(q))?;
            if q % (2 * n as u64) != 1 {
                return Err(ContextError::Modulus(q));
            }
            let plan = Plan::try_new(n, q).ok_or(ContextError::Modulus(q))?;
            ms.push(m);
            plans.push(plan);
        }
        IFMA_LOG.call_once(|| {
            let ifma = plans.iter().all(|p| p.use_ifma());
            tracing::info!(
                ifma,
                "tfhe-ntt runs its {} path for these moduli",
                if ifma { "AVX-512 IFMA" } else { "64-bit" }
            );
        });
        let torus_scale = ms.iter().map(|m| u128::MAX / m.value() as u128).collect();
        let levels = (1..=ms.len())
            .map(|level| {
                let q_hat_inv = (0..level)
                    .map(|j| {
                        let m = &ms[j];
                        let prod = (0..level)
                            .filter(|&k| k != j)
                            .fold(1, |acc, k| m.mul(acc, m.reduce(ms[k].value())));
                        m.inv(prod).expect("distinct primes are coprime")
                    })
                    .collect();
                let q_mod_2_64 = ms[..level]
                    .iter()
                    .fold(1u64, |acc, m| acc.wrapping_mul(m.value()));
                LevelConstants {
                    q_hat_inv,
                    q_mod_2_64,
                }
            })
            .collect();
        Ok(Self {
            n,
            moduli: ms,
            plans,
            torus_scale,
            levels,
        })
    }

    /// The ring degree `N`.
    #[inline]
    pub fn degree(&self) -> usize {
        self.n
    }

    /// The number of moduli `L` (the top level).
    #[inline]
    pub fn max_level(&self) -> usize {
        self.moduli.len()
    }

    #[inline]
    pub fn moduli(&self) -> &[Modulus] {
        &self.moduli
    }

    #[inline]
    pub fn plan(&self, j: usize) -> &Plan {
        &self.plans[j]
    }

    /// Whether every plan runs tfhe-ntt's AVX-512 IFMA code (moduli below 2^50 on a CPU with IFMA).
    pub fn uses_ifma(&self) -> bool {
        self.plans.iter().all(|p| p.use_ifma())
    }

    /// `log2(Q_ℓ)`, the bit size of the modulus at level `ℓ`.
    pub fn log_modulus(&self, level: usize) -> f64 {
        self.moduli[..level]
            .iter()
            .map(|m| (m.value() as f64).log2())
            .sum()
    }

    /// Total bits of one residue vector at level `ℓ` when each residue is packed to its modulus size.
    pub fn packed_bits_per_coefficient(&self, level: usize) -> usize {
        self.moduli[..level].iter().map(|m| m.bits() as usize).sum()
    }

    pub(crate) fn q_hat_inv(&self, level: usize) -> &[u64] {
        &self.levels[level - 1].q_hat_inv
    }

    pub(crate) fn torus_scale(&self) -> &[u128] {
        &self.torus_scale
    }

    pub(crate) fn q_mod_2_64(&self, level: usize) -> u64 {
        self.levels[level - 1].q_mod_2_64
    }
}
