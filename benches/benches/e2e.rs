//! The end-to-end harness: one whole query lifecycle with N `concord-node` processes over mutual
//! TLS on loopback, the coordinator driven in this process (the `concord-coordinator` library,
//! the same code as its binary). Prints, per phase and per role: wall time, CPU time, message
//! bytes sent and received, and peak memory.
//!
//! ```sh
//! cargo build --release --bins
//! cargo bench -p concord-benches --bench e2e -- [--nodes 16] [--months 67] [--queries 3] \
//!     [--template T] [--indicators K [--pool P]] [--bins B] [--timeout SECONDS]
//! ```
//!
//! `--indicators K` adds to every institution's feed K distinct indicators in feed-import
//! events, drawn with Zipf popularity from a shared pool of P (default 4K) —
//! `concord-stats` `generator::add_indicator_events` — for the overlap templates; `--bins B`
//! asks an overlap query for B bins per histogram. An overlap query's plan follows the number
//! of nodes (`MUL-32768-T26` above 16), and its released histogram is checked against the
//! plain one over the same bins, binned with the key read from node-1's key directory.
//!
//! The default query is `attributes-by-month-category-type-ids` over 67 months: 65,124 cells
//! (8 ciphertexts of `ADD-8192-T33`). Every node holds a generated MISP feed. CPU time is read
//! from `/proc/<pid>/task/*/schedstat` (ns, all threads); peak memory is the resident-set
//! high-water mark (`VmHWM`), reset before each phase through `/proc/<pid>/clear_refs` where
//! the kernel allows it (otherwise it is the peak since start, and the table says so).
//! Bytes are protobuf message bytes; TLS records and HTTP/2 frames add a little.

use concord_api::pki::{DevCa, Role};
use concord_api::v1::QuerySpec;
use concord_benches::{generated_institutions, usage, Usage, EVENTS_PER_INSTITUTION};
use concord_coordinator::store::QueryStore;
use concord_coordinator::{Coordinator, StepReport};
use concord_stats::{Template, YearMonth};
use concord_testbed::{binaries_beside_tests, Setup, Testbed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Args {
    nodes: usize,
    months: u16,
    queries: usize,
    template: String,
    /// Indicators added to each institution's feed (feed-import events), for overlap queries.
    indicators: usize,
    /// The pool they are drawn from (Zipf(1) popularity).
    pool: u64,
    /// An overlap query's bins per histogram (0: the template's).
    bins: u32,
    /// How long the coordinator waits for one node's answer (a release of many bins on one
    /// host of a few cores takes longer than the default 600 s).
    timeout_s: u64,
}

fn args() -> Args {
    let mut a = Args {
        nodes: 16,
        months: 67,
        queries: 3,
        template: "attributes-by-month-category-type-ids".into(),
        indicators: 0,
        pool: 0,
        bins: 0,
        timeout_s: 600,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < argv.len() {
        let value = argv.get(i + 1).cloned().unwrap_or_default();
        match argv[i].as_str() {
            "--nodes" => a.nodes = value.parse().expect("--nodes N"),
            "--months" => a.months = value.parse().expect("--months M"),
            "--queries" => a.queries = value.parse().expect("--queries Q"),
            "--template" => a.template = value,
            "--indicators" => a.indicators = value.parse().expect("--indicators K"),
            "--pool" => a.pool = value.parse().expect("--pool P"),
            "--bins" => a.bins = value.parse().expect("--bins B"),
            "--timeout" => a.timeout_s = value.parse().expect("--timeout SECONDS"),
            _ => {
                i += 1; // cargo's own flags (--bench)
                continue;
            }
        }
        i += 2;
    }
    a
}

/// Resets a process's peak-memory mark; false where the kernel does not allow it.
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

struct Roles {
    coordinator: u32,
    nodes: Vec<u32>,
    peaks_reset: bool,
}

impl Roles {
    fn sample(&self) -> (Usage, Vec<Usage>) {
        (
            usage(self.coordinator),
            self.nodes.iter().map(|&p| usage(p)).collect(),
        )
    }
    fn reset(&mut self) {
        let mut ok = reset_peak(self.coordinator);
        for &p in &self.nodes {
            ok &= reset_peak(p);
        }
        self.peaks_reset = ok;
    }
}

struct Row {
    report: StepReport,
    coordinator: Usage,
    nodes_cpu: Duration,
    nodes_peak_max: u64,
    nodes_peak_mean: u64,
}

fn main() {
    let args = args();
    let template = Template::by_id(&args.template).expect("a template of the catalogue");
    let first = YearMonth::parse("2020-01").unwrap();
    let window = concord_stats::Window::new(first, args.months).expect("window");
    // the layout the query's plan sizes for the community (an overlap query's set and cells
    // follow the number of nodes)
    let mut sized = concord_query::QueryPlan::new(template, window, args.nodes)
        .unwrap_or_else(|e| panic!("{}: {e}", args.template));
    if args.bins > 0 {
        sized = sized.with_bins(args.bins as usize).unwrap();
    }
    let layout = sized.layout.clone();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // N nodes with generated feeds, each a process started by the testbed; the coordinator
    // runs here
    let institutions = generated_institutions(dir, args.nodes, first, args.months, 7);
    let mut events = args.nodes * EVENTS_PER_INSTITUTION;
    if args.indicators > 0 {
        // feed imports: K indicators per institution from a shared pool (default 4K)
        let pool = if args.pool > 0 {
            args.pool
        } else {
            4 * args.indicators as u64
        };
        for (i, institution) in institutions.iter().enumerate() {
            let name = format!("node-{}", i + 1);
            let profile = concord_stats::generator::Profile {
                organisation_uuid: concord_stats::generator::organisation_uuid(&name),
                name,
                events: EVENTS_PER_INSTITUTION,
                own_share: 0.3,
                peers: Vec::new(),
                first,
                months: args.months,
                seed: 7 + i as u64,
            };
            concord_stats::generator::add_indicator_events(
                &institution.data,
                &profile,
                args.indicators,
                pool,
            )
            .unwrap();
            events += args.indicators.div_ceil(1000);
        }
        println!(
            "{} indicators drawn per institution (Zipf(1) over a pool of {pool})",
            args.indicators
        );
    }
    // the nodes log warnings only (they inherit the filter)
    std::env::set_var("RUST_LOG", "warn");
    let testbed = Testbed::start(&Setup {
        work: dir.to_owned(),
        binaries: binaries_beside_tests(),
        institutions,
        coordinator: None,
    })
    .unwrap_or_else(|e| {
        eprintln!("{e} (cargo build --release --bins)");
        std::process::exit(2)
    });
    let deployment = testbed
        .deployment(Duration::from_secs(args.timeout_s), None)
        .unwrap();
    let ca = DevCa::load(dir).unwrap();
    let store = Arc::new(QueryStore::open(&dir.join("coordinator.redb")).unwrap());
    let mut roles = Roles {
        coordinator: std::process::id(),
        nodes: (0..args.nodes)
            .map(|i| testbed.node_pid(i).expect("a running node"))
            .collect(),
        peaks_reset: false,
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rows: Arc<Mutex<Vec<Row>>> = Arc::default();
    let _context = runtime.enter();
    let mut coordinator = Coordinator::connect(&deployment, store).unwrap();
    // every phase end samples the roles against the previous sample
    let last = Arc::new(Mutex::new(roles.sample()));
    roles.reset();
    let roles = Arc::new(Mutex::new(roles));
    {
        let (rows, last, roles) = (rows.clone(), last.clone(), roles.clone());
        coordinator.observe(move |report| {
            let mut roles = roles.lock().unwrap();
            let (c, nodes) = roles.sample();
            let (c0, nodes0) = last.lock().unwrap().clone();
            let peaks: Vec<u64> = nodes.iter().map(|u| u.peak_kib).collect();
            rows.lock().unwrap().push(Row {
                report: report.clone(),
                coordinator: Usage {
                    cpu: c.cpu.saturating_sub(c0.cpu),
                    peak_kib: c.peak_kib,
                },
                nodes_cpu: nodes
                    .iter()
                    .zip(&nodes0)
                    .map(|(a, b)| a.cpu.saturating_sub(b.cpu))
                    .sum(),
                nodes_peak_max: peaks.iter().copied().max().unwrap_or(0),
                nodes_peak_mean: peaks.iter().sum::<u64>() / peaks.len().max(1) as u64,
            });
            roles.reset();
            *last.lock().unwrap() = roles.sample();
        });
    }

    let params = concord_bfv::BfvParameters::new(
        concord_bfv::params::spec_by_name(layout.parameter_set).unwrap(),
    )
    .unwrap();
    // the researcher's key: results are sealed to it (PCKS), the default release
    let researcher = concord_bfv::SecretKey::generate(&params);
    let recipient_key = concord_bfv::PublicKey::generate(&researcher).to_bytes();
    let alice = ca.issue(Role::Researcher, "alice", &["localhost"]).unwrap();
    let alice_der = concord_api::submission::certificate_der(&alice.certificate_pem).unwrap();
    let setup_started = Instant::now();
    runtime.block_on(coordinator.setup(&params)).unwrap();
    let setup = setup_started.elapsed();
    let mut lifecycles = Vec::new();
    for _ in 0..args.queries {
        *last.lock().unwrap() = roles.lock().unwrap().sample();
        roles.lock().unwrap().reset();
        let started = Instant::now();
        let mut spec = QuerySpec {
            template: args.template.clone(),
            template_version: template.info().version,
            window_first: first.to_string(),
            window_months: args.months as u32,
            min_institutions: 2,
            recipient_key: recipient_key.clone(),
            signature: Vec::new(),
            bins: args.bins,
            // a training template: its first round, every node's gradient at the model 0
            training: concord_api::v1::TrainingRound::first(&template, 1),
            ..Default::default()
        };
        concord_api::submission::sign(&mut spec, &alice.key_pem).unwrap();
        let query_id = concord_api::submission::query_id(&spec);
        // the researcher opens the sealed result by the query's agreement
        let plan = spec.agreement(args.nodes).unwrap().plan;
        let outcome = runtime
            .block_on(coordinator.run_query(spec, &alice_der))
            .unwrap();
        lifecycles.push(started.elapsed());
        assert_eq!(outcome.contributors.len(), args.nodes);
        let plaintexts: Vec<_> = outcome
            .sealed
            .iter()
            .map(|b| {
                researcher
                    .decrypt(&concord_bfv::Ciphertext::from_bytes(&params, b).unwrap())
                    .unwrap()
            })
            .collect();
        let cells = plan.decode(&plaintexts).unwrap();
        assert_eq!(cells.len(), layout.cells());
        assert!(cells.iter().any(|&c| c > 0));
        if let Some(bins) = plan.layout.overlap {
            // exact: the plain histogram of the institutions' feeds, binned by the key the
            // nodes agreed on (node-1's copy)
            let stored = std::fs::read(
                dir.join("keys-node-1")
                    .join(format!("{}.binning", params.name())),
            )
            .unwrap();
            let key = concord_stats::overlap::BinningKey::new(stored[32..].try_into().unwrap())
                .for_query(&query_id);
            let events: Vec<Vec<concord_stats::Event>> = (1..=args.nodes)
                .map(|i| {
                    concord_stats::load(&dir.join("data").join(format!("node-{i}")))
                        .unwrap()
                        .events
                })
                .collect();
            let events: Vec<&[concord_stats::Event]> = events.iter().map(Vec::as_slice).collect();
            let reference = concord_stats::overlap::reference(&events, &window, &bins, &key);
            let reference: Vec<i128> = reference.iter().map(|&c| c as i128).collect();
            assert_eq!(cells, reference, "the released histogram is the plain one");
            println!("result: equal to the plain histogram of the bins, every count");
            for line in template.findings(&plan.layout, &cells) {
                println!("result: {line}");
            }
        }
    }

    let peaks_reset = roles.lock().unwrap().peaks_reset;
    println!(
        "end to end: {} node processes, {} ({} cells, {} ciphertexts of {}), {} events in all",
        args.nodes,
        args.template,
        layout.cells(),
        sized.ciphertexts(),
        params.name(),
        events
    );
    println!(
        "peak memory is {}",
        if peaks_reset {
            "per phase"
        } else {
            "since process start (clear_refs not allowed here)"
        }
    );
    println!(
        "| query        | phase        |   wall ms | coord. CPU ms | nodes CPU ms (sum) | coord. → nodes | nodes → coord. | coord. peak MiB | node peak MiB (max / mean) |"
    );
    println!(
        "|--------------|--------------|-----------|---------------|--------------------|----------------|----------------|-----------------|----------------------------|"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    for row in rows.lock().unwrap().iter() {
        println!(
            "| {:<12} | {:<12} | {:>9.1} | {:>13.1} | {:>18.1} | {:>12.2} MB | {:>12.2} MB | {:>15.1} | {:>12.1} / {:<11.1} |",
            row.report.query.trim_start_matches("bench-"),
            row.report.step,
            row.report.wall.as_secs_f64() * 1e3,
            row.coordinator.cpu.as_secs_f64() * 1e3,
            row.nodes_cpu.as_secs_f64() * 1e3,
            row.report.sent as f64 / 1e6,
            row.report.received as f64 / 1e6,
            mib(row.coordinator.peak_kib),
            mib(row.nodes_peak_max),
            mib(row.nodes_peak_mean),
        );
    }
    let mut sorted = lifecycles.clone();
    sorted.sort();
    println!(
        "\nsetup (CKG, {} nodes): {:.1} ms; whole query lifecycle after setup: {} — median {:.1} ms",
        args.nodes,
        setup.as_secs_f64() * 1e3,
        lifecycles
            .iter()
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
            .join(", "),
        sorted[sorted.len() / 2].as_secs_f64() * 1e3
    );
    drop(testbed);
}
