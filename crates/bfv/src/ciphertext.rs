//! BFV ciphertexts: encryption under a public or secret key, exact decryption, a noise-budget
//! measurement, additive evaluation, and modulus switching.
//!
//! A ciphertext `(c_0, c_1)` at level ℓ decrypts as `m = round(t·[c_0 + c_1·s]_{Q_ℓ} / Q_ℓ) mod t`
//! (computed through the torus map of `concord_ring::torus`). The message enters `c_0` as
//! `round(Q_ℓ·m/t)` ([`Plaintext`]'s scaling), so modulus switching and plaintext products
//! keep it exact. Polynomials rest in coefficient form (what modulus switching, sums and the
//! wire need); products convert on the fly.

use crate::error::BfvError;
use crate::keys::{PublicKey, SecretKey};
use crate::params::BfvParameters;
use crate::plaintext::{Plaintext, ValueRange};
use crate::wire::{poly_len, Kind, WireError, WireReader, WireWriter, CHECKSUM_LEN, HEADER_LEN};
use concord_ring::sampling::{gaussian, secret_rng, ternary, uniform_poly};
use concord_ring::torus::{to_torus, torus_to_modulus};
use concord_ring::{Poly, Representation};
use num_bigint::BigInt;
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// A BFV ciphertext `(c_0, c_1, …, c_k)` of degree `k` (1 when fresh; a ciphertext product has
/// degree 2 until relinearized — engine part 2), decrypting as `Σ c_i·s^i`, with the public
/// range of the values it holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Ciphertext {
    pub(crate) params: Arc<BfvParameters>,
    /// `c_0, c_1, …`, coefficient form, all at one level.
    pub(crate) parts: Vec<Poly>,
    pub(crate) range: ValueRange,
}

impl std::fmt::Debug for Ciphertext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ciphertext")
            .field("params", &self.params.name())
            .field("level", &self.level())
            .field("degree", &self.degree())
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// A short identifier of a ciphertext: SHA-256 over its level, range and a prefix of `c_1`'s
/// residues. `c_1` is pseudorandom, so this tells ciphertexts apart and lets a share be matched
/// to the ciphertext it was made for; binding against a malicious party is the job of the
/// signed digests of the full serialization, one layer up.
pub type CiphertextTag = [u8; 16];

/// The highest ciphertext degree accepted (a product of two degree-1 ciphertexts before
/// relinearization).
pub const MAX_DEGREE: usize = 2;

impl PublicKey {
    /// `c = (p·u + e_0 + round(Q·m/t), a·u + e_1)` with `u` ternary, `e_0, e_1 ← χ`, at the top level.
    pub fn encrypt(&self, pt: &Plaintext) -> Result<Ciphertext, BfvError> {
        check_same_params(&self.params, &pt.params)?;
        let params = &self.params;
        let ring = params.ring();
        let level = params.max_level();
        let mut rng = secret_rng();
        let u = ternary(ring.degree(), &mut rng);
        let mut u = Poly::from_small(ring, level, &u);
        u.to_ntt(ring);
        let mut c0 = Poly::product_to_coefficients(ring, &self.p, &u);
        let mut c1 = Poly::product_to_coefficients(ring, &self.a, &u);
        zeroize::Zeroize::zeroize(&mut u);
        let e0 = gaussian(ring.degree(), &mut rng);
        let e1 = gaussian(ring.degree(), &mut rng);
        c0.add_small_assign(ring, &e0);
        c0.add_assign(ring, &pt.scaled(level));
        c1.add_small_assign(ring, &e1);
        Ok(Ciphertext {
            params: params.clone(),
            parts: vec![c0, c1],
            range: pt.range,
        })
    }
}

impl SecretKey {
    /// `c = (−a·s + e + round(Q·m/t), a)` with `a` uniform, at the top level.
    pub fn encrypt(&self, pt: &Plaintext) -> Result<Ciphertext, BfvError> {
        check_same_params(self.params(), &pt.params)?;
        let params = self.params();
        let ring = params.ring();
        let level = params.max_level();
        let mut rng = secret_rng();
        let a = uniform_poly(ring, level, &mut rng);
        let mut c0 = Poly::product_to_coefficients(ring, &a, self.poly());
        c0.neg_assign(ring);
        c0.add_small_assign(ring, &gaussian(ring.degree(), &mut rng));
        c0.add_assign(ring, &pt.scaled(level));
        let mut c1 = a;
        c1.to_coefficients(ring);
        Ok(Ciphertext {
            params: params.clone(),
            parts: vec![c0, c1],
            range: pt.range,
        })
    }

    /// `[c_0 + c_1·s + c_2·s² + …]_{Q_ℓ}`, coefficient form (Horner in NTT form).
    fn phase(&self, ct: &Ciphertext) -> Result<Poly, BfvError> {
        check_same_params(self.params(), &ct.params)?;
        let ring = ct.params.ring();
        let (c0, higher) = ct
            .parts
            .split_first()
            .expect("a ciphertext has two parts or more");
        let mut acc = higher.last().expect("degree ≥ 1").clone();
        acc.to_ntt(ring);
        for c in higher.iter().rev().skip(1) {
            acc.mul_assign(ring, self.poly());
            let mut c = c.clone();
            c.to_ntt(ring);
            acc.add_assign(ring, &c);
        }
        acc.mul_assign_to_coefficients(ring, self.poly());
        acc.add_assign(ring, c0);
        Ok(acc)
    }

    /// The plaintext: `m = round(t·[c_0 + c_1·s]/Q) mod t`.
    pub fn decrypt(&self, ct: &Ciphertext) -> Result<Plaintext, BfvError> {
        let x = self.phase(ct)?;
        let coeffs = torus_to_modulus(
            &to_torus(ct.params.ring(), &x),
            ct.params.plaintext_modulus(),
        );
        Ok(Plaintext::from_coefficients(&ct.params, coeffs, ct.range))
    }

    /// The noise budget in bits: `log2(Q/(2t)) − log2(‖e‖_∞)` where
    /// `e = [c_0 + c_1·s − round(Q·m/t)]_Q`. Decryption is exact while it is positive. Exact
    /// big-integer arithmetic: for tests and diagnostics, not for hot paths.
    pub fn noise_budget(&self, ct: &Ciphertext) -> Result<f64, BfvError> {
        Ok(ct.params.ring().log_modulus(ct.level())
            - (ct.params.plaintext_modulus() as f64).log2()
            - 1.0
            - self.noise_bits(ct)?)
    }

    /// `log2(‖e‖_∞)` of the noise `e` (0 for zero noise).
    pub fn noise_bits(&self, ct: &Ciphertext) -> Result<f64, BfvError> {
        let pt = self.decrypt(ct)?;
        let ring = ct.params.ring();
        let mut e = self.phase(ct)?;
        e.sub_assign(ring, &pt.scaled(ct.level()));
        let max = e
            .lift_centered(ring)
            .into_iter()
            .map(|c| if c < BigInt::from(0) { -c } else { c })
            .max()
            .unwrap_or_default();
        Ok(if max == BigInt::from(0) {
            0.0
        } else {
            max.bits() as f64 - 1.0 + frac_log2(&max)
        })
    }
}

fn frac_log2(x: &BigInt) -> f64 {
    // log2 of the mantissa of x in [1, 2)
    let bits = x.bits();
    let top: BigInt = if bits > 53 {
        x >> (bits - 53)
    } else {
        x.clone()
    };
    let top: f64 = top.to_string().parse().unwrap_or(1.0);
    let exp = bits.min(53) as i32 - 1;
    (top / 2f64.powi(exp)).log2()
}

pub fn check_same_params(a: &Arc<BfvParameters>, b: &Arc<BfvParameters>) -> Result<(), BfvError> {
    if Arc::ptr_eq(a, b) || a.id() == b.id() {
        Ok(())
    } else {
        Err(BfvError::ParameterMismatch {
            left: a.name(),
            right: b.name(),
        })
    }
}

impl Ciphertext {
    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }

    pub fn level(&self) -> usize {
        self.parts[0].level()
    }

    /// The degree `k` of `(c_0, …, c_k)`: 1 for fresh and linearly combined ciphertexts.
    pub fn degree(&self) -> usize {
        self.parts.len() - 1
    }

    /// The public range of every slot's value.
    pub fn range(&self) -> ValueRange {
        self.range
    }

    /// `c_0`, coefficient form.
    pub fn c0(&self) -> &Poly {
        &self.parts[0]
    }

    /// `c_1`, coefficient form.
    pub fn c1(&self) -> &Poly {
        &self.parts[1]
    }

    /// All parts `c_0, …, c_k`, coefficient form.
    pub fn parts(&self) -> &[Poly] {
        &self.parts
    }

    /// A ciphertext from its parts `c_0, c_1, …` (same level, any representation) — e.g. a
    /// key-switched result.
    pub fn from_parts(
        params: &Arc<BfvParameters>,
        mut parts: Vec<Poly>,
        range: ValueRange,
    ) -> Self {
        assert!(parts.len() >= 2, "a ciphertext has two parts or more");
        assert!(
            parts.iter().all(|p| p.level() == parts[0].level()),
            "parts at different levels"
        );
        for p in &mut parts {
            p.to_coefficients(params.ring());
        }
        Self {
            params: params.clone(),
            parts,
            range,
        }
    }

    fn compatible(&self, other: &Ciphertext) -> Result<(), BfvError> {
        check_same_params(&self.params, &other.params)?;
        if self.level() != other.level() {
            return Err(BfvError::LevelMismatch {
                left: self.level(),
                right: other.level(),
            });
        }
        Ok(())
    }

    /// `self ← self + other`; refused if the sum's range no longer fits `t`.
    pub fn add_assign(&mut self, other: &Ciphertext) -> Result<(), BfvError> {
        self.compatible(other)?;
        let range = self
            .range
            .add(other.range)
            .checked("add", self.params.plaintext_modulus())?;
        self.combine(other, |ring, a, b| a.add_assign(ring, b));
        self.range = range;
        Ok(())
    }

    /// `self ← self − other`; refused if the difference's range no longer fits `t`.
    pub fn sub_assign(&mut self, other: &Ciphertext) -> Result<(), BfvError> {
        self.compatible(other)?;
        let range = self
            .range
            .add(other.range.neg())
            .checked("sub", self.params.plaintext_modulus())?;
        self.combine(other, |ring, a, b| a.sub_assign(ring, b));
        self.range = range;
        Ok(())
    }

    /// Part-wise `self_i ← op(self_i, other_i)`, a missing part counting as zero (degrees may
    /// differ once ciphertext products exist).
    pub(crate) fn combine(
        &mut self,
        other: &Ciphertext,
        op: impl Fn(&concord_ring::RnsContext, &mut Poly, &Poly),
    ) {
        let ring = self.params.ring();
        while self.parts.len() < other.parts.len() {
            self.parts
                .push(Poly::zero(ring, self.level(), Representation::Coefficient));
        }
        for (a, b) in self.parts.iter_mut().zip(&other.parts) {
            op(ring, a, b);
        }
    }

    /// `self ← self + other` modulo `t`, the range left to the caller (circuits over `Z_t`).
    pub(crate) fn add_unchecked(&mut self, other: &Ciphertext) {
        self.combine(other, |ring, a, b| a.add_assign(ring, b));
    }

    /// `self ← −self`.
    pub fn neg_assign(&mut self) {
        let ring = self.params.ring();
        for c in &mut self.parts {
            c.neg_assign(ring);
        }
        self.range = self.range.neg();
    }

    /// `self ← self + pt` (slot-wise).
    pub fn add_plain_assign(&mut self, pt: &Plaintext) -> Result<(), BfvError> {
        check_same_params(&self.params, &pt.params)?;
        let range = self
            .range
            .add(pt.range)
            .checked("add_plain", self.params.plaintext_modulus())?;
        let scaled = pt.scaled(self.level());
        self.parts[0].add_assign(self.params.ring(), &scaled);
        self.range = range;
        Ok(())
    }

    /// `self ← self − pt` (slot-wise).
    pub fn sub_plain_assign(&mut self, pt: &Plaintext) -> Result<(), BfvError> {
        check_same_params(&self.params, &pt.params)?;
        let range = self
            .range
            .add(pt.range.neg())
            .checked("sub_plain", self.params.plaintext_modulus())?;
        let scaled = pt.scaled(self.level());
        self.parts[0].sub_assign(self.params.ring(), &scaled);
        self.range = range;
        Ok(())
    }

    /// `self ← self · pt` (slot-wise product). The noise grows by about `N·t/2`.
    pub fn mul_plain_assign(&mut self, pt: &Plaintext) -> Result<(), BfvError> {
        check_same_params(&self.params, &pt.params)?;
        let range = self
            .range
            .mul(pt.range)
            .checked("mul_plain", self.params.plaintext_modulus())?;
        let ring = self.params.ring();
        let m = pt.lifted_ntt(self.level());
        for c in &mut self.parts {
            c.to_ntt(ring);
            *c = Poly::product_to_coefficients(ring, c, &m);
        }
        self.range = range;
        Ok(())
    }

    /// The sum of ciphertexts (at least one), with the range checked once for the whole sum.
    pub fn sum<'a>(cts: impl IntoIterator<Item = &'a Ciphertext>) -> Result<Ciphertext, BfvError> {
        let mut it = cts.into_iter();
        let mut acc = it.next().expect("sum of no ciphertexts").clone();
        for ct in it {
            acc.add_assign(ct)?;
        }
        Ok(acc)
    }

    /// Modulus switching to a lower level: `c_i ↦ round(Q_ℓ'/Q_ℓ · c_i)`, dropping moduli one at a
    /// time. Shrinks the ciphertext and its absolute noise (to about the rounding noise
    /// `½·(1 + ‖s‖_1)`); done before a ciphertext is sent.
    pub fn switch_to_level(&mut self, level: usize) -> Result<(), BfvError> {
        if level == 0 || level > self.level() {
            return Err(BfvError::Level {
                level,
                from: self.level(),
            });
        }
        let ring = self.params.ring();
        while self.level() > level {
            for c in &mut self.parts {
                c.drop_last_modulus_rounding(ring);
            }
        }
        Ok(())
    }

    /// Switch to the parameter set's transmit level.
    pub fn switch_to_transmit_level(&mut self) -> Result<(), BfvError> {
        self.switch_to_level(self.params.transmit_level())
    }

    /// See [`CiphertextTag`].
    pub fn tag(&self) -> CiphertextTag {
        let mut h = Sha256::new();
        h.update(b"concord/ciphertext-tag/v1");
        h.update([self.level() as u8]);
        h.update(self.range.lo.to_le_bytes());
        h.update(self.range.hi.to_le_bytes());
        for j in 0..self.level() {
            for r in &self.parts[1].residues(j)[..64.min(self.params.degree())] {
                h.update(r.to_le_bytes());
            }
        }
        h.finalize()[..16].try_into().unwrap()
    }

    /// Bytes of the serialized form: header, level, degree, range, the packed parts, checksum.
    pub fn serialized_len(&self) -> usize {
        HEADER_LEN
            + 2
            + 32
            + self.parts.len() * poly_len(self.params.ring(), self.level())
            + CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let ring = self.params.ring();
        let mut w = WireWriter::new(Kind::Ciphertext, &self.params, self.serialized_len());
        w.u8(self.level() as u8)
            .u8(self.degree() as u8)
            .i128(self.range.lo)
            .i128(self.range.hi);
        for c in &self.parts {
            w.poly(ring, c);
        }
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, BfvError> {
        let mut r = WireReader::open(bytes, Kind::Ciphertext, params)?;
        let ring = params.ring();
        let level = r.level(ring)?;
        let degree = r.u8()? as usize;
        if !(1..=MAX_DEGREE).contains(&degree) {
            return Err(WireError::Malformed(format!(
                "ciphertext degree {degree} outside 1..={MAX_DEGREE}"
            ))
            .into());
        }
        let (lo, hi) = (r.i128()?, r.i128()?);
        let range = ValueRange::new(lo, hi)
            .and_then(|rg| rg.checked("decode", params.plaintext_modulus()))
            .map_err(|e| WireError::Malformed(format!("range: {e}")))?;
        let parts = (0..=degree)
            .map(|_| r.poly(ring, level, Representation::Coefficient))
            .collect::<Result<Vec<_>, _>>()?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            parts,
            range,
        })
    }
}
