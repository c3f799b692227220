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
    let out = concord(&[
        "demo",
        "--nodes",
        "3",
        "--work",
        work.path().to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in concord_stats::TEMPLATES {
        assert!(
            stdout.contains(t.info().id),
            "{} missing from:\n{stdout}",
            t.info().id
        );
    }
    assert_eq!(
        stdout.matches("[3 institutions").count(),
        concord_stats::TEMPLATES.len()
    );
    // it leaves no node running and a readable record behind
    assert!(work.path().join("node-1.log").is_file() && work.path().join("ca.pem").is_file());
    assert!(concord(&["demo", "--nodes", "2"]).status.code() == Some(1));
}
