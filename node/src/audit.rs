//! The node's audit log: one JSON line per decision the node took on a query — every proposal
//! (agreed or refused, with the reason), every contribution, every release of decryption or
//! key-switch shares and every refused release — so that an institution's security staff can
//! see what their node helped compute and for whom. Appended to `audit_log` (default
//! `keys_dir/audit.jsonl`); a release is synced to disk before its shares leave the node.
//! Never holds data values or key material.

use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

pub struct AuditLog {
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Appends `{"at": …, "event": event, …fields}`; `sync` forces it to disk first.
    pub fn record(&self, event: &str, fields: Value, sync: bool) -> std::io::Result<()> {
        let mut line = json!({
            "at": humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            "event": event,
        });
        if let (Some(line), Value::Object(fields)) = (line.as_object_mut(), fields) {
            line.extend(fields);
        }
        let mut file = self.file.lock().expect("audit lock");
        writeln!(file, "{line}")?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_appended_as_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        {
            let log = AuditLog::open(&path).unwrap();
            log.record("proposal", json!({"query": "q1", "agree": false}), false)
                .unwrap();
        }
        AuditLog::open(&path)
            .unwrap()
            .record("release", json!({"query": "q1"}), true)
            .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "proposal");
        assert_eq!(lines[0]["agree"], false);
        assert_eq!(lines[1]["event"], "release");
        assert!(lines[1]["at"].as_str().unwrap().ends_with('Z'));
    }
}
