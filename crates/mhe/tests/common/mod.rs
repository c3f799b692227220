//! What the protocol tests share: CKG among `n` parties, the collective secret (which no party
//! ever computes; tests use it to measure), joint decryption with serialized shares.
#![allow(dead_code)]

use concord_bfv::params;
use concord_bfv::{BfvParameters, Ciphertext, PublicKey, SecretKey};
use concord_mhe::*;
use concord_ring::{Poly, Representation};
use std::sync::Arc;

pub struct Setup {
    pub params: Arc<BfvParameters>,
    pub parties: Vec<PartyId>,
    pub keys: Vec<SecretKey>,
    pub pk: PublicKey,
    pub crs: CommonReferenceString,
}

pub fn ids(n: u32) -> Vec<PartyId> {
    (1..=n).map(PartyId).collect()
}

/// CKG among `n` parties.
pub fn setup(spec: &params::ParameterSpec, n: u32) -> Setup {
    let params = BfvParameters::new(spec).unwrap();
    let parties = ids(n);
    let keys: Vec<SecretKey> = parties
        .iter()
        .map(|_| SecretKey::generate(&params))
        .collect();
    let crs = CommonReferenceString::random();
    let ckg = PublicKeyGen::new(&params, &crs);
    let mut agg = ckg.aggregator();
    for (sk, &p) in keys.iter().zip(&parties) {
        agg.add(&ckg.share(sk, p).unwrap()).unwrap();
    }
    let pk = ckg.finish(&agg, &parties).unwrap();
    Setup {
        params,
        parties,
        keys,
        pk,
        crs,
    }
}

/// The collective secret `s = Σ s_i` — which no party ever computes; tests use it to measure.
pub fn collective_secret(s: &Setup) -> SecretKey {
    let ring = s.params.key_ring();
    let mut sum = Poly::zero(ring, ring.max_level(), Representation::Ntt);
    for k in &s.keys {
        sum.add_assign(ring, k.poly());
    }
    SecretKey::from_poly(&s.params, sum)
}

pub fn joint_decrypt(
    s: &Setup,
    ct: &Ciphertext,
    keys: &[(PartyId, SecretKey)],
    plan: SmudgingPlan,
) -> Result<Vec<i64>, MheError> {
    let cks = CollectiveDecryption::new(ct, plan)?;
    let mut agg = cks.aggregator();
    for (p, sk) in keys {
        let share = cks.share(sk, *p)?;
        // shares travel serialized
        agg.add(&DecryptionShare::from_bytes(&s.params, &share.to_bytes())?)?;
    }
    let expected: Vec<PartyId> = keys.iter().map(|(p, _)| *p).collect();
    Ok(cks.finish(&agg, &expected)?.decode())
}

pub fn party_keys(s: &Setup) -> Vec<(PartyId, SecretKey)> {
    s.parties
        .iter()
        .zip(&s.keys)
        .map(|(&p, k)| (p, SecretKey::from_bytes(&s.params, &k.to_bytes()).unwrap()))
        .collect()
}

/// Every party re-shares for a `threshold`-of-n configuration (resharings and keys travel
/// serialized); returns the configuration and each party's threshold key, in party order.
pub fn threshold_keys(s: &Setup, threshold: usize) -> (ThresholdConfig, Vec<ThresholdSecretKey>) {
    let config = ThresholdConfig::new(threshold, &s.parties).unwrap();
    let mut inbox: Vec<Vec<Resharing>> = s.parties.iter().map(|_| Vec::new()).collect();
    for (sk, &p) in s.keys.iter().zip(&s.parties) {
        for r in reshare(sk, p, &config, b"test setup").unwrap() {
            let r = Resharing::from_bytes(&s.params, &r.to_bytes()).unwrap();
            inbox[(r.to.0 - 1) as usize].push(r);
        }
    }
    let keys = s
        .parties
        .iter()
        .zip(&inbox)
        .map(|(&p, received)| {
            let k = ThresholdSecretKey::combine(&s.params, p, &config, received).unwrap();
            ThresholdSecretKey::from_bytes(&s.params, &k.to_bytes()).unwrap()
        })
        .collect();
    (config, keys)
}
