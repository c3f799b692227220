//! Polynomials of `R_Q` in RNS form, in coefficient or NTT (evaluation) representation.
//!
//! A [`Poly`] is plain data: its level `ℓ` (it lives modulo `Q_ℓ = q_0 ⋯ q_{ℓ-1}`), its
//! representation, and `ℓ·N` residues, modulus by modulus. Operations take the [`RnsContext`]
//! they belong to. Products go through tfhe-ntt; operands are converted only when an operation
//! needs it, and [`Poly::product_to_coefficients`] folds the `N^{-1}` of the inverse transform
//! into the pointwise product so that a product headed for coefficient form costs no extra pass.

use crate::context::RnsContext;
use zeroize::Zeroize;

/// Coefficient or NTT representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Representation {
    Coefficient,
    Ntt,
}

/// An element of `R_{Q_ℓ}` in RNS form.
#[derive(PartialEq, Eq, Zeroize)]
pub struct Poly {
    #[zeroize(skip)]
    level: usize,
    #[zeroize(skip)]
    repr: Representation,
    data: Vec<u64>,
}

/// Large residue buffers kept per thread for the next polynomial, so that the many
/// megabyte-sized temporaries of multiplication and key switching reuse memory instead of
/// having the allocator return it to the system and fault it back in page by page (which
/// measured about a sixth of a multiplication's time). A reused buffer is zeroed or filled
/// before anyone reads it — only this crate's whole-column kernels take one as it is, to
/// overwrite every residue (`Poly::overwritten`); secrets are zeroized by their owners before
/// they drop.
mod spare {
    use std::cell::RefCell;

    /// Smaller buffers are the allocator's business.
    const MIN_LEN: usize = 1 << 15;
    /// At most this many `u64`s (32 MiB) kept per thread.
    const MAX_KEPT: usize = 1 << 22;

    thread_local! {
        static SPARE: RefCell<(Vec<Vec<u64>>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }

    /// An empty buffer with room for `len` residues.
    pub(super) fn with_capacity(len: usize) -> Vec<u64> {
        let mut v = kept(len);
        v.clear();
        v
    }

    /// `len` residues of unspecified (but initialised) value, for a caller that overwrites
    /// every one: a reused buffer as it was, so no zeroing pass.
    pub(super) fn for_overwrite(len: usize) -> Vec<u64> {
        let mut v = kept(len);
        if v.len() >= len {
            v.truncate(len);
        } else {
            v.resize(len, 0);
        }
        v
    }

    /// A kept buffer with room for `len` residues (its old contents still in it), or a new
    /// empty one.
    fn kept(len: usize) -> Vec<u64> {
        if len >= MIN_LEN {
            let reused = SPARE.with(|s| {
                let (kept, total) = &mut *s.borrow_mut();
                let i = kept.iter().rposition(|v| v.capacity() >= len)?;
                let v = kept.swap_remove(i);
                *total -= v.capacity();
                Some(v)
            });
            if let Some(v) = reused {
                return v;
            }
        }
        Vec::with_capacity(len)
    }

    /// `len` zeros.
    pub(super) fn zeroed(len: usize) -> Vec<u64> {
        let mut v = with_capacity(len);
        v.resize(len, 0);
        v
    }

    pub(super) fn give_back(v: Vec<u64>) {
        let cap = v.capacity();
        if cap >= MIN_LEN {
            // `try_with`: during thread teardown the pool may be gone; the buffer is then freed
            let _ = SPARE.try_with(|s| {
                let (kept, total) = &mut *s.borrow_mut();
                if *total + cap <= MAX_KEPT {
                    *total += cap;
                    kept.push(v);
                }
            });
        }
    }
}

impl Drop for Poly {
    fn drop(&mut self) {
        spare::give_back(std::mem::take(&mut self.data));
    }
}

impl Clone for Poly {
    fn clone(&self) -> Self {
        let mut data = spare::with_capacity(self.data.len());
        data.extend_from_slice(&self.data);
        Self {
            level: self.level,
            repr: self.repr,
            data,
        }
    }
}

impl std::fmt::Debug for Poly {
    // Never print coefficients: a Poly may be secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poly")
            .field("level", &self.level)
            .field("repr", &self.repr)
            .finish_non_exhaustive()
    }
}

impl Poly {
    pub fn zero(ctx: &RnsContext, level: usize, repr: Representation) -> Self {
        assert!(
            level >= 1 && level <= ctx.max_level(),
            "level {level} out of range"
        );
        Self {
            level,
            repr,
            data: spare::zeroed(level * ctx.degree()),
        }
    }

    /// A polynomial each of whose residues `fill` writes, given every residue column in order:
    /// for this crate's kernels that produce whole columns, so that no zeroing pass precedes
    /// them. Crate-private: `fill` must write every residue (a reused buffer's old contents are
    /// otherwise left in place).
    pub(crate) fn overwritten(
        ctx: &RnsContext,
        level: usize,
        repr: Representation,
        fill: impl FnOnce(&mut [&mut [u64]]),
    ) -> Self {
        assert!(
            level >= 1 && level <= ctx.max_level(),
            "level {level} out of range"
        );
        let mut p = Self {
            level,
            repr,
            data: spare::for_overwrite(level * ctx.degree()),
        };
        fill(&mut p.columns_mut());
        p
    }

    /// The polynomial with small signed coefficients `coeffs`, in coefficient form.
    pub fn from_signed(ctx: &RnsContext, level: usize, coeffs: &[i64]) -> Self {
        let n = ctx.degree();
        assert_eq!(coeffs.len(), n);
        let mut p = Self::zero(ctx, level, Representation::Coefficient);
        for (j, m) in ctx.moduli()[..level].iter().enumerate() {
            for (r, &c) in p.data[j * n..(j + 1) * n].iter_mut().zip(coeffs) {
                *r = m.from_i64(c);
            }
        }
        p
    }

    /// The polynomial with coefficients `coeffs`, each of magnitude below every modulus
    /// (secrets, errors, centered plaintexts), in coefficient form. Branch-free.
    pub fn from_small(ctx: &RnsContext, level: usize, coeffs: &[i64]) -> Self {
        let n = ctx.degree();
        assert_eq!(coeffs.len(), n);
        let mut p = Self::zero(ctx, level, Representation::Coefficient);
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..level].iter().enumerate() {
                    for (r, &c) in p.data[j * n..(j + 1) * n].iter_mut().zip(coeffs) {
                        *r = m.from_small(c);
                    }
                }
            },
        );
        p
    }

    /// `self ← self + e` for small signed `e` (`|e_i| <` every modulus), in coefficient form.
    pub fn add_small_assign(&mut self, ctx: &RnsContext, e: &[i64]) {
        assert_eq!(self.repr, Representation::Coefficient);
        let n = ctx.degree();
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    for (x, &c) in self.data[j * n..(j + 1) * n].iter_mut().zip(e) {
                        *x = m.add(*x, m.from_small(c));
                    }
                }
            },
        );
    }

    /// `self ← self + e` for any signed `e` (e.g. smudging noise wider than a modulus). Scalar on
    /// purpose: its Barrett step needs a 64×64→128-bit product, which vector units lack.
    pub fn add_signed_assign(&mut self, ctx: &RnsContext, e: &[i64]) {
        assert_eq!(self.repr, Representation::Coefficient);
        let n = ctx.degree();
        for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
            for (x, &c) in self.data[j * n..(j + 1) * n].iter_mut().zip(e) {
                *x = m.add(*x, m.from_i64(c));
            }
        }
    }

    /// `self ← self + e` with `e` uniform on `[-2^bits, 2^bits)` (smudging noise), in coefficient
    /// form: each coefficient is `u − 2^bits` for `u` uniform on `[0, 2^(bits+1))`, added residue
    /// by residue as `[u]_{q_j} − [2^bits]_{q_j}`. Exact and branch-free; `bits ≤ 62`, moduli of
    /// 20 to 51 bits (every Concord set; see [`crate::Modulus::reduce_vectorizable`]).
    pub fn add_centered_uniform(
        &mut self,
        ctx: &RnsContext,
        bits: u32,
        rng: &mut impl rand_chacha::rand_core::RngCore,
    ) {
        assert_eq!(self.repr, Representation::Coefficient);
        assert!(bits <= 62);
        assert!(ctx.moduli().iter().all(|m| (20..52).contains(&m.bits())));
        let n = ctx.degree();
        let mask = (1u64 << (bits + 1)) - 1;
        let mut u = zeroize::Zeroizing::new(vec![0u64; n]);
        for x in u.iter_mut() {
            *x = rng.next_u64() & mask;
        }
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    let offset = m.reduce(1u64 << bits);
                    for (x, &v) in self.data[j * n..(j + 1) * n].iter_mut().zip(u.iter()) {
                        *x = m.add(*x, m.sub(m.reduce_vectorizable(v), offset));
                    }
                }
            },
        );
    }

    /// A polynomial from raw residues (modulus-major), checking each is reduced.
    pub fn from_residues(
        ctx: &RnsContext,
        level: usize,
        repr: Representation,
        data: Vec<u64>,
    ) -> Option<Self> {
        let n = ctx.degree();
        if level == 0 || level > ctx.max_level() || data.len() != level * n {
            return None;
        }
        let reduced = ctx.moduli()[..level]
            .iter()
            .enumerate()
            .all(|(j, m)| data[j * n..(j + 1) * n].iter().all(|&r| r < m.value()));
        reduced.then_some(Self { level, repr, data })
    }

    #[inline]
    pub fn level(&self) -> usize {
        self.level
    }

    #[inline]
    pub fn representation(&self) -> Representation {
        self.repr
    }

    /// All residues, modulus-major.
    #[inline]
    pub fn data(&self) -> &[u64] {
        &self.data
    }

    /// The residues modulo `q_j`.
    #[inline]
    pub fn residues(&self, j: usize) -> &[u64] {
        let n = self.data.len() / self.level;
        &self.data[j * n..(j + 1) * n]
    }

    #[inline]
    pub fn residues_mut(&mut self, j: usize) -> &mut [u64] {
        let n = self.data.len() / self.level;
        &mut self.data[j * n..(j + 1) * n]
    }

    /// Every residue vector at once, mutably (modulus by modulus): for conversions that write
    /// several of them in one pass.
    pub fn columns_mut(&mut self) -> Vec<&mut [u64]> {
        let n = self.data.len() / self.level;
        self.data.chunks_exact_mut(n).collect()
    }

    /// Every residue vector, modulus by modulus.
    pub fn columns(&self) -> Vec<&[u64]> {
        let n = self.data.len() / self.level;
        self.data.chunks_exact(n).collect()
    }

    fn check_compatible(&self, other: &Poly) {
        assert_eq!(self.level, other.level, "level mismatch");
        assert_eq!(self.repr, other.repr, "representation mismatch");
    }

    /// For products: `other` may sit at a higher level, and then stands for its reduction to
    /// `self`'s level (its first residues), with no copy — e.g. a top-level secret key times a
    /// transmit-level ciphertext.
    fn check_factor(&self, other: &Poly) {
        assert!(other.level >= self.level, "level mismatch");
        assert_eq!(self.repr, other.repr, "representation mismatch");
    }

    /// Forward NTT of every residue vector (no-op when already in NTT form).
    pub fn to_ntt(&mut self, ctx: &RnsContext) {
        if self.repr == Representation::Ntt {
            return;
        }
        let n = ctx.degree();
        for (j, chunk) in self.data.chunks_exact_mut(n).enumerate() {
            ctx.plan(j).fwd(chunk);
        }
        self.repr = Representation::Ntt;
    }

    /// Inverse NTT of every residue vector (no-op when already in coefficient form).
    pub fn to_coefficients(&mut self, ctx: &RnsContext) {
        if self.repr == Representation::Coefficient {
            return;
        }
        let n = ctx.degree();
        for (j, chunk) in self.data.chunks_exact_mut(n).enumerate() {
            let plan = ctx.plan(j);
            plan.inv(chunk);
            plan.normalize(chunk);
        }
        self.repr = Representation::Coefficient;
    }

    /// `self ← self + other`.
    pub fn add_assign(&mut self, ctx: &RnsContext, other: &Poly) {
        self.check_compatible(other);
        let n = ctx.degree();
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    let (a, b) = (
                        &mut self.data[j * n..(j + 1) * n],
                        &other.data[j * n..(j + 1) * n],
                    );
                    for (x, &y) in a.iter_mut().zip(b) {
                        *x = m.add(*x, y);
                    }
                }
            },
        );
    }

    /// `self ← self − other`.
    pub fn sub_assign(&mut self, ctx: &RnsContext, other: &Poly) {
        self.check_compatible(other);
        let n = ctx.degree();
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    let (a, b) = (
                        &mut self.data[j * n..(j + 1) * n],
                        &other.data[j * n..(j + 1) * n],
                    );
                    for (x, &y) in a.iter_mut().zip(b) {
                        *x = m.sub(*x, y);
                    }
                }
            },
        );
    }

    /// `self ← −self`.
    pub fn neg_assign(&mut self, ctx: &RnsContext) {
        let n = ctx.degree();
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    for x in &mut self.data[j * n..(j + 1) * n] {
                        *x = m.neg(*x);
                    }
                }
            },
        );
    }

    /// `self ← self · other`, both in NTT form.
    pub fn mul_assign(&mut self, ctx: &RnsContext, other: &Poly) {
        self.check_factor(other);
        assert_eq!(self.repr, Representation::Ntt, "products need NTT form");
        let n = ctx.degree();
        for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
            let (a, b) = (
                &mut self.data[j * n..(j + 1) * n],
                &other.data[j * n..(j + 1) * n],
            );
            for (x, &y) in a.iter_mut().zip(b) {
                *x = m.mul(*x, y);
            }
        }
    }

    /// `self ← self + a · b`, all in NTT form.
    pub fn mul_accumulate(&mut self, ctx: &RnsContext, a: &Poly, b: &Poly) {
        self.check_compatible(a);
        self.check_factor(b);
        assert_eq!(self.repr, Representation::Ntt, "products need NTT form");
        let n = ctx.degree();
        for j in 0..self.level {
            let r = j * n..(j + 1) * n;
            ctx.plan(j)
                .mul_accumulate(&mut self.data[r.clone()], &a.data[r.clone()], &b.data[r]);
        }
    }

    /// `self ← self − a · b`, all in NTT form (two negations around [`Poly::mul_accumulate`]:
    /// vectorised passes, and no temporary for the product).
    pub fn mul_subtract(&mut self, ctx: &RnsContext, a: &Poly, b: &Poly) {
        self.neg_assign(ctx);
        self.mul_accumulate(ctx, a, b);
        self.neg_assign(ctx);
    }

    /// `a · b` in coefficient form, from two NTT-form operands (`b` at `a`'s level or above):
    /// the pointwise product absorbs the `N^{-1}` of the inverse transform, saving a pass.
    pub fn product_to_coefficients(ctx: &RnsContext, a: &Poly, b: &Poly) -> Poly {
        let mut out = a.clone();
        out.mul_assign_to_coefficients(ctx, b);
        out
    }

    /// `self ← self · b` in coefficient form, from NTT-form operands (`b` at this level or above).
    pub fn mul_assign_to_coefficients(&mut self, ctx: &RnsContext, b: &Poly) {
        self.check_factor(b);
        assert_eq!(self.repr, Representation::Ntt, "products need NTT form");
        let n = ctx.degree();
        for j in 0..self.level {
            let r = j * n..(j + 1) * n;
            let plan = ctx.plan(j);
            plan.mul_assign_normalize(&mut self.data[r.clone()], &b.data[r.clone()]);
            plan.inv(&mut self.data[r]);
        }
        self.repr = Representation::Coefficient;
    }

    /// The constant coefficient of `self·b` in `Z_Q[X]/(X^N + 1)`, residue by residue (one per
    /// level of `self`), both in coefficient form: `a_0·b_0 − Σ_{l=1}^{N−1} a_l·b_{N−l}` — an
    /// inner product, `O(N)`, where the whole product costs three NTTs. What a share of a
    /// constant coefficient needs (`concord-mhe` `Extent::Constants`).
    pub fn constant_of_product(&self, ctx: &RnsContext, b: &Poly) -> Vec<u64> {
        self.check_factor(b);
        assert_eq!(
            self.repr,
            Representation::Coefficient,
            "an inner product of coefficients"
        );
        let n = ctx.degree();
        ctx.moduli()[..self.level]
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let (a, b) = (&self.data[j * n..(j + 1) * n], &b.data[j * n..(j + 1) * n]);
                // products below q² summed in u128, reduced (by a u128 division: rarely)
                // every 2^(127 − 2·bits) terms
                let run = 1usize << (127 - 2 * m.bits()).min(40);
                let q = u128::from(m.value());
                let (mut minus, mut from) = (0u64, 1);
                while from < n {
                    let to = (from + run).min(n);
                    let sum: u128 = (from..to)
                        .map(|l| u128::from(a[l]) * u128::from(b[n - l]))
                        .sum();
                    minus = m.add(minus, (sum % q) as u64);
                    from = to;
                }
                let plus = m.reduce_u128(u128::from(a[0]) * u128::from(b[0]));
                m.sub(plus, minus)
            })
            .collect()
    }

    /// `self ← self + c_j·other` residue-wise, for a constant given by its residues
    /// `c_j mod q_j` (a linear combination without a copy of `other`).
    pub fn add_scalar_multiple(&mut self, ctx: &RnsContext, other: &Poly, scalar: &[u64]) {
        self.check_compatible(other);
        let n = ctx.degree();
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    let (c, c_shoup) = (scalar[j], m.shoup(scalar[j]));
                    let r = j * n..(j + 1) * n;
                    for (x, &y) in self.data[r.clone()].iter_mut().zip(&other.data[r]) {
                        *x = m.add(*x, m.mul_shoup(y, c, c_shoup));
                    }
                }
            },
        );
    }

    /// `self ← self · c_j` residue-wise, for a constant given by its residues `c_j mod q_j`.
    pub fn mul_scalar_assign(&mut self, ctx: &RnsContext, scalar: &[u64]) {
        let n = ctx.degree();
        crate::vectorized(
            #[inline(always)]
            || {
                for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
                    let (c, c_shoup) = (scalar[j], m.shoup(scalar[j]));
                    for x in &mut self.data[j * n..(j + 1) * n] {
                        *x = m.mul_shoup(*x, c, c_shoup);
                    }
                }
            },
        );
    }

    /// The same element at a lower level, by dropping residues (no rounding: `x mod Q_ℓ'`).
    pub fn truncated(&self, ctx: &RnsContext, level: usize) -> Poly {
        assert!(level >= 1 && level <= self.level);
        let mut data = spare::with_capacity(level * ctx.degree());
        data.extend_from_slice(&self.data[..level * ctx.degree()]);
        Poly {
            level,
            repr: self.repr,
            data,
        }
    }

    /// Divide by the last modulus with rounding, in coefficient form:
    /// `x ↦ round(x / q_{ℓ-1}) mod Q_{ℓ-1}` (the RNS modulus switch).
    pub fn drop_last_modulus_rounding(&mut self, ctx: &RnsContext) {
        assert_eq!(self.repr, Representation::Coefficient);
        assert!(self.level >= 2, "cannot drop the last remaining modulus");
        let n = ctx.degree();
        let last = self.level - 1;
        let ql = ctx.moduli()[last];
        let half = ql.value() / 2;
        let (head, tail) = self.data.split_at_mut(last * n);
        let tail = &tail[..n];
        for (j, m) in ctx.moduli()[..last].iter().enumerate() {
            let ql_inv = m.inv(m.reduce(ql.value())).expect("coprime moduli");
            let ql_inv_shoup = m.shoup(ql_inv);
            let ql_mod = m.reduce(ql.value());
            // residues of q_l are below q_j when q_l < q_j (public: decided per modulus)
            let needs_reduction = ql.value() > m.value();
            for (x, &r) in head[j * n..(j + 1) * n].iter_mut().zip(tail) {
                // x − [x]_{q_l} (centered) is divisible by q_l; multiply by q_l^{-1} mod q_j.
                // The centered remainder is r − q_l·[r > q_l/2], branch-free.
                let r_mod = if needs_reduction { m.reduce(r) } else { r };
                let centered = m.sub(r_mod, ql_mod & 0u64.wrapping_sub((r > half) as u64));
                *x = m.mul_shoup(m.sub(*x, centered), ql_inv, ql_inv_shoup);
            }
        }
        self.data.truncate(last * n);
        self.level = last;
    }

    /// `self(X^g)` for an odd `g` (a Galois automorphism of `Z[X]/(X^N+1)`), coefficient form:
    /// coefficient `i` moves to `i·g mod 2N`, negated when that lands in `[N, 2N)`.
    pub fn automorphism(&self, ctx: &RnsContext, g: u64) -> Poly {
        assert_eq!(
            self.repr,
            Representation::Coefficient,
            "automorphisms act on coefficients"
        );
        let n = ctx.degree();
        assert!(
            g % 2 == 1 && g < 2 * n as u64,
            "a Galois element is odd and below 2N"
        );
        let mut out = Poly::zero(ctx, self.level, Representation::Coefficient);
        for (j, m) in ctx.moduli()[..self.level].iter().enumerate() {
            let (from, to) = (
                &self.data[j * n..(j + 1) * n],
                &mut out.data[j * n..(j + 1) * n],
            );
            for (i, &c) in from.iter().enumerate() {
                let k = (i as u64 * g % (2 * n as u64)) as usize;
                if k < n {
                    to[k] = c;
                } else {
                    to[k - n] = m.neg(c);
                }
            }
        }
        out
    }

    /// Each coefficient as an exact integer in `(-Q_ℓ/2, Q_ℓ/2]` (CRT lift). Slow: for noise
    /// measurement and tests, never on a hot path.
    pub fn lift_centered(&self, ctx: &RnsContext) -> Vec<num_bigint::BigInt> {
        crate::torus::crt_lift_centered(ctx, self)
    }
}

#[cfg(test)]
mod tests;
