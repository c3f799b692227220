//! Indicator overlap (`crate::overlap`): of the indicators the institutions hold, how many are
//! held by exactly 1, 2, …, n of them (n the institutions the query is proposed to, at most
//! the last of [`OVERLAP_SETS`]). An institution's input is not a table of counts but its presence vector
//! over the bins of the layout's [`Bins`]; the cells are what the encrypted circuit releases
//! (`concord-query`): one histogram over all indicators ([`IndicatorOverlap`]), or one per
//! group of indicator types ([`IndicatorOverlapByType`], [`Bins::by_group`]). The catalogue's
//! layout is that of a community of up to 16 under [`OVERLAP_SET`]; a query's plan sizes it for
//! the institutions it is proposed to (its set by [`OVERLAP_SETS`], [`holders`]).

use super::{dimension, Cells, Definition, Profile, Tally};
use crate::catalogue::{PrivacyUnit, TemplateError, TemplateInfo, HELD_INDICATOR};
use crate::indicators::GROUPS;
use crate::layout::{Chart, Layout, Window};
use crate::misp::Event;
use crate::overlap::{estimated_distinct, merge_rate, Bins};

/// The parameter sets an overlap query runs under: the first whose circuit counts the
/// institutions it is proposed to ([`most_holders`]), none above 127.
pub const OVERLAP_SETS: super::SetLadder = &[OVERLAP_SET, "MUL-32768-T26"];

/// The most institutions the overlap circuit counts under `set`: the equality indicators of a
/// sum of `n` presence bits are of degree `n`, so `n` bounds the depth (`⌈log2 n⌉`) and the
/// noise. `MUL-16384-T26` counts up to 16 (78 bits of budget left at degree 16, `concord-bfv`
/// `params`); `MUL-32768-T26`, twice the ring and three more levels, up to 127 (depth 7; 70
/// bits left at degree 100, `concord-mhe` `tests/evaluation_keys.rs`). 0 for any other set.
pub fn most_holders(set: &str) -> usize {
    match set {
        OVERLAP_SET => 16,
        "MUL-32768-T26" => 127,
        _ => 0,
    }
}

/// The parameter set of the overlap templates in the catalogue (communities of up to 16):
/// products, and counts up to `t ≈ 2^26`.
pub const OVERLAP_SET: &str = "MUL-16384-T26";

/// Slots per ciphertext of [`OVERLAP_SET`].
const SLOTS: usize = 16384;

/// The labels `1..=n` of the dimension "institutions holding it": an overlap result has a
/// cell per `j` up to the institutions its query was proposed to (`concord-query` sizes it;
/// the catalogue shows the 16 of [`OVERLAP_SET`]).
pub fn holders(n: usize) -> crate::layout::Dimension {
    let labels: Vec<String> = (1..=n).map(|j| j.to_string()).collect();
    let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
    dimension(HOLDERS, &labels)
}

/// The name of the dimension [`holders`]: the last of both overlap templates.
pub const HOLDERS: &str = "institutions holding it";

/// What a DP overlap result hides: one indicator held by one institution. Adding or removing
/// it moves one bin's sum by one — the count of `j` down, that of `j ± 1` up, by one each.
const HOLDING: PrivacyUnit = PrivacyUnit {
    unit: HELD_INDICATOR,
    sensitivity: std::f64::consts::SQRT_2,
    cells: 2,
};

/// The findings of an overlap result: distinct indicators, exclusive ones, the estimated
/// merge rate of its bins.
fn overlap_findings(layout: &Layout, cells: &[i128]) -> Vec<String> {
    let Some(bins) = layout.overlap else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let per = layout
        .dimensions
        .last()
        .map_or(1, |holders| holders.labels.len().max(1));
    let histograms = cells.chunks(per);
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
            "{label}: {occupied} bins held — {:.1}% by one institution only, {shared} by two or more",
            100.0 * h[0].max(0) as f64 / occupied as f64
        );
        if let Some(d) = estimated_distinct(occupied as u64, bins.per_group as u64) {
            line.push_str(&format!(
                "; ≈ {d:.0} distinct indicators, {:.2}% expected merged",
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
            parameter_sets: OVERLAP_SETS,
            privacy_unit: Some(HOLDING),
            chart: Chart::Bars {
                dimension: 0,
                top: None,
            },
            counts: "indicators",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        super::table(vec![holders(most_holders(OVERLAP_SET))], 1)
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

/// How many indicators of each type group are held by exactly j institutions.
pub struct IndicatorOverlapByType;

/// Bins of `indicator-overlap-by-type`: one ciphertext, 16,384 bins, per group of [`GROUPS`].
pub const OVERLAP_BY_TYPE_BINS: Bins = Bins {
    per_group: SLOTS,
    by_group: true,
};

impl Definition for IndicatorOverlapByType {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "indicator-overlap-by-type",
                version: 1,
                question: "Per indicator type (domains, IPs, URLs, each hash, e-mail addresses), how many indicators are held by exactly 1, 2, … institutions: which kinds of indicator do institutions share, and which stay exclusive?",
                definition: "As indicator-overlap, with each group of indicator types (domain, ip, url, md5, sha1, sha256, sha512, imphash, authentihash, email) in its own 16,384 bins and its own histogram: cell (group, j) counts the bins of that group held by exactly j institutions. Fewer bins per group than indicator-overlap has in all: the result reports each group's expected merge rate, and a group of many thousand indicators is better counted by indicator-overlap.",
                fields: "event `date`, `Attribute[].type`, `Attribute[].value` and those of objects (hashed at parsing, never kept)",
            },
            parameter_sets: OVERLAP_SETS,
            privacy_unit: Some(HOLDING),
            chart: Chart::Heatmap {
                rows: 0,
                columns: 1,
                top_rows: None,
            },
            counts: "indicators",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        super::table(
            vec![
                dimension("indicator type", GROUPS),
                holders(most_holders(OVERLAP_SET)),
            ],
            1,
        )
    }
    fn bins(&self) -> Option<Bins> {
        Some(OVERLAP_BY_TYPE_BINS)
    }
    fn findings(&self, layout: &Layout, cells: &[i128]) -> Vec<String> {
        overlap_findings(layout, cells)
    }
    fn tally(&self, _tally: &mut Tally, _events: &[Event]) -> Result<(), TemplateError> {
        Err(TemplateError::NeedsBinningKey {
            template: "indicator-overlap-by-type",
        })
    }
}

/// How many distinct indicators of each type group the institutions hold, summed over them: an
/// additive table, and what sizes an overlap query's bins (`concord query submit --bins auto`):
/// the sum bounds the distinct indicators of the community from above (an indicator held by
/// several institutions is counted by each), so bins sized for it keep merges at most as
/// frequent as planned.
pub struct IndicatorsHeld;

/// Distinct indicators of one group one institution counts at most (larger counts are clipped).
pub const MAX_HELD: u64 = (1 << 26) - 1;

impl Definition for IndicatorsHeld {
    fn profile(&self) -> Profile {
        Profile {
            info: TemplateInfo {
                id: "indicators-held",
                version: 1,
                question: "How many distinct indicators of each type do the institutions hold: how large is the community's indicator pool, and how many bins does an overlap query need?",
                definition: "Each institution counts the distinct indicators (domain, IP, URL, hash, e-mail: the value normalised per MISP type, composites split; an indicator held twice counts once) of its events dated in the window, per group of indicator types; the counts are summed over the institutions. An indicator held by several institutions is counted by each, so the sum bounds the community's distinct indicators from above. `concord query submit --bins auto` sizes an overlap query's bins from it.",
                fields: "event `date`, `Attribute[].type`, `Attribute[].value` and those of objects (hashed at parsing, never kept)",
            },
            parameter_sets: super::LARGE_COUNTS,
            privacy_unit: Some(PrivacyUnit {
                unit: HELD_INDICATOR,
                sensitivity: 1.0,
                cells: 1,
            }),
            chart: Chart::Bars {
                dimension: 0,
                top: None,
            },
            counts: "indicators",
            needs_organisation: false,
        }
    }
    fn cells(&self, _window: &Window) -> Cells {
        super::table(vec![dimension("indicator type", GROUPS)], MAX_HELD)
    }
    fn findings(&self, _layout: &Layout, cells: &[i128]) -> Vec<String> {
        let total: i128 = cells.iter().map(|&c| c.max(0)).sum();
        vec![format!(
            "{total} indicators held in all (an indicator held by k institutions counted k times): at most {total} distinct"
        )]
    }
    fn tally(&self, tally: &mut Tally, events: &[Event]) -> Result<(), TemplateError> {
        tally.each_event(events, |_, _, _| {});
        let window = *tally.window;
        for indicator in crate::overlap::distinct_indicators(events, &window) {
            tally.add(&[indicator.group as usize], 1);
        }
        Ok(())
    }
}
