//! Threshold mode with real processes (T = 3 of N = 5): a deployment made by `concord demo`
//! started again with `threshold = 3` in the coordinator's configuration — refused by every
//! node until its operator sets `allow_threshold_mode` (off by default, issue 15) — so setup
//! adds the threshold key shares after the key is pinned. node-1's operator approves by hand, which holds every query
//! after the others agreed — the moment to kill nodes:
//!
//! 1. nodes 4 and 5 die after agreeing: they are left out, the query is released from the
//!    contributions and shares of nodes 1–3, exactly their pooled statistic, and the result
//!    names whose shares released it;
//! 2. a node whose threshold share belongs to another setup refuses to decrypt, and says why;
//! 3. node 3 dies too, after agreeing: two contributions remain, fewer than T, and the query
//!    fails cleanly, saying so.

#![cfg(unix)]

use concord_stats::{Template, Window, YearMonth};
use concord_system_tests::*;
use std::process::{Command, Output};

#[test]
fn three_of_five_release_with_two_nodes_dead_and_fail_cleanly_with_three() {
    let (work, _) = demo(5);
    edit_coordinator(work.path(), |config| {
        config.threshold = Some(3);
        config.node_timeout_s = 5.0;
    });
    edit_node(work.path(), "node-1", |config| {
        config.policy.approval = Approval::Manual;
    });
    // 0. threshold mode is off by default (issue 15): setup is refused, the query fails saying why
    let d = Deployment::start(work);
    let id = d.submit();
    let line = d.wait_listed(&id, "failed");
    assert!(line.contains("threshold mode (T = 3) is off"), "{line}");
    let Deployment { testbed, work, .. } = d;
    drop(testbed);
    // ...unless every operator allows it
    for i in 1..=5 {
        edit_node(work.path(), &format!("node-{i}"), |config| {
            config.policy.allow_threshold_mode = true;
        });
    }
    let mut d = Deployment::start(work);
    let approve = |id: &str| -> Output {
        Command::new(bin("concord-node"))
            .arg("--config")
            .arg(d.work.path().join("node-1.toml"))
            .args(["approvals", "approve", id])
            .output()
            .unwrap()
    };

    // 1. nodes 4 and 5 killed after agreeing
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    for i in 3..5 {
        d.testbed.stop_node(i);
    }
    assert!(approve(&id).status.success());
    d.wait_listed(&id, "released");
    let (result, released) = d.result_json(&id);
    let window = Window::new(YearMonth::parse("2025-01").unwrap(), 12).unwrap();
    let expected = pooled(
        d.work.path(),
        1..=3,
        Template::EventsByMonthTlpDistribution,
        &window,
    );
    assert!(expected.iter().any(|&v| v > 0));
    assert_eq!(released, expected);
    assert_eq!(result["contributors"].as_array().unwrap().len(), 3);
    assert_eq!(
        result["shares_from"],
        serde_json::json!(["node-1", "node-2", "node-3"])
    );
    let table = text(&d.query(&["result", &id]).stdout);
    assert!(
        table.contains("released by the shares of: node-1, node-2, node-3"),
        "{table}"
    );

    // a node whose threshold share belongs to another setup (as after a re-run setup it
    // missed: here its stored CRS seed is changed) refuses to decrypt, and says why
    let share = d.work.path().join("keys-node-1").join("ADD-8192.threshold");
    let kept = std::fs::read(&share).unwrap();
    let mut other = kept.clone();
    other[0] ^= 1;
    std::fs::write(&share, &other).unwrap();
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    assert!(approve(&id).status.success());
    let line = d.wait_listed(&id, "failed");
    assert!(
        line.contains("node-1") && line.contains("belongs to another setup"),
        "{line}"
    );
    std::fs::write(&share, &kept).unwrap();

    // 2. node 3 killed after agreeing as well: two contributions, fewer than T
    let id = d.submit();
    d.wait_listed(&id, "awaiting approval at node-1");
    d.testbed.stop_node(2);
    assert!(approve(&id).status.success());
    let line = d.wait_listed(&id, "failed");
    assert!(
        line.contains("2 contributions") && line.contains("threshold mode needs at least 3"),
        "{line}"
    );
}
