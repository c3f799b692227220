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
pub use crate::vocabulary::{
    attribute_count_bucket, day_bucket, distribution, events_per_month_bucket, pap_level,
    threat_level, tlp_level, ATTRIBUTE_COUNT_BUCKETS, ATTRIBUTE_DISTRIBUTIONS, DAY_BUCKETS,
    DISTRIBUTIONS, EVENTS_PER_MONTH_BUCKETS, GALAXY_TYPES, OBJECT_TEMPLATES, ORGANISATION_TYPES,
    PAP_LEVELS, SECTORS, SIGHTING_TYPES, THREAT_LEVELS, TLP_LEVELS,
};
use crate::vocabulary::{galaxy_type, position_or_last};

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
    /// Its sector, one of [`SECTORS`] (a MISP organisation's `sector`), if it declares one.
    pub sector: Option<String>,
    /// Its kind, one of [`ORGANISATION_TYPES`] (a MISP organisation's `type`), if declared.
    pub organisation_type: Option<String>,
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

/// The natural chart of a template's result (what `concord query result --plot` draws).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chart {
    /// A line per label of dimension `series` over the months (dimension 0), the other
    /// dimensions summed.
    Lines { series: usize },
    /// A bar per label of `dimension`, the others summed; `top`: a categorical dimension,
    /// of which only the largest so many non-zero bars are drawn.
    Bars {
        dimension: usize,
        top: Option<usize>,
    },
    /// `rows` × `columns`, the others summed; `top_rows`: only the largest so many non-zero rows.
    Heatmap {
        rows: usize,
        columns: usize,
        top_rows: Option<usize>,
    },
}

impl Layout {
    /// The cross-table summed down to the `kept` dimensions (in that order, last fastest).
    pub fn marginal(&self, cells: &[i128], kept: &[usize]) -> Vec<i128> {
        let sizes: Vec<usize> = self.dimensions.iter().map(|d| d.labels.len()).collect();
        let mut out = vec![0i128; kept.iter().map(|&d| sizes[d]).product()];
        for (index, &value) in cells[..self.table_cells()].iter().enumerate() {
            // the cell's coordinate in every dimension (row-major, last fastest)
            let mut rest = index;
            let mut coordinate = vec![0; sizes.len()];
            for (d, &size) in sizes.iter().enumerate().rev() {
                coordinate[d] = rest % size;
                rest /= size;
            }
            let at = kept.iter().fold(0, |at, &d| at * sizes[d] + coordinate[d]);
            out[at] += value;
        }
        out
    }

    /// Count, mean and standard deviation from the count, sum and sum-of-squares summary
    /// cells, where the template has them.
    pub fn moments(&self, cells: &[i128]) -> Option<(i128, f64, f64)> {
        let table = self.table_cells();
        let [count, sum, squares] = cells.get(table..table + 3)? else {
            return None;
        };
        if self.summary.len() != 3 || *count <= 0 {
            return None;
        }
        let mean = *sum as f64 / *count as f64;
        let variance = (*squares as f64 / *count as f64 - mean * mean).max(0.0);
        Some((*count, mean, variance.sqrt()))
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
    EventsByDistributionTlpPap,
    AttributesByEventAndAttributeDistribution,
    IndicatorAgeAtSharing,
    ObjectsByTemplate,
    GalaxyClustersByType,
    SightingsByAttributeType,
    InstitutionsByEventsPerMonth,
    EventsByMonthRoleTlpDistribution,
    AttributesByMonthRoleTlp,
    EventsBySectorOrganisationTypeRole,
}

/// The public description of a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateInfo {
    pub id: &'static str,
    pub version: u32,
    /// The research question the template answers.
    pub question: &'static str,
    /// How each record is counted: what goes into which cell.
    pub definition: &'static str,
    /// The MISP fields (and node settings) it reads.
    pub fields: &'static str,
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
    Template::EventsByDistributionTlpPap,
    Template::AttributesByEventAndAttributeDistribution,
    Template::IndicatorAgeAtSharing,
    Template::ObjectsByTemplate,
    Template::GalaxyClustersByType,
    Template::SightingsByAttributeType,
    Template::InstitutionsByEventsPerMonth,
    Template::EventsByMonthRoleTlpDistribution,
    Template::AttributesByMonthRoleTlp,
    Template::EventsBySectorOrganisationTypeRole,
];

/// How an event stands to the computing institution: it created it, received it, or the
/// export does not say who created it.
pub const ROLES: &[&str] = &["produced", "received", "creator unknown"];

/// Attributes per event counted in the sums (an event with more counts as this many).
pub const MAX_ATTRIBUTES_PER_EVENT: u64 = 100_000;

/// The summary cells of a distribution of values in `[0, max]`: how many, their sum and the
/// sum of their squares (for mean and variance), each bounded for `count` values.
fn moments(names: [&'static str; 3], count: u64, max: u64) -> Vec<SummaryCell> {
    names
        .into_iter()
        .zip([count, count * max, count * max * max])
        .map(|(name, bound)| SummaryCell { name, bound })
        .collect()
}

/// Counts one value `x` in the [`moments`] cells at the start of `cells`.
fn add_moments(cells: &mut [u64], x: u64) {
    cells[0] += 1;
    cells[1] += x;
    cells[2] += x * x;
}

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
                definition: "Each event dated in the window counts once, in the cell of its month, its most restrictive `tlp:` tag (`tlp:white` read as `clear`; none: unknown) and its distribution level (absent in feeds: unknown).",
                fields: "event `date`, event `Tag[].name` (`tlp:*`), event `distribution`",
            },
            Template::AttributesByCategoryTypeToIds => TemplateInfo {
                id: "attributes-by-category-type-ids",
                version: 1,
                question: "What is shared: attributes by MISP category and type, and how many are marked for detection (to_ids)?",
                definition: "Each attribute of an event dated in the window (objects' attributes included) counts once, in the cell of its (category, type) pair — MISP's table of valid pairs, anything else under \"other\" — and its `to_ids` flag.",
                fields: "event `date`, `Attribute[]` and `Object[].Attribute[]`: `category`, `type`, `to_ids`",
            },
            Template::ProducerVsReceiverByMonth => TemplateInfo {
                id: "producer-vs-receiver-by-month",
                version: 1,
                question: "Who produces and who disseminates: events an institution created itself vs received, per month?",
                definition: "Each event dated in the window counts once, in its month and in \"produced\" when its creator (`Orgc`) is one of the node's `organisation_uuids`, \"received\" when it is another organisation, \"creator unknown\" when the export names none.",
                fields: "event `date`, `Orgc.uuid`; the node's `organisation_uuids`",
            },
            Template::TimeToPublish => TemplateInfo {
                id: "time-to-publish",
                version: 1,
                question: "How fast are events shared: delay from event date to publication (histogram, mean, variance)?",
                definition: "Each event dated in the window counts once, in the bucket of whole days from its date to its `publish_timestamp` (UTC day), or \"no publish time\"; published events add their delay (clipped to [0, 3650] days) and its square to the sums.",
                fields: "event `date`, `publish_timestamp`",
            },
            Template::AttributesByMonthCategoryTypeToIds => TemplateInfo {
                id: "attributes-by-month-category-type-ids",
                version: 1,
                question: "How does what is shared change over time: attributes per month by MISP category and type, and to_ids?",
                definition: "As attributes-by-category-type-ids, per month of the event's date.",
                fields: "event `date`, attributes' `category`, `type`, `to_ids`",
            },
            Template::AttributesPerEvent => TemplateInfo {
                id: "attributes-per-event",
                version: 1,
                question: "How much does an event carry: attributes per event (histogram, and count, sum and sum of squares for mean and variance)?",
                definition: "Each event dated in the window counts once, in the bucket of its number of attributes (objects' included); its count (capped at 100,000) and its square add to the sums.",
                fields: "event `date`, `Attribute[]`, `Object[].Attribute[]`",
            },
            Template::EventsByMonthThreatLevel => TemplateInfo {
                id: "events-by-month-threat-level",
                version: 1,
                question: "How severe is what is shared: events per month by the threat level their creator gave them?",
                definition: "Each event dated in the window counts once, in its month and its `threat_level_id` (1 high, 2 medium, 3 low, 4 undefined; else unknown).",
                fields: "event `date`, `threat_level_id`",
            },
            Template::EventsByDistributionTlpPap => TemplateInfo {
                id: "events-by-distribution-tlp-pap",
                version: 1,
                question: "How restrictively is information shared: events by distribution level (sharing groups included), TLP and PAP?",
                definition: "Each event dated in the window counts once, in the cell of its distribution level (4: sharing group), its most restrictive TLP tag and its most restrictive `PAP:` tag (`PAP:WHITE` read as clear; none: unknown).",
                fields: "event `date`, `distribution`, `Tag[].name` (`tlp:*`, `PAP:*`)",
            },
            Template::AttributesByEventAndAttributeDistribution => TemplateInfo {
                id: "attributes-by-event-and-attribute-distribution",
                version: 1,
                question: "How finely is sharing restricted: attributes by their event's distribution level and their own (inherited, narrowed, sharing group)?",
                definition: "Each attribute of an event dated in the window counts once, in the cell of its event's distribution level and its own (0-4, 5 \"inherit event\"; else unknown): how often attributes narrow or widen what their event allows.",
                fields: "event `date`, `distribution`; attributes' `distribution`",
            },
            Template::IndicatorAgeAtSharing => TemplateInfo {
                id: "indicator-age-at-sharing",
                version: 1,
                question: "How old is an indicator when it is shared: days from its first_seen to its event's publication (histogram, mean, variance)?",
                definition: "Each attribute of an event dated in the window counts once: \"event not published\" without a publish time, \"no first_seen\" without a readable RFC 3339 `first_seen`, else in the bucket of whole UTC days from its `first_seen` to the event's `publish_timestamp` (negative: first seen after publication); aged attributes add their age (clipped to [0, 3650] days) and its square to the sums.",
                fields: "event `date`, `publish_timestamp`; attributes' `first_seen`",
            },
            Template::ObjectsByTemplate => TemplateInfo {
                id: "objects-by-template",
                version: 1,
                question: "Which MISP object templates are used to structure what is shared?",
                definition: "Each MISP object of an event dated in the window counts once, in the cell of its template `name` (a list of common templates; others under \"other\").",
                fields: "event `date`, `Object[].name`",
            },
            Template::GalaxyClustersByType => TemplateInfo {
                id: "galaxy-clusters-by-type",
                version: 1,
                question: "How much context is attached: galaxy clusters (ATT&CK techniques, threat actors, tools, ...) per galaxy, and events using each galaxy?",
                definition: "Each galaxy cluster attached to an event dated in the window counts once in \"clusters attached\" of its galaxy (the type in `misp-galaxy:<type>=\"…\"`; a cluster carried both as a tag and in the `Galaxy` list counts once); each event counts once in \"events\" of every galaxy it uses.",
                fields: "event `date`, `Tag[].name` (`misp-galaxy:*`), `Galaxy[].GalaxyCluster[].tag_name`",
            },
            Template::SightingsByAttributeType => TemplateInfo {
                id: "sightings-by-attribute-type",
                version: 1,
                question: "How useful are shared indicators: sightings, false positives and expirations per attribute type (and the false-positive ratio)?",
                definition: "Each sighting of an attribute of an event dated in the window counts once, in the cell of the attribute's type (MISP's types; others under \"other\") and the sighting's type (0 sighting, 1 false positive, 2 expiration, else other).",
                fields: "event `date`; attributes' `type`, `Sighting[].type`",
            },
            Template::InstitutionsByEventsPerMonth => TemplateInfo {
                id: "institutions-by-events-per-month",
                version: 1,
                question: "How often do institutions share: per month, how many institutions dated 0, 1, 2-5, ... events (a distribution across institutions, never per institution)?",
                definition: "Each institution counts once per month of the window, in the bucket of the number of events it dated in that month: the released cells say how many institutions shared 0, 1, 2-5, … events that month, never which.",
                fields: "event `date`",
            },
            Template::EventsByMonthRoleTlpDistribution => TemplateInfo {
                id: "events-by-month-role-tlp-distribution",
                version: 1,
                question: "Do producers and disseminators share differently: events created vs received per month, by TLP and distribution level?",
                definition: "Each event dated in the window counts once, in its month, its role for the institution (as producer-vs-receiver-by-month), its TLP level and its distribution level.",
                fields: "event `date`, `Orgc.uuid`, `Tag[].name` (`tlp:*`), `distribution`; the node's `organisation_uuids`",
            },
            Template::AttributesByMonthRoleTlp => TemplateInfo {
                id: "attributes-by-month-role-tlp",
                version: 1,
                question: "How many indicators do institutions create vs receive each month, by the TLP of their event?",
                definition: "Each attribute of an event dated in the window counts once, in the event's month, its role for the institution and its TLP level.",
                fields: "event `date`, `Orgc.uuid`, `Tag[].name` (`tlp:*`), attributes; the node's `organisation_uuids`",
            },
            Template::EventsBySectorOrganisationTypeRole => TemplateInfo {
                id: "events-by-sector-organisation-type-role",
                version: 1,
                question: "Who produces and who disseminates, by sector and kind of institution: events created vs received by institutions of each sector and type?",
                definition: "Each event dated in the window counts once, in the row of the institution's declared sector and organisation type (node configuration `sector`, `organisation_type`; else \"not declared\") and its role for the institution. A row with a single institution is that institution's count: query with DP, or combine rows.",
                fields: "event `Orgc.uuid`, `date`; the node's `organisation_uuids`, `sector`, `organisation_type`",
            },
            Template::SurveySharingMotivations => TemplateInfo {
                id: "survey-sharing-motivations",
                version: 1,
                question: "Why do institutions share or not, and how do they rate trust, value and tools? (survey tally: institutions per answer)",
                definition: "Each institution counts once per answer it gave: 1 in each chosen reason, 1 in its level of each rating, or 1 in \"not answered\". No MISP data is read.",
                fields: "the node's survey answers file (`[data] survey`)",
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
            | Template::EventsByMonthThreatLevel
            | Template::EventsByDistributionTlpPap
            | Template::EventsByMonthRoleTlpDistribution
            | Template::EventsBySectorOrganisationTypeRole => Some(PrivacyUnit {
                unit: "event",
                sensitivity: 1.0,
            }),
            // one event more or less moves the institution's month from one bucket to the
            // next: −1 in one cell, +1 in another
            Template::InstitutionsByEventsPerMonth => Some(PrivacyUnit {
                unit: "event",
                sensitivity: std::f64::consts::SQRT_2,
            }),
            Template::AttributesByCategoryTypeToIds
            | Template::AttributesByMonthCategoryTypeToIds
            | Template::AttributesByEventAndAttributeDistribution
            | Template::AttributesByMonthRoleTlp => Some(PrivacyUnit {
                unit: "attribute",
                sensitivity: 1.0,
            }),
            Template::ObjectsByTemplate => Some(PrivacyUnit {
                unit: "object",
                sensitivity: 1.0,
            }),
            Template::SightingsByAttributeType => Some(PrivacyUnit {
                unit: "sighting",
                sensitivity: 1.0,
            }),
            // one institution's whole questionnaire moves several cells; the tally's
            // protection is the minimum number of institutions
            // an event adds to several cells at once (its delay or age to the sums, each of its
            // galaxy clusters)
            Template::TimeToPublish
            | Template::AttributesPerEvent
            | Template::IndicatorAgeAtSharing
            | Template::GalaxyClustersByType
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
            | Template::SurveySharingMotivations
            | Template::EventsByDistributionTlpPap
            | Template::InstitutionsByEventsPerMonth
            | Template::EventsByMonthRoleTlpDistribution
            | Template::EventsBySectorOrganisationTypeRole => "ADD-8192",
            Template::AttributesByCategoryTypeToIds
            | Template::AttributesByMonthCategoryTypeToIds
            | Template::TimeToPublish
            | Template::AttributesPerEvent
            | Template::AttributesByEventAndAttributeDistribution
            | Template::IndicatorAgeAtSharing
            | Template::ObjectsByTemplate
            | Template::GalaxyClustersByType
            | Template::SightingsByAttributeType
            | Template::AttributesByMonthRoleTlp => "ADD-8192-T33",
        }
    }

    /// The chart that shows the template's result best.
    pub fn chart(&self) -> Chart {
        let bars = |top| Chart::Bars { dimension: 0, top };
        let heatmap = |top_rows| Chart::Heatmap {
            rows: 0,
            columns: 1,
            top_rows,
        };
        match self {
            Template::EventsByMonthTlpDistribution
            | Template::ProducerVsReceiverByMonth
            | Template::EventsByMonthThreatLevel
            | Template::EventsByMonthRoleTlpDistribution
            | Template::AttributesByMonthRoleTlp => Chart::Lines { series: 1 },
            Template::AttributesByMonthCategoryTypeToIds => Chart::Lines { series: 2 },
            Template::TimeToPublish
            | Template::AttributesPerEvent
            | Template::IndicatorAgeAtSharing
            | Template::SurveySharingMotivations => bars(None),
            Template::AttributesByCategoryTypeToIds | Template::ObjectsByTemplate => bars(Some(20)),
            Template::EventsByDistributionTlpPap
            | Template::AttributesByEventAndAttributeDistribution
            | Template::InstitutionsByEventsPerMonth => heatmap(None),
            Template::GalaxyClustersByType | Template::SightingsByAttributeType => {
                heatmap(Some(25))
            }
            Template::EventsBySectorOrganisationTypeRole => Chart::Heatmap {
                rows: 0,
                columns: 2,
                top_rows: Some(25),
            },
        }
    }

    /// What a researcher reads off a released result besides the table: mean and standard
    /// deviation from the summary cells, approximate quantiles (the histogram bucket that
    /// holds them), and the false-positive ratio of sightings.
    pub fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        let mut out = Vec::new();
        // (ordered buckets at the start of the histogram, what is measured, its unit)
        let histogram = match self {
            Template::TimeToPublish => Some((
                DAY_BUCKETS.len(),
                "delay to publication",
                "days",
                "published events",
            )),
            Template::IndicatorAgeAtSharing => Some((
                DAY_BUCKETS.len(),
                "age at publication",
                "days",
                "attributes with a first_seen in published events",
            )),
            Template::AttributesPerEvent => Some((
                ATTRIBUTE_COUNT_BUCKETS.len(),
                "attributes per event",
                "attributes",
                "events",
            )),
            _ => None,
        };
        if let Some((buckets, what, unit, over)) = histogram {
            if let Some((count, mean, sd)) = layout.moments(cells) {
                out.push(format!(
                    "{what}: mean {mean:.1} {unit}, standard deviation {sd:.1} {unit}, over {count} {over}"
                ));
            }
            let labels = &layout.dimensions[0].labels[..buckets];
            let counts: Vec<i128> = cells[..buckets].iter().map(|&c| c.max(0)).collect();
            let total: i128 = counts.iter().sum();
            if total > 0 {
                let quantile = |q: f64| {
                    let mut seen = 0;
                    for (label, &c) in labels.iter().zip(&counts) {
                        seen += c;
                        if seen as f64 >= q * total as f64 {
                            return label.as_str();
                        }
                    }
                    labels[buckets - 1].as_str()
                };
                out.push(format!(
                    "{what}, approximate quantiles (the bucket holding each): median {}, 90th percentile {}",
                    quantile(0.5),
                    quantile(0.9)
                ));
            }
        }
        if *self == Template::SightingsByAttributeType {
            let by_kind = layout.marginal(cells, &[1]);
            let (seen, false_positive) = (by_kind[0].max(0), by_kind[1].max(0));
            if seen + false_positive > 0 {
                out.push(format!(
                    "false-positive ratio: {:.3} ({false_positive} false positives of {} sightings and false positives)",
                    false_positive as f64 / (seen + false_positive) as f64,
                    seen + false_positive
                ));
            }
        }
        out
    }

    /// What the template's table cells count (the unit of its value axis).
    pub fn counts(&self) -> &'static str {
        match self {
            Template::EventsByMonthTlpDistribution
            | Template::ProducerVsReceiverByMonth
            | Template::EventsByMonthThreatLevel
            | Template::EventsByMonthRoleTlpDistribution
            | Template::EventsByDistributionTlpPap
            | Template::EventsBySectorOrganisationTypeRole
            | Template::TimeToPublish
            | Template::AttributesPerEvent => "events",
            Template::AttributesByCategoryTypeToIds
            | Template::AttributesByMonthCategoryTypeToIds
            | Template::AttributesByEventAndAttributeDistribution
            | Template::AttributesByMonthRoleTlp
            | Template::IndicatorAgeAtSharing => "attributes",
            Template::ObjectsByTemplate => "objects",
            Template::GalaxyClustersByType => "clusters or events",
            Template::SightingsByAttributeType => "sightings",
            Template::InstitutionsByEventsPerMonth | Template::SurveySharingMotivations => {
                "institutions"
            }
        }
    }

    /// Whether the template tells the institution's own events from received ones, and so
    /// needs its organisation uuids.
    pub fn needs_organisation(&self) -> bool {
        matches!(
            self,
            Template::ProducerVsReceiverByMonth
                | Template::EventsByMonthRoleTlpDistribution
                | Template::AttributesByMonthRoleTlp
                | Template::EventsBySectorOrganisationTypeRole
        )
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
        let dimension = |name, xs: &[&str]| Dimension {
            name,
            labels: labels(xs),
        };
        // a count table over the given dimensions: events (small counts) or larger ones
        let events = |dimensions| Layout {
            dimensions,
            cell_bound: MAX_COUNT,
            summary: vec![],
            parameter_set: self.parameter_set(),
        };
        let many = |dimensions| Layout {
            dimensions,
            cell_bound: MAX_ATTRIBUTE_COUNT,
            summary: vec![],
            parameter_set: self.parameter_set(),
        };
        match self {
            Template::EventsByDistributionTlpPap => events(vec![
                dimension("distribution", DISTRIBUTIONS),
                dimension("tlp", TLP_LEVELS),
                dimension("pap", PAP_LEVELS),
            ]),
            Template::AttributesByEventAndAttributeDistribution => many(vec![
                dimension("event distribution", DISTRIBUTIONS),
                dimension("attribute distribution", ATTRIBUTE_DISTRIBUTIONS),
            ]),
            Template::IndicatorAgeAtSharing => Layout {
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
                parameter_set: self.parameter_set(),
            },
            Template::ObjectsByTemplate => {
                many(vec![dimension("object template", OBJECT_TEMPLATES)])
            }
            Template::GalaxyClustersByType => many(vec![
                dimension("galaxy", GALAXY_TYPES),
                dimension("count", &["clusters attached", "events"]),
            ]),
            Template::SightingsByAttributeType => many(vec![
                Dimension {
                    name: "attribute type",
                    labels: attribute_types()
                        .into_iter()
                        .chain(["other"])
                        .map(str::to_owned)
                        .collect(),
                },
                dimension("sighting type", SIGHTING_TYPES),
            ]),
            Template::InstitutionsByEventsPerMonth => Layout {
                dimensions: vec![
                    months,
                    dimension("events in the month", EVENTS_PER_MONTH_BUCKETS),
                ],
                cell_bound: 1,
                summary: vec![],
                parameter_set: self.parameter_set(),
            },
            Template::EventsByMonthRoleTlpDistribution => events(vec![
                months,
                dimension("role", ROLES),
                dimension("tlp", TLP_LEVELS),
                dimension("distribution", DISTRIBUTIONS),
            ]),
            Template::AttributesByMonthRoleTlp => many(vec![
                months,
                dimension("role", ROLES),
                dimension("tlp", TLP_LEVELS),
            ]),
            Template::EventsBySectorOrganisationTypeRole => events(vec![
                Dimension {
                    name: "sector",
                    labels: labels(SECTORS)
                        .into_iter()
                        .chain(["not declared".to_owned()])
                        .collect(),
                },
                Dimension {
                    name: "organisation type",
                    labels: labels(ORGANISATION_TYPES)
                        .into_iter()
                        .chain(["not declared".to_owned()])
                        .collect(),
                },
                dimension("role", ROLES),
            ]),
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
            Template::ProducerVsReceiverByMonth => events(vec![months, dimension("role", ROLES)]),
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
                    MAX_COUNT,
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
                    MAX_COUNT,
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
        if self.needs_organisation() && institution.organisation_uuids.is_empty() {
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
        let type_index: std::collections::HashMap<&str, usize> = attribute_types()
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i))
            .collect();
        let mut per_month = vec![0u64; window.months as usize];
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
                    values[month * ROLES.len() + role(institution, event)] += 1;
                }
                Template::EventsByDistributionTlpPap => {
                    let cell = (distribution(event) * TLP_LEVELS.len() + tlp_level(event))
                        * PAP_LEVELS.len()
                        + pap_level(event);
                    values[cell] += 1;
                }
                Template::AttributesByEventAndAttributeDistribution => {
                    let row = distribution(event) * ATTRIBUTE_DISTRIBUTIONS.len();
                    for a in event.all_attributes() {
                        let own = match a.distribution {
                            Some(d @ 0..=5) => d as usize,
                            _ => ATTRIBUTE_DISTRIBUTIONS.len() - 1,
                        };
                        values[row + own] += 1;
                    }
                }
                Template::IndicatorAgeAtSharing => {
                    let table = DAY_BUCKETS.len() + 2;
                    let published = event.publish_timestamp.filter(|&t| t > 0);
                    for a in event.all_attributes() {
                        let first_seen = a.first_seen.as_deref().and_then(unix_seconds);
                        match (published, first_seen) {
                            (None, _) => values[table - 1] += 1,
                            (Some(_), None) => values[table - 2] += 1,
                            (Some(published), Some(seen)) => {
                                let age =
                                    (published as i64).div_euclid(86_400) - seen.div_euclid(86_400);
                                values[day_bucket(age)] += 1;
                                add_moments(
                                    &mut values[table..],
                                    age.clamp(0, MAX_DELAY_DAYS as i64) as u64,
                                );
                            }
                        }
                    }
                }
                Template::ObjectsByTemplate => {
                    for o in &event.objects {
                        values[position_or_last(OBJECT_TEMPLATES, o.name.as_deref())] += 1;
                    }
                }
                Template::GalaxyClustersByType => {
                    let mut used = vec![false; GALAXY_TYPES.len()];
                    for cluster in event.galaxy_clusters() {
                        let galaxy = position_or_last(GALAXY_TYPES, galaxy_type(cluster));
                        values[galaxy * 2] += 1;
                        used[galaxy] = true;
                    }
                    for (galaxy, _) in used.iter().enumerate().filter(|(_, &u)| u) {
                        values[galaxy * 2 + 1] += 1;
                    }
                }
                Template::SightingsByAttributeType => {
                    let sighting_types = SIGHTING_TYPES.len();
                    for a in event.all_attributes().filter(|a| !a.sightings.is_empty()) {
                        let row = type_index
                            .get(a.kind.as_str())
                            .copied()
                            .unwrap_or(type_index.len());
                        for s in &a.sightings {
                            let kind = match s.kind {
                                Some(k @ 0..=2) => k as usize,
                                _ => sighting_types - 1,
                            };
                            values[row * sighting_types + kind] += 1;
                        }
                    }
                }
                Template::InstitutionsByEventsPerMonth => per_month[month] += 1,
                Template::EventsByMonthRoleTlpDistribution => {
                    let cell = ((month * ROLES.len() + role(institution, event))
                        * TLP_LEVELS.len()
                        + tlp_level(event))
                        * DISTRIBUTIONS.len()
                        + distribution(event);
                    values[cell] += 1;
                }
                Template::AttributesByMonthRoleTlp => {
                    let cell = (month * ROLES.len() + role(institution, event)) * TLP_LEVELS.len()
                        + tlp_level(event);
                    values[cell] += event.all_attributes().count() as u64;
                }
                Template::EventsBySectorOrganisationTypeRole => {
                    let sector = institution
                        .sector
                        .as_deref()
                        .and_then(|s| {
                            SECTORS
                                .iter()
                                .position(|x| x.eq_ignore_ascii_case(s.trim()))
                        })
                        .unwrap_or(SECTORS.len());
                    let kind = institution
                        .organisation_type
                        .as_deref()
                        .and_then(|s| {
                            ORGANISATION_TYPES
                                .iter()
                                .position(|x| x.eq_ignore_ascii_case(s.trim()))
                        })
                        .unwrap_or(ORGANISATION_TYPES.len());
                    let cell = (sector * (ORGANISATION_TYPES.len() + 1) + kind) * ROLES.len()
                        + role(institution, event);
                    values[cell] += 1;
                }
                Template::AttributesPerEvent => {
                    let n = event.all_attributes().count() as u64;
                    let table = ATTRIBUTE_COUNT_BUCKETS.len();
                    values[attribute_count_bucket(n)] += 1;
                    add_moments(&mut values[table..], n.min(MAX_ATTRIBUTES_PER_EVENT));
                }
                Template::EventsByMonthThreatLevel => {
                    values[month * THREAT_LEVELS.len() + threat_level(event)] += 1;
                }
                // answers, not events: filled in below
                Template::SurveySharingMotivations => {}
                Template::TimeToPublish => {
                    let table = DELAY_BUCKETS.len();
                    match publish_delay_days(event) {
                        None => values[table - 1] += 1,
                        Some(delay) => {
                            values[day_bucket(delay)] += 1;
                            let clipped = delay.clamp(0, MAX_DELAY_DAYS as i64) as u64;
                            add_moments(&mut values[table..], clipped);
                        }
                    }
                }
            }
        }
        if *self == Template::InstitutionsByEventsPerMonth {
            for (month, &n) in per_month.iter().enumerate() {
                values[month * EVENTS_PER_MONTH_BUCKETS.len() + events_per_month_bucket(n)] = 1;
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

/// How `event` stands to `institution` (index into [`ROLES`]).
fn role(institution: &Institution, event: &Event) -> usize {
    match event.creator_uuid() {
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
    }
}

/// MISP's attribute types, each once, in the order of its category/type table.
pub fn attribute_types() -> Vec<&'static str> {
    let mut seen = std::collections::HashSet::new();
    crate::describe_types::CATEGORY_TYPES
        .iter()
        .map(|&(_, t)| t)
        .filter(|t| seen.insert(*t))
        .collect()
}

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
    fn marginals_and_findings_read_the_released_cells() {
        let window = Window::new(YearMonth::parse("2024-01").unwrap(), 2).unwrap();
        // sightings: attribute type × sighting type; 30 sightings and 10 false positives
        let layout = Template::SightingsByAttributeType.layout(&window);
        let mut cells = vec![0i128; layout.cells()];
        (cells[0], cells[1], cells[4], cells[5], cells[6]) = (20, 4, 10, 6, 3);
        assert_eq!(layout.marginal(&cells, &[1]), vec![30, 10, 3, 0]);
        assert_eq!(
            Template::SightingsByAttributeType.findings(&layout, &cells),
            vec!["false-positive ratio: 0.250 (10 false positives of 40 sightings and false positives)".to_string()]
        );
        // time to publish: 10 same day, 10 in 4-7 days, 10 in 91-365; delays 0, 5 and 100 days
        let layout = Template::TimeToPublish.layout(&window);
        let mut cells = vec![0i128; layout.cells()];
        (cells[1], cells[4], cells[8]) = (10, 10, 10);
        let table = layout.table_cells();
        cells[table..].copy_from_slice(&[30, 1050, 100_250]);
        let findings = Template::TimeToPublish.findings(&layout, &cells);
        assert!(
            findings[0].starts_with("delay to publication: mean 35.0 days"),
            "{findings:?}"
        );
        assert!(
            findings[1].ends_with("median 4-7 days, 90th percentile 91-365 days"),
            "{findings:?}"
        );
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
