//! Shared pieces of Concord's benchmarks: reading criterion's estimates back to print tables,
//! the generated institutions of the process harnesses (`e2e`, `load`), and a process's CPU
//! time and peak memory read from `/proc`.

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

/// Events in each generated institution's feed.
pub const EVENTS_PER_INSTITUTION: usize = 150;

/// `nodes` institutions `node-1` … `node-N`, each with a MISP feed from the project's generator
/// under `dir/data/NAME` (`EVENTS_PER_INSTITUTION` events over `months` from `first`, 30% of
/// them its own, the rest received from the others; seeds from `seed`).
pub fn generated_institutions(
    dir: &Path,
    nodes: usize,
    first: concord_stats::YearMonth,
    months: u16,
    seed: u64,
) -> Vec<concord_testbed::Institution> {
    use concord_stats::generator::{organisation_uuid, write_feed, Profile};
    let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
    let orgs: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), organisation_uuid(n)))
        .collect();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let data = dir.join("data").join(name);
            write_feed(
                &data,
                &Profile {
                    name: name.clone(),
                    organisation_uuid: organisation_uuid(name),
                    events: EVENTS_PER_INSTITUTION,
                    own_share: 0.3,
                    peers: orgs.iter().filter(|(o, _)| o != name).cloned().collect(),
                    first,
                    months,
                    seed: seed + i as u64,
                },
            )
            .expect("the generated feed is written");
            let mut institution = concord_testbed::Institution::new(name.clone(), data);
            institution.organisation_uuids = vec![organisation_uuid(name)];
            institution
        })
        .collect()
}

/// CPU time of every thread of a process, and its resident-set high-water mark.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub cpu: std::time::Duration,
    pub peak_kib: u64,
}

/// A process's [`Usage`] now, from `/proc/<pid>/task/*/schedstat` and `VmHWM`.
pub fn usage(pid: u32) -> Usage {
    let mut cpu = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) {
                cpu += s
                    .split_whitespace()
                    .next()
                    .and_then(|x| x.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    let peak_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    Usage {
        cpu: std::time::Duration::from_nanos(cpu),
        peak_kib,
    }
}

/// The parties of a simulated community: their secret keys, the collective public key made by
/// CKG from their shares (each serialized as it would travel), and the bytes of one share.
pub fn simulated_community(
    params: &std::sync::Arc<concord_bfv::BfvParameters>,
    parties: &[concord_mhe::PartyId],
) -> (Vec<concord_bfv::SecretKey>, concord_bfv::PublicKey, usize) {
    use concord_mhe::protocol::Protocol;
    let crs = concord_mhe::CommonReferenceString::random();
    let keys: Vec<concord_bfv::SecretKey> = parties
        .iter()
        .map(|_| concord_bfv::SecretKey::generate(params))
        .collect();
    let ckg = concord_mhe::PublicKeyGen::new(params, &crs);
    let mut agg = ckg.aggregator();
    let mut share_bytes = 0;
    for (sk, &p) in keys.iter().zip(parties) {
        let share = ckg.share(sk, p).unwrap();
        share_bytes = share.to_bytes().len();
        agg.add(&share).unwrap();
    }
    let pk = ckg.finish(&agg, parties).unwrap();
    (keys, pk, share_bytes)
}
