//! `concord demo`: a whole deployment on one machine, started by `concord-testbed`. A
//! development CA and certificates in a work directory; each institution's MISP data (from the
//! project's generator, or real MISP data split by creator organisation); one `concord-node`
//! process per institution on loopback and a `concord-coordinator` process; one query per template submitted as a
//! researcher and followed to its release over mutual TLS; the results printed; everything
//! stopped.

use crate::client;
use concord_api::pki::{DevCa, Role};
use concord_stats::generator::{organisation_uuid, write_feed, Profile};
use concord_stats::{YearMonth, TEMPLATES};
use concord_testbed::{CoordinatorSetup, Institution, Setup, Testbed};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct DemoArgs {
    pub work: Option<PathBuf>,
    pub data: Option<PathBuf>,
    pub nodes: usize,
    pub from: Option<String>,
    pub months: Option<u16>,
    /// Threshold mode: any `T` of the nodes release a result.
    pub threshold: Option<usize>,
    /// Where the chart of every result goes.
    pub plots: PathBuf,
    /// Results as JSON lines on standard output, the narrative on standard error.
    pub json: bool,
    /// Every non-zero cell of every table.
    pub all: bool,
}

/// The demo's narrative: to standard output, or to standard error when the results are JSON.
macro_rules! say {
    ($json:expr, $($arg:tt)*) => {
        if $json { eprintln!($($arg)*) } else { println!($($arg)*) }
    };
}

/// The demo's institutions: name, sector (MISP sector galaxy) and kind of organisation.
const INSTITUTIONS: &[(&str, &str, &str)] = &[
    ("CERT-National", "Government, Administration", "CSIRT"),
    ("Finance-ISAC", "Finance", "ISAC"),
    ("Energy-CSIRT", "Energy", "CSIRT"),
    ("University-CERT", "Academia - University", "academia"),
    ("Telecom-CSIRT", "Telecoms", "CSIRT"),
    ("Health-ISAC", "Health", "ISAC"),
    ("Transport-CERT", "Transport", "CSIRT"),
    ("Gov-SOC", "Government, Administration", "government agency"),
];

pub fn run(args: DemoArgs) -> Result<(), Box<dyn std::error::Error>> {
    let n = args.nodes;
    if !(3..=INSTITUTIONS.len()).contains(&n) {
        return Err(format!("--nodes must be between 3 and {}", INSTITUTIONS.len()).into());
    }
    let binaries = concord_testbed::binaries_beside(&std::env::current_exe()?);
    let temp;
    let work: PathBuf = match args.work {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_owned()
        }
    };
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(&args.plots)?;
    let institutions: Vec<String> = INSTITUTIONS[..n]
        .iter()
        .map(|(name, ..)| name.to_string())
        .collect();

    // data for every institution
    let (first, months) = match &args.data {
        None => {
            let first = YearMonth::parse(args.from.as_deref().unwrap_or("2025-01"))
                .ok_or("--from must be YYYY-MM")?;
            let months = args.months.unwrap_or(12);
            let orgs: Vec<(String, String)> = institutions
                .iter()
                .map(|n| (n.clone(), organisation_uuid(n)))
                .collect();
            for (i, name) in institutions.iter().enumerate() {
                write_feed(
                    &work.join("data").join(name),
                    &Profile {
                        name: name.clone(),
                        organisation_uuid: organisation_uuid(name),
                        events: [400, 250, 150, 100, 200, 120, 80, 60][i],
                        own_share: [0.6, 0.2, 0.35, 0.1, 0.3, 0.25, 0.15, 0.5][i],
                        peers: orgs.iter().filter(|(o, _)| o != name).cloned().collect(),
                        first,
                        months,
                        seed: 1000 + i as u64,
                    },
                )?;
            }
            say!(
                args.json,
                "MISP feeds for {n} institutions written by the generator under {}",
                work.join("data").display()
            );
            (first, months)
        }
        Some(source) => {
            let said = split_by_creator(source, &work.join("data"), &institutions)?;
            say!(args.json, "{said}");
            (
                YearMonth::parse(args.from.as_deref().unwrap_or("2016-12"))
                    .ok_or("--from must be YYYY-MM")?,
                args.months.unwrap_or(120),
            )
        }
    };
    concord_stats::Window::new(first, months)?;

    // certificates, configurations, processes: the coordinator and one node per institution
    let mut setup = Setup {
        work: work.clone(),
        binaries,
        institutions: Vec::new(),
        coordinator: Some(CoordinatorSetup {
            threshold: args.threshold,
            ..CoordinatorSetup::default()
        }),
    };
    for (i, name) in institutions.iter().enumerate() {
        let (_, sector, kind) = INSTITUTIONS[i];
        let data_dir = work.join("data").join(name);
        let orgs: Vec<String> = concord_stats::load(&data_dir)?
            .events
            .iter()
            .filter_map(|e| e.creator_uuid().map(str::to_owned))
            .filter(|u| args.data.is_some() || *u == organisation_uuid(name))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut institution = Institution::new(format!("node-{}", i + 1), data_dir);
        institution.organisation_uuids = orgs;
        institution.sector = Some(sector.into());
        institution.organisation_type = Some(kind.into());
        // the institution's answers to the community survey (generated for the demo)
        institution.survey = Some(concord_stats::generator::survey_answers(name));
        institution.policy.min_institutions = 3;
        setup.institutions.push(institution);
    }
    Testbed::write(&setup)?;
    let ca = DevCa::load(&work)?;
    ca.issue(Role::Researcher, "researcher", &["localhost"])?
        .write(&work, "researcher")?;
    crate::keys::init(&work, "researcher", false)?;
    let started = Instant::now();
    let testbed = Testbed::open(&work, &setup.binaries)?;
    let url = testbed
        .coordinator_url()
        .ok_or("the demo has a coordinator")?;
    say!(args.json, "  coordinator      on {url}");
    for (node, name) in testbed.nodes().zip(&institutions) {
        say!(
            args.json,
            "  {name:<16} {} on 127.0.0.1:{}",
            node.name,
            node.port
        );
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let mut researcher = client::connect(&url, "coordinator", &work, "researcher").await?;
        say!(args.json, "coordinator and {n} nodes up and enrolled in {:.1} s; window {first} + {months} months\n", started.elapsed().as_secs_f64());
        for template in TEMPLATES {
            let info = template.info();
            let started = Instant::now();
            // the result is sealed to the researcher's key: the coordinator cannot read it
            let mut spec = client::spec(info.id, &first.to_string(), months, 3)?;
            // a training template: its first round, every node's gradient at the model 0
            spec.training = concord_api::v1::TrainingRound::first(template, 1);
            let set = spec.agreement(n)?.plan.params.name();
            spec.recipient_key = crate::keys::public_key(&work, "researcher", set)?;
            client::sign(&mut spec, &work, "researcher")?;
            let submitted = researcher.submit(spec).await?.into_inner();
            let status = client::wait(&mut researcher, &submitted.query_id, Duration::from_secs(300)).await?;
            say!(args.json, "{} v{} — {}", info.id, info.version, info.question);
            if !status.is_released() {
                return Err(format!("query {} {}: {}", status.query_id, status.phase_name(), status.detail).into());
            }
            let (layout, cells) = (client::layout_of(&status)?, client::cells_of(&status, &work, "researcher")?);
            if args.json {
                client::print_json(&status, &layout, &cells);
            } else {
                client::print_table(*template, &layout, &cells, args.all);
            }
            for extension in ["png", "svg"] {
                client::plot(&status, &layout, &cells, &args.plots.join(format!("{}.{extension}", info.id)))?;
            }
            say!(args.json,
                "  [query {}: {} institutions, sealed to the researcher's key, released by the shares of {}, smudging λ = {:.1} bits, {:.2} s]\n",
                status.query_id,
                status.institutions,
                status.shares_from.join(", "),
                status.smudging_lambda,
                started.elapsed().as_secs_f64()
            );
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    drop(testbed);
    say!(
        args.json,
        "charts of every result (PNG and SVG) are in {}",
        args.plots.display()
    );
    say!(
        args.json,
        "all nodes stopped; certificates, configurations and logs were in {}",
        work.display()
    );
    Ok(())
}

/// Splits real MISP data over the institutions by creator organisation (`Orgc`), reading what a
/// node reads: feed directories (those with a `manifest.json`: the events it lists) and event
/// exports below `source` in every shape the loader takes (an export, a REST answer, a list,
/// a byte-order mark). Each event is written as its own export file in the directory of the
/// institution its creator is assigned to, so a file mixing creators is split per event; what
/// is skipped (files without events, files a manifest does not list, invalid events) is counted
/// and said in the summary returned.
fn split_by_creator(
    source: &Path,
    out: &Path,
    institutions: &[String],
) -> Result<String, Box<dyn std::error::Error>> {
    use std::collections::{BTreeMap, BTreeSet};
    // creator uuid → (event uuid, the event's own JSON object)
    let mut by_creator: BTreeMap<String, BTreeMap<String, serde_json::Value>> = BTreeMap::new();
    let (mut files, mut not_events, mut unlisted, mut invalid) = (0usize, 0usize, 0usize, 0usize);
    let mut stack = vec![source.to_owned()];
    while let Some(dir) = stack.pop() {
        // a feed directory: only what its manifest lists, as a node reads it
        let listed: Option<BTreeSet<String>> = match std::fs::read(dir.join("manifest.json")) {
            Ok(bytes) => Some(
                serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
                    .map_err(|e| format!("{}: not a MISP feed manifest: {e}", dir.display()))?
                    .into_iter()
                    .map(|(uuid, _)| uuid)
                    .collect(),
            ),
            Err(_) => None,
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            if path.is_dir() {
                if listed.is_none() {
                    stack.push(path);
                }
                continue;
            }
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default();
            if !path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("json"))
                || stem == "manifest"
            {
                continue;
            }
            if listed.as_ref().is_some_and(|l| !l.contains(stem)) {
                unlisted += 1;
                continue;
            }
            files += 1;
            let bytes = std::fs::read(&path)?;
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
            let values = serde_json::from_slice(bytes)
                .ok()
                .and_then(|v| concord_stats::event_values(v).ok());
            let Some(values) = values else {
                not_events += 1;
                continue;
            };
            for (k, value) in values.into_iter().enumerate() {
                match concord_stats::event_from_value(value.clone()) {
                    Ok(event) => {
                        let uuid = event.uuid.clone().unwrap_or_else(|| format!("{stem}-{k}"));
                        let creator = event.creator_uuid().unwrap_or("unknown").to_owned();
                        by_creator.entry(creator).or_default().insert(uuid, value);
                    }
                    Err(_) => invalid += 1,
                }
            }
        }
    }
    if by_creator.is_empty() {
        return Err(format!("no MISP events under {}", source.display()).into());
    }
    let mut creators: Vec<_> = by_creator.into_iter().collect();
    creators.sort_by_key(|(_, events)| std::cmp::Reverse(events.len()));
    for name in institutions {
        std::fs::create_dir_all(out.join(name))?;
    }
    let mut events = 0;
    for (i, (_, held)) in creators.iter().enumerate() {
        // each event its own export file: a file mixing creators is split per event
        let dir = out.join(&institutions[i % institutions.len()]);
        for (uuid, value) in held {
            let name: String = uuid
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::fs::write(
                dir.join(format!("{name}.json")),
                serde_json::to_vec(&serde_json::json!({ "Event": value }))?,
            )?;
            events += 1;
        }
    }
    let mut skipped = Vec::new();
    if not_events > 0 {
        skipped.push(format!(
            "{not_events} files held no MISP event (galaxies, taxonomies, …)"
        ));
    }
    if unlisted > 0 {
        skipped.push(format!(
            "{unlisted} files were not in their feed's manifest"
        ));
    }
    if invalid > 0 {
        skipped.push(format!("{invalid} events were not valid MISP events"));
    }
    Ok(format!(
        "{events} events of {} creator organisations, from {files} files, split over {} institutions under {}{}",
        creators.len(),
        institutions.len(),
        out.display(),
        skipped.iter().map(|s| format!("; {s}")).collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(uuid: &str, creator: &str) -> serde_json::Value {
        serde_json::json!({"uuid": uuid, "date": "2025-01-02", "info": "test",
            "Orgc": {"uuid": creator, "name": creator}})
    }

    /// What a node would read, per creator: nothing dropped silently, no panic on an empty
    /// search answer, mixed-creator files split per event, a feed's manifest honoured.
    #[test]
    fn the_split_reads_what_a_node_reads() {
        let source = tempfile::tempdir().unwrap();
        let s = source.path();
        let write = |path: &str, value: serde_json::Value| {
            let path = s.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, serde_json::to_vec(&value).unwrap()).unwrap();
        };
        // a feed: e1 listed, e9 on disk but not in the manifest
        write("feed/manifest.json", serde_json::json!({"e1": {}}));
        write(
            "feed/e1.json",
            serde_json::json!({"Event": event("e1", "org-a")}),
        );
        write(
            "feed/e9.json",
            serde_json::json!({"Event": event("e9", "org-a")}),
        );
        // exports: an empty search answer, a top-level list mixing creators, a galaxy
        write("exports/empty.json", serde_json::json!({"response": []}));
        write(
            "exports/deep/list.JSON",
            serde_json::json!([{"Event": event("e2", "org-a")}, event("e3", "org-b")]),
        );
        write("galaxies/g.json", serde_json::json!({"values": [1, 2]}));
        // a byte-order mark
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(
            serde_json::to_vec(&serde_json::json!({"Event": event("e4", "org-b")})).unwrap(),
        );
        std::fs::write(s.join("exports/bom.json"), bom).unwrap();

        let out = tempfile::tempdir().unwrap();
        let names = ["x".to_owned(), "y".to_owned()];
        split_by_creator(s, out.path(), &names).unwrap();
        let held = |name: &str| -> Vec<(String, String)> {
            let mut v: Vec<_> = concord_stats::load(&out.path().join(name))
                .unwrap()
                .events
                .iter()
                .map(|e| {
                    (
                        e.uuid.clone().unwrap(),
                        e.creator_uuid().unwrap().to_owned(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        // org-a (two events) goes to the first institution, org-b to the second
        assert_eq!(
            held("x"),
            [("e1", "org-a"), ("e2", "org-a")].map(|(u, c)| (u.into(), c.into()))
        );
        assert_eq!(
            held("y"),
            [("e3", "org-b"), ("e4", "org-b")].map(|(u, c)| (u.into(), c.into()))
        );
    }
}
