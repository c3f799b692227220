//! The node's record of the queries it gave decryption shares for. Two independently smudged
//! shares of one ciphertext average the smudging away, so a node gives shares for a query at
//! most once — across restarts: the query id is appended and synced to disk *before* any share
//! leaves the node.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct ShareLedger {
    path: PathBuf,
    released: Mutex<HashSet<String>>,
}

impl ShareLedger {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let released = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashSet::new(),
            Err(e) => return Err(e),
        };
        Ok(Self {
            path: path.into(),
            released: Mutex::new(released),
        })
    }

    /// Records `query_id`; `Ok(false)` if shares were already given for it.
    pub fn record(&self, query_id: &str) -> std::io::Result<bool> {
        let mut released = self.released.lock().expect("ledger lock");
        if released.contains(query_id) {
            return Ok(false);
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        writeln!(f, "{query_id}")?;
        f.sync_all()?;
        released.insert(query_id.to_owned());
        Ok(true)
    }
}
