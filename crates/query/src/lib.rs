//! A query's cryptographic life between the statistics catalogue and the engine (DESIGN.md §3–4):
//! a node turns its local [`Statistic`] into ciphertexts under the collective key; the
//! researcher's client turns the aggregated, decrypted plaintexts back into the template's cells.
//!
//! [`agreement`] derives everything node, coordinator and researcher agree on for one query —
//! plan, release mode, quorum, smudging — from the query's terms, in one place.
//!
//! A [`QueryPlan`] fixes the encoding both ends must agree on: the template and window (hence the
//! [`Layout`]), the parameter set — the first of the template's that computes it for the
//! institutions it is proposed to ([`QueryPlan::new`]), how many ciphertexts the slots need
//! (layouts larger than `N` slots span several, transparently), and the public range of every
//! slot. It refuses a plan whose aggregate could exceed the plaintext modulus for the number of
//! institutions it must hold, so an aggregate never wraps.
//!
//! It also fixes what is released of the aggregate ([`QueryPlan::evaluate`]): the sum itself
//! for the tables, or — for the overlap templates — the public circuit that counts the bins held
//! by exactly `j` institutions (`concord-bfv` `value_counts`), the counts released together by
//! shares of their constant coefficients alone ([`QueryPlan::decryptions`],
//! [`QueryPlan::key_switches`]). Node and coordinator both evaluate it, from the same sum with
//! the same pinned key, so every node decrypts only what it computed.

pub mod agreement;
pub mod dp;

pub use agreement::{
    AgreementError, QueryAgreement, QueryTerms, Release, ReleaseMode, TrainingTerms,
};

use concord_bfv::{
    params, BfvError, BfvParameters, Ciphertext, Plaintext, PublicKey, RelinearizationKey,
    ValueRange,
};
use concord_mhe::{CollectiveDecryption, MheError, NoiseEstimate, PublicKeySwitch, SmudgingPlan};
use concord_stats::learning::{check_model, Design, Objective, TrainConfig, TrainError};
use concord_stats::overlap::Bins;
use concord_stats::templates::overlap::{holders, most_holders};
use concord_stats::{Layout, Statistic, Template, TemplateError, Window};
use std::sync::Arc;

/// The most bins `--bins auto` gives an overlap query, over all its histograms: 64 ciphertexts
/// of `N = 16,384` (a contribution of about 100 MB) — what a node takes by default (its
/// policy's `max_ciphertexts`). A query may ask for more bins itself, as many as keep its
/// counts exact ([`QueryPlan::with_bins`]); each node's policy decides whether it takes them.
pub const AUTO_MAX_BINS: usize = 64 * 16384;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Bfv(#[from] BfvError),
    #[error(transparent)]
    Parameters(#[from] concord_bfv::ParameterError),
    #[error("template {template} names parameter set {set}, which this build does not know")]
    UnknownParameterSet {
        template: &'static str,
        set: &'static str,
    },
    #[error("template {template} cannot aggregate {institutions} institutions: each contribution spans {slot_bound} values per slot and parameter set {set} holds sums below {t}; at most {max} institutions")]
    TooManyInstitutions {
        template: &'static str,
        institutions: usize,
        slot_bound: u64,
        set: &'static str,
        t: u64,
        max: u64,
    },
    #[error("{given} ciphertexts or plaintexts where the plan has {expected}")]
    Count { given: usize, expected: usize },
    #[error("the statistic has {given} cells where the layout has {expected}")]
    Cells { given: usize, expected: usize },
    #[error("template {template} is computed for at most {max} institutions, under {set}, the widest of its parameter sets ({limit}); this query is proposed to {institutions}")]
    CommunityTooLarge {
        template: &'static str,
        institutions: usize,
        set: &'static str,
        max: usize,
        /// What stops it there.
        limit: &'static str,
    },
    #[error("{0}")]
    Bins(String),
    #[error("{0}")]
    Training(String),
    #[error(
        "the DP noise of this query is split over {needed} parties, and only {sharing} give shares"
    )]
    TooFewNoiseShares { sharing: usize, needed: usize },
    #[error("the overlap circuit needs the deployment's relinearization key, and none is pinned")]
    NoRelinearizationKey,
    #[error(transparent)]
    Dp(#[from] dp::DpError),
}

/// What node and client agree on for one query.
#[derive(Clone, Debug)]
pub struct QueryPlan {
    pub template: Template,
    pub window: Window,
    pub layout: Layout,
    pub params: Arc<BfvParameters>,
    pub max_institutions: usize,
    /// Differential privacy: every node adds its share of noise to every cell.
    pub dp: Option<dp::DpPlan>,
    /// A training template's round: the public model each node computes its gradient at.
    pub training: Option<Training>,
}

/// A round of training as node and researcher agree on it ([`QueryPlan::with_training`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Training {
    pub model: Vec<f64>,
    pub config: TrainConfig,
    pub round: u32,
}

impl QueryPlan {
    /// The plan for `template` over `window`, aggregating up to `max_institutions` contributions.
    pub fn new(
        template: Template,
        window: Window,
        max_institutions: usize,
    ) -> Result<Self, QueryError> {
        let mut layout = template.layout(&window);
        if layout.overlap.is_some() {
            // the circuit counts up to the institutions proposed to
            if let Some(last) = layout.dimensions.last_mut() {
                *last = holders(max_institutions.max(1));
            }
        }
        let mut plan = Self {
            params: parameters(template, layout.parameter_set)?,
            template,
            window,
            layout,
            max_institutions,
            dp: None,
            training: None,
        };
        plan.fit()?;
        if let Some(bins) = plan.layout.overlap.as_mut() {
            // the template's bins, in whole ciphertexts of the set's degree
            bins.per_group = bins.per_group.next_multiple_of(plan.params.degree());
        }
        Ok(plan)
    }

    /// Puts the plan under the first of its template's parameter sets that computes it for
    /// its institutions — whose plaintext modulus holds their sum ([`Self::check_range`]) and
    /// whose smudging hides the aggregate's noise at release with 40 bits of statistical
    /// security ([`Self::check_smudging`]) — or, for an overlap template, under the first whose
    /// circuit counts them (its bins are whole ciphertexts of that set). Node, coordinator and
    /// researcher derive the same set from the same terms and community. None: the widest
    /// set's refusal.
    fn fit(&mut self) -> Result<(), QueryError> {
        let sets = self.template.parameter_sets();
        let candidates: Vec<&'static str> = if self.layout.overlap.is_some() {
            vec![overlap_set(self.template, self.max_institutions)]
        } else {
            sets.to_vec()
        };
        let mut refusal = None;
        for set in candidates {
            if self.layout.parameter_set != set {
                self.params = parameters(self.template, set)?;
                self.layout.parameter_set = set;
            }
            match self.check_range().and_then(|()| self.check_smudging()) {
                Ok(()) => return Ok(()),
                Err(e) => refusal = Some(e),
            }
        }
        Err(refusal.expect("at least one candidate"))
    }

    /// Refuses a plan whose release, by every institution's share under the key of all of
    /// them, smudging could not hide with 40 bits of statistical security (sealed, the
    /// stricter of the two releases), or whose circuit does not count its institutions.
    fn check_smudging(&self) -> Result<(), QueryError> {
        let n = self.max_institutions;
        let overlap = self.layout.overlap.is_some();
        let too_large = |max: usize, limit: &'static str| QueryError::CommunityTooLarge {
            template: self.template.info().id,
            institutions: n,
            set: self.params.name(),
            max,
            limit,
        };
        if overlap && n > most_holders(self.params.name()) {
            return Err(too_large(most_holders(self.params.name()), CIRCUIT_LIMIT));
        }
        if self.released_securely(n) {
            return Ok(());
        }
        // the reach, for the refusal: the largest community it still releases for
        let (mut lo, mut hi) = (0usize, n);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.released_securely(mid) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Err(too_large(
            lo,
            "beyond it, smudging no longer hides the aggregate's noise with 40 bits of statistical security",
        ))
    }

    /// Whether the aggregate of `n` institutions, under their key, released sealed by all of
    /// them, keeps 40 bits of statistical security.
    fn released_securely(&self, n: usize) -> bool {
        let noise = self.output_noise(n, n);
        if self.layout.overlap.is_some() {
            SmudgingPlan::for_key_switch_at_lowest_level(&self.params, noise, n, n).is_ok()
        } else {
            SmudgingPlan::for_key_switch(&self.params, noise, n).is_ok()
        }
    }

    /// The same plan with differential privacy: `(ε, δ)` over at least `k` institutions
    /// ([`dp::DpPlan`]); the noise widens every slot's range (an overlap template's: every
    /// count's, [`QueryPlan::release_noise`]).
    pub fn with_dp(mut self, epsilon: f64, delta: f64, k: usize) -> Result<Self, QueryError> {
        if !self.layout.summary.is_empty() {
            return Err(dp::DpError::NotSupported(self.template.info().id).into());
        }
        self.dp = Some(dp::DpPlan::new(self.template, epsilon, delta, k)?);
        // the noise widens the range: a wider set may be needed
        self.fit()?;
        Ok(self)
    }

    /// The same overlap plan with `bins` bins per histogram instead of the template's own: a
    /// multiple of `N`, fewer than `t` (a count of bins must not wrap). More bins make merges
    /// rarer (docs/overlap.md) and cost linearly more: contributions, traffic and the circuit
    /// grow with the ciphertexts, and a node whose policy takes fewer ciphertexts refuses the
    /// query (`too-many-cells`).
    pub fn with_bins(mut self, bins: usize) -> Result<Self, QueryError> {
        let n = self.params.degree();
        let Some(current) = self.layout.overlap else {
            return Err(QueryError::Bins(format!(
                "template {} has no bins: only the overlap templates take a number of bins",
                self.template.info().id
            )));
        };
        let asked = Bins {
            per_group: bins,
            ..current
        };
        let t = self.params.plaintext_modulus();
        if bins == 0 || !bins.is_multiple_of(n) || bins as u64 >= t {
            return Err(QueryError::Bins(format!(
                "{bins} bins per histogram: a multiple of {n}, fewer than t = {t} (a count of bins must not wrap)"
            )));
        }
        self.layout.overlap = Some(asked);
        self.check_range()?;
        Ok(self)
    }

    /// The same plan of a training template with its round: `d` finite coefficients, a
    /// learning rate and scale within what the error bound holds for
    /// (`concord-stats` `learning::TrainConfig::check`), a round below the rounds. A training
    /// template without a round, or a round for another template, is refused.
    pub fn with_training(mut self, terms: Option<TrainingTerms>) -> Result<Self, QueryError> {
        let id = self.template.info().id;
        let (label, terms) = match (self.template.training_label(), terms) {
            (Some(label), Some(terms)) => (label, terms),
            (Some(_), None) => {
                return Err(QueryError::Training(format!(
                    "template {id} is a round of training: the query carries the model"
                )))
            }
            (None, _) => {
                return Err(QueryError::Training(format!(
                    "template {id} takes no model: only the train-* templates do"
                )))
            }
        };
        let d = Design::new(label).dimension();
        let objective = Objective::by_id(terms.objective).ok_or_else(|| {
            QueryError::Training(format!(
                "{id}: objective {:?}: logistic or linear",
                terms.objective
            ))
        })?;
        let config = TrainConfig {
            rounds: terms.rounds,
            learning_rate: terms.learning_rate,
            scale_bits: terms.scale_bits,
            objective,
        };
        let refused = |e: TrainError| QueryError::Training(format!("{id}: {e}"));
        check_model(terms.model, d).map_err(refused)?;
        config.check(d).map_err(refused)?;
        if terms.round >= terms.rounds {
            return Err(refused(TrainError::Round {
                round: terms.round,
                rounds: terms.rounds,
            }));
        }
        self.training = Some(Training {
            model: terms.model.to_vec(),
            config,
            round: terms.round,
        });
        Ok(self)
    }

    /// Refuses a plan whose aggregate could exceed the plaintext modulus.
    fn check_range(&self) -> Result<(), QueryError> {
        let t = self.params.plaintext_modulus();
        if let (Some(bins), Some(dp)) = (self.layout.overlap, &self.dp) {
            // a count and every sharing party's noise, centred modulo t
            let reach = bins.per_group as u64 + dp.bound as u64 * self.max_institutions as u64;
            if reach >= t / 2 {
                return Err(dp::DpError::NoiseTooWide { reach, t }.into());
            }
        }
        let width = self.slot_range().width().max(1) as u64;
        let max = (t - 1) / width;
        if self.max_institutions as u64 > max {
            return Err(QueryError::TooManyInstitutions {
                template: self.template.info().id,
                institutions: self.max_institutions,
                slot_bound: width,
                set: self.params.name(),
                t,
                max,
            });
        }
        Ok(())
    }

    /// A DP query's noise goes into every slot of a contribution, before encryption — or, for
    /// an overlap template, whose cells the circuit computes from the sum, into every sharing
    /// party's release share, one sample per count ([`QueryPlan::release_noise`]).
    fn slot_noise(&self) -> Option<&dp::DpPlan> {
        self.dp.as_ref().filter(|_| self.layout.overlap.is_none())
    }

    /// A releasing party's noise: for a DP overlap query, one sample per count, added inside
    /// its share (`concord-mhe` `share_with_noise`), so that the released counts carry the
    /// noise of every party giving shares — `sharing` of them, at least the `k` the noise is
    /// split for, or the release is refused. Empty otherwise.
    pub fn release_noise(&self, sharing: usize) -> Result<Vec<i64>, QueryError> {
        let Some(dp) = self.dp.as_ref().filter(|_| self.layout.overlap.is_some()) else {
            return Ok(Vec::new());
        };
        if sharing < dp.institutions {
            return Err(QueryError::TooFewNoiseShares {
                sharing,
                needed: dp.institutions,
            });
        }
        Ok(dp.sample(self.outputs())?)
    }

    /// Ciphertexts one contribution takes.
    pub fn ciphertexts(&self) -> usize {
        self.layout.slots().div_ceil(self.params.degree())
    }

    /// The public range of one institution's slot values (with its noise, under DP, where the
    /// noise goes into the slots).
    pub fn slot_range(&self) -> ValueRange {
        let noise = self.slot_noise().map_or(0, |dp| dp.bound) as i128;
        ValueRange {
            lo: -noise,
            hi: self.layout.slot_bound() as i128 + noise,
        }
    }

    /// The statistic's slots, batched `N` to a plaintext.
    pub fn encode(&self, statistic: &Statistic) -> Result<Vec<Plaintext>, QueryError> {
        if statistic.values.len() != self.layout.inputs() {
            return Err(QueryError::Cells {
                given: statistic.values.len(),
                expected: self.layout.inputs(),
            });
        }
        let mut slots = self.layout.to_slots(&statistic.values);
        if let Some(dp) = self.slot_noise() {
            for (slot, noise) in slots.iter_mut().zip(dp.sample(self.layout.cells())?) {
                *slot += noise;
            }
        }
        slots
            .chunks(self.params.degree())
            .map(|chunk| {
                Plaintext::encode(&self.params, chunk, self.slot_range()).map_err(Into::into)
            })
            .collect()
    }

    /// A node's contribution: the encoded statistic encrypted under the collective key and
    /// switched to the transmit level.
    pub fn encrypt(
        &self,
        collective_key: &PublicKey,
        statistic: &Statistic,
    ) -> Result<Vec<Ciphertext>, QueryError> {
        self.encode(statistic)?
            .iter()
            .map(|pt| {
                let mut ct = collective_key.encrypt(pt)?;
                ct.switch_to_transmit_level()?;
                Ok(ct)
            })
            .collect()
    }

    /// Ciphertexts released: one per aggregated ciphertext, or one per cell of an overlap
    /// template (a count each).
    pub fn outputs(&self) -> usize {
        match self.layout.overlap {
            Some(bins) => bins.histograms() * self.holders(),
            None => self.ciphertexts(),
        }
    }

    /// An overlap query's largest `j`: the institutions it is proposed to (at most what the
    /// widest of its sets counts, `most_holders`; the plan refuses more), a cell each per
    /// histogram.
    pub fn holders(&self) -> usize {
        self.max_institutions.max(1)
    }

    /// Plaintexts a release yields: one per output, or — for an overlap template — one
    /// holding every count (`concord-mhe` `Extent::Constants`).
    pub fn released(&self) -> usize {
        match self.layout.overlap {
            Some(_) => 1,
            None => self.outputs(),
        }
    }

    /// The joint decryptions of the outputs ([`QueryPlan::evaluate`]), at the smudging plan's
    /// level: each output whole, or the constant coefficients of an overlap template's counts
    /// together — nothing else of them decrypts.
    pub fn decryptions<'a>(
        &self,
        outputs: &'a [Ciphertext],
        smudging: SmudgingPlan,
    ) -> Result<Vec<CollectiveDecryption<'a>>, MheError> {
        match self.layout.overlap {
            Some(_) => Ok(vec![CollectiveDecryption::constants(outputs, smudging)?]),
            None => outputs
                .iter()
                .map(|ct| CollectiveDecryption::new(ct, smudging))
                .collect(),
        }
    }

    /// The key switches of the outputs to `recipient`, as [`QueryPlan::decryptions`]: an
    /// overlap template's counts become one ciphertext under the recipient's key.
    pub fn key_switches<'a>(
        &self,
        outputs: &'a [Ciphertext],
        recipient: &PublicKey,
        smudging: SmudgingPlan,
    ) -> Result<Vec<PublicKeySwitch<'a>>, MheError> {
        match self.layout.overlap {
            Some(_) => Ok(vec![PublicKeySwitch::constants(
                outputs, recipient, smudging,
            )?]),
            None => outputs
                .iter()
                .map(|ct| PublicKeySwitch::new(ct, recipient, smudging))
                .collect(),
        }
    }

    /// What is released of the aggregate `sum`: the sum itself, or — for an overlap
    /// template — per histogram, the count of the bins holding exactly `j = 1..=n`, `n` the
    /// institutions proposed to (`concord-bfv` `value_counts` over that histogram's
    /// ciphertexts, on the domain `0..=n`, under the deployment's relinearization key).
    /// Deterministic: node and coordinator get the same ciphertexts.
    pub fn evaluate(
        &self,
        sum: Vec<Ciphertext>,
        rlk: Option<&RelinearizationKey>,
    ) -> Result<Vec<Ciphertext>, QueryError> {
        let Some(bins) = self.layout.overlap else {
            return Ok(sum);
        };
        if sum.len() != self.ciphertexts() {
            return Err(QueryError::Count {
                given: sum.len(),
                expected: self.ciphertexts(),
            });
        }
        let rlk = rlk.ok_or(QueryError::NoRelinearizationKey)?;
        let per = bins.per_group / self.params.degree();
        let n = self.holders() as i64;
        let mut out = Vec::with_capacity(self.outputs());
        for histogram in sum.chunks(per) {
            out.extend(Ciphertext::value_counts(histogram, 0..=n, 1..=n, rlk)?);
        }
        Ok(out)
    }

    /// The noise of each released ciphertext, for `contributors` contributions under the key
    /// of `key_parties` parties.
    pub fn output_noise(&self, key_parties: usize, contributors: usize) -> NoiseEstimate {
        let sum = NoiseEstimate::aggregate(&self.params, key_parties, contributors);
        match self.layout.overlap {
            Some(bins) => sum.value_counted(
                &self.params,
                key_parties,
                self.holders() + 1,
                bins.per_group / self.params.degree(),
            ),
            None => sum,
        }
    }

    /// Released plaintexts ([`QueryPlan::released`], in order) → the template's cells (signed:
    /// DP noise can take a cell below zero). An overlap template's cells are the first
    /// coefficients of its one released plaintext, a count each.
    pub fn decode(&self, plaintexts: &[Plaintext]) -> Result<Vec<i128>, QueryError> {
        if plaintexts.len() != self.released() {
            return Err(QueryError::Count {
                given: plaintexts.len(),
                expected: self.released(),
            });
        }
        if self.layout.overlap.is_some() {
            // per histogram: j = 1..=n; under DP a count's noise can take it below zero
            // (centred modulo t)
            let t = self.params.plaintext_modulus();
            let centred = |c: u64| match self.dp {
                Some(_) if c > t / 2 => c as i128 - t as i128,
                _ => c as i128,
            };
            let counts = &plaintexts[0].coefficients()[..self.outputs()];
            return Ok(counts.iter().map(|&count| centred(count)).collect());
        }
        let slots: Vec<i64> = plaintexts.iter().flat_map(|pt| pt.decode()).collect();
        Ok(self.layout.from_slots(&slots)?)
    }
}

/// The merge rate an auto-sized overlap query aims at (`concord query submit --bins auto`): an
/// indicator shares its bin with another with probability at most 5 %.
pub const TARGET_MERGE_RATE: f64 = 0.05;

/// An overlap query's bins, sized from the indicators the institutions hold (the
/// `indicators-held` template's result): [`size_bins`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BinSizing {
    /// Bins per histogram, a multiple of `N`.
    pub per_group: usize,
    /// `N`: the slots of a ciphertext under the query's parameter set.
    pub slots: usize,
    /// The distinct indicators of a histogram sized for, at most: the sum over the groups of
    /// the indicators held (one histogram), or the largest group's (one per group).
    pub distinct: u64,
    /// The merge rate for that many distinct indicators: the result's, at most.
    pub merge_rate: f64,
    /// Whether [`AUTO_MAX_BINS`] held the bins below what `target` needed.
    pub capped: bool,
}

/// What stops an overlap query's community at its set's reach.
const CIRCUIT_LIMIT: &str = "the degree its circuit evaluates";

/// The set an overlap query proposed to `institutions` runs under: the first of the
/// template's whose circuit counts them, or the widest (which then refuses the plan).
fn overlap_set(template: Template, institutions: usize) -> &'static str {
    let sets = template.parameter_sets();
    sets.iter()
        .find(|set| most_holders(set) >= institutions)
        .unwrap_or_else(|| sets.last().expect("every template has a set"))
}

/// The built parameter set `set` of `template`.
fn parameters(template: Template, set: &'static str) -> Result<Arc<BfvParameters>, QueryError> {
    let spec = params::spec_by_name(set).ok_or(QueryError::UnknownParameterSet {
        template: template.info().id,
        set,
    })?;
    Ok(BfvParameters::new(spec)?)
}

/// The fewest bins per histogram of the overlap `template` that keep an indicator's chance of
/// sharing its bin at most `target`, given `held[g]`, the indicators of group `g` the
/// institutions hold summed over them (an upper bound of the distinct ones: an indicator held by
/// `k` institutions is counted `k` times, so the actual merge rate is at most the planned one):
/// with `D` distinct indicators in `B` bins the rate is `1 − (1 − 1/B)^{D−1}`, so
/// `B ≥ 1 / (1 − (1 − target)^{1/(D−1)})`, rounded up to a multiple of `N` and held to
/// [`AUTO_MAX_BINS`] over all histograms. `N` is that of the set a query proposed to
/// `institutions` runs under.
pub fn size_bins(
    template: Template,
    institutions: usize,
    held: &[u64],
    target: f64,
) -> Result<BinSizing, QueryError> {
    let Some(bins) = template.bins() else {
        return Err(QueryError::Bins(format!(
            "template {} has no bins: only the overlap templates are sized",
            template.info().id
        )));
    };
    if held.len() != concord_stats::indicators::GROUPS.len() {
        return Err(QueryError::Bins(format!(
            "{} counts of indicators held, one per type group ({}) expected",
            held.len(),
            concord_stats::indicators::GROUPS.len()
        )));
    }
    if !(target > 0.0 && target < 1.0) {
        return Err(QueryError::Bins(format!(
            "a target merge rate of {target}: between 0 and 1"
        )));
    }
    let set = overlap_set(template, institutions);
    if most_holders(set) < institutions {
        return Err(QueryError::CommunityTooLarge {
            template: template.info().id,
            institutions,
            set,
            max: most_holders(set),
            limit: CIRCUIT_LIMIT,
        });
    }
    let n = parameters(template, set)?.degree();
    let distinct = if bins.by_group {
        held.iter().copied().max().unwrap_or(0)
    } else {
        held.iter().sum()
    };
    let most = AUTO_MAX_BINS / bins.histograms() / n * n;
    let needed = if distinct <= 1 {
        1.0
    } else {
        // 1 − (1 − target)^{1/(D−1)}, without cancellation
        let per_bin = -((-target).ln_1p() / (distinct - 1) as f64).exp_m1();
        1.0 / per_bin
    };
    let mut per_group = ((needed / n as f64).ceil().max(1.0) as usize).saturating_mul(n);
    // the closed form in floating point: step up while the rate is still above the target
    while per_group < most
        && concord_stats::overlap::merge_rate(distinct as f64, per_group as u64) > target
    {
        per_group += n;
    }
    let per_group = per_group.min(most);
    let merge_rate = concord_stats::overlap::merge_rate(distinct as f64, per_group as u64);
    Ok(BinSizing {
        per_group,
        slots: n,
        distinct,
        merge_rate,
        capped: merge_rate > target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_stats::YearMonth;

    fn window() -> Window {
        Window::new(YearMonth::parse("2025-01").unwrap(), 12).unwrap()
    }

    #[test]
    fn a_dp_overlap_query_puts_its_noise_in_the_release_shares_not_the_bits() {
        for template in [Template::IndicatorOverlap, Template::IndicatorOverlapByType] {
            let plan = QueryPlan::new(template, window(), 4)
                .unwrap()
                .with_dp(1.0, 1e-6, 3)
                .unwrap();
            // presence bits stay bits: the contributions carry no noise
            let range = plan.slot_range();
            assert_eq!((range.lo, range.hi), (0, 1));
            let dp = plan.dp.as_ref().unwrap();
            assert_eq!(dp.cells, 2);
            assert_eq!(dp.sensitivity, std::f64::consts::SQRT_2);
            // one sample per released count, within the public bound
            let noise = plan.release_noise(4).unwrap();
            assert_eq!(noise.len(), plan.outputs());
            assert!(noise.iter().all(|x| x.abs() <= dp.bound));
            // fewer sharing parties than the noise is split for: refused
            assert_eq!(
                plan.release_noise(2),
                Err(QueryError::TooFewNoiseShares {
                    sharing: 2,
                    needed: 3
                })
            );
            // a count the noise took below zero decodes below zero
            let t = plan.params.plaintext_modulus();
            let mut coeffs = vec![0; plan.params.degree()];
            coeffs[0] = t - 3;
            coeffs[1] = 7;
            let released = Plaintext::from_coefficients(&plan.params, coeffs, range);
            let cells = plan.decode(&[released]).unwrap();
            assert_eq!(cells[..2], [-3, 7]);
            assert_eq!(cells.len(), plan.layout.cells());
        }
        // without DP no noise at release; a table's DP noise stays in its slots
        let overlap = QueryPlan::new(Template::IndicatorOverlap, window(), 4).unwrap();
        assert_eq!(overlap.release_noise(4), Ok(Vec::new()));
        let table = QueryPlan::new(Template::EventsByMonthTlpDistribution, window(), 4)
            .unwrap()
            .with_dp(1.0, 1e-6, 3)
            .unwrap();
        assert_eq!(table.release_noise(4), Ok(Vec::new()));
        assert!(table.slot_range().lo < 0);
    }

    #[test]
    fn an_overlap_query_releases_one_plaintext_of_counts() {
        let plan = QueryPlan::new(Template::IndicatorOverlapByType, window(), 5).unwrap();
        assert_eq!(plan.released(), 1);
        assert_eq!(plan.outputs(), 10 * 5);
        let mut coeffs = vec![0; plan.params.degree()];
        for (j, c) in coeffs.iter_mut().take(50).enumerate() {
            *c = j as u64 + 1;
        }
        let released = Plaintext::from_coefficients(&plan.params, coeffs, plan.slot_range());
        let cells = plan.decode(std::slice::from_ref(&released)).unwrap();
        // per group: j = 1..=5, a cell each, the groups one after the other
        assert_eq!(cells.len(), 10 * 5);
        assert_eq!(cells.len(), plan.layout.cells());
        assert_eq!(cells[..7], [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(plan.layout.dimensions[1].labels, ["1", "2", "3", "4", "5"]);
        assert!(matches!(
            plan.decode(&[released.clone(), released]),
            Err(QueryError::Count {
                given: 2,
                expected: 1
            })
        ));
    }

    /// The largest community each of `template`'s sets is taken for (0: never), found by
    /// bisection on the plan's own choice.
    fn reach(template: Template) -> Vec<(&'static str, usize)> {
        let sets = template.parameter_sets();
        let rank = |n: usize| match QueryPlan::new(template, window(), n) {
            Ok(plan) => sets.iter().position(|s| *s == plan.params.name()).unwrap(),
            Err(_) => sets.len(),
        };
        (0..sets.len())
            .map(|k| {
                let (mut lo, mut hi) = (0usize, 1usize << 20);
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if rank(mid) <= k {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                (sets[k], lo)
            })
            .collect()
    }

    /// A query runs under the first of its template's sets that computes it: 16 institutions'
    /// small counts fit `t = 65537`, a survey's 0/1 answers 51 (where smudging stops), 127
    /// institutions' attribute counts of up to 2^26 − 1 fit a 33-bit `t`, 153 institutions'
    /// aggregate is all `ADD-8192-T33`'s smudging hides, 39,321 all `ADD-8192-T33-Q120`'s;
    /// a round of training takes 511 institutions of up to 2^24 − 1 samples, the overlap
    /// circuit 16 and 127 holders. Past the last, the widest set's reason.
    #[test]
    fn a_query_runs_under_the_first_set_that_computes_it_for_its_community() {
        let expected: [(Template, &[(&str, usize)]); 6] = [
            (
                Template::EventsByMonthTlpDistribution,
                &[
                    ("ADD-8192", 16),
                    ("ADD-8192-T33", 153),
                    ("ADD-8192-T33-Q120", 39_321),
                ],
            ),
            (
                Template::SurveySharingMotivations,
                &[
                    ("ADD-8192", 51),
                    ("ADD-8192-T33", 153),
                    ("ADD-8192-T33-Q120", 39_321),
                ],
            ),
            (
                Template::TimeToPublish,
                &[("ADD-8192-T33", 153), ("ADD-8192-T33-Q120", 39_321)],
            ),
            (
                Template::AttributesByCategoryTypeToIds,
                &[("ADD-8192-T33", 127), ("ADD-8192-T33-Q120", 127)],
            ),
            (
                Template::TrainToIds,
                &[("ADD-8192-T33", 153), ("ADD-8192-T33-Q120", 511)],
            ),
            (
                Template::IndicatorOverlap,
                &[("MUL-16384-T26", 16), ("MUL-32768-T26", 127)],
            ),
        ];
        for (template, sets) in expected {
            assert_eq!(reach(template), sets, "{template:?}");
            let most = sets.last().unwrap().1;
            let refused = QueryPlan::new(template, window(), most + 1).unwrap_err();
            let said = match refused {
                QueryError::CommunityTooLarge { max, .. } => max,
                QueryError::TooManyInstitutions { max, .. } => max as usize,
                other => panic!("{template:?}: {other}"),
            };
            assert_eq!(said, most, "{template:?}");
        }
        // the figures the refusals give are the reach
        let refused = QueryPlan::new(Template::EventsByMonthTlpDistribution, window(), 40_000);
        assert!(matches!(
            refused,
            Err(QueryError::CommunityTooLarge {
                set: "ADD-8192-T33-Q120",
                max: 39_321,
                ..
            })
        ));
        let refused = QueryPlan::new(Template::IndicatorOverlap, window(), 128);
        assert!(matches!(
            refused,
            Err(QueryError::CommunityTooLarge {
                set: "MUL-32768-T26",
                max: 127,
                ..
            })
        ));
    }

    /// At the edge of every set a plan takes, the agreement's release keeps 40 bits of
    /// statistical security, sealed and public, with every institution's share.
    #[test]
    fn every_set_releases_the_largest_community_it_is_taken_for() {
        use crate::agreement::{QueryAgreement, Release};
        for (template, most) in [
            (Template::EventsByMonthTlpDistribution, 16),
            (Template::SurveySharingMotivations, 51),
            (Template::TimeToPublish, 153),
            (Template::TimeToPublish, 39_321),
            (Template::IndicatorOverlap, 16),
            (Template::IndicatorOverlap, 127),
        ] {
            let plan = QueryPlan::new(template, window(), most).unwrap();
            let researcher = concord_bfv::SecretKey::generate(&plan.params);
            for release in [
                Release::Public,
                Release::Sealed(PublicKey::generate(&researcher)),
            ] {
                let agreement = QueryAgreement {
                    plan: plan.clone(),
                    release,
                    min_institutions: 1,
                    institutions: most,
                    publish: false,
                };
                let smudging = agreement.smudging(most, most, most).unwrap();
                assert!(smudging.lambda >= 40.0, "{template:?} at {most}");
            }
        }
    }

    #[test]
    fn an_overlap_query_runs_under_the_set_that_counts_its_institutions() {
        for (institutions, set, degree) in [
            (1, "MUL-16384-T26", 16384),
            (16, "MUL-16384-T26", 16384),
            (17, "MUL-32768-T26", 32768),
            (100, "MUL-32768-T26", 32768),
            (127, "MUL-32768-T26", 32768),
        ] {
            for template in [Template::IndicatorOverlap, Template::IndicatorOverlapByType] {
                let plan = QueryPlan::new(template, window(), institutions).unwrap();
                assert_eq!(plan.params.name(), set);
                assert_eq!(plan.layout.parameter_set, set);
                // one cell per j = 1..=institutions, per histogram
                let holders = plan.layout.dimensions.last().unwrap();
                assert_eq!(holders.labels.len(), institutions);
                assert_eq!(holders.labels.last().unwrap(), &institutions.to_string());
                assert_eq!(plan.outputs(), plan.layout.cells());
                // the template's bins in whole ciphertexts of the set
                let bins = plan.layout.overlap.unwrap();
                assert!(bins.per_group.is_multiple_of(degree));
                assert!(bins.per_group >= template.bins().unwrap().per_group);
                // the circuit's output keeps enough noise budget for the release's smudging
                let smudging = SmudgingPlan::for_key_switch_at_lowest_level(
                    &plan.params,
                    plan.output_noise(institutions, institutions),
                    institutions,
                    institutions,
                )
                .unwrap();
                assert!(
                    smudging.lambda >= 40.0,
                    "{institutions}: λ {}",
                    smudging.lambda
                );
            }
        }
        // more than the last set counts: refused with the reason
        let err = QueryPlan::new(Template::IndicatorOverlap, window(), 128).unwrap_err();
        assert_eq!(
            err,
            QueryError::CommunityTooLarge {
                template: "indicator-overlap",
                institutions: 128,
                set: "MUL-32768-T26",
                max: 127,
                limit: CIRCUIT_LIMIT,
            }
        );
        // bins of the larger set: multiples of 32,768
        let large = QueryPlan::new(Template::IndicatorOverlap, window(), 20).unwrap();
        assert!(matches!(
            large.clone().with_bins(16384),
            Err(QueryError::Bins(_))
        ));
        assert_eq!(large.with_bins(2 * 32768).unwrap().ciphertexts(), 2);
        // sizing takes the set's N
        let mut held = [0u64; 10];
        held[0] = 100;
        let s = size_bins(Template::IndicatorOverlap, 20, &held, TARGET_MERGE_RATE).unwrap();
        assert_eq!((s.per_group, s.slots), (32768, 32768));
        assert!(size_bins(Template::IndicatorOverlap, 128, &held, 0.05).is_err());
    }

    #[test]
    fn an_overlap_query_may_ask_for_its_own_bins_within_bounds() {
        let plan = QueryPlan::new(Template::IndicatorOverlap, window(), 4).unwrap();
        assert_eq!(plan.ciphertexts(), 8);
        let fewer = plan.clone().with_bins(2 * 16384).unwrap();
        assert_eq!(fewer.ciphertexts(), 2);
        assert_eq!(fewer.layout.inputs(), 2 * 16384);
        assert_eq!(fewer.layout.cells(), plan.layout.cells());
        let by_type = QueryPlan::new(Template::IndicatorOverlapByType, window(), 4)
            .unwrap()
            .with_bins(3 * 16384)
            .unwrap();
        assert_eq!(by_type.ciphertexts(), 30);
        // t = 4,092·16,384 + 1: 4,093 ciphertexts of bins could wrap a count, 4,092 cannot
        for bins in [0, 1000, 16384 + 1, 4093 * 16384] {
            assert!(
                matches!(plan.clone().with_bins(bins), Err(QueryError::Bins(_))),
                "{bins}"
            );
        }
        assert_eq!(
            plan.clone().with_bins(4092 * 16384).unwrap().ciphertexts(),
            4092
        );
        // more than --bins auto gives (64 ciphertexts) is the nodes' policy to take or refuse
        assert_eq!(
            QueryPlan::new(Template::IndicatorOverlapByType, window(), 4)
                .unwrap()
                .with_bins(7 * 16384)
                .unwrap()
                .ciphertexts(),
            70
        );
        assert!(matches!(
            QueryPlan::new(Template::EventsByMonthTlpDistribution, window(), 4)
                .unwrap()
                .with_bins(16384),
            Err(QueryError::Bins(_))
        ));
    }

    #[test]
    fn bins_are_sized_for_the_indicators_held_and_no_larger() {
        use concord_stats::overlap::merge_rate;
        let n = 16384;
        let mut held = [0u64; 10];
        // a few indicators: one ciphertext
        held[0] = 100;
        let one = size_bins(Template::IndicatorOverlap, 16, &held, TARGET_MERGE_RATE).unwrap();
        assert_eq!((one.per_group, one.distinct, one.capped), (n, 100, false));
        // the sum over the groups for one histogram; the largest group per type
        held = [4_000, 3_000, 0, 0, 0, 1_000, 0, 0, 0, 0];
        for (template, distinct) in [
            (Template::IndicatorOverlap, 8_000u64),
            (Template::IndicatorOverlapByType, 4_000),
        ] {
            let s = size_bins(template, 16, &held, TARGET_MERGE_RATE).unwrap();
            assert_eq!(s.distinct, distinct);
            assert!(s.per_group.is_multiple_of(n) && !s.capped);
            // at most the target, and one ciphertext fewer would exceed it
            assert!(s.merge_rate <= TARGET_MERGE_RATE);
            assert_eq!(
                s.merge_rate,
                merge_rate(distinct as f64, s.per_group as u64)
            );
            assert!(merge_rate(distinct as f64, (s.per_group - n) as u64) > TARGET_MERGE_RATE);
            // what the plan takes
            QueryPlan::new(template, window(), 4)
                .unwrap()
                .with_bins(s.per_group)
                .unwrap();
        }
        // 16 institutions × 2^16 indicators: more than AUTO_MAX_BINS would keep at 5 %
        held = [1 << 20, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let s = size_bins(Template::IndicatorOverlap, 16, &held, TARGET_MERGE_RATE).unwrap();
        assert_eq!(s.per_group, AUTO_MAX_BINS);
        assert!(s.capped && s.merge_rate > TARGET_MERGE_RATE);
        let s = size_bins(
            Template::IndicatorOverlapByType,
            16,
            &held,
            TARGET_MERGE_RATE,
        )
        .unwrap();
        assert_eq!(s.per_group, AUTO_MAX_BINS / 10 / n * n);
        // refused: a table, a wrong count of groups, a target out of range
        assert!(size_bins(Template::TimeToPublish, 16, &held, 0.05).is_err());
        assert!(size_bins(Template::IndicatorOverlap, 16, &held[..3], 0.05).is_err());
        assert!(size_bins(Template::IndicatorOverlap, 16, &held, 0.0).is_err());
    }
}
