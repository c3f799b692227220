//! One query's run, from its recorded phase to its end: the phases in order (proposal,
//! contribution — every contributor commits —, verification — the roster is fixed, every
//! contributor signs it and reveals its contribution —, release), each made durable before
//! the next starts, so a query caught by a restart resumes where it was. The values every party agrees on come from
//! the query's [`QueryAgreement`], derived once here.

use crate::pool::Step;
use crate::store::{QueryRecord, QueryStore};
use crate::{Coordinator, CoordinatorError, QueryOutcome};
use concord_api::evidence;
use concord_api::lifecycle::Phase;
use concord_api::v1::{Contribution, QuerySpec};
use concord_bfv::Ciphertext;
use concord_query::{QueryAgreement, ReleaseMode};
use prost::Message;
use std::collections::HashMap;
use std::time::Instant;

/// A query in flight: its record, its terms (recipient key included), its agreement, the
/// commitments of the roster, the contributions revealed and their running sum.
pub(crate) struct QueryRun {
    pub record: QueryRecord,
    pub spec: QuerySpec,
    pub agreement: QueryAgreement,
    pub binding: evidence::QueryBinding,
    pub sum: Vec<Ciphertext>,
    /// Encoded `Commitment`s, in the order of `record.contributed`.
    pub commitments: Vec<Vec<u8>>,
    /// Revealed contributions, by node.
    pub revealed: HashMap<String, Contribution>,
}

impl QueryRun {
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// Moves the query to `phase` (a transition of the lifecycle) and records it durably.
    pub fn advance(&mut self, store: &QueryStore, phase: Phase) -> Result<(), CoordinatorError> {
        self.record.phase = self.record.phase.advance(phase)?;
        store.put(&self.record)?;
        Ok(())
    }
}

impl Coordinator {
    /// Runs a query to its end (recorded in the store under its id, which derives from the
    /// signed query: `concord-api` `submission::query_id`), for the researcher whose
    /// certificate (DER) is given — nodes check the query's signature with it. A query run
    /// before is resumed, or its result served.
    pub async fn run_query(
        &mut self,
        spec: QuerySpec,
        researcher_certificate: &[u8],
    ) -> Result<QueryOutcome, CoordinatorError> {
        let query_id = &concord_api::submission::query_id(&spec);
        let record = match self.store.get(query_id)? {
            Some(record) => record,
            None => {
                // a query no node could agree to is refused before it is stored, as Submit
                // refuses it (a non-finite model would not even store)
                spec.agreement(self.pool.len().max(spec.min_institutions as usize))?;
                let key = spec.recipient_key.clone();
                let researcher = concord_api::pki::identity_of(researcher_certificate)
                    .map(|id| id.name)
                    .unwrap_or_default();
                let record = QueryRecord::submitted(
                    query_id.into(),
                    researcher,
                    researcher_certificate.to_vec(),
                    spec,
                );
                self.store.submit(&record, &key)?;
                record
            }
        };
        self.run(record).await
    }

    /// Drives a stored query from its recorded phase to its end, and records the end: the
    /// result (`released`, final: a released query is never decrypted again) or the failure.
    pub async fn run(&mut self, record: QueryRecord) -> Result<QueryOutcome, CoordinatorError> {
        if record.phase == Phase::Released {
            let sealed = self.store.sealed_result(&record.id)?;
            return Ok(QueryOutcome::of(&record, sealed));
        }
        let id = record.id.clone();
        let result = self.drive(record).await;
        let mut record = self
            .store
            .get(&id)?
            .ok_or_else(|| CoordinatorError::Vanished(id.clone()))?;
        match &result {
            Ok(outcome) => {
                record.phase = record.phase.advance(Phase::Released)?;
                record.detail.clear();
                record.cells = outcome.cells.iter().map(i128::to_string).collect();
                record.institutions = outcome.contributors.len() as u32;
                record.shares_from = outcome.shares_from.clone();
                record.smudging_lambda = outcome.smudging_lambda;
            }
            Err(e) => {
                record.phase = Phase::Failed;
                record.detail = e.to_string();
            }
        }
        let sealed = result.as_ref().map_or(&[][..], |o| &o.sealed[..]);
        self.store.finish(&record, sealed)?;
        metrics::counter!("concord_queries_finished_total", "outcome" => record.phase.as_str())
            .increment(1);
        tracing::info!(query = %record.id, phase = %record.phase, detail = %record.detail, "query finished");
        result
    }

    /// The phases, in order, from the one recorded.
    async fn drive(&mut self, record: QueryRecord) -> Result<QueryOutcome, CoordinatorError> {
        let n = self.pool.len();
        if n < 2 {
            return Err(CoordinatorError::TooFewNodes { enrolled: n });
        }
        let mut spec = record.spec();
        if record.release == ReleaseMode::Sealed {
            spec.recipient_key = self.store.recipient_key(&record.id)?;
        }
        let agreement = spec.agreement(n)?;
        let params = agreement.plan.params.clone();
        let mut record = record;
        if record.deployment.is_empty() {
            record.deployment = self.deployment_digest(&params).await?.to_vec();
        }
        let deployment: [u8; 32] = record.deployment[..].try_into().map_err(|_| {
            CoordinatorError::Stored("a deployment digest of the wrong length".into())
        })?;
        let sum = self
            .store
            .partial_sum(&record.id)?
            .unwrap_or_default()
            .iter()
            .map(|bytes| Ciphertext::from_bytes(&params, bytes))
            .collect::<Result<_, _>>()?;
        let revealed = self
            .store
            .revealed(&record.id)?
            .into_iter()
            .map(|(node, bytes)| {
                Contribution::decode(bytes.as_slice())
                    .map(|c| (node, c))
                    .map_err(|e| CoordinatorError::Stored(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        let mut run = QueryRun {
            binding: evidence::QueryBinding::new(&record.id, &spec, &deployment),
            commitments: self.store.commitments(&record.id)?,
            record,
            spec,
            agreement,
            sum,
            revealed,
        };

        if matches!(run.record.phase, Phase::Submitted | Phase::Proposed) {
            let started = Instant::now();
            run.record.asked = n as u32;
            run.record.parties = self.pool.members();
            run.advance(&self.store, Phase::Proposed)?;
            run.record.agreed = self.propose(&run, &deployment).await?;
            self.pool.step_done(run.id(), Step::Proposal, started);
            run.advance(&self.store, Phase::Contributing)?;
        }
        if run.record.parties != self.pool.members() {
            let names: Vec<&str> = run.record.parties.iter().map(|(n, _)| n.as_str()).collect();
            return Err(CoordinatorError::NodesChanged {
                proposed_to: names.join(", "),
            });
        }
        if run.record.phase == Phase::Contributing {
            self.contribute(&mut run).await?;
        }
        let evidence = self.verify(&mut run).await?;
        self.release(run, evidence).await
    }
}
