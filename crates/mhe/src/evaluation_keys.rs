//! RKG and GKG — the collective evaluation keys (Mouchet et al., PETS 2021, §IV-B "relinearization
//! key" and the rotation keys; PROTOCOLS.md), for the multiplicative sets of engine part 2.
//!
//! Both produce hybrid key-switching keys for the collective secret `s = Σ s_i` in the key ring
//! `Q ∪ P` ([`BfvParameters::key_ring`]): one pair per digit of the gadget
//! `w_j = P·(Q/Q_j)·[(Q/Q_j)^{-1}]_{Q_j}` ([`BfvParameters::add_gadget_multiple`]), with `a_j`
//! common random polynomials from the CRS. They run in CKG's shape — `share(secret, party)`, a
//! streaming `aggregator()` that refuses a second share from a party and shares of another step,
//! CRS or round one, and an output made only from exactly the expected parties.
//!
//! **RKG, two rounds.** Each party keeps an ephemeral `u_i ← ternary` between them
//! ([`RelinearizationEphemeral`]).
//! - round one: `h_{0,i}[j] = −u_i·a_j + s_i·w_j + e_{0,i}`, `h_{1,i}[j] = s_i·a_j + e_{1,i}`,
//!   summed to `h_0`, `h_1`;
//! - round two: `h'_i[j] = s_i·h_0[j] + (u_i − s_i)·h_1[j] + e_{2,i}`, summed to `h'`;
//! - output: `rlk[j] = (h'[j], h_1[j])`, and
//!   `rlk_0 + s·rlk_1 = s²·w_j + s·e_0 + u·e_1 + e_2` (componentwise).
//!
//! PROTOCOLS.md sends round two as two polynomials `s_i·h_0 + e_2` and `(u_i − s_i)·h_1 + e_3`;
//! the output only uses their sum, so a party sends the sum alone: half the bytes, and less
//! revealed — it is one RLWE sample in the secret `(s_i, u_i)` with public `(h_0 − h_1, h_1)`.
//!
//! **GKG**, per Galois element `g`: `g_i[j] = −s_i·a_j + s_i(X^g)·w_j + e_i`, summed to `g`;
//! output `gk_g[j] = (g[j], a_j)`, with `gk_0 + s·gk_1 = s(X^g)·w_j + Σ e_i`.
//!
//! **Threshold.** A threshold party passes its Lagrange-weighted share
//! ([`crate::ThresholdSecretKey::for_active_set`], kept over the whole key ring). Every secret
//! product above multiplies an aggregate (`h_0`, `h_1`) or a public polynomial, so the key's
//! noise depends on `s = Σ s'_j` and `u = Σ u_i`, never on the (uniform) weighted shares.
//! The errors are the scheme's `χ`: these keys are public, and no share is decrypted, so no
//! smudging is needed.
//!
//! **Trust.** As in PETS 2021, the aggregator is honest-but-curious. Round two multiplies the
//! party's secrets into the round-one aggregate it receives, so a coordinator that sent a
//! crafted one (say `h_0[j] = 1`, `h_1[j] = 0`) would get `s_i + e` back. Round-two shares are
//! bound to the round-one aggregate they answer (its id, the checksum of its encoding), which
//! stops mixing runs but not a crafted aggregate: before answering round two over a network, a
//! party must check the aggregate against the signed round-one shares (the linear fingerprint
//! of [`crate::fingerprint`] does this for ciphertext sums). Concord's query flow does not run
//! RKG over the network yet.

use crate::crs::{CommonReferenceString, CrsId};
use crate::party::{Participants, PartyId};
use crate::MheError;
use concord_bfv::wire::{poly_len, Kind, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_bfv::{
    check_same_params, BfvError, BfvParameters, GaloisKeys, RelinearizationKey, SecretKey,
};
use concord_ring::sampling::{gaussian, secret_rng, ternary, RngCore};
use concord_ring::{Poly, Representation, RnsContext};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use zeroize::{Zeroize, Zeroizing};

/// Which key and which round a share belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeyGenStep {
    RelinearizationRoundOne,
    RelinearizationRoundTwo,
    /// The Galois key for this element.
    Galois(u64),
}

impl KeyGenStep {
    /// Polynomials per gadget digit in a share of this step.
    fn per_digit(self) -> usize {
        match self {
            Self::RelinearizationRoundOne => 2,
            _ => 1,
        }
    }

    fn code(self) -> (u8, u64) {
        match self {
            Self::RelinearizationRoundOne => (1, 0),
            Self::RelinearizationRoundTwo => (2, 0),
            Self::Galois(g) => (3, g),
        }
    }

    fn from_code(code: u8, element: u64) -> Option<Self> {
        match (code, element) {
            (1, 0) => Some(Self::RelinearizationRoundOne),
            (2, 0) => Some(Self::RelinearizationRoundTwo),
            (3, g) => Some(Self::Galois(g)),
            _ => None,
        }
    }
}

/// A digest naming one round-one aggregate; round-two shares carry it.
pub type RoundOneId = [u8; 16];

/// A party's share of one RKG round or of one Galois key: per gadget digit, one or two
/// polynomials of the key ring (NTT form). Public: it is what the party sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluationKeyShare {
    params: Arc<BfvParameters>,
    pub party: PartyId,
    pub crs: CrsId,
    pub step: KeyGenStep,
    /// For round two: the round-one aggregate it answers (zero otherwise).
    pub round_one: RoundOneId,
    polys: Vec<Poly>,
}

/// The running sum of one step's shares. Round one's complete aggregate is also what the
/// coordinator sends back to the parties, so it serializes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluationKeyAggregate {
    params: Arc<BfvParameters>,
    crs: CrsId,
    step: KeyGenStep,
    round_one: RoundOneId,
    sum: Vec<Poly>,
    parties: Participants,
    /// [`Self::digest`], computed once the sums stop changing.
    digest: OnceLock<RoundOneId>,
}

/// A party's ephemeral RKG secret `u_i`, kept from round one to round two, then dropped
/// (zeroized). Never serialized: a party that restarts between the rounds starts RKG again.
pub struct RelinearizationEphemeral {
    party: PartyId,
    u: Poly,
}

impl Drop for RelinearizationEphemeral {
    fn drop(&mut self) {
        self.u.zeroize();
    }
}

impl std::fmt::Debug for RelinearizationEphemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelinearizationEphemeral({}, <redacted>)", self.party)
    }
}

/// The RKG protocol for one multiplicative set and CRS: holds the common polynomials `a_j`.
pub struct RelinearizationKeyGen {
    params: Arc<BfvParameters>,
    crs: CrsId,
    a: Vec<Poly>,
}

/// The GKG protocol for a set of Galois elements: holds each element's `a_j`.
pub struct GaloisKeyGen {
    params: Arc<BfvParameters>,
    crs: CrsId,
    a: BTreeMap<u64, Vec<Poly>>,
}

/// The running sums of a GKG run, one per element.
#[derive(Clone, Debug)]
pub struct GaloisKeyAggregate {
    per_element: BTreeMap<u64, EvaluationKeyAggregate>,
}

fn multiplicative(params: &BfvParameters) -> Result<(), MheError> {
    if params.is_multiplicative() {
        Ok(())
    } else {
        Err(BfvError::NotMultiplicative(params.name()).into())
    }
}

/// A fresh `e ← χ` in the key ring, NTT form.
fn error(ring: &RnsContext, rng: &mut impl RngCore) -> Poly {
    let mut e = Poly::from_small(ring, ring.max_level(), &gaussian(ring.degree(), rng));
    e.to_ntt(ring);
    e
}

/// `−s·a + e`, NTT form in the key ring: the RLWE part every share starts from.
fn masked(ring: &RnsContext, s: &Poly, a: &Poly, rng: &mut impl RngCore) -> Poly {
    let mut out = error(ring, rng);
    out.mul_subtract(ring, a, s);
    out
}

impl RelinearizationKeyGen {
    pub fn new(params: &Arc<BfvParameters>, crs: &CommonReferenceString) -> Result<Self, MheError> {
        multiplicative(params)?;
        Ok(Self {
            params: params.clone(),
            crs: crs.id(),
            a: crs.gadget_polynomials(params, b"rkg/a", 0),
        })
    }

    /// Round one: the party's ephemeral `u_i` (keep it for round two) and its share
    /// `(h_{0,i}[j], h_{1,i}[j]) = (−u_i·a_j + s_i·w_j + e_0, s_i·a_j + e_1)`.
    pub fn round_one(
        &self,
        sk: &SecretKey,
        party: PartyId,
    ) -> Result<(RelinearizationEphemeral, EvaluationKeyShare), MheError> {
        check_same_params(&self.params, sk.params())?;
        let ring = self.params.key_ring();
        let mut rng = secret_rng();
        let mut u = Poly::from_small(ring, ring.max_level(), &ternary(ring.degree(), &mut rng));
        u.to_ntt(ring);
        let mut polys = Vec::with_capacity(2 * self.a.len());
        for (digit, a) in self.a.iter().enumerate() {
            let mut h0 = masked(ring, &u, a, &mut rng);
            self.params.add_gadget_multiple(&mut h0, digit, sk.poly());
            let mut h1 = error(ring, &mut rng);
            h1.mul_accumulate(ring, a, sk.poly());
            polys.extend([h0, h1]);
        }
        let share = EvaluationKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            step: KeyGenStep::RelinearizationRoundOne,
            round_one: [0; 16],
            polys,
        };
        Ok((RelinearizationEphemeral { party, u }, share))
    }

    pub fn round_one_aggregator(&self) -> EvaluationKeyAggregate {
        EvaluationKeyAggregate::new(
            &self.params,
            self.crs,
            KeyGenStep::RelinearizationRoundOne,
            [0; 16],
        )
    }

    /// Round two, answering the complete round-one aggregate `(h_0, h_1)`:
    /// `h'_i[j] = s_i·h_0[j] + (u_i − s_i)·h_1[j] + e_2`.
    pub fn round_two(
        &self,
        sk: &SecretKey,
        ephemeral: &RelinearizationEphemeral,
        round_one: &EvaluationKeyAggregate,
        party: PartyId,
    ) -> Result<EvaluationKeyShare, MheError> {
        check_same_params(&self.params, sk.params())?;
        self.check_round_one(round_one)?;
        if ephemeral.party != party {
            return Err(MheError::IncompatibleShare {
                party,
                what: "ephemeral secret of another party",
            });
        }
        let ring = self.params.key_ring();
        let mut rng = secret_rng();
        let mut u_minus_s = Zeroizing::new(ephemeral.u.clone());
        u_minus_s.sub_assign(ring, sk.poly());
        let polys = round_one
            .sum
            .chunks_exact(2)
            .map(|h| {
                let mut out = error(ring, &mut rng);
                out.mul_accumulate(ring, &h[0], sk.poly());
                out.mul_accumulate(ring, &h[1], &u_minus_s);
                out
            })
            .collect();
        Ok(EvaluationKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            step: KeyGenStep::RelinearizationRoundTwo,
            round_one: round_one.digest(),
            polys,
        })
    }

    /// The aggregator of round two, for shares answering exactly `round_one`.
    pub fn round_two_aggregator(
        &self,
        round_one: &EvaluationKeyAggregate,
    ) -> Result<EvaluationKeyAggregate, MheError> {
        self.check_round_one(round_one)?;
        Ok(EvaluationKeyAggregate::new(
            &self.params,
            self.crs,
            KeyGenStep::RelinearizationRoundTwo,
            round_one.digest(),
        ))
    }

    /// `rlk[j] = (h'[j], h_1[j])`, only if exactly `expected` took part in both rounds.
    pub fn finish(
        &self,
        round_one: &EvaluationKeyAggregate,
        round_two: EvaluationKeyAggregate,
        expected: &[PartyId],
    ) -> Result<RelinearizationKey, MheError> {
        self.check_round_one(round_one)?;
        round_one.parties.check_exactly(expected)?;
        if round_two.step != KeyGenStep::RelinearizationRoundTwo
            || round_two.round_one != round_one.digest()
            || round_two.crs != self.crs
        {
            return Err(MheError::IncompatibleShare {
                party: round_two.parties.iter().next().unwrap_or(PartyId(0)),
                what: "round two of another RKG run",
            });
        }
        round_two.parties.check_exactly(expected)?;
        let parts = round_two
            .sum
            .into_iter()
            .zip(round_one.sum.chunks_exact(2))
            .map(|(h, round_one)| [h, round_one[1].clone()])
            .collect();
        Ok(RelinearizationKey::from_parts(&self.params, parts)?)
    }

    fn check_round_one(&self, round_one: &EvaluationKeyAggregate) -> Result<(), MheError> {
        check_same_params(&self.params, &round_one.params)?;
        if round_one.step != KeyGenStep::RelinearizationRoundOne || round_one.crs != self.crs {
            return Err(MheError::IncompatibleShare {
                party: round_one.parties.iter().next().unwrap_or(PartyId(0)),
                what: "not a round-one aggregate of this RKG",
            });
        }
        if round_one.parties.is_empty() {
            return Err(MheError::NoShares);
        }
        Ok(())
    }
}

impl GaloisKeyGen {
    /// GKG for the Galois elements `elements` (odd, below `2N`).
    pub fn new(
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        elements: &[u64],
    ) -> Result<Self, MheError> {
        multiplicative(params)?;
        let a = elements
            .iter()
            .map(|&g| {
                params.check_galois_element(g)?;
                Ok((g, crs.gadget_polynomials(params, b"gkg/a", g)))
            })
            .collect::<Result<_, BfvError>>()?;
        Ok(Self {
            params: params.clone(),
            crs: crs.id(),
            a,
        })
    }

    /// GKG for the keys of [`concord_bfv::Ciphertext::inner_sum`].
    pub fn for_inner_sum(
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
    ) -> Result<Self, MheError> {
        Self::new(params, crs, &GaloisKeys::inner_sum_elements(params))
    }

    /// GKG for row rotations by `steps` (and the row swap if `row_swap`).
    pub fn for_rotations(
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        steps: &[i64],
        row_swap: bool,
    ) -> Result<Self, MheError> {
        Self::new(
            params,
            crs,
            &params.galois_elements_for_rotations(steps, row_swap),
        )
    }

    pub fn elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.a.keys().copied()
    }

    /// The share for one element: `g_i[j] = −s_i·a_j + s_i(X^g)·w_j + e_i`.
    pub fn share(
        &self,
        sk: &SecretKey,
        party: PartyId,
        element: u64,
    ) -> Result<EvaluationKeyShare, MheError> {
        check_same_params(&self.params, sk.params())?;
        let a = self.a.get(&element).ok_or(MheError::IncompatibleShare {
            party,
            what: "Galois element outside this GKG run",
        })?;
        let ring = self.params.key_ring();
        let s_g = sk.galois_image(element)?;
        let mut rng = secret_rng();
        let polys = a
            .iter()
            .enumerate()
            .map(|(digit, a)| {
                let mut g = masked(ring, sk.poly(), a, &mut rng);
                self.params.add_gadget_multiple(&mut g, digit, &s_g);
                g
            })
            .collect();
        Ok(EvaluationKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            step: KeyGenStep::Galois(element),
            round_one: [0; 16],
            polys,
        })
    }

    /// The party's shares for every element of the run.
    pub fn shares(
        &self,
        sk: &SecretKey,
        party: PartyId,
    ) -> Result<Vec<EvaluationKeyShare>, MheError> {
        self.elements().map(|g| self.share(sk, party, g)).collect()
    }

    pub fn aggregator(&self) -> GaloisKeyAggregate {
        GaloisKeyAggregate {
            per_element: self
                .elements()
                .map(|g| {
                    let agg = EvaluationKeyAggregate::new(
                        &self.params,
                        self.crs,
                        KeyGenStep::Galois(g),
                        [0; 16],
                    );
                    (g, agg)
                })
                .collect(),
        }
    }

    /// `gk_g[j] = (g[j], a_j)` for every element, only if exactly `expected` gave every share.
    pub fn finish(
        &self,
        aggregate: GaloisKeyAggregate,
        expected: &[PartyId],
    ) -> Result<GaloisKeys, MheError> {
        let mut keys = Vec::with_capacity(self.a.len());
        for (g, agg) in aggregate.per_element {
            let a = self.a.get(&g).ok_or(MheError::NoShares)?;
            if agg.crs != self.crs {
                return Err(MheError::CrsMismatch {
                    party: agg.parties.iter().next().unwrap_or(PartyId(0)),
                });
            }
            agg.parties.check_exactly(expected)?;
            let parts = agg.sum.into_iter().zip(a).map(|(g, a)| [g, a.clone()]);
            keys.push((g, parts.collect()));
        }
        Ok(GaloisKeys::from_parts(&self.params, keys)?)
    }
}

impl GaloisKeyAggregate {
    /// Adds a share to the sum of its element.
    pub fn add(&mut self, share: &EvaluationKeyShare) -> Result<(), MheError> {
        let KeyGenStep::Galois(g) = share.step else {
            return Err(MheError::IncompatibleShare {
                party: share.party,
                what: "not a Galois key share",
            });
        };
        self.per_element
            .get_mut(&g)
            .ok_or(MheError::IncompatibleShare {
                party: share.party,
                what: "Galois element outside this GKG run",
            })?
            .add(share)
    }
}

impl EvaluationKeyAggregate {
    fn new(
        params: &Arc<BfvParameters>,
        crs: CrsId,
        step: KeyGenStep,
        round_one: RoundOneId,
    ) -> Self {
        let ring = params.key_ring();
        let count = step.per_digit() * params.gadget_length();
        Self {
            params: params.clone(),
            crs,
            step,
            round_one,
            sum: (0..count)
                .map(|_| Poly::zero(ring, ring.max_level(), Representation::Ntt))
                .collect(),
            parties: Participants::default(),
            digest: OnceLock::new(),
        }
    }

    /// Adds party `i`'s share; refuses a second share from it and shares of another step,
    /// CRS, parameter set or round one.
    pub fn add(&mut self, share: &EvaluationKeyShare) -> Result<(), MheError> {
        if share.crs != self.crs {
            return Err(MheError::CrsMismatch { party: share.party });
        }
        check_same_params(&self.params, &share.params)?;
        if share.step != self.step {
            return Err(MheError::IncompatibleShare {
                party: share.party,
                what: "a share of another key or round",
            });
        }
        if share.round_one != self.round_one {
            return Err(MheError::IncompatibleShare {
                party: share.party,
                what: "answers another round-one aggregate",
            });
        }
        self.parties.admit(share.party)?;
        self.digest = OnceLock::new();
        let ring = self.params.key_ring();
        for (sum, p) in self.sum.iter_mut().zip(&share.polys) {
            sum.add_assign(ring, p);
        }
        Ok(())
    }

    pub fn parties(&self) -> &Participants {
        &self.parties
    }

    pub fn step(&self) -> KeyGenStep {
        self.step
    }

    /// Names this aggregate — its step, CRS, parties and sums: the checksum (truncated
    /// SHA-256) of its canonical encoding, which the coordinator computes when it serializes
    /// the aggregate to send it and every party gets for free when it parses it.
    pub fn digest(&self) -> RoundOneId {
        *self.digest.get_or_init(|| checksum(&self.to_bytes()))
    }

    pub fn serialized_len(&self) -> usize {
        HEADER_LEN
            + 16
            + 9
            + 16
            + 4
            + 4 * self.parties.len()
            + self.sum.len() * poly_len(self.params.key_ring(), self.params.key_ring().max_level())
            + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let ring = self.params.key_ring();
        let mut w = WireWriter::new(
            Kind::EvaluationKeyAggregate,
            &self.params,
            self.serialized_len(),
        );
        let (code, element) = self.step.code();
        w.bytes(&self.crs)
            .u8(code)
            .bytes(&element.to_le_bytes())
            .bytes(&self.round_one)
            .u32(self.parties.len() as u32);
        for p in self.parties.iter() {
            w.u32(p.0);
        }
        for p in &self.sum {
            w.poly(ring, p);
        }
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        multiplicative(params)?;
        let mut r = WireReader::open(bytes, Kind::EvaluationKeyAggregate, params)?;
        let crs = r.array::<16>()?;
        let step = read_step(&mut r)?;
        let round_one = r.array::<16>()?;
        let count = r.u32()? as usize;
        if count > 1 << 16 {
            return Err(concord_bfv::WireError::Malformed(format!("{count} parties")).into());
        }
        let mut parties = Participants::default();
        for _ in 0..count {
            parties.admit(PartyId(r.u32()?))?;
        }
        let sum = read_polys(&mut r, params, step)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            crs,
            step,
            round_one,
            sum,
            parties,
            digest: OnceLock::from(checksum(bytes)),
        })
    }
}

/// The trailing checksum of a serialized value (verified by [`WireReader::open`]).
fn checksum(bytes: &[u8]) -> RoundOneId {
    bytes[bytes.len() - CHECKSUM_LEN..]
        .try_into()
        .expect("a 16-byte checksum")
}

fn read_step(r: &mut WireReader) -> Result<KeyGenStep, MheError> {
    let code = r.u8()?;
    let element = u64::from_le_bytes(r.array::<8>()?);
    KeyGenStep::from_code(code, element).ok_or_else(|| {
        concord_bfv::WireError::Malformed(format!("unknown key-generation step {code}")).into()
    })
}

fn read_polys(
    r: &mut WireReader,
    params: &BfvParameters,
    step: KeyGenStep,
) -> Result<Vec<Poly>, MheError> {
    let ring = params.key_ring();
    (0..step.per_digit() * params.gadget_length())
        .map(|_| Ok(r.poly(ring, ring.max_level(), Representation::Ntt)?))
        .collect()
}

impl EvaluationKeyShare {
    pub fn serialized_len(&self) -> usize {
        let ring = self.params.key_ring();
        HEADER_LEN
            + 4
            + 16
            + 9
            + 16
            + self.polys.len() * poly_len(ring, ring.max_level())
            + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let ring = self.params.key_ring();
        let mut w = WireWriter::new(
            Kind::EvaluationKeyShare,
            &self.params,
            self.serialized_len(),
        );
        let (code, element) = self.step.code();
        w.u32(self.party.0)
            .bytes(&self.crs)
            .u8(code)
            .bytes(&element.to_le_bytes())
            .bytes(&self.round_one);
        for p in &self.polys {
            w.poly(ring, p);
        }
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        multiplicative(params)?;
        let mut r = WireReader::open(bytes, Kind::EvaluationKeyShare, params)?;
        let party = PartyId(r.u32()?);
        let crs = r.array::<16>()?;
        let step = read_step(&mut r)?;
        let round_one = r.array::<16>()?;
        let polys = read_polys(&mut r, params, step)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            party,
            crs,
            step,
            round_one,
            polys,
        })
    }
}
