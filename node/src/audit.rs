//! The node's audit log (DESIGN.md §5): one JSON line per decision the node took on a query —
//! every proposal (agreed or refused, with the reason, and who approved it), every contribution
//! (with the digest it signed), every verification of an aggregate, every release of decryption
//! or key-switch shares and every refused release — so that an institution's security staff can
//! see what their node helped compute and for whom. Never holds data values or key material.
//!
//! The log is append-only and **hash-chained**: every line carries `seq` (0, 1, 2, …) and `prev`,
//! the SHA-256 of the previous line's bytes (64 zeros for the first), so changing, inserting or
//! deleting any line breaks the link of the line after it. [`verify`] (`concord-node audit
//! verify`) walks the chain and reports the first broken link, and the head (last line's hash):
//! the chain alone cannot show that lines were cut off the *end*, so an operator who records
//! the head elsewhere (a ticket, a log server) can check that too. A release is synced to disk
//! before its shares leave the node.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

/// `prev` of the first line.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

fn line_hash(line: &str) -> String {
    hex(&Sha256::digest(line.as_bytes()))
}

/// Bytes in lower-case hex, as the audit log writes digests.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

struct Chain {
    file: std::fs::File,
    next_seq: u64,
    head: String,
}

pub struct AuditLog {
    chain: Mutex<Chain>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the audit log is broken at line {line}: {why}; not appending to it")]
    Broken { line: u64, why: String },
}

impl AuditLog {
    /// Opens (or creates) the log, checking the whole chain first: a node does not append to a
    /// log it cannot vouch for.
    pub fn open(path: &Path) -> Result<Self, AuditError> {
        let summary = if path.exists() {
            verify(path)?
        } else {
            Verified {
                lines: 0,
                head: GENESIS.into(),
                broken: None,
            }
        };
        if let Some((line, why)) = summary.broken {
            return Err(AuditError::Broken { line, why });
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            chain: Mutex::new(Chain {
                file,
                next_seq: summary.lines,
                head: summary.head,
            }),
        })
    }

    /// Appends `{"seq": …, "prev": …, "at": …, "event": event, …fields}`; `sync` forces it to
    /// disk first.
    pub fn record(&self, event: &str, fields: Value, sync: bool) -> std::io::Result<()> {
        let mut chain = self.chain.lock().expect("audit lock");
        let mut line = json!({
            "seq": chain.next_seq,
            "prev": chain.head,
            "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "event": event,
        });
        if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        let text = line.to_string();
        writeln!(chain.file, "{text}")?;
        if sync {
            chain.file.sync_data()?;
        }
        chain.next_seq += 1;
        chain.head = line_hash(&text);
        Ok(())
    }
}

/// What [`verify`] found.
#[derive(Debug)]
pub struct Verified {
    /// Lines read (up to the first broken one).
    pub lines: u64,
    /// The hash of the last good line ([`GENESIS`] for an empty log).
    pub head: String,
    /// The first broken line (1-based) and why.
    pub broken: Option<(u64, String)>,
}

/// Walks the chain of the log at `path`.
pub fn verify(path: &Path) -> std::io::Result<Verified> {
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut head = GENESIS.to_string();
    let mut lines = 0u64;
    for text in reader.lines() {
        let text = text?;
        let number = lines + 1;
        let broken = |why: String| Verified {
            lines,
            head: head.clone(),
            broken: Some((number, why)),
        };
        let entry: Value = match serde_json::from_str(&text) {
            Ok(entry) => entry,
            Err(e) => return Ok(broken(format!("not JSON ({e})"))),
        };
        if entry["seq"].as_u64() != Some(lines) {
            return Ok(broken(format!(
                "sequence number {} where {lines} was due",
                entry["seq"]
            )));
        }
        if entry["prev"].as_str() != Some(head.as_str()) {
            return Ok(broken(
                "its link does not match the line before it (that line, or this one, was changed, inserted or removed)"
                    .into(),
            ));
        }
        head = line_hash(&text);
        lines += 1;
    }
    Ok(Verified {
        lines,
        head,
        broken: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_log(path: &Path, n: usize) {
        let log = AuditLog::open(path).unwrap();
        for i in 0..n {
            log.record(
                "proposal",
                json!({"query": format!("q{i}"), "agree": i % 2 == 0}),
                false,
            )
            .unwrap();
        }
    }

    #[test]
    fn lines_are_chained_across_reopenings() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_log(&path, 2);
        AuditLog::open(&path)
            .unwrap()
            .record("release", json!({"query": "q1"}), true)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["prev"], GENESIS);
        assert_eq!(lines[1]["agree"], false);
        assert_eq!(lines[2]["seq"], 2);
        assert_eq!(lines[2]["event"], "release");
        assert_eq!(
            lines[2]["prev"],
            line_hash(text.lines().nth(1).unwrap()).as_str()
        );
        assert!(lines[2]["at"].as_str().unwrap().ends_with('Z'));
        let verified = verify(&path).unwrap();
        assert_eq!((verified.lines, verified.broken), (3, None));
        assert_eq!(verified.head, line_hash(text.lines().nth(2).unwrap()));
    }

    #[test]
    fn a_changed_removed_or_inserted_line_is_found_and_the_node_will_not_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write_log(&path, 5);
        let good = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = good.lines().collect();

        // one field of line 3 changed: the link of line 4 breaks
        let mut changed = lines.clone();
        let edited = lines[2].replace("\"agree\":true", "\"agree\":false");
        assert_ne!(edited, lines[2]);
        changed[2] = &edited;
        std::fs::write(&path, changed.join("\n") + "\n").unwrap();
        let (line, why) = verify(&path).unwrap().broken.unwrap();
        assert_eq!(line, 4, "{why}");
        assert!(matches!(
            AuditLog::open(&path),
            Err(AuditError::Broken { line: 4, .. })
        ));

        // line 2 removed: line 2 (formerly 3) has the wrong sequence number
        let mut removed = lines.clone();
        removed.remove(1);
        std::fs::write(&path, removed.join("\n") + "\n").unwrap();
        assert_eq!(verify(&path).unwrap().broken.unwrap().0, 2);

        // garbage inserted
        let mut inserted = lines.clone();
        inserted.insert(3, "{\"seq\":3}");
        std::fs::write(&path, inserted.join("\n") + "\n").unwrap();
        assert_eq!(verify(&path).unwrap().broken.unwrap().0, 4);
    }
}
