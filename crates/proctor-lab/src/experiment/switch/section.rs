//! The switch section, from the measured [`Data`]: the method, the one-sided baselines, every
//! ping-pong with its switch figures and table row, the ratios and the chart.

use super::*;
use crate::units::AxisUnit;

/// The section of a switch run: the timer, every round trip and its switch figures, the table,
/// the ratios and the chart, in the order the report shows them.
pub(super) fn section(plan: &Plan, d: &Data, ncpus: usize) -> Section {
    let mut s = Section::new("switch", "Context switching", &method(plan, d));
    s.figures.push(Figure::new(
        "switch.timer",
        "cost of one Instant::now()",
        d.timer_ns,
        Unit::Ns,
    ));
    one_sided_figures(&mut s, d);
    let mut rows = Vec::new();
    for r in &d.ping_pong {
        let net = ping_pong_figures(&mut s, d, r);
        rows.push(ping_pong_row(r, net));
    }
    rows.extend(d.one_sided.iter().map(one_sided_row));
    s.tables.push(round_trip_table(rows));
    process_over_thread(&mut s);
    s.charts.push(net_switch_chart(d));
    if ncpus < 2 {
        s.notes
            .push("only one CPU is allowed: no cross-CPU figures".into());
    }
    s.set_data(d);
    s
}

/// What the section measured and how, with the run's settings.
fn method(plan: &Plan, d: &Data) -> String {
    format!(
        "Two tasks ping-pong a token; the partner is a thread or a forked process, with identical \
         syscalls, shared page (MAP_SHARED anonymous), non-private futex ops and placement. futex: \
         store + FUTEX_WAKE, then FUTEX_WAIT while the word is unchanged; pipe: 4 bytes each way over \
         two pipes (as perf bench sched pipe). One op = one round trip (RTT) = 2 switches on one CPU \
         + 4 syscalls (pipe: 2 write, 2 read; futex: 2 wake, 2 wait). Per switch = RTT/2. Net = \
         (RTT - the same syscalls timed in one thread without blocking) / 2, labelled 'syscall cost \
         subtracted'. Switches per RTT are measured with getrusage(RUSAGE_THREAD) on both sides \
         (ru_nvcsw + ru_nivcsw). Same CPU: both pinned to one CPU; cross-CPU: each pinned to its own \
         CPU (wake-up latency, not a context switch). Each side writes one byte per 64-byte line of \
         its own buffer (the footprint) every round trip. Figure = median over {} batches of the \
         batch mean (batches >= {} ms after {} warm-up batches); spread = per-op (per round trip) \
         timestamps, in batches of their own (the figure's batches are timed whole, without the clock \
         read of ~{:.0} ns per op), when the timer costs < 5% of an op; \
         outliers by modified Z-score > 3.5, kept. When other load preempts the \
         measurement, the batch means absorb the preemption and the figure can sit above the \
         per-op p99. futex, same CPU, no footprint: the median of 3 independent rounds, each with \
         a fresh partner, with the rounds' run-to-run spread.",
        plan.batches,
        plan.min_batch.as_secs_f64() * 1e3,
        plan.warmup_batches,
        d.timer_ns,
    )
}

/// The one-sided baseline of `t` at footprint `fp`: the syscalls of a round trip, no switch.
fn one_sided_of(d: &Data, t: Handoff, fp: usize) -> Option<f64> {
    d.one_sided
        .iter()
        .find(|o| o.transport == t && o.footprint_bytes == fp)
        .map(|o| o.per_rtt.value())
}

/// The key suffix of a footprint: none for 0, `.fp_16kib` otherwise.
fn fp_suffix(fp: usize) -> String {
    if fp == 0 {
        String::new()
    } else {
        format!(".fp_{}kib", fp / KIB)
    }
}

/// The label suffix of a footprint: none for 0, `, 16 KiB footprint` otherwise.
fn fp_words(fp: usize) -> String {
    if fp == 0 {
        String::new()
    } else {
        format!(", {} KiB footprint", fp / KIB)
    }
}

/// The one-sided baselines: the syscalls of a round trip in one thread.
fn one_sided_figures(s: &mut Section, d: &Data) {
    for o in &d.one_sided {
        let key = format!(
            "switch.{}.one_sided{}",
            o.transport.key(),
            fp_suffix(o.footprint_bytes)
        );
        let label = format!(
            "{} syscalls of one round trip in one thread, no switch{}",
            o.transport.key(),
            fp_words(o.footprint_bytes)
        );
        s.figures.push(
            o.per_rtt
                .figure(&key, &label)
                .placed(&format!("cpu {}", o.cpu)),
        );
    }
}

/// The figures of one ping-pong: round trip, per switch, net of the syscalls where it ran on
/// one CPU, and the switches counted, with a note where they look wrong; returns the net cost.
fn ping_pong_figures(s: &mut Section, d: &Data, r: &PingPong) -> Option<f64> {
    let one_sided_of = |t: Handoff, fp: usize| one_sided_of(d, t, fp);
    let base = format!(
        "switch.{}.{}.{}{}",
        r.transport.key(),
        r.partner.key(),
        r.placement.key(),
        fp_suffix(r.footprint_bytes)
    );
    let place = r.placement.describe();
    let what = format!(
        "{} {}{}",
        r.transport.key(),
        r.partner.plural(),
        fp_words(r.footprint_bytes)
    );
    let same_cpu = matches!(r.placement, Placement::Pinned(_));
    let half = r.rtt.scaled(0.5);
    let halves: Vec<f64> = r.rtt_rounds.iter().map(|v| v / 2.0).collect();
    s.figures.push(
        r.rtt
            .figure(&format!("{base}.rtt"), &format!("round trip, {what}"))
            .with_rounds(&r.rtt_rounds)
            .placed(&place),
    );
    let one = match r.placement {
        Placement::Pinned(_) => "switch",
        Placement::CrossCpu(..) => "cross-CPU wake-up",
        Placement::Unpinned => "switch or wake-up, unpinned",
    };
    s.figures.push(
        half.figure(&base, &format!("{} {one} (RTT/2), {what}", r.partner.key()))
            .with_rounds(&halves)
            .placed(&place),
    );
    let net = if same_cpu {
        one_sided_of(r.transport, r.footprint_bytes).map(|os| (r.rtt.value() - os) / 2.0)
    } else {
        None
    };
    if let Some(net) = net.filter(|&n| n < 0.05 * r.rtt.value()) {
        s.notes.push(format!(
            "{what} on {place}: the net switch cost ({net:.0} ns) is under 5% of the round trip, \
             within noise: the one-sided baseline (which includes touching both footprints) \
             takes nearly the whole round trip"
        ));
    }
    if let Some(net) = net {
        s.figures.push(
            Figure::new(
                &format!("{base}.net"),
                &format!(
                    "{} switch, syscall cost subtracted, {what}",
                    r.partner.key()
                ),
                net,
                Unit::Ns,
            )
            .placed(&place),
        );
    }
    s.figures.push(
        Figure::new(
            &format!("{base}.switches_per_rtt"),
            &format!("measured context switches per round trip, {what}"),
            r.switches_per_rtt(),
            Unit::Count,
        )
        .placed(&place),
    );
    if same_cpu && (r.switches_per_rtt() / EXPECTED_SWITCHES - 1.0).abs() > SWITCH_TOLERANCE {
        s.notes.push(format!(
            "{what} on {place}: measured {:.2} switches per round trip, expected {EXPECTED_SWITCHES} \
             (other load preempting the pair adds involuntary switches)",
            r.switches_per_rtt()
        ));
    }
    net
}

/// The table row of one ping-pong.
fn ping_pong_row(r: &PingPong, net: Option<f64>) -> Vec<String> {
    let place = r.placement.describe();
    let half = r.rtt.scaled(0.5);
    let sum = r.rtt.summary();
    vec![
        r.transport.key().to_string(),
        r.partner.key().to_string(),
        place,
        format!("{} KiB", r.footprint_bytes / KIB),
        micros(r.rtt.value(), 2),
        micros(sum.p1, 2),
        micros(sum.p99, 2),
        micros(half.value(), 2),
        net.map_or_else(|| "-".to_string(), |v| micros(v, 2)),
        format!("{:.2}", r.switches_per_rtt()),
        format!("{}/{}", sum.outliers, sum.samples),
    ]
}

/// The table row of one one-sided baseline.
fn one_sided_row(o: &OneSided) -> Vec<String> {
    let sum = o.per_rtt.summary();
    vec![
        o.transport.key().to_string(),
        "one thread (syscalls only)".into(),
        format!("cpu {}", o.cpu),
        format!("{} KiB", o.footprint_bytes / KIB),
        micros(o.per_rtt.value(), 2),
        micros(sum.p1, 2),
        micros(sum.p99, 2),
        "-".into(),
        "-".into(),
        "0".into(),
        format!("{}/{}", sum.outliers, sum.samples),
    ]
}

/// Every round trip, ping-pongs first.
fn round_trip_table(rows: Vec<Vec<String>>) -> Table {
    Table {
        title: "Ping-pong round trips (one op = one round trip)".into(),
        columns: [
            "transport",
            "partner",
            "placement",
            "footprint",
            "RTT median",
            "RTT p1",
            "RTT p99",
            "per switch (RTT/2)",
            "net per switch (syscall cost subtracted)",
            "switches/RTT (measured)",
            "outliers",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// Process over thread, per transport, same CPU, no footprint.
fn process_over_thread(s: &mut Section) {
    for t in [Handoff::Pipe, Handoff::Futex] {
        let key = |p: &str| format!("switch.{}.{p}.pinned", t.key());
        if let (Some(p), Some(th)) = (s.figure(&key("process")), s.figure(&key("thread"))) {
            let ratio = p.value / th.value;
            s.figures.push(Figure::new(
                &format!("switch.{}.process_over_thread", t.key()),
                &format!("process switch / thread switch ({}, same CPU)", t.key()),
                ratio,
                Unit::Ratio,
            ));
        }
    }
}

/// The net switch cost against the footprint, per transport and partner, same CPU.
fn net_switch_chart(d: &Data) -> Chart {
    let one_sided_of = |t: Handoff, fp: usize| one_sided_of(d, t, fp);
    let mut series = Vec::new();
    for t in [Handoff::Pipe, Handoff::Futex] {
        for p in [Worker::Thread, Worker::Process] {
            let points = d
                .ping_pong
                .iter()
                .filter(|r| {
                    r.transport == t
                        && r.partner == p
                        && matches!(r.placement, Placement::Pinned(_))
                })
                .filter_map(|r| {
                    let os = one_sided_of(t, r.footprint_bytes)?;
                    Some((
                        r.footprint_bytes as f64 / KIB as f64,
                        (r.rtt.value() - os) / 2.0,
                    ))
                })
                .collect();
            series.push(Series {
                name: format!("{} {}", t.key(), p.plural()),
                points,
            });
        }
    }
    Chart {
        id: "net-switch-vs-footprint".into(),
        title: "Net switch cost (syscall cost subtracted) against each side's footprint, same CPU"
            .into(),
        kind: ChartKind::Line,
        x_label: "footprint per side".into(),
        y_label: "time per switch".into(),
        x_unit: AxisUnit::Kib,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: false,
        categories: Vec::new(),
        series,
    }
}
