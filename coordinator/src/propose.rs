//! Proposal: the query goes to every node, naming the deployment (and so the collective key)
//! it is to be encrypted under; each node decides by its own policy. In all-party mode
//! every node must agree; in threshold mode a node that refuses, fails or does not answer is
//! left out, as long as the agreement's quorum still can be met.

use crate::pool::next;
use crate::run::QueryRun;
use crate::{Coordinator, CoordinatorError, APPROVAL_POLL};
use concord_api::lifecycle::Phase;
use concord_api::v1::Proposal;

impl Coordinator {
    /// Proposes the query to every node; returns the nodes that agreed. A node whose operator
    /// approves queries by hand answers "pending": it is asked again every [`APPROVAL_POLL`]
    /// (the query's detail says whom it waits for) until it decides — its own
    /// `approval_timeout_s` bounds the wait — unless the query cannot go on anyway.
    pub(crate) async fn propose(
        &self,
        run: &QueryRun,
        deployment: &[u8; 32],
    ) -> Result<Vec<String>, CoordinatorError> {
        let n = self.pool.len();
        let query_id = run.id();
        let proposal = Proposal {
            query_id: query_id.into(),
            spec: Some(run.spec.clone()),
            researcher: run.record.researcher.clone(),
            researcher_certificate: run.record.researcher_certificate.clone(),
            deployment: deployment.to_vec(),
        };
        let mut asking: Vec<usize> = (0..n).collect();
        let mut agreed = Vec::new();
        let mut refusals = Vec::new();
        loop {
            let mut calls = self.pool.call_each(
                asking,
                |_| proposal.clone(),
                |mut client, request| async move { client.propose(request).await },
            );
            let mut pending = Vec::new();
            while let Some((i, decision)) = next(&mut calls).await {
                let name = self.pool.name(i).to_owned();
                let label = match &decision {
                    Ok(d) if d.pending => "pending".to_owned(),
                    Ok(d) if d.agree => "agree".to_owned(),
                    Ok(d) => d.reason.clone(),
                    Err(_) => "unavailable".to_owned(),
                };
                metrics::counter!("concord_node_decisions_total", "node" => name.clone(), "decision" => label)
                    .increment(1);
                match (decision, self.threshold) {
                    (Ok(d), _) if d.pending => pending.push(i),
                    (Ok(d), _) if d.agree => agreed.push(name),
                    (Ok(d), _) => refusals.push((name, format!("{}: {}", d.reason, d.detail))),
                    (Err(e), None) => return Err(e),
                    (Err(e), Some(_)) => refusals.push((name, format!("unavailable: {e}"))),
                }
            }
            let possible = n - refusals.len();
            if pending.is_empty() || possible < run.agreement.quorum(self.threshold) {
                break;
            }
            pending.sort();
            let names: Vec<&str> = pending.iter().map(|&i| self.pool.name(i)).collect();
            self.store.set_phase(
                query_id,
                Phase::Proposed,
                &format!("awaiting approval at {}", names.join(", ")),
            )?;
            tokio::time::sleep(APPROVAL_POLL).await;
            asking = pending;
        }
        refusals.sort();
        let required = run.agreement.agreements_needed(self.threshold);
        if agreed.len() < required {
            let refusals = refusals
                .iter()
                .map(|(n, r)| format!("{n}: {r}"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(CoordinatorError::TooFewAgreed {
                query: query_id.into(),
                agreed: agreed.len(),
                required,
                refusals,
            });
        }
        match (refusals.into_iter().next(), self.threshold) {
            (Some((node, reason)), None) => Err(CoordinatorError::Refused {
                query: query_id.into(),
                node,
                reason,
            }),
            (Some((node, reason)), Some(_)) => {
                tracing::warn!(query = %query_id, %node, %reason, "left out (threshold mode)");
                Ok(agreed)
            }
            (None, _) => Ok(agreed),
        }
    }
}
