//! Contribution (DESIGN.md §4 step 3, §5), commit before reveal: the node's statistic over its
//! own data, encrypted under the **pinned** collective key for a query it agreed to, is
//! computed once and recorded; round one answers only its signed commitment. Round two, once
//! the coordinator presents the roster — every contributor's commitment, this node's own among
//! them — the node checks it, signs it (one roster per query, for good) and reveals its
//! ciphertexts. No contribution can be chosen after another is seen, and a node never signs two
//! lists of contributions for one query (concord-api `evidence`).

use crate::admission::{internal, Agreed};
use crate::audit::hex;
use crate::service::NodeService;
use crate::state::RecordedContribution;
use concord_api::evidence;
use concord_api::lifecycle::{Refusal, RefusalCode};
use concord_api::v1::{CommitRequest, Commitment, Contribution, RevealRequest};
use concord_bfv::Ciphertext;
use serde_json::json;
use tonic::Status;

/// A roster as a node checked it: every contributor's name and party number, in order.
pub(crate) type Roster = Vec<(String, u32)>;

impl NodeService {
    /// This node's recorded contribution to a query, if any.
    pub(crate) fn own_contribution(
        &self,
        query_id: &str,
    ) -> Result<Option<RecordedContribution>, Status> {
        self.state.contribution(query_id).map_err(internal)
    }

    /// Round one: the node's encrypted statistic, computed once per query and recorded; only
    /// its signed commitment leaves the node.
    pub(crate) fn commit(&self, req: &CommitRequest) -> Result<Commitment, Status> {
        let agreed = self.agreed(&req.query_id)?;
        if let Some(recorded) = self.own_contribution(&req.query_id)? {
            tracing::info!(query = %req.query_id, "sent the recorded commitment again");
            return recorded
                .commitment
                .ok_or_else(|| internal("a recorded contribution without its commitment"));
        }
        let plan = &agreed.agreement.plan;
        let events = self.events.current();
        // a DP query counts each event once, at its creator (concord-stats `compute_created`)
        let statistic = if let Some(bins) = &plan.layout.overlap {
            // the query's bins, under the query's own key, derived from the deployment's
            // binning key
            let binning = self
                .binning_key(&agreed.deployment)
                .map_err(|refusal| Status::failed_precondition(refusal.to_string()))?;
            plan.template.compute_overlap(
                &plan.window,
                &events,
                bins,
                &binning.for_query(&req.query_id),
            )
        } else if let Some(training) = &plan.training {
            // a round of training: this institution's gradient at the query's public model
            plan.template
                .compute_training(&plan.window, &events, &training.model, &training.config)
        } else {
            // ... unless its unit is one indicator held by one institution: then what each
            // holds, as without DP
            let per_institution = plan
                .template
                .privacy_unit()
                .is_some_and(|unit| unit.per_institution());
            match plan.dp {
                Some(_) if !per_institution => {
                    plan.template
                        .compute_created(&plan.window, &self.institution, &events)
                }
                _ => plan
                    .template
                    .compute(&plan.window, &self.institution, &events),
            }
        }
        .map_err(|e| Status::failed_precondition(e.to_string()))?;
        let ciphertexts: Vec<Vec<u8>> = plan
            .encrypt(&agreed.deployment.key, &statistic)
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
        // recorded first; if another call recorded one meanwhile, that one is sent
        let recorded = self
            .state
            .contribute(
                &req.query_id,
                &RecordedContribution {
                    ciphertexts,
                    commitment: Some(commitment),
                },
            )
            .map_err(internal)?;
        tracing::info!(query = %req.query_id, clipped = statistic.clipped_cells, "committed to a contribution");
        self.audit(
            "contribution",
            json!({
                "query": req.query_id,
                "events_covered": statistic.events_in_window,
                "clipped_cells": statistic.clipped_cells,
                "ciphertexts": recorded.ciphertexts.len(),
                "digest": hex(&evidence::digest(&recorded.ciphertexts)),
                "deployment": hex(&agreed.deployment.digest),
            }),
            false,
        )?;
        recorded
            .commitment
            .ok_or_else(|| internal("a recorded contribution without its commitment"))
    }

    /// Round two: checks the roster, signs it (the first roster of the query only) and reveals
    /// the recorded ciphertexts.
    pub(crate) fn reveal(&self, req: &RevealRequest) -> Result<Contribution, Status> {
        let agreed = self.agreed(&req.query_id)?;
        let roster = self
            .check_roster(&agreed, &req.query_id, &req.roster)
            .map_err(|refusal| self.refuse(&req.query_id, "reveal", refusal))?;
        let own = self
            .own_contribution(&req.query_id)?
            .ok_or_else(|| internal("checked: this node committed"))?;
        let digest = agreed.binding.roster_digest(&req.roster);
        let signature = agreed
            .binding
            .sign_roster(&self.credentials.key_pem, &digest)
            .map_err(internal)?;
        let (signed, signature) = self
            .state
            .sign_roster(&req.query_id, &digest, &signature)
            .map_err(internal)?;
        if signed != digest {
            return Err(self.refuse(
                &req.query_id,
                "reveal",
                Refusal::new(
                    RefusalCode::RosterConflict,
                    "this node signed another list of contributions for this query; it signs one",
                ),
            ));
        }
        self.audit(
            "roster",
            json!({
                "query": req.query_id,
                "roster": hex(&digest),
                "contributors": roster.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            }),
            true,
        )?;
        Ok(Contribution {
            ciphertexts: own.ciphertexts,
            roster_signature: signature,
        })
    }

    /// A roster this node can stand behind: at least its quorum of commitments to this query,
    /// each signed by a distinct party of the pinned deployment, this node's own recorded
    /// commitment among them. Returns the contributors (name, party number), in order.
    pub(crate) fn check_roster(
        &self,
        agreed: &Agreed,
        query_id: &str,
        roster: &[Commitment],
    ) -> Result<Roster, Refusal> {
        let refuse = |detail: String| Refusal::new(RefusalCode::AggregateNotVerified, detail);
        let deployment = &agreed.deployment;
        if roster.len() < agreed.quorum {
            return Err(Refusal::new(
                RefusalCode::TooFewContributions,
                format!(
                    "{} contributions listed; this node releases aggregates of at least {} institutions",
                    roster.len(),
                    agreed.quorum
                ),
            ));
        }
        let mut contributors = Roster::new();
        for commitment in roster {
            let signer = agreed
                .binding
                .verify_commitment(&self.credentials.ca_pem, commitment)
                .map_err(|e| refuse(format!("a contribution's commitment: {e}")))?;
            let number = deployment.number_of(&signer.name).ok_or_else(|| {
                refuse(format!("{} is not a party of the deployment", signer.name))
            })?;
            if contributors.iter().any(|(name, _)| *name == signer.name) {
                return Err(refuse(format!(
                    "{} appears twice among the contributions",
                    signer.name
                )));
            }
            contributors.push((signer.name, number));
        }
        let own = self
            .own_contribution(query_id)
            .map_err(|e| refuse(e.message().to_owned()))?
            .and_then(|c| c.commitment)
            .ok_or_else(|| refuse("this node has not contributed to the query".into()))?;
        if !roster.contains(&own) {
            return Err(refuse(
                "this node's own contribution is not among those listed".into(),
            ));
        }
        Ok(contributors)
    }

    /// Audits a refusal (and counts it, [`count_refusal`]) and turns it into the status the
    /// coordinator gets.
    pub(crate) fn refuse(&self, query_id: &str, step: &'static str, refusal: Refusal) -> Status {
        tracing::warn!(query = %query_id, step, reason = %refusal.code, detail = %refusal.detail, "refused");
        count_refusal(step, &refusal);
        if let Err(e) = self.audit(
            "refusal",
            json!({
                "query": query_id,
                "step": step,
                "reason": refusal.code.as_str(),
                "detail": refusal.detail,
            }),
            true,
        ) {
            return e;
        }
        Status::failed_precondition(refusal.to_string())
    }
}

/// Counts a refusal after agreement in `concord_refusals_total{step, reason}`: `step` one of
/// the protocol's (`reveal`, `decryption`, …), `reason` a refusal code — both bounded sets.
/// Proposals are counted apart (`concord_proposals_total`, by decision and reason).
pub(crate) fn count_refusal(step: &'static str, refusal: &Refusal) {
    metrics::counter!("concord_refusals_total", "step" => step, "reason" => refusal.code.as_str())
        .increment(1);
}
