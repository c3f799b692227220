//! `concord-node` as a real process: configured by a TOML file, serving over mutual TLS, with its
//! key share persisted owner-only and reused across restarts; bad configurations and a key file
//! readable by others stop it with a clear message.

use concord_api::pki::{DevCa, Role};
use concord_api::tls::client_config;
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::{Deployment, Party, SetupRequest};
use concord_bfv::{params, BfvParameters};
use concord_mhe::PublicKeyShare;
use concord_node::config::{Config, DataSource, Policy, TlsFiles};
use concord_stats::catalogue::YearMonth;
use concord_stats::generator::{organisation_uuid, write_feed, Profile};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Fixture {
    dir: tempfile::TempDir,
    ca: DevCa,
    port: u16,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let ca = DevCa::generate("test CA").unwrap();
    ca.write(dir.path()).unwrap();
    ca.issue(Role::Node, "node-a", &["localhost", "127.0.0.1"])
        .unwrap()
        .write(dir.path(), "node")
        .unwrap();
    let profile = Profile {
        name: "CERT-A".into(),
        organisation_uuid: organisation_uuid("CERT-A"),
        events: 20,
        own_share: 0.5,
        peers: vec![],
        first: YearMonth::parse("2025-01").unwrap(),
        months: 6,
        seed: 3,
    };
    write_feed(&dir.path().join("feed"), &profile).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = Config {
        listen: ([127, 0, 0, 1], port).into(),
        keys_dir: "keys".into(),
        organisation_uuids: vec![profile.organisation_uuid.clone()],
        sector: None,
        organisation_type: None,
        tls: TlsFiles {
            ca: "ca.pem".into(),
            certificate: "node.pem".into(),
            key: "node.key".into(),
        },
        data: DataSource {
            path: Some("feed".into()),
            misp: None,
            survey: None,
            refresh_s: None,
        },
        policy: Policy::default(),
        coordinator: None,
        audit_log: None,
        operations: None,
    };
    let config = toml::to_string(&config).unwrap();
    std::fs::write(dir.path().join("node.toml"), config).unwrap();
    Fixture { dir, ca, port }
}

fn start(config: &Path) -> Child {
    start_with(config, &[])
}

fn start_with(config: &Path, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_concord-node"))
        .arg("--config")
        .arg(config)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn setup_share(f: &Fixture, params: &std::sync::Arc<BfvParameters>) -> PublicKeyShare {
    setup_share_as(f, params, 1).await
}

/// The node's CKG share for the test's CRS, asked as party `party` (1 or 2) of a deployment
/// of two.
async fn setup_share_as(
    f: &Fixture,
    params: &std::sync::Arc<BfvParameters>,
    party: u32,
) -> PublicKeyShare {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let attempt = async {
            let reply = NodeClient::new(coordinator_channel(f).await?)
                .setup(SetupRequest {
                    deployment: Some(Deployment {
                        parameter_set: params.name().into(),
                        crs_seed: vec![5; 32],
                        parties: (1..=2)
                            .map(|number| Party {
                                number,
                                name: if number == party { "node-a" } else { "node-b" }.into(),
                            })
                            .collect(),
                        threshold: 0,
                    }),
                })
                .await?;
            Ok::<_, Box<dyn std::error::Error>>(reply.into_inner().share)
        };
        match attempt.await {
            Ok(bytes) => return PublicKeyShare::from_bytes(params, &bytes).unwrap(),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("node did not answer: {e}"),
        }
    }
}

/// A connection to the node with a certificate of the coordinator.
async fn coordinator_channel(
    f: &Fixture,
) -> Result<tonic::transport::Channel, Box<dyn std::error::Error>> {
    let coordinator =
        f.ca.issue(Role::Coordinator, "coordinator", &["localhost"])?;
    let tls = client_config(
        f.ca.certificate_pem(),
        &coordinator.certificate_pem,
        &coordinator.key_pem,
        "localhost",
    );
    Ok(
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{}", f.port))?
            .tls_config(tls)?
            .connect()
            .await?,
    )
}

fn stop(mut child: Child) -> String {
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_serves_over_mtls_and_keeps_its_key_share_across_restarts() {
    let f = fixture();
    let params = BfvParameters::new(&params::ADD_4096).unwrap();
    let config = f.dir.path().join("node.toml");
    let node = start(&config);
    // a coordinator asking again and again for the same CRS gets the very same share, under
    // any party number: nothing to average the error away with (issue 14)
    let first = setup_share(&f, &params).await;
    for _ in 0..50 {
        assert_eq!(
            setup_share(&f, &params).await,
            first,
            "a second, fresh share"
        );
    }
    let renamed = setup_share_as(&f, &params, 2).await;
    assert_eq!(renamed.value(), first.value());
    let log = stop(node);
    assert!(
        log.contains("MISP data loaded") && log.contains("events=20"),
        "{log}"
    );
    let key_file = f.dir.path().join("keys/ADD-4096.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // restarted (logging JSON lines this time), it uses the same key share: the same share for
    // the same CRS
    let node = start_with(&config, &[("CONCORD_LOG_FORMAT", "json")]);
    let third = setup_share(&f, &params).await;
    assert_eq!(third, first, "the key share must survive a restart");
    // gRPC health checking says the node service is serving
    let channel = coordinator_channel(&f).await.unwrap();
    let health = tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "concord.v1.Node".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        health.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let log = stop(node);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "node serving" && l["level"] == "INFO"),
        "{log}"
    );
    // a port already taken: the node says so and stops, before enrolling anywhere
    let taken = std::net::TcpListener::bind(("127.0.0.1", f.port)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_concord-node"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    drop(taken);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{}", f.port)),
        "{err}"
    );
    assert!(!err.contains("node serving"), "{err}");
    // a node whose key share or TLS key others may read refuses to start, saying which file
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let refused = |file: &Path| {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let out = Command::new(env!("CARGO_BIN_EXE_concord-node"))
                .arg("--config")
                .arg(&config)
                .output()
                .unwrap();
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert!(
                !out.status.success(),
                "started with {} readable",
                file.display()
            );
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                err.contains("readable by others") && err.contains(&*file.to_string_lossy()),
                "{err}"
            );
        };
        refused(&key_file);
        refused(&f.dir.path().join("node.key"));
    }
}

#[test]
fn bad_configurations_stop_the_node_with_a_clear_message() {
    let f = fixture();
    let config = f.dir.path().join("bad.toml");
    // survey answers with a level out of range on line 5
    std::fs::write(
        f.dir.path().join("survey.toml"),
        "survey = \"sharing-motivations\"\nversion = 1\n[answers]\nreasons-to-share = [\"reciprocity\"]\ntrust-in-community = 9\n",
    )
    .unwrap();
    let key = f.dir.path().join("misp.key");
    std::fs::write(&key, "an-api-key\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for (text, expect) in [
        ("listen = \"nowhere\"", "bad.toml"),
        ("listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\ncolour = \"blue\"", "unknown field"),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data]\npath = \"feed\"\n[policy]\nallowed_templates = [\"no-such-template\"]",
            "unknown template",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data]\npath = \"no-such-dir\"",
            "no-such-dir",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data]\npath = \"feed\"\nsurvey = \"survey.toml\"",
            "survey.toml:5: trust-in-community: a level from 1 to 5",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data]\nsurvey = \"survey.toml\"",
            "needs either path",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data]\npath = \"feed\"\n[data.misp]\nurl = \"https://misp.example.org\"\napi_key_file = \"misp.key\"",
            "not both",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\nsector = \"Piracy\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data]\npath = \"feed\"",
            "sector \"Piracy\" is not one of",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data.misp]\nurl = \"https://misp.example.org\"\napi_key_file = \"no-such.key\"",
            "MISP API key file",
        ),
        (
            "listen = \"127.0.0.1:1\"\nkeys_dir = \"k\"\n[tls]\nca = \"ca.pem\"\ncertificate = \"node.pem\"\nkey = \"node.key\"\n[data.misp]\nurl = \"http://127.0.0.1:1\"\napi_key_file = \"misp.key\"\nretries = 0\ntimeout_s = 2",
            "could not be reached for events/restSearch page 1",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_concord-node")).arg("--config").arg(&config).output().unwrap();
        assert!(!out.status.success(), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "expected {expect:?} in: {err}");
    }
}
