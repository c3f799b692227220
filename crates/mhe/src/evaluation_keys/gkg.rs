//! GKG (PETS 2021, §IV-B, rotation keys; PROTOCOLS.md): the collective Galois keys, one per
//! Galois element. The equations and the trust model are in the parent module's doc.

use super::{masked, multiplicative, EvaluationKeyAggregate, EvaluationKeyShare, KeyGenStep};
use crate::crs::{CommonReferenceString, CrsId};
use crate::party::PartyId;
use crate::randomness::derived_rng;
use crate::MheError;
use concord_bfv::{check_same_params, BfvError, BfvParameters, GaloisKeys, SecretKey};
use concord_ring::Poly;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The GKG protocol for a set of Galois elements: holds each element's `a_j`.
pub struct GaloisKeyGen {
    params: Arc<BfvParameters>,
    crs: CrsId,
    a: BTreeMap<u64, Vec<Poly>>,
}

/// The running sums of a GKG run, one per element.
#[derive(Clone, Debug)]
pub struct GaloisKeyAggregate {
    per_element: BTreeMap<u64, EvaluationKeyAggregate>,
}

impl GaloisKeyGen {
    /// GKG for the Galois elements `elements` (odd, below `2N`).
    pub fn new(
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        elements: &[u64],
    ) -> Result<Self, MheError> {
        multiplicative(params)?;
        let a = elements
            .iter()
            .map(|&g| {
                params.check_galois_element(g)?;
                Ok((g, crs.gadget_polynomials(params, b"gkg/a", g)))
            })
            .collect::<Result<_, BfvError>>()?;
        Ok(Self {
            params: params.clone(),
            crs: crs.id(),
            a,
        })
    }

    /// GKG for the keys of [`concord_bfv::Ciphertext::inner_sum`].
    pub fn for_inner_sum(
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
    ) -> Result<Self, MheError> {
        Self::new(params, crs, &GaloisKeys::inner_sum_elements(params))
    }

    /// GKG for row rotations by `steps` (and the row swap if `row_swap`).
    pub fn for_rotations(
        params: &Arc<BfvParameters>,
        crs: &CommonReferenceString,
        steps: &[i64],
        row_swap: bool,
    ) -> Result<Self, MheError> {
        Self::new(
            params,
            crs,
            &params.galois_elements_for_rotations(steps, row_swap),
        )
    }

    pub fn elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.a.keys().copied()
    }

    /// The share for one element: `g_i[j] = −s_i·a_j + s_i(X^g)·w_j + e_i`.
    pub fn share(
        &self,
        sk: &SecretKey,
        party: PartyId,
        element: u64,
    ) -> Result<EvaluationKeyShare, MheError> {
        check_same_params(&self.params, sk.params())?;
        let a = self.a.get(&element).ok_or(MheError::IncompatibleShare {
            party,
            what: "Galois element outside this GKG run",
        })?;
        let ring = self.params.key_ring();
        let s_g = sk.galois_image(element)?;
        let mut rng = derived_rng(
            sk,
            "gkg",
            &[
                self.params.name().as_bytes(),
                &self.crs,
                &element.to_le_bytes(),
            ],
        );
        let polys = a
            .iter()
            .enumerate()
            .map(|(digit, a)| {
                let mut g = masked(ring, sk.poly(), a, &mut rng);
                self.params.add_gadget_multiple(&mut g, digit, &s_g);
                g
            })
            .collect();
        Ok(EvaluationKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            step: KeyGenStep::Galois(element),
            round_one: [0; 16],
            polys,
        })
    }

    /// The party's shares for every element of the run.
    pub fn shares(
        &self,
        sk: &SecretKey,
        party: PartyId,
    ) -> Result<Vec<EvaluationKeyShare>, MheError> {
        self.elements().map(|g| self.share(sk, party, g)).collect()
    }

    pub fn aggregator(&self) -> GaloisKeyAggregate {
        GaloisKeyAggregate {
            per_element: self
                .elements()
                .map(|g| {
                    let agg = EvaluationKeyAggregate::new(
                        &self.params,
                        self.crs,
                        KeyGenStep::Galois(g),
                        [0; 16],
                    );
                    (g, agg)
                })
                .collect(),
        }
    }

    /// `gk_g[j] = (g[j], a_j)` for every element, only if exactly `expected` gave every share.
    pub fn finish(
        &self,
        aggregate: &GaloisKeyAggregate,
        expected: &[PartyId],
    ) -> Result<GaloisKeys, MheError> {
        let mut keys = Vec::with_capacity(self.a.len());
        for (&g, agg) in &aggregate.per_element {
            let a = self.a.get(&g).ok_or(MheError::NoShares)?;
            if agg.crs != self.crs {
                return Err(MheError::CrsMismatch {
                    party: agg.parties.iter().next().unwrap_or(PartyId(0)),
                });
            }
            agg.parties.check_exactly(expected)?;
            let parts = agg.sum.iter().zip(a).map(|(g, a)| [g.clone(), a.clone()]);
            keys.push((g, parts.collect()));
        }
        Ok(GaloisKeys::from_parts(&self.params, keys)?)
    }
}

impl GaloisKeyAggregate {
    /// Adds a share to the sum of its element.
    pub fn add(&mut self, share: &EvaluationKeyShare) -> Result<(), MheError> {
        let KeyGenStep::Galois(g) = share.step else {
            return Err(MheError::IncompatibleShare {
                party: share.party,
                what: "not a Galois key share",
            });
        };
        self.per_element
            .get_mut(&g)
            .ok_or(MheError::IncompatibleShare {
                party: share.party,
                what: "Galois element outside this GKG run",
            })?
            .add(share)
    }
}
