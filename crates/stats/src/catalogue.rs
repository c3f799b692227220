//! The statistics catalogue (DESIGN.md §3): versioned query templates shared by node,
//! coordinator and researcher, so that all three agree on the cell layout.
//!
//! A template declares its question, its dimensions (a cross-table of counts, row-major, last
//! dimension fastest) and optional *summary* cells (counts, sums, sums of squares), the public
//! per-institution bound of each cell (contributions are clipped to it, and it sizes the
//! plaintext range; DP sensitivity comes from it later), and the parameter set it needs.
//!
//! Summary cells can exceed what one slot sums without wrapping, so they are *wide*: carried in
//! 16-bit limbs, one slot each ([`Layout::to_slots`]); every limb sums to at most
//! `institutions · (2^16 − 1)`, well inside the large-counter set's `t > 2^32`, and
//! [`Layout::from_slots`] recombines the limb sums exactly.
//!
//! Where a field is missing in the data, templates use an explicit "unknown" cell — feeds carry
//! no `distribution`, many events have no TLP tag or no publish time — never a guess.

use crate::misp::{Date, Event};

/// A month, for time windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct YearMonth {
    pub year: i32,
    pub month: u8,
}

impl YearMonth {
    pub fn parse(s: &str) -> Option<Self> {
        let (y, m) = s.trim().split_once('-')?;
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        (1..=12).contains(&month).then_some(Self { year, month })
    }

    fn index(&self) -> i64 {
        self.year as i64 * 12 + self.month as i64 - 1
    }

    fn plus(&self, months: i64) -> Self {
        let i = self.index() + months;
        Self {
            year: i.div_euclid(12) as i32,
            month: (i.rem_euclid(12) + 1) as u8,
        }
    }
}

impl std::fmt::Display for YearMonth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// The months a query covers: events dated in `[first, first + months)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub first: YearMonth,
    pub months: u16,
}

/// The most months one query may cover.
pub const MAX_MONTHS: u16 = 120;

impl Window {
    pub fn new(first: YearMonth, months: u16) -> Result<Self, TemplateError> {
        if months == 0 || months > MAX_MONTHS {
            return Err(TemplateError::Window(format!(
                "{months} months: a window covers 1 to {MAX_MONTHS} months"
            )));
        }
        Ok(Self { first, months })
    }

    /// The month's position in the window, if the date falls inside it.
    fn position(&self, date: &Date) -> Option<usize> {
        let offset = date.month_index() - self.first.index();
        (0..self.months as i64)
            .contains(&offset)
            .then_some(offset as usize)
    }

    fn labels(&self) -> Vec<String> {
        (0..self.months as i64)
            .map(|i| self.first.plus(i).to_string())
            .collect()
    }
}

/// Who the computing institution is, for templates that tell own events from received ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Institution {
    /// The `Orgc` uuids under which this institution creates events.
    pub organisation_uuids: Vec<String>,
    /// Its answers to the community survey, if it holds them ([`crate::survey`]).
    pub survey: Option<crate::survey::SurveyAnswers>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown template {0:?} (see `concord templates`)")]
    Unknown(String),
    #[error("invalid time window: {0}")]
    Window(String),
    #[error("template {template} needs the institution's organisation uuid(s) (`organisation_uuids` in the node configuration)")]
    NeedsOrganisation { template: &'static str },
    #[error("template {template} needs the institution's survey answers (`survey` in the node configuration's [data])")]
    NeedsSurvey { template: &'static str },
    #[error("{slots} slot values where the layout has {expected}")]
    SlotCount { slots: usize, expected: usize },
}

/// One dimension of a cross-table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimension {
    pub name: &'static str,
    pub labels: Vec<String>,
}

/// A summary cell (count, sum, sum of squares) with its per-institution bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SummaryCell {
    pub name: &'static str,
    pub bound: u64,
}

/// The cells of a template for one window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub dimensions: Vec<Dimension>,
    /// Per-institution bound of every cross-table cell.
    pub cell_bound: u64,
    pub summary: Vec<SummaryCell>,
    /// The parameter set whose plaintext modulus holds the aggregate (by name, see `concord-bfv`).
    pub parameter_set: &'static str,
}

const LIMB_BITS: u32 = 16;

impl Layout {
    /// Cross-table cells: the product of the dimensions' sizes.
    pub fn table_cells(&self) -> usize {
        self.dimensions.iter().map(|d| d.labels.len()).product()
    }

    /// Logical cells: the cross-table, then the summary cells.
    pub fn cells(&self) -> usize {
        self.table_cells() + self.summary.len()
    }

    fn limbs(bound: u64) -> usize {
        (64 - bound.leading_zeros()).div_ceil(LIMB_BITS).max(1) as usize
    }

    /// Plaintext slots: one per cross-table cell, one per limb of each summary cell.
    pub fn slots(&self) -> usize {
        self.table_cells()
            + self
                .summary
                .iter()
                .map(|s| Self::limbs(s.bound))
                .sum::<usize>()
    }

    /// The largest value one institution puts in any slot (the plaintext range's upper end).
    pub fn slot_bound(&self) -> u64 {
        let limb_max = if self.summary.is_empty() {
            0
        } else {
            (1 << LIMB_BITS) - 1
        };
        self.cell_bound.max(limb_max)
    }

    /// Logical cell values (within their bounds: [`Template::compute`] clips) → slot values.
    ///
    /// # Panics
    /// If a value exceeds its cell's bound or the count of values is not [`Layout::cells`]: a
    /// caller bug, which must not become a silently truncated contribution.
    pub fn to_slots(&self, values: &[u64]) -> Vec<i64> {
        assert_eq!(values.len(), self.cells(), "one value per cell");
        let table = self.table_cells();
        assert!(
            values[..table].iter().all(|&v| v <= self.cell_bound),
            "cell above its bound"
        );
        let mut out: Vec<i64> = values[..table].iter().map(|&v| v as i64).collect();
        for (cell, &v) in self.summary.iter().zip(&values[table..]) {
            assert!(v <= cell.bound, "{} above its bound", cell.name);
            for limb in 0..Self::limbs(cell.bound) {
                out.push(((v >> (LIMB_BITS as usize * limb)) & ((1 << LIMB_BITS) - 1)) as i64);
            }
        }
        out
    }

    /// Aggregated slot values → aggregated logical cells (limb sums recombined exactly). Cells
    /// are signed: an aggregate with differential-privacy noise can fall below zero.
    pub fn from_slots(&self, slots: &[i64]) -> Result<Vec<i128>, TemplateError> {
        if slots.len() < self.slots() {
            return Err(TemplateError::SlotCount {
                slots: slots.len(),
                expected: self.slots(),
            });
        }
        let table = self.table_cells();
        let mut out: Vec<i128> = slots[..table].iter().map(|&v| v as i128).collect();
        let mut at = table;
        for cell in &self.summary {
            let limbs = Self::limbs(cell.bound);
            let value = (0..limbs)
                .map(|i| (slots[at + i] as i128) << (LIMB_BITS as usize * i))
                .sum();
            out.push(value);
            at += limbs;
        }
        Ok(out)
    }
}

/// What a differentially private result of a template hides (see [`Template::privacy_unit`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrivacyUnit {
    /// "event" or "attribute"
    pub unit: &'static str,
    /// L2 distance of the cells when one such unit is added or removed.
    pub sensitivity: f64,
}

/// A local statistic, before encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statistic {
    /// Logical cell values, clipped to the layout's bounds.
    pub values: Vec<u64>,
    /// Events dated inside the window (what the statistic covers).
    pub events_in_window: usize,
    pub events_outside_window: usize,
    /// Cells whose value exceeded the template's bound and was clipped to it.
    pub clipped_cells: usize,
}

/// The catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    EventsByMonthTlpDistribution,
    AttributesByCategoryTypeToIds,
    ProducerVsReceiverByMonth,
    TimeToPublish,
    AttributesByMonthCategoryTypeToIds,
    SurveySharingMotivations,
    EventsByMonthThreatLevel,
    AttributesPerEvent,
}

/// The public description of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateInfo {
    pub id: &'static str,
    pub version: u32,
    pub question: &'static str,
}

pub const TEMPLATES: &[Template] = &[
    Template::EventsByMonthTlpDistribution,
    Template::AttributesByCategoryTypeToIds,
    Template::ProducerVsReceiverByMonth,
    Template::TimeToPublish,
    Template::AttributesByMonthCategoryTypeToIds,
    Template::SurveySharingMotivations,
    Template::EventsByMonthThreatLevel,
    Template::AttributesPerEvent,
];

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
/// Attributes per event counted in the sums (an event with more counts as this many).
pub const MAX_ATTRIBUTES_PER_EVENT: u64 = 100_000;

/// The summary cells of a distribution of values in `[0, max]`: how many, their sum and the
/// sum of their squares (for mean and variance), each bounded for `MAX_COUNT` values.
fn moments(names: [&'static str; 3], max: u64) -> Vec<SummaryCell> {
    names
        .into_iter()
        .zip([MAX_COUNT, MAX_COUNT * max, MAX_COUNT * max * max])
        .map(|(name, bound)| SummaryCell { name, bound })
        .collect()
}

/// Counts one value `x` in the [`moments`] cells at the start of `cells`.
fn add_moments(cells: &mut [u64], x: u64) {
    cells[0] += 1;
    cells[1] += x;
    cells[2] += x * x;
}

fn attribute_count_bucket(n: u64) -> usize {
    match n {
        0 => 0,
        1 => 1,
        2..=5 => 2,
        6..=10 => 3,
        11..=50 => 4,
        51..=100 => 5,
        101..=1000 => 6,
        _ => 7,
    }
}

/// MISP's threat levels (`threat_level_id` 1–4), then "unknown" (absent or out of range).
pub const THREAT_LEVELS: &[&str] = &["high", "medium", "low", "undefined", "unknown"];

/// TLP levels, least to most restrictive, then "no TLP tag".
pub const TLP_LEVELS: &[&str] = &["clear", "green", "amber", "amber+strict", "red", "unknown"];
/// Event distribution levels, then "not in the export" (feeds strip it).
pub const DISTRIBUTIONS: &[&str] = &[
    "organisation",
    "community",
    "connected",
    "all",
    "sharing group",
    "unknown",
];
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
/// Per-institution bound of a count cell.
pub const MAX_COUNT: u64 = 4095;
/// Per-institution bound of an attribute-count cell (large feeds hold tens of thousands).
pub const MAX_ATTRIBUTE_COUNT: u64 = (1 << 26) - 1;

impl Template {
    pub fn info(&self) -> TemplateInfo {
        match self {
            Template::EventsByMonthTlpDistribution => TemplateInfo {
                id: "events-by-month-tlp-distribution",
                version: 1,
                question: "How many events are shared each month, at which TLP and distribution level?",
            },
            Template::AttributesByCategoryTypeToIds => TemplateInfo {
                id: "attributes-by-category-type-ids",
                version: 1,
                question: "What is shared: attributes by MISP category and type, and how many are marked for detection (to_ids)?",
            },
            Template::ProducerVsReceiverByMonth => TemplateInfo {
                id: "producer-vs-receiver-by-month",
                version: 1,
                question: "Who produces and who disseminates: events an institution created itself vs received, per month?",
            },
            Template::TimeToPublish => TemplateInfo {
                id: "time-to-publish",
                version: 1,
                question: "How fast are events shared: delay from event date to publication (histogram, mean, variance)?",
            },
            Template::AttributesByMonthCategoryTypeToIds => TemplateInfo {
                id: "attributes-by-month-category-type-ids",
                version: 1,
                question: "How does what is shared change over time: attributes per month by MISP category and type, and to_ids?",
            },
            Template::AttributesPerEvent => TemplateInfo {
                id: "attributes-per-event",
                version: 1,
                question: "How much does an event carry: attributes per event (histogram, and count, sum and sum of squares for mean and variance)?",
            },
            Template::EventsByMonthThreatLevel => TemplateInfo {
                id: "events-by-month-threat-level",
                version: 1,
                question: "How severe is what is shared: events per month by the threat level their creator gave them?",
            },
            Template::SurveySharingMotivations => TemplateInfo {
                id: "survey-sharing-motivations",
                version: 1,
                question: "Why do institutions share or not, and how do they rate trust, value and tools? (survey tally: institutions per answer)",
            },
        }
    }

    /// What differential privacy protects for this template (`concord-query` `dp`): the unit
    /// whose presence a released result hides, and the L2 sensitivity of the cells to adding
    /// or removing one such unit of one institution. `None`: not declared yet, and a DP query
    /// of the template is refused.
    ///
    /// The event counts count each event in exactly one cell: one **event**, sensitivity 1.
    /// The attribute tables count each attribute (indicator) in exactly one cell: one
    /// **attribute**, sensitivity 1 — an event adds all its attributes, so protecting whole
    /// events there would need a per-event cap that large feeds' events (thousands of
    /// indicators each) exceed. Time-to-publish adds an event's delay and squared delay to its
    /// sums: bounded only by the per-institution caps, which would drown the histogram in noise.
    pub fn privacy_unit(&self) -> Option<PrivacyUnit> {
        match self {
            Template::EventsByMonthTlpDistribution
            | Template::ProducerVsReceiverByMonth
            | Template::EventsByMonthThreatLevel => Some(PrivacyUnit {
                unit: "event",
                sensitivity: 1.0,
            }),
            Template::AttributesByCategoryTypeToIds
            | Template::AttributesByMonthCategoryTypeToIds => Some(PrivacyUnit {
                unit: "attribute",
                sensitivity: 1.0,
            }),
            // one institution's whole questionnaire moves several cells; the tally's
            // protection is the minimum number of institutions
            Template::TimeToPublish
            | Template::AttributesPerEvent
            | Template::SurveySharingMotivations => None,
        }
    }

    /// The parameter set the template's queries run under: large-counter cells (attribute
    /// counts, sums of delays) need `t > 2^32`.
    pub fn parameter_set(&self) -> &'static str {
        match self {
            Template::EventsByMonthTlpDistribution
            | Template::ProducerVsReceiverByMonth
            | Template::EventsByMonthThreatLevel
            | Template::SurveySharingMotivations => "ADD-8192",
            Template::AttributesByCategoryTypeToIds
            | Template::AttributesByMonthCategoryTypeToIds
            | Template::TimeToPublish
            | Template::AttributesPerEvent => "ADD-8192-T33",
        }
    }

    pub fn by_id(id: &str) -> Result<Self, TemplateError> {
        TEMPLATES
            .iter()
            .copied()
            .find(|t| t.info().id == id)
            .ok_or_else(|| TemplateError::Unknown(id.to_owned()))
    }

    pub fn layout(&self, window: &Window) -> Layout {
        let months = Dimension {
            name: "month",
            labels: window.labels(),
        };
        let labels = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // MISP's category/type table, then one cell for pairs outside it
        let category_type = || Dimension {
            name: "category/type",
            labels: crate::describe_types::CATEGORY_TYPES
                .iter()
                .map(|(c, t)| format!("{c} / {t}"))
                .chain(std::iter::once("other (not in MISP's table)".to_string()))
                .collect(),
        };
        let to_ids = || Dimension {
            name: "to_ids",
            labels: labels(&["false", "true"]),
        };
        match self {
            Template::EventsByMonthTlpDistribution => Layout {
                dimensions: vec![
                    months,
                    Dimension {
                        name: "tlp",
                        labels: labels(TLP_LEVELS),
                    },
                    Dimension {
                        name: "distribution",
                        labels: labels(DISTRIBUTIONS),
                    },
                ],
                cell_bound: MAX_COUNT,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::AttributesByCategoryTypeToIds => Layout {
                dimensions: vec![category_type(), to_ids()],
                cell_bound: MAX_ATTRIBUTE_COUNT,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::AttributesByMonthCategoryTypeToIds => Layout {
                dimensions: vec![months, category_type(), to_ids()],
                cell_bound: MAX_ATTRIBUTE_COUNT,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::ProducerVsReceiverByMonth => Layout {
                dimensions: vec![
                    months,
                    Dimension {
                        name: "role",
                        labels: labels(&["produced", "received", "creator unknown"]),
                    },
                ],
                cell_bound: MAX_COUNT,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::AttributesPerEvent => Layout {
                dimensions: vec![Dimension {
                    name: "attributes per event",
                    labels: labels(ATTRIBUTE_COUNT_BUCKETS),
                }],
                cell_bound: MAX_COUNT,
                summary: moments(
                    [
                        "events",
                        "sum of attributes per event",
                        "sum of squared attributes per event",
                    ],
                    MAX_ATTRIBUTES_PER_EVENT,
                ),
                parameter_set: self.parameter_set(),
            },
            Template::EventsByMonthThreatLevel => Layout {
                dimensions: vec![
                    months,
                    Dimension {
                        name: "threat level",
                        labels: labels(THREAT_LEVELS),
                    },
                ],
                cell_bound: MAX_COUNT,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::SurveySharingMotivations => Layout {
                dimensions: vec![Dimension {
                    name: "question: answer",
                    labels: crate::survey::labels(),
                }],
                cell_bound: 1,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::TimeToPublish => Layout {
                dimensions: vec![Dimension {
                    name: "delay",
                    labels: labels(DELAY_BUCKETS),
                }],
                cell_bound: MAX_COUNT,
                summary: moments(
                    [
                        "published events",
                        "sum of delays (days)",
                        "sum of squared delays (days²)",
                    ],
                    MAX_DELAY_DAYS,
                ),
                parameter_set: self.parameter_set(),
            },
        }
    }

    /// The institution's local statistic over `events`, clipped to the layout's bounds.
    pub fn compute(
        &self,
        window: &Window,
        institution: &Institution,
        events: &[Event],
    ) -> Result<Statistic, TemplateError> {
        let layout = self.layout(window);
        if *self == Template::ProducerVsReceiverByMonth && institution.organisation_uuids.is_empty()
        {
            return Err(TemplateError::NeedsOrganisation {
                template: self.info().id,
            });
        }
        let survey = match (self, &institution.survey) {
            (Template::SurveySharingMotivations, None) => {
                return Err(TemplateError::NeedsSurvey {
                    template: self.info().id,
                })
            }
            (_, survey) => survey,
        };
        let mut values = vec![0u64; layout.cells()];
        let (mut inside, mut outside) = (0, 0);
        let pair_index: std::collections::HashMap<(&str, &str), usize> =
            crate::describe_types::CATEGORY_TYPES
                .iter()
                .enumerate()
                .map(|(i, &(c, t))| ((c, t), i))
                .collect();
        for event in events {
            let Some(month) = event.date.as_ref().and_then(|d| window.position(d)) else {
                outside += 1;
                continue;
            };
            inside += 1;
            match self {
                Template::EventsByMonthTlpDistribution => {
                    let cell = (month * TLP_LEVELS.len() + tlp_level(event)) * DISTRIBUTIONS.len()
                        + distribution(event);
                    values[cell] += 1;
                }
                Template::AttributesByCategoryTypeToIds
                | Template::AttributesByMonthCategoryTypeToIds => {
                    let pairs = crate::describe_types::CATEGORY_TYPES.len() + 1;
                    let base = match self {
                        Template::AttributesByMonthCategoryTypeToIds => month * pairs,
                        _ => 0,
                    };
                    for a in event.all_attributes() {
                        let pair = pair_index
                            .get(&(a.category.as_str(), a.kind.as_str()))
                            .copied()
                            .unwrap_or(pairs - 1);
                        values[(base + pair) * 2 + a.to_ids.unwrap_or(false) as usize] += 1;
                    }
                }
                Template::ProducerVsReceiverByMonth => {
                    let role = match event.creator_uuid() {
                        None => 2,
                        Some(uuid)
                            if institution
                                .organisation_uuids
                                .iter()
                                .any(|o| o.eq_ignore_ascii_case(uuid)) =>
                        {
                            0
                        }
                        Some(_) => 1,
                    };
                    values[month * 3 + role] += 1;
                }
                Template::AttributesPerEvent => {
                    let n = event.all_attributes().count() as u64;
                    let table = ATTRIBUTE_COUNT_BUCKETS.len();
                    values[attribute_count_bucket(n)] += 1;
                    add_moments(&mut values[table..], n.min(MAX_ATTRIBUTES_PER_EVENT));
                }
                Template::EventsByMonthThreatLevel => {
                    let level = match event.threat_level_id {
                        Some(l @ 1..=4) => l as usize - 1,
                        _ => THREAT_LEVELS.len() - 1,
                    };
                    values[month * THREAT_LEVELS.len() + level] += 1;
                }
                // answers, not events: filled in below
                Template::SurveySharingMotivations => {}
                Template::TimeToPublish => {
                    let table = DELAY_BUCKETS.len();
                    match publish_delay_days(event) {
                        None => values[table - 1] += 1,
                        Some(delay) => {
                            values[delay_bucket(delay)] += 1;
                            let clipped = delay.clamp(0, MAX_DELAY_DAYS as i64) as u64;
                            add_moments(&mut values[table..], clipped);
                        }
                    }
                }
            }
        }
        if let (Template::SurveySharingMotivations, Some(survey)) = (self, survey) {
            values.copy_from_slice(&survey.cells);
            (inside, outside) = (0, 0); // a tally of answers covers no events
        }
        // clip to the declared bounds
        let mut clipped = 0;
        let table = layout.table_cells();
        let bounds = std::iter::repeat_n(layout.cell_bound, table)
            .chain(layout.summary.iter().map(|s| s.bound));
        for (v, bound) in values.iter_mut().zip(bounds) {
            if *v > bound {
                *v = bound;
                clipped += 1;
            }
        }
        Ok(Statistic {
            values,
            events_in_window: inside,
            events_outside_window: outside,
            clipped_cells: clipped,
        })
    }
}

/// The event's TLP level (index into [`TLP_LEVELS`]): the most restrictive `tlp:` tag, `tlp:white`
/// counting as `clear` (its TLP 2.0 name); "unknown" without one.
pub fn tlp_level(event: &Event) -> usize {
    event
        .tags
        .iter()
        .filter_map(|t| {
            let name = t.name.trim().to_ascii_lowercase();
            match name.strip_prefix("tlp:")? {
                "clear" | "white" => Some(0),
                "green" => Some(1),
                "amber" => Some(2),
                "amber+strict" => Some(3),
                "red" => Some(4),
                _ => None,
            }
        })
        .max()
        .unwrap_or(TLP_LEVELS.len() - 1)
}

/// The event's distribution level (index into [`DISTRIBUTIONS`]); "unknown" when absent or
/// not an event-level value.
pub fn distribution(event: &Event) -> usize {
    match event.distribution {
        Some(d @ 0..=4) => d as usize,
        _ => DISTRIBUTIONS.len() - 1,
    }
}

/// Whole days from the event date to its publication, if it has a publish time.
pub fn publish_delay_days(event: &Event) -> Option<i64> {
    let published = event.publish_timestamp.filter(|&t| t > 0)?;
    let date = event.date?;
    Some((published / 86_400) as i64 - date.days_since_epoch())
}

fn delay_bucket(days: i64) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wide_cells_round_trip_through_limbs_and_sum_exactly() {
        let window = Window::new(YearMonth::parse("2024-01").unwrap(), 1).unwrap();
        let layout = Template::TimeToPublish.layout(&window);
        let bound = |i: usize| {
            if i >= 11 {
                layout.summary[i - 11].bound
            } else {
                layout.cell_bound
            }
        };
        let a: Vec<u64> = (0..layout.cells()).map(|i| bound(i) - i as u64).collect();
        let b: Vec<u64> = (0..layout.cells()).map(|i| bound(i) / 3).collect();
        let (sa, sb) = (layout.to_slots(&a), layout.to_slots(&b));
        assert_eq!(sa.len(), layout.slots());
        assert!(sa
            .iter()
            .all(|&s| s >= 0 && s as u64 <= layout.slot_bound()));
        let sum: Vec<i64> = sa.iter().zip(&sb).map(|(x, y)| x + y).collect();
        let expect: Vec<i128> = a
            .iter()
            .zip(&b)
            .map(|(&x, &y)| x as i128 + y as i128)
            .collect();
        assert_eq!(layout.from_slots(&sum).unwrap(), expect);
    }

    #[test]
    fn windows_and_ids_are_checked() {
        assert!(Window::new(YearMonth::parse("2024-01").unwrap(), 0).is_err());
        assert!(Window::new(YearMonth::parse("2024-01").unwrap(), MAX_MONTHS + 1).is_err());
        assert!(YearMonth::parse("2024-13").is_none());
        assert!(matches!(
            Template::by_id("nope"),
            Err(TemplateError::Unknown(_))
        ));
        for t in TEMPLATES {
            assert_eq!(Template::by_id(t.info().id).unwrap(), *t);
        }
    }
}
