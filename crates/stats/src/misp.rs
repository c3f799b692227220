//! The MISP event model Concord reads (DESIGN.md §3), and the top-level shapes real MISP
//! exports use: `{"Event": {...}}` (feeds, `events/view`), `{"response": [{"Event": ...}]}`
//! (`events/restSearch`; older servers list bare events there), and a bare event object.
//!
//! Only the fields statistics need are modelled; everything else — in particular personal
//! fields such as `event_creator_email` and comments — is skipped by the parser and never held
//! in memory as data. An attribute's value is read only to derive the digests of the
//! indicators it holds (`indicators`: normalised per type, then hashed) and is not kept;
//! free text, file names and every other non-indicator value leave nothing. MISP writes numbers and booleans either as JSON
//! numbers/booleans or as strings (`"3"`, `"True"`, `"1"`); both are accepted, and an empty
//! string means absent.

use crate::indicators::{Indicator, IndicatorDigest};
use serde::de::{self, Deserializer};
use serde::Deserialize;

impl From<time::Date> for Date {
    fn from(date: time::Date) -> Self {
        Self {
            year: date.year(),
            month: u8::from(date.month()),
            day: date.day(),
        }
    }
}

/// A calendar date (`YYYY-MM-DD`), validated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: i32,
    pub month: u8,
    pub day: u8,
}

/// 1970-01-01 as a Julian day number.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

impl Date {
    /// `YYYY-MM-DD` (anything after the day, such as a time, is ignored), a real calendar day
    /// (the `time` crate's proleptic Gregorian calendar).
    pub fn parse(s: &str) -> Option<Self> {
        let mut it = s.trim().splitn(3, '-');
        let year: i32 = it.next()?.parse().ok()?;
        let month: u8 = it.next()?.parse().ok()?;
        let day: u8 = it.next()?.get(..2)?.parse().ok()?;
        let date =
            time::Date::from_calendar_date(year, time::Month::try_from(month).ok()?, day).ok()?;
        Some(Self::from(date))
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(&self) -> i64 {
        let date = time::Month::try_from(self.month)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(self.year, m, self.day).ok())
            .expect("a Date holds a real calendar day");
        i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
    }

    /// The date `days` after 1970-01-01 (`None` outside the years ±9999).
    pub fn from_days_since_epoch(days: i64) -> Option<Self> {
        let julian = i32::try_from(days + UNIX_EPOCH_JULIAN_DAY).ok()?;
        time::Date::from_julian_day(julian).ok().map(Self::from)
    }

    /// Months since January of year 0, for monthly buckets.
    pub fn month_index(&self) -> i64 {
        self.year as i64 * 12 + self.month as i64 - 1
    }
}

/// An organisation as MISP names it (`Orgc` creator, `Org` owner on this instance).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Organisation {
    #[serde(default, deserialize_with = "text")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
}

/// A tag (`tlp:amber`, `PAP:GREEN`, `misp-galaxy:sector="Finance"`, …).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Tag {
    #[serde(default)]
    pub name: String,
}

/// A sighting of an attribute: 0 sighting, 1 false positive, 2 expiration.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Sighting {
    #[serde(default, rename = "type", deserialize_with = "number")]
    pub kind: Option<u64>,
}

/// An attribute (an indicator or a piece of context). Its value is kept only as the digests
/// of the indicators it holds.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(from = "RawAttribute")]
pub struct Attribute {
    pub category: String,
    pub kind: String,
    pub to_ids: Option<bool>,
    pub distribution: Option<u64>,
    pub first_seen: Option<String>,
    pub tags: Vec<Tag>,
    pub sightings: Vec<Sighting>,
    /// The indicators of the value (none for a value that is not one; two for composites
    /// such as `domain|ip`), as digests.
    pub indicators: Vec<IndicatorDigest>,
}

/// An attribute as MISP writes it, value included: parsed, then reduced to an [`Attribute`].
#[derive(Deserialize)]
struct RawAttribute {
    #[serde(default)]
    category: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default, deserialize_with = "text")]
    value: Option<String>,
    #[serde(default, deserialize_with = "boolean")]
    to_ids: Option<bool>,
    #[serde(default, deserialize_with = "number")]
    distribution: Option<u64>,
    #[serde(default, deserialize_with = "text")]
    first_seen: Option<String>,
    #[serde(default, rename = "Tag")]
    tags: Vec<Tag>,
    #[serde(default, rename = "Sighting")]
    sightings: Vec<Sighting>,
}

impl From<RawAttribute> for Attribute {
    fn from(raw: RawAttribute) -> Self {
        let indicators = raw
            .value
            .as_deref()
            .map(|value| {
                crate::indicators::indicators(&raw.kind, value)
                    .iter()
                    .map(Indicator::digest)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            category: raw.category,
            kind: raw.kind,
            to_ids: raw.to_ids,
            distribution: raw.distribution,
            first_seen: raw.first_seen,
            tags: raw.tags,
            sightings: raw.sightings,
            indicators,
        }
    }
}

/// A MISP object: a group of attributes made from an object template (`file`, `domain-ip`, …).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct MispObject {
    /// The object template's name.
    #[serde(default, deserialize_with = "text")]
    pub name: Option<String>,
    #[serde(default, rename = "Attribute")]
    pub attributes: Vec<Attribute>,
}

/// A galaxy cluster attached to an event (a threat actor, an ATT&CK technique, a sector, …).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct GalaxyCluster {
    /// The cluster's tag, `misp-galaxy:<galaxy type>="<value>"`.
    #[serde(default, deserialize_with = "text")]
    pub tag_name: Option<String>,
}

/// A galaxy and the clusters of it attached to an event.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Galaxy {
    #[serde(default, rename = "GalaxyCluster")]
    pub clusters: Vec<GalaxyCluster>,
}

/// A MISP event, as far as statistics need it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Event {
    #[serde(default, deserialize_with = "text")]
    pub uuid: Option<String>,
    #[serde(default, deserialize_with = "date")]
    pub date: Option<Date>,
    #[serde(default, deserialize_with = "number")]
    pub timestamp: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    pub publish_timestamp: Option<u64>,
    #[serde(default, deserialize_with = "boolean")]
    pub published: Option<bool>,
    /// 0 organisation only, 1 community, 2 connected communities, 3 all, 4 sharing group;
    /// absent in feed exports.
    #[serde(default, deserialize_with = "number")]
    pub distribution: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    pub threat_level_id: Option<u64>,
    #[serde(default, deserialize_with = "number")]
    pub analysis: Option<u64>,
    #[serde(default, rename = "Orgc")]
    pub creator: Option<Organisation>,
    #[serde(default, rename = "Org")]
    pub owner: Option<Organisation>,
    #[serde(default, rename = "Tag")]
    pub tags: Vec<Tag>,
    #[serde(default, rename = "Attribute")]
    pub attributes: Vec<Attribute>,
    #[serde(default, rename = "Object")]
    pub objects: Vec<MispObject>,
    #[serde(default, rename = "Galaxy")]
    pub galaxies: Vec<Galaxy>,
}

impl Event {
    /// Event-level attributes, then those inside objects.
    pub fn all_attributes(&self) -> impl Iterator<Item = &Attribute> {
        self.attributes
            .iter()
            .chain(self.objects.iter().flat_map(|o| o.attributes.iter()))
    }

    /// The galaxy clusters attached to the event, each once: the `misp-galaxy:` event tags and
    /// the clusters of its `Galaxy` list (exports carry a cluster in both, or in one of them).
    pub fn galaxy_clusters(&self) -> std::collections::BTreeSet<&str> {
        self.tags
            .iter()
            .map(|t| t.name.as_str())
            .chain(
                self.galaxies
                    .iter()
                    .flat_map(|g| g.clusters.iter())
                    .filter_map(|c| c.tag_name.as_deref()),
            )
            .filter(|name| name.starts_with("misp-galaxy:"))
            .collect()
    }

    /// The creator organisation's uuid, if the export carries it.
    pub fn creator_uuid(&self) -> Option<&str> {
        self.creator.as_ref()?.uuid.as_deref()
    }
}

/// Why a JSON document is not usable as MISP events.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum EventError {
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("not a MISP event (expected {{\"Event\": …}}, {{\"response\": [{{\"Event\": …}}]}} or an event object)")]
    NotAnEvent,
    /// Every problem of one event, each naming its field (`Attribute[3].distribution: …`).
    #[error("invalid event{}: {}", uuid.as_ref().map(|u| format!(" {u}")).unwrap_or_default(), problems.join("; "))]
    Invalid {
        uuid: Option<String>,
        problems: Vec<String>,
    },
    #[error("event has no valid `date` (YYYY-MM-DD)")]
    MissingDate,
}

/// The events in one MISP JSON document, in any of its shapes (see [`event_values`]). A UTF-8
/// byte-order mark, as some editors and exports write, is skipped.
pub fn parse_events(json: &[u8]) -> Result<Vec<Event>, EventError> {
    let json = json.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(json);
    let value: serde_json::Value =
        serde_json::from_slice(json).map_err(|e| EventError::Json(e.to_string()))?;
    events_from_json(value)
}

/// The events in an already parsed MISP JSON document, in any of its shapes.
pub fn events_from_json(value: serde_json::Value) -> Result<Vec<Event>, EventError> {
    event_values(value)?
        .into_iter()
        .map(event_from_value)
        .collect()
}

/// One event's JSON object, checked: it must parse and carry a date. An event that does not
/// parse is reported with every problem it has, each naming its field.
pub fn event_from_value(v: serde_json::Value) -> Result<Event, EventError> {
    let event: Event = match serde_path_to_error::deserialize(&v) {
        Ok(event) => event,
        Err(_) => {
            return Err(EventError::Invalid {
                uuid: v.get("uuid").and_then(|u| u.as_str()).map(str::to_owned),
                problems: problems(&v),
            })
        }
    };
    if event.date.is_none() {
        return Err(EventError::MissingDate);
    }
    Ok(event)
}

/// Every problem of an event that does not parse, each with its field's path. Every field
/// of [`Event`] is optional, so an event holding one field alone parses exactly when that field
/// does: each field is tried alone, and each element of a list alone (its index put back in
/// the path), so that one bad attribute does not hide the next.
fn problems(event: &serde_json::Value) -> Vec<String> {
    let try_alone = |key: &str, value: &serde_json::Value| {
        let alone = serde_json::json!({ key: value });
        serde_path_to_error::deserialize::<_, Event>(&alone).err()
    };
    let Some(fields) = event.as_object() else {
        return vec![match serde_path_to_error::deserialize::<_, Event>(event) {
            Err(e) => e.inner().to_string(),
            Ok(_) => "not an object".into(),
        }];
    };
    let mut found = Vec::new();
    for (key, value) in fields {
        match value {
            serde_json::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(e) = try_alone(key, &serde_json::json!([item])) {
                        let path = e.path().to_string();
                        let path = path.replacen(&format!("{key}[0]"), &format!("{key}[{i}]"), 1);
                        found.push(format!("{path}: {}", e.inner()));
                    }
                }
            }
            _ => {
                if let Some(e) = try_alone(key, value) {
                    found.push(format!("{}: {}", e.path(), e.inner()));
                }
            }
        }
    }
    if found.is_empty() {
        // a problem of the whole (none of its fields alone): said as serde says it
        if let Err(e) = serde_path_to_error::deserialize::<_, Event>(event) {
            found.push(format!("{}: {}", e.path(), e.inner()));
        }
    }
    found
}

/// Each event's own JSON object in a MISP document: `{"Event": …}` (an event export), `{"response":
/// [{"Event": …}, …]}` (a REST search; older servers give bare events), a bare event, or a
/// top-level list of either. An empty search answer holds no events.
pub fn event_values(value: serde_json::Value) -> Result<Vec<serde_json::Value>, EventError> {
    let is_event = |m: &serde_json::Map<String, serde_json::Value>| {
        m.contains_key("info") || m.contains_key("Attribute")
    };
    let item = |item: serde_json::Value| match item {
        serde_json::Value::Object(mut m) => match m.remove("Event") {
            Some(event) => Ok(event),
            None if is_event(&m) => Ok(serde_json::Value::Object(m)),
            None => Err(EventError::NotAnEvent),
        },
        _ => Err(EventError::NotAnEvent),
    };
    match value {
        serde_json::Value::Object(mut map) => {
            if let Some(event) = map.remove("Event") {
                Ok(vec![event])
            } else if let Some(serde_json::Value::Array(items)) = map.remove("response") {
                items.into_iter().map(item).collect()
            } else if is_event(&map) {
                Ok(vec![serde_json::Value::Object(map)])
            } else {
                Err(EventError::NotAnEvent)
            }
        }
        serde_json::Value::Array(items) => items.into_iter().map(item).collect(),
        _ => Err(EventError::NotAnEvent),
    }
}

// ---- lenient field parsers -------------------------------------------------------------

fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("expected a non-negative integer, got {n}"))),
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => {
            s.trim().parse().map(Some).map_err(|_| {
                de::Error::custom(format!("expected a non-negative integer, got {s:?}"))
            })
        }
        serde_json::Value::Null => Ok(None),
        other => Err(de::Error::custom(format!(
            "expected a non-negative integer, got {other}"
        ))),
    }
}

fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Bool(b) => Ok(Some(b)),
        serde_json::Value::Number(n) => Ok(Some(n.as_u64() != Some(0))),
        serde_json::Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            "" => Ok(None),
            _ => Err(de::Error::custom(format!("expected a boolean, got {s:?}"))),
        },
        serde_json::Value::Null => Ok(None),
        other => Err(de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

fn date<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Date>, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) if s.trim().is_empty() => Ok(None),
        serde_json::Value::String(s) => Date::parse(&s)
            .map(Some)
            .ok_or_else(|| de::Error::custom(format!("invalid date {s:?}"))),
        serde_json::Value::Null => Ok(None),
        other => Err(de::Error::custom(format!("invalid date {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_validated_and_counted_from_the_epoch() {
        assert_eq!(Date::parse("1970-01-01").unwrap().days_since_epoch(), 0);
        assert_eq!(
            Date::parse("2000-03-01").unwrap().days_since_epoch(),
            11_017
        );
        assert_eq!(
            Date::parse("2024-02-29").unwrap().days_since_epoch(),
            19_782
        );
        assert!(Date::parse("2023-02-29").is_none());
        assert!(Date::parse("2023-13-01").is_none());
        assert!(Date::parse("yesterday").is_none());
    }

    /// A byte-order mark is skipped; a top-level list of events (wrapped or bare) is read; an
    /// empty search answer holds no events.
    #[test]
    fn a_byte_order_mark_a_list_and_an_empty_answer_parse() {
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(br#"{"Event": {"uuid": "a", "date": "2020-01-02"}}"#);
        assert_eq!(parse_events(&bom).unwrap()[0].uuid.as_deref(), Some("a"));
        let list = br#"[{"Event": {"uuid": "b", "date": "2020-01-02"}}, {"uuid": "c", "info": "x", "date": "2020-01-03"}]"#;
        let uuids: Vec<_> = parse_events(list)
            .unwrap()
            .into_iter()
            .map(|e| e.uuid.unwrap())
            .collect();
        assert_eq!(uuids, ["b", "c"]);
        assert!(parse_events(br#"{"response": []}"#).unwrap().is_empty());
        assert_eq!(
            parse_events(br#"[{"values": 1}]"#),
            Err(EventError::NotAnEvent)
        );
    }

    #[test]
    fn the_three_shapes_and_lenient_fields_parse() {
        let wrapped = br#"{"Event": {"uuid": "a", "date": "2020-01-02", "distribution": "3", "published": "True", "Attribute": [{"category": "Network activity", "type": "domain", "to_ids": "1"}]}}"#;
        let e = &parse_events(wrapped).unwrap()[0];
        assert_eq!(
            (e.distribution, e.published, e.attributes[0].to_ids),
            (Some(3), Some(true), Some(true))
        );
        let response = br#"{"response": [{"Event": {"uuid": "b", "date": "2020-01-02", "distribution": 1, "published": false}}]}"#;
        assert_eq!(parse_events(response).unwrap()[0].distribution, Some(1));
        let old_response = br#"{"response": [{"uuid": "d", "info": "x", "date": "2020-01-02"}]}"#;
        assert_eq!(
            parse_events(old_response).unwrap()[0].uuid.as_deref(),
            Some("d")
        );
        let bare =
            br#"{"info": "x", "date": "2020-01-02", "event_creator_email": "someone@example.org"}"#;
        let e = parse_events(bare).unwrap();
        assert!(
            !format!("{e:?}").contains("example.org"),
            "personal fields are never kept"
        );
        assert_eq!(parse_events(b"[1, 2]"), Err(EventError::NotAnEvent));
        assert_eq!(parse_events(br#"{"foo": 1}"#), Err(EventError::NotAnEvent));
        assert!(matches!(
            parse_events(b"{\"Event\": {"),
            Err(EventError::Json(_))
        ));
        assert_eq!(
            parse_events(br#"{"Event": {"uuid": "c"}}"#),
            Err(EventError::MissingDate)
        );
        // every problem, each naming its field, in the event and in its attributes
        let bad = br#"{"Event": {"uuid": "e", "date": "2020-01-02", "distribution": "x",
            "Attribute": [{"type": "ip-dst"}, {"to_ids": "maybe"}, {"distribution": -1}],
            "Object": [{"Attribute": [{"type": "md5"}, {"first_seen": 7, "distribution": []}]}]}}"#;
        let error = parse_events(bad).unwrap_err();
        let EventError::Invalid { uuid, problems } = &error else {
            panic!("{error}")
        };
        assert_eq!(uuid.as_deref(), Some("e"));
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].starts_with("Attribute[1].to_ids: expected a boolean"),
            "{problems:#?}"
        );
        assert!(
            problems[1].starts_with("Attribute[2].distribution: expected a non-negative integer")
        );
        assert!(
            problems[2].starts_with("Object[0].Attribute[1]."),
            "{problems:#?}"
        );
        assert!(problems[3].starts_with("distribution: expected a non-negative integer"));
        assert!(error
            .to_string()
            .starts_with("invalid event e: Attribute[1].to_ids"));
    }
}
