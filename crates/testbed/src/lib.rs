//! A local Concord deployment on loopback: a development CA and certificates, one
//! `concord-node` process per institution and, unless the caller drives the nodes itself, a
//! `concord-coordinator` process the nodes enrol with — from typed configurations (the
//! binaries' own [`concord_node::config::Config`] and [`concord_coordinator::config::Config`],
//! serialized to TOML), stopped on drop.
//!
//! One mechanism for every deployment the project starts: `concord demo`, the end-to-end
//! benchmark and the system tests in the top-level `tests/`. A deployment's files (certificates,
//! configurations, logs, the nodes' keys and state) live in its work directory, so a test can
//! stop processes and start them again over the same state ([`Testbed::open`]).
//!
//! Layout of the work directory: `ca.pem`, `ca.key`; `coordinator.{pem,key,toml,redb}`;
//! `NAME.{pem,key,toml}` and `keys-NAME/` per node; logs `coordinator.log`, `NAME.log` (a
//! process started again logs to `NAME.K.log`, `K` counting its starts).

use concord_api::operations::OperationsConfig;

#[cfg(test)]
mod reference;
use concord_api::pki::{DevCa, Role};
use concord_coordinator::config::Config as CoordinatorConfig;
use concord_coordinator::{Deployment, NodeAddress};
use concord_node::config::{Config as NodeConfig, CoordinatorLink, DataSource, Policy, TlsFiles};
use process::{log_name, spawn, wait_for, Process};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

mod process;

/// How long a process may take to come up (load its data, listen, enrol).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum TestbedError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificates: {0}")]
    Pki(String),
    #[error("configuration {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("{binary} not found: build every binary first (cargo build --bins)")]
    Binary { binary: PathBuf },
    #[error("{what} did not come up within {seconds} s; see {log}")]
    NotUp {
        what: String,
        seconds: u64,
        log: PathBuf,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TestbedError + '_ {
    move |source| TestbedError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One institution's node: who it is, what data it serves and by which policy.
#[derive(Clone, Debug)]
pub struct Institution {
    /// The node's certificate name (also its TLS server name), e.g. `node-1`.
    pub name: String,
    /// Its MISP data: a feed directory or a directory of event exports.
    pub data: PathBuf,
    /// The institution's own organisation uuids (MISP `Orgc`).
    pub organisation_uuids: Vec<String>,
    pub sector: Option<String>,
    pub organisation_type: Option<String>,
    /// Its answers to the community survey (the `concord-stats` `survey` format), if any.
    pub survey: Option<String>,
    pub policy: Policy,
}

impl Institution {
    /// An institution with the default policy (but for `min_institutions`, which a small
    /// deployment lowers to what it has).
    pub fn new(name: impl Into<String>, data: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            organisation_uuids: Vec::new(),
            sector: None,
            organisation_type: None,
            survey: None,
            policy: Policy::default(),
        }
    }
}

/// The coordinator process of a deployment.
#[derive(Clone, Debug)]
pub struct CoordinatorSetup {
    /// Threshold mode: any `T` nodes release a result.
    pub threshold: Option<usize>,
    /// The longest the coordinator waits for a node.
    pub node_timeout_s: f64,
}

impl Default for CoordinatorSetup {
    fn default() -> Self {
        Self {
            threshold: None,
            node_timeout_s: 60.0,
        }
    }
}

/// A deployment to write and start.
#[derive(Clone, Debug)]
pub struct Setup {
    /// The work directory (created if needed).
    pub work: PathBuf,
    /// Where `concord-node` and `concord-coordinator` are ([`binaries_beside_tests`],
    /// [`binaries_beside`]).
    pub binaries: PathBuf,
    pub institutions: Vec<Institution>,
    /// The coordinator process; `None`: the nodes only, for a caller that drives them itself
    /// (an in-process [`concord_coordinator::Coordinator`] on [`Testbed::deployment`], or a
    /// test playing a malicious coordinator).
    pub coordinator: Option<CoordinatorSetup>,
}

/// The binaries of the running executable's build: beside it (a binary such as `concord`).
pub fn binaries_beside(exe: &Path) -> PathBuf {
    exe.parent().map(Path::to_owned).unwrap_or_default()
}

/// The binaries of the workspace build a test executable belongs to: `target/PROFILE/`, the
/// parent of the `deps/` directory tests run from.
pub fn binaries_beside_tests() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = binaries_beside(&exe);
    if dir.ends_with("deps") {
        dir.parent().map(Path::to_owned).unwrap_or(dir)
    } else {
        dir
    }
}

/// A free port on loopback (bound and released: good enough for a local deployment), never
/// one this process was given before: the kernel may hand a released port out again at once,
/// and a deployment takes two ports per node before any process binds them.
pub fn free_port() -> Result<u16, TestbedError> {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").map_err(io(Path::new("127.0.0.1:0")))?;
        let port = listener
            .local_addr()
            .map_err(io(Path::new("127.0.0.1:0")))?
            .port();
        if GIVEN.lock().expect("ports lock").insert(port) {
            return Ok(port);
        }
    }
}

/// A node of a running deployment.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub name: String,
    /// Its party number: its place in the setup, from 1.
    pub party: u32,
    pub port: u16,
    pub config: PathBuf,
}

impl NodeInfo {
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

/// A running deployment; every process is stopped on drop.
pub struct Testbed {
    work: PathBuf,
    binaries: PathBuf,
    nodes: Vec<(NodeInfo, Process)>,
    coordinator: Option<(u16, Process)>,
}

impl Testbed {
    /// Writes the deployment (CA, certificates, configurations) into `setup.work` and starts
    /// it: the coordinator first, then every node; returns once every node listens and, with a
    /// coordinator, has enrolled.
    pub fn start(setup: &Setup) -> Result<Self, TestbedError> {
        Self::write(setup)?;
        Self::open(&setup.work, &setup.binaries)
    }

    /// Writes the deployment's files without starting anything.
    pub fn write(setup: &Setup) -> Result<(), TestbedError> {
        let work = &setup.work;
        std::fs::create_dir_all(work).map_err(io(work))?;
        let pki = |e: &dyn std::fmt::Display| TestbedError::Pki(e.to_string());
        let ca = DevCa::generate("Concord testbed CA").map_err(|e| pki(&e))?;
        ca.write(work).map_err(|e| pki(&e))?;
        let tls = |name: &str| TlsFiles {
            ca: "ca.pem".into(),
            certificate: format!("{name}.pem").into(),
            key: format!("{name}.key").into(),
        };
        let coordinator_port = free_port()?;
        if let Some(c) = &setup.coordinator {
            ca.issue(
                Role::Coordinator,
                "coordinator",
                &["coordinator", "localhost", "127.0.0.1"],
            )
            .and_then(|issued| issued.write(work, "coordinator"))
            .map_err(|e| pki(&e))?;
            let config = CoordinatorConfig {
                listen: ([127, 0, 0, 1], coordinator_port).into(),
                state: "coordinator.redb".into(),
                node_timeout_s: c.node_timeout_s,
                tls: tls("coordinator"),
                threshold: c.threshold,
                nodes: Vec::new(),
                max_queries_in_flight_per_researcher: 16,
                operations: Some(OperationsConfig {
                    listen: ([127, 0, 0, 1], free_port()?).into(),
                }),
            };
            write_toml(&work.join("coordinator.toml"), &config)?;
        }
        for institution in &setup.institutions {
            let name = &institution.name;
            ca.issue(Role::Node, name, &[name, "localhost", "127.0.0.1"])
                .and_then(|issued| issued.write(work, name))
                .map_err(|e| pki(&e))?;
            let survey = match &institution.survey {
                Some(answers) => {
                    let path = work.join(format!("survey-{name}.toml"));
                    std::fs::write(&path, answers).map_err(io(&path))?;
                    Some(PathBuf::from(format!("survey-{name}.toml")))
                }
                None => None,
            };
            let port = free_port()?;
            let config = NodeConfig {
                listen: ([127, 0, 0, 1], port).into(),
                keys_dir: format!("keys-{name}").into(),
                organisation_uuids: institution.organisation_uuids.clone(),
                sector: institution.sector.clone(),
                organisation_type: institution.organisation_type.clone(),
                tls: tls(name),
                data: DataSource {
                    path: Some(
                        std::path::absolute(&institution.data).map_err(io(&institution.data))?,
                    ),
                    misp: None,
                    survey,
                    refresh_s: None,
                },
                policy: institution.policy.clone(),
                coordinator: setup.coordinator.as_ref().map(|_| CoordinatorLink {
                    url: Some(format!("https://127.0.0.1:{coordinator_port}")),
                    name: "coordinator".into(),
                    advertise: Some(format!("https://127.0.0.1:{port}")),
                }),
                audit_log: None,
                operations: Some(OperationsConfig {
                    listen: ([127, 0, 0, 1], free_port()?).into(),
                }),
            };
            write_toml(&work.join(format!("{name}.toml")), &config)?;
        }
        let names: Vec<&str> = setup.institutions.iter().map(|i| i.name.as_str()).collect();
        let list = work.join("nodes.txt");
        std::fs::write(&list, names.join("\n")).map_err(io(&list))?;
        Ok(())
    }

    /// Starts the deployment written in `work` (by [`Self::write`], or left by an earlier run):
    /// the coordinator, if it has one, then every node, waiting until each listens and, with a
    /// coordinator, has enrolled. Nodes keep their keys and state across starts.
    pub fn open(work: &Path, binaries: &Path) -> Result<Self, TestbedError> {
        let list = work.join("nodes.txt");
        let names = std::fs::read_to_string(&list).map_err(io(&list))?;
        let mut nodes = Vec::new();
        for (i, name) in names.lines().filter(|l| !l.is_empty()).enumerate() {
            let config = work.join(format!("{name}.toml"));
            let loaded = NodeConfig::load(&config).map_err(|e| TestbedError::Config {
                path: config.clone(),
                message: e.to_string(),
            })?;
            let info = NodeInfo {
                name: name.to_owned(),
                party: i as u32 + 1,
                port: loaded.listen.port(),
                config: config.clone(),
            };
            let process = Process {
                name: name.to_owned(),
                config,
                child: None,
                starts: 0,
            };
            nodes.push((info, process));
        }
        let coordinator_config = work.join("coordinator.toml");
        let coordinator = match coordinator_config.exists() {
            true => {
                let loaded = CoordinatorConfig::load(&coordinator_config).map_err(|e| {
                    TestbedError::Config {
                        path: coordinator_config.clone(),
                        message: e.to_string(),
                    }
                })?;
                let process = Process {
                    name: "coordinator".into(),
                    config: coordinator_config,
                    child: None,
                    starts: 0,
                };
                Some((loaded.listen.port(), process))
            }
            false => None,
        };
        let mut testbed = Self {
            work: work.to_owned(),
            binaries: binaries.to_owned(),
            nodes,
            coordinator,
        };
        if testbed.coordinator.is_some() {
            testbed.start_coordinator()?;
        }
        for i in 0..testbed.nodes.len() {
            testbed.spawn_node(i)?;
        }
        for i in 0..testbed.nodes.len() {
            testbed.wait_node(i)?;
        }
        Ok(testbed)
    }

    pub fn work(&self) -> &Path {
        &self.work
    }

    pub fn nodes(&self) -> impl Iterator<Item = &NodeInfo> {
        self.nodes.iter().map(|(info, _)| info)
    }

    pub fn node(&self, i: usize) -> &NodeInfo {
        &self.nodes[i].0
    }

    /// The coordinator's address, `https://127.0.0.1:PORT`.
    pub fn coordinator_url(&self) -> Option<String> {
        self.coordinator
            .as_ref()
            .map(|(port, _)| format!("https://127.0.0.1:{port}"))
    }

    /// What an in-process coordinator needs to drive the nodes: a fresh coordinator
    /// certificate of the deployment's CA, every node with party numbers 1..N.
    pub fn deployment(
        &self,
        timeout: Duration,
        threshold: Option<usize>,
    ) -> Result<Deployment, TestbedError> {
        let ca = DevCa::load(&self.work).map_err(|e| TestbedError::Pki(e.to_string()))?;
        let issued = ca
            .issue(Role::Coordinator, "coordinator", &["localhost"])
            .map_err(|e| TestbedError::Pki(e.to_string()))?;
        Ok(Deployment {
            ca_pem: ca.certificate_pem().to_owned(),
            certificate_pem: issued.certificate_pem.clone(),
            key_pem: issued.key_pem.clone(),
            nodes: self
                .nodes()
                .map(|n| NodeAddress {
                    name: n.name.clone(),
                    url: n.url(),
                    party: n.party,
                })
                .collect(),
            timeout,
            threshold,
        })
    }

    /// The process id of node `i`, while it runs.
    pub fn node_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].1.child.as_ref().map(Child::id)
    }

    /// The coordinator's process id, while it runs.
    pub fn coordinator_pid(&self) -> Option<u32> {
        self.coordinator
            .as_ref()
            .and_then(|(_, p)| p.child.as_ref().map(Child::id))
    }

    /// A process's log of its latest start.
    pub fn log(&self, name: &str) -> String {
        let starts = match name {
            "coordinator" => self.coordinator.as_ref().map_or(0, |(_, p)| p.starts),
            _ => self
                .nodes
                .iter()
                .find(|(info, _)| info.name == name)
                .map_or(0, |(_, p)| p.starts),
        };
        std::fs::read_to_string(self.work.join(log_name(name, starts))).unwrap_or_default()
    }

    /// Stops node `i` (killed, as a crash would).
    pub fn stop_node(&mut self, i: usize) {
        self.nodes[i].1.stop();
    }

    /// Starts node `i` again (after [`Self::stop_node`]) and waits until it listens (and, with
    /// a coordinator, has enrolled).
    pub fn start_node(&mut self, i: usize) -> Result<(), TestbedError> {
        self.spawn_node(i)?;
        self.wait_node(i)
    }

    /// Kills every node and starts it again (same configuration, keys and state).
    pub fn restart_nodes(&mut self) -> Result<(), TestbedError> {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
        for i in 0..self.nodes.len() {
            self.spawn_node(i)?;
        }
        for i in 0..self.nodes.len() {
            self.wait_node(i)?;
        }
        Ok(())
    }

    /// Stops the coordinator (killed, as a crash would).
    pub fn stop_coordinator(&mut self) {
        if let Some((_, process)) = &mut self.coordinator {
            process.stop();
        }
    }

    /// Starts the coordinator (again) over its state, and waits until it listens.
    pub fn start_coordinator(&mut self) -> Result<(), TestbedError> {
        let binary = self.binary("concord-coordinator")?;
        let work = self.work.clone();
        let Some((port, process)) = &mut self.coordinator else {
            return Ok(());
        };
        spawn(&binary, &work, process)?;
        let port = *port;
        wait_for(&work, "coordinator", process.starts, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        })
    }

    /// Sends `signal` (e.g. `libc::SIGSTOP`, `libc::SIGCONT`) to node `i`'s process; false if
    /// it is not running.
    pub fn signal_node(&self, i: usize, signal: libc::c_int) -> bool {
        self.nodes[i].1.signal(signal)
    }

    fn binary(&self, name: &str) -> Result<PathBuf, TestbedError> {
        let path = self
            .binaries
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if path.is_file() {
            Ok(path)
        } else {
            Err(TestbedError::Binary { binary: path })
        }
    }

    fn spawn_node(&mut self, i: usize) -> Result<(), TestbedError> {
        let binary = self.binary("concord-node")?;
        spawn(&binary, &self.work, &mut self.nodes[i].1)
    }

    /// Waits until node `i` listens and, with a coordinator, has enrolled.
    fn wait_node(&self, i: usize) -> Result<(), TestbedError> {
        let (info, process) = &self.nodes[i];
        let log = self.work.join(log_name(&info.name, process.starts));
        let enrols = self.coordinator.is_some();
        wait_for(&self.work, &info.name, process.starts, || {
            std::net::TcpStream::connect(("127.0.0.1", info.port)).is_ok()
                && (!enrols || std::fs::read_to_string(&log).is_ok_and(|l| l.contains("enrolled")))
        })
    }
}

fn write_toml(path: &Path, value: &impl serde::Serialize) -> Result<(), TestbedError> {
    let text = toml::to_string(value).map_err(|e| TestbedError::Config {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    std::fs::write(path, text).map_err(io(path))
}

impl Drop for Testbed {
    fn drop(&mut self) {
        // nodes first: a coordinator stopped first would leave them retrying enrolment
        let coordinator = self.coordinator.as_mut().map(|(_, p)| p);
        for process in self.nodes.iter_mut().map(|(_, p)| p).chain(coordinator) {
            // a stopped (SIGSTOP) process is continued, so that it dies at once
            process.signal(libc::SIGCONT);
            process.stop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_are_written_typed_and_read_back_by_the_binaries_loaders() {
        let dir = tempfile::tempdir().unwrap();
        let mut institution = Institution::new("node-1", dir.path().join("data"));
        institution.organisation_uuids = vec!["5cf66e53-b5f8-43e7-be9a-49880a3b4631".into()];
        institution.sector = Some("Finance".into());
        institution.survey = Some("# no answers\n".into());
        institution.policy.min_institutions = 2;
        institution.policy.allow_public_results = true;
        let setup = Setup {
            work: dir.path().to_owned(),
            binaries: PathBuf::new(),
            institutions: vec![institution],
            coordinator: Some(CoordinatorSetup {
                threshold: Some(2),
                node_timeout_s: 5.0,
            }),
        };
        Testbed::write(&setup).unwrap();
        let node = NodeConfig::load(&dir.path().join("node-1.toml")).unwrap();
        assert_eq!(node.organisation_uuids.len(), 1);
        assert_eq!(node.sector.as_deref(), Some("Finance"));
        assert_eq!(node.policy.min_institutions, 2);
        assert!(node.policy.allow_public_results);
        assert_eq!(node.tls.certificate, dir.path().join("node-1.pem"));
        assert_eq!(
            node.data.survey,
            Some(dir.path().join("survey-node-1.toml"))
        );
        let link = node.coordinator.unwrap();
        let coordinator = CoordinatorConfig::load(&dir.path().join("coordinator.toml")).unwrap();
        assert_eq!(coordinator.threshold, Some(2));
        assert_eq!(coordinator.node_timeout_s, 5.0);
        assert_eq!(
            link.url,
            Some(format!("https://127.0.0.1:{}", coordinator.listen.port()))
        );
        // without the binaries, starting says what is missing
        match Testbed::open(dir.path(), Path::new("/nonexistent")) {
            Err(TestbedError::Binary { binary }) => {
                assert!(
                    binary.ends_with("concord-coordinator"),
                    "{}",
                    binary.display()
                )
            }
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("started without binaries"),
        }
    }
}
