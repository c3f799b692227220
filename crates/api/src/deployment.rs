//! The deployment a node serves, pinned at setup (DESIGN.md §5, "pinned keys"): the parameter
//! set, the seed of the common reference string, every party of the collective key (numbered
//! `1..N` by node certificate name) and the threshold. Every node checks a proposed deployment
//! against its own rules ([`check`]), signs its CKG share bound to the deployment's
//! [`digest`], and pins the collective key only once it has every party's signed share and has
//! recomputed their sum itself. From then on the node encrypts only under the pinned key and
//! takes every count (parties of the key, its own party number, the threshold) from the pinned
//! deployment, never from a request.
//!
//! Why signed shares: a coordinator that could hand a node a key of its own choosing would
//! decrypt every contribution by itself (key substitution). A key the node pinned is the sum of
//! shares each signed by a distinct node of the deployment's CA, its own share among them, so
//! no party outside the deployment knows the secret, and the coordinator alone knows none of it.
//!
//! Why numbers `1..N`, in order: every node must derive the same threshold active set and the
//! same sub-share assignment from the same roster (`concord-mhe` `threshold`), so party numbers
//! are fixed when the deployment is pinned and not the coordinator's to choose per query. A
//! threshold `T` outside what the construction supports for `N` is refused here, with the
//! supported range.

use crate::pki::{Identity, PkiError, Role};
use crate::submission::{sign_bytes, verify_signed};
use crate::v1::{Deployment, SignedKeyShare};
use prost::Message;
use sha2::{Digest, Sha256};

const DEPLOYMENT: &[u8] = b"concord/deployment/v1\0";
const KEY_SHARE: &[u8] = b"concord/ckg-share/v1\0";

/// The most parties one deployment may have.
pub const MAX_PARTIES: usize = 4096;
/// The longest certificate name a deployment may list.
pub const MAX_NAME_BYTES: usize = 128;

/// Why a node refuses a deployment.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DeploymentError {
    #[error("the CRS seed must be 32 bytes, got {0}")]
    Seed(usize),
    #[error("a deployment has 2 to {MAX_PARTIES} parties, not {0}")]
    Parties(usize),
    #[error("party numbers must be 1..N in order: party {position} is numbered {number}")]
    Numbering { position: usize, number: u32 },
    #[error("party {0}'s name must be 1 to {MAX_NAME_BYTES} printable bytes")]
    Name(u32),
    #[error("{0} is listed twice")]
    Duplicate(String),
    #[error("this node ({0}) is not a party of the deployment")]
    NotAParty(String),
    #[error("threshold {threshold} of {parties} parties: this node takes part only in all-party mode or with a threshold of at least {minimum} and at most N")]
    Threshold {
        threshold: u32,
        parties: usize,
        minimum: u32,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Signature(String),
}

/// The deployment's digest: what signed key shares, proposals and commitments are bound to.
pub fn digest(deployment: &Deployment) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DEPLOYMENT);
    h.update(deployment.encode_to_vec());
    h.finalize().into()
}

/// Checks a deployment against a node's rules: a 32-byte seed, 2 to [`MAX_PARTIES`] parties
/// numbered `1..N` in order with distinct printable names, `me` among them, and a threshold
/// that is 0 (all-party mode) or between `min_threshold` (at least 2) and `N`. Returns `me`'s
/// party number.
pub fn check(
    deployment: &Deployment,
    me: &str,
    min_threshold: u32,
) -> Result<u32, DeploymentError> {
    if deployment.crs_seed.len() != 32 {
        return Err(DeploymentError::Seed(deployment.crs_seed.len()));
    }
    let n = deployment.parties.len();
    if !(2..=MAX_PARTIES).contains(&n) {
        return Err(DeploymentError::Parties(n));
    }
    let mut names = std::collections::HashSet::new();
    for (i, party) in deployment.parties.iter().enumerate() {
        if party.number as usize != i + 1 {
            return Err(DeploymentError::Numbering {
                position: i + 1,
                number: party.number,
            });
        }
        if party.name.is_empty()
            || party.name.len() > MAX_NAME_BYTES
            || party.name.chars().any(char::is_control)
        {
            return Err(DeploymentError::Name(party.number));
        }
        if !names.insert(party.name.as_str()) {
            return Err(DeploymentError::Duplicate(party.name.clone()));
        }
    }
    let t = deployment.threshold;
    if t != 0 && (t < min_threshold.max(2) || t as usize > n) {
        return Err(DeploymentError::Threshold {
            threshold: t,
            parties: n,
            minimum: min_threshold.max(2),
        });
    }
    if t != 0 {
        // the threshold construction's range (replicated sharing: C(N, T−1) sub-shares)
        let parties: Vec<concord_mhe::PartyId> = (1..=n as u32).map(concord_mhe::PartyId).collect();
        concord_mhe::ThresholdConfig::new(t as usize, &parties)
            .map_err(|e| DeploymentError::Unsupported(e.to_string()))?;
    }
    deployment
        .parties
        .iter()
        .find(|p| p.name == me)
        .map(|p| p.number)
        .ok_or_else(|| DeploymentError::NotAParty(me.into()))
}

fn key_share_message(deployment: &[u8; 32], share: &[u8]) -> Vec<u8> {
    let mut m = KEY_SHARE.to_vec();
    m.extend_from_slice(deployment);
    m.extend_from_slice(&Sha256::digest(share));
    m
}

/// A node's CKG share (serialized), signed for the deployment of digest `deployment`.
pub fn sign_key_share(
    key_pem: &str,
    certificate_der: &[u8],
    deployment: &[u8; 32],
    share: Vec<u8>,
) -> Result<SignedKeyShare, PkiError> {
    let signature = sign_bytes(key_pem, &key_share_message(deployment, &share))?;
    Ok(SignedKeyShare {
        certificate: certificate_der.to_vec(),
        share,
        signature,
    })
}

/// Checks that `signed` was signed for the deployment of digest `deployment` by a node
/// certificate of the CA named `name`.
pub fn verify_key_share(
    ca_pem: &str,
    deployment: &[u8; 32],
    name: &str,
    signed: &SignedKeyShare,
) -> Result<Identity, DeploymentError> {
    let signer = verify_signed(
        ca_pem,
        &signed.certificate,
        Role::Node,
        &key_share_message(deployment, &signed.share),
        &signed.signature,
    )
    .map_err(|e| DeploymentError::Signature(format!("{name}'s key share: {e}")))?;
    if signer.name != name {
        return Err(DeploymentError::Signature(format!(
            "the key share of party {name} is signed by {}",
            signer.name
        )));
    }
    Ok(signer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::DevCa;
    use crate::submission::certificate_der;
    use crate::v1::Party;

    fn deployment(names: &[&str], threshold: u32) -> Deployment {
        Deployment {
            parameter_set: "ADD-8192".into(),
            crs_seed: vec![7; 32],
            parties: names
                .iter()
                .enumerate()
                .map(|(i, name)| Party {
                    number: i as u32 + 1,
                    name: (*name).into(),
                })
                .collect(),
            threshold,
        }
    }

    #[test]
    fn a_node_takes_only_deployments_it_can_stand_behind() {
        let d = deployment(&["a", "b", "c"], 0);
        assert_eq!(check(&d, "b", 2), Ok(2));
        assert_eq!(
            check(&d, "x", 2),
            Err(DeploymentError::NotAParty("x".into()))
        );
        // T = 1 would give every party the whole key; T below the node's minimum; T > N
        for t in [1, 2, 4] {
            let err = check(&deployment(&["a", "b", "c"], t), "a", 3).unwrap_err();
            assert!(
                matches!(err, DeploymentError::Threshold { .. }),
                "{t}: {err}"
            );
        }
        assert_eq!(check(&deployment(&["a", "b", "c"], 3), "a", 3), Ok(1));
        assert_eq!(check(&deployment(&["a", "b", "c"], 2), "a", 0), Ok(1));
        assert!(matches!(
            check(&deployment(&["a", "b", "c"], 1), "a", 0),
            Err(DeploymentError::Threshold { .. })
        ));
        // a threshold the construction does not support for N: refused with the range
        let names: Vec<String> = (1..=17).map(|i| format!("n{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        match check(&deployment(&names, 9), "n1", 2) {
            Err(DeploymentError::Unsupported(message)) => {
                assert!(message.contains("2–7, 11–17"), "{message}")
            }
            other => panic!("9 of 17: {other:?}"),
        }
        assert_eq!(check(&deployment(&names, 11), "n1", 2), Ok(1));
        // party points the coordinator chooses, duplicates, one party alone
        let mut points = d.clone();
        points.parties[2].number = 1_000_003;
        assert!(matches!(
            check(&points, "a", 2),
            Err(DeploymentError::Numbering { position: 3, .. })
        ));
        assert_eq!(
            check(&deployment(&["a", "b", "a"], 0), "a", 2),
            Err(DeploymentError::Duplicate("a".into()))
        );
        assert_eq!(
            check(&deployment(&["a"], 0), "a", 2),
            Err(DeploymentError::Parties(1))
        );
        let mut seed = d.clone();
        seed.crs_seed.pop();
        assert_eq!(check(&seed, "a", 2), Err(DeploymentError::Seed(31)));
        // the digest covers every field
        let mut other = d.clone();
        other.parties.swap(0, 1);
        assert_ne!(digest(&d), digest(&other));
        assert_ne!(digest(&d), digest(&deployment(&["a", "b", "c"], 2)));
    }

    #[test]
    fn key_shares_are_bound_to_their_deployment_and_signer() {
        let ca = DevCa::generate("ca").unwrap();
        let node = ca.issue(Role::Node, "a", &["localhost"]).unwrap();
        let der = certificate_der(&node.certificate_pem).unwrap();
        let d = digest(&deployment(&["a", "b"], 0));
        let signed = sign_key_share(&node.key_pem, &der, &d, vec![1, 2, 3]).unwrap();
        let ca_pem = ca.certificate_pem();
        assert_eq!(
            verify_key_share(ca_pem, &d, "a", &signed).unwrap().name,
            "a"
        );
        // another party's name, another deployment, another share
        assert!(verify_key_share(ca_pem, &d, "b", &signed).is_err());
        let other = digest(&deployment(&["a", "c"], 0));
        assert!(verify_key_share(ca_pem, &other, "a", &signed).is_err());
        let mut changed = signed.clone();
        changed.share[0] ^= 1;
        assert!(verify_key_share(ca_pem, &d, "a", &changed).is_err());
        // a coordinator's or a researcher's certificate is no node's
        let coordinator = ca.issue(Role::Coordinator, "a", &["localhost"]).unwrap();
        let cder = certificate_der(&coordinator.certificate_pem).unwrap();
        let forged = sign_key_share(&coordinator.key_pem, &cder, &d, vec![1, 2, 3]).unwrap();
        assert!(verify_key_share(ca_pem, &d, "a", &forged).is_err());
    }
}
