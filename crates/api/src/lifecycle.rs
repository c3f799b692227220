//! A query's typed lifecycle (DESIGN.md §4): its [`Phase`], the transitions between phases,
//! and the [`Refusal`]s a node answers a proposal or a decryption request with.
//!
//! ```text
//! submitted → proposed → contributing → verifying → decrypting → released
//!      └──────────┴────────────┴─────────────┴────────────┴──────→ failed
//! ```
//!
//! On the wire the phase is the proto enum `QueryPhase`; in the coordinator's store it is the
//! phase's name (`Phase`'s serde form, the same words as before the enum existed). Refusal codes
//! are stable and machine-readable: they are what clients and audit logs see.

use crate::v1::{QueryPhase, QuerySpec, QueryStatus};
use concord_query::{AgreementError, QueryAgreement, QueryTerms, ReleaseMode, TrainingTerms};
use serde::{Deserialize, Serialize};

/// Where a query is in its life.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Recorded by the coordinator, not proposed yet.
    #[default]
    Submitted,
    /// Proposed to the nodes; waiting for their decisions (or an operator's approval).
    Proposed,
    /// The nodes that agreed are contributing; the coordinator sums as they arrive.
    Contributing,
    /// Every contributor evaluates its contribution at the aggregate's challenge.
    Verifying,
    /// The nodes give decryption (or key-switch) shares of the verified aggregate.
    Decrypting,
    /// Final: the result is released.
    Released,
    /// Final: the query failed, and says why.
    Failed,
}

/// A transition the lifecycle does not have.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a query cannot go from {from} to {to}")]
pub struct TransitionError {
    pub from: Phase,
    pub to: Phase,
}

impl Phase {
    /// Every phase, in lifecycle order (failed last).
    pub const ALL: [Phase; 7] = [
        Phase::Submitted,
        Phase::Proposed,
        Phase::Contributing,
        Phase::Verifying,
        Phase::Decrypting,
        Phase::Released,
        Phase::Failed,
    ];

    /// The phases of a query that succeeds, in order: all but failed.
    pub const PROGRESS: &'static [Phase] = Self::ALL.split_at(6).0;

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Submitted => "submitted",
            Self::Proposed => "proposed",
            Self::Contributing => "contributing",
            Self::Verifying => "verifying",
            Self::Decrypting => "decrypting",
            Self::Released => "released",
            Self::Failed => "failed",
        }
    }

    /// Released or failed: nothing happens to the query any more.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Released | Self::Failed)
    }

    /// The phase a successful query reaches after this one.
    pub fn next(self) -> Option<Phase> {
        let i = Self::PROGRESS.iter().position(|&p| p == self)?;
        Self::PROGRESS.get(i + 1).copied()
    }

    /// Whether the lifecycle goes from `self` to `to`: one step forward, staying (a resumed
    /// query records its phase again), or failing from any unfinished phase.
    pub fn may_become(self, to: Phase) -> bool {
        !self.is_finished() && (to == self || to == Phase::Failed || self.next() == Some(to))
    }

    /// `to`, if the lifecycle goes there from `self`.
    pub fn advance(self, to: Phase) -> Result<Phase, TransitionError> {
        if self.may_become(to) {
            Ok(to)
        } else {
            Err(TransitionError { from: self, to })
        }
    }

    /// The phase a status carries (`None` for a value this build does not know).
    pub fn of(status: &QueryStatus) -> Option<Phase> {
        Self::from_wire(status.phase())
    }

    pub fn from_wire(phase: QueryPhase) -> Option<Phase> {
        Some(match phase {
            QueryPhase::Unspecified => return None,
            QueryPhase::Submitted => Self::Submitted,
            QueryPhase::Proposed => Self::Proposed,
            QueryPhase::Contributing => Self::Contributing,
            QueryPhase::Verifying => Self::Verifying,
            QueryPhase::Decrypting => Self::Decrypting,
            QueryPhase::Released => Self::Released,
            QueryPhase::Failed => Self::Failed,
        })
    }

    pub fn to_wire(self) -> QueryPhase {
        match self {
            Self::Submitted => QueryPhase::Submitted,
            Self::Proposed => QueryPhase::Proposed,
            Self::Contributing => QueryPhase::Contributing,
            Self::Verifying => QueryPhase::Verifying,
            Self::Decrypting => QueryPhase::Decrypting,
            Self::Released => QueryPhase::Released,
            Self::Failed => QueryPhase::Failed,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl QueryStatus {
    /// Released: the result is there.
    pub fn is_released(&self) -> bool {
        Phase::of(self) == Some(Phase::Released)
    }

    /// Released or failed.
    pub fn is_finished(&self) -> bool {
        Phase::of(self).is_some_and(Phase::is_finished)
    }

    /// The phase in words (`unknown` for a value this build does not know).
    pub fn phase_name(&self) -> &'static str {
        Phase::of(self).map_or("unknown", Phase::as_str)
    }
}

/// The machine-readable reason of a node's refusal. Codes are stable: clients, operators and
/// audit logs see them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalCode {
    // the query itself (its agreement cannot be made)
    InvalidQuery,
    UnknownTemplate,
    InvalidWindow,
    TooManyInstitutions,
    DpNotSupported,
    InvalidDp,
    InvalidRecipientKey,
    // the node's policy
    TemplateNotAllowed,
    TooFewInstitutions,
    UnsignedQuery,
    ResearcherNotAllowed,
    TooManyCells,
    EpsilonTooLarge,
    DpRequired,
    BudgetExhausted,
    PublicationNotAllowed,
    PublicResultNotAllowed,
    QueryIdReused,
    QueryExpired,
    RateLimited,
    DeploymentNotPinned,
    // the node's operator
    AwaitingApproval,
    DeniedByOperator,
    ApprovalTimedOut,
    // a decryption request
    AggregateNotVerified,
    TooFewContributions,
    RosterConflict,
    CiphertextSeen,
    // the node itself
    Internal,
}

impl RefusalCode {
    pub const ALL: [RefusalCode; 29] = [
        Self::InvalidQuery,
        Self::UnknownTemplate,
        Self::InvalidWindow,
        Self::TooManyInstitutions,
        Self::DpNotSupported,
        Self::InvalidDp,
        Self::InvalidRecipientKey,
        Self::TemplateNotAllowed,
        Self::TooFewInstitutions,
        Self::UnsignedQuery,
        Self::ResearcherNotAllowed,
        Self::TooManyCells,
        Self::EpsilonTooLarge,
        Self::DpRequired,
        Self::BudgetExhausted,
        Self::PublicationNotAllowed,
        Self::PublicResultNotAllowed,
        Self::QueryIdReused,
        Self::QueryExpired,
        Self::RateLimited,
        Self::DeploymentNotPinned,
        Self::AwaitingApproval,
        Self::DeniedByOperator,
        Self::ApprovalTimedOut,
        Self::AggregateNotVerified,
        Self::TooFewContributions,
        Self::RosterConflict,
        Self::CiphertextSeen,
        Self::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidQuery => "invalid-query",
            Self::UnknownTemplate => "unknown-template",
            Self::InvalidWindow => "invalid-window",
            Self::TooManyInstitutions => "too-many-institutions",
            Self::DpNotSupported => "dp-not-supported",
            Self::InvalidDp => "invalid-dp",
            Self::InvalidRecipientKey => "invalid-recipient-key",
            Self::TemplateNotAllowed => "template-not-allowed",
            Self::TooFewInstitutions => "too-few-institutions",
            Self::UnsignedQuery => "unsigned-query",
            Self::ResearcherNotAllowed => "researcher-not-allowed",
            Self::TooManyCells => "too-many-cells",
            Self::EpsilonTooLarge => "epsilon-too-large",
            Self::DpRequired => "dp-required",
            Self::BudgetExhausted => "budget-exhausted",
            Self::PublicationNotAllowed => "publication-not-allowed",
            Self::PublicResultNotAllowed => "public-result-not-allowed",
            Self::QueryIdReused => "query-id-reused",
            Self::QueryExpired => "query-expired",
            Self::RateLimited => "rate-limited",
            Self::DeploymentNotPinned => "deployment-not-pinned",
            Self::AwaitingApproval => "awaiting-approval",
            Self::DeniedByOperator => "denied-by-operator",
            Self::ApprovalTimedOut => "approval-timed-out",
            Self::AggregateNotVerified => "aggregate-not-verified",
            Self::TooFewContributions => "too-few-contributions",
            Self::RosterConflict => "roster-conflict",
            Self::CiphertextSeen => "ciphertext-seen",
            Self::Internal => "internal",
        }
    }

    /// The code a string names, as a client reads a `Decision`.
    pub fn parse(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl std::fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A node's refusal: its code and the detail for people.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct Refusal {
    pub code: RefusalCode,
    pub detail: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl From<AgreementError> for Refusal {
    fn from(e: AgreementError) -> Self {
        let code = match e {
            AgreementError::UnknownTemplate(_) => RefusalCode::UnknownTemplate,
            AgreementError::InvalidWindow(_) => RefusalCode::InvalidWindow,
            AgreementError::TooManyInstitutions(_) => RefusalCode::TooManyInstitutions,
            AgreementError::DpNotSupported(_) => RefusalCode::DpNotSupported,
            AgreementError::InvalidDp(_) => RefusalCode::InvalidDp,
            AgreementError::InvalidRecipientKey(_) => RefusalCode::InvalidRecipientKey,
            AgreementError::InvalidBins(_) | AgreementError::InvalidTraining(_) => {
                RefusalCode::InvalidQuery
            }
        };
        debug_assert_eq!(code.as_str(), e.code());
        Self::new(code, e.to_string())
    }
}

impl crate::v1::TrainingRound {
    /// The first of `rounds` rounds of a training template at the standard configuration
    /// (`concord-stats` `Template::first_round`: the model 0); `None` for the other templates.
    pub fn first(template: &concord_stats::Template, rounds: u32) -> Option<Self> {
        let (model, config) = template.first_round(rounds)?;
        Some(Self {
            model,
            learning_rate: config.learning_rate,
            scale_bits: config.scale_bits,
            round: 0,
            rounds,
            objective: config.objective.id().into(),
        })
    }
}

impl QuerySpec {
    /// The query's terms, as [`QueryAgreement`] reads them.
    pub fn terms(&self) -> QueryTerms<'_> {
        QueryTerms {
            template: &self.template,
            template_version: self.template_version,
            window_first: &self.window_first,
            window_months: self.window_months,
            min_institutions: self.min_institutions,
            recipient_key: &self.recipient_key,
            epsilon: self.epsilon,
            delta: self.delta,
            publish: self.publish,
            bins: self.bins,
            training: self.training.as_ref().map(|t| TrainingTerms {
                model: &t.model,
                learning_rate: t.learning_rate,
                scale_bits: t.scale_bits,
                round: t.round,
                rounds: t.rounds,
                objective: &t.objective,
            }),
        }
    }

    /// Everything the parties agree on for this query proposed to `institutions` institutions.
    pub fn agreement(&self, institutions: usize) -> Result<QueryAgreement, AgreementError> {
        QueryAgreement::new(&self.terms(), institutions)
    }

    /// Sealed to the researcher's key, or public.
    pub fn release_mode(&self) -> ReleaseMode {
        self.terms().release_mode()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_move_one_step_forward_or_fail() {
        for from in Phase::ALL {
            for to in Phase::ALL {
                let allowed = from.may_become(to);
                let expected = !from.is_finished()
                    && (to == from || to == Phase::Failed || from.next() == Some(to));
                assert_eq!(allowed, expected, "{from} → {to}");
                assert_eq!(from.advance(to).is_ok(), allowed);
            }
        }
        assert!(Phase::Submitted.may_become(Phase::Proposed));
        assert!(!Phase::Submitted.may_become(Phase::Decrypting));
        assert!(!Phase::Released.may_become(Phase::Failed));
        assert!(!Phase::Failed.may_become(Phase::Released));
        assert_eq!(
            Phase::Decrypting.advance(Phase::Contributing),
            Err(TransitionError {
                from: Phase::Decrypting,
                to: Phase::Contributing
            })
        );
    }

    #[test]
    fn phases_keep_their_names_on_the_wire_and_in_the_store() {
        for phase in Phase::ALL {
            assert_eq!(Phase::from_wire(phase.to_wire()), Some(phase));
            let json = serde_json::to_string(&phase).unwrap();
            assert_eq!(json, format!("\"{phase}\""));
            let mut status = QueryStatus::default();
            status.set_phase(phase.to_wire());
            assert_eq!(status.phase_name(), phase.as_str());
            assert_eq!(status.is_finished(), phase.is_finished());
        }
        assert_eq!(Phase::of(&QueryStatus::default()), None);
    }

    #[test]
    fn refusal_codes_are_distinct_and_parse_back() {
        for code in RefusalCode::ALL {
            assert_eq!(RefusalCode::parse(code.as_str()), Some(code));
        }
        let mut names: Vec<_> = RefusalCode::ALL.iter().map(|c| c.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RefusalCode::ALL.len());
    }
}
