//! What the process tests share: a deployment made by `concord demo`, started again as real
//! processes (nodes, then the coordinator), and driven through the researcher's CLI.

#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

pub fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_concord")).with_file_name(name);
    assert!(
        path.is_file(),
        "{name} missing: run the workspace's tests (cargo test)"
    );
    path
}

pub fn signal(child: &Child, signal: libc::c_int) {
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

pub struct Deployment {
    pub work: tempfile::TempDir,
    pub nodes: Vec<Child>,
    pub coordinator: Option<Child>,
    pub url: String,
    pub starts: usize,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for c in self.nodes.iter_mut().chain(self.coordinator.as_mut()) {
            if let Ok(None) = c.try_wait() {
                signal(c, libc::SIGCONT);
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Deployment {
    pub fn w(&self) -> &str {
        self.work.path().to_str().unwrap()
    }

    pub fn start_coordinator(&mut self) {
        self.starts += 1;
        let log = self
            .work
            .path()
            .join(format!("coordinator-{}.log", self.starts));
        self.coordinator = Some(
            Command::new(bin("concord-coordinator"))
                .arg("--config")
                .arg(self.work.path().join("coordinator.toml"))
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap(),
        );
    }

    pub fn coordinator_log(&self) -> String {
        std::fs::read_to_string(
            self.work
                .path()
                .join(format!("coordinator-{}.log", self.starts)),
        )
        .unwrap()
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
        Command::new(env!("CARGO_BIN_EXE_concord"))
            .args(&all)
            .output()
            .unwrap()
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

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn port_of(config: &str) -> String {
    let first = config.lines().next().unwrap();
    first
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

/// Runs `concord demo` with `nodes` nodes in a fresh directory; returns it and the demo's
/// output.
pub fn demo(nodes: usize) -> (tempfile::TempDir, String) {
    let work = tempfile::tempdir().unwrap();
    let demo = Command::new(env!("CARGO_BIN_EXE_concord"))
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

impl Deployment {
    /// Starts the demo's deployment in `work` again: every node (logging to
    /// `node-I.again.log`), then the coordinator; returns once every node has enrolled.
    pub fn start(work: tempfile::TempDir, nodes: usize) -> Self {
        let config = std::fs::read_to_string(work.path().join("coordinator.toml")).unwrap();
        let url = format!("https://127.0.0.1:{}", port_of(&config));
        let children = (1..=nodes)
            .map(|i| {
                Command::new(bin("concord-node"))
                    .arg("--config")
                    .arg(work.path().join(format!("node-{i}.toml")))
                    .stderr(
                        std::fs::File::create(work.path().join(format!("node-{i}.again.log")))
                            .unwrap(),
                    )
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut d = Deployment {
            work,
            nodes: children,
            coordinator: None,
            url,
            starts: 0,
        };
        // the nodes listen once their data is loaded
        for i in 1..=nodes {
            let config =
                std::fs::read_to_string(d.work.path().join(format!("node-{i}.toml"))).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(format!("127.0.0.1:{}", port_of(&config))).is_err() {
                assert!(Instant::now() < deadline, "node-{i} did not come up");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        d.start_coordinator();
        for i in 1..=nodes {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !std::fs::read_to_string(d.work.path().join(format!("node-{i}.again.log")))
                .unwrap()
                .contains("enrolled")
            {
                assert!(Instant::now() < deadline, "node-{i} did not enrol again");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        d
    }

    /// Edits a file of the deployment.
    pub fn edit(work: &Path, file: &str, change: impl FnOnce(String) -> String) {
        let path = work.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, change(text)).unwrap();
    }
}

/// The plaintext statistic of node `i` of the demo over its own data (an independent path).
pub fn statistic(
    work: &std::path::Path,
    i: usize,
    template: concord_stats::Template,
    window: &concord_stats::Window,
) -> Vec<i128> {
    let config = std::fs::read_to_string(work.join(format!("node-{i}.toml"))).unwrap();
    let line = |key: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap()
            .trim()
            .to_owned()
    };
    let organisation_uuids: Vec<String> =
        serde_json::from_str(&line("organisation_uuids = ")).unwrap();
    let data: String = serde_json::from_str(&line("path = ")).unwrap();
    let events = concord_stats::load(std::path::Path::new(&data))
        .unwrap()
        .events;
    let declared = |key: &str| {
        config
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| serde_json::from_str::<String>(v.trim()).unwrap())
    };
    let institution = concord_stats::Institution {
        organisation_uuids,
        survey: None,
        sector: declared("sector = "),
        organisation_type: declared("organisation_type = "),
    };
    template
        .compute(window, &institution, &events)
        .unwrap()
        .values
        .into_iter()
        .map(i128::from)
        .collect()
}

/// Every node's statistic summed: what an exact aggregate of nodes `1..=n` holds.
pub fn pooled(
    work: &std::path::Path,
    nodes: std::ops::RangeInclusive<usize>,
    template: concord_stats::Template,
    window: &concord_stats::Window,
) -> Vec<i128> {
    let mut total = vec![0i128; template.layout(window).cells()];
    for i in nodes {
        for (t, v) in total.iter_mut().zip(statistic(work, i, template, window)) {
            *t += v;
        }
    }
    total
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
        for node in &mut self.nodes {
            let _ = node.kill();
            let _ = node.wait();
        }
        for (i, node) in self.nodes.iter_mut().enumerate() {
            let config = self.work.path().join(format!("node-{}.toml", i + 1));
            *node = Command::new(bin("concord-node"))
                .arg("--config")
                .arg(&config)
                .stderr(
                    std::fs::File::create(
                        self.work
                            .path()
                            .join(format!("node-{}.restarted.log", i + 1)),
                    )
                    .unwrap(),
                )
                .spawn()
                .unwrap();
            let text = std::fs::read_to_string(&config).unwrap();
            let deadline = Instant::now() + Duration::from_secs(60);
            while std::net::TcpStream::connect(format!("127.0.0.1:{}", port_of(&text))).is_err() {
                assert!(Instant::now() < deadline, "node-{} did not come up", i + 1);
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}
