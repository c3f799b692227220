//! Charts of released results (`concord query result --plot out.png|out.svg`): the template's
//! natural chart (`concord-stats` [`Chart`]: lines for monthly series, bars for histograms,
//! a heatmap for cross-tables), titled with the template's question, with axis titles, the
//! unit counted and a caption that names the query, the institutions it aggregates (k), its
//! differential privacy (ε, δ) and the dimensions summed over or cut.
//!
//! What a reader needs to read it right: legends beside the plot, never over the data; TLP
//! levels in their own colours (FIRST TLP 2.0: red, amber, green, and clear drawn in black, as
//! its white text on black); a colour scale beside every heatmap; a band (lines) or whiskers
//! (bars) of ±2σ of the DP noise of what is drawn; and "no data in this window" said, not a
//! blank chart.
//!
//! Text is drawn with a font compiled into the binary (Hack, a monospaced face, from
//! `epaint_default_fonts`), so a plot needs no system fonts.

use concord_stats::{Chart, Layout};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 860;
const FONT: &str = "sans-serif";

/// What is plotted: the template's layout, chart and counted unit, the released cells, and
/// the caption's title and lines.
pub struct Figure<'a> {
    pub layout: &'a Layout,
    pub chart: Chart,
    pub counts: &'a str,
    pub cells: &'a [i128],
    /// The template's question.
    pub title: String,
    pub caption: Vec<String>,
    /// The standard deviation of the DP noise of one released cell; `None` without DP.
    pub noise_sd: Option<f64>,
}

/// Room on the right of a line chart for its legend, and of a heatmap for its colour scale.
const LEGEND_WIDTH: u32 = 290;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("{0}: a plot is written as .png or .svg")]
    Format(String),
    #[error("drawing the plot: {0}")]
    Draw(String),
}

fn draw_error(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // the bytes are a valid TrueType font compiled in: failing here is a build defect
        if plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            epaint_default_fonts::HACK_REGULAR,
        )
        .is_err()
        {
            panic!("the embedded font does not load");
        }
    });
}

/// Draws with `$draw(&root, args…)` into `$path`, as PNG or SVG by its extension.
macro_rules! render {
    ($path:expr, $draw:ident($($arg:expr),*)) => {{
        register_font();
        let path: &Path = $path;
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("png") => {
                let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
                $draw(&root, $($arg),*)?;
                root.present().map_err(draw_error)
            }
            Some("svg") => {
                let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
                $draw(&root, $($arg),*)?;
                root.present().map_err(draw_error)
            }
            _ => Err(PlotError::Format(path.display().to_string())),
        }
    }};
}

/// Draws `figure` into `path`, as PNG or SVG by its extension.
pub fn write(path: &Path, figure: &Figure) -> Result<(), PlotError> {
    render!(path, draw(figure))
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &Figure,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_error)?;
    let dims = &figure.layout.dimensions;
    // what is drawn: the dimensions shown, and a note on those summed over or cut
    let shown = match figure.chart {
        Chart::Lines { series } => vec![0, series],
        Chart::Bars { dimension, .. } => vec![dimension],
        Chart::Heatmap { rows, columns, .. } => vec![rows, columns],
    };
    let mut caption = figure.caption.clone();
    let summed: Vec<&str> = (0..dims.len())
        .filter(|d| !shown.contains(d))
        .map(|d| dims[d].name)
        .collect();
    if !summed.is_empty() {
        caption.push(format!("drawn summed over {}", summed.join(", ")));
    }
    let caption: Vec<String> = caption.iter().flat_map(|l| wrap(l, 126)).collect();
    let caption_height = 24 * caption.len() as u32 + 16;
    let (upper, lower) = root.split_vertically(HEIGHT - caption_height);
    let style = TextStyle::from((FONT, 17).into_font()).color(&BLACK);
    for (i, line) in caption.iter().enumerate() {
        lower
            .draw_text(line, &style, (24, 8 + 24 * i as i32))
            .map_err(draw_error)?;
    }
    let title = wrap(&figure.title, 84);
    let (heading, body) = upper.split_vertically(30 * title.len() as u32 + 20);
    let title_style = TextStyle::from((FONT, 24).into_font()).color(&BLACK);
    for (i, line) in title.iter().enumerate() {
        heading
            .draw_text(line, &title_style, (24, 14 + 30 * i as i32))
            .map_err(draw_error)?;
    }
    // the DP noise of one drawn value: a drawn value sums this many released cells
    let summed_cells = figure.layout.table_cells()
        / shown
            .iter()
            .map(|&d| dims[d].labels.len())
            .product::<usize>()
            .max(1);
    let noise = figure
        .noise_sd
        .map(|sd| 2.0 * sd * (summed_cells as f64).sqrt());
    let table = &figure.cells[..figure.layout.table_cells().min(figure.cells.len())];
    if noise.is_none() && table.iter().all(|&v| v == 0) {
        return nothing_to_draw(&body);
    }
    match figure.chart {
        Chart::Lines { series } => lines(&body, figure, series, noise),
        Chart::Bars { dimension, top } => {
            let values = figure.layout.marginal(figure.cells, &[dimension]);
            let mut bars: Vec<(String, i128)> =
                dims[dimension].labels.iter().cloned().zip(values).collect();
            if let Some(top) = top {
                bars.retain(|(_, v)| *v != 0);
                bars.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
                if bars.len() > top {
                    let total = bars.len();
                    bars.truncate(top);
                    note(&body, &format!("the {top} largest of {total}"))?;
                }
            }
            self::bars(&body, figure, dims[dimension].name, &bars, noise)
        }
        Chart::Heatmap {
            rows,
            columns,
            top_rows,
        } => {
            let values = figure.layout.marginal(figure.cells, &[rows, columns]);
            let width = dims[columns].labels.len();
            let mut grid: Vec<(String, Vec<i128>)> = dims[rows]
                .labels
                .iter()
                .cloned()
                .zip(values.chunks(width).map(<[i128]>::to_vec))
                .collect();
            if let Some(top) = top_rows {
                grid.retain(|(_, row)| row.iter().any(|&v| v != 0));
                grid.sort_by_key(|(_, row)| std::cmp::Reverse(row.iter().sum::<i128>()));
                if grid.len() > top {
                    let total = grid.len();
                    grid.truncate(top);
                    note(&body, &format!("the {top} largest rows of {total}"))?;
                }
            }
            heatmap(&body, figure, (rows, columns), &grid)
        }
    }
}

/// An empty result said in words where the chart would be.
fn nothing_to_draw<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
    let (w, h) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 30).into_font())
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Center, VPos::Center));
    area.draw_text(
        "no data in this window: every cell is 0",
        &style,
        (w as i32 / 2, h as i32 / 2),
    )
    .map_err(draw_error)
}

/// A short note in the top right corner of the chart's area (what was left out).
fn note<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, text: &str) -> Result<(), PlotError> {
    let (w, _) = area.dim_in_pixel();
    let style = TextStyle::from((FONT, 15).into_font())
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Right, VPos::Top));
    area.draw_text(text, &style, (w as i32 - 24, 0))
        .map_err(draw_error)
}

/// A series' colour: TLP levels in their FIRST TLP 2.0 colours (clear in black, as its white
/// text on black; amber+strict a darker amber; unknown grey), others from a palette.
fn series_color(dimension: &str, label: &str, index: usize) -> RGBAColor {
    let tlp = match (dimension, label) {
        ("tlp", "red") => Some(RGBColor(0xFF, 0x2B, 0x2B)),
        ("tlp", "amber") => Some(RGBColor(0xFF, 0xC0, 0x00)),
        ("tlp", "amber+strict") => Some(RGBColor(0xB3, 0x86, 0x00)),
        ("tlp", "green") => Some(RGBColor(0x33, 0xCC, 0x00)),
        ("tlp", "clear") => Some(RGBColor(0, 0, 0)),
        ("tlp", _) => Some(RGBColor(0x99, 0x99, 0x99)),
        _ => None,
    };
    tlp.map_or_else(|| Palette99::pick(index).to_rgba(), |c| c.to_rgba())
}

/// `n` categories, one segment each (a segmented `0..n` range would hold `n + 1`).
fn segments(
    n: usize,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize> {
    (0..n.max(1) - 1).into_segmented()
}

/// A line broken at spaces into lines of at most `columns` characters (the embedded
/// monospaced face: 126 at 17 px, 84 at 24 px across the figure's width).
fn wrap(line: &str, columns: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in line.split(' ') {
        let current = lines.last_mut().expect("one line at least");
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > columns {
            lines.push(format!("  {word}"));
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    lines
}

/// A tick of a count axis: whole numbers only (ticks between them stay unlabelled).
fn count_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

/// Value-axis range with a little headroom, including zero and any negative (noisy) value.
fn value_range(values: impl Iterator<Item = i128>) -> (f64, f64) {
    let (lo, hi) = values.fold((0i128, 1i128), |(lo, hi), v| (lo.min(v), hi.max(v)));
    (lo as f64 * 1.08, hi as f64 * 1.08)
}

fn lines<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    figure: &Figure,
    series: usize,
    noise: Option<f64>,
) -> Result<(), PlotError> {
    let dims = &figure.layout.dimensions;
    let months = &dims[0].labels;
    let labels = &dims[series].labels;
    let values = figure.layout.marginal(figure.cells, &[0, series]);
    let width = labels.len();
    let margin = noise.unwrap_or(0.0) as i128;
    let (lo, hi) = value_range(
        values
            .iter()
            .flat_map(|&v| [v - margin, v + margin])
            .chain([0]),
    );
    // the legend beside the plot, never over its lines
    let (plot, legend) = area.split_horizontally(area.dim_in_pixel().0 - LEGEND_WIDTH);
    let mut chart = ChartBuilder::on(&plot)
        .margin(18)
        .x_label_area_size(60)
        .y_label_area_size(90)
        .build_cartesian_2d(0..months.len().saturating_sub(1).max(1), lo..hi)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("month")
        .y_desc(figure.counts)
        .x_labels(months.len().min(12))
        .x_label_formatter(&|&i| months.get(i).cloned().unwrap_or_default())
        .y_label_formatter(&count_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_error)?;
    let mut entries = Vec::new();
    for (s, label) in labels.iter().enumerate() {
        let points: Vec<(usize, f64)> = (0..months.len())
            .map(|m| (m, values[m * width + s] as f64))
            .collect();
        if noise.is_none() && points.iter().all(|&(_, v)| v == 0.0) {
            continue; // an empty series only crowds the legend
        }
        let color = series_color(dims[series].name, label, s);
        if let Some(band) = noise {
            // ±2σ of the DP noise around the series
            let upper = points.iter().map(|&(m, v)| (m, v + band));
            let lower = points.iter().rev().map(|&(m, v)| (m, v - band));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    color.mix(0.15).filled(),
                )))
                .map_err(draw_error)?;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(3)))
            .map_err(draw_error)?;
        entries.push((label.clone(), color));
    }
    draw_legend(&legend, dims[series].name, &entries, noise.is_some())
}

/// The series' names and colours, in a column beside the plot (as many as fit, then how many
/// more there are).
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    entries: &[(String, RGBAColor)],
    band: bool,
) -> Result<(), PlotError> {
    let style = TextStyle::from((FONT, 15).into_font()).color(&BLACK);
    area.draw_text(name, &TextStyle::from((FONT, 17).into_font()), (8, 24))
        .map_err(draw_error)?;
    let (_, height) = area.dim_in_pixel();
    let fits = ((height as usize).saturating_sub(90) / 22).max(1);
    for (i, (label, color)) in entries.iter().take(fits).enumerate() {
        let y = 56 + 22 * i as i32;
        area.draw(&PathElement::new(
            vec![(8, y), (36, y)],
            color.stroke_width(3),
        ))
        .map_err(draw_error)?;
        area.draw_text(label, &style, (44, y - 8))
            .map_err(draw_error)?;
    }
    let mut y = 56 + 22 * entries.len().min(fits) as i32;
    if entries.len() > fits {
        area.draw_text(
            &format!("… and {} more", entries.len() - fits),
            &style,
            (8, y - 8),
        )
        .map_err(draw_error)?;
        y += 22;
    }
    if band {
        area.draw_text("shaded: ±2σ of the DP noise", &style, (8, y + 8))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// What a chart with one labelled category per row starts from: the margins,
/// and room on the left for the longest row label (up to `max_label_area` pixels).
fn category_chart<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    row_labels: impl Iterator<Item = &'b str>,
    max_label_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let longest = row_labels.map(|l| l.chars().count()).max().unwrap_or(4);
    let mut builder = ChartBuilder::on(area);
    builder
        .margin(18)
        .margin_right(44)
        .x_label_area_size(60)
        .y_label_area_size((longest as u32 * 8 + 20).min(max_label_area));
    builder
}

fn bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    figure: &Figure,
    name: &str,
    bars: &[(String, i128)],
    noise: Option<f64>,
) -> Result<(), PlotError> {
    let margin = noise.unwrap_or(0.0) as i128;
    let (lo, hi) = value_range(bars.iter().flat_map(|(_, v)| [v - margin, v + margin]));
    let mut chart = category_chart(area, bars.iter().map(|(l, _)| l.as_str()), 520)
        .build_cartesian_2d(lo..hi, segments(bars.len()))
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .x_desc(figure.counts)
        .y_desc(name)
        .y_labels(bars.len().max(1))
        .x_label_formatter(&count_label)
        .y_label_formatter(&|v| match v {
            // the first bar on top
            SegmentValue::CenterOf(i) if *i < bars.len() => bars[bars.len() - 1 - i].0.clone(),
            _ => String::new(),
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_error)?;
    let color = Palette99::pick(4).to_rgba();
    chart
        .draw_series(bars.iter().rev().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (*v as f64, SegmentValue::Exact(i + 1)),
                ],
                color.filled(),
            );
            bar.set_margin(3, 3, 0, 0);
            bar
        }))
        .map_err(draw_error)?;
    if let Some(band) = noise {
        // ±2σ of the DP noise: a whisker through each bar's end
        chart
            .draw_series(bars.iter().rev().enumerate().map(|(i, (_, v))| {
                let v = *v as f64;
                PathElement::new(
                    vec![
                        (v - band, SegmentValue::CenterOf(i)),
                        (v + band, SegmentValue::CenterOf(i)),
                    ],
                    BLACK.stroke_width(2),
                )
            }))
            .map_err(draw_error)?;
        note(area, "whiskers: ±2σ of the DP noise")?;
    }
    Ok(())
}

fn heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    figure: &Figure,
    (rows, columns): (usize, usize),
    grid: &[(String, Vec<i128>)],
) -> Result<(), PlotError> {
    let dims = &figure.layout.dimensions;
    let column_labels = &dims[columns].labels;
    let max = grid
        .iter()
        .flat_map(|(_, row)| row.iter())
        .map(|v| v.abs())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let (plot, scale) = area.split_horizontally(area.dim_in_pixel().0 - LEGEND_WIDTH / 2);
    colour_scale(&scale, max, figure.counts)?;
    let mut chart = category_chart(&plot, grid.iter().map(|(l, _)| l.as_str()), 420)
        .build_cartesian_2d(segments(column_labels.len()), segments(grid.len()))
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc(format!(
            "{} ({} per cell)",
            dims[columns].name, figure.counts
        ))
        .y_desc(dims[rows].name)
        .x_labels(column_labels.len())
        .y_labels(grid.len().max(1))
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => column_labels.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .y_label_formatter(&|v| match v {
            // the first row on top
            SegmentValue::CenterOf(i) if *i < grid.len() => grid[grid.len() - 1 - i].0.clone(),
            _ => String::new(),
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_error)?;
    let cells = grid
        .iter()
        .rev()
        .enumerate()
        .flat_map(|(r, (_, row))| row.iter().enumerate().map(move |(c, &v)| (r, c, v)));
    chart
        .draw_series(cells.clone().map(|(r, c, v)| {
            Rectangle::new(
                [
                    (SegmentValue::Exact(c), SegmentValue::Exact(r)),
                    (SegmentValue::Exact(c + 1), SegmentValue::Exact(r + 1)),
                ],
                shade(v.abs() as f64 / max).filled(),
            )
        }))
        .map_err(draw_error)?;
    // the values themselves, where the cells are large enough to hold them
    if grid.len() <= 30 && column_labels.len() <= 12 {
        chart
            .draw_series(cells.map(|(r, c, v)| {
                let t = (v.abs() as f64 / max).sqrt();
                let color: &'static RGBColor = if t > 0.6 { &WHITE } else { &BLACK };
                Text::new(
                    v.to_string(),
                    (SegmentValue::CenterOf(c), SegmentValue::CenterOf(r)),
                    TextStyle::from((FONT, 13).into_font())
                        .color(color)
                        .pos(Pos::new(HPos::Center, VPos::Center)),
                )
            }))
            .map_err(draw_error)?;
    }
    Ok(())
}

/// A heatmap cell's colour: white (0) to deep blue (the largest magnitude), by the square root
/// of its share of the largest, so small counts stay visible.
fn shade(share: f64) -> RGBColor {
    let t = share.clamp(0.0, 1.0).sqrt();
    let mix = |full: f64| (255.0 - t * (255.0 - full)) as u8;
    RGBColor(mix(30.0), mix(70.0), mix(160.0))
}

/// The heatmap's colour scale: a vertical bar from 0 (bottom) to the largest magnitude (top),
/// with ticks at 0, ¼, ½, ¾ and the largest, in the unit counted.
fn colour_scale<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    max: f64,
    counts: &str,
) -> Result<(), PlotError> {
    let (_, height) = area.dim_in_pixel();
    let (top, bottom) = (40i32, height as i32 - 80);
    let steps = 100;
    for i in 0..steps {
        let y0 = bottom - (bottom - top) * i / steps;
        let y1 = bottom - (bottom - top) * (i + 1) / steps;
        area.draw(&Rectangle::new(
            [(12, y1), (36, y0)],
            shade((i as f64 + 0.5) / steps as f64).filled(),
        ))
        .map_err(draw_error)?;
    }
    area.draw(&Rectangle::new([(12, top), (36, bottom)], BLACK))
        .map_err(draw_error)?;
    let style = TextStyle::from((FONT, 13).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for q in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let y = bottom - ((bottom - top) as f64 * q) as i32;
        area.draw_text(&format!("{:.0}", max * q), &style, (42, y))
            .map_err(draw_error)?;
    }
    area.draw_text(
        counts,
        &TextStyle::from((FONT, 13).into_font()),
        (8, bottom + 14),
    )
    .map_err(draw_error)
}

/// A model's ROC curve (`concord evaluate --roc out.png|out.svg`): true-positive rate against
/// false-positive rate, the diagonal of a model that ranks at random beside it, and a caption
/// (what was evaluated, the AUC).
pub fn roc(path: &Path, title: &str, curve: &[(f64, f64)], caption: &str) -> Result<(), PlotError> {
    render!(path, draw_roc(title, curve, caption))
}

fn draw_roc<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    curve: &[(f64, f64)],
    caption: &str,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_error)?;
    let (top, bottom) = root.split_vertically(HEIGHT - 50);
    let mut chart = ChartBuilder::on(&top)
        .caption(title, (FONT, 22))
        .margin(24)
        .x_label_area_size(60)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("false-positive rate")
        .y_desc("true-positive rate")
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 18))
        .draw()
        .map_err(draw_error)?;
    chart
        .draw_series(LineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            BLACK.mix(0.4).stroke_width(1),
        ))
        .map_err(draw_error)?;
    chart
        .draw_series(LineSeries::new(
            curve.iter().copied(),
            Palette99::pick(4).stroke_width(3),
        ))
        .map_err(draw_error)?;
    bottom
        .draw_text(caption, &TextStyle::from((FONT, 16).into_font()), (24, 12))
        .map_err(draw_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use concord_stats::{Template, Window, YearMonth};

    fn figure<'a>(
        layout: &'a Layout,
        template: Template,
        cells: &'a [i128],
        noise_sd: Option<f64>,
    ) -> Figure<'a> {
        Figure {
            layout,
            chart: template.chart(),
            counts: template.counts(),
            cells,
            title: template.info().question.into(),
            caption: vec!["a test".into()],
            noise_sd,
        }
    }

    fn pixels(path: &Path) -> Vec<[u8; 3]> {
        image::open(path)
            .unwrap()
            .to_rgb8()
            .pixels()
            .map(|p| p.0)
            .collect()
    }

    #[test]
    fn tlp_in_its_colours_a_noise_band_and_an_empty_window_said() {
        let dir = tempfile::tempdir().unwrap();
        let template = Template::EventsByMonthTlpDistribution;
        let window = Window::new(YearMonth::parse("2025-01").unwrap(), 12).unwrap();
        let layout = template.layout(&window);
        let n = layout.table_cells() + layout.summary.len();
        // red events only, 5 in every cell of TLP red
        let tlp = layout
            .dimensions
            .iter()
            .position(|d| d.name == "tlp")
            .unwrap();
        let red = layout.dimensions[tlp]
            .labels
            .iter()
            .position(|l| l == "red")
            .unwrap();
        let cells: Vec<i128> = (0..n)
            .map(|i| {
                let sizes: Vec<usize> = layout.dimensions.iter().map(|d| d.labels.len()).collect();
                let inner: usize = sizes[tlp + 1..].iter().product();
                i128::from(i < layout.table_cells() && (i / inner) % sizes[tlp] == red) * 5
            })
            .collect();
        let exact = dir.path().join("exact.png");
        write(&exact, &figure(&layout, template, &cells, None)).unwrap();
        let exact = pixels(&exact);
        // TLP:RED's own colour (#FF2B2B) draws the red series
        assert!(exact.contains(&[0xFF, 0x2B, 0x2B]));
        // with DP noise: a band of the series' colour, faint, around it
        let noisy = dir.path().join("noisy.png");
        write(&noisy, &figure(&layout, template, &cells, Some(2.0))).unwrap();
        let band = pixels(&noisy)
            .iter()
            .filter(|p| p[0] > 240 && (215..235).contains(&p[1]) && (215..235).contains(&p[2]))
            .count();
        assert!(band > 5_000, "{band} pixels of the band");
        // no events: said in words, no axes drawn
        let empty = dir.path().join("empty.png");
        write(&empty, &figure(&layout, template, &vec![0; n], None)).unwrap();
        // what is drawn in the chart's body (below the title, above the caption): the
        // sentence alone, no axes, no mesh
        let body = |image: &[[u8; 3]]| {
            image[120 * WIDTH as usize..680 * WIDTH as usize]
                .iter()
                .filter(|p| **p != [255, 255, 255])
                .count()
        };
        let (said, drawn) = (body(&pixels(&empty)), body(&exact));
        assert!(
            said > 1_000 && said < drawn / 10,
            "{said} pixels drawn, {drawn} in a chart"
        );
    }
}
