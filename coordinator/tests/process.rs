//! `concord-coordinator` as a process: bad configurations stop it with a message naming the
//! problem. (Its full life — queries from a researcher, results across a restart — is tested
//! with node processes by the `concord` CLI's tests, which run this binary.)

use std::process::Command;

fn run_with(config: &str) -> (bool, String) {
    run_in(&tempfile::tempdir().unwrap(), config)
}

/// Runs the coordinator with `config` written to `dir`/coordinator.toml: (success, stderr).
fn run_in(dir: &tempfile::TempDir, config: &str) -> (bool, String) {
    let path = dir.path().join("coordinator.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_concord-coordinator"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A directory with a CA (ca.pem) and a coordinator certificate and key (c.pem, c.key).
fn with_certificate() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ca = concord_api::pki::DevCa::generate("test CA").unwrap();
    ca.write(dir.path()).unwrap();
    ca.issue(
        concord_api::pki::Role::Coordinator,
        "coordinator",
        &["localhost"],
    )
    .unwrap()
    .write(dir.path(), "c")
    .unwrap();
    dir
}

const TLS: &str = "[tls]\nca = \"ca.pem\"\ncertificate = \"c.pem\"\nkey = \"c.key\"\n";
const NODE: &str = "[[nodes]]\nname = \"node-1\"\nurl = \"https://127.0.0.1:1\"\nparty = 1\n";

#[test]
fn bad_configurations_stop_the_coordinator_with_a_clear_message() {
    let base = format!("listen = \"127.0.0.1:0\"\nstate = \"s.redb\"\n{TLS}");
    for (config, expect) in [
        (format!("{base}{NODE}{NODE}"), "distinct"),
        (
            format!("{base}node_timeout_s = 0\n{NODE}"),
            "node_timeout_s",
        ),
        (format!("{base}colour = \"blue\"\n{NODE}"), "unknown field"),
        (
            format!(
                "{base}{NODE}{}",
                NODE.replace("party = 1", "party = 2")
                    .replace("node-1", "node-2")
            ),
            "ca.pem",
        ),
        ("listen = \"nowhere\"".to_string(), "coordinator.toml"),
    ] {
        let (ok, err) = run_with(&config);
        assert!(!ok, "{config}");
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    }
}

/// A coordinator whose TLS key others may read refuses to start, naming the file.
#[cfg(unix)]
#[test]
fn a_tls_key_readable_by_others_stops_the_coordinator() {
    use std::os::unix::fs::PermissionsExt;
    let dir = with_certificate();
    let key = dir.path().join("c.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    let (ok, err) = run_in(
        &dir,
        &format!("listen = \"127.0.0.1:0\"\nstate = \"s.redb\"\n{TLS}"),
    );
    assert!(!ok);
    assert!(
        err.contains("readable by others (mode 640)") && err.contains("c.key"),
        "{err}"
    );
}

/// A coordinator whose port is taken says so and stops.
#[test]
fn a_taken_port_stops_the_coordinator_saying_so() {
    let dir = with_certificate();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (ok, err) = run_in(
        &dir,
        &format!("listen = \"127.0.0.1:{port}\"\nstate = \"s.redb\"\n{TLS}"),
    );
    drop(taken);
    assert!(!ok, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{err}"
    );
}
