//! RKG, two rounds (PETS 2021, §IV-B; PROTOCOLS.md): the collective relinearization key. The
//! equations and the trust model are in the parent module's doc.

use super::{
    error, masked, multiplicative, EvaluationKeyAggregate, EvaluationKeyShare, KeyGenStep,
};
use crate::crs::{CommonReferenceString, CrsId};
use crate::party::PartyId;
use crate::randomness::derived_rng;
use crate::MheError;
use concord_bfv::{check_same_params, BfvParameters, RelinearizationKey, SecretKey};
use concord_ring::sampling::ternary;
use concord_ring::Poly;
use std::sync::Arc;
use zeroize::{Zeroize, Zeroizing};

/// A party's ephemeral RKG secret `u_i`, kept from round one to round two, then dropped
/// (zeroized). Never serialized: a party that restarts between the rounds starts RKG again.
pub struct RelinearizationEphemeral {
    party: PartyId,
    u: Poly,
}

impl Drop for RelinearizationEphemeral {
    fn drop(&mut self) {
        self.u.zeroize();
    }
}

impl std::fmt::Debug for RelinearizationEphemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RelinearizationEphemeral({}, <redacted>)", self.party)
    }
}

/// The RKG protocol for one multiplicative set and CRS: holds the common polynomials `a_j`.
pub struct RelinearizationKeyGen {
    params: Arc<BfvParameters>,
    crs: CrsId,
    a: Vec<Poly>,
}

impl RelinearizationKeyGen {
    pub fn new(params: &Arc<BfvParameters>, crs: &CommonReferenceString) -> Result<Self, MheError> {
        multiplicative(params)?;
        Ok(Self {
            params: params.clone(),
            crs: crs.id(),
            a: crs.gadget_polynomials(params, b"rkg/a", 0),
        })
    }

    /// Round one: the party's ephemeral `u_i` (keep it for round two) and its share
    /// `(h_{0,i}[j], h_{1,i}[j]) = (−u_i·a_j + s_i·w_j + e_0, s_i·a_j + e_1)`.
    pub fn round_one(
        &self,
        sk: &SecretKey,
        party: PartyId,
    ) -> Result<(RelinearizationEphemeral, EvaluationKeyShare), MheError> {
        check_same_params(&self.params, sk.params())?;
        let ring = self.params.key_ring();
        let mut rng = derived_rng(sk, "rkg/1", &[self.params.name().as_bytes(), &self.crs]);
        let mut u = Poly::from_small(ring, ring.max_level(), &ternary(ring.degree(), &mut rng));
        u.to_ntt(ring);
        let mut polys = Vec::with_capacity(2 * self.a.len());
        for (digit, a) in self.a.iter().enumerate() {
            let mut h0 = masked(ring, &u, a, &mut rng);
            self.params.add_gadget_multiple(&mut h0, digit, sk.poly());
            let mut h1 = error(ring, &mut rng);
            h1.mul_accumulate(ring, a, sk.poly());
            polys.extend([h0, h1]);
        }
        let share = EvaluationKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            step: KeyGenStep::RelinearizationRoundOne,
            round_one: [0; 16],
            polys,
        };
        Ok((RelinearizationEphemeral { party, u }, share))
    }

    pub fn round_one_aggregator(&self) -> EvaluationKeyAggregate {
        EvaluationKeyAggregate::new(
            &self.params,
            self.crs,
            KeyGenStep::RelinearizationRoundOne,
            [0; 16],
        )
    }

    /// Round two, answering the complete round-one aggregate `(h_0, h_1)`:
    /// `h'_i[j] = s_i·h_0[j] + (u_i − s_i)·h_1[j] + e_2`.
    pub fn round_two(
        &self,
        sk: &SecretKey,
        ephemeral: &RelinearizationEphemeral,
        round_one: &EvaluationKeyAggregate,
        party: PartyId,
    ) -> Result<EvaluationKeyShare, MheError> {
        check_same_params(&self.params, sk.params())?;
        self.check_round_one(round_one)?;
        if ephemeral.party != party {
            return Err(MheError::IncompatibleShare {
                party,
                what: "ephemeral secret of another party",
            });
        }
        let ring = self.params.key_ring();
        let mut rng = derived_rng(
            sk,
            "rkg/2",
            &[
                self.params.name().as_bytes(),
                &self.crs,
                &round_one.digest(),
            ],
        );
        let mut u_minus_s = Zeroizing::new(ephemeral.u.clone());
        u_minus_s.sub_assign(ring, sk.poly());
        let polys = round_one
            .sum
            .chunks_exact(2)
            .map(|h| {
                let mut out = error(ring, &mut rng);
                out.mul_accumulate(ring, &h[0], sk.poly());
                out.mul_accumulate(ring, &h[1], &u_minus_s);
                out
            })
            .collect();
        Ok(EvaluationKeyShare {
            params: self.params.clone(),
            party,
            crs: self.crs,
            step: KeyGenStep::RelinearizationRoundTwo,
            round_one: round_one.digest(),
            polys,
        })
    }

    /// The aggregator of round two, for shares answering exactly `round_one`.
    pub fn round_two_aggregator(
        &self,
        round_one: &EvaluationKeyAggregate,
    ) -> Result<EvaluationKeyAggregate, MheError> {
        self.check_round_one(round_one)?;
        Ok(EvaluationKeyAggregate::new(
            &self.params,
            self.crs,
            KeyGenStep::RelinearizationRoundTwo,
            round_one.digest(),
        ))
    }

    /// `rlk[j] = (h'[j], h_1[j])`, only if exactly `expected` took part in both rounds.
    pub fn finish(
        &self,
        round_one: &EvaluationKeyAggregate,
        round_two: &EvaluationKeyAggregate,
        expected: &[PartyId],
    ) -> Result<RelinearizationKey, MheError> {
        self.check_round_one(round_one)?;
        round_one.parties.check_exactly(expected)?;
        if round_two.step != KeyGenStep::RelinearizationRoundTwo
            || round_two.round_one != round_one.digest()
            || round_two.crs != self.crs
        {
            return Err(MheError::IncompatibleShare {
                party: round_two.parties.iter().next().unwrap_or(PartyId(0)),
                what: "round two of another RKG run",
            });
        }
        round_two.parties.check_exactly(expected)?;
        let parts = round_two
            .sum
            .iter()
            .zip(round_one.sum.chunks_exact(2))
            .map(|(h, round_one)| [h.clone(), round_one[1].clone()])
            .collect();
        Ok(RelinearizationKey::from_parts(&self.params, parts)?)
    }

    fn check_round_one(&self, round_one: &EvaluationKeyAggregate) -> Result<(), MheError> {
        check_same_params(&self.params, &round_one.params)?;
        if round_one.step != KeyGenStep::RelinearizationRoundOne || round_one.crs != self.crs {
            return Err(MheError::IncompatibleShare {
                party: round_one.parties.iter().next().unwrap_or(PartyId(0)),
                what: "not a round-one aggregate of this RKG",
            });
        }
        if round_one.parties.is_empty() {
            return Err(MheError::NoShares);
        }
        Ok(())
    }
}
