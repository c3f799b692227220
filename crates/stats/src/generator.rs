//! A generator of synthetic MISP feeds, for the demo and for tests that need data the
//! repository may ship (it ships no third-party data).
//!
//! It writes a real MISP feed directory — `manifest.json` plus `<uuid>.json` per event, numbers
//! as strings as MISP writes them — for one institution: events it created itself and events
//! it received from other organisations, with a mix of TLP tags and distribution levels,
//! heavy-tailed delays between event date and publication, attributes drawn from MISP's
//! category/type table, sightings (including false positives), PAP tags, galaxy clusters (ATT&CK
//! techniques, threat actors, tools), MISP objects, attributes' `first_seen` and narrowed
//! attribute distributions. Deterministic from a seed;
//! the randomness is splitmix64, which is fine for test data and nothing else.

use crate::catalogue::YearMonth;
use crate::describe_types::CATEGORY_TYPES;
use crate::misp::Date;
use serde_json::{json, Map, Value};
use std::path::Path;

/// An institution to generate data for.
#[derive(Clone, Debug)]
pub struct Profile {
    pub name: String,
    pub organisation_uuid: String,
    /// Events to generate, created by this institution or received.
    pub events: usize,
    /// Share of events this institution created itself (the rest come from `peers`).
    pub own_share: f64,
    /// Creator organisations of received events: (name, uuid).
    pub peers: Vec<(String, String)>,
    pub first: YearMonth,
    pub months: u16,
    pub seed: u64,
}

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// An index drawn with the given weights.
    fn pick(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| w as u64).sum();
        let mut r = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if r < w as u64 {
                return i;
            }
            r -= w as u64;
        }
        weights.len() - 1
    }
    fn uuid(&mut self) -> String {
        let (a, b) = (self.next(), self.next());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

/// A uuid derived from a name (stable across runs), for organisations.
pub fn organisation_uuid(name: &str) -> String {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    SplitMix(h).uuid()
}

/// An institution's answers to the community survey ([`crate::survey`] format), drawn
/// deterministically from its name: some questions left out, choices and levels varied.
pub fn survey_answers(name: &str) -> String {
    let mut rng = SplitMix(u64::from_str_radix(&organisation_uuid(name)[..8], 16).unwrap_or(1));
    let mut text = format!(
        "# {name}'s answers to the community survey\nsurvey = \"{}\"\nversion = {}\n\n[answers]\n",
        crate::survey::SURVEY,
        crate::survey::SURVEY_VERSION
    );
    for q in crate::survey::QUESTIONS {
        if rng.below(6) == 0 {
            continue; // not answered
        }
        match q.kind {
            crate::survey::Kind::Choices(choices) => {
                let picked: Vec<String> = choices
                    .iter()
                    .filter(|_| rng.below(3) == 0)
                    .map(|c| format!("{c:?}"))
                    .collect();
                text += &format!("{} = [{}]\n", q.id, picked.join(", "));
            }
            crate::survey::Kind::Likert => {
                text += &format!("{} = {}\n", q.id, 1 + rng.below(5));
            }
        }
    }
    text
}

const TLP_TAGS: &[&str] = &[
    "tlp:clear",
    "tlp:white",
    "tlp:green",
    "tlp:amber",
    "tlp:amber+strict",
    "tlp:red",
];

/// Writes the institution's feed into `dir` (created if needed); returns the event uuids.
pub fn write_feed(dir: &Path, profile: &Profile) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut rng = SplitMix(profile.seed);
    let mut manifest = Map::new();
    let mut uuids = Vec::new();
    let first_day = Date {
        year: profile.first.year,
        month: profile.first.month,
        day: 1,
    }
    .days_since_epoch();
    let span_days = profile.months as i64 * 30;
    // context (PAP, galaxies, objects, first_seen) from a stream of its own, so that adding
    // it left the base events of a seed as they were
    let mut extra = SplitMix(profile.seed ^ 0x5eed_c0de);
    for _ in 0..profile.events {
        let uuid = rng.uuid();
        let own = rng.unit() < profile.own_share || profile.peers.is_empty();
        let (org_name, org_uuid) = if own {
            (profile.name.clone(), profile.organisation_uuid.clone())
        } else {
            profile.peers[rng.below(profile.peers.len() as u64) as usize].clone()
        };
        let day = first_day + rng.below(span_days as u64) as i64;
        let date = civil_from_days(day);
        // TLP: mostly clear/green; distribution: mostly community or all, some none (feed-like)
        let mut tags = vec![json!({"name": "type:OSINT", "colour": "#004646"})];
        if rng.unit() < 0.9 {
            let tlp = TLP_TAGS[rng.pick(&[30, 10, 35, 15, 5, 5])];
            tags.push(json!({"name": tlp, "colour": "#ffffff"}));
        }
        // publication: most within days, a long tail, some never published
        let published = rng.unit() < 0.85;
        let delay_days = match rng.pick(&[25, 20, 20, 15, 10, 7, 3]) {
            0 => 0,
            1 => 1 + rng.below(2),
            2 => 3 + rng.below(5),
            3 => 8 + rng.below(23),
            4 => 31 + rng.below(60),
            5 => 91 + rng.below(275),
            _ => 366 + rng.below(700),
        } as i64;
        let publish_ts = ((day + delay_days) * 86_400 + rng.below(86_400) as i64) as u64;
        let attribute_count = 1 + (rng.unit().powi(3) * 60.0) as usize;
        let mut attributes: Vec<Value> = (0..attribute_count)
            .map(|_| {
                let (category, kind) = CATEGORY_TYPES[rng.below(CATEGORY_TYPES.len() as u64) as usize];
                let sightings: Vec<Value> = (0..rng.pick(&[90, 6, 3, 1]))
                    .map(|_| json!({"type": rng.pick(&[70, 25, 5]).to_string(), "date_sighting": publish_ts.to_string()}))
                    .collect();
                json!({
                    "uuid": rng.uuid(),
                    "category": category,
                    "type": kind,
                    "value": synthetic_value(kind, rng.below(1 << 40)),
                    "to_ids": if rng.unit() < 0.6 { "True" } else { "False" },
                    "distribution": "5",
                    "timestamp": publish_ts.to_string(),
                    "Sighting": sightings,
                })
            })
            .collect();
        let mut event = json!({
            "uuid": uuid,
            "info": format!("{} synthetic event {}", org_name, uuids.len() + 1),
            "date": format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
            "threat_level_id": (1 + rng.below(4)).to_string(),
            "analysis": rng.below(3).to_string(),
            "timestamp": publish_ts.to_string(),
            "published": published,
            "Orgc": {"name": org_name, "uuid": org_uuid},
            "Tag": tags,
            "Attribute": attributes,
        });
        if rng.unit() < 0.8 {
            event["distribution"] = json!(rng.pick(&[10, 35, 15, 35, 5]).to_string());
        }
        add_context(&mut extra, &mut event, &mut attributes, publish_ts);
        event["Attribute"] = Value::Array(attributes);
        if published {
            event["publish_timestamp"] = json!(publish_ts.to_string());
        }
        write_event(dir, &mut manifest, &uuid, &event)?;
        uuids.push(uuid);
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&Value::Object(manifest))?,
    )?;
    Ok(uuids)
}

/// Adds to the feed in `dir` (written by [`write_feed`] for `profile`) `count` indicator
/// attributes in events of its own of 1,000 attributes each — a feed import, as MISP instances
/// hold them by the thousand — for overlap queries at scale (`benches/e2e.rs`
/// `--indicators`). The values are drawn with Zipf(1) popularity over a pool of `pool`
/// indicators (a quarter each domains, IPv4 addresses, SHA-256 hashes and URLs), so
/// institutions share the popular ones and differ in the long tail; the same rank is the same
/// indicator at every institution. Drawn until `count` are distinct (at most `pool`): the
/// institution holds `count` indicators more than its other events hold, less those they
/// share. The events are dated in the profile's window; the manifest is updated.
pub fn add_indicator_events(
    dir: &Path,
    profile: &Profile,
    count: usize,
    pool: u64,
) -> std::io::Result<()> {
    let manifest_path = dir.join("manifest.json");
    let mut manifest: Map<String, Value> = serde_json::from_slice(&std::fs::read(&manifest_path)?)?;
    let mut rng = SplitMix(profile.seed ^ 0x1d1c_a70e);
    // Zipf(1): rank r drawn with probability ∝ 1/(r+1), by inversion of the running sum
    let pool = pool.max(1) as usize;
    let mut cdf = Vec::with_capacity(pool);
    let mut total = 0.0;
    for r in 0..pool {
        total += 1.0 / (r + 1) as f64;
        cdf.push(total);
    }
    let first_day = Date {
        year: profile.first.year,
        month: profile.first.month,
        day: 1,
    }
    .days_since_epoch();
    let span_days = (profile.months as u64 * 30).max(1);
    let mut held = std::collections::BTreeSet::new();
    let mut ranks = Vec::with_capacity(count.min(pool));
    while ranks.len() < count.min(pool) {
        let u = rng.unit() * total;
        let rank = cdf.partition_point(|&c| c < u).min(pool - 1) as u64;
        if held.insert(rank) {
            ranks.push(rank);
        }
    }
    for chunk in ranks.chunks(1000) {
        let here = chunk.len();
        let uuid = rng.uuid();
        let day = first_day + rng.below(span_days) as i64;
        let date = civil_from_days(day);
        let ts = (day * 86_400) as u64;
        let attributes: Vec<Value> = chunk
            .iter()
            .map(|&rank| {
                let (category, kind, value) = match rank % 4 {
                    0 => ("Network activity", "domain", format!("d{rank}.example.org")),
                    1 => (
                        "Network activity",
                        "ip-dst",
                        format!("10.{}.{}.{}", rank >> 16 & 255, rank >> 8 & 255, rank & 255),
                    ),
                    2 => (
                        "Payload delivery",
                        "sha256",
                        format!(
                            "{:064x}",
                            u128::from(rank).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                        ),
                    ),
                    _ => (
                        "Network activity",
                        "url",
                        format!("https://d{rank}.example.org/x"),
                    ),
                };
                json!({
                    "uuid": rng.uuid(),
                    "category": category,
                    "type": kind,
                    "value": value,
                    "to_ids": "True",
                    "distribution": "5",
                    "timestamp": ts.to_string(),
                })
            })
            .collect();
        let event = json!({
            "uuid": uuid,
            "info": format!("{} feed import ({here} indicators)", profile.name),
            "date": format!("{:04}-{:02}-{:02}", date.year, date.month, date.day),
            "threat_level_id": "3",
            "analysis": "2",
            "timestamp": ts.to_string(),
            "publish_timestamp": ts.to_string(),
            "published": true,
            "distribution": "1",
            "Orgc": {"name": profile.name, "uuid": profile.organisation_uuid},
            "Tag": [{"name": "tlp:clear", "colour": "#ffffff"}],
            "Attribute": attributes,
        });
        write_event(dir, &mut manifest, &uuid, &event)?;
    }
    std::fs::write(manifest_path, serde_json::to_vec(&Value::Object(manifest))?)
}

/// Writes `event` as `dir/<uuid>.json` and its entry into the feed's `manifest`.
fn write_event(
    dir: &Path,
    manifest: &mut Map<String, Value>,
    uuid: &str,
    event: &Value,
) -> std::io::Result<()> {
    manifest.insert(
        uuid.to_owned(),
        json!({"Orgc": event["Orgc"], "Tag": event["Tag"], "info": event["info"], "date": event["date"], "analysis": event["analysis"], "threat_level_id": event["threat_level_id"], "timestamp": event["timestamp"]}),
    );
    std::fs::write(
        dir.join(format!("{uuid}.json")),
        serde_json::to_vec(&json!({"Event": event}))?,
    )
}

const PAP_TAGS: &[&str] = &[
    "PAP:CLEAR",
    "PAP:WHITE",
    "PAP:GREEN",
    "PAP:AMBER",
    "PAP:RED",
];

/// Galaxy clusters an event may carry: (galaxy type, cluster value).
const CLUSTERS: &[(&str, &str)] = &[
    ("mitre-attack-pattern", "Phishing - T1566"),
    (
        "mitre-attack-pattern",
        "Command and Scripting Interpreter - T1059",
    ),
    ("mitre-attack-pattern", "Ingress Tool Transfer - T1105"),
    ("mitre-attack-pattern", "Application Layer Protocol - T1071"),
    ("mitre-attack-pattern", "User Execution - T1204"),
    ("threat-actor", "APT28"),
    ("threat-actor", "Lazarus Group"),
    ("tool", "Cobalt Strike"),
    ("ransomware", "LockBit"),
];

/// Objects an event may carry: template name and its attributes' (category, type).
const OBJECTS: &[(&str, &[(&str, &str)])] = &[
    (
        "file",
        &[
            ("Payload delivery", "filename"),
            ("Payload delivery", "md5"),
            ("Payload delivery", "sha256"),
        ],
    ),
    (
        "domain-ip",
        &[
            ("Network activity", "domain"),
            ("Network activity", "ip-dst"),
        ],
    ),
    ("url", &[("Network activity", "url")]),
    (
        "email",
        &[
            ("Payload delivery", "email-src"),
            ("Payload delivery", "email-subject"),
        ],
    ),
    ("x509", &[("Network activity", "x509-fingerprint-sha1")]),
];

/// PAP tags, galaxy clusters (as tags and in the `Galaxy` list), objects, `first_seen` and
/// narrowed attribute distributions, drawn from `rng`.
fn add_context(rng: &mut SplitMix, event: &mut Value, attributes: &mut [Value], publish_ts: u64) {
    if rng.unit() < 0.4 {
        let pap = PAP_TAGS[rng.pick(&[20, 10, 35, 25, 10])];
        event["Tag"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": pap}));
    }
    let mut galaxies: Vec<(&str, Vec<Value>)> = Vec::new();
    for _ in 0..rng.pick(&[40, 25, 20, 15]) {
        let (galaxy, value) = CLUSTERS[rng.below(CLUSTERS.len() as u64) as usize];
        let tag = format!("misp-galaxy:{galaxy}=\"{value}\"");
        // exports carry a cluster as an event tag, in the Galaxy list, or both
        if rng.unit() < 0.7 {
            event["Tag"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": tag}));
        }
        let cluster = json!({"type": galaxy, "value": value, "tag_name": tag});
        match galaxies.iter_mut().find(|(g, _)| *g == galaxy) {
            Some((_, clusters)) => clusters.push(cluster),
            None => galaxies.push((galaxy, vec![cluster])),
        }
    }
    event["Galaxy"] = galaxies
        .into_iter()
        .map(|(galaxy, clusters)| json!({"type": galaxy, "GalaxyCluster": clusters}))
        .collect();
    let objects: Vec<Value> = (0..rng.pick(&[60, 20, 12, 8]))
        .map(|_| {
            let (name, fields) = OBJECTS[rng.below(OBJECTS.len() as u64) as usize];
            let attributes: Vec<Value> = fields
                .iter()
                .map(|(category, kind)| {
                    json!({"uuid": rng.uuid(), "category": category, "type": kind, "value": synthetic_value(kind, rng.below(1 << 40)), "to_ids": "True", "distribution": "5"})
                })
                .collect();
            json!({"name": name, "uuid": rng.uuid(), "Attribute": attributes})
        })
        .collect();
    event["Object"] = Value::Array(objects);
    for a in attributes {
        // indicators first seen days to months before publication
        if rng.unit() < 0.5 {
            let age = match rng.pick(&[30, 30, 25, 15]) {
                0 => rng.below(2),
                1 => 2 + rng.below(12),
                2 => 14 + rng.below(76),
                _ => 90 + rng.below(600),
            };
            let seen = civil_from_days((publish_ts / 86_400) as i64 - age as i64);
            a["first_seen"] = json!(format!(
                "{:04}-{:02}-{:02}T{:02}:00:00.000000+00:00",
                seen.year,
                seen.month,
                seen.day,
                rng.below(24)
            ));
        }
        if rng.unit() < 0.05 {
            a["distribution"] = json!(["0", "1", "4"][rng.below(3) as usize]);
        }
    }
}

/// The date `days` after 1970-01-01.
fn civil_from_days(days: i64) -> Date {
    Date::from_days_since_epoch(days).expect("generated dates are within the years ±9999")
}

/// A synthetic attribute value of MISP type `kind` from a random draw `x`: indicators of the
/// overlap templates' types are drawn from a pool of 4,096 per type (documentation ranges and
/// the reserved `example.org`), so that institutions hold some of the same ones; other types
/// get an opaque token.
fn synthetic_value(kind: &str, x: u64) -> String {
    let n = x % 4096;
    match kind {
        "ip-src" | "ip-dst" => format!("198.51.{}.{}", n / 256, n % 256),
        "domain" | "hostname" => format!("host{n}.example.org"),
        "url" | "uri" | "link" => format!("http://host{n}.example.org/p{}", n % 7),
        "email" | "email-src" | "email-dst" => format!("user{n}@example.org"),
        "md5" | "imphash" => format!("{n:032x}"),
        "sha1" => format!("{n:040x}"),
        "sha256" | "authentihash" => format!("{n:064x}"),
        "sha512" => format!("{n:0128x}"),
        _ => format!("synthetic-{x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{Institution, Template, Window, TEMPLATES};

    #[test]
    fn indicator_events_add_shared_indicators_to_a_feed() {
        use crate::catalogue::Institution;
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        let first = YearMonth {
            year: 2025,
            month: 1,
        };
        let window = Window::new(first, 12).unwrap();
        let mut held = Vec::new();
        for (i, dir) in dirs.iter().enumerate() {
            let profile = Profile {
                name: format!("inst-{i}"),
                organisation_uuid: organisation_uuid(&format!("inst-{i}")),
                events: 10,
                own_share: 1.0,
                peers: Vec::new(),
                first,
                months: 12,
                seed: 40 + i as u64,
            };
            write_feed(dir.path(), &profile).unwrap();
            add_indicator_events(dir.path(), &profile, 2500, 5000).unwrap();
            let set = crate::load(dir.path()).unwrap();
            assert_eq!(set.events.len(), 13, "10 events and 3 feed imports");
            held.push(crate::overlap::distinct_indicators(&set.events, &window));
            let counted = Template::IndicatorsHeld
                .compute(&window, &Institution::default(), &set.events)
                .unwrap();
            assert_eq!(counted.values.iter().sum::<u64>(), held[i].len() as u64);
        }
        // 2,500 distinct from a shared pool, beside the few of the other events; many in common
        assert!(
            held.iter().all(|h| h.len() >= 2500 && h.len() < 2700),
            "{:?}",
            held.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let common = held[0]
            .iter()
            .filter(|d| held[1].binary_search(d).is_ok())
            .count();
        assert!(common > 500, "{common} in common");
    }

    #[test]
    fn civil_dates_round_trip() {
        for d in [-1000i64, 0, 11_017, 19_782, 20_000, 25_000] {
            assert_eq!(civil_from_days(d).days_since_epoch(), d);
        }
    }

    #[test]
    fn generated_feeds_load_and_fill_every_template() {
        let dir = tempfile::tempdir().unwrap();
        let me = organisation_uuid("CERT-A");
        let profile = Profile {
            name: "CERT-A".into(),
            organisation_uuid: me.clone(),
            events: 120,
            own_share: 0.4,
            peers: vec![("CSIRT-B".into(), organisation_uuid("CSIRT-B"))],
            first: YearMonth::parse("2025-01").unwrap(),
            months: 12,
            seed: 7,
        };
        let uuids = write_feed(dir.path(), &profile).unwrap();
        let set = crate::load(dir.path()).unwrap();
        assert_eq!(set.events.len(), 120);
        assert!(set.report.errors.is_empty(), "{:?}", set.report.errors);
        assert_eq!(
            set.events
                .iter()
                .filter(|e| uuids.contains(e.uuid.as_ref().unwrap()))
                .count(),
            120
        );
        let window = Window::new(profile.first, profile.months).unwrap();
        let me = Institution {
            organisation_uuids: vec![me],
            survey: Some(crate::survey::parse(&survey_answers("CERT-A")).unwrap()),
            sector: Some("Finance".into()),
            organisation_type: Some("CSIRT".into()),
        };
        let key = crate::overlap::BinningKey::new([1; 32]);
        for t in TEMPLATES {
            let s = if t.is_overlap() {
                t.compute_overlap(
                    &window,
                    &set.events,
                    &t.layout(&window).overlap.unwrap(),
                    &key,
                )
            } else if let Some((model, config)) = t.first_round(1) {
                t.compute_training(&window, &set.events, &model, &config)
            } else {
                t.compute(&window, &me, &set.events)
            }
            .unwrap();
            let events = if *t == Template::SurveySharingMotivations {
                0
            } else {
                120
            };
            assert_eq!(s.events_in_window, events, "{}", t.info().id);
            assert!(
                s.values.iter().filter(|&&v| v > 0).count() >= 2,
                "{} too uniform",
                t.info().id
            );
        }
        let roles = Template::ProducerVsReceiverByMonth
            .compute(&window, &me, &set.events)
            .unwrap();
        let produced: u64 = roles.values.iter().step_by(3).sum();
        assert!((30..80).contains(&produced), "own share ≈ 40%: {produced}");
        // the same seed gives the same feed
        let again = tempfile::tempdir().unwrap();
        assert_eq!(write_feed(again.path(), &profile).unwrap(), uuids);
    }

    /// MISP synchronisation: CSIRT-B holds copies of every event CERT-A created (same uuid,
    /// same `Orgc`). Counting what each holds counts those events twice; counting what each
    /// created (what a DP query counts) counts each once, at CERT-A — so one event moves the
    /// community's aggregate by the template's declared sensitivity, wherever it is held.
    #[test]
    fn a_replicated_event_counts_once_at_its_creator() {
        let window = Window::new(YearMonth::parse("2025-01").unwrap(), 12).unwrap();
        let feed = |name: &str, peer: &str, seed: u64| {
            let dir = tempfile::tempdir().unwrap();
            write_feed(
                dir.path(),
                &Profile {
                    name: name.into(),
                    organisation_uuid: organisation_uuid(name),
                    events: 80,
                    own_share: 0.5,
                    peers: vec![(peer.into(), organisation_uuid(peer))],
                    first: YearMonth::parse("2025-01").unwrap(),
                    months: 12,
                    seed,
                },
            )
            .unwrap();
            crate::load(dir.path()).unwrap().events
        };
        let institution = |name: &str| Institution {
            organisation_uuids: vec![organisation_uuid(name)],
            ..Institution::default()
        };
        let (a, b) = (institution("CERT-A"), institution("CSIRT-B"));
        let a_events = feed("CERT-A", "CSIRT-B", 1);
        let created_by_a: Vec<_> = a_events
            .iter()
            .filter(|e| crate::templates::role(&a, e) == 0)
            .cloned()
            .collect();
        assert!(created_by_a.len() > 20);
        let mut b_events = feed("CSIRT-B", "CERT-A", 2);
        b_events.extend(created_by_a.iter().cloned());
        let t = Template::EventsByMonthTlpDistribution;
        let sum = |x: &crate::Statistic, y: &crate::Statistic| -> Vec<u64> {
            x.values.iter().zip(&y.values).map(|(p, q)| p + q).collect()
        };
        let held = sum(
            &t.compute(&window, &a, &a_events).unwrap(),
            &t.compute(&window, &b, &b_events).unwrap(),
        );
        let created = sum(
            &t.compute_created(&window, &a, &a_events).unwrap(),
            &t.compute_created(&window, &b, &b_events).unwrap(),
        );
        // B's copies add nothing to what B created: the aggregate is as without them
        let without_copies = sum(
            &t.compute_created(&window, &a, &a_events).unwrap(),
            &t.compute_created(&window, &b, &feed("CSIRT-B", "CERT-A", 2))
                .unwrap(),
        );
        assert_eq!(created, without_copies);
        // counting what each holds, B's copies count a second time, each in its cell
        let count = |v: &[u64]| v.iter().sum::<u64>();
        let b_own = t
            .compute(&window, &b, &feed("CSIRT-B", "CERT-A", 2))
            .unwrap();
        let copies = t.compute(&window, &a, &created_by_a).unwrap();
        assert!(copies.events_in_window > 20);
        assert_eq!(
            count(&held),
            count(&t.compute(&window, &a, &a_events).unwrap().values)
                + count(&b_own.values)
                + copies.events_in_window as u64
        );
        assert!(count(&held) > count(&created) + copies.events_in_window as u64);
        // without organisation uuids a node cannot tell what it created: refused, saying why
        assert!(matches!(
            t.compute_created(&window, &Institution::default(), &a_events),
            Err(crate::TemplateError::CreatorUnknown { .. })
        ));
    }
}
