//! Key generation at the node: the deployment it serves, pinned (concord-api `deployment`);
//! its CKG share under its persistent key share (PETS 2021 §IV-A), signed for the deployment;
//! the collective key, recomputed from every party's signed share and pinned; and the threshold
//! setup after the pin: its signed exchange key, its dealing of the replicated sharing
//! (`concord-mhe` `threshold`: the sub-shares of every set a party is outside of) sealed to every
//! party, and the sub-shares sealed to it, kept beside the key share. The threshold setup the coordinator sends is checked against the pinned
//! deployment by [`crate::threshold::check`].
//!
//! Every share is derived from the node's key share and its context (`concord-mhe`
//! `randomness`), so asking again gives the same bytes; every one is in the audit log.

use crate::admission::internal;
use crate::audit::hex;
use crate::keystore::StoredThreshold;
use crate::service::NodeService;
use crate::state::{Pinned, PinnedRecord};
use crate::threshold;
use concord_api::deployment::{self, DeploymentError};
use concord_api::exchange;
use concord_api::v1::{
    CombineRequest, Deployment, ExchangeKey, PinRequest, PinnedKey, Resharings, SignedKeyShare,
    ThresholdSetup,
};
use concord_bfv::{params, BfvParameters, PublicKey};
use concord_mhe::threshold::{reshare, Resharing};
use concord_mhe::{
    CommonReferenceString, PartyId, Protocol, PublicKeyGen, PublicKeyShare, ThresholdSecretKey,
};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tonic::Status;

fn parameters(name: &str) -> Result<Arc<BfvParameters>, Status> {
    let spec = params::spec_by_name(name)
        .ok_or_else(|| Status::invalid_argument(format!("unknown parameter set {name:?}")))?;
    BfvParameters::new(spec).map_err(internal)
}

fn refused(e: DeploymentError) -> Status {
    Status::invalid_argument(format!("deployment refused: {e}"))
}

/// A deployment this node checked: its parameters, digest, and this node's party number.
pub(crate) struct CheckedDeployment<'a> {
    pub deployment: &'a Deployment,
    pub params: Arc<BfvParameters>,
    pub digest: [u8; 32],
    pub me: PartyId,
}

/// A deployment this node pinned, with its collective key.
#[derive(Clone, Debug)]
pub struct PinnedDeployment {
    pub deployment: Deployment,
    pub digest: [u8; 32],
    pub key: PublicKey,
    /// This node's party number.
    pub me: PartyId,
}

impl PinnedDeployment {
    /// The deployment's parameter set, built.
    pub fn params(&self) -> Result<Arc<BfvParameters>, Status> {
        parameters(&self.deployment.parameter_set)
    }

    /// Parties of the collective key.
    pub fn parties(&self) -> usize {
        self.deployment.parties.len()
    }

    /// The threshold `T`, in threshold mode.
    pub fn threshold(&self) -> Option<usize> {
        (self.deployment.threshold > 0).then_some(self.deployment.threshold as usize)
    }

    /// The party number of a node certificate name, if it is a party.
    pub fn number_of(&self, name: &str) -> Option<u32> {
        self.deployment
            .parties
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.number)
    }
}

impl NodeService {
    /// Checks a deployment against this node's rules (concord-api `deployment::check`).
    pub(crate) fn check_deployment<'a>(
        &self,
        deployment: Option<&'a Deployment>,
    ) -> Result<CheckedDeployment<'a>, Status> {
        let deployment =
            deployment.ok_or_else(|| Status::invalid_argument("no deployment given"))?;
        let params = parameters(&deployment.parameter_set)?;
        let me = deployment::check(deployment, &self.name, self.policy.min_threshold)
            .map_err(refused)?;
        Ok(CheckedDeployment {
            deployment,
            params,
            digest: deployment::digest(deployment),
            me: PartyId(me),
        })
    }

    /// CKG: `p_i = −s_i·a + e_i` under this node's persistent key share for the set (the same
    /// bytes for the same set and CRS, however often asked).
    fn ckg_share(&self, checked: &CheckedDeployment) -> Result<PublicKeyShare, Status> {
        let seed: [u8; 32] = checked.deployment.crs_seed[..]
            .try_into()
            .expect("checked: 32 bytes");
        let key = self.keys.key(&checked.params).map_err(internal)?;
        PublicKeyGen::new(&checked.params, &CommonReferenceString::from_seed(seed))
            .share(&key, checked.me)
            .map_err(internal)
    }

    /// Key setup, round one: this node's CKG share for the deployment, signed.
    pub(crate) fn setup(&self, deployment: Option<&Deployment>) -> Result<SignedKeyShare, Status> {
        let checked = self.check_deployment(deployment)?;
        let share = self.ckg_share(&checked)?.to_bytes();
        let credentials = &self.credentials;
        let signed = deployment::sign_key_share(
            &credentials.key_pem,
            &credentials.certificate_der,
            &checked.digest,
            share,
        )
        .map_err(internal)?;
        self.audit(
            "key-generation",
            json!({
                "protocol": "ckg",
                "set": checked.params.name(),
                "deployment": hex(&checked.digest),
                "crs": hex(&checked.deployment.crs_seed),
                "party": checked.me.0,
                "parties": checked.deployment.parties.len(),
                "threshold": checked.deployment.threshold,
                "share": hex(&Sha256::digest(&signed.share)),
            }),
            true,
        )?;
        Ok(signed)
    }

    /// Key setup, round two: checks every party's signed share (one per party, signed by that
    /// party's node certificate for this deployment, this node's own share exactly as it gives
    /// it), recomputes the collective key and pins it with the deployment.
    pub(crate) fn pin(&self, req: &PinRequest) -> Result<PinnedKey, Status> {
        let checked = self.check_deployment(req.deployment.as_ref())?;
        let parties = &checked.deployment.parties;
        if req.shares.len() != parties.len() {
            return Err(refused(DeploymentError::Signature(format!(
                "{} key shares for {} parties",
                req.shares.len(),
                parties.len()
            ))));
        }
        let seed: [u8; 32] = checked.deployment.crs_seed[..]
            .try_into()
            .expect("checked: 32 bytes");
        let ckg = PublicKeyGen::new(&checked.params, &CommonReferenceString::from_seed(seed));
        let mut aggregate = ckg.aggregator();
        let own = self.ckg_share(&checked)?;
        for (party, signed) in parties.iter().zip(&req.shares) {
            deployment::verify_key_share(
                &self.credentials.ca_pem,
                &checked.digest,
                &party.name,
                signed,
            )
            .map_err(refused)?;
            let share =
                PublicKeyShare::from_bytes(&checked.params, &signed.share).map_err(|e| {
                    Status::invalid_argument(format!("{}'s key share: {e}", party.name))
                })?;
            if share.party != PartyId(party.number) {
                return Err(Status::invalid_argument(format!(
                    "{}'s key share is for party {}, not {}",
                    party.name, share.party, party.number
                )));
            }
            if share.party == checked.me && share != own {
                return Err(Status::invalid_argument(
                    "the key share presented as this node's is not the one it gave",
                ));
            }
            aggregate.add(&share).map_err(|e| {
                Status::invalid_argument(format!("{}'s key share: {e}", party.name))
            })?;
        }
        let numbers: Vec<PartyId> = parties.iter().map(|p| PartyId(p.number)).collect();
        let key = ckg
            .finish(&aggregate, &numbers)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let key_bytes = key.to_bytes();
        let key_digest: [u8; 32] = Sha256::digest(&key_bytes).into();
        let record = PinnedRecord {
            deployment: Some(checked.deployment.clone()),
            key: key_bytes,
        };
        let pinned = self.state.pin(&checked.digest, &record).map_err(internal)?;
        if pinned != Pinned::Same {
            self.audit(
                "deployment-pinned",
                json!({
                    "set": checked.params.name(),
                    "deployment": hex(&checked.digest),
                    "key": hex(&key_digest),
                    "party": checked.me.0,
                    "parties": parties.iter().map(|p| &p.name).collect::<Vec<_>>(),
                    "threshold": checked.deployment.threshold,
                    "replaces": match pinned {
                        Pinned::Replaced(before) => Some(hex(&before)),
                        _ => None,
                    },
                }),
                true,
            )?;
            tracing::info!(
                set = checked.params.name(),
                parties = parties.len(),
                threshold = checked.deployment.threshold,
                party = checked.me.0,
                "pinned the collective key"
            );
        }
        Ok(PinnedKey {
            key_digest: key_digest.to_vec(),
        })
    }

    /// A deployment this node pinned, by digest, with its key.
    pub(crate) fn pinned_deployment(
        &self,
        digest: &[u8; 32],
    ) -> Result<Option<PinnedDeployment>, Status> {
        let Some(record) = self.state.deployment(digest).map_err(internal)? else {
            return Ok(None);
        };
        let deployment = record
            .deployment
            .ok_or_else(|| internal("a pinned deployment without its description"))?;
        let params = parameters(&deployment.parameter_set)?;
        let key = PublicKey::from_bytes(&params, &record.key).map_err(internal)?;
        let me = deployment
            .parties
            .iter()
            .find(|p| p.name == self.name)
            .map(|p| PartyId(p.number))
            .ok_or_else(|| internal("this node is not a party of a deployment it pinned"))?;
        Ok(Some(PinnedDeployment {
            deployment,
            digest: *digest,
            key,
            me,
        }))
    }

    /// The deployment pinned now for a parameter set.
    pub(crate) fn current_deployment(
        &self,
        params: &BfvParameters,
    ) -> Result<Option<PinnedDeployment>, Status> {
        match self.state.pinned(params.name()).map_err(internal)? {
            Some(digest) => self.pinned_deployment(&digest),
            None => Ok(None),
        }
    }

    /// The node's X25519 exchange key, signed with its certificate key.
    pub(crate) fn exchange_key(&self) -> Result<ExchangeKey, Status> {
        let credentials = &self.credentials;
        self.keys
            .exchange_secret()
            .map_err(internal)?
            .publish(&credentials.key_pem, &credentials.certificate_der)
            .map_err(internal)
    }

    /// The deployment pinned for a threshold setup's parameter set.
    fn pinned_for(&self, setup: &ThresholdSetup) -> Result<PinnedDeployment, Status> {
        let params = parameters(&setup.parameter_set)?;
        self.current_deployment(&params)?.ok_or_else(|| {
            Status::failed_precondition(format!(
                "no deployment is pinned for {}: a threshold setup comes after the key setup",
                params.name()
            ))
        })
    }

    /// Threshold setup, round one: this node's dealing, one resharing per party `j`, sealed to `j`.
    pub(crate) fn resharings(&self, setup: &ThresholdSetup) -> Result<Resharings, Status> {
        let credentials = &self.credentials;
        let pinned = self.pinned_for(setup)?;
        let checked = threshold::check(&credentials.ca_pem, &pinned, setup)?;
        let key = self.keys.key(&checked.params).map_err(internal)?;
        let sealed = reshare(&key, checked.me, &checked.config, &checked.context)
            .map_err(internal)?
            .iter()
            .map(|r| {
                exchange::seal(
                    &credentials.key_pem,
                    &credentials.certificate_der,
                    (r.from.0, r.to.0),
                    &checked.keys[&r.to.0],
                    &checked.context,
                    &r.to_bytes(),
                )
                .map_err(internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(
            set = checked.params.name(),
            threshold = setup.threshold,
            parties = setup.parties.len(),
            "re-shared the key share"
        );
        Ok(Resharings { sealed })
    }

    /// Threshold setup, round two: this node's sub-shares from the resharings sealed to it,
    /// one from every party; kept beside the key share.
    pub(crate) fn combine(&self, req: &CombineRequest) -> Result<(), Status> {
        let setup = req
            .setup
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no threshold setup"))?;
        let credentials = &self.credentials;
        let pinned = self.pinned_for(setup)?;
        let checked = threshold::check(&credentials.ca_pem, &pinned, setup)?;
        let mine = self.keys.exchange_secret().map_err(internal)?;
        let mut received = Vec::new();
        for sealed in &req.sealed {
            let sender = checked.keys.get(&sealed.from).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "a resharing from party {}, not in the setup",
                    sealed.from
                ))
            })?;
            if sealed.to != checked.me.0 || sealed.certificate != sender.certificate {
                return Err(Status::invalid_argument(format!(
                    "a resharing said to be from party {} to {} is not from that party to this node",
                    sealed.from, sealed.to
                )));
            }
            let (_, secret) = exchange::open(&credentials.ca_pem, &mine, &checked.context, sealed)
                .map_err(|e| {
                    Status::invalid_argument(format!("resharing from party {}: {e}", sealed.from))
                })?;
            let resharing = Resharing::from_bytes(&checked.params, &secret)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            if resharing.from.0 != sealed.from || resharing.to != checked.me {
                return Err(Status::invalid_argument(
                    "a resharing's parties do not match its envelope",
                ));
            }
            received.push(resharing);
        }
        let key =
            ThresholdSecretKey::combine(&checked.params, checked.me, &checked.config, &received)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        self.keys
            .put_threshold(
                &checked.params,
                &StoredThreshold {
                    crs_seed: checked.crs_seed,
                    config: checked.config,
                    key,
                },
            )
            .map_err(internal)?;
        tracing::info!(
            set = checked.params.name(),
            threshold = setup.threshold,
            party = checked.me.0,
            "kept a threshold key share"
        );
        Ok(())
    }
}
