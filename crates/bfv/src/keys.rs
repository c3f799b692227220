//! Secret and public keys.
//!
//! A [`SecretKey`] is held in NTT form at the top level, zeroized on drop, never printed. In
//! Concord a party's key is a *share* `s_i` of the collective secret `s = Σ s_i` (see
//! `concord-mhe`); a single-party key (a researcher's, for receiving key-switched results) is
//! the same type. A [`PublicKey`] `(p, a)` satisfies `p + a·s = e` (small).

use crate::params::BfvParameters;
use crate::wire::{Kind, WireError, WireReader, WireWriter};
use concord_ring::sampling::{gaussian, secret_rng, ternary, uniform_poly};
use concord_ring::{Poly, Representation};
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// A secret key (or key share): `s` in NTT form over the key ring — the ciphertext moduli `Q`,
/// and the special moduli `P` of a multiplicative set, which key-switching keys need.
pub struct SecretKey {
    params: Arc<BfvParameters>,
    s: Poly,
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        self.s.zeroize();
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({}, <redacted>)", self.params.name())
    }
}

impl SecretKey {
    /// A fresh ternary secret from the operating system's CSPRNG.
    pub fn generate(params: &Arc<BfvParameters>) -> Self {
        let ring = params.key_ring();
        let coeffs = ternary(ring.degree(), &mut secret_rng());
        let mut s = Poly::from_small(ring, ring.max_level(), &coeffs);
        s.to_ntt(ring);
        Self {
            params: params.clone(),
            s,
        }
    }

    /// A key from a polynomial of the key ring ([`BfvParameters::key_ring`], any
    /// representation, top level) — e.g. a threshold party's key for an active set. The
    /// polynomial is consumed, so no copy of it lingers.
    pub fn from_poly(params: &Arc<BfvParameters>, mut s: Poly) -> Self {
        assert_eq!(
            s.level(),
            params.key_ring().max_level(),
            "a secret key lives at the top of the key ring"
        );
        s.to_ntt(params.key_ring());
        Self {
            params: params.clone(),
            s,
        }
    }

    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }

    /// `s` over the whole key ring, NTT form. Products modulo `Q_ℓ` accept it as a factor at
    /// any level (its first residues), so no truncated copy of a secret is ever made.
    pub fn poly(&self) -> &Poly {
        &self.s
    }

    /// For storage at the owning party only (files readable by its user alone). The buffer is
    /// zeroized when dropped.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let ring = self.params.key_ring();
        let mut w = WireWriter::new(
            Kind::SecretKey,
            &self.params,
            crate::wire::poly_len(ring, self.s.level()),
        );
        w.poly(ring, &self.s);
        Zeroizing::new(w.finish())
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = WireReader::open(bytes, Kind::SecretKey, params)?;
        let ring = params.key_ring();
        let s = r.poly(ring, ring.max_level(), Representation::Ntt)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            s,
        })
    }
}

/// A public key `(p, a) = (−s·a + e, a)`, both in NTT form at the top level.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub(crate) params: Arc<BfvParameters>,
    pub(crate) p: Poly,
    pub(crate) a: Poly,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.params.name())
    }
}

impl PublicKey {
    /// The public key of a single-party secret (e.g. a researcher's receiving key).
    pub fn generate(sk: &SecretKey) -> Self {
        let params = sk.params();
        let ring = params.ring();
        let mut rng = secret_rng();
        let a = uniform_poly(ring, params.max_level(), &mut rng);
        let e = gaussian(ring.degree(), &mut rng);
        let mut p = Poly::product_to_coefficients(ring, &a, sk.poly());
        p.neg_assign(ring);
        p.add_small_assign(ring, &e);
        p.to_ntt(ring);
        Self {
            params: params.clone(),
            p,
            a,
        }
    }

    /// A key from its two halves in NTT form at the top level (e.g. the output of CKG).
    pub fn from_parts(params: &Arc<BfvParameters>, p: Poly, a: Poly) -> Self {
        assert!(p.level() == params.max_level() && a.level() == params.max_level());
        assert!(
            p.representation() == Representation::Ntt && a.representation() == Representation::Ntt
        );
        Self {
            params: params.clone(),
            p,
            a,
        }
    }

    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }

    /// `(p, a)` at `level`, NTT form.
    pub fn at_level(&self, level: usize) -> (Poly, Poly) {
        let ring = self.params.ring();
        (self.p.truncated(ring, level), self.a.truncated(ring, level))
    }

    /// Whether the key looks like an RLWE public key: in every residue, at least half of the
    /// NTT evaluations of `p` and of `a` are distinct (a uniform polynomial's are, but for
    /// collisions of probability about `N²/q`). A zero or constant half — which would turn a
    /// key switch into a decryption anyone can finish, or leak the switch's randomness — is
    /// refused. This checks the form, not that someone holds the secret.
    pub fn is_well_formed(&self) -> bool {
        let degree = self.params.ring().degree();
        [&self.p, &self.a].iter().all(|half| {
            half.columns().iter().all(|column| {
                let mut values = column.to_vec();
                values.sort_unstable();
                values.dedup();
                values.len() * 2 >= degree
            })
        })
    }

    pub fn serialized_len(&self) -> usize {
        crate::wire::HEADER_LEN
            + 2 * crate::wire::poly_len(self.params.ring(), self.params.max_level())
            + crate::wire::CHECKSUM_LEN
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let ring = self.params.ring();
        let mut w = WireWriter::new(Kind::PublicKey, &self.params, self.serialized_len());
        w.poly(ring, &self.p).poly(ring, &self.a);
        w.finish()
    }

    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, WireError> {
        let mut r = WireReader::open(bytes, Kind::PublicKey, params)?;
        let ring = params.ring();
        let p = r.poly(ring, params.max_level(), Representation::Ntt)?;
        let a = r.poly(ring, params.max_level(), Representation::Ntt)?;
        r.finish()?;
        Ok(Self {
            params: params.clone(),
            p,
            a,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zero_or_constant_public_key_is_not_well_formed() {
        let params = BfvParameters::new(&crate::params::ADD_4096).unwrap();
        let ring = params.ring();
        let genuine = PublicKey::generate(&SecretKey::generate(&params));
        assert!(genuine.is_well_formed());
        let zero = || Poly::zero(ring, params.max_level(), Representation::Ntt);
        let mut five = vec![0i64; ring.degree()];
        five[0] = 5;
        let mut constant = Poly::from_small(ring, params.max_level(), &five);
        constant.to_ntt(ring);
        for (p, a) in [
            (zero(), zero()),
            (genuine.p.clone(), zero()),
            (zero(), genuine.a.clone()),
            (constant.clone(), genuine.a.clone()),
            (genuine.p.clone(), constant),
        ] {
            assert!(!PublicKey::from_parts(&params, p, a).is_well_formed());
        }
    }
}
