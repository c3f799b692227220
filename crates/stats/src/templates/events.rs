//! Production and dissemination of events: per month by TLP and distribution level, by threat
//! level, by distribution × TLP × PAP; what an institution created vs received, by month, TLP,
//! distribution, sector and kind of institution; and how often institutions share at all.

use super::{
    dimension, months, role, table, Cells, Definition, Profile, Tally, EVENT, MAX_COUNT, ROLES,
    SMALL_COUNTS,
};
use crate::catalogue::{PrivacyUnit, TemplateError, TemplateInfo};
use crate::layout::{Chart, Dimension, Window};
use crate::misp::Event;
use crate::vocabulary::{
    distribution, events_per_month_bucket, pap_level, threat_level, tlp_level, DISTRIBUTIONS,
    EVENTS_PER_MONTH_BUCKETS, ORGANISATION_TYPES, PAP_LEVELS, SECTORS, THREAT_LEVELS, TLP_LEVELS,
};

/// Events per month, TLP and distribution level.
pub struct EventsByMonthTlpDistribution;

impl Definition for EventsByMonthTlpDistribution {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "events-by-month-tlp-distribution",
                version: 1,
                question: "How many events are shared each month, at which TLP and distribution level?",
                definition: "Each event dated in the window counts once, in the cell of its month, its most restrictive `tlp:` tag (`tlp:white` read as `clear`; none: unknown) and its distribution level (absent in feeds: unknown).",
                fields: "event `date`, event `Tag[].name` (`tlp:*`), event `distribution`",
            },
            parameter_sets: SMALL_COUNTS,
            privacy_unit: Some(EVENT),
            chart: Chart::Lines { series: 1 },
            counts: "events",
            needs_organisation: false,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(
            vec![
                months(window),
                dimension("tlp", TLP_LEVELS),
                dimension("distribution", DISTRIBUTIONS),
            ],
            MAX_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, month: usize, event: &Event) {
        tally.add(&[month, tlp_level(event), distribution(event)], 1);
    }
}

/// Events created vs received, per month.
pub struct ProducerVsReceiverByMonth;

impl Definition for ProducerVsReceiverByMonth {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "producer-vs-receiver-by-month",
                version: 1,
                question: "Who produces and who disseminates: events an institution created itself vs received, per month?",
                definition: "Each event dated in the window counts once, in its month and in \"produced\" when its creator (`Orgc`) is one of the node's `organisation_uuids`, \"received\" when it is another organisation, \"creator unknown\" when the export names none.",
                fields: "event `date`, `Orgc.uuid`; the node's `organisation_uuids`",
            },
            parameter_sets: SMALL_COUNTS,
            privacy_unit: Some(EVENT),
            chart: Chart::Lines { series: 1 },
            counts: "events",
            needs_organisation: true,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(vec![months(window), dimension("role", ROLES)], MAX_COUNT)
    }
    fn count(&self, tally: &mut Tally, month: usize, event: &Event) {
        let role = role(tally.institution, event);
        tally.add(&[month, role], 1);
    }
}

/// Events per month by the threat level their creator gave them.
pub struct EventsByMonthThreatLevel;

impl Definition for EventsByMonthThreatLevel {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "events-by-month-threat-level",
                version: 1,
                question: "How severe is what is shared: events per month by the threat level their creator gave them?",
                definition: "Each event dated in the window counts once, in its month and its `threat_level_id` (1 high, 2 medium, 3 low, 4 undefined; else unknown).",
                fields: "event `date`, `threat_level_id`",
            },
            parameter_sets: SMALL_COUNTS,
            privacy_unit: Some(EVENT),
            chart: Chart::Lines { series: 1 },
            counts: "events",
            needs_organisation: false,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(
            vec![months(window), dimension("threat level", THREAT_LEVELS)],
            MAX_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, month: usize, event: &Event) {
        tally.add(&[month, threat_level(event)], 1);
    }
}

/// Events by distribution level, TLP and PAP.
pub struct EventsByDistributionTlpPap;

impl Definition for EventsByDistributionTlpPap {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "events-by-distribution-tlp-pap",
                version: 1,
                question: "How restrictively is information shared: events by distribution level (sharing groups included), TLP and PAP?",
                definition: "Each event dated in the window counts once, in the cell of its distribution level (4: sharing group), its most restrictive TLP tag and its most restrictive `PAP:` tag (`PAP:WHITE` read as clear; none: unknown).",
                fields: "event `date`, `distribution`, `Tag[].name` (`tlp:*`, `PAP:*`)",
            },
            parameter_sets: SMALL_COUNTS,
            privacy_unit: Some(EVENT),
            chart: Chart::Heatmap {
                rows: 0,
                columns: 1,
                top_rows: None,
            },
            counts: "events",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![
                dimension("distribution", DISTRIBUTIONS),
                dimension("tlp", TLP_LEVELS),
                dimension("pap", PAP_LEVELS),
            ],
            MAX_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        tally.add(
            &[distribution(event), tlp_level(event), pap_level(event)],
            1,
        );
    }
}

/// Per month, how many institutions dated 0, 1, 2-5, … events.
pub struct InstitutionsByEventsPerMonth;

impl Definition for InstitutionsByEventsPerMonth {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "institutions-by-events-per-month",
                version: 1,
                question: "How often do institutions share: per month, how many institutions dated 0, 1, 2-5, ... events (a distribution across institutions, never per institution)?",
                definition: "Each institution counts once per month of the window, in the bucket of the number of events it dated in that month: the released cells say how many institutions shared 0, 1, 2-5, … events that month, never which.",
                fields: "event `date`",
            },
            parameter_sets: SMALL_COUNTS,
            // one event more or less moves the institution's month from one bucket to the
            // next: −1 in one cell, +1 in another
            privacy_unit: Some(PrivacyUnit {
                unit: "event",
                sensitivity: std::f64::consts::SQRT_2,
                cells: 2,
            }),
            chart: Chart::Heatmap {
                rows: 0,
                columns: 1,
                top_rows: None,
            },
            counts: "institutions",
            needs_organisation: false,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(
            vec![
                months(window),
                dimension("events in the month", EVENTS_PER_MONTH_BUCKETS),
            ],
            1,
        )
    }
    /// The institution's events per month, then one mark in each month's bucket.
    fn tally(&self, tally: &mut Tally, events: &[Event]) -> Result<(), TemplateError> {
        let mut per_month = vec![0u64; tally.window.months as usize];
        tally.each_event(events, |_, month, _| per_month[month] += 1);
        for (month, &n) in per_month.iter().enumerate() {
            tally.set(&[month, events_per_month_bucket(n)], 1);
        }
        Ok(())
    }
}

/// Events created vs received per month, by TLP and distribution level.
pub struct EventsByMonthRoleTlpDistribution;

impl Definition for EventsByMonthRoleTlpDistribution {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "events-by-month-role-tlp-distribution",
                version: 1,
                question: "Do producers and disseminators share differently: events created vs received per month, by TLP and distribution level?",
                definition: "Each event dated in the window counts once, in its month, its role for the institution (as producer-vs-receiver-by-month), its TLP level and its distribution level.",
                fields: "event `date`, `Orgc.uuid`, `Tag[].name` (`tlp:*`), `distribution`; the node's `organisation_uuids`",
            },
            parameter_sets: SMALL_COUNTS,
            privacy_unit: Some(EVENT),
            chart: Chart::Lines { series: 1 },
            counts: "events",
            needs_organisation: true,
        }
    }
    fn cells(&self, window: &Window) -> Cells {
        table(
            vec![
                months(window),
                dimension("role", ROLES),
                dimension("tlp", TLP_LEVELS),
                dimension("distribution", DISTRIBUTIONS),
            ],
            MAX_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, month: usize, event: &Event) {
        let role = role(tally.institution, event);
        tally.add(&[month, role, tlp_level(event), distribution(event)], 1);
    }
}

/// Events by the institution's sector and kind, and their role.
pub struct EventsBySectorOrganisationTypeRole;

/// A declared value's position in `known` (case and surrounding blanks ignored), or the
/// "not declared" cell after them.
fn declared(known: &[&str], value: Option<&str>) -> usize {
    value
        .and_then(|s| known.iter().position(|x| x.eq_ignore_ascii_case(s.trim())))
        .unwrap_or(known.len())
}

/// `known`'s labels and "not declared".
fn or_not_declared(name: &'static str, known: &[&str]) -> Dimension {
    let mut d = dimension(name, known);
    d.labels.push("not declared".to_owned());
    d
}

impl Definition for EventsBySectorOrganisationTypeRole {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "events-by-sector-organisation-type-role",
                version: 1,
                question: "Who produces and who disseminates, by sector and kind of institution: events created vs received by institutions of each sector and type?",
                definition: "Each event dated in the window counts once, in the row of the institution's declared sector and organisation type (node configuration `sector`, `organisation_type`; else \"not declared\") and its role for the institution. A row with a single institution is that institution's count: query with DP, or combine rows.",
                fields: "event `Orgc.uuid`, `date`; the node's `organisation_uuids`, `sector`, `organisation_type`",
            },
            parameter_sets: SMALL_COUNTS,
            privacy_unit: Some(EVENT),
            chart: Chart::Heatmap {
                rows: 0,
                columns: 2,
                top_rows: Some(25),
            },
            counts: "events",
            needs_organisation: true,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        table(
            vec![
                or_not_declared("sector", SECTORS),
                or_not_declared("organisation type", ORGANISATION_TYPES),
                dimension("role", ROLES),
            ],
            MAX_COUNT,
        )
    }
    fn count(&self, tally: &mut Tally, _month: usize, event: &Event) {
        let institution = tally.institution;
        let sector = declared(SECTORS, institution.sector.as_deref());
        let kind = declared(ORGANISATION_TYPES, institution.organisation_type.as_deref());
        tally.add(&[sector, kind, role(institution, event)], 1);
    }
}
