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
//! **Placement** (rule 3): pairs of CPUs from [`crate::topology`]: the same CPU (both pinned
//! to one CPU: context switches, the figures the verdict reads), and every cross pair the
//! machine offers (SMT sibling, shared LLC, other LLC, other node; each side pinned to its own
//! CPU: cross-CPU wake-up latency, not a context switch), each labelled with its placement.
//!
//! **Indirect cost** (rule 5; Li, Ding & Shen 2007): on the same CPU, over pipes, each side
//! touches a buffer of footprint F, one byte every S bytes (the stride), between hand-offs.
//! The total cost per switch is (RTT − the same touches and syscalls in one thread) / 2, as
//! their c2; the indirect cost is that total less the direct cost c1 (the same-CPU pipe
//! figure, syscall cost subtracted, of the same partner kind). It is swept over F
//! and S, for threads and for processes, with each side's own buffer (private) and with one
//! buffer both sides touch (a `MAP_SHARED` mapping, for threads and processes alike). The
//! machine facts that decide a process's extra indirect cost (PCID, page-table isolation,
//! IBPB) are recorded beside it ([`facts`]).
//!
//! The forked partner runs in a child of a possibly multi-threaded process, so it only uses
//! raw system calls (`read`, `write`, `futex`, `getrusage`) and `_exit`; it never allocates.
//!
//! This file is long because the ping-pong is written out twice over (pipe and futex, with a
//! shared page both sides can reach whether they are threads or processes), beside the
//! one-sided baselines and the cross-checks against `perf bench sched pipe`.

use std::hint::black_box;
use std::os::fd::{AsRawFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

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
use crate::topology::{self, Mixture, Pair, Topology, current_cpu, tag};
use crate::units::micros;
use crate::{LabConfig, Progress};

mod facts;
mod section;
use facts::Facts;
use section::section;

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

/// Whether the two sides touch buffers of their own or one buffer they share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Sharing {
    /// Each side its own private mapping (a forked partner's is its own copy).
    Private,
    /// One `MAP_SHARED` mapping both sides touch, threads and processes alike.
    Shared,
}

impl Sharing {
    fn key(self) -> &'static str {
        match self {
            Sharing::Private => "private",
            Sharing::Shared => "shared",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Sharing::Private => "own buffers",
            Sharing::Shared => "one shared buffer",
        }
    }
}

/// What each side does between hand-offs: touch `footprint_bytes`, one byte every
/// `stride_bytes`, of its own buffer or of the shared one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
struct Work {
    footprint_bytes: usize,
    stride_bytes: usize,
    sharing: Sharing,
}

impl Work {
    /// No work between hand-offs: the direct cost.
    const NONE: Work = Work {
        footprint_bytes: 0,
        stride_bytes: 64,
        sharing: Sharing::Private,
    };
}

/// One ping-pong run.
#[derive(Debug, Serialize)]
struct PingPong {
    transport: Handoff,
    partner: Worker,
    placement: Placement,
    /// The CPUs from the topology and how they relate; `None` when unpinned.
    pair: Option<Pair>,
    #[serde(flatten)]
    work: Work,
    /// Per round trip: the round whose figure is the median of the rounds.
    rtt: Measurement,
    /// The round trip of each independent round (one unless the headline shows it).
    rtt_rounds: Vec<f64>,
    /// Round trips done (cold start, calibration, warm-up and measured).
    round_trips: u64,
    main_switches: u64,
    partner_switches: u64,
    /// Where an unpinned run's measured batches actually ran, by placement.
    #[serde(skip_serializing_if = "Option::is_none")]
    mixture: Option<Mixture>,
}

impl PingPong {
    fn switches_per_rtt(&self) -> f64 {
        (self.main_switches + self.partner_switches) as f64 / self.round_trips.max(1) as f64
    }
}

/// The same syscalls (and touches) in one thread, per round trip.
#[derive(Debug, Serialize)]
struct OneSided {
    transport: Handoff,
    #[serde(flatten)]
    work: Work,
    cpu: usize,
    per_rtt: Measurement,
}

#[derive(Debug, Serialize)]
struct Data {
    timer_ns: f64,
    /// The same-CPU pair every switch figure (and the sweep) ran on.
    same_cpu: Pair,
    /// The direct cost's one-sided baselines (no footprint).
    one_sided: Vec<OneSided>,
    /// The direct cost: no footprint, every placement.
    ping_pong: Vec<PingPong>,
    /// How each sweep point was measured (fewer batches than the direct figures).
    sweep_plan: Plan,
    /// The indirect-cost sweep's one-sided baselines, one per footprint, stride and sharing.
    sweep_one_sided: Vec<OneSided>,
    /// The indirect-cost sweep: pipes, same CPU, every footprint above zero, stride, sharing and
    /// partner.
    sweep: Vec<PingPong>,
    /// PCID, page-table isolation and IBPB: what decides a process switch's extra cost.
    facts: Facts,
}

/// The footprints and strides of the indirect-cost sweep (rule 5): each side's footprint
/// from 0 to about the last-level cache (capped, since a VM may report a huge LLC and
/// touching it every round trip would dominate the run), with cache-line and page strides.
fn sweep_axes(profile: Profile) -> (Vec<usize>, Vec<usize>) {
    let llc = crate::machine::cache_size(3).map_or(4 << 20, |b| b as usize);
    let (mut footprints, strides) = match profile {
        Profile::Tiny => (vec![0, 64 * KIB], vec![64]),
        Profile::Quick => (vec![0, 256 * KIB, llc.min(8 << 20)], vec![64, 4096]),
        Profile::Full => {
            let mut v = vec![0, 16 * KIB, 256 * KIB, llc.min(32 << 20)];
            v.extend(crate::machine::cache_size(2).map(|b| b as usize));
            (v, vec![8, 64, 4096])
        }
    };
    footprints.sort_unstable();
    footprints.dedup();
    (footprints, strides)
}

/// The plan of one sweep point: fewer, shorter batches than the direct figures, since the
/// sweep has many points (25 in the full profile) and the effect it looks for is large.
fn sweep_plan(plan: &Plan, profile: Profile) -> Plan {
    let (warmup_batches, batches, ms) = match profile {
        Profile::Tiny => return *plan,
        Profile::Quick => (1, 5, 5),
        Profile::Full => (2, 10, 10),
    };
    Plan {
        warmup_batches,
        batches,
        min_batch: std::time::Duration::from_millis(ms),
        ..*plan
    }
}

/// Every work of the sweep: each footprint above zero at each stride, with private buffers
/// and with a shared one. (The zero footprint is the direct cost, measured apart.)
fn sweep_works(footprints: &[usize], strides: &[usize]) -> Vec<Work> {
    let mut works = Vec::new();
    for &footprint_bytes in footprints.iter().filter(|&&f| f > 0) {
        for &stride_bytes in strides {
            for sharing in [Sharing::Private, Sharing::Shared] {
                works.push(Work {
                    footprint_bytes,
                    stride_bytes,
                    sharing,
                });
            }
        }
    }
    works
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
        let sweep_plan = sweep_plan(&plan, config.profile);
        let pairs = Topology::detect().pairs();
        let Some(same) = pairs
            .iter()
            .copied()
            .find(|p| p.placement == topology::Placement::SameCpu)
        else {
            bail!("no CPU is allowed for this process (sched_getaffinity failed)");
        };
        let cpu = same.a;
        let crosses: Vec<Pair> = pairs.iter().copied().filter(|p| p.a != p.b).collect();
        let (footprints, strides) = sweep_axes(config.profile);
        let works = sweep_works(&footprints, &strides);
        let transports = [Handoff::Pipe, Handoff::Futex];
        let partners = [Worker::Thread, Worker::Process];
        let steps = transports.len() * (1 + partners.len())
            + crosses.len() * transports.len() * partners.len()
            + partners.len()
            + works.len() * (1 + partners.len())
            + 1;
        progress.begin("switch", steps as u64);

        let timer_ns = measure::timer_cost().as_nanos() as f64;
        let mut one_sided = Vec::new();
        let mut runs = Vec::new();
        for t in transports {
            progress.advance(0, &format!("{} one-sided", t.key()));
            let m = measure_one_sided(t, cpu, Work::NONE, &plan)
                .with_context(|| format!("one-sided {} syscalls", t.key()))?;
            one_sided.push(OneSided {
                transport: t,
                work: Work::NONE,
                cpu,
                per_rtt: m,
            });
            progress.advance(1, "");
            for p in partners {
                progress.advance(0, &format!("{} {} same CPU", t.key(), p.key()));
                // The headline's figures (futex, same CPU) come from independent rounds, each
                // with a fresh partner.
                let rounds = if t == Handoff::Futex { ROUNDS } else { 1 };
                let (mut r, rtt_rounds) = median_round(
                    rounds,
                    || ping_pong(t, p, Some(same), Work::NONE, &plan),
                    |r| r.rtt.value(),
                )
                .with_context(|| {
                    format!("{} ping-pong between {} on cpu {cpu}", t.key(), p.plural())
                })?;
                r.rtt_rounds = rtt_rounds;
                runs.push(r);
                progress.advance(1, "");
            }
        }
        // Every cross pair the machine offers, each labelled by its placement: wake-ups.
        for pair in &crosses {
            for t in transports {
                for p in partners {
                    let place = pair.describe();
                    progress.advance(0, &format!("{} {} {place}", t.key(), p.key()));
                    let r = ping_pong(t, p, Some(*pair), Work::NONE, &plan).with_context(|| {
                        format!("{} ping-pong between {}, {place}", t.key(), p.plural())
                    })?;
                    runs.push(r);
                    progress.advance(1, "");
                }
            }
        }
        // Unpinned pipe runs, to compare with `perf bench sched pipe` as it runs by default.
        for p in partners {
            progress.advance(0, &format!("pipe {} unpinned", p.key()));
            let r = ping_pong(Handoff::Pipe, p, None, Work::NONE, &plan)
                .with_context(|| format!("pipe ping-pong between {}, unpinned", p.plural()))?;
            runs.push(r);
            progress.advance(1, "");
        }
        // The indirect cost: the footprint × stride sweep, pipes, same CPU.
        let mut sweep_one_sided = Vec::new();
        let mut sweep = Vec::new();
        for &w in &works {
            let what = format!(
                "{} KiB every {} B, {}",
                w.footprint_bytes / KIB,
                w.stride_bytes,
                w.sharing.words()
            );
            progress.advance(0, &format!("sweep one-sided, {what}"));
            let m = measure_one_sided(Handoff::Pipe, cpu, w, &sweep_plan)
                .with_context(|| format!("one-sided pipe syscalls touching {what}"))?;
            sweep_one_sided.push(OneSided {
                transport: Handoff::Pipe,
                work: w,
                cpu,
                per_rtt: m,
            });
            progress.advance(1, "");
            for p in partners {
                progress.advance(0, &format!("sweep {}, {what}", p.plural()));
                let r =
                    ping_pong(Handoff::Pipe, p, Some(same), w, &sweep_plan).with_context(|| {
                        format!("pipe ping-pong between {} touching {what}", p.plural())
                    })?;
                sweep.push(r);
                progress.advance(1, "");
            }
        }
        progress.advance(0, "cross-checks (perf bench sched pipe...)");
        let data = Data {
            timer_ns,
            same_cpu: same,
            one_sided,
            ping_pong: runs,
            sweep_plan,
            sweep_one_sided,
            sweep,
            facts: Facts::detect(),
        };
        let mut s = section(&plan, &data, !crosses.is_empty());
        s.cross_checks = cross_checks(&s, config.profile, cpu);
        if !crosses.is_empty() {
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
    /// The CPU the partner last answered from, plus one (0: not known), in unpinned runs.
    partner_cpu: AtomicU32,
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

/// Reads and writes one byte every `stride` bytes of `buf` (relaxed atomics: plain loads and
/// stores, which two sides taking turns may do on one shared buffer).
fn touch(buf: &[AtomicU8], stride: usize) {
    for b in buf.iter().step_by(stride.max(1)) {
        b.store(b.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
    black_box(buf);
}

/// A buffer for the footprint: a fresh anonymous mapping, private or `MAP_SHARED`, unmapped on
/// drop. A mapping rather than a heap buffer, so private and shared buffers differ only in that
/// flag, and a forked partner's private buffer is its own copy of pages the parent never wrote.
#[derive(Debug)]
struct Region {
    ptr: Option<NonNull<AtomicU8>>,
    len: usize,
}

impl Region {
    fn new(len: usize, shared: bool) -> Result<Region> {
        let Some(size) = std::num::NonZeroUsize::new(len) else {
            return Ok(Region { ptr: None, len: 0 });
        };
        let flags = if shared {
            MapFlags::MAP_SHARED
        } else {
            MapFlags::MAP_PRIVATE
        };
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing aliases
        // nothing; it is zero-filled, a valid array of AtomicU8.
        let ptr = unsafe {
            mmap_anonymous(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                flags,
            )
        }
        .with_context(|| format!("mmap of a {len}-byte footprint"))?;
        Ok(Region {
            ptr: Some(ptr.cast()),
            len,
        })
    }

    fn bytes(&self) -> &[AtomicU8] {
        match self.ptr {
            // SAFETY: the mapping lives as long as `self`, is `len` bytes long, and is only
            // accessed through atomics.
            Some(p) => unsafe { std::slice::from_raw_parts(p.as_ptr(), self.len) },
            None => &[],
        }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        if let Some(p) = self.ptr {
            // SAFETY: the mapping was made by `new` with this length; no borrow of it outlives
            // `self`.
            let _ = unsafe { munmap(p.cast(), self.len) };
        }
    }
}

/// The two sides' buffers for `work`: each its own, or one both touch.
fn buffers(work: Work) -> Result<(Region, Option<Region>)> {
    let shared = work.sharing == Sharing::Shared;
    let main = Region::new(work.footprint_bytes, shared)?;
    let partner = if shared {
        None
    } else {
        Some(Region::new(work.footprint_bytes, false)?)
    };
    Ok((main, partner))
}

/// The partner's side: answers round trips until told to stop, then writes its switch count
/// and round trips into the shared page. Async-signal-safe: raw syscalls and atomics only.
fn partner_loop(
    t: Handoff,
    st: &SharedState,
    rx: RawFd,
    tx: RawFd,
    buf: &[AtomicU8],
    stride: usize,
    track_cpu: bool,
) {
    let before = measure::thread_context_switches_raw();
    let mut round_trips = 0u64;
    // `sched_getcpu` is a vDSO read (RDPID or RDTSCP) and allocates nothing: safe in a forked
    // child. Only unpinned runs pay for it.
    let note_cpu = || {
        if track_cpu && let Ok(cpu) = nix::sched::sched_getcpu() {
            st.partner_cpu.store(cpu as u32 + 1, Ordering::Relaxed);
        }
    };
    match t {
        Handoff::Pipe => {
            while read_u32(rx) == Some(TOKEN) {
                note_cpu();
                touch(buf, stride);
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
            note_cpu();
            touch(buf, stride);
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
    buf: &[AtomicU8],
    stride: usize,
) -> Result<()> {
    touch(buf, stride);
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

/// One ping-pong of `t` between main and a `partner` on `pair` (unpinned when `None`), each
/// side doing `work` between hand-offs.
fn ping_pong(
    t: Handoff,
    partner: Worker,
    pair: Option<Pair>,
    work: Work,
    plan: &Plan,
) -> Result<PingPong> {
    let placement = match pair {
        None => Placement::Unpinned,
        Some(p) if p.a == p.b => Placement::Pinned(p.a),
        Some(p) => Placement::CrossCpu(p.a, p.b),
    };
    let page = SharedPage::new()?;
    let st = page.state();
    let (to_partner_rx, to_partner_tx) = pipe().context("pipe to the partner")?;
    let (to_main_rx, to_main_tx) = pipe().context("pipe to main")?;
    let (main_rx, main_tx) = (to_main_rx.as_raw_fd(), to_partner_tx.as_raw_fd());
    let (main_region, partner_region) = buffers(work)?;
    let main_buf = main_region.bytes();
    let pb = partner_region.as_ref().map_or(main_buf, Region::bytes);
    let stride = work.stride_bytes;

    let mut round_trips = 0u64;
    // The partner owns its ends of the pipes: a forked partner's are closed in the parent at
    // once, so a dead partner shows as EOF. As a child it only makes raw system calls on memory
    // allocated before the fork (async-signal-safe).
    let track_cpu = pair.is_none();
    let partner_body = move || {
        let (rx, tx) = (to_partner_rx, to_main_tx);
        partner_loop(t, st, rx.as_raw_fd(), tx.as_raw_fd(), pb, stride, track_cpu);
        0
    };
    // In an unpinned run, each untimestamped batch tagged by where both sides were before
    // and after it; the measured batches are the last `plan.batches` of those.
    let topology = Topology::detect();
    let mut tags = Vec::new();
    let where_now = || {
        let partner = st.partner_cpu.load(Ordering::Relaxed);
        current_cpu().zip((partner > 0).then(|| partner as usize - 1))
    };
    let main_side = || -> Result<(Measurement, u64)> {
        let before = measure::context_switches(false);
        let m = measure::measure(plan, |n, sampler| {
            round_trips += n;
            let start = where_now();
            let d = time_ops(n, sampler, || {
                main_round_trip(t, st, main_rx, main_tx, main_buf, stride)
            })?;
            if track_cpu
                && !sampler.is_active()
                && let (Some(b), Some(a)) = (start, where_now())
            {
                tags.push(tag(&topology, b, a, d.as_nanos() as f64 / n as f64));
            }
            Ok(d)
        });
        stop_partner(t, st, main_tx);
        Ok((m?, measure::context_switches(false).saturating_sub(before)))
    };
    // SAFETY: the partner's body makes raw system calls on memory allocated before the fork
    // only (see above).
    let result = unsafe { partner.run_pair(placement, partner_body, main_side) };
    let (rtt, main_switches) = result?;
    let measured = tags.len().saturating_sub(plan.batches.max(1) as usize);
    let mixture = Mixture::of(&tags[measured..]);
    let partner_round_trips = st.partner_round_trips.load(Ordering::Acquire);
    if partner_round_trips != round_trips {
        bail!("main did {round_trips} round trips but the partner answered {partner_round_trips}");
    }
    Ok(PingPong {
        transport: t,
        partner,
        placement,
        pair,
        work,
        rtt_rounds: vec![rtt.value()],
        rtt,
        round_trips,
        main_switches,
        partner_switches: st.partner_switches.load(Ordering::Acquire),
        mixture,
    })
}

/// The syscalls of one round trip, and both sides' touches of `work`, in one thread, without
/// blocking.
fn measure_one_sided(t: Handoff, cpu: usize, work: Work, plan: &Plan) -> Result<Measurement> {
    let _restore = measure::pin_current_thread(cpu)?;
    let (a_region, b_region) = buffers(work)?;
    let a = a_region.bytes();
    let b = b_region.as_ref().map_or(a, Region::bytes);
    let stride = work.stride_bytes;
    match t {
        Handoff::Pipe => {
            let (rx, tx) = pipe().context("pipe")?;
            let (rx, tx) = (rx.as_raw_fd(), tx.as_raw_fd());
            let half = |buf: &[AtomicU8]| -> Result<()> {
                touch(buf, stride);
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
                    half(a)?;
                    half(b)
                })
            })
        }
        Handoff::Futex => {
            let page = SharedPage::new()?;
            let word = &page.state().word;
            // Each half: store, wake with no waiter, and a wait whose expected value is stale,
            // so it returns EAGAIN at once: the futex syscalls of one side of a round trip.
            let half = |buf: &[AtomicU8], store: u32, stale: u32| {
                touch(buf, stride);
                word.store(store, Ordering::Release);
                futex_wake(word, 1);
                futex_wait(word, stale);
            };
            measure::measure(plan, |n, s| {
                time_ops(n, s, || {
                    half(a, PING, IDLE);
                    half(b, IDLE, PING);
                    Ok(())
                })
            })
        }
    }
}

#[cfg(test)]
mod tests;
