//! `ipc`: what handing data over costs between two threads and between two processes, and
//! the round-trip latency and one-way throughput of every `ipc` transport (LAB-METHODS rules
//! 3, 4, 9, 10, 11 and 13).
//!
//! **Hand-off** (`handoff/`), what the communication claim is about: a thread passes a
//! pointer, a process copies the bytes (through shared memory or a pipe) or serializes the
//! value, the consumer reading every cache line; against payload size, pinned on the pairs
//! of CPUs the topology offers, with the shared-memory setup measured apart. The claim is
//! decided there (`verdict/claims.rs`).
//!
//! **The round trip is the control**: one transport, the same bytes, between two threads or
//! two processes. Over one transport the partner kind can only change the address-space
//! switch, so these figures show that the kind of partner alone does not decide what
//! communication costs; no verdict reads them. `perf bench sched messaging` with processes
//! and with threads runs beside them.
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
//! context switches), unpinned (the scheduler's choice) and, where the topology offers a pair
//! of two CPUs and the profile is not `tiny`, cross-CPU on the nearest such pair (SMT
//! siblings, else a shared last-level cache, ...: cross-CPU wake-up latency; the figure names
//! the pair). Throughput runs at the same placements. An unpinned run is a mixture: each batch
//! is tagged with the placement its two sides were seen on (`sched_getcpu` before and after;
//! the partner writes its CPU in shared memory after each message), and the figure's
//! placement gives each placement's share and median.
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
//! This file runs the experiment; `section.rs` builds its section from the runs,
//! `handoff_section.rs` the hand-off's part.

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

mod handoff;
mod handoff_section;
mod pair;
mod pool;
mod section;
#[cfg(test)]
mod tests;

use crate::topology::{Mixture, Topology};
use handoff::{HandoffRun, JSON_MAX, SetupRun, Spot, Way, run_handoff, shm_setup};
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

/// The message size of the raw tcp round trip the pool rows are read against, and of the
/// control round trips the notes compare.
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

/// The default payload sizes of the hand-off: 64 B to 64 MiB in full, three in quick, and in
/// tiny the two ends the claim reads.
fn default_handoff_sizes(profile: Profile) -> Vec<usize> {
    match profile {
        Profile::Tiny => vec![64, 4 * MIB],
        Profile::Quick => vec![64, 64 * KIB, 4 * MIB],
        Profile::Full => vec![64, 4 * KIB, 64 * KIB, MIB, 4 * MIB, 64 * MIB],
    }
}

/// The hand-off's plan: the round trips' plan, and in tiny 3 ops per batch (a 4 MiB op in a
/// debug build takes milliseconds).
fn handoff_plan(profile: Profile, iterations: Option<u64>) -> Plan {
    match (profile, iterations) {
        (Profile::Tiny, None) => Plan {
            fixed_ops: Some(3),
            ..plan(profile, None)
        },
        _ => plan(profile, iterations),
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
    /// Unpinned runs: the placements the two sides were seen on, batch by batch (values per
    /// round trip, or per message for throughput).
    #[serde(skip_serializing_if = "Option::is_none")]
    mixture: Option<Mixture>,
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
    /// The CPUs and how they relate: the words of every cross-CPU placement.
    topology: Topology,
    #[serde(serialize_with = "serialize_kinds")]
    transports: Vec<TransportKind>,
    shm_spin_ns: u128,
    runs: Vec<Run>,
    pool_runs: Vec<PoolRun>,
    /// Why pool rows were not measured (all of them, or the process and remote ones).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pool_skipped: Vec<String>,
    /// The hand-off's payload sizes (empty when it did not run).
    handoff_sizes: Vec<usize>,
    /// Where the hand-off ran, nearest first.
    spots: Vec<Spot>,
    handoffs: Vec<HandoffRun>,
    /// The shared-memory setup, one per hand-off size.
    setups: Vec<SetupRun>,
}

impl Data {
    /// The words of a placement: "same CPU (cpu 0)", "shared LLC (cpu 0 → cpu 1)" from the
    /// topology, or "unpinned".
    fn words(&self, p: Placement) -> String {
        match p {
            Placement::CrossCpu(a, b) => crate::topology::Pair {
                placement: self.topology.classify(a, b),
                a,
                b,
            }
            .describe(),
            other => other.describe(),
        }
    }
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
        let topology = Topology::detect();
        let spots = handoff::spots(&topology, config.profile);
        let Some(cpu) = spots
            .first()
            .and_then(|s| s.placement.cpus())
            .map(|(cpu, _)| cpu)
        else {
            bail!("no CPU is allowed for this process (sched_getaffinity failed)");
        };
        // The control round trips: same CPU, unpinned, and the nearest pair of two CPUs the
        // topology offers (not in tiny, which keeps to the two placements it checks).
        let mut placements = vec![Placement::Pinned(cpu), Placement::Unpinned];
        if config.profile != Profile::Tiny {
            placements.extend(
                spots
                    .iter()
                    .filter(|s| s.suffix == ".cross_cpu")
                    .map(|s| s.placement),
            );
        }
        // The hand-off compares ways of handing data over, not transports: it runs unless
        // the transports were narrowed.
        let handoff_sizes = if config.transports.is_none() {
            match &config.sizes {
                Some(_) => sizes.clone(),
                None => default_handoff_sizes(config.profile),
            }
        } else {
            Vec::new()
        };
        let handoff_plan = handoff_plan(config.profile, config.iterations);
        let handoff_steps = handoff_sizes.len() * (1 + spots.len() * Way::ALL.len());

        let combos: usize = kinds.iter().map(|k| partners(*k).len()).sum();
        // The pool rows are read against raw tcp, so they come with it (and by default).
        let pool_placements = [Placement::Pinned(cpu), Placement::Unpinned];
        let pool_steps = if kinds.contains(&TransportKind::Tcp) {
            PoolKind::ALL.len() * pool_placements.len()
        } else {
            0
        };
        let steps = combos * sizes.len() * placements.len() * 2 + pool_steps + handoff_steps;
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
                            let r = run_pair(kind, partner, placement, mode, size, &plan)
                                .with_context(|| {
                                    format!(
                                        "{kind} {} of {size}-byte messages between {}, {}",
                                        mode.words(),
                                        partner.plural(),
                                        placement.describe()
                                    )
                                })?;
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
        // A debug build (the tests' tiny runs) serializes megabytes slowly.
        let json_max = if config.profile == Profile::Tiny {
            64 * KIB
        } else {
            JSON_MAX
        };
        let (handoffs, setups) =
            measure_handoffs(&handoff_sizes, &spots, (&handoff_plan, json_max), progress)?;
        progress.end();
        let data = Data {
            sizes,
            topology,
            handoff_sizes,
            spots,
            handoffs,
            setups,
            transports: kinds,
            shm_spin_ns: shm_spin().as_nanos(),
            runs,
            pool_runs,
            pool_skipped,
        };
        let mut s = section(&plan, &data);
        // The same transport between many threads or many processes, from an established
        // tool: a second control beside ours. It runs with the hand-off (not when the
        // transports were narrowed).
        if !data.handoffs.is_empty() {
            let (checks, note) = messaging_checks(config.profile);
            s.cross_checks.extend(checks);
            s.notes.extend(note);
        }
        Ok(s)
    }
}

/// `perf bench sched messaging` with processes and with threads (`-t`), and a note with the
/// ratio of their total times when both ran.
fn messaging_checks(profile: Profile) -> (Vec<crate::report::CrossCheck>, Option<String>) {
    let loops = if profile == Profile::Tiny { 20 } else { 500 };
    let runs = [false, true].map(|threads| {
        let run = crate::crosscheck::perf_sched_messaging(threads, 1, loops);
        let mut c =
            crate::crosscheck::compare("perf bench sched messaging", "", None, run, Unit::Ns);
        if c.theirs.is_some() {
            c.note = Some(
                "total time of 20 senders and 20 receivers passing 100-byte messages over \
                 socketpairs: no figure of ours matches; it sits beside the control"
                    .into(),
            );
        }
        c
    });
    let note = match (runs[0].theirs, runs[1].theirs) {
        (Some(p), Some(t)) if t > 0.0 => Some(format!(
            "second control, an established tool over one transport: `{}` took {} with \
             processes and {} with threads (`-t`), processes / threads = {:.2}x",
            runs[0].command,
            crate::units::micros_or_millis(p),
            crate::units::micros_or_millis(t),
            p / t
        )),
        _ => None,
    };
    (runs.into(), note)
}

/// The hand-off at every size and spot, and the shared-memory setup at every size. The
/// structured payloads (a `Vec` moved, or serialized with serde_json) run up to `json_max`
/// ([`JSON_MAX`] outside tiny) and only at the deciding spot (the nearest pair of two CPUs,
/// else the same CPU): their cost is the encoding's, whatever the placement.
fn measure_handoffs(
    sizes: &[usize],
    spots: &[Spot],
    (plan, json_max): (&Plan, usize),
    progress: &mut dyn Progress,
) -> Result<(Vec<HandoffRun>, Vec<SetupRun>)> {
    let deciding = deciding_spot(spots).map(|s| s.suffix.clone());
    let mut runs = Vec::new();
    let mut setups = Vec::new();
    for &size in sizes {
        progress.advance(0, &format!("shared-memory setup, {}", exact_size(size)));
        setups.push(
            shm_setup(size, plan)
                .with_context(|| format!("the shared-memory setup of {}", exact_size(size)))?,
        );
        progress.advance(1, "");
        for spot in spots {
            for way in Way::ALL {
                let here = Some(&spot.suffix) == deciding.as_ref();
                if way.structured() && (size > json_max || !here) {
                    progress.advance(1, "");
                    continue;
                }
                progress.advance(
                    0,
                    &format!(
                        "hand-off of {}, {}, {}",
                        exact_size(size),
                        way.words(),
                        spot.words
                    ),
                );
                // The pair the claim reads comes from independent rounds (each with a fresh
                // partner and region), so that its verdict clears the run-to-run spread.
                let rounds = if here && matches!(way, Way::Box | Way::Shm) {
                    ROUNDS
                } else {
                    1
                };
                let (mut r, rounds_ns) = median_round(
                    rounds,
                    || run_handoff(way, size, spot, plan),
                    |r| r.measurement.value(),
                )
                .with_context(|| {
                    format!(
                        "the hand-off of {}, {}, {}",
                        exact_size(size),
                        way.words(),
                        spot.words
                    )
                })?;
                r.rounds_ns = rounds_ns;
                runs.push(r);
                progress.advance(1, "");
            }
        }
    }
    Ok((runs, setups))
}

/// The spot the communication claim is decided at: the nearest pair of two CPUs (two
/// workers that talk run side by side), else the same CPU.
fn deciding_spot(spots: &[Spot]) -> Option<&Spot> {
    spots
        .iter()
        .find(|s| s.suffix == ".cross_cpu")
        .or_else(|| spots.first())
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
