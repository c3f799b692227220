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
//! - **Contributions**: the contribution the node gave for each query (ciphertexts and its
//!   signed commitment). A node contributes once per query: asked again (a coordinator
//!   resuming), it sends the same contribution, so it never commits to two different ones;
//!   and it evaluates its fingerprint for aggregate verification on exactly what it committed.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;

const AGREEMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("agreements");
const RELEASED: TableDefinition<&str, &[u8]> = TableDefinition::new("released");
const CONTRIBUTIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("contributions");
const PRIVACY: TableDefinition<&str, &[u8]> = TableDefinition::new("privacy-ledger");

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
        tx.commit().map_err(err)?;
        Ok(Self { db })
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
    pub fn spent(&self, researcher: &str) -> Result<Spent, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(PRIVACY).map_err(err)?;
        let value = table.get(researcher).map_err(err)?;
        value.map_or(Ok(Spent::default()), |v| {
            serde_json::from_slice(v.value()).map_err(err)
        })
    }

    /// Charges `(xi, rho)` for `query` to `researcher`, durably and once per query, if `fits`
    /// accepts the new total; returns the total after, or `None` when it does not fit.
    pub fn charge(
        &self,
        researcher: &str,
        query: &str,
        (xi, rho): (f64, f64),
        fits: impl FnOnce(&Spent) -> bool,
    ) -> Result<Option<Spent>, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        let total = {
            let mut table = tx.open_table(PRIVACY).map_err(err)?;
            let mut spent: Spent = match table.get(researcher).map_err(err)? {
                Some(v) => serde_json::from_slice(v.value()).map_err(err)?,
                None => Spent::default(),
            };
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
            table.insert(researcher, bytes.as_slice()).map_err(err)?;
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

    /// Records the node's contribution to a query (encoded), durably — unless one is recorded
    /// already, which is then returned instead.
    pub fn contribute(&self, query_id: &str, contribution: &[u8]) -> Result<Vec<u8>, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut table = tx.open_table(CONTRIBUTIONS).map_err(err)?;
            if let Some(v) = table.get(query_id).map_err(err)? {
                return Ok(v.value().to_vec());
            }
            table.insert(query_id, contribution).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(contribution.to_vec())
    }

    /// The node's recorded contribution to a query, if it gave one.
    pub fn contribution(&self, query_id: &str) -> Result<Option<Vec<u8>>, StateError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(CONTRIBUTIONS).map_err(err)?;
        let value = table.get(query_id).map_err(err)?;
        Ok(value.map(|v| v.value().to_vec()))
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

    /// Records the shares released for a request, durably, unless shares were already
    /// recorded for the query (then what is recorded is returned, as [`NodeState::released`]).
    pub fn release(
        &self,
        query_id: &str,
        digest: &[u8; 32],
        shares: &[u8],
    ) -> Result<Released, StateError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut table = tx.open_table(RELEASED).map_err(err)?;
            if let Some(v) = table.get(query_id).map_err(err)? {
                let v = v.value();
                return Ok(if v.len() >= 32 && v[..32] == digest[..] {
                    Released::Same(v[32..].to_vec())
                } else {
                    Released::Other
                });
            }
            let mut value = digest.to_vec();
            value.extend_from_slice(shares);
            table.insert(query_id, value.as_slice()).map_err(err)?;
        }
        tx.commit().map_err(err)?;
        Ok(Released::Never)
    }
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
                state.release("q1", &[1; 32], b"shares").unwrap(),
                Released::Never
            );
        }
        let state = NodeState::open(&path).unwrap();
        // the privacy ledger: charged once per query, refused beyond what fits
        let fits = |s: &Spent| s.rho <= 0.25;
        assert!(state
            .charge("alice", "q1", (0.0, 0.1), fits)
            .unwrap()
            .is_some());
        let again = state
            .charge("alice", "q1", (0.0, 0.1), fits)
            .unwrap()
            .unwrap();
        assert_eq!(again.rho, 0.1, "charged twice");
        assert!(state
            .charge("alice", "q2", (0.0, 0.1), fits)
            .unwrap()
            .is_some());
        assert_eq!(state.charge("alice", "q3", (0.0, 0.1), fits).unwrap(), None);
        assert_eq!(state.spent("bob").unwrap(), Spent::default());
        // one contribution per query: the first one stays
        assert_eq!(state.contribution("q1").unwrap(), None);
        assert_eq!(state.contribute("q1", b"first").unwrap(), b"first");
        assert_eq!(state.contribute("q1", b"second").unwrap(), b"first");
        drop(state);
        let state = NodeState::open(&path).unwrap();
        assert_eq!(state.contribution("q1").unwrap().unwrap(), b"first");
        let spent = state.spent("alice").unwrap();
        assert!((spent.rho - 0.2).abs() < 1e-12);
        assert_eq!(spent.queries, ["q1", "q2"]);
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
            state.release("q1", &[2; 32], b"other").unwrap(),
            Released::Other
        );
        assert_eq!(
            state.release("q1", &[1; 32], b"other").unwrap(),
            Released::Same(b"shares".to_vec())
        );
    }
}
