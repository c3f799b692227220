//! Every decoder, fed hostile input that passes the checksum (random bodies, mutated real
//! values, truncations re-checksummed): an error, never a panic.

use concord_bfv::{params, BfvParameters, Ciphertext, Plaintext, PublicKey, SecretKey, ValueRange};
use concord_mhe::*;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};

/// Re-seal `bytes` with a valid checksum, so the decoder's own checks are what is exercised.
fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 24 {
        let n = bytes.len() - 16;
        let digest = Sha256::digest(&bytes[..n]);
        bytes[n..].copy_from_slice(&digest[..16]);
    }
    bytes
}

struct Samples {
    params: Arc<BfvParameters>,
    values: Vec<Vec<u8>>,
}

/// One real serialized value of every public type, at ADD-4096.
fn samples() -> &'static Samples {
    static S: OnceLock<Samples> = OnceLock::new();
    S.get_or_init(|| {
        let p = BfvParameters::new(&params::ADD_4096).unwrap();
        let sk = SecretKey::generate(&p);
        let pk = PublicKey::generate(&sk);
        let mut ct = pk
            .encrypt(&Plaintext::encode(&p, &[1, 2], ValueRange::counts(2)).unwrap())
            .unwrap();
        ct.switch_to_transmit_level().unwrap();
        let crs = CommonReferenceString::from_seed([9; 32]);
        let plan = SmudgingPlan::for_key_switch(&p, NoiseEstimate::aggregate(&p, 1, 1), 1).unwrap();
        let config = ThresholdConfig::new(2, &[PartyId(1), PartyId(2)]).unwrap();
        // party 1's threshold key from both parties' resharings addressed to it
        let other = SecretKey::generate(&p);
        let resharing: Vec<_> = [(&sk, 1), (&other, 2)]
            .into_iter()
            .flat_map(|(key, from)| reshare(key, PartyId(from), &config, b"test setup").unwrap())
            .filter(|r| r.to == PartyId(1))
            .collect();
        let tk = ThresholdSecretKey::combine(&p, PartyId(1), &config, &resharing).unwrap();
        let values = vec![
            ct.to_bytes(),
            pk.to_bytes(),
            sk.to_bytes().to_vec(),
            PublicKeyGen::new(&p, &crs)
                .share(&sk, PartyId(1))
                .unwrap()
                .to_bytes(),
            CollectiveDecryption::new(&ct, plan)
                .unwrap()
                .share(&sk, PartyId(1))
                .unwrap()
                .to_bytes(),
            PublicKeySwitch::new(&ct, &pk, plan)
                .unwrap()
                .share(&sk, PartyId(1))
                .unwrap()
                .to_bytes(),
            resharing[0].to_bytes().to_vec(),
            tk.to_bytes().to_vec(),
        ];
        Samples { params: p, values }
    })
}

/// Which decoders accept `bytes`, in a fixed order.
fn decoders_accepting(p: &Arc<BfvParameters>, bytes: &[u8]) -> [bool; 8] {
    [
        Ciphertext::from_bytes(p, bytes).is_ok(),
        PublicKey::from_bytes(p, bytes).is_ok(),
        SecretKey::from_bytes(p, bytes).is_ok(),
        PublicKeyShare::from_bytes(p, bytes).is_ok(),
        DecryptionShare::from_bytes(p, bytes).is_ok(),
        KeySwitchShare::from_bytes(p, bytes).is_ok(),
        Resharing::from_bytes(p, bytes).is_ok(),
        ThresholdSecretKey::from_bytes(p, bytes).is_ok(),
    ]
}

/// Every decoder on `bytes` (the point is that none panics); true if any accepted it.
fn decode_all(p: &Arc<BfvParameters>, bytes: &[u8]) -> bool {
    decoders_accepting(p, bytes).contains(&true)
}

#[test]
fn every_real_value_is_accepted_by_exactly_its_own_decoder() {
    let s = samples();
    for bytes in &s.values {
        let accepted = decoders_accepting(&s.params, bytes);
        assert_eq!(
            accepted.iter().filter(|&&a| a).count(),
            1,
            "kind byte {}",
            bytes[5]
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bodies_with_valid_checksums_never_panic(which in 0usize..8, body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let s = samples();
        let mut bytes = s.values[which][..8].to_vec(); // a real header
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&[0; 16]);
        let bytes = reseal(bytes);
        decode_all(&s.params, &bytes);
    }

    #[test]
    fn mutated_real_values_never_panic(which in 0usize..8, edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), cut in any::<prop::sample::Index>(), truncate in any::<bool>()) {
        let s = samples();
        let mut bytes = s.values[which].clone();
        for (at, v) in edits {
            let i = 8 + at.index(bytes.len() - 24); // keep the header, edit the body
            bytes[i] = v;
        }
        if truncate {
            bytes.truncate(8 + cut.index(bytes.len() - 8));
            bytes.extend_from_slice(&[0; 16]);
        }
        let bytes = reseal(bytes);
        decode_all(&s.params, &bytes);
    }
}
