//! Threshold T-of-N without a dealer, by replicated secret sharing: every decryption share has
//! integer weights, so an honest share reveals nothing beyond the result (issue 15;
//! PROTOCOLS.md "Threshold").
//!
//! # Why not Shamir
//!
//! Mouchet et al. (PETS 2021, §V) re-share each key share with Shamir and weight party `j`'s
//! share by its Lagrange coefficient `λ_j^S` for the active set `S`. Those weights are fractions
//! modulo `Q`. A coalition of the coordinator and `T − 1` parties can write an honest party's
//! decryption share as `(n/d)·e_ct + e_j + known`, with `e_ct` the decrypted ciphertext's noise
//! and `n/d` a fraction of Lagrange coefficients; multiplying by `d` gives the exact integer
//! `n·e_ct + d·e_j`, and `e_ct mod d` falls out whatever the smudging width — with `d` large
//! enough (16,384 at N = 16, T = 8), `e_ct` itself, hence `c₁·s` from a public result, hence the
//! key. Okada et al. (IACR eprint 2025/409) and Colin de Verdière et al. (eprint 2026/031) turn
//! this, and retries with another active set, into attacks. The unit test
//! `shamir_shares_leak_the_noise_replicated_shares_do_not` plays that coalition against both
//! sharings.
//!
//! # The construction
//!
//! Replicated ("{0,1}-linear") secret sharing, after Boneh, Gennaro, Goldfeder, Jain, Kim,
//! Rasmussen, Sahai ("Threshold Cryptosystems from Threshold Fully Homomorphic Encryption",
//! CRYPTO 2018, §4: {0,1}-LSSS) and Ito–Saito–Nishizeki's replicated sharing:
//!
//! - the **maximal unqualified sets** are the `M = C(N, T−1)` sets `A` of `T − 1` parties, in
//!   lexicographic order; `A₀ = {1, …, T−1}` is the first;
//! - **dealing** (every party `i`, no dealer): `s_i = Σ_A r_{i,A}` with `r_{i,A} = PRF(k_{i,A})`
//!   uniform over the key ring for `A ≠ A₀` (`k_{i,A}` a 32-byte seed, ChaCha12 expansion) and
//!   `r_{i,A₀} = s_i − Σ_{A≠A₀} r_{i,A}`; party `i` gives `r_{i,A}` — the seed, or for `A₀` the
//!   polynomial — to **every party not in `A`** ([`reshare`]; over the network sealed to each
//!   receiver, `concord-api` `exchange`). The seeds are a PRF of `s_i` and the setup
//!   ([`crate::randomness`]): the same setup asked again gives the same dealing;
//! - party `j` keeps what it was given ([`ThresholdSecretKey`]): for every `A ∌ j`, the sub-share
//!   `R_A = Σ_i r_{i,A}` (as `N` seeds, or for `A₀` one polynomial);
//! - **decryption** by an active set `S` (`|S| ≥ T`): every `A` has a holder in `S ∖ A` (non-empty,
//!   as `|A| < T ≤ |S|`), and exactly one of them uses it — the party at position
//!   `rank(A) mod |S ∖ A|` of `S ∖ A`, which balances the work. Party `j`'s key for `S` is
//!   `k_j^S = Σ_{A used by j} R_A` ([`ThresholdSecretKey::for_active_set`]), and
//!   `Σ_{j∈S} k_j^S = Σ_A R_A = Σ_i s_i = s`; CKS and PCKS run unchanged with `k_j^S`, smudged
//!   for `|S|` shares, as are the collective relinearization and Galois keys.
//!
//! # Security argument
//!
//! Take a coalition of the coordinator and `T − 1` parties `C` (fewer parties know less). `C` is
//! itself a maximal unqualified set, and it holds `R_A` for **every** `A ≠ C` (some member of `C`
//! is outside `A`), never `R_C` — which is uniform given its view before decryption: for an
//! honest dealer `i`, `r_{i,C}` is a PRF output no member of `C` can expand, or (when `C = A₀`)
//! `s_i` masked by the expansions of seeds of sets the coalition does not hold. An honest party's
//! decryption share is `h_j = k_j^S·c₁ + e_j`. If `j` does not use `C`, every sub-share of `k_j^S`
//! is known to the coalition: `h_j` is a known value plus fresh smudging. If `j` uses `C` — and
//! the party that uses `C` is outside `C`, hence honest — then, from a public result `m` with
//! `c₀ + c₁·s = Δm + e_ct`, `R_C·c₁ = Δm + e_ct − c₀ − Σ_{A≠C} R_A·c₁`, so
//! `h_j = e_ct + e_j + known`: the noise enters with coefficient **exactly 1**. The divisibility
//! test of PROTOCOLS.md holds with `a = b = 1` for every `S`, `C` and `j`. A simulator that knows
//! only the result draws every honest share as its known part plus fresh smudging; the real and
//! simulated views differ by `e_ct` inside one share's smudging, at statistical distance at most
//! `N·2^−λ` per coefficient ([`crate::noise`]: `e_j` uniform on `[−2^b, 2^b)` with
//! `2^b ≥ 2^λ·B_ct`). Smudging is the same as in all-party mode — no extra bits of `Q`, no new
//! parameter sets. What the argument does not cover, as for every smudged share: a second share
//! of the same ciphertext (the average of two shares halves the smudging's margin, and different
//! active sets change who holds `C`). The node gives at most one set of shares per query and per
//! `c₁`, for one active set it derives itself.
//!
//! Dealing is not verified (no VSS): a lying dealer can make results wrong, never learn more.
//!
//! # Costs and supported ranges
//!
//! A dealer expands `M − 1` seeds once, at setup; a party holds `N·C(N−1, T−1)` seeds (32 bytes
//! each) and one polynomial, and deriving its key for a new active set of `T` parties expands
//! about `N·M/T` seeds (ChaCha12 over the key ring). A configuration whose
//! [`ThresholdConfig::key_expansions`] exceeds [`MAX_KEY_EXPANSIONS`] is refused: every `T` for
//! `N ≤ 16` (at most 22,880 expansions, at N = 16, T = 8 or 9), and for larger `N` only `T` near
//! 2 or near `N` (N = 32: T ≤ 3 or T ≥ 30; T = 2 up to N = 256). Measured costs are in the
//! README.

use crate::party::{Participants, PartyId};
use crate::randomness::derived_rng;
use crate::MheError;
use concord_bfv::wire::{poly_len, Kind, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_bfv::{check_same_params, BfvParameters, SecretKey};
use concord_ring::sampling::add_uniform;
use concord_ring::{Poly, Representation, RnsContext};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha12Rng;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// The most seed expansions a party may need to derive its key for one active set of `T`
/// parties (about 2.5 s on one core at N = 8192 with three primes: 1.78 s measured for the
/// 22,880 expansions of 8 of 16, `w16` bench).
pub const MAX_KEY_EXPANSIONS: usize = 1 << 15;

/// A sub-share seed.
type Seed = [u8; 32];

/// The public threshold setup: `T` and the parties, numbered `1..N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdConfig {
    threshold: usize,
    parties: Vec<PartyId>,
    subsets: usize,
}

/// `C(n, k)`, or `None` above `cap`.
fn binomial(n: usize, k: usize, cap: usize) -> Option<usize> {
    if k > n {
        return Some(0);
    }
    let k = k.min(n - k);
    let mut c: u128 = 1;
    for i in 0..k {
        // exact: c·(n−i) is divisible by i+1 after the multiplication
        c = c * (n - i) as u128 / (i + 1) as u128;
        if c > cap as u128 {
            // C(n, i+1) only grows with i while i < k ≤ n/2
            return None;
        }
    }
    Some(c as usize)
}

/// The sets of `size` positions out of `0..n`, in lexicographic order.
struct Subsets {
    n: usize,
    current: Option<Vec<usize>>,
}

impl Subsets {
    fn new(n: usize, size: usize) -> Self {
        Self {
            n,
            current: (size <= n).then(|| (0..size).collect()),
        }
    }
}

impl Iterator for Subsets {
    type Item = Vec<usize>;

    fn next(&mut self) -> Option<Vec<usize>> {
        let out = self.current.take()?;
        let mut next = out.clone();
        let k = next.len();
        // the rightmost position that can still move right
        if let Some(i) = (0..k).rev().find(|&i| next[i] < self.n - k + i) {
            next[i] += 1;
            for l in i + 1..k {
                next[l] = next[l - 1] + 1;
            }
            self.current = Some(next);
        }
        Some(out)
    }
}

impl ThresholdConfig {
    /// `T` of the parties `1..N` (in any order), if the construction supports it (see the
    /// module docs: 2 ≤ T ≤ N and at most [`MAX_KEY_EXPANSIONS`] expansions per key).
    pub fn new(threshold: usize, parties: &[PartyId]) -> Result<Self, MheError> {
        let mut sorted = parties.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != parties.len() {
            return Err(MheError::Threshold("a party is listed twice".into()));
        }
        let n = parties.len();
        // T = 1 makes every party's share the whole key
        if threshold < 2 || threshold > n {
            return Err(MheError::Threshold(format!(
                "T = {threshold} must be between 2 and N = {n}"
            )));
        }
        if sorted
            .iter()
            .enumerate()
            .any(|(i, p)| p.0 as usize != i + 1)
        {
            return Err(MheError::Threshold(format!(
                "the parties must be numbered 1..N, not {:?}",
                sorted.iter().map(|p| p.0).collect::<Vec<_>>()
            )));
        }
        let too_costly = || {
            let supported: Vec<usize> = (2..=n)
                .filter(|&t| {
                    binomial(n, t - 1, MAX_KEY_EXPANSIONS)
                        .is_some_and(|m| n * m.div_ceil(t) <= MAX_KEY_EXPANSIONS)
                })
                .collect();
            MheError::Threshold(format!(
                "T = {threshold} of N = {n} is not supported: replicated sharing needs C(N, T−1) sub-shares, and a party would expand more than {MAX_KEY_EXPANSIONS} of them to decrypt; {}",
                if supported.is_empty() {
                    format!("no T is supported for N = {n}")
                } else {
                    format!("for N = {n} the supported thresholds are {}", ranges(&supported))
                }
            ))
        };
        let subsets = binomial(n, threshold - 1, MAX_KEY_EXPANSIONS).ok_or_else(too_costly)?;
        let config = Self {
            threshold,
            parties: sorted,
            subsets,
        };
        if config.key_expansions() > MAX_KEY_EXPANSIONS {
            return Err(too_costly());
        }
        Ok(config)
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn parties(&self) -> &[PartyId] {
        &self.parties
    }

    /// `M = C(N, T−1)`: the sub-shares of every key share.
    pub fn subsets(&self) -> usize {
        self.subsets
    }

    /// About how many seeds a party expands to derive its key for an active set of `T`:
    /// `N·⌈M/T⌉`.
    pub fn key_expansions(&self) -> usize {
        self.parties.len() * self.subsets.div_ceil(self.threshold)
    }

    /// The bytes of one party's dealing, serialized (before sealing): what each party sends at
    /// setup, one resharing per party (and, about as much, what each receives).
    pub fn dealing_len(&self, params: &BfvParameters) -> usize {
        let ring = params.key_ring();
        let one = |to: usize| {
            HEADER_LEN
                + 21
                + 32 * self
                    .seeds_held(to)
                    .expect("a configuration's sets are counted")
                + if to >= self.threshold - 1 {
                    poly_len(ring, ring.max_level())
                } else {
                    0
                }
                + CHECKSUM_LEN
        };
        (0..self.n()).map(one).sum()
    }

    fn n(&self) -> usize {
        self.parties.len()
    }

    /// The maximal unqualified sets as positions (party `p` is position `p − 1`), in order.
    fn unqualified(&self) -> Subsets {
        Subsets::new(self.n(), self.threshold - 1)
    }

    /// How many seeds party position `me` receives from each dealer: one per `A ≠ A₀` without it.
    fn seeds_held(&self, me: usize) -> Option<usize> {
        held_seeds(self.n(), self.threshold, me)
    }
}

/// Seeds per dealer at position `me` of `n` with threshold `t`: `C(n−1, t−1)`, less one when `me`
/// is outside `A₀ = {0, …, t−2}`. `None` if the configuration is out of range.
fn held_seeds(n: usize, t: usize, me: usize) -> Option<usize> {
    let all = binomial(n - 1, t - 1, MAX_KEY_EXPANSIONS)?;
    Some(if me >= t - 1 { all - 1 } else { all })
}

/// `[2, 3, 4, 9]` as `"2–4, 9"`.
fn ranges(values: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < values.len() {
        let mut j = i;
        while j + 1 < values.len() && values[j + 1] == values[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            values[i].to_string()
        } else {
            format!("{}–{}", values[i], values[j])
        });
        i = j + 1;
    }
    out.join(", ")
}

/// Adds the expansion of `seed` (ChaCha12), uniform over `ring` at `acc`'s level, to `acc`.
fn add_expansion(ring: &RnsContext, acc: &mut Poly, seed: &Seed) {
    add_uniform(ring, acc, &mut ChaCha12Rng::from_seed(*seed));
}

/// What party `from` gives party `to`: the seeds of `r_{from,A}` for every `A ≠ A₀` without `to`
/// (in order), and `r_{from,A₀}` if `to ∉ A₀`. Secret; zeroized on drop.
pub struct Resharing {
    params: Arc<BfvParameters>,
    pub from: PartyId,
    pub to: PartyId,
    /// The configuration dealt for, `(T, N)`: a dealing of another one is refused at combine.
    dealt_for: (u32, u32),
    seeds: Zeroizing<Vec<Seed>>,
    correction: Option<Poly>,
}

impl Drop for Resharing {
    fn drop(&mut self) {
        if let Some(p) = &mut self.correction {
            p.zeroize();
        }
    }
}

impl std::fmt::Debug for Resharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resharing({} → {}, <redacted>)", self.from, self.to)
    }
}

/// Party `j`'s part of the replicated sharing of `s`: every dealer's seeds for the sets without
/// `j`, and `R_{A₀}` if `j ∉ A₀`. Zeroized on drop.
pub struct ThresholdSecretKey {
    params: Arc<BfvParameters>,
    party: PartyId,
    threshold: usize,
    parties: usize,
    /// Dealer-major: dealer position `d`'s seeds are `seeds[d·h..(d+1)·h]`, `h` the seeds held.
    seeds: Zeroizing<Vec<Seed>>,
    correction: Option<Poly>,
}

impl Drop for ThresholdSecretKey {
    fn drop(&mut self) {
        if let Some(p) = &mut self.correction {
            p.zeroize();
        }
    }
}

impl std::fmt::Debug for ThresholdSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThresholdSecretKey({}, <redacted>)", self.party)
    }
}

/// Party `me` deals its key share: one [`Resharing`] per party of `config` (itself included).
/// `setup` names the threshold setup (over a network: everything the sealed resharings are bound
/// to — parameter set, CRS, `T`, the parties and their exchange keys): the seeds are derived from
/// the key share and that context ([`crate::randomness`]), so the same setup asked again gives
/// the same dealing, never a second one.
pub fn reshare(
    sk: &SecretKey,
    me: PartyId,
    config: &ThresholdConfig,
    setup: &[u8],
) -> Result<Vec<Resharing>, MheError> {
    if !config.parties.contains(&me) {
        return Err(MheError::UnexpectedShare(me));
    }
    let params = sk.params();
    let ring = params.key_ring();
    let points: Vec<u8> = config
        .parties
        .iter()
        .flat_map(|p| p.0.to_le_bytes())
        .collect();
    let mut rng = derived_rng(
        sk,
        "reshare-replicated",
        &[
            params.name().as_bytes(),
            setup,
            &(config.threshold as u64).to_le_bytes(),
            &points,
        ],
    );
    // one seed per A ≠ A₀, in order; r_{A₀} = s − Σ expansions
    let mut seeds: Zeroizing<Vec<Seed>> = Zeroizing::new(vec![[0; 32]; config.subsets - 1]);
    let mut correction = Poly::zero(ring, ring.max_level(), Representation::Ntt);
    for seed in seeds.iter_mut() {
        rng.fill_bytes(seed);
        add_expansion(ring, &mut correction, seed);
    }
    let mut sum = correction;
    let mut correction = sk.poly().clone();
    correction.sub_assign(ring, &sum);
    sum.zeroize();
    let out = (0..config.n())
        .map(|to| {
            let given: Vec<Seed> = config
                .unqualified()
                .skip(1)
                .zip(seeds.iter())
                .filter(|(a, _)| !a.contains(&to))
                .map(|(_, s)| *s)
                .collect();
            Resharing {
                params: params.clone(),
                from: me,
                to: config.parties[to],
                dealt_for: (config.threshold as u32, config.n() as u32),
                seeds: Zeroizing::new(given),
                correction: (to >= config.threshold - 1).then(|| correction.clone()),
            }
        })
        .collect();
    correction.zeroize();
    Ok(out)
}

impl ThresholdSecretKey {
    /// Party `me`'s share of the replicated sharing, from exactly one resharing of every party
    /// of `config`.
    pub fn combine(
        params: &Arc<BfvParameters>,
        me: PartyId,
        config: &ThresholdConfig,
        received: &[Resharing],
    ) -> Result<Self, MheError> {
        let ring = params.key_ring();
        let position = config
            .parties
            .iter()
            .position(|&p| p == me)
            .ok_or(MheError::UnexpectedShare(me))?;
        let held = config
            .seeds_held(position)
            .expect("a configuration's sets are counted");
        let outside_a0 = position >= config.threshold - 1;
        let mut seeds: Zeroizing<Vec<Seed>> = Zeroizing::new(vec![[0; 32]; held * config.n()]);
        let mut correction =
            outside_a0.then(|| Poly::zero(ring, ring.max_level(), Representation::Ntt));
        let mut from = Participants::default();
        for r in received {
            check_same_params(&r.params, params)?;
            if r.to != me {
                return Err(MheError::Threshold(format!(
                    "resharing from {} is addressed to {}, not to {me}",
                    r.from, r.to
                )));
            }
            let dealer = config
                .parties
                .iter()
                .position(|&p| p == r.from)
                .ok_or(MheError::UnexpectedShare(r.from))?;
            from.admit(r.from)?;
            if r.dealt_for != (config.threshold as u32, config.n() as u32) {
                return Err(MheError::Threshold(format!(
                    "resharing from {} was dealt for T = {} of N = {}, not {} of {}",
                    r.from,
                    r.dealt_for.0,
                    r.dealt_for.1,
                    config.threshold,
                    config.n()
                )));
            }
            if r.seeds.len() != held || r.correction.is_some() != outside_a0 {
                return Err(MheError::Threshold(format!(
                    "resharing from {} holds {} seeds{}; {me} must get {held}{}",
                    r.from,
                    r.seeds.len(),
                    if r.correction.is_some() {
                        " and a polynomial"
                    } else {
                        ""
                    },
                    if outside_a0 { " and a polynomial" } else { "" }
                )));
            }
            seeds[dealer * held..(dealer + 1) * held].copy_from_slice(&r.seeds);
            if let (Some(sum), Some(c)) = (&mut correction, &r.correction) {
                sum.add_assign(ring, c);
            }
        }
        from.check_exactly(&config.parties)?;
        Ok(Self {
            params: params.clone(),
            party: me,
            threshold: config.threshold,
            parties: config.n(),
            seeds,
            correction,
        })
    }

    pub fn party(&self) -> PartyId {
        self.party
    }

    /// This party's key `k_j^S = Σ_{A used by j} R_A` for the active set `S` (at least `T`
    /// parties of the configuration, this party among them). The keys of the parties of `S` sum
    /// to `s`.
    pub fn for_active_set(
        &self,
        config: &ThresholdConfig,
        active: &[PartyId],
    ) -> Result<SecretKey, MheError> {
        if config.threshold != self.threshold || config.n() != self.parties {
            return Err(MheError::Threshold(format!(
                "this threshold key is for {} of {}, not for {} of {}",
                self.threshold,
                self.parties,
                config.threshold,
                config.n()
            )));
        }
        let mut set = active.to_vec();
        set.sort();
        set.dedup();
        if set.len() != active.len() {
            return Err(MheError::Threshold(
                "a party is listed twice in the active set".into(),
            ));
        }
        if set.len() < config.threshold {
            return Err(MheError::Threshold(format!(
                "{} active parties, {} needed",
                set.len(),
                config.threshold
            )));
        }
        let positions: Vec<usize> = set
            .iter()
            .map(|p| {
                config
                    .parties
                    .iter()
                    .position(|q| q == p)
                    .ok_or(MheError::UnexpectedShare(*p))
            })
            .collect::<Result<_, _>>()?;
        let me = config
            .parties
            .iter()
            .position(|&p| p == self.party)
            .expect("the key's party is checked at combine");
        if !positions.contains(&me) {
            return Err(MheError::Threshold(format!(
                "{} is not in the active set",
                self.party
            )));
        }
        let ring = self.params.key_ring();
        let held = self.seeds.len() / self.parties;
        let mut key = Poly::zero(ring, ring.max_level(), Representation::Ntt);
        let mut k = 0; // index of A among the sets ≠ A₀ without this party
        for (rank, a) in config.unqualified().enumerate() {
            if a.contains(&me) {
                continue;
            }
            if rank > 0 {
                k += 1;
            }
            if user(rank, &a, &positions) != me {
                continue;
            }
            match rank {
                0 => key.add_assign(
                    ring,
                    self.correction
                        .as_ref()
                        .expect("parties outside A₀ hold its polynomial"),
                ),
                _ => {
                    for dealer in 0..self.parties {
                        add_expansion(ring, &mut key, &self.seeds[dealer * held + k - 1]);
                    }
                }
            }
        }
        Ok(SecretKey::from_poly(&self.params, key))
    }

    /// For storage at the owning party only. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let ring = self.params.key_ring();
        let mut w = WireWriter::new(
            Kind::ThresholdSecretKey,
            &self.params,
            17 + 32 * self.seeds.len() + poly_len(ring, ring.max_level()),
        );
        w.u32(self.party.0)
            .u32(self.threshold as u32)
            .u32(self.parties as u32)
            .u32(self.seeds.len() as u32);
        for s in self.seeds.iter() {
            w.bytes(s);
        }
        write_correction(&mut w, ring, &self.correction);
        Zeroizing::new(w.finish())
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::ThresholdSecretKey, params)?;
        let party = PartyId(r.u32()?);
        let threshold = r.u32()? as usize;
        let parties = r.u32()? as usize;
        let count = r.u32()? as usize;
        let malformed = |what: String| MheError::Threshold(format!("threshold key: {what}"));
        if threshold < 2 || threshold > parties || party.0 == 0 || party.0 as usize > parties {
            return Err(malformed(format!(
                "party {party} with T = {threshold} of N = {parties}"
            )));
        }
        let me = party.0 as usize - 1;
        let held = held_seeds(parties, threshold, me).ok_or_else(|| {
            malformed(format!("T = {threshold} of N = {parties} is out of range"))
        })?;
        if held.checked_mul(parties) != Some(count) {
            return Err(malformed(format!(
                "{count} seeds where {parties} dealers give {held} each"
            )));
        }
        let seeds = read_seeds(&mut r, count)?;
        let correction = read_correction(&mut r, params)?;
        r.finish()?;
        if correction.is_some() != (me >= threshold - 1) {
            return Err(malformed(
                "the polynomial of the first set is misplaced".into(),
            ));
        }
        Ok(Self {
            params: params.clone(),
            party,
            threshold,
            parties,
            seeds,
            correction,
        })
    }
}

/// The position in `S` (positions, sorted) of the party that uses set `a` of rank `rank`: the
/// `(rank mod |S ∖ A|)`-th party of `S ∖ A`.
fn user(rank: usize, a: &[usize], active: &[usize]) -> usize {
    let outside = active.iter().filter(|p| !a.contains(p)).count();
    *active
        .iter()
        .filter(|p| !a.contains(p))
        .nth(rank % outside)
        .expect("|S ∖ A| ≥ |S| − (T − 1) ≥ 1")
}

fn write_correction(w: &mut WireWriter, ring: &RnsContext, correction: &Option<Poly>) {
    match correction {
        Some(p) => {
            w.u8(1).poly(ring, p);
        }
        None => {
            w.u8(0);
        }
    }
}

fn read_seeds(r: &mut WireReader, count: usize) -> Result<Zeroizing<Vec<Seed>>, MheError> {
    let mut seeds = Zeroizing::new(Vec::new());
    for _ in 0..count {
        // each read is checked against what is left, so a lying count allocates nothing
        seeds.push(r.array::<32>()?);
    }
    Ok(seeds)
}

fn read_correction(r: &mut WireReader, params: &BfvParameters) -> Result<Option<Poly>, MheError> {
    let ring = params.key_ring();
    match r.u8()? {
        0 => Ok(None),
        1 => Ok(Some(r.poly(ring, ring.max_level(), Representation::Ntt)?)),
        other => Err(MheError::Threshold(format!(
            "a resharing's polynomial flag is {other}"
        ))),
    }
}

impl Resharing {
    pub fn serialized_len(&self) -> usize {
        let ring = self.params.key_ring();
        HEADER_LEN
            + 21
            + 32 * self.seeds.len()
            + self
                .correction
                .as_ref()
                .map_or(0, |_| poly_len(ring, ring.max_level()))
            + CHECKSUM_LEN
    }

    /// The plaintext form, to be encrypted to `to` before it leaves the party. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let ring = self.params.key_ring();
        let mut w = WireWriter::new(
            Kind::ThresholdResharing,
            &self.params,
            self.serialized_len(),
        );
        w.u32(self.from.0)
            .u32(self.to.0)
            .u32(self.dealt_for.0)
            .u32(self.dealt_for.1)
            .u32(self.seeds.len() as u32);
        for s in self.seeds.iter() {
            w.bytes(s);
        }
        write_correction(&mut w, ring, &self.correction);
        Zeroizing::new(w.finish())
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::ThresholdResharing, params)?;
        let from = PartyId(r.u32()?);
        let to = PartyId(r.u32()?);
        let dealt_for = (r.u32()?, r.u32()?);
        let count = r.u32()? as usize;
        let seeds = read_seeds(&mut r, count)?;
        let correction = read_correction(&mut r, params)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            from,
            to,
            dealt_for,
            seeds,
            correction,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_are_every_combination_in_order() {
        let all: Vec<Vec<usize>> = Subsets::new(5, 2).collect();
        assert_eq!(all.len(), 10);
        assert_eq!(all[0], vec![0, 1]);
        assert_eq!(all[9], vec![3, 4]);
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            Subsets::new(4, 0).collect::<Vec<_>>(),
            vec![Vec::<usize>::new()]
        );
        for (n, k) in [(9, 4), (16, 7), (12, 11)] {
            assert_eq!(
                Subsets::new(n, k).count(),
                binomial(n, k, usize::MAX).unwrap()
            );
        }
        assert_eq!(binomial(16, 7, 1 << 15), Some(11440));
        assert_eq!(binomial(40, 20, 1 << 15), None);
        assert_eq!(binomial(4096, 2048, usize::MAX), None);
    }

    /// A dealing's size is what its resharings serialize to: at 8 of 16, seven parties (in
    /// `A₀`) get 6,435 seeds, nine get 6,434 and a polynomial.
    #[test]
    fn a_dealing_is_sized() {
        let parties: Vec<PartyId> = (1..=16).map(PartyId).collect();
        let config = ThresholdConfig::new(8, &parties).unwrap();
        let p = BfvParameters::new(&concord_bfv::params::ADD_8192).unwrap();
        let poly = poly_len(p.key_ring(), p.key_ring().max_level());
        let frame = HEADER_LEN + 21 + CHECKSUM_LEN;
        let expected = 7 * (frame + 32 * 6435) + 9 * (frame + 32 * 6434 + poly);
        assert_eq!(config.dealing_len(&p), expected);
        let sk = SecretKey::generate(&p);
        let dealt: usize = reshare(&sk, PartyId(3), &config, b"size")
            .unwrap()
            .iter()
            .map(|r| r.to_bytes().len())
            .sum();
        assert_eq!(dealt, expected);
    }

    #[test]
    fn ranges_are_written_compactly() {
        assert_eq!(ranges(&[2, 3, 4, 9, 11, 12]), "2–4, 9, 11–12");
    }

    /// Every set is used by exactly one active party, outside it, for every `N ≤ 7`, `T` and
    /// active set — so the set a coalition of `T − 1` parties lacks (the coalition itself) is used
    /// by an honest party, and the keys of `S` sum to `s`.
    #[test]
    fn every_set_is_used_by_an_active_party_outside_it() {
        for n in 2..=7 {
            for t in 2..=n {
                for size in t..=n {
                    for active in Subsets::new(n, size) {
                        for (rank, a) in Subsets::new(n, t - 1).enumerate() {
                            let u = user(rank, &a, &active);
                            assert!(
                                !a.contains(&u) && active.contains(&u),
                                "{n} {t} {active:?} {a:?}"
                            );
                        }
                    }
                }
            }
        }
    }

    use concord_bfv::params;
    use concord_ring::sampling::uniform_poly;
    use num_bigint::BigInt;
    use rand_chacha::ChaCha20Rng;

    /// `num/den` modulo every prime of `ring`.
    fn fraction(ring: &RnsContext, num: i64, den: i64) -> Vec<u64> {
        ring.moduli()
            .iter()
            .map(|m| m.mul(m.from_i64(num), m.inv(m.from_i64(den)).unwrap()))
            .collect()
    }

    fn gcd(a: i64, b: i64) -> i64 {
        if b == 0 {
            a.abs()
        } else {
            gcd(b, a % b)
        }
    }

    /// `(num, den)` reduced, `den > 0`.
    fn reduce((n, d): (i64, i64)) -> (i64, i64) {
        let g = gcd(n, d) * d.signum();
        (n / g, d / g)
    }

    fn times((a, b): (i64, i64), (c, d): (i64, i64)) -> (i64, i64) {
        reduce((a * c, b * d))
    }

    /// `λ_j^S = Π_{k∈S,k≠j} k/(k − j)`.
    fn lagrange_at_zero(j: i64, set: &[i64]) -> (i64, i64) {
        set.iter()
            .filter(|&&k| k != j)
            .fold((1, 1), |acc, &k| times(acc, (k, k - j)))
    }

    /// The basis polynomial of point `k` over the points `{0} ∪ C`, at `x`.
    fn basis_at(k: i64, points: &[i64], x: i64) -> (i64, i64) {
        points
            .iter()
            .chain(std::iter::once(&0))
            .filter(|&&l| l != k)
            .fold((1, 1), |acc, &l| times(acc, (x - l, k - l)))
    }

    /// `a·b` in coefficient form.
    fn product(ring: &RnsContext, a: &Poly, b: &Poly) -> Poly {
        Poly::product_to_coefficients(ring, a, b)
    }

    /// A decryption share `k·c₁ + e` (before compression) and its smudging `e`.
    fn share(ring: &RnsContext, k: &Poly, c1: &Poly, rng: &mut ChaCha20Rng) -> (Poly, Vec<BigInt>) {
        let mut e = Poly::zero(ring, ring.max_level(), Representation::Coefficient);
        e.add_centered_uniform(ring, 50, rng);
        let mut h = product(ring, k, c1);
        h.add_assign(ring, &e);
        (h, e.lift_centered(ring))
    }

    /// How many coefficients of `x·d` (centred) give `e_ct mod d` when read as `n·e_ct + d·e`.
    fn recovered(ring: &RnsContext, x: &Poly, (n, d): (i64, i64), e_ct: &[BigInt]) -> usize {
        let mut scaled = x.clone();
        scaled.mul_scalar_assign(ring, &fraction(ring, d, 1));
        let d_big = BigInt::from(d);
        let n_inv = (1..d).find(|v| (n.rem_euclid(d) * v) % d == 1).unwrap();
        scaled
            .lift_centered(ring)
            .iter()
            .zip(e_ct)
            .filter(|(v, e)| {
                let guess = ((*v % &d_big + &d_big) % &d_big * n_inv) % &d_big;
                guess == ((*e % &d_big) + &d_big) % &d_big
            })
            .count()
    }

    /// Issue 15's coalition: the coordinator and `T − 1` parties, one of them outside the active
    /// set `S`, read an honest party's decryption share of an aggregate whose result is public.
    /// Against Shamir with Lagrange weights they recover `e_ct mod d` in every coefficient
    /// (d = 3,969 at N = 8, T = 4, the largest denominator there), whatever the smudging width
    /// (here 2^50); against the replicated sharing every honest share, less what the coalition
    /// knows, is exactly `e_j` or `e_ct + e_j` — the same attack then guesses right about once
    /// in `d`.
    #[test]
    fn shamir_shares_leak_the_noise_replicated_shares_do_not() {
        let p = BfvParameters::new(&params::ADD_4096).unwrap();
        let ring = p.key_ring();
        let level = ring.max_level();
        let (n, t) = (8usize, 4usize);
        let mut rng = ChaCha20Rng::seed_from_u64(15);
        let keys: Vec<SecretKey> = (0..n).map(|_| SecretKey::generate(&p)).collect();
        let mut s = Poly::zero(ring, level, Representation::Ntt);
        for k in &keys {
            s.add_assign(ring, k.poly());
        }
        // an aggregate with public result 0: c₀ + c₁·s = e_ct
        let c1 = uniform_poly(ring, level, &mut rng);
        let noise: Vec<i64> = (0..ring.degree())
            .map(|_| (rng.next_u64() % 8193) as i64 - 4096)
            .collect();
        let mut c0 = Poly::from_signed(ring, level, &noise);
        c0.sub_assign(ring, &product(ring, &s, &c1));
        let e_ct: Vec<BigInt> = noise.iter().map(|&v| BigInt::from(v)).collect();

        // the coalition and active set with the largest denominator
        let points: Vec<i64> = (1..=n as i64).collect();
        let mut worst = (0, vec![], 0, vec![], (0, 1));
        for set in Subsets::new(n, t) {
            let set: Vec<i64> = set.iter().map(|&i| points[i]).collect();
            for &j in &set {
                for c in Subsets::new(n, t - 1) {
                    let c: Vec<i64> = c.iter().map(|&i| points[i]).collect();
                    let honest = set.iter().filter(|k| !c.contains(k)).count();
                    if c.contains(&j) || c.iter().all(|k| set.contains(k)) || honest < 2 {
                        continue;
                    }
                    let mu = c.iter().fold((1, 1), |acc, &k| times(acc, (k - j, k)));
                    let nu = times(lagrange_at_zero(j, &set), mu);
                    if nu.1 > worst.0 {
                        worst = (nu.1, set.clone(), j, c, nu);
                    }
                }
            }
        }
        let (d, set, j, coalition, nu) = worst;
        assert_eq!(d, 3969, "issue 15's figure for N = 8, T = 4");

        // --- Shamir: F(X) = s + R₁X + … + R_{T−1}X^{T−1}, t_k = F(k)
        let coefficients: Vec<Poly> = (1..t)
            .map(|_| uniform_poly(ring, level, &mut rng))
            .collect();
        let shamir = |x: i64| {
            let mut v = Poly::zero(ring, level, Representation::Ntt);
            for r in coefficients.iter().rev() {
                v.add_assign(ring, r);
                v.mul_scalar_assign(ring, &fraction(ring, x, 1));
            }
            v.add_assign(ring, &s);
            v
        };
        let lambda = lagrange_at_zero(j, &set);
        let mut weighted = shamir(j);
        weighted.mul_scalar_assign(ring, &fraction(ring, lambda.0, lambda.1));
        let (h, _) = share(ring, &weighted, &c1, &mut rng);
        // t_j = μ·s + Σ_{k∈C} L_k(j)·t_k and s·c₁ = e_ct − c₀, so
        // h − λ·Σ L_k(j)·t_k·c₁ + ν·c₀ = ν·e_ct + e_j
        let mut x = h.clone();
        for &k in &coalition {
            let mut tk = shamir(k);
            let w = times(lambda, basis_at(k, &coalition, j));
            tk.mul_scalar_assign(ring, &fraction(ring, w.0, w.1));
            x.sub_assign(ring, &product(ring, &tk, &c1));
        }
        let mut c0_nu = c0.clone();
        c0_nu.mul_scalar_assign(ring, &fraction(ring, nu.0, nu.1));
        x.add_assign(ring, &c0_nu);
        assert_eq!(
            recovered(ring, &x, nu, &e_ct),
            ring.degree(),
            "e_ct mod {d} in every coefficient"
        );

        // --- replicated sharing, same coalition, same active set
        let parties: Vec<PartyId> = points.iter().map(|&k| PartyId(k as u32)).collect();
        let config = ThresholdConfig::new(t, &parties).unwrap();
        let mut inbox: Vec<Vec<Resharing>> = (0..n).map(|_| Vec::new()).collect();
        for (sk, &me) in keys.iter().zip(&parties) {
            for r in reshare(sk, me, &config, b"leak test").unwrap() {
                inbox[r.to.0 as usize - 1].push(r);
            }
        }
        let shares: Vec<ThresholdSecretKey> = parties
            .iter()
            .zip(&inbox)
            .map(|(&me, received)| ThresholdSecretKey::combine(&p, me, &config, received).unwrap())
            .collect();
        // what the coalition holds: R_A for every A but C, from a member outside A
        let c_positions: Vec<usize> = coalition.iter().map(|&k| k as usize - 1).collect();
        let sub_share = |rank: usize, a: &[usize]| -> Poly {
            let holder = c_positions.iter().find(|m| !a.contains(m)).unwrap();
            let key = &shares[*holder];
            if rank == 0 {
                return key.correction.clone().unwrap();
            }
            let held = key.seeds.len() / n;
            let k = config
                .unqualified()
                .enumerate()
                .filter(|(r, b)| *r > 0 && !b.contains(holder))
                .position(|(r, _)| r == rank)
                .unwrap();
            let mut v = Poly::zero(ring, level, Representation::Ntt);
            for dealer in 0..n {
                add_expansion(ring, &mut v, &key.seeds[dealer * held + k]);
            }
            v
        };
        let active: Vec<PartyId> = set.iter().map(|&k| PartyId(k as u32)).collect();
        let active_positions: Vec<usize> = set.iter().map(|&k| k as usize - 1).collect();
        let mut total = Poly::zero(ring, level, Representation::Ntt);
        let mut users_of_c = 0;
        for &honest in set.iter().filter(|k| !coalition.contains(k)) {
            let me = honest as usize - 1;
            let key = shares[me].for_active_set(&config, &active).unwrap();
            total.add_assign(ring, key.poly());
            let (h, e_j) = share(ring, key.poly(), &c1, &mut rng);
            let mut x = h;
            let mut uses_c = false;
            for (rank, a) in config.unqualified().enumerate() {
                if user(rank, &a, &active_positions) != me {
                    continue;
                }
                if a == c_positions {
                    // R_C·c₁ = e_ct − c₀ − Σ_{A≠C} R_A·c₁
                    uses_c = true;
                    x.add_assign(ring, &c0);
                    for (r2, b) in config.unqualified().enumerate() {
                        if b != c_positions {
                            x.add_assign(ring, &product(ring, &sub_share(r2, &b), &c1));
                        }
                    }
                } else {
                    x.sub_assign(ring, &product(ring, &sub_share(rank, &a), &c1));
                }
            }
            let residue = x.lift_centered(ring);
            for ((r, e), noise) in residue.iter().zip(&e_j).zip(&e_ct) {
                let expected = if uses_c { e + noise } else { e.clone() };
                assert_eq!(
                    *r, expected,
                    "party {honest}: the noise enters with coefficient 1 or 0"
                );
            }
            users_of_c += uses_c as usize;
            // the Shamir attack's reading of this share: right about once in d
            let hits = recovered(ring, &x, nu, &e_ct);
            assert!(
                hits < ring.degree() / 100,
                "party {honest}: {hits} of {}",
                ring.degree()
            );
        }
        assert_eq!(
            users_of_c, 1,
            "exactly one honest party uses the set the coalition lacks"
        );
        for &k in set.iter().filter(|k| coalition.contains(k)) {
            total.add_assign(
                ring,
                shares[k as usize - 1]
                    .for_active_set(&config, &active)
                    .unwrap()
                    .poly(),
            );
        }
        assert_eq!(total, s, "the active keys sum to s");
    }
}
