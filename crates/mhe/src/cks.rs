//! CKS to the zero key — joint decryption (Mouchet et al., PETS 2021, §IV-C; PROTOCOLS.md).
//!
//! - share: `h_i = s_i·c_1 + e_i`, `e_i` uniform on `[-2^b, 2^b)` ([`SmudgingPlan`]), sent as
//!   the top `d` bits of `h_i/Q` on the torus (the bits below are smudging noise already);
//! - aggregate: `h = Σ_i h_i`, a sum modulo `2^d` of the compressed shares;
//! - output: `m = round(t·(c_0/Q + h/2^d)) mod t`.
//!
//! **Extent.** A share covers every coefficient of one ciphertext ([`Extent::All`]) or the
//! constant coefficient alone of each of `k ≤ N` ciphertexts ([`Extent::Constants`]): `k`
//! values `[s_i·c_{1,j}]_0 + e_{i,j}`, and the output is one plaintext whose coefficient `j` is
//! `m_{j,0}`. That is how the counts made by `concord_bfv::Ciphertext::value_counts` are
//! released and nothing else of their ciphertexts: no other coefficient of any `c_0 + c_1·s`
//! is revealed, and each value is one RLWE coefficient of `s_i`, smudged (statistical distance
//! `k·2^{-λ}` rather than `k·N·2^{-λ}`). One share per party for all `k`, in one message.
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
    check_same_params, BfvParameters, Ciphertext, CiphertextTag, Plaintext, SecretKey, ValueRange,
};
use concord_ring::packing::packed_len;
use concord_ring::sampling::secret_rng;
use concord_ring::torus::{compress, to_torus, torus_to_modulus};
use concord_ring::{Poly, Representation};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::Arc;

/// What a decryption or key-switch share reveals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Extent {
    /// Every coefficient of one ciphertext: the whole plaintext.
    All,
    /// The constant coefficient `m_0` alone of each of `k` ciphertexts, gathered into one
    /// plaintext: coefficient `j` is the `j`-th ciphertext's `m_0` (for the counts of
    /// `value_counts`, the histogram). Nothing else of any of them decrypts.
    Constants(usize),
}

impl Extent {
    /// Coefficients a share of this extent carries, in a ring of degree `n`.
    pub fn len(self, n: usize) -> usize {
        match self {
            Self::All => n,
            Self::Constants(k) => k,
        }
    }

    pub(crate) fn write(self, w: &mut WireWriter) {
        match self {
            Self::All => w.u8(0),
            Self::Constants(k) => w.u8(1).u32(k as u32),
        };
    }

    pub(crate) fn wire_len(self) -> usize {
        match self {
            Self::All => 1,
            Self::Constants(_) => 5,
        }
    }

    pub(crate) fn read(r: &mut WireReader, n: usize) -> Result<Self, WireError> {
        match r.u8()? {
            0 => Ok(Self::All),
            1 => match r.u32()? as usize {
                k @ 1.. if k <= n => Ok(Self::Constants(k)),
                k => Err(WireError::Malformed(format!(
                    "{k} constant coefficients in a ring of degree {n}"
                ))),
            },
            code => Err(WireError::Malformed(format!("unknown share extent {code}"))),
        }
    }
}

/// What a share is computed from, at the plan's level: one ciphertext, or the `k` ciphertexts
/// whose constant coefficients it releases.
#[derive(Clone, Copy)]
pub(crate) struct Released<'a> {
    cts: &'a [Ciphertext],
    pub(crate) extent: Extent,
    pub(crate) tag: CiphertextTag,
}

impl<'a> Released<'a> {
    pub(crate) fn whole(ct: &'a Ciphertext, plan: &SmudgingPlan) -> Result<Self, MheError> {
        check_plan(ct, plan)?;
        Ok(Self {
            cts: std::slice::from_ref(ct),
            extent: Extent::All,
            tag: ct.tag(),
        })
    }

    /// The constant coefficients of `cts`: at least one, at most `N`, all of one parameter
    /// set, each at the plan's level (the output takes the first one's range). The tag binds
    /// all of them, in order.
    pub(crate) fn constants(cts: &'a [Ciphertext], plan: &SmudgingPlan) -> Result<Self, MheError> {
        let first = cts.first().ok_or(MheError::NothingToRelease)?;
        if cts.len() > first.params().degree() {
            return Err(MheError::TooManyConstants {
                given: cts.len(),
                degree: first.params().degree(),
            });
        }
        let mut h = Sha256::new();
        h.update(b"concord/constants-tag/v1");
        for ct in cts {
            check_same_params(ct.params(), first.params())?;
            check_plan(ct, plan)?;
            h.update(ct.tag());
        }
        Ok(Self {
            cts,
            extent: Extent::Constants(cts.len()),
            tag: h.finalize()[..16].try_into().unwrap(),
        })
    }

    pub(crate) fn params(&self) -> &Arc<BfvParameters> {
        self.cts[0].params()
    }

    pub(crate) fn level(&self) -> usize {
        self.cts[0].level()
    }

    pub(crate) fn range(&self) -> ValueRange {
        self.cts[0].range()
    }

    /// `c_0`, or the constant coefficients of the `c_0`s gathered (coefficient form).
    pub(crate) fn c0(&self) -> Cow<'a, Poly> {
        match self.extent {
            Extent::All => Cow::Borrowed(self.cts[0].c0()),
            Extent::Constants(_) => Cow::Owned(self.gather(|ct| ct.c0().clone())),
        }
    }

    /// `s·c_1`, or the constant coefficients of the `s·c_1`s gathered, plus `u·p` for a key
    /// switch's `mask = (u, p)` (both in NTT form), in coefficient form. Of a whole
    /// ciphertext the mask is accumulated before the one inverse transform.
    pub(crate) fn secret_product(
        &self,
        sk: &SecretKey,
        mask: Option<(&Poly, &Poly)>,
    ) -> Result<Poly, MheError> {
        check_same_params(sk.params(), self.params())?;
        let ring = self.params().ring();
        let product = |ct: &Ciphertext| {
            let mut c1 = ct.c1().clone();
            c1.to_ntt(ring);
            c1.mul_assign_to_coefficients(ring, sk.poly());
            c1
        };
        Ok(match (self.extent, mask) {
            (Extent::All, None) => product(&self.cts[0]),
            (Extent::All, Some((u, p))) => {
                let mut h = self.cts[0].c1().clone();
                h.to_ntt(ring);
                h.mul_assign(ring, sk.poly());
                h.mul_accumulate(ring, u, p);
                h.to_coefficients(ring);
                h
            }
            (Extent::Constants(_), mask) => {
                // coefficient j: the constant coefficient of c_{1,j}·s_i, an inner product of
                // coefficients (no NTT per ciphertext)
                let mut s = sk.poly().truncated(ring, self.level());
                s.to_coefficients(ring);
                let mut h = Poly::zero(ring, self.level(), Representation::Coefficient);
                for (j, ct) in self.cts.iter().enumerate() {
                    let mut c1 = std::borrow::Cow::Borrowed(ct.c1());
                    if c1.representation() != Representation::Coefficient {
                        c1.to_mut().to_coefficients(ring);
                    }
                    for (l, x) in c1.constant_of_product(ring, &s).into_iter().enumerate() {
                        h.residues_mut(l)[j] = x;
                    }
                }
                zeroize::Zeroize::zeroize(&mut s);
                if let Some((u, p)) = mask {
                    h.add_assign(ring, &Poly::product_to_coefficients(ring, u, p));
                }
                h
            }
        })
    }

    /// The polynomial whose coefficient `j` is the constant coefficient of `f(cts[j])`.
    fn gather(&self, f: impl Fn(&Ciphertext) -> Poly) -> Poly {
        let ring = self.params().ring();
        let mut out = Poly::zero(ring, self.level(), Representation::Coefficient);
        for (j, ct) in self.cts.iter().enumerate() {
            let p = f(ct);
            for l in 0..self.level() {
                out.residues_mut(l)[j] = p.residues(l)[0];
            }
        }
        out
    }
}

/// Joint decryption of one ciphertext, or of the constant coefficients of several, under one
/// smudging plan.
pub struct CollectiveDecryption<'a> {
    released: Released<'a>,
    plan: SmudgingPlan,
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
/// plus `noise[j]/t` on coefficient `j` (a party's own noise added to what it releases:
/// differential privacy of a computed result), compressed to `d` bits, only the coefficients
/// of `extent`. Shared by CKS and PCKS.
pub(crate) fn smudged_compressed(
    params: &BfvParameters,
    mut x: Poly,
    plan: &SmudgingPlan,
    extent: Extent,
    noise: &[i64],
) -> Result<Vec<u64>, MheError> {
    let len = extent.len(params.degree());
    if noise.len() > len {
        return Err(MheError::NoiseLength {
            given: noise.len(),
            released: len,
        });
    }
    let ring = params.ring();
    x.add_centered_uniform(ring, plan.bits, &mut secret_rng());
    let mut torus = to_torus(ring, &x);
    torus.truncate(len);
    let t = params.plaintext_modulus() as i128;
    for (v, &m) in torus.iter_mut().zip(noise) {
        // m/t on the torus, rounded: off by at most 2^-65, far below the smudging
        let offset = ((m as i128) << 64).div_euclid(t) as u64;
        *v = v.wrapping_add(offset);
    }
    Ok(torus
        .into_iter()
        .map(|v| compress(v, plan.compressed_bits))
        .collect())
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
    /// Joint decryption of the whole plaintext of `ct`.
    pub fn new(ct: &'a Ciphertext, plan: SmudgingPlan) -> Result<Self, MheError> {
        Ok(Self {
            released: Released::whole(ct, &plan)?,
            plan,
        })
    }

    /// Joint decryption of the constant coefficient alone of each of `cts`
    /// ([`Extent::Constants`]): the output's coefficient `j` is `cts[j]`'s `m_0`.
    pub fn constants(cts: &'a [Ciphertext], plan: SmudgingPlan) -> Result<Self, MheError> {
        Ok(Self {
            released: Released::constants(cts, &plan)?,
            plan,
        })
    }

    pub fn plan(&self) -> &SmudgingPlan {
        &self.plan
    }

    /// This party's share with `noise[j]` added to the `j`-th released coefficient: the
    /// output decrypts to `m_j` plus the sum of every party's `noise[j]`. A party adds its
    /// own share of a differentially private release's noise this way, inside the smudged
    /// share, where no one can take it out.
    pub fn share_with_noise(
        &self,
        sk: &SecretKey,
        party: PartyId,
        noise: &[i64],
    ) -> Result<DecryptionShare, MheError> {
        let released = &self.released;
        let params = released.params();
        Ok(DecryptionShare {
            params: params.clone(),
            party,
            ciphertext: released.tag,
            level: self.plan.level as u8,
            smudging_bits: self.plan.bits as u8,
            compressed_bits: self.plan.compressed_bits as u8,
            extent: released.extent,
            values: smudged_compressed(
                params,
                released.secret_product(sk, None)?,
                &self.plan,
                released.extent,
                noise,
            )?,
        })
    }
}

impl Protocol for CollectiveDecryption<'_> {
    type Share = DecryptionShare;
    type Aggregate = DecryptionAggregate;
    type Output = Plaintext;

    /// `h_i = s_i·c_1 + e_i`, smudged and compressed.
    fn share(&self, sk: &SecretKey, party: PartyId) -> Result<DecryptionShare, MheError> {
        self.share_with_noise(sk, party, &[])
    }

    fn aggregator(&self) -> DecryptionAggregate {
        let params = self.released.params();
        DecryptionAggregate {
            params: params.clone(),
            ciphertext: self.released.tag,
            compressed_bits: self.plan.compressed_bits,
            sum: vec![0; self.released.extent.len(params.degree())],
            parties: Participants::default(),
        }
    }

    /// `m = round(t·(c_0/Q + h/2^d)) mod t`, only from exactly the `expected` parties' shares;
    /// of [`Extent::Constants`], a plaintext whose coefficients past the `k` constants are 0.
    fn finish(
        &self,
        aggregate: &DecryptionAggregate,
        expected: &[PartyId],
    ) -> Result<Plaintext, MheError> {
        if aggregate.ciphertext != self.released.tag {
            return Err(MheError::WrongCiphertext {
                party: aggregate.parties.iter().next().unwrap_or(PartyId(0)),
            });
        }
        aggregate.parties.check_exactly(expected)?;
        let params = self.released.params();
        let shift = 64 - aggregate.compressed_bits;
        let mut torus = to_torus(params.ring(), &self.released.c0());
        torus.truncate(aggregate.sum.len());
        for (x, &h) in torus.iter_mut().zip(&aggregate.sum) {
            *x = x.wrapping_add(h << shift);
        }
        let mut coeffs = torus_to_modulus(&torus, params.plaintext_modulus());
        coeffs.resize(params.degree(), 0);
        Ok(Plaintext::from_coefficients(
            params,
            coeffs,
            self.released.range(),
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
            + 3
            + self.extent.wire_len()
            + packed_len(self.values.len(), self.compressed_bits as u32)
            + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = WireWriter::new(Kind::DecryptionShare, &self.params, self.serialized_len());
        w.u32(self.party.0)
            .bytes(&self.ciphertext)
            .u8(self.level)
            .u8(self.smudging_bits)
            .u8(self.compressed_bits);
        self.extent.write(&mut w);
        w.packed(&self.values, self.compressed_bits as u32);
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
        let extent = Extent::read(&mut r, params.degree())?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use concord_bfv::params;

    /// A share's extent is read from the wire and bounded: no constants, or more than the
    /// ring has coefficients, is refused before any value is read.
    #[test]
    fn a_share_naming_zero_or_too_many_constants_is_refused() {
        let params = BfvParameters::new(params::spec_by_name("ADD-4096").unwrap()).unwrap();
        let n = params.degree();
        let share = |k: usize| DecryptionShare {
            params: params.clone(),
            party: PartyId(1),
            ciphertext: [0; 16],
            level: 1,
            smudging_bits: 40,
            compressed_bits: 50,
            extent: Extent::Constants(k),
            values: vec![0; k.min(n + 1)],
        };
        let good = share(3);
        assert_eq!(
            DecryptionShare::from_bytes(&params, &good.to_bytes()).unwrap(),
            good
        );
        for k in [0, n + 1] {
            let err = DecryptionShare::from_bytes(&params, &share(k).to_bytes()).unwrap_err();
            assert!(
                err.to_string()
                    .contains("constant coefficients in a ring of degree"),
                "{k}: {err}"
            );
        }
    }
}
