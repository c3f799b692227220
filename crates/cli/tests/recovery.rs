//! Failures mid-query, with real processes: a deployment made by `concord demo` is started
//! again, with an *interposer* in front of node-2 — a gRPC server holding node-2's certificate
//! that passes every call on to node-2 but can hold back its contributions — so that a failure
//! lands at an exact point of the protocol. Then:
//!
//! 1. the coordinator is killed (SIGKILL) with two contributions acknowledged and node-2's
//!    held, and restarted: the query resumes, asks only node-2, and releases exactly the
//!    result the same query had in the demo (nothing lost, nothing counted twice);
//! 2. a node hangs (SIGSTOP): the query fails after the coordinator's node timeout, naming it;
//! 3. node-2 is killed while its contribution is held: the query fails, naming it;
//! 4. enrolment: researchers see the members; a researcher certificate cannot enrol, a node
//!    cannot enrol a non-https address, and a node enrolling again keeps its party number;
//! 5. a submission changed after the researcher signed it is refused on arrival.

#![cfg(unix)]

use concord_api::tls::{client_config, server_config};
use concord_api::v1::node_client::NodeClient;
use concord_api::v1::node_server::{Node, NodeServer};
use concord_api::v1::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn bin(name: &str) -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_concord")).with_file_name(name);
    assert!(
        path.is_file(),
        "{name} missing: run the workspace's tests (cargo test)"
    );
    path
}

/// Passes every call on to the real node; contributions wait until the gate is open.
struct Interposer {
    upstream: NodeClient<tonic::transport::Channel>,
    gate: tokio::sync::watch::Receiver<bool>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

#[tonic::async_trait]
impl Node for Interposer {
    async fn setup(&self, r: tonic::Request<SetupRequest>) -> Reply<SetupShare> {
        self.upstream.clone().setup(r.into_inner()).await
    }
    async fn propose(&self, r: tonic::Request<Proposal>) -> Reply<Decision> {
        self.upstream.clone().propose(r.into_inner()).await
    }
    type ContributeStream = tonic::Streaming<Contribution>;
    async fn contribute(
        &self,
        r: tonic::Request<ContributeRequest>,
    ) -> Reply<Self::ContributeStream> {
        self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.gate.clone().wait_for(|open| *open).await;
        self.upstream.clone().contribute(r.into_inner()).await
    }
    async fn fingerprint(&self, r: tonic::Request<FingerprintRequest>) -> Reply<SignedFingerprint> {
        self.upstream.clone().fingerprint(r.into_inner()).await
    }
    type DecryptStream = tonic::Streaming<DecryptShares>;
    async fn decrypt(
        &self,
        r: tonic::Request<tonic::Streaming<DecryptRequest>>,
    ) -> Reply<Self::DecryptStream> {
        let request = concord_api::chunks::collect(r.into_inner(), |_| Ok(usize::MAX)).await?;
        let parts = concord_api::chunks::stream(request);
        self.upstream.clone().decrypt(parts).await
    }
}

/// Starts an interposer for `node` (listening on `port`) in front of `upstream_url`.
fn interpose(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    node: &str,
    port: u16,
    upstream_url: String,
) -> (
    tokio::sync::watch::Sender<bool>,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let ca = read("ca.pem");
    let upstream = tonic::transport::Endpoint::from_shared(upstream_url)
        .unwrap()
        .tls_config(client_config(
            &ca,
            &read("coordinator.pem"),
            &read("coordinator.key"),
            node,
        ))
        .unwrap();
    let server = server_config(
        &ca,
        &read(&format!("{node}.pem")),
        &read(&format!("{node}.key")),
    );
    let (open, gate) = tokio::sync::watch::channel(false);
    let held = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let interposer = Interposer {
        upstream: NodeClient::new(runtime.block_on(async { upstream.connect_lazy() })),
        gate,
        held: held.clone(),
    };
    let listen = format!("127.0.0.1:{port}").parse().unwrap();
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .tls_config(server)
            .unwrap()
            .add_service(NodeServer::new(interposer))
            .serve(listen)
            .await
            .unwrap()
    });
    (open, held)
}

fn signal(child: &Child, signal: libc::c_int) {
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
}

struct Deployment {
    work: tempfile::TempDir,
    nodes: Vec<Child>,
    coordinator: Option<Child>,
    url: String,
    starts: usize,
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
    fn w(&self) -> &str {
        self.work.path().to_str().unwrap()
    }

    fn start_coordinator(&mut self) {
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

    fn coordinator_log(&self) -> String {
        std::fs::read_to_string(
            self.work
                .path()
                .join(format!("coordinator-{}.log", self.starts)),
        )
        .unwrap()
    }

    fn query(&self, args: &[&str]) -> Output {
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
    fn query_until_up(&self, args: &[&str]) -> Output {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = self.query(args);
            if out.status.success() || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn submit(&self) -> String {
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
    fn listed(&self, id: &str) -> String {
        let out = self.query(&["list"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_default()
            .to_owned()
    }

    fn wait_listed(&self, id: &str, what: &str) -> String {
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

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn port_of(config: &str) -> String {
    let first = config.lines().next().unwrap();
    first
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('"')
        .to_owned()
}

#[test]
fn queries_survive_a_coordinator_crash_and_fail_cleanly_when_a_node_dies_or_hangs() {
    bin("concord-node");
    let work = tempfile::tempdir().unwrap();
    let w = work.path().to_str().unwrap().to_owned();
    let demo = Command::new(env!("CARGO_BIN_EXE_concord"))
        .args(["demo", "--nodes", "3", "--work", &w])
        .output()
        .unwrap();
    let stdout = text(&demo.stdout);
    assert!(demo.status.success(), "{stdout}{}", text(&demo.stderr));
    let demo_query = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("[query "))
        .map(|r| r.split(':').next().unwrap().to_owned())
        .unwrap();

    // the demo's deployment, started again, with the interposer in front of node-2 (node-2
    // enrols with the interposer's address), and a coordinator that waits 5 s for a node
    let coordinator_toml = work.path().join("coordinator.toml");
    let config = std::fs::read_to_string(&coordinator_toml).unwrap();
    let url = format!("https://127.0.0.1:{}", port_of(&config));
    std::fs::write(
        &coordinator_toml,
        config.replacen("\n", "\nnode_timeout_s = 5\n", 1),
    )
    .unwrap();
    let node2_toml = work.path().join("node-2.toml");
    let node2 = std::fs::read_to_string(&node2_toml).unwrap();
    let node2_port = port_of(&node2);
    let interposer_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &node2_toml,
        node2.replace(
            &format!("advertise = \"https://127.0.0.1:{node2_port}\""),
            &format!("advertise = \"https://127.0.0.1:{interposer_port}\""),
        ),
    )
    .unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (gate, held) = interpose(
        &runtime,
        work.path(),
        "node-2",
        interposer_port,
        format!("https://127.0.0.1:{node2_port}"),
    );
    let held_now = || held.load(std::sync::atomic::Ordering::SeqCst);
    let nodes = (1..=3)
        .map(|i| {
            Command::new(bin("concord-node"))
                .arg("--config")
                .arg(work.path().join(format!("node-{i}.toml")))
                .stderr(
                    std::fs::File::create(work.path().join(format!("node-{i}.again.log"))).unwrap(),
                )
                .spawn()
                .unwrap()
        })
        .collect();
    let mut d = Deployment {
        work,
        nodes,
        coordinator: None,
        url,
        starts: 0,
    };
    // the nodes listen once their data is loaded
    for i in 1..=3 {
        let config = std::fs::read_to_string(d.work.path().join(format!("node-{i}.toml"))).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(format!("127.0.0.1:{}", port_of(&config))).is_err() {
            assert!(Instant::now() < deadline, "node-{i} did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    d.start_coordinator();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(d.work.path().join("node-2.again.log"))
        .unwrap()
        .contains("enrolled")
    {
        assert!(Instant::now() < deadline, "node-2 did not enrol again");
        std::thread::sleep(Duration::from_millis(50));
    }
    let expected = d.query_until_up(&["result", &demo_query, "--csv"]);
    assert!(expected.status.success(), "{}", text(&expected.stderr));

    // 1. node-2's contribution held; the other two acknowledged; the coordinator killed
    let id = d.submit();
    d.wait_listed(&id, "contributing (2 of 3 summed)");
    assert_eq!(held_now(), 1);
    let mut coordinator = d.coordinator.take().unwrap();
    coordinator.kill().unwrap();
    coordinator.wait().unwrap();
    gate.send(true).unwrap();
    d.start_coordinator();
    let out = d.query_until_up(&["result", &id, "--wait", "--csv"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        d.coordinator_log()
    );
    assert_eq!(text(&out.stdout), text(&expected.stdout));
    let log = d.coordinator_log();
    assert!(
        log.contains("resuming contributions") && log.contains("summed=2 asking=1"),
        "{log}"
    );
    // nodes 1 and 3 were not asked again
    for i in [1, 3] {
        let node_log =
            std::fs::read_to_string(d.work.path().join(format!("node-{i}.again.log"))).unwrap();
        let contributed = node_log
            .lines()
            .filter(|l| l.contains(&id) && l.contains("contributed"))
            .count();
        assert_eq!(contributed, 1, "node-{i}:\n{node_log}");
    }

    // 2. node-1 hangs: the query fails after the node timeout, naming it
    signal(&d.nodes[0], libc::SIGSTOP);
    let id = d.submit();
    let line = d.wait_listed(&id, "failed");
    assert!(
        line.contains("node-1") && line.contains("no reply within 5 s"),
        "{line}"
    );
    signal(&d.nodes[0], libc::SIGCONT);

    // 3. node-2 killed while its contribution is held: the query fails, naming it
    gate.send(false).unwrap();
    let before = held_now();
    let id = d.submit();
    d.wait_listed(&id, "contributing (2 of 3 summed)");
    assert_eq!(held_now(), before + 1);
    d.nodes[1].kill().unwrap();
    d.nodes[1].wait().unwrap();
    gate.send(true).unwrap();
    let line = d.wait_listed(&id, "failed");
    assert!(line.contains("node-2"), "{line}");

    // enrolment: the members as researchers see them; only a node certificate may enrol, and
    // only with an https:// address
    // (party numbers follow the order in which the demo's nodes enrolled)
    let members = text(&d.query(&["members"]).stdout);
    let members: Vec<(u32, &str)> = members
        .lines()
        .map(|l| {
            let (party, name) = l.trim().split_once("  ").unwrap();
            (party.parse().unwrap(), name)
        })
        .collect();
    let mut names: Vec<&str> = members.iter().map(|m| m.1).collect();
    names.sort();
    assert_eq!(names, ["node-1", "node-2", "node-3"]);
    let mut parties: Vec<u32> = members.iter().map(|m| m.0).collect();
    parties.sort();
    assert_eq!(parties, [1, 2, 3]);
    let node3_party = members.iter().find(|m| m.1 == "node-3").unwrap().0;
    let read = |f: &str| std::fs::read_to_string(d.work.path().join(f)).unwrap();
    // a client of the coordinator with `name`'s certificate
    let as_ = |name: &str| {
        let tls = client_config(
            &read("ca.pem"),
            &read(&format!("{name}.pem")),
            &read(&format!("{name}.key")),
            "coordinator",
        );
        let channel = runtime.block_on(
            tonic::transport::Endpoint::from_shared(d.url.clone())
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect(),
        );
        concord_api::v1::coordinator_client::CoordinatorClient::new(channel.unwrap())
    };
    let enrol_as = |name: &str, url: &str| {
        let url = url.to_owned();
        runtime.block_on(as_(name).enrol(Enrolment { url }))
    };
    let refused = enrol_as("researcher", "https://127.0.0.1:1").unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused}");
    let refused = enrol_as("node-3", "ftp://127.0.0.1:1").unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    let node3 = read("node-3.toml");
    let again = enrol_as("node-3", &format!("https://127.0.0.1:{}", port_of(&node3))).unwrap();
    assert_eq!(again.into_inner().party, node3_party);

    // 5. a submission whose signature does not verify is refused on arrival
    let mut spec = QuerySpec {
        template: "time-to-publish".into(),
        template_version: 1,
        window_first: "2025-01".into(),
        window_months: 12,
        min_institutions: 3,
        recipient_key: Vec::new(),
        signature: Vec::new(),
    };
    concord_api::submission::sign(&mut spec, &read("researcher.key")).unwrap();
    spec.window_months = 24; // changed after signing
    let refused = runtime
        .block_on(as_("researcher").submit(spec))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    assert!(refused.message().contains("signature"), "{refused}");
}
