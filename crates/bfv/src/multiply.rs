//! Ciphertext × ciphertext multiplication and relinearization (engine part 2), in the RNS
//! variant of Halevi, Polyakov and Shoup (CT-RSA 2019, §4) with hybrid key switching.
//!
//! **Multiplication.** Each part of both operands (coefficients mod `Q`, centred) is extended
//! exactly to an auxiliary basis `R` ([`concord_ring::rns::BaseConverter`]); the tensor
//! `(a₀b₀, a₀b₁ + a₁b₀, a₁b₁)` is computed over `Q ∪ R` by NTT, scaled by `t/Q` with rounding
//! into `R` ([`concord_ring::rns::Scaler`]) and brought back to `Q`. `R` is sized so that
//! `Q·R` holds the tensor (`‖·‖ ≤ N·Q²/2`) and `R` holds the scaled result
//! (`‖·‖ ≤ t·N·Q/2`): `log R ≥ log Q + log N + log t + 2`. The product has degree 2 and
//! decrypts under `(1, s, s²)`.
//!
//! **Relinearization** turns it back into degree 1 with a [`RelinearizationKey`], an
//! encryption of `P·s²` under `s` modulo `Q·P` (`P`: the set's special moduli), one per
//! *digit group* `Q_j` of the ciphertext moduli (as many groups as `⌈L/|P|⌉`, so that each
//! `Q_j < P`): `c₂`'s residues modulo `Q_j` are extended to `Q ∪ P`, multiplied into the key,
//! summed, and the sum divided by `P` with rounding. The key-switching noise is about
//! `Σ_j Q_j·N·σ / P`, a few bits, instead of `Q_j·N·σ`.
//!
//! Multiplication runs at the top level — BFV is scale-invariant, so products need no
//! modulus switching; results switch down only to leave a party.

use crate::ciphertext::check_same_params;
use crate::error::BfvError;
use crate::keys::SecretKey;
use crate::params::BfvParameters;
use crate::Ciphertext;
use concord_ring::rns::{BaseConverter, Scaler};
use concord_ring::sampling::{gaussian, secret_rng, uniform_poly};
use concord_ring::{ntt_primes, Modulus, Poly, Representation, RnsContext};
use std::sync::Arc;

/// What multiplication needs beyond the ciphertext ring: the auxiliary basis and its
/// converters. Built with a parameter set that has special moduli.
#[derive(Debug)]
pub(crate) struct Tensoring {
    aux: RnsContext,
    extend: BaseConverter,
    scale: Scaler,
    back: BaseConverter,
}

/// What key switching needs: the special moduli `P`, the digit groups, and the converters.
#[derive(Debug)]
pub(crate) struct KeySwitching {
    special: RnsContext,
    /// Index ranges of the ciphertext moduli in each digit group.
    groups: Vec<std::ops::Range<usize>>,
    /// Per group: its digit (mod `Q_j`) to the other ciphertext moduli, then `P`.
    extend: Vec<BaseConverter>,
    /// `round(x/P)`: from `P ∪ Q` to `Q`.
    mod_down: Scaler,
    /// `P mod qᵢ`.
    p_mod_q: Vec<u64>,
}

impl Tensoring {
    pub(crate) fn new(ring: &RnsContext, t: u64, exclude: &[u64]) -> Result<Self, String> {
        let n = ring.degree();
        let q = ring.moduli();
        let log_q = ring.log_modulus(ring.max_level());
        let needed = log_q + (n as f64).log2() + (t as f64).log2() + 2.0;
        let bits = q.iter().map(|m| m.bits()).max().unwrap_or(50);
        let count = (needed / (bits as f64 - 1.0)).ceil() as usize;
        let r = ntt_primes(bits, count, n, exclude);
        if r.len() < count {
            return Err(format!("{count} auxiliary primes of {bits} bits"));
        }
        let aux = RnsContext::new(n, &r).map_err(|e| e.to_string())?;
        Ok(Self {
            extend: BaseConverter::new(q, aux.moduli()),
            scale: Scaler::new(t, q, aux.moduli()),
            back: BaseConverter::new(aux.moduli(), q),
            aux,
        })
    }
}

impl KeySwitching {
    pub(crate) fn new(ring: &RnsContext, special: &[u64]) -> Result<Self, String> {
        let special = RnsContext::new(ring.degree(), special).map_err(|e| e.to_string())?;
        let (q, p) = (ring.moduli(), special.moduli());
        let per_group = p.len();
        let groups: Vec<_> = (0..q.len())
            .step_by(per_group)
            .map(|start| start..(start + per_group).min(q.len()))
            .collect();
        let extend = groups
            .iter()
            .map(|g| {
                let others: Vec<Modulus> = q
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| !g.contains(i))
                    .map(|(_, m)| *m)
                    .chain(p.iter().copied())
                    .collect();
                BaseConverter::new(&q[g.clone()], &others)
            })
            .collect();
        let p_mod_q = q
            .iter()
            .map(|m| p.iter().fold(1, |acc, pm| m.mul(acc, m.reduce(pm.value()))))
            .collect();
        Ok(Self {
            mod_down: Scaler::new(1, p, q),
            extend,
            groups,
            p_mod_q,
            special,
        })
    }

    /// `(u₀, u₁)` with `u₀ + u₁·s ≈ c·s_from` (coefficient form, top level) for a key
    /// switching `s_from` to `s`; `c` in coefficient form at the top level.
    pub(crate) fn switch(
        &self,
        ring: &RnsContext,
        key: &KeySwitchingKey,
        c: &Poly,
    ) -> (Poly, Poly) {
        let (n, level, special_level) = (ring.degree(), ring.max_level(), self.special.max_level());
        let mut acc = [
            (
                Poly::zero(ring, level, Representation::Ntt),
                Poly::zero(&self.special, special_level, Representation::Ntt),
            ),
            (
                Poly::zero(ring, level, Representation::Ntt),
                Poly::zero(&self.special, special_level, Representation::Ntt),
            ),
        ];
        for (j, group) in self.groups.iter().enumerate() {
            // the digit c mod Q_j, extended exactly to every other modulus of Q and P
            let input: Vec<&[u64]> = group.clone().map(|i| c.residues(i)).collect();
            let mut others = vec![vec![0u64; n]; level - group.len() + special_level];
            let mut views: Vec<&mut [u64]> = others.iter_mut().map(Vec::as_mut_slice).collect();
            self.extend[j].convert_poly(&input, &mut views);
            let mut digit_q = Poly::zero(ring, level, Representation::Coefficient);
            let mut digit_p = Poly::zero(&self.special, special_level, Representation::Coefficient);
            let mut rest = others.into_iter();
            for i in 0..level {
                let column = if group.contains(&i) {
                    c.residues(i).to_vec()
                } else {
                    rest.next().expect("one column per modulus")
                };
                digit_q.residues_mut(i).copy_from_slice(&column);
            }
            for i in 0..special_level {
                digit_p
                    .residues_mut(i)
                    .copy_from_slice(&rest.next().expect("P columns"));
            }
            digit_q.to_ntt(ring);
            digit_p.to_ntt(&self.special);
            for (part, (acc_q, acc_p)) in acc.iter_mut().enumerate() {
                let (kq, kp) = &key.parts[j][part];
                acc_q.mul_accumulate(ring, &digit_q, kq);
                acc_p.mul_accumulate(&self.special, &digit_p, kp);
            }
        }
        let [u0, u1] = acc.map(|(mut q_part, mut p_part)| {
            q_part.to_coefficients(ring);
            p_part.to_coefficients(&self.special);
            // round(u/P), from P ∪ Q to Q
            let input: Vec<&[u64]> = (0..special_level)
                .map(|i| p_part.residues(i))
                .chain((0..level).map(|i| q_part.residues(i)))
                .collect();
            let mut out = Poly::zero(ring, level, Representation::Coefficient);
            let mut columns = vec![vec![0u64; n]; level];
            let mut views: Vec<&mut [u64]> = columns.iter_mut().map(Vec::as_mut_slice).collect();
            self.mod_down.scale_poly(&input, &mut views);
            for (i, column) in columns.iter().enumerate() {
                out.residues_mut(i).copy_from_slice(column);
            }
            out
        });
        (u0, u1)
    }
}

/// A key that switches a polynomial multiplied by `s_from` to one under `s`: per digit group,
/// `(b_j, a_j)` modulo `Q·P` (NTT form, each part as its `Q` and `P` residues) with
/// `b_j = −a_j·s + e_j + P·s_from` on `Q_j`'s moduli.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeySwitchingKey {
    parts: Vec<[(Poly, Poly); 2]>,
}

impl KeySwitchingKey {
    /// The key from `s_from` (NTT form over `Q`) to `sk`.
    pub(crate) fn generate(
        sk: &SecretKey,
        from_q: &Poly,
        rng: &mut impl rand_core::RngCore,
    ) -> Self {
        let params = sk.params();
        let ring = params.ring();
        let ks = params.key_switching().expect("a multiplicative set");
        let special = &ks.special;
        let (level, special_level) = (ring.max_level(), special.max_level());
        let (s_q, s_p) = sk.in_q_and_p();
        let (s_q, s_p) = (&*s_q, &*s_p);
        let parts = ks
            .groups
            .iter()
            .map(|group| {
                let a_q = uniform_poly(ring, level, rng);
                let a_p = uniform_poly(special, special_level, rng);
                let e = gaussian(ring.degree(), rng);
                let mut b_q = Poly::from_small(ring, level, &e);
                let mut b_p = Poly::from_small(special, special_level, &e);
                b_q.to_ntt(ring);
                b_p.to_ntt(special);
                let mut as_q = zeroize::Zeroizing::new(a_q.clone());
                as_q.mul_assign(ring, s_q);
                b_q.sub_assign(ring, &as_q);
                let mut as_p = zeroize::Zeroizing::new(a_p.clone());
                as_p.mul_assign(special, s_p);
                b_p.sub_assign(special, &as_p);
                // + P·s_from on the group's moduli (Q̂_j·[Q̂_j^{-1}]_{Q_j} is 1 there, 0
                // elsewhere); both sides in NTT form
                debug_assert_eq!(from_q.representation(), Representation::Ntt);
                for i in group.clone() {
                    let m = ring.moduli()[i];
                    let factor = ks.p_mod_q[i];
                    let (from, out) = (from_q.residues(i).to_vec(), b_q.residues_mut(i));
                    for (o, f) in out.iter_mut().zip(from) {
                        *o = m.add(*o, m.mul(f, factor));
                    }
                }
                [(b_q, b_p), (a_q, a_p)]
            })
            .collect();
        Self { parts }
    }
}

/// The relinearization key: a key switching `s²` to `s`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelinearizationKey {
    params: Arc<BfvParameters>,
    key: KeySwitchingKey,
}

impl RelinearizationKey {
    /// The key for `sk` (fresh randomness from the operating system).
    pub fn generate(sk: &SecretKey) -> Result<Self, BfvError> {
        let params = sk.params();
        params
            .key_switching()
            .ok_or(BfvError::NotMultiplicative(params.name()))?;
        let ring = params.ring();
        let mut s2 = zeroize::Zeroizing::new(sk.poly().clone());
        s2.mul_assign(ring, sk.poly());
        Ok(Self {
            params: params.clone(),
            key: KeySwitchingKey::generate(sk, &s2, &mut secret_rng()),
        })
    }

    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }
}

impl Ciphertext {
    /// The product `self · other` (slot-wise), of degree 2; refused if the product's range
    /// does not fit `t`, if the set is additive-only, or off the top level.
    pub fn multiply(&self, other: &Ciphertext) -> Result<Ciphertext, BfvError> {
        check_same_params(&self.params, &other.params)?;
        let params = &self.params;
        let tensoring = params
            .tensoring()
            .ok_or(BfvError::NotMultiplicative(params.name()))?;
        for ct in [self, other] {
            if ct.degree() != 1 {
                return Err(BfvError::Degree(ct.degree()));
            }
            if ct.level() != params.max_level() {
                return Err(BfvError::NotTopLevel {
                    level: ct.level(),
                    top: params.max_level(),
                });
            }
        }
        let range = self
            .range
            .mul(other.range)
            .checked("multiply", params.plaintext_modulus())?;
        let (ring, aux) = (params.ring(), &tensoring.aux);
        let n = ring.degree();
        // every part over Q and over R, NTT form
        let lift = |p: &Poly| -> (Poly, Poly) {
            let input: Vec<&[u64]> = (0..p.level()).map(|i| p.residues(i)).collect();
            let mut r = Poly::zero(aux, aux.max_level(), Representation::Coefficient);
            let mut columns = vec![vec![0u64; n]; aux.max_level()];
            let mut views: Vec<&mut [u64]> = columns.iter_mut().map(Vec::as_mut_slice).collect();
            tensoring.extend.convert_poly(&input, &mut views);
            for (i, column) in columns.iter().enumerate() {
                r.residues_mut(i).copy_from_slice(column);
            }
            let mut q = p.clone();
            q.to_ntt(ring);
            r.to_ntt(aux);
            (q, r)
        };
        let (a0, a1) = (lift(&self.parts[0]), lift(&self.parts[1]));
        let (b0, b1) = (lift(&other.parts[0]), lift(&other.parts[1]));
        let product = |x: &(Poly, Poly), y: &(Poly, Poly)| {
            let (mut q, mut r) = (x.0.clone(), x.1.clone());
            q.mul_assign(ring, &y.0);
            r.mul_assign(aux, &y.1);
            (q, r)
        };
        let d0 = product(&a0, &b0);
        let mut d1 = product(&a0, &b1);
        d1.0.mul_accumulate(ring, &a1.0, &b0.0);
        d1.1.mul_accumulate(aux, &a1.1, &b0.1);
        let d2 = product(&a1, &b1);
        // round(t·d/Q) into R, then back to Q
        let parts = [d0, d1, d2]
            .into_iter()
            .map(|(mut q, mut r)| {
                q.to_coefficients(ring);
                r.to_coefficients(aux);
                let input: Vec<&[u64]> = (0..q.level())
                    .map(|i| q.residues(i))
                    .chain((0..r.level()).map(|i| r.residues(i)))
                    .collect();
                let mut scaled = vec![vec![0u64; n]; aux.max_level()];
                let mut views: Vec<&mut [u64]> = scaled.iter_mut().map(Vec::as_mut_slice).collect();
                tensoring.scale.scale_poly(&input, &mut views);
                let scaled: Vec<&[u64]> = scaled.iter().map(Vec::as_slice).collect();
                let mut back = vec![vec![0u64; n]; ring.max_level()];
                let mut views: Vec<&mut [u64]> = back.iter_mut().map(Vec::as_mut_slice).collect();
                tensoring.back.convert_poly(&scaled, &mut views);
                let mut out = Poly::zero(ring, ring.max_level(), Representation::Coefficient);
                for (i, column) in back.iter().enumerate() {
                    out.residues_mut(i).copy_from_slice(column);
                }
                out
            })
            .collect();
        Ok(Ciphertext {
            params: params.clone(),
            parts,
            range,
        })
    }

    /// `self²`.
    pub fn square(&self) -> Result<Ciphertext, BfvError> {
        self.multiply(self)
    }

    /// Degree 2 back to degree 1 under the same key.
    pub fn relinearize(&mut self, key: &RelinearizationKey) -> Result<(), BfvError> {
        check_same_params(&self.params, &key.params)?;
        match self.degree() {
            1 => return Ok(()),
            2 => {}
            d => return Err(BfvError::Degree(d)),
        }
        let params = self.params.clone();
        let ks = params
            .key_switching()
            .ok_or(BfvError::NotMultiplicative(params.name()))?;
        let ring = params.ring();
        let c2 = self.parts.pop().expect("degree 2");
        let (u0, u1) = ks.switch(ring, &key.key, &c2);
        self.parts[0].add_assign(ring, &u0);
        self.parts[1].add_assign(ring, &u1);
        Ok(())
    }

    /// `self · other`, relinearized.
    pub fn multiply_relinearize(
        &self,
        other: &Ciphertext,
        key: &RelinearizationKey,
    ) -> Result<Ciphertext, BfvError> {
        let mut product = self.multiply(other)?;
        product.relinearize(key)?;
        Ok(product)
    }
}

/// The `Q` and `P` forms of a secret.
impl SecretKey {
    /// `s` in NTT form over `Q` and over the special moduli `P`.
    pub(crate) fn in_q_and_p(&self) -> (zeroize::Zeroizing<Poly>, zeroize::Zeroizing<Poly>) {
        let params = self.params();
        let ring = params.ring();
        let ks = params.key_switching().expect("a multiplicative set");
        let mut s = zeroize::Zeroizing::new(self.poly().clone());
        s.to_coefficients(ring);
        // the secret's small coefficients, read off the first modulus
        let m = ring.moduli()[0];
        let small: zeroize::Zeroizing<Vec<i64>> =
            zeroize::Zeroizing::new(s.residues(0).iter().map(|&r| m.center(r)).collect());
        let mut s_p = zeroize::Zeroizing::new(Poly::from_signed(
            &ks.special,
            ks.special.max_level(),
            &small,
        ));
        s_p.to_ntt(&ks.special);
        let mut s_q = zeroize::Zeroizing::new(self.poly().clone());
        s_q.to_ntt(ring);
        (s_q, s_p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use num_bigint::{BigInt, BigUint, Sign};

    #[test]
    fn scale_and_back_match_big_integers_on_the_set_bases() {
        let p = BfvParameters::new(&crate::params::MUL_16384).unwrap();
        let tens = p.tensoring().unwrap();
        let q: Vec<Modulus> = p.ring().moduli().to_vec();
        let r: Vec<Modulus> = tens.aux.moduli().to_vec();
        let all: Vec<Modulus> = q.iter().chain(&r).copied().collect();
        let big = |ms: &[Modulus]| ms.iter().fold(BigUint::from(1u8), |a, m| a * m.value());
        let (qq, mm) = (big(&q), big(&all));
        let modof = |x: &BigInt, m: &Modulus| {
            let r = x % BigInt::from(m.value());
            let r = if r.sign() == Sign::Minus {
                r + BigInt::from(m.value())
            } else {
                r
            };
            r.to_u64_digits().1.first().copied().unwrap_or(0)
        };
        let mut seed = 12345u64;
        for _ in 0..50 {
            let mut bytes = vec![0u8; 100];
            for b in &mut bytes {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                *b = (seed >> 33) as u8;
            }
            // a tensor-sized value: |x| < N·Q²/2
            let bound = BigUint::from(p.degree()) * &qq * &qq;
            let x =
                BigInt::from(BigUint::from_bytes_le(&bytes) % &bound) - BigInt::from(bound / 2u8);
            let residues: Vec<u64> = all.iter().map(|m| modof(&x, m)).collect();
            let mut scaled = vec![0u64; r.len()];
            tens.scale.scale(&residues, &mut scaled);
            let mut back = vec![0u64; q.len()];
            tens.back.convert(&scaled, &mut back);
            let t = BigInt::from(p.plaintext_modulus());
            let num = &x * &t;
            let den = BigInt::from(qq.clone());
            let twice = &num * 2
                + if num.sign() == Sign::Minus {
                    -&den
                } else {
                    den.clone()
                };
            let exact = twice / (&den * 2);
            let expect: Vec<u64> = q.iter().map(|m| modof(&exact, m)).collect();
            assert_eq!(back, expect);
            let _ = &mm;
        }
    }
}
