//! The comparison's numbers as text, scaled and rounded as the lab's tables print them.

use std::time::Duration;

use super::Timing;

/// Three significant digits, as the lab's tables print: `845`, `12.3`, `1.25`.
pub(super) fn significant(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A duration scaled for reading: `845 ns`, `12.3 µs`, `1.25 ms`, `2.50 s`.
pub(super) fn time(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns == 0.0 {
        return "0 ns".to_string();
    }
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    format!("{} {unit}", significant(v))
}

/// A difference of times with its sign: `+4.10 µs`, `−850 ns`, `+0 ns`.
pub(super) fn signed_time(secs: f64) -> String {
    let sign = if secs < 0.0 { "−" } else { "+" };
    format!("{sign}{}", time(Duration::from_secs_f64(secs.abs())))
}

/// A size scaled for reading: `512 B`, `12.0 KiB`, `1.10 MiB`.
pub(super) fn bytes(b: u64) -> String {
    let mut v = b as f64;
    let mut unit = 0;
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    while v >= 1024.0 && unit + 1 < units.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{b} B")
    } else {
        format!("{} {}", significant(v), units[unit])
    }
}

/// A rate in decimal multiples: `845`, `12.3 k`, `1.25 M`.
pub(super) fn rate(per_s: f64) -> String {
    if per_s >= 1e6 {
        format!("{} M", significant(per_s / 1e6))
    } else if per_s >= 1e3 {
        format!("{} k", significant(per_s / 1e3))
    } else {
        significant(per_s)
    }
}

/// A count grouped by thousands: `250,000`.
pub(super) fn grouped(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A percentage with its sign: `+3.4 %`, `−12 %`, `+0.4 %` (`n/a` if not a number: a
/// per-task time too short for the clock).
pub(super) fn signed_percent(p: f64) -> String {
    if !p.is_finite() {
        return "n/a".to_string();
    }
    let sign = if p < 0.0 { "−" } else { "+" };
    let a = p.abs();
    let digits = if a >= 10.0 {
        format!("{a:.0}")
    } else {
        format!("{a:.1}")
    };
    format!("{sign}{digits} %")
}

/// A timing's rounds, min–max.
pub(super) fn range(t: &Timing) -> String {
    format!("{}–{}", time(t.per_task_min), time(t.per_task_max))
}
