//! Draws a [`Chart`] as an SVG string with plotters' SVG backend.
//!
//! Log axes are drawn by plotting `log10` of the values on a linear axis and labelling the
//! decades, so one code path serves all four axis combinations. Points a chart cannot show
//! (not finite, or not positive on a log axis) are skipped and counted in the caption; an empty
//! chart says "no data". Drawing never panics: an error from plotters becomes an SVG that says so.

use std::error::Error;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{Chart, ChartKind};

/// Default size of a chart, in SVG user units (pixels).
pub const SIZE: (u32, u32) = (720, 400);

/// Series colors, in order: thread, process, async and then the rest.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(230, 126, 34),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

const FONT: &str = "sans-serif";

/// The largest magnitude a chart shows; no lab figure comes near it.
const LARGEST: f64 = 1e100;

type DrawResult = Result<(), Box<dyn Error>>;

/// Draws `chart` at the default [`SIZE`].
pub fn render(chart: &Chart) -> String {
    render_sized(chart, SIZE)
}

/// Draws `chart` at `size` (width, height). Never fails: a drawing error yields an SVG that
/// shows the error instead of the chart.
pub fn render_sized(chart: &Chart, size: (u32, u32)) -> String {
    let mut out = String::new();
    let drawn = {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        draw(&root, chart).and_then(|()| Ok(root.present()?))
    };
    match drawn {
        Ok(()) => out,
        Err(e) => message_svg(size, &format!("chart could not be drawn: {e}")),
    }
}

/// An SVG with only a one-line message, for charts that could not be drawn.
fn message_svg(size: (u32, u32), message: &str) -> String {
    let mut out = String::new();
    let drawn: DrawResult = {
        let root = SVGBackend::with_string(&mut out, size).into_drawing_area();
        (|| {
            root.fill(&WHITE)?;
            root.draw(&Text::new(
                message.to_string(),
                (12, size.1 as i32 / 2),
                (FONT, 14).into_font().color(&BLACK),
            ))?;
            root.present()?;
            Ok(())
        })()
    };
    match drawn {
        Ok(()) => out,
        // Nothing sensible is left to draw with; an empty picture keeps the page valid.
        Err(_) => String::from("<svg width=\"1\" height=\"1\"></svg>"),
    }
}

fn draw(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart) -> DrawResult {
    root.fill(&WHITE)?;
    match chart.kind {
        ChartKind::Line => draw_line(root, chart),
        ChartKind::Bar => draw_bar(root, chart),
    }
}

/// One axis: whether it is logarithmic, and the mapping from data to plot coordinates.
#[derive(Clone, Copy)]
struct Axis {
    log: bool,
}

impl Axis {
    /// The plot coordinate of `v`, or `None` when the axis cannot show it.
    ///
    /// Values beyond ±[`LARGEST`] count as not finite: a range that wide overflows when padded.
    fn map(self, v: f64) -> Option<f64> {
        match (v.is_finite() && v.abs() <= LARGEST, self.log) {
            (false, _) => None,
            (true, true) if v <= 0.0 => None,
            (true, true) => Some(v.log10()),
            (true, false) => Some(v),
        }
    }

    /// A plot range covering `lo..hi` (plot coordinates): whole decades on a log axis; on a
    /// linear axis from zero (or below, for negative data) with 5 % headroom.
    fn range(self, lo: f64, hi: f64) -> Range<f64> {
        if self.log {
            let (a, b) = (lo.floor(), hi.ceil());
            if a == b { a - 1.0..b + 1.0 } else { a..b }
        } else {
            let (a, b) = (lo.min(0.0), hi.max(0.0));
            // A range too narrow for f64 to subdivide gets a unit of room on both sides.
            if b - a <= a.abs().max(b.abs()) * 1e-12 || b - a < 1e-200 {
                a - 1.0..b + 1.0
            } else {
                let pad = (b - a) * 0.05;
                (if a < 0.0 { a - pad } else { a })..b + pad
            }
        }
    }

    /// How many labels to ask for: one per decade on a log axis.
    fn labels(self, range: &Range<f64>) -> usize {
        if self.log {
            (range.end - range.start).round() as usize + 1
        } else {
            8
        }
    }

    /// Light grid lines between labels: none on a log axis, where evenly spaced lines between
    /// decades would read as wrong minor ticks.
    fn light_lines(self) -> usize {
        if self.log { 0 } else { 1 }
    }

    /// The label at plot coordinate `v`: decades only on a log axis.
    fn label(self, v: f64) -> String {
        if !self.log {
            compact(v)
        } else if (v - v.round()).abs() < 1e-6 {
            compact(10f64.powf(v.round()))
        } else {
            String::new()
        }
    }
}

/// A short axis number: 0.5, 12, 1.5k, 10M.
fn compact(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let mut s = format!("{scaled:.3}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".to_string();
    }
    format!("{s}{suffix}")
}

/// The chart's title, with a note when points had to be left out.
fn caption(chart: &Chart, skipped: usize) -> String {
    match skipped {
        0 => chart.title.clone(),
        1 => format!(
            "{} (1 point not shown: not positive on a log axis, or not finite)",
            chart.title
        ),
        n => format!(
            "{} ({n} points not shown: not positive on a log axis, or not finite)",
            chart.title
        ),
    }
}

fn no_data(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart, skipped: usize) -> DrawResult {
    let root = root.titled(&caption(chart, skipped), (FONT, 18))?;
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        "no data".to_string(),
        (w as i32 / 2 - 28, h as i32 / 2),
        (FONT, 16).into_font().color(&RGBColor(110, 119, 129)),
    ))?;
    Ok(())
}

/// A series' name and its points in plot coordinates.
type Plotted<'a> = (&'a str, Vec<(f64, f64)>);

/// The series with their points mapped to plot coordinates, and how many points were skipped.
fn mapped(chart: &Chart, x: Axis, y: Axis) -> (Vec<Plotted<'_>>, usize) {
    let mut skipped = 0;
    let series = chart
        .series
        .iter()
        .map(|s| {
            let points: Vec<(f64, f64)> = s
                .points
                .iter()
                .filter_map(|&(px, py)| {
                    let p = x.map(px).zip(y.map(py));
                    if p.is_none() {
                        skipped += 1;
                    }
                    p
                })
                .collect();
            (s.name.as_str(), points)
        })
        .collect();
    (series, skipped)
}

/// The smallest and largest of `values`, if there are any.
fn bounds(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

fn draw_line(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart) -> DrawResult {
    let (xa, ya) = (Axis { log: chart.x_log }, Axis { log: chart.y_log });
    let (series, skipped) = mapped(chart, xa, ya);
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let (Some((x0, x1)), Some((y0, y1))) = (bounds(all().map(|p| p.0)), bounds(all().map(|p| p.1)))
    else {
        return no_data(root, chart, skipped);
    };
    let (xr, yr) = (xa.range(x0, x1), ya.range(y0, y1));
    let (xn, yn) = (xa.labels(&xr), ya.labels(&yr));
    let mut ctx = ChartBuilder::on(root)
        .caption(caption(chart, skipped), (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(xr, yr)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_labels(xn)
        .y_labels(yn)
        .x_max_light_lines(xa.light_lines())
        .y_max_light_lines(ya.light_lines())
        .x_label_formatter(&|v| xa.label(*v))
        .y_label_formatter(&|v| ya.label(*v))
        .light_line_style(RGBColor(240, 242, 245))
        .bold_line_style(RGBColor(222, 226, 232))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    for (i, (name, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?
        .label(*name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
        ctx.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    if !series.is_empty() {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 205, 212))
            .label_font((FONT, 13))
            .draw()?;
    }
    Ok(())
}

fn draw_bar(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart) -> DrawResult {
    // Categories sit at x = 0, 1, 2...; the x of a point is its category index.
    let xa = Axis { log: false };
    let ya = Axis { log: chart.y_log };
    let (series, mut skipped) = mapped(chart, xa, ya);
    let highest_index = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, _)| x.round()))
        .fold(-1.0, f64::max);
    let count = chart
        .categories
        .len()
        .max((highest_index + 1.0).max(0.0) as usize);
    // Points whose x is not a category index have no bar to go in.
    let series: Vec<(&str, Vec<(usize, f64)>)> = series
        .into_iter()
        .map(|(name, points)| {
            let bars = points
                .into_iter()
                .filter_map(|(x, y)| {
                    let ok = x >= -0.5 && x.round() < count as f64;
                    if !ok {
                        skipped += 1;
                    }
                    ok.then_some((x.round() as usize, y))
                })
                .collect::<Vec<_>>();
            (name, bars)
        })
        .collect();
    let Some((y0, y1)) = bounds(series.iter().flat_map(|(_, b)| b.iter().map(|&(_, y)| y))) else {
        return no_data(root, chart, skipped);
    };
    let yr = ya.range(y0, y1);
    let base = if chart.y_log { yr.start } else { 0.0 };
    let yn = ya.labels(&yr);
    let categories = &chart.categories;
    let x_label = |v: &f64| {
        let i = v.round();
        if (v - i).abs() > 1e-6 || i < 0.0 {
            return String::new();
        }
        categories
            .get(i as usize)
            .cloned()
            .unwrap_or_else(|| compact(i))
    };
    let mut ctx = ChartBuilder::on(root)
        .caption(caption(chart, skipped), (FONT, 18))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5..count as f64 - 0.5, yr)?;
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .x_labels(count.max(1))
        .y_labels(yn)
        .y_max_light_lines(ya.light_lines())
        .x_label_formatter(&x_label)
        .y_label_formatter(&|v| ya.label(*v))
        .light_line_style(RGBColor(240, 242, 245))
        .bold_line_style(RGBColor(222, 226, 232))
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .draw()?;
    let group = 0.8;
    let width = group / series.len().max(1) as f64;
    for (s, (name, bars)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        ctx.draw_series(bars.iter().map(|&(i, y)| {
            let left = i as f64 - group / 2.0 + s as f64 * width;
            Rectangle::new(
                [(left + width * 0.06, base), (left + width * 0.94, y)],
                color.filled(),
            )
        }))?
        .label(*name)
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
        // The value above each bar, so that a bar too short to see still reads.
        let value_style = (FONT, 12)
            .into_font()
            .color(&RGBColor(60, 66, 76))
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        ctx.draw_series(bars.iter().map(|&(i, y)| {
            let center = i as f64 - group / 2.0 + (s as f64 + 0.5) * width;
            let shown = if chart.y_log { 10f64.powf(y) } else { y };
            Text::new(compact(shown), (center, y.max(base)), value_style.clone())
        }))?;
    }
    if series.len() > 1 {
        ctx.configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.9))
            .border_style(RGBColor(200, 205, 212))
            .label_font((FONT, 13))
            .draw()?;
    }
    Ok(())
}
