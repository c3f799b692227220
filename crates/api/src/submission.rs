//! Signed submissions: a researcher signs the query they submit — template, window, minimum
//! number of institutions and, above all, the public key the result is to be sealed to — with
//! their certificate's private key. The coordinator relays the signature and the researcher's
//! certificate to every node with the proposal, and each node checks them itself (the
//! certificate chains to the deployment's CA, has the researcher role, and signed exactly this
//! query) before agreeing. So a coordinator cannot swap the recipient key for one of its own,
//! nor present a query as another researcher's.
//!
//! The signed message is SHA-256 over a domain label and the query's protobuf encoding with its
//! `signature` field empty (prost encodes a message's fields deterministically, in field
//! order). Signatures are ECDSA P-256 with SHA-256 (ASN.1 DER), the key type of the development
//! CA's certificates.

use crate::pki::{identity_of, Identity, PkiError, Role};
use crate::v1::QuerySpec;
use prost::Message;
use rcgen::{KeyPair, SigningKey};

const DOMAIN: &[u8] = b"concord/query-submission/v1\0";
const QUERY_ID: &[u8] = b"concord/query-id/v1\0";

/// How long a query stays valid when its researcher does not say (`expires_at`): a week.
pub const DEFAULT_VALIDITY: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
/// The longest validity a node accepts: 30 days.
pub const MAX_VALIDITY: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The id of a query: derived from the query as signed (nonce, expiry and signature
/// included), so one signed query has one id wherever it is proposed.
pub fn query_id(spec: &QuerySpec) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(QUERY_ID);
    h.update(spec.encode_to_vec());
    let digest = h.finalize();
    format!("q-{}", hex::encode(&digest[..8]))
}

/// Why a query's id or expiry is not acceptable at time `now`; `None` when they are.
pub fn check_binding(query_id: &str, spec: &QuerySpec, now: u64) -> Option<String> {
    let derived = self::query_id(spec);
    if query_id != derived {
        return Some(format!(
            "the query id {query_id:?} is not the one the signed query derives ({derived})"
        ));
    }
    if spec.expires_at == 0 {
        return Some("the query carries no expiry".into());
    }
    if spec.expires_at > now.saturating_add(MAX_VALIDITY.as_secs()) {
        return Some(format!(
            "the query expires more than {} days from now",
            MAX_VALIDITY.as_secs() / 86_400
        ));
    }
    None
}

/// The bytes a researcher signs for `spec` (its own `signature` field ignored).
pub fn signed_message(spec: &QuerySpec) -> Vec<u8> {
    let mut unsigned = spec.clone();
    unsigned.signature.clear();
    let mut message = DOMAIN.to_vec();
    message.extend_from_slice(&unsigned.encode_to_vec());
    message
}

/// Gives `spec` a fresh random nonce and, unless it has one, an expiry [`DEFAULT_VALIDITY`] from
/// now: what makes every query, and its id, one of a kind.
pub fn stamp(spec: &mut QuerySpec) {
    use rand_core::RngCore;
    let mut nonce = vec![0u8; 16];
    rand_core::OsRng.fill_bytes(&mut nonce);
    spec.nonce = nonce;
    if spec.expires_at == 0 {
        spec.expires_at = now() + DEFAULT_VALIDITY.as_secs();
    }
}

/// Signs `spec` with the researcher's private key (PEM) and stores the signature in it; a query
/// without a nonce is [`stamp`]ed first.
pub fn sign(spec: &mut QuerySpec, key_pem: &str) -> Result<(), PkiError> {
    if spec.nonce.is_empty() {
        stamp(spec);
    }
    spec.signature = sign_bytes(key_pem, &signed_message(spec))?;
    Ok(())
}

/// Checks that `certificate` (DER) was issued by the CA (PEM), names a researcher, and signed
/// `spec`; returns the researcher's identity.
pub fn verify(ca_pem: &str, certificate: &[u8], spec: &QuerySpec) -> Result<Identity, PkiError> {
    verify_signed(
        ca_pem,
        certificate,
        Role::Researcher,
        &signed_message(spec),
        &spec.signature,
    )
}

/// Checks that `certificate` (DER) was issued by the CA (PEM), is valid now, has `role`, and
/// that its key made `signature` (ECDSA P-256, SHA-256, ASN.1) over `message`; returns the
/// signer's identity. Shared by every signed value of the protocol (submissions here,
/// commitments and rosters in [`crate::evidence`], key shares in [`crate::deployment`]).
pub fn verify_signed(
    ca_pem: &str,
    certificate: &[u8],
    role: Role,
    message: &[u8],
    signature: &[u8],
) -> Result<Identity, PkiError> {
    let bad = |what: String| PkiError::Certificate(what);
    let (_, ca_der) = x509_parser::pem::parse_x509_pem(ca_pem.as_bytes())
        .map_err(|e| PkiError::Certificate(format!("CA: {e}")))?;
    let ca = ca_der
        .parse_x509()
        .map_err(|e| PkiError::Certificate(format!("CA: {e}")))?;
    let (_, cert) = x509_parser::parse_x509_certificate(certificate)
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    cert.verify_signature(Some(ca.public_key())).map_err(|_| {
        bad(format!(
            "the {role} certificate was not issued by this deployment's CA"
        ))
    })?;
    if !cert.validity().is_valid() {
        return Err(bad(format!(
            "the {role} certificate is expired or not yet valid"
        )));
    }
    let identity = identity_of(certificate)?;
    if identity.role != role {
        return Err(bad(format!(
            "signed with a {} certificate, not a {role} certificate",
            identity.role
        )));
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        cert.public_key().subject_public_key.data.as_ref(),
    );
    key.verify(message, signature).map_err(|_| {
        bad(format!(
            "the signature does not verify under {}'s certificate",
            identity.name
        ))
    })?;
    Ok(identity)
}

/// Signs `message` with a private key (PEM).
pub fn sign_bytes(key_pem: &str, message: &[u8]) -> Result<Vec<u8>, PkiError> {
    Ok(KeyPair::from_pem(key_pem)?.sign(message)?)
}

/// The DER of the first certificate in a PEM document.
pub fn certificate_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let (_, der) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .map_err(|e| PkiError::Certificate(e.to_string()))?;
    Ok(der.contents)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;

    fn spec() -> QuerySpec {
        QuerySpec {
            template: "time-to-publish".into(),
            template_version: 1,
            window_first: "2025-01".into(),
            window_months: 12,
            min_institutions: 3,
            recipient_key: vec![7; 64],
            signature: Vec::new(),
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_query_has_one_id_and_an_expiry() {
        let ca = DevCa::generate("ca").unwrap();
        let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
        let mut a = spec();
        sign(&mut a, &alice.key_pem).unwrap();
        assert_eq!(a.nonce.len(), 16);
        let now = now();
        assert!(a.expires_at > now && a.expires_at <= now + DEFAULT_VALIDITY.as_secs());
        let id = query_id(&a);
        assert_eq!((id.len(), &id[..2]), (18, "q-"));
        assert_eq!(check_binding(&id, &a, now), None);
        // the same terms signed again are another query, with another id
        let mut b = spec();
        sign(&mut b, &alice.key_pem).unwrap();
        assert_ne!(query_id(&b), id);
        // a captured query under a fresh id; no expiry; too far ahead
        assert!(check_binding("q-fresh", &a, now)
            .unwrap()
            .contains("not the one the signed query derives"));
        let mut open = a.clone();
        open.expires_at = 0;
        assert!(check_binding(&query_id(&open), &open, now)
            .unwrap()
            .contains("no expiry"));
        let mut far = a.clone();
        far.expires_at = now + MAX_VALIDITY.as_secs() + 10;
        assert!(check_binding(&query_id(&far), &far, now)
            .unwrap()
            .contains("more than 30 days"));
    }

    #[test]
    fn a_signed_query_verifies_and_any_change_or_foreign_signer_is_refused() {
        let ca = DevCa::generate("ca").unwrap();
        let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
        let alice_der = certificate_der(&alice.certificate_pem).unwrap();
        let mut signed = spec();
        sign(&mut signed, &alice.key_pem).unwrap();
        let who = verify(ca.certificate_pem(), &alice_der, &signed).unwrap();
        assert_eq!((who.role, who.name.as_str()), (Role::Researcher, "alice"));

        // a swapped recipient key, another window: refused
        let mut swapped = signed.clone();
        swapped.recipient_key = vec![8; 64];
        assert!(verify(ca.certificate_pem(), &alice_der, &swapped).is_err());
        let mut widened = signed.clone();
        widened.window_months = 24;
        assert!(verify(ca.certificate_pem(), &alice_der, &widened).is_err());
        // unsigned
        assert!(verify(ca.certificate_pem(), &alice_der, &spec()).is_err());
        // signed by a coordinator certificate of the same CA
        let coordinator = ca
            .issue(Role::Coordinator, "coordinator", &["localhost"])
            .unwrap();
        let mut by_coordinator = spec();
        sign(&mut by_coordinator, &coordinator.key_pem).unwrap();
        let der = certificate_der(&coordinator.certificate_pem).unwrap();
        let err = verify(ca.certificate_pem(), &der, &by_coordinator).unwrap_err();
        assert!(err.to_string().contains("researcher certificate"), "{err}");
        // a researcher certificate from another CA
        let other = DevCa::generate("other").unwrap();
        let mallory = other
            .issue(Role::Researcher, "alice", &["localhost"])
            .unwrap();
        let mut forged = spec();
        sign(&mut forged, &mallory.key_pem).unwrap();
        let der = certificate_der(&mallory.certificate_pem).unwrap();
        let err = verify(ca.certificate_pem(), &der, &forged).unwrap_err();
        assert!(err.to_string().contains("not issued"), "{err}");
    }
}
