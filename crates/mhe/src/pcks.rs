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
//! Of [`Extent::Constants`] — the constant coefficients of `k` ciphertexts — `h_{0,i}` carries
//! `k` values, coefficient `j` being `[s_i·c_{1,j}]_0 + [u_i·p']_j + e_{0,i,j}`, and `h_1` is
//! one polynomial for all `k`: the output is one ciphertext under the receiver's key whose
//! plaintext's coefficient `j` is `m_{j,0}`. Coefficient `j` of `u_i·p'` masks the `j`-th value,
//! and `(u_i·p' + e_0, u_i·a' + e_1)` is one RLWE encryption of zero, so the `k` masks are
//! jointly pseudo-random to all but the receiver — as they are for the `N` coefficients of a
//! whole key switch. Every other coefficient of every `c_{0,j} + c_{1,j}·s` stays hidden. The
//! result is one ciphertext (two polynomials) however many counts it carries, where switching
//! each count alone would take a ciphertext per count.

use crate::cks::{smudged_compressed, Extent, Released};
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

/// Key switching of one ciphertext, or of the constant coefficients of several, to one
/// receiver's public key.
pub struct PublicKeySwitch<'a> {
    released: Released<'a>,
    receiver: (Poly, Poly),
    plan: SmudgingPlan,
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
    /// Key switching of the whole plaintext of `ct`.
    pub fn new(
        ct: &'a Ciphertext,
        receiver: &PublicKey,
        plan: SmudgingPlan,
    ) -> Result<Self, MheError> {
        Self::of(Released::whole(ct, &plan)?, receiver, plan)
    }

    /// Key switching of the constant coefficient alone of each of `cts`
    /// ([`Extent::Constants`]), gathered into one ciphertext: its plaintext's coefficient `j`
    /// is `cts[j]`'s `m_0`.
    pub fn constants(
        cts: &'a [Ciphertext],
        receiver: &PublicKey,
        plan: SmudgingPlan,
    ) -> Result<Self, MheError> {
        Self::of(Released::constants(cts, &plan)?, receiver, plan)
    }

    fn of(
        released: Released<'a>,
        receiver: &PublicKey,
        plan: SmudgingPlan,
    ) -> Result<Self, MheError> {
        check_same_params(released.params(), receiver.params())?;
        Ok(Self {
            receiver: receiver.at_level(released.level()),
            released,
            plan,
        })
    }

    pub fn plan(&self) -> &SmudgingPlan {
        &self.plan
    }

    /// This party's share with `noise[j]` added to the `j`-th released coefficient (as
    /// [`crate::CollectiveDecryption::share_with_noise`]).
    pub fn share_with_noise(
        &self,
        sk: &SecretKey,
        party: PartyId,
        noise: &[i64],
    ) -> Result<KeySwitchShare, MheError> {
        let released = &self.released;
        let params = released.params();
        let ring = params.ring();
        let mut rng = secret_rng();
        let mut u = Poly::from_small(ring, self.plan.level, &ternary(ring.degree(), &mut rng));
        u.to_ntt(ring);
        let (p, a) = &self.receiver;
        let h0 = released.secret_product(sk, Some((&u, p)))?;
        let mut h1 = Poly::product_to_coefficients(ring, &u, a);
        zeroize::Zeroize::zeroize(&mut u);
        h1.add_small_assign(ring, &gaussian(ring.degree(), &mut rng));
        Ok(KeySwitchShare {
            params: params.clone(),
            party,
            ciphertext: released.tag,
            smudging_bits: self.plan.bits as u8,
            compressed_bits: self.plan.compressed_bits as u8,
            extent: released.extent,
            h0: smudged_compressed(params, h0, &self.plan, released.extent, noise)?,
            h1,
        })
    }
}

impl Protocol for PublicKeySwitch<'_> {
    type Share = KeySwitchShare;
    type Aggregate = KeySwitchAggregate;
    type Output = Ciphertext;

    /// `(h_{0,i}, h_{1,i}) = (s_i·c_1 + u_i·p' + e_0, u_i·a' + e_1)`.
    fn share(&self, sk: &SecretKey, party: PartyId) -> Result<KeySwitchShare, MheError> {
        self.share_with_noise(sk, party, &[])
    }

    fn aggregator(&self) -> KeySwitchAggregate {
        let params = self.released.params();
        KeySwitchAggregate {
            params: params.clone(),
            ciphertext: self.released.tag,
            compressed_bits: self.plan.compressed_bits,
            h0: vec![0; self.released.extent.len(params.degree())],
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
        if aggregate.ciphertext != self.released.tag {
            return Err(MheError::WrongCiphertext {
                party: aggregate.parties.iter().next().unwrap_or(PartyId(0)),
            });
        }
        aggregate.parties.check_exactly(expected)?;
        let params = self.released.params();
        let ring = params.ring();
        let mut h0 = aggregate.h0.clone();
        h0.resize(params.degree(), 0);
        let mut c0 = from_compressed_torus(ring, self.plan.level, &h0, aggregate.compressed_bits);
        c0.add_assign(ring, &self.released.c0());
        Ok(Ciphertext::from_parts(
            params,
            vec![c0, aggregate.h1.clone()],
            self.released.range(),
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
            + 3
            + self.extent.wire_len()
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
            .u8(self.compressed_bits);
        self.extent.write(&mut w);
        w.packed(&self.h0, self.compressed_bits as u32)
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
        let extent = Extent::read(&mut r, params.degree())?;
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
