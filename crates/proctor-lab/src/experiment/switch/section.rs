//! The switch section, from the measured [`Data`]: the method, the one-sided baselines, every
//! ping-pong with its switch figures and table row, the ratios, the indirect-cost sweep, the
//! machine facts, the published figures and the chart.

use super::*;
use crate::report::Published;
use crate::units::{AxisUnit, format_value};

/// The section of a switch run: the timer, every round trip and its switch figures, the table,
/// the ratios and the chart, in the order the report shows them.
pub(super) fn section(plan: &Plan, d: &Data, cross_pairs: bool) -> Section {
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
    indirect_figures(&mut s, d);
    s.tables.push(indirect_table(d));
    s.charts.push(indirect_chart(d));
    indirect_note(&mut s, d);
    s.notes.push(d.facts.describe());
    published(&mut s, d);
    if !cross_pairs {
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
         (ru_nvcsw + ru_nivcsw). Placements come from the machine's topology: same CPU (both \
         pinned to cpu {cpu}: the switch, which the verdict reads), and every cross pair the \
         machine offers, labelled (SMT sibling, shared LLC, other LLC, other node; each side \
         pinned to its own CPU: wake-up latency, not a context switch). Indirect cost (Li, Ding \
         & Shen 2007), pipes, same CPU: between hand-offs each side reads and writes one byte \
         every S bytes (the stride) of a buffer of F bytes (the footprint), its own or one \
         MAP_SHARED buffer both touch; total per switch c2 = (RTT - the same touches and \
         syscalls in one thread) / 2, indirect = c2 - the direct cost c1 (the same-CPU pipe net \
         switch of the same partner kind), threads and processes alike, each point the median of {sweep_batches} batches of >= {sweep_ms} ms. Figure = median over {} batches of the \
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
        cpu = d.same_cpu.a,
        sweep_batches = d.sweep_plan.batches,
        sweep_ms = d.sweep_plan.min_batch.as_secs_f64() * 1e3,
    )
}

/// The one-sided baseline of `t`: the syscalls of a round trip, no switch.
fn one_sided_of(d: &Data, t: Handoff) -> Option<f64> {
    d.one_sided
        .iter()
        .find(|o| o.transport == t && o.work == Work::NONE)
        .map(|o| o.per_rtt.value())
}

/// The key fragment of a run's placement: `pinned` on one CPU (the keys the verdicts read),
/// the topology's word for a cross pair (`smt`, `shared_llc`, ...), `unpinned`.
fn place_key(r: &PingPong) -> &'static str {
    match r.pair {
        Some(p) if p.a == p.b => "pinned",
        Some(p) => p.placement.key(),
        None => "unpinned",
    }
}

/// The words of a run's placement: "same CPU (cpu 0)", "shared LLC (cpu 0 → cpu 1),
/// cross-CPU wake-up", "unpinned (the scheduler's choice)".
pub(super) fn place_words(r: &PingPong) -> String {
    match r.pair {
        Some(p) if p.a == p.b => p.describe(),
        Some(p) => format!("{}, cross-CPU wake-up", p.describe()),
        None => match &r.mixture {
            Some(m) => m.describe(|ns| format!("{} per round trip", format_value(ns, Unit::Ns))),
            None => r.placement.describe(),
        },
    }
}

/// The one-sided baselines: the syscalls of a round trip in one thread.
fn one_sided_figures(s: &mut Section, d: &Data) {
    for o in &d.one_sided {
        let key = format!("switch.{}.one_sided", o.transport.key());
        let label = format!(
            "{} syscalls of one round trip in one thread, no switch",
            o.transport.key()
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
    let base = format!(
        "switch.{}.{}.{}",
        r.transport.key(),
        r.partner.key(),
        place_key(r)
    );
    let place = place_words(r);
    let what = format!("{} {}", r.transport.key(), r.partner.plural());
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
        one_sided_of(d, r.transport).map(|os| (r.rtt.value() - os) / 2.0)
    } else {
        None
    };
    if let Some(net) = net.filter(|&n| n < 0.05 * r.rtt.value()) {
        s.notes.push(format!(
            "{what} on {place}: the net switch cost ({net:.0} ns) is under 5% of the round trip, \
             within noise: the one-sided baseline takes nearly the whole round trip"
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
    let half = r.rtt.scaled(0.5);
    let sum = r.rtt.summary();
    vec![
        r.transport.key().to_string(),
        r.partner.key().to_string(),
        place_words(r),
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

/// The one-sided baseline of a sweep run's work.
fn sweep_one_sided_of(d: &Data, w: Work) -> Option<f64> {
    d.sweep_one_sided
        .iter()
        .find(|o| o.work == w)
        .map(|o| o.per_rtt.value())
}

/// The total cost per switch of a sweep run, as Li, Ding & Shen's c2: (RTT − the same work in
/// one thread) / 2.
fn total_per_switch(d: &Data, r: &PingPong) -> Option<f64> {
    sweep_one_sided_of(d, r.work).map(|os| (r.rtt.value() - os) / 2.0)
}

/// The direct cost c1 of a switch between two `partner`s: the same-CPU pipe figure with the
/// syscall cost subtracted (`switch.pipe.<partner>.pinned.net`), no footprint.
fn direct_of(d: &Data, partner: Worker) -> Option<f64> {
    let r = d.ping_pong.iter().find(|r| {
        r.transport == Handoff::Pipe
            && r.partner == partner
            && matches!(r.placement, Placement::Pinned(_))
    })?;
    Some((r.rtt.value() - one_sided_of(d, Handoff::Pipe)?) / 2.0)
}

/// The indirect cost per switch of a sweep run: its total (c2) less the direct cost (c1) of
/// the same partner kind.
fn indirect_per_switch(d: &Data, r: &PingPong) -> Option<f64> {
    Some(total_per_switch(d, r)? - direct_of(d, r.partner)?)
}

/// The key fragment of a sweep point: `private.256kib.s64` (sharing, footprint, stride).
pub(super) fn work_key(w: Work) -> String {
    format!(
        "{}.{}kib.s{}",
        w.sharing.key(),
        w.footprint_bytes / KIB,
        w.stride_bytes
    )
}

/// The words of a sweep point: "256 KiB every 64 B, own buffers".
fn work_words(w: Work) -> String {
    format!(
        "{} KiB every {} B, {}",
        w.footprint_bytes / KIB,
        w.stride_bytes,
        w.sharing.words()
    )
}

/// The sweep's figures: the total and the indirect cost per switch at every point.
fn indirect_figures(s: &mut Section, d: &Data) {
    let place = d.same_cpu.describe();
    for r in &d.sweep {
        let (p, w) = (r.partner, r.work);
        if let Some(total) = total_per_switch(d, r) {
            s.figures.push(
                Figure::new(
                    &format!("switch.total.{}.{}", p.key(), work_key(w)),
                    &format!(
                        "{} switch, direct + indirect (pipe; the same syscalls and touches in one \
                         thread subtracted), {}",
                        p.key(),
                        work_words(w)
                    ),
                    total,
                    Unit::Ns,
                )
                .placed(&place),
            );
        }
        if let Some(indirect) = indirect_per_switch(d, r) {
            s.figures.push(
                Figure::new(
                    &format!("switch.indirect.{}.{}", p.key(), work_key(w)),
                    &format!(
                        "{} switch, indirect cost (total less the direct cost), {}",
                        p.key(),
                        work_words(w)
                    ),
                    indirect,
                    Unit::Ns,
                )
                .placed(&place),
            );
        }
    }
}

/// The sweep, one row per point and partner.
fn indirect_table(d: &Data) -> Table {
    let opt = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| micros(v, 2));
    let rows = d
        .sweep
        .iter()
        .map(|r| {
            let w = r.work;
            vec![
                r.partner.key().to_string(),
                w.sharing.words().to_string(),
                format!("{} KiB", w.footprint_bytes / KIB),
                format!("{} B", w.stride_bytes),
                micros(r.rtt.value(), 2),
                opt(sweep_one_sided_of(d, w)),
                opt(total_per_switch(d, r)),
                opt(direct_of(d, r.partner)),
                opt(indirect_per_switch(d, r)),
                format!("{:.2}", r.switches_per_rtt()),
            ]
        })
        .collect();
    Table {
        title: format!(
            "Indirect cost of a switch (Li, Ding & Shen 2007): pipes, {}",
            d.same_cpu.describe()
        ),
        columns: [
            "partner",
            "buffer",
            "footprint",
            "stride",
            "RTT",
            "same work, one thread",
            "total per switch (c2)",
            "direct (c1)",
            "indirect (c2 - c1)",
            "switches/RTT",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// The stride the chart and the summary note use: 64 B where swept, else the smallest above
/// it, else the largest.
fn chart_stride(d: &Data) -> usize {
    let mut strides: Vec<usize> = d.sweep.iter().map(|r| r.work.stride_bytes).collect();
    strides.sort_unstable();
    strides
        .iter()
        .copied()
        .find(|&s| s >= 64)
        .or(strides.last().copied())
        .unwrap_or(64)
}

/// The indirect cost against each side's footprint, per partner and sharing, at one stride.
fn indirect_chart(d: &Data) -> Chart {
    let stride = chart_stride(d);
    let mut series = Vec::new();
    for sharing in [Sharing::Private, Sharing::Shared] {
        for p in [Worker::Thread, Worker::Process] {
            // The direct cost is the indirect cost's zero, at no footprint.
            let points = std::iter::once((0.0, 0.0))
                .chain(
                    d.sweep
                        .iter()
                        .filter(|r| {
                            r.partner == p
                                && r.work.sharing == sharing
                                && r.work.stride_bytes == stride
                        })
                        .filter_map(|r| {
                            Some((
                                r.work.footprint_bytes as f64 / KIB as f64,
                                indirect_per_switch(d, r)?,
                            ))
                        }),
                )
                .collect();
            series.push(Series {
                name: format!("{}, {}", p.plural(), sharing.words()),
                points,
            });
        }
    }
    Chart {
        id: "indirect-switch-vs-footprint".into(),
        title: format!(
            "Indirect cost per switch against each side's footprint, stride {stride} B, same CPU"
        ),
        kind: ChartKind::Line,
        x_label: "footprint per side".into(),
        y_label: "extra time per switch".into(),
        x_unit: AxisUnit::Kib,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: false,
        categories: Vec::new(),
        series,
    }
}

/// One sentence on the largest footprint: threads against processes, own and shared buffers.
fn indirect_note(s: &mut Section, d: &Data) {
    let stride = chart_stride(d);
    let largest = d
        .sweep
        .iter()
        .map(|r| r.work.footprint_bytes)
        .max()
        .unwrap_or(0);
    if largest == 0 {
        return;
    }
    let at = |p: Worker, sharing: Sharing| {
        let w = Work {
            footprint_bytes: largest,
            stride_bytes: stride,
            sharing,
        };
        d.sweep
            .iter()
            .find(|r| r.partner == p && r.work == w)
            .and_then(|r| indirect_per_switch(d, r))
    };
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| micros(v, 2));
    let negative = d
        .sweep
        .iter()
        .filter(|r| indirect_per_switch(d, r).is_some_and(|v| v < 0.0))
        .count();
    if negative > 0 {
        s.notes.push(format!(
            "{negative} of {} sweep points came out negative (the ping-pong took less than the \
             same work in one thread plus the direct cost): there the run-to-run noise, e.g. \
             memory bandwidth taken by other load, is larger than the indirect cost, which is \
             not measurable here at that point",
            d.sweep.len()
        ));
    }
    s.notes.push(format!(
        "Indirect cost at {} KiB per side, every {stride} B: threads {} and processes {} with \
         their own buffers; {} and {} touching one shared buffer. A process switch can cost more \
         here only through the address space (TLB refills, other page-table entries for the same \
         pages); caches are refilled by threads and processes alike.",
        largest / KIB,
        show(at(Worker::Thread, Sharing::Private)),
        show(at(Worker::Process, Sharing::Private)),
        show(at(Worker::Thread, Sharing::Shared)),
        show(at(Worker::Process, Sharing::Shared)),
    ));
}

/// Published figures beside ours, where ours was measured: only numbers the source states.
fn published(s: &mut Section, d: &Data) {
    const LI: &str = "Li, Ding & Shen 2007, \"Quantifying the cost of context switch\", ExpCS '07";
    const LI_HW: &str = "Intel Xeon, 512 KB L2, 128 B lines, Linux 2.6.17 (Red Hat 9)";
    let direct = "switch.pipe.process.pinned.net";
    if s.figure(direct).is_some() {
        s.published.push(Published::new(
            direct,
            "direct cost per context switch (c1): two processes over a pipe, pipe overhead \
             subtracted",
            3_800.0,
            Unit::Ns,
            LI,
            LI_HW,
        ));
    }
    let thread = "switch.futex.thread.pinned";
    if s.figure(thread).is_some() {
        s.published.push(Published::new(
            thread,
            "switch between two threads handing off through a futex, both pinned to one core, \
             syscalls included: 1.2–1.5 µs (midpoint shown; 2.2 µs unpinned)",
            1_350.0,
            Unit::Ns,
            "Bendersky 2018, \"Measuring context switching and memory overheads for Linux \
             threads\"",
            "the author's x86-64 Linux desktop, 2018",
        ));
    }
    // Their total per switch (c2) "ranges from several microseconds to more than one thousand
    // microseconds" over array sizes (up to 2 MB) and strides: the upper end beside our largest
    // point, at its smallest stride.
    let largest = d
        .sweep
        .iter()
        .filter(|r| r.partner == Worker::Process && r.work.sharing == Sharing::Private)
        .max_by_key(|r| {
            (
                r.work.footprint_bytes,
                std::cmp::Reverse(r.work.stride_bytes),
            )
        });
    // Only beside a footprint as large as their largest arrays (2 MB): a smaller one measures
    // another point of their curve.
    if let Some(r) = largest.filter(|r| r.work.footprint_bytes >= 2 << 20) {
        let key = format!("switch.total.process.{}", work_key(r.work));
        // A total at or below zero is noise (see the notes), not a figure to set theirs beside.
        if s.figure(&key).is_some_and(|f| f.value > 0.0) {
            s.published.push(Published::new(
                &key,
                "total cost per switch (c2, direct + indirect) at their largest arrays: \"more \
                 than one thousand microseconds\" (a lower bound; at their smallest, several \
                 microseconds)",
                1_000_000.0,
                Unit::Ns,
                LI,
                LI_HW,
            ));
        }
    }
}
