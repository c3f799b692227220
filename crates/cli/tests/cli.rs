//! The `concord` binary: CA and certificates on disk, and the catalogue listing.

use std::process::Command;

fn concord(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn ca_init_and_issue_write_usable_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(concord(&["ca", "init", "--dir", d]).status.success());
    let again = concord(&["ca", "init", "--dir", d]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"));
    assert!(
        concord(&["ca", "issue", "--dir", d, "--role", "node", "--name", "node-1"])
            .status
            .success()
    );
    let bad = concord(&["ca", "issue", "--dir", d, "--role", "admin", "--name", "x"]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("unknown role"));
    let pem = std::fs::read_to_string(dir.path().join("node-1.pem")).unwrap();
    let der = x509_der(&pem);
    let id = concord_api::pki::identity_of(&der).unwrap();
    assert_eq!(
        (id.role, id.name.as_str()),
        (concord_api::pki::Role::Node, "node-1")
    );
    // valid for the name others dial it by, besides localhost and any --host
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let names: Vec<String> = cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert!(names.iter().any(|n| n.contains("node-1")), "{names:?}");
    assert!(names.iter().any(|n| n.contains("localhost")), "{names:?}");
    // issuing the same name again would overwrite its key: refused without --force
    let again = concord(&[
        "ca", "issue", "--dir", d, "--role", "node", "--name", "node-1",
    ]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let forced = concord(&[
        "ca",
        "issue",
        "--dir",
        d,
        "--role",
        "node",
        "--name",
        "node-1",
        "--force",
        "--host",
        "node-1.example",
    ]);
    assert!(forced.status.success());
    // written elsewhere, the CA's certificate goes with it
    let out = tempfile::tempdir().unwrap();
    let o = out.path().to_str().unwrap();
    let elsewhere = concord(&[
        "ca",
        "issue",
        "--dir",
        d,
        "--role",
        "researcher",
        "--name",
        "alice",
        "--out",
        o,
    ]);
    assert!(elsewhere.status.success());
    assert_eq!(
        std::fs::read(out.path().join("ca.pem")).unwrap(),
        std::fs::read(dir.path().join("ca.pem")).unwrap()
    );
}

#[test]
fn templates_lists_the_catalogue_one_per_line() {
    let out = concord(&["templates"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), concord_stats::TEMPLATES.len());
    assert!(text.lines().all(|l| l.contains(" v1 ")));
    assert!(text.contains("time-to-publish"));
}

/// A PNG file of the given size whose pixels are not all one colour.
#[test]
fn dp_prints_what_a_query_costs_before_it_is_submitted() {
    // a histogram over institutions: one event moves two cells, and ε is shown at the node's δ
    let out = concord(&[
        "dp",
        "--template",
        "institutions-by-events-per-month",
        "--epsilon",
        "1",
        "--delta",
        "1e-3",
        "--min-institutions",
        "10",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("moves at most 2 cell(s)"), "{text}");
    assert!(text.contains("at δ = 1e-3"), "{text}");
    assert!(text.contains("at the node's δ = 1e-6"), "{text}");
    assert!(text.contains("(fits)"), "{text}");
    // nearly spent: refused (zCDP composes sublinearly in ε: 9.9 spent + an ε = 1 query is
    // 9.97, which fits; 9.99 + 1 is 10.06)
    let out = concord(&[
        "dp",
        "--template",
        "events-by-month-tlp-distribution",
        "--epsilon",
        "1",
        "--spent",
        "9.99",
    ]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused: budget-exhausted"));
    // a template without a declared sensitivity: a clear error
    let out = concord(&["dp", "--template", "time-to-publish", "--epsilon", "1"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not available"));
}

fn assert_png(bytes: &[u8], (width, height): (u32, u32)) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (width, height));
    let image = image::load_from_memory(bytes).unwrap().to_rgb8();
    let first = image.get_pixel(0, 0);
    let other = image.pixels().filter(|p| *p != first).count();
    assert!(
        other > 10_000,
        "a nearly blank image ({other} pixels drawn)"
    );
}

fn x509_der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

#[test]
fn demo_runs_a_whole_deployment_of_node_processes() {
    let node = std::path::Path::new(env!("CARGO_BIN_EXE_concord")).with_file_name("concord-node");
    assert!(
        node.is_file(),
        "{} missing: run the workspace's tests (cargo test), which build every binary",
        node.display()
    );
    let work = tempfile::tempdir().unwrap();
    let plots = work.path().join("plots");
    let out = concord(&[
        "demo",
        "--nodes",
        "3",
        "--work",
        work.path().to_str().unwrap(),
        "--plots",
        plots.to_str().unwrap(),
        "--json",
    ]);
    // with --json: one result per line on standard output, the narrative on standard error
    let (results, stdout) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{results}\n{stdout}");
    let results: Vec<serde_json::Value> = results
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(results.len(), concord_stats::TEMPLATES.len());
    for (t, result) in concord_stats::TEMPLATES.iter().zip(&results) {
        assert_eq!(result["template"], t.info().id);
        assert_eq!(result["institutions"], 3);
        assert!(!result["rows"].as_array().unwrap().is_empty());
        assert!(
            stdout.contains(t.info().id),
            "{} missing from:\n{stdout}",
            t.info().id
        );
    }
    assert_eq!(
        stdout.matches(": 3 institutions,").count(),
        concord_stats::TEMPLATES.len()
    );
    // a chart of every result, as PNG and SVG, labelled
    for t in concord_stats::TEMPLATES {
        let png = std::fs::read(plots.join(format!("{}.png", t.info().id))).unwrap();
        assert_png(&png, (1280, 860));
        let svg = std::fs::read_to_string(plots.join(format!("{}.svg", t.info().id))).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains(r#"width="1280""#));
        for label in [
            format!("{} v1", t.info().id),
            "k = 3 institutions".to_owned(),
            t.counts().to_owned(),
        ] {
            assert!(svg.contains(&label), "{}: no {label:?}", t.info().id);
        }
    }
    // it leaves no node running and a readable record behind
    assert!(work.path().join("node-1.log").is_file() && work.path().join("ca.pem").is_file());
    assert!(concord(&["demo", "--nodes", "2"]).status.code() == Some(1));
}

#[test]
fn released_results_outlive_the_coordinator_and_read_as_csv_and_json() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_concord"));
    for needed in ["concord-node", "concord-coordinator"] {
        assert!(
            bin.with_file_name(needed).is_file(),
            "{needed} missing: run the workspace's tests (cargo test)"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap();
    let plots = work.path().join("plots");
    let out = concord(&[
        "demo",
        "--nodes",
        "3",
        "--work",
        w,
        "--plots",
        plots.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let ids: Vec<String> = stdout
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("[query ")
                .map(|r| r.split(':').next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(ids.len(), concord_stats::TEMPLATES.len());

    // the coordinator again, alone: the demo's released queries are still there
    let config = std::fs::read_to_string(work.path().join("coordinator.toml")).unwrap();
    let port = config
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('"')
        .to_owned();
    let mut coordinator = Command::new(bin.with_file_name("concord-coordinator"))
        .arg("--config")
        .arg(work.path().join("coordinator.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let query = |args: &[&str]| {
        let mut all = vec![
            "query",
            "--coordinator",
            &url,
            "--tls-dir",
            w,
            "--name",
            "researcher",
        ];
        all.extend_from_slice(args);
        concord(&all)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let csv = loop {
        let out = query(&["result", &ids[0], "--csv"]);
        if out.status.success() || std::time::Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let csv_text = String::from_utf8_lossy(&csv.stdout);
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    assert!(
        csv_text.starts_with("month,tlp,distribution,value"),
        "{csv_text}"
    );
    assert_eq!(csv_text.lines().count(), 1 + 12 * 6 * 6);
    // the table with --all: every non-zero cell, one line each, after the header
    let non_zero = csv_text
        .lines()
        .skip(1)
        .filter(|l| !l.ends_with(",0"))
        .count();
    let table = query(&["result", &ids[0], "--all"]);
    let table_text = String::from_utf8_lossy(&table.stdout);
    let rows = table_text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("month"))
        .skip(1)
        .take_while(|l| l.trim_start().starts_with("20"))
        .count();
    assert_eq!(rows, non_zero, "{table_text}");
    let watched = query(&["watch", &ids[1]]);
    assert!(
        watched.status.success() && String::from_utf8_lossy(&watched.stdout).contains("released"),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    // a result drawn on request, as the file's extension says
    let chart = work.path().join("time-to-publish.svg");
    let drawn = query(&["result", &ids[3], "--plot", chart.to_str().unwrap()]);
    assert!(
        drawn.status.success(),
        "{}",
        String::from_utf8_lossy(&drawn.stderr)
    );
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(
        svg.contains("time-to-publish v1")
            && svg.contains("How fast are events shared: delay from event date to publication")
            && svg.contains("same day")
            && svg.contains("delay")
    );
    let refused = query(&["result", &ids[3], "--plot", "chart.gif"]);
    assert!(
        !refused.status.success()
            && String::from_utf8_lossy(&refused.stderr).contains("written as .png or .svg"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let json = query(&["result", &ids[3], "--json"]);
    let json_text = String::from_utf8_lossy(&json.stdout);
    assert!(
        json_text.contains("\"template\":\"time-to-publish\"")
            && json_text.contains("\"institutions\":3"),
        "{json_text}"
    );
    // a new query cannot run without its nodes: it fails, and says why
    let submitted = query(&[
        "submit",
        "--template",
        "time-to-publish",
        "--from",
        "2025-01",
    ]);
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );
    let id = String::from_utf8_lossy(&submitted.stdout).trim().to_owned();
    let watched = query(&["watch", &id]);
    assert!(
        !watched.status.success() && String::from_utf8_lossy(&watched.stderr).contains("failed"),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let failed = query(&["result", &id, "--wait"]);
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("failed"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
    // a node certificate may not act as a researcher
    let as_node = concord(&[
        "query",
        "--coordinator",
        &url,
        "--tls-dir",
        w,
        "--name",
        "node-1",
        "result",
        &ids[0],
    ]);
    assert!(
        !as_node.status.success()
            && String::from_utf8_lossy(&as_node.stderr).contains("researcher"),
        "{}",
        String::from_utf8_lossy(&as_node.stderr)
    );
    let _ = coordinator.kill();
    let _ = coordinator.wait();
}
