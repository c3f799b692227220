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
//! **Threshold.** A threshold party passes its key for the active set
//! ([`crate::ThresholdSecretKey::for_active_set`], kept over the whole key ring). Every secret
//! product above multiplies an aggregate (`h_0`, `h_1`) or a public polynomial, so the key's
//! noise depends on `s = Σ k_j` and `u = Σ u_i`, never on the (uniform) per-set keys.
//! The errors are the scheme's `χ`: these keys are public, and no share is decrypted, so no
//! smudging is needed.
//!
//! **Trust.** As in PETS 2021, the aggregator is honest-but-curious. Round two multiplies the
//! party's secrets into the round-one aggregate it receives, so a coordinator that sent a
//! crafted one (say `h_0[j] = 1`, `h_1[j] = 0`) would get `s_i + e` back. Round-two shares are
//! bound to the round-one aggregate they answer (its id, the checksum of its encoding), which
//! stops mixing runs but not a crafted aggregate: before answering round two over a network, a
//! party must check the aggregate against the signed round-one shares, receiving every share and
//! recomputing the sum as the collective public key's pin does (`concord-api` `deployment`).
//! Concord's query flow does not run RKG over the network yet.

use crate::crs::CrsId;
use crate::party::{Participants, PartyId};
use crate::MheError;
use concord_bfv::wire::{poly_len, Kind, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_bfv::{check_same_params, BfvError, BfvParameters};
use concord_ring::sampling::{gaussian, RngCore};
use concord_ring::{Poly, Representation, RnsContext};
use std::sync::{Arc, OnceLock};

mod gkg;
mod rkg;

pub use gkg::{GaloisKeyAggregate, GaloisKeyGen};
pub use rkg::{RelinearizationEphemeral, RelinearizationKeyGen};

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
    pub(crate) params: Arc<BfvParameters>,
    pub party: PartyId,
    pub crs: CrsId,
    pub step: KeyGenStep,
    /// For round two: the round-one aggregate it answers (zero otherwise).
    pub round_one: RoundOneId,
    pub(crate) polys: Vec<Poly>,
}

/// The running sum of one step's shares. Round one's complete aggregate is also what the
/// coordinator sends back to the parties, so it serializes itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EvaluationKeyAggregate {
    pub(crate) params: Arc<BfvParameters>,
    pub(crate) crs: CrsId,
    pub(crate) step: KeyGenStep,
    pub(crate) round_one: RoundOneId,
    pub(crate) sum: Vec<Poly>,
    pub(crate) parties: Participants,
    /// [`Self::digest`], computed once the sums stop changing.
    digest: OnceLock<RoundOneId>,
}

pub(crate) fn multiplicative(params: &BfvParameters) -> Result<(), MheError> {
    if params.is_multiplicative() {
        Ok(())
    } else {
        Err(BfvError::NotMultiplicative(params.name()).into())
    }
}

/// A fresh `e ← χ` in the key ring, NTT form.
pub(crate) fn error(ring: &RnsContext, rng: &mut impl RngCore) -> Poly {
    let mut e = Poly::from_small(ring, ring.max_level(), &gaussian(ring.degree(), rng));
    e.to_ntt(ring);
    e
}

/// `−s·a + e`, NTT form in the key ring: the RLWE part every share starts from.
pub(crate) fn masked(ring: &RnsContext, s: &Poly, a: &Poly, rng: &mut impl RngCore) -> Poly {
    let mut out = error(ring, rng);
    out.mul_subtract(ring, a, s);
    out
}

impl EvaluationKeyAggregate {
    pub(crate) fn new(
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
