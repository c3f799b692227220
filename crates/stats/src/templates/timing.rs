//! Timeliness: how fast events are published after their date, and how old an indicator is
//! when its event is published — histograms with count, sum and sum of squares for mean and
//! variance.

use super::{
    dimension, histogram_findings, moments, Cells, Definition, Profile, Tally, LARGE_COUNTS,
    MAX_ATTRIBUTE_COUNT, MAX_COUNT,
};
use crate::catalogue::TemplateInfo;
use crate::layout::{Chart, Dimension, Layout, Window};
use crate::misp::Event;
use crate::vocabulary::{day_bucket, DAY_BUCKETS};

/// Delay between the event date and its publication.
pub const DELAY_BUCKETS: &[&str] = &[
    "before the event date",
    "same day",
    "1 day",
    "2-3 days",
    "4-7 days",
    "8-14 days",
    "15-30 days",
    "31-90 days",
    "91-365 days",
    "over a year",
    "no publish time",
];
/// Delays enter the sums clipped to `[0, MAX_DELAY_DAYS]`.
pub const MAX_DELAY_DAYS: u64 = 3650;

/// Seconds since the epoch of an RFC 3339 timestamp (MISP's `first_seen`), if it is one.
pub fn unix_seconds(timestamp: &str) -> Option<i64> {
    time::OffsetDateTime::parse(
        timestamp.trim(),
        &time::format_description::well_known::Rfc3339,
    )
    .ok()
    .map(|t| t.unix_timestamp())
}

/// Whole days from the event date to its publication, if it has a publish time.
pub fn publish_delay_days(event: &Event) -> Option<i64> {
    let published = event.publish_timestamp.filter(|&t| t > 0)?;
    let date = event.date?;
    Some((published / 86_400) as i64 - date.days_since_epoch())
}

/// A bar per bucket of an ordered histogram.
const HISTOGRAM: Chart = Chart::Bars {
    dimension: 0,
    top: None,
};

/// Delay from event date to publication.
pub struct TimeToPublish;

impl Definition for TimeToPublish {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "time-to-publish",
                version: 1,
                question: "How fast are events shared: delay from event date to publication (histogram, mean, variance)?",
                definition: "Each event dated in the window counts once, in the bucket of whole days from its date to its `publish_timestamp` (UTC day), or \"no publish time\"; published events add their delay (clipped to [0, 3650] days) and its square to the sums.",
                fields: "event `date`, `publish_timestamp`",
            },
            parameter_sets: LARGE_COUNTS,
            // An event adds its delay and squared delay to the sums: bounded only by the
            // per-institution caps, which would drown the histogram in noise.
            privacy_unit: None,
            chart: HISTOGRAM,
            counts: "events",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        Cells {
            dimensions: vec![dimension("delay", DELAY_BUCKETS)],
            cell_bound: MAX_COUNT,
            summary: moments(
                [
                    "published events",
                    "sum of delays (days)",
                    "sum of squared delays (days²)",
                ],
                MAX_COUNT,
                MAX_DELAY_DAYS,
            ),
        }
    }
    fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        histogram_findings(
            layout,
            cells,
            DAY_BUCKETS.len(),
            ("delay to publication", "days", "published events"),
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        match publish_delay_days(event) {
            None => tally.add(&[DELAY_BUCKETS.len() - 1], 1),
            Some(delay) => {
                tally.add(&[day_bucket(delay)], 1);
                tally.add_moments(delay.clamp(0, MAX_DELAY_DAYS as i64) as u64);
            }
        }
    }
}

/// Days from an indicator's `first_seen` to its event's publication.
pub struct IndicatorAgeAtSharing;

impl Definition for IndicatorAgeAtSharing {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "indicator-age-at-sharing",
                version: 1,
                question: "How old is an indicator when it is shared: days from its first_seen to its event's publication (histogram, mean, variance)?",
                definition: "Each attribute of an event dated in the window counts once: \"event not published\" without a publish time, \"no first_seen\" without a readable RFC 3339 `first_seen`, else in the bucket of whole UTC days from its `first_seen` to the event's `publish_timestamp` (negative: first seen after publication); aged attributes add their age (clipped to [0, 3650] days) and its square to the sums.",
                fields: "event `date`, `publish_timestamp`; attributes' `first_seen`",
            },
            parameter_sets: LARGE_COUNTS,
            // An attribute adds its age and squared age to the sums.
            privacy_unit: None,
            chart: HISTOGRAM,
            counts: "attributes",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        Cells {
            dimensions: vec![Dimension {
                name: "age at publication",
                labels: std::iter::once("first seen after publication")
                    .chain(DAY_BUCKETS[1..].iter().copied())
                    .chain(["no first_seen", "event not published"])
                    .map(str::to_owned)
                    .collect(),
            }],
            cell_bound: MAX_ATTRIBUTE_COUNT,
            summary: moments(
                [
                    "aged attributes",
                    "sum of ages (days)",
                    "sum of squared ages (days²)",
                ],
                MAX_ATTRIBUTE_COUNT,
                MAX_DELAY_DAYS,
            ),
        }
    }
    fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        histogram_findings(
            layout,
            cells,
            DAY_BUCKETS.len(),
            (
                "age at publication",
                "days",
                "attributes with a first_seen in published events",
            ),
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        let (no_first_seen, not_published) = (DAY_BUCKETS.len(), DAY_BUCKETS.len() + 1);
        let published = event.publish_timestamp.filter(|&t| t > 0);
        for a in event.all_attributes() {
            let first_seen = a.first_seen.as_deref().and_then(unix_seconds);
            match (published, first_seen) {
                (None, _) => tally.add(&[not_published], 1),
                (Some(_), None) => tally.add(&[no_first_seen], 1),
                (Some(published), Some(seen)) => {
                    let age = (published as i64).div_euclid(86_400) - seen.div_euclid(86_400);
                    tally.add(&[day_bucket(age)], 1);
                    tally.add_moments(age.clamp(0, MAX_DELAY_DAYS as i64) as u64);
                }
            }
        }
    }
}
