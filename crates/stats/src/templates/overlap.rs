//! Indicator overlap (`crate::overlap`): of the indicators the institutions hold, how many are
//! held by exactly 1, 2, …, [`MAX_HOLDERS`] of them. An institution's input is not a table of
//! counts but its presence vector over the bins of the layout's [`Bins`]; the cells are what
//! the encrypted circuit releases (`concord-query`). The findings read per group too
//! ([`Bins::by_group`]), for the per-type template still to come (docs/overlap.md: its sealed
//! result, one key-switched ciphertext per count, exceeds a message at 16 institutions).

use super::{dimension, Cells, Definition, Profile, Tally};
use crate::catalogue::{TemplateError, TemplateInfo};
use crate::indicators::GROUPS;
use crate::layout::{Chart, Layout, Window};
use crate::misp::Event;
use crate::overlap::{estimated_distinct, merge_rate, Bins};

/// The most institutions an overlap query counts (its cells are `j = 1..=MAX_HOLDERS`; the
/// circuit's indicators are of degree `MAX_HOLDERS`).
pub const MAX_HOLDERS: usize = 16;

/// The parameter set of the overlap templates: products, and counts up to `t ≈ 2^26`.
pub const OVERLAP_SET: &str = "MUL-16384-T26";

/// Slots per ciphertext of [`OVERLAP_SET`].
const SLOTS: usize = 16384;

fn holders() -> crate::layout::Dimension {
    let labels: Vec<String> = (1..=MAX_HOLDERS).map(|j| j.to_string()).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    dimension("institutions holding it", &labels)
}

/// The findings of an overlap result: distinct indicators, exclusive ones, the estimated
/// merge rate of its bins.
fn overlap_findings(layout: &Layout, cells: &[i128]) -> Vec<String> {
    let Some(bins) = layout.overlap else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let histograms = cells.chunks(MAX_HOLDERS);
    let labels = if bins.by_group {
        GROUPS.to_vec()
    } else {
        vec!["all indicators"]
    };
    for (label, h) in labels.iter().zip(histograms) {
        let occupied: i128 = h.iter().map(|&c| c.max(0)).sum();
        if occupied == 0 {
            continue;
        }
        let shared: i128 = h[1..].iter().map(|&c| c.max(0)).sum();
        let mut line = format!(
            "{label}: {occupied} held (as bins), {:.1}% by one institution only, {shared} by two or more",
            100.0 * h[0].max(0) as f64 / occupied as f64
        );
        if let Some(d) = estimated_distinct(occupied as u64, bins.per_group as u64) {
            line.push_str(&format!(
                "; ≈ {d:.0} distinct indicators, of which {:.2}% expected to share a bin with another (merged)",
                100.0 * merge_rate(d, bins.per_group as u64)
            ));
        }
        out.push(line);
    }
    out
}

/// How many indicators are held by exactly j institutions, over all indicators.
pub struct IndicatorOverlap;

/// Bins of `indicator-overlap`: 8 ciphertexts, 131,072 bins.
pub const OVERLAP_BINS: Bins = Bins {
    per_group: 8 * SLOTS,
    by_group: false,
};

impl Definition for IndicatorOverlap {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "indicator-overlap",
                version: 1,
                question: "Of the indicators the institutions hold, how many are held by exactly 1, 2, … of them: which indicators are exclusive, and how much do feeds overlap?",
                definition: "Each distinct indicator (domain, IP, URL, hash, e-mail: the value normalised per MISP type, composites split) of the events dated in the window is hashed into one of 131,072 bins with a key the nodes agree on and the coordinator never learns; each institution sets one presence bit per bin. The bits are summed under encryption and only the histogram of the sums is released: cell j counts the bins held by exactly j institutions. Two indicators in one bin count once, as held by the union of their holders; the result reports the expected share of such merges.",
                fields: "event `date`, `Attribute[].type`, `Attribute[].value` and those of objects (hashed at parsing, never kept)",
            },
            parameter_set: OVERLAP_SET,
            privacy_unit: None,
            chart: Chart::Bars {
                dimension: 0,
                top: None,
            },
            counts: "indicators",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        super::table(vec![holders()], 1)
    }
    fn bins(&self) -> Option<Bins> {
        Some(OVERLAP_BINS)
    }
    fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        overlap_findings(layout, cells)
    }
    fn tally(&self, _tally: &mut Tally, _events: &[Event]) -> Result<(), TemplateError> {
        Err(TemplateError::NeedsBinningKey {
            template: "indicator-overlap",
        })
    }
}
