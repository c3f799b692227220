//! CKG — the collective public key (Mouchet et al., PETS 2021, §IV-A; PROTOCOLS.md).
//!
//! - share: `p_i = −s_i·a + e_i`, `e_i ← χ`, with `a` expanded from the CRS;
//! - aggregate: `p = Σ_i p_i` (anyone, e.g. the coordinator, streaming);
//! - output: `pk = (p, a)`, so that `p + a·s = Σ_i e_i` for `s = Σ_i s_i`.
//!
//! Everything stays in NTT form: the share is a pointwise product plus a transformed error.

use crate::crs::{CommonReferenceString, CrsId};
use crate::party::{Participants, PartyId};
use crate::protocol::Protocol;
use crate::randomness::derived_rng;
use crate::MheError;
use concord_bfv::wire::{poly_len, Kind, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_bfv::{check_same_params, BfvParameters, PublicKey, SecretKey};
use concord_ring::sampling::gaussian;
use concord_ring::{Poly, Representation};
use std::sync::Arc;

/// The CKG protocol for one parameter set and CRS: holds the common polynomial `a`.
pub struct PublicKeyGen {
    params: Arc<BfvParameters>,
    crs: CrsId,
    a: Poly,
}

/// Party `i`'s share `p_i = −s_i·a + e_i` (NTT form).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyShare {
    params: Arc<BfvParameters>,
    pub party: PartyId,
    pub crs: CrsId,
    p: Poly,
}

/// The running sum of CKG shares.
#[derive(Clone, Debug)]
pub struct PublicKeyAggregate {
    params: Arc<BfvParameters>,
    crs: CrsId,
    sum: Poly,
    parties: Participants,
}

impl PublicKeyGen {
    pub fn new(params: &Arc<BfvParameters>, crs: &CommonReferenceString) -> Self {
        Self {
            params: params.clone(),
            crs: crs.id(),
            a: crs.public_key_polynomial(params),
        }
    }
}

impl Protocol for PublicKeyGen {
    type Share = PublicKeyShare;
    type Aggregate = PublicKeyAggregate;
    type Output = PublicKey;

    /// `p_i = −s_i·a + e_i`.
    fn share(&self, sk: &SecretKey, party: PartyId) -> Result<PublicKeyShare, MheError> {
        check_same_params(&self.params, sk.params())?;
        let ring = self.params.ring();
        // the same share for the same set and CRS, however often asked ([`crate::randomness`])
        let mut rng = derived_rng(sk, "ckg", &[self.params.name().as_bytes(), &self.crs]);
        let e = gaussian(ring.degree(), &mut rng);
        let mut p = Poly::from_small(ring, self.params.max_level(), &e);
        p.to_ntt(ring);
        p.mul_subtract(ring, &self.a, sk.poly());
        Ok(PublicKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            p,
        })
    }

    fn aggregator(&self) -> PublicKeyAggregate {
        PublicKeyAggregate {
            params: self.params.clone(),
            crs: self.crs,
            sum: Poly::zero(
                self.params.ring(),
                self.params.max_level(),
                Representation::Ntt,
            ),
            parties: Participants::default(),
        }
    }

    /// `pk = (Σ p_i, a)`, only if exactly `expected` contributed.
    fn finish(
        &self,
        aggregate: &PublicKeyAggregate,
        expected: &[PartyId],
    ) -> Result<PublicKey, MheError> {
        if aggregate.crs != self.crs {
            return Err(MheError::CrsMismatch {
                party: aggregate.parties.iter().next().unwrap_or(PartyId(0)),
            });
        }
        aggregate.parties.check_exactly(expected)?;
        Ok(PublicKey::from_parts(
            &self.params,
            aggregate.sum.clone(),
            self.a.clone(),
        ))
    }
}

impl PublicKeyAggregate {
    /// `p ← p + p_i`.
    pub fn add(&mut self, share: &PublicKeyShare) -> Result<(), MheError> {
        if share.crs != self.crs {
            return Err(MheError::CrsMismatch { party: share.party });
        }
        check_same_params(&self.params, &share.params)?;
        self.parties.admit(share.party)?;
        self.sum.add_assign(self.params.ring(), &share.p);
        Ok(())
    }

    pub fn parties(&self) -> &Participants {
        &self.parties
    }
}

impl PublicKeyShare {
    /// The share `p_i` (NTT form, top level). Public: it is what the party sends.
    pub fn value(&self) -> &Poly {
        &self.p
    }

    pub fn serialized_len(&self) -> usize {
        HEADER_LEN + 4 + 16 + poly_len(self.params.ring(), self.p.level()) + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = WireWriter::new(Kind::PublicKeyShare, &self.params, self.serialized_len());
        w.u32(self.party.0)
            .bytes(&self.crs)
            .poly(self.params.ring(), &self.p);
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::PublicKeyShare, params)?;
        let party = PartyId(r.u32()?);
        let crs = r.array::<16>()?;
        let p = r.poly(params.ring(), params.max_level(), Representation::Ntt)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            party,
            crs,
            p,
        })
    }
}

crate::protocol::wire_share!(PublicKeyShare);
crate::protocol::aggregate!(PublicKeyAggregate, PublicKeyShare);
