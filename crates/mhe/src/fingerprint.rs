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
//! and `T_j` independent points all are with probability `≤ ((N−1)/q_j)^{T_j}`.
//! [`Challenge::points`] picks `T_j` for each prime so that this is below `2^-128`
//! ([`SOUNDNESS_BITS`]): 4 points for a 48-bit prime at `N = 8192`; a coordinator who grinds `G` candidate aggregates (each a fresh hash)
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

/// The evaluation points of one challenge, for every prime of the parameter set, with their
/// powers `x^0, …, x^{N−1}`: evaluating a polynomial is then a dot product of independent
/// products summed exactly in 128 bits, instead of a chain of dependent modular steps.
#[derive(Clone, Debug)]
pub struct Challenge {
    /// `powers[j][t]`: the powers of point `t` for prime `j`.
    powers: Vec<Vec<Vec<u64>>>,
}

/// Points per prime `q` for degree `n`: `⌈SOUNDNESS_BITS / log2(q/(n−1))⌉`.
fn points_for(q: u64, n: usize) -> usize {
    (SOUNDNESS_BITS / bits_per_point(q, n)).ceil() as usize
}

fn bits_per_point(q: u64, n: usize) -> f64 {
    (q as f64 / (n as f64 - 1.0)).log2()
}

impl Challenge {
    /// How many points each prime of `params` gets (more for smaller primes), so that each
    /// reaches [`SOUNDNESS_BITS`].
    pub fn points(params: &BfvParameters) -> Vec<usize> {
        let ring = params.ring();
        ring.moduli()
            .iter()
            .map(|q| points_for(q.value(), ring.degree()))
            .collect()
    }

    /// The soundness error, in bits, of the weakest prime of `params`.
    pub fn soundness_bits(params: &BfvParameters) -> f64 {
        let ring = params.ring();
        ring.moduli()
            .iter()
            .map(|q| {
                points_for(q.value(), ring.degree()) as f64
                    * bits_per_point(q.value(), ring.degree())
            })
            .fold(f64::INFINITY, f64::min)
    }

    /// The points drawn from a public 32-byte seed (a hash of everything committed), for the
    /// first `level` primes (those of ciphertexts at that level).
    pub fn derive(params: &BfvParameters, seed: &[u8; 32], level: usize) -> Self {
        let n = params.degree();
        let powers = params
            .ring()
            .moduli()
            .iter()
            .take(level)
            .enumerate()
            .map(|(j, m)| {
                let mut rng = seeded_rng(seed, b"fingerprint", j as u64);
                let q = m.value();
                let mask = u64::MAX >> q.leading_zeros();
                (0..points_for(q, n))
                    .map(|_| {
                        let x = loop {
                            let x = rng.next_u64() & mask;
                            if x < q {
                                break x;
                            }
                        };
                        let x_shoup = m.shoup(x);
                        std::iter::successors(Some(1u64), |&p| Some(m.mul_shoup(p, x, x_shoup)))
                            .take(n)
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Self { powers }
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
            for (j, points) in challenge.powers.iter().enumerate().take(part.level()) {
                let q = moduli[j].value() as u128;
                let coefficients = part.residues(j);
                for powers in points {
                    // Σ c_k·x^k: each product < q² < 2^100, a sum of N ≤ 2^17 of them < 2^117
                    let sum: u128 = coefficients
                        .iter()
                        .zip(powers)
                        .map(|(&c, &p)| c as u128 * p as u128)
                        .sum();
                    out.push((j, (sum % q) as u64));
                }
            }
        }
    }
    out
}

/// `F(cts)`: the fingerprint of a contribution (or of an aggregate) at the challenge `seed`.
pub fn fingerprint(cts: &[Ciphertext], seed: &[u8; 32]) -> Result<Vec<u64>, MheError> {
    let Some((params, challenge)) = challenge_for(cts, seed)? else {
        return Ok(Vec::new());
    };
    Ok(evaluate(params, cts, &challenge)
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

/// The challenge covering every prime of `cts` (coefficient form required), or `None` for
/// no ciphertext.
fn challenge_for<'a>(
    cts: &'a [Ciphertext],
    seed: &[u8; 32],
) -> Result<Option<(&'a BfvParameters, Challenge)>, MheError> {
    let Some(first) = cts.first() else {
        return Ok(None);
    };
    let parts = || cts.iter().flat_map(Ciphertext::parts);
    if parts().any(|p| p.representation() != concord_ring::Representation::Coefficient) {
        return Err(MheError::Fingerprint(
            "a ciphertext is not in coefficient form".into(),
        ));
    }
    let level = parts().map(|p| p.level()).max().unwrap_or(0);
    let params = first.params();
    Ok(Some((params, Challenge::derive(params, seed, level))))
}

/// Checks `F(aggregate) = Σ_i contributions[i]` at the challenge `seed` (each a contribution's
/// fingerprint, as its node signed it). An error says where the first mismatch is; an
/// aggregate at another level than the contributions has another number of values and fails.
pub fn check(
    aggregate: &[Ciphertext],
    seed: &[u8; 32],
    contributions: &[&[u64]],
) -> Result<(), MheError> {
    let (params, challenge) = challenge_for(aggregate, seed)?
        .ok_or_else(|| MheError::Fingerprint("an empty aggregate".into()))?;
    let expected = evaluate(params, aggregate, &challenge);
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
            // and no more points than needed: one fewer would not reach it
            let n = params.degree();
            for (q, t) in params
                .ring()
                .moduli()
                .iter()
                .zip(Challenge::points(&params))
            {
                assert!(((t - 1) as f64) * bits_per_point(q.value(), n) < SOUNDNESS_BITS);
            }
        }
    }

    #[test]
    fn evaluation_is_the_polynomial_at_the_point() {
        // against Horner's rule, for every prime and point
        let params = BfvParameters::new(&params::ADD_4096).unwrap();
        let sk = SecretKey::generate(&params);
        let ct = encrypt(&sk, &[3, 1, 4]);
        let values = fingerprint(std::slice::from_ref(&ct), &[5; 32]).unwrap();
        let challenge = Challenge::derive(&params, &[5; 32], ct.level());
        let mut expected = Vec::new();
        for part in ct.parts() {
            for j in 0..part.level() {
                let m = &params.ring().moduli()[j];
                for powers in &challenge.powers[j] {
                    let x = powers[1];
                    let horner = part
                        .residues(j)
                        .iter()
                        .rev()
                        .fold(0u64, |acc, &c| m.add(m.mul(acc, x), c));
                    expected.push(horner);
                }
            }
        }
        assert_eq!(values, expected);
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
        let challenge = [9; 32];
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
        let other = [10; 32];
        let stale: Vec<Vec<u64>> = contributions
            .iter()
            .map(|c| fingerprint(c, &other).unwrap())
            .collect();
        let stale: Vec<&[u64]> = stale.iter().map(Vec::as_slice).collect();
        assert!(check(&aggregate, &challenge, &stale).is_err());
        // the aggregate at another level (more primes) than the contributions
        let unswitched: Vec<Ciphertext> = (0..2)
            .map(|k| {
                sk.encrypt(&Plaintext::encode(&params, &[k], ValueRange::counts(100)).unwrap())
                    .unwrap()
            })
            .collect();
        assert!(unswitched[0].level() > aggregate[0].level());
        let err = check(&unswitched, &challenge, &refs).unwrap_err();
        assert!(err.to_string().contains("values where"), "{err}");
        // a short fingerprint
        let short = [&refs[0][1..], refs[1], refs[2]];
        assert!(check(&aggregate, &challenge, &short).is_err());
    }
}
