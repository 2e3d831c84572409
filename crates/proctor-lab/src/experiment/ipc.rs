//! `ipc`: round-trip latency and one-way throughput of every `ipc` transport,
//! between two threads and between two processes (LAB-METHODS rules 3, 4, 9, 10, 11 and 13).
//!
//! **Round trip** (one op): main sends a message of `size` bytes, the partner receives it
//! into a buffer sized beforehand and sends the same bytes back, main receives them. That is
//! two messages of `size` bytes, at least 2 sends + 2 receives, and on one CPU 2 context
//! switches, as `lat_pipe` / `lat_unix` / `lat_tcp` count it. Figures are per round trip.
//!
//! **Throughput** (one op): main sends one message of `size` bytes; the partner drains. Main
//! marks the last message of each batch and the partner answers it with a 1-byte
//! acknowledgement, so a batch ends when every message has been *received*, not just queued.
//!
//! **Worker**: a scoped thread or a child forked after the pair was created; nothing else
//! differs (rule 4): same transport, buffers, sizes, placement. The child of a possibly
//! multi-threaded process only uses the transport with pre-sized buffers (no allocation),
//! never unwinds and leaves with `_exit`, as the transports' own tests do.
//!
//! **Placement** (rule 3): every round trip is measured pinned (both sides on one CPU:
//! context switches), unpinned (the scheduler's choice) and, where two CPUs are allowed and the
//! profile is not `tiny`, cross-CPU (main on the first allowed CPU, the partner on the second:
//! cross-CPU wake-up latency). Throughput runs at the same placements.
//!
//! **shm** (rule 9): the ring spins for at most a few µs (only when the peer last ran on
//! another CPU), yields a few times, then sleeps on a futex; `FUTEX_WAKE` calls per message are
//! read from the pair's counter. **tcp** (rule 10): `TCP_NODELAY` is set; connect and accept
//! happen when the pair is created, outside every timed window.
//!
//! **Pool round trip** (one op): `pool.submit(add_one, n).join()` on a one-worker pool: a
//! thread-pool worker, a local process-pool worker, and a remote worker, which is a process
//! on this host started through the command launcher and reached over loopback TCP
//! (`Pool::processes(1).remote(..)`): what the network hop of a distributed pool costs
//! against a local process and a thread, read beside the raw tcp round trip between
//! processes. These rows run when tcp is among the transports, pinned and unpinned: pinned,
//! this thread is pinned before the pool is built, so the threads the pool starts inherit the
//! pin, and a worker process pins itself in `init_worker` and is asked for its CPUs before
//! timing. Not cross-CPU: the pool has no option to put its worker on another CPU than its
//! own threads.
//!
//! This file is long (about 1 400 lines) because it holds the whole experiment: the runs over
//! transports, partners, sizes and placements, the pool round trips, and the section. It stays
//! one file while the transports it measures are being moved from the library into the lab;
//! its section-building half (from `section` to `placement_words`) is the next to move into
//! an `ipc/section.rs`, as the other experiments' have.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crate::ipc::{self, Endpoint, TransportKind};
use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::{Placement, Worker};
use crate::experiment::{Experiment, ROUNDS, median_round};
use crate::measure::{self, Measurement, Plan, time_ops};
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::stats::{self, Summary};
use crate::units::{exact_size, micros};
use crate::{LabConfig, Progress};

/// The IPC experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ipc;

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// The first byte of the message that asks a draining partner for an acknowledgement.
const ACK: u8 = 1;
/// The first byte of every other throughput message.
const NO_ACK: u8 = 0;

/// The message size of the headline's round trips.
const HEADLINE_SIZE: usize = 64;

/// Exit codes of a forked partner.
const EXIT_OK: i32 = 0;
const EXIT_RECV: i32 = 10;
const EXIT_SEND: i32 = 11;

/// The default message sizes: below, at and above a page, the default pipe capacity (64 KiB)
/// and far above the socket buffers and the shm ring (at most 256 KiB) (rule 11).
fn default_sizes(profile: Profile) -> Vec<usize> {
    match profile {
        Profile::Tiny => vec![64, 4 * KIB],
        Profile::Quick | Profile::Full => vec![64, 4 * KIB, 64 * KIB, MIB],
    }
}

/// The measuring plan. Quick keeps rule 13's 10 batches and per-op timestamps but shortens
/// each batch to 1 ms so that about 260 measurements fit in under 10 s; tiny runs a fixed
/// 10 ops per batch.
fn plan(profile: Profile, iterations: Option<u64>) -> Plan {
    let base = Plan::for_profile(profile);
    let plan = match profile {
        Profile::Tiny => Plan {
            fixed_ops: Some(10),
            ..base
        },
        Profile::Quick => Plan {
            warmup_batches: 1,
            min_batch: Duration::from_millis(1),
            ..base
        },
        Profile::Full => Plan {
            warmup_batches: 2,
            batches: 20,
            min_batch: Duration::from_millis(10),
            ..base
        },
    };
    match iterations {
        Some(_) => plan.with_iterations(iterations),
        None => plan,
    }
}

/// The figure key suffix of a placement: none when unpinned (the keys the verdicts read).
fn suffix(p: Placement) -> &'static str {
    match p {
        Placement::Unpinned => "",
        Placement::Pinned(_) => ".pinned",
        Placement::CrossCpu(..) => ".cross_cpu",
    }
}

/// What the partner does with each message. (The data field keeps its name, `mode`; the type
/// is not called that, to keep it apart from the pool's `Mode`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Pattern {
    /// Sends every message back: round trips.
    Echo,
    /// Drains, acknowledging marked messages: one-way throughput.
    Sink,
}

impl Pattern {
    fn words(self) -> &'static str {
        match self {
            Pattern::Echo => "round trips",
            Pattern::Sink => "one-way throughput",
        }
    }
}

/// One measured run: a pair, a partner, a placement and a size.
#[derive(Debug, Serialize)]
struct Run {
    #[serde(serialize_with = "serialize_kind")]
    transport: TransportKind,
    partner: Worker,
    placement: Placement,
    mode: Pattern,
    size_bytes: usize,
    /// Per round trip (echo) or per message (sink), in ns: the round whose figure is the
    /// median of the rounds.
    measurement: Measurement,
    /// The figure of each independent round (one unless the headline shows it).
    rounds_ns: Vec<f64>,
    /// Messages in the measured window of the run (both directions for round trips; the
    /// acknowledgements of a sink run are not counted), cold start to last batch.
    messages: u64,
    /// `FUTEX_WAKE` calls over those messages (shm only; 0 elsewhere).
    futex_wakes: u64,
}

impl Run {
    fn futex_wakes_per_msg(&self) -> f64 {
        self.futex_wakes as f64 / self.messages.max(1) as f64
    }

    /// Bytes per second, per batch, summarized (sink runs).
    fn throughput(&self) -> Summary {
        let per_batch: Vec<f64> = self
            .measurement
            .batch_ns
            .iter()
            .map(|ns| self.size_bytes as f64 * 1e9 / ns)
            .collect();
        stats::summarize(&per_batch).expect("a measurement has at least one batch")
    }

    /// Messages per second, per batch, summarized (sink runs).
    fn messages_per_sec(&self) -> Summary {
        let per_batch: Vec<f64> = self
            .measurement
            .batch_ns
            .iter()
            .map(|ns| 1e9 / ns)
            .collect();
        stats::summarize(&per_batch).expect("a measurement has at least one batch")
    }
}

/// The worker of a pool round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum PoolKind {
    /// `Pool::threads(1)`.
    Thread,
    /// `Pool::processes(1)`, its worker forked by the fork server.
    Process,
    /// `Pool::processes(1).remote(..)`: an agent on this host, over loopback TCP.
    Remote,
}

impl PoolKind {
    const ALL: [PoolKind; 3] = [PoolKind::Thread, PoolKind::Process, PoolKind::Remote];

    fn key(self) -> &'static str {
        match self {
            PoolKind::Thread => "thread",
            PoolKind::Process => "process",
            PoolKind::Remote => "remote",
        }
    }

    fn label(self) -> &'static str {
        match self {
            PoolKind::Thread => "thread-pool worker",
            PoolKind::Process => "local process-pool worker",
            PoolKind::Remote => "remote worker (this host, loopback TCP)",
        }
    }
}

/// One pool round-trip measurement.
#[derive(Debug, Serialize)]
struct PoolRun {
    pool: PoolKind,
    placement: Placement,
    /// Per `submit(..).join()`, in ns.
    measurement: Measurement,
}

#[derive(Debug, Serialize)]
struct Data {
    sizes: Vec<usize>,
    #[serde(serialize_with = "serialize_kinds")]
    transports: Vec<TransportKind>,
    shm_spin_ns: u128,
    runs: Vec<Run>,
    pool_runs: Vec<PoolRun>,
    /// Why pool rows were not measured (all of them, or the process and remote ones).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pool_skipped: Vec<String>,
}

/// A transport by its name, as the CLI and the figure keys spell it.
fn serialize_kind<S: serde::Serializer>(kind: &TransportKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.name())
}

fn serialize_kinds<S: serde::Serializer>(kinds: &[TransportKind], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(kinds.iter().map(|k| k.name()))
}

/// The transports to measure: `config.transports` by name, or every kind.
fn transports(config: &LabConfig) -> Result<Vec<TransportKind>> {
    match &config.transports {
        None => Ok(TransportKind::ALL.to_vec()),
        Some(names) => {
            let mut kinds = Vec::new();
            for name in names {
                let kind: TransportKind = name.parse()?;
                if !kinds.contains(&kind) {
                    kinds.push(kind);
                }
            }
            Ok(kinds)
        }
    }
}

/// The message sizes: `config.sizes` or the profile's, each at least one byte.
fn sizes(config: &LabConfig) -> Result<Vec<usize>> {
    let sizes = config
        .sizes
        .clone()
        .unwrap_or_else(|| default_sizes(config.profile));
    if sizes.contains(&0) {
        bail!("an IPC message size of 0 bytes cannot be measured: give sizes of at least 1 byte");
    }
    Ok(sizes)
}

/// The partners a transport can have.
fn partners(kind: TransportKind) -> &'static [Worker] {
    if kind.supports_processes() {
        &[Worker::Thread, Worker::Process]
    } else {
        &[Worker::Thread]
    }
}

impl Experiment for Ipc {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Iterations, Knob::Sizes, Knob::Transports]
    }

    fn id(&self) -> &'static str {
        "ipc"
    }

    fn title(&self) -> &'static str {
        "Communication (IPC)"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let plan = plan(config.profile, config.iterations);
        let kinds = transports(config)?;
        let sizes = sizes(config)?;
        let cpus = measure::allowed_cpus();
        let Some(&cpu) = cpus.first() else {
            bail!("no CPU is allowed for this process (sched_getaffinity failed)");
        };
        let mut placements = vec![Placement::Pinned(cpu), Placement::Unpinned];
        // Split needs a second CPU; the tiny profile keeps to the two placements it checks.
        match cpus.get(1) {
            Some(&other) if config.profile != Profile::Tiny => {
                placements.push(Placement::CrossCpu(cpu, other));
            }
            _ => {}
        }

        let combos: usize = kinds.iter().map(|k| partners(*k).len()).sum();
        // The pool rows are read against raw tcp, so they come with it (and by default).
        let pool_placements = [Placement::Pinned(cpu), Placement::Unpinned];
        let pool_steps = if kinds.contains(&TransportKind::Tcp) {
            PoolKind::ALL.len() * pool_placements.len()
        } else {
            0
        };
        let steps = combos * sizes.len() * placements.len() * 2 + pool_steps;
        progress.begin("ipc", steps as u64);
        let mut runs = Vec::new();
        for &kind in &kinds {
            for &partner in partners(kind) {
                for &size in &sizes {
                    for mode in [Pattern::Echo, Pattern::Sink] {
                        for &placement in &placements {
                            progress.advance(
                                0,
                                &format!(
                                    "{kind} {} {size} B {}, {}",
                                    partner.key(),
                                    mode.words(),
                                    placement.key()
                                ),
                            );
                            // The headline's figures (64 B round trips, unpinned) come from
                            // independent rounds, each with a fresh pair and partner.
                            let headline = mode == Pattern::Echo
                                && size == HEADLINE_SIZE
                                && placement == Placement::Unpinned;
                            let rounds = if headline { ROUNDS } else { 1 };
                            let (mut r, rounds_ns) = median_round(
                                rounds,
                                || run_pair(kind, partner, placement, mode, size, &plan),
                                |r| r.measurement.value(),
                            )
                            .with_context(|| {
                                format!(
                                    "{kind} {} of {size}-byte messages between {}, {}",
                                    mode.words(),
                                    partner.plural(),
                                    placement.describe()
                                )
                            })?;
                            r.rounds_ns = rounds_ns;
                            runs.push(r);
                            progress.advance(1, "");
                        }
                    }
                }
            }
        }
        let mut pool_runs = Vec::new();
        let mut pool_skipped = Vec::new();
        if pool_steps > 0 {
            let mut pools = PoolKind::ALL.to_vec();
            // Without a fork server (no `proctor::init()` in time) only the thread pool runs;
            // a remote pool needs loopback TCP and /bin/sh as well.
            if let Some(why) = processes_unavailable()? {
                pools.retain(|&p| p == PoolKind::Thread);
                pool_skipped.push(format!(
                    "the process-pool and remote-worker round trips are skipped: {why}"
                ));
            } else if let Err(e) = PoolKind::Remote.build(None) {
                pools.retain(|&p| p != PoolKind::Remote);
                pool_skipped.push(format!("the remote-worker round trips are skipped: {e:#}"));
            }
            for &pool in &pools {
                for &placement in &pool_placements {
                    progress.advance(
                        0,
                        &format!("pool round trip, {}, {}", pool.label(), placement.key()),
                    );
                    let measurement = pool_rtt(pool, placement, &plan).with_context(|| {
                        format!(
                            "the pool round trip to a {}, {}",
                            pool.label(),
                            placement.describe()
                        )
                    })?;
                    pool_runs.push(PoolRun {
                        pool,
                        placement,
                        measurement,
                    });
                    progress.advance(1, "");
                }
            }
        }
        progress.end();
        let data = Data {
            sizes,
            transports: kinds,
            shm_spin_ns: shm_spin().as_nanos(),
            runs,
            pool_runs,
            pool_skipped,
        };
        Ok(section(&plan, &data))
    }
}

#[cfg(target_os = "linux")]
fn shm_spin() -> Duration {
    ipc::shm::SPIN
}

#[cfg(not(target_os = "linux"))]
fn shm_spin() -> Duration {
    Duration::ZERO
}

/// The section of an ipc run: every run's figures, the pool round trips, the tables, the
/// charts and the notes, in the order the report shows them.
fn section(plan: &Plan, d: &Data) -> Section {
    let mut s = Section::new("ipc", "Communication (IPC)", &method(plan, d));
    for r in &d.runs {
        run_figures(&mut s, r);
    }

    s.figures.extend(pool_figures(&s, d));
    s.tables.push(table(d));
    if !d.pool_runs.is_empty() {
        s.tables.push(pool_table(&s, d));
    }
    s.charts.extend(charts(d));
    s.notes.extend(notes(&s, d));
    s.set_data(d);
    s
}

/// What the section measured and how, with the run's settings.
fn method(plan: &Plan, d: &Data) -> String {
    let batches = match plan.fixed_ops {
        Some(n) => format!("{n} ops"),
        None => format!("calibrated to >= {} ms", plan.min_batch.as_secs_f64() * 1e3),
    };
    format!(
        "Round trip (one op): main sends a message of the given size, the partner receives it into a \
         buffer sized beforehand and sends the same bytes back, main receives them: 2 messages, at \
         least 2 sends + 2 receives, and on one CPU 2 context switches. Throughput (one op): main \
         sends one message one way; the partner drains, and answers the last message of each batch \
         with a 1-byte acknowledgement, so a batch ends when every message was received. The partner \
         is a thread or a process forked after the pair was created; transport, buffers, sizes and \
         placement are identical. Placement: pinned = both sides on one CPU (context switches); \
         unpinned = the scheduler's choice; cross-CPU = main and partner each pinned to its own CPU \
         (cross-CPU wake-up latency). Throughput runs at the same placements. shm waits by spinning while the peer \
         makes progress, up to {} ns without progress (only when the peer last ran on another \
         CPU), then sched_yield, then FUTEX_WAIT, and its \
         FUTEX_WAKE calls per message are counted; tcp has TCP_NODELAY and its connect/accept happen \
         before timing. Figure = median over {} batches of the batch mean ({batches}, after {} \
         warm-up batches; the quick profile shortens batches below 10 ms to fit its time budget); \
         spread = per-op (per round trip) timestamps, in batches of their own (the figure's batches \
         are timed whole), when the timer costs < 5% of an op, else over \
         batch means; outliers by modified Z-score > 3.5, kept. MB/s are 10^6 bytes per second. 64 B round trips, \
         unpinned: the median of 3 independent rounds, each with a fresh pair and partner, with \
         the rounds' run-to-run spread. Pool round trip (one op, measured with tcp): \
         pool.submit(add_one, n).join() on a fresh one-worker pool, a thread pool, a process pool \
         (worker forked by the fork server) or a remote pool (Pool::processes(1).remote(..) with \
         the command launcher: /bin/sh -c execs this binary as an agent on this host, which forks \
         the worker; the worker's connection is 127.0.0.1 TCP); pinned = this thread pinned before \
         the build (the pool's threads and a remote agent inherit it) and the worker process pinned \
         in init_worker, checked before timing; unpinned = the scheduler's choice; no cross-CPU \
         row (the pool cannot place its worker apart from its own threads).",
        d.shm_spin_ns, plan.batches, plan.warmup_batches,
    )
}

/// The figures of one run: a round trip (with the shm ring's wake-ups) or a one-way
/// throughput in bytes and messages per second.
fn run_figures(s: &mut Section, r: &Run) {
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
                    .placed(&r.placement.describe()),
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
                    .placed(&r.placement.describe()),
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
                .placed(&r.placement.describe()),
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
                .placed(&r.placement.describe()),
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
                .placed(&r.placement.describe())
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
    let line = |id: &str, title: &str, y_label: &str, series: Vec<Series>| Chart {
        id: id.into(),
        title: title.into(),
        kind: ChartKind::Line,
        x_label: "message size (bytes)".into(),
        y_label: y_label.into(),
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
            "ns per round trip",
            rtt_series("unpinned"),
        ),
        line(
            "rtt-process-pinned",
            "Round trip between processes by message size (both on one CPU)",
            "ns per round trip",
            rtt_series("pinned"),
        ),
        line(
            "throughput",
            "One-way throughput by message size (unpinned)",
            "bytes per second",
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
            "bytes per second",
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

fn placement_words(suffix: &str) -> &'static str {
    match suffix {
        "" => "unpinned",
        ".pinned" => "pinned to one CPU",
        _ => "one CPU each (cross-CPU)",
    }
}

/// `None` when process pools work here, else why not (no fork server, not Linux).
///
/// # Errors
/// When the pool fails for another reason (a worker could not be started).
fn processes_unavailable() -> Result<Option<String>> {
    match proctor::Pool::processes(1).build() {
        Ok(_) => Ok(None),
        Err(e) if e.is_not_initialized() || e.is_unsupported() => Ok(Some(e.to_string())),
        Err(e) => Err(anyhow::Error::new(e).context("building a one-worker process pool")),
    }
}

fn add_one(n: u64) -> u64 {
    n + 1
}

/// Pins a worker process to the first CPU it may run on: the CPU the lab pins itself to (a
/// remote agent started from the pinned thread has only that one already).
fn pin_worker() {
    if let Some(&cpu) = measure::allowed_cpus().first() {
        measure::pin_to_raw(cpu);
    }
}

/// The CPUs a worker may run on, to check its pin.
fn worker_cpus(_: ()) -> Vec<usize> {
    measure::allowed_cpus()
}

impl PoolKind {
    /// A one-worker pool of this kind, its worker pinned to `pin` when given.
    fn build(self, pin: Option<usize>) -> Result<proctor::Pool<()>> {
        let b = match self {
            PoolKind::Thread => return Ok(proctor::Pool::threads(1).build()?),
            PoolKind::Process => proctor::Pool::processes(1),
            PoolKind::Remote => proctor::Pool::processes(1).remote(super::loopback_remote()),
        };
        let b = b.forward_stderr(false);
        let b = if pin.is_some() {
            b.init_worker(pin_worker)
        } else {
            b
        };
        let pool = b
            .build()
            .with_context(|| format!("building a one-worker pool with a {}", self.label()))?;
        if let Some(cpu) = pin {
            let cpus = pool
                .submit(worker_cpus, ())
                .join()
                .context("asking the worker for its CPUs")?;
            if cpus != [cpu] {
                bail!(
                    "the {} runs on CPUs {cpus:?}, not on cpu {cpu} with the lab",
                    self.label()
                );
            }
        }
        Ok(pool)
    }
}

/// The pool round trip, `submit(add_one, n).join()`, on a fresh one-worker pool of `kind` at
/// `placement` (pinned or unpinned).
fn pool_rtt(kind: PoolKind, placement: Placement, plan: &Plan) -> Result<Measurement> {
    // Pinned before the build: the pool's own threads, and a remote agent, inherit it.
    let _pin = match placement.cpus() {
        Some((cpu, _)) => Some(measure::pin_current_thread(cpu)?),
        None => None,
    };
    let pool = kind.build(placement.cpus().map(|(cpu, _)| cpu))?;
    let mut i = 0u64;
    let m = measure::measure(plan, |n, sampler| {
        time_ops(n, sampler, || {
            i += 1;
            let out = pool
                .submit(add_one, black_box(i))
                .join()
                .context("the round-trip task")?;
            if out != i + 1 {
                bail!("the worker returned {out} for {i}, not {}", i + 1);
            }
            Ok(())
        })
    })?;
    drop(pool);
    Ok(m)
}

/// Creates a pair, starts the partner (thread or forked process) with the placement, measures
/// round trips or one-way messages, then stops the partner and checks it ended cleanly.
fn run_pair(
    kind: TransportKind,
    partner: Worker,
    placement: Placement,
    mode: Pattern,
    size: usize,
    plan: &Plan,
) -> Result<Run> {
    let (mut main, peer) = ipc::pair(kind, size).context("creating the pair")?;
    // Everything the partner touches is allocated before the fork.
    let mut peer_buf: Vec<u8> = Vec::with_capacity(size);
    // The partner owns its endpoint, so a forked partner's is closed in the parent at once. As
    // a child it only runs `serve`, which uses the transport with a buffer sized before the
    // fork (no allocation, no lock another thread could hold); main's endpoint is never
    // dropped there, since the child leaves with `_exit`.
    let body = move || serve(mode, peer, &mut peer_buf);
    // SAFETY: `body` only runs `serve`, async-signal-safe as said above.
    let r = unsafe {
        partner.run_pair(placement, body, || {
            let r = main_side(&mut main, mode, size, plan);
            let stopped = stop(&mut main);
            let r = r?;
            stopped?;
            Ok(r)
        })
    }?;
    Ok(r.into_run(kind, partner, placement, mode, size))
}

/// Main's result before it is labelled.
struct MainResult {
    measurement: Measurement,
    messages: u64,
    futex_wakes: u64,
}

impl MainResult {
    fn into_run(
        self,
        transport: TransportKind,
        partner: Worker,
        placement: Placement,
        mode: Pattern,
        size_bytes: usize,
    ) -> Run {
        Run {
            transport,
            partner,
            placement,
            mode,
            size_bytes,
            rounds_ns: vec![self.measurement.value()],
            measurement: self.measurement,
            messages: self.messages,
            futex_wakes: self.futex_wakes,
        }
    }
}

/// Main's side: measures round trips (echo) or one-way batches (sink).
fn main_side(main: &mut Endpoint, mode: Pattern, size: usize, plan: &Plan) -> Result<MainResult> {
    let mut msg = vec![0x5Au8; size];
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let wakes_before = main.futex_wakes();
    let mut messages = 0u64;
    let measurement = match mode {
        Pattern::Echo => measure::measure(plan, |n, sampler| {
            messages += 2 * n;
            time_ops(n, sampler, || {
                main.send(black_box(&msg))?;
                main.recv(&mut buf)?;
                if black_box(&buf).len() != size {
                    bail!("the echo has {} bytes, not {size}", buf.len());
                }
                Ok(())
            })
        })?,
        Pattern::Sink => measure::measure(plan, |n, _sampler| {
            // Sends return once the bytes are queued, so per-message timestamps would say
            // little: only the batch, ended by the acknowledgement, is timed.
            messages += n;
            let start = Instant::now();
            for i in 0..n {
                msg[0] = if i + 1 == n { ACK } else { NO_ACK };
                main.send(black_box(&msg))?;
            }
            main.recv(&mut buf)?;
            let elapsed = start.elapsed();
            if buf.as_slice() != [ACK] {
                bail!("the partner acknowledged with {} bytes", buf.len());
            }
            Ok(elapsed)
        })?,
    };
    Ok(MainResult {
        measurement,
        messages,
        futex_wakes: main.futex_wakes().saturating_sub(wakes_before),
    })
}

/// Tells the partner to stop: an empty message, which no measurement sends.
fn stop(main: &mut Endpoint) -> Result<()> {
    main.send(&[]).context("telling the partner to stop")
}

/// The partner's loop, until an empty message. Returns an exit code instead of failing, and
/// allocates nothing while `buf` has room for the largest message: it may run in a forked
/// child of a multi-threaded process.
fn serve(mode: Pattern, mut end: Endpoint, buf: &mut Vec<u8>) -> i32 {
    loop {
        if end.recv(buf).is_err() {
            return EXIT_RECV;
        }
        if buf.is_empty() {
            return EXIT_OK;
        }
        let reply: &[u8] = match mode {
            Pattern::Echo => &buf[..],
            Pattern::Sink if buf[0] == ACK => &[ACK],
            Pattern::Sink => continue,
        };
        if end.send(reply).is_err() {
            return EXIT_SEND;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_from_hand_made_runs() {
        use crate::fixture::measurement;
        let run = |transport, partner, mode, ns| Run {
            transport,
            partner,
            placement: Placement::Unpinned,
            mode,
            size_bytes: 64,
            measurement: measurement(ns),
            rounds_ns: vec![ns],
            messages: 2_000,
            futex_wakes: 0,
        };
        let d = Data {
            sizes: vec![64],
            transports: vec![TransportKind::Pipe],
            shm_spin_ns: 0,
            runs: vec![
                run(TransportKind::Pipe, Worker::Thread, Pattern::Echo, 8_000.0),
                run(TransportKind::Pipe, Worker::Process, Pattern::Echo, 9_000.0),
                run(TransportKind::Pipe, Worker::Process, Pattern::Sink, 1_000.0),
            ],
            pool_runs: Vec::new(),
            pool_skipped: Vec::new(),
        };
        let s = section(&Plan::for_profile(Profile::Tiny), &d);
        let value = |k: &str| s.figure(k).map(|f| f.value);
        assert_eq!(value("ipc.rtt.pipe.thread.64"), Some(8_000.0));
        assert_eq!(value("ipc.rtt.pipe.process.64"), Some(9_000.0));
        // 64 B per 1 µs message.
        let mbs = value("ipc.throughput.pipe.process.64").expect("a throughput figure");
        assert!((mbs - 64e3 * 1e3).abs() / mbs < 0.1, "{mbs}");
        assert!(value("ipc.throughput.pipe.thread.64").is_none());
        assert_eq!(s.tables.len(), 1, "no pool rows, no pool table");
        assert!(!s.figures.iter().any(|f| f.key.starts_with("ipc.pool_rtt")));
    }

    #[test]
    fn pool_round_trips_sit_beside_raw_tcp_at_each_placement() {
        use crate::fixture::measurement;
        let tcp = |placement, ns| Run {
            transport: TransportKind::Tcp,
            partner: Worker::Process,
            placement,
            mode: Pattern::Echo,
            size_bytes: 64,
            measurement: measurement(ns),
            rounds_ns: vec![ns],
            messages: 2_000,
            futex_wakes: 0,
        };
        let pool = |pool, placement, ns| PoolRun {
            pool,
            placement,
            measurement: measurement(ns),
        };
        let pinned = Placement::Pinned(0);
        let d = Data {
            sizes: vec![64],
            transports: vec![TransportKind::Tcp],
            shm_spin_ns: 0,
            runs: vec![tcp(pinned, 20_000.0), tcp(Placement::Unpinned, 12_000.0)],
            pool_runs: vec![
                pool(PoolKind::Thread, pinned, 4_000.0),
                pool(PoolKind::Thread, Placement::Unpinned, 5_000.0),
                pool(PoolKind::Process, pinned, 8_000.0),
                pool(PoolKind::Process, Placement::Unpinned, 4_000.0),
                pool(PoolKind::Remote, pinned, 32_000.0),
                pool(PoolKind::Remote, Placement::Unpinned, 20_000.0),
            ],
            pool_skipped: Vec::new(),
        };
        let s = section(&Plan::for_profile(Profile::Tiny), &d);
        let value = |k: &str| s.figure(k).map(|f| f.value);
        assert_eq!(value("ipc.pool_rtt.remote"), Some(20_000.0));
        assert_eq!(value("ipc.pool_rtt.remote.pinned"), Some(32_000.0));
        assert_eq!(value("ipc.pool_rtt.thread.pinned"), Some(4_000.0));
        assert_eq!(value("ipc.pool_rtt.remote_over_process"), Some(5.0));
        assert_eq!(value("ipc.pool_rtt.remote_over_process.pinned"), Some(4.0));
        assert_eq!(value("ipc.pool_rtt.remote_over_thread"), Some(4.0));
        assert_eq!(value("ipc.pool_rtt.remote_over_tcp.pinned"), Some(1.6));
        let placed = |k: &str| s.figure(k).and_then(|f| f.placement.clone());
        assert!(placed("ipc.pool_rtt.remote.pinned").is_some_and(|p| p.contains("same CPU")));
        assert!(placed("ipc.pool_rtt.remote_over_tcp").is_some_and(|p| p.contains("unpinned")));
        let t = &s.tables[1];
        assert_eq!(t.rows.len(), 4, "three pools and raw tcp: {:?}", t.rows);
        assert_eq!(t.rows[2][0], PoolKind::Remote.label());
        assert_eq!(t.rows[1][1..3], ["8.00 µs", "4.00 µs"]);
        assert_eq!(t.rows[1][4..], ["4.0x", "5.0x"]);
        assert!(t.rows[3][0].contains("raw tcp"));
        assert_eq!(t.rows[3][5], "1.7x");
        let note = s
            .notes
            .iter()
            .find(|n| n.starts_with("pool round trip, pinned"))
            .expect("a pinned pool note");
        assert!(note.contains("remote worker 32.00 µs"), "{note}");
        assert!(
            note.contains("raw tcp 64 B between processes 20.00 µs (remote / it = 1.6x)"),
            "{note}"
        );
        assert!(s.notes.iter().any(|n| n.contains("no network")));
        assert!(s.method.contains("Pool round trip"));
        // Without a remote row there are no ratios and no remote notes.
        let mut d = d;
        d.pool_runs.retain(|r| r.pool != PoolKind::Remote);
        d.pool_skipped = vec!["the remote-worker round trips are skipped: no loopback".into()];
        let s = section(&Plan::for_profile(Profile::Tiny), &d);
        assert!(value("ipc.pool_rtt.process").is_some());
        assert!(s.figure("ipc.pool_rtt.remote_over_tcp").is_none());
        assert!(s.notes.iter().any(|n| n.contains("no loopback")));
        assert!(!s.notes.iter().any(|n| n.contains("no network")));
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn a_pinned_thread_pool_round_trip_is_measured() {
        let cpu = measure::allowed_cpus()[0];
        let m = pool_rtt(
            PoolKind::Thread,
            Placement::Pinned(cpu),
            &plan(Profile::Tiny, None),
        )
        .expect("a thread pool works anywhere");
        assert!(m.value() > 0.0 && m.value().is_finite());
        // The lib's unit-test binary starts no fork server: process pools say why.
        if let Some(why) = processes_unavailable().expect("no other failure") {
            assert!(!why.is_empty());
        }
    }

    #[test]
    fn transports_default_to_all_and_reject_unknown_names() {
        let config = LabConfig::default();
        assert_eq!(
            transports(&config).expect("the default is valid"),
            TransportKind::ALL
        );
        let config = LabConfig {
            transports: Some(vec!["shm".into(), "pipe".into(), "shm".into()]),
            ..LabConfig::default()
        };
        assert_eq!(
            transports(&config).expect("known names"),
            [TransportKind::Shm, TransportKind::Pipe]
        );
        let config = LabConfig {
            transports: Some(vec!["carrier-pigeon".into()]),
            ..LabConfig::default()
        };
        assert!(transports(&config).is_err());
    }

    #[test]
    fn zero_sizes_are_rejected() {
        let config = LabConfig {
            sizes: Some(vec![64, 0]),
            ..LabConfig::default()
        };
        assert!(sizes(&config).is_err());
        assert_eq!(
            sizes(&LabConfig::default()).expect("defaults"),
            [64, 4096, 65536, 1 << 20]
        );
    }

    #[test]
    fn throughput_round_trip_between_threads() {
        let plan = plan(Profile::Tiny, None);
        let r = run_pair(
            TransportKind::Pipe,
            Worker::Thread,
            Placement::Unpinned,
            Pattern::Sink,
            4096,
            &plan,
        )
        .expect("a pipe between threads works");
        assert!(r.throughput().median > 0.0);
        assert!(r.messages >= 10);
        assert_eq!(r.futex_wakes, 0);
    }
}
