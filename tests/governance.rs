//! Node governance with real processes: a deployment made by `concord demo` is started again
//! with node-3's operator approving queries by hand (`approval = "manual"`). A query waits,
//! and the researcher sees whom it waits for, until the operator approves it with
//! `concord-node approvals approve` — and holds no other query up meanwhile (queries run in
//! parallel); a denied query fails with the operator's reason; a query
//! nobody decides is refused after the node's `approval_timeout_s`; every decision is in
//! node-3's audit log with who took it.

#![cfg(unix)]

use concord_system_tests::*;
use std::process::{Command, Output};
use std::time::Duration;

#[test]
fn a_node_operator_approves_or_denies_queries_by_hand() {
    let (work, _) = demo(3);
    edit_node(work.path(), "node-3", |config| {
        config.policy.approval = Approval::Manual;
        config.policy.approval_timeout_s = 15;
    });
    let d = Deployment::start(work);
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
    // and it holds no other query up: a second one, approved first, is released meanwhile
    let second = d.submit();
    d.wait_listed(&second, "awaiting approval at node-3");
    let out = operator(&["approvals", "approve", &second]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    d.wait_listed(&second, "released");
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
    // the researcher's CLI speaks in sentences, not gRPC status codes
    let missing = d.query(&["result", "q-nope"]);
    assert!(!missing.status.success());
    assert_eq!(
        text(&missing.stderr),
        "concord: no query \"q-nope\" of yours\n"
    );
    let nowhere = Command::new(bin("concord"))
        .args(["query", "--coordinator", "https://127.0.0.1:1", "--tls-dir"])
        .arg(d.work.path())
        .args(["--name", "researcher", "list"])
        .output()
        .unwrap();
    let said = text(&nowhere.stderr);
    assert!(
        !nowhere.status.success()
            && said.contains("cannot reach the coordinator at https://127.0.0.1:1")
            && said.contains("refused"),
        "{said}"
    );

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

/// Differential privacy end to end: every node adds its share of discrete Gaussian noise, so
/// the released cells differ from the pooled statistic by noise of the declared scale; each
/// node charges the researcher's budget (ε = 1.2 here) and refuses a query that would exceed
/// it, also after a restart; ε above a node's per-query limit, and a template without a
/// declared sensitivity, are refused.
#[test]
fn dp_results_carry_noise_of_the_declared_scale_and_budgets_survive_restarts() {
    let (work, _) = demo(3);
    for i in 1..=3 {
        edit_node(work.path(), &format!("node-{i}"), |config| {
            config.policy.max_epsilon = 1.0;
            config.policy.epsilon_budget = 1.2;
        });
    }
    let mut d = Deployment::start(work);
    let submit = |d: &Deployment, extra: &[&str]| {
        let out = d.submit_with(extra);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    };

    let id = submit(&d, &["--epsilon", "1"]);
    d.wait_listed(&id, "released");
    let (result, released) = d.result_json(&id);
    assert_eq!(
        (result["epsilon"].as_f64(), result["delta"].as_f64()),
        (Some(1.0), Some(1e-6))
    );
    let window =
        concord_stats::Window::new(concord_stats::YearMonth::parse("2025-01").unwrap(), 12)
            .unwrap();
    let template = concord_stats::Template::EventsByMonthTlpDistribution;
    // a DP query counts each event once, at its creator
    let exact = pooled_created(d.work.path(), 1..=3, template, &window);
    let plan = concord_query::dp::DpPlan::new(template, 1.0, 1e-6, 3).unwrap();
    let errors: Vec<f64> = released
        .iter()
        .zip(&exact)
        .map(|(r, e)| (r - e) as f64)
        .collect();
    // every error within the three shares' public bound; their spread the declared σ
    assert!(errors.iter().all(|e| e.abs() <= 3.0 * plan.bound as f64));
    let n = errors.len() as f64;
    let rms = (errors.iter().map(|e| e * e).sum::<f64>() / n).sqrt();
    let sigma = plan.aggregate_std_dev();
    assert!(n >= 300.0, "{n} cells");
    assert!(
        (0.75 * sigma..1.25 * sigma).contains(&rms),
        "noise rms {rms}, declared σ {sigma}"
    );
    let table = text(&d.query(&["result", &id]).stdout);
    assert!(
        table.contains(
            "differential privacy for one event wherever it is held (counted at its creator): ε = "
        ) && table.contains(" spent, δ = 1e-6"),
        "{table}"
    );

    // a second ε = 1 would bring the researcher to ε ≈ 1.43 > 1.2: every node refuses
    let over = submit(&d, &["--epsilon", "1"]);
    let line = d.wait_listed(&over, "failed");
    assert!(line.contains("budget-exhausted"), "{line}");
    // the budget is on disk: still spent after the nodes restart
    d.restart_nodes();
    let again = submit(&d, &["--epsilon", "1"]);
    let line = d.wait_listed(&again, "failed");
    assert!(line.contains("budget-exhausted"), "{line}");
    // more than a node's per-query limit
    let greedy = submit(&d, &["--epsilon", "2"]);
    let line = d.wait_listed(&greedy, "failed");
    assert!(line.contains("epsilon-too-large"), "{line}");
    // a template whose sensitivity is not declared: refused before anything is sent
    let out = d.query(&[
        "submit",
        "--template",
        "time-to-publish",
        "--from",
        "2025-01",
        "--epsilon",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("differential privacy is not available"),
        "{}",
        text(&out.stderr)
    );
    // without DP the researcher's queries still run (this policy does not require DP)
    let plain = d.submit();
    d.wait_listed(&plain, "released");
}

/// The unit across institutions (issue 16): node-1's events are synchronised to node-2 and
/// node-3 (copies with the same uuid and creator), and each also holds events it received from
/// the others. A DP query counts each event once, at its creator: the released cells are the
/// pooled statistic of what each node created plus noise of the declared scale — and far from
/// what counting every held copy would give. (ε = 8 keeps the noise small enough to tell.)
#[test]
fn dp_counts_a_replicated_event_once_at_its_creator() {
    let (work, _) = demo(3);
    assert!(replicate(work.path(), 1, 2) > 100);
    assert!(replicate(work.path(), 1, 3) > 100);
    for i in 1..=3 {
        edit_node(work.path(), &format!("node-{i}"), |config| {
            config.policy.max_epsilon = 8.0;
            config.policy.epsilon_budget = 8.0;
        });
    }
    let d = Deployment::start(work);
    let out = d.submit_with(&["--epsilon", "8"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_owned();
    d.wait_listed(&id, "released");
    let (_, released) = d.result_json(&id);
    let window =
        concord_stats::Window::new(concord_stats::YearMonth::parse("2025-01").unwrap(), 12)
            .unwrap();
    let template = concord_stats::Template::EventsByMonthTlpDistribution;
    let plan = concord_query::dp::DpPlan::new(template, 8.0, 1e-6, 3).unwrap();
    let sigma = plan.aggregate_std_dev();
    let rms = |expected: &[i128]| {
        let n = expected.len() as f64;
        (released
            .iter()
            .zip(expected)
            .map(|(r, e)| ((r - e) as f64).powi(2))
            .sum::<f64>()
            / n)
            .sqrt()
    };
    let created = pooled_created(d.work.path(), 1..=3, template, &window);
    let held = pooled(d.work.path(), 1..=3, template, &window);
    let copies: i128 = held.iter().sum::<i128>() - created.iter().sum::<i128>();
    assert!(copies > 400, "{copies} copies and received events");
    assert!(
        (0.75 * sigma..1.25 * sigma).contains(&rms(&created)),
        "rms {} against what each created, σ {sigma}",
        rms(&created)
    );
    assert!(
        rms(&held) > 1.5 * sigma,
        "rms {} against every held copy, σ {sigma}",
        rms(&held)
    );
}
