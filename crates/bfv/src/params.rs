//! Named BFV parameter sets, checked against the Homomorphic Encryption Standard.
//!
//! A set is named by its ring degree `N`, the bit sizes of its ciphertext moduli
//! `q_0 … q_{L-1}` (and of the key-switching moduli `P` for sets that will relinearize or rotate),
//! and its plaintext modulus `t`, a prime `≡ 1 (mod 2N)` so that a plaintext holds `N` slots.
//! The primes are the largest of their size with `q ≡ 1 (mod 2N)`, found deterministically, so
//! a set's id always denotes the same moduli.
//!
//! **Security.** [`BfvParameters::new`] refuses any set whose `log2(Q·P)` exceeds the
//! Homomorphic Encryption Standard (Albrecht et al., 2018, Table 1) bound for 128-bit classical
//! security with ternary secrets and σ = 3.2: 27, 54, 109, 218, 438, 881 bits for
//! `N = 2^10 … 2^15`.
//!
//! **Levels.** A ciphertext at level `ℓ` lives modulo `Q_ℓ = q_0 ⋯ q_{ℓ-1}`. Encryption happens
//! at the top level; additive work then switches down to the set's *transmit level* before a
//! ciphertext is sent (smaller, and less noisy relative to the modulus — see `concord-mhe`'s
//! smudging analysis for how the transmit modulus is sized).
//!
//! | set | N | log2 q_i | t | use |
//! |---|---|---|---|---|
//! | `ADD-4096` | 4096 | 40, 40 \| 29 | 65537 | small aggregates, up to 64 parties |
//! | `ADD-8192` | 8192 | 38, 38 \| 32 | 65537 | counts below 65537 (the W16 workload) |
//! | `ADD-8192-T33` | 8192 | 48, 48 \| 32 | 2^33-bit prime | large counters (t > 2^32) |
//! | `ADD-8192-T33-Q120` | 8192 | 40, 40, 40 \| 32 | 2^33-bit prime | large counters in communities above 153 |
//! | `MUL-16384` | 16384 | 4 × 50 \| 2 × 50; P = 2 × 50 | 65537 | products of 8 ciphertexts (depth 3); 16 under a 16-party key (depth 4) |
//! | `MUL-32768` | 32768 | 6 × 50 \| 3 × 50; P = 3 × 50 | 65537 | products of 64 ciphertexts (depth 6) |
//! | `MUL-16384-T26` | 16384 | 6 × 50; P = 2 × 50 | 26-bit prime | overlap counts of up to 16 institutions |
//! | `MUL-32768-T26` | 32768 | 9 × 50; P = 3 × 50 | 26-bit prime | overlap counts of up to 127 institutions (depth 7) |
//!
//! (`|` separates the transmit level from the moduli dropped before sending.)
//!
//! **Community size.** What an additive set can release is bounded twice. Its plaintext
//! modulus must hold the sum: `ADD-8192`'s `t = 65537` holds 16 institutions' counts of up to
//! 4,095. And smudging must hide the aggregate's noise: that noise grows with the institutions
//! `n` (their contributions and their `n`-party key), and smudging that hides it with 40 bits
//! of statistical security must still fit below `Q/2t` beside `n` shares of it
//! (`concord-mhe` `noise`) — `ADD-8192` holds that up to 51 institutions, `ADD-8192-T33` up to
//! 153 (`Q` of 76 and 96 bits at the transmit level). `ADD-8192-T33-Q120` widens the transmit
//! modulus by 24 bits, so that smudging of at most 62 bits (the sampler's width) is what stops
//! it: up to 39,321 institutions, far below the 218-bit bound at `N = 8192`. A template lists
//! its sets cheapest first, and a query runs under the first that holds its sums and hides
//! their noise for the institutions it is proposed to (`concord-query` `QueryPlan`).
//!
//! **Multiplicative sets** carry key-switching moduli `P` and multiply, relinearize and rotate:
//! see [`crate::multiply`] and [`crate::rotation`]. Their noise budget (`log2(Q/2t) − log2‖e‖`, single key,
//! measured by `tests/multiply.rs`, which checks that it decreases at every level and stays
//! above 60 bits at the set's depth) after each level of a balanced product tree:
//!
//! | set | fresh | depth 1 | 2 | 3 | 4 | 5 | 6 |
//! |---|---|---|---|---|---|---|---|
//! | `MUL-16384` | 272 | 243 | 214 | 185 | | | |
//! | `MUL-32768` | 421 | 392 | 362 | 331 | 301 | 270 | 239 |
//!
//! About 30 bits a level (`t·N` and the key norm). A collective key of `k` parties adds about
//! `log2 k / 2` bits a level: under a 16-party key with collective relinearization keys
//! (`concord-mhe` `tests/evaluation_keys.rs`), `MUL-16384` keeps 239, 208, 177 and 145 bits
//! after depths 1 to 4 — a product of 16 ciphertexts. Modulus switching shrinks noise and
//! modulus together: at the transmit level (200 and 300 bits of `Q`) a product at the set's
//! full depth keeps 176 and 240 bits — the test switches it there and checks that it still
//! decrypts with over 60 bits to spare. Collective decryption switches a product further down,
//! to the lowest level where smudging of at most 62 bits hides its noise with 40 bits of
//! statistical security (`concord-mhe` `SmudgingPlan::for_decryption_at_lowest_level`; level 2
//! for the 16-party product and inner sum, λ ≈ 53). `MUL-32768` under a 4-party key keeps 390,
//! 359, 327, 296, 264 and 232 bits after depths 1 to 6 and decrypts the product of 64
//! ciphertexts jointly at level 2 with λ ≈ 53 (`concord-mhe` `tests/evaluation_keys.rs`
//! checks both, and that a depth-7 product on `MUL-16384` is refused rather than decrypted).

use concord_ring::{ntt_primes, ContextError, Modulus, RnsContext};
use std::sync::Arc;
use tfhe_ntt::prime64::Plan;

/// How the plaintext modulus is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaintextModulus {
    /// This exact prime.
    Prime(u64),
    /// The largest prime below `2^bits` that is `≡ 1 (mod 2N)`.
    Bits(u32),
}

/// The definition of a named parameter set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParameterSpec {
    /// Wire identifier: every serialized value carries it, and values of another set are refused.
    pub id: u16,
    pub name: &'static str,
    pub log_n: u32,
    /// Bit sizes of the ciphertext moduli `q_0 … q_{L-1}`.
    pub ciphertext_moduli_bits: &'static [u32],
    /// Bit sizes of the key-switching moduli `P` (empty for additive-only sets).
    pub special_moduli_bits: &'static [u32],
    pub plaintext_modulus: PlaintextModulus,
    /// The level ciphertexts are switched down to before they leave a party.
    pub transmit_level: usize,
}

/// Additive set, N = 4096, t = 65537.
pub const ADD_4096: ParameterSpec = ParameterSpec {
    id: 1,
    name: "ADD-4096",
    log_n: 12,
    ciphertext_moduli_bits: &[40, 40, 29],
    special_moduli_bits: &[],
    plaintext_modulus: PlaintextModulus::Prime(65537),
    transmit_level: 2,
};

/// Additive set, N = 8192, t = 65537: the W16 workload.
pub const ADD_8192: ParameterSpec = ParameterSpec {
    id: 2,
    name: "ADD-8192",
    log_n: 13,
    ciphertext_moduli_bits: &[38, 38, 32],
    special_moduli_bits: &[],
    plaintext_modulus: PlaintextModulus::Prime(65537),
    transmit_level: 2,
};

/// Additive set for large counters, N = 8192, t a 33-bit prime (t > 2^32).
pub const ADD_8192_T33: ParameterSpec = ParameterSpec {
    id: 3,
    name: "ADD-8192-T33",
    log_n: 13,
    ciphertext_moduli_bits: &[48, 48, 32],
    special_moduli_bits: &[],
    plaintext_modulus: PlaintextModulus::Bits(33),
    transmit_level: 2,
};

/// Additive set for [`ADD_8192_T33`]'s large counters in communities it cannot release for
/// (above 153 institutions): three 40-bit transmit moduli, 24 bits more of `Q/2t`, so that
/// smudging of 62 bits hides the aggregate of up to 39,321 institutions with 40 bits of
/// statistical security. Three moduli below IFMA's `2^50` rather than two wider ones: the same
/// bytes within 4 %, and every transform on the IFMA path.
pub const ADD_8192_T33_Q120: ParameterSpec = ParameterSpec {
    id: 8,
    name: "ADD-8192-T33-Q120",
    log_n: 13,
    ciphertext_moduli_bits: &[40, 40, 40, 32],
    special_moduli_bits: &[],
    plaintext_modulus: PlaintextModulus::Bits(33),
    transmit_level: 3,
};

/// Multiplicative set, N = 16384, t = 65537: products of 8 ciphertexts (depth 3) of up to 16
/// parties' collective key. `Q`: six 50-bit primes; `P`: two 50-bit primes (three digit groups
/// of two primes each, each about the size of `P`, so key switching adds noise of about
/// `N·σ·‖s‖`, far below a product's); `log2(QP)` ≈ 400 ≤ 438. Every modulus below `2^50`:
/// tfhe-ntt's IFMA transforms and the vectorised RNS kernels apply throughout.
pub const MUL_16384: ParameterSpec = ParameterSpec {
    id: 4,
    name: "MUL-16384",
    log_n: 14,
    ciphertext_moduli_bits: &[50, 50, 50, 50, 50, 50],
    special_moduli_bits: &[50, 50],
    plaintext_modulus: PlaintextModulus::Prime(65537),
    transmit_level: 4,
};

/// Multiplicative set for counting, N = 16384, `t` the largest prime below `2^26` that is
/// `≡ 1 (mod 2N)` (67,043,329): the moduli of [`MUL_16384`] with a plaintext space wide enough
/// for counts over many ciphertexts — [`crate::Ciphertext::value_counts`] counts up to `t − 1`
/// slots, 4,092 ciphertexts of 16,384 slots. The wider `t` costs about 9 bits of noise per
/// level: the 17 equality indicators of a sum of 16 parties' 0/1 vectors keep ≈ 78 bits of
/// budget (139 under `t = 65537`), enough for 40 bits of smudging (`concord-mhe` `noise`).
/// Contributions travel at the top level: products start there.
pub const MUL_16384_T26: ParameterSpec = ParameterSpec {
    id: 6,
    name: "MUL-16384-T26",
    log_n: 14,
    ciphertext_moduli_bits: &[50, 50, 50, 50, 50, 50],
    special_moduli_bits: &[50, 50],
    plaintext_modulus: PlaintextModulus::Bits(26),
    transmit_level: 6,
};

/// Multiplicative set, N = 32768, t = 65537: products of 64 ciphertexts (depth 6). `Q`: nine
/// 50-bit primes; `P`: three 50-bit primes (three digit groups of three); `log2(QP)` ≈ 600 ≤ 881.
pub const MUL_32768: ParameterSpec = ParameterSpec {
    id: 5,
    name: "MUL-32768",
    log_n: 15,
    ciphertext_moduli_bits: &[50, 50, 50, 50, 50, 50, 50, 50, 50],
    special_moduli_bits: &[50, 50, 50],
    plaintext_modulus: PlaintextModulus::Prime(65537),
    transmit_level: 6,
};

/// Multiplicative set for counting over many parties, N = 32768: the moduli of [`MUL_32768`]
/// with `t` the largest prime below `2^26` that is `≡ 1 (mod 2N)` — [`MUL_16384_T26`]'s
/// relation to [`MUL_16384`], one ring degree up. Seven levels: the equality indicators of a
/// sum of up to 127 parties' 0/1 vectors (degree `n ≤ 127`), the overlap of 100 institutions
/// (`concord-mhe` `tests/evaluation_keys.rs` measures the budget left; the `overlap` bench
/// runs SACTI's 100 × 10,000). Counts up to `t − 1` slots: 2,046 ciphertexts of 32,768.
/// Contributions travel at the top level: products start there.
pub const MUL_32768_T26: ParameterSpec = ParameterSpec {
    id: 7,
    name: "MUL-32768-T26",
    log_n: 15,
    ciphertext_moduli_bits: &[50, 50, 50, 50, 50, 50, 50, 50, 50],
    special_moduli_bits: &[50, 50, 50],
    plaintext_modulus: PlaintextModulus::Bits(26),
    transmit_level: 9,
};

/// The sets statistics queries run under (sums only).
pub const ADDITIVE_SETS: &[ParameterSpec] = &[ADD_4096, ADD_8192, ADD_8192_T33, ADD_8192_T33_Q120];

/// The sets with key-switching moduli: multiplication, relinearization, rotations.
pub const MULTIPLICATIVE_SETS: &[ParameterSpec] =
    &[MUL_16384, MUL_16384_T26, MUL_32768, MUL_32768_T26];

/// Every named set.
pub const ALL_SETS: &[ParameterSpec] = &[
    ADD_4096,
    ADD_8192,
    ADD_8192_T33,
    ADD_8192_T33_Q120,
    MUL_16384,
    MUL_16384_T26,
    MUL_32768,
    MUL_32768_T26,
];

/// Look a set up by its wire id.
pub fn spec_by_id(id: u16) -> Option<&'static ParameterSpec> {
    ALL_SETS.iter().find(|s| s.id == id)
}

/// Look a set up by name (case-insensitive).
pub fn spec_by_name(name: &str) -> Option<&'static ParameterSpec> {
    ALL_SETS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Maximum `log2(Q·P)` for 128-bit security with ternary secrets (HE Standard, Table 1).
pub fn he_standard_max_log_qp(n: usize) -> Option<u32> {
    match n {
        1024 => Some(27),
        2048 => Some(54),
        4096 => Some(109),
        8192 => Some(218),
        16384 => Some(438),
        32768 => Some(881),
        _ => None,
    }
}

/// Why a parameter set cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParameterError {
    #[error("parameter set {name}: log2(QP) = {log_qp:.1} bits exceeds the 128-bit bound of {max} bits for N = {n} (Homomorphic Encryption Standard); refusing an insecure set")]
    Insecure {
        name: &'static str,
        n: usize,
        log_qp: f64,
        max: u32,
    },
    #[error("parameter set {name}: ring degree N = {n} has no 128-bit bound in the Homomorphic Encryption Standard")]
    UnsupportedDegree { name: &'static str, n: usize },
    #[error("parameter set {name}: not enough NTT-friendly primes of {bits} bits for N = {n}")]
    NoPrimes {
        name: &'static str,
        bits: u32,
        n: usize,
    },
    #[error("parameter set {name}: plaintext modulus {t} is not a prime ≡ 1 mod 2N (needed for batching)")]
    PlaintextModulus { name: &'static str, t: u64 },
    #[error("parameter set {name}: transmit level {level} outside 1..={max}")]
    TransmitLevel {
        name: &'static str,
        level: usize,
        max: usize,
    },
    #[error("parameter set {name}: multiplication needs {reason}")]
    Multiplication { name: &'static str, reason: String },
    #[error("parameter set {name}: {source}")]
    Ring {
        name: &'static str,
        source: ContextError,
    },
}

/// A parameter set, built: moduli, NTT plans, plaintext batching, scaling constants.
/// Shared by every key and ciphertext behind an `Arc`.
#[derive(Debug)]
pub struct BfvParameters {
    spec: ParameterSpec,
    ring: RnsContext,
    special_moduli: Vec<u64>,
    t: Modulus,
    t_plan: Plan,
    /// `−t^{-1} mod q_j`, for scaling messages by `Q/t` ([`crate::Plaintext`]).
    neg_t_inv: Vec<u64>,
    /// Per level: `Q_ℓ mod t`.
    q_mod_t: Vec<u64>,
    /// Slot k ↦ index into the NTT (mod t) output holding it.
    slot_position: Vec<usize>,
    /// Multiplication's auxiliary basis (sets with special moduli).
    tensoring: Option<crate::multiply::Tensoring>,
    /// Key switching's special moduli and digit groups (sets with special moduli).
    key_switching: Option<crate::multiply::KeySwitching>,
}

impl BfvParameters {
    /// Build a set, refusing it if it is insecure or malformed.
    pub fn new(spec: &ParameterSpec) -> Result<Arc<Self>, ParameterError> {
        let name = spec.name;
        let n = 1usize << spec.log_n;
        let max = he_standard_max_log_qp(n).ok_or(ParameterError::UnsupportedDegree { name, n })?;
        let t = match spec.plaintext_modulus {
            PlaintextModulus::Prime(t) => t,
            PlaintextModulus::Bits(bits) => *ntt_primes(bits, 1, n, &[])
                .first()
                .ok_or(ParameterError::NoPrimes { name, bits, n })?,
        };
        if !concord_ring::is_prime(t) || t % (2 * n as u64) != 1 {
            return Err(ParameterError::PlaintextModulus { name, t });
        }
        let mut chosen: Vec<u64> = vec![t];
        let mut pick = |bits: &[u32]| -> Result<Vec<u64>, ParameterError> {
            let mut out = Vec::new();
            for &b in bits {
                let p = *ntt_primes(b, 1, n, &chosen)
                    .first()
                    .ok_or(ParameterError::NoPrimes { name, bits: b, n })?;
                chosen.push(p);
                out.push(p);
            }
            Ok(out)
        };
        let q = pick(spec.ciphertext_moduli_bits)?;
        let p = pick(spec.special_moduli_bits)?;
        let log_qp: f64 = q.iter().chain(&p).map(|&x| (x as f64).log2()).sum();
        if log_qp > max as f64 {
            return Err(ParameterError::Insecure {
                name,
                n,
                log_qp,
                max,
            });
        }
        if spec.transmit_level == 0 || spec.transmit_level > q.len() {
            return Err(ParameterError::TransmitLevel {
                name,
                level: spec.transmit_level,
                max: q.len(),
            });
        }
        let ring =
            RnsContext::new(n, &q).map_err(|source| ParameterError::Ring { name, source })?;
        let tm = Modulus::new(t).expect("t < 2^62");
        let t_plan = Plan::try_new(n, t).ok_or(ParameterError::PlaintextModulus { name, t })?;
        let q_mod_t = (1..=q.len())
            .map(|level| {
                q[..level]
                    .iter()
                    .fold(1, |acc, &qi| tm.mul(acc, tm.reduce(qi)))
            })
            .collect();
        let neg_t_inv = ring
            .moduli()
            .iter()
            .map(|m| m.neg(m.inv(m.reduce(t)).expect("t is not a modulus")))
            .collect();
        let slot_position = slot_positions(&t_plan, tm, n);
        let (tensoring, key_switching) = if p.is_empty() {
            (None, None)
        } else {
            let used: Vec<u64> = chosen.clone();
            let fail = |reason: String| ParameterError::Multiplication { name, reason };
            (
                Some(crate::multiply::Tensoring::new(&ring, t, &used).map_err(fail)?),
                Some(crate::multiply::KeySwitching::new(&ring, &p).map_err(fail)?),
            )
        };
        Ok(Arc::new(Self {
            spec: *spec,
            ring,
            special_moduli: p,
            t: tm,
            t_plan,
            neg_t_inv,
            q_mod_t,
            slot_position,
            tensoring,
            key_switching,
        }))
    }

    pub fn spec(&self) -> &ParameterSpec {
        &self.spec
    }

    pub fn id(&self) -> u16 {
        self.spec.id
    }

    pub fn name(&self) -> &'static str {
        self.spec.name
    }

    /// The ring degree `N` (also the number of plaintext slots).
    pub fn degree(&self) -> usize {
        self.ring.degree()
    }

    /// The ring of ciphertext moduli.
    pub fn ring(&self) -> &RnsContext {
        &self.ring
    }

    pub(crate) fn tensoring(&self) -> Option<&crate::multiply::Tensoring> {
        self.tensoring.as_ref()
    }

    pub(crate) fn key_switching(&self) -> Option<&crate::multiply::KeySwitching> {
        self.key_switching.as_ref()
    }

    /// Whether the set multiplies, relinearizes and rotates (it has key-switching moduli).
    pub fn is_multiplicative(&self) -> bool {
        self.key_switching.is_some()
    }

    /// The key-switching moduli `P` (empty for additive sets).
    pub fn special_moduli(&self) -> &[u64] {
        &self.special_moduli
    }

    /// The top level `L`.
    pub fn max_level(&self) -> usize {
        self.ring.max_level()
    }

    pub fn transmit_level(&self) -> usize {
        self.spec.transmit_level
    }

    /// The plaintext modulus `t`.
    pub fn plaintext_modulus(&self) -> u64 {
        self.t.value()
    }

    pub(crate) fn t(&self) -> &Modulus {
        &self.t
    }

    pub(crate) fn t_plan(&self) -> &Plan {
        &self.t_plan
    }

    pub(crate) fn slot_position(&self) -> &[usize] {
        &self.slot_position
    }

    /// The Galois element `g = 3^step mod 2N` of the automorphism `X ↦ X^g` that rotates both
    /// slot rows left by `step` (negative: right).
    pub fn galois_element_for_rotation(&self, step: i64) -> u64 {
        let two_n = 2 * self.degree() as u64;
        let half = self.degree() as i64 / 2;
        let exponent = step.rem_euclid(half) as u64;
        let (mut g, mut base, mut e) = (1u64, 3u64, exponent);
        while e > 0 {
            if e & 1 == 1 {
                g = g * base % two_n;
            }
            base = base * base % two_n;
            e >>= 1;
        }
        g
    }

    /// The Galois element `2N − 1` of `X ↦ X^{-1}`, which swaps the two slot rows.
    pub fn galois_element_for_row_swap(&self) -> u64 {
        2 * self.degree() as u64 - 1
    }

    /// `log2(Q·P)`, what the security bound is checked against.
    pub fn log_qp(&self) -> f64 {
        self.ring.log_modulus(self.max_level())
            + self
                .special_moduli
                .iter()
                .map(|&p| (p as f64).log2())
                .sum::<f64>()
    }

    /// `−t^{-1} mod q_j`.
    pub(crate) fn neg_t_inv(&self) -> &[u64] {
        &self.neg_t_inv
    }

    /// `Q_ℓ mod t`.
    pub(crate) fn q_mod_t(&self, level: usize) -> u64 {
        self.q_mod_t[level - 1]
    }
}

/// Where each slot sits in the output of tfhe-ntt's forward transform modulo `t`.
///
/// Slots form a 2 × N/2 matrix: slot `(r, c)` is the evaluation at `ζ^{±3^c}` (`+` for row 0,
/// `−` for row 1) for a primitive 2N-th root `ζ`, so that the automorphism `X ↦ X^3` rotates the
/// rows and `X ↦ X^{-1}` swaps them (engine part 2). The transform's output order is read off
/// by transforming `X` itself: position `i` then holds its own evaluation point.
fn slot_positions(plan: &Plan, t: Modulus, n: usize) -> Vec<usize> {
    let mut x = vec![0u64; n];
    x[1] = 1;
    plan.fwd(&mut x);
    let zeta = x[0];
    let two_n = 2 * n;
    // exponent of each odd power of zeta
    let mut exponent_of = std::collections::HashMap::with_capacity(n);
    let mut power = zeta;
    let zeta2 = t.mul(zeta, zeta);
    for e in (1..two_n).step_by(2) {
        exponent_of.insert(power, e);
        power = t.mul(power, zeta2);
    }
    let position_of_exponent: std::collections::HashMap<usize, usize> = x
        .iter()
        .enumerate()
        .map(|(i, v)| (exponent_of[v], i))
        .collect();
    let half = n / 2;
    let mut out = vec![0; n];
    let mut g = 1usize;
    for c in 0..half {
        out[c] = position_of_exponent[&g];
        out[half + c] = position_of_exponent[&(two_n - g)];
        g = g * 3 % two_n;
    }
    out
}

/// Two built sets are equal when they are the same named set.
impl PartialEq for BfvParameters {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}
impl Eq for BfvParameters {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Plaintext, ValueRange};

    /// `m(X) ↦ m(X^g)` on a plaintext's coefficients modulo `t` (negacyclic).
    fn automorphism(pt: &Plaintext, g: u64) -> Plaintext {
        let n = pt.coeffs.len();
        let t = pt.params.t();
        let mut out = vec![0u64; n];
        for (i, &c) in pt.coeffs.iter().enumerate() {
            let k = (i as u64 * g) % (2 * n as u64);
            if (k as usize) < n {
                out[k as usize] = t.add(out[k as usize], c);
            } else {
                out[k as usize - n] = t.sub(out[k as usize - n], c);
            }
        }
        Plaintext::from_coefficients(&pt.params, out, pt.range)
    }

    #[test]
    fn galois_automorphisms_rotate_rows_and_swap_them() {
        for spec in ALL_SETS {
            let p = BfvParameters::new(spec).unwrap();
            let n = p.degree();
            let half = n / 2;
            let values: Vec<i64> = (0..n as i64).map(|i| i % 1000).collect();
            let pt = Plaintext::encode(&p, &values, ValueRange::counts(999)).unwrap();
            for step in [1i64, 5, -3] {
                let rotated = automorphism(&pt, p.galois_element_for_rotation(step)).decode();
                for row in 0..2 {
                    for c in 0..half {
                        let from = (c as i64 + step).rem_euclid(half as i64) as usize;
                        assert_eq!(
                            rotated[row * half + c],
                            values[row * half + from],
                            "{} step {step}",
                            p.name()
                        );
                    }
                }
            }
            let swapped = automorphism(&pt, p.galois_element_for_row_swap()).decode();
            assert_eq!(&swapped[..half], &values[half..]);
            assert_eq!(&swapped[half..], &values[..half]);
        }
    }
}
