//! Node governance with real processes: a deployment made by `concord demo` is started again
//! with node-3's operator approving queries by hand (`approval = "manual"`). A query waits,
//! and the researcher sees whom it waits for, until the operator approves it with
//! `concord-node approvals approve`; a denied query fails with the operator's reason; a query
//! nobody decides is refused after the node's `approval_timeout_s`; every decision is in
//! node-3's audit log with who took it.

#![cfg(unix)]

mod common;
use common::*;
use std::process::{Command, Output};
use std::time::Duration;

#[test]
fn a_node_operator_approves_or_denies_queries_by_hand() {
    let (work, _) = demo(3);
    Deployment::edit(work.path(), "node-3.toml", |config| {
        config.replace(
            "[policy]\n",
            "[policy]\napproval = \"manual\"\napproval_timeout_s = 15\n",
        )
    });
    let d = Deployment::start(work, 3);
    let operator = |args: &[&str]| -> Output {
        Command::new(bin("concord-node"))
            .arg("--config")
            .arg(d.work.path().join("node-3.toml"))
            .args(args)
            .output()
            .unwrap()
    };

    // pending: the researcher sees whom the query waits for; the operator sees the query
    let approved = d.submit();
    d.wait_listed(&approved, "proposed (awaiting approval at node-3)");
    let pending = operator(&["approvals", "list"]);
    let listing = text(&pending.stdout);
    assert!(pending.status.success(), "{}", text(&pending.stderr));
    assert!(
        listing.contains(&approved)
            && listing.contains("pending")
            && listing.contains("researcher researcher")
            && listing.contains("events-by-month-tlp-distribution v1")
            && listing.contains("sealed"),
        "{listing}"
    );
    // nothing moves until the operator decides
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        d.listed(&approved).contains("proposed"),
        "{}",
        d.listed(&approved)
    );
    let out = operator(&["approvals", "approve", &approved, "--by", "bob"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("approved by bob"));
    d.wait_listed(&approved, "released");
    let result = d.query(&["result", &approved, "--csv"]);
    assert!(result.status.success(), "{}", text(&result.stderr));
    assert!(text(&result.stdout).lines().count() > 1);

    // denied: the researcher sees the operator's reason; a decision is final
    let denied = d.submit();
    d.wait_listed(&denied, "awaiting approval at node-3");
    let out = operator(&[
        "approvals",
        "deny",
        &denied,
        "--reason",
        "not during the incident",
        "--by",
        "bob",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = d.wait_listed(&denied, "failed");
    assert!(
        line.contains("denied-by-operator") && line.contains("not during the incident"),
        "{line}"
    );
    let again = operator(&["approvals", "approve", &denied]);
    assert!(!again.status.success());
    assert!(
        text(&again.stderr).contains("already denied by bob"),
        "{}",
        text(&again.stderr)
    );
    let unknown = operator(&["approvals", "approve", "q-nope"]);
    assert!(!unknown.status.success());

    // undecided: refused once the node's approval timeout (15 s) has passed
    let expired = d.submit();
    d.wait_listed(&expired, "awaiting approval at node-3");
    let line = d.wait_listed(&expired, "failed");
    assert!(line.contains("approval-timed-out"), "{line}");
    let all = text(&operator(&["approvals", "list", "--all"]).stdout);
    assert!(all.contains(&format!("{expired}  expired")), "{all}");
    assert!(
        !text(&operator(&["approvals", "list"]).stdout).contains(&expired),
        "only pending queries are listed by default"
    );

    // node-3's audit log: pending once, then the operator's decisions, with who took them
    let audit: Vec<serde_json::Value> =
        std::fs::read_to_string(d.work.path().join("keys-node-3").join("audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    let proposals = |id: &str| -> Vec<&serde_json::Value> {
        audit
            .iter()
            .filter(|e| e["event"] == "proposal" && e["query"] == id)
            .collect()
    };
    let decisions = proposals(&approved);
    assert_eq!(decisions.len(), 2, "{decisions:?}");
    assert_eq!(decisions[0]["pending"], true);
    assert_eq!(decisions[1]["agree"], true);
    assert_eq!(decisions[1]["approved_by"], "bob");
    let decisions = proposals(&denied);
    assert_eq!(decisions[1]["reason"], "denied-by-operator");
    assert_eq!(proposals(&expired)[1]["reason"], "approval-timed-out");
}
