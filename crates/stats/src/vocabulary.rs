//! The vocabularies a template's dimensions are made of, and how an event or attribute is
//! placed in them: TLP and PAP tags (MISP taxonomies `tlp`, `PAP`), distribution levels,
//! threat levels, the sector galaxy, organisation types, galaxy types, object templates, and
//! the buckets of the histograms.
//!
//! Every vocabulary ends with a catch-all cell ("unknown", "other", "not declared"): a missing
//! or unrecognised value is counted there, never guessed.

use crate::misp::Event;

/// TLP levels, least to most restrictive, then "no TLP tag".
pub const TLP_LEVELS: &[&str] = &["clear", "green", "amber", "amber+strict", "red", "unknown"];

/// PAP levels (MISP taxonomy `PAP`), least to most restrictive, then "no PAP tag".
pub const PAP_LEVELS: &[&str] = &["clear", "green", "amber", "red", "unknown"];

/// Event distribution levels, then "not in the export" (feeds strip it).
pub const DISTRIBUTIONS: &[&str] = &[
    "organisation",
    "community",
    "connected",
    "all",
    "sharing group",
    "unknown",
];

/// Attribute distribution levels: the event's five, "inherit event" (5), then "unknown".
pub const ATTRIBUTE_DISTRIBUTIONS: &[&str] = &[
    "organisation",
    "community",
    "connected",
    "all",
    "sharing group",
    "inherit event",
    "unknown",
];

/// MISP's threat levels (`threat_level_id` 1–4), then "unknown" (absent or out of range).
pub const THREAT_LEVELS: &[&str] = &["high", "medium", "low", "undefined", "unknown"];

/// The sector galaxy's clusters (MISP/misp-galaxy `clusters/sector.json`, version 6, CC0 1.0 /
/// BSD-2-Clause), in its order: what an institution declares as its `sector`, as a MISP
/// organisation's `sector` field does.
pub const SECTORS: &[&str] = &[
    "Unknown",
    "Other",
    "Academia - University",
    "Activists",
    "Aerospace",
    "Agriculture",
    "Arts",
    "Bank",
    "Chemical",
    "Citizens",
    "Civil Aviation",
    "Country",
    "Culture",
    "Data Broker",
    "Defense",
    "Development",
    "Diplomacy",
    "Education",
    "Electric",
    "Electronic",
    "Employment",
    "Energy",
    "Entertainment",
    "Environment",
    "Finance",
    "Food",
    "Game",
    "Gas",
    "Government, Administration",
    "Health",
    "Higher education",
    "Hotels",
    "Infrastructure",
    "Intelligence",
    "IT",
    "IT - Hacker",
    "IT - ISP",
    "IT - Security",
    "Justice",
    "Manufacturing",
    "Maritime",
    "Military",
    "Multi-sector",
    "News - Media",
    "NGO",
    "Oil",
    "Payment",
    "Pharmacy",
    "Police - Law enforcement",
    "Research - Innovation",
    "Satellite navigation",
    "Security systems",
    "Social networks",
    "Space",
    "Steel",
    "Telecoms",
    "Think Tanks",
    "Trade",
    "Transport",
    "Travel",
    "Turbine",
    "Tourism",
    "Life science",
    "Biomedical",
    "High tech",
    "Opposition",
    "Political party",
    "Hospitality",
    "Automotive",
    "Metal",
    "Railway",
    "Water",
    "Smart meter",
    "Retail",
    "Technology",
    "Engineering",
    "Mining",
    "Sport",
    "Restaurant",
    "Semi-conductors",
    "Insurance",
    "Legal",
    "Shipping",
    "Logistic",
    "Construction",
    "Industrial",
    "Communication equipment",
    "Security Service",
    "Tax firm",
    "Television broadcast",
    "Separatists",
    "Dissidents",
    "Digital services",
    "Digital infrastructure",
    "Security actors",
    "eCommerce",
    "Islamic forums",
    "Journalist",
    "Streaming service",
    "Publishing industry",
    "Islamic organisation",
    "Casino",
    "Consulting",
    "Online marketplace",
    "DNS service provider",
    "Veterinary",
    "Marketing",
    "Video Sharing",
    "Advertising",
    "Investment",
    "Accounting",
    "Programming",
    "Managed Services Provider",
    "Lawyers",
    "Civil society",
    "Petrochemical",
    "Immigration",
    "Non-profit organisation",
];

/// Kinds of institution, as a MISP organisation's `type` field names them in a sharing
/// community, then "not declared".
pub const ORGANISATION_TYPES: &[&str] = &[
    "CSIRT",
    "ISAC",
    "government agency",
    "law enforcement",
    "military",
    "private company",
    "security vendor",
    "academia",
    "non-profit",
    "other",
];

/// Galaxies whose clusters are attached to events (MISP/misp-galaxy), ATT&CK first; clusters of
/// any other galaxy are counted under "other".
pub const GALAXY_TYPES: &[&str] = &[
    "mitre-attack-pattern",
    "mitre-intrusion-set",
    "mitre-malware",
    "mitre-tool",
    "mitre-course-of-action",
    "mitre-enterprise-attack-attack-pattern",
    "mitre-enterprise-attack-intrusion-set",
    "mitre-enterprise-attack-malware",
    "mitre-enterprise-attack-tool",
    "mitre-enterprise-attack-course-of-action",
    "threat-actor",
    "malpedia",
    "tool",
    "ransomware",
    "rat",
    "banker",
    "botnet",
    "stealer",
    "backdoor",
    "exploit-kit",
    "sector",
    "country",
    "region",
    "target-information",
    "guidelines",
    "other",
];

/// MISP object templates (MISP/misp-objects) counted by name; any other is "other".
pub const OBJECT_TEMPLATES: &[&str] = &[
    "android-app",
    "annotation",
    "attack-pattern",
    "av-signature",
    "bank-account",
    "command-line",
    "cookie",
    "corporate-asset",
    "course-of-action",
    "credential",
    "dns-record",
    "domain-ip",
    "elf",
    "elf-section",
    "email",
    "file",
    "ftm-Person",
    "geolocation",
    "http-request",
    "instant-message",
    "ip-port",
    "macho",
    "microblog",
    "network-connection",
    "original-imported-file",
    "passive-dns",
    "pe",
    "pe-section",
    "person",
    "phone",
    "process",
    "regexp",
    "registry-key",
    "report",
    "sandbox-report",
    "script",
    "sigma",
    "url",
    "user-account",
    "vehicle",
    "victim",
    "virustotal-report",
    "vulnerability",
    "weakness",
    "whois",
    "x509",
    "yara",
    "other",
];

/// Sighting types (`Sighting.type` 0, 1, 2), then "other".
pub const SIGHTING_TYPES: &[&str] = &["sighting", "false positive", "expiration", "other"];

/// Buckets of attributes per event (objects' attributes included).
pub const ATTRIBUTE_COUNT_BUCKETS: &[&str] = &[
    "0",
    "1",
    "2-5",
    "6-10",
    "11-50",
    "51-100",
    "101-1000",
    "more than 1000",
];

/// Buckets of events an institution dated in one month.
pub const EVENTS_PER_MONTH_BUCKETS: &[&str] = &[
    "0",
    "1",
    "2-5",
    "6-10",
    "11-30",
    "31-100",
    "101-1000",
    "more than 1000",
];

/// Buckets of a delay in whole days (publication after the event date, an indicator's age at
/// publication); a template appends its own "not known" cells.
pub const DAY_BUCKETS: &[&str] = &[
    "negative",
    "same day",
    "1 day",
    "2-3 days",
    "4-7 days",
    "8-14 days",
    "15-30 days",
    "31-90 days",
    "91-365 days",
    "over a year",
];

/// The bucket of a count: `0`, `1`, `2-5`, `6-10`, then the given upper ends, then "more".
fn count_bucket(n: u64, upper: [u64; 3]) -> usize {
    match n {
        0 => 0,
        1 => 1,
        2..=5 => 2,
        6..=10 => 3,
        _ => 4 + upper.iter().take_while(|&&hi| n > hi).count(),
    }
}

/// The [`ATTRIBUTE_COUNT_BUCKETS`] bucket of `n`.
pub fn attribute_count_bucket(n: u64) -> usize {
    count_bucket(n, [50, 100, 1000])
}

/// The [`EVENTS_PER_MONTH_BUCKETS`] bucket of `n`.
pub fn events_per_month_bucket(n: u64) -> usize {
    count_bucket(n, [30, 100, 1000])
}

/// The [`DAY_BUCKETS`] bucket of a delay.
pub fn day_bucket(days: i64) -> usize {
    match days {
        ..=-1 => 0,
        0 => 1,
        1 => 2,
        2..=3 => 3,
        4..=7 => 4,
        8..=14 => 5,
        15..=30 => 6,
        31..=90 => 7,
        91..=365 => 8,
        _ => 9,
    }
}

/// The most restrictive level among `tags` of a `prefix:` taxonomy, by `levels` (lower-case
/// names, least restrictive first); `None` without such a tag.
fn most_restrictive<'a>(
    tags: impl Iterator<Item = &'a str>,
    prefix: &str,
    levels: &[&[&str]],
) -> Option<usize> {
    tags.filter_map(|name| {
        let name = name.trim().to_ascii_lowercase();
        let level = name.strip_prefix(prefix)?;
        levels.iter().position(|names| names.contains(&level))
    })
    .max()
}

/// The event's TLP level (index into [`TLP_LEVELS`]): the most restrictive `tlp:` tag, `tlp:white`
/// counting as `clear` (its TLP 2.0 name); "unknown" without one.
pub fn tlp_level(event: &Event) -> usize {
    most_restrictive(
        event.tags.iter().map(|t| t.name.as_str()),
        "tlp:",
        &[
            &["clear", "white"],
            &["green"],
            &["amber"],
            &["amber+strict"],
            &["red"],
        ],
    )
    .unwrap_or(TLP_LEVELS.len() - 1)
}

/// The event's PAP level (index into [`PAP_LEVELS`]): the most restrictive `PAP:` tag, `PAP:WHITE`
/// counting as `clear`; "unknown" without one.
pub fn pap_level(event: &Event) -> usize {
    most_restrictive(
        event.tags.iter().map(|t| t.name.as_str()),
        "pap:",
        &[&["clear", "white"], &["green"], &["amber"], &["red"]],
    )
    .unwrap_or(PAP_LEVELS.len() - 1)
}

/// The event's distribution level (index into [`DISTRIBUTIONS`]); "unknown" when absent or
/// not an event-level value.
pub fn distribution(event: &Event) -> usize {
    match event.distribution {
        Some(d @ 0..=4) => d as usize,
        _ => DISTRIBUTIONS.len() - 1,
    }
}

/// The threat level (index into [`THREAT_LEVELS`]).
pub fn threat_level(event: &Event) -> usize {
    match event.threat_level_id {
        Some(l @ 1..=4) => l as usize - 1,
        _ => THREAT_LEVELS.len() - 1,
    }
}

/// The position of `value` in a vocabulary ending in a catch-all, case-insensitively; the
/// catch-all when absent or not in it.
pub fn position_or_last(vocabulary: &[&str], value: Option<&str>) -> usize {
    value
        .and_then(|v| {
            vocabulary[..vocabulary.len() - 1]
                .iter()
                .position(|x| x.eq_ignore_ascii_case(v.trim()))
        })
        .unwrap_or(vocabulary.len() - 1)
}

/// The galaxy type of a cluster tag `misp-galaxy:<type>="<value>"`.
pub fn galaxy_type(tag: &str) -> Option<&str> {
    tag.strip_prefix("misp-galaxy:")?.split('=').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_have_their_documented_edges() {
        let edges = [
            (0, 0),
            (1, 1),
            (2, 2),
            (5, 2),
            (6, 3),
            (10, 3),
            (11, 4),
            (50, 4),
            (51, 5),
        ];
        for (n, b) in edges {
            assert_eq!(attribute_count_bucket(n), b, "{n}");
        }
        assert_eq!(attribute_count_bucket(1000), 6);
        assert_eq!(attribute_count_bucket(1001), 7);
        assert_eq!(events_per_month_bucket(30), 4);
        assert_eq!(events_per_month_bucket(31), 5);
        assert_eq!(
            events_per_month_bucket(5000),
            EVENTS_PER_MONTH_BUCKETS.len() - 1
        );
        assert_eq!(day_bucket(-3), 0);
        assert_eq!(day_bucket(400), DAY_BUCKETS.len() - 1);
        assert_eq!(position_or_last(SECTORS, Some("finance")), 24);
        assert_eq!(position_or_last(SIGHTING_TYPES, Some("nope")), 3);
        assert_eq!(position_or_last(SIGHTING_TYPES, None), 3);
        assert_eq!(
            galaxy_type("misp-galaxy:threat-actor=\"Sofacy\""),
            Some("threat-actor")
        );
        assert_eq!(galaxy_type("tlp:red"), None);
    }
}
