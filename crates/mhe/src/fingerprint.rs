//! Aggregate verification by a linear fingerprint (DESIGN.md §5): how a node convinces itself,
//! cheaply and without any other institution's ciphertext, that the aggregate it is asked to
//! decrypt is exactly the sum of the contributions committed to for the query.
//!
//! A ciphertext is a few polynomials of `R_Q = Z_Q[X]/(X^N+1)`, held as residues modulo each
//! prime `q_j` of the RNS basis, in coefficient form. Its fingerprint at a challenge is the
//! evaluation of every such residue polynomial at `T` points `x_{j,1..T} ∈ Z_{q_j}`:
//! `F(c) = (c_{m,p,j}(x_{j,t}))_{m,p,j,t}` for ciphertext `m`, part `p`, prime `j`, point `t`.
//! Evaluation is linear and ciphertext addition is coefficient-wise mod `q_j`, so
//! `F(Σ_i c_i) = Σ_i F(c_i)` (mod `q_j` at each position).
//!
//! **The protocol around it** (node and coordinator, `concord-api` `evidence`):
//! 1. every node signs a digest of its contribution `c_i` (with its certificate key, bound to the
//!    query), and the coordinator commits to the aggregate `A` by its digest;
//! 2. the challenge seed is a hash of the query id, `A`'s digest and every contribution's
//!    signed digest — so nobody, the coordinator included, knows the points until all of
//!    `A, c_1, …, c_n` are fixed;
//! 3. each node evaluates its own `c_i` at the points and signs `F(c_i)`;
//! 4. each node, before releasing a share of `A`, recomputes the seed from what it is shown,
//!    checks every signature and that its own digest is among them, and checks
//!    `F(A) = Σ_i F(c_i)` ([`check`]).
//!
//! **Why it is sound.** Let `Δ = A − Σ c_i`, fixed (by the digests' collision resistance)
//! before the points are drawn (the seed is a random-oracle output of them). If `Δ ≠ 0`, some
//! residue polynomial `Δ_{m,p,j}` is non-zero, of degree `< N`, so it has at most `N − 1` roots
//! in `Z_{q_j}`: one uniform point is a root with probability `≤ (N−1)/q_j` (Schwartz–Zippel),
//! and `T` independent points all are with probability `≤ ((N−1)/q_j)^T`. [`Challenge::points`]
//! picks `T` so that this is below `2^-128` for the smallest prime of the set
//! ([`SOUNDNESS_BITS`]); a coordinator who grinds `G` candidate aggregates (each a fresh hash)
//! passes with probability at most `G·2^-128`.
//!
//! **Why the point must come after the commitments.** A coordinator who knew the point `x`
//! before fixing `A` could send `A = c_h + κ` for one institution's contribution `c_h` and the
//! constant `κ = Σ_{i≠h} c_i(x)` added to `c_0`: `A(x) = Σ_i c_i(x)` passes, yet `A` decrypts to
//! `h`'s statistic plus a constant the coordinator knows. The digests first, the point second
//! rule this out.
//!
//! What the fingerprint does **not** give: that the other contributors encrypted honest data.
//! Institutions colluding with the coordinator could contribute encryptions of zero, so that
//! an "aggregate of k" holds one honest institution's data; the minimum `k` protects against
//! the coordinator alone and against fewer than `k − 1` colluding institutions (DESIGN.md §1).

use crate::error::MheError;
use concord_bfv::{BfvParameters, Ciphertext};
use concord_ring::sampling::{seeded_rng, RngCore};

/// The fingerprint's soundness: a wrong aggregate passes with probability at most `2^-128`
/// (per challenge).
pub const SOUNDNESS_BITS: f64 = 128.0;

/// The evaluation points of one challenge, for every prime of the parameter set.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// `points[j]`: the `T` points for prime `j`, with their Shoup precomputations.
    points: Vec<Vec<(u64, u64)>>,
}

impl Challenge {
    /// How many points per prime reach [`SOUNDNESS_BITS`] for `params`.
    pub fn points(params: &BfvParameters) -> usize {
        let ring = params.ring();
        let n = ring.degree() as f64;
        let per_point = ring
            .moduli()
            .iter()
            .map(|q| (q.value() as f64 / (n - 1.0)).log2())
            .fold(f64::INFINITY, f64::min);
        (SOUNDNESS_BITS / per_point).ceil() as usize
    }

    /// The soundness error, in bits, that [`Challenge::points`] points give for `params`.
    pub fn soundness_bits(params: &BfvParameters) -> f64 {
        let ring = params.ring();
        let n = ring.degree() as f64;
        let t = Self::points(params) as f64;
        ring.moduli()
            .iter()
            .map(|q| t * (q.value() as f64 / (n - 1.0)).log2())
            .fold(f64::INFINITY, f64::min)
    }

    /// The points drawn from a public 32-byte seed (a hash of everything committed).
    pub fn derive(params: &BfvParameters, seed: &[u8; 32]) -> Self {
        let t = Self::points(params);
        let points = params
            .ring()
            .moduli()
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let mut rng = seeded_rng(seed, b"fingerprint", j as u64);
                let q = m.value();
                let mask = u64::MAX >> q.leading_zeros();
                (0..t)
                    .map(|_| {
                        let x = loop {
                            let x = rng.next_u64() & mask;
                            if x < q {
                                break x;
                            }
                        };
                        (x, m.shoup(x))
                    })
                    .collect()
            })
            .collect();
        Self { points }
    }
}

/// Evaluates every residue polynomial of `cts` at the challenge's points: one value per
/// (ciphertext, part, prime, point), in that nesting order, with the prime index of each.
fn evaluate(
    params: &BfvParameters,
    cts: &[Ciphertext],
    challenge: &Challenge,
) -> Vec<(usize, u64)> {
    let moduli = params.ring().moduli();
    let mut out = Vec::new();
    for ct in cts {
        for part in ct.parts() {
            for (j, points) in challenge.points.iter().enumerate().take(part.level()) {
                let m = &moduli[j];
                let coefficients = part.residues(j);
                for &(x, x_shoup) in points {
                    // Horner from the highest coefficient
                    let value = coefficients
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &c| m.add(m.mul_shoup(acc, x, x_shoup), c));
                    out.push((j, value));
                }
            }
        }
    }
    out
}

/// `F(cts)`: the fingerprint of a contribution (or of an aggregate).
pub fn fingerprint(cts: &[Ciphertext], challenge: &Challenge) -> Result<Vec<u64>, MheError> {
    let params = match cts.first() {
        Some(ct) => ct.params(),
        None => return Ok(Vec::new()),
    };
    check_coefficient_form(cts)?;
    Ok(evaluate(params, cts, challenge)
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

fn check_coefficient_form(cts: &[Ciphertext]) -> Result<(), MheError> {
    for part in cts.iter().flat_map(Ciphertext::parts) {
        if part.representation() != concord_ring::Representation::Coefficient {
            return Err(MheError::Fingerprint(
                "a ciphertext is not in coefficient form".into(),
            ));
        }
    }
    Ok(())
}

/// Checks `F(aggregate) = Σ_i contributions[i]` (each a contribution's fingerprint, as its node
/// signed it). An error says where the first mismatch is.
pub fn check(
    aggregate: &[Ciphertext],
    challenge: &Challenge,
    contributions: &[&[u64]],
) -> Result<(), MheError> {
    let params = aggregate
        .first()
        .ok_or_else(|| MheError::Fingerprint("an empty aggregate".into()))?
        .params();
    check_coefficient_form(aggregate)?;
    let expected = evaluate(params, aggregate, challenge);
    if let Some(bad) = contributions.iter().position(|c| c.len() != expected.len()) {
        return Err(MheError::Fingerprint(format!(
            "contribution {bad}'s fingerprint has {} values where the aggregate has {}",
            contributions[bad].len(),
            expected.len()
        )));
    }
    let moduli = params.ring().moduli();
    for (position, &(j, value)) in expected.iter().enumerate() {
        let m = &moduli[j];
        let sum = contributions
            .iter()
            .fold(0u64, |acc, c| m.add(acc, m.reduce(c[position])));
        if sum != value {
            return Err(MheError::Fingerprint(format!(
                "the aggregate is not the sum of the committed contributions (value {position} of {})",
                expected.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_bfv::{params, Plaintext, SecretKey, ValueRange};

    fn encrypt(sk: &SecretKey, values: &[i64]) -> Ciphertext {
        let params = sk.params().clone();
        let mut ct = sk
            .encrypt(&Plaintext::encode(&params, values, ValueRange::counts(100)).unwrap())
            .unwrap();
        ct.switch_to_transmit_level().unwrap();
        ct
    }

    #[test]
    fn soundness_reaches_128_bits_for_every_named_set() {
        for spec in params::ALL_SETS {
            let params = BfvParameters::new(spec).unwrap();
            let bits = Challenge::soundness_bits(&params);
            assert!(bits >= SOUNDNESS_BITS, "{}: {bits}", params.name());
            // and not far beyond: one point fewer would not reach it
            assert!(bits - bits / (Challenge::points(&params) as f64) < SOUNDNESS_BITS);
        }
    }

    #[test]
    fn the_sum_passes_and_a_single_contribution_or_a_partial_sum_does_not() {
        let params = BfvParameters::new(&params::ADD_4096).unwrap();
        let sk = SecretKey::generate(&params);
        let contributions: Vec<Vec<Ciphertext>> = (0..3i64)
            .map(|i| vec![encrypt(&sk, &[i, 1]), encrypt(&sk, &[2 * i, 5])])
            .collect();
        let aggregate: Vec<Ciphertext> = (0..2)
            .map(|k| Ciphertext::sum(contributions.iter().map(|c| &c[k])).unwrap())
            .collect();
        let challenge = Challenge::derive(&params, &[9; 32]);
        let signed: Vec<Vec<u64>> = contributions
            .iter()
            .map(|c| fingerprint(c, &challenge).unwrap())
            .collect();
        let refs: Vec<&[u64]> = signed.iter().map(Vec::as_slice).collect();
        check(&aggregate, &challenge, &refs).unwrap();

        // one institution's contribution presented as the aggregate of all three
        let err = check(&contributions[1], &challenge, &refs).unwrap_err();
        assert!(err.to_string().contains("not the sum"), "{err}");
        // the sum of two presented with three fingerprints
        let partial: Vec<Ciphertext> = (0..2)
            .map(|k| Ciphertext::sum(contributions[..2].iter().map(|c| &c[k])).unwrap())
            .collect();
        assert!(check(&partial, &challenge, &refs).is_err());
        // another challenge's values
        let other = Challenge::derive(&params, &[10; 32]);
        let stale: Vec<Vec<u64>> = contributions
            .iter()
            .map(|c| fingerprint(c, &other).unwrap())
            .collect();
        let stale: Vec<&[u64]> = stale.iter().map(Vec::as_slice).collect();
        assert!(check(&aggregate, &challenge, &stale).is_err());
        // a short fingerprint
        let short = [&refs[0][1..], refs[1], refs[2]];
        assert!(check(&aggregate, &challenge, &short).is_err());
    }
}
