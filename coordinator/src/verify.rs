//! Verification, the coordinator's side (DESIGN.md §5, `concord-api` `evidence`): the roster —
//! every commitment gathered, in order — is fixed and sent to every contributor, which signs it
//! (one roster per query, for good) and only then reveals its ciphertexts. The coordinator
//! checks each revealed contribution against its commitment and the contributor's signature
//! over the roster, as every node will, so a node that reveals something else is named here,
//! and acknowledges it durably with the running sum. A contributor that does not reveal fails
//! the query: the roster cannot change once fixed.

use crate::pool::{next, Step};
use crate::run::QueryRun;
use crate::{Coordinator, CoordinatorError};
use concord_api::chunks::collect;
use concord_api::evidence;
use concord_api::lifecycle::Phase;
use concord_api::v1::{Commitment, Contribution, RevealRequest};
use concord_bfv::Ciphertext;
use prost::Message;
use std::time::Instant;

/// What every node that releases is given: the roster, every contributor's signature over it
/// and every contribution, in roster order.
pub(crate) struct Evidence {
    pub roster: Vec<Commitment>,
    pub signatures: Vec<Vec<u8>>,
    /// Every contribution's ciphertexts, one after the other in roster order.
    pub ciphertexts: Vec<Vec<u8>>,
}

impl Coordinator {
    /// Fixes the roster, gathers every contribution on it and moves the query on to
    /// decryption.
    pub(crate) async fn verify(
        &mut self,
        run: &mut QueryRun,
    ) -> Result<Evidence, CoordinatorError> {
        let roster = self.roster(run)?;
        let started = Instant::now();
        self.reveal(run, &roster).await?;
        if run.record.phase == Phase::Verifying {
            run.advance(&self.store, Phase::Decrypting)?;
        }
        self.pool.step_done(run.id(), Step::Verification, started);
        let mut evidence = Evidence {
            roster,
            signatures: Vec::new(),
            ciphertexts: Vec::new(),
        };
        for name in &run.record.contributed {
            let contribution = run.revealed.get(name).ok_or_else(|| {
                CoordinatorError::Stored(format!("{name}'s revealed contribution is missing"))
            })?;
            evidence
                .signatures
                .push(contribution.roster_signature.clone());
            evidence
                .ciphertexts
                .extend(contribution.ciphertexts.iter().cloned());
        }
        Ok(evidence)
    }

    /// The decoded commitments of a roster that holds the agreement's quorum.
    fn roster(&self, run: &QueryRun) -> Result<Vec<Commitment>, CoordinatorError> {
        let record = &run.record;
        let contributed = record.contributed.len();
        let needed = run.agreement.quorum(self.threshold);
        if contributed < needed || run.commitments.len() != contributed {
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
            .map_err(|e| CoordinatorError::Stored(e.to_string()))
    }

    /// Every contribution on the roster not revealed yet: each checked against its commitment
    /// and its signature over the roster, summed and acknowledged.
    async fn reveal(
        &mut self,
        run: &mut QueryRun,
        roster: &[Commitment],
    ) -> Result<(), CoordinatorError> {
        let digest = run.binding.roster_digest(roster);
        let plan = &run.agreement.plan;
        let ciphertexts = plan.ciphertexts();
        let position = |name: &str| run.record.contributed.iter().position(|c| c == name);
        let missing: Vec<usize> = (0..self.pool.len())
            .filter(|&i| {
                let name = self.pool.name(i);
                position(name).is_some() && !run.revealed.contains_key(name)
            })
            .collect();
        let request = RevealRequest {
            query_id: run.record.id.clone(),
            roster: roster.to_vec(),
        };
        let mut calls = self.pool.call_each(
            missing,
            |_| request.clone(),
            |mut client, request| async move {
                let parts = client.reveal(request).await?.into_inner();
                let whole = collect(parts, |_| Ok(ciphertexts)).await?;
                Ok(tonic::Response::new(whole))
            },
        );
        while let Some((i, reply)) = next(&mut calls).await {
            let name = self.pool.name(i).to_owned();
            let contribution = reply?;
            let commitment = &roster[position(&name).expect("asked contributors only")];
            check_revealed(
                &self.ca_pem,
                &name,
                &run.binding,
                &digest,
                commitment,
                &contribution,
                ciphertexts,
            )?;
            let cts = contribution
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
            run.record.revealed.push(name.clone());
            let sum: Vec<Vec<u8>> = run.sum.iter().map(Ciphertext::to_bytes).collect();
            self.store.acknowledge_reveal(
                &run.record,
                &name,
                &contribution.encode_to_vec(),
                &sum,
            )?;
            run.revealed.insert(name, contribution);
        }
        Ok(())
    }
}

/// A revealed contribution as every node will check it: the query's number of ciphertexts,
/// exactly those committed to, and the contributor's signature over this roster.
fn check_revealed(
    ca_pem: &str,
    name: &str,
    binding: &evidence::QueryBinding,
    roster: &[u8; 32],
    commitment: &Commitment,
    contribution: &Contribution,
    ciphertexts: usize,
) -> Result<(), CoordinatorError> {
    if contribution.ciphertexts.len() != ciphertexts {
        return Err(CoordinatorError::bad_reply(
            name,
            format!(
                "{} ciphertexts, {ciphertexts} expected",
                contribution.ciphertexts.len()
            ),
        ));
    }
    if evidence::digest(&contribution.ciphertexts)[..] != commitment.digest[..] {
        return Err(CoordinatorError::bad_reply(
            name,
            "the contribution revealed is not the one it committed to",
        ));
    }
    binding
        .verify_roster(ca_pem, roster, commitment, &contribution.roster_signature)
        .map_err(|e| CoordinatorError::bad_reply(name, format!("roster signature: {e}")))?;
    Ok(())
}
