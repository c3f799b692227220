//! CKS to the zero key — joint decryption (Mouchet et al., PETS 2021, §IV-C; PROTOCOLS.md).
//!
//! - share: `h_i = s_i·c_1 + e_i`, `e_i` uniform on `[-2^b, 2^b)` ([`SmudgingPlan`]), sent as
//!   the top `d` bits of `h_i/Q` on the torus (the bits below are smudging noise already);
//! - aggregate: `h = Σ_i h_i`, a sum modulo `2^d` of the compressed shares;
//! - output: `m = round(t·(c_0/Q + h/2^d)) mod t`.
//!
//! **Extent.** A share covers every coefficient ([`Extent::All`]) or only the constant one
//! ([`Extent::Constant`]): `h_i[0]`, one value, from which only `m_0` decrypts. That is how a
//! count made by `concord_bfv::Ciphertext::value_counts` is released and nothing else of its
//! ciphertext: the other coefficients of `c_0 + c_1·s` are never revealed, and the share gives
//! one RLWE coefficient of `s_i`, smudged (statistical distance `2^{-λ}` rather than `N·2^{-λ}`).
//!
//! A party must never give two shares for one ciphertext: two independently smudged shares
//! average the smudging away. The crypto layer cannot remember; the node's store enforces it
//! (one share per query, recorded before it is sent).

use crate::noise::SmudgingPlan;
use crate::party::{Participants, PartyId};
use crate::protocol::Protocol;
use crate::MheError;
use concord_bfv::wire::{Kind, WireError, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_bfv::{
    check_same_params, BfvParameters, Ciphertext, CiphertextTag, Plaintext, SecretKey,
};
use concord_ring::packing::packed_len;
use concord_ring::sampling::secret_rng;
use concord_ring::torus::{compress, to_torus, torus_to_modulus};
use concord_ring::Poly;
use std::sync::Arc;

/// Which coefficients of `Δm` a decryption or key-switch share reveals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Every coefficient: the whole plaintext.
    All,
    /// The constant coefficient `m_0` alone (for a count of `value_counts`, the count).
    Constant,
}

impl Extent {
    /// Coefficients a share of this extent carries, in a ring of degree `n`.
    pub fn len(self, n: usize) -> usize {
        match self {
            Self::All => n,
            Self::Constant => 1,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            Self::All => 0,
            Self::Constant => 1,
        }
    }

    pub(crate) fn from_code(code: u8) -> Result<Self, WireError> {
        match code {
            0 => Ok(Self::All),
            1 => Ok(Self::Constant),
            _ => Err(WireError::Malformed(format!("unknown share extent {code}"))),
        }
    }
}

/// Joint decryption of one ciphertext under one smudging plan.
pub struct CollectiveDecryption<'a> {
    ct: &'a Ciphertext,
    tag: CiphertextTag,
    plan: SmudgingPlan,
    extent: Extent,
}

/// Party `i`'s compressed, smudged share `h_i = s_i·c_1 + e_i`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptionShare {
    params: Arc<BfvParameters>,
    pub party: PartyId,
    /// The ciphertext this share decrypts.
    pub ciphertext: CiphertextTag,
    level: u8,
    smudging_bits: u8,
    compressed_bits: u8,
    extent: Extent,
    values: Vec<u64>,
}

/// The running sum of decryption shares (modulo `2^d`).
#[derive(Clone, Debug)]
pub struct DecryptionAggregate {
    params: Arc<BfvParameters>,
    ciphertext: CiphertextTag,
    compressed_bits: u32,
    sum: Vec<u64>,
    parties: Participants,
}

/// A share computed at `plan.level` from `c_1`: `x_i = s·c_1 + uniform[-2^b, 2^b)`, to the torus,
/// compressed to `d` bits, only the coefficients of `extent`. Shared by CKS and PCKS.
pub(crate) fn smudged_compressed(
    params: &BfvParameters,
    mut x: Poly,
    plan: &SmudgingPlan,
    extent: Extent,
) -> Vec<u64> {
    let ring = params.ring();
    x.add_centered_uniform(ring, plan.bits, &mut secret_rng());
    let mut values: Vec<u64> = to_torus(ring, &x)
        .into_iter()
        .map(|v| compress(v, plan.compressed_bits))
        .collect();
    values.truncate(extent.len(params.degree()));
    values
}

/// A share is computed from `c_1` alone: the ciphertext must be of degree 1 and at the plan's level.
pub(crate) fn check_plan(ct: &Ciphertext, plan: &SmudgingPlan) -> Result<(), MheError> {
    if ct.degree() != 1 {
        return Err(concord_bfv::BfvError::Degree(ct.degree()).into());
    }
    if plan.level != ct.level() {
        return Err(MheError::Bfv(concord_bfv::BfvError::LevelMismatch {
            left: plan.level,
            right: ct.level(),
        }));
    }
    Ok(())
}

impl<'a> CollectiveDecryption<'a> {
    /// Joint decryption of the whole plaintext.
    pub fn new(ct: &'a Ciphertext, plan: SmudgingPlan) -> Result<Self, MheError> {
        Self::with_extent(ct, plan, Extent::All)
    }

    /// Joint decryption of `extent`'s coefficients only.
    pub fn with_extent(
        ct: &'a Ciphertext,
        plan: SmudgingPlan,
        extent: Extent,
    ) -> Result<Self, MheError> {
        check_plan(ct, &plan)?;
        Ok(Self {
            ct,
            tag: ct.tag(),
            plan,
            extent,
        })
    }

    pub fn plan(&self) -> &SmudgingPlan {
        &self.plan
    }
}

impl Protocol for CollectiveDecryption<'_> {
    type Share = DecryptionShare;
    type Aggregate = DecryptionAggregate;
    type Output = Plaintext;

    /// `h_i = s_i·c_1 + e_i`, smudged and compressed.
    fn share(&self, sk: &SecretKey, party: PartyId) -> Result<DecryptionShare, MheError> {
        check_same_params(sk.params(), self.ct.params())?;
        let params = self.ct.params();
        let ring = params.ring();
        let mut c1 = self.ct.c1().clone();
        c1.to_ntt(ring);
        c1.mul_assign_to_coefficients(ring, sk.poly());
        Ok(DecryptionShare {
            params: params.clone(),
            party,
            ciphertext: self.tag,
            level: self.plan.level as u8,
            smudging_bits: self.plan.bits as u8,
            compressed_bits: self.plan.compressed_bits as u8,
            extent: self.extent,
            values: smudged_compressed(params, c1, &self.plan, self.extent),
        })
    }

    fn aggregator(&self) -> DecryptionAggregate {
        DecryptionAggregate {
            params: self.ct.params().clone(),
            ciphertext: self.tag,
            compressed_bits: self.plan.compressed_bits,
            sum: vec![0; self.extent.len(self.ct.params().degree())],
            parties: Participants::default(),
        }
    }

    /// `m = round(t·(c_0/Q + h/2^d)) mod t`, only from exactly the `expected` parties' shares;
    /// of [`Extent::Constant`], a plaintext whose only nonzero coefficient is `m_0`.
    fn finish(
        &self,
        aggregate: &DecryptionAggregate,
        expected: &[PartyId],
    ) -> Result<Plaintext, MheError> {
        if aggregate.ciphertext != self.tag {
            return Err(MheError::WrongCiphertext {
                party: aggregate.parties.iter().next().unwrap_or(PartyId(0)),
            });
        }
        aggregate.parties.check_exactly(expected)?;
        let params = self.ct.params();
        let shift = 64 - aggregate.compressed_bits;
        let mut torus = to_torus(params.ring(), self.ct.c0());
        torus.truncate(aggregate.sum.len());
        for (x, &h) in torus.iter_mut().zip(&aggregate.sum) {
            *x = x.wrapping_add(h << shift);
        }
        let mut coeffs = torus_to_modulus(&torus, params.plaintext_modulus());
        coeffs.resize(params.degree(), 0);
        Ok(Plaintext::from_coefficients(
            params,
            coeffs,
            self.ct.range(),
        ))
    }
}

impl DecryptionAggregate {
    /// `h ← h + h_i (mod 2^d)`.
    pub fn add(&mut self, share: &DecryptionShare) -> Result<(), MheError> {
        check_same_params(&self.params, &share.params)?;
        if share.ciphertext != self.ciphertext {
            return Err(MheError::WrongCiphertext { party: share.party });
        }
        if share.compressed_bits as u32 != self.compressed_bits
            || share.values.len() != self.sum.len()
        {
            return Err(MheError::IncompatibleShare {
                party: share.party,
                what: "smudging plan",
            });
        }
        self.parties.admit(share.party)?;
        let mask = (1u64 << self.compressed_bits) - 1;
        for (s, &v) in self.sum.iter_mut().zip(&share.values) {
            *s = s.wrapping_add(v) & mask;
        }
        Ok(())
    }

    pub fn parties(&self) -> &Participants {
        &self.parties
    }
}

impl DecryptionShare {
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN
            + 4
            + 16
            + 4
            + packed_len(self.values.len(), self.compressed_bits as u32)
            + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = WireWriter::new(Kind::DecryptionShare, &self.params, self.serialized_len());
        w.u32(self.party.0)
            .bytes(&self.ciphertext)
            .u8(self.level)
            .u8(self.smudging_bits)
            .u8(self.compressed_bits)
            .u8(self.extent.code())
            .packed(&self.values, self.compressed_bits as u32);
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError> {
        let mut r = WireReader::open(bytes, Kind::DecryptionShare, params)?;
        let party = PartyId(r.u32()?);
        let ciphertext = r.array::<16>()?;
        let level = r.level(params.ring())? as u8;
        let smudging_bits = r.u8()?;
        let compressed_bits = r.u8()?;
        if !(1..=63).contains(&compressed_bits) || !(1..=62).contains(&smudging_bits) {
            return Err(WireError::Malformed("share bit widths out of range".into()).into());
        }
        let extent = Extent::from_code(r.u8()?)?;
        let values = r.packed(extent.len(params.degree()), compressed_bits as u32)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            party,
            ciphertext,
            level,
            smudging_bits,
            compressed_bits,
            extent,
            values,
        })
    }
}

crate::protocol::wire_share!(DecryptionShare);
crate::protocol::aggregate!(DecryptionAggregate, DecryptionShare);
