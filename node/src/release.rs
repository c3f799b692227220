//! Release (DESIGN.md §4 steps 4–5, §5): shares of a query's aggregate — a key switch to the
//! recipient key the node saw in the proposal (PCKS), or, where its policy allows public
//! results, a joint-decryption share (CKS). A node gives them only for a query it agreed to,
//! only of the sum of exactly the roster it signed for the query, presented with every listed
//! contributor's signature over that roster, and it computes the sum itself from the
//! contributions, each checked against its commitment: the coordinator never chooses what is
//! decrypted. At most once per query (the same request again gets the same shares back, any
//! other is refused, [`crate::state::NodeState`]) and at most once per `c₁` whatever the query
//! (the ledger of decrypted ciphertexts). Every count — parties of the key, parties giving
//! shares, this node's party number — comes from the pinned deployment. Shares are recorded
//! durably and audited before they leave.

use crate::admission::{internal, Agreed};
use crate::audit::hex;
use crate::contribution::Roster;
use crate::service::NodeService;
use crate::state::Released;
use concord_api::evidence;
use concord_api::lifecycle::{Refusal, RefusalCode};
use concord_api::v1::{DecryptRequest, DecryptShares};
use concord_bfv::{BfvParameters, Ciphertext, SecretKey};
use concord_mhe::PartyId;
use concord_query::Release;
use prost::Message;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use tonic::Status;

impl NodeService {
    /// Shares of the sum of the roster's contributions, or the shares already given for this
    /// very request; refused for anything else.
    ///
    /// `req` is the request's first message (roster, signatures, active set, and the
    /// ciphertexts it carried); `rest` yields the ciphertexts of the later messages as they
    /// arrive. The aggregate is summed contribution by contribution, so a node holds the sum
    /// and one contribution, never every contribution at once (`n·C` ciphertexts: 1.3 GB for
    /// 16 institutions' overlap contributions of 64 ciphertexts).
    pub(crate) fn release(
        &self,
        req: &DecryptRequest,
        rest: &mut dyn Iterator<Item = Result<Vec<u8>, Status>>,
    ) -> Result<DecryptShares, Status> {
        let agreed = self.agreed(&req.query_id)?;
        // what names the request: the roster (its commitments bind every contribution) and the
        // active set — not the contributions' bytes, which would mean hashing them all again
        let digest = request_digest(&agreed, req);
        match self
            .state
            .released(&req.query_id, &digest)
            .map_err(internal)?
        {
            Released::Never => {}
            Released::Same(shares) => return again(&req.query_id, &shares),
            Released::Other => {
                return Err(self.refuse(
                    &req.query_id,
                    "release",
                    Refusal::new(RefusalCode::RosterConflict, refused_twice(&req.query_id)),
                ));
            }
        }
        let verified = self.verify_aggregate(&agreed, req, rest);
        self.audit(
            "verification",
            match &verified {
                Ok((aggregate, contributors)) => json!({
                    "query": req.query_id,
                    "aggregate": hex(&evidence::digest(&aggregate.iter().map(Ciphertext::to_bytes).collect::<Vec<_>>())),
                    "verified": true,
                    "contributors": contributors.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                }),
                Err(refusal) => json!({
                    "query": req.query_id,
                    "verified": false,
                    "reason": refusal.code.as_str(),
                    "detail": refusal.detail,
                }),
            },
            true,
        )?;
        let (aggregate, contributors) = verified.map_err(|refusal| {
            tracing::warn!(query = %req.query_id, reason = %refusal.code, detail = %refusal.detail, "refused to decrypt an aggregate");
            crate::contribution::count_refusal("decryption", &refusal);
            Status::failed_precondition(refusal.to_string())
        })?;
        let plan = &agreed.agreement.plan;
        let (key, sharing) = self.decryption_key(&agreed, &plan.params, req, &contributors)?;
        let smudging = agreed
            .agreement
            .smudging(agreed.deployment.parties(), contributors.len(), sharing)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let party = agreed.deployment.me;
        // what is released of the sum: the sum, or the overlap circuit's counts — evaluated
        // here, from the sum this node computed, with the key it pinned
        let rlk = match plan.layout.overlap {
            Some(_) => Some(
                self.overlap_relinearization_key(&agreed.deployment)
                    .map_err(|refusal| Status::failed_precondition(refusal.to_string()))?,
            ),
            None => None,
        };
        let mut outputs = plan
            .evaluate(aggregate, rlk.as_ref())
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        for ct in &mut outputs {
            ct.switch_to_level(smudging.level)
                .map_err(|e| Status::failed_precondition(e.to_string()))?;
        }
        // a DP overlap query's noise goes into this node's share (empty otherwise)
        let noise = plan
            .release_noise(sharing)
            .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let shares = match &agreed.agreement.release {
            Release::Sealed(recipient) => plan
                .key_switches(&outputs, recipient, smudging)
                .and_then(|all| {
                    all.iter()
                        .map(|p| p.share_with_noise(&key, party, &noise))
                        .map(|share| share.map(|s| s.to_bytes()))
                        .collect()
                }),
            Release::Public => plan.decryptions(&outputs, smudging).and_then(|all| {
                all.iter()
                    .map(|p| p.share_with_noise(&key, party, &noise))
                    .map(|share| share.map(|s| s.to_bytes()))
                    .collect()
            }),
        }
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let reply = DecryptShares { shares };
        self.audit(
            "release",
            json!({
                "query": req.query_id,
                "kind": agreed.agreement.release.mode().protocol(),
                "shares": reply.shares.len(),
                "contributors": contributors.iter().map(|(name, _)| name).collect::<Vec<_>>(),
                "sharing_parties": sharing,
                "smudging_lambda": smudging.lambda,
                "noise_in_share": !noise.is_empty(),
            }),
            true,
        )?;
        // recorded durably, with every c₁ in the ledger, before anything leaves the node
        let c1s: Vec<[u8; 32]> = outputs.iter().map(c1_digest).collect();
        match self
            .state
            .release(&req.query_id, &digest, &reply.encode_to_vec(), &c1s)
            .map_err(internal)?
        {
            Ok(Released::Never) => {}
            Ok(Released::Same(shares)) => return again(&req.query_id, &shares),
            Ok(Released::Other) => {
                return Err(Status::failed_precondition(refused_twice(&req.query_id)))
            }
            Err(other) => {
                return Err(self.refuse(
                    &req.query_id,
                    "release",
                    Refusal::new(
                        RefusalCode::CiphertextSeen,
                        format!("this node already gave a share of a ciphertext of this aggregate, for query {other:?}"),
                    ),
                ))
            }
        }
        tracing::info!(query = %req.query_id, shares = reply.shares.len(), lambda = smudging.lambda, "gave decryption shares");
        Ok(reply)
    }

    /// The key this node decrypts with, and how many parties give shares: in all-party mode
    /// its key share `s_i`, every party of the deployment giving one; in threshold mode (the
    /// request names the active parties: exactly the `T` contributors of the roster with the
    /// lowest party numbers, this node among them) the sum of the sub-shares that set assigns
    /// it (`concord-mhe` `threshold`).
    fn decryption_key(
        &self,
        agreed: &Agreed,
        params: &Arc<BfvParameters>,
        req: &DecryptRequest,
        contributors: &Roster,
    ) -> Result<(Arc<SecretKey>, usize), Status> {
        let deployment = &agreed.deployment;
        let Some(threshold) = deployment.threshold() else {
            if !req.active_parties.is_empty() {
                return Err(Status::invalid_argument(
                    "active parties named in all-party mode: every party gives a share",
                ));
            }
            let key = self.keys.key(params).map_err(internal)?;
            return Ok((key, deployment.parties()));
        };
        // the active set is not the coordinator's to choose: the T contributors of the roster
        // with the lowest party numbers
        let mut active: Vec<u32> = contributors.iter().map(|(_, number)| *number).collect();
        active.sort_unstable();
        active.truncate(threshold);
        if req.active_parties != active || !active.contains(&deployment.me.0) {
            return Err(Status::invalid_argument(format!(
                "the active parties must be the {threshold} contributors with the lowest party numbers, {active:?}, this node (party {}) among them; not {:?}",
                deployment.me, req.active_parties
            )));
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
        if stored.crs_seed[..] != deployment.deployment.crs_seed[..]
            || stored.key.party() != deployment.me
        {
            return Err(Status::failed_precondition(format!(
                "this node's threshold key share for {} belongs to another setup than the pinned deployment's: run setup again",
                params.name()
            )));
        }
        let active: Vec<PartyId> = req.active_parties.iter().map(|&p| PartyId(p)).collect();
        let key = self
            .keys
            .active_key(params, &stored, &active)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok((key, active.len()))
    }

    /// The aggregate, as this node computes it: the roster is the one it signed for the query,
    /// every listed contributor signed it, and each contribution presented is the one its
    /// contributor committed to. Returns the sum and the contributors.
    fn verify_aggregate(
        &self,
        agreed: &Agreed,
        req: &DecryptRequest,
        rest: &mut dyn Iterator<Item = Result<Vec<u8>, Status>>,
    ) -> Result<(Vec<Ciphertext>, Roster), Refusal> {
        let refuse = |detail: String| Refusal::new(RefusalCode::AggregateNotVerified, detail);
        let binding = &agreed.binding;
        let roster = binding.roster_digest(&req.roster);
        let signed = self
            .state
            .roster(&req.query_id)
            .map_err(|e| Refusal::new(RefusalCode::Internal, e.to_string()))?;
        match signed {
            None => {
                return Err(refuse(
                    "this node has signed no list of contributions for this query".into(),
                ))
            }
            Some((digest, _)) if digest != roster => {
                return Err(Refusal::new(
                    RefusalCode::RosterConflict,
                    "the contributions listed are not the list this node signed for this query",
                ))
            }
            Some(_) => {}
        }
        let contributors = self.check_roster(agreed, &req.query_id, &req.roster)?;
        if req.roster_signatures.len() != req.roster.len() {
            return Err(refuse(format!(
                "{} roster signatures for {} contributions",
                req.roster_signatures.len(),
                req.roster.len()
            )));
        }
        for ((commitment, signature), (name, _)) in req
            .roster
            .iter()
            .zip(&req.roster_signatures)
            .zip(&contributors)
        {
            binding
                .verify_roster(&self.credentials.ca_pem, &roster, commitment, signature)
                .map_err(|e| {
                    refuse(format!(
                        "{name} did not sign this list of contributions: {e}"
                    ))
                })?;
        }
        let plan = &agreed.agreement.plan;
        let per = plan.ciphertexts();
        let expected = per * req.roster.len();
        let mut ciphertexts = req.ciphertexts.iter().cloned().map(Ok).chain(rest);
        let mut received = 0;
        let too_few = |received: usize| {
            refuse(format!(
                "{received} ciphertexts for {} contributions of {per}",
                req.roster.len()
            ))
        };
        let mut sum: Vec<Ciphertext> = Vec::new();
        for (commitment, (name, _)) in req.roster.iter().zip(&contributors) {
            // one contribution at a time
            let mut bytes = Vec::with_capacity(per);
            while bytes.len() < per {
                match ciphertexts.next() {
                    Some(Ok(ct)) => bytes.push(ct),
                    Some(Err(e)) => {
                        return Err(refuse(format!(
                            "the contributions' stream broke after {received} ciphertexts: {}",
                            e.message()
                        )))
                    }
                    None => return Err(too_few(received)),
                }
                received += 1;
            }
            if evidence::digest(&bytes)[..] != commitment.digest[..] {
                return Err(refuse(format!(
                    "the contribution presented as {name}'s is not the one it committed to"
                )));
            }
            for (k, bytes) in bytes.iter().enumerate() {
                let ct = Ciphertext::from_bytes(&plan.params, bytes)
                    .map_err(|e| refuse(format!("{name}'s contribution: {e}")))?;
                match sum.get_mut(k) {
                    Some(s) => s
                        .add_assign(&ct)
                        .map_err(|e| refuse(format!("{name}'s contribution: {e}")))?,
                    None => sum.push(ct),
                }
            }
        }
        if ciphertexts.next().is_some() {
            return Err(refuse(format!(
                "more than the {expected} ciphertexts of {} contributions of {per}",
                req.roster.len()
            )));
        }
        Ok((sum, contributors))
    }
}

/// A decryption request's identity: its roster's digest and its active parties.
fn request_digest(agreed: &Agreed, req: &DecryptRequest) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(agreed.binding.roster_digest(&req.roster));
    for p in &req.active_parties {
        h.update(p.to_le_bytes());
    }
    h.finalize().into()
}

/// SHA-256 over a ciphertext's `c₁` (its second part: parameter set, level, representation and
/// every residue): what the ledger of decrypted ciphertexts keys on.
fn c1_digest(ct: &Ciphertext) -> [u8; 32] {
    let c1 = ct.c1();
    let mut h = Sha256::new();
    h.update(b"concord/decrypted-c1/v1\0");
    h.update(ct.params().name().as_bytes());
    h.update((ct.level() as u64).to_le_bytes());
    h.update(format!("{:?}", c1.representation()).as_bytes());
    let bytes: Vec<u8> = c1.data().iter().flat_map(|x| x.to_le_bytes()).collect();
    h.update(&bytes);
    h.finalize().into()
}

fn refused_twice(query_id: &str) -> String {
    format!("this node already gave decryption shares for another request of query {query_id:?}")
}

/// The shares recorded for this very request, sent again.
fn again(query_id: &str, shares: &[u8]) -> Result<DecryptShares, Status> {
    let reply = DecryptShares::decode(shares).map_err(internal)?;
    tracing::info!(query = %query_id, "sent the recorded decryption shares again");
    Ok(reply)
}
