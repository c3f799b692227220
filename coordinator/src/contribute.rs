//! Contribution: the nodes that agreed send their encrypted statistics with a signed
//! commitment each; the coordinator checks the commitment, adds the ciphertexts to the running
//! sum, and acknowledges each contribution durably together with the new sum, so a restart
//! neither loses nor double-counts one. Nodes already summed are not asked again.

use crate::pool::{next, Step};
use crate::run::QueryRun;
use crate::verify::check_commitment;
use crate::{Coordinator, CoordinatorError};
use concord_api::chunks::collect;
use concord_api::lifecycle::Phase;
use concord_api::v1::ContributeRequest;
use concord_bfv::{Ciphertext, PublicKey};
use prost::Message;
use std::time::Instant;

impl Coordinator {
    /// Gathers and sums the contributions not summed yet; in threshold mode a node that fails
    /// now is left out, in all-party mode it fails the query.
    pub(crate) async fn contribute(
        &mut self,
        run: &mut QueryRun,
        key: &PublicKey,
    ) -> Result<(), CoordinatorError> {
        let started = Instant::now();
        let n = self.pool.len();
        let record = &run.record;
        let agreed =
            |name: &str| record.agreed.is_empty() || record.agreed.iter().any(|a| a == name);
        let summed = |name: &str| record.contributed.iter().any(|c| c == name);
        let missing: Vec<usize> = (0..n)
            .filter(|&i| agreed(self.pool.name(i)) && !summed(self.pool.name(i)))
            .collect();
        if !record.contributed.is_empty() {
            tracing::info!(query = %record.id, summed = record.contributed.len(), asking = missing.len(), "resuming contributions");
        }
        let plan = &run.agreement.plan;
        let ciphertexts = plan.ciphertexts();
        let request = ContributeRequest {
            query_id: record.id.clone(),
            collective_key: key.to_bytes(),
            institutions: n as u32,
        };
        let mut calls = self.pool.call_each(
            missing,
            |_| request.clone(),
            |mut client, request| async move {
                let parts = client.contribute(request).await?.into_inner();
                let whole = collect(parts, |_| Ok(ciphertexts)).await?;
                Ok(tonic::Response::new(whole))
            },
        );
        while let Some((i, reply)) = next(&mut calls).await {
            let name = self.pool.name(i).to_owned();
            let reply = match (reply, self.threshold) {
                (Ok(reply), _) => reply,
                (Err(e), None) => return Err(e),
                // threshold mode: a node that fails now is left out
                (Err(e), Some(_)) => {
                    tracing::warn!(query = %run.id(), "left out: {e}");
                    continue;
                }
            };
            let commitment = check_commitment(&self.ca_pem, &name, &run.binding, &reply)?;
            if reply.ciphertexts.len() != ciphertexts {
                return Err(CoordinatorError::bad_reply(
                    &name,
                    format!(
                        "{} ciphertexts, {ciphertexts} expected",
                        reply.ciphertexts.len()
                    ),
                ));
            }
            let cts = reply
                .ciphertexts
                .iter()
                .map(|bytes| Ciphertext::from_bytes(&plan.params, bytes))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CoordinatorError::bad_reply(&name, e))?;
            if run.sum.is_empty() {
                run.sum = cts;
            } else {
                for (s, ct) in run.sum.iter_mut().zip(&cts) {
                    s.add_assign(ct)?;
                }
            }
            run.record.contributed.push(name);
            run.record.events_covered += reply.events_covered;
            run.commitments.push(commitment.encode_to_vec());
            let sum_bytes: Vec<Vec<u8>> = run.sum.iter().map(Ciphertext::to_bytes).collect();
            self.store
                .acknowledge(&run.record, &sum_bytes, &run.commitments)?;
        }
        drop(calls);
        run.advance(&self.store, Phase::Verifying)?;
        self.pool.step_done(run.id(), Step::Contribution, started);
        Ok(())
    }
}
