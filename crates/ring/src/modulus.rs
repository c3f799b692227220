//! Word-size prime moduli: modular arithmetic with Barrett reduction, and the search for the
//! NTT-friendly primes (`q ≡ 1 mod 2N`) an RNS basis is made of.

/// A prime modulus `q < 2^62` with precomputed Barrett constants.
#[derive(Clone, Copy, Debug)]
pub struct Modulus {
    value: u64,
    bits: u32,
    /// `floor(2^(2·bits) / q)`, below `2^(bits+1)`, so it fits a word.
    barrett: u64,
    /// `1/q` as a double, for [`Modulus::reduce_vectorizable`].
    inverse_f64: f64,
}

/// Moduli are equal when their values are (everything else is derived from the value).
impl PartialEq for Modulus {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl Eq for Modulus {}

impl Modulus {
    /// A modulus for `q`; `None` unless `2 ≤ q < 2^62`.
    pub fn new(value: u64) -> Option<Self> {
        if !(2..(1 << 62)).contains(&value) {
            return None;
        }
        let bits = 64 - value.leading_zeros();
        let barrett = ((1u128 << (2 * bits)) / value as u128) as u64;
        Some(Self {
            value,
            bits,
            barrett,
            inverse_f64: 1.0 / value as f64,
        })
    }

    #[inline]
    pub fn value(&self) -> u64 {
        self.value
    }

    /// Bit length of `q`: a residue packs into this many bits.
    #[inline]
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// `a + b mod q` for reduced inputs; branch-free (`min` of the two candidates), so loops
    /// over it vectorise.
    #[inline]
    pub fn add(&self, a: u64, b: u64) -> u64 {
        let s = a + b;
        s.min(s.wrapping_sub(self.value))
    }

    /// `a − b mod q` for reduced inputs; branch-free.
    #[inline]
    pub fn sub(&self, a: u64, b: u64) -> u64 {
        let d = a.wrapping_sub(b);
        d.min(d.wrapping_add(self.value))
    }

    #[inline]
    pub fn neg(&self, a: u64) -> u64 {
        // q − a, or 0 for a = 0, branch-free
        (self.value - a) & 0u64.wrapping_sub((a != 0) as u64)
    }

    /// `x mod q` for any `x < 2^(2·bits)` (Barrett; the estimate is off by at most 2).
    #[inline]
    pub fn reduce_u128(&self, x: u128) -> u64 {
        let est = (((x >> (self.bits - 1)) as u64 as u128 * self.barrett as u128)
            >> (self.bits + 1)) as u64;
        let r = (x as u64).wrapping_sub(est.wrapping_mul(self.value));
        let r = r.min(r.wrapping_sub(self.value));
        r.min(r.wrapping_sub(self.value))
    }

    /// `x mod q` through a floating-point quotient estimate, for loops that must vectorise
    /// (every step has an AVX-512 instruction, unlike the 64×64→128-bit product of Barrett).
    /// Exact for `x < 2^63` and `2^20 ≤ q < 2^52`: the estimate `⌊x·(1/q)⌋` carries a relative
    /// error below 2^-51, so it is off by at most one and two branch-free corrections fix it.
    #[inline]
    pub fn reduce_vectorizable(&self, x: u64) -> u64 {
        let estimate = (x as f64 * self.inverse_f64) as u64;
        let r = x.wrapping_sub(estimate.wrapping_mul(self.value));
        let r = r.min(r.wrapping_add(self.value)); // estimate one too high: r "negative"
        r.min(r.wrapping_sub(self.value)) // estimate one too low: r ≥ q
    }

    /// Shoup's precomputation for multiplying by the constant `w < q`: `⌊w·2^64/q⌋`.
    #[inline]
    pub fn shoup(&self, w: u64) -> u64 {
        (((w as u128) << 64) / self.value as u128) as u64
    }

    /// `x·w mod q` for a constant `w` with [`Modulus::shoup`] precomputation `w_shoup`.
    #[inline]
    pub fn mul_shoup(&self, x: u64, w: u64, w_shoup: u64) -> u64 {
        let hi = ((x as u128 * w_shoup as u128) >> 64) as u64;
        let r = x.wrapping_mul(w).wrapping_sub(hi.wrapping_mul(self.value));
        r.min(r.wrapping_sub(self.value))
    }

    /// The residue of a signed integer with `|x| < q`, branch-free.
    #[inline]
    pub fn from_small(&self, x: i64) -> u64 {
        debug_assert!(x.unsigned_abs() < self.value);
        (x as u64).wrapping_add(self.value & ((x >> 63) as u64))
    }

    #[inline]
    pub fn mul(&self, a: u64, b: u64) -> u64 {
        self.reduce_u128(a as u128 * b as u128)
    }

    /// `x mod q` for any `u64` (Barrett for moduli of 32 bits or more, a division below).
    #[inline]
    pub fn reduce(&self, x: u64) -> u64 {
        if self.bits >= 32 {
            self.reduce_u128(x as u128)
        } else {
            x % self.value
        }
    }

    /// The residue of a signed integer, branch-free in the sign.
    #[inline]
    pub fn from_i64(&self, x: i64) -> u64 {
        let pos = self.reduce(x.unsigned_abs());
        let neg_mask = (x >> 63) as u64; // all ones when x < 0
        let negated = self.neg(pos);
        (pos & !neg_mask) | (negated & neg_mask)
    }

    /// The centered representative of `a` in `(-q/2, q/2]`.
    #[inline]
    pub fn center(&self, a: u64) -> i64 {
        if a > self.value / 2 {
            a as i64 - self.value as i64
        } else {
            a as i64
        }
    }

    pub fn pow(&self, mut base: u64, mut exp: u64) -> u64 {
        let mut acc = 1 % self.value;
        base %= self.value;
        while exp > 0 {
            if exp & 1 == 1 {
                acc = self.mul(acc, base);
            }
            base = self.mul(base, base);
            exp >>= 1;
        }
        acc
    }

    /// Inverse modulo the prime `q`; `None` for zero.
    pub fn inv(&self, a: u64) -> Option<u64> {
        let a = a % self.value;
        (a != 0).then(|| self.pow(a, self.value - 2))
    }
}

/// Deterministic Miller–Rabin for all 64-bit integers.
pub fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    for p in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        if n.is_multiple_of(p) {
            return n == p;
        }
    }
    let (mut d, mut s) = (n - 1, 0);
    while d % 2 == 0 {
        d /= 2;
        s += 1;
    }
    let mulmod = |a: u64, b: u64| ((a as u128 * b as u128) % n as u128) as u64;
    let powmod = |mut b: u64, mut e: u64| {
        let mut r = 1u64;
        while e > 0 {
            if e & 1 == 1 {
                r = mulmod(r, b);
            }
            b = mulmod(b, b);
            e >>= 1;
        }
        r
    };
    'witness: for a in [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37] {
        let mut x = powmod(a, d);
        if x == 1 || x == n - 1 {
            continue;
        }
        for _ in 1..s {
            x = mulmod(x, x);
            if x == n - 1 {
                continue 'witness;
            }
        }
        return false;
    }
    true
}

/// The `count` largest primes below `2^bits` that are `≡ 1 (mod 2n)` and not in `exclude`,
/// in decreasing order. Deterministic, so a parameter set named by its bit sizes always
/// denotes the same moduli.
pub fn ntt_primes(bits: u32, count: usize, n: usize, exclude: &[u64]) -> Vec<u64> {
    let step = 2 * n as u64;
    let mut candidate = ((1u64 << bits) - 1) / step * step + 1;
    let mut found = Vec::with_capacity(count);
    while found.len() < count && candidate > step {
        if candidate < (1u64 << bits) && is_prime(candidate) && !exclude.contains(&candidate) {
            found.push(candidate);
        }
        candidate -= step;
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn primality_matches_trial_division_on_small_numbers() {
        for n in 0..5000u64 {
            let trial = n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0);
            assert_eq!(is_prime(n), trial, "{n}");
        }
        assert!(is_prime(65537));
        assert!(!is_prime(3_215_031_751)); // strong pseudoprime to bases 2, 3, 5, 7
    }

    #[test]
    fn ntt_primes_are_prime_and_congruent() {
        let ps = ntt_primes(38, 3, 8192, &[]);
        assert_eq!(ps.len(), 3);
        for p in &ps {
            assert!(is_prime(*p) && p % 16384 == 1 && *p < 1 << 38 && *p > 1 << 37);
        }
        assert!(ps.windows(2).all(|w| w[0] > w[1]));
    }

    proptest! {
        #[test]
        fn arithmetic_matches_u128(a in any::<u64>(), b in any::<u64>(), bits in 20u32..62) {
            let q = ntt_primes(bits, 1, 16, &[])[0];
            let m = Modulus::new(q).unwrap();
            let (a, b) = (a % q, b % q);
            prop_assert_eq!(m.mul(a, b) as u128, a as u128 * b as u128 % q as u128);
            prop_assert_eq!(m.add(a, b) as u128, (a as u128 + b as u128) % q as u128);
            prop_assert_eq!(m.sub(a, b) as u128, (a as u128 + q as u128 - b as u128) % q as u128);
            prop_assert_eq!(m.reduce_u128(a as u128 * b as u128), m.mul(a, b));
            let s = a as i64 >> 2;
            prop_assert_eq!(m.center(m.from_i64(-s)), if (s as u64).is_multiple_of(q) { 0 } else { m.center(q - (s as u64 % q)) });
            if a != 0 { prop_assert_eq!(m.mul(a, m.inv(a).unwrap()), 1); }
            prop_assert_eq!(m.mul_shoup(a, b, m.shoup(b)), m.mul(a, b));
            if (20..52).contains(&bits) {
                let x = a >> 1; // < 2^63
                prop_assert_eq!(m.reduce_vectorizable(x), x % q);
                prop_assert_eq!(m.reduce_vectorizable(x / q * q), 0);
                prop_assert_eq!(m.reduce_vectorizable((x / q * q).wrapping_sub(1) >> 1 << 1 >> 1), ((x / q * q).wrapping_sub(1) >> 1 << 1 >> 1) % q);
            }
            prop_assert_eq!(m.reduce(a.wrapping_mul(b)) as u128, (a.wrapping_mul(b) % q) as u128);
            let small = (a % q) as i64 * if b & 1 == 0 { 1 } else { -1 };
            prop_assert_eq!(m.from_small(small), m.from_i64(small));
        }
    }
}
