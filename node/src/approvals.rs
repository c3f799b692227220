//! Manual approval of queries by the node's operator (DESIGN.md §4 step 2): with
//! `approval = "manual"` in the policy, a proposal the policy admits is not agreed at once but
//! recorded here as *pending*; the operator lists pending queries and approves or denies each
//! (`concord-node approvals list|approve|deny`), and the node answers the coordinator's next
//! proposal of the query accordingly. A query left pending longer than `approval_timeout_s` is
//! refused.
//!
//! The store is its own small database (`keys_dir/approvals.redb`), apart from the node's
//! state, because two processes use it — the running node and the operator's command — and an
//! embedded database is open in one process at a time: each side opens it for one transaction
//! and closes it, waiting briefly while the other has it open.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const REQUESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("approval-requests");

#[derive(Debug, thiserror::Error)]
pub enum ApprovalError {
    #[error("approvals store {path}: {message}")]
    Store { path: PathBuf, message: String },
    #[error("no query {0:?} is waiting for approval at this node")]
    Unknown(String),
    #[error("query {query:?} was already {status} by {by}")]
    AlreadyDecided {
        query: String,
        status: &'static str,
        by: String,
    },
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    /// Not decided within the node's `approval_timeout_s`.
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
        }
    }
}

/// A query waiting for (or decided by) the operator: what they need to decide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub query: String,
    pub researcher: String,
    pub template: String,
    pub window: String,
    pub institutions: u32,
    /// "sealed" (to the researcher's key) or "public"
    pub release: String,
    pub cells: usize,
    /// Seconds since the Unix epoch.
    pub received_at: u64,
    pub status: Status,
    /// Who decided (the operator's name), and why.
    pub by: String,
    pub reason: String,
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub struct Approvals {
    path: PathBuf,
}

impl Approvals {
    pub fn new(path: &Path) -> Self {
        Self { path: path.into() }
    }

    fn fail(&self, e: impl std::fmt::Display) -> ApprovalError {
        ApprovalError::Store {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Opens the database, waiting up to 10 s while the other process has it open.
    fn open(&self) -> Result<Database, ApprovalError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match Database::create(&self.path) {
                Ok(db) => return Ok(db),
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Runs `change` on the request for `query` (absent: `None`) and stores what it returns,
    /// in one transaction; returns the stored request.
    fn update(
        &self,
        query: &str,
        change: impl FnOnce(Option<Request>) -> Result<Request, ApprovalError>,
    ) -> Result<Request, ApprovalError> {
        let db = self.open()?;
        let tx = db.begin_write().map_err(|e| self.fail(e))?;
        let request = {
            let mut table = tx.open_table(REQUESTS).map_err(|e| self.fail(e))?;
            let current = table
                .get(query)
                .map_err(|e| self.fail(e))?
                .map(|v| serde_json::from_slice::<Request>(v.value()))
                .transpose()
                .map_err(|e| self.fail(e))?;
            let request = change(current)?;
            let bytes = serde_json::to_vec(&request).map_err(|e| self.fail(e))?;
            table
                .insert(query, bytes.as_slice())
                .map_err(|e| self.fail(e))?;
            request
        };
        tx.commit().map_err(|e| self.fail(e))?;
        Ok(request)
    }

    /// The node's side: records `request` as pending unless the query is known; a pending
    /// request older than `timeout_s` becomes expired. Returns the request as it stands, and
    /// whether it is new.
    pub fn ask(&self, request: Request, timeout_s: u64) -> Result<(Request, bool), ApprovalError> {
        let mut new = false;
        let stored = self.update(&request.query.clone(), |current| {
            Ok(match current {
                None => {
                    new = true;
                    request
                }
                Some(mut r) => {
                    if r.status == Status::Pending && now() >= r.received_at + timeout_s {
                        r.status = Status::Expired;
                        r.by = "this node".into();
                        r.reason = format!("not decided within {timeout_s} s");
                    }
                    r
                }
            })
        })?;
        Ok((stored, new))
    }

    /// The operator's side: approves or denies a pending query.
    pub fn decide(
        &self,
        query: &str,
        approve: bool,
        by: &str,
        reason: &str,
    ) -> Result<Request, ApprovalError> {
        self.update(query, |current| {
            let mut r = current.ok_or_else(|| ApprovalError::Unknown(query.into()))?;
            if r.status != Status::Pending {
                return Err(ApprovalError::AlreadyDecided {
                    query: query.into(),
                    status: r.status.as_str(),
                    by: r.by,
                });
            }
            r.status = if approve {
                Status::Approved
            } else {
                Status::Denied
            };
            r.by = by.into();
            r.reason = reason.into();
            Ok(r)
        })
    }

    /// Every request, oldest first.
    pub fn list(&self) -> Result<Vec<Request>, ApprovalError> {
        if !self.path.exists() {
            return Ok(Vec::new());
        }
        let db = self.open()?;
        let tx = db.begin_read().map_err(|e| self.fail(e))?;
        let table = match tx.open_table(REQUESTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.fail(e)),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(|e| self.fail(e))? {
            let (_, v) = entry.map_err(|e| self.fail(e))?;
            out.push(serde_json::from_slice::<Request>(v.value()).map_err(|e| self.fail(e))?);
        }
        out.sort_by(|a, b| (a.received_at, &a.query).cmp(&(b.received_at, &b.query)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, received_at: u64) -> Request {
        Request {
            query: query.into(),
            researcher: "alice".into(),
            template: "time-to-publish".into(),
            window: "2025-01 +12".into(),
            institutions: 3,
            release: "sealed".into(),
            cells: 10,
            received_at,
            status: Status::Pending,
            by: String::new(),
            reason: String::new(),
        }
    }

    #[test]
    fn pending_until_decided_once_and_expired_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let approvals = Approvals::new(&dir.path().join("approvals.redb"));
        assert!(approvals.list().unwrap().is_empty());
        let (r, new) = approvals.ask(request("q1", now()), 60).unwrap();
        assert!(new);
        assert_eq!(r.status, Status::Pending);
        // asked again: still pending, not new
        let (r, new) = approvals.ask(request("q1", now()), 60).unwrap();
        assert!(!new);
        assert_eq!(r.status, Status::Pending);
        let r = approvals.decide("q1", true, "bob", "").unwrap();
        assert_eq!((r.status, r.by.as_str()), (Status::Approved, "bob"));
        assert_eq!(
            approvals.ask(request("q1", now()), 60).unwrap().0.status,
            Status::Approved
        );
        // decided once
        assert!(matches!(
            approvals.decide("q1", false, "eve", "no"),
            Err(ApprovalError::AlreadyDecided {
                status: "approved",
                ..
            })
        ));
        assert!(matches!(
            approvals.decide("q9", true, "bob", ""),
            Err(ApprovalError::Unknown(_))
        ));
        // denied with a reason
        approvals.ask(request("q2", now()), 60).unwrap();
        let r = approvals
            .decide("q2", false, "bob", "not this quarter")
            .unwrap();
        assert_eq!(
            (r.status, r.reason.as_str()),
            (Status::Denied, "not this quarter")
        );
        // expired: received long ago, asked again
        approvals.ask(request("q3", now() - 120), 60).unwrap();
        let (r, _) = approvals.ask(request("q3", now()), 60).unwrap();
        assert_eq!(r.status, Status::Expired);
        assert!(approvals.decide("q3", true, "bob", "").is_err());
        let listed: Vec<_> = approvals
            .list()
            .unwrap()
            .into_iter()
            .map(|r| r.query)
            .collect();
        assert_eq!(listed, ["q3", "q1", "q2"]);
    }
}
