//! Draws a [`Chart`] as an SVG string with plotters' SVG backend.
//!
//! Log axes are drawn by plotting `log10` of the values on a linear axis and labelling the
//! ticks, so one code path serves all four axis combinations. Points a chart cannot show
//! (not finite, or not positive on a log axis) are skipped and counted in the caption; an empty
//! chart says "no data". Drawing never panics: an error from plotters becomes an SVG that says so.
//!
//! The layout keeps text apart: the caption wraps above the plot, the legend sits in a band of
//! its own below it (never on the data), bar charts are horizontal so that long category names
//! have room, and tick labels are spaced by their estimated width. An axis carries its unit as
//! data ([`AxisUnit`]), and its ticks are written in the most readable unit of that quantity
//! (`250 µs`, `4 KiB`, `120 MB/s`) under a label that names only what is measured.
//!
//! Every `<text>` carries a class naming its role (`caption`, `note`, `axis-label`, `tick-x`,
//! `tick-y`, `legend`, `value`, `message`), so tests and style sheets can tell them apart.
//! `tick-x` and `tick-y` are the ticks of the chart's x and y data, whichever way they are drawn.
//!
//! This file is long because it lays out both chart kinds (line and bar) by hand on top of
//! plotters: captions, legends, axes with unit-aware ticks, and value labels. The axis logic
//! (`Quantity`, `Axis`, `Ticked`) is its natural first split if it grows further.

use std::error::Error;
use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{Chart, ChartKind};
use crate::units::{AxisUnit, BYTE_LADDER, Ladder, RATE_LADDER, TIME_LADDER, significant};

/// Width of a chart, in SVG user units (pixels), and the height of a line chart.
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

const INK: RGBColor = RGBColor(29, 36, 48);
const MUTED: RGBColor = RGBColor(91, 101, 118);

/// The largest magnitude a chart shows; no lab figure comes near it.
const LARGEST: f64 = 1e100;

/// Text sizes, in pixels as the SVG states them.
const CAPTION_PX: f64 = 16.0;
const NOTE_PX: f64 = 12.0;
const TICK_PX: f64 = 12.0;
const DESC_PX: f64 = 13.0;
const LEGEND_PX: f64 = 12.0;
const VALUE_PX: f64 = 11.0;

/// Outer margin of the chart.
const MARGIN: i32 = 14;
/// Height of one legend row.
const LEGEND_ROW: i32 = 20;
/// Height of one bar of a horizontal bar chart, and the gap between categories.
const BAR: i32 = 14;
const BAR_GAP: i32 = 10;

type DrawResult = Result<(), Box<dyn Error>>;

/// Draws `chart` [`SIZE`] wide, as tall as its layout needs.
pub fn render(chart: &Chart) -> String {
    render_sized(chart, (SIZE.0, natural_height(chart, SIZE.0)))
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
        Ok(()) => with_classes(&out),
        Err(e) => message_svg(size, &format!("chart could not be drawn: {e}")),
    }
}

/// The height `chart` needs at `width`: the plot, plus the caption's and the legend's lines.
fn natural_height(chart: &Chart, width: u32) -> u32 {
    let w = f64::from(width);
    let caption = caption_lines(&chart.title, w).len() as i32 - 1;
    let legend = legend_rows(chart, w) as i32;
    let plot = match chart.kind {
        ChartKind::Line => SIZE.1 as i32 - 60,
        ChartKind::Bar => {
            let per_category = BAR * chart.series.len().max(1) as i32 + BAR_GAP;
            let categories = bar_count(chart).max(1) as i32;
            (per_category * categories).max(120) + 60
        }
    };
    // Caption, plot, the tick and axis-label band below it, the legend.
    let h = 40 + 22 * caption + plot + 24 + legend * LEGEND_ROW;
    h.clamp(160, 2400) as u32
}

/// A font whose family (`proctor-<role>`) names the role of the text; [`with_classes`] turns
/// it into a class.
/// `px` is the size the SVG states (plotters divides the given size by 1.24).
fn font(role: &'static str, px: f64) -> FontDesc<'static> {
    (role, px * 1.24).into_font()
}

const ROLE_PREFIX: &str = "proctor-";

/// Replaces every `font-family="proctor-<role>"` by `class="<role>" font-family="sans-serif"`.
fn with_classes(svg: &str) -> String {
    let marker = format!("font-family=\"{ROLE_PREFIX}");
    let mut out = String::with_capacity(svg.len() + svg.len() / 20);
    let mut rest = svg;
    while let Some(at) = rest.find(&marker) {
        out.push_str(&rest[..at]);
        let after = &rest[at + marker.len()..];
        let end = after.find('"').unwrap_or(after.len());
        out.push_str(&format!(
            "class=\"{}\" font-family=\"sans-serif\"",
            &after[..end]
        ));
        rest = after.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// The estimated width of `text` at `px`, a little wider than common sans-serif fonts draw it,
/// so that text laid out by it does not collide.
fn text_width(text: &str, px: f64) -> f64 {
    text.chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' | ' ' | '(' | ')' => 0.36,
            'm' | 'w' | 'M' | 'W' | '%' | '@' => 0.95,
            c if c.is_uppercase() => 0.74,
            _ => 0.62,
        })
        .sum::<f64>()
        * px
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
                font("proctor-message", 14.0).color(&BLACK),
            ))?;
            root.present()?;
            Ok(())
        })()
    };
    match drawn {
        Ok(()) => with_classes(&out),
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

/// What the numbers on an axis measure.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Quantity {
    /// A count or ratio: `12`, `1.5k`.
    Plain,
    /// Nanoseconds.
    Time,
    Bytes,
    /// Bytes per second, in decimal multiples (as the lab's tables state them).
    Rate,
}

impl Quantity {
    /// The unit names from the smallest up, and the step between them.
    fn units(self) -> Ladder {
        match self {
            Quantity::Plain => (&[""], 1.0),
            Quantity::Time => TIME_LADDER,
            Quantity::Bytes => BYTE_LADDER,
            Quantity::Rate => RATE_LADDER,
        }
    }

    /// `v` (in ns, bytes or bytes/s) in the largest unit that keeps the shown number at 1 or
    /// more, with `digits` formatting the number.
    fn text(self, v: f64, digits: fn(f64) -> String) -> String {
        if self == Quantity::Plain {
            return compact(v);
        }
        if v == 0.0 {
            return "0".to_string();
        }
        let (names, step) = self.units();
        let mut i = 0;
        let mut scaled = v;
        while i + 1 < names.len() && digits(scaled.abs()).parse::<f64>().unwrap_or(0.0) >= step {
            scaled /= step;
            i += 1;
        }
        format!("{} {}", digits(scaled), names[i])
    }
}

/// What an axis unit measures, and how many base units (ns, bytes, bytes/s) one of it is.
fn quantity_of(unit: AxisUnit) -> (Quantity, f64) {
    match unit {
        AxisUnit::Plain => (Quantity::Plain, 1.0),
        AxisUnit::Ns => (Quantity::Time, 1.0),
        AxisUnit::Us => (Quantity::Time, 1e3),
        AxisUnit::Ms => (Quantity::Time, 1e6),
        AxisUnit::Bytes => (Quantity::Bytes, 1.0),
        AxisUnit::Kib => (Quantity::Bytes, 1024.0),
        AxisUnit::Mib => (Quantity::Bytes, 1024.0 * 1024.0),
        AxisUnit::BytesPerSec => (Quantity::Rate, 1.0),
    }
}

/// One axis: whether it is logarithmic, what it measures, and the mapping from data to plot
/// coordinates (base units, `log10` of them on a log axis).
#[derive(Clone, Copy)]
struct Axis {
    log: bool,
    quantity: Quantity,
    /// Base units per data unit.
    scale: f64,
}

impl Axis {
    fn new(log: bool, unit: AxisUnit) -> Axis {
        let (quantity, scale) = quantity_of(unit);
        Axis {
            log,
            quantity,
            scale,
        }
    }

    /// The plot coordinate of `v`, or `None` when the axis cannot show it.
    ///
    /// Values beyond ±[`LARGEST`] count as not finite: a range that wide overflows when padded.
    fn map(self, v: f64) -> Option<f64> {
        let v = v * self.scale;
        match (v.is_finite() && v.abs() <= LARGEST, self.log) {
            (false, _) => None,
            (true, true) if v <= 0.0 => None,
            (true, true) => Some(v.log10()),
            (true, false) => Some(v),
        }
    }

    /// The value at plot coordinate `p`, in base units.
    fn value(self, p: f64) -> f64 {
        if self.log { 10f64.powf(p) } else { p }
    }

    /// A plot range covering `lo..hi` (plot coordinates): whole decades on a log axis (whole
    /// powers of two for bytes); on a linear axis from zero (or below, for negative data) with
    /// 5 % headroom.
    fn range(self, lo: f64, hi: f64) -> Range<f64> {
        if self.log {
            let unit = if self.quantity == Quantity::Bytes {
                2f64.log10()
            } else {
                1.0
            };
            let (a, b) = ((lo / unit).floor() * unit, (hi / unit).ceil() * unit);
            if a == b { a - unit..b + unit } else { a..b }
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

    /// Tick positions in `range` (plot coordinates), as many as fit `length` pixels when each
    /// label needs `room(label)` pixels along the axis.
    fn ticks(self, range: &Range<f64>, length: f64, room: impl Fn(&str) -> f64) -> Vec<f64> {
        let mut last = Vec::new();
        for density in (1..=12).rev() {
            let ticks = self.ticks_at(range, density);
            let needed: f64 = ticks.iter().map(|&t| room(&self.label(t)) + 10.0).sum();
            if ticks.len() >= 2 && needed <= length * 0.9 {
                return ticks;
            }
            if ticks.len() >= 2 {
                last = ticks;
            }
        }
        // Even two labels are too wide: keep the ends, which is the least that reads.
        last.first()
            .copied()
            .into_iter()
            .chain(last.last().copied())
            .collect()
    }

    /// About `density` ticks in `range`, at round values.
    fn ticks_at(self, range: &Range<f64>, density: usize) -> Vec<f64> {
        let (lo, hi) = (range.start.min(range.end), range.start.max(range.end));
        let eps = (hi - lo).abs() * 1e-9;
        let mut out = Vec::new();
        if self.log {
            // Multiples of a step of decades, or of powers of two for bytes.
            let unit = if self.quantity == Quantity::Bytes {
                2f64.log10()
            } else {
                1.0
            };
            let span = ((hi - lo) / unit).round().max(1.0);
            let step = [1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 50.0, 100.0]
                .into_iter()
                .find(|s| span / s <= density as f64)
                .unwrap_or(span);
            let mut k = (lo / unit / step).ceil() * step;
            while k * unit <= hi + eps && out.len() < 200 {
                out.push(k * unit);
                k += step;
            }
        } else {
            let raw = (hi - lo) / density as f64;
            if !(raw.is_finite() && raw > 0.0) {
                return vec![lo, hi];
            }
            // Bytes step in round multiples of the unit the largest value is shown in.
            let base = if self.quantity == Quantity::Bytes {
                let largest = lo.abs().max(hi.abs()).max(1.0);
                1024f64.powf(largest.log(1024.0).floor().max(0.0))
            } else {
                1.0
            };
            let mag = 10f64.powf((raw / base).log10().floor()) * base;
            let step = [1.0, 2.0, 2.5, 5.0, 10.0]
                .into_iter()
                .map(|m| m * mag)
                .find(|&s| s >= raw)
                .unwrap_or(10.0 * mag);
            let mut v = (lo / step).ceil() * step;
            while v <= hi + eps && out.len() < 200 {
                out.push(if v.abs() < eps { 0.0 } else { v });
                v += step;
            }
        }
        out
    }

    /// The tick label at plot coordinate `p`.
    fn label(self, p: f64) -> String {
        self.quantity.text(self.value(p), trimmed)
    }

    /// A value's label beside its bar: three significant digits.
    fn value_label(self, p: f64) -> String {
        self.quantity.text(self.value(p), significant)
    }
}

/// A linear axis in plot coordinates whose ticks are the ones given, not plotters' own.
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: Range<f64>, ticks: Vec<f64>) -> Ticked {
        Ticked {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    /// The ticks as bold lines; no light lines, which would read as unlabelled ticks.
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// Up to three decimals, without trailing zeros: 0.25, 12, 1.5.
fn trimmed(v: f64) -> String {
    let mut s = format!("{v:.3}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".to_string();
    }
    s
}

/// A short plain number: 0.5, 12, 1.5k, 10M.
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
    format!("{}{suffix}", trimmed(scaled))
}

/// The caption's lines: the title, wrapped at words to fit `width`.
fn caption_lines(title: &str, width: f64) -> Vec<String> {
    let room = width - 2.0 * f64::from(MARGIN);
    let mut lines: Vec<String> = Vec::new();
    for word in title.split_whitespace() {
        match lines.last_mut() {
            Some(line) if text_width(&format!("{line} {word}"), CAPTION_PX) <= room => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
}

/// The note under the caption when points had to be left out.
fn skipped_note(skipped: usize) -> Option<String> {
    match skipped {
        0 => None,
        1 => Some("1 point not shown: not positive on a log axis, or not finite".to_string()),
        n => Some(format!(
            "{n} points not shown: not positive on a log axis, or not finite"
        )),
    }
}

/// Draws the caption (and the note, if any) at the top of `root`; returns the height used.
fn draw_caption(
    root: &DrawingArea<SVGBackend, Shift>,
    chart: &Chart,
    skipped: usize,
) -> Result<i32, Box<dyn Error>> {
    let (w, _) = root.dim_in_pixel();
    let center = w as i32 / 2;
    let mut y = 10;
    let top = Pos::new(HPos::Center, VPos::Top);
    for line in caption_lines(&chart.title, f64::from(w)) {
        root.draw(&Text::new(
            line,
            (center, y),
            font("proctor-caption", CAPTION_PX).color(&INK).pos(top),
        ))?;
        y += 22;
    }
    if let Some(note) = skipped_note(skipped) {
        root.draw(&Text::new(
            note,
            (center, y),
            font("proctor-note", NOTE_PX).color(&MUTED).pos(top),
        ))?;
        y += 18;
    }
    Ok(y + 6)
}

/// Legend entries laid out in rows of at most `width`: each entry's row and x offset.
fn legend_layout<'a>(names: impl Iterator<Item = &'a str>, width: f64) -> Vec<(usize, f64)> {
    let room = width - 2.0 * f64::from(MARGIN);
    let (mut row, mut x) = (0, 0.0);
    names
        .map(|name| {
            let w = 24.0 + text_width(name, LEGEND_PX);
            if x > 0.0 && x + w > room {
                row += 1;
                x = 0.0;
            }
            let at = (row, x);
            x += w + 20.0;
            at
        })
        .collect()
}

/// How many legend rows `chart` needs at `width` (none for a single series).
fn legend_rows(chart: &Chart, width: f64) -> usize {
    if chart.series.len() < 2 {
        return 0;
    }
    legend_layout(chart.series.iter().map(|s| s.name.as_str()), width)
        .last()
        .map_or(0, |&(row, _)| row + 1)
}

/// Draws the legend in the band at the bottom of `root`: a line or a box in the series'
/// color, then its name. Returns the band's height.
fn draw_legend(
    root: &DrawingArea<SVGBackend, Shift>,
    chart: &Chart,
    line: bool,
) -> Result<i32, Box<dyn Error>> {
    let rows = legend_rows(chart, f64::from(root.dim_in_pixel().0)) as i32;
    if rows == 0 {
        return Ok(0);
    }
    let (_, h) = root.dim_in_pixel();
    let top = h as i32 - MARGIN / 2 - rows * LEGEND_ROW;
    let layout = legend_layout(
        chart.series.iter().map(|s| s.name.as_str()),
        f64::from(root.dim_in_pixel().0),
    );
    for (i, (s, (row, x))) in chart.series.iter().zip(layout).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let x = MARGIN + x.round() as i32;
        let y = top + row as i32 * LEGEND_ROW + LEGEND_ROW / 2;
        if line {
            root.draw(&PathElement::new(
                vec![(x, y), (x + 18, y)],
                color.stroke_width(2),
            ))?;
            root.draw(&Circle::new((x + 9, y), 3, color.filled()))?;
        } else {
            root.draw(&Rectangle::new(
                [(x + 2, y - 5), (x + 16, y + 5)],
                color.filled(),
            ))?;
        }
        root.draw(&Text::new(
            s.name.clone(),
            (x + 24, y),
            font("proctor-legend", LEGEND_PX)
                .color(&INK)
                .pos(Pos::new(HPos::Left, VPos::Center)),
        ))?;
    }
    Ok(rows * LEGEND_ROW + MARGIN / 2)
}

fn no_data(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart, skipped: usize) -> DrawResult {
    let top = draw_caption(root, chart, skipped)?;
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        "no data".to_string(),
        (w as i32 / 2, (h as i32 + top) / 2),
        font("proctor-message", 16.0)
            .color(&RGBColor(110, 119, 129))
            .pos(Pos::new(HPos::Center, VPos::Center)),
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

/// The area between the caption and the legend.
fn body<'b>(
    root: &DrawingArea<SVGBackend<'b>, Shift>,
    top: i32,
    legend: i32,
) -> DrawingArea<SVGBackend<'b>, Shift> {
    let (_, h) = root.dim_in_pixel();
    let bottom = (h as i32 - legend).max(top + 1);
    root.margin(top.max(0) as u32, (h as i32 - bottom) as u32, 0, 0)
}

fn draw_line(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart) -> DrawResult {
    let (xa, x_desc) = (Axis::new(chart.x_log, chart.x_unit), &chart.x_label);
    let (ya, y_desc) = (Axis::new(chart.y_log, chart.y_unit), &chart.y_label);
    let (series, skipped) = mapped(chart, xa, ya);
    let all = || series.iter().flat_map(|(_, p)| p.iter().copied());
    let (Some((x0, x1)), Some((y0, y1))) = (bounds(all().map(|p| p.0)), bounds(all().map(|p| p.1)))
    else {
        return no_data(root, chart, skipped);
    };
    let top = draw_caption(root, chart, skipped)?;
    let legend = draw_legend(root, chart, true)?;
    let area = body(root, top, legend);
    let (w, h) = area.dim_in_pixel();

    let (xr, yr) = (xa.range(x0, x1), ya.range(y0, y1));
    let x_area = 46;
    let plot_h = f64::from(h) - f64::from(x_area) - f64::from(MARGIN);
    let yt = ya.ticks(&yr, plot_h, |_| TICK_PX * 1.6);
    let y_area = y_label_area(&yt, ya);
    let plot_w = f64::from(w) - f64::from(y_area) - 2.0 * f64::from(MARGIN);
    let xt = xa.ticks(&xr, plot_w, |l| text_width(l, TICK_PX));

    let mut ctx = ChartBuilder::on(&area)
        .margin(MARGIN)
        .margin_top(6)
        .margin_right(end_room(&xt, xa))
        .x_label_area_size(x_area)
        .y_label_area_size(y_area)
        .build_cartesian_2d(Ticked::new(xr, xt), Ticked::new(yr, yt))?;
    ctx.configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(64)
        .y_labels(64)
        .x_label_formatter(&|v| xa.label(*v))
        .y_label_formatter(&|v| ya.label(*v))
        .bold_line_style(RGBColor(222, 226, 232))
        .x_label_style(font("proctor-tick-x", TICK_PX).color(&INK))
        .y_label_style(font("proctor-tick-y", TICK_PX).color(&INK))
        .axis_desc_style(font("proctor-axis-label", DESC_PX).color(&INK))
        .draw()?;
    for (i, (_, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        ctx.draw_series(LineSeries::new(
            points.iter().copied(),
            color.stroke_width(2),
        ))?;
        ctx.draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
    }
    Ok(())
}

/// Room right of the plot for half the last tick label, which is centered on the plot's edge.
fn end_room(ticks: &[f64], axis: Axis) -> i32 {
    let last = ticks
        .last()
        .map_or(0.0, |&t| text_width(&axis.label(t), TICK_PX));
    MARGIN.max((last / 2.0).ceil() as i32 + 4)
}

/// Room for the y axis: its widest tick label, the tick marks and the rotated axis label.
fn y_label_area(ticks: &[f64], axis: Axis) -> i32 {
    let widest = ticks
        .iter()
        .map(|&t| text_width(&axis.label(t), TICK_PX))
        .fold(0.0, f64::max);
    (widest + 36.0).ceil() as i32
}

/// The number of categories a bar chart has room for: the named ones, or more when points
/// sit at higher indices.
fn bar_count(chart: &Chart) -> usize {
    let highest_index = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|&(x, _)| x))
        .filter(|x| x.is_finite() && *x >= -0.5 && *x < 1e6)
        .map(f64::round)
        .fold(-1.0, f64::max);
    chart
        .categories
        .len()
        .max((highest_index + 1.0).max(0.0) as usize)
}

/// A horizontal bar chart: one row of bars per category, top to bottom in order, the values
/// along the bottom axis and written at the end of each bar.
fn draw_bar(root: &DrawingArea<SVGBackend, Shift>, chart: &Chart) -> DrawResult {
    let xa = Axis {
        log: false,
        quantity: Quantity::Plain,
        scale: 1.0,
    };
    let (va, v_desc) = (Axis::new(chart.y_log, chart.y_unit), &chart.y_label);
    let c_desc = &chart.x_label;
    let (series, mut skipped) = mapped(chart, xa, va);
    let count = bar_count(chart);
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
    let Some((v0, v1)) = bounds(series.iter().flat_map(|(_, b)| b.iter().map(|&(_, y)| y))) else {
        return no_data(root, chart, skipped);
    };
    let top = draw_caption(root, chart, skipped)?;
    let legend = if series.len() > 1 {
        draw_legend(root, chart, false)?
    } else {
        0
    };
    let area = body(root, top, legend);
    let (w, _) = area.dim_in_pixel();

    let vr = va.range(v0, v1);
    let base = if chart.y_log { vr.start } else { 0.0 };
    let categories = &chart.categories;
    let name = |i: usize| categories.get(i).cloned().unwrap_or_else(|| i.to_string());
    // The category names on the left get up to 40 % of the width; longer ones are shortened.
    let most = f64::from(w) * 0.4;
    let short = |i: usize| shortened(&name(i), most);
    let widest = (0..count)
        .map(|i| text_width(&short(i), TICK_PX))
        .fold(0.0, f64::max);
    let c_area = (widest + 34.0).ceil() as i32;
    let plot_w = f64::from(w) - f64::from(c_area) - 2.0 * f64::from(MARGIN);
    let vt = va.ticks(&vr, plot_w, |l| text_width(l, TICK_PX));
    // Category i is drawn at row count - 1 - i, so the first one is on top.
    let row = |i: usize| (count - 1 - i) as f64;
    let mut ctx = ChartBuilder::on(&area)
        .margin(MARGIN)
        .margin_top(6)
        .margin_right(end_room(&vt, va).max(MARGIN + 6))
        .x_label_area_size(46)
        .y_label_area_size(c_area)
        .build_cartesian_2d(
            Ticked::new(vr.clone(), vt),
            Ticked::new(-0.5..count as f64 - 0.5, (0..count).map(row).collect()),
        )?;
    let category_label = |v: &f64| {
        let r = v.round();
        if (v - r).abs() > 1e-6 || r < 0.0 || r >= count as f64 {
            return String::new();
        }
        short(count - 1 - r as usize)
    };
    ctx.configure_mesh()
        .disable_y_mesh()
        .x_desc(v_desc)
        .y_desc(c_desc)
        .x_labels(64)
        .y_labels(count.max(1))
        .x_label_formatter(&|v| va.label(*v))
        .y_label_formatter(&category_label)
        .bold_line_style(RGBColor(222, 226, 232))
        .x_label_style(font("proctor-tick-y", TICK_PX).color(&INK))
        .y_label_style(font("proctor-tick-x", TICK_PX).color(&INK))
        .axis_desc_style(font("proctor-axis-label", DESC_PX).color(&INK))
        .draw()?;
    let group = 0.8;
    let height = group / series.len().max(1) as f64;
    let (px_range, _) = ctx.plotting_area().get_pixel_range();
    for (s, (_, bars)) in series.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let band = |i: usize| row(i) + group / 2.0 - s as f64 * height;
        ctx.draw_series(bars.iter().map(|&(i, v)| {
            Rectangle::new(
                [
                    (base, band(i) - height * 0.08),
                    (v, band(i) - height * 0.92),
                ],
                color.filled(),
            )
        }))?;
        // The value at the end of each bar, so that a bar too short to see still reads:
        // after the bar when there is room, else inside its end in white.
        for &(i, v) in bars {
            let text = va.value_label(v);
            let (end, y) = ctx.backend_coord(&(v.max(base), band(i) - height / 2.0));
            let width = text_width(&text, VALUE_PX).ceil() as i32;
            let (x, anchor, ink) = if end + 5 + width <= px_range.end {
                (end + 5, HPos::Left, RGBColor(60, 66, 76))
            } else {
                (end - 5, HPos::Right, WHITE)
            };
            root.draw(&Text::new(
                text,
                (x, y),
                font("proctor-value", VALUE_PX)
                    .color(&ink)
                    .pos(Pos::new(anchor, VPos::Center)),
            ))?;
        }
    }
    Ok(())
}

/// `text` cut to fit `width` at the tick size, with an ellipsis when it was cut.
fn shortened(text: &str, width: f64) -> String {
    if text_width(text, TICK_PX) <= width {
        return text.to_string();
    }
    let mut out: String = text.to_string();
    while !out.is_empty() && text_width(&format!("{out}…"), TICK_PX) > width {
        out.pop();
    }
    format!("{out}…")
}
