//! Key generation at the node: its CKG share under its persistent key share (PETS 2021
//! §IV-A), and the threshold setup after CKG (§V): its signed exchange key, its resharings
//! `f_i(α_j)` sealed to every party, and the combination `t_j = Σ_i f_i(α_j)` of the resharings
//! sealed to it, kept beside the key share. The setup the coordinator sends is checked by
//! [`crate::threshold::check`].

use crate::admission::internal;
use crate::keystore::StoredThreshold;
use crate::service::NodeService;
use crate::threshold;
use concord_api::exchange;
use concord_api::v1::{
    CombineRequest, ExchangeKey, Resharings, SetupRequest, SetupShare, ThresholdSetup,
};
use concord_bfv::{params, BfvParameters};
use concord_mhe::threshold::{reshare, Resharing};
use concord_mhe::{CommonReferenceString, PartyId, Protocol, PublicKeyGen, ThresholdSecretKey};
use std::sync::Arc;
use tonic::Status;

fn parameters(name: &str) -> Result<Arc<BfvParameters>, Status> {
    let spec = params::spec_by_name(name)
        .ok_or_else(|| Status::invalid_argument(format!("unknown parameter set {name:?}")))?;
    BfvParameters::new(spec).map_err(internal)
}

impl NodeService {
    /// CKG: `p_i = −s_i·a + e_i` under this node's persistent key share for the set.
    pub(crate) fn ckg_share(&self, req: &SetupRequest) -> Result<SetupShare, Status> {
        let params = parameters(&req.parameter_set)?;
        let seed: [u8; 32] = req.crs_seed.as_slice().try_into().map_err(|_| {
            Status::invalid_argument(format!(
                "crs_seed must be 32 bytes, got {}",
                req.crs_seed.len()
            ))
        })?;
        if req.party == 0 {
            return Err(Status::invalid_argument("party numbers start at 1"));
        }
        let key = self.keys.key(&params).map_err(internal)?;
        let share = PublicKeyGen::new(&params, &CommonReferenceString::from_seed(seed))
            .share(&key, PartyId(req.party))
            .map_err(internal)?;
        Ok(SetupShare {
            share: share.to_bytes(),
        })
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

    /// Threshold setup, round one: `f_i(α_j)` for every party `j`, sealed to `j`.
    pub(crate) fn resharings(&self, setup: &ThresholdSetup) -> Result<Resharings, Status> {
        let credentials = &self.credentials;
        let checked = threshold::check(&credentials.ca_pem, &credentials.certificate_der, setup)?;
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

    /// Threshold setup, round two: `t_j = Σ_i f_i(α_j)` from the resharings sealed to this node,
    /// one from every party; kept beside the key share.
    pub(crate) fn combine(&self, req: &CombineRequest) -> Result<(), Status> {
        let setup = req
            .setup
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no threshold setup"))?;
        let credentials = &self.credentials;
        let checked = threshold::check(&credentials.ca_pem, &credentials.certificate_der, setup)?;
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
