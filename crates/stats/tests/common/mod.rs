//! What the real-data tests share: where the MISP data is, and its groups.

use std::path::{Path, PathBuf};

pub fn data_dir() -> Option<PathBuf> {
    concord_stats::test_data_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The data's groups, as SOURCES.md documents them.
pub const GROUPS: &[&str] = &[
    "feed-tweetfeed",
    "feed-infoblox",
    "events/eset",
    "events/pymisp",
    "events/misp-training",
];

/// Every JSON file under `dir`.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|e| e == "json")
            && p.file_name().unwrap() != "manifest.json"
        {
            out.push(p);
        }
    }
    out
}
