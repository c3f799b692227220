//! Release: shares of the sum of the roster's contributions from the nodes that release it — a
//! key switch to the researcher's key (PCKS) or a joint decryption for a public result (CKS),
//! as the query's agreement says — gathered by one generic loop over `concord-mhe`'s protocol
//! shape. Each node receives every contribution with the roster and its signatures, and sums
//! them itself: the coordinator's own sum serves only to combine the shares.
//!
//! In all-party mode every node gives a share; in threshold mode the `T` contributors with the
//! lowest party numbers do, each weighting its threshold key share for exactly that set.

use crate::pool::{Shared, Step};
use crate::run::QueryRun;
use crate::verify::Evidence;
use crate::{Coordinator, CoordinatorError, QueryOutcome};
use concord_api::chunks::{collect, shared_stream};
use concord_api::v1::DecryptRequest;
use concord_bfv::{BfvParameters, Ciphertext};
use concord_mhe::protocol::{gather, Protocol, WireShare};
use concord_mhe::PartyId;
use concord_query::Release;
use std::sync::Arc;
use std::time::Instant;

impl Coordinator {
    /// Gathers the release shares of the verified aggregate and finishes the result.
    pub(crate) async fn release(
        &mut self,
        mut run: QueryRun,
        evidence: Evidence,
    ) -> Result<QueryOutcome, CoordinatorError> {
        let started = Instant::now();
        let n = self.pool.len();
        let record = &run.record;
        // the nodes giving shares: all (all-party mode), or the T contributors with the lowest
        // party numbers (threshold mode)
        let mut active: Vec<usize> = (0..n)
            .filter(|&i| {
                self.threshold.is_none()
                    || record.contributed.iter().any(|c| c == self.pool.name(i))
            })
            .collect();
        active.sort_by_key(|&i| self.pool.address(i).party);
        active.truncate(self.threshold.unwrap_or(n));
        let active_parties: Vec<u32> = match self.threshold {
            Some(_) => active.iter().map(|&i| self.pool.address(i).party).collect(),
            None => Vec::new(),
        };
        let smudging = run
            .agreement
            .smudging(n, record.contributed.len(), active.len())?;
        // what is released of the sum: the sum, or the overlap circuit's counts, evaluated
        // here as every node evaluates it, to combine the shares
        let plan = &run.agreement.plan;
        let rlk = match plan.layout.overlap {
            Some(_) => Some(self.relinearization_key(&plan.params, &record.deployment)?),
            None => None,
        };
        let mut outputs = plan
            .evaluate(std::mem::take(&mut run.sum), rlk.as_ref())
            .map_err(CoordinatorError::Decode)?;
        for ct in &mut outputs {
            ct.switch_to_level(smudging.level)?;
        }
        let released = plan.released();
        // one copy of every contribution, streamed to each node a ciphertext at a time
        let request = Arc::new(DecryptRequest {
            query_id: record.id.clone(),
            ciphertexts: evidence.ciphertexts,
            roster: evidence.roster,
            roster_signatures: evidence.signatures,
            active_parties: active_parties.clone(),
        });
        let replies = self
            .pool
            .call_all(
                active.clone(),
                |_| Shared(request.clone()),
                |mut client, Shared(request)| async move {
                    let parts = client.decrypt(shared_stream(request)).await?.into_inner();
                    let whole = collect(parts, |_| Ok(released)).await?;
                    Ok(tonic::Response::new(whole))
                },
            )
            .await?;
        let (senders, shares): (Vec<usize>, Vec<Vec<Vec<u8>>>) =
            replies.into_iter().map(|(i, r)| (i, r.shares)).unzip();
        let parties: Vec<PartyId> = senders
            .iter()
            .map(|&i| PartyId(self.pool.address(i).party))
            .collect();
        let params = &run.agreement.plan.params;
        let (cells, sealed) = match &run.agreement.release {
            Release::Sealed(recipient) => {
                let protocols = plan.key_switches(&outputs, recipient, smudging)?;
                let switched = self.gather(&protocols, params, &senders, &shares, &parties)?;
                (
                    Vec::new(),
                    switched.iter().map(Ciphertext::to_bytes).collect(),
                )
            }
            Release::Public => {
                let protocols = plan.decryptions(&outputs, smudging)?;
                let plaintexts = self.gather(&protocols, params, &senders, &shares, &parties)?;
                let cells = run
                    .agreement
                    .plan
                    .decode(&plaintexts)
                    .map_err(CoordinatorError::Decode)?;
                (cells, Vec::new())
            }
        };
        let mut shares_from: Vec<String> = active
            .iter()
            .map(|&i| self.pool.name(i).to_owned())
            .collect();
        shares_from.sort();
        self.pool.step_done(run.id(), Step::Decryption, started);
        Ok(QueryOutcome {
            cells,
            sealed,
            shares_from,
            contributors: run.record.contributed,
            smudging_lambda: smudging.lambda,
        })
    }

    /// [`gather`], naming the node whose share was unusable.
    fn gather<P>(
        &self,
        protocols: &[P],
        params: &Arc<BfvParameters>,
        senders: &[usize],
        shares: &[Vec<Vec<u8>>],
        parties: &[PartyId],
    ) -> Result<Vec<P::Output>, CoordinatorError>
    where
        P: Protocol,
        P::Share: WireShare,
    {
        gather(protocols, params, shares, parties).map_err(|(from, e)| match from {
            Some(at) => CoordinatorError::bad_reply(self.pool.name(senders[at]), e),
            None => e.into(),
        })
    }
}
