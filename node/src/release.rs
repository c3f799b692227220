//! Release (DESIGN.md §4 steps 4–5, §5): shares of a query's aggregate — a key switch to the
//! recipient key the node saw in the proposal (PCKS), or, where its policy allows public
//! results, a joint-decryption share (CKS) — only for a query it agreed to, only for an
//! aggregate it has **verified** to be the sum of at least its quorum of contributions to this
//! query, signed by distinct institutions of the deployment, its own included, and at most once
//! per query: the same request again gets the same shares back, any other is refused
//! ([`crate::state::NodeState`]). Shares are recorded durably and audited before they leave.

use crate::admission::{internal, Agreed};
use crate::audit::hex;
use crate::service::NodeService;
use crate::state::Released;
use concord_api::evidence;
use concord_api::lifecycle::{Refusal, RefusalCode};
use concord_api::v1::{DecryptRequest, DecryptShares};
use concord_bfv::{BfvParameters, Ciphertext, SecretKey};
use concord_mhe::{fingerprint, CollectiveDecryption, PartyId, Protocol, PublicKeySwitch};
use concord_query::Release;
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tonic::Status;

impl NodeService {
    /// Shares of the aggregate `req` carries, or the shares already given for this very
    /// request; refused for any other aggregate of a released query.
    pub(crate) fn release(&self, req: &DecryptRequest) -> Result<DecryptShares, Status> {
        let agreed = self.agreed(&req.query_id)?;
        // what identifies the request: everything but the fingerprints' signatures (ECDSA
        // signatures are randomized, so a resuming coordinator gets fresh ones)
        let mut identity = req.clone();
        identity
            .fingerprints
            .iter_mut()
            .for_each(|f| f.signature.clear());
        let digest: [u8; 32] = Sha256::digest(identity.encode_to_vec()).into();
        match self
            .state
            .released(&req.query_id, &digest)
            .map_err(internal)?
        {
            Released::Never => {}
            Released::Same(shares) => return again(&req.query_id, &shares),
            Released::Other => {
                self.audit(
                    "release-refused",
                    json!({"query": req.query_id, "reason": "another aggregate of a released query"}),
                    true,
                )?;
                return Err(refused_twice(&req.query_id));
            }
        }
        if req.party == 0 || req.sharing_parties == 0 || req.key_parties == 0 {
            return Err(Status::invalid_argument("party counts start at 1"));
        }
        let plan = &agreed.agreement.plan;
        let params = &plan.params;
        let cts = req
            .ciphertexts
            .iter()
            .map(|b| Ciphertext::from_bytes(params, b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Status::invalid_argument(format!("aggregate: {e}")))?;
        if cts.len() != plan.ciphertexts() {
            return Err(Status::invalid_argument(format!(
                "{} ciphertexts where the query has {}",
                cts.len(),
                plan.ciphertexts()
            )));
        }
        let aggregate_digest = evidence::digest(&req.ciphertexts);
        let verified = self.verify_aggregate(&agreed, req, &aggregate_digest, &cts);
        self.audit(
            "verification",
            match &verified {
                Ok(contributors) => json!({
                    "query": req.query_id,
                    "aggregate": hex(&aggregate_digest),
                    "verified": true,
                    "contributors": contributors,
                }),
                Err(refusal) => json!({
                    "query": req.query_id,
                    "aggregate": hex(&aggregate_digest),
                    "verified": false,
                    "reason": refusal.code.as_str(),
                    "detail": refusal.detail,
                }),
            },
            true,
        )?;
        let contributors = verified.map_err(|refusal| {
            tracing::warn!(query = %req.query_id, reason = %refusal.code, detail = %refusal.detail, "refused to decrypt an aggregate");
            Status::failed_precondition(refusal.to_string())
        })?;
        let (key, sharing) = self.decryption_key(params, req)?;
        let smudging = agreed
            .agreement
            .smudging(req.key_parties as usize, contributors.len(), sharing)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let party = PartyId(req.party);
        let shares = cts
            .iter()
            .map(|ct| {
                match &agreed.agreement.release {
                    Release::Sealed(recipient) => PublicKeySwitch::new(ct, recipient, smudging)
                        .and_then(|pcks| pcks.share(&key, party))
                        .map(|s| s.to_bytes()),
                    Release::Public => CollectiveDecryption::new(ct, smudging)
                        .and_then(|cks| cks.share(&key, party))
                        .map(|s| s.to_bytes()),
                }
                .map_err(|e| Status::invalid_argument(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let reply = DecryptShares { shares };
        self.audit(
            "release",
            json!({
                "query": req.query_id,
                "kind": agreed.agreement.release.mode().protocol(),
                "shares": reply.shares.len(),
                "contributors": contributors,
                "smudging_lambda": smudging.lambda,
            }),
            true,
        )?;
        // recorded durably before anything leaves the node
        match self
            .state
            .release(&req.query_id, &digest, &reply.encode_to_vec())
            .map_err(internal)?
        {
            Released::Never => {}
            Released::Same(shares) => return again(&req.query_id, &shares),
            Released::Other => return Err(refused_twice(&req.query_id)),
        }
        tracing::info!(query = %req.query_id, shares = reply.shares.len(), lambda = smudging.lambda, "gave decryption shares");
        Ok(reply)
    }

    /// The key this node decrypts with, and how many parties give shares: in all-party mode
    /// its key share `s_i`; in threshold mode (the request names the active parties) its
    /// threshold share weighted for that set, `λ_j^S · t_j`.
    fn decryption_key(
        &self,
        params: &Arc<BfvParameters>,
        req: &DecryptRequest,
    ) -> Result<(Arc<SecretKey>, usize), Status> {
        if req.active_parties.is_empty() {
            let key = self.keys.key(params).map_err(internal)?;
            return Ok((key, req.sharing_parties as usize));
        }
        let stored = self
            .keys
            .threshold(params)
            .map_err(internal)?
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "this node has no threshold key share for {}: run setup in threshold mode",
                    params.name()
                ))
            })?;
        if stored.crs_seed[..] != req.crs_seed[..] {
            return Err(Status::failed_precondition(format!(
                "this node's threshold key share for {} belongs to another setup than the collective key's: run setup again",
                params.name()
            )));
        }
        if stored.key.party().0 != req.party {
            return Err(Status::invalid_argument(format!(
                "this node is party {} of the threshold setup, not {}",
                stored.key.party(),
                req.party
            )));
        }
        let active: Vec<PartyId> = req.active_parties.iter().map(|&p| PartyId(p)).collect();
        let key = stored
            .key
            .for_active_set(&stored.config, &active)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((Arc::new(key), active.len()))
    }

    /// Aggregate verification (DESIGN.md §5, `concord-mhe` `fingerprint`): `aggregate` is the sum
    /// of the committed contributions — at least the node's quorum, each signed for this query
    /// by a distinct node of the deployment, this node's own among them. Returns the
    /// contributors' names.
    fn verify_aggregate(
        &self,
        agreed: &Agreed,
        req: &DecryptRequest,
        aggregate_digest: &[u8],
        aggregate: &[Ciphertext],
    ) -> Result<Vec<String>, Refusal> {
        let refuse = |detail: String| Refusal::new(RefusalCode::AggregateNotVerified, detail);
        let ca = &self.credentials.ca_pem;
        if req.commitments.len() < agreed.quorum {
            return Err(Refusal::new(
                RefusalCode::TooFewContributions,
                format!(
                    "{} contributions presented; this node releases aggregates of at least {} institutions",
                    req.commitments.len(),
                    agreed.quorum
                ),
            ));
        }
        let mut names = Vec::new();
        for commitment in &req.commitments {
            let signer = agreed
                .binding
                .verify_commitment(ca, commitment)
                .map_err(|e| refuse(format!("a contribution's commitment: {e}")))?;
            if names.contains(&signer.name) {
                return Err(refuse(format!(
                    "{} appears twice among the contributions",
                    signer.name
                )));
            }
            names.push(signer.name);
        }
        let own = self
            .own_contribution(&req.query_id)
            .map_err(|e| refuse(e.message().to_owned()))?
            .and_then(|c| c.commitment)
            .ok_or_else(|| refuse("this node has not contributed to the query".into()))?;
        if !req
            .commitments
            .iter()
            .any(|c| c.digest == own.digest && c.certificate == own.certificate)
        {
            return Err(refuse(
                "this node's own contribution is not among those presented".into(),
            ));
        }
        if req.fingerprints.len() != req.commitments.len() {
            return Err(refuse(format!(
                "{} fingerprints for {} contributions",
                req.fingerprints.len(),
                req.commitments.len()
            )));
        }
        let seed = agreed
            .binding
            .challenge_seed(aggregate_digest, &req.commitments);
        for (commitment, signed) in req.commitments.iter().zip(&req.fingerprints) {
            agreed
                .binding
                .verify_fingerprint(ca, &seed, commitment, signed)
                .map_err(|e| refuse(format!("a fingerprint: {e}")))?;
        }
        let values: Vec<&[u64]> = req
            .fingerprints
            .iter()
            .map(|f| f.values.as_slice())
            .collect();
        fingerprint::check(aggregate, &seed, &values).map_err(|e| refuse(e.to_string()))?;
        Ok(names)
    }
}

fn refused_twice(query_id: &str) -> Status {
    Status::already_exists(format!(
        "this node already gave decryption shares for another aggregate of query {query_id:?}"
    ))
}

/// The shares recorded for this very request, sent again.
fn again(query_id: &str, shares: &[u8]) -> Result<DecryptShares, Status> {
    let reply = DecryptShares::decode(shares).map_err(internal)?;
    tracing::info!(query = %query_id, "sent the recorded decryption shares again");
    Ok(reply)
}
