//! Contribution, round one (commit): the nodes that agreed each encrypt their statistic under
//! the collective key they pinned and answer only a signed commitment to it; the coordinator
//! checks each and acknowledges it durably. Nothing is revealed yet: the commitments gathered
//! here become the query's roster, fixed before any contribution leaves its node. Nodes
//! already acknowledged are not asked again.

use crate::pool::{next, Step};
use crate::run::QueryRun;
use crate::{Coordinator, CoordinatorError};
use concord_api::lifecycle::Phase;
use concord_api::v1::CommitRequest;
use prost::Message;
use std::time::Instant;

impl Coordinator {
    /// Gathers the commitments not acknowledged yet; in threshold mode a node that fails now
    /// is left out of the roster, in all-party mode it fails the query.
    pub(crate) async fn contribute(&mut self, run: &mut QueryRun) -> Result<(), CoordinatorError> {
        let started = Instant::now();
        let n = self.pool.len();
        let record = &run.record;
        let agreed =
            |name: &str| record.agreed.is_empty() || record.agreed.iter().any(|a| a == name);
        let committed = |name: &str| record.contributed.iter().any(|c| c == name);
        let missing: Vec<usize> = (0..n)
            .filter(|&i| agreed(self.pool.name(i)) && !committed(self.pool.name(i)))
            .collect();
        if !record.contributed.is_empty() {
            tracing::info!(query = %record.id, committed = record.contributed.len(), asking = missing.len(), "resuming commitments");
        }
        let request = CommitRequest {
            query_id: record.id.clone(),
        };
        let mut calls = self.pool.call_each(
            missing,
            |_| request.clone(),
            |mut client, request| async move { client.commit(request).await },
        );
        while let Some((i, reply)) = next(&mut calls).await {
            let name = self.pool.name(i).to_owned();
            let commitment = match (reply, self.threshold) {
                (Ok(commitment), _) => commitment,
                (Err(e), None) => return Err(e),
                // threshold mode: a node that fails now is left out
                (Err(e), Some(_)) => {
                    tracing::warn!(query = %run.id(), "left out: {e}");
                    continue;
                }
            };
            let signer = run
                .binding
                .verify_commitment(&self.ca_pem, &commitment)
                .map_err(|e| CoordinatorError::bad_reply(&name, format!("commitment: {e}")))?;
            if signer.name != name {
                return Err(CoordinatorError::bad_reply(
                    &name,
                    format!("a commitment signed by {}", signer.name),
                ));
            }
            metrics::counter!("concord_node_contributions_total", "node" => name.clone())
                .increment(1);
            run.record.contributed.push(name);
            run.commitments.push(commitment.encode_to_vec());
            self.store.acknowledge(&run.record, &run.commitments)?;
        }
        drop(calls);
        run.advance(&self.store, Phase::Verifying)?;
        self.pool.step_done(run.id(), Step::Contribution, started);
        Ok(())
    }
}
