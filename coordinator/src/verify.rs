//! Aggregate verification, the coordinator's side (DESIGN.md §5, `concord-api` `evidence`):
//! every contribution's signed commitment is checked as it arrives; once the sum is complete,
//! every contributor evaluates its own contribution at the challenge that the aggregate and
//! the commitments fix and signs the values; the coordinator checks them against the aggregate
//! as every node will, so a node that signs a wrong value is named here. Each node checks the
//! same evidence itself before it gives a share.

use crate::pool::{next, Step};
use crate::run::QueryRun;
use crate::{Coordinator, CoordinatorError};
use concord_api::evidence;
use concord_api::lifecycle::Phase;
use concord_api::v1::{Commitment, Contribution, FingerprintRequest, SignedFingerprint};
use concord_mhe::fingerprint;
use prost::Message;
use std::time::Instant;

/// A node's commitment to the contribution it sent: signed by that node's certificate for
/// this query, over exactly these ciphertexts.
pub(crate) fn check_commitment(
    ca_pem: &str,
    name: &str,
    binding: &evidence::QueryBinding,
    reply: &Contribution,
) -> Result<Commitment, CoordinatorError> {
    let commitment = reply
        .commitment
        .clone()
        .ok_or_else(|| CoordinatorError::bad_reply(name, "a contribution without commitment"))?;
    let signer = binding
        .verify_commitment(ca_pem, &commitment)
        .map_err(|e| CoordinatorError::bad_reply(name, format!("commitment: {e}")))?;
    if signer.name != name {
        return Err(CoordinatorError::bad_reply(
            name,
            format!("a commitment signed by {}", signer.name),
        ));
    }
    if commitment.digest != evidence::digest(&reply.ciphertexts) {
        return Err(CoordinatorError::bad_reply(
            name,
            "the commitment is not to the ciphertexts sent",
        ));
    }
    Ok(commitment)
}

/// The evidence every node checks before it gives a share: the aggregate's encoding, every
/// contribution's commitment and, in the same order, its contributor's signed fingerprint.
pub(crate) struct Evidence {
    pub aggregate: Vec<Vec<u8>>,
    pub commitments: Vec<Commitment>,
    pub fingerprints: Vec<SignedFingerprint>,
}

impl Coordinator {
    /// Checks that the sum holds enough contributions, gathers every contributor's signed
    /// fingerprint and moves the query on to decryption.
    pub(crate) async fn verify(
        &mut self,
        run: &mut QueryRun,
    ) -> Result<Evidence, CoordinatorError> {
        let commitments = self.complete_sum(run)?;
        let started = Instant::now();
        let aggregate: Vec<Vec<u8>> = run.sum.iter().map(|ct| ct.to_bytes()).collect();
        let fingerprints = self.fingerprints(run, &aggregate, &commitments).await?;
        if run.record.phase == Phase::Verifying {
            run.advance(&self.store, Phase::Decrypting)?;
        }
        self.pool.step_done(run.id(), Step::Verification, started);
        Ok(Evidence {
            aggregate,
            commitments,
            fingerprints,
        })
    }

    /// The decoded commitments of a sum that holds the agreement's quorum of contributions.
    fn complete_sum(&self, run: &QueryRun) -> Result<Vec<Commitment>, CoordinatorError> {
        let record = &run.record;
        let contributed = record.contributed.len();
        let needed = run.agreement.quorum(self.threshold);
        if contributed < needed
            || run.commitments.len() != contributed
            || run.sum.len() != run.agreement.plan.ciphertexts()
        {
            return Err(match self.threshold {
                Some(threshold) => CoordinatorError::ThresholdQuorum {
                    contributed,
                    names: record.contributed.join(", "),
                    needed,
                    threshold,
                    min_institutions: run.agreement.min_institutions,
                },
                None => CoordinatorError::Incomplete {
                    contributed,
                    nodes: self.pool.len(),
                    phase: record.phase,
                },
            });
        }
        run.commitments
            .iter()
            .map(|bytes| Commitment::decode(bytes.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CoordinatorError::StoredCommitments(e.to_string()))
    }

    /// Every contributor's signed fingerprint at the challenge fixed by the aggregate and the
    /// commitments, in the commitments' order, checked against the aggregate.
    async fn fingerprints(
        &self,
        run: &QueryRun,
        aggregate: &[Vec<u8>],
        commitments: &[Commitment],
    ) -> Result<Vec<SignedFingerprint>, CoordinatorError> {
        let binding = &run.binding;
        let aggregate_digest = evidence::digest(aggregate);
        let request = FingerprintRequest {
            query_id: binding.query_id().into(),
            aggregate_digest: aggregate_digest.to_vec(),
            commitments: commitments.to_vec(),
        };
        let position = |name: &str| run.record.contributed.iter().position(|c| c == name);
        let contributors: Vec<usize> = (0..self.pool.len())
            .filter(|&i| position(self.pool.name(i)).is_some())
            .collect();
        let mut calls = self.pool.call_each(
            contributors,
            |_| request.clone(),
            |mut client, request| async move { client.fingerprint(request).await },
        );
        let mut fingerprints = vec![SignedFingerprint::default(); commitments.len()];
        let seed = binding.challenge_seed(&aggregate_digest, commitments);
        while let Some((i, reply)) = next(&mut calls).await {
            let name = self.pool.name(i);
            let at = position(name).expect("asked contributors only");
            let reply = reply?;
            binding
                .verify_fingerprint(&self.ca_pem, &seed, &commitments[at], &reply)
                .map_err(|e| CoordinatorError::bad_reply(name, format!("fingerprint: {e}")))?;
            fingerprints[at] = reply;
        }
        let values: Vec<&[u64]> = fingerprints.iter().map(|f| f.values.as_slice()).collect();
        fingerprint::check(&run.sum, &seed, &values)?;
        Ok(fingerprints)
    }
}
