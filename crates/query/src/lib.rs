//! A query's cryptographic life between the statistics catalogue and the engine (DESIGN.md §3–4):
//! a node turns its local [`Statistic`] into ciphertexts under the collective key; the
//! researcher's client turns the aggregated, decrypted plaintexts back into the template's cells.
//!
//! [`agreement`] derives everything node, coordinator and researcher agree on for one query —
//! plan, release mode, quorum, smudging — from the query's terms, in one place.
//!
//! A [`QueryPlan`] fixes the encoding both ends must agree on: the template and window (hence the
//! [`Layout`]), the parameter set the template names, how many ciphertexts the slots need
//! (layouts larger than `N` slots span several, transparently), and the public range of every
//! slot. It refuses a plan whose aggregate could exceed the plaintext modulus for the number of
//! institutions it must hold, so an aggregate never wraps.
//!
//! It also fixes what is released of the aggregate ([`QueryPlan::evaluate`]): the sum itself
//! for the tables, or — for the overlap templates — the public circuit that counts the bins held
//! by exactly `j` institutions (`concord-bfv` `value_counts`), each count released by shares of
//! its constant coefficient alone ([`QueryPlan::extent`]). Node and coordinator both evaluate
//! it, from the same sum with the same pinned key, so every node decrypts only what it computed.

pub mod agreement;
pub mod dp;

pub use agreement::{AgreementError, QueryAgreement, QueryTerms, Release, ReleaseMode};

use concord_bfv::{
    params, BfvError, BfvParameters, Ciphertext, Plaintext, PublicKey, RelinearizationKey,
    ValueRange,
};
use concord_mhe::{Extent, NoiseEstimate};
use concord_stats::templates::overlap::MAX_HOLDERS;
use concord_stats::{Layout, Statistic, Template, TemplateError, Window};
use std::sync::Arc;

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
    #[error("template {template} counts indicators held by up to {max} institutions; this query is proposed to {institutions}")]
    TooManyHolders {
        template: &'static str,
        institutions: usize,
        max: usize,
    },
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
}

impl QueryPlan {
    /// The plan for `template` over `window`, aggregating up to `max_institutions` contributions.
    pub fn new(
        template: Template,
        window: Window,
        max_institutions: usize,
    ) -> Result<Self, QueryError> {
        let layout = template.layout(&window);
        let id = template.info().id;
        let spec =
            params::spec_by_name(layout.parameter_set).ok_or(QueryError::UnknownParameterSet {
                template: id,
                set: layout.parameter_set,
            })?;
        let params = BfvParameters::new(spec)?;
        let plan = Self {
            template,
            window,
            layout,
            params,
            max_institutions,
            dp: None,
        };
        plan.check_range()?;
        Ok(plan)
    }

    /// The same plan with differential privacy: `(ε, δ)` over at least `k` institutions
    /// ([`dp::DpPlan`]); the noise widens every slot's range.
    pub fn with_dp(mut self, epsilon: f64, delta: f64, k: usize) -> Result<Self, QueryError> {
        if !self.layout.summary.is_empty() {
            return Err(dp::DpError::NotSupported(self.template.info().id).into());
        }
        self.dp = Some(dp::DpPlan::new(self.template, epsilon, delta, k)?);
        self.check_range()?;
        Ok(self)
    }

    /// Refuses a plan whose aggregate could exceed the plaintext modulus.
    fn check_range(&self) -> Result<(), QueryError> {
        if self.layout.overlap.is_some() && self.max_institutions > MAX_HOLDERS {
            return Err(QueryError::TooManyHolders {
                template: self.template.info().id,
                institutions: self.max_institutions,
                max: MAX_HOLDERS,
            });
        }
        let t = self.params.plaintext_modulus();
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

    /// Ciphertexts one contribution takes.
    pub fn ciphertexts(&self) -> usize {
        self.layout.slots().div_ceil(self.params.degree())
    }

    /// The public range of one institution's slot values (with its noise, under DP).
    pub fn slot_range(&self) -> ValueRange {
        let noise = self.dp.as_ref().map_or(0, |dp| dp.bound) as i128;
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
        if let Some(dp) = &self.dp {
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

    /// An overlap query's largest `j`: the institutions it is proposed to (at most
    /// [`MAX_HOLDERS`]); the cells above it are 0 by construction and not computed.
    pub fn holders(&self) -> usize {
        self.max_institutions.min(MAX_HOLDERS)
    }

    /// What of each released ciphertext is decrypted: all of it, or a count's constant
    /// coefficient alone.
    pub fn extent(&self) -> Extent {
        match self.layout.overlap {
            Some(_) => Extent::Constant,
            None => Extent::All,
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

    /// Released plaintexts (one per output, in order) → the template's cells (signed: DP
    /// noise can take a cell below zero). An overlap template's cells are the constant
    /// coefficients of its counts.
    pub fn decode(&self, plaintexts: &[Plaintext]) -> Result<Vec<i128>, QueryError> {
        if plaintexts.len() != self.outputs() {
            return Err(QueryError::Count {
                given: plaintexts.len(),
                expected: self.outputs(),
            });
        }
        if self.layout.overlap.is_some() {
            // per histogram: j = 1..=n released, j = n+1..=MAX_HOLDERS zero
            let mut cells = Vec::with_capacity(self.layout.cells());
            for histogram in plaintexts.chunks(self.holders()) {
                cells.extend(histogram.iter().map(|pt| pt.constant_coefficient() as i128));
                cells.extend(std::iter::repeat_n(0, MAX_HOLDERS - self.holders()));
            }
            return Ok(cells);
        }
        let slots: Vec<i64> = plaintexts.iter().flat_map(|pt| pt.decode()).collect();
        Ok(self.layout.from_slots(&slots)?)
    }
}
