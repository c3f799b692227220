//! The query agreement: everything node, coordinator and researcher must agree on for one
//! query, derived in **one place** from the query's terms (DESIGN.md §4).
//!
//! A signed query names a template and version, a window, the fewest institutions `k`, an
//! optional `(ε, δ)` and a recipient key. From those terms and the number of institutions the
//! query is proposed to, [`QueryAgreement::new`] derives
//!
//! - the [`QueryPlan`]: layout, parameter set, ciphertexts per contribution, slot ranges and
//!   the DP noise each node adds ([`crate::dp::DpPlan`]);
//! - the [`Release`]: sealed to the researcher's key (PCKS) or public to the community (CKS);
//! - the quorum: how many contributions a result needs ([`QueryAgreement::quorum`]);
//! - the smudging of every decryption or key-switch share ([`QueryAgreement::smudging`]).
//!
//! A node refuses a query whose agreement cannot be made, with the machine-readable code of
//! [`AgreementError::code`]; the coordinator and the researcher's client derive the very same
//! values, so no security-relevant value is computed twice by parallel code.

use crate::dp::DpError;
use crate::{QueryError, QueryPlan};
use concord_bfv::PublicKey;
use concord_mhe::{MheError, SmudgingPlan};
use concord_stats::{Template, Window, YearMonth};

/// A query's terms as the researcher signed them (the wire's `QuerySpec`, borrowed).
#[derive(Clone, Copy, Debug, Default)]
pub struct QueryTerms<'a> {
    pub template: &'a str,
    pub template_version: u32,
    /// First month of the window, `YYYY-MM`.
    pub window_first: &'a str,
    pub window_months: u32,
    /// The fewest contributing institutions the researcher accepts.
    pub min_institutions: u32,
    /// The researcher's public key; empty for a result public to the community.
    pub recipient_key: &'a [u8],
    /// Differential privacy; `epsilon = 0`: none.
    pub epsilon: f64,
    pub delta: f64,
    /// The result is to be published to MISP.
    pub publish: bool,
    /// An overlap query's bins per histogram; 0: the template's own ([`QueryPlan::with_bins`]).
    pub bins: u32,
    /// A training template's round: the model and how it is trained
    /// ([`QueryPlan::with_training`]); `None` for the other templates.
    pub training: Option<TrainingTerms<'a>>,
}

/// A training round's terms (the wire's `TrainingRound`, borrowed).
#[derive(Clone, Copy, Debug, Default)]
pub struct TrainingTerms<'a> {
    pub model: &'a [f64],
    pub learning_rate: f64,
    pub scale_bits: u32,
    pub round: u32,
    pub rounds: u32,
    /// `logistic` (or empty) or `linear` (`concord-stats` `learning::Objective`).
    pub objective: &'a str,
}

impl QueryTerms<'_> {
    /// How the result is released, from the terms alone (no key parsed).
    pub fn release_mode(&self) -> ReleaseMode {
        ReleaseMode::of(self.recipient_key)
    }

    /// The query's template, at the version the query names.
    pub fn template(&self) -> Result<Template, AgreementError> {
        let template = Template::by_id(self.template)
            .map_err(|e| AgreementError::UnknownTemplate(e.to_string()))?;
        let version = template.info().version;
        if self.template_version != version {
            return Err(AgreementError::UnknownTemplate(format!(
                "{} v{} (this build has v{version})",
                self.template, self.template_version
            )));
        }
        Ok(template)
    }

    /// The query's window of months.
    pub fn window(&self) -> Result<Window, AgreementError> {
        let first = YearMonth::parse(self.window_first).ok_or_else(|| {
            AgreementError::InvalidWindow(format!(
                "window start {:?} is not YYYY-MM",
                self.window_first
            ))
        })?;
        Window::new(first, self.window_months.min(u16::MAX as u32) as u16)
            .map_err(|e| AgreementError::InvalidWindow(e.to_string()))
    }
}

/// How a result is released.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ReleaseMode {
    /// Key-switched to the researcher's public key (PCKS): only they can read it.
    Sealed,
    /// Jointly decrypted (CKS): public to the community.
    #[default]
    Public,
}

impl ReleaseMode {
    /// The mode a recipient key asks for: none (empty) is a public result.
    pub fn of(recipient_key: &[u8]) -> Self {
        if recipient_key.is_empty() {
            Self::Public
        } else {
            Self::Sealed
        }
    }

    /// `sealed` or `public`, as audit logs and operators read it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sealed => "sealed",
            Self::Public => "public",
        }
    }

    /// The protocol that releases it, in words.
    pub fn protocol(self) -> &'static str {
        match self {
            Self::Sealed => "key switch to the researcher (PCKS)",
            Self::Public => "joint decryption, public (CKS)",
        }
    }
}

impl std::fmt::Display for ReleaseMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a result is released, with the recipient's key.
#[derive(Clone, Debug)]
pub enum Release {
    Sealed(PublicKey),
    Public,
}

impl Release {
    pub fn mode(&self) -> ReleaseMode {
        match self {
            Self::Sealed(_) => ReleaseMode::Sealed,
            Self::Public => ReleaseMode::Public,
        }
    }

    /// The researcher's key of a sealed result.
    pub fn recipient(&self) -> Option<&PublicKey> {
        match self {
            Self::Sealed(key) => Some(key),
            Self::Public => None,
        }
    }
}

/// Why a query's agreement cannot be made; [`Self::code`] is what a refusing node answers.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgreementError {
    #[error("{0}")]
    UnknownTemplate(String),
    #[error("{0}")]
    InvalidWindow(String),
    #[error("{0}")]
    TooManyInstitutions(QueryError),
    #[error("{0}")]
    DpNotSupported(QueryError),
    #[error("{0}")]
    InvalidDp(QueryError),
    #[error("recipient key: {0}")]
    InvalidRecipientKey(String),
    #[error("{0}")]
    InvalidBins(QueryError),
    #[error("{0}")]
    InvalidTraining(QueryError),
}

impl AgreementError {
    /// The stable, machine-readable refusal code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownTemplate(_) => "unknown-template",
            Self::InvalidWindow(_) => "invalid-window",
            Self::TooManyInstitutions(_) => "too-many-institutions",
            Self::DpNotSupported(_) => "dp-not-supported",
            Self::InvalidDp(_) => "invalid-dp",
            Self::InvalidRecipientKey(_) => "invalid-recipient-key",
            Self::InvalidBins(_) | Self::InvalidTraining(_) => "invalid-query",
        }
    }
}

/// Everything the parties of one query agree on.
#[derive(Clone, Debug)]
pub struct QueryAgreement {
    pub plan: QueryPlan,
    pub release: Release,
    /// The fewest contributing institutions the researcher accepts (`k`).
    pub min_institutions: usize,
    /// The number of institutions the query is proposed to (`N`).
    pub institutions: usize,
    pub publish: bool,
}

impl QueryAgreement {
    /// The agreement for `terms` proposed to `institutions` institutions.
    pub fn new(terms: &QueryTerms, institutions: usize) -> Result<Self, AgreementError> {
        let template = terms.template()?;
        let window = terms.window()?;
        let mut plan = QueryPlan::new(template, window, institutions)
            .map_err(AgreementError::TooManyInstitutions)?;
        if terms.bins != 0 {
            plan = plan
                .with_bins(terms.bins as usize)
                .map_err(AgreementError::InvalidBins)?;
        }
        if template.training_label().is_some() || terms.training.is_some() {
            plan = plan
                .with_training(terms.training)
                .map_err(AgreementError::InvalidTraining)?;
        }
        if terms.epsilon > 0.0 {
            plan = plan
                .with_dp(terms.epsilon, terms.delta, terms.min_institutions as usize)
                .map_err(|e| match e {
                    QueryError::Dp(DpError::NotSupported(_)) => AgreementError::DpNotSupported(e),
                    QueryError::TooManyInstitutions { .. } => {
                        AgreementError::TooManyInstitutions(e)
                    }
                    _ => AgreementError::InvalidDp(e),
                })?;
        }
        let release = match terms.release_mode() {
            ReleaseMode::Public => Release::Public,
            ReleaseMode::Sealed => {
                let key =
                    PublicKey::from_bytes(&plan.params, terms.recipient_key).map_err(|e| {
                        // the set follows the community: say so where it has a choice
                        let why = if template.parameter_sets().len() > 1 {
                            format!(
                                " (a {} query proposed to {institutions} institutions runs under {})",
                                template.info().id,
                                plan.params.name()
                            )
                        } else {
                            String::new()
                        };
                        AgreementError::InvalidRecipientKey(format!(
                            "not a {} public key: {e}{why}",
                            plan.params.name()
                        ))
                    })?;
                if !key.is_well_formed() {
                    return Err(AgreementError::InvalidRecipientKey(
                        "degenerate (a zero or constant half): a result sealed to it would be readable by anyone".into(),
                    ));
                }
                Release::Sealed(key)
            }
        };
        Ok(Self {
            plan,
            release,
            min_institutions: terms.min_institutions as usize,
            institutions,
            publish: terms.publish,
        })
    }

    /// Contributions a result needs: every institution's in all-party mode (`threshold`
    /// `None`), at least `max(T, k)` in threshold mode.
    pub fn quorum(&self, threshold: Option<usize>) -> usize {
        match threshold {
            None => self.institutions,
            Some(t) => t.max(self.min_institutions),
        }
    }

    /// Agreements a query needs before anything is computed: `k` in all-party mode (where any
    /// refusal stops it anyway), `max(T, k)` in threshold mode.
    pub fn agreements_needed(&self, threshold: Option<usize>) -> usize {
        match threshold {
            None => self.min_institutions,
            Some(t) => t.max(self.min_institutions),
        }
    }

    /// The smudging of every share of the aggregate of `contributors` contributions under a
    /// collective key of `key_parties` parties, released by `sharing` parties' shares — sized
    /// for the release mode's protocol (PCKS or CKS). An overlap query's counts are switched
    /// to the plan's level first.
    pub fn smudging(
        &self,
        key_parties: usize,
        contributors: usize,
        sharing: usize,
    ) -> Result<SmudgingPlan, MheError> {
        let params = &self.plan.params;
        let noise = self.plan.output_noise(key_parties, contributors);
        match (self.plan.layout.overlap.is_some(), &self.release) {
            (false, Release::Sealed(_)) => SmudgingPlan::for_key_switch(params, noise, sharing),
            (false, Release::Public) => SmudgingPlan::for_decryption(params, noise, sharing),
            // a circuit's output is switched down to where smudging hides its noise
            (true, Release::Sealed(_)) => {
                SmudgingPlan::for_key_switch_at_lowest_level(params, noise, key_parties, sharing)
            }
            (true, Release::Public) => {
                SmudgingPlan::for_decryption_at_lowest_level(params, noise, key_parties, sharing)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_bfv::SecretKey;
    use concord_mhe::NoiseEstimate;

    fn terms<'a>(template: &'a str, version: u32) -> QueryTerms<'a> {
        QueryTerms {
            template,
            template_version: version,
            window_first: "2024-01",
            window_months: 6,
            min_institutions: 2,
            ..Default::default()
        }
    }

    #[test]
    fn every_failure_has_its_code() {
        let t = Template::by_id("time-to-publish").unwrap();
        let v = t.info().version;
        let code = |terms: QueryTerms| QueryAgreement::new(&terms, 3).unwrap_err().code();
        assert_eq!(code(terms("no-such-template", 1)), "unknown-template");
        assert_eq!(code(terms("time-to-publish", v + 1)), "unknown-template");
        let mut bad_window = terms("time-to-publish", v);
        bad_window.window_first = "2024-13";
        assert_eq!(code(bad_window), "invalid-window");
        let mut bad_key = terms("time-to-publish", v);
        bad_key.recipient_key = b"not a key";
        assert_eq!(code(bad_key), "invalid-recipient-key");
        let mut bad_dp = terms("events-by-month-tlp-distribution", 1);
        bad_dp.template_version = Template::by_id(bad_dp.template).unwrap().info().version;
        bad_dp.epsilon = 100.0;
        bad_dp.delta = 1e-6;
        assert_eq!(code(bad_dp), "invalid-dp");
        // bins: only for an overlap template, and only a multiple of N
        let mut bins_of_a_table = terms("time-to-publish", v);
        bins_of_a_table.bins = 16384;
        assert_eq!(code(bins_of_a_table), "invalid-query");
        let mut odd_bins = terms("indicator-overlap", 1);
        odd_bins.bins = 1000;
        assert_eq!(code(odd_bins), "invalid-query");
        odd_bins.bins = 2 * 16384;
        let agreed = QueryAgreement::new(&odd_bins, 3).unwrap();
        assert_eq!(agreed.plan.ciphertexts(), 2);
        let err = QueryAgreement::new(&terms("time-to-publish", v), 1_000_000).unwrap_err();
        assert_eq!(err.code(), "too-many-institutions");
        // an overlap query past the last set's reach
        let err = QueryAgreement::new(&terms("indicator-overlap", 1), 128).unwrap_err();
        assert_eq!(err.code(), "too-many-institutions");
    }

    #[test]
    fn a_round_of_training_carries_a_model_the_bound_holds_for() {
        let d =
            concord_stats::learning::Design::new(concord_stats::learning::Label::ToIds).dimension();
        let model = vec![0.5; d];
        let round = TrainingTerms {
            model: &model,
            learning_rate: 0.1,
            scale_bits: 16,
            round: 2,
            rounds: 10,
            objective: "",
        };
        let mut agreed = terms("train-to-ids", 1);
        agreed.training = Some(round);
        let plan = QueryAgreement::new(&agreed, 4).unwrap().plan;
        let training = plan.training.unwrap();
        assert_eq!((training.model, training.round), (model.clone(), 2));
        assert_eq!(training.config.rounds, 10);
        let code = |training: Option<TrainingTerms>, template: &'static str| {
            let mut t = terms(template, 1);
            t.training = training;
            QueryAgreement::new(&t, 4).unwrap_err()
        };
        // a training template without its model; a model for a table
        assert_eq!(code(None, "train-to-ids").code(), "invalid-query");
        let mut table = terms("time-to-publish", 1);
        table.template_version = Template::by_id("time-to-publish").unwrap().info().version;
        table.training = Some(round);
        assert_eq!(
            QueryAgreement::new(&table, 4).unwrap_err().code(),
            "invalid-query"
        );
        // a coefficient short, one not finite, a step too large, too few bits, a late round
        let short = vec![0.0; d - 1];
        let mut infinite = model.clone();
        infinite[3] = f64::NAN;
        for (bad, why) in [
            (
                TrainingTerms {
                    model: &short,
                    ..round
                },
                "coefficients",
            ),
            (
                TrainingTerms {
                    model: &infinite,
                    ..round
                },
                "coefficient 3",
            ),
            (
                TrainingTerms {
                    learning_rate: 1.0,
                    ..round
                },
                "learning rate",
            ),
            (
                TrainingTerms {
                    scale_bits: 2,
                    ..round
                },
                "scale",
            ),
            (TrainingTerms { round: 10, ..round }, "round 10 of 10"),
            (
                TrainingTerms {
                    objective: "poisson",
                    ..round
                },
                "objective",
            ),
            // a step the logistic bound holds for is too large for linear regression
            (
                TrainingTerms {
                    learning_rate: 4.0 / d as f64,
                    objective: "linear",
                    ..round
                },
                "learning rate",
            ),
        ] {
            let err = code(Some(bad), "train-to-ids");
            assert_eq!(err.code(), "invalid-query");
            assert!(err.to_string().contains(why), "{err}");
        }
        // no DP for a round yet: refused as such
        let mut dp = agreed;
        (dp.epsilon, dp.delta) = (1.0, 1e-6);
        assert_eq!(
            QueryAgreement::new(&dp, 4).unwrap_err().code(),
            "dp-not-supported"
        );
    }

    #[test]
    fn an_overlap_query_is_sealed_to_the_key_of_the_set_its_community_takes() {
        let small = QueryAgreement::new(&terms("indicator-overlap", 1), 16).unwrap();
        let key = PublicKey::generate(&SecretKey::generate(&small.plan.params)).to_bytes();
        let mut sealed = terms("indicator-overlap", 1);
        sealed.recipient_key = &key;
        // 16 institutions: MUL-16384-T26, the key's set
        let agreed = QueryAgreement::new(&sealed, 16).unwrap();
        assert_eq!(agreed.release.mode(), ReleaseMode::Sealed);
        // 17: MUL-32768-T26, and the refusal says why the key no longer fits
        let err = QueryAgreement::new(&sealed, 17).unwrap_err();
        assert_eq!(err.code(), "invalid-recipient-key");
        let why = err.to_string();
        assert!(
            why.contains("not a MUL-32768-T26 public key")
                && why.contains("proposed to 17 institutions"),
            "{why}"
        );
    }

    #[test]
    fn release_quorum_and_smudging_follow_the_terms() {
        let t = Template::by_id("time-to-publish").unwrap();
        let public = QueryAgreement::new(&terms(t.info().id, t.info().version), 4).unwrap();
        assert_eq!(public.release.mode(), ReleaseMode::Public);
        assert_eq!(public.quorum(None), 4);
        assert_eq!(public.quorum(Some(3)), 3);
        assert_eq!(public.agreements_needed(None), 2);
        let key = PublicKey::generate(&SecretKey::generate(&public.plan.params)).to_bytes();
        let mut sealed_terms = terms(t.info().id, t.info().version);
        sealed_terms.recipient_key = &key;
        sealed_terms.min_institutions = 4;
        let sealed = QueryAgreement::new(&sealed_terms, 4).unwrap();
        assert_eq!(sealed.release.mode(), ReleaseMode::Sealed);
        assert_eq!(sealed.quorum(Some(3)), 4);
        // each release mode sizes its smudging for its own protocol
        let params = &public.plan.params;
        let noise = NoiseEstimate::aggregate(params, 4, 3);
        let cks = SmudgingPlan::for_decryption(params, noise, 2).unwrap();
        let pcks = SmudgingPlan::for_key_switch(params, noise, 2).unwrap();
        assert_eq!(public.smudging(4, 3, 2).unwrap(), cks);
        assert_eq!(sealed.smudging(4, 3, 2).unwrap(), pcks);
        assert!(cks.lambda >= 40.0 && pcks.lambda >= 40.0);
    }
}
