//! The ipc section, from the measured runs: the method, each run's figures, the pools'
//! figures and table, the transports' table, the charts and the notes.

use super::*;
use crate::report::Published;
use crate::units::AxisUnit;

/// The section of an ipc run: every run's figures, the pool round trips, the tables, the
/// charts and the notes, in the order the report shows them.
pub(super) fn section(plan: &Plan, d: &Data) -> Section {
    let mut s = Section::new("ipc", "Communication (IPC)", &method(plan, d));
    s.figures.extend(handoff_section::figures(d));
    for r in &d.runs {
        // An unpinned round trip is a mixture of placements: its figure says which, in what
        // share, rather than pass for one measurement.
        let per = match r.mode {
            Pattern::Echo => "per round trip",
            Pattern::Sink => "per message",
        };
        let words = match &r.mixture {
            Some(m) => m.describe(|v| format!("{} {per}", micros(v, 2))),
            None => d.words(r.placement),
        };
        run_figures(&mut s, r, &words);
    }

    s.figures.extend(pool_figures(&s, d));
    if let Some(t) = handoff_section::table(&s, d) {
        s.tables.push(t);
    }
    s.tables.push(table(d));
    if !d.pool_runs.is_empty() {
        s.tables.push(pool_table(&s, d));
    }
    s.charts.extend(handoff_section::charts(d));
    s.charts.extend(charts(d));
    s.notes.extend(handoff_section::notes(&s, d));
    s.notes.extend(notes(&s, d));
    s.published.extend(published(d));
    s.set_data(d);
    s
}

/// goldsborough/ipc-bench's README table: 100-byte ping-pong between two processes, in
/// messages per second, read as round trips per second (one message forth and back), beside
/// our unpinned 64 B round trips (neither pins). Its shared-memory row busy-waits, unlike our
/// ring, so it is left out.
const IPC_BENCH: [(TransportKind, &str, f64); 4] = [
    (TransportKind::Pipe, "pipes", 162_441.0),
    (TransportKind::Unix, "domain sockets", 130_372.0),
    (TransportKind::Tcp, "TCP sockets", 70_221.0),
    (TransportKind::Mq, "message queues", 232_253.0),
];

/// The published round trips beside ours, for the transports measured.
fn published(d: &Data) -> Vec<Published> {
    if !d.sizes.contains(&HEADLINE_SIZE) {
        return Vec::new();
    }
    IPC_BENCH
        .iter()
        .filter(|(kind, ..)| d.transports.contains(kind))
        .map(|&(kind, name, per_sec)| {
            Published::new(
                &format!("ipc.rtt.{}.process.{HEADLINE_SIZE}", kind.name()),
                &format!(
                    "100 B ping-pong between two processes over {name}, unpinned: \
                     {per_sec:.0} msg/s, read as round trips (ours: 64 B, unpinned)"
                ),
                1e9 / per_sec,
                Unit::Ns,
                "ipc-bench README, table \"Spectrum\" (P. Goldsborough, A. van Renen; \
                 github.com/goldsborough/ipc-bench)",
                "Intel Core i5-4590S @ 3.00 GHz, Ubuntu 20.04.1",
            )
        })
        .collect()
}

/// What the section measured and how, with the run's settings.
fn method(plan: &Plan, d: &Data) -> String {
    let batches = match plan.fixed_ops {
        Some(n) => format!("{n} ops"),
        None => format!("calibrated to >= {} ms", plan.min_batch.as_secs_f64() * 1e3),
    };
    format!(
        "{}Round trip (one op, the control): main sends a message of the given size, the partner receives it into a \
         buffer sized beforehand and sends the same bytes back, main receives them: 2 messages, at \
         least 2 sends + 2 receives, and on one CPU 2 context switches. Throughput (one op): main \
         sends one message one way; the partner drains, and answers the last message of each batch \
         with a 1-byte acknowledgement, so a batch ends when every message was received. The partner \
         is a thread or a process forked after the pair was created; transport, buffers, sizes and \
         placement are identical. Placement: pinned = both sides on one CPU (context switches); \
         unpinned = the scheduler's choice; cross-CPU = main and partner pinned to the nearest pair \
         of two CPUs the topology offers (each figure names the pair and how its CPUs relate: \
         cross-CPU wake-up latency). Throughput runs at the same placements. shm waits by spinning while the peer \
         makes progress, up to {} ns without progress (only when the peer last ran on another \
         CPU), then sched_yield, then FUTEX_WAIT, and its \
         FUTEX_WAKE calls per message are counted; tcp has TCP_NODELAY and its connect/accept happen \
         before timing. Figure = median over {} batches of the batch mean ({batches}, after {} \
         warm-up batches; the quick profile shortens batches below 10 ms to fit its time budget); \
         spread = per-op (per round trip) timestamps, in batches of their own (the figure's batches \
         are timed whole), when the timer costs < 5% of an op, else over \
         batch means; outliers by modified Z-score > 3.5, kept. MB/s are 10^6 bytes per second. Unpinned round trips \
         are mixtures: each batch is tagged with the placement its two sides were seen on \
         (sched_getcpu before and after), and the figure's placement gives each placement's share \
         and median; no verdict reads them. Pool round trip (one op, measured with tcp): \
         pool.submit(add_one, n).join() on a fresh one-worker pool, a thread pool, a process pool \
         (worker forked by the fork server) or a remote pool (Pool::processes(1).remote(..) with \
         the command launcher: /bin/sh -c execs this binary as an agent on this host, which forks \
         the worker; the worker's connection is 127.0.0.1 TCP); pinned = this thread pinned before \
         the build (the pool's threads and a remote agent inherit it) and the worker process pinned \
         in init_worker, checked before timing; unpinned = the scheduler's choice; no cross-CPU \
         row (the pool cannot place its worker apart from its own threads).",
        handoff_section::method(d),
        d.shm_spin_ns,
        plan.batches,
        plan.warmup_batches,
    )
}

/// The figures of one run: a round trip (with the shm ring's wake-ups) or a one-way
/// throughput in bytes and messages per second.
fn run_figures(s: &mut Section, r: &Run, placed: &str) {
    let base = format!(
        "{}.{}.{}",
        r.transport.name(),
        r.partner.key(),
        r.size_bytes
    );
    let between = r.partner.plural();
    let size = exact_size(r.size_bytes);
    match r.mode {
        Pattern::Echo => {
            let key = format!("ipc.rtt.{base}{}", suffix(r.placement));
            let label = format!(
                "{} round trip of {size} between {between}",
                r.transport.name()
            );
            s.figures.push(
                r.measurement
                    .figure(&key, &label)
                    .with_rounds(&r.rounds_ns)
                    .placed(placed),
            );
            if r.transport == TransportKind::Shm {
                s.figures.push(
                    Figure::new(
                        &format!(
                            "ipc.futex_wakes_per_msg.shm.{}.{}{}",
                            r.partner.key(),
                            r.size_bytes,
                            suffix(r.placement)
                        ),
                        &format!(
                            "shm FUTEX_WAKE calls per message, {size} round trips between {between}"
                        ),
                        r.futex_wakes_per_msg(),
                        Unit::Count,
                    )
                    .placed(placed),
                );
            }
        }
        Pattern::Sink => {
            let t = r.throughput();
            s.figures.push(
                Figure::new(
                    &format!("ipc.throughput.{base}{}", suffix(r.placement)),
                    &format!(
                        "{} one-way throughput, {size} messages between {between}",
                        r.transport.name()
                    ),
                    t.median,
                    Unit::BytesPerSec,
                )
                .with_spread(t.spread())
                .placed(placed),
            );
            let m = r.messages_per_sec();
            s.figures.push(
                Figure::new(
                    &format!("ipc.msgs.{base}{}", suffix(r.placement)),
                    &format!(
                        "{} one-way messages per second, {size} messages between {between}",
                        r.transport.name()
                    ),
                    m.median,
                    Unit::PerSec,
                )
                .with_spread(m.spread())
                .placed(placed),
            );
        }
    }
}

/// The pool-round-trip figure key of `pool` at a placement suffix.
fn pool_key(pool: PoolKind, suffix: &str) -> String {
    format!("ipc.pool_rtt.{}{suffix}", pool.key())
}

/// The raw tcp round trip between processes the pool rows are read against: 64 B messages,
/// the size nearest a trivial task's frame among the defaults.
fn tcp_key(suffix: &str) -> String {
    format!("ipc.rtt.tcp.process.{HEADLINE_SIZE}{suffix}")
}

/// The pool round trips, and the remote worker's ratios over the others at each placement.
fn pool_figures(s: &Section, d: &Data) -> Vec<Figure> {
    let mut figures: Vec<Figure> = d
        .pool_runs
        .iter()
        .map(|r| {
            r.measurement
                .figure(
                    &pool_key(r.pool, suffix(r.placement)),
                    &format!(
                        "pool submit(trivial).join() round trip to a {}",
                        r.pool.label()
                    ),
                )
                .placed(&d.words(r.placement))
        })
        .collect();
    let value = |k: &str| {
        figures
            .iter()
            .chain(&s.figures)
            .find(|f| f.key == k)
            .map(|f| (f.value, f.placement.clone()))
    };
    let mut ratios = Vec::new();
    for suffix in ["", ".pinned"] {
        let Some((remote, placed)) = value(&pool_key(PoolKind::Remote, suffix)) else {
            continue;
        };
        for (name, label, other) in [
            (
                "remote_over_process",
                "remote worker / local process-pool worker, pool round trip",
                pool_key(PoolKind::Process, suffix),
            ),
            (
                "remote_over_thread",
                "remote worker / thread-pool worker, pool round trip",
                pool_key(PoolKind::Thread, suffix),
            ),
            (
                "remote_over_tcp",
                "remote worker's pool round trip / raw tcp 64 B round trip between processes",
                tcp_key(suffix),
            ),
        ] {
            if let Some((v, _)) = value(&other) {
                let f = Figure::new(
                    &format!("ipc.pool_rtt.{name}{suffix}"),
                    label,
                    remote / v,
                    Unit::Ratio,
                );
                ratios.push(match &placed {
                    Some(p) => f.placed(p),
                    None => f,
                });
            }
        }
    }
    figures.extend(ratios);
    figures
}

fn pool_table(s: &Section, d: &Data) -> Table {
    let value = |k: &str| s.figure(k).map(|f| f.value);
    let cell = |v: Option<f64>| v.map_or("-".to_string(), |v| micros(v, 2));
    let ratio =
        |suffix: &str, key: &str| match (value(&pool_key(PoolKind::Remote, suffix)), value(key)) {
            (Some(remote), Some(this)) => format!("{:.1}x", remote / this),
            _ => "-".to_string(),
        };
    let mut rows: Vec<Vec<String>> = PoolKind::ALL
        .iter()
        .filter(|&&k| d.pool_runs.iter().any(|r| r.pool == k))
        .map(|&k| {
            let p99 = d
                .pool_runs
                .iter()
                .find(|r| r.pool == k && r.placement == Placement::Unpinned)
                .map_or("-".to_string(), |r| micros(r.measurement.summary().p99, 2));
            vec![
                k.label().to_string(),
                cell(value(&pool_key(k, ".pinned"))),
                cell(value(&pool_key(k, ""))),
                p99,
                ratio(".pinned", &pool_key(k, ".pinned")),
                ratio("", &pool_key(k, "")),
            ]
        })
        .collect();
    if value(&tcp_key("")).is_some() || value(&tcp_key(".pinned")).is_some() {
        let p99 = find_run(
            d,
            TransportKind::Tcp,
            Worker::Process,
            HEADLINE_SIZE,
            Pattern::Echo,
            "unpinned",
        )
        .map_or("-".to_string(), |r| micros(r.measurement.summary().p99, 2));
        rows.push(vec![
            format!(
                "raw tcp round trip of {} between processes (no pool)",
                exact_size(HEADLINE_SIZE)
            ),
            cell(value(&tcp_key(".pinned"))),
            cell(value(&tcp_key(""))),
            p99,
            ratio(".pinned", &tcp_key(".pinned")),
            ratio("", &tcp_key("")),
        ]);
    }
    Table {
        title: "Task round trip through a one-worker pool: thread, local process, remote worker \
                over loopback TCP"
            .into(),
        columns: [
            "worker",
            "RTT pinned",
            "RTT unpinned",
            "p99 unpinned",
            "remote / this, pinned",
            "remote / this, unpinned",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

fn find_run<'a>(
    d: &'a Data,
    kind: TransportKind,
    partner: Worker,
    size: usize,
    mode: Pattern,
    placement: &str,
) -> Option<&'a Run> {
    d.runs.iter().find(|r| {
        r.transport == kind
            && r.partner == partner
            && r.size_bytes == size
            && r.mode == mode
            && r.placement.key() == placement
    })
}

fn table(d: &Data) -> Table {
    let mut rows = Vec::new();
    for &kind in &d.transports {
        for &partner in partners(kind) {
            for &size in &d.sizes {
                let rtt = |p: &str| {
                    find_run(d, kind, partner, size, Pattern::Echo, p)
                        .map_or("-".to_string(), |r| micros(r.measurement.value(), 2))
                };
                let unpinned = find_run(d, kind, partner, size, Pattern::Echo, "unpinned");
                let p99 =
                    unpinned.map_or("-".to_string(), |r| micros(r.measurement.summary().p99, 2));
                let mbs = |p: &str| {
                    find_run(d, kind, partner, size, Pattern::Sink, p)
                        .map_or("-".to_string(), |r| {
                            format!("{:.1}", r.throughput().median / 1e6)
                        })
                };
                let msgs = find_run(d, kind, partner, size, Pattern::Sink, "unpinned")
                    .map_or("-".to_string(), |r| {
                        format!("{:.0}", r.messages_per_sec().median)
                    });
                let wakes = if kind == TransportKind::Shm {
                    unpinned.map_or("-".to_string(), |r| {
                        format!("{:.3}", r.futex_wakes_per_msg())
                    })
                } else {
                    "-".to_string()
                };
                rows.push(vec![
                    kind.name().to_string(),
                    partner.plural().to_string(),
                    exact_size(size),
                    rtt("pinned"),
                    rtt("unpinned"),
                    p99,
                    rtt("cross_cpu"),
                    mbs("pinned"),
                    mbs("unpinned"),
                    mbs("cross_cpu"),
                    msgs,
                    wakes,
                ]);
            }
        }
    }
    Table {
        title: "Round trip (median) and one-way throughput per transport".into(),
        columns: [
            "transport",
            "between",
            "size",
            "RTT pinned",
            "RTT unpinned",
            "p99 unpinned",
            "RTT cross-CPU",
            "MB/s pinned",
            "MB/s unpinned",
            "MB/s cross-CPU",
            "msgs/s unpinned",
            "FUTEX_WAKE/msg (unpinned)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

fn charts(d: &Data) -> Vec<Chart> {
    let line = |id: &str, title: &str, y: (&str, AxisUnit), series: Vec<Series>| Chart {
        id: id.into(),
        title: title.into(),
        kind: ChartKind::Line,
        x_label: "message size".into(),
        y_label: y.0.into(),
        x_unit: AxisUnit::Bytes,
        y_unit: y.1,
        x_log: true,
        y_log: true,
        categories: Vec::new(),
        series,
    };
    let rtt_series = |placement: &str| -> Vec<Series> {
        d.transports
            .iter()
            .filter(|k| k.supports_processes())
            .map(|&k| Series {
                name: k.name().to_string(),
                points: d
                    .sizes
                    .iter()
                    .filter_map(|&size| {
                        let r = find_run(d, k, Worker::Process, size, Pattern::Echo, placement)?;
                        Some((size as f64, r.measurement.value()))
                    })
                    .collect(),
            })
            .collect()
    };
    let throughput_series = |placement: &str| -> Vec<Series> {
        d.transports
            .iter()
            .map(|&k| {
                let partner = if k.supports_processes() {
                    Worker::Process
                } else {
                    Worker::Thread
                };
                Series {
                    name: format!("{} ({})", k.name(), partner.plural()),
                    points: d
                        .sizes
                        .iter()
                        .filter_map(|&size| {
                            let r = find_run(d, k, partner, size, Pattern::Sink, placement)?;
                            Some((size as f64, r.throughput().median))
                        })
                        .collect(),
                }
            })
            .collect()
    };
    let mut charts = vec![
        line(
            "rtt-process-unpinned",
            "Round trip between processes by message size (unpinned)",
            ("time per round trip", AxisUnit::Ns),
            rtt_series("unpinned"),
        ),
        line(
            "rtt-process-pinned",
            "Round trip between processes by message size (both on one CPU)",
            ("time per round trip", AxisUnit::Ns),
            rtt_series("pinned"),
        ),
        line(
            "throughput",
            "One-way throughput by message size (unpinned)",
            ("throughput", AxisUnit::BytesPerSec),
            throughput_series("unpinned"),
        ),
    ];
    if d.runs
        .iter()
        .any(|r| matches!(r.placement, Placement::CrossCpu(..)))
    {
        charts.push(line(
            "throughput-cross-cpu",
            "One-way throughput by message size (each side on its own CPU)",
            ("throughput", AxisUnit::BytesPerSec),
            throughput_series("cross_cpu"),
        ));
    }
    charts
}

fn notes(s: &Section, d: &Data) -> Vec<String> {
    let mut notes = Vec::new();
    if d.transports.contains(&TransportKind::Channel) {
        notes.push(
            "channel is an in-process crossbeam channel: it cannot cross a process boundary, so it \
             has thread figures only"
                .to_string(),
        );
    }
    if d.transports.contains(&TransportKind::Shm) {
        notes.push(format!(
            "shm wait strategy: spin-then-futex (spin while the peer makes progress, up to {} ns \
             without progress, only when the peer last ran on another CPU; then up to 4 \
             sched_yield calls, then FUTEX_WAIT); FUTEX_WAKE calls per \
             message are in the ipc.futex_wakes_per_msg.shm.* figures",
            d.shm_spin_ns
        ));
    }
    if d.transports.contains(&TransportKind::Tcp) {
        notes.push(
            "tcp: 127.0.0.1 with TCP_NODELAY; connect and accept happen when the pair is created, \
             so connect time is excluded"
                .to_string(),
        );
    }
    if d.transports.contains(&TransportKind::Mq) {
        notes.push(
            "mq: messages longer than the queue's msgsize_max travel as several queue messages"
                .to_string(),
        );
    }
    if d.runs
        .iter()
        .any(|r| matches!(r.placement, Placement::CrossCpu(..)))
    {
        notes.push(
            "unpinned round trips mix same-CPU and cross-CPU exchanges (the scheduler places and \
             moves both sides), so their per-op spread can be bimodal; the pinned and cross-CPU rows \
             separate the two cases"
                .to_string(),
        );
    }
    let value = |key: &str| s.figure(key).map(|f| f.value);
    notes.extend(d.pool_skipped.iter().cloned());
    for suffix in ["", ".pinned"] {
        let Some(remote) = value(&pool_key(PoolKind::Remote, suffix)) else {
            continue;
        };
        let mut text = format!(
            "pool round trip, {}: remote worker {}",
            placement_words(suffix),
            micros(remote, 2)
        );
        for (what, key) in [
            (
                "local process-pool worker",
                pool_key(PoolKind::Process, suffix),
            ),
            ("thread-pool worker", pool_key(PoolKind::Thread, suffix)),
            ("raw tcp 64 B between processes", tcp_key(suffix)),
        ] {
            if let Some(v) = value(&key) {
                text.push_str(&format!(
                    ", {what} {} (remote / it = {:.1}x)",
                    micros(v, 2),
                    remote / v
                ));
            }
        }
        notes.push(text);
    }
    if d.pool_runs.iter().any(|r| r.pool == PoolKind::Remote) {
        notes.push(
            "the remote worker runs on this host: its round trip has loopback TCP's kernel path \
             and the pool's framing, but no network; a real network adds its own round-trip time \
             to every task, which is not measured here"
                .to_string(),
        );
    }
    for &size in &d.sizes {
        for suffix in ["", ".pinned", ".cross_cpu"] {
            let (Some(pipe), Some(shm)) = (
                value(&format!("ipc.rtt.pipe.process.{size}{suffix}")),
                value(&format!("ipc.rtt.shm.process.{size}{suffix}")),
            ) else {
                continue;
            };
            if size == 64 {
                let placement = placement_words(suffix);
                notes.push(format!(
                    "{} round trip between processes, {placement}: shm {} vs pipe {} (pipe / shm = {:.1}x)",
                    exact_size(size),
                    micros(shm, 2),
                    micros(pipe, 2),
                    pipe / shm
                ));
            }
        }
        for suffix in ["", ".pinned", ".cross_cpu"] {
            if let (true, Some(pipe), Some(shm)) = (
                size == MIB,
                value(&format!("ipc.throughput.pipe.process.{size}{suffix}")),
                value(&format!("ipc.throughput.shm.process.{size}{suffix}")),
            ) {
                notes.push(format!(
                    "1 MiB one-way throughput between processes, {}: shm {:.0} MB/s vs pipe {:.0} MB/s (shm / pipe = {:.1}x)",
                    placement_words(suffix),
                    shm / 1e6,
                    pipe / 1e6,
                    shm / pipe
                ));
            }
        }
    }
    notes
}
