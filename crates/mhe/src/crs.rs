//! The common reference string: a public 32-byte seed from which every party expands the same
//! uniformly random polynomials (`a` of CKG; the gadget vectors of RKG/GKG in engine part 2).
//! Each use is domain-separated by a label and by the parameter set, so one seed serves a whole
//! deployment.

use concord_bfv::BfvParameters;
use concord_ring::sampling::{seeded_rng, uniform_poly};
use concord_ring::Poly;
use sha2::{Digest, Sha256};

/// Identifier of a CRS carried by every share derived from it, so that shares from different
/// setups are never mixed.
pub type CrsId = [u8; 16];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommonReferenceString {
    seed: [u8; 32],
}

impl CommonReferenceString {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { seed }
    }

    /// A fresh random seed (the coordinator draws it at setup and publishes it).
    pub fn random() -> Self {
        use concord_ring::sampling::{secret_rng, RngCore};
        let mut seed = [0u8; 32];
        secret_rng().fill_bytes(&mut seed);
        Self { seed }
    }

    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    pub fn id(&self) -> CrsId {
        let mut h = Sha256::new();
        h.update(b"concord/crs-id/v1");
        h.update(self.seed);
        h.finalize()[..16].try_into().unwrap()
    }

    /// One uniform polynomial per key-switching gadget digit, in the key ring at the top, NTT
    /// form: the `a_j` of RKG (`label` `rkg/a`) or of GKG (`gkg/a`, `index` the Galois element).
    pub fn gadget_polynomials(
        &self,
        params: &BfvParameters,
        label: &[u8],
        index: u64,
    ) -> Vec<Poly> {
        let ring = params.key_ring();
        let mut domain = label.to_vec();
        domain.extend_from_slice(&params.id().to_le_bytes());
        let mut rng = seeded_rng(&self.seed, &domain, index);
        (0..params.gadget_length())
            .map(|_| uniform_poly(ring, ring.max_level(), &mut rng))
            .collect()
    }

    /// The CKG polynomial `a`, at the top level, NTT form.
    pub fn public_key_polynomial(&self, params: &BfvParameters) -> Poly {
        let mut rng = seeded_rng(&self.seed, b"ckg/a", params.id() as u64);
        uniform_poly(params.ring(), params.max_level(), &mut rng)
    }
}
