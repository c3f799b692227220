//! Threshold T-of-N without a dealer (Mouchet et al., PETS 2021, §V; PROTOCOLS.md "Threshold").
//!
//! After CKG, party `i` re-shares its key share `s_i`: it draws `f_i` of degree `T−1` over `R_Q`
//! (coefficient-wise, uniform coefficients) with `f_i(0) = s_i` and sends `f_i(α_j)` to each
//! party `j`. **Each [`Resharing`] is secret**: it must travel end-to-end encrypted to `j`
//! (over the network: sealed to `j`'s exchange key, `concord-api` `exchange`) and be erased
//! once used. Party `j` keeps
//! `t_j = Σ_i f_i(α_j)` ([`ThresholdSecretKey`]) and may erase `s_j`. At use, for an active set
//! `S` of at least `T` parties, party `j` uses `s'_j = λ_j^S · t_j` with
//! `λ_j^S = Π_{k∈S,k≠j} α_k/(α_k − α_j)`; then `Σ_{j∈S} s'_j = s` and CKS / PCKS run unchanged
//! with `s'_j` (smudging sized for `|S|` shares).
//!
//! The evaluation point of a party is its [`PartyId`]; the parties are numbered `1..N` (so every
//! difference of points is small and invertible) and `2 ≤ T ≤ N`. Shamir sharing is linear, so it runs in NTT form, over
//! the key ring ([`BfvParameters::key_ring`]): for a multiplicative set that includes the
//! special moduli `P`, so the weighted shares also sum to `s` modulo `P`, as the collective
//! relinearization and Galois keys need.

use crate::party::{Participants, PartyId};
use crate::randomness::derived_rng;
use crate::MheError;
use concord_bfv::wire::{poly_len, Kind, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_bfv::{check_same_params, BfvParameters, SecretKey};
use concord_ring::sampling::uniform_poly;
use concord_ring::{Poly, Representation};
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// The public threshold setup: `T` and the parties (their Shamir points).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThresholdConfig {
    threshold: usize,
    parties: Vec<PartyId>,
}

impl ThresholdConfig {
    pub fn new(
        params: &BfvParameters,
        threshold: usize,
        parties: &[PartyId],
    ) -> Result<Self, MheError> {
        let mut sorted = parties.to_vec();
        sorted.sort();
        sorted.dedup();
        if sorted.len() != parties.len() {
            return Err(MheError::Threshold("a party is listed twice".into()));
        }
        // T = 1 makes every party's share the whole key
        if threshold < 2 || threshold > parties.len() {
            return Err(MheError::Threshold(format!(
                "T = {threshold} must be between 2 and N = {}",
                parties.len()
            )));
        }
        // the Shamir points are 1..N: points chosen freely make the Lagrange denominators large
        // (issue 15)
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
        let min_q = params
            .key_ring()
            .moduli()
            .iter()
            .map(|m| m.value())
            .min()
            .unwrap();
        if let Some(p) = sorted.iter().find(|p| p.0 == 0 || p.0 as u64 >= min_q) {
            return Err(MheError::Threshold(format!(
                "party id {p} cannot be a Shamir point (must be non-zero)"
            )));
        }
        Ok(Self {
            threshold,
            parties: sorted,
        })
    }

    pub fn threshold(&self) -> usize {
        self.threshold
    }

    pub fn parties(&self) -> &[PartyId] {
        &self.parties
    }
}

/// `f_i(α_j)`: what party `i` (`from`) sends party `j` (`to`). Secret; zeroized on drop.
pub struct Resharing {
    params: Arc<BfvParameters>,
    pub from: PartyId,
    pub to: PartyId,
    value: Poly,
}

impl Drop for Resharing {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl std::fmt::Debug for Resharing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Resharing({} → {}, <redacted>)", self.from, self.to)
    }
}

/// Party `j`'s threshold secret `t_j = Σ_i f_i(α_j)`. Zeroized on drop.
pub struct ThresholdSecretKey {
    params: Arc<BfvParameters>,
    party: PartyId,
    value: Poly,
}

impl Drop for ThresholdSecretKey {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

impl std::fmt::Debug for ThresholdSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ThresholdSecretKey({}, <redacted>)", self.party)
    }
}

/// Party `me` re-shares its key share: one [`Resharing`] per party of `config` (itself
/// included). `setup` names the threshold setup (over a network: everything the sealed
/// resharings are bound to — parameter set, CRS, `T`, the parties and their exchange keys): the
/// polynomial `f_i` is derived from the key share and that context ([`crate::randomness`]), so
/// the same setup asked again gives the same resharings, never a second polynomial.
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
        "reshare",
        &[
            params.name().as_bytes(),
            setup,
            &(config.threshold as u64).to_le_bytes(),
            &points,
        ],
    );
    // f(X) = s + r_1 X + … + r_{T−1} X^{T−1}
    let coefficients: Vec<Poly> = (1..config.threshold)
        .map(|_| uniform_poly(ring, ring.max_level(), &mut rng))
        .collect();
    let out = config
        .parties
        .iter()
        .map(|&to| {
            // Horner: ((r_{T−1}·α + r_{T−2})·α + …)·α + s
            let alpha: Vec<u64> = ring
                .moduli()
                .iter()
                .map(|m| m.reduce(to.0 as u64))
                .collect();
            let mut v = Poly::zero(ring, ring.max_level(), Representation::Ntt);
            for r in coefficients.iter().rev() {
                v.add_assign(ring, r);
                v.mul_scalar_assign(ring, &alpha);
            }
            v.add_assign(ring, sk.poly());
            Resharing {
                params: params.clone(),
                from: me,
                to,
                value: v,
            }
        })
        .collect();
    for mut c in coefficients {
        c.zeroize();
    }
    Ok(out)
}

impl ThresholdSecretKey {
    /// `t_j = Σ_i f_i(α_j)` from exactly one resharing of every party of `config`.
    pub fn combine(
        params: &Arc<BfvParameters>,
        me: PartyId,
        config: &ThresholdConfig,
        received: &[Resharing],
    ) -> Result<Self, MheError> {
        let ring = params.key_ring();
        let mut value = Poly::zero(ring, ring.max_level(), Representation::Ntt);
        let mut from = Participants::default();
        for r in received {
            check_same_params(&r.params, params)?;
            if r.to != me {
                return Err(MheError::Threshold(format!(
                    "resharing from {} is addressed to {}, not to {me}",
                    r.from, r.to
                )));
            }
            from.admit(r.from)?;
            value.add_assign(ring, &r.value);
        }
        from.check_exactly(&config.parties)?;
        Ok(Self {
            params: params.clone(),
            party: me,
            value,
        })
    }

    pub fn party(&self) -> PartyId {
        self.party
    }

    /// The Lagrange-weighted key share `s'_j = λ_j^S · t_j` for the active set `S` (at least
    /// `T` parties of the configuration, this party among them).
    pub fn for_active_set(
        &self,
        config: &ThresholdConfig,
        active: &[PartyId],
    ) -> Result<SecretKey, MheError> {
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
        if let Some(p) = set.iter().find(|p| !config.parties.contains(p)) {
            return Err(MheError::UnexpectedShare(*p));
        }
        if !set.contains(&self.party) {
            return Err(MheError::Threshold(format!(
                "{} is not in the active set",
                self.party
            )));
        }
        let ring = self.params.key_ring();
        let lambda: Vec<u64> = ring
            .moduli()
            .iter()
            .map(|m| {
                let aj = self.party.0 as i64;
                let (num, den) =
                    set.iter()
                        .filter(|&&k| k != self.party)
                        .fold((1u64, 1u64), |(n, d), k| {
                            let ak = k.0 as i64;
                            (m.mul(n, m.from_i64(ak)), m.mul(d, m.from_i64(ak - aj)))
                        });
                m.mul(num, m.inv(den).expect("distinct points below q"))
            })
            .collect();
        let mut s = self.value.clone();
        s.mul_scalar_assign(ring, &lambda);
        Ok(SecretKey::from_poly(&self.params, s))
    }

    /// For storage at the owning party only. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let ring = self.params.key_ring();
        let mut w = WireWriter::new(
            Kind::ThresholdSecretKey,
            &self.params,
            4 + poly_len(ring, self.value.level()),
        );
        w.u32(self.party.0).poly(ring, &self.value);
        Zeroizing::new(w.finish())
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::ThresholdSecretKey, params)?;
        let party = PartyId(r.u32()?);
        let ring = params.key_ring();
        let value = r.poly(ring, ring.max_level(), Representation::Ntt)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            party,
            value,
        })
    }
}

impl Resharing {
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 8 + poly_len(self.params.key_ring(), self.value.level()) + CHECKSUM_LEN
    }

    /// The plaintext form, to be encrypted to `to` before it leaves the party. Zeroized on drop.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut w = WireWriter::new(
            Kind::ThresholdResharing,
            &self.params,
            self.serialized_len(),
        );
        w.u32(self.from.0)
            .u32(self.to.0)
            .poly(self.params.key_ring(), &self.value);
        Zeroizing::new(w.finish())
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::ThresholdResharing, params)?;
        let from = PartyId(r.u32()?);
        let to = PartyId(r.u32()?);
        let ring = params.key_ring();
        let value = r.poly(ring, ring.max_level(), Representation::Ntt)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            from,
            to,
            value,
        })
    }
}
