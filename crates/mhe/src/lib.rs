//! Multiparty BFV after Mouchet, Troncoso-Pastoriza, Bossuat, Hubaux, "Multiparty Homomorphic
//! Encryption from Ring-Learning-with-Errors" (PETS 2021) — the protocols of DESIGN.md §2,
//! with the equations of PROTOCOLS.md.
//!
//! Every protocol has one shape ([`protocol`]): a protocol value built from the public inputs
//! ([`PublicKeyGen`], [`CollectiveDecryption`], [`PublicKeySwitch`]); `share(secret, party)`
//! gives a party's share, a plain value that serializes itself; `aggregator()` starts a
//! streaming sum that anyone (the coordinator) can run with `add(&share)`, refusing a second
//! share from a party and shares made for another CRS or ciphertext; `finish(&aggregate,
//! parties)` derives the output only from exactly the expected parties. Threshold T-of-N ([`threshold`], replicated sharing) turns a
//! threshold key into a [`concord_bfv::SecretKey`] for an active set, with integer weights only,
//! so the same protocols run with any `T` parties.
//!
//! For the multiplicative sets, [`evaluation_keys`] generates the relinearization key (RKG, two
//! rounds) and Galois keys (GKG) collectively, in the same shape and in threshold mode too.
//!
//! Decryption and key-switch shares carry smudging noise; [`noise`] states the analysis and
//! [`SmudgingPlan`] sizes it per ciphertext so that every share has at least 40 bits of
//! statistical security per coefficient and the result still decrypts exactly.
//!
//! ```
//! use concord_bfv::{params, BfvParameters, Ciphertext, Plaintext, SecretKey, ValueRange};
//! use concord_mhe::*;
//! let params = BfvParameters::new(&params::ADD_4096).unwrap();
//! let crs = CommonReferenceString::random();
//! let parties = [PartyId(1), PartyId(2), PartyId(3)];
//! let keys: Vec<SecretKey> = parties.iter().map(|_| SecretKey::generate(&params)).collect();
//! // CKG
//! let ckg = PublicKeyGen::new(&params, &crs);
//! let mut agg = ckg.aggregator();
//! for (sk, &p) in keys.iter().zip(&parties) { agg.add(&ckg.share(sk, p).unwrap()).unwrap(); }
//! let pk = ckg.finish(&agg, &parties).unwrap();
//! // every party encrypts a count, sent at the transmit level; the sum is decrypted jointly
//! let cts: Vec<Ciphertext> = (1..=3).map(|v| {
//!     let mut ct = pk.encrypt(&Plaintext::encode(&params, &[v], ValueRange::counts(10)).unwrap()).unwrap();
//!     ct.switch_to_transmit_level().unwrap();
//!     ct
//! }).collect();
//! let sum = Ciphertext::sum(&cts).unwrap();
//! let plan = SmudgingPlan::for_decryption(&params, NoiseEstimate::aggregate(&params, 3, 3), 3).unwrap();
//! assert!(plan.lambda >= 40.0);
//! let cks = CollectiveDecryption::new(&sum, plan).unwrap();
//! let mut shares = cks.aggregator();
//! for (sk, &p) in keys.iter().zip(&parties) { shares.add(&cks.share(sk, p).unwrap()).unwrap(); }
//! assert_eq!(cks.finish(&shares, &parties).unwrap().decode()[0], 6);
//! ```

pub mod ckg;
pub mod cks;
pub mod crs;
pub mod error;
pub mod evaluation_keys;
pub mod noise;
pub mod party;
pub mod pcks;
pub mod protocol;
pub mod randomness;
pub mod threshold;

pub use ckg::{PublicKeyAggregate, PublicKeyGen, PublicKeyShare};
pub use cks::{CollectiveDecryption, DecryptionAggregate, DecryptionShare, Extent};
pub use crs::{CommonReferenceString, CrsId};
pub use error::MheError;
pub use evaluation_keys::{
    EvaluationKeyAggregate, EvaluationKeyShare, GaloisKeyAggregate, GaloisKeyGen, KeyGenStep,
    RelinearizationEphemeral, RelinearizationKeyGen,
};
pub use noise::{NoiseEstimate, SmudgingPlan, MIN_STATISTICAL_SECURITY};
pub use party::{Participants, PartyId};
pub use pcks::{KeySwitchAggregate, KeySwitchShare, PublicKeySwitch};
pub use protocol::{Aggregate, Protocol, WireShare};
pub use threshold::{reshare, Resharing, ThresholdConfig, ThresholdSecretKey, MAX_KEY_EXPANSIONS};
