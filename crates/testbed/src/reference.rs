//! `docs/configuration.md` checked against the code: every example there is read by the
//! binaries' own loaders, and every key of the node's and the coordinator's configuration
//! (listed here from fully populated values, so a new field does not compile until it is
//! added here, and then fails until it is documented) appears in one of them.

use concord_api::operations::OperationsConfig;
use concord_coordinator::config::{Config as CoordinatorConfig, NodeEntry};
use concord_node::config::{
    Approval, Config as NodeConfig, CoordinatorLink, DataSource, Policy, TlsFiles,
};
use std::collections::BTreeSet;
use std::path::Path;

const REFERENCE: &str = include_str!("../../../docs/configuration.md");

/// The TOML blocks of the reference whose first line is `# FILE`.
fn examples(file: &str) -> Vec<&'static str> {
    REFERENCE
        .split("```toml\n")
        .skip(1)
        .filter_map(|block| block.split("```").next())
        .filter(|block| block.lines().next() == Some(&format!("# {file}")))
        .collect()
}

/// Every key path (`policy.max_epsilon`, `nodes.party`) of a TOML value.
fn keys(value: &toml::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                out.insert(path.clone());
                keys(value, &path, out);
            }
        }
        toml::Value::Array(items) => {
            for item in items.iter().filter(|i| i.is_table()) {
                keys(item, prefix, out);
            }
        }
        _ => {}
    }
}

fn documented(file: &str, load: impl Fn(&Path) -> Result<(), String>) -> BTreeSet<String> {
    let blocks = examples(file);
    assert!(!blocks.is_empty(), "no example of {file} in the reference");
    let dir = tempfile::tempdir().unwrap();
    let mut found = BTreeSet::new();
    for block in blocks {
        let path = dir.path().join(file);
        std::fs::write(&path, block).unwrap();
        load(&path)
            .unwrap_or_else(|e| panic!("the reference's {file} does not load: {e}\n{block}"));
        keys(
            &toml::Value::Table(toml::from_str(block).unwrap()),
            "",
            &mut found,
        );
    }
    found
}

fn missing(code: impl serde::Serialize, documented: &BTreeSet<String>) -> Vec<String> {
    let mut known = BTreeSet::new();
    keys(&toml::Value::try_from(code).unwrap(), "", &mut known);
    known.difference(documented).cloned().collect()
}

fn operations() -> Option<OperationsConfig> {
    Some(OperationsConfig {
        listen: ([127, 0, 0, 1], 9400).into(),
    })
}

fn tls() -> TlsFiles {
    TlsFiles {
        ca: "ca.pem".into(),
        certificate: "x.pem".into(),
        key: "x.key".into(),
    }
}

#[test]
fn every_node_key_is_documented_and_every_example_loads() {
    let documented = documented("node.toml", |p| {
        NodeConfig::load(p).map(drop).map_err(|e| e.to_string())
    });
    let mut misp = concord_misp::MispApiConfig::new("https://misp", "k".into());
    misp.ca = Some("ca.pem".into());
    misp.pin_sha256 = Some("00".into());
    misp.from = Some("2016-01-01".into());
    misp.to = Some("2016-01-01".into());
    let every_key = NodeConfig {
        listen: ([127, 0, 0, 1], 7401).into(),
        keys_dir: "keys".into(),
        organisation_uuids: vec!["u".into()],
        sector: Some("Finance".into()),
        organisation_type: Some("CSIRT".into()),
        tls: tls(),
        data: DataSource {
            path: Some("feed".into()),
            misp: Some(misp),
            survey: Some("survey.toml".into()),
            refresh_s: Some(60),
        },
        policy: Policy {
            allowed_templates: vec!["time-to-publish".into()],
            allowed_researchers: vec!["alice".into()],
            approval: Approval::Manual,
            ..Policy::default()
        },
        coordinator: Some(CoordinatorLink {
            name: "coordinator".into(),
            url: Some("https://c".into()),
            advertise: Some("https://n".into()),
        }),
        audit_log: Some("audit.jsonl".into()),
        operations: operations(),
    };
    assert_eq!(
        missing(every_key, &documented),
        Vec::<String>::new(),
        "node keys missing from docs/configuration.md"
    );
}

#[test]
fn every_coordinator_key_is_documented_and_every_example_loads() {
    let documented = documented("coordinator.toml", |p| {
        CoordinatorConfig::load(p)
            .map(drop)
            .map_err(|e| e.to_string())
    });
    let every_key = CoordinatorConfig {
        listen: ([127, 0, 0, 1], 7400).into(),
        state: "c.redb".into(),
        node_timeout_s: 60.0,
        tls: tls(),
        threshold: Some(2),
        nodes: vec![NodeEntry {
            name: "n".into(),
            url: "https://n".into(),
            party: 1,
        }],
        max_queries_in_flight_per_researcher: 16,
        operations: operations(),
    };
    assert_eq!(
        missing(every_key, &documented),
        Vec::<String>::new(),
        "coordinator keys missing from docs/configuration.md"
    );
}
