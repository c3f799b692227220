//! Threshold setup at the node (`concord-mhe` `threshold`: replicated sharing, integer weights
//! only — issue 15): after CKG, each node deals its key share `s_i` as sub-shares, one per set
//! `A` of `T − 1` parties, and gives each party the sub-shares of the sets it is outside of,
//! sealed to that party's exchange key (`concord-api` `exchange`) so that the coordinator
//! relaying them learns nothing; each node then opens the resharings sealed to it and keeps its
//! sub-shares with the configuration. A query in threshold mode is then decrypted by the `T`
//! contributors with the lowest party numbers, each with the sub-shares that set assigns it.
//!
//! What a node checks of the configuration the coordinator sends: it is the pinned deployment's
//! (parameter set, CRS seed, threshold — at least 2, at least the node's minimum and within the
//! construction's range, checked when it was pinned — and parties, numbered `1..N` in order),
//! and every party's exchange key is signed by that party's node certificate of the deployment's
//! CA. Resharings must come one from each party (each in a message of its own), signed by that
//! party's certificate, sealed for this very setup.

use crate::keygen::PinnedDeployment;
use concord_api::exchange::verify_exchange_key;
use concord_api::v1::{ExchangeKey, ThresholdSetup};
use concord_bfv::{params, BfvParameters};
use concord_mhe::{PartyId, ThresholdConfig};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use tonic::Status;

/// A threshold setup the node has checked.
pub struct CheckedSetup {
    pub params: Arc<BfvParameters>,
    pub crs_seed: [u8; 32],
    pub config: ThresholdConfig,
    /// This node's party number.
    pub me: PartyId,
    /// Every party's exchange key (verified).
    pub keys: HashMap<u32, ExchangeKey>,
    /// What every sealed resharing of this setup is bound to.
    pub context: Vec<u8>,
}

pub fn check(
    ca_pem: &str,
    pinned: &PinnedDeployment,
    setup: &ThresholdSetup,
) -> Result<CheckedSetup, Status> {
    let deployment = &pinned.deployment;
    let not_pinned = |what: &str| {
        Status::invalid_argument(format!(
            "the threshold setup's {what} is not the pinned deployment's"
        ))
    };
    if setup.parameter_set != deployment.parameter_set {
        return Err(not_pinned("parameter set"));
    }
    if setup.crs_seed != deployment.crs_seed {
        return Err(not_pinned("CRS seed"));
    }
    if deployment.threshold == 0 || setup.threshold != deployment.threshold {
        return Err(Status::invalid_argument(format!(
            "a threshold setup with T = {} where the pinned deployment has {}",
            setup.threshold,
            match deployment.threshold {
                0 => "none (all-party mode)".to_owned(),
                t => format!("T = {t}"),
            }
        )));
    }
    if setup.parties.len() != deployment.parties.len() {
        return Err(not_pinned("list of parties"));
    }
    let spec = params::spec_by_name(&setup.parameter_set).ok_or_else(|| {
        Status::invalid_argument(format!("unknown parameter set {:?}", setup.parameter_set))
    })?;
    let params = BfvParameters::new(spec).map_err(|e| Status::internal(e.to_string()))?;
    let crs_seed: [u8; 32] = setup
        .crs_seed
        .as_slice()
        .try_into()
        .map_err(|_| Status::invalid_argument("crs_seed must be 32 bytes"))?;
    let mut keys = HashMap::new();
    let mut context = Sha256::new();
    context.update(b"concord/threshold-resharing/v2\0");
    context.update(pinned.digest);
    for (party, expected) in setup.parties.iter().zip(&deployment.parties) {
        let key = party.key.as_ref().ok_or_else(|| {
            Status::invalid_argument(format!("party {} has no exchange key", party.party))
        })?;
        let who = verify_exchange_key(ca_pem, key).map_err(|e| {
            Status::invalid_argument(format!("party {}'s exchange key: {e}", party.party))
        })?;
        if party.party != expected.number || who.name != expected.name {
            return Err(Status::invalid_argument(format!(
                "party {} ({}) of the threshold setup is party {} ({}) of the pinned deployment",
                party.party, who.name, expected.number, expected.name
            )));
        }
        context.update(party.party.to_le_bytes());
        context.update(&key.public_key);
        keys.insert(party.party, key.clone());
    }
    let parties: Vec<PartyId> = setup.parties.iter().map(|p| PartyId(p.party)).collect();
    let config = ThresholdConfig::new(setup.threshold as usize, &parties)
        .map_err(|e| Status::invalid_argument(e.to_string()))?;

    Ok(CheckedSetup {
        params,
        crs_seed,
        config,
        me: pinned.me,
        keys,
        context: context.finalize().to_vec(),
    })
}
