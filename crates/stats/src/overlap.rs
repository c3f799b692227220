//! Indicator overlap, as each institution computes its part of it (issue 18; Li et al.,
//! "Reading the Tea Leaves", USENIX Security 2019, on the overlap and exclusive contribution of
//! threat-intelligence feeds): of the indicators the institutions hold, how many are held by
//! exactly 1, 2, …, n of them.
//!
//! Each institution hashes every indicator of its events in the window ([`IndicatorDigest`],
//! made at parsing) into one of `B` bins with a keyed PRF (HMAC-SHA256 under a [`BinningKey`]
//! the nodes agree on and the coordinator never learns), and sets the bin's presence bit: its
//! [`presence`] vector holds 0 or 1 per bin, so an indicator held twice by one institution
//! counts once. Summed over the institutions under encryption, a bin holds how many
//! institutions hold an indicator that falls in it, and only the histogram of those sums is
//! released (`concord-bfv` `value_counts`).
//!
//! Two indicators may fall in one bin: the bin then counts the institutions holding either
//! (the union), so both are counted as one. With `D` distinct indicators thrown into `B` bins,
//! one indicator shares its bin with another with probability `1 − (1 − 1/B)^{D−1} ≈
//! 1 − e^{−D/B}` ([`merge_rate`]); the released histogram gives the occupied bins `O`, from
//! which `D ≈ −B·ln(1 − O/B)` ([`estimated_distinct`]), so every result reports its own
//! expected merge rate. [`reference`] computes the same histogram in the clear, with the same
//! binning, from the institutions' events — what tests compare the released one with.
//!
//! Bins are laid out group after group when the query asks per type ([`Bins::by_group`]):
//! each group of [`GROUPS`] has its own `per_group` bins and its own histogram.

use crate::indicators::{IndicatorDigest, GROUPS};
use crate::layout::Window;
use crate::misp::Event;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

const QUERY_CONTEXT: &[u8] = b"concord/overlap/query-key/v1\0";
const BIN_CONTEXT: &[u8] = b"concord/overlap/bin/v1\0";

/// The secret the nodes bin indicators with; never known to the coordinator.
#[derive(Clone)]
pub struct BinningKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for BinningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BinningKey(…)")
    }
}

impl BinningKey {
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key of one query, `HMAC(key, query id)`: every query bins afresh, so two results
    /// cannot be lined up bin by bin.
    pub fn for_query(&self, query_id: &str) -> Self {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0[..]).expect("any key length");
        mac.update(QUERY_CONTEXT);
        mac.update(query_id.as_bytes());
        Self::new(mac.finalize().into_bytes().into())
    }
}

/// How indicators are spread over bins: one histogram over all indicators, or one per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bins {
    /// Bins of each histogram.
    pub per_group: usize,
    /// Whether each group of [`GROUPS`] has its own bins and histogram.
    pub by_group: bool,
}

impl Bins {
    /// The histograms: 1, or one per group of [`GROUPS`].
    pub fn histograms(&self) -> usize {
        if self.by_group {
            GROUPS.len()
        } else {
            1
        }
    }

    /// Bins in all.
    pub fn total(&self) -> usize {
        self.per_group * self.histograms()
    }

    /// The bin of an indicator under `key`: its histogram's first bin plus
    /// `HMAC(key, group ‖ digest) mod per_group` (the first 8 bytes, big-endian; the bias of
    /// the reduction is below `per_group / 2^64`).
    pub fn bin(&self, key: &BinningKey, indicator: &IndicatorDigest) -> usize {
        let mut mac = Hmac::<Sha256>::new_from_slice(&key.0[..]).expect("any key length");
        mac.update(BIN_CONTEXT);
        mac.update(&[indicator.group]);
        mac.update(&indicator.digest);
        let out = mac.finalize().into_bytes();
        let x = u64::from_be_bytes(out[..8].try_into().expect("8 bytes"));
        let first = if self.by_group {
            indicator.group as usize * self.per_group
        } else {
            0
        };
        first + (x % self.per_group as u64) as usize
    }
}

/// The distinct indicators of the events dated in `window`.
pub fn distinct_indicators(events: &[Event], window: &Window) -> Vec<IndicatorDigest> {
    let mut all: Vec<IndicatorDigest> = events
        .iter()
        .filter(|e| e.date.as_ref().and_then(|d| window.position(d)).is_some())
        .flat_map(|e| {
            e.all_attributes()
                .flat_map(|a| a.indicators.iter().copied())
        })
        .collect();
    all.sort_unstable();
    all.dedup();
    all
}

/// One institution's presence vector: 1 in the bin of every indicator of its events dated in
/// `window`, 0 elsewhere.
pub fn presence(events: &[Event], window: &Window, bins: &Bins, key: &BinningKey) -> Vec<u8> {
    let mut out = vec![0u8; bins.total()];
    for indicator in distinct_indicators(events, window) {
        out[bins.bin(key, &indicator)] = 1;
    }
    out
}

/// The histograms of summed presence vectors: for each histogram of `bins`, how many of its
/// bins hold exactly `j` for `j = 1..=institutions`, histogram after histogram.
pub fn histogram(sums: &[u32], bins: &Bins, institutions: usize) -> Vec<u64> {
    let mut out = vec![0u64; bins.histograms() * institutions];
    for (bin, &j) in sums.iter().enumerate() {
        if j > 0 && (j as usize) <= institutions {
            out[(bin / bins.per_group) * institutions + j as usize - 1] += 1;
        }
    }
    out
}

/// In the clear, what the encrypted overlap releases: every institution's presence vector,
/// summed, then [`histogram`].
pub fn reference(
    institutions: &[&[Event]],
    window: &Window,
    bins: &Bins,
    key: &BinningKey,
) -> Vec<u64> {
    let mut sums = vec![0u32; bins.total()];
    for events in institutions {
        for (sum, bit) in sums.iter_mut().zip(presence(events, window, bins, key)) {
            *sum += u32::from(bit);
        }
    }
    histogram(&sums, bins, institutions.len())
}

/// The exact histogram of distinct indicators, no bins: how many are held by exactly `j`
/// institutions, `j = 1..=n`, histogram after histogram as [`histogram`] lays them out.
pub fn exact(institutions: &[&[Event]], window: &Window, by_group: bool) -> Vec<u64> {
    let mut holders: std::collections::BTreeMap<IndicatorDigest, usize> = Default::default();
    for events in institutions {
        for indicator in distinct_indicators(events, window) {
            *holders.entry(indicator).or_default() += 1;
        }
    }
    let n = institutions.len();
    let groups = if by_group { GROUPS.len() } else { 1 };
    let mut out = vec![0u64; groups * n];
    for (indicator, j) in holders {
        let group = if by_group {
            indicator.group as usize
        } else {
            0
        };
        out[group * n + j - 1] += 1;
    }
    out
}

/// The distinct indicators `D` that most likely left `occupied` of `bins` bins occupied:
/// `E[O] = B·(1 − (1 − 1/B)^D)`, solved for `D` (`None` when every bin is occupied: the bins
/// were far too few to tell).
pub fn estimated_distinct(occupied: u64, bins: u64) -> Option<f64> {
    if bins == 0 || occupied >= bins {
        return None;
    }
    let (o, b) = (occupied as f64, bins as f64);
    Some((1.0 - o / b).ln() / (1.0 - 1.0 / b).ln())
}

/// The probability that an indicator shares its bin with another, for `distinct` indicators
/// in `bins` bins: `1 − (1 − 1/B)^{D−1}`.
pub fn merge_rate(distinct: f64, bins: u64) -> f64 {
    if bins == 0 {
        return 1.0;
    }
    1.0 - (1.0 - 1.0 / bins as f64).powf((distinct - 1.0).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::YearMonth;

    fn event(date: &str, values: &[(&str, &str)]) -> Event {
        let attributes: Vec<serde_json::Value> = values
            .iter()
            .map(
                |(t, v)| serde_json::json!({"type": t, "value": v, "category": "Network activity"}),
            )
            .collect();
        crate::misp::event_from_value(serde_json::json!({"date": date, "Attribute": attributes}))
            .unwrap()
    }

    fn window() -> Window {
        Window::new(YearMonth::parse("2024-01").unwrap(), 12).unwrap()
    }

    #[test]
    fn an_institution_counts_an_indicator_once_however_it_is_written() {
        let a = vec![
            event(
                "2024-02-01",
                &[("domain", "Example.com"), ("ip-dst", "192.0.2.1")],
            ),
            event(
                "2024-03-01",
                &[
                    ("hostname", "example.com."),
                    ("domain|ip", "evil.org|192.0.2.1"),
                ],
            ),
            // outside the window, and values that are no indicator
            event("2023-12-31", &[("domain", "outside.org")]),
            event(
                "2024-04-01",
                &[("comment", "example.com"), ("md5", "not a hash")],
            ),
        ];
        let b = vec![event(
            "2024-05-05",
            &[("url", "http://x.org/a"), ("domain", "EVIL.org")],
        )];
        let c = vec![event(
            "2024-06-06",
            &[("domain", "evil.org"), ("ip-src", "192.0.2.1")],
        )];
        let distinct = distinct_indicators(&a, &window());
        assert_eq!(distinct.len(), 3, "example.com, 192.0.2.1, evil.org");
        let institutions: Vec<&[Event]> = vec![&a, &b, &c];
        // example.com: a; 192.0.2.1: a, c; evil.org: a, b, c; http://x.org/a: b
        assert_eq!(exact(&institutions, &window(), false), vec![2, 1, 1]);
        let bins = Bins {
            per_group: 1 << 16,
            by_group: false,
        };
        let key = BinningKey::new([7; 32]).for_query("q-1");
        assert_eq!(
            reference(&institutions, &window(), &bins, &key),
            vec![2, 1, 1]
        );
        let presence_a = presence(&a, &window(), &bins, &key);
        assert_eq!(presence_a.iter().map(|&b| b as usize).sum::<usize>(), 3);
        // by group: domain 1 (example.com), 0, 1 (evil.org); ip 0, 1, 0; url 1, 0, 0
        let by_group = exact(&institutions, &window(), true);
        assert_eq!(&by_group[..9], &[1, 0, 1, 0, 1, 0, 1, 0, 0]);
        let grouped = Bins {
            per_group: 1 << 12,
            by_group: true,
        };
        assert_eq!(
            reference(&institutions, &window(), &grouped, &key),
            by_group
        );
    }

    #[test]
    fn merged_bins_count_the_union_of_holders() {
        let a = vec![event("2024-02-01", &[("domain", "a.org")])];
        let b = vec![event("2024-02-01", &[("domain", "b.org")])];
        let institutions: Vec<&[Event]> = vec![&a, &b];
        // one bin: both indicators in it, held by both institutions between them
        let one = Bins {
            per_group: 1,
            by_group: false,
        };
        let key = BinningKey::new([1; 32]);
        assert_eq!(reference(&institutions, &window(), &one, &key), vec![0, 1]);
        assert_eq!(exact(&institutions, &window(), false), vec![2, 0]);
    }

    #[test]
    fn bins_are_keyed_and_the_merge_rate_is_estimated_from_the_result() {
        let d = IndicatorDigest {
            group: 0,
            digest: [3; 32],
        };
        let bins = Bins {
            per_group: 1 << 20,
            by_group: false,
        };
        let key = BinningKey::new([9; 32]);
        assert_ne!(
            bins.bin(&key.for_query("q-1"), &d),
            bins.bin(&key.for_query("q-2"), &d)
        );
        assert_eq!(
            bins.bin(&key.for_query("q-1"), &d),
            bins.bin(&key.for_query("q-1"), &d)
        );
        // throw 10,000 distinct indicators into 2^20 bins: the estimate recovers D closely
        let key = key.for_query("q-3");
        let mut occupied = std::collections::BTreeSet::new();
        for i in 0u32..10_000 {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&i.to_be_bytes());
            occupied.insert(bins.bin(&key, &IndicatorDigest { group: 1, digest }));
        }
        let d = estimated_distinct(occupied.len() as u64, 1 << 20).unwrap();
        assert!((d - 10_000.0).abs() < 100.0, "{d}");
        let rate = merge_rate(d, 1 << 20);
        assert!((rate - 0.0095).abs() < 0.001, "{rate}");
        assert_eq!(estimated_distinct(5, 5), None);
    }
}
