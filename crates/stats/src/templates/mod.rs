//! The templates of the catalogue, each defined once (DESIGN.md §3): its description, its
//! cells, how it counts an institution's data into them, its privacy unit, its parameter set,
//! its chart and what a researcher reads off its result — together, as one [`Definition`].
//! [`crate::catalogue::Template`] names them and dispatches to these definitions.
//!
//! Families, one file each: [`events`] (events by month, TLP, distribution, role, sector; how
//! often institutions share), [`attributes`] (attributes by category, type, distribution and
//! role; attributes per event), [`content`] (objects, galaxy clusters, sightings), [`timing`]
//! (time to publish, indicator age at sharing), [`overlap`] (indicators held by exactly j
//! institutions) and [`survey`] (the private survey tally).
//!
//! Where a field is missing in the data, templates use an explicit "unknown" cell — feeds carry
//! no `distribution`, many events have no TLP tag or no publish time — never a guess.

pub mod attributes;
pub mod content;
pub mod events;
pub mod overlap;
pub mod survey;
pub mod timing;
pub mod training;

use crate::catalogue::{Institution, PrivacyUnit, TemplateError, TemplateInfo};
use crate::layout::{Chart, Dimension, Layout, SummaryCell, Window};
use crate::misp::Event;

/// How an event stands to the computing institution: it created it, received it, or the
/// export does not say who created it.
pub const ROLES: &[&str] = &["produced", "received", "creator unknown"];

/// Per-institution bound of a count cell.
pub const MAX_COUNT: u64 = 4095;
/// Per-institution bound of an attribute-count cell (large feeds hold tens of thousands).
pub const MAX_ATTRIBUTE_COUNT: u64 = (1 << 26) - 1;

/// The parameter sets a template's queries may run under, cheapest first. A query runs under
/// the first that computes it for the institutions it is proposed to: whose plaintext modulus
/// holds their sum, whose smudging hides the aggregate's noise with 40 bits of statistical
/// security, and — for an overlap template — whose circuit counts them (`concord-query`
/// `QueryPlan`; `concord-bfv` `params` on how far each set reaches).
pub type SetLadder = &'static [&'static str];

/// The parameter sets of templates whose cells are small counts: `t = 65537` holds 16
/// institutions' counts of up to [`MAX_COUNT`]; the 33-bit `t` sets take larger communities.
pub const SMALL_COUNTS: SetLadder = &["ADD-8192", "ADD-8192-T33", "ADD-8192-T33-Q120"];
/// The parameter sets of templates with large-counter cells (attribute counts, sums of
/// delays): `t > 2^32`; the `-Q120` set for communities above 153 institutions.
pub const LARGE_COUNTS: SetLadder = &["ADD-8192-T33", "ADD-8192-T33-Q120"];

/// A template's cells over a window, before the parameter set is attached.
pub struct Cells {
    pub dimensions: Vec<Dimension>,
    /// Per-institution bound of every cross-table cell.
    pub cell_bound: u64,
    pub summary: Vec<SummaryCell>,
}

/// What a template is, apart from how it counts: the facts the catalogue page, the node's
/// policy, the DP planner and the researcher's client read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Profile {
    /// Its id, version, question, definition and the MISP fields it reads.
    pub info: TemplateInfo,
    /// The parameter sets its queries run under, by community size ([`SMALL_COUNTS`],
    /// [`LARGE_COUNTS`] or [`overlap::OVERLAP_SETS`]).
    pub parameter_sets: SetLadder,
    /// What a differentially private result hides, and the cells' L2 sensitivity to one such
    /// unit; `None`: the template refuses DP.
    pub privacy_unit: Option<PrivacyUnit>,
    /// The chart that shows its result best.
    pub chart: Chart,
    /// What its table cells count (the unit of the value axis).
    pub counts: &'static str,
    /// Whether it tells the institution's own events from received ones, and so needs its
    /// organisation uuids.
    pub needs_organisation: bool,
}

/// One template of the catalogue.
pub trait Definition: Sync {
    /// What the template is.
    fn profile(&self) -> Profile;

    /// Its cells over `window`.
    fn cells(&self, window: &Window) -> Cells;

    /// The bins of an overlap template (its input is presence bits, not cells).
    fn bins(&self) -> Option<crate::overlap::Bins> {
        None
    }

    /// What a researcher reads off a released result besides the table.
    fn findings(&self, _layout: &Layout, _cells: &[i128]) -> Vec<String> {
        Vec::new()
    }

    /// Counts one event dated in month `month` of the window.
    fn count(&self, _tally: &mut Tally, _month: usize, _event: &Event) {}

    /// Fills the tally from the institution's data: by default, every event dated in the
    /// window counted by [`Self::count`].
    fn tally(&self, tally: &mut Tally, events: &[Event]) -> Result<(), TemplateError> {
        tally.each_event(events, |tally, month, event| {
            self.count(tally, month, event)
        });
        Ok(())
    }
}

/// A statistic being counted: the cells, and the events inside and outside the window.
pub struct Tally<'a> {
    pub layout: &'a Layout,
    pub window: &'a Window,
    pub institution: &'a Institution,
    /// Logical cell values: the cross-table, then the summary cells.
    pub values: Vec<u64>,
    pub inside: usize,
    pub outside: usize,
}

impl<'a> Tally<'a> {
    pub fn new(layout: &'a Layout, window: &'a Window, institution: &'a Institution) -> Self {
        Self {
            layout,
            window,
            institution,
            values: vec![0; layout.cells()],
            inside: 0,
            outside: 0,
        }
    }

    /// Adds `n` to the cross-table cell at `coordinates`.
    pub fn add(&mut self, coordinates: &[usize], n: u64) {
        let at = self.layout.index(coordinates);
        self.values[at] += n;
    }

    /// Sets the cross-table cell at `coordinates` to `n`.
    pub fn set(&mut self, coordinates: &[usize], n: u64) {
        let at = self.layout.index(coordinates);
        self.values[at] = n;
    }

    /// Counts one value `x` in the count / sum / sum-of-squares summary cells ([`moments`]).
    pub fn add_moments(&mut self, x: u64) {
        let table = self.layout.table_cells();
        let cells = &mut self.values[table..];
        cells[0] += 1;
        cells[1] += x;
        cells[2] += x * x;
    }

    /// Calls `count` for every event dated in the window, with its month; counts the events
    /// inside and outside.
    pub fn each_event(
        &mut self,
        events: &[Event],
        mut count: impl FnMut(&mut Self, usize, &Event),
    ) {
        for event in events {
            match event.date.as_ref().and_then(|d| self.window.position(d)) {
                Some(month) => {
                    self.inside += 1;
                    count(self, month, event);
                }
                None => self.outside += 1,
            }
        }
    }
}

/// The summary cells of a distribution of values in `[0, max]`: how many, their sum and the
/// sum of their squares (for mean and variance), each bounded for `count` values.
pub fn moments(names: [&'static str; 3], count: u64, max: u64) -> Vec<SummaryCell> {
    names
        .into_iter()
        .zip([count, count * max, count * max * max])
        .map(|(name, bound)| SummaryCell { name, bound })
        .collect()
}

/// A dimension with the given labels.
pub fn dimension(name: &'static str, labels: &[&str]) -> Dimension {
    Dimension {
        name,
        labels: labels.iter().map(|s| s.to_string()).collect(),
    }
}

/// The window's months.
pub fn months(window: &Window) -> Dimension {
    Dimension {
        name: "month",
        labels: window.labels(),
    }
}

/// A table of counts over `dimensions`, each cell bounded by `bound`.
pub fn table(dimensions: Vec<Dimension>, bound: u64) -> Cells {
    Cells {
        dimensions,
        cell_bound: bound,
        summary: Vec::new(),
    }
}

/// How `event` stands to `institution` (index into [`ROLES`]).
pub fn role(institution: &Institution, event: &Event) -> usize {
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

/// The mean, standard deviation and approximate quantiles of a histogram whose first `buckets`
/// cells are ordered and whose summary cells are count, sum and sum of squares.
pub fn histogram_findings(
    layout: &Layout,
    cells: &[i128],
    buckets: usize,
    (what, unit, over): (&str, &str, &str),
) -> Vec<String> {
    let mut out = Vec::new();
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
    out
}

/// One event, sensitivity 1.
pub const EVENT: PrivacyUnit = PrivacyUnit {
    unit: "event",
    sensitivity: 1.0,
    cells: 1,
};

/// One attribute, sensitivity 1.
pub const ATTRIBUTE: PrivacyUnit = PrivacyUnit {
    unit: "attribute",
    sensitivity: 1.0,
    cells: 1,
};
