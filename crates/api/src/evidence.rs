//! The signed evidence of a query's contributions (DESIGN.md §5): what a node signs about its
//! contribution, and about the one list of contributions it agrees to see summed.
//!
//! - A **commitment** is a node's signature, with its certificate's key, over the query
//!   ([`QueryBinding`]: its id, a digest of its protobuf encoding, signature included, and the
//!   digest of the deployment whose pinned key it is encrypted under) and the SHA-256 [`digest`]
//!   of its serialized contribution. It names the node and binds the contribution to this query:
//!   replayed into another query, or presented under another node's name, it does not verify.
//! - The **roster** is the list of every contributor's commitment, fixed once every contributor
//!   has committed and before any contribution is revealed (commit before reveal: no
//!   contribution can be chosen after seeing another). Each contributor signs the one roster it
//!   saw, once per query; a node gives decryption shares only of the sum of exactly the roster it
//!   signed, presented with every listed contributor's signature, and computes that sum itself
//!   from contributions it checks against their commitments. So a coordinator cannot have a sum
//!   of its choosing decrypted, nor two different sums of one query (no two disjoint quorums).
//!
//! Every message is domain-separated and length-prefixed, so no signature of one kind verifies
//! as another.

use crate::pki::{Identity, PkiError, Role};
use crate::submission::{sign_bytes, verify_signed};
use crate::v1::{Commitment, QuerySpec};
use prost::Message;
use sha2::{Digest, Sha256};

const COMMITMENT: &[u8] = b"concord/contribution-commitment/v2\0";
const ROSTER: &[u8] = b"concord/contribution-roster/v1\0";
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

/// One query, as everything the evidence is bound to: its id, a digest of the query as
/// proposed (hashed once, since a query carries the researcher's public key) and the digest of
/// the deployment whose key it is encrypted under.
#[derive(Clone, Debug)]
pub struct QueryBinding {
    id: String,
    binding: [u8; 32],
}

impl QueryBinding {
    pub fn new(query_id: &str, spec: &QuerySpec, deployment: &[u8; 32]) -> Self {
        let mut h = Sha256::new();
        framed(&mut h, query_id.as_bytes());
        framed(&mut h, &spec.encode_to_vec());
        h.update(deployment);
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

    /// The roster's digest: SHA-256 over the query and every commitment (certificate, digest
    /// and signature), in order.
    pub fn roster_digest(&self, roster: &[Commitment]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(ROSTER);
        h.update(self.binding);
        h.update((roster.len() as u64).to_le_bytes());
        for c in roster {
            framed(&mut h, &c.certificate);
            framed(&mut h, &c.digest);
            framed(&mut h, &c.signature);
        }
        h.finalize().into()
    }

    /// A contributor's signature over the roster (its digest from [`Self::roster_digest`]).
    pub fn sign_roster(&self, key_pem: &str, roster: &[u8; 32]) -> Result<Vec<u8>, PkiError> {
        sign_bytes(key_pem, &[ROSTER, roster].concat())
    }

    /// Checks that the node of `commitment` signed the roster of digest `roster`.
    pub fn verify_roster(
        &self,
        ca_pem: &str,
        roster: &[u8; 32],
        commitment: &Commitment,
        signature: &[u8],
    ) -> Result<Identity, PkiError> {
        verify_signed(
            ca_pem,
            &commitment.certificate,
            Role::Node,
            &[ROSTER, roster].concat(),
            signature,
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
    fn commitments_bind_node_query_deployment_and_digest_and_rosters_bind_every_commitment() {
        let ca = DevCa::generate("ca").unwrap();
        let node = ca.issue(Role::Node, "node-1", &["localhost"]).unwrap();
        let der = certificate_der(&node.certificate_pem).unwrap();
        let spec = QuerySpec {
            template: "time-to-publish".into(),
            template_version: 1,
            ..Default::default()
        };
        let q1 = QueryBinding::new("q1", &spec, &[1; 32]);
        let d = digest(&[vec![1u8, 2, 3], vec![4]]);
        assert_ne!(d, digest(&[vec![1u8, 2], vec![3, 4]]), "framing");
        let c = q1.commit(&node.key_pem, &der, d).unwrap();
        let who = q1.verify_commitment(ca.certificate_pem(), &c).unwrap();
        assert_eq!(who.name, "node-1");
        // replayed into another query, another query text, another deployment, another digest
        let q2 = QueryBinding::new("q2", &spec, &[1; 32]);
        assert!(q2.verify_commitment(ca.certificate_pem(), &c).is_err());
        let mut wider = spec.clone();
        wider.window_months = 99;
        let q1_wider = QueryBinding::new("q1", &wider, &[1; 32]);
        assert!(q1_wider
            .verify_commitment(ca.certificate_pem(), &c)
            .is_err());
        let q1_elsewhere = QueryBinding::new("q1", &spec, &[2; 32]);
        assert!(q1_elsewhere
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

        // the roster's digest depends on every commitment, their order and the query
        let c2 = q1.commit(&node.key_pem, &der, [9; 32]).unwrap();
        let roster = q1.roster_digest(&[c.clone(), c2.clone()]);
        assert_ne!(roster, q1.roster_digest(&[c2.clone(), c.clone()]));
        assert_ne!(roster, q1.roster_digest(std::slice::from_ref(&c)));
        assert_ne!(roster, q2.roster_digest(&[c.clone(), c2.clone()]));
        let signature = q1.sign_roster(&node.key_pem, &roster).unwrap();
        q1.verify_roster(ca.certificate_pem(), &roster, &c, &signature)
            .unwrap();
        let other_roster = q1.roster_digest(std::slice::from_ref(&c));
        assert!(q1
            .verify_roster(ca.certificate_pem(), &other_roster, &c, &signature)
            .is_err());
        // a commitment's signature is no roster signature
        assert!(q1
            .verify_roster(ca.certificate_pem(), &roster, &c, &c.signature)
            .is_err());
    }
}
