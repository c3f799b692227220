//! Secrets from one node to another through the coordinator — the resharings of threshold
//! setup (Mouchet et al., PETS 2021, §V; `concord-mhe` `threshold`), which must reach their
//! recipient end-to-end encrypted.
//!
//! Every node keeps a static X25519 **exchange key** beside its key shares and publishes its
//! public half signed with its certificate key ([`ExchangeKey`]), so the coordinator relaying
//! it cannot substitute its own. A secret is **sealed** with HPKE (RFC 9180, the `hpke` crate)
//! in base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, with the info
//! string binding the domain and the context (setup, sender and recipient) and the context as
//! associated data. The sender signs the sealed message with its certificate key, so the
//! recipient knows which institution it comes from; the coordinator can neither read nor forge
//! it, and a message sealed for another context (another setup, sender or recipient) does not
//! open.

use crate::pki::{Identity, PkiError, Role};
use crate::submission::{sign_bytes, verify_signed};
use crate::v1::{ExchangeKey, SealedSecret};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use ring::rand::{SecureRandom, SystemRandom};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

const KEY_DOMAIN: &[u8] = b"concord/exchange-key/v1\0";
/// v2: HPKE (v1 was a hand-made ECIES of the same primitives).
const SEAL_DOMAIN: &[u8] = b"concord/sealed-secret/v2\0";

type Kem = X25519HkdfSha256;

/// A node's static exchange secret (zeroized on drop).
pub struct ExchangeSecret(StaticSecret);

fn random32() -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    SystemRandom::new()
        .fill(bytes.as_mut())
        .expect("the operating system's random number generator");
    bytes
}

impl ExchangeSecret {
    pub fn generate() -> Self {
        Self(StaticSecret::from(*random32()))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(StaticSecret::from(bytes))
    }

    /// For storage at the owning node only.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    pub fn public(&self) -> [u8; 32] {
        PublicKey::from(&self.0).to_bytes()
    }

    /// The public half, signed with the node's certificate key.
    pub fn publish(&self, key_pem: &str, certificate_der: &[u8]) -> Result<ExchangeKey, PkiError> {
        let public_key = self.public().to_vec();
        Ok(ExchangeKey {
            certificate: certificate_der.to_vec(),
            signature: sign_bytes(key_pem, &[KEY_DOMAIN, &public_key].concat())?,
            public_key,
        })
    }
}

/// Checks a published exchange key: a node certificate of the CA signed it.
pub fn verify_exchange_key(ca_pem: &str, key: &ExchangeKey) -> Result<Identity, PkiError> {
    if key.public_key.len() != 32 {
        return Err(PkiError::Certificate("an exchange key is 32 bytes".into()));
    }
    verify_signed(
        ca_pem,
        &key.certificate,
        Role::Node,
        &[KEY_DOMAIN, &key.public_key].concat(),
        &key.signature,
    )
}

/// HPKE's info string: the domain and the full context.
fn info(context: &[u8]) -> Vec<u8> {
    [SEAL_DOMAIN, context].concat()
}

/// The full context: the caller's, and the sender's and recipient's party numbers.
fn full_context(context: &[u8], from: u32, to: u32) -> Vec<u8> {
    [context, &from.to_le_bytes(), &to.to_le_bytes()].concat()
}

fn signed_part(sealed: &SealedSecret, context: &[u8]) -> Vec<u8> {
    [
        SEAL_DOMAIN,
        &(context.len() as u64).to_le_bytes(),
        context,
        &sealed.ephemeral,
        &sealed.ciphertext,
    ]
    .concat()
}

/// Seals `secret` from party `from` to party `to`, whose exchange key `recipient` is (already
/// verified), for `context`; signed by the sender.
pub fn seal(
    key_pem: &str,
    certificate_der: &[u8],
    (from, to): (u32, u32),
    recipient: &ExchangeKey,
    context: &[u8],
    secret: &[u8],
) -> Result<SealedSecret, PkiError> {
    let context = &full_context(context, from, to);
    let their: [u8; 32] = recipient
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| PkiError::Certificate("an exchange key is 32 bytes".into()))?;
    let recipient_key = <Kem as hpke::Kem>::PublicKey::from_bytes(&their)
        .map_err(|e| PkiError::Certificate(format!("an exchange key: {e}")))?;
    let (encapsulated, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &recipient_key,
        &info(context),
        secret,
        context,
    )
    .map_err(|e| PkiError::Certificate(format!("sealing failed: {e}")))?;
    let ephemeral_public = encapsulated.to_bytes();
    let mut sealed = SealedSecret {
        certificate: certificate_der.to_vec(),
        ephemeral: ephemeral_public.to_vec(),
        ciphertext,
        signature: Vec::new(),
        from,
        to,
    };
    sealed.signature = sign_bytes(key_pem, &signed_part(&sealed, context))?;
    Ok(sealed)
}

/// Opens a sealed secret for `context` with the recipient's exchange secret; returns the
/// sender (a node certificate of the CA that signed it) and the secret. The parties named in
/// `sealed` are authenticated: changed, it does not open.
pub fn open(
    ca_pem: &str,
    mine: &ExchangeSecret,
    context: &[u8],
    sealed: &SealedSecret,
) -> Result<(Identity, Zeroizing<Vec<u8>>), PkiError> {
    let context = &full_context(context, sealed.from, sealed.to);
    let sender = verify_signed(
        ca_pem,
        &sealed.certificate,
        Role::Node,
        &signed_part(sealed, context),
        &sealed.signature,
    )?;
    let malformed = |what: &str, e: hpke::HpkeError| {
        PkiError::Certificate(format!("a sealed secret's {what}: {e}"))
    };
    let encapsulated = <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.ephemeral)
        .map_err(|e| malformed("ephemeral key", e))?;
    let secret = <Kem as hpke::Kem>::PrivateKey::from_bytes(mine.to_bytes().as_slice())
        .map_err(|e| malformed("recipient key", e))?;
    let plaintext = hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &secret,
        &encapsulated,
        &info(context),
        &sealed.ciphertext,
        context,
    )
    .map(Zeroizing::new)
    .map_err(|_| {
        PkiError::Certificate(format!(
            "a secret sealed by {} does not open (another recipient or context)",
            sender.name
        ))
    })?;
    Ok((sender, plaintext))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;
    use crate::submission::certificate_der;

    #[test]
    fn a_sealed_secret_opens_only_for_its_recipient_and_context_and_names_its_sender() {
        let ca = DevCa::generate("ca").unwrap();
        let issue = |name: &str| {
            let c = ca.issue(Role::Node, name, &["localhost"]).unwrap();
            let der = certificate_der(&c.certificate_pem).unwrap();
            (c, der)
        };
        let (alice, alice_der) = issue("node-a");
        let (bob, bob_der) = issue("node-b");
        let bob_secret = ExchangeSecret::generate();
        let bob_key = bob_secret.publish(&bob.key_pem, &bob_der).unwrap();
        assert_eq!(
            verify_exchange_key(ca.certificate_pem(), &bob_key)
                .unwrap()
                .name,
            "node-b"
        );
        // a coordinator swapping in its own exchange key is caught
        let mut swapped = bob_key.clone();
        swapped.public_key = ExchangeSecret::generate().public().to_vec();
        assert!(verify_exchange_key(ca.certificate_pem(), &swapped).is_err());

        let sealed = seal(
            &alice.key_pem,
            &alice_der,
            (1, 2),
            &bob_key,
            b"setup 1",
            b"s3cret",
        )
        .unwrap();
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"s3cret"));
        let (from, secret) = open(ca.certificate_pem(), &bob_secret, b"setup 1", &sealed).unwrap();
        assert_eq!(
            (from.name.as_str(), secret.as_slice()),
            ("node-a", &b"s3cret"[..])
        );
        // another context, another recipient, a changed byte
        assert!(open(ca.certificate_pem(), &bob_secret, b"setup 2", &sealed).is_err());
        let eve = ExchangeSecret::generate();
        assert!(open(ca.certificate_pem(), &eve, b"setup 1", &sealed).is_err());
        let mut rerouted = sealed.clone();
        rerouted.to = 3;
        assert!(open(ca.certificate_pem(), &bob_secret, b"setup 1", &rerouted).is_err());
        let mut changed = sealed.clone();
        changed.ciphertext[0] ^= 1;
        assert!(open(ca.certificate_pem(), &bob_secret, b"setup 1", &changed).is_err());
        // stored and loaded again
        let again = ExchangeSecret::from_bytes(*bob_secret.to_bytes());
        assert!(open(ca.certificate_pem(), &again, b"setup 1", &sealed).is_ok());
    }
}
