//! Indicator values as an overlap query compares them (issue 18: "seen by exactly j
//! institutions"; Li et al., "Reading the Tea Leaves", USENIX Security 2019, on the overlap of
//! threat-intelligence feeds): each MISP attribute value normalised per type, and composite
//! types split as MISP splits them (`domain|ip` is a domain and an IP), so that two
//! institutions holding one indicator written differently hold the same [`Indicator`].
//!
//! | group | MISP types | normal form |
//! |---|---|---|
//! | `domain` | `domain`, `hostname`, the domain of `domain\|ip`, `hostname\|port` | lower case, no trailing dot |
//! | `ip` | `ip-src`, `ip-dst`, the IP of `domain\|ip`, `ip-src\|port`, `ip-dst\|port` | the canonical text of the address (IPv6 compressed, IPv4-mapped as IPv4), a CIDR as its network address and prefix; a dotted quad with leading zeros (octal or decimal?) is refused |
//! | `url` | `url`, `uri`, `link` | WHATWG URL serialisation (lower-case scheme and host, default port dropped, `http://` assumed without a scheme) |
//! | `md5`, `sha1`, `sha256`, `sha512`, `imphash`, `authentihash` | the type, and the hash of `filename\|<hash>` and `malware-sample` | lower-case hex of the type's length |
//! | `email` | `email`, `email-src`, `email-dst` | lower case |
//!
//! Other types (free text, file names, registry keys, …) are not indicators here, and a value
//! that is not what its type says (a "domain" with a space, a "md5" of 31 digits) is no
//! indicator either: [`indicators`] gives nothing for it rather than a guess.
//!
//! What a node holds of them is an [`IndicatorDigest`]: the group and SHA-256 of the normal
//! form, made while the MISP file is parsed (`misp::Attribute::indicators`); the values
//! themselves are dropped there.

use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Domain separation of indicator digests.
const DIGEST_CONTEXT: &[u8] = b"concord/indicator/v1\0";

/// An indicator as a node holds it: the index of its group in [`GROUPS`] and SHA-256 of the
/// group and normal form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IndicatorDigest {
    pub group: u8,
    pub digest: [u8; 32],
}

impl Indicator {
    /// The digest a node keeps of this indicator.
    pub fn digest(&self) -> IndicatorDigest {
        let group = GROUPS
            .iter()
            .position(|g| *g == self.group)
            .expect("indicators are made in a listed group") as u8;
        let mut h = Sha256::new();
        h.update(DIGEST_CONTEXT);
        h.update([group]);
        h.update(self.value.as_bytes());
        IndicatorDigest {
            group,
            digest: h.finalize().into(),
        }
    }
}

/// One indicator: its group and its normal form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Indicator {
    pub group: &'static str,
    pub value: String,
}

/// The groups, in a fixed order (the per-group cells of an overlap query).
pub const GROUPS: &[&str] = &[
    "domain",
    "ip",
    "url",
    "md5",
    "sha1",
    "sha256",
    "sha512",
    "imphash",
    "authentihash",
    "email",
];

/// The hash groups (each its own MISP type).
const HASHES: &[&str] = &["md5", "sha1", "sha256", "sha512", "imphash", "authentihash"];

/// The indicators an attribute of MISP type `kind` with `value` holds: none, one, or (for a
/// composite type) one per indicator part.
pub fn indicators(kind: &str, value: &str) -> Vec<Indicator> {
    let (kind, value) = (kind.trim(), value.trim());
    let one = |group: &'static str, value: Option<String>| {
        value
            .map(|value| Indicator { group, value })
            .into_iter()
            .collect::<Vec<_>>()
    };
    let halves = || value.split_once('|');
    match kind {
        "domain" | "hostname" => one("domain", domain(value)),
        "ip-src" | "ip-dst" => one("ip", ip(value)),
        "url" | "uri" | "link" => one("url", url(value)),
        "email" | "email-src" | "email-dst" => one("email", email(value)),
        _ if HASHES.contains(&kind) => {
            let group = HASHES.iter().find(|g| **g == kind).expect("listed");
            one(group, hash(group, value))
        }
        "domain|ip" => match halves() {
            Some((d, i)) => [one("domain", domain(d)), one("ip", ip(i))].concat(),
            None => Vec::new(),
        },
        "hostname|port" => halves().map_or_else(Vec::new, |(h, _)| one("domain", domain(h))),
        "ip-src|port" | "ip-dst|port" => halves().map_or_else(Vec::new, |(i, _)| one("ip", ip(i))),
        "malware-sample" => halves().map_or_else(Vec::new, |(_, h)| one("md5", hash("md5", h))),
        _ => match kind
            .strip_prefix("filename|")
            .and_then(|algorithm| HASHES.iter().find(|g| **g == algorithm))
        {
            Some(group) => halves().map_or_else(Vec::new, |(_, h)| one(group, hash(group, h))),
            None => Vec::new(),
        },
    }
}

fn domain(value: &str) -> Option<String> {
    let d = value.trim().trim_end_matches('.').to_lowercase();
    let valid = d.contains('.')
        && !d.starts_with('.')
        && d.chars().all(|c| !c.is_whitespace() && !"/:@|".contains(c));
    valid.then_some(d)
}

fn ip(value: &str) -> Option<String> {
    let value = value.trim().trim_start_matches('[').trim_end_matches(']');
    match value.split_once('/') {
        None => value
            .parse::<IpAddr>()
            .ok()
            .map(|a| a.to_canonical().to_string()),
        Some((address, prefix)) => {
            let address = address.parse::<IpAddr>().ok()?.to_canonical();
            let prefix: u32 = prefix.parse().ok()?;
            let network = match address {
                IpAddr::V4(a) if prefix <= 32 => {
                    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                    IpAddr::from((u32::from(a) & mask).to_be_bytes())
                }
                IpAddr::V6(a) if prefix <= 128 => {
                    let mask = u128::MAX.checked_shl(128 - prefix).unwrap_or(0);
                    IpAddr::from((u128::from(a) & mask).to_be_bytes())
                }
                _ => return None,
            };
            Some(format!("{network}/{prefix}"))
        }
    }
}

fn url(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() || value.chars().any(char::is_whitespace) {
        return None;
    }
    let with_scheme = if value.contains("://") {
        value.to_owned()
    } else {
        format!("http://{value}")
    };
    let parsed = url::Url::parse(&with_scheme).ok()?;
    parsed.host()?;
    Some(parsed.to_string())
}

fn email(value: &str) -> Option<String> {
    let e = value.trim().to_lowercase();
    let valid = e.split_once('@').is_some_and(|(local, host)| {
        !local.is_empty() && host.contains('.') && !e.chars().any(char::is_whitespace)
    });
    valid.then_some(e)
}

fn hash(group: &str, value: &str) -> Option<String> {
    let digits = match group {
        "md5" | "imphash" => 32,
        "sha1" => 40,
        "sha256" | "authentihash" => 64,
        "sha512" => 128,
        _ => return None,
    };
    let h = value.trim().to_ascii_lowercase();
    (h.len() == digits && h.bytes().all(|b| b.is_ascii_hexdigit())).then_some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: &str, value: &str) -> Option<(String, String)> {
        match indicators(kind, value).as_slice() {
            [i] => Some((i.group.to_owned(), i.value.clone())),
            [] => None,
            more => panic!("{kind} {value}: {more:?}"),
        }
    }

    fn is(kind: &str, value: &str, group: &str, normal: &str) {
        assert_eq!(
            one(kind, value),
            Some((group.to_owned(), normal.to_owned())),
            "{kind} {value:?}"
        );
    }

    #[test]
    fn the_same_indicator_written_differently_is_one() {
        is("domain", "Example.COM.", "domain", "example.com");
        is("hostname", " www.Example.com ", "domain", "www.example.com");
        is("ip-src", "2001:DB8:0:0:0:0:0:1", "ip", "2001:db8::1");
        is("ip-dst", "::ffff:192.0.2.1", "ip", "192.0.2.1");
        is("ip-dst", "[2001:db8::1]", "ip", "2001:db8::1");
        is("ip-dst", "192.0.2.77/24", "ip", "192.0.2.0/24");
        is("ip-dst", "2001:db8::ff/64", "ip", "2001:db8::/64");
        is(
            "url",
            "HTTP://Example.com:80/Path?q=A",
            "url",
            "http://example.com/Path?q=A",
        );
        is(
            "url",
            "https://example.com:443",
            "url",
            "https://example.com/",
        );
        is("url", "example.com/x", "url", "http://example.com/x");
        is(
            "url",
            "http://62.60.226.146:443",
            "url",
            "http://62.60.226.146:443/",
        );
        is(
            "md5",
            "36CCDC537914FC9375EBAC92C660A8D4",
            "md5",
            "36ccdc537914fc9375ebac92c660a8d4",
        );
        is("email-src", "Bill@Yahoo.com", "email", "bill@yahoo.com");
    }

    #[test]
    fn composite_types_split_as_misp_splits_them() {
        let both = indicators("domain|ip", "WSaudio.com|178.20.157.189");
        assert_eq!(
            both,
            [
                Indicator {
                    group: "domain",
                    value: "wsaudio.com".into()
                },
                Indicator {
                    group: "ip",
                    value: "178.20.157.189".into()
                },
            ]
        );
        is(
            "filename|sha1",
            "a5ff5f.exe|0AF6BDE11EAA699604AA92CCE9A6210DFCE70F42",
            "sha1",
            "0af6bde11eaa699604aa92cce9a6210dfce70f42",
        );
        is(
            "ip-dst|port",
            "125.212.132.222|443",
            "ip",
            "125.212.132.222",
        );
        is(
            "hostname|port",
            "Mail.example.org|25",
            "domain",
            "mail.example.org",
        );
        is(
            "malware-sample",
            "simple.json|7637beddacbeac59d44469b2b120b9e6",
            "md5",
            "7637beddacbeac59d44469b2b120b9e6",
        );
    }

    #[test]
    fn what_is_not_an_indicator_gives_none() {
        for (kind, value) in [
            ("domain", "not a domain"),
            ("domain", "localhost"),
            ("ip-dst", "999.1.1.1"),
            ("ip-dst", "010.1.2.3"), // octal or decimal? ambiguous: not guessed
            ("ip-dst", "10.0.0.0/33"),
            ("md5", "36ccdc537914fc9375ebac92c660a8d"),
            ("sha256", "zz"),
            ("url", "http://"),
            ("email-src", "nobody"),
            ("filename", "a.exe"),
            ("text", "44/66"),
            ("filename|size", "a.exe|12"),
            ("domain|ip", "no-separator"),
        ] {
            assert_eq!(indicators(kind, value), [], "{kind} {value:?}");
        }
    }

    /// Every (type, value) of the attributes in the project's real MISP data.
    fn real_values(dir: &std::path::Path) -> Vec<(String, String)> {
        let mut files = vec![dir.to_owned()];
        let mut out = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let Ok(json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
                continue;
            };
            for event in crate::misp::event_values(json).unwrap_or_default() {
                let objects = event["Object"].as_array().cloned().unwrap_or_default();
                let attributes = event["Attribute"]
                    .as_array()
                    .into_iter()
                    .chain(objects.iter().filter_map(|o| o["Attribute"].as_array()))
                    .flatten();
                for a in attributes {
                    if let (Some(t), Some(v)) = (a["type"].as_str(), a["value"].as_str()) {
                        out.push((t.to_owned(), v.to_owned()));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn real_indicators_normalise_and_normal_forms_are_fixed_points() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let Some(dir) = crate::test_data_dir(&root) else {
            return;
        };
        let values = real_values(&dir);
        let typed: Vec<&(String, String)> = values
            .iter()
            .filter(|(t, _)| {
                ["domain", "url", "ip-dst", "ip-src", "md5", "sha1", "sha256"].contains(&t.as_str())
            })
            .collect();
        assert!(
            typed.len() > 70_000,
            "{} indicator-typed values",
            typed.len()
        );
        let normalised: Vec<Indicator> = typed.iter().flat_map(|(t, v)| indicators(t, v)).collect();
        // nearly every value of an indicator type is one (the rest: malformed in the source)
        assert!(
            normalised.len() * 1000 >= typed.len() * 995,
            "{} of {} normalised",
            normalised.len(),
            typed.len()
        );
        // a normal form normalises to itself
        for i in &normalised {
            let kind = match i.group {
                "ip" => "ip-dst",
                other => other,
            };
            assert_eq!(indicators(kind, &i.value), std::slice::from_ref(i), "{i:?}");
        }
    }
}
