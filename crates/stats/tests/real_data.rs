//! The templates on the real MISP data in `../shared/data/misp/` (see its SOURCES.md; override
//! the path with `CONCORD_MISP_DATA`): every template against an independent computation over
//! the raw JSON (serde_json values, not this crate's model), split institutions summing to the
//! pooled statistic, and each template's declared sensitivity. (The loaders' own tests are in
//! `loaders.rs`.)

use concord_stats::catalogue::{
    Institution, Template, Window, YearMonth, DELAY_BUCKETS, GALAXY_TYPES, MAX_DELAY_DAYS,
    OBJECT_TEMPLATES, SECTORS, TEMPLATES,
};
use concord_stats::{load, DataSet};

mod common;
use common::{data_dir, walk, GROUPS};
use serde_json::Value;
use std::path::Path;

/// Every raw event object of the pooled data (each uuid once), straight from the files.
fn raw_events(dir: &Path) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for group in GROUPS {
        for path in walk(&dir.join(group)) {
            let v: Value =
                serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap_or(Value::Null);
            let events: Vec<Value> = if let Some(e) = v.get("Event") {
                vec![e.clone()]
            } else if let Some(Value::Array(r)) = v.get("response") {
                r.iter()
                    .map(|x| x.get("Event").unwrap_or(x).clone())
                    .collect()
            } else if v.get("info").is_some() {
                vec![v.clone()]
            } else {
                vec![]
            };
            for e in events {
                if seen.insert(e["uuid"].as_str().unwrap_or_default().to_owned()) {
                    out.push(e);
                }
            }
        }
    }
    out
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn raw_month(e: &Value, first: (i64, i64), months: i64) -> Option<usize> {
    let d = e["date"].as_str()?;
    let (y, m) = (d[..4].parse::<i64>().ok()?, d[5..7].parse::<i64>().ok()?);
    let k = (y * 12 + m - 1) - (first.0 * 12 + first.1 - 1);
    (0..months).contains(&k).then_some(k as usize)
}

fn raw_attributes(e: &Value) -> Vec<&Value> {
    let mut out: Vec<&Value> = e["Attribute"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for o in e["Object"].as_array().into_iter().flatten() {
        out.extend(o["Attribute"].as_array().into_iter().flatten());
    }
    out
}

/// The most restrictive level of a `prefix` taxonomy among the event's tags, by lower-case
/// names per level; `unknown` without one.
fn raw_level(e: &Value, prefix: &str, levels: &[&[&str]], unknown: usize) -> usize {
    e["Tag"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| {
            let name = t["name"].as_str()?.to_lowercase();
            let level = name.strip_prefix(prefix)?;
            levels.iter().position(|names| names.contains(&level))
        })
        .max()
        .unwrap_or(unknown)
}

fn raw_tlp(e: &Value) -> usize {
    raw_level(
        e,
        "tlp:",
        &[
            &["white", "clear"],
            &["green"],
            &["amber"],
            &["amber+strict"],
            &["red"],
        ],
        5,
    )
}

fn raw_distribution(e: &Value) -> usize {
    int(&e["distribution"])
        .filter(|d| (0..=4).contains(d))
        .unwrap_or(5) as usize
}

/// Days since the epoch of the UTC day of `YYYY-MM-DDTHH:MM:SS[.ffffff](+|-)HH:MM`.
fn raw_utc_day(ts: &str) -> Option<i64> {
    let date = concord_stats::misp::Date::parse(ts.get(..10)?)?;
    let (h, m, sec) = (
        ts.get(11..13)?.parse::<i64>().ok()?,
        ts.get(14..16)?.parse::<i64>().ok()?,
        ts.get(17..19)?.parse::<i64>().ok()?,
    );
    let zone = &ts[ts.len() - 6..];
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let offset =
        sign * (zone[1..3].parse::<i64>().ok()? * 3600 + zone[4..6].parse::<i64>().ok()? * 60);
    Some((date.days_since_epoch() * 86_400 + h * 3600 + m * 60 + sec - offset).div_euclid(86_400))
}

fn raw_day_bucket(days: i64) -> usize {
    [
        (-1, 0),
        (0, 1),
        (1, 2),
        (3, 3),
        (7, 4),
        (14, 5),
        (30, 6),
        (90, 7),
        (365, 8),
    ]
    .iter()
    .find(|(hi, _)| days <= *hi)
    .map(|(_, b)| *b)
    .unwrap_or(9)
}

fn raw_truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true") || s == "1",
        Value::Number(n) => n.as_i64() != Some(0),
        _ => false,
    }
}

#[test]
fn every_template_matches_an_independent_computation_on_the_pooled_data() {
    let Some(dir) = data_dir() else { return };
    let mut pooled = DataSet::default();
    for group in GROUPS {
        let set = load(&dir.join(group)).unwrap();
        pooled.events.extend(set.events);
    }
    let raw = raw_events(&dir);
    assert_eq!(raw.len(), pooled.events.len());
    let (first, months) = ((2016, 12), 120);
    let window = Window::new(
        YearMonth {
            year: first.0 as i32,
            month: first.1 as u8,
        },
        months as u16,
    )
    .unwrap();
    let describe: Value = serde_json::from_slice(
        &std::fs::read(dir.join("reference/pymisp-describeTypes.json")).unwrap(),
    )
    .unwrap();
    let mut pairs = Vec::new();
    for c in describe["result"]["categories"].as_array().unwrap() {
        for t in describe["result"]["category_type_mappings"][c.as_str().unwrap()]
            .as_array()
            .unwrap()
        {
            pairs.push((
                c.as_str().unwrap().to_owned(),
                t.as_str().unwrap().to_owned(),
            ));
        }
    }
    // institutions by creator: a node per Orgc uuid
    let creators: std::collections::BTreeSet<String> = raw
        .iter()
        .filter_map(|e| e["Orgc"]["uuid"].as_str().map(str::to_owned))
        .collect();

    // summed over one institution per creator, each event is "produced" exactly once and
    // "received" by every other institution; (role, times) with roles produced, received,
    // creator unknown
    let roles = |e: &Value| -> Vec<(usize, u64)> {
        let c = creators.len() as u64;
        match e["Orgc"]["uuid"].as_str() {
            Some(_) => vec![(0, 1), (1, c - 1)],
            None => vec![(2, c)],
        }
    };
    // attribute types, each once, in describeTypes' order
    let mut types: Vec<String> = Vec::new();
    for (_, t) in &pairs {
        if !types.contains(t) {
            types.push(t.clone());
        }
    }
    let (mut aged, mut sightings) = (0, 0);

    for template in TEMPLATES {
        if *template == Template::SurveySharingMotivations {
            continue; // answers, not MISP data: covered by the survey module's tests
        }
        if template.is_overlap() || *template == Template::IndicatorsHeld {
            // presence bits, not cells; distinct indicators: the_overlap_presence_matches_the_raw_json
            continue;
        }
        if template.training_label().is_some() {
            // gradients at a model: learning_samples_match_the_raw_json and
            // federated_training_over_the_creators_matches_pooled_training
            continue;
        }
        let layout = template.layout(&window);
        let mut expect = vec![0u64; layout.cells()];
        let mut inside = 0;
        let mut per_month = vec![0u64; months as usize];
        for e in &raw {
            let Some(month) = raw_month(e, first, months) else {
                continue;
            };
            inside += 1;
            match template {
                Template::EventsByMonthTlpDistribution => {
                    expect[(month * 6 + raw_tlp(e)) * 6 + raw_distribution(e)] += 1;
                }
                Template::EventsByDistributionTlpPap => {
                    let pap = raw_level(
                        e,
                        "pap:",
                        &[&["white", "clear"], &["green"], &["amber"], &["red"]],
                        4,
                    );
                    expect[(raw_distribution(e) * 6 + raw_tlp(e)) * 5 + pap] += 1;
                }
                Template::AttributesByEventAndAttributeDistribution => {
                    for a in raw_attributes(e) {
                        let own = int(&a["distribution"])
                            .filter(|d| (0..=5).contains(d))
                            .unwrap_or(6) as usize;
                        expect[raw_distribution(e) * 7 + own] += 1;
                    }
                }
                Template::IndicatorAgeAtSharing => {
                    let published = int(&e["publish_timestamp"]).filter(|&t| t > 0);
                    for a in raw_attributes(e) {
                        let seen = a["first_seen"].as_str().and_then(raw_utc_day);
                        match (published, seen) {
                            (None, _) => expect[11] += 1,
                            (Some(_), None) => expect[10] += 1,
                            (Some(p), Some(day)) => {
                                let age = p.div_euclid(86_400) - day;
                                expect[raw_day_bucket(age)] += 1;
                                let c = age.clamp(0, MAX_DELAY_DAYS as i64) as u64;
                                expect[12] += 1;
                                expect[13] += c;
                                expect[14] += c * c;
                                aged += 1;
                            }
                        }
                    }
                }
                Template::ObjectsByTemplate => {
                    for o in e["Object"].as_array().into_iter().flatten() {
                        let name = o["name"].as_str().unwrap_or_default();
                        let last = OBJECT_TEMPLATES.len() - 1;
                        let p = OBJECT_TEMPLATES[..last]
                            .iter()
                            .position(|t| *t == name)
                            .unwrap_or(last);
                        expect[p] += 1;
                    }
                }
                Template::GalaxyClustersByType => {
                    let mut clusters = std::collections::BTreeSet::new();
                    for t in e["Tag"].as_array().into_iter().flatten() {
                        clusters
                            .extend(t["name"].as_str().filter(|n| n.starts_with("misp-galaxy:")));
                    }
                    for g in e["Galaxy"].as_array().into_iter().flatten() {
                        for c in g["GalaxyCluster"].as_array().into_iter().flatten() {
                            clusters.extend(c["tag_name"].as_str());
                        }
                    }
                    let mut used = std::collections::BTreeSet::new();
                    for c in clusters {
                        let galaxy = &c["misp-galaxy:".len()..c.find('=').unwrap_or(c.len())];
                        let last = GALAXY_TYPES.len() - 1;
                        let p = GALAXY_TYPES[..last]
                            .iter()
                            .position(|t| *t == galaxy)
                            .unwrap_or(last);
                        expect[p * 2] += 1;
                        used.insert(p);
                    }
                    for p in used {
                        expect[p * 2 + 1] += 1;
                    }
                }
                Template::SightingsByAttributeType => {
                    for a in raw_attributes(e) {
                        let kind = a["type"].as_str().unwrap_or_default();
                        let row = types.iter().position(|t| t == kind).unwrap_or(types.len());
                        for s in a["Sighting"].as_array().into_iter().flatten() {
                            let k = int(&s["type"]).filter(|k| (0..=2).contains(k)).unwrap_or(3);
                            expect[row * 4 + k as usize] += 1;
                            sightings += 1;
                        }
                    }
                }
                Template::InstitutionsByEventsPerMonth => per_month[month] += 1,
                Template::EventsByMonthRoleTlpDistribution => {
                    for (role, times) in roles(e) {
                        expect[((month * 3 + role) * 6 + raw_tlp(e)) * 6 + raw_distribution(e)] +=
                            times;
                    }
                }
                Template::AttributesByMonthRoleTlp => {
                    for (role, times) in roles(e) {
                        expect[(month * 3 + role) * 6 + raw_tlp(e)] +=
                            times * raw_attributes(e).len() as u64;
                    }
                }
                Template::EventsBySectorOrganisationTypeRole => {
                    // every institution declares itself an IT-security CSIRT
                    let sector = SECTORS.iter().position(|s| *s == "IT - Security").unwrap();
                    for (role, times) in roles(e) {
                        expect[(sector * 11) * 3 + role] += times;
                    }
                }
                Template::AttributesByCategoryTypeToIds
                | Template::AttributesByMonthCategoryTypeToIds => {
                    let row = if *template == Template::AttributesByCategoryTypeToIds {
                        0
                    } else {
                        month * (pairs.len() + 1)
                    };
                    for a in raw_attributes(e) {
                        let key = (
                            a["category"].as_str().unwrap_or_default().to_owned(),
                            a["type"].as_str().unwrap_or_default().to_owned(),
                        );
                        let p = pairs.iter().position(|x| *x == key).unwrap_or(pairs.len());
                        expect[(row + p) * 2 + raw_truthy(&a["to_ids"]) as usize] += 1;
                    }
                }
                Template::ProducerVsReceiverByMonth => {
                    for (role, times) in roles(e) {
                        expect[month * 3 + role] += times;
                    }
                }
                Template::SurveySharingMotivations
                | Template::IndicatorOverlap
                | Template::IndicatorOverlapByType
                | Template::IndicatorsHeld
                | Template::TrainToIds
                | Template::TrainFalsePositive
                | Template::TrainSharedBeyondCommunity => {
                    unreachable!("skipped above")
                }
                Template::AttributesPerEvent => {
                    let n = raw_attributes(e).len() as u64;
                    let bucket = [
                        (0, 0),
                        (1, 1),
                        (5, 2),
                        (10, 3),
                        (50, 4),
                        (100, 5),
                        (1000, 6),
                    ]
                    .iter()
                    .find(|(hi, _)| n <= *hi)
                    .map(|(_, b)| *b)
                    .unwrap_or(7);
                    expect[bucket] += 1;
                    expect[8] += 1;
                    expect[9] += n;
                    expect[10] += n * n;
                }
                Template::EventsByMonthThreatLevel => {
                    // high, medium, low, undefined; anything else unknown
                    let level = match int(&e["threat_level_id"]) {
                        Some(l @ 1..=4) => l as usize - 1,
                        _ => 4,
                    };
                    expect[month * 5 + level] += 1;
                }
                Template::TimeToPublish => {
                    let published = int(&e["publish_timestamp"]).filter(|&t| t > 0);
                    let d = e["date"].as_str().unwrap();
                    let (y, m, dd) = (
                        d[..4].parse::<i32>().unwrap(),
                        d[5..7].parse::<u8>().unwrap(),
                        d[8..10].parse::<u8>().unwrap(),
                    );
                    match published {
                        None => expect[DELAY_BUCKETS.len() - 1] += 1,
                        Some(ts) => {
                            let days = concord_stats::misp::Date {
                                year: y,
                                month: m,
                                day: dd,
                            }
                            .days_since_epoch();
                            let delay = ts / 86_400 - days;
                            expect[raw_day_bucket(delay)] += 1;
                            let c = delay.clamp(0, MAX_DELAY_DAYS as i64) as u64;
                            let n = DELAY_BUCKETS.len();
                            expect[n] += 1;
                            expect[n + 1] += c;
                            expect[n + 2] += c * c;
                        }
                    }
                }
            }
        }
        if *template == Template::InstitutionsByEventsPerMonth {
            for (month, n) in per_month.into_iter().enumerate() {
                let bucket = [
                    (0, 0),
                    (1, 1),
                    (5, 2),
                    (10, 3),
                    (30, 4),
                    (100, 5),
                    (1000, 6),
                ]
                .iter()
                .find(|(hi, _)| n <= *hi)
                .map(|(_, b)| *b)
                .unwrap_or(7);
                expect[month * 8 + bucket] = 1;
            }
        }
        // the same statistic, as the sum of one institution per creator organisation
        let mut summed = vec![0u64; layout.cells()];
        let mut counted = 0;
        for creator in &creators {
            let institution = Institution {
                organisation_uuids: vec![creator.clone()],
                survey: None,
                sector: Some("it - security".into()),
                organisation_type: Some("CSIRT".into()),
            };
            let stat = template
                .compute(&window, &institution, &pooled.events)
                .unwrap();
            if !template.needs_organisation() {
                // these do not depend on who computes: one institution's view is the pooled one
                assert_eq!(stat.values, expect, "{}", template.info().id);
                assert_eq!(stat.events_in_window, inside);
                assert_eq!(stat.clipped_cells, 0);
                counted += 1;
                break;
            }
            for (s, v) in summed.iter_mut().zip(&stat.values) {
                *s += v;
            }
            counted += 1;
        }
        if template.needs_organisation() {
            assert_eq!(summed, expect, "{}", template.info().id);
            assert_eq!(counted, creators.len());
        }
        assert!(
            expect.iter().any(|&x| x > 0),
            "{} must see data",
            template.info().id
        );
    }
    // the data's documented sightings, and attributes with first_seen in published events
    assert_eq!(sightings, 19);
    assert!(aged > 24_000, "{aged}");
}

/// The overlap templates' input — a presence bit per bin — against the raw JSON: every
/// attribute value of the window's events (event-level and in objects), normalised and hashed
/// by `indicators`, binned by `overlap`, from serde_json values rather than the parsed model.
#[test]
fn the_overlap_presence_matches_the_raw_json() {
    use concord_stats::indicators::indicators;
    use concord_stats::overlap::BinningKey;
    let Some(dir) = data_dir() else { return };
    let mut pooled = DataSet::default();
    for group in GROUPS {
        pooled.events.extend(load(&dir.join(group)).unwrap().events);
    }
    let raw = raw_events(&dir);
    let (first, months) = ((2016, 12), 120);
    let window = Window::new(
        YearMonth {
            year: 2016,
            month: 12,
        },
        months as u16,
    )
    .unwrap();
    let key = BinningKey::new([42; 32]).for_query("q-raw");
    // every indicator of the window's raw attribute values, as each is held (repeats kept)
    let mut raw_indicators = Vec::new();
    for e in &raw {
        if raw_month(e, first, months).is_none() {
            continue;
        }
        for a in raw_attributes(e) {
            if let (Some(kind), Some(value)) = (a["type"].as_str(), a["value"].as_str()) {
                raw_indicators.extend(indicators(kind, value));
            }
        }
    }
    // indicators-held: the distinct indicators per group
    let mut distinct: Vec<std::collections::BTreeSet<&str>> = vec![Default::default(); 10];
    for indicator in &raw_indicators {
        let group = concord_stats::indicators::GROUPS
            .iter()
            .position(|g| *g == indicator.group)
            .unwrap();
        distinct[group].insert(&indicator.value);
    }
    let held = Template::IndicatorsHeld
        .compute(&window, &Institution::default(), &pooled.events)
        .unwrap();
    let expect: Vec<u64> = distinct.iter().map(|d| d.len() as u64).collect();
    assert_eq!(held.values, expect);
    assert!(expect.iter().sum::<u64>() > 10_000, "{expect:?}");
    for template in [Template::IndicatorOverlap, Template::IndicatorOverlapByType] {
        let bins = template.layout(&window).overlap.unwrap();
        let mut expect = vec![0u64; bins.total()];
        for indicator in &raw_indicators {
            expect[bins.bin(&key, &indicator.digest())] = 1;
        }
        let held = raw_indicators.len();
        assert!(held > 10_000, "{held} indicators in the window");
        let got = concord_stats::overlap::presence(&pooled.events, &window, &bins, &key);
        let got: Vec<u64> = got.into_iter().map(u64::from).collect();
        assert_eq!(got, expect, "{bins:?}");
        let computed = template
            .compute_overlap(&window, &pooled.events, &bins, &key)
            .unwrap();
        assert_eq!(computed.values, expect);
        // the bins are far from full: most indicators have a bin of their own
        let occupied = expect.iter().sum::<u64>();
        assert!(occupied * 4 < bins.total() as u64 * 3, "{occupied}");
    }
}

/// Institutions as the data's creator organisations: each one's events.
type ByCreator = std::collections::BTreeMap<Option<String>, Vec<concord_stats::Event>>;

/// The pooled events, and the same split into institutions by creator organisation.
fn split_by_creator(dir: &Path) -> (Vec<concord_stats::Event>, ByCreator) {
    let mut pooled = Vec::new();
    for group in GROUPS {
        pooled.extend(load(&dir.join(group)).unwrap().events);
    }
    let mut by_creator = ByCreator::new();
    for e in &pooled {
        by_creator
            .entry(e.creator_uuid().map(str::to_owned))
            .or_default()
            .push(e.clone());
    }
    (pooled, by_creator)
}

#[test]
fn split_by_creator_the_institutions_sum_to_the_pooled_statistic() {
    let Some(dir) = data_dir() else { return };
    let (pooled, by_creator) = split_by_creator(&dir);
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    let nobody = Institution {
        organisation_uuids: vec!["none".into()],
        survey: None,
        ..Default::default()
    };
    assert!(by_creator.len() >= 8);
    for template in [
        Template::EventsByMonthTlpDistribution,
        Template::AttributesByCategoryTypeToIds,
        Template::TimeToPublish,
        Template::AttributesByMonthCategoryTypeToIds,
    ] {
        let whole = template.compute(&window, &nobody, &pooled).unwrap();
        let layout = template.layout(&window);
        let mut slots = vec![0i64; layout.slots()];
        for events in by_creator.values() {
            let part = template.compute(&window, &nobody, events).unwrap();
            for (s, v) in slots.iter_mut().zip(layout.to_slots(&part.values)) {
                *s += v;
            }
        }
        let recombined = layout.from_slots(&slots).unwrap();
        assert_eq!(
            recombined,
            whole.values.iter().map(|&v| v as i128).collect::<Vec<_>>(),
            "{}",
            template.info().id
        );
    }
}

/// The declared sensitivity (what DP noise is calibrated to) holds on the real data: removing
/// any one unit — an event, or one attribute of an event, as the template declares — moves the
/// statistic by at most that much, in L2.
#[test]
fn removing_one_unit_moves_a_template_by_at_most_its_declared_sensitivity() {
    let Some(dir) = data_dir() else { return };
    let mut pooled = Vec::new();
    for group in GROUPS {
        pooled.extend(load(&dir.join(group)).unwrap().events);
    }
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    let institution = Institution {
        organisation_uuids: pooled
            .iter()
            .filter_map(|e| e.creator_uuid().map(str::to_owned))
            .take(1)
            .collect(),
        survey: None,
        ..Default::default()
    };
    let mut checked = std::collections::BTreeMap::new();
    for template in concord_stats::TEMPLATES {
        let Some(unit) = template.privacy_unit() else {
            continue;
        };
        if template.is_overlap() {
            // binned under a key, over several institutions: the next test
            continue;
        }
        let whole = template.compute(&window, &institution, &pooled).unwrap();
        // objects and sightings are rare: try every event for them
        let every = if matches!(unit.unit, "object" | "sighting") {
            1
        } else {
            7
        };
        for skip in (0..pooled.len()).step_by(every) {
            let mut fewer = pooled.clone();
            let event = &mut fewer[skip];
            match unit.unit {
                "event" => {
                    fewer.remove(skip);
                }
                "attribute" if !event.attributes.is_empty() => {
                    event.attributes.remove(0);
                }
                "object" if !event.objects.is_empty() => {
                    event.objects.remove(0);
                }
                "sighting" => {
                    let Some(a) = event
                        .attributes
                        .iter_mut()
                        .chain(
                            event
                                .objects
                                .iter_mut()
                                .flat_map(|o| o.attributes.iter_mut()),
                        )
                        .find(|a| !a.sightings.is_empty())
                    else {
                        continue;
                    };
                    a.sightings.remove(0);
                }
                // indicators-held: one indicator taken from the institution, wherever its
                // attributes hold it (the attributes stay)
                concord_stats::catalogue::HELD_INDICATOR => {
                    let Some(gone) = event
                        .all_attributes()
                        .find_map(|a| a.indicators.first().copied())
                    else {
                        continue;
                    };
                    for e in &mut fewer {
                        for a in e
                            .attributes
                            .iter_mut()
                            .chain(e.objects.iter_mut().flat_map(|o| o.attributes.iter_mut()))
                        {
                            a.indicators.retain(|d| *d != gone);
                        }
                    }
                }
                "attribute" | "object" => continue,
                other => panic!("unit {other}"),
            }
            let part = template.compute(&window, &institution, &fewer).unwrap();
            let l2 = whole
                .values
                .iter()
                .zip(&part.values)
                .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!(l2 <= unit.sensitivity, "{}: {l2}", template.info().id);
            *checked.entry(template.info().id).or_insert(0) += (l2 > 0.0) as usize;
        }
    }
    // every template with a unit, and removals that did move it
    assert_eq!(checked.len(), 14, "{checked:?}");
    assert!(checked.values().all(|&moved| moved >= 2), "{checked:?}");
}

/// The overlap histograms' unit is one indicator held by one institution: taking one away
/// from one institution moves at most two released counts by one each (`√2`), whatever bin
/// it falls in and whoever else holds it — checked on the real data split by source, for
/// indicators sampled from every institution, under both overlap templates' bins.
#[test]
fn removing_one_indicator_of_one_institution_moves_an_overlap_histogram_by_at_most_its_sensitivity()
{
    use concord_stats::overlap::{distinct_indicators, histogram, BinningKey};
    let Some(dir) = data_dir() else { return };
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    let institutions: Vec<Vec<concord_stats::Event>> = GROUPS
        .iter()
        .map(|group| load(&dir.join(group)).unwrap().events)
        .collect();
    let held: Vec<Vec<_>> = institutions
        .iter()
        .map(|events| distinct_indicators(events, &window))
        .collect();
    let key = BinningKey::new([7; 32]).for_query("q-sensitivity");
    for template in [Template::IndicatorOverlap, Template::IndicatorOverlapByType] {
        let unit = template.privacy_unit().unwrap();
        let bins = template.layout(&window).overlap.unwrap();
        let counts = |held: &[Vec<_>]| {
            let mut sums = vec![0u32; bins.total()];
            for indicators in held {
                let mut bits = vec![false; bins.total()];
                for indicator in indicators {
                    bits[bins.bin(&key, indicator)] = true;
                }
                for (sum, bit) in sums.iter_mut().zip(bits) {
                    *sum += u32::from(bit);
                }
            }
            histogram(&sums, &bins, held.len())
        };
        let whole = counts(&held);
        let mut moved = 0;
        for (i, indicators) in held.iter().enumerate() {
            for skip in (0..indicators.len()).step_by(997) {
                let mut fewer = held.clone();
                fewer[i].remove(skip);
                let part = counts(&fewer);
                let changed: Vec<i64> = whole
                    .iter()
                    .zip(&part)
                    .map(|(&a, &b)| a as i64 - b as i64)
                    .filter(|&d| d != 0)
                    .collect();
                let l2 = (changed.iter().map(|d| (d * d) as f64).sum::<f64>()).sqrt();
                assert!(changed.len() <= unit.cells, "{changed:?}");
                assert!(
                    l2 <= unit.sensitivity + 1e-12,
                    "{}: {l2}",
                    template.info().id
                );
                moved += !changed.is_empty() as usize;
            }
        }
        assert!(
            moved >= 10,
            "{}: {moved} removals moved it",
            template.info().id
        );
    }
}

/// The learning samples (issue 19) on the real data against the raw JSON: per label, the
/// samples and positives; per flag feature, how many samples carry it.
#[test]
fn learning_samples_match_the_raw_json() {
    use concord_stats::learning::{Design, Label, LABELS};
    let Some(dir) = data_dir() else { return };
    let mut pooled = Vec::new();
    for group in GROUPS {
        pooled.extend(load(&dir.join(group)).unwrap().events);
    }
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    let raw: Vec<Value> = raw_events(&dir)
        .into_iter()
        .filter(|e| raw_month(e, (2016, 12), 120).is_some())
        .collect();
    let present = |v: &Value| match v {
        Value::Null => false,
        Value::String(s) => !s.trim().is_empty(),
        _ => true,
    };
    for label in LABELS {
        let design = Design::new(*label);
        let samples = design.samples(&pooled, &window);
        // (samples, positives, and per flag: samples carrying it) from the raw JSON
        let mut expected = (0usize, 0usize);
        let flags = [
            "in-object",
            "attribute-tagged",
            "first-seen",
            "tlp:clear",
            "tlp:amber",
            "galaxy",
        ];
        let mut expected_flags = [0usize; 6];
        for e in &raw {
            let distribution = raw_distribution(e);
            let galaxy = e["Tag"].as_array().into_iter().flatten().any(|t| {
                t["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("misp-galaxy:"))
            }) || e["Galaxy"].as_array().into_iter().flatten().any(|g| {
                g["GalaxyCluster"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| {
                        c["tag_name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("misp-galaxy:"))
                    })
            });
            let object_attributes: usize = e["Object"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|o| o["Attribute"].as_array().map_or(0, Vec::len))
                .sum();
            let attributes = raw_attributes(e);
            let event_level = attributes.len() - object_attributes;
            for (k, a) in attributes.iter().enumerate() {
                let y = match label {
                    Label::ToIds => {
                        if !present(&a["to_ids"]) {
                            continue;
                        }
                        raw_truthy(&a["to_ids"])
                    }
                    Label::FalsePositive => a["Sighting"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|s| int(&s["type"]) == Some(1)),
                    Label::SharedBeyondCommunity => {
                        if distribution == 5 {
                            continue;
                        }
                        distribution == 2 || distribution == 3
                    }
                };
                expected.0 += 1;
                expected.1 += usize::from(y);
                let tagged = a["Tag"].as_array().is_some_and(|t| !t.is_empty());
                let seen = present(&a["first_seen"]);
                for (f, on) in [
                    k >= event_level,
                    tagged,
                    seen,
                    raw_tlp(e) == 0,
                    matches!(raw_tlp(e), 2 | 3),
                    galaxy,
                ]
                .into_iter()
                .enumerate()
                {
                    expected_flags[f] += usize::from(on);
                }
            }
        }
        let positives = samples.iter().filter(|s| s.y).count();
        assert_eq!((samples.len(), positives), expected, "{}", label.id());
        let names = design.names();
        for (f, name) in flags.iter().enumerate() {
            let j = names.iter().position(|n| n == name).unwrap();
            let carrying = samples.iter().filter(|s| s.x[j] == 1.0).count();
            assert_eq!(carrying, expected_flags[f], "{}: {name}", label.id());
        }
        // every feature in [0, 1], the bias 1
        assert!(samples
            .iter()
            .all(|s| s.x[0] == 1.0 && s.x.iter().all(|v| (0.0..=1.0).contains(v))));
    }
}

/// Federated training (issue 19) over the real data split by creator: each institution's
/// fixed-point gradient, summed, stepped — within the derived bound of gradient descent on the
/// pooled data, coefficient by coefficient, for every label with both classes.
#[test]
fn federated_training_over_the_creators_matches_pooled_training() {
    use concord_stats::learning::{
        evaluate, train_federated, train_pooled, Design, Sample, TrainConfig, LABELS, OBJECTIVES,
    };
    let Some(dir) = data_dir() else { return };
    let (pooled, by_creator) = split_by_creator(&dir);
    let window = Window::new(YearMonth::parse("2016-12").unwrap(), 120).unwrap();
    assert!(by_creator.len() >= 4);
    for label in LABELS {
        let design = Design::new(*label);
        let parts: Vec<Vec<Sample>> = by_creator
            .values()
            .map(|events| design.samples(events, &window))
            .collect();
        let all: Vec<Sample> = parts.iter().flatten().cloned().collect();
        assert_eq!(all.len(), design.samples(&pooled, &window).len());
        let positives = all.iter().filter(|s| s.y).count();
        if positives == 0 || positives == all.len() {
            continue;
        }
        for objective in OBJECTIVES {
            let config = TrainConfig {
                rounds: 30,
                learning_rate: TrainConfig::max_learning_rate(*objective, design.dimension()),
                scale_bits: 16,
                objective: *objective,
            };
            let reference = train_pooled(&design, &all, config).unwrap();
            let slices: Vec<&[Sample]> = parts.iter().map(Vec::as_slice).collect();
            let federated = train_federated(&design, &slices, config).unwrap();
            let bound = config.divergence_bound(design.dimension());
            for ((a, b), name) in federated
                .coefficients
                .iter()
                .zip(&reference.coefficients)
                .zip(design.names())
            {
                assert!(
                    (a - b).abs() <= bound,
                    "{} ({}): {name}: federated {a}, pooled {b}, bound {bound}",
                    label.id(),
                    objective.id()
                );
            }
            // the descent learns: lower loss than the constant model, and it ranks better than chance
            assert!(
                reference.losses.last().unwrap() < &reference.losses[0],
                "{}",
                label.id()
            );
            let fit = evaluate(&federated, &all);
            assert!(fit.auc.unwrap() > 0.5, "{}: {:?}", label.id(), fit.auc);
            let largest = federated
                .coefficients
                .iter()
                .zip(&reference.coefficients)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            println!(
                "{} ({}): {} samples over {} institutions, {positives} positive; federated − pooled ≤ {largest:.2e} (bound {bound:.2e}); loss {:.4} → {:.4}, AUC {:.3}",
                label.id(),
                objective.id(),
                all.len(),
                parts.len(),
                reference.losses[0],
                reference.losses.last().unwrap(),
                fit.auc.unwrap()
            );
        }
    }
}
