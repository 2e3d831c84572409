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
//! This file runs the experiment; `section.rs` builds its section from the runs.

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

mod pair;
mod pool;
mod section;
#[cfg(test)]
mod tests;

use pair::run_pair;
use pool::pool_rtt;
use section::section;

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
