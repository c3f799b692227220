//! The RNS polynomial ring `R_Q = Z_Q[X]/(X^N+1)` that Concord's BFV scheme and multiparty
//! protocols are built on (DESIGN.md §2; Mouchet et al., PETS 2021, §2).
//!
//! `Q` is a product of word-size NTT-friendly primes (`q ≡ 1 mod 2N`); every polynomial product
//! goes through `tfhe-ntt`, the maintained continuation of `concrete-ntt`. Primes below 2^50 let
//! tfhe-ntt use its AVX-512 IFMA path where the CPU has it ([`RnsContext::uses_ifma`] tells, and
//! building a context logs which path runs, once).
//!
//! This crate knows nothing of ciphertexts, networks or files.

pub mod context;
pub mod modulus;
pub mod packing;
pub mod poly;
pub mod rns;
pub mod sampling;
pub mod torus;

pub use context::{ContextError, RnsContext};

/// Runs `f` compiled for the best instruction set the CPU offers (AVX-512, AVX2, …), chosen at
/// run time, so element-wise loops vectorise without building for one CPU. Safe: pulp checks
/// the features before entering the specialised code.
#[inline(always)]
pub(crate) fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    pulp::Arch::new().dispatch(f)
}
pub use modulus::{is_prime, ntt_primes, Modulus};
pub use poly::{Poly, Representation};
