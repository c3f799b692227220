//! Errors of the BFV layer, in words a caller can act on.

use crate::wire::WireError;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum BfvError {
    #[error("{given} values do not fit in {slots} slots")]
    TooManyValues { given: usize, slots: usize },
    #[error("slot {slot} holds {value}, outside the declared range [{lo}, {hi}]")]
    ValueOutOfRange {
        slot: usize,
        value: i64,
        lo: i128,
        hi: i128,
    },
    #[error("a range [{lo}, {hi}] must contain 0 (unused slots hold 0) and be ordered")]
    InvalidRange { lo: i128, hi: i128 },
    #[error("{op}: the result may take any value in [{lo}, {hi}], which does not fit the plaintext modulus t = {t} (needs t > {width}); use a parameter set with a larger t, fewer contributions, or tighter bounds")]
    PlaintextOverflow {
        op: &'static str,
        lo: i128,
        hi: i128,
        width: i128,
        t: u64,
    },
    #[error("operands belong to different parameter sets ({left} and {right})")]
    ParameterMismatch {
        left: &'static str,
        right: &'static str,
    },
    #[error(
        "operands are at different levels ({left} and {right}); switch them to one level first"
    )]
    LevelMismatch { left: usize, right: usize },
    #[error(
        "level {level} is not reachable from level {from} (levels go down, 1 ≤ level ≤ {from})"
    )]
    Level { level: usize, from: usize },
    #[error("ciphertext of degree {0}: relinearize it to degree 1 first")]
    Degree(usize),
    #[error("parameter set {0} is additive: multiplication, relinearization and rotations need a multiplicative set (MUL-16384, MUL-16384-T26, MUL-32768, MUL-32768-T26)")]
    NotMultiplicative(&'static str),
    #[error(
        "ciphertexts multiply and rotate at the top level {top}; this one is at level {level}"
    )]
    NotTopLevel { level: usize, top: usize },
    #[error("no Galois key for element {element}: generate the keys for this rotation (GaloisKeys::for_rotations) first")]
    MissingGaloisKey { element: u64 },
    #[error("{element} is not a Galois element: odd and below 2N = {two_n}")]
    GaloisElement { element: u64, two_n: u64 },
    #[error("a {set} key-switching key has {digits} parts (b_j, a_j), each over the {moduli} moduli of the key ring in NTT form")]
    KeyShape {
        set: &'static str,
        digits: usize,
        moduli: usize,
    },
    #[error("{value} lies outside the domain [{lo}, {hi}] (a domain must hold fewer than t = {t} values and every value the input may take)")]
    Domain {
        lo: i64,
        hi: i64,
        value: i64,
        t: u64,
    },
    #[error("a polynomial of degree {degree} needs more powers than this basis (up to degree {basis}) holds")]
    PolynomialDegree { degree: usize, basis: usize },
    #[error("counting over {slots} slots needs t > {slots} (t = {t}): use fewer ciphertexts or a set with a larger t (MUL-16384-T26)")]
    CountOverflow { slots: u128, t: u64 },
    #[error("nothing to count: no ciphertexts given")]
    NothingToCount,
    #[error(transparent)]
    Wire(#[from] WireError),
}
