//! Polynomial evaluation over slots (engine part 2): `p(x) = Σ_k c_k·x^k mod t` in every slot, by
//! the baby-step/giant-step variant of Paterson–Stockmeyer (as in Bossuat et al., Eurocrypt
//! 2021, §4, and Lattigo's evaluator): powers `x, x², …, x^k` (baby steps) and
//! `x^k, x^{2k}, x^{4k}, …` (giant steps) each at the least depth (`x^i = x^{2^⌊log i⌋}·x^{i−2^⌊log i⌋}`),
//! then `p = low + x^{k·2^m}·high`, recursively, with chunks of `k` coefficients combined from
//! the baby steps by scalar products alone. A polynomial of degree `d` costs about
//! `k + d/k` multiplications for `k ≈ √d`, at depth `⌈log2 d⌉` (+1 when the split is uneven).
//! [`PowerBasis::all`] keeps every power instead — `d − 1` multiplications once, then any number
//! of polynomials of degree ≤ `d` by scalar products only — which is what
//! [`Ciphertext::equals_each`] uses for its `d + 1` indicators, and
//! [`Ciphertext::slot_histogram`] after it (each indicator summed over all slots).
//!
//! Polynomials are over `Z_t`: intermediate powers wrap around `t` freely, and the result's
//! range is computed exactly by evaluating `p` on every value of the input's range (up to
//! [`MAX_ENUMERATED_RANGE`] values; beyond it, the result may be any residue). So an equality
//! test "x = j" on a ciphertext of range `[0, n]` is a ciphertext of range `[0, 1]`, which adds
//! and decrypts like any count.

use crate::error::BfvError;
use crate::multiply::RelinearizationKey;
use crate::plaintext::{Plaintext, ValueRange};
use crate::rotation::GaloisKeys;
use crate::Ciphertext;
use concord_ring::Modulus;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// Input ranges up to this many values get an exact output range.
pub const MAX_ENUMERATED_RANGE: i128 = 1 << 20;

/// A polynomial with coefficients in `Z_t`, lowest degree first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotPolynomial {
    coefficients: Vec<u64>,
}

impl SlotPolynomial {
    /// From signed coefficients (reduced mod `t`), lowest degree first; trailing zeros dropped.
    pub fn new(t: u64, coefficients: &[i64]) -> Self {
        let t = Modulus::new(t).expect("a plaintext modulus");
        let mut coefficients: Vec<u64> = coefficients.iter().map(|&c| t.from_i64(c)).collect();
        while coefficients.last() == Some(&0) {
            coefficients.pop();
        }
        Self { coefficients }
    }

    /// The indicator of `x = j` on `domain` (Lagrange's basis polynomial mod `t`): 1 at `j`,
    /// 0 at every other value of the domain, of degree `|domain| − 1`. Refused if the domain
    /// holds `t` values or more (its points would not be distinct mod `t`) or misses `j`.
    pub fn indicator(t: u64, domain: RangeInclusive<i64>, j: i64) -> Result<Self, BfvError> {
        let (lo, hi) = (*domain.start(), *domain.end());
        if lo > hi || (hi as i128 - lo as i128) >= t as i128 || !domain.contains(&j) {
            return Err(BfvError::Domain {
                lo,
                hi,
                value: j,
                t,
            });
        }
        let m = Modulus::new(t).expect("a plaintext modulus");
        // Π_{k≠j} (x − k), then divided by Π_{k≠j} (j − k)
        let mut poly = vec![1u64];
        let mut denominator = 1u64;
        for k in (lo..=hi).filter(|&k| k != j) {
            let root = m.from_i64(k);
            let mut next = vec![0u64; poly.len() + 1];
            for (i, &c) in poly.iter().enumerate() {
                next[i + 1] = m.add(next[i + 1], c);
                next[i] = m.sub(next[i], m.mul(c, root));
            }
            poly = next;
            denominator = m.mul(denominator, m.from_i64(j - k));
        }
        let inverse = m.inv(denominator).expect("distinct points below a prime t");
        let coefficients: Vec<i64> = poly.iter().map(|&c| m.mul(c, inverse) as i64).collect();
        Ok(Self::new(t, &coefficients))
    }

    /// The degree (0 for a constant, including zero).
    pub fn degree(&self) -> usize {
        self.coefficients.len().saturating_sub(1)
    }

    pub fn coefficients(&self) -> &[u64] {
        &self.coefficients
    }

    /// `p(x) mod t`, by Horner.
    pub fn evaluate_plain(&self, t: u64, x: i64) -> u64 {
        let m = Modulus::new(t).expect("a plaintext modulus");
        let x = m.from_i64(x);
        self.coefficients
            .iter()
            .rev()
            .fold(0, |acc, &c| m.add(m.mul(acc, x), c))
    }

    /// The range of `p` (centred residues) over every value of `input`, or all residues if
    /// the input range is wider than [`MAX_ENUMERATED_RANGE`].
    fn output_range(&self, t: u64, input: ValueRange) -> ValueRange {
        let m = Modulus::new(t).expect("a plaintext modulus");
        if input.width() >= MAX_ENUMERATED_RANGE {
            return ValueRange::residues(t);
        }
        let values =
            (input.lo..=input.hi).map(|x| m.center(self.evaluate_plain(t, x as i64)) as i128);
        let (lo, hi) = values.fold((0, 0), |(lo, hi), v| (v.min(lo), v.max(hi)));
        ValueRange { lo, hi }
    }
}

/// Powers of one ciphertext, relinearized: the baby steps `x^1 … x^k` and the giant steps
/// `x^{k·2^m}` up to a degree.
pub struct PowerBasis {
    x: Ciphertext,
    degree: usize,
    baby: usize,
    powers: BTreeMap<usize, Ciphertext>,
}

impl PowerBasis {
    /// The basis Paterson–Stockmeyer needs for polynomials of degree up to `degree`:
    /// `k = 2^⌈log2(d+1)/2⌉` baby steps and the giant steps.
    pub fn new(x: &Ciphertext, degree: usize, rlk: &RelinearizationKey) -> Result<Self, BfvError> {
        let log = ((degree + 1) as f64).log2();
        let baby = 1usize << ((log / 2.0).ceil() as u32).max(1);
        Self::with_baby_steps(x, degree, baby, rlk)
    }

    /// Every power `x^1 … x^d`: the most multiplications up front, then polynomials of degree
    /// up to `d` by scalar products only.
    pub fn all(x: &Ciphertext, degree: usize, rlk: &RelinearizationKey) -> Result<Self, BfvError> {
        Self::with_baby_steps(x, degree, degree.max(1), rlk)
    }

    fn with_baby_steps(
        x: &Ciphertext,
        degree: usize,
        baby: usize,
        rlk: &RelinearizationKey,
    ) -> Result<Self, BfvError> {
        if x.degree() != 1 {
            return Err(BfvError::Degree(x.degree()));
        }
        let mut basis = Self {
            x: x.clone(),
            degree,
            baby,
            powers: BTreeMap::from([(1, x.clone())]),
        };
        for i in 2..=baby.min(degree) {
            basis.power(i, rlk)?;
        }
        let mut giant = baby;
        while giant <= degree {
            basis.power(giant, rlk)?;
            giant *= 2;
        }
        Ok(basis)
    }

    /// `x^i` at the least depth, computing what it needs.
    fn power(&mut self, i: usize, rlk: &RelinearizationKey) -> Result<&Ciphertext, BfvError> {
        if !self.powers.contains_key(&i) {
            let high = 1usize << (usize::BITS - 1 - i.leading_zeros());
            let low = if high == i { i / 2 } else { i - high };
            let high = if high == i { i / 2 } else { high };
            self.power(high, rlk)?;
            self.power(low, rlk)?;
            let mut product = self.powers[&high].multiply_unchecked(&self.powers[&low])?;
            product.relinearize(rlk)?;
            self.powers.insert(i, product);
        }
        Ok(&self.powers[&i])
    }

    /// `p(x)`, exact mod `t` in every slot, relinearized; refused if `p`'s degree exceeds
    /// the basis.
    pub fn evaluate(
        &self,
        p: &SlotPolynomial,
        rlk: &RelinearizationKey,
    ) -> Result<Ciphertext, BfvError> {
        if p.degree() > self.degree {
            return Err(BfvError::PolynomialDegree {
                degree: p.degree(),
                basis: self.degree,
            });
        }
        let t = self.x.params.plaintext_modulus();
        let mut out = self.evaluate_chunks(p.coefficients(), rlk)?;
        out.relinearize(rlk)?;
        out.range = p.output_range(t, self.x.range);
        Ok(out)
    }

    /// `Σ c_i·x^i` for coefficients starting at degree 0, of degree 1 or 2 (not relinearized
    /// at the top: one relinearization for the sum); the range is set by the caller.
    fn evaluate_chunks(&self, c: &[u64], rlk: &RelinearizationKey) -> Result<Ciphertext, BfvError> {
        if c.len() <= self.baby + 1 {
            return Ok(self.combination(c));
        }
        // split at the largest giant step below the degree: p = low + x^s·high
        let mut split = self.baby;
        while 2 * split < c.len() {
            split *= 2;
        }
        let low = self.evaluate_chunks(&c[..split], rlk)?;
        let high = &c[split..];
        let giant = &self.powers[&split];
        let mut term = if high.len() == 1 {
            scaled(giant, high[0])
        } else {
            let mut high = self.evaluate_chunks(high, rlk)?;
            high.relinearize(rlk)?;
            high.multiply_unchecked(giant)?
        };
        term.add_unchecked(&low);
        Ok(term)
    }

    /// `c_0 + Σ_{i≥1} c_i·x^i` from stored powers, by scalar products (no depth).
    fn combination(&self, c: &[u64]) -> Ciphertext {
        let mut acc = scaled(&self.x, 0);
        let params = &self.x.params;
        let ring = params.ring();
        for (i, &ci) in c.iter().enumerate().skip(1) {
            if ci != 0 {
                // acc += c_i·x^i, part by part, without a copy of x^i
                let ci = params.t().center(ci);
                let residues: Vec<u64> = ring.moduli().iter().map(|m| m.from_i64(ci)).collect();
                acc.combine(&self.powers[&i], |ring, a, b| {
                    a.add_scalar_multiple(ring, b, &residues)
                });
            }
        }
        if let Some(&c0) = c.first() {
            let params = &self.x.params;
            let mut constant = vec![0u64; params.degree()];
            constant[0] = c0;
            let pt = Plaintext::from_coefficients(params, constant, ValueRange::counts(0));
            let scaled = pt.scaled(acc.level());
            acc.parts[0].add_assign(params.ring(), &scaled);
        }
        acc
    }
}

/// `c·ct` for a constant `c ∈ Z_t` (its centred representative), range left to the caller.
fn scaled(ct: &Ciphertext, c: u64) -> Ciphertext {
    let params = &ct.params;
    let c = params.t().center(c);
    let ring = params.ring();
    let residues: Vec<u64> = ring.moduli().iter().map(|m| m.from_i64(c)).collect();
    let mut out = ct.clone();
    for part in &mut out.parts {
        part.mul_scalar_assign(ring, &residues);
    }
    out
}

impl Ciphertext {
    /// The histogram of the slot values over `domain`: slot `i` of the result holds how many of
    /// the `N` slots hold `domain.start() + i`, and slots past the domain hold 0 — e.g., over
    /// the sum of institutions' indicator-presence vectors, "how many indicators are seen by
    /// exactly 0, 1, …, n institutions". The one-hot indicators of [`Self::equals_each`], each
    /// summed over all slots ([`Self::inner_sum`]) and moved into its own slot by a plaintext
    /// unit vector. Needs the inner-sum Galois keys ([`GaloisKeys::for_inner_sum`]).
    pub fn slot_histogram(
        &self,
        domain: RangeInclusive<i64>,
        rlk: &RelinearizationKey,
        galois: &GaloisKeys,
    ) -> Result<Ciphertext, BfvError> {
        let n = self.params.degree();
        let bins = (*domain.end() - *domain.start() + 1).max(0) as usize;
        if bins > n {
            return Err(BfvError::TooManyValues {
                given: bins,
                slots: n,
            });
        }
        let mut histogram: Option<Ciphertext> = None;
        for (bin, indicator) in self.equals_each(domain, rlk)?.iter().enumerate() {
            let mut count = indicator.inner_sum(galois)?;
            let mut unit = vec![0i64; bin + 1];
            unit[bin] = 1;
            count.mul_plain_assign(&Plaintext::encode(
                &self.params,
                &unit,
                ValueRange::counts(1),
            )?)?;
            match &mut histogram {
                // the bins occupy distinct slots: each slot holds one count, at most N
                Some(h) => h.add_unchecked(&count),
                None => histogram = Some(count),
            }
        }
        let mut histogram = histogram.expect("a domain holds at least one value");
        histogram.range = ValueRange::counts(n as u64);
        Ok(histogram)
    }

    /// How many slots, over all of `cts`, hold each value `j` of `counted`: one ciphertext per
    /// `j` whose **constant coefficient** is that count (its slots mean nothing by themselves;
    /// decrypt the constant coefficients alone — `concord-mhe`'s `Extent::Constants` — and
    /// nothing else of it is revealed).
    ///
    /// The count is `Σ_c Σ_slots p_j(x_c)` for the indicator `p_j = Σ_k a_k·x^k` of `j` on
    /// `domain`, and since `Σ_slots m = N·m_0` ([`Plaintext::constant_coefficient`]) it is the
    /// constant coefficient of `Σ_{k≥1} N·a_k·P_k + N·a_0·C` with `P_k = Σ_c x_c^k`: every
    /// power of every ciphertext (`|domain| − 2` products each), summed over the ciphertexts
    /// first, then one scalar combination per `j` — no rotations, so no Galois keys, where
    /// [`Self::slot_histogram`] needs `log2 N` rotations per value. Exact while the number of
    /// slots counted over, `C·N`, is below `t` (refused otherwise: [`BfvError::CountOverflow`]).
    pub fn value_counts(
        cts: &[Ciphertext],
        domain: RangeInclusive<i64>,
        counted: RangeInclusive<i64>,
        rlk: &RelinearizationKey,
    ) -> Result<Vec<Ciphertext>, BfvError> {
        let first = cts.first().ok_or(BfvError::NothingToCount)?;
        let params = first.params.clone();
        let t = params.plaintext_modulus();
        let slots = cts.len() as u128 * params.degree() as u128;
        if slots >= u128::from(t) {
            return Err(BfvError::CountOverflow { slots, t });
        }
        let (lo, hi) = (*domain.start(), *domain.end());
        for ct in cts {
            crate::check_same_params(&params, &ct.params)?;
            if ct.range.lo < lo as i128 || ct.range.hi > hi as i128 {
                let value = if ct.range.lo < lo as i128 {
                    ct.range.lo
                } else {
                    ct.range.hi
                };
                return Err(BfvError::Domain {
                    lo,
                    hi,
                    value: value as i64,
                    t,
                });
            }
        }
        let indicators: Vec<SlotPolynomial> = counted
            .map(|j| SlotPolynomial::indicator(t, domain.clone(), j))
            .collect::<Result<_, _>>()?;
        let degree = ((hi - lo) as usize).max(1);
        // P_k = Σ_c x_c^k, k = 1..=degree
        let mut sums: BTreeMap<usize, Ciphertext> = BTreeMap::new();
        for ct in cts {
            for (k, power) in PowerBasis::all(ct, degree, rlk)?.powers {
                match sums.entry(k) {
                    std::collections::btree_map::Entry::Occupied(mut sum) => {
                        sum.get_mut().add_unchecked(&power)
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(power);
                    }
                }
            }
        }
        let summed = PowerBasis {
            x: sums[&1].clone(),
            degree,
            baby: degree,
            powers: sums,
        };
        let m = params.t();
        let n = m.reduce(params.degree() as u64);
        let c = m.reduce(cts.len() as u64);
        Ok(indicators
            .iter()
            .map(|p| {
                let mut scaled: Vec<u64> = p.coefficients().iter().map(|&a| m.mul(a, n)).collect();
                if let Some(a0) = scaled.first_mut() {
                    *a0 = m.mul(*a0, c);
                }
                let mut count = summed.combination(&scaled);
                count.range = ValueRange::residues(t);
                count
            })
            .collect())
    }

    /// `p(self)` slot-wise, exact mod `t` (Paterson–Stockmeyer, baby-step/giant-step).
    pub fn evaluate_polynomial(
        &self,
        p: &SlotPolynomial,
        rlk: &RelinearizationKey,
    ) -> Result<Ciphertext, BfvError> {
        PowerBasis::new(self, p.degree().max(1), rlk)?.evaluate(p, rlk)
    }

    /// One ciphertext per value `j` of `domain`, each holding 1 in the slots where `self = j`
    /// and 0 elsewhere: a one-hot encoding, at depth `⌈log2 |domain|⌉`. `self`'s range must lie
    /// in the domain (otherwise an out-of-domain value could map to anything).
    pub fn equals_each(
        &self,
        domain: RangeInclusive<i64>,
        rlk: &RelinearizationKey,
    ) -> Result<Vec<Ciphertext>, BfvError> {
        let (lo, hi) = (*domain.start(), *domain.end());
        if self.range.lo < lo as i128 || self.range.hi > hi as i128 {
            return Err(BfvError::Domain {
                lo,
                hi,
                value: if self.range.lo < lo as i128 {
                    self.range.lo as i64
                } else {
                    self.range.hi as i64
                },
                t: self.params.plaintext_modulus(),
            });
        }
        let t = self.params.plaintext_modulus();
        let indicators: Vec<SlotPolynomial> = domain
            .map(|j| SlotPolynomial::indicator(t, lo..=hi, j))
            .collect::<Result<_, _>>()?;
        let degree = indicators
            .iter()
            .map(SlotPolynomial::degree)
            .max()
            .unwrap_or(1);
        let basis = PowerBasis::all(self, degree.max(1), rlk)?;
        indicators.iter().map(|p| basis.evaluate(p, rlk)).collect()
    }
}
