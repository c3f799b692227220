//! The coordinator's state in an embedded database (redb), so that a restart loses nothing:
//!
//! - **queries**: one record per query, rewritten at every phase change in its own
//!   transaction;
//! - **commitments, revealed contributions and partial sums**: the roster of a query (every
//!   contributor's commitment), each revealed contribution with its contributor's signature
//!   over the roster, and the running sum of those revealed. Each is written in the *same*
//!   transaction as the record naming the nodes it includes, so the two never disagree: after a
//!   crash, a resumed query asks only the nodes not yet acknowledged, and no contribution is
//!   lost or counted twice;
//! - **collective keys**: the collective public key of each parameter set, with the parties it
//!   was made for, so queries after a restart are encrypted under the same key;
//! - **recipient keys and sealed results**: a researcher's public key for a query whose result
//!   only they may read, and that result (the aggregate key-switched to the key), which the
//!   coordinator stores and serves but cannot read;
//! - **nodes**: the enrolled nodes (from the configuration and from enrolment calls), each
//!   with the party number it keeps for good.
//!
//! A query is released at most once: `released` is final, and its cells are served from here.

use concord_api::lifecycle::Phase;
use concord_api::v1::{QuerySpec, TrainingRound};
use concord_query::ReleaseMode;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Deserialize, Serialize};
use std::path::Path;

const QUERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("queries");
const PARTIAL_SUMS: TableDefinition<&str, &[u8]> = TableDefinition::new("partial-sums");
/// Query id → the signed commitments of the contributions summed (encoded `Commitment`s, in
/// the order of the record's `contributed`).
const COMMITMENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("commitments");
/// Revealed contributions, by (query, node): encoded `Contribution`s (ciphertexts and the
/// node's signature over the roster), kept until the query ends.
const REVEALED: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("revealed");
const COLLECTIVE_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("collective-keys");
/// Per parameter set: the deployment digest, then the relinearization key every node pinned.
const RELINEARIZATION_KEYS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("relinearization-keys");
const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const RECIPIENT_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("recipient-keys");
const SEALED_RESULTS: TableDefinition<&str, &[u8]> = TableDefinition::new("sealed-results");

/// A record's release mode, stored as before the mode had a type: `sealed: bool`.
mod release_mode {
    use concord_query::ReleaseMode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &ReleaseMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bool(*mode == ReleaseMode::Sealed)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ReleaseMode, D::Error> {
        Ok(match bool::deserialize(d)? {
            true => ReleaseMode::Sealed,
            false => ReleaseMode::Public,
        })
    }
}

/// Records written before the release mode was recorded were public.
fn sealed() -> ReleaseMode {
    ReleaseMode::Public
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A query as the coordinator remembers it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct QueryRecord {
    pub id: String,
    pub researcher: String,
    pub template: String,
    pub template_version: u32,
    pub window_first: String,
    pub window_months: u32,
    pub min_institutions: u32,
    /// Differential privacy asked (0: none).
    #[serde(default)]
    pub epsilon: f64,
    /// The researcher asked to publish the result to MISP (the nodes agreed to that).
    #[serde(default)]
    pub publish: bool,
    #[serde(default)]
    pub delta: f64,
    /// The researcher's signature over the query, and their certificate (DER) to check it.
    #[serde(default)]
    pub signature: Vec<u8>,
    #[serde(default)]
    pub researcher_certificate: Vec<u8>,
    /// The query's nonce and expiry, as signed (its id derives from them).
    #[serde(default)]
    pub nonce: Vec<u8>,
    #[serde(default)]
    pub expires_at: u64,
    /// An overlap query's bins per histogram (0: the template's own).
    #[serde(default)]
    pub bins: u32,
    /// A training template's round: the model and how it is trained (signed with the rest).
    #[serde(default)]
    pub training: Option<TrainingRecord>,
    /// Seconds since the Unix epoch.
    #[serde(default)]
    pub submitted_at: u64,
    /// Where the query is in its lifecycle (stored by name).
    pub phase: Phase,
    pub detail: String,
    /// Nodes asked to contribute.
    #[serde(default)]
    pub asked: u32,
    /// The nodes (name, party) the query was proposed to; a resumed query needs the same.
    #[serde(default)]
    pub parties: Vec<(String, u32)>,
    /// Nodes that agreed to the query (threshold mode: the others are left out).
    #[serde(default)]
    pub agreed: Vec<String>,
    /// The digest of the deployment (concord-api `deployment`) the query was proposed under.
    #[serde(default)]
    pub deployment: Vec<u8>,
    /// The roster: nodes that committed to a contribution, in roster order (their commitments
    /// are stored beside the record); fixed once the query leaves `contributing`.
    #[serde(default)]
    pub contributed: Vec<String>,
    /// Nodes of the roster whose revealed contribution is in the stored partial sum.
    #[serde(default)]
    pub revealed: Vec<String>,
    /// Nodes whose decryption (or key-switch) shares made the result.
    #[serde(default)]
    pub shares_from: Vec<String>,
    /// The result is for the researcher only (sealed to their key), or public.
    #[serde(rename = "sealed", default = "sealed", with = "release_mode")]
    pub release: ReleaseMode,
    /// Released cells of a public result, as decimal strings.
    pub cells: Vec<String>,
    pub institutions: u32,
    pub smudging_lambda: f64,
}

/// A round of training as stored (the wire's `TrainingRound`).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct TrainingRecord {
    pub model: Vec<f64>,
    pub learning_rate: f64,
    pub scale_bits: u32,
    pub round: u32,
    pub rounds: u32,
    #[serde(default)]
    pub objective: String,
}

impl From<TrainingRound> for TrainingRecord {
    fn from(t: TrainingRound) -> Self {
        Self {
            model: t.model,
            learning_rate: t.learning_rate,
            scale_bits: t.scale_bits,
            round: t.round,
            rounds: t.rounds,
            objective: t.objective,
        }
    }
}

impl From<TrainingRecord> for TrainingRound {
    fn from(t: TrainingRecord) -> Self {
        Self {
            model: t.model,
            learning_rate: t.learning_rate,
            scale_bits: t.scale_bits,
            round: t.round,
            rounds: t.rounds,
            objective: t.objective,
        }
    }
}

impl QueryRecord {
    /// A query just submitted.
    pub fn submitted(
        id: String,
        researcher: String,
        researcher_certificate: Vec<u8>,
        spec: QuerySpec,
    ) -> Self {
        Self {
            release: spec.release_mode(),
            signature: spec.signature,
            researcher_certificate,
            id,
            researcher,
            template: spec.template,
            template_version: spec.template_version,
            window_first: spec.window_first,
            window_months: spec.window_months,
            min_institutions: spec.min_institutions,
            epsilon: spec.epsilon,
            delta: spec.delta,
            publish: spec.publish,
            nonce: spec.nonce,
            expires_at: spec.expires_at,
            bins: spec.bins,
            training: spec.training.map(TrainingRecord::from),
            submitted_at: now(),
            phase: Phase::Submitted,
            ..Default::default()
        }
    }

    /// What the query asks (without its recipient key: see [`QueryStore::recipient_key`]).
    pub fn spec(&self) -> QuerySpec {
        QuerySpec {
            recipient_key: Vec::new(),
            signature: self.signature.clone(),
            template: self.template.clone(),
            template_version: self.template_version,
            window_first: self.window_first.clone(),
            window_months: self.window_months,
            min_institutions: self.min_institutions,
            epsilon: self.epsilon,
            delta: self.delta,
            publish: self.publish,
            nonce: self.nonce.clone(),
            expires_at: self.expires_at,
            bins: self.bins,
            training: self.training.clone().map(TrainingRound::from),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.phase.is_finished()
    }
}

/// A collective public key, the parties (node name, party number) it was made for, and its
/// threshold setup, if any.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredKey {
    pub parties: Vec<(String, u32)>,
    pub key: Vec<u8>,
    /// `T` of a threshold setup every party completed (0: all-party mode only).
    #[serde(default)]
    pub threshold: usize,
    /// The seed of the CRS the key was made with: it names the setup.
    #[serde(default)]
    pub crs_seed: Vec<u8>,
    /// The digest of the deployment every node pinned the key with (concord-api
    /// `deployment`); empty for a key made before nodes pinned keys, which is made again.
    #[serde(default)]
    pub deployment: Vec<u8>,
}

/// An enrolled node.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnrolledNode {
    pub url: String,
    pub party: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("query store: {0}")]
pub struct StoreError(String);

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

/// Serialized ciphertexts, length-prefixed (u32 little-endian), one after the other.
fn pack(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.iter().map(|i| i.len() + 4).sum());
    for item in items {
        out.extend_from_slice(&(item.len() as u32).to_le_bytes());
        out.extend_from_slice(item);
    }
    out
}

fn unpack(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| err("truncated partial sum"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            return Err(err("truncated partial sum"));
        }
        out.push(rest[..len].to_vec());
        bytes = &rest[len..];
    }
    Ok(out)
}

pub struct QueryStore {
    db: Database,
}

impl QueryStore {
    /// Opens (or creates) the database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let store = Self {
            db: Database::create(path).map_err(err)?,
        };
        let tx = store.db.begin_write().map_err(err)?;
        tx.open_table(QUERIES).map_err(err)?;
        tx.open_table(PARTIAL_SUMS).map_err(err)?;
        tx.open_table(COMMITMENTS).map_err(err)?;
        tx.open_table(REVEALED).map_err(err)?;
        tx.open_table(COLLECTIVE_KEYS).map_err(err)?;
        tx.open_table(RELINEARIZATION_KEYS).map_err(err)?;
        tx.open_table(NODES).map_err(err)?;
        tx.open_table(RECIPIENT_KEYS).map_err(err)?;
        tx.open_table(SEALED_RESULTS).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(store)
    }

    /// Writes `record` and whatever else `also` writes, in one durable transaction.
    fn write(
        &self,
        record: &QueryRecord,
        also: impl FnOnce(&WriteTransaction) -> Result<(), redb::Error>,
    ) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(QUERIES)
            .map_err(err)?
            .insert(record.id.as_str(), bytes.as_slice())
            .map_err(err)?;
        also(&tx).map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Writes a record durably (one transaction).
    pub fn put(&self, record: &QueryRecord) -> Result<(), StoreError> {
        self.write(record, |_| Ok(()))
    }

    /// Records a new query with its recipient key (empty for a public result).
    pub fn submit(&self, record: &QueryRecord, recipient_key: &[u8]) -> Result<(), StoreError> {
        self.write(record, |tx| {
            if !recipient_key.is_empty() {
                tx.open_table(RECIPIENT_KEYS)?
                    .insert(record.id.as_str(), recipient_key)?;
            }
            Ok(())
        })
    }

    /// The recipient key of a query whose result is sealed (empty otherwise).
    pub fn recipient_key(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(RECIPIENT_KEYS).map_err(err)?;
        let value = table.get(id).map_err(err)?;
        Ok(value.map(|v| v.value().to_vec()).unwrap_or_default())
    }

    /// A released sealed result (serialized ciphertexts under the recipient key), if any.
    pub fn sealed_result(&self, id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(SEALED_RESULTS).map_err(err)?;
        let value = table.get(id).map_err(err)?;
        value.map_or(Ok(Vec::new()), |v| unpack(v.value()))
    }

    pub fn get(&self, id: &str) -> Result<Option<QueryRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(QUERIES).map_err(err)?;
        let value = table.get(id).map_err(err)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(err))
            .transpose()
    }

    /// Every query, oldest first.
    pub fn all(&self) -> Result<Vec<QueryRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(QUERIES).map_err(err)?;
        let mut out: Vec<QueryRecord> = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (_, v) = entry.map_err(err)?;
            out.push(serde_json::from_slice(v.value()).map_err(err)?);
        }
        out.sort_by(|a, b| (a.submitted_at, &a.id).cmp(&(b.submitted_at, &b.id)));
        Ok(out)
    }

    /// Queries a previous run left unfinished, oldest first.
    pub fn unfinished(&self) -> Result<Vec<QueryRecord>, StoreError> {
        Ok(self
            .all()?
            .into_iter()
            .filter(|r| !r.is_finished())
            .collect())
    }

    /// Updates a record's phase (a transition of the lifecycle) and detail durably.
    pub fn set_phase(&self, id: &str, phase: Phase, detail: &str) -> Result<(), StoreError> {
        if let Some(mut r) = self.get(id)? {
            r.phase = r.phase.advance(phase).map_err(err)?;
            r.detail = detail.into();
            self.put(&r)?;
        }
        Ok(())
    }

    /// Acknowledges a commitment: the record (naming the nodes committed) and the commitments
    /// (encoded, in roster order), in one transaction.
    pub fn acknowledge(
        &self,
        record: &QueryRecord,
        commitments: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.write(record, |tx| {
            tx.open_table(COMMITMENTS)?
                .insert(record.id.as_str(), pack(commitments).as_slice())?;
            Ok(())
        })
    }

    /// Acknowledges a revealed contribution: the record (naming the nodes revealed), the
    /// contribution (encoded) and the new partial sum, in one transaction.
    pub fn acknowledge_reveal(
        &self,
        record: &QueryRecord,
        node: &str,
        contribution: &[u8],
        sum: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.write(record, |tx| {
            tx.open_table(REVEALED)?
                .insert((record.id.as_str(), node), contribution)?;
            tx.open_table(PARTIAL_SUMS)?
                .insert(record.id.as_str(), pack(sum).as_slice())?;
            Ok(())
        })
    }

    /// A query's revealed contributions (node, encoded `Contribution`).
    pub fn revealed(&self, id: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(REVEALED).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.range((id, "")..).map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            let (query, node) = k.value();
            if query != id {
                break;
            }
            out.push((node.to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }

    /// The commitments of a query's acknowledged contributions (encoded), in order.
    pub fn commitments(&self, id: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(COMMITMENTS).map_err(err)?;
        let value = table.get(id).map_err(err)?;
        value.map_or(Ok(Vec::new()), |v| unpack(v.value()))
    }

    /// The stored partial sum of a query (serialized ciphertexts), if any.
    pub fn partial_sum(&self, id: &str) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(PARTIAL_SUMS).map_err(err)?;
        let value = table.get(id).map_err(err)?;
        value.map(|v| unpack(v.value())).transpose()
    }

    /// Writes a final record (released or failed) with its sealed result, if any, and drops
    /// the query's partial sum and revealed contributions.
    pub fn finish(&self, record: &QueryRecord, sealed: &[Vec<u8>]) -> Result<(), StoreError> {
        self.write(record, |tx| {
            tx.open_table(PARTIAL_SUMS)?.remove(record.id.as_str())?;
            let mut revealed = tx.open_table(REVEALED)?;
            for node in &record.revealed {
                revealed.remove((record.id.as_str(), node.as_str()))?;
            }
            if !sealed.is_empty() {
                tx.open_table(SEALED_RESULTS)?
                    .insert(record.id.as_str(), pack(sealed).as_slice())?;
            }
            Ok(())
        })
    }

    /// Enrols a node, or updates its address: a node keeps its party number for good; a new
    /// one gets `party` if given (from the configuration), otherwise the next free number.
    pub fn enrol(&self, name: &str, url: &str, party: Option<u32>) -> Result<u32, StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        let party = {
            let mut table = tx.open_table(NODES).map_err(err)?;
            let mut taken = Vec::new();
            let mut known = None;
            for entry in table.iter().map_err(err)? {
                let (k, v) = entry.map_err(err)?;
                let node: EnrolledNode = serde_json::from_slice(v.value()).map_err(err)?;
                if k.value() == name {
                    known = Some(node.party);
                }
                taken.push((k.value().to_owned(), node.party));
            }
            let party = match (known, party) {
                (Some(kept), None) => kept,
                (_, Some(wanted)) => {
                    if let Some((other, _)) = taken.iter().find(|(n, p)| *p == wanted && n != name)
                    {
                        return Err(StoreError(format!(
                            "party {wanted} of {name} is already {other}'s"
                        )));
                    }
                    wanted
                }
                (None, None) => taken.iter().map(|(_, p)| *p).max().unwrap_or(0) + 1,
            };
            let node = EnrolledNode {
                url: url.to_owned(),
                party,
            };
            let bytes = serde_json::to_vec(&node).map_err(err)?;
            table.insert(name, bytes.as_slice()).map_err(err)?;
            party
        };
        tx.commit().map_err(err)?;
        Ok(party)
    }

    /// Every enrolled node (name, node), by party number.
    pub fn nodes(&self) -> Result<Vec<(String, EnrolledNode)>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(NODES).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (k, v) = entry.map_err(err)?;
            let node: EnrolledNode = serde_json::from_slice(v.value()).map_err(err)?;
            out.push((k.value().to_owned(), node));
        }
        out.sort_by_key(|(_, n)| n.party);
        Ok(out)
    }

    pub fn collective_key(&self, set: &str) -> Result<Option<StoredKey>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(COLLECTIVE_KEYS).map_err(err)?;
        let value = table.get(set).map_err(err)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(err))
            .transpose()
    }

    /// The relinearization key of the deployment `digest` of `set`, if its setup made one.
    pub fn relinearization_key(
        &self,
        set: &str,
        digest: &[u8; 32],
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(RELINEARIZATION_KEYS).map_err(err)?;
        let value = table.get(set).map_err(err)?;
        Ok(value.and_then(|v| {
            let v = v.value();
            (v.len() > 32 && &v[..32] == digest).then(|| v[32..].to_vec())
        }))
    }

    pub fn put_relinearization_key(
        &self,
        set: &str,
        digest: &[u8; 32],
        key: &[u8],
    ) -> Result<(), StoreError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(RELINEARIZATION_KEYS)
            .map_err(err)?
            .insert(set, [&digest[..], key].concat().as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn put_collective_key(&self, set: &str, key: &StoredKey) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(key).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(COLLECTIVE_KEYS)
            .map_err(err)?
            .insert(set, bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, phase: Phase) -> QueryRecord {
        QueryRecord {
            id: id.into(),
            researcher: "alice".into(),
            template: "time-to-publish".into(),
            template_version: 1,
            window_first: "2025-01".into(),
            window_months: 12,
            min_institutions: 3,
            phase,
            cells: vec!["1".into()],
            institutions: 4,
            smudging_lambda: 47.0,
            ..Default::default()
        }
    }

    #[test]
    fn records_partial_sums_and_keys_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let mut busy = record("busy", Phase::Verifying);
        busy.contributed = vec!["node-1".into(), "node-3".into()];
        busy.revealed = vec!["node-3".into()];
        let sum = vec![vec![1, 2, 3], vec![], vec![4; 1000]];
        let key = StoredKey {
            parties: vec![("node-1".into(), 1), ("node-2".into(), 2)],
            key: vec![9; 100],
            threshold: 2,
            crs_seed: vec![3; 32],
            deployment: vec![4; 32],
        };
        {
            let store = QueryStore::open(&path).unwrap();
            store.put(&record("done", Phase::Released)).unwrap();
            store.put(&record("busy", Phase::Proposed)).unwrap();
            store
                .acknowledge(&busy, &[vec![7; 40], vec![8; 41]])
                .unwrap();
            store
                .acknowledge_reveal(&busy, "node-3", &[6; 50], &sum)
                .unwrap();
            store.put(&record("busy-2", Phase::Proposed)).unwrap();
            store.put_collective_key("ADD-8192", &key).unwrap();
        }
        let store = QueryStore::open(&path).unwrap();
        assert_eq!(
            store.get("done").unwrap().unwrap(),
            record("done", Phase::Released)
        );
        assert_eq!(store.unfinished().unwrap()[0], busy);
        assert_eq!(store.partial_sum("busy").unwrap().unwrap(), sum);
        assert_eq!(
            store.revealed("busy").unwrap(),
            vec![("node-3".to_string(), vec![6; 50])]
        );
        assert!(store.revealed("busy-2").unwrap().is_empty());
        assert_eq!(
            store.commitments("busy").unwrap(),
            vec![vec![7; 40], vec![8; 41]]
        );
        assert!(store.commitments("done").unwrap().is_empty());
        assert_eq!(store.partial_sum("done").unwrap(), None);
        assert_eq!(store.collective_key("ADD-8192").unwrap().unwrap(), key);
        assert_eq!(store.collective_key("ADD-4096").unwrap(), None);
        assert!(store.get("nope").unwrap().is_none());
        assert_eq!(store.all().unwrap().len(), 3);
        // finishing drops the partial sum and the revealed contributions
        busy.phase = Phase::Released;
        store.finish(&busy, &[vec![5; 7]]).unwrap();
        assert_eq!(store.unfinished().unwrap().len(), 1);
        assert_eq!(store.partial_sum("busy").unwrap(), None);
        assert!(store.revealed("busy").unwrap().is_empty());
        assert_eq!(store.sealed_result("busy").unwrap(), vec![vec![5; 7]]);
        assert!(store.sealed_result("done").unwrap().is_empty());
        // a recipient key is kept beside its query
        let mut sealed = record("sealed", Phase::Submitted);
        sealed.release = ReleaseMode::Sealed;
        store.submit(&sealed, &[1, 2, 3]).unwrap();
        assert_eq!(store.recipient_key("sealed").unwrap(), vec![1, 2, 3]);
        assert!(store.recipient_key("done").unwrap().is_empty());
    }

    #[test]
    fn records_written_before_the_typed_lifecycle_still_read() {
        let old = r#"{"id":"q-1","researcher":"alice","template":"time-to-publish",
            "template_version":1,"window_first":"2025-01","window_months":12,
            "min_institutions":3,"phase":"decrypting","detail":"","cells":[],
            "institutions":0,"events_covered":0,"smudging_lambda":0.0,"sealed":true}"#;
        let record: QueryRecord = serde_json::from_str(old).unwrap();
        assert_eq!(
            (record.phase, record.release),
            (Phase::Decrypting, ReleaseMode::Sealed)
        );
        // without `sealed` (older still): a public result
        let older = old.replace(r#","sealed":true"#, "");
        let record: QueryRecord = serde_json::from_str(&older).unwrap();
        assert_eq!(record.release, ReleaseMode::Public);
        // and written back the same way
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(
            (json["phase"].as_str(), json["sealed"].as_bool()),
            (Some("decrypting"), Some(false))
        );
        assert!(
            serde_json::from_str::<QueryRecord>(&old.replace("decrypting", "decrypted")).is_err()
        );
    }

    #[test]
    fn enrolled_nodes_keep_their_party_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = QueryStore::open(&path).unwrap();
            assert_eq!(store.enrol("node-a", "https://a:1", Some(3)).unwrap(), 3);
            assert_eq!(store.enrol("node-b", "https://b:1", None).unwrap(), 4);
            assert!(store.enrol("node-c", "https://c:1", Some(4)).is_err());
        }
        let store = QueryStore::open(&path).unwrap();
        // a new address keeps the party number
        assert_eq!(store.enrol("node-b", "https://b:2", None).unwrap(), 4);
        assert_eq!(store.enrol("node-c", "https://c:1", None).unwrap(), 5);
        let nodes = store.nodes().unwrap();
        let summary: Vec<(&str, &str, u32)> = nodes
            .iter()
            .map(|(n, e)| (n.as_str(), e.url.as_str(), e.party))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("node-a", "https://a:1", 3),
                ("node-b", "https://b:2", 4),
                ("node-c", "https://c:1", 5)
            ]
        );
    }

    #[test]
    fn a_truncated_partial_sum_is_an_error() {
        assert_eq!(
            unpack(&pack(&[vec![7; 10], vec![8]])).unwrap(),
            vec![vec![7; 10], vec![8]]
        );
        let packed = pack(&[vec![7; 10]]);
        assert!(unpack(&packed[..8]).is_err());
        assert!(unpack(&packed[..2]).is_err());
    }
}
