//! Shared pieces of Concord's benchmarks: reading criterion's estimates back to print tables.

use std::path::{Path, PathBuf};

/// Where criterion writes its estimates for this build.
pub fn criterion_dir(target_tmpdir: &str) -> PathBuf {
    Path::new(target_tmpdir)
        .parent()
        .expect("target dir")
        .join("criterion")
}

/// The median time in nanoseconds criterion measured for `group/id`, if it ran.
pub fn median_ns(dir: &Path, group: &str, id: &str) -> Option<f64> {
    let path = dir.join(group).join(id).join("new").join("estimates.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// `1234567 ns` as `1.23 ms`.
pub fn human(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}
