//! Party identifiers and the bookkeeping every aggregation shares: each party contributes at
//! most once, and an output is produced only from exactly the expected parties.

use crate::MheError;
use std::collections::BTreeSet;

/// A party (an institution's node) in a protocol run. In threshold mode the parties are numbered
/// `1..N` ([`crate::threshold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartyId(pub u32);

impl std::fmt::Display for PartyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// The parties whose shares an aggregate holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Participants(BTreeSet<PartyId>);

impl Participants {
    /// Record `party`; a second share from the same party is refused.
    pub fn admit(&mut self, party: PartyId) -> Result<(), MheError> {
        if self.0.insert(party) {
            Ok(())
        } else {
            Err(MheError::DuplicateShare(party))
        }
    }

    /// Succeeds only if exactly `expected` contributed.
    pub fn check_exactly(&self, expected: &[PartyId]) -> Result<(), MheError> {
        let expected: BTreeSet<PartyId> = expected.iter().copied().collect();
        if let Some(&extra) = self.0.difference(&expected).next() {
            return Err(MheError::UnexpectedShare(extra));
        }
        let missing: Vec<PartyId> = expected.difference(&self.0).copied().collect();
        if !missing.is_empty() {
            return Err(MheError::MissingShares(missing));
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = PartyId> + '_ {
        self.0.iter().copied()
    }
}
