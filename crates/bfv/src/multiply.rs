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
use crate::{Ciphertext, ValueRange};
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

/// What key switching needs: the key ring `Q ∪ P`, the digit groups, and the converters.
#[derive(Debug)]
pub(crate) struct KeySwitching {
    /// The ring of keys: the ciphertext moduli `q_0 … q_{L-1}`, then the special moduli `P`.
    key_ring: RnsContext,
    /// Index ranges of the ciphertext moduli in each digit group.
    groups: Vec<std::ops::Range<usize>>,
    /// Per group: its digit (mod `Q_j`) to the other ciphertext moduli, then `P`.
    extend: Vec<BaseConverter>,
    /// `round(x/P)`: from `P ∪ Q` to `Q`.
    mod_down: Scaler,
    /// `P mod qᵢ`.
    p_mod_q: Vec<u64>,
}

impl KeySwitching {
    pub(crate) fn new(ring: &RnsContext, special: &[u64]) -> Result<Self, String> {
        let all: Vec<u64> = ring
            .moduli()
            .iter()
            .map(|m| m.value())
            .chain(special.iter().copied())
            .collect();
        let key_ring = RnsContext::new(ring.degree(), &all).map_err(|e| e.to_string())?;
        let q = ring.moduli();
        let p = &key_ring.moduli()[q.len()..];
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
            key_ring,
        })
    }

    pub(crate) fn key_ring(&self) -> &RnsContext {
        &self.key_ring
    }

    /// `(u₀, u₁)` with `u₀ + u₁·s ≈ c·s_from` (coefficient form, top level) for a key
    /// switching `s_from` to `s`; `c` in coefficient form at the top level.
    pub(crate) fn switch(
        &self,
        ring: &RnsContext,
        key: &KeySwitchingKey,
        c: &Poly,
    ) -> (Poly, Poly) {
        let (kr, level) = (&self.key_ring, ring.max_level());
        let top = kr.max_level();
        let mut acc = [
            Poly::zero(kr, top, Representation::Ntt),
            Poly::zero(kr, top, Representation::Ntt),
        ];
        for (j, group) in self.groups.iter().enumerate() {
            // the digit c mod Q_j, extended exactly to every other modulus of Q and P
            let mut digit = Poly::zero(kr, top, Representation::Coefficient);
            let mut others = Vec::with_capacity(top - group.len());
            for (i, column) in digit.columns_mut().into_iter().enumerate() {
                if group.contains(&i) {
                    column.copy_from_slice(c.residues(i));
                } else {
                    others.push(column);
                }
            }
            let input: Vec<&[u64]> = group.clone().map(|i| c.residues(i)).collect();
            self.extend[j].convert_poly(&input, &mut others);
            digit.to_ntt(kr);
            for (part, acc) in acc.iter_mut().enumerate() {
                acc.mul_accumulate(kr, &digit, &key.parts[j][part]);
            }
        }
        let [u0, u1] = acc.map(|mut u| {
            u.to_coefficients(kr);
            // round(u/P), from P ∪ Q to Q
            let columns = u.columns();
            let input: Vec<&[u64]> = columns[level..]
                .iter()
                .chain(&columns[..level])
                .copied()
                .collect();
            self.mod_down.scale_to_poly(&input, ring)
        });
        (u0, u1)
    }
}

impl BfvParameters {
    /// The ring of secret keys and key-switching keys: the ciphertext moduli `Q`, then the
    /// special moduli `P` of a multiplicative set (just `Q` for an additive set). A secret key
    /// lives here; its first `L` residues are its value modulo `Q`.
    pub fn key_ring(&self) -> &RnsContext {
        self.key_switching()
            .map(KeySwitching::key_ring)
            .unwrap_or(self.ring())
    }

    /// The number of digits `ℓ` of the key-switching gadget (groups of `|P|` ciphertext
    /// moduli); 0 for an additive set.
    pub fn gadget_length(&self) -> usize {
        self.key_switching().map_or(0, |ks| ks.groups.len())
    }

    /// `acc ← acc + w_digit·x` for the hybrid gadget `w_j = P·(Q/Q_j)·[(Q/Q_j)^{-1}]_{Q_j}`:
    /// `P·x` on the moduli of digit group `j`, 0 elsewhere (every `P` residue included). `acc`
    /// lives in the key ring at the top, `x` modulo `Q` (its first `L` residues), both NTT form.
    pub fn add_gadget_multiple(&self, acc: &mut Poly, digit: usize, x: &Poly) {
        let ks = self.key_switching().expect("a multiplicative set");
        assert_eq!(
            acc.level(),
            ks.key_ring.max_level(),
            "a key-ring polynomial"
        );
        assert!(x.level() >= self.max_level(), "x modulo Q");
        assert!(
            acc.representation() == Representation::Ntt
                && x.representation() == Representation::Ntt
        );
        for i in ks.groups[digit].clone() {
            let m = ks.key_ring.moduli()[i];
            let factor = ks.p_mod_q[i];
            let (from, out) = (x.residues(i), acc.residues_mut(i));
            for (o, &f) in out.iter_mut().zip(from) {
                *o = m.add(*o, m.mul(f, factor));
            }
        }
    }
}

/// A key that switches a polynomial multiplied by `s_from` to one under `s`: per gadget digit
/// `j`, `(b_j, a_j)` in the key ring (NTT form) with `b_j = −a_j·s + e_j + w_j·s_from`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeySwitchingKey {
    parts: Vec<[Poly; 2]>,
}

impl KeySwitchingKey {
    /// The key from `s_from` (NTT form modulo `Q`) to `sk`.
    pub(crate) fn generate(
        sk: &SecretKey,
        from_q: &Poly,
        rng: &mut impl rand_core::RngCore,
    ) -> Self {
        let params = sk.params();
        let kr = params.key_ring();
        let top = kr.max_level();
        let parts = (0..params.gadget_length())
            .map(|digit| {
                let a = uniform_poly(kr, top, rng);
                let mut b = Poly::from_small(kr, top, &gaussian(kr.degree(), rng));
                b.to_ntt(kr);
                b.mul_subtract(kr, &a, sk.poly());
                params.add_gadget_multiple(&mut b, digit, from_q);
                [b, a]
            })
            .collect();
        Self { parts }
    }

    /// A key from its parts, checked for shape: one `(b_j, a_j)` per gadget digit, each in
    /// the key ring at the top, NTT form.
    pub(crate) fn from_parts(
        params: &BfvParameters,
        parts: Vec<[Poly; 2]>,
    ) -> Result<Self, BfvError> {
        let expected = params.gadget_length();
        if expected == 0 {
            return Err(BfvError::NotMultiplicative(params.name()));
        }
        let top = params.key_ring().max_level();
        let shape_ok = parts
            .iter()
            .flatten()
            .all(|p| p.level() == top && p.representation() == Representation::Ntt);
        if parts.len() != expected || !shape_ok {
            return Err(BfvError::KeyShape {
                set: params.name(),
                digits: expected,
                moduli: top,
            });
        }
        Ok(Self { parts })
    }

    pub(crate) fn parts(&self) -> &[[Poly; 2]] {
        &self.parts
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
        let mut s2 = zeroize::Zeroizing::new(sk.poly().truncated(ring, params.max_level()));
        s2.mul_assign(ring, sk.poly());
        Ok(Self {
            params: params.clone(),
            key: KeySwitchingKey::generate(sk, &s2, &mut secret_rng()),
        })
    }

    /// The key from its parts `(b_j, a_j)`, one per gadget digit, in the key ring at the top,
    /// NTT form, with `b_j + a_j·s ≈ w_j·s²` — e.g. the output of the collective RKG
    /// (`concord-mhe`).
    pub fn from_parts(
        params: &Arc<BfvParameters>,
        parts: Vec<[Poly; 2]>,
    ) -> Result<Self, BfvError> {
        Ok(Self {
            params: params.clone(),
            key: KeySwitchingKey::from_parts(params, parts)?,
        })
    }

    /// `(b_j, a_j)` per gadget digit.
    pub fn parts(&self) -> &[[Poly; 2]] {
        self.key.parts()
    }

    pub fn params(&self) -> &Arc<BfvParameters> {
        &self.params
    }

    /// Bytes of [`Self::to_bytes`].
    pub fn serialized_len(&self) -> usize {
        let ring = self.params.key_ring();
        crate::wire::HEADER_LEN
            + 2 * self.parts().len() * crate::wire::poly_len(ring, ring.max_level())
            + crate::wire::CHECKSUM_LEN
    }

    /// Concord's wire format: every `(b_j, a_j)`, packed to the key ring's moduli.
    pub fn to_bytes(&self) -> Vec<u8> {
        let ring = self.params.key_ring();
        let mut w = crate::wire::WireWriter::new(
            crate::wire::Kind::RelinearizationKey,
            &self.params,
            self.serialized_len(),
        );
        for [b, a] in self.parts() {
            w.poly(ring, b).poly(ring, a);
        }
        w.finish()
    }

    /// A key written by [`Self::to_bytes`] for `params`.
    pub fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, BfvError> {
        let ring = params.key_ring();
        let mut r =
            crate::wire::WireReader::open(bytes, crate::wire::Kind::RelinearizationKey, params)?;
        let digits = params.gadget_length();
        let mut parts = Vec::with_capacity(digits);
        for _ in 0..digits {
            let b = r.poly(ring, ring.max_level(), Representation::Ntt)?;
            let a = r.poly(ring, ring.max_level(), Representation::Ntt)?;
            parts.push([b, a]);
        }
        r.finish()?;
        Self::from_parts(params, parts)
    }
}

impl Ciphertext {
    /// The product `self · other` (slot-wise), of degree 2; refused if the product's range
    /// does not fit `t`, if the set is additive-only, or off the top level.
    pub fn multiply(&self, other: &Ciphertext) -> Result<Ciphertext, BfvError> {
        let tensoring = self.check_multiplicands(other)?;
        let range = self
            .range
            .mul(other.range)
            .checked("multiply", self.params.plaintext_modulus())?;
        Ok(self.tensor(other, tensoring, range))
    }

    /// The product modulo `t`, whatever the ranges (for circuits over `Z_t`, such as
    /// polynomial evaluation, which set the result's range themselves).
    pub(crate) fn multiply_unchecked(&self, other: &Ciphertext) -> Result<Ciphertext, BfvError> {
        let tensoring = self.check_multiplicands(other)?;
        let range = ValueRange::residues(self.params.plaintext_modulus());
        Ok(self.tensor(other, tensoring, range))
    }

    /// Both operands multiply: one multiplicative set, degree 1, top level.
    fn check_multiplicands(&self, other: &Ciphertext) -> Result<&Tensoring, BfvError> {
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
        Ok(tensoring)
    }

    /// The HPS product of two checked operands (a square lifts its operand once).
    fn tensor(&self, other: &Ciphertext, tensoring: &Tensoring, range: ValueRange) -> Ciphertext {
        let params = &self.params;
        let (ring, aux) = (params.ring(), &tensoring.aux);
        // every part over Q and over R, NTT form
        let lift = |p: &Poly| -> [Poly; 2] {
            let mut r = tensoring.extend.convert_to_poly(&p.columns(), aux);
            let mut q = p.clone();
            q.to_ntt(ring);
            r.to_ntt(aux);
            [q, r]
        };
        let a = [lift(&self.parts[0]), lift(&self.parts[1])];
        let b_lifted;
        let b = if std::ptr::eq(self, other) {
            &a
        } else {
            b_lifted = [lift(&other.parts[0]), lift(&other.parts[1])];
            &b_lifted
        };
        let contexts = [ring, aux];
        // (a₀b₀, a₀b₁ + a₁b₀, a₁b₁) over Q and over R
        let terms: [&[(usize, usize)]; 3] = [&[(0, 0)], &[(0, 1), (1, 0)], &[(1, 1)]];
        let parts = terms
            .iter()
            .map(|pairs| {
                let [mut q, mut r] =
                    contexts.map(|ctx| Poly::zero(ctx, ctx.max_level(), Representation::Ntt));
                for &(i, j) in pairs.iter() {
                    q.mul_accumulate(ring, &a[i][0], &b[j][0]);
                    r.mul_accumulate(aux, &a[i][1], &b[j][1]);
                }
                // round(t·d/Q) into R, then back to Q
                q.to_coefficients(ring);
                r.to_coefficients(aux);
                let input: Vec<&[u64]> = q.columns().into_iter().chain(r.columns()).collect();
                let scaled = tensoring.scale.scale_to_poly(&input, aux);
                tensoring.back.convert_to_poly(&scaled.columns(), ring)
            })
            .collect();
        Ciphertext {
            params: params.clone(),
            parts,
            range,
        }
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
