//! Errors of the multiparty protocols.

use crate::PartyId;
use concord_bfv::{BfvError, WireError};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MheError {
    #[error(transparent)]
    Bfv(#[from] BfvError),
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("share of party {party} was made from a different common reference string")]
    CrsMismatch { party: PartyId },
    #[error("share of party {party} was made for a different ciphertext")]
    WrongCiphertext { party: PartyId },
    #[error("party {0} gave two shares")]
    DuplicateShare(PartyId),
    #[error("shares missing from parties {0:?}: the output would be wrong, so none is produced")]
    MissingShares(Vec<PartyId>),
    #[error("party {0} is not among the parties expected for this protocol run")]
    UnexpectedShare(PartyId),
    #[error("share of party {party} does not match the others ({what})")]
    IncompatibleShare { party: PartyId, what: &'static str },
    #[error("no shares to aggregate")]
    NoShares,
    #[error("{given} constant coefficients to release where one plaintext holds at most {degree}")]
    TooManyConstants { given: usize, degree: usize },
    #[error("noise for {given} coefficients where the share releases {released}")]
    NoiseLength { given: usize, released: usize },
    #[error("no ciphertexts to release")]
    NothingToRelease,
    #[error("{context}: smudging would give only {lambda:.1} bits of statistical security (at least {required} required); the ciphertext is too noisy or there are too many parties for parameter set {set} — use a set with a larger modulus")]
    InsufficientSmudging {
        context: &'static str,
        set: &'static str,
        lambda: f64,
        required: u32,
    },
    #[error("invalid threshold: {0}")]
    Threshold(String),
}
