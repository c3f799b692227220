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

pub mod agreement;
pub mod dp;

pub use agreement::{AgreementError, QueryAgreement, QueryTerms, Release, ReleaseMode};

use concord_bfv::{params, BfvError, BfvParameters, Ciphertext, Plaintext, PublicKey, ValueRange};
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
        if statistic.values.len() != self.layout.cells() {
            return Err(QueryError::Cells {
                given: statistic.values.len(),
                expected: self.layout.cells(),
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

    /// Aggregated plaintexts (one per ciphertext, in order) → the template's cells (signed:
    /// DP noise can take a cell below zero).
    pub fn decode(&self, plaintexts: &[Plaintext]) -> Result<Vec<i128>, QueryError> {
        if plaintexts.len() != self.ciphertexts() {
            return Err(QueryError::Count {
                given: plaintexts.len(),
                expected: self.ciphertexts(),
            });
        }
        let slots: Vec<i64> = plaintexts.iter().flat_map(|pt| pt.decode()).collect();
        Ok(self.layout.from_slots(&slots)?)
    }
}
