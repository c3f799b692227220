//! The signed evidence of aggregate verification (DESIGN.md §5; the fingerprint and its
//! soundness argument are in `concord-mhe` `fingerprint`): what a node signs about its
//! contribution, how the challenge is derived from what was committed, and the checks a node
//! runs on the evidence the coordinator presents with an aggregate to decrypt.
//!
//! - A **commitment** is a node's signature, with its certificate's key, over the query
//!   ([`QueryBinding`]: its id and a digest of its protobuf encoding, signature included) and
//!   the SHA-256 [`digest`] of its serialized contribution. It names the node (the certificate) and binds the contribution to
//!   this query: replayed into another query, or presented under another node's name, it
//!   does not verify.
//! - The **challenge seed** is SHA-256 over the query id, the aggregate's digest and every
//!   commitment (digest and signature, in the order given): fixed only once all of them are.
//! - A **signed fingerprint** is a node's signature over the query id, the seed and its
//!   contribution's values at the challenge.
//!
//! Every message is domain-separated and length-prefixed, so no signature of one kind verifies
//! as another.

use crate::pki::{Identity, PkiError, Role};
use crate::submission::{sign_bytes, verify_signed};
use crate::v1::{Commitment, QuerySpec, SignedFingerprint};
use prost::Message;
use sha2::{Digest, Sha256};

const COMMITMENT: &[u8] = b"concord/contribution-commitment/v1\0";
const FINGERPRINT: &[u8] = b"concord/contribution-fingerprint/v1\0";
const CHALLENGE: &[u8] = b"concord/fingerprint-challenge/v1\0";
const DIGEST: &[u8] = b"concord/ciphertexts/v1\0";

fn framed(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

/// SHA-256 over serialized ciphertexts, in order: a contribution's or an aggregate's digest.
pub fn digest<B: AsRef<[u8]>>(ciphertexts: &[B]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DIGEST);
    h.update((ciphertexts.len() as u64).to_le_bytes());
    for ct in ciphertexts {
        framed(&mut h, ct.as_ref());
    }
    h.finalize().into()
}

fn fingerprint_message(query: &QueryBinding, seed: &[u8; 32], values: &[u64]) -> Vec<u8> {
    let mut m = FINGERPRINT.to_vec();
    m.extend_from_slice(&query.binding);
    m.extend_from_slice(seed);
    m.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m
}

/// One query, as everything the evidence is bound to: its id and a digest of the query as
/// proposed (hashed once, since a query carries the researcher's public key).
#[derive(Clone, Debug)]
pub struct QueryBinding {
    id: String,
    binding: [u8; 32],
}

impl QueryBinding {
    pub fn new(query_id: &str, spec: &QuerySpec) -> Self {
        let mut h = Sha256::new();
        framed(&mut h, query_id.as_bytes());
        framed(&mut h, &spec.encode_to_vec());
        Self {
            id: query_id.into(),
            binding: h.finalize().into(),
        }
    }

    fn commitment_message(&self, digest: &[u8]) -> Vec<u8> {
        [COMMITMENT, &self.binding, digest].concat()
    }

    /// A node's commitment to its contribution (`digest` from [`digest`]), signed with its
    /// key.
    pub fn commit(
        &self,
        key_pem: &str,
        certificate_der: &[u8],
        digest: [u8; 32],
    ) -> Result<Commitment, PkiError> {
        Ok(Commitment {
            certificate: certificate_der.to_vec(),
            digest: digest.to_vec(),
            signature: sign_bytes(key_pem, &self.commitment_message(&digest))?,
        })
    }

    /// Checks a commitment: a node certificate of the deployment's CA, signing this query and
    /// digest. Returns the node's identity.
    pub fn verify_commitment(
        &self,
        ca_pem: &str,
        commitment: &Commitment,
    ) -> Result<Identity, PkiError> {
        if commitment.digest.len() != 32 {
            return Err(PkiError::Certificate(format!(
                "a commitment's digest has {} bytes, not 32",
                commitment.digest.len()
            )));
        }
        verify_signed(
            ca_pem,
            &commitment.certificate,
            Role::Node,
            &self.commitment_message(&commitment.digest),
            &commitment.signature,
        )
    }

    /// The challenge seed: SHA-256 over the query, the aggregate's digest and every
    /// commitment.
    pub fn challenge_seed(&self, aggregate_digest: &[u8], commitments: &[Commitment]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(CHALLENGE);
        h.update(self.binding);
        framed(&mut h, aggregate_digest);
        h.update((commitments.len() as u64).to_le_bytes());
        for c in commitments {
            framed(&mut h, &c.certificate);
            framed(&mut h, &c.digest);
            framed(&mut h, &c.signature);
        }
        h.finalize().into()
    }

    /// A node's fingerprint values at the challenge `seed`, signed with its key.
    pub fn sign_fingerprint(
        &self,
        key_pem: &str,
        seed: &[u8; 32],
        values: Vec<u64>,
    ) -> Result<SignedFingerprint, PkiError> {
        let signature = sign_bytes(key_pem, &fingerprint_message(self, seed, &values))?;
        Ok(SignedFingerprint { values, signature })
    }

    /// Checks that the node of `commitment` (already verified) signed `fingerprint` for this
    /// query and seed.
    pub fn verify_fingerprint(
        &self,
        ca_pem: &str,
        seed: &[u8; 32],
        commitment: &Commitment,
        fingerprint: &SignedFingerprint,
    ) -> Result<Identity, PkiError> {
        verify_signed(
            ca_pem,
            &commitment.certificate,
            Role::Node,
            &fingerprint_message(self, seed, &fingerprint.values),
            &fingerprint.signature,
        )
    }

    pub fn query_id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;
    use crate::submission::certificate_der;

    #[test]
    fn commitments_bind_node_query_and_digest_and_fingerprints_bind_the_seed() {
        let ca = DevCa::generate("ca").unwrap();
        let node = ca.issue(Role::Node, "node-1", &["localhost"]).unwrap();
        let der = certificate_der(&node.certificate_pem).unwrap();
        let spec = QuerySpec {
            template: "time-to-publish".into(),
            template_version: 1,
            ..Default::default()
        };
        let q1 = QueryBinding::new("q1", &spec);
        let d = digest(&[vec![1u8, 2, 3], vec![4]]);
        assert_ne!(d, digest(&[vec![1u8, 2], vec![3, 4]]), "framing");
        let c = q1.commit(&node.key_pem, &der, d).unwrap();
        let who = q1.verify_commitment(ca.certificate_pem(), &c).unwrap();
        assert_eq!(who.name, "node-1");
        // replayed into another query, another query text, another digest
        let q2 = QueryBinding::new("q2", &spec);
        assert!(q2.verify_commitment(ca.certificate_pem(), &c).is_err());
        let mut wider = spec.clone();
        wider.window_months = 99;
        let q1_wider = QueryBinding::new("q1", &wider);
        assert!(q1_wider
            .verify_commitment(ca.certificate_pem(), &c)
            .is_err());
        let mut other = c.clone();
        other.digest[0] ^= 1;
        assert!(q1.verify_commitment(ca.certificate_pem(), &other).is_err());
        // a key outside the deployment, and a researcher's certificate
        let foreign = DevCa::generate("other").unwrap();
        let mallory = foreign.issue(Role::Node, "node-1", &["localhost"]).unwrap();
        let mallory_der = certificate_der(&mallory.certificate_pem).unwrap();
        let forged = q1.commit(&mallory.key_pem, &mallory_der, d).unwrap();
        let err = q1
            .verify_commitment(ca.certificate_pem(), &forged)
            .unwrap_err();
        assert!(err.to_string().contains("not issued"), "{err}");
        let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
        let alice_der = certificate_der(&alice.certificate_pem).unwrap();
        let by_researcher = q1.commit(&alice.key_pem, &alice_der, d).unwrap();
        assert!(q1
            .verify_commitment(ca.certificate_pem(), &by_researcher)
            .is_err());

        // the seed depends on every commitment and on the aggregate
        let seed = q1.challenge_seed(&[7; 32], std::slice::from_ref(&c));
        assert_ne!(seed, q1.challenge_seed(&[8; 32], std::slice::from_ref(&c)));
        assert_ne!(seed, q1.challenge_seed(&[7; 32], &[c.clone(), c.clone()]));
        assert_ne!(seed, q2.challenge_seed(&[7; 32], std::slice::from_ref(&c)));
        let f = q1
            .sign_fingerprint(&node.key_pem, &seed, vec![5, 6])
            .unwrap();
        q1.verify_fingerprint(ca.certificate_pem(), &seed, &c, &f)
            .unwrap();
        let mut changed = f.clone();
        changed.values[1] = 7;
        assert!(q1
            .verify_fingerprint(ca.certificate_pem(), &seed, &c, &changed)
            .is_err());
        assert!(q1
            .verify_fingerprint(ca.certificate_pem(), &[0; 32], &c, &f)
            .is_err());
        // a commitment signature is not a fingerprint signature
        let as_fingerprint = SignedFingerprint {
            values: vec![],
            signature: c.signature.clone(),
        };
        assert!(q1
            .verify_fingerprint(ca.certificate_pem(), &seed, &c, &as_fingerprint)
            .is_err());
    }
}
