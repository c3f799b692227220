//! Queries in parallel: R researchers each submit Q signed, sealed queries at once to a
//! coordinator process driving N `concord-node` processes (mutual TLS on loopback). Prints how
//! many completed, the latency of each query from submission to release (median, 90th
//! percentile, maximum), the throughput, and the coordinator's and nodes' peak memory and CPU.
//!
//! ```sh
//! cargo build --release --bins
//! cargo bench -p concord-benches --bench load -- [--researchers 10] [--queries 10] [--nodes 16]
//! ```
//!
//! The query is `events-by-month-tlp-distribution` over 12 months (432 cells, one ciphertext
//! of `ADD-8192`), each researcher's sealed to their own result key. The collective key is set
//! up by the first query (its time is in that query's latency, and said apart). Every
//! researcher may have up to 16 queries in flight (the coordinator's default).

use concord_api::pki::{DevCa, Role};
use concord_api::v1::coordinator_client::CoordinatorClient;
use concord_api::v1::{QueryRef, QuerySpec};
use concord_benches::{generated_institutions, usage};
use concord_stats::{Template, YearMonth};
use concord_testbed::{binaries_beside_tests, CoordinatorSetup, Setup, Testbed};
use std::time::{Duration, Instant};

struct Args {
    researchers: usize,
    queries: usize,
    nodes: usize,
}

fn args() -> Args {
    let mut a = Args {
        researchers: 10,
        queries: 10,
        nodes: 16,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--researchers" => a.researchers = value.parse().expect("--researchers R"),
            "--queries" => a.queries = value.parse().expect("--queries Q"),
            "--nodes" => a.nodes = value.parse().expect("--nodes N"),
            _ => {
                i += 1; // cargo's own flags (--bench)
                continue;
            }
        }
        i += 2;
    }
    a
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let args = args();
    let template = Template::EventsByMonthTlpDistribution;
    let first = YearMonth::parse("2025-01").unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut institutions = generated_institutions(dir, args.nodes, first, 12, 11);
    for institution in &mut institutions {
        // every query of every researcher is new: well within the hourly proposal limit
        institution.policy.max_proposals_per_hour = 10_000;
    }
    let testbed = Testbed::start(&Setup {
        work: dir.to_owned(),
        binaries: binaries_beside_tests(),
        institutions,
        coordinator: Some(CoordinatorSetup::default()),
    })
    .unwrap_or_else(|e| {
        eprintln!("{e} (cargo build --release --bins)");
        std::process::exit(2)
    });
    let url = testbed.coordinator_url().unwrap();
    let coordinator_pid = testbed.coordinator_pid().unwrap();
    let node_pids: Vec<u32> = (0..args.nodes)
        .map(|i| testbed.node_pid(i).unwrap())
        .collect();
    let ca = DevCa::load(dir).unwrap();
    let ca_pem = ca.certificate_pem().to_owned();
    let window = concord_stats::Window::new(first, 12).unwrap();
    let params = concord_bfv::BfvParameters::new(
        concord_bfv::params::spec_by_name(template.layout(&window).parameter_set).unwrap(),
    )
    .unwrap();

    // every researcher's certificate, result key and signed queries, made before the clock
    let researchers: Vec<(concord_api::pki::IssuedCertificate, Vec<QuerySpec>)> = (0..args
        .researchers)
        .map(|r| {
            let name = format!("researcher-{r}");
            let issued = ca.issue(Role::Researcher, &name, &["localhost"]).unwrap();
            let key = concord_bfv::PublicKey::generate(&concord_bfv::SecretKey::generate(&params));
            let specs = (0..args.queries)
                .map(|_| {
                    let mut spec = QuerySpec {
                        template: template.info().id.into(),
                        template_version: template.info().version,
                        window_first: "2025-01".into(),
                        window_months: 12,
                        min_institutions: 3,
                        recipient_key: key.to_bytes(),
                        ..Default::default()
                    };
                    concord_api::submission::sign(&mut spec, &issued.key_pem).unwrap();
                    spec
                })
                .collect();
            (issued, specs)
        })
        .collect();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let c0 = usage(coordinator_pid).cpu;
    let n0: Vec<Duration> = node_pids.iter().map(|&p| usage(p).cpu).collect();
    let started = Instant::now();
    let outcomes: Vec<(Duration, String)> = runtime.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for (issued, specs) in researchers {
            let (url, ca_pem) = (url.clone(), ca_pem.clone());
            tasks.spawn(async move {
                let tls = concord_api::tls::client_config(
                    &ca_pem,
                    &issued.certificate_pem,
                    &issued.key_pem,
                    "coordinator",
                );
                let channel = tonic::transport::Endpoint::from_shared(url)
                    .unwrap()
                    .tls_config(tls)
                    .unwrap()
                    .connect()
                    .await
                    .unwrap();
                let mut client = CoordinatorClient::new(channel);
                // all of this researcher's queries at once, then each followed to its end
                let mut submitted = Vec::new();
                for spec in specs {
                    let at = Instant::now();
                    let id = client.submit(spec).await.unwrap().into_inner().query_id;
                    submitted.push((id, at));
                }
                let mut done = Vec::new();
                while !submitted.is_empty() {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    let mut waiting = Vec::new();
                    for (id, at) in submitted {
                        let status = client
                            .get(QueryRef {
                                query_id: id.clone(),
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        if status.is_finished() {
                            done.push((at.elapsed(), status.phase_name().to_owned()));
                        } else {
                            waiting.push((id, at));
                        }
                    }
                    submitted = waiting;
                }
                done
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done.unwrap());
        }
        all
    });
    let wall = started.elapsed();
    let coordinator = usage(coordinator_pid);
    let (c1, coordinator_peak) = (coordinator.cpu, coordinator.peak_kib);
    let nodes: Vec<_> = node_pids.iter().map(|&p| usage(p)).collect();
    let nodes_cpu: Duration = nodes
        .iter()
        .zip(&n0)
        .map(|(u, before)| u.cpu.saturating_sub(*before))
        .sum();
    let node_peak_max = nodes.iter().map(|u| u.peak_kib).max().unwrap_or(0);

    let released = outcomes.iter().filter(|(_, p)| p == "released").count();
    let mut latencies: Vec<Duration> = outcomes.iter().map(|(d, _)| *d).collect();
    latencies.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "load: {} researchers × {} queries on {} nodes ({}, 12 months, sealed)",
        args.researchers,
        args.queries,
        args.nodes,
        template.info().id
    );
    println!(
        "  completed: {released} released, {} failed, of {}",
        outcomes.len() - released,
        args.researchers * args.queries
    );
    println!(
        "  latency (submission → released): median {:.0} ms, p90 {:.0} ms, max {:.0} ms (the first query includes the key setup)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.9)),
        ms(*latencies.last().unwrap())
    );
    println!(
        "  wall {:.1} s: {:.2} queries per second",
        wall.as_secs_f64(),
        outcomes.len() as f64 / wall.as_secs_f64()
    );
    println!(
        "  coordinator: CPU {:.1} s, peak resident {:.1} MiB",
        c1.saturating_sub(c0).as_secs_f64(),
        coordinator_peak as f64 / 1024.0
    );
    println!(
        "  nodes: CPU {:.1} s in all ({:.2} s per query), peak resident {:.1} MiB (largest)",
        nodes_cpu.as_secs_f64(),
        nodes_cpu.as_secs_f64() / outcomes.len() as f64,
        node_peak_max as f64 / 1024.0
    );
    drop(testbed);
    if released != outcomes.len() {
        std::process::exit(1);
    }
}
