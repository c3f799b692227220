//! Contribution (DESIGN.md §4 step 3, §5): the node's statistic over its own data, encrypted
//! under the collective key for a query it agreed to, with a signed commitment — computed once
//! and recorded before it leaves, so a coordinator asking again gets the same bytes; and the
//! node's fingerprint of it at the challenge of aggregate verification (`concord-mhe`
//! `fingerprint`).

use crate::admission::internal;
use crate::audit::hex;
use crate::service::NodeService;
use concord_api::evidence;
use concord_api::v1::{ContributeRequest, Contribution, FingerprintRequest, SignedFingerprint};
use concord_bfv::{Ciphertext, PublicKey};
use concord_mhe::fingerprint;
use prost::Message;
use serde_json::json;
use tonic::Status;

impl NodeService {
    /// This node's recorded contribution to a query, if any.
    pub(crate) fn own_contribution(&self, query_id: &str) -> Result<Option<Contribution>, Status> {
        self.state
            .contribution(query_id)
            .map_err(internal)?
            .map(|bytes| Contribution::decode(bytes.as_slice()).map_err(internal))
            .transpose()
    }

    /// The node's encrypted statistic with its signed commitment, computed once per query.
    pub(crate) fn contribution(&self, req: &ContributeRequest) -> Result<Contribution, Status> {
        let agreed = self.agreed(&req.query_id)?;
        if let Some(recorded) = self.own_contribution(&req.query_id)? {
            tracing::info!(query = %req.query_id, "sent the recorded contribution again");
            return Ok(recorded);
        }
        let plan = &agreed.agreement.plan;
        let key = PublicKey::from_bytes(&plan.params, &req.collective_key)
            .map_err(|e| Status::invalid_argument(format!("collective key: {e}")))?;
        let statistic = plan
            .template
            .compute(&plan.window, &self.institution, &self.events)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let ciphertexts: Vec<Vec<u8>> = plan
            .encrypt(&key, &statistic)
            .map_err(internal)?
            .iter()
            .map(Ciphertext::to_bytes)
            .collect();
        let digest = evidence::digest(&ciphertexts);
        let credentials = &self.credentials;
        let commitment = agreed
            .binding
            .commit(&credentials.key_pem, &credentials.certificate_der, digest)
            .map_err(internal)?;
        let contribution = Contribution {
            ciphertexts,
            events_covered: statistic.events_in_window as u64,
            commitment: Some(commitment),
        };
        // recorded first; if another call recorded one meanwhile, that one is sent
        let recorded = self
            .state
            .contribute(&req.query_id, &contribution.encode_to_vec())
            .map_err(internal)?;
        let contribution = Contribution::decode(recorded.as_slice()).map_err(internal)?;
        tracing::info!(query = %req.query_id, events = statistic.events_in_window, clipped = statistic.clipped_cells, "contributed");
        let digest = contribution
            .commitment
            .as_ref()
            .map(|c| c.digest.clone())
            .unwrap_or_default();
        self.audit(
            "contribution",
            json!({
                "query": req.query_id,
                "events_covered": contribution.events_covered,
                "clipped_cells": statistic.clipped_cells,
                "ciphertexts": contribution.ciphertexts.len(),
                "digest": hex(&digest),
            }),
            false,
        )?;
        Ok(contribution)
    }

    /// Round two of aggregate verification: this node's contribution at the challenge points
    /// derived from the aggregate's digest and every commitment, signed.
    pub(crate) fn fingerprint(
        &self,
        req: &FingerprintRequest,
    ) -> Result<SignedFingerprint, Status> {
        let agreed = self.agreed(&req.query_id)?;
        let own = self.own_contribution(&req.query_id)?.ok_or_else(|| {
            Status::failed_precondition(format!(
                "this node has not contributed to query {:?}",
                req.query_id
            ))
        })?;
        let params = &agreed.agreement.plan.params;
        let cts = own
            .ciphertexts
            .iter()
            .map(|b| Ciphertext::from_bytes(params, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(internal)?;
        let binding = &agreed.binding;
        let seed = binding.challenge_seed(&req.aggregate_digest, &req.commitments);
        let values = fingerprint::fingerprint(&cts, &seed).map_err(internal)?;
        binding
            .sign_fingerprint(&self.credentials.key_pem, &seed, values)
            .map_err(internal)
    }
}
