//! The node's durable record of what it agreed to and what it released, in an embedded database
//! (redb, `keys_dir/state.redb`).
//!
//! - **Agreements**: every proposal the node agreed to, so that a restarted node still serves a
//!   query it agreed to before (it re-checks the proposal against its current policy on start).
//! - **Released shares**: for every query it gave decryption shares for, a digest of the request
//!   and the shares themselves. Two independently smudged shares of one ciphertext average the
//!   smudging away, so a node computes shares for a query at most once: the same request again
//!   (a coordinator resuming after a restart) gets the *same* bytes back, which reveal nothing
//!   new; any other request for that query is refused. The record is committed (fsync) before
//!   the shares leave the node.
//! - **Contributions**: the contribution the node made for each query (ciphertexts and its
//!   signed commitment). A node contributes once per query: asked again (a coordinator
//!   resuming), it sends the same commitment, so it never commits to two different ones.
//! - **Rosters**: for each query, the one roster (list of contributions) the node signed, with
//!   its signature: a different roster for the query is refused for good.
//! - **Deployments**: every deployment the node pinned, by digest, with its collective key; and
//!   for each parameter set the one pinned now, which new queries must name.
//! - **Decrypted ciphertexts**: a digest of the `c₁` of every ciphertext the node gave a share
//!   of, so that no `c₁` ever gets a second share, whatever query it comes with.

use concord_api::v1::{Commitment, Deployment};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const AGREEMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agreements");
const RELEASED: TableDefinition<&str, &[u8]> = TableDefinition::new("released");
const CONTRIBUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("contributions");
const PRIVACY: TableDefinition<&str, &[u8]> = TableDefinition::new("privacy-ledger");
const ROSTERS: TableDefinition<&str, &[u8]> = TableDefinition::new("rosters");
const DEPLOYMENTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("deployments");
const PINNED: TableDefinition<&str, &[u8; 32]> = TableDefinition::new("pinned");
const DECRYPTED: TableDefinition<&[u8; 32], &str> = TableDefinition::new("decrypted-c1");
const EVALUATION_KEYS: TableDefinition<&[u8; 32], &[u8]> =
    TableDefinition::new("relinearization-keys");

/// A contribution as the node records it: its ciphertexts and its signed commitment (tag 3, as
/// in the records of earlier versions).
#[derive(Clone, PartialEq, prost::Message)]
pub struct RecordedContribution {
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub ciphertexts: Vec<Vec<u8>>,
    #[prost(message, optional, tag = "3")]
    pub commitment: Option<Commitment>,
}

/// A deployment the node pinned, with the collective key it recomputed.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PinnedRecord {
    #[prost(message, optional, tag = "1")]
    pub deployment: Option<Deployment>,
    /// The serialized collective public key.
    #[prost(bytes = "vec", tag = "2")]
    pub key: Vec<u8>,
}

/// A roster a node signed: its digest and the node's signature.
pub type SignedRoster = ([u8; 32], Vec<u8>);

/// What pinning a deployment found.
#[derive(Debug, PartialEq)]
pub enum Pinned {
    /// The parameter set had no pinned deployment.
    First,
    /// This very deployment was pinned already.
    Same,
    /// Another deployment was pinned for the set; this one replaces it for new queries.
    Replaced([u8; 32]),
}

/// A researcher's privacy spending at this node: the zCDP costs `(ξ, ρ)` of their DP queries
/// (which compose by addition), and the queries charged.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Spent {
    pub xi: f64,
    pub rho: f64,
    pub queries: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("node state: {0}")]
pub struct StateError(String);

fn err(e: impl std::fmt::Display) -> StateError {
    StateError(e.to_string())
}

/// What a released-share lookup found.
#[derive(Debug, PartialEq)]
pub enum Released {
    /// No shares were given for this query.
    Never,
    /// Shares were given for exactly this request: here they are again.
    Same(Vec<u8>),
    /// Shares were given for another request of this query.
    Other,
}

pub struct NodeState {
    db: Database,
}

impl NodeState {
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let db = Database::create(path).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        tx.open_table(AGREEMENTS).map_err(err)?;
        tx.open_table(RELEASED).map_err(err)?;
        tx.open_table(CONTRIBUTIONS).map_err(err)?;
        tx.open_table(PRIVACY).map_err(err)?;
        tx.open_table(ROSTERS).map_err(err)?;
        tx.open_table(DEPLOYMENTS).map_err(err)?;
        tx.open_table(PINNED).map_err(err)?;
        tx.open_table(DECRYPTED).map_err(err)?;
        tx.open_table(EVALUATION_KEYS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { db })
    }

    /// Pins the relinearization key of the deployment `digest` (one already pinned), durably.
    pub fn pin_relinearization_key(&self, digest: &[u8; 32], key: &[u8]) -> Result<(), StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(EVALUATION_KEYS)
            .map_err(err)?
            .insert(digest, key)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Whether a relinearization key is pinned for the deployment `digest`.
    pub fn has_relinearization_key(&self, digest: &[u8; 32]) -> Result<bool, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(EVALUATION_KEYS).map_err(err)?;
        Ok(table.get(digest).map_err(err)?.is_some())
    }

    /// The relinearization key pinned for the deployment `digest`, if any.
    pub fn relinearization_key(&self, digest: &[u8; 32]) -> Result<Option<Vec<u8>>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(EVALUATION_KEYS).map_err(err)?;
        let value = table.get(digest).map_err(err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Pins a deployment (digest and record) as the one for its parameter set, durably.
    pub fn pin(&self, digest: &[u8; 32], record: &PinnedRecord) -> Result<Pinned, StateError> {
        let set = record
            .deployment
            .as_ref()
            .map(|d| d.parameter_set.clone())
            .unwrap_or_default();
        let tx = self.db.begin_write().map_err(err)?;
        let pinned = {
            let mut pinned = tx.open_table(PINNED).map_err(err)?;
            let before = pinned.get(set.as_str()).map_err(err)?.map(|v| *v.value());
            tx.open_table(DEPLOYMENTS)
                .map_err(err)?
                .insert(digest, prost::Message::encode_to_vec(record).as_slice())
                .map_err(err)?;
            pinned.insert(set.as_str(), digest).map_err(err)?;
            match before {
                None => Pinned::First,
                Some(before) if &before == digest => Pinned::Same,
                Some(before) => Pinned::Replaced(before),
            }
        };
        tx.commit().map_err(err)?;
        Ok(pinned)
    }

    /// The digest of the deployment pinned now for a parameter set.
    pub fn pinned(&self, set: &str) -> Result<Option<[u8; 32]>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(PINNED).map_err(err)?;
        let value = table.get(set).map_err(err)?;
        Ok(value.map(|v| *v.value()))
    }

    /// A deployment the node pinned (now or before), by digest.
    pub fn deployment(&self, digest: &[u8; 32]) -> Result<Option<PinnedRecord>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(DEPLOYMENTS).map_err(err)?;
        let value = table.get(digest).map_err(err)?;
        value
            .map(|v| prost::Message::decode(v.value()).map_err(err))
            .transpose()
    }

    /// Records the roster this node signs for a query (its digest and the signature), durably —
    /// unless it signed one already, which is then returned instead.
    pub fn sign_roster(
        &self,
        query_id: &str,
        roster: &[u8; 32],
        signature: &[u8],
    ) -> Result<SignedRoster, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut table = tx.open_table(ROSTERS).map_err(err)?;
            if let Some(v) = table.get(query_id).map_err(err)? {
                return split_roster(v.value());
            }
            let value = [&roster[..], signature].concat();
            table.insert(query_id, value.as_slice()).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok((*roster, signature.to_vec()))
    }

    /// The roster this node signed for a query (digest and signature), if any.
    pub fn roster(&self, query_id: &str) -> Result<Option<SignedRoster>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ROSTERS).map_err(err)?;
        let value = table.get(query_id).map_err(err)?;
        value.map(|v| split_roster(v.value())).transpose()
    }

    /// The query a share of a ciphertext with this `c₁` digest was given for, if any.
    pub fn decrypted(&self, c1: &[u8; 32]) -> Result<Option<String>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(DECRYPTED).map_err(err)?;
        let value = table.get(c1).map_err(err)?;
        Ok(value.map(|v| v.value().to_owned()))
    }

    /// Records an agreement (the encoded proposal), durably.
    pub fn agree(&self, query_id: &str, proposal: &[u8]) -> Result<(), StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(AGREEMENTS)
            .map_err(err)?
            .insert(query_id, proposal)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// What `researcher` has spent at this node.
    pub fn spent(&self, researcher: &str, unit: &str) -> Result<Spent, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(PRIVACY).map_err(err)?;
        ledger(&table, researcher, unit)
    }

    /// Every ledger: (researcher, unit, spending). A ledger kept before ledgers were per unit
    /// has the unit `None`: it counts against every unit.
    pub fn ledgers(&self) -> Result<Vec<(String, Option<String>, Spent)>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(PRIVACY).map_err(err)?;
        let mut ledgers = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (key, value) = entry.map_err(err)?;
            let spent: Spent = serde_json::from_slice(value.value()).map_err(err)?;
            let (researcher, unit) = match key.value().split_once('\0') {
                Some((researcher, unit)) => (researcher.to_owned(), Some(unit.to_owned())),
                None => (key.value().to_owned(), None),
            };
            ledgers.push((researcher, unit, spent));
        }
        Ok(ledgers)
    }

    /// Charges `(xi, rho)` for `query` to `researcher`'s ledger of privacy `unit` ("event",
    /// "attribute", …: spending on one unit protects no other, so each has its own), durably
    /// and once per query, if `fits` accepts the new total; returns the total after, or `None`
    /// when it does not fit.
    pub fn charge(
        &self,
        researcher: &str,
        unit: &str,
        query: &str,
        (xi, rho): (f64, f64),
        fits: impl FnOnce(&Spent) -> bool,
    ) -> Result<Option<Spent>, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        let total = {
            let mut table = tx.open_table(PRIVACY).map_err(err)?;
            let mut spent = ledger(&table, researcher, unit)?;
            if spent.queries.iter().any(|q| q == query) {
                return Ok(Some(spent));
            }
            spent.xi += xi;
            spent.rho += rho;
            spent.queries.push(query.into());
            if !fits(&spent) {
                return Ok(None);
            }
            let bytes = serde_json::to_vec(&spent).map_err(err)?;
            table
                .insert(ledger_key(researcher, unit).as_str(), bytes.as_slice())
                .map_err(err)?;
            spent
        };
        tx.commit().map_err(err)?;
        Ok(Some(total))
    }

    /// The recorded agreement to a query (the encoded proposal), if any.
    pub fn agreement(&self, query_id: &str) -> Result<Option<Vec<u8>>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(AGREEMENTS).map_err(err)?;
        let value = table.get(query_id).map_err(err)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Every recorded agreement: (query id, encoded proposal).
    pub fn agreements(&self) -> Result<Vec<(String, Vec<u8>)>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(AGREEMENTS).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// Records the node's contribution to a query, durably — unless one is recorded already,
    /// which is then returned instead.
    pub fn contribute(
        &self,
        query_id: &str,
        contribution: &RecordedContribution,
    ) -> Result<RecordedContribution, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut table = tx.open_table(CONTRIBUTIONS).map_err(err)?;
            if let Some(v) = table.get(query_id).map_err(err)? {
                return prost::Message::decode(v.value()).map_err(err);
            }
            let bytes = prost::Message::encode_to_vec(contribution);
            table.insert(query_id, bytes.as_slice()).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(contribution.clone())
    }

    /// The node's recorded contribution to a query, if it made one.
    pub fn contribution(&self, query_id: &str) -> Result<Option<RecordedContribution>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(CONTRIBUTIONS).map_err(err)?;
        let value = table.get(query_id).map_err(err)?;
        value
            .map(|v| prost::Message::decode(v.value()).map_err(err))
            .transpose()
    }

    /// What was released for `query_id`, given the digest of the request now asked.
    pub fn released(&self, query_id: &str, digest: &[u8; 32]) -> Result<Released, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(RELEASED).map_err(err)?;
        Ok(match table.get(query_id).map_err(err)? {
            None => Released::Never,
            Some(v) if v.value().len() >= 32 && v.value()[..32] == digest[..] => {
                Released::Same(v.value()[32..].to_vec())
            }
            Some(_) => Released::Other,
        })
    }

    /// Records the shares released for a request, and the `c₁` digests of the ciphertexts they
    /// are of, durably in one transaction, unless shares were already recorded for the query
    /// (then what is recorded is returned, as [`NodeState::released`]). A `c₁` already in the
    /// ledger under another query is refused: `Err(query)` names that query.
    pub fn release(
        &self,
        query_id: &str,
        digest: &[u8; 32],
        shares: &[u8],
        c1s: &[[u8; 32]],
    ) -> Result<Result<Released, String>, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut ledger = tx.open_table(DECRYPTED).map_err(err)?;
            for c1 in c1s {
                if let Some(other) = ledger.get(c1).map_err(err)? {
                    if other.value() != query_id {
                        return Ok(Err(other.value().to_owned()));
                    }
                }
            }
            for c1 in c1s {
                ledger.insert(c1, query_id).map_err(err)?;
            }
            let mut table = tx.open_table(RELEASED).map_err(err)?;
            if let Some(v) = table.get(query_id).map_err(err)? {
                let v = v.value();
                return Ok(Ok(if v.len() >= 32 && v[..32] == digest[..] {
                    Released::Same(v[32..].to_vec())
                } else {
                    Released::Other
                }));
            }
            let mut value = digest.to_vec();
            value.extend_from_slice(shares);
            table.insert(query_id, value.as_slice()).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Ok(Released::Never))
    }
}

/// A researcher's ledger of one privacy unit: `researcher` NUL `unit`.
fn ledger_key(researcher: &str, unit: &str) -> String {
    format!("{researcher}\0{unit}")
}

/// A researcher's spending on one unit. A ledger written before ledgers were kept per unit
/// (keyed by the researcher alone) counts against every unit: nothing spent is forgotten.
fn ledger(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    researcher: &str,
    unit: &str,
) -> Result<Spent, StateError> {
    let value = match table
        .get(ledger_key(researcher, unit).as_str())
        .map_err(err)?
    {
        Some(v) => Some(v),
        None => table.get(researcher).map_err(err)?,
    };
    value.map_or(Ok(Spent::default()), |v| {
        serde_json::from_slice(v.value()).map_err(err)
    })
}

fn split_roster(value: &[u8]) -> Result<SignedRoster, StateError> {
    if value.len() < 32 {
        return Err(StateError("a recorded roster is truncated".into()));
    }
    let (digest, signature) = value.split_at(32);
    Ok((digest.try_into().expect("32 bytes"), signature.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreements_and_released_shares_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let state = NodeState::open(&path).unwrap();
            state.agree("q1", b"proposal").unwrap();
            assert_eq!(
                state
                    .release("q1", &[1; 32], b"shares", &[[5; 32]])
                    .unwrap(),
                Ok(Released::Never)
            );
        }
        let state = NodeState::open(&path).unwrap();
        // the privacy ledger: charged once per query, refused beyond what fits
        let fits = |s: &Spent| s.rho <= 0.25;
        assert!(state
            .charge("alice", "event", "q1", (0.0, 0.1), fits)
            .unwrap()
            .is_some());
        let again = state
            .charge("alice", "event", "q1", (0.0, 0.1), fits)
            .unwrap()
            .unwrap();
        assert_eq!(again.rho, 0.1, "charged twice");
        assert!(state
            .charge("alice", "event", "q2", (0.0, 0.1), fits)
            .unwrap()
            .is_some());
        assert_eq!(
            state
                .charge("alice", "event", "q3", (0.0, 0.1), fits)
                .unwrap(),
            None
        );
        assert_eq!(state.spent("bob", "event").unwrap(), Spent::default());
        // another unit has its own ledger
        assert_eq!(state.spent("alice", "attribute").unwrap(), Spent::default());
        assert!(state
            .charge("alice", "attribute", "q4", (0.0, 0.2), fits)
            .unwrap()
            .is_some());
        // one contribution per query: the first one stays
        let recorded = |b: u8| RecordedContribution {
            ciphertexts: vec![vec![b]],
            commitment: None,
        };
        assert_eq!(state.contribution("q1").unwrap(), None);
        assert_eq!(state.contribute("q1", &recorded(1)).unwrap(), recorded(1));
        assert_eq!(state.contribute("q1", &recorded(2)).unwrap(), recorded(1));
        // one roster per query
        assert_eq!(
            state.sign_roster("q1", &[3; 32], b"sig").unwrap(),
            ([3; 32], b"sig".to_vec())
        );
        assert_eq!(
            state.sign_roster("q1", &[4; 32], b"other").unwrap(),
            ([3; 32], b"sig".to_vec())
        );
        // deployments: first, same, replaced; every one kept by digest
        let record = |set: &str, key: u8| PinnedRecord {
            deployment: Some(Deployment {
                parameter_set: set.into(),
                ..Default::default()
            }),
            key: vec![key],
        };
        assert_eq!(state.pin(&[1; 32], &record("A", 1)).unwrap(), Pinned::First);
        assert_eq!(state.pin(&[1; 32], &record("A", 1)).unwrap(), Pinned::Same);
        assert_eq!(
            state.pin(&[2; 32], &record("A", 2)).unwrap(),
            Pinned::Replaced([1; 32])
        );
        assert_eq!(state.pin(&[3; 32], &record("B", 3)).unwrap(), Pinned::First);
        drop(state);
        let state = NodeState::open(&path).unwrap();
        assert_eq!(state.contribution("q1").unwrap().unwrap(), recorded(1));
        assert_eq!(state.roster("q1").unwrap().unwrap().0, [3; 32]);
        assert_eq!(state.roster("q2").unwrap(), None);
        assert_eq!(state.pinned("A").unwrap(), Some([2; 32]));
        assert_eq!(state.pinned("C").unwrap(), None);
        assert_eq!(state.deployment(&[1; 32]).unwrap(), Some(record("A", 1)));
        let spent = state.spent("alice", "event").unwrap();
        assert!((spent.rho - 0.2).abs() < 1e-12);
        assert_eq!(spent.queries, ["q1", "q2"]);
        assert_eq!(state.spent("alice", "attribute").unwrap().queries, ["q4"]);
        assert_eq!(
            state.agreements().unwrap(),
            vec![("q1".to_string(), b"proposal".to_vec())]
        );
        assert_eq!(
            state.released("q1", &[1; 32]).unwrap(),
            Released::Same(b"shares".to_vec())
        );
        assert_eq!(state.released("q1", &[2; 32]).unwrap(), Released::Other);
        assert_eq!(state.released("q2", &[1; 32]).unwrap(), Released::Never);
        // a second release for the query keeps the first
        assert_eq!(
            state.release("q1", &[2; 32], b"other", &[]).unwrap(),
            Ok(Released::Other)
        );
        assert_eq!(
            state.release("q1", &[1; 32], b"other", &[[5; 32]]).unwrap(),
            Ok(Released::Same(b"shares".to_vec()))
        );
        // a c₁ decrypted for q1 gets no share under any other query
        assert_eq!(state.decrypted(&[5; 32]).unwrap().as_deref(), Some("q1"));
        assert_eq!(
            state
                .release("q9", &[9; 32], b"s", &[[6; 32], [5; 32]])
                .unwrap(),
            Err("q1".into())
        );
        assert_eq!(state.decrypted(&[6; 32]).unwrap(), None, "all or nothing");
    }
}
