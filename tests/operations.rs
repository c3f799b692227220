//! Running Concord as a service: the operations endpoint of the coordinator and of every node
//! (Prometheus metrics that count what happened, readiness, the operator's views), the
//! researcher's and the operator's view of privacy budgets, the limit of queries in flight per
//! researcher, and a node reading its MISP data again while it runs.

use concord_system_tests::*;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

fn coordinator_operations(work: &std::path::Path) -> SocketAddr {
    CoordinatorConfig::load(&work.join("coordinator.toml"))
        .unwrap()
        .operations
        .expect("the testbed gives the coordinator an operations endpoint")
        .listen
}

fn node_operations(work: &std::path::Path, name: &str) -> SocketAddr {
    node_config(work, name)
        .operations
        .expect("the testbed gives every node an operations endpoint")
        .listen
}

fn metrics(addr: SocketAddr) -> String {
    let (code, body) = http_get(addr, "/metrics");
    assert_eq!(code, 200, "{body}");
    body
}

/// Runs an operator's command (`concord-coordinator` or `concord-node`) with `--json`.
fn operator_json(binary: &str, config: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(bin(binary))
        .arg("--config")
        .arg(config)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_str(&text(&out.stdout)).unwrap()
}

#[test]
fn operators_and_researchers_see_what_happened() {
    let (work, _) = demo(3);
    edit_node(work.path(), "node-1", |config| {
        config.data.refresh_s = Some(1)
    });
    let d = Deployment::start(work);
    let w = d.work.path();
    let coordinator = coordinator_operations(w);
    assert_eq!(http_get(coordinator, "/ready"), (200, "ready\n".into()));
    let released_before = sample(
        &metrics(coordinator),
        "concord_queries",
        "phase=\"released\"",
    )
    .expect("queries per phase are exported");
    assert!(released_before >= 1.0, "the demo released queries");

    // a query the coordinator refuses at submission: counted by its reason
    let out = d.query(&[
        "submit",
        "--template",
        "events-by-month-tlp-distribution",
        "--from",
        "2025-01",
        "--min-institutions",
        "5",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("3 institutions are enrolled"));
    // and, as every call answered with an error, by method and gRPC code
    assert_eq!(
        sample(
            &metrics(coordinator),
            "concord_grpc_errors_total",
            "method=\"/concord.v1.Coordinator/Submit\",code=\"InvalidArgument\""
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &metrics(coordinator),
            "concord_submissions_refused_total",
            "reason=\"min-institutions\""
        ),
        Some(1.0)
    );

    let out = d.submit_with(&["--epsilon", "0.5"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    d.wait_listed(&id, "released");

    // the coordinator counted this query's steps, decisions and contributions
    let m = metrics(coordinator);
    assert_eq!(
        sample(&m, "concord_queries", "phase=\"released\""),
        Some(released_before + 1.0)
    );
    assert_eq!(sample(&m, "concord_enrolled_nodes", ""), Some(3.0));
    assert_eq!(
        sample(&m, "concord_queries_finished_total", "outcome=\"released\""),
        Some(1.0)
    );
    assert_eq!(sample(&m, "concord_queries_submitted_total", ""), Some(1.0));
    for node in ["node-1", "node-2", "node-3"] {
        let labels = format!("node=\"{node}\"");
        assert_eq!(
            sample(
                &m,
                "concord_node_decisions_total",
                &format!("{labels},decision=\"agree\"")
            ),
            Some(1.0),
            "{m}"
        );
        assert_eq!(
            sample(&m, "concord_node_contributions_total", &labels),
            Some(1.0)
        );
    }
    for step in ["proposal", "contribution", "verification", "decryption"] {
        let labels = format!("step=\"{step}\"");
        assert_eq!(sample(&m, "concord_step_seconds_count", &labels), Some(1.0));
        let received = format!("{labels},direction=\"received\"");
        assert!(sample(&m, "concord_step_bytes_total", &received).unwrap() > 0.0);
    }

    // every node counted its own part, and the data it computes from
    for node in ["node-1", "node-2", "node-3"] {
        let m = metrics(node_operations(w, node));
        assert_eq!(
            sample(&m, "concord_proposals_total", "decision=\"agree\""),
            Some(1.0),
            "{node}: {m}"
        );
        assert_eq!(
            sample(&m, "concord_commitments_total", "outcome=\"ok\""),
            Some(1.0)
        );
        assert_eq!(
            sample(&m, "concord_releases_total", "outcome=\"ok\""),
            Some(1.0)
        );
        let path = node_config(w, node).data.path.unwrap();
        let held = concord_stats::load(&path).unwrap().events.len();
        assert_eq!(sample(&m, "concord_misp_events", ""), Some(held as f64));
    }

    // the coordinator's operator sees the queries and the nodes
    let config = w.join("coordinator.toml");
    let queries = operator_json("concord-coordinator", &config, &["queries"]);
    let row = queries
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["id"] == id.as_str())
        .expect("the query is listed");
    assert_eq!(row["phase"], "released");
    assert_eq!(row["researcher"], "researcher");
    assert_eq!(row["contributed"], 3);
    let nodes = operator_json("concord-coordinator", &config, &["nodes"]);
    let mut names: Vec<&str> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["node-1", "node-2", "node-3"]);

    // the budget spent, as the researcher and each node's operator see it: the query's cost
    let plan = concord_query::dp::DpPlan::new(
        concord_stats::Template::EventsByMonthTlpDistribution,
        0.5,
        1e-6,
        3,
    )
    .unwrap();
    let cost = plan.epsilon_at(1e-6);
    let out = d.query(&["budget", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let budget: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(budget["unreachable"].as_array().unwrap().len(), 0);
    let reports = budget["nodes"].as_array().unwrap();
    assert_eq!(reports.len(), 3);
    for report in reports {
        let spent = report["spent"].as_array().unwrap();
        assert_eq!(spent.len(), 1, "{report}");
        assert_eq!(spent[0]["unit"], "event");
        assert_eq!(spent[0]["queries"], 1);
        let epsilon = spent[0]["epsilon_spent"].as_f64().unwrap();
        assert!(
            (epsilon - cost).abs() < 1e-9,
            "{epsilon} spent, {cost} asked"
        );
        let left = spent[0]["epsilon_left"].as_f64().unwrap();
        assert!((left - (10.0 - cost)).abs() < 1e-9);
    }
    let rows = operator_json("concord-node", &w.join("node-2.toml"), &["budgets"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["researcher"], "researcher");
    assert!((rows[0]["epsilon_spent"].as_f64().unwrap() - cost).abs() < 1e-9);

    // node-1 reads its data again every second: an event gone from its feed is gone from it
    let path = node_config(w, "node-1").data.path.unwrap();
    let before = concord_stats::load(&path).unwrap().events.len();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(path.join("manifest.json")).unwrap()).unwrap();
    let uuid = manifest.as_object().unwrap().keys().next().unwrap();
    std::fs::remove_file(path.join(format!("{uuid}.json"))).unwrap();
    let node_1 = node_operations(w, "node-1");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics(node_1);
        if sample(&m, "concord_misp_events", "") == Some((before - 1) as f64) {
            assert!(sample(&m, "concord_misp_refreshes_total", "outcome=\"ok\"").unwrap() >= 1.0);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node-1 never read its data again: {m}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // its data gone, a refresh fails: the node keeps the last good data, and says so
    let gone = path.with_extension("gone");
    std::fs::rename(&path, &gone).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = metrics(node_1);
        if sample(&m, "concord_misp_refreshes_total", "outcome=\"failed\"").is_some() {
            assert_eq!(
                sample(&m, "concord_misp_events", ""),
                Some((before - 1) as f64)
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failed refresh counted: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(d
        .testbed
        .log("node-1")
        .contains("keeping the last snapshot"));
    std::fs::rename(&gone, &path).unwrap();
}

#[test]
fn a_researcher_has_at_most_the_configured_queries_in_flight() {
    let (work, _) = demo(3);
    edit_coordinator(work.path(), |config| {
        config.max_queries_in_flight_per_researcher = 1
    });
    edit_node(work.path(), "node-1", |config| {
        config.policy.approval = Approval::Manual
    });
    let d = Deployment::start(work);
    let first = d.submit();
    d.wait_listed(&first, "awaiting approval");
    // the second waits for the first to end: refused now, in a sentence
    let second = [
        "submit",
        "--template",
        "events-by-month-tlp-distribution",
        "--from",
        "2025-01",
        "--months",
        "6",
    ];
    let out = d.query(&second);
    assert!(!out.status.success());
    let said = text(&out.stderr);
    assert!(
        said.contains("not now: 1 of your queries are still running"),
        "{said}"
    );
    let m = metrics(coordinator_operations(d.work.path()));
    assert_eq!(
        sample(
            &m,
            "concord_submissions_refused_total",
            "reason=\"in-flight-limit\""
        ),
        Some(1.0)
    );
    let approve = Command::new(bin("concord-node"))
        .arg("--config")
        .arg(d.work.path().join("node-1.toml"))
        .args(["approvals", "approve", &first])
        .output()
        .unwrap();
    assert!(approve.status.success(), "{}", text(&approve.stderr));
    d.wait_listed(&first, "released");
    // the first ended: the second is taken
    let out = d.query(&second);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
