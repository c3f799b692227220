//! Reading an institution's MISP data from disk: a **MISP feed directory** (`manifest.json` plus
//! one `<uuid>.json` per event) or a **directory of event exports** (any `*.json` below it, in
//! any of the shapes of [`crate::misp::parse_events`]).
//!
//! Nothing is silently dropped: every file that cannot be used is reported with its reason in
//! [`LoadReport::errors`] (an event that does not parse with every problem it has, each naming
//! its field; in a file of several events, each bad event on its own and the others used), manifest entries without a file and event files missing from the
//! manifest are reported, and an event seen twice (same uuid) is counted once and reported.

use crate::misp::{event_from_value, event_values, Event, EventError};
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

/// Why one file was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileProblem {
    #[error("cannot read: {0}")]
    Io(String),
    #[error(transparent)]
    Event(#[from] EventError),
    /// One event of a file that holds several: the others are used.
    #[error("event {index} of the file: {error}")]
    OneEvent { index: usize, error: EventError },
    #[error("listed in manifest.json but missing")]
    MissingFromFeed,
    #[error("event file not listed in manifest.json (ignored)")]
    NotInManifest,
    #[error("event {0} already read from another file (counted once)")]
    Duplicate(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub path: PathBuf,
    pub problem: FileProblem,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

/// What a load read, and what it could not use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub files_read: usize,
    pub events: usize,
    pub errors: Vec<FileError>,
}

/// An institution's events and the report of how they were read.
#[derive(Debug, Clone, Default)]
pub struct DataSet {
    pub events: Vec<Event>,
    pub report: LoadReport,
}

/// Why a data source cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: not a directory")]
    NotADirectory { path: PathBuf },
    #[error("{path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A feed directory if it holds `manifest.json`, otherwise a directory of exports.
pub fn load(dir: &Path) -> Result<DataSet, SourceError> {
    if dir.join("manifest.json").is_file() {
        load_feed(dir)
    } else {
        load_exports(dir)
    }
}

/// A MISP feed: the events listed in `manifest.json`, each from `<uuid>.json`.
pub fn load_feed(dir: &Path) -> Result<DataSet, SourceError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = std::fs::read(&manifest_path).map_err(|source| SourceError::Io {
        path: manifest_path.clone(),
        source,
    })?;
    let manifest: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
        .map_err(|e| SourceError::Manifest {
            path: manifest_path.clone(),
            reason: format!("not a MISP feed manifest (a JSON object keyed by event uuid): {e}"),
        })?;
    let listed: BTreeSet<&str> = manifest.keys().map(String::as_str).collect();
    let mut set = DataSet::default();
    let mut seen = HashSet::new();
    for uuid in &listed {
        let path = dir.join(format!("{uuid}.json"));
        if !path.is_file() {
            set.report.errors.push(FileError {
                path,
                problem: FileProblem::MissingFromFeed,
            });
            continue;
        }
        read_file(&path, &mut set, &mut seen);
    }
    for path in json_files(dir, false)? {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        if stem != "manifest" && !listed.contains(stem) {
            set.report.errors.push(FileError {
                path,
                problem: FileProblem::NotInManifest,
            });
        }
    }
    Ok(set)
}

/// Every `*.json` below `dir` (recursively), each holding one or more events.
pub fn load_exports(dir: &Path) -> Result<DataSet, SourceError> {
    let mut set = DataSet::default();
    let mut seen = HashSet::new();
    for path in json_files(dir, true)? {
        read_file(&path, &mut set, &mut seen);
    }
    Ok(set)
}

fn read_file(path: &Path, set: &mut DataSet, seen: &mut HashSet<String>) {
    set.report.files_read += 1;
    let problem = match std::fs::read(path) {
        Err(e) => FileProblem::Io(e.to_string()),
        Ok(bytes) => match values(&bytes) {
            Err(e) => e.into(),
            Ok(values) => {
                let several = values.len() > 1;
                for (i, value) in values.into_iter().enumerate() {
                    let event = match event_from_value(value) {
                        Ok(event) => event,
                        Err(error) => {
                            let problem = if several {
                                FileProblem::OneEvent {
                                    index: i + 1,
                                    error,
                                }
                            } else {
                                error.into()
                            };
                            set.report.errors.push(FileError {
                                path: path.to_owned(),
                                problem,
                            });
                            continue;
                        }
                    };
                    if let Some(uuid) = &event.uuid {
                        if !seen.insert(uuid.clone()) {
                            set.report.errors.push(FileError {
                                path: path.to_owned(),
                                problem: FileProblem::Duplicate(uuid.clone()),
                            });
                            continue;
                        }
                    }
                    set.report.events += 1;
                    set.events.push(event);
                }
                return;
            }
        },
    };
    set.report.errors.push(FileError {
        path: path.to_owned(),
        problem,
    });
}

/// The event objects of one file (any shape of [`crate::misp::event_values`], a byte-order
/// mark skipped), each to be checked on its own.
fn values(bytes: &[u8]) -> Result<Vec<serde_json::Value>, EventError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let value = serde_json::from_slice(bytes).map_err(|e| EventError::Json(e.to_string()))?;
    event_values(value)
}

/// `*.json` files in `dir` (and below it when `recursive`), sorted for a stable order.
fn json_files(dir: &Path, recursive: bool) -> Result<Vec<PathBuf>, SourceError> {
    if !dir.is_dir() {
        return Err(SourceError::NotADirectory {
            path: dir.to_owned(),
        });
    }
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| SourceError::Io {
            path: d.clone(),
            source,
        })?;
        for entry in entries {
            let path = entry
                .map_err(|source| SourceError::Io {
                    path: d.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                if recursive {
                    stack.push(path);
                }
            } else if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Where the project's real MISP test data lies: `$CONCORD_MISP_DATA`, or `shared/data/misp`
/// beside the checkout whose root is `workspace_root`. `None` (after saying so on stderr) when
/// it is absent, so that tests outside CI can skip *visibly*; CI's `.ci/run` fails instead.
pub fn test_data_dir(workspace_root: &Path) -> Option<PathBuf> {
    let dir = std::env::var_os("CONCORD_MISP_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root.join("../shared/data/misp"));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: no MISP test data at {} (set CONCORD_MISP_DATA)",
            dir.display()
        );
        None
    }
}
