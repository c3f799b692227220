//! Slot rotations (engine part 2): the Galois automorphisms `X ↦ X^g` permute the slots of the
//! 2 × N/2 matrix (`g = 3^k` rotates both rows by `k`, `g = 2N − 1` swaps them; see
//! [`crate::params`]), and a [`GaloisKeys`] entry per element switches the result from
//! `s(X^g)` back to `s` — the same hybrid key switching as relinearization
//! ([`crate::multiply`]).
//!
//! [`Ciphertext::inner_sum`] adds every slot into every slot with `log2(N/2)` row rotations by
//! powers of two and one row swap; [`GaloisKeys::for_inner_sum`] makes exactly those keys.

use crate::ciphertext::check_same_params;
use crate::error::BfvError;
use crate::keys::SecretKey;
use crate::multiply::KeySwitchingKey;
use crate::params::BfvParameters;
use crate::Ciphertext;
use concord_ring::sampling::secret_rng;
use concord_ring::Poly;
use std::collections::BTreeMap;
use std::sync::Arc;
use zeroize::Zeroizing;

/// Key-switching keys from `s(X^g)` to `s`, by Galois element `g`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GaloisKeys {
    params: Arc<BfvParameters>,
    keys: BTreeMap<u64, KeySwitchingKey>,
}

impl GaloisKeys {
    /// Keys for the given Galois elements.
    pub fn generate(sk: &SecretKey, elements: &[u64]) -> Result<Self, BfvError> {
        let params = sk.params();
        params
            .key_switching()
            .ok_or(BfvError::NotMultiplicative(params.name()))?;
        let mut rng = secret_rng();
        let mut keys = BTreeMap::new();
        for &g in elements {
            let s_g = sk.galois_image(g)?;
            keys.insert(g, KeySwitchingKey::generate(sk, &s_g, &mut rng));
        }
        Ok(Self {
            params: params.clone(),
            keys,
        })
    }

    /// Keys from their parts, by Galois element: per element, `(b_j, a_j)` per gadget digit
    /// in the key ring at the top, NTT form, with `b_j + a_j·s ≈ w_j·s(X^g)` — e.g. the
    /// output of the collective GKG (`concord-mhe`).
    pub fn from_parts(
        params: &Arc<BfvParameters>,
        keys: impl IntoIterator<Item = (u64, Vec<[Poly; 2]>)>,
    ) -> Result<Self, BfvError> {
        let keys = keys
            .into_iter()
            .map(|(g, parts)| {
                params.check_galois_element(g)?;
                Ok((g, KeySwitchingKey::from_parts(params, parts)?))
            })
            .collect::<Result<_, BfvError>>()?;
        Ok(Self {
            params: params.clone(),
            keys,
        })
    }

    /// The parts of the key for `element`, if present.
    pub fn parts(&self, element: u64) -> Option<&[[Poly; 2]]> {
        self.keys.get(&element).map(KeySwitchingKey::parts)
    }

    /// Keys for rotating the rows by each of `steps`, and for swapping them if `row_swap`.
    pub fn for_rotations(sk: &SecretKey, steps: &[i64], row_swap: bool) -> Result<Self, BfvError> {
        Self::generate(
            sk,
            &sk.params().galois_elements_for_rotations(steps, row_swap),
        )
    }

    /// The `log2(N/2)` rotation keys and the row-swap key [`Ciphertext::inner_sum`] uses.
    pub fn for_inner_sum(sk: &SecretKey) -> Result<Self, BfvError> {
        Self::generate(sk, &Self::inner_sum_elements(sk.params()))
    }

    /// The Galois elements of [`Ciphertext::inner_sum`]: the rotations by `1, 2, …, N/4`,
    /// then the row swap.
    pub fn inner_sum_elements(params: &BfvParameters) -> Vec<u64> {
        let steps: Vec<i64> = inner_sum_steps(params.degree()).collect();
        params.galois_elements_for_rotations(&steps, true)
    }

    /// The Galois elements this set of keys covers.
    pub fn elements(&self) -> impl Iterator<Item = u64> + '_ {
        self.keys.keys().copied()
    }

    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }
}

impl BfvParameters {
    /// Refuses anything but a Galois element: odd and below `2N`.
    pub fn check_galois_element(&self, g: u64) -> Result<(), BfvError> {
        let two_n = 2 * self.degree() as u64;
        if g.is_multiple_of(2) || g >= two_n {
            return Err(BfvError::GaloisElement { element: g, two_n });
        }
        Ok(())
    }

    /// The Galois elements rotating the rows by each of `steps`, then the row swap's if
    /// `row_swap`.
    pub fn galois_elements_for_rotations(&self, steps: &[i64], row_swap: bool) -> Vec<u64> {
        let swap = row_swap.then(|| self.galois_element_for_row_swap());
        steps
            .iter()
            .map(|&s| self.galois_element_for_rotation(s))
            .chain(swap)
            .collect()
    }
}

impl SecretKey {
    /// `s(X^g)` modulo `Q`, NTT form: what a Galois key for `g` switches from.
    pub fn galois_image(&self, g: u64) -> Result<Zeroizing<Poly>, BfvError> {
        let params = self.params();
        params.check_galois_element(g)?;
        let ring = params.ring();
        let mut s = Zeroizing::new(self.poly().truncated(ring, params.max_level()));
        s.to_coefficients(ring);
        let mut s_g = Zeroizing::new(s.automorphism(ring, g));
        s_g.to_ntt(ring);
        Ok(s_g)
    }
}

/// Rotation steps `1, 2, 4, …, N/4`: summing a row with its rotations by these covers it.
fn inner_sum_steps(n: usize) -> impl Iterator<Item = i64> {
    (0..)
        .map(|k| 1i64 << k)
        .take_while(move |&s| s < n as i64 / 2)
}

impl Ciphertext {
    /// `self(X^g)`, switched back to the key: the slots permuted by the automorphism.
    pub fn apply_galois(&self, element: u64, keys: &GaloisKeys) -> Result<Ciphertext, BfvError> {
        check_same_params(&self.params, &keys.params)?;
        if self.degree() != 1 {
            return Err(BfvError::Degree(self.degree()));
        }
        if self.level() != self.params.max_level() {
            return Err(BfvError::NotTopLevel {
                level: self.level(),
                top: self.params.max_level(),
            });
        }
        let key = keys
            .keys
            .get(&element)
            .ok_or(BfvError::MissingGaloisKey { element })?;
        let params = self.params.clone();
        let ks = params
            .key_switching()
            .ok_or(BfvError::NotMultiplicative(params.name()))?;
        let ring = params.ring();
        let mut c0 = self.parts[0].automorphism(ring, element);
        let c1 = self.parts[1].automorphism(ring, element);
        let (u0, u1) = ks.switch(ring, key, &c1);
        c0.add_assign(ring, &u0);
        Ok(Ciphertext {
            params: params.clone(),
            parts: vec![c0, u1],
            range: self.range,
        })
    }

    /// Both rows rotated left by `step` slots (right for a negative step).
    pub fn rotate_rows(&self, step: i64, keys: &GaloisKeys) -> Result<Ciphertext, BfvError> {
        self.apply_galois(self.params.galois_element_for_rotation(step), keys)
    }

    /// The two rows swapped.
    pub fn swap_rows(&self, keys: &GaloisKeys) -> Result<Ciphertext, BfvError> {
        self.apply_galois(self.params.galois_element_for_row_swap(), keys)
    }

    /// The sum of all `N` slots, in every slot; refused (before any rotation) if that sum's
    /// range does not fit `t`. Each step doubles the range, to `N` times it at the end.
    pub fn inner_sum(&self, keys: &GaloisKeys) -> Result<Ciphertext, BfvError> {
        let n = self.params.degree() as i128;
        crate::ValueRange {
            lo: self.range.lo * n,
            hi: self.range.hi * n,
        }
        .checked("inner sum", self.params.plaintext_modulus())?;
        let mut acc = self.clone();
        for step in inner_sum_steps(self.params.degree()) {
            let rotated = acc.rotate_rows(step, keys)?;
            acc.add_assign(&rotated)?;
        }
        let swapped = acc.swap_rows(keys)?;
        acc.add_assign(&swapped)?;
        Ok(acc)
    }
}
