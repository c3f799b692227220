//! The statistics catalogue (DESIGN.md §3): versioned query templates shared by node,
//! coordinator and researcher, so that all three agree on the cell layout.
//!
//! A template declares its question, its dimensions (a cross-table of counts, row-major, last
//! dimension fastest) and optional *summary* cells (counts, sums, sums of squares), the public
//! per-institution bound of each cell (contributions are clipped to it, and it sizes the
//! plaintext range), its unit of privacy and the parameter set it needs.
//!
//! This file names the templates ([`Template`], [`TEMPLATES`]) and dispatches to their
//! definitions: each template is defined once, in its family's file under [`crate::templates`]
//! (cells, counting, privacy unit, chart and findings together); the layout of cells over a
//! window is [`crate::layout`].

pub use crate::layout::{Chart, Dimension, Layout, SummaryCell, Window, YearMonth, MAX_MONTHS};
pub use crate::templates::attributes::MAX_ATTRIBUTES_PER_EVENT;
pub use crate::templates::content::attribute_types;
pub use crate::templates::timing::{
    publish_delay_days, unix_seconds, DELAY_BUCKETS, MAX_DELAY_DAYS,
};
pub use crate::templates::{MAX_ATTRIBUTE_COUNT, MAX_COUNT, ROLES};
pub use crate::vocabulary::{
    attribute_count_bucket, day_bucket, distribution, events_per_month_bucket, pap_level,
    threat_level, tlp_level, ATTRIBUTE_COUNT_BUCKETS, ATTRIBUTE_DISTRIBUTIONS, DAY_BUCKETS,
    DISTRIBUTIONS, EVENTS_PER_MONTH_BUCKETS, GALAXY_TYPES, OBJECT_TEMPLATES, ORGANISATION_TYPES,
    PAP_LEVELS, SECTORS, SIGHTING_TYPES, THREAT_LEVELS, TLP_LEVELS,
};

use crate::learning::{Design, Label, LocalGradient, TrainConfig};
use crate::misp::Event;
use crate::templates::{self, Definition, Tally};

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
    #[error("a differentially private query of {template} counts only the events this institution created, so that one event counts once wherever it is held: it needs the institution's organisation uuid(s) (`organisation_uuids` in the node configuration)")]
    CreatorUnknown { template: &'static str },
    #[error("template {template} needs the institution's survey answers (`survey` in the node configuration's [data]); without them the institution takes no part")]
    NeedsSurvey { template: &'static str },
    #[error("template {template} bins indicators with the deployment's binning key: the node computes it with Template::compute_overlap")]
    NeedsBinningKey { template: &'static str },
    #[error("template {template} is a round of training: the node computes its gradient at the query's model with Template::compute_training")]
    NeedsModel { template: &'static str },
    #[error("{0}")]
    Training(String),
    #[error("{slots} slot values where the layout has {expected}")]
    SlotCount { slots: usize, expected: usize },
}

/// What a differentially private result of a template hides (see [`Template::privacy_unit`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PrivacyUnit {
    /// "event", "attribute", … ("indicator held by one institution" for the overlap queries)
    pub unit: &'static str,
    /// L2 distance of the cells when one such unit is added or removed.
    pub sensitivity: f64,
    /// The most cells one such unit moves (the accounting's `ξ` is paid once per moved cell).
    pub cells: usize,
}

/// The unit of the templates that count what each institution holds (the overlap queries and
/// `indicators-held`): one indicator held by one institution.
pub const HELD_INDICATOR: &str = "indicator held by one institution";

impl PrivacyUnit {
    /// Whether the unit is one thing held by one institution ([`HELD_INDICATOR`]): a DP query
    /// then counts what each institution holds, as without DP — two institutions holding one
    /// indicator are two units — and not only the events it created
    /// ([`Template::compute_created`]).
    pub fn per_institution(&self) -> bool {
        self.unit == HELD_INDICATOR
    }
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
    IndicatorOverlap,
    IndicatorOverlapByType,
    IndicatorsHeld,
    TrainToIds,
    TrainFalsePositive,
    TrainSharedBeyondCommunity,
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
    Template::IndicatorOverlap,
    Template::IndicatorOverlapByType,
    Template::IndicatorsHeld,
    Template::TrainToIds,
    Template::TrainFalsePositive,
    Template::TrainSharedBeyondCommunity,
];

impl Template {
    /// The template's definition: the one place each template is written.
    fn definition(&self) -> &'static dyn Definition {
        match self {
            Template::EventsByMonthTlpDistribution => {
                &templates::events::EventsByMonthTlpDistribution
            }
            Template::AttributesByCategoryTypeToIds => {
                &templates::attributes::AttributesByCategoryTypeToIds
            }
            Template::ProducerVsReceiverByMonth => &templates::events::ProducerVsReceiverByMonth,
            Template::TimeToPublish => &templates::timing::TimeToPublish,
            Template::AttributesByMonthCategoryTypeToIds => {
                &templates::attributes::AttributesByMonthCategoryTypeToIds
            }
            Template::SurveySharingMotivations => &templates::survey::SurveySharingMotivations,
            Template::EventsByMonthThreatLevel => &templates::events::EventsByMonthThreatLevel,
            Template::AttributesPerEvent => &templates::attributes::AttributesPerEvent,
            Template::EventsByDistributionTlpPap => &templates::events::EventsByDistributionTlpPap,
            Template::AttributesByEventAndAttributeDistribution => {
                &templates::attributes::AttributesByEventAndAttributeDistribution
            }
            Template::IndicatorAgeAtSharing => &templates::timing::IndicatorAgeAtSharing,
            Template::ObjectsByTemplate => &templates::content::ObjectsByTemplate,
            Template::GalaxyClustersByType => &templates::content::GalaxyClustersByType,
            Template::SightingsByAttributeType => &templates::content::SightingsByAttributeType,
            Template::InstitutionsByEventsPerMonth => {
                &templates::events::InstitutionsByEventsPerMonth
            }
            Template::EventsByMonthRoleTlpDistribution => {
                &templates::events::EventsByMonthRoleTlpDistribution
            }
            Template::AttributesByMonthRoleTlp => &templates::attributes::AttributesByMonthRoleTlp,
            Template::EventsBySectorOrganisationTypeRole => {
                &templates::events::EventsBySectorOrganisationTypeRole
            }
            Template::IndicatorOverlap => &templates::overlap::IndicatorOverlap,
            Template::IndicatorOverlapByType => &templates::overlap::IndicatorOverlapByType,
            Template::IndicatorsHeld => &templates::overlap::IndicatorsHeld,
            Template::TrainToIds => &templates::training::Train(Label::ToIds),
            Template::TrainFalsePositive => &templates::training::Train(Label::FalsePositive),
            Template::TrainSharedBeyondCommunity => {
                &templates::training::Train(Label::SharedBeyondCommunity)
            }
        }
    }

    pub fn info(&self) -> TemplateInfo {
        self.definition().profile().info
    }

    /// What differential privacy protects for this template (`concord-query` `dp`): the unit
    /// whose presence a released result hides, and the L2 sensitivity of the cells to adding
    /// or removing one such unit. A DP query counts only the events each institution created
    /// ([`Template::compute_created`]), so the unit is one event (attribute, …) wherever it is
    /// held, across institutions. `None`: not declared yet, and a DP query of the template is
    /// refused.
    ///
    /// The event counts count each event in exactly one cell: one **event**, sensitivity 1.
    /// The attribute tables count each attribute (indicator) in exactly one cell: one
    /// **attribute**, sensitivity 1 — an event adds all its attributes, so protecting whole
    /// events there would need a per-event cap that large feeds' events (thousands of
    /// indicators each) exceed. Time-to-publish adds an event's delay and squared delay to its
    /// sums: bounded only by the per-institution caps, which would drown the histogram in noise.
    /// The overlap histograms hide one **indicator held by one institution**: sensitivity √2,
    /// two cells (the count of `j` and of `j ± 1`), the noise added at release.
    pub fn privacy_unit(&self) -> Option<PrivacyUnit> {
        self.definition().profile().privacy_unit
    }

    /// The parameter set of the template's layout in the catalogue: the first of
    /// [`Self::parameter_sets`], the cheapest (large-counter cells — attribute counts, sums of
    /// delays — need `t > 2^32`).
    pub fn parameter_set(&self) -> &'static str {
        self.parameter_sets()[0]
    }

    /// Every parameter set a query of the template may run under, cheapest first: the first
    /// that computes it for the institutions it is proposed to is taken
    /// ([`crate::templates::SetLadder`]). A researcher holds a result key for each.
    pub fn parameter_sets(&self) -> crate::templates::SetLadder {
        self.definition().profile().parameter_sets
    }

    /// The chart that shows the template's result best.
    pub fn chart(&self) -> Chart {
        self.definition().profile().chart
    }

    /// What a researcher reads off a released result besides the table: mean and standard
    /// deviation from the summary cells, approximate quantiles (the histogram bucket that
    /// holds them), and the false-positive ratio of sightings.
    pub fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        self.definition().findings(layout, cells)
    }

    /// What the template's table cells count (the unit of its value axis).
    pub fn counts(&self) -> &'static str {
        self.definition().profile().counts
    }

    /// Whether the template tells the institution's own events from received ones, and so
    /// needs its organisation uuids.
    pub fn needs_organisation(&self) -> bool {
        self.definition().profile().needs_organisation
    }

    /// Whether the template tallies the institution's survey answers rather than its MISP data.
    pub fn needs_survey(&self) -> bool {
        matches!(self, Template::SurveySharingMotivations)
    }

    /// Why `institution` cannot compute the template at all, if it cannot: it lacks the
    /// organisation uuids or the survey answers the template reads. A node says so when the
    /// query is proposed, and takes no part.
    pub fn unavailable_at(&self, institution: &Institution) -> Option<TemplateError> {
        let template = self.info().id;
        if self.needs_organisation() && institution.organisation_uuids.is_empty() {
            Some(TemplateError::NeedsOrganisation { template })
        } else if self.needs_survey() && institution.survey.is_none() {
            Some(TemplateError::NeedsSurvey { template })
        } else {
            None
        }
    }

    pub fn by_id(id: &str) -> Result<Self, TemplateError> {
        TEMPLATES
            .iter()
            .copied()
            .find(|t| t.info().id == id)
            .ok_or_else(|| TemplateError::Unknown(id.to_owned()))
    }

    /// The template's cells over `window`.
    pub fn layout(&self, window: &Window) -> Layout {
        let cells = self.definition().cells(window);
        Layout {
            dimensions: cells.dimensions,
            cell_bound: cells.cell_bound,
            summary: cells.summary,
            parameter_set: self.parameter_set(),
            overlap: self.definition().bins(),
        }
    }

    /// Whether the template is an overlap template: its input is presence bits over bins, its
    /// cells the histogram the circuit releases.
    pub fn is_overlap(&self) -> bool {
        self.definition().bins().is_some()
    }

    /// An overlap template's own bins (a query may ask for more); `None` for the tables.
    pub fn bins(&self) -> Option<crate::overlap::Bins> {
        self.definition().bins()
    }

    /// An overlap template's input at one institution: its presence bit per bin of `bins`
    /// (the query's: the template's own, or as many as the query asked), binned under the
    /// query's key ([`crate::overlap::presence`]).
    pub fn compute_overlap(
        &self,
        window: &Window,
        events: &[Event],
        bins: &crate::overlap::Bins,
        key: &crate::overlap::BinningKey,
    ) -> Result<Statistic, TemplateError> {
        if !self.is_overlap() {
            return Err(TemplateError::Unknown(format!(
                "{} is not an overlap template",
                self.info().id
            )));
        }
        let inside = events
            .iter()
            .filter(|e| e.date.as_ref().and_then(|d| window.position(d)).is_some())
            .count();
        Ok(Statistic {
            values: crate::overlap::presence(events, window, bins, key)
                .into_iter()
                .map(u64::from)
                .collect(),
            events_in_window: inside,
            events_outside_window: events.len() - inside,
            clipped_cells: 0,
        })
    }

    /// The label a training template's rounds learn; `None` for the other templates.
    pub fn training_label(&self) -> Option<Label> {
        match self {
            Template::TrainToIds => Some(Label::ToIds),
            Template::TrainFalsePositive => Some(Label::FalsePositive),
            Template::TrainSharedBeyondCommunity => Some(Label::SharedBeyondCommunity),
            _ => None,
        }
    }

    /// A training template's first round of `rounds` at the standard configuration
    /// ([`TrainConfig::standard`]): every coefficient 0. `None` for the other templates.
    pub fn first_round(&self, rounds: u32) -> Option<(Vec<f64>, TrainConfig)> {
        let d = Design::new(self.training_label()?).dimension();
        Some((vec![0.0; d], TrainConfig::standard(d, rounds)))
    }

    /// A training template's input at one institution: its part of the round at the public
    /// `model` ([`crate::learning::LocalGradient`]) as the cells of
    /// [`crate::learning::layout`].
    pub fn compute_training(
        &self,
        window: &Window,
        events: &[Event],
        model: &[f64],
        config: &TrainConfig,
    ) -> Result<Statistic, TemplateError> {
        let label = self.training_label().ok_or_else(|| {
            TemplateError::Unknown(format!("{} is not a training template", self.info().id))
        })?;
        let design = Design::new(label);
        let refused = |e: crate::learning::TrainError| TemplateError::Training(e.to_string());
        crate::learning::check_model(model, design.dimension()).map_err(refused)?;
        config.check(design.dimension()).map_err(refused)?;
        let samples = design.samples(events, window);
        let inside = events
            .iter()
            .filter(|e| e.date.as_ref().and_then(|d| window.position(d)).is_some())
            .count();
        Ok(Statistic {
            values: LocalGradient::compute(&samples, model, config)
                .values(config)
                .map_err(refused)?,
            events_in_window: inside,
            events_outside_window: events.len() - inside,
            clipped_cells: 0,
        })
    }

    /// The statistic over only the events `institution` created (whose `Orgc` is one of its
    /// `organisation_uuids`; their attributes, objects and sightings with them): what a
    /// differentially private query counts. MISP synchronisation copies an event, `Orgc` and
    /// all, to every institution it reaches, so one event held by `h` institutions would move
    /// the community's aggregate `h` times; counted at its creator alone, it moves it once, and
    /// the template's [`PrivacyUnit`] holds **across institutions**: one event (attribute,
    /// object, sighting) wherever it is held. Received-event cells of a template that tells
    /// own events from received ones are then zero.
    pub fn compute_created(
        &self,
        window: &Window,
        institution: &Institution,
        events: &[Event],
    ) -> Result<Statistic, TemplateError> {
        if institution.organisation_uuids.is_empty() {
            return Err(TemplateError::CreatorUnknown {
                template: self.info().id,
            });
        }
        let created: Vec<Event> = events
            .iter()
            .filter(|e| templates::role(institution, e) == 0)
            .cloned()
            .collect();
        self.compute(window, institution, &created)
    }

    /// The institution's local statistic over `events`, clipped to the layout's bounds.
    pub fn compute(
        &self,
        window: &Window,
        institution: &Institution,
        events: &[Event],
    ) -> Result<Statistic, TemplateError> {
        let definition = self.definition();
        if let Some(missing) = self.unavailable_at(institution) {
            return Err(missing);
        }
        let layout = self.layout(window);
        let mut tally = Tally::new(&layout, window, institution);
        definition.tally(&mut tally, events)?;
        let Tally {
            mut values,
            inside,
            outside,
            ..
        } = tally;
        // clip to the declared bounds
        let mut clipped = 0;
        let bounds = std::iter::repeat_n(layout.cell_bound, layout.table_cells())
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
