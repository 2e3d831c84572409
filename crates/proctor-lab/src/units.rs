//! Units and the formatting of numbers: the one place where a measured value becomes text.
//!
//! Experiments (writing their tables and notes), the verdicts (writing evidence) and the
//! renderers (writing figures) all format through here, so a figure reads the same wherever it
//! appears. This module is a leaf: it imports nothing from the lab, and anything in the lab may
//! import from it.

use serde::{Deserialize, Serialize};

/// A unit for a figure. Renderers scale times and sizes for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Nanoseconds.
    Ns,
    /// Bytes.
    Bytes,
    /// Bytes per second.
    BytesPerSec,
    /// Operations (messages, tasks, increments) per second.
    PerSec,
    /// A plain count (tasks survived, lost updates).
    Count,
    /// A dimensionless ratio (speed-up, efficiency).
    Ratio,
    /// A percentage (0 to 100).
    Percent,
}

/// The unit of the numbers on a chart axis: what they measure and how large one is. The SVG
/// renderer writes ticks in the most readable unit of the same quantity (`250 µs`, `4 KiB`),
/// so an axis label names only what is measured ("time per switch"), never the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AxisUnit {
    /// A count or a ratio: no unit.
    #[default]
    Plain,
    /// Nanoseconds.
    Ns,
    /// Microseconds.
    Us,
    /// Milliseconds.
    Ms,
    /// Bytes.
    Bytes,
    /// KiB (1 024 bytes).
    Kib,
    /// MiB (2^20 bytes).
    Mib,
    /// Bytes per second.
    BytesPerSec,
}

impl AxisUnit {
    /// True for [`AxisUnit::Plain`] (for serde's `skip_serializing_if`).
    pub fn is_plain(&self) -> bool {
        *self == AxisUnit::Plain
    }
}

/// A quantity's unit names from the smallest up, and the step from one to the next: what
/// [`format_value`] and the charts' ticks both scale through.
pub type Ladder = (&'static [&'static str], f64);

/// Times, from nanoseconds.
pub const TIME_LADDER: Ladder = (&["ns", "µs", "ms", "s"], 1000.0);
/// Sizes, from bytes, in binary multiples.
pub const BYTE_LADDER: Ladder = (&["B", "KiB", "MiB", "GiB", "TiB"], 1024.0);
/// Rates, from bytes per second, in decimal multiples (as the lab's tables state them).
pub const RATE_LADDER: Ladder = (&["B/s", "kB/s", "MB/s", "GB/s", "TB/s"], 1000.0);

/// Three significant digits, without a trailing exponent: 1.23, 12.3, 123, 1234.
pub fn significant(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".to_string()
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Scales `v` down by the ladder's step through its units until it is below the step.
fn scaled(v: f64, (units, step): Ladder) -> String {
    let mut v = v;
    let mut i = 0;
    while v.abs() >= step && i + 1 < units.len() {
        v /= step;
        i += 1;
    }
    format!("{} {}", significant(v), units[i])
}

/// Groups the digits of an integer count by thousands: `200,000`.
fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        out.insert(0, '-');
    }
    out
}

/// A value with its unit, scaled for reading: ns → µs → ms → s, B → KiB → MiB → GiB, and
/// rates in decimal multiples, B/s → kB/s → MB/s → GB/s, as the lab's tables and notes state
/// throughput (MB/s = 10^6 bytes per second).
pub fn format_value(v: f64, unit: Unit) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    match unit {
        Unit::Ns => {
            if v.abs() >= 1e9 {
                format!("{} s", significant(v / 1e9))
            } else {
                scaled(v, TIME_LADDER)
            }
        }
        Unit::Bytes => scaled(v, BYTE_LADDER),
        Unit::BytesPerSec => scaled(v, RATE_LADDER),
        Unit::PerSec => scaled(v, (&["/s", "k/s", "M/s", "G/s"], 1000.0)),
        Unit::Count if v.fract() == 0.0 => grouped(v),
        Unit::Count => significant(v),
        Unit::Ratio => format!("{}×", significant(v)),
        Unit::Percent => format!("{} %", significant(v)),
    }
}

/// A time in nanoseconds, always in microseconds with `decimals` places: `12.34 µs`.
///
/// For a table column whose cells should line up in one unit, where [`format_value`] would
/// switch units from row to row.
pub fn micros(ns: f64, decimals: usize) -> String {
    format!("{:.*} µs", decimals, ns / 1e3)
}

/// A time in nanoseconds, in microseconds with one decimal below a millisecond and in
/// milliseconds with two above: `850.0 µs`, `12.50 ms`.
pub fn micros_or_millis(ns: f64) -> String {
    if ns < 1e6 {
        micros(ns, 1)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// A size in bytes in the largest binary unit that divides it exactly: `64 B`, `4 KiB`,
/// `1 MiB` (message sizes, which are always such round numbers).
pub fn exact_size(bytes: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= KIB && bytes % KIB == 0 {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_scale_with_their_unit() {
        let cases = [
            (845.0, Unit::Ns, "845 ns"),
            (12_340.0, Unit::Ns, "12.3 µs"),
            (1_250_000.0, Unit::Ns, "1.25 ms"),
            (2.5e9, Unit::Ns, "2.50 s"),
            (512.0, Unit::Bytes, "512 B"),
            (12_288.0, Unit::Bytes, "12.0 KiB"),
            (1_153_433.0, Unit::Bytes, "1.10 MiB"),
            (2.9e9, Unit::BytesPerSec, "2.90 GB/s"),
            (512e6, Unit::BytesPerSec, "512 MB/s"),
            (200_000.0, Unit::Count, "200,000"),
            (7.0, Unit::Count, "7"),
            (1.96, Unit::Ratio, "1.96×"),
            (99.6, Unit::Percent, "99.6 %"),
            (f64::NAN, Unit::Ns, "n/a"),
        ];
        for (v, unit, want) in cases {
            assert_eq!(format_value(v, unit), want, "{v} {unit:?}");
        }
    }

    #[test]
    fn fixed_unit_times_and_exact_sizes() {
        assert_eq!(micros(12_345.0, 1), "12.3 µs");
        assert_eq!(micros(12_345.0, 2), "12.35 µs");
        assert_eq!(micros_or_millis(850_000.0), "850.0 µs");
        assert_eq!(micros_or_millis(12_500_000.0), "12.50 ms");
        assert_eq!(exact_size(64), "64 B");
        assert_eq!(exact_size(4096), "4 KiB");
        assert_eq!(exact_size(1 << 20), "1 MiB");
        assert_eq!(exact_size(1536), "1536 B");
    }
}
