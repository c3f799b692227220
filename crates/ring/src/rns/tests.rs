//! The exact conversions and scalings against big-integer arithmetic.

use super::*;
use crate::ntt_primes;
use num_bigint::{BigInt, Sign};
use proptest::prelude::*;

fn moduli(bits: u32, count: usize, exclude: &[u64]) -> Vec<Modulus> {
    ntt_primes(bits, count, 1 << 14, exclude)
        .into_iter()
        .map(|q| Modulus::new(q).unwrap())
        .collect()
}

/// A uniformly drawn value below `bound`, from proptest's bytes.
fn below(bytes: &[u8], bound: &BigUint) -> BigUint {
    BigUint::from_bytes_le(bytes) % bound
}

fn centred(x: &BigUint, m: &BigUint) -> BigInt {
    let x = BigInt::from(x.clone());
    let m = BigInt::from(m.clone());
    if &x * 2 > m {
        x - m
    } else {
        x
    }
}

fn mod_of(x: &BigInt, p: &Modulus) -> u64 {
    let r = x % BigInt::from(p.value());
    let r = if r.sign() == Sign::Minus {
        r + BigInt::from(p.value())
    } else {
        r
    };
    r.to_u64_digits().1.first().copied().unwrap_or(0)
}

/// `round(a/b)` for integers, halves away from zero (ties never occur in the tests).
fn round_div(a: &BigInt, b: &BigInt) -> BigInt {
    let twice = a * 2
        + if a.sign() == Sign::Minus {
            -b
        } else {
            b.clone()
        };
    twice / (b * 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Q of six 50-bit primes to P of four 60-bit ones, and P to Q: always the centred
    /// representative, exactly.
    #[test]
    fn base_conversion_is_exact_for_the_centred_representative(
        bytes in proptest::collection::vec(any::<u8>(), 48),
        sign in any::<bool>(),
    ) {
        let q = moduli(50, 6, &[]);
        let p = moduli(60, 4, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
        let qq = product(&q);
        let x = below(&bytes, &qq);
        let x = if sign { x } else { (&qq - &x) % &qq };
        let residues: Vec<u64> = q.iter().map(|m| residue(&x, m)).collect();
        let mut out = vec![0; p.len()];
        BaseConverter::new(&q, &p).convert(&residues, &mut out);
        let c = centred(&x, &qq);
        let expect: Vec<u64> = p.iter().map(|m| mod_of(&c, m)).collect();
        prop_assert_eq!(out, expect);
        // and from the larger primes to the smaller ones
        let pp = product(&p);
        let y = below(&bytes, &pp);
        let residues: Vec<u64> = p.iter().map(|m| residue(&y, m)).collect();
        let mut back = vec![0; q.len()];
        BaseConverter::new(&p, &q).convert(&residues, &mut back);
        let c = centred(&y, &pp);
        let expect: Vec<u64> = q.iter().map(|m| mod_of(&c, m)).collect();
        prop_assert_eq!(back, expect);
    }

    /// BFV's scaling: x in Q ∪ R (Q five 50-bit primes, R five 60-bit ones), round(t·x/Q)
    /// in R exactly.
    #[test]
    fn scaling_rounds_t_x_over_d_exactly(
        bytes in proptest::collection::vec(any::<u8>(), 80),
        t in prop_oneof![Just(65537u64), Just(1u64), (2u64..1 << 40)],
    ) {
        let d = moduli(50, 5, &[]);
        let k = moduli(60, 5, &d.iter().map(|m| m.value()).collect::<Vec<_>>());
        let all: Vec<Modulus> = d.iter().chain(&k).copied().collect();
        let m = product(&all);
        let x = below(&bytes, &m);
        let residues: Vec<u64> = all.iter().map(|md| residue(&x, md)).collect();
        let mut out = vec![0; k.len()];
        Scaler::new(t, &d, &k).scale(&residues, &mut out);
        let exact = round_div(&(centred(&x, &m) * BigInt::from(t)), &BigInt::from(product(&d)));
        let expect: Vec<u64> = k.iter().map(|md| mod_of(&exact, md)).collect();
        prop_assert_eq!(out, expect);
    }
}

/// Every kernel (IFMA where the CPU has it, double precision, Shoup), on multiplication's
/// bases, gives the same exact results — blocks of 256 coefficients and a shorter tail.
#[test]
fn every_kernel_converts_and_scales_alike() {
    let q = moduli(50, 6, &[]);
    let p = moduli(50, 7, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
    let all: Vec<Modulus> = q.iter().chain(&p).copied().collect();
    let mut seed = 11u64;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed
    };
    for len in [4 * BLOCK, 40] {
        let columns: Vec<Vec<u64>> = all
            .iter()
            .map(|m| (0..len).map(|_| next() % m.value()).collect())
            .collect();
        let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
        let mut results = Vec::new();
        let mut kernels = vec![Kernel::Shoup, Kernel::Float];
        if ifma::available() {
            kernels.push(Kernel::Ifma);
        } else {
            println!("no AVX-512 IFMA on this CPU: its kernel is not compared");
        }
        for kernel in kernels {
            let mut converter = BaseConverter::new(&q, &p);
            converter.kernel = kernel;
            let mut scaler = Scaler::new(65537, &q, &p);
            scaler.extend.kernel = kernel;
            let mut converted = vec![vec![0u64; len]; p.len()];
            let mut views: Vec<&mut [u64]> = converted.iter_mut().map(Vec::as_mut_slice).collect();
            converter.convert_poly(&input[..q.len()], &mut views);
            let mut scaled = vec![vec![0u64; len]; p.len()];
            let mut views: Vec<&mut [u64]> = scaled.iter_mut().map(Vec::as_mut_slice).collect();
            scaler.scale_poly(&input, &mut views);
            results.push((kernel, converted, scaled));
        }
        for (kernel, converted, scaled) in &results[1..] {
            assert_eq!(
                converted, &results[0].1,
                "{kernel:?} conversion, {len} values"
            );
            assert_eq!(scaled, &results[0].2, "{kernel:?} scaling, {len} values");
        }
    }
}

/// The double-precision kernels (every modulus below 2^51), on multiplication's bases:
/// exact for random values and for values within `Q·2^-50` of ±Q/2, where the double
/// estimate of `v` cannot round and the 128-bit fractions decide. (Within `k·2^-63·Q` of
/// ±Q/2 both representatives are possible — the module doc's `2^-57` per random value.)
#[test]
fn float_kernels_are_exact_including_next_to_half_the_modulus() {
    let q = moduli(50, 6, &[]);
    let p = moduli(50, 7, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
    let qq = BigInt::from(product(&q));
    let half = &qq / 2;
    let step: BigInt = &qq >> 56u32;
    let mut values: Vec<BigInt> = Vec::new();
    for d in 1..50i64 {
        values.push(&half - &step * d);
        values.push(-&half + &step * d);
        values.push(BigInt::from(d) * 1_000_003 - 25_000_000);
    }
    let mut seed = 7u64;
    for _ in 0..500 {
        let mut bytes = [0u8; 40];
        for b in &mut bytes {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (seed >> 33) as u8;
        }
        values.push(BigInt::from(BigUint::from_bytes_le(&bytes) % product(&q)) - &half);
    }
    // whole blocks, so that the IFMA kernel runs where the CPU has it
    values.resize(values.len().next_multiple_of(BLOCK), BigInt::from(0));
    let columns: Vec<Vec<u64>> = q
        .iter()
        .map(|m| values.iter().map(|v| mod_of(v, m)).collect())
        .collect();
    let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
    let mut out = vec![vec![0u64; values.len()]; p.len()];
    let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
    let converter = BaseConverter::new(&q, &p);
    assert_ne!(converter.kernel, Kernel::Shoup);
    converter.convert_poly(&input, &mut views);
    for (m, column) in p.iter().zip(&out) {
        let expect: Vec<u64> = values.iter().map(|v| mod_of(v, m)).collect();
        assert_eq!(column, &expect);
    }
    // and the scale: x over Q ∪ P, round(65537·x/Q) in P
    let all: Vec<Modulus> = q.iter().chain(&p).copied().collect();
    let columns: Vec<Vec<u64>> = all
        .iter()
        .map(|m| values.iter().map(|v| mod_of(&(v * 12345), m)).collect())
        .collect();
    let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
    let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
    Scaler::new(65537, &q, &p).scale_poly(&input, &mut views);
    for (m, column) in p.iter().zip(&out) {
        let expect: Vec<u64> = values
            .iter()
            .map(|v| mod_of(&round_div(&(v * 12345 * 65537), &qq), m))
            .collect();
        assert_eq!(column, &expect);
    }
}

#[test]
fn polynomials_convert_and_scale_coefficient_by_coefficient() {
    let q = moduli(40, 3, &[]);
    let p = moduli(45, 2, &q.iter().map(|m| m.value()).collect::<Vec<_>>());
    let values: Vec<i64> = vec![0, 1, -1, 1 << 40, -(1 << 41), 123_456_789];
    let columns: Vec<Vec<u64>> = q
        .iter()
        .map(|m| values.iter().map(|&v| m.from_i64(v)).collect())
        .collect();
    let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
    let mut out = vec![vec![0u64; values.len()]; p.len()];
    let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
    BaseConverter::new(&q, &p).convert_poly(&input, &mut views);
    for (m, column) in p.iter().zip(&out) {
        let expect: Vec<u64> = values.iter().map(|&v| m.from_i64(v)).collect();
        assert_eq!(column, &expect);
    }
    // dividing by P with rounding (key switching's last step): x·P + e over P ∪ Q is x
    let all: Vec<Modulus> = p.iter().chain(&q).copied().collect();
    let big_p = product(&p);
    let scaled: Vec<BigInt> = values
        .iter()
        .map(|&v| BigInt::from(v) * BigInt::from(big_p.clone()) + BigInt::from(v % 1000))
        .collect();
    let columns: Vec<Vec<u64>> = all
        .iter()
        .map(|m| scaled.iter().map(|v| mod_of(v, m)).collect())
        .collect();
    let input: Vec<&[u64]> = columns.iter().map(Vec::as_slice).collect();
    let mut out = vec![vec![0u64; values.len()]; q.len()];
    let mut views: Vec<&mut [u64]> = out.iter_mut().map(Vec::as_mut_slice).collect();
    Scaler::new(1, &p, &q).scale_poly(&input, &mut views);
    for (m, column) in q.iter().zip(&out) {
        let expect: Vec<u64> = values.iter().map(|&v| m.from_i64(v)).collect();
        assert_eq!(column, &expect);
    }
}
