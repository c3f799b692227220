//! Admission: whether this node takes part in a proposed query (DESIGN.md §4 step 2). A
//! proposal passes, in order: the query's template (known, at this version, allowed by the
//! policy); the deployment it names, which must be the one this node pinned for the query's
//! parameter set (its parties are the institutions counted; nothing the coordinator says about
//! them is); enough institutions for the researcher's and the policy's minimum; the
//! researcher's signature; the query id, which must be the one the signed query derives
//! (`concord-api` `submission::query_id`: a captured query cannot be proposed again under a
//! fresh id), and its expiry; the policy on DP, publication and public results; the query's
//! [`QueryAgreement`] (window, plan, DP plan, recipient key — the values every party derives
//! the same way); the policy on researcher and size; the researcher's privacy budget. Then, for
//! a node whose operator approves by hand, the operator's decision.
//!
//! A proposal under an id not seen before must also not have expired, and stay within the
//! policy's rate of new queries per researcher. Every refusal is a typed [`Refusal`] with a
//! stable code. An agreement is durable: after a
//! restart each stored proposal is admitted again under the policy of the day.

use crate::approvals;
use crate::config::{Approval, Policy};
use crate::keygen::PinnedDeployment;
use crate::service::NodeService;
use crate::state::{Spent, StateError};
use concord_api::evidence;
use concord_api::lifecycle::{Refusal, RefusalCode};
use concord_api::submission;
use concord_api::v1::{BudgetSpent, Proposal, QuerySpec};
use concord_query::dp::{self, DpPlan};
use concord_query::{QueryAgreement, ReleaseMode};
use prost::Message;
use tonic::Status;

/// A query this node agreed to.
#[derive(Clone)]
pub(crate) struct Agreed {
    /// The query as proposed.
    pub spec: QuerySpec,
    /// The pinned deployment it is encrypted under: its key, parties and threshold.
    pub deployment: PinnedDeployment,
    /// What commitments and rosters are bound to.
    pub binding: evidence::QueryBinding,
    /// Plan, release and smudging, as every party derives them.
    pub agreement: QueryAgreement,
    /// The fewest contributions this node releases an aggregate of: the researcher's and the
    /// policy's minimum, whichever is larger.
    pub quorum: usize,
}

/// How the node answers a proposal.
pub(crate) enum Outcome {
    /// Agreed — by the policy alone, or approved by the named operator.
    Agree(Box<Agreed>, Option<String>),
    /// Admitted by the policy, waiting for the operator (`first`: seen for the first time).
    Pending {
        first: bool,
    },
    Refuse(Refusal),
}

/// The longest query id and researcher name a node takes (the coordinator's ids are 18 bytes):
/// whatever a proposal names is kept in the node's state and audit log.
pub const MAX_NAME_BYTES: usize = 128;

/// Refuses a proposal whose query id or researcher name is empty, too long or not printable.
pub fn check_names(proposal: &Proposal) -> Result<(), Refusal> {
    for (what, name) in [
        ("query id", &proposal.query_id),
        ("researcher", &proposal.researcher),
    ] {
        if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
            return Err(Refusal::new(
                RefusalCode::InvalidQuery,
                format!(
                    "the {what} must be 1 to {MAX_NAME_BYTES} bytes of printable characters ({} bytes)",
                    name.len()
                ),
            ));
        }
    }
    Ok(())
}

/// A name as logs show it: at most [`MAX_NAME_BYTES`] of it.
pub fn shown(name: &str) -> String {
    match name.char_indices().nth(MAX_NAME_BYTES) {
        Some((at, _)) => format!("{}… ({} bytes)", &name[..at], name.len()),
        None => name.to_owned(),
    }
}

impl Policy {
    /// The checks that depend on who asks and how much.
    pub fn admits(
        &self,
        researcher: &str,
        cells: usize,
        ciphertexts: usize,
    ) -> Result<(), Refusal> {
        if !self.allowed_researchers.is_empty()
            && !self.allowed_researchers.iter().any(|r| r == researcher)
        {
            return Err(Refusal::new(
                RefusalCode::ResearcherNotAllowed,
                format!("this institution's policy does not admit researcher {researcher:?}"),
            ));
        }
        if cells > self.max_cells {
            return Err(Refusal::new(
                RefusalCode::TooManyCells,
                format!(
                    "{cells} cells; this institution's policy allows at most {}",
                    self.max_cells
                ),
            ));
        }
        if ciphertexts > self.max_ciphertexts {
            return Err(Refusal::new(
                RefusalCode::TooManyCells,
                format!(
                    "a contribution of {ciphertexts} ciphertexts (an overlap query's bins / N); this institution's policy allows at most {}",
                    self.max_ciphertexts
                ),
            ));
        }
        Ok(())
    }

    /// A DP query's cost against this institution's limit per query, both at the node's own
    /// `budget_delta` (the researcher's `δ` may be looser: ε = 1 at δ = 1e-3 is ε = 1.4 at 1e-6).
    pub fn allows_cost(&self, dp: &DpPlan) -> Result<(), Refusal> {
        let epsilon = dp.epsilon_at(self.budget_delta);
        if epsilon > self.max_epsilon {
            return Err(Refusal::new(
                RefusalCode::EpsilonTooLarge,
                format!(
                    "ε = {} at δ = {:e} asked, ε = {epsilon:.3} at this institution's δ = {:e}; its policy allows at most {} per query",
                    dp.epsilon, dp.delta, self.budget_delta, self.max_epsilon
                ),
            ));
        }
        Ok(())
    }

    /// The checks of a query's terms against what this institution allows.
    fn allows(&self, spec: &QuerySpec) -> Result<(), Refusal> {
        if spec.epsilon <= 0.0 && self.require_dp {
            return Err(Refusal::new(
                RefusalCode::DpRequired,
                "this institution's policy takes part only in differentially private queries (give ε)",
            ));
        }
        if spec.publish && !self.allow_publication {
            return Err(Refusal::new(
                RefusalCode::PublicationNotAllowed,
                "this institution's policy does not allow results to be published to MISP",
            ));
        }
        if spec.release_mode() == ReleaseMode::Public && !self.allow_public_results {
            return Err(Refusal::new(
                RefusalCode::PublicResultNotAllowed,
                "this institution's policy releases results only to the researcher's key",
            ));
        }
        Ok(())
    }
}

impl NodeService {
    /// The node's policy decision on a proposal (the operator's comes after).
    pub(crate) fn decide(&self, proposal: &Proposal) -> Result<Agreed, Refusal> {
        let spec = proposal
            .spec
            .as_ref()
            .ok_or_else(|| Refusal::new(RefusalCode::InvalidQuery, "no query specification"))?;
        let template = spec.terms().template()?;
        let policy = &self.policy;
        if !policy.allowed_templates.is_empty()
            && !policy.allowed_templates.contains(&spec.template)
        {
            return Err(Refusal::new(
                RefusalCode::TemplateNotAllowed,
                format!(
                    "this institution's policy does not allow {}",
                    template.info().id
                ),
            ));
        }
        let deployment = self.proposed_deployment(proposal)?;
        let institutions = deployment.parties();
        let quorum = (spec.min_institutions as usize).max(policy.min_institutions);
        if institutions < quorum {
            return Err(Refusal::new(
                RefusalCode::TooFewInstitutions,
                format!(
                    "the deployment has {institutions} institutions, this node requires at least {quorum}"
                ),
            ));
        }
        if policy.require_signed_queries {
            let signer = submission::verify(
                &self.credentials.ca_pem,
                &proposal.researcher_certificate,
                spec,
            )
            .map_err(|e| Refusal::new(RefusalCode::UnsignedQuery, e.to_string()))?;
            if signer.name != proposal.researcher {
                return Err(Refusal::new(
                    RefusalCode::UnsignedQuery,
                    format!(
                        "signed by {}, proposed as {}'s",
                        signer.name, proposal.researcher
                    ),
                ));
            }
        }
        // the id is the signed query's own: a captured query proposed again under a fresh id
        // is refused, so nothing (budget included) is spent on it twice
        if let Some(detail) = submission::check_binding(&proposal.query_id, spec, submission::now())
        {
            return Err(Refusal::new(RefusalCode::InvalidQuery, detail));
        }
        policy.allows(spec)?;
        let agreement = spec.agreement(institutions)?;
        if agreement.plan.params.name() != deployment.deployment.parameter_set {
            return Err(Refusal::new(
                RefusalCode::DeploymentNotPinned,
                format!(
                    "the query is computed under {}, the deployment named is of {}",
                    agreement.plan.params.name(),
                    deployment.deployment.parameter_set
                ),
            ));
        }
        if agreement.plan.layout.overlap.is_some() {
            self.check_overlap_keys(&deployment)?;
        }
        policy.admits(
            &proposal.researcher,
            agreement.plan.layout.cells(),
            agreement.plan.ciphertexts(),
        )?;
        // what the template reads, this institution must hold
        if let Some(missing) = agreement.plan.template.unavailable_at(&self.institution) {
            return Err(Refusal::new(
                RefusalCode::TemplateNotAllowed,
                missing.to_string(),
            ));
        }
        if let Some(dp) = &agreement.plan.dp {
            // counted once, at its creator: the node must know which events it created
            if self.institution.organisation_uuids.is_empty() {
                return Err(Refusal::new(
                    RefusalCode::DpNotSupported,
                    concord_stats::TemplateError::CreatorUnknown {
                        template: agreement.plan.template.info().id,
                    }
                    .to_string(),
                ));
            }
            policy.allows_cost(dp)?;
            let mut spent = self
                .state
                .spent(&proposal.researcher, dp.unit)
                .map_err(|e| Refusal::new(RefusalCode::Internal, e.to_string()))?;
            if !spent.queries.contains(&proposal.query_id) {
                spent.xi += dp.xi;
                spent.rho += dp.rho;
                if !self.within_budget(&spent) {
                    return Err(Refusal::new(
                        RefusalCode::BudgetExhausted,
                        self.budget_detail(&proposal.researcher, dp),
                    ));
                }
            }
        }
        Ok(Agreed {
            spec: spec.clone(),
            binding: evidence::QueryBinding::new(&proposal.query_id, spec, &deployment.digest),
            deployment,
            agreement,
            quorum,
        })
    }

    /// The deployment a proposal names: one this node pinned, and the one pinned now for its
    /// parameter set (a query is never encrypted under a key the node has moved on from).
    fn proposed_deployment(&self, proposal: &Proposal) -> Result<PinnedDeployment, Refusal> {
        let not_pinned = |detail: String| Refusal::new(RefusalCode::DeploymentNotPinned, detail);
        let digest: [u8; 32] = proposal.deployment[..].try_into().map_err(|_| {
            not_pinned(format!(
                "the proposal names no deployment ({} bytes where a 32-byte digest goes)",
                proposal.deployment.len()
            ))
        })?;
        let internal = |e: Status| Refusal::new(RefusalCode::Internal, e.message().to_owned());
        let deployment = self
            .pinned_deployment(&digest)
            .map_err(internal)?
            .ok_or_else(|| {
                not_pinned("this node has not pinned the deployment the query names".into())
            })?;
        let current = self
            .state
            .pinned(&deployment.deployment.parameter_set)
            .map_err(|e| Refusal::new(RefusalCode::Internal, e.to_string()))?;
        if current != Some(digest) {
            return Err(not_pinned(format!(
                "the deployment the query names is no longer the one pinned for {}",
                deployment.deployment.parameter_set
            )));
        }
        Ok(deployment)
    }

    /// How the node answers a proposal: its policy's decision, then its operator's; an id
    /// seen before with another query is a replay.
    pub(crate) fn admit(&self, proposal: &Proposal, encoded: &[u8]) -> Result<Outcome, Status> {
        if let Err(refusal) = check_names(proposal) {
            return Ok(Outcome::Refuse(refusal));
        }
        let earlier = self.state.agreement(&proposal.query_id).map_err(internal)?;
        // a query id names one query for good: a coordinator resuming proposes the same
        // again; anything else under that id is a replay
        if earlier.as_ref().is_some_and(|earlier| earlier != encoded) {
            return Ok(Outcome::Refuse(Refusal::new(
                RefusalCode::QueryIdReused,
                format!(
                    "this node agreed to another query under the id {:?}",
                    proposal.query_id
                ),
            )));
        }
        if earlier.is_none() {
            if let Err(refusal) = self.fresh(proposal) {
                return Ok(Outcome::Refuse(refusal));
            }
        }
        Ok(match self.decide(proposal) {
            Err(refusal) => Outcome::Refuse(refusal),
            Ok(agreed) if self.policy.approval == Approval::Manual => {
                self.operator_decision(proposal, agreed)?
            }
            Ok(agreed) => Outcome::Agree(Box::new(agreed), None),
        })
    }

    /// The checks only a proposal not agreed before passes: it has not expired, and its
    /// researcher has not proposed more new queries in the last hour than the policy allows.
    fn fresh(&self, proposal: &Proposal) -> Result<(), Refusal> {
        let spec = proposal.spec.as_ref();
        let expires_at = spec.map_or(0, |s| s.expires_at);
        if expires_at != 0 && expires_at <= submission::now() {
            return Err(Refusal::new(
                RefusalCode::QueryExpired,
                format!("the query expired {} s ago", submission::now() - expires_at),
            ));
        }
        let hour = std::time::Duration::from_secs(3600);
        let now = std::time::Instant::now();
        let mut recent = self.recent.lock().expect("rate lock");
        let seen = recent.entry(proposal.researcher.clone()).or_default();
        seen.retain(|(at, _)| now.duration_since(*at) < hour);
        if seen.iter().any(|(_, id)| *id == proposal.query_id) {
            return Ok(());
        }
        if seen.len() >= self.policy.max_proposals_per_hour {
            return Err(Refusal::new(
                RefusalCode::RateLimited,
                format!(
                    "{} proposed {} new queries in the last hour; this institution's policy takes at most {}",
                    proposal.researcher,
                    seen.len(),
                    self.policy.max_proposals_per_hour
                ),
            ));
        }
        seen.push((now, proposal.query_id.clone()));
        Ok(())
    }

    /// Manual approval: the operator's decision on a proposal the policy admits, recorded as
    /// pending the first time it is seen.
    fn operator_decision(&self, proposal: &Proposal, agreed: Agreed) -> Result<Outcome, Status> {
        let spec = &agreed.spec;
        let request = approvals::Request {
            query: proposal.query_id.clone(),
            researcher: proposal.researcher.clone(),
            template: format!("{} v{}", spec.template, spec.template_version),
            window: format!("{} +{} months", spec.window_first, spec.window_months),
            institutions: agreed.deployment.parties() as u32,
            release: agreed.agreement.release.mode().as_str().into(),
            cells: agreed.agreement.plan.layout.cells(),
            received_at: approvals::now(),
            status: approvals::Status::Pending,
            by: String::new(),
            reason: String::new(),
        };
        let (stored, new) = tokio::task::block_in_place(|| {
            self.approvals.ask(request, self.policy.approval_timeout_s)
        })
        .map_err(internal)?;
        Ok(match stored.status {
            approvals::Status::Pending => Outcome::Pending { first: new },
            approvals::Status::Approved => Outcome::Agree(Box::new(agreed), Some(stored.by)),
            approvals::Status::Denied => Outcome::Refuse(Refusal::new(
                RefusalCode::DeniedByOperator,
                if stored.reason.is_empty() {
                    format!("denied by {}", stored.by)
                } else {
                    format!("denied by {}: {}", stored.by, stored.reason)
                },
            )),
            approvals::Status::Expired => {
                Outcome::Refuse(Refusal::new(RefusalCode::ApprovalTimedOut, stored.reason))
            }
        })
    }

    /// Charges a DP query to its researcher's budget (once per query); false if it no longer
    /// fits (another query was charged meanwhile).
    pub(crate) fn charge(&self, proposal: &Proposal, agreed: &Agreed) -> Result<bool, StateError> {
        let Some(dp) = &agreed.agreement.plan.dp else {
            return Ok(true);
        };
        let charged = self.state.charge(
            &proposal.researcher,
            dp.unit,
            &proposal.query_id,
            (dp.xi, dp.rho),
            |spent| self.within_budget(spent),
        )?;
        Ok(charged.is_some())
    }

    /// Whether a researcher's spending stays within this node's budget.
    fn within_budget(&self, spent: &Spent) -> bool {
        dp::epsilon_of(spent.xi, spent.rho, self.policy.budget_delta) <= self.policy.epsilon_budget
    }

    pub(crate) fn budget_detail(&self, researcher: &str, asked: &DpPlan) -> String {
        let spent = self.state.spent(researcher, asked.unit).unwrap_or_default();
        format!(
            "{researcher} has spent ε = {:.3} of {} (at δ = {:e}) on this institution's data, per {}; this query would cost ε = {:.3} at that δ",
            dp::epsilon_of(spent.xi, spent.rho, self.policy.budget_delta),
            self.policy.epsilon_budget,
            self.policy.budget_delta,
            asked.unit,
            asked.epsilon_at(self.policy.budget_delta)
        )
    }

    /// What each researcher (or only `researcher`) has spent of this node's budget, per unit,
    /// as ε at the policy's δ. A legacy ledger (kept before ledgers were per unit) is shown
    /// with the unit "every unit": it counts against each.
    pub fn budgets(
        &self,
        researcher: Option<&str>,
    ) -> Result<Vec<(String, BudgetSpent)>, StateError> {
        let delta = self.policy.budget_delta;
        Ok(self
            .state
            .ledgers()?
            .into_iter()
            .filter(|(r, _, _)| researcher.is_none_or(|wanted| wanted == r))
            .map(|(r, unit, spent)| {
                let spent = BudgetSpent {
                    unit: unit.unwrap_or_else(|| "every unit".into()),
                    epsilon_spent: dp::epsilon_of(spent.xi, spent.rho, delta),
                    epsilon_budget: self.policy.epsilon_budget,
                    delta,
                    queries: spent.queries.len() as u32,
                };
                (r, spent)
            })
            .collect())
    }

    /// Reloads the agreements of earlier runs, each admitted again under today's policy.
    pub(crate) fn restore_agreements(&self) {
        let stored = match self.state.agreements() {
            Ok(stored) => stored,
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        };
        let mut agreed = self.agreed.lock().expect("agreements lock");
        for (query_id, bytes) in stored {
            match Proposal::decode(bytes.as_slice()) {
                Ok(proposal) => match self.decide(&proposal) {
                    Ok(agreement) => {
                        agreed.insert(query_id, agreement);
                    }
                    Err(refusal) => {
                        tracing::warn!(query = %query_id, reason = %refusal.code, detail = %refusal.detail, "an earlier agreement no longer holds under this policy");
                    }
                },
                Err(e) => tracing::error!(query = %query_id, "stored proposal unreadable: {e}"),
            }
        }
    }

    /// The query `query_id` as this node agreed to it.
    pub(crate) fn agreed(&self, query_id: &str) -> Result<Agreed, Status> {
        self.agreed
            .lock()
            .expect("agreements lock")
            .get(query_id)
            .cloned()
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "query {query_id:?} was not proposed to this node, or it refused it"
                ))
            })
    }
}

pub(crate) fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_admits_by_researcher_and_size() {
        let open = Policy::default();
        assert!(open.admits("anyone", 131_072, 64).is_ok());
        assert_eq!(
            open.admits("anyone", 131_073, 1).unwrap_err().code,
            RefusalCode::TooManyCells
        );
        // the work of a contribution: ciphertexts (an overlap query's bins)
        let refusal = open.admits("anyone", 16, 65).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::TooManyCells);
        assert!(
            refusal.detail.contains("65 ciphertexts"),
            "{}",
            refusal.detail
        );
        let strict = Policy {
            allowed_researchers: vec!["alice".into()],
            max_cells: 100,
            ..Policy::default()
        };
        assert!(strict.admits("alice", 100, 1).is_ok());
        let refusal = strict.admits("mallory", 10, 1).unwrap_err();
        assert_eq!(refusal.code.as_str(), "researcher-not-allowed");
        assert!(refusal.detail.contains("mallory"), "{}", refusal.detail);
        assert_eq!(
            strict.admits("alice", 101, 1).unwrap_err().code.as_str(),
            "too-many-cells"
        );
    }

    #[test]
    fn proposal_ids_and_names_are_bounded_and_shown_short() {
        let proposal = |id: &str, researcher: &str| Proposal {
            query_id: id.into(),
            researcher: researcher.into(),
            ..Default::default()
        };
        assert!(check_names(&proposal("q-0123456789abcdef", "alice")).is_ok());
        let long = "q".repeat(1 << 20);
        for bad in [
            proposal("", "alice"),
            proposal(&long, "alice"),
            proposal("q-1\nforged line", "alice"),
            proposal("q-1", &long),
        ] {
            assert_eq!(
                check_names(&bad).unwrap_err().code,
                RefusalCode::InvalidQuery
            );
        }
        let short = shown(&long);
        assert!(
            short.len() < 200 && short.ends_with("(1048576 bytes)"),
            "{short}"
        );
        assert_eq!(shown("q-1"), "q-1");
    }

    #[test]
    fn policy_allows_by_dp_publication_and_release() {
        let spec = |epsilon: f64, publish: bool, key: &[u8]| QuerySpec {
            epsilon,
            publish,
            recipient_key: key.to_vec(),
            ..Default::default()
        };
        let open = Policy {
            allow_public_results: true,
            allow_publication: true,
            ..Policy::default()
        };
        assert!(open.allows(&spec(0.5, true, b"")).is_ok());
        let code = |policy: &Policy, s: QuerySpec| policy.allows(&s).unwrap_err().code;
        // ε is compared at the node's δ (1e-6 by default): ε = 1 at δ = 1e-3 is 1.4 there
        let t = concord_stats::Template::EventsByMonthTlpDistribution;
        let at = |epsilon: f64, delta: f64| DpPlan::new(t, epsilon, delta, 3).unwrap();
        assert!(open.allows_cost(&at(1.0, 1e-6)).is_ok());
        let refusal = open.allows_cost(&at(1.0, 1e-3)).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::EpsilonTooLarge);
        assert!(
            refusal.detail.contains("this institution's δ"),
            "{}",
            refusal.detail
        );
        let strict = Policy {
            require_dp: true,
            allow_public_results: false,
            allow_publication: false,
            ..Policy::default()
        };
        assert_eq!(
            code(&strict, spec(0.0, false, b"k")),
            RefusalCode::DpRequired
        );
        assert_eq!(
            code(&strict, spec(0.5, true, b"k")),
            RefusalCode::PublicationNotAllowed
        );
        assert_eq!(
            code(&strict, spec(0.5, false, b"")),
            RefusalCode::PublicResultNotAllowed
        );
        assert!(strict.allows(&spec(0.5, false, b"k")).is_ok());
    }
}
