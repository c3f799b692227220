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
use std::path::Path;

use concord_system_tests::*;

/// Passes every call on to the real node; commitments wait until the gate is open.
struct Interposer {
    upstream: NodeClient<tonic::transport::Channel>,
    gate: tokio::sync::watch::Receiver<bool>,
    held: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

type Reply<T> = Result<tonic::Response<T>, tonic::Status>;

#[tonic::async_trait]
impl Node for Interposer {
    async fn setup(&self, r: tonic::Request<SetupRequest>) -> Reply<SignedKeyShare> {
        self.upstream.clone().setup(r.into_inner()).await
    }
    async fn pin(&self, r: tonic::Request<tonic::Streaming<PinRequest>>) -> Reply<PinnedKey> {
        let request = concord_api::chunks::collect(r.into_inner(), |_| Ok(usize::MAX)).await?;
        let parts = concord_api::chunks::stream(request);
        self.upstream.clone().pin(parts).await
    }
    async fn exchange_key_of(&self, r: tonic::Request<ExchangeKeyRequest>) -> Reply<ExchangeKey> {
        self.upstream.clone().exchange_key_of(r.into_inner()).await
    }
    type ReshareStream = tonic::Streaming<Resharings>;
    async fn reshare(&self, r: tonic::Request<ReshareRequest>) -> Reply<Self::ReshareStream> {
        self.upstream.clone().reshare(r.into_inner()).await
    }
    async fn combine(
        &self,
        r: tonic::Request<tonic::Streaming<CombineRequest>>,
    ) -> Reply<CombineReply> {
        let request = concord_api::chunks::collect(r.into_inner(), |_| Ok(usize::MAX)).await?;
        let parts = concord_api::chunks::stream(request);
        self.upstream.clone().combine(parts).await
    }
    async fn relinearize_one(
        &self,
        r: tonic::Request<RelinearizeRequest>,
    ) -> Reply<RelinearizeShare> {
        self.upstream.clone().relinearize_one(r.into_inner()).await
    }
    async fn relinearize_two(
        &self,
        r: tonic::Request<tonic::Streaming<RelinearizeRequest>>,
    ) -> Reply<RelinearizeShare> {
        let request = concord_api::chunks::collect(r.into_inner(), |_| Ok(usize::MAX)).await?;
        let parts = concord_api::chunks::stream(request);
        self.upstream.clone().relinearize_two(parts).await
    }
    async fn pin_relinearization(
        &self,
        r: tonic::Request<tonic::Streaming<RelinearizeRequest>>,
    ) -> Reply<PinnedKey> {
        let request = concord_api::chunks::collect(r.into_inner(), |_| Ok(usize::MAX)).await?;
        let parts = concord_api::chunks::stream(request);
        self.upstream.clone().pin_relinearization(parts).await
    }
    async fn propose(&self, r: tonic::Request<Proposal>) -> Reply<Decision> {
        self.upstream.clone().propose(r.into_inner()).await
    }
    async fn commit(&self, r: tonic::Request<CommitRequest>) -> Reply<Commitment> {
        self.held.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = self.gate.clone().wait_for(|open| *open).await;
        self.upstream.clone().commit(r.into_inner()).await
    }
    type RevealStream = tonic::Streaming<Contribution>;
    async fn reveal(&self, r: tonic::Request<RevealRequest>) -> Reply<Self::RevealStream> {
        self.upstream.clone().reveal(r.into_inner()).await
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
    async fn budget(&self, r: tonic::Request<BudgetRequest>) -> Reply<BudgetReport> {
        self.upstream.clone().budget(r.into_inner()).await
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

#[test]
fn queries_survive_a_coordinator_crash_and_fail_cleanly_when_a_node_dies_or_hangs() {
    let (work, stdout) = demo(3);
    let demo_query = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("[query "))
        .map(|r| r.split(':').next().unwrap().to_owned())
        .unwrap();

    // the demo's deployment, started again, with the interposer in front of node-2 (node-2
    // enrols with the interposer's address), and a coordinator that waits 5 s for a node
    edit_coordinator(work.path(), |config| config.node_timeout_s = 5.0);
    let node2_port = node_config(work.path(), "node-2").listen.port();
    let interposer_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    edit_node(work.path(), "node-2", |node2| {
        let link = node2.coordinator.as_mut().unwrap();
        link.advertise = Some(format!("https://127.0.0.1:{interposer_port}"));
    });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (gate, held) = interpose(
        &runtime,
        work.path(),
        "node-2",
        interposer_port,
        format!("https://127.0.0.1:{node2_port}"),
    );
    let held_now = || held.load(std::sync::atomic::Ordering::SeqCst);
    let mut d = concord_system_tests::Deployment::start(work);
    let expected = d.query_until_up(&["result", &demo_query, "--csv"]);
    assert!(expected.status.success(), "{}", text(&expected.stderr));

    // 1. node-2's commitment held; the other two acknowledged; the coordinator killed
    let id = d.submit();
    d.wait_listed(&id, "contributing (2 of 3 committed)");
    assert_eq!(held_now(), 1);
    d.testbed.stop_coordinator();
    gate.send(true).unwrap();
    d.testbed.start_coordinator().unwrap();
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
        log.contains("resuming commitments") && log.contains("committed=2 asking=1"),
        "{log}"
    );
    // nodes 1 and 3 were not asked again
    for i in [1, 3] {
        let node_log = d.testbed.log(&format!("node-{i}"));
        let contributed = node_log
            .lines()
            .filter(|l| l.contains(&id) && l.contains("committed to a contribution"))
            .count();
        assert_eq!(contributed, 1, "node-{i}:\n{node_log}");
    }

    // 2. node-1 hangs: the query fails after the node timeout, naming it
    assert!(d.testbed.signal_node(0, libc::SIGSTOP));
    let id = d.submit();
    let line = d.wait_listed(&id, "failed");
    assert!(
        line.contains("node-1") && line.contains("no reply within 5 s"),
        "{line}"
    );
    assert!(d.testbed.signal_node(0, libc::SIGCONT));

    // 3. node-2 killed while its commitment is held: the query fails, naming it
    gate.send(false).unwrap();
    let before = held_now();
    let id = d.submit();
    d.wait_listed(&id, "contributing (2 of 3 committed)");
    assert_eq!(held_now(), before + 1);
    d.testbed.stop_node(1);
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
    let node3 = node_config(d.work.path(), "node-3").listen.port();
    let again = enrol_as("node-3", &format!("https://127.0.0.1:{node3}")).unwrap();
    assert_eq!(again.into_inner().party, node3_party);

    // another researcher cannot tell which query ids exist: someone else's query and no query
    // answer alike
    concord_api::pki::DevCa::load(d.work.path())
        .unwrap()
        .issue(
            concord_api::pki::Role::Researcher,
            "mallory",
            &["localhost"],
        )
        .unwrap()
        .write(d.work.path(), "mallory")
        .unwrap();
    let get_as = |name: &str, id: &str| {
        let query_id = id.to_owned();
        runtime
            .block_on(as_(name).get(QueryRef { query_id }))
            .map(|r| r.into_inner())
    };
    let own = get_as("researcher", &id).unwrap();
    assert_eq!(own.query_id, id);
    // the whole signed query comes back, the key its result is sealed to included
    assert_eq!(
        own.spec.unwrap().recipient_key,
        std::fs::read(d.work.path().join("researcher.ADD-8192.pk")).unwrap()
    );
    let foreign = get_as("mallory", &id).unwrap_err();
    let unknown = get_as("mallory", "q-0000000000000000").unwrap_err();
    assert_eq!(foreign.code(), tonic::Code::NotFound, "{foreign}");
    assert_eq!(unknown.code(), foreign.code());
    assert_eq!(
        foreign.message().replace(&id, "ID"),
        unknown.message().replace("q-0000000000000000", "ID")
    );

    // more institutions than are enrolled: refused on arrival, saying how many there are
    let too_many = d.submit_with(&["--min-institutions", "5"]);
    assert!(!too_many.status.success());
    assert!(
        text(&too_many.stderr).contains("3 institutions are enrolled"),
        "{}",
        text(&too_many.stderr)
    );

    // 5. a submission whose signature does not verify is refused on arrival
    let mut spec = QuerySpec {
        template: "time-to-publish".into(),
        template_version: 1,
        window_first: "2025-01".into(),
        window_months: 12,
        min_institutions: 3,
        recipient_key: Vec::new(),
        signature: Vec::new(),
        ..Default::default()
    };
    concord_api::submission::sign(&mut spec, &read("researcher.key")).unwrap();
    spec.window_months = 24; // changed after signing
    let refused = runtime
        .block_on(as_("researcher").submit(spec.clone()))
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused}");
    assert!(refused.message().contains("signature"), "{refused}");

    // 6. one signed query is one query: submitted again, it is the same one, under the id its
    // signed terms derive; past its expiry it is refused on arrival
    spec.window_months = 12;
    let first = runtime
        .block_on(as_("researcher").submit(spec.clone()))
        .unwrap()
        .into_inner();
    let again = runtime
        .block_on(as_("researcher").submit(spec.clone()))
        .unwrap()
        .into_inner();
    assert_eq!(first.query_id, concord_api::submission::query_id(&spec));
    assert_eq!(again.query_id, first.query_id);
    assert_eq!(again.submitted_at, first.submitted_at);
    let mut expired = spec.clone();
    expired.nonce.clear();
    expired.expires_at = concord_api::submission::now() - 1;
    concord_api::submission::sign(&mut expired, &read("researcher.key")).unwrap();
    let refused = runtime
        .block_on(as_("researcher").submit(expired))
        .unwrap_err();
    assert!(refused.message().contains("expired"), "{refused}");
}
