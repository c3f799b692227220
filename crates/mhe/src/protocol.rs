//! The one shape every single-round multiparty protocol has (Mouchet et al., PETS 2021, §IV):
//! a protocol value built from the public inputs; each party's **share** from its secret; an
//! **aggregate** that anyone — the coordinator — runs as shares stream in, refusing a second
//! share from a party and shares made for another CRS, ciphertext or plan; and the **output**,
//! finished only from exactly the expected parties.
//!
//! | protocol | share | output |
//! |---|---|---|
//! | [`crate::PublicKeyGen`] (CKG) | `p_i = −s_i·a + e_i` | the collective public key |
//! | [`crate::CollectiveDecryption`] (CKS to 0) | `h_i = s_i·c_1 + e_i` | the plaintext |
//! | [`crate::PublicKeySwitch`] (PCKS) | `(s_i·c_1 + u_i·p' + e_0, u_i·a' + e_1)` | the ciphertext under the receiver's key |
//!
//! The evaluation-key protocols use the same verbs without the trait, since their shares do not
//! fit one value per party: GKG ([`crate::GaloisKeyGen`]) gives one share per Galois element
//! (`shares`, `aggregator`, `finish`), and RKG ([`crate::RelinearizationKeyGen`]) has two rounds
//! with an ephemeral secret kept between them (`round_one`, `round_two`, `finish`). Code that
//! gathers shares over a network (the coordinator) is written once, against [`Protocol`] and
//! [`WireShare`] ([`gather`]).

use crate::party::{Participants, PartyId};
use crate::MheError;
use concord_bfv::{BfvParameters, SecretKey};
use std::sync::Arc;

/// A single-round multiparty protocol over one set of public inputs.
pub trait Protocol {
    /// What one party sends.
    type Share;
    /// The running sum of the shares.
    type Aggregate: Aggregate<Share = Self::Share>;
    /// What the complete aggregate yields.
    type Output;

    /// Party `party`'s share under its secret key (share).
    fn share(&self, sk: &SecretKey, party: PartyId) -> Result<Self::Share, MheError>;

    /// An empty aggregate for this protocol's shares.
    fn aggregator(&self) -> Self::Aggregate;

    /// The output, only if exactly the `expected` parties' shares are in `aggregate`.
    fn finish(
        &self,
        aggregate: &Self::Aggregate,
        expected: &[PartyId],
    ) -> Result<Self::Output, MheError>;
}

/// A streaming sum of shares.
pub trait Aggregate {
    type Share;

    /// Adds one party's share; refuses a second share from a party and incompatible shares.
    fn add(&mut self, share: &Self::Share) -> Result<(), MheError>;

    /// The parties whose shares are in.
    fn parties(&self) -> &Participants;
}

/// A share that travels: Concord's versioned, checksummed encoding (`concord-bfv` `wire`).
pub trait WireShare: Sized {
    fn to_bytes(&self) -> Vec<u8>;
    fn from_bytes(params: &Arc<BfvParameters>, bytes: &[u8]) -> Result<Self, MheError>;
}

/// Runs one protocol per value (e.g. one per ciphertext of a query) over every party's
/// encoded shares — `shares[p][k]` is party `p`'s share for protocol `k` — and finishes each
/// from exactly `parties`. An undecodable or incompatible share is reported with the index of
/// the party that sent it.
pub fn gather<P>(
    protocols: &[P],
    params: &Arc<BfvParameters>,
    shares: &[Vec<Vec<u8>>],
    parties: &[PartyId],
) -> Result<Vec<P::Output>, (Option<usize>, MheError)>
where
    P: Protocol,
    P::Share: WireShare,
{
    let mut aggregates: Vec<P::Aggregate> = protocols.iter().map(P::aggregator).collect();
    for (from, party_shares) in shares.iter().enumerate() {
        if party_shares.len() != protocols.len() {
            return Err((
                Some(from),
                MheError::IncompatibleShare {
                    party: parties.get(from).copied().unwrap_or(PartyId(0)),
                    what: "number of shares",
                },
            ));
        }
        for (aggregate, bytes) in aggregates.iter_mut().zip(party_shares) {
            let share = P::Share::from_bytes(params, bytes).map_err(|e| (Some(from), e))?;
            aggregate.add(&share).map_err(|e| (Some(from), e))?;
        }
    }
    protocols
        .iter()
        .zip(&aggregates)
        .map(|(p, a)| p.finish(a, parties).map_err(|e| (None, e)))
        .collect()
}

/// [`WireShare`] for a share type whose inherent `to_bytes`/`from_bytes` are its encoding.
macro_rules! wire_share {
    ($share:ty) => {
        impl $crate::protocol::WireShare for $share {
            fn to_bytes(&self) -> Vec<u8> {
                <$share>::to_bytes(self)
            }
            fn from_bytes(
                params: &std::sync::Arc<concord_bfv::BfvParameters>,
                bytes: &[u8],
            ) -> Result<Self, $crate::MheError> {
                <$share>::from_bytes(params, bytes)
            }
        }
    };
}

/// [`Aggregate`] for an aggregate type whose inherent `add`/`parties` are the sum.
macro_rules! aggregate {
    ($aggregate:ty, $share:ty) => {
        impl $crate::protocol::Aggregate for $aggregate {
            type Share = $share;
            fn add(&mut self, share: &$share) -> Result<(), $crate::MheError> {
                <$aggregate>::add(self, share)
            }
            fn parties(&self) -> &$crate::party::Participants {
                <$aggregate>::parties(self)
            }
        }
    };
}

pub(crate) use {aggregate, wire_share};
