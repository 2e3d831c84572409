//! `switch`: context switching between two threads and between two processes
//! (LAB-METHODS rules 1–5 and 16).
//!
//! Two tasks ping-pong a token; the partner is a thread or a forked process and nothing else
//! differs (rule 4): both use the same shared page (a `MAP_SHARED` anonymous mapping), the
//! same non-private futex operations on it, the same pipes, the same placement.
//!
//! - **futex**: main stores PING into the shared word and `FUTEX_WAKE`s; the partner, blocked
//!   in `FUTEX_WAIT`, stores IDLE and wakes main, which waits while the word is PING.
//! - **pipe**: 4 bytes each way over two pipes, as `perf bench sched pipe`.
//!
//! **One op is a round trip** (RTT): on one CPU it is 2 context switches plus, for pipes,
//! 2 writes and 2 reads (futex: 2 wakes and 2 waits). We report the RTT, the per-switch
//! figure (RTT/2), and a net per-switch figure with the **syscall cost subtracted**: the same
//! syscalls timed in one thread without blocking (pipe: write then read on one pipe, twice;
//! futex: a wake with no waiter and a wait on a changed value, twice), as lmbench `lat_ctx`.
//!
//! **The count is verified** (rule 2): each side reads its own `ru_nvcsw + ru_nivcsw`
//! (RUSAGE_THREAD) before and after, and the report gives the measured switches per round trip.
//!
//! **Placement** (rule 3): same CPU (both pinned to one CPU: context switches), and two CPUs
//! (each pinned to its own: cross-CPU wake-up latency, not a context switch).
//!
//! **Footprint** (rule 5): each side writes one byte per cache line of its own buffer every
//! round trip; the one-sided baseline touches both buffers too.
//!
//! The forked partner runs in a child of a possibly multi-threaded process, so it only uses
//! raw system calls (`read`, `write`, `futex`, `getrusage`) and `_exit`; it never allocates.

use std::hint::black_box;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::unistd::pipe;
use serde::Serialize;

use super::{Placement, Worker};
use crate::crosscheck;
use crate::experiment::{Experiment, ROUNDS, median_round};
use crate::measure::{self, Measurement, Plan, time_ops};
use crate::report::{Chart, ChartKind, CrossCheck, Figure, Profile, Section, Series, Table, Unit};
use crate::shared_mem::{futex_wait, futex_wake};
use crate::units::micros;
use crate::{LabConfig, Progress};

/// The context-switch experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switch;

const KIB: usize = 1024;

/// The pipe token, and the one that tells the partner to stop.
const TOKEN: u32 = 1;
const STOP: u32 = u32::MAX;

/// Futex word states.
const IDLE: u32 = 0;
const PING: u32 = 1;
const QUIT: u32 = 2;

/// Switches expected per round trip on one CPU, and the tolerance of the check.
const EXPECTED_SWITCHES: f64 = 2.0;
const SWITCH_TOLERANCE: f64 = 0.05;

/// How the token is handed from one side to the other: over a pipe, or through a futex word.
/// (The data field keeps its name, `transport`; the type is not called that, to keep it apart
/// from the IPC transports.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Handoff {
    Pipe,
    Futex,
}

impl Handoff {
    fn key(self) -> &'static str {
        match self {
            Handoff::Pipe => "pipe",
            Handoff::Futex => "futex",
        }
    }
}

/// One ping-pong run.
#[derive(Debug, Serialize)]
struct PingPong {
    transport: Handoff,
    partner: Worker,
    placement: Placement,
    footprint_bytes: usize,
    /// Per round trip: the round whose figure is the median of the rounds.
    rtt: Measurement,
    /// The round trip of each independent round (one unless the headline shows it).
    rtt_rounds: Vec<f64>,
    /// Round trips done (cold start, calibration, warm-up and measured).
    round_trips: u64,
    main_switches: u64,
    partner_switches: u64,
}

impl PingPong {
    fn switches_per_rtt(&self) -> f64 {
        (self.main_switches + self.partner_switches) as f64 / self.round_trips.max(1) as f64
    }
}

/// The same syscalls in one thread, per round trip.
#[derive(Debug, Serialize)]
struct OneSided {
    transport: Handoff,
    footprint_bytes: usize,
    cpu: usize,
    per_rtt: Measurement,
}

#[derive(Debug, Serialize)]
struct Data {
    timer_ns: f64,
    one_sided: Vec<OneSided>,
    ping_pong: Vec<PingPong>,
}

fn footprints(profile: Profile) -> Vec<usize> {
    match profile {
        Profile::Tiny => vec![0],
        Profile::Quick => vec![0, 256 * KIB],
        Profile::Full => {
            // Rule 5: 0, 16 KiB, 256 KiB, about the L2 and about the LLC (capped, since a
            // VM may report a huge LLC and touching it every round trip would dominate).
            let mut v = vec![0, 16 * KIB, 256 * KIB];
            v.extend(crate::machine::cache_size(2).map(|b| b as usize));
            v.extend(crate::machine::cache_size(3).map(|b| (b as usize).min(32 << 20)));
            v.sort_unstable();
            v.dedup();
            v
        }
    }
}

/// `perf bench sched pipe` loops: same CPU, then unpinned.
fn perf_loops(profile: Profile) -> (u64, u64) {
    match profile {
        Profile::Tiny => (2_000, 200),
        Profile::Quick => (200_000, 5_000),
        Profile::Full => (1_000_000, 100_000),
    }
}

impl Experiment for Switch {
    fn knobs(&self) -> &'static [super::Knob] {
        use super::Knob;
        &[Knob::Iterations]
    }

    fn id(&self) -> &'static str {
        "switch"
    }

    fn title(&self) -> &'static str {
        "Context switching"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let plan = Plan::for_profile(config.profile).with_iterations(config.iterations);
        let cpus = measure::allowed_cpus();
        let Some(&cpu) = cpus.first() else {
            bail!("no CPU is allowed for this process (sched_getaffinity failed)");
        };
        let cross = cpus.get(1).map(|&other| Placement::CrossCpu(cpu, other));
        let fps = footprints(config.profile);
        let transports = [Handoff::Pipe, Handoff::Futex];
        let partners = [Worker::Thread, Worker::Process];
        let steps = transports.len() * fps.len() * (1 + partners.len())
            + if cross.is_some() {
                transports.len() * partners.len()
            } else {
                0
            }
            + partners.len()
            + 1;
        progress.begin("switch", steps as u64);

        let timer_ns = measure::timer_cost().as_nanos() as f64;
        let mut one_sided = Vec::new();
        let mut runs = Vec::new();
        for t in transports {
            for &fp in &fps {
                progress.advance(0, &format!("{} one-sided, {} KiB", t.key(), fp / KIB));
                let m = measure_one_sided(t, cpu, fp, &plan)
                    .with_context(|| format!("one-sided {} syscalls, footprint {fp} B", t.key()))?;
                one_sided.push(OneSided {
                    transport: t,
                    footprint_bytes: fp,
                    cpu,
                    per_rtt: m,
                });
                progress.advance(1, "");
                for p in partners {
                    progress.advance(
                        0,
                        &format!("{} {} same CPU, {} KiB", t.key(), p.key(), fp / KIB),
                    );
                    // The headline's figures (futex, same CPU, no footprint) come from
                    // independent rounds, each with a fresh partner.
                    let rounds = if t == Handoff::Futex && fp == 0 {
                        ROUNDS
                    } else {
                        1
                    };
                    let (mut r, rtt_rounds) = median_round(
                        rounds,
                        || ping_pong(t, p, Placement::Pinned(cpu), fp, &plan),
                        |r| r.rtt.value(),
                    )
                    .with_context(|| {
                        format!(
                            "{} ping-pong between {} on cpu {cpu}, footprint {fp} B",
                            t.key(),
                            p.plural()
                        )
                    })?;
                    r.rtt_rounds = rtt_rounds;
                    runs.push(r);
                    progress.advance(1, "");
                }
            }
        }
        if let Some(place) = cross {
            for t in transports {
                for p in partners {
                    progress.advance(0, &format!("{} {} cross-CPU", t.key(), p.key()));
                    let r = ping_pong(t, p, place, 0, &plan).with_context(|| {
                        format!(
                            "{} ping-pong between {}, {}",
                            t.key(),
                            p.plural(),
                            place.describe()
                        )
                    })?;
                    runs.push(r);
                    progress.advance(1, "");
                }
            }
        }
        // Unpinned pipe runs, to compare with `perf bench sched pipe` as it runs by default.
        for p in partners {
            progress.advance(0, &format!("pipe {} unpinned", p.key()));
            let r = ping_pong(Handoff::Pipe, p, Placement::Unpinned, 0, &plan)
                .with_context(|| format!("pipe ping-pong between {}, unpinned", p.plural()))?;
            runs.push(r);
            progress.advance(1, "");
        }
        progress.advance(0, "cross-checks (perf bench sched pipe...)");
        let data = Data {
            timer_ns,
            one_sided,
            ping_pong: runs,
        };
        let mut s = section(&plan, &data, cpus.len());
        s.cross_checks = cross_checks(&s, config.profile, cpu);
        if cross.is_some() {
            s.notes.push(
                "the cross-CPU rows (each task pinned to its own CPU) have no cross-check: \
                 perf bench sched pipe cannot pin its two tasks apart"
                    .to_string(),
            );
        }
        for c in &s.cross_checks {
            if let Some(n) = &c.note {
                s.notes.push(format!("cross-check `{}`: {n}", c.command));
            }
        }
        progress.advance(1, "");
        progress.end();
        Ok(s)
    }
}

/// The section of a switch run: the timer, every round trip and its switch figures, the table,
/// the ratios and the chart, in the order the report shows them.
fn section(plan: &Plan, d: &Data, ncpus: usize) -> Section {
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
    s.set_data(&d);
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
        x_label: "footprint per side (KiB)".into(),
        y_label: "ns per switch".into(),
        x_log: false,
        y_log: false,
        categories: Vec::new(),
        series,
    }
}

fn cross_checks(s: &Section, profile: Profile, cpu: usize) -> Vec<CrossCheck> {
    let (pinned, unpinned) = perf_loops(profile);
    let ours = |k: &str| s.figure(k).map(|f| f.value);
    let mut v = Vec::new();
    for (threads, partner) in [(false, "process"), (true, "thread")] {
        let key = format!("switch.pipe.{partner}.pinned.rtt");
        let run = crosscheck::perf_sched_pipe(Some(cpu), threads, pinned);
        v.push(crosscheck::compare(
            "perf bench sched pipe",
            &key,
            ours(&key),
            run,
            Unit::Ns,
        ));
    }
    for (threads, partner) in [(false, "process"), (true, "thread")] {
        let key = format!("switch.pipe.{partner}.unpinned.rtt");
        let run = crosscheck::perf_sched_pipe(None, threads, unpinned);
        let mut c = crosscheck::compare(
            "perf bench sched pipe (unpinned)",
            &key,
            ours(&key),
            run,
            Unit::Ns,
        );
        if let Some(n) = c.note.take() {
            c.note = Some(format!(
                "{n}; both sides are unpinned, so each run gets the scheduler's placement \
                 (same CPU or not, changing over time): compare the pinned rows instead"
            ));
        }
        v.push(c);
    }
    let key = "switch.pipe.process.pinned";
    v.push(crosscheck::compare(
        "stress-ng --switch",
        key,
        ours(key),
        crosscheck::stress_ng_switch(cpu, pinned),
        Unit::Ns,
    ));
    let mut h = crosscheck::compare(
        "hackbench",
        "",
        None,
        crosscheck::hackbench(if profile == Profile::Tiny { 10 } else { 100 }),
        Unit::Ns,
    );
    if h.theirs.is_some() {
        h.note = Some("total time of a messaging storm (throughput under overload): no per-op figure of ours matches".into());
    }
    v.push(h);
    v
}

/// The page both sides share; zero-filled, so every atomic starts at 0 (IDLE).
#[derive(Debug)]
struct SharedPage {
    ptr: NonNull<SharedState>,
}

#[derive(Debug)]
#[repr(C)]
struct SharedState {
    word: AtomicU32,
    partner_switches: AtomicU64,
    partner_round_trips: AtomicU64,
}

const PAGE: usize = 4096;
const _: () = assert!(std::mem::size_of::<SharedState>() <= PAGE);

impl SharedPage {
    fn new() -> Result<SharedPage> {
        let len = std::num::NonZeroUsize::new(PAGE).expect("a page is not empty");
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing aliases
        // nothing; it is zero-filled, which is a valid SharedState (all atomics 0).
        let ptr = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )
        }
        .context("mmap of the shared page")?;
        Ok(SharedPage { ptr: ptr.cast() })
    }

    fn state(&self) -> &SharedState {
        // SAFETY: the mapping lives as long as `self`, is page-aligned and large enough, and is
        // only accessed through atomics.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: the mapping was created by `new` with this length and no reference into it
        // outlives `self`.
        let _ = unsafe { munmap(self.ptr.cast(), PAGE) };
    }
}

fn write_u32(fd: RawFd, v: u32) -> bool {
    let bytes = black_box(v).to_ne_bytes();
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: the pointer and length stay inside `bytes`.
        let n = unsafe { libc::write(fd, bytes[off..].as_ptr().cast(), bytes.len() - off) };
        if n > 0 {
            off += n as usize;
        } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            return false;
        }
    }
    true
}

fn read_u32(fd: RawFd) -> Option<u32> {
    let mut bytes = [0u8; 4];
    let mut off = 0;
    while off < bytes.len() {
        // SAFETY: the pointer and length stay inside `bytes`, which is writable.
        let n = unsafe { libc::read(fd, bytes[off..].as_mut_ptr().cast(), bytes.len() - off) };
        if n > 0 {
            off += n as usize;
        } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        } else {
            return None;
        }
    }
    Some(black_box(u32::from_ne_bytes(bytes)))
}

/// Writes one byte per cache line of `buf`.
fn touch(buf: &mut [u8]) {
    for b in buf.iter_mut().step_by(64) {
        *b = b.wrapping_add(1);
    }
    black_box(buf);
}

/// The partner's side: answers round trips until told to stop, then writes its switch count
/// and round trips into the shared page. Async-signal-safe: raw syscalls and atomics only.
fn partner_loop(t: Handoff, st: &SharedState, rx: RawFd, tx: RawFd, buf: &mut [u8]) {
    let before = measure::thread_context_switches_raw();
    let mut round_trips = 0u64;
    match t {
        Handoff::Pipe => {
            while read_u32(rx) == Some(TOKEN) {
                touch(buf);
                if !write_u32(tx, TOKEN) {
                    break;
                }
                round_trips += 1;
            }
        }
        Handoff::Futex => loop {
            let mut v = st.word.load(Ordering::Acquire);
            while v == IDLE {
                futex_wait(&st.word, IDLE);
                v = st.word.load(Ordering::Acquire);
            }
            if v == QUIT {
                break;
            }
            touch(buf);
            st.word.store(IDLE, Ordering::Release);
            futex_wake(&st.word, 1);
            round_trips += 1;
        },
    }
    let switches = measure::thread_context_switches_raw().saturating_sub(before);
    st.partner_switches.store(switches, Ordering::Release);
    st.partner_round_trips.store(round_trips, Ordering::Release);
}

/// Main's side of one round trip.
fn main_round_trip(
    t: Handoff,
    st: &SharedState,
    rx: RawFd,
    tx: RawFd,
    buf: &mut [u8],
) -> Result<()> {
    touch(buf);
    match t {
        Handoff::Pipe => {
            if !write_u32(tx, TOKEN) {
                bail!(
                    "writing to the partner: {}",
                    std::io::Error::last_os_error()
                );
            }
            match read_u32(rx) {
                Some(TOKEN) => Ok(()),
                other => bail!("the partner answered {other:?} instead of the token (did it die?)"),
            }
        }
        Handoff::Futex => {
            st.word.store(PING, Ordering::Release);
            futex_wake(&st.word, 1);
            while st.word.load(Ordering::Acquire) == PING {
                futex_wait(&st.word, PING);
            }
            Ok(())
        }
    }
}

fn stop_partner(t: Handoff, st: &SharedState, tx: RawFd) {
    match t {
        Handoff::Pipe => {
            write_u32(tx, STOP);
        }
        Handoff::Futex => {
            st.word.store(QUIT, Ordering::Release);
            futex_wake(&st.word, 1);
        }
    }
}

fn ping_pong(
    t: Handoff,
    partner: Worker,
    placement: Placement,
    footprint: usize,
    plan: &Plan,
) -> Result<PingPong> {
    let page = SharedPage::new()?;
    let st = page.state();
    let (to_partner_rx, to_partner_tx) = pipe().context("pipe to the partner")?;
    let (to_main_rx, to_main_tx) = pipe().context("pipe to main")?;
    let (main_rx, main_tx) = (to_main_rx.as_raw_fd(), to_partner_tx.as_raw_fd());
    let mut main_buf = vec![0u8; footprint];
    let mut partner_buf = vec![0u8; footprint];
    let pb = &mut partner_buf[..];

    let mut round_trips = 0u64;
    // The partner owns its ends of the pipes: a forked partner's are closed in the parent at
    // once, so a dead partner shows as EOF. As a child it only makes raw system calls on memory
    // allocated before the fork (async-signal-safe).
    let partner_body = move || {
        let (rx, tx) = (to_partner_rx, to_main_tx);
        partner_loop(t, st, rx.as_raw_fd(), tx.as_raw_fd(), pb);
        0
    };
    let main_side = || -> Result<(Measurement, u64)> {
        let before = measure::context_switches(false);
        let m = measure::measure(plan, |n, sampler| {
            round_trips += n;
            time_ops(n, sampler, || {
                main_round_trip(t, st, main_rx, main_tx, &mut main_buf)
            })
        });
        stop_partner(t, st, main_tx);
        Ok((m?, measure::context_switches(false).saturating_sub(before)))
    };
    // SAFETY: the partner's body makes raw system calls on memory allocated before the fork
    // only (see above).
    let result = unsafe { partner.run_pair(placement, partner_body, main_side) };
    let (rtt, main_switches) = result?;
    let partner_round_trips = st.partner_round_trips.load(Ordering::Acquire);
    if partner_round_trips != round_trips {
        bail!("main did {round_trips} round trips but the partner answered {partner_round_trips}");
    }
    Ok(PingPong {
        transport: t,
        partner,
        placement,
        footprint_bytes: footprint,
        rtt_rounds: vec![rtt.value()],
        rtt,
        round_trips,
        main_switches,
        partner_switches: st.partner_switches.load(Ordering::Acquire),
    })
}

/// The syscalls of one round trip, in one thread, without blocking.
fn measure_one_sided(t: Handoff, cpu: usize, footprint: usize, plan: &Plan) -> Result<Measurement> {
    let _restore = measure::pin_current_thread(cpu)?;
    let mut a = vec![0u8; footprint];
    let mut b = vec![0u8; footprint];
    match t {
        Handoff::Pipe => {
            let (rx, tx) = pipe().context("pipe")?;
            let (rx, tx) = (rx.as_raw_fd(), tx.as_raw_fd());
            let half = |buf: &mut [u8]| -> Result<()> {
                touch(buf);
                if !write_u32(tx, TOKEN) || read_u32(rx) != Some(TOKEN) {
                    bail!(
                        "write + read on one pipe failed: {}",
                        std::io::Error::last_os_error()
                    );
                }
                Ok(())
            };
            measure::measure(plan, |n, s| {
                time_ops(n, s, || {
                    half(&mut a)?;
                    half(&mut b)
                })
            })
        }
        Handoff::Futex => {
            let page = SharedPage::new()?;
            let word = &page.state().word;
            // Each half: store, wake with no waiter, and a wait whose expected value is stale,
            // so it returns EAGAIN at once: the futex syscalls of one side of a round trip.
            let half = |buf: &mut [u8], store: u32, stale: u32| {
                touch(buf);
                word.store(store, Ordering::Release);
                futex_wake(word, 1);
                futex_wait(word, stale);
            };
            measure::measure(plan, |n, s| {
                time_ops(n, s, || {
                    half(&mut a, PING, IDLE);
                    half(&mut b, IDLE, PING);
                    Ok(())
                })
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_from_hand_made_runs() {
        use crate::fixture::measurement;
        let d = Data {
            timer_ns: 20.0,
            one_sided: vec![OneSided {
                transport: Handoff::Futex,
                footprint_bytes: 0,
                cpu: 0,
                per_rtt: measurement(400.0),
            }],
            ping_pong: vec![PingPong {
                transport: Handoff::Futex,
                partner: Worker::Process,
                placement: Placement::Pinned(0),
                footprint_bytes: 0,
                rtt: measurement(3_000.0),
                rtt_rounds: vec![3_000.0, 2_700.0, 3_600.0],
                round_trips: 1_000,
                main_switches: 1_000,
                partner_switches: 1_000,
            }],
        };
        let s = section(&Plan::for_profile(Profile::Tiny), &d, 2);
        let value = |k: &str| s.figure(k).map(|f| f.value);
        assert_eq!(value("switch.futex.process.pinned.rtt"), Some(3_000.0));
        assert_eq!(value("switch.futex.process.pinned"), Some(1_500.0));
        let rounds = s
            .figure("switch.futex.process.pinned")
            .and_then(|f| f.rounds.clone());
        let rounds = rounds.expect("the switch figure has its rounds");
        assert_eq!(rounds.values, vec![1_500.0, 1_350.0, 1_800.0]);
        assert_eq!(rounds.spread_pct, 20.0);
        assert_eq!(value("switch.futex.process.pinned.net"), Some(1_300.0));
        assert_eq!(
            value("switch.futex.process.pinned.switches_per_rtt"),
            Some(2.0)
        );
        assert_eq!(value("switch.futex.one_sided"), Some(400.0));
        assert!(
            s.figure("switch.futex.process.pinned")
                .and_then(|f| f.placement.as_deref())
                .is_some_and(|p| p.contains("same CPU"))
        );
    }
    use crate::NoProgress;

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn tiny_profile_gives_positive_finite_figures() {
        let config = LabConfig {
            profile: Profile::Tiny,
            ..LabConfig::default()
        };
        let s = Switch.run(&config, &mut NoProgress).expect("switch runs");
        assert_eq!(s.id, "switch");
        for t in ["pipe", "futex"] {
            for p in ["thread", "process"] {
                for suffix in ["", ".rtt"] {
                    let key = format!("switch.{t}.{p}.pinned{suffix}");
                    let f = s
                        .figure(&key)
                        .unwrap_or_else(|| panic!("figure {key} is missing"));
                    assert!(f.value > 0.0 && f.value.is_finite(), "{key} = {}", f.value);
                    assert!(
                        f.placement
                            .as_deref()
                            .is_some_and(|p| p.contains("same CPU"))
                    );
                }
                let key = format!("switch.{t}.{p}.pinned.switches_per_rtt");
                let spr = s.figure(&key).expect("switch count is reported").value;
                // Pinned to one CPU, each side must block once per round trip.
                assert!(spr >= 1.5, "{key} = {spr}");
                assert!(s.figure(&format!("switch.{t}.{p}.pinned.net")).is_some());
            }
            let os = s
                .figure(&format!("switch.{t}.one_sided"))
                .expect("one-sided cost");
            assert!(os.value > 0.0 && os.value.is_finite());
        }
        for f in &s.figures {
            assert!(f.value.is_finite(), "{} = {}", f.key, f.value);
        }
        assert!(!s.cross_checks.is_empty());
        assert!(s.method.contains("syscall cost subtracted"));
    }

    #[test]
    fn one_sided_pipe_does_not_block() {
        let plan = Plan::for_profile(Profile::Tiny);
        let m = measure_one_sided(Handoff::Pipe, measure::allowed_cpus()[0], 0, &plan)
            .expect("pipe works");
        assert!(m.value() > 0.0);
    }
}
