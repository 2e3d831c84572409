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
//!
//! This file is long because the ping-pong is written out twice over (pipe and futex, with a
//! shared page both sides can reach whether they are threads or processes), beside the
//! one-sided baselines and the cross-checks against `perf bench sched pipe`.

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

mod section;
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
mod tests;
