//! PCKS — public-key switching to a receiver's key (Mouchet et al., PETS 2021, §IV-D;
//! PROTOCOLS.md). The aggregator (the coordinator) ends with a ciphertext under the receiver's
//! key that it cannot read; only the receiver (a researcher) decrypts it.
//!
//! - share: `u_i ← ternary`; `h_{0,i} = s_i·c_1 + u_i·p' + e_{0,i}` with `e_{0,i}` the smudging
//!   noise of the [`SmudgingPlan`] (sent compressed, like a decryption share) and
//!   `h_{1,i} = u_i·a' + e_{1,i}`, `e_{1,i} ← χ`;
//! - aggregate: `h_0 = Σ h_{0,i}` (mod `2^d`), `h_1 = Σ h_{1,i}`;
//! - output: `c' = (c_0 + h_0, h_1)`, and `c'_0 + c'_1·s' = Δm + e_ct + Σ e_{0,i} + Σ u_i·e' + s'·Σ e_{1,i}`.
//!
//! Of [`Extent::Constant`], `h_{0,i}` carries its constant coefficient alone and `h_1` stays
//! whole: the receiver decrypts `m_0` and nothing else — every other coefficient of `c'_0` is
//! `c_0`'s, masked by `c_1·s` under the collective key the receiver does not hold.

use crate::cks::{smudged_compressed, Extent};
use crate::noise::SmudgingPlan;
use crate::party::{Participants, PartyId};
use crate::protocol::Protocol;
use crate::MheError;
use concord_bfv::wire::{
    poly_len, Kind, WireError, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN,
};
use concord_bfv::{
    check_same_params, BfvParameters, Ciphertext, CiphertextTag, PublicKey, SecretKey,
};
use concord_ring::packing::packed_len;
use concord_ring::sampling::{gaussian, secret_rng, ternary};
use concord_ring::torus::from_compressed_torus;
use concord_ring::{Poly, Representation};
use std::sync::Arc;

/// Key switching of one ciphertext to one receiver's public key.
pub struct PublicKeySwitch<'a> {
    ct: &'a Ciphertext,
    tag: CiphertextTag,
    receiver: (Poly, Poly),
    plan: SmudgingPlan,
    extent: Extent,
}

/// Party `i`'s share `(h_{0,i}, h_{1,i})`; `h_{0,i}` compressed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeySwitchShare {
    params: Arc<BfvParameters>,
    pub party: PartyId,
    pub ciphertext: CiphertextTag,
    smudging_bits: u8,
    compressed_bits: u8,
    extent: Extent,
    h0: Vec<u64>,
    h1: Poly,
}

/// The running sums `(h_0, h_1)`.
#[derive(Clone, Debug)]
pub struct KeySwitchAggregate {
    params: Arc<BfvParameters>,
    ciphertext: CiphertextTag,
    compressed_bits: u32,
    h0: Vec<u64>,
    h1: Poly,
    parties: Participants,
}

impl<'a> PublicKeySwitch<'a> {
    /// Key switching of the whole plaintext.
    pub fn new(
        ct: &'a Ciphertext,
        receiver: &PublicKey,
        plan: SmudgingPlan,
    ) -> Result<Self, MheError> {
        Self::with_extent(ct, receiver, plan, Extent::All)
    }

    /// Key switching of `extent`'s coefficients only.
    pub fn with_extent(
        ct: &'a Ciphertext,
        receiver: &PublicKey,
        plan: SmudgingPlan,
        extent: Extent,
    ) -> Result<Self, MheError> {
        check_same_params(ct.params(), receiver.params())?;
        crate::cks::check_plan(ct, &plan)?;
        Ok(Self {
            ct,
            tag: ct.tag(),
            receiver: receiver.at_level(ct.level()),
            plan,
            extent,
        })
    }

    pub fn plan(&self) -> &SmudgingPlan {
        &self.plan
    }
}

impl Protocol for PublicKeySwitch<'_> {
    type Share = KeySwitchShare;
    type Aggregate = KeySwitchAggregate;
    type Output = Ciphertext;

    /// `(h_{0,i}, h_{1,i}) = (s_i·c_1 + u_i·p' + e_0, u_i·a' + e_1)`.
    fn share(&self, sk: &SecretKey, party: PartyId) -> Result<KeySwitchShare, MheError> {
        check_same_params(sk.params(), self.ct.params())?;
        let params = self.ct.params();
        let ring = params.ring();
        let level = self.plan.level;
        let mut rng = secret_rng();
        let mut u = Poly::from_small(ring, level, &ternary(ring.degree(), &mut rng));
        u.to_ntt(ring);
        let (p, a) = &self.receiver;
        let mut h0 = self.ct.c1().clone();
        h0.to_ntt(ring);
        h0.mul_assign(ring, sk.poly());
        h0.mul_accumulate(ring, &u, p);
        h0.to_coefficients(ring);
        let mut h1 = Poly::product_to_coefficients(ring, &u, a);
        zeroize::Zeroize::zeroize(&mut u);
        h1.add_small_assign(ring, &gaussian(ring.degree(), &mut rng));
        Ok(KeySwitchShare {
            params: params.clone(),
            party,
            ciphertext: self.tag,
            smudging_bits: self.plan.bits as u8,
            compressed_bits: self.plan.compressed_bits as u8,
            extent: self.extent,
            h0: smudged_compressed(params, h0, &self.plan, self.extent),
            h1,
        })
    }

    fn aggregator(&self) -> KeySwitchAggregate {
        let params = self.ct.params();
        KeySwitchAggregate {
            params: params.clone(),
            ciphertext: self.tag,
            compressed_bits: self.plan.compressed_bits,
            h0: vec![0; self.extent.len(params.degree())],
            h1: Poly::zero(params.ring(), self.plan.level, Representation::Coefficient),
            parties: Participants::default(),
        }
    }

    /// `c' = (c_0 + h_0, h_1)` under the receiver's key, only from exactly the `expected` parties.
    fn finish(
        &self,
        aggregate: &KeySwitchAggregate,
        expected: &[PartyId],
    ) -> Result<Ciphertext, MheError> {
        if aggregate.ciphertext != self.tag {
            return Err(MheError::WrongCiphertext {
                party: aggregate.parties.iter().next().unwrap_or(PartyId(0)),
            });
        }
        aggregate.parties.check_exactly(expected)?;
        let params = self.ct.params();
        let ring = params.ring();
        let mut h0 = aggregate.h0.clone();
        h0.resize(params.degree(), 0);
        let mut c0 = from_compressed_torus(ring, self.plan.level, &h0, aggregate.compressed_bits);
        c0.add_assign(ring, self.ct.c0());
        Ok(Ciphertext::from_parts(
            params,
            vec![c0, aggregate.h1.clone()],
            self.ct.range(),
        ))
    }
}

impl KeySwitchAggregate {
    /// `h_0 ← h_0 + h_{0,i} (mod 2^d)`, `h_1 ← h_1 + h_{1,i}`.
    pub fn add(&mut self, share: &KeySwitchShare) -> Result<(), MheError> {
        check_same_params(&self.params, &share.params)?;
        if share.ciphertext != self.ciphertext {
            return Err(MheError::WrongCiphertext { party: share.party });
        }
        if share.compressed_bits as u32 != self.compressed_bits
            || share.h1.level() != self.h1.level()
            || share.h0.len() != self.h0.len()
        {
            return Err(MheError::IncompatibleShare {
                party: share.party,
                what: "smudging plan, level or extent",
            });
        }
        self.parties.admit(share.party)?;
        let mask = (1u64 << self.compressed_bits) - 1;
        for (s, &v) in self.h0.iter_mut().zip(&share.h0) {
            *s = s.wrapping_add(v) & mask;
        }
        self.h1.add_assign(self.params.ring(), &share.h1);
        Ok(())
    }

    pub fn parties(&self) -> &Participants {
        &self.parties
    }
}

impl KeySwitchShare {
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN
            + 4
            + 16
            + 4
            + packed_len(self.h0.len(), self.compressed_bits as u32)
            + poly_len(self.params.ring(), self.h1.level())
            + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = WireWriter::new(Kind::KeySwitchShare, &self.params, self.serialized_len());
        w.u32(self.party.0)
            .bytes(&self.ciphertext)
            .u8(self.h1.level() as u8)
            .u8(self.smudging_bits)
            .u8(self.compressed_bits)
            .u8(self.extent.code())
            .packed(&self.h0, self.compressed_bits as u32)
            .poly(self.params.ring(), &self.h1);
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::KeySwitchShare, params)?;
        let party = PartyId(r.u32()?);
        let ciphertext = r.array::<16>()?;
        let level = r.level(params.ring())?;
        let smudging_bits = r.u8()?;
        let compressed_bits = r.u8()?;
        if !(1..=63).contains(&compressed_bits) || !(1..=62).contains(&smudging_bits) {
            return Err(WireError::Malformed("share bit widths out of range".into()).into());
        }
        let extent = Extent::from_code(r.u8()?)?;
        let h0 = r.packed(extent.len(params.degree()), compressed_bits as u32)?;
        let h1 = r.poly(params.ring(), level, Representation::Coefficient)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            party,
            ciphertext,
            smudging_bits,
            compressed_bits,
            extent,
            h0,
            h1,
        })
    }
}

crate::protocol::wire_share!(KeySwitchShare);
crate::protocol::aggregate!(KeySwitchAggregate, KeySwitchShare);
