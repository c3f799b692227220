//! Differential privacy of a released aggregate (DESIGN.md §5): distributed discrete Gaussian
//! noise, one share per contributing institution, accounted in zero-concentrated DP.
//!
//! **Unit of privacy.** A template declares what its DP results hide — one event, attribute,
//! object or sighting — and how far adding or removing one moves its cells (its L2
//! sensitivity `Δ`, `concord-stats` `Template::privacy_unit`): the event counts count every
//! event, the attribute tables every attribute, in exactly one cell, so `Δ = 1` and one cell
//! moves. The unit holds **across institutions**: MISP synchronisation copies an event (with
//! its creator, `Orgc`) to every institution it reaches, so a DP query counts at each
//! institution only the events it created (`Template::compute_created`) and one event, wherever
//! it is held, is counted once. Templates without a declared unit refuse DP queries.
//!
//! **Mechanism.** A query asks for `(ε, δ)` and at least `k` institutions (the fewest
//! contributions any node will release, checked by aggregate verification). Every node adds to
//! every cell an independent sample of the discrete Gaussian `N_Z(0, s²)` with
//! `s² = σ²/k`, drawn by OpenDP's exact sampler (`sample_discrete_gaussian`: integer
//! arithmetic throughout, no floating-point noise), before encryption. A released aggregate sums
//! `m ≥ k` shares, so its noise has variance at least `σ²` whoever dropped out; more shares
//! only add noise (post-processing).
//!
//! **Accounting.** By Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential
//! Privacy" (NeurIPS 2020), Theorem 14, the sum of `k` independent `N_Z(0, s²)` shifted by an
//! integer `Δ` satisfies `D_α ≤ α·Δ²/(2ks²) + τ` with `τ = 10·Σ_{j=1}^{k−1} e^{−2π²s²·j/(j+1)}`,
//! for `s ≥ ½` (the theorem's assumption: a plan never draws narrower noise, it raises `s` to
//! `½` instead). Independent cells compose, so a unit that moves `c` cells (the template's
//! [`concord_stats::PrivacyUnit::cells`]: two for a histogram over institutions, where one event
//! moves a count from one bucket to the next) costs `(ξ = c·τ, ρ = Δ²/(2ks²))`-zCDP, `Δ` the L2
//! sensitivity over all cells. `(ξ, ρ)`-zCDP gives
//! `(ξ + ρ + 2√(ρ·ln(1/δ)), δ)`-DP (Bun and Steinke 2016, Proposition 1.3), and zCDP composes
//! by adding `ξ` and `ρ` — which is how a node's budget ledger adds up queries. [`DpPlan::new`]
//! picks the smallest `s` whose query spends at most the asked `ε`.
//!
//! **Bounded noise.** Each sample is clamped to `±B`, `B = ⌈12·s⌉`, so the plaintext range
//! stays public and an aggregate never wraps modulo `t`: a discrete Gaussian exceeds `12s` with
//! probability below `2e^{−72} < 2^{−100}`. Clamping changes each sample's distribution by at
//! most `η = 2^{−100}` in total variation, and a mechanism within `η` of an `(ε, δ)`-DP one is
//! `(ε, δ + (1 + e^ε)·η)`-DP, so the plan adds `(1 + e^ε)·2^{−100}` to `δ` for every cell and
//! contribution ([`DpPlan::spent`]).
//!
//! **Overlap.** The indicator-overlap templates hide **one indicator held by one institution**:
//! adding or removing it moves one bin's sum by one, so the count of bins holding `j` and that
//! of `j ± 1` move by one each (`Δ = √2`, two cells). Their cells are computed from the sum by
//! the public circuit, so noise cannot go into the contributions; each party giving a share
//! of the release adds its samples, one per count, inside its smudged share
//! (`QueryPlan::release_noise`, `concord-mhe` `share_with_noise`), and a release with fewer
//! sharing parties than the `k` the noise is split for is refused. A party answers a release
//! once, so its noise is drawn once.
//!
//! **Trust.** The guarantee needs the noise of at least `k` honest contributions; institutions
//! colluding with the coordinator could omit theirs (as they could contribute zeros), and the
//! guarantee degrades to the noise of the honest ones.

use dashu::integer::IBig;
use dashu::rational::RBig;

/// A DP query as every party derives it from the query: the node to add its noise, the
/// coordinator and researcher to size the plaintext range and report the noise.
#[derive(Clone, Debug, PartialEq)]
pub struct DpPlan {
    /// What the query asked.
    pub epsilon: f64,
    pub delta: f64,
    /// What the result hides ("event", "attribute"), and the template's L2 sensitivity to one.
    pub unit: &'static str,
    pub sensitivity: f64,
    /// The most cells one unit moves.
    pub cells: usize,
    /// The fewest contributions the noise is split for.
    pub institutions: usize,
    /// Each node's noise: `N_Z(0, scale²)`, clamped to `±bound`.
    pub scale: f64,
    pub bound: i64,
    /// The zCDP cost of the released aggregate, `(ξ, ρ)`.
    pub xi: f64,
    pub rho: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DpError {
    #[error("ε = {0} must be positive and at most 10")]
    Epsilon(f64),
    #[error("δ = {0} must be in (0, 1e-3]")]
    Delta(f64),
    #[error("template {0} declares no unit of privacy and sensitivity: differential privacy is not available for it")]
    NotSupported(&'static str),
    #[error("a count and its noise reach {reach}, beyond what decodes modulo t = {t}: ask for a larger ε")]
    NoiseTooWide { reach: u64, t: u64 },
    #[error("the noise sampler failed: {0}")]
    Sampler(String),
}

/// `ε` of `(ξ, ρ)`-zCDP at `δ`.
pub fn epsilon_of(xi: f64, rho: f64, delta: f64) -> f64 {
    xi + rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt()
}

/// The largest `ρ` with `ρ + 2√(ρ ln(1/δ)) ≤ ε`.
pub fn rho_for(epsilon: f64, delta: f64) -> f64 {
    let l = (1.0 / delta).ln();
    ((l + epsilon).sqrt() - l.sqrt()).powi(2)
}

/// The narrowest noise a node draws: CKS20 Theorem 14 assumes `s ≥ ½`.
pub const MIN_SCALE: f64 = 0.5;

/// CKS20 Theorem 14's `τ` for `k` shares of scale `s`.
fn tau(scale: f64, k: usize) -> f64 {
    let s2 = scale * scale;
    10.0 * (1..k)
        .map(|j| (-2.0 * std::f64::consts::PI.powi(2) * s2 * j as f64 / (j as f64 + 1.0)).exp())
        .sum::<f64>()
}

impl DpPlan {
    /// The plan for a query of `template` asking `(ε, δ)` over at least `k` institutions.
    pub fn new(
        template: concord_stats::Template,
        epsilon: f64,
        delta: f64,
        k: usize,
    ) -> Result<Self, DpError> {
        if !(epsilon > 0.0 && epsilon <= 10.0) {
            return Err(DpError::Epsilon(epsilon));
        }
        if !(delta > 0.0 && delta <= 1e-3) {
            return Err(DpError::Delta(delta));
        }
        let concord_stats::PrivacyUnit {
            unit,
            sensitivity,
            cells,
        } = template
            .privacy_unit()
            .ok_or(DpError::NotSupported(template.info().id))?;
        let k = k.max(1);
        // the largest ρ the budget allows, less a margin for ξ; shrunk until it fits
        let mut rho_target = rho_for(epsilon, delta) * (1.0 - 1e-12);
        loop {
            // never below ½ (Theorem 14's assumption): wider noise only lowers the cost
            let scale = (sensitivity * sensitivity / (2.0 * k as f64 * rho_target))
                .sqrt()
                .max(MIN_SCALE);
            let rho = sensitivity * sensitivity / (2.0 * k as f64 * scale * scale);
            let xi = cells as f64 * tau(scale, k);
            if epsilon_of(xi, rho, delta) <= epsilon {
                return Ok(Self {
                    epsilon,
                    delta,
                    unit,
                    sensitivity,
                    cells,
                    institutions: k,
                    scale,
                    bound: (12.0 * scale).ceil() as i64,
                    xi,
                    rho,
                });
            }
            rho_target *= 0.999;
        }
    }

    /// The standard deviation (at least) of the released aggregate's noise per cell.
    pub fn aggregate_std_dev(&self) -> f64 {
        self.scale * (self.institutions as f64).sqrt()
    }

    /// What the released aggregate costs, as `(ε, δ)`: the asked `ε` at most, and `δ` plus the
    /// clamping's `(1 + e^ε)·2^-100` per cell and contribution.
    pub fn spent(&self, cells: usize, contributions: usize) -> (f64, f64) {
        let epsilon = epsilon_of(self.xi, self.rho, self.delta);
        (
            epsilon,
            self.delta + (1.0 + epsilon.exp()) * (cells * contributions) as f64 * 2f64.powi(-100),
        )
    }

    /// The `ε` this query costs at another `δ` (a node compares it with its limits at its own
    /// `budget_delta`).
    pub fn epsilon_at(&self, delta: f64) -> f64 {
        epsilon_of(self.xi, self.rho, delta)
    }

    /// One node's noise for `cells` cells: exact discrete Gaussian samples, clamped to `±bound`.
    pub fn sample(&self, cells: usize) -> Result<Vec<i64>, DpError> {
        let scale = RBig::try_from(self.scale).map_err(|e| DpError::Sampler(format!("{e:?}")))?;
        (0..cells)
            .map(|_| {
                let x: IBig = opendp::traits::samplers::sample_discrete_gaussian(scale.clone())
                    .map_err(|e| DpError::Sampler(e.to_string()))?;
                let x = i64::try_from(x).unwrap_or(i64::MAX);
                Ok(x.clamp(-self.bound, self.bound))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_stats::Template;

    #[test]
    fn the_plan_spends_at_most_the_asked_epsilon_and_no_more_noise_than_needed() {
        for (epsilon, delta, k) in [(1.0, 1e-6, 3), (0.1, 1e-9, 10), (5.0, 1e-5, 2)] {
            let plan =
                DpPlan::new(Template::EventsByMonthTlpDistribution, epsilon, delta, k).unwrap();
            let (spent, _) = plan.spent(100, k);
            assert!(spent <= epsilon, "{spent} > {epsilon}");
            assert!(
                spent > 0.98 * epsilon,
                "{spent} wastes the budget of {epsilon}"
            );
            assert_eq!(plan.bound, (12.0 * plan.scale).ceil() as i64);
            // ρ from the scale as documented
            let rho = 1.0 / (2.0 * k as f64 * plan.scale * plan.scale);
            assert!((plan.rho - rho).abs() < 1e-12);
        }
        // ε = 1, δ = 1e-6, k = 3: ρ ≈ 0.0175, so s² ≈ 9.5 per node (σ ≈ 5.3 in all)
        let plan = DpPlan::new(Template::EventsByMonthTlpDistribution, 1.0, 1e-6, 3).unwrap();
        assert!((plan.rho / rho_for(1.0, 1e-6) - 1.0).abs() < 1e-9);
        assert!(
            (plan.scale * plan.scale - 9.5).abs() < 0.2,
            "{}",
            plan.scale
        );
        assert!((epsilon_of(0.0, rho_for(1.0, 1e-6), 1e-6) - 1.0).abs() < 1e-12);
    }

    /// The review's fixtures, recomputed independently of the plan: a unit that moves two cells
    /// pays `τ` twice (the old accounting charged once: true ε 1.036 at k = 100, 1.66 at
    /// k = 1000, 11.8 at ε = 10, k = 3), and no node draws `s < ½` (it did: 0.497 at ε = 5,
    /// δ = 1e-3, k = 10; 0.44 at ε = 10, δ = 1e-6, k = 3).
    #[test]
    fn every_moved_cell_is_paid_and_no_node_draws_below_one_half() {
        let independent_tau = |s: f64, k: usize| -> f64 {
            (1..k)
                .map(|j| {
                    let j = j as f64;
                    10.0 * (-2.0 * std::f64::consts::PI.powi(2) * s * s * j / (j + 1.0)).exp()
                })
                .sum()
        };
        let two_cells = Template::InstitutionsByEventsPerMonth;
        assert_eq!(two_cells.privacy_unit().unwrap().cells, 2);
        for (epsilon, delta, k) in [
            (1.0, 1e-6, 100),
            (1.0, 1e-6, 1000),
            (10.0, 1e-6, 3),
            (5.0, 1e-3, 10),
            (1.0, 1e-6, 3),
        ] {
            let plan = DpPlan::new(two_cells, epsilon, delta, k).unwrap();
            let s = plan.scale;
            assert!(s >= 0.5, "s = {s} at ε = {epsilon}, k = {k}");
            let rho = 2.0 / (2.0 * k as f64 * s * s);
            let xi = 2.0 * independent_tau(s, k);
            let true_epsilon = xi + rho + 2.0 * (rho * (1.0 / delta).ln()).sqrt();
            assert!(
                true_epsilon <= epsilon * (1.0 + 1e-9),
                "ε = {epsilon}, k = {k}: true ε {true_epsilon}"
            );
        }
        for (epsilon, delta, k) in [(5.0, 1e-3, 10), (10.0, 1e-6, 3)] {
            let plan =
                DpPlan::new(Template::EventsByMonthTlpDistribution, epsilon, delta, k).unwrap();
            assert!(plan.scale >= 0.5, "{}", plan.scale);
            assert!(plan.spent(1, k).0 <= epsilon);
        }
        // the clamping's δ term carries (1 + e^ε)
        let plan = DpPlan::new(Template::EventsByMonthTlpDistribution, 10.0, 1e-6, 3).unwrap();
        let (eps, delta) = plan.spent(1_000, 3);
        let expected = 1e-6 + (1.0 + eps.exp()) * 3_000.0 * 2f64.powi(-100);
        assert!((delta - expected).abs() <= 1e-18, "{delta} vs {expected}");
        // ε at the node's own δ: a looser δ means a larger ε for the same noise
        let plan = DpPlan::new(Template::EventsByMonthTlpDistribution, 1.0, 1e-3, 3).unwrap();
        assert!(plan.epsilon_at(1e-6) > 1.3, "{}", plan.epsilon_at(1e-6));
    }

    #[test]
    fn bad_parameters_and_templates_without_sensitivity_are_refused() {
        let t = Template::EventsByMonthTlpDistribution;
        assert_eq!(DpPlan::new(t, 0.0, 1e-6, 3), Err(DpError::Epsilon(0.0)));
        assert_eq!(DpPlan::new(t, 11.0, 1e-6, 3), Err(DpError::Epsilon(11.0)));
        assert_eq!(DpPlan::new(t, 1.0, 0.1, 3), Err(DpError::Delta(0.1)));
        assert!(matches!(
            DpPlan::new(Template::TimeToPublish, 1.0, 1e-6, 3),
            Err(DpError::NotSupported("time-to-publish"))
        ));
    }

    /// The noise of a released aggregate — the sum of k nodes' samples, as the nodes draw them —
    /// has the declared distribution: mean 0, variance k·s², and the discrete Gaussian's mass
    /// within one standard deviation. The sampler draws from the operating system's CSPRNG
    /// (by design it takes no seed), so each check's threshold is set at 6 standard errors: a
    /// correct sampler fails one with probability below 1e-8.
    #[test]
    fn summed_node_noise_has_the_declared_scale() {
        let plan = DpPlan::new(Template::EventsByMonthTlpDistribution, 1.0, 1e-6, 3).unwrap();
        let draws = 30_000;
        let shares: Vec<Vec<i64>> = (0..plan.institutions)
            .map(|_| plan.sample(draws).unwrap())
            .collect();
        let sums: Vec<f64> = (0..draws)
            .map(|i| shares.iter().map(|s| s[i]).sum::<i64>() as f64)
            .collect();
        let n = draws as f64;
        let mean = sums.iter().sum::<f64>() / n;
        let variance = sums.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
        let sigma = plan.aggregate_std_dev();
        assert!(mean.abs() < 6.0 * sigma / n.sqrt(), "mean {mean}");
        // the variance of a sample variance of a near-Gaussian: 2σ⁴/(n−1)
        let se = sigma * sigma * (2.0 / (n - 1.0)).sqrt();
        assert!(
            (variance - sigma * sigma).abs() < 6.0 * se,
            "variance {variance}, declared {}",
            sigma * sigma
        );
        // P(|X| ≤ σ) of the continuous Gaussian is 0.6827; the discrete one at this scale is
        // within 0.01 of it
        let within = sums.iter().filter(|x| x.abs() <= sigma).count() as f64 / n;
        let p: f64 = 0.6827;
        assert!(
            (within - p).abs() < 0.01 + 6.0 * (p * (1.0 - p) / n).sqrt(),
            "{within}"
        );
        // every share within its public bound
        assert!(shares.iter().flatten().all(|x| x.abs() <= plan.bound));
    }
}
