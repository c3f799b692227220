//! The signed evidence of aggregate verification (DESIGN.md §5; the fingerprint and its
//! soundness argument are in `concord-mhe` `fingerprint`): what a node signs about its
//! contribution, how the challenge is derived from what was committed, and the checks a node
//! runs on the evidence the coordinator presents with an aggregate to decrypt.
//!
//! - A **commitment** is a node's signature, with its certificate's key, over the query id, the
//!   query (its protobuf encoding, signature included) and the SHA-256 [`digest`] of its
//!   serialized contribution. It names the node (the certificate) and binds the contribution to
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

fn commitment_message(query_id: &str, spec: &QuerySpec, digest: &[u8]) -> Vec<u8> {
    let mut m = COMMITMENT.to_vec();
    for part in [query_id.as_bytes(), &spec.encode_to_vec(), digest] {
        m.extend_from_slice(&(part.len() as u64).to_le_bytes());
        m.extend_from_slice(part);
    }
    m
}

fn fingerprint_message(query_id: &str, seed: &[u8; 32], values: &[u64]) -> Vec<u8> {
    let mut m = FINGERPRINT.to_vec();
    m.extend_from_slice(&(query_id.len() as u64).to_le_bytes());
    m.extend_from_slice(query_id.as_bytes());
    m.extend_from_slice(seed);
    m.extend_from_slice(&(values.len() as u64).to_le_bytes());
    for v in values {
        m.extend_from_slice(&v.to_le_bytes());
    }
    m
}

/// A node's commitment to its contribution (`digest` from [`digest`]), signed with its key.
pub fn commit(
    key_pem: &str,
    certificate_der: &[u8],
    query_id: &str,
    spec: &QuerySpec,
    digest: [u8; 32],
) -> Result<Commitment, PkiError> {
    Ok(Commitment {
        certificate: certificate_der.to_vec(),
        digest: digest.to_vec(),
        signature: sign_bytes(key_pem, &commitment_message(query_id, spec, &digest))?,
    })
}

/// Checks a commitment: a node certificate of the deployment's CA, signing this query and
/// digest. Returns the node's identity.
pub fn verify_commitment(
    ca_pem: &str,
    query_id: &str,
    spec: &QuerySpec,
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
        &commitment_message(query_id, spec, &commitment.digest),
        &commitment.signature,
    )
}

/// The challenge seed: SHA-256 over the query id, the aggregate's digest and every commitment.
pub fn challenge_seed(
    query_id: &str,
    aggregate_digest: &[u8],
    commitments: &[Commitment],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(CHALLENGE);
    framed(&mut h, query_id.as_bytes());
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
    key_pem: &str,
    query_id: &str,
    seed: &[u8; 32],
    values: Vec<u64>,
) -> Result<SignedFingerprint, PkiError> {
    let signature = sign_bytes(key_pem, &fingerprint_message(query_id, seed, &values))?;
    Ok(SignedFingerprint { values, signature })
}

/// Checks that the node of `commitment` (already verified) signed `fingerprint` for this
/// query and seed.
pub fn verify_fingerprint(
    ca_pem: &str,
    query_id: &str,
    seed: &[u8; 32],
    commitment: &Commitment,
    fingerprint: &SignedFingerprint,
) -> Result<Identity, PkiError> {
    verify_signed(
        ca_pem,
        &commitment.certificate,
        Role::Node,
        &fingerprint_message(query_id, seed, &fingerprint.values),
        &fingerprint.signature,
    )
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
        let d = digest(&[vec![1u8, 2, 3], vec![4]]);
        assert_ne!(d, digest(&[vec![1u8, 2], vec![3, 4]]), "framing");
        let c = commit(&node.key_pem, &der, "q1", &spec, d).unwrap();
        let who = verify_commitment(ca.certificate_pem(), "q1", &spec, &c).unwrap();
        assert_eq!(who.name, "node-1");
        // replayed into another query, another query text, another digest
        assert!(verify_commitment(ca.certificate_pem(), "q2", &spec, &c).is_err());
        let mut wider = spec.clone();
        wider.window_months = 99;
        assert!(verify_commitment(ca.certificate_pem(), "q1", &wider, &c).is_err());
        let mut other = c.clone();
        other.digest[0] ^= 1;
        assert!(verify_commitment(ca.certificate_pem(), "q1", &spec, &other).is_err());
        // a key outside the deployment, and a researcher's certificate
        let foreign = DevCa::generate("other").unwrap();
        let mallory = foreign.issue(Role::Node, "node-1", &["localhost"]).unwrap();
        let forged = commit(
            &mallory.key_pem,
            &certificate_der(&mallory.certificate_pem).unwrap(),
            "q1",
            &spec,
            d,
        )
        .unwrap();
        let err = verify_commitment(ca.certificate_pem(), "q1", &spec, &forged).unwrap_err();
        assert!(err.to_string().contains("not issued"), "{err}");
        let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
        let by_researcher = commit(
            &alice.key_pem,
            &certificate_der(&alice.certificate_pem).unwrap(),
            "q1",
            &spec,
            d,
        )
        .unwrap();
        assert!(verify_commitment(ca.certificate_pem(), "q1", &spec, &by_researcher).is_err());

        // the seed depends on every commitment and on the aggregate
        let seed = challenge_seed("q1", &[7; 32], std::slice::from_ref(&c));
        assert_ne!(
            seed,
            challenge_seed("q1", &[8; 32], std::slice::from_ref(&c))
        );
        assert_ne!(
            seed,
            challenge_seed("q1", &[7; 32], &[c.clone(), c.clone()])
        );
        let f = sign_fingerprint(&node.key_pem, "q1", &seed, vec![5, 6]).unwrap();
        verify_fingerprint(ca.certificate_pem(), "q1", &seed, &c, &f).unwrap();
        let mut changed = f.clone();
        changed.values[1] = 7;
        assert!(verify_fingerprint(ca.certificate_pem(), "q1", &seed, &c, &changed).is_err());
        assert!(verify_fingerprint(ca.certificate_pem(), "q1", &[0; 32], &c, &f).is_err());
        // a commitment signature is not a fingerprint signature
        let as_fingerprint = SignedFingerprint {
            values: vec![],
            signature: c.signature.clone(),
        };
        assert!(
            verify_fingerprint(ca.certificate_pem(), "q1", &seed, &c, &as_fingerprint).is_err()
        );
    }
}
