//! BFV (Brakerski/Fan–Vercauteren, scale-invariant) over the Concord RNS ring, as Concord uses
//! it: named parameter sets checked against the Homomorphic Encryption Standard, SIMD batching,
//! encryption under a public or secret key, exact decryption, additive evaluation with
//! overflow accounting, modulus switching, and a compact versioned wire format
//! (DESIGN.md §2).
//!
//! The multiparty protocols (collective keys, joint decryption, key switching, threshold) are in
//! `concord-mhe`. Engine part 2: the multiplicative sets (`MUL-16384`, `MUL-32768`) multiply
//! ciphertexts in the RNS variant of Halevi–Polyakov–Shoup and relinearize with hybrid key
//! switching ([`multiply`]); rotations permute the 2 × N/2 slot matrix with Galois keys
//! ([`rotation`]). Keys live in the key ring `Q ∪ P` ([`BfvParameters::key_ring`]), and
//! key-switching keys are public values built from parts, so that `concord-mhe` can generate
//! them collectively.
//!
//! ```
//! use concord_bfv::{params, BfvParameters, Plaintext, PublicKey, SecretKey, ValueRange};
//! let params = BfvParameters::new(&params::ADD_4096).unwrap();
//! let sk = SecretKey::generate(&params);
//! let pk = PublicKey::generate(&sk);
//! let pt = Plaintext::encode(&params, &[1, 2, 3], ValueRange::counts(10)).unwrap();
//! let mut ct = pk.encrypt(&pt).unwrap();
//! ct.add_assign(&ct.clone()).unwrap();
//! ct.switch_to_transmit_level().unwrap();
//! assert_eq!(&sk.decrypt(&ct).unwrap().decode()[..3], &[2, 4, 6]);
//! ```

pub mod ciphertext;
pub mod error;
pub mod keys;
pub mod multiply;
pub mod params;
pub mod plaintext;
pub mod polynomial;
pub mod rotation;
pub mod wire;

pub use ciphertext::{check_same_params, Ciphertext, CiphertextTag};
pub use error::BfvError;
pub use keys::{PublicKey, SecretKey};
pub use multiply::RelinearizationKey;
pub use params::{BfvParameters, ParameterError, ParameterSpec};
pub use plaintext::{Plaintext, ValueRange};
pub use polynomial::{PowerBasis, SlotPolynomial};
pub use rotation::GaloisKeys;
pub use wire::{Kind, WireError};
