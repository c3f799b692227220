//! The cell layout of a template over a window (DESIGN.md §3): the months a query covers, the
//! dimensions of its cross-table (row-major, last dimension fastest) with the per-institution
//! bound of every cell, its *summary* cells, and how cells map to plaintext slots and back.
//!
//! Summary cells can exceed what one slot sums without wrapping, so they are *wide*: carried in
//! 16-bit limbs, one slot each ([`Layout::to_slots`]); every limb sums to at most
//! `institutions · (2^16 − 1)`, well inside the large-counter set's `t > 2^32`, and
//! [`Layout::from_slots`] recombines the limb sums exactly. [`Layout::index`] is the one place a
//! cell's coordinates become its position: templates count through it.

use crate::catalogue::TemplateError;
use crate::misp::Date;

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
    pub(crate) fn position(&self, date: &Date) -> Option<usize> {
        let offset = date.month_index() - self.first.index();
        (0..self.months as i64)
            .contains(&offset)
            .then_some(offset as usize)
    }

    /// One label per month, `YYYY-MM`.
    pub fn labels(&self) -> Vec<String> {
        (0..self.months as i64)
            .map(|i| self.first.plus(i).to_string())
            .collect()
    }
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
    /// For the overlap templates: an institution contributes a presence bit per bin of these
    /// bins, not the cells, and the cells are the histogram the circuit releases
    /// ([`crate::overlap`]).
    pub overlap: Option<crate::overlap::Bins>,
}

const LIMB_BITS: u32 = 16;

impl Layout {
    /// Cross-table cells: the product of the dimensions' sizes.
    pub fn table_cells(&self) -> usize {
        self.dimensions.iter().map(|d| d.labels.len()).product()
    }

    /// The position of the cross-table cell at `coordinates` (one per dimension, row-major,
    /// last fastest).
    ///
    /// # Panics
    /// If a coordinate is outside its dimension, or there is not one per dimension: a
    /// template bug, which must not land a count in another cell.
    pub fn index(&self, coordinates: &[usize]) -> usize {
        assert_eq!(
            coordinates.len(),
            self.dimensions.len(),
            "one coordinate per dimension"
        );
        self.dimensions
            .iter()
            .zip(coordinates)
            .fold(0, |at, (d, &c)| {
                assert!(c < d.labels.len(), "{} has no label {c}", d.name);
                at * d.labels.len() + c
            })
    }

    /// Logical cells: the cross-table, then the summary cells.
    pub fn cells(&self) -> usize {
        self.table_cells() + self.summary.len()
    }

    fn limbs(bound: u64) -> usize {
        (64 - bound.leading_zeros()).div_ceil(LIMB_BITS).max(1) as usize
    }

    /// What one institution contributes: a value per cell, or a presence bit per bin.
    pub fn inputs(&self) -> usize {
        self.overlap
            .map_or_else(|| self.cells(), |bins| bins.total())
    }

    /// Plaintext slots: one per cross-table cell, one per limb of each summary cell; one per
    /// bin of an overlap layout.
    pub fn slots(&self) -> usize {
        if let Some(bins) = self.overlap {
            return bins.total();
        }
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

    /// Logical cell values (within their bounds: [`crate::Template::compute`] clips) → slot
    /// values.
    ///
    /// # Panics
    /// If a value exceeds its cell's bound or the count of values is not [`Layout::cells`]: a
    /// caller bug, which must not become a silently truncated contribution.
    pub fn to_slots(&self, values: &[u64]) -> Vec<i64> {
        assert_eq!(values.len(), self.inputs(), "one value per cell (or bin)");
        if self.overlap.is_some() {
            assert!(values.iter().all(|&v| v <= 1), "presence bits are 0 or 1");
            return values.iter().map(|&v| v as i64).collect();
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_indexed_row_major_last_dimension_fastest() {
        let dimension = |name, n: usize| Dimension {
            name,
            labels: (0..n).map(|i| i.to_string()).collect(),
        };
        let layout = Layout {
            dimensions: vec![dimension("a", 2), dimension("b", 3), dimension("c", 4)],
            cell_bound: 1,
            summary: vec![],
            parameter_set: "ADD-8192",
            overlap: None,
        };
        let mut seen = vec![false; layout.table_cells()];
        for a in 0..2 {
            for b in 0..3 {
                for c in 0..4 {
                    let at = layout.index(&[a, b, c]);
                    assert_eq!(at, (a * 3 + b) * 4 + c);
                    seen[at] = true;
                    // the marginal over b reads the cell back where index put it
                    let mut cells = vec![0i128; layout.cells()];
                    cells[at] = 1;
                    assert_eq!(layout.marginal(&cells, &[1])[b], 1);
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
        assert!(std::panic::catch_unwind(|| layout.index(&[0, 3, 0])).is_err());
        assert!(std::panic::catch_unwind(|| layout.index(&[0, 0])).is_err());
    }
}
