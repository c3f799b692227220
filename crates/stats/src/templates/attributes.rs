//! What is shared, attribute by attribute: by MISP category and type and `to_ids` (overall and
//! per month), by their event's distribution level and their own, created vs received by month
//! and TLP; and how many attributes an event carries.

use super::{
    dimension, histogram_findings, moments, months, role, table, Cells, Definition, Profile, Tally,
    ATTRIBUTE, LARGE_COUNTS, MAX_ATTRIBUTE_COUNT, MAX_COUNT, ROLES,
};
use crate::catalogue::TemplateInfo;
use crate::describe_types::CATEGORY_TYPES;
use crate::layout::{Chart, Dimension, Layout, Window};
use crate::misp::Event;
use crate::vocabulary::{
    attribute_count_bucket, distribution, tlp_level, ATTRIBUTE_COUNT_BUCKETS,
    ATTRIBUTE_DISTRIBUTIONS, DISTRIBUTIONS, TLP_LEVELS,
};
use std::collections::HashMap;
use std::sync::LazyLock;

/// Attributes per event counted in the sums (an event with more counts as this many).
pub const MAX_ATTRIBUTES_PER_EVENT: u64 = 100_000;

/// MISP's category/type table, then one cell for pairs outside it.
fn category_type() -> Dimension {
    Dimension {
        name: "category/type",
        labels: CATEGORY_TYPES
            .iter()
            .map(|(c, t)| format!("{c} / {t}"))
            .chain(std::iter::once("other (not in MISP's table)".to_string()))
            .collect(),
    }
}

fn to_ids() -> Dimension {
    dimension("to_ids", &["false", "true"])
}

/// An attribute's (category, type) pair's position in MISP's table, or the "other" cell.
fn category_type_cell(category: &str, kind: &str) -> usize {
    static INDEX: LazyLock<HashMap<(&str, &str), usize>> = LazyLock::new(|| {
        CATEGORY_TYPES
            .iter()
            .enumerate()
            .map(|(i, &(c, t))| ((c, t), i))
            .collect()
    });
    INDEX
        .get(&(category, kind))
        .copied()
        .unwrap_or(CATEGORY_TYPES.len())
}

/// Counts every attribute of `event` by category/type and `to_ids`, after `prefix`
/// coordinates.
fn count_category_type(tally: &mut Tally, prefix: Option<usize>, event: &Event) {
    for a in event.all_attributes() {
        let pair = category_type_cell(&a.category, &a.kind);
        let ids = a.to_ids.unwrap_or(false) as usize;
        match prefix {
            Some(month) => tally.add(&[month, pair, ids], 1),
            None => tally.add(&[pair, ids], 1),
        }
    }
}

/// Attributes by MISP category and type, and `to_ids`.
pub struct AttributesByCategoryTypeToIds;

impl Definition for AttributesByCategoryTypeToIds {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "attributes-by-category-type-ids",
                version: 1,
                question: "What is shared: attributes by MISP category and type, and how many are marked for detection (to_ids)?",
                definition: "Each attribute of an event dated in the window (objects' attributes included) counts once, in the cell of its (category, type) pair — MISP's table of valid pairs, anything else under \"other\" — and its `to_ids` flag.",
                fields: "event `date`, `Attribute[]` and `Object[].Attribute[]`: `category`, `type`, `to_ids`",
            },
            parameter_sets: LARGE_COUNTS,
            privacy_unit: Some(ATTRIBUTE),
            chart: Chart::Bars {
                dimension: 0,
                top: Some(20),
            },
            counts: "attributes",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(vec![category_type(), to_ids()], MAX_ATTRIBUTE_COUNT)
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        count_category_type(tally, None, event);
    }
}

/// Attributes per month by MISP category and type, and `to_ids`.
pub struct AttributesByMonthCategoryTypeToIds;

impl Definition for AttributesByMonthCategoryTypeToIds {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "attributes-by-month-category-type-ids",
                version: 1,
                question: "How does what is shared change over time: attributes per month by MISP category and type, and to_ids?",
                definition: "As attributes-by-category-type-ids, per month of the event's date.",
                fields: "event `date`, attributes' `category`, `type`, `to_ids`",
            },
            parameter_sets: LARGE_COUNTS,
            privacy_unit: Some(ATTRIBUTE),
            chart: Chart::Lines { series: 2 },
            counts: "attributes",
            needs_organisation: false,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(
            vec![months(window), category_type(), to_ids()],
            MAX_ATTRIBUTE_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, month: usize, event: &Event) {
        count_category_type(tally, Some(month), event);
    }
}

/// Attributes by their event's distribution level and their own.
pub struct AttributesByEventAndAttributeDistribution;

impl Definition for AttributesByEventAndAttributeDistribution {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "attributes-by-event-and-attribute-distribution",
                version: 1,
                question: "How finely is sharing restricted: attributes by their event's distribution level and their own (inherited, narrowed, sharing group)?",
                definition: "Each attribute of an event dated in the window counts once, in the cell of its event's distribution level and its own (0-4, 5 \"inherit event\"; else unknown): how often attributes narrow or widen what their event allows.",
                fields: "event `date`, `distribution`; attributes' `distribution`",
            },
            parameter_sets: LARGE_COUNTS,
            privacy_unit: Some(ATTRIBUTE),
            chart: Chart::Heatmap {
                rows: 0,
                columns: 1,
                top_rows: None,
            },
            counts: "attributes",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![
                dimension("event distribution", DISTRIBUTIONS),
                dimension("attribute distribution", ATTRIBUTE_DISTRIBUTIONS),
            ],
            MAX_ATTRIBUTE_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        let row = distribution(event);
        for a in event.all_attributes() {
            let own = match a.distribution {
                Some(d @ 0..=5) => d as usize,
                _ => ATTRIBUTE_DISTRIBUTIONS.len() - 1,
            };
            tally.add(&[row, own], 1);
        }
    }
}

/// Attributes created vs received per month, by their event's TLP.
pub struct AttributesByMonthRoleTlp;

impl Definition for AttributesByMonthRoleTlp {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "attributes-by-month-role-tlp",
                version: 1,
                question: "How many indicators do institutions create vs receive each month, by the TLP of their event?",
                definition: "Each attribute of an event dated in the window counts once, in the event's month, its role for the institution and its TLP level.",
                fields: "event `date`, `Orgc.uuid`, `Tag[].name` (`tlp:*`), attributes; the node's `organisation_uuids`",
            },
            parameter_sets: LARGE_COUNTS,
            privacy_unit: Some(ATTRIBUTE),
            chart: Chart::Lines { series: 1 },
            counts: "attributes",
            needs_organisation: true,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(
            vec![
                months(window),
                dimension("role", ROLES),
                dimension("tlp", TLP_LEVELS),
            ],
            MAX_ATTRIBUTE_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, month: usize, event: &Event) {
        let role = role(tally.institution, event);
        let attributes = event.all_attributes().count() as u64;
        tally.add(&[month, role, tlp_level(event)], attributes);
    }
}

/// A histogram of attributes per event, with count, sum and sum of squares.
pub struct AttributesPerEvent;

impl Definition for AttributesPerEvent {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "attributes-per-event",
                version: 1,
                question: "How much does an event carry: attributes per event (histogram, and count, sum and sum of squares for mean and variance)?",
                definition: "Each event dated in the window counts once, in the bucket of its number of attributes (objects' included); its count (capped at 100,000) and its square add to the sums.",
                fields: "event `date`, `Attribute[]`, `Object[].Attribute[]`",
            },
            parameter_sets: LARGE_COUNTS,
            // An event adds its count and its square to the sums: no unit of sensitivity 1.
            privacy_unit: None,
            chart: Chart::Bars {
                dimension: 0,
                top: None,
            },
            counts: "events",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        Cells {
            dimensions: vec![dimension("attributes per event", ATTRIBUTE_COUNT_BUCKETS)],
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
        }
    }
    fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        histogram_findings(
            layout,
            cells,
            ATTRIBUTE_COUNT_BUCKETS.len(),
            ("attributes per event", "attributes", "events"),
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        let n = event.all_attributes().count() as u64;
        tally.add(&[attribute_count_bucket(n)], 1);
        tally.add_moments(n.min(MAX_ATTRIBUTES_PER_EVENT));
    }
}
