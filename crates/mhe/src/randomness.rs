//! Key-generation randomness that is derived, never drawn twice (Mouchet, Bertrand, Hubaux,
//! "An Efficient Threshold Access-Structure for RLWE-Based Multiparty Homomorphic Encryption",
//! IACR eprint 2024/194 — the countermeasure the later attacks on retries leave standing).
//!
//! Every random value of a party's key-generation share — CKG's error, RKG's ephemeral secret
//! and errors, GKG's errors, the resharing polynomial of the threshold setup — is a PRF of the
//! party's secret key and the share's public context: HMAC-SHA256 keyed by the secret key's
//! encoding over the protocol's name and context, expanded by ChaCha20. A party asked again for
//! the same context (parameter set, CRS, Galois element, round-one aggregate, threshold setup)
//! gives the same bytes, whoever asks and under whatever party number, instead of a fresh
//! sample. Fresh samples are what made `p = −s·a + e` answered a thousand times for one CRS
//! average to `s` (issue 14 measured it). The party number is deliberately not part of the
//! context, so asking under another number gives nothing new either.
//!
//! Security: the share's noise is pseudorandom as long as HMAC-SHA256 keyed by the secret key
//! (at least `N·log₂3` bits of entropy) is a PRF; the share is then an RLWE sample as before.
//! This is the deterministic-nonce argument of RFC 6979 for signatures. Decryption and
//! key-switch shares are not derived here: their smudging noise is fresh, and a node gives them
//! at most once per query by its durable record.

use concord_bfv::SecretKey;
use hmac::{Hmac, Mac};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use zeroize::Zeroizing;

/// The random stream of `protocol`'s share under `sk` for `context`.
pub(crate) fn derived_rng(sk: &SecretKey, protocol: &str, context: &[&[u8]]) -> ChaCha20Rng {
    let key = sk.to_bytes();
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length");
    mac.update(b"concord/key-generation-randomness/v1\0");
    for part in std::iter::once(protocol.as_bytes()).chain(context.iter().copied()) {
        mac.update(&(part.len() as u64).to_le_bytes());
        mac.update(part);
    }
    let seed = Zeroizing::new(<[u8; 32]>::from(mac.finalize().into_bytes()));
    ChaCha20Rng::from_seed(*seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_bfv::{params, BfvParameters};
    use rand_chacha::rand_core::RngCore;

    #[test]
    fn the_stream_depends_on_the_secret_the_protocol_and_every_context_part() {
        let params = BfvParameters::new(&params::ADD_4096).unwrap();
        let (a, b) = (SecretKey::generate(&params), SecretKey::generate(&params));
        let first = |sk: &SecretKey, protocol: &str, context: &[&[u8]]| {
            derived_rng(sk, protocol, context).next_u64()
        };
        let base = first(&a, "ckg", &[b"ADD-4096", b"crs"]);
        assert_eq!(base, first(&a, "ckg", &[b"ADD-4096", b"crs"]));
        assert_ne!(base, first(&b, "ckg", &[b"ADD-4096", b"crs"]));
        assert_ne!(base, first(&a, "gkg", &[b"ADD-4096", b"crs"]));
        assert_ne!(base, first(&a, "ckg", &[b"ADD-4096", b"crs2"]));
        // parts are length-prefixed: moving a byte between them is another context
        assert_ne!(base, first(&a, "ckg", &[b"ADD-4096c", b"rs"]));
    }
}
