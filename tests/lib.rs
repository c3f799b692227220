//! Concord's system tests (DESIGN.md §7): the coordinator and the nodes as real processes over
//! mutual TLS on loopback, started by `concord-testbed`, real MISP data where the test needs
//! it, and the researcher's `concord` CLI. This library is what the tests share: a deployment
//! made by `concord demo` started again, typed edits of its configurations, the CLI, and the
//! plaintext statistics an exact aggregate must equal.
//!
//! | test | what |
//! |---|---|
//! | `e2e` | every template over four institutions' real data, exact; refusals; replays |
//! | `pinning` | a lying coordinator at key setup: pinned deployment and key, shares given once |
//! | `governance` | manual approval, denial, expiry; privacy budgets |
//! | `publish` | released results published to MISP |
//! | `recovery` | the coordinator killed mid-query and resumed; hung and killed nodes |
//! | `threshold` | 8 of 16 with churn; shares of a query given once, for one active set |
//! | `operations` | metrics, the operator's views, budgets, limits per researcher, MISP refresh |
//! | `walkthrough` | the README's first deployment by hand, run verbatim |

use concord_testbed::{binaries_beside_tests, Testbed};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use concord_coordinator::config::Config as CoordinatorConfig;
pub use concord_node::config::{Approval, Config as NodeConfig, Policy};

/// A node's gRPC client with a coordinator's certificate: what a test playing the coordinator
/// (honest or not) drives a node process with.
pub async fn node_client(
    ca_pem: &str,
    coordinator: &concord_api::pki::IssuedCertificate,
    name: &str,
    url: &str,
) -> concord_api::v1::node_client::NodeClient<tonic::transport::Channel> {
    let tls = concord_api::tls::client_config(
        ca_pem,
        &coordinator.certificate_pem,
        &coordinator.key_pem,
        name,
    );
    let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    concord_api::v1::node_client::NodeClient::new(channel).max_decoding_message_size(64 << 20)
}

/// A binary of the workspace build (`concord`, `concord-node`, `concord-coordinator`).
pub fn bin(name: &str) -> PathBuf {
    let path = binaries_beside_tests().join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} missing: run the workspace's tests (cargo test), which build every binary",
        path.display()
    );
    path
}

/// A deployment started again from a work directory `concord demo` left.
pub struct Deployment {
    // dropped first: the processes stop before their directory goes
    pub testbed: Testbed,
    pub work: tempfile::TempDir,
    pub url: String,
}

impl Deployment {
    /// Starts the deployment in `work` again (the coordinator, then every node); returns once
    /// every node has enrolled.
    pub fn start(work: tempfile::TempDir) -> Self {
        let testbed =
            Testbed::open(work.path(), &binaries_beside_tests()).unwrap_or_else(|e| panic!("{e}"));
        let url = testbed
            .coordinator_url()
            .expect("the demo has a coordinator");
        Deployment { testbed, work, url }
    }

    pub fn w(&self) -> &str {
        self.work.path().to_str().unwrap()
    }

    pub fn coordinator_log(&self) -> String {
        self.testbed.log("coordinator")
    }

    /// Every node's party number (1-based index of `node-i` → number), as the coordinator's log
    /// says it enrolled them: numbers follow the order of enrolment.
    pub fn party_numbers(&self) -> std::collections::HashMap<String, u32> {
        self.coordinator_log()
            .lines()
            .filter(|l| l.contains("node enrolled"))
            .filter_map(|l| {
                let field = |key: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(key))
                        .map(str::to_owned)
                };
                Some((field("node=")?, field("party=")?.parse().ok()?))
            })
            .collect()
    }

    pub fn query(&self, args: &[&str]) -> Output {
        let mut all = vec![
            "query",
            "--coordinator",
            &self.url,
            "--tls-dir",
            self.w(),
            "--name",
            "researcher",
        ];
        all.extend_from_slice(args);
        Command::new(bin("concord")).args(&all).output().unwrap()
    }

    /// Retries while the coordinator is coming up.
    pub fn query_until_up(&self, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.query(args);
            if out.status.success() || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn submit(&self) -> String {
        let out = self.query_until_up(&[
            "submit",
            "--template",
            "events-by-month-tlp-distribution",
            "--from",
            "2025-01",
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_owned()
    }

    /// The query's line in `concord query list`.
    pub fn listed(&self, id: &str) -> String {
        let out = self.query(&["list"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    }

    pub fn wait_listed(&self, id: &str, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = self.listed(id);
            if line.contains(what) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "query {id} never showed {what:?}; last: {line}\n{}",
                self.coordinator_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Node `name`'s configuration in `work`, as the node reads it.
pub fn node_config(work: &Path, name: &str) -> NodeConfig {
    NodeConfig::load(&work.join(format!("{name}.toml"))).unwrap()
}

/// Changes node `name`'s configuration in `work` (typed, as the node reads it).
pub fn edit_node(work: &Path, name: &str, change: impl FnOnce(&mut NodeConfig)) {
    let mut config = node_config(work, name);
    change(&mut config);
    let path = work.join(format!("{name}.toml"));
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

/// Changes the coordinator's configuration in `work` (typed, as the coordinator reads it).
pub fn edit_coordinator(work: &Path, change: impl FnOnce(&mut CoordinatorConfig)) {
    let path = work.join("coordinator.toml");
    let mut config = CoordinatorConfig::load(&path).unwrap();
    change(&mut config);
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
}

/// A plain HTTP GET of `path` on an operations endpoint: (status code, body).
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_owned())
}

/// The value of the Prometheus sample `name{labels}` in a `/metrics` text (labels as printed,
/// e.g. `phase="released"`; empty: a sample without labels), if present.
pub fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (key, value) = line.rsplit_once(' ')?;
        let matches = if labels.is_empty() {
            key == name
        } else {
            key.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('{'))
                .and_then(|rest| rest.strip_suffix('}'))
                .is_some_and(|inner| labels.split(',').all(|l| inner.split(',').any(|i| i == l)))
        };
        if matches {
            value.parse().ok()
        } else {
            None
        }
    })
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `concord demo` with `nodes` nodes in a fresh directory; returns it and the demo's
/// output.
pub fn demo(nodes: usize) -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    let demo = Command::new(bin("concord"))
        .args(["demo", "--nodes", &nodes.to_string(), "--work"])
        .arg(work.path())
        .arg("--plots")
        .arg(work.path().join("plots"))
        .output()
        .unwrap();
    let stdout = text(&demo.stdout);
    assert!(demo.status.success(), "{stdout}{}", text(&demo.stderr));
    (work, stdout)
}

/// A deployment of `nodes` institutions on feeds from the project's generator (2025, a few dozen
/// events each, some received from the others), written by `concord-testbed` with a coordinator
/// (`threshold`, node timeout 30 s: sixteen nodes dealing at once share two cores) and the researcher's certificate and result keys, not
/// started. `edit` changes institution `i` (0-based) before it is written.
pub fn generated_deployment(
    nodes: usize,
    threshold: Option<usize>,
    edit: impl Fn(usize, &mut concord_testbed::Institution),
) -> tempfile::TempDir {
    use concord_stats::generator::{organisation_uuid, write_feed, Profile};
    let work = tempfile::tempdir().unwrap();
    let names: Vec<String> = (1..=nodes).map(|i| format!("node-{i}")).collect();
    let orgs: Vec<(String, String)> = names
        .iter()
        .map(|n| (n.clone(), organisation_uuid(n)))
        .collect();
    let mut setup = concord_testbed::Setup {
        work: work.path().to_owned(),
        binaries: binaries_beside_tests(),
        institutions: Vec::new(),
        coordinator: Some(concord_testbed::CoordinatorSetup {
            threshold,
            node_timeout_s: 30.0,
        }),
    };
    for (i, name) in names.iter().enumerate() {
        let data = work.path().join("data").join(name);
        write_feed(
            &data,
            &Profile {
                name: name.clone(),
                organisation_uuid: organisation_uuid(name),
                events: 30 + 7 * i,
                own_share: 0.5,
                peers: orgs.iter().filter(|(o, _)| o != name).cloned().collect(),
                first: concord_stats::YearMonth::parse("2025-01").unwrap(),
                months: 12,
                seed: 2000 + i as u64,
            },
        )
        .unwrap();
        let mut institution = concord_testbed::Institution::new(name, data);
        institution.organisation_uuids = vec![organisation_uuid(name)];
        institution.policy.min_institutions = 3;
        edit(i, &mut institution);
        setup.institutions.push(institution);
    }
    Testbed::write(&setup).unwrap_or_else(|e| panic!("{e}"));
    let ca = concord_api::pki::DevCa::load(work.path()).unwrap();
    ca.issue(
        concord_api::pki::Role::Researcher,
        "researcher",
        &["localhost"],
    )
    .and_then(|issued| issued.write(work.path(), "researcher"))
    .unwrap();
    let keys = Command::new(bin("concord"))
        .args(["keys", "init", "--name", "researcher", "--dir"])
        .arg(work.path())
        .output()
        .unwrap();
    assert!(keys.status.success(), "{}", text(&keys.stderr));
    work
}

/// The plaintext statistic of node `i` of the demo over its own data (an independent path):
/// over every event it holds, or (`created`, what a DP query counts) only those it created.
fn statistic_of(
    work: &std::path::Path,
    i: usize,
    template: concord_stats::Template,
    window: &concord_stats::Window,
    created: bool,
) -> Vec<i128> {
    let config = node_config(work, &format!("node-{i}"));
    let events = concord_stats::load(config.data.path.as_deref().unwrap())
        .unwrap()
        .events;
    let institution = concord_stats::Institution {
        organisation_uuids: config.organisation_uuids,
        survey: None,
        sector: config.sector,
        organisation_type: config.organisation_type,
    };
    match created {
        false => template.compute(window, &institution, &events),
        true => template.compute_created(window, &institution, &events),
    }
    .unwrap()
    .values
    .into_iter()
    .map(i128::from)
    .collect()
}

/// The plaintext statistic of node `i` of the demo over every event it holds.
pub fn statistic(
    work: &std::path::Path,
    i: usize,
    template: concord_stats::Template,
    window: &concord_stats::Window,
) -> Vec<i128> {
    statistic_of(work, i, template, window, false)
}

fn pooled_of(
    work: &std::path::Path,
    nodes: impl IntoIterator<Item = usize>,
    template: concord_stats::Template,
    window: &concord_stats::Window,
    created: bool,
) -> Vec<i128> {
    let mut total = vec![0i128; template.layout(window).cells()];
    for i in nodes {
        for (t, v) in total
            .iter_mut()
            .zip(statistic_of(work, i, template, window, created))
        {
            *t += v;
        }
    }
    total
}

/// Every listed node's statistic summed: what an exact aggregate of those nodes holds.
pub fn pooled(
    work: &std::path::Path,
    nodes: impl IntoIterator<Item = usize>,
    template: concord_stats::Template,
    window: &concord_stats::Window,
) -> Vec<i128> {
    pooled_of(work, nodes, template, window, false)
}

/// The listed nodes' statistics over the events each created, summed: what a DP query's
/// aggregate holds before its noise (each event counted once, at its creator).
pub fn pooled_created(
    work: &std::path::Path,
    nodes: impl IntoIterator<Item = usize>,
    template: concord_stats::Template,
    window: &concord_stats::Window,
) -> Vec<i128> {
    pooled_of(work, nodes, template, window, true)
}

/// MISP synchronisation between two nodes of the demo: every event node `from` created is
/// copied, uuid and `Orgc` unchanged, into node `to`'s feed (file and manifest entry). Returns
/// how many.
pub fn replicate(work: &std::path::Path, from: usize, to: usize) -> usize {
    let dir = |i: usize| node_config(work, &format!("node-{i}")).data.path.unwrap();
    let (source, target) = (dir(from), dir(to));
    let own = node_config(work, &format!("node-{from}")).organisation_uuids;
    let read = |d: &Path| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_slice(&std::fs::read(d.join("manifest.json")).unwrap()).unwrap()
    };
    let mut manifest = read(&target);
    let mut copied = 0;
    for (uuid, entry) in read(&source) {
        let creator = entry["Orgc"]["uuid"].as_str().unwrap_or_default();
        if own.iter().any(|o| o.eq_ignore_ascii_case(creator)) {
            let file = format!("{uuid}.json");
            std::fs::copy(source.join(&file), target.join(&file)).unwrap();
            manifest.insert(uuid, entry);
            copied += 1;
        }
    }
    std::fs::write(
        target.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    copied
}

impl Deployment {
    /// Submits the test's usual query (events by month, TLP and distribution over 2025) with
    /// extra options.
    pub fn submit_with(&self, extra: &[&str]) -> Output {
        let mut args = vec![
            "submit",
            "--template",
            "events-by-month-tlp-distribution",
            "--from",
            "2025-01",
        ];
        args.extend_from_slice(extra);
        self.query_until_up(&args)
    }

    /// A released query's result as `query result --json` gives it, and its cells in order.
    pub fn result_json(&self, id: &str) -> (serde_json::Value, Vec<i128>) {
        let out = self.query(&["result", id, "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let result: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
        let cells = result["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["value"].as_i64().unwrap() as i128)
            .collect();
        (result, cells)
    }

    /// Kills every node and starts it again (same configuration, same keys and state).
    pub fn restart_nodes(&mut self) {
        self.testbed
            .restart_nodes()
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
