//! The coordinator's state in an embedded database (redb): one record per query, written at
//! every phase change in its own transaction, so that a restart finds every query where it was.
//! A query caught in flight by a restart is failed cleanly on start-up — nothing is released
//! for it, and the nodes' share ledgers make sure no aggregate is ever decrypted twice.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::Path;

const QUERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("queries");

/// A query as the coordinator remembers it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct QueryRecord {
    pub id: String,
    pub researcher: String,
    pub template: String,
    pub template_version: u32,
    pub window_first: String,
    pub window_months: u32,
    pub min_institutions: u32,
    /// submitted, proposed, contributing, decrypting, released, failed
    pub phase: String,
    pub detail: String,
    /// Released cells, as decimal strings.
    pub cells: Vec<String>,
    pub institutions: u32,
    pub events_covered: u64,
    pub smudging_lambda: f64,
}

impl QueryRecord {
    pub fn is_finished(&self) -> bool {
        self.phase == "released" || self.phase == "failed"
    }
}

#[derive(Debug, thiserror::Error)]
#[error("query store: {0}")]
pub struct StoreError(String);

fn err(e: impl std::fmt::Display) -> StoreError {
    StoreError(e.to_string())
}

pub struct QueryStore {
    db: Database,
}

impl QueryStore {
    /// Opens (or creates) the database and fails every query a previous run left unfinished.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let store = Self {
            db: Database::create(path).map_err(err)?,
        };
        let tx = store.db.begin_write().map_err(err)?;
        tx.open_table(QUERIES).map_err(err)?;
        tx.commit().map_err(err)?;
        for mut record in store.all()? {
            if !record.is_finished() {
                record.detail = format!(
                    "the coordinator restarted while the query was {}; nothing was released",
                    record.phase
                );
                record.phase = "failed".into();
                store.put(&record)?;
            }
        }
        Ok(store)
    }

    /// Writes a record durably (one transaction).
    pub fn put(&self, record: &QueryRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(record).map_err(err)?;
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(QUERIES)
            .map_err(err)?
            .insert(record.id.as_str(), bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn get(&self, id: &str) -> Result<Option<QueryRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(QUERIES).map_err(err)?;
        let value = table.get(id).map_err(err)?;
        value
            .map(|v| serde_json::from_slice(v.value()).map_err(err))
            .transpose()
    }

    pub fn all(&self) -> Result<Vec<QueryRecord>, StoreError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(QUERIES).map_err(err)?;
        let mut out = Vec::new();
        for entry in table.iter().map_err(err)? {
            let (_, v) = entry.map_err(err)?;
            out.push(serde_json::from_slice(v.value()).map_err(err)?);
        }
        Ok(out)
    }

    /// Updates a record's phase and detail durably.
    pub fn set_phase(&self, id: &str, phase: &str, detail: &str) -> Result<(), StoreError> {
        if let Some(mut r) = self.get(id)? {
            r.phase = phase.into();
            r.detail = detail.into();
            self.put(&r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, phase: &str) -> QueryRecord {
        QueryRecord {
            id: id.into(),
            researcher: "alice".into(),
            template: "time-to-publish".into(),
            template_version: 1,
            window_first: "2025-01".into(),
            window_months: 12,
            min_institutions: 3,
            phase: phase.into(),
            detail: String::new(),
            cells: vec!["1".into()],
            institutions: 4,
            events_covered: 10,
            smudging_lambda: 47.0,
        }
    }

    #[test]
    fn records_survive_a_restart_and_unfinished_queries_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = QueryStore::open(&path).unwrap();
            store.put(&record("done", "released")).unwrap();
            store.put(&record("busy", "contributing")).unwrap();
            store.set_phase("busy", "decrypting", "").unwrap();
        }
        let store = QueryStore::open(&path).unwrap();
        assert_eq!(
            store.get("done").unwrap().unwrap(),
            record("done", "released")
        );
        let busy = store.get("busy").unwrap().unwrap();
        assert_eq!(busy.phase, "failed");
        assert!(
            busy.detail
                .contains("restarted while the query was decrypting"),
            "{}",
            busy.detail
        );
        assert!(store.get("nope").unwrap().is_none());
        assert_eq!(store.all().unwrap().len(), 2);
    }
}
