//! The loaders on the real MISP data in `../shared/data/misp/` (see its SOURCES.md; override
//! the path with `CONCORD_MISP_DATA`): every group loads with the counts SOURCES.md documents,
//! personal fields are never kept, and malformed or partial data is reported per file while the
//! rest is used.

use concord_stats::{load, load_exports, load_feed, DataSet, FileProblem};

mod common;
use common::{data_dir, walk, GROUPS};
use serde_json::Value;

fn attributes(set: &DataSet) -> usize {
    set.events.iter().map(|e| e.all_attributes().count()).sum()
}

#[test]
fn every_group_loads_with_the_documented_counts() {
    let Some(dir) = data_dir() else { return };
    // (events, attributes, files that are not events) per SOURCES.md
    let expected = [
        (182, 49_491, 0),
        (37, 24_218, 0),
        (57, 4_194, 0),
        (16, 1_119, 1),
        (7, 332, 0),
    ];
    let mut creators = std::collections::BTreeSet::new();
    let mut sightings = 0;
    for (group, (events, attrs, not_events)) in GROUPS.iter().zip(expected) {
        let set = load(&dir.join(group)).unwrap();
        assert_eq!(set.events.len(), events, "{group} events");
        assert_eq!(set.report.events, events);
        assert_eq!(attributes(&set), attrs, "{group} attributes");
        let errors: Vec<_> = set.report.errors.iter().collect();
        assert_eq!(errors.len(), not_events, "{group}: {errors:?}");
        assert!(errors
            .iter()
            .all(|e| e.problem == FileProblem::Event(concord_stats::EventError::NotAnEvent)));
        creators.extend(
            set.events
                .iter()
                .filter_map(|e| e.creator_uuid().map(str::to_owned)),
        );
        sightings += set
            .events
            .iter()
            .flat_map(|e| e.all_attributes())
            .map(|a| a.sightings.len())
            .sum::<usize>();
    }
    assert_eq!(creators.len(), 8, "distinct Orgc uuids");
    assert_eq!(sightings, 19);
    // feeds are read through their manifest
    assert_eq!(
        load_feed(&dir.join("feed-infoblox")).unwrap().events.len(),
        37
    );
    assert!(
        load_feed(&dir.join("events/eset")).is_err(),
        "no manifest: not a feed"
    );
}

#[test]
fn personal_fields_are_never_kept() {
    let Some(dir) = data_dir() else { return };
    let mut emails = Vec::new();
    for group in ["events/eset", "events/pymisp", "events/misp-training"] {
        for path in walk(&dir.join(group)) {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut at = 0;
            while let Some(i) = text[at..].find("\"event_creator_email\"") {
                let rest = &text[at + i + 21..];
                if let Some(start) = rest.find('"') {
                    let end = rest[start + 1..].find('"').unwrap();
                    emails.push(rest[start + 1..start + 1 + end].to_owned());
                }
                at += i + 21;
            }
        }
    }
    assert!(
        emails.len() >= 63,
        "the data holds creator e-mails ({} found)",
        emails.len()
    );
    let set = load_exports(&dir.join("events")).unwrap();
    let held = format!("{:?}", set.events);
    for email in emails.iter().filter(|e| e.contains('@')) {
        assert!(!held.contains(email.as_str()), "a creator e-mail was kept");
    }
}

#[test]
fn malformed_and_partial_data_is_reported_per_file_and_the_rest_is_used() {
    let Some(dir) = data_dir() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let feed = tmp.path();
    // a feed: two real events, one truncated file, one listed but missing, one unlisted
    let src = dir.join("feed-infoblox");
    let manifest: serde_json::Map<String, Value> =
        serde_json::from_slice(&std::fs::read(src.join("manifest.json")).unwrap()).unwrap();
    let uuids: Vec<&String> = manifest.keys().take(4).collect();
    let mut kept = serde_json::Map::new();
    for (i, uuid) in uuids.iter().enumerate() {
        kept.insert((*uuid).clone(), manifest[*uuid].clone());
        let bytes = std::fs::read(src.join(format!("{uuid}.json"))).unwrap();
        match i {
            0 | 1 => std::fs::write(feed.join(format!("{uuid}.json")), &bytes).unwrap(),
            2 => std::fs::write(feed.join(format!("{uuid}.json")), &bytes[..bytes.len() / 2])
                .unwrap(),
            _ => {} // listed, missing
        }
    }
    std::fs::write(
        feed.join("manifest.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .unwrap();
    std::fs::write(feed.join("0000-not-listed.json"), b"{}").unwrap();
    let set = load(feed).unwrap();
    assert_eq!(set.events.len(), 2);
    let problems: Vec<String> = set
        .report
        .errors
        .iter()
        .map(|e| e.problem.to_string())
        .collect();
    assert_eq!(set.report.errors.len(), 3, "{problems:?}");
    assert!(set.report.errors.iter().any(|e| matches!(
        e.problem,
        FileProblem::Event(concord_stats::EventError::Json(_))
    )));
    assert!(set
        .report
        .errors
        .iter()
        .any(|e| e.problem == FileProblem::MissingFromFeed));
    assert!(set
        .report
        .errors
        .iter()
        .any(|e| e.problem == FileProblem::NotInManifest));
    // the same event twice in an export directory counts once
    let exports = tempfile::tempdir().unwrap();
    let one = std::fs::read(src.join(format!("{}.json", uuids[0]))).unwrap();
    std::fs::write(exports.path().join("a.json"), &one).unwrap();
    std::fs::write(exports.path().join("b.json"), &one).unwrap();
    let set = load(exports.path()).unwrap();
    assert_eq!(set.events.len(), 1);
    assert!(matches!(
        set.report.errors[0].problem,
        FileProblem::Duplicate(_)
    ));
    // a file of several events, one of them bad in two fields: the bad one is reported with
    // both fields, the others are used
    let mut events: Vec<Value> = uuids[..3]
        .iter()
        .map(|uuid| {
            let bytes = std::fs::read(src.join(format!("{uuid}.json"))).unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect();
    events[1]["Event"]["distribution"] = Value::from("everyone");
    events[1]["Event"]["Attribute"][0]["to_ids"] = Value::from("perhaps");
    let mixed = tempfile::tempdir().unwrap();
    std::fs::write(
        mixed.path().join("search.json"),
        serde_json::to_vec(&serde_json::json!({ "response": events })).unwrap(),
    )
    .unwrap();
    let set = load(mixed.path()).unwrap();
    assert_eq!(set.events.len(), 2);
    assert_eq!(set.report.errors.len(), 1);
    let said = set.report.errors[0].to_string();
    assert!(
        said.contains("search.json: event 2 of the file: invalid event"),
        "{said}"
    );
    assert!(
        said.contains("Attribute[0].to_ids: expected a boolean"),
        "{said}"
    );
    assert!(
        said.contains("distribution: expected a non-negative integer"),
        "{said}"
    );
    // not a directory
    assert!(load(&feed.join("manifest.json")).is_err());
}

// ---- the independent computation over raw JSON ------------------------------------------
