//! Charts of released results (`concord query result --plot out.png|out.svg`): the template's
//! natural chart (`concord-stats` [`Chart`]: lines for monthly series, bars for histograms,
//! a heatmap for cross-tables), with axis titles, the unit counted and a caption that names
//! the query, the institutions it aggregates (k) and its differential privacy (ε, δ).
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
    pub title: String,
    pub caption: Vec<String>,
}

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

/// Draws `figure` into `path`, as PNG or SVG by its extension.
pub fn write(path: &Path, figure: &Figure) -> Result<(), PlotError> {
    register_font();
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => {
            let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, figure)?;
            root.present().map_err(draw_error)
        }
        Some("svg") => {
            let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
            draw(&root, figure)?;
            root.present().map_err(draw_error)
        }
        _ => Err(PlotError::Format(path.display().to_string())),
    }
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    figure: &Figure,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(draw_error)?;
    let caption: Vec<String> = figure.caption.iter().flat_map(|l| wrap(l)).collect();
    let caption_height = 24 * caption.len() as u32 + 16;
    let (upper, lower) = root.split_vertically(HEIGHT - caption_height);
    let style = TextStyle::from((FONT, 17).into_font()).color(&BLACK);
    for (i, line) in caption.iter().enumerate() {
        lower
            .draw_text(line, &style, (24, 8 + 24 * i as i32))
            .map_err(draw_error)?;
    }
    let dims = &figure.layout.dimensions;
    match figure.chart {
        Chart::Lines { series } => lines(&upper, figure, series),
        Chart::Bars { dimension, top } => {
            let values = figure.layout.marginal(figure.cells, &[dimension]);
            let mut bars: Vec<(String, i128)> =
                dims[dimension].labels.iter().cloned().zip(values).collect();
            if let Some(top) = top {
                bars.retain(|(_, v)| *v != 0);
                bars.sort_by_key(|(_, v)| std::cmp::Reverse(*v));
                bars.truncate(top);
            }
            self::bars(&upper, figure, dims[dimension].name, &bars)
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
                grid.truncate(top);
            }
            heatmap(&upper, figure, (rows, columns), &grid)
        }
    }
}

/// `n` categories, one segment each (a segmented `0..n` range would hold `n + 1`).
fn segments(
    n: usize,
) -> plotters::coord::ranged1d::SegmentedCoord<plotters::coord::types::RangedCoordusize> {
    (0..n.max(1) - 1).into_segmented()
}

/// A caption line broken at spaces into lines that fit the figure's width.
fn wrap(line: &str) -> Vec<String> {
    const COLUMNS: usize = 126; // the embedded monospaced face at 17 px, 1280 px wide
    let mut lines = vec![String::new()];
    for word in line.split(' ') {
        let current = lines.last_mut().expect("one line at least");
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > COLUMNS {
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
) -> Result<(), PlotError> {
    let dims = &figure.layout.dimensions;
    let months = &dims[0].labels;
    let labels = &dims[series].labels;
    let values = figure.layout.marginal(figure.cells, &[0, series]);
    let width = labels.len();
    let (lo, hi) = value_range(values.iter().copied());
    let mut chart = ChartBuilder::on(area)
        .caption(&figure.title, (FONT, 24))
        .margin(18)
        .margin_right(44)
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
    for (s, label) in labels.iter().enumerate() {
        let points: Vec<(usize, f64)> = (0..months.len())
            .map(|m| (m, values[m * width + s] as f64))
            .collect();
        if points.iter().all(|&(_, v)| v == 0.0) {
            continue; // an empty series only crowds the legend
        }
        let color = Palette99::pick(s).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_error)?
            .label(format!("{}: {label}", dims[series].name))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(draw_error)
}

/// What a chart with one labelled category per row starts from: the caption, the margins,
/// and room on the left for the longest row label (up to `max_label_area` pixels).
fn category_chart<'a, 'b, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    figure: &'b Figure,
    row_labels: impl Iterator<Item = &'b str>,
    max_label_area: u32,
) -> ChartBuilder<'a, 'b, DB> {
    let longest = row_labels.map(|l| l.chars().count()).max().unwrap_or(4);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(&figure.title, (FONT, 24))
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
) -> Result<(), PlotError> {
    let (lo, hi) = value_range(bars.iter().map(|(_, v)| *v));
    let mut chart = category_chart(area, figure, bars.iter().map(|(l, _)| l.as_str()), 520)
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
    let mut chart = category_chart(area, figure, grid.iter().map(|(l, _)| l.as_str()), 420)
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
            // white (0) to deep blue (the largest magnitude)
            let t = (v.abs() as f64 / max).sqrt();
            let shade = |full: f64| (255.0 - t * (255.0 - full)) as u8;
            Rectangle::new(
                [
                    (SegmentValue::Exact(c), SegmentValue::Exact(r)),
                    (SegmentValue::Exact(c + 1), SegmentValue::Exact(r + 1)),
                ],
                RGBColor(shade(30.0), shade(70.0), shade(160.0)).filled(),
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
