//! Secrets from one node to another through the coordinator — the resharings of threshold
//! setup (Mouchet et al., PETS 2021, §V; `concord-mhe` `threshold`), which must reach their
//! recipient end-to-end encrypted.
//!
//! Every node keeps a static X25519 **exchange key** beside its key shares and publishes its
//! public half signed with its certificate key ([`ExchangeKey`]), so the coordinator relaying
//! it cannot substitute its own. A secret is **sealed** ECIES-style (the shape of HPKE's base
//! mode): a fresh ephemeral X25519 key, HKDF-SHA256 over the shared secret, both public keys and
//! the context, then ChaCha20-Poly1305 with the context as associated data. The sender signs the
//! sealed message with its certificate key, so the recipient knows which institution it comes
//! from; the coordinator can neither read nor forge it, and a message sealed for another
//! context (another setup, sender or recipient) does not open.

use crate::pki::{Identity, PkiError, Role};
use crate::submission::{sign_bytes, verify_signed};
use crate::v1::{ExchangeKey, SealedSecret};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};
use ring::rand::{SecureRandom, SystemRandom};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

const KEY_DOMAIN: &[u8] = b"concord/exchange-key/v1\0";
const SEAL_DOMAIN: &[u8] = b"concord/sealed-secret/v1\0";

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

fn cipher(shared: &[u8; 32], ephemeral: &[u8], recipient: &[u8], context: &[u8]) -> LessSafeKey {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, SEAL_DOMAIN);
    let prk = salt.extract(shared);
    let info = [ephemeral, recipient, context];
    let okm = prk
        .expand(&info, &CHACHA20_POLY1305)
        .expect("one key's worth of output");
    LessSafeKey::new(UnboundKey::from(okm))
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
    let ephemeral = StaticSecret::from(*random32());
    let ephemeral_public = PublicKey::from(&ephemeral).to_bytes();
    let shared = Zeroizing::new(ephemeral.diffie_hellman(&PublicKey::from(their)).to_bytes());
    let key = cipher(&shared, &ephemeral_public, &their, context);
    let mut ciphertext = secret.to_vec();
    // the key is used for this one message: a constant nonce is safe
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0; 12]),
        Aad::from(context),
        &mut ciphertext,
    )
    .map_err(|_| PkiError::Certificate("sealing failed".into()))?;
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
    let ephemeral: [u8; 32] = sealed
        .ephemeral
        .as_slice()
        .try_into()
        .map_err(|_| PkiError::Certificate("an ephemeral key is 32 bytes".into()))?;
    let shared = Zeroizing::new(
        mine.0
            .diffie_hellman(&PublicKey::from(ephemeral))
            .to_bytes(),
    );
    let key = cipher(&shared, &ephemeral, &mine.public(), context);
    let mut plaintext = Zeroizing::new(sealed.ciphertext.clone());
    let opened = key
        .open_in_place(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(context),
            plaintext.as_mut_slice(),
        )
        .map_err(|_| {
            PkiError::Certificate(format!(
                "a secret sealed by {} does not open (another recipient or context)",
                sender.name
            ))
        })?
        .len();
    plaintext.truncate(opened);
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
