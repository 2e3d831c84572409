//! `ui`: keeping the main thread responsive (the mobile and desktop row of the table).
//!
//! A "UI" loop on the experiment's own thread ticks at 60 Hz: it sleeps until each frame's
//! absolute deadline (`t0 + k × 16.7 ms`, so sleep errors never accumulate), does a small fixed
//! amount of frame work, and records when the frame started. A CPU-heavy job, the same fixed
//! number of hashing rounds in every case, then runs
//!
//! * (a) on the UI thread itself, whole, inside one frame (as a click handler that does the
//!   work before returning to the loop would);
//! * (b) on one worker thread;
//! * (c) in one worker process (a warm `proctor::Pool::processes(1)`);
//! * (d) on worker threads at and above the CPU count (cores and 2 × cores), each running the
//!   whole job.
//!
//! Frame time = the interval between two frame starts. A frame time above 1.5 × the period
//! (25 ms) means the display showed the previous frame again: it counts `round(F / P) − 1`
//! missed frames (one deadline passed with no new frame, for each period it lasted). When the
//! loop falls behind it skips to the next deadline, as a display waiting for vsync would.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::Experiment;
use crate::measure::allowed_cpus;
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::stats::summarize;
use crate::verdict::keys;
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The UI-responsiveness experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ui;

/// The frame period: 60 Hz.
pub const PERIOD: Duration = Duration::from_nanos(16_666_667);

/// A frame time above this many periods is a missed frame.
pub const MISSED_FACTOR: f64 = 1.5;

/// Where the job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Case {
    /// (a) On the UI thread, whole, inside one frame.
    UiThread,
    /// (b) On one worker thread.
    WorkerThread,
    /// (c) In one worker process of a proctor process pool.
    WorkerProcess,
    /// (d) On as many worker threads as CPUs, each running the whole job.
    ThreadsCores,
    /// (d) On twice as many worker threads as CPUs, each running the whole job.
    #[serde(rename = "threads_2x_cores")]
    Threads2xCores,
}

impl Case {
    /// Every case, in report order.
    pub const ALL: [Case; 5] = [
        Case::UiThread,
        Case::WorkerThread,
        Case::WorkerProcess,
        Case::ThreadsCores,
        Case::Threads2xCores,
    ];

    /// The word figure keys use.
    pub fn key(self) -> &'static str {
        match self {
            Case::UiThread => "ui_thread",
            Case::WorkerThread => "worker_thread",
            Case::WorkerProcess => "worker_process",
            Case::ThreadsCores => "threads_cores",
            Case::Threads2xCores => "threads_2x_cores",
        }
    }

    fn label(self, cpus: usize) -> String {
        match self {
            Case::UiThread => "(a) UI thread".to_string(),
            Case::WorkerThread => "(b) worker thread".to_string(),
            Case::WorkerProcess => "(c) worker process".to_string(),
            Case::ThreadsCores => format!("(d) {cpus} threads = CPUs"),
            Case::Threads2xCores => format!("(d) {} threads = 2 × CPUs", 2 * cpus),
        }
    }

    /// Worker threads or processes running the job at once (0: the UI thread runs it).
    fn workers(self, cpus: usize) -> usize {
        match self {
            Case::UiThread => 0,
            Case::WorkerThread | Case::WorkerProcess => 1,
            Case::ThreadsCores => cpus,
            Case::Threads2xCores => 2 * cpus,
        }
    }
}

/// Every sample behind the section, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UiResult {
    /// The frame period, in nanoseconds.
    pub period_ns: f64,
    /// Hashing rounds of one job (the same in every case).
    pub job_rounds: u64,
    /// The job's checksum (every run of every case must agree).
    pub checksum: u64,
    /// The CPUs this process may run on.
    pub cpus: usize,
    /// Frames run before the job starts, discarded (warm-up).
    pub warmup_frames: usize,
    /// Frames recorded after the job finished.
    pub tail_frames: usize,
    /// Repetitions of every case.
    pub repetitions: usize,
    /// One entry per case, in [`Case::ALL`] order.
    pub cases: Vec<CaseResult>,
}

/// One case over all its repetitions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaseResult {
    /// Where the job ran.
    pub case: Case,
    /// Worker threads or processes that ran the job at once (0: the UI thread).
    pub workers: usize,
    /// Every frame time recorded, all repetitions, in nanoseconds.
    pub frame_ns: Vec<f64>,
    /// Missed frames of each repetition.
    pub missed: Vec<u64>,
    /// Each job's own time (start to end inside the thread or process that ran it), in ns.
    pub job_ns: Vec<f64>,
    /// From starting the job to the first frame that saw it done, per repetition, in ns.
    pub wall_ns: Vec<f64>,
}

impl CaseResult {
    fn missed_per_run(&self) -> f64 {
        self.missed.iter().sum::<u64>() as f64 / self.missed.len().max(1) as f64
    }
}

/// `rounds` of xorshift64 folded into FNV-1a: pure CPU work with a checksum to keep it alive.
fn hash_rounds(rounds: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..black_box(rounds) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h = (h ^ x).wrapping_mul(0x0000_0100_0000_01b3);
    }
    black_box(h)
}

/// The job: its checksum and its own time in nanoseconds. A plain `fn`, so a process pool
/// can run it too.
fn job(rounds: u64) -> (u64, u64) {
    let start = Instant::now();
    let h = hash_rounds(rounds);
    (h, start.elapsed().as_nanos() as u64)
}

/// The rounds that take about `target` here on an otherwise idle CPU: a batch grows to at
/// least `target / 20`, then the fastest of three such batches sets the rate (outside load
/// only slows a batch down). The calibration is the warm-up.
fn calibrate(target: Duration) -> u64 {
    let mut rounds = 1u64 << 14;
    while rounds < 1 << 40 && Duration::from_nanos(job(rounds).1) < target / 20 {
        rounds = rounds.saturating_mul(4);
    }
    let best = (0..3).map(|_| job(rounds).1.max(1)).min().unwrap_or(1);
    ((rounds as f64) * target.as_nanos() as f64 / best as f64).ceil() as u64
}

/// What the UI loop asks of a case: start the job now, or is it done?
enum Event {
    Start,
    Poll,
}

/// The frames of one run: frame times from the frame that started the job until `tail`
/// frames after one saw it done, and the wall time until then.
struct Run {
    frame_ns: Vec<f64>,
    wall_ns: f64,
}

/// The 60 Hz loop. `case(Event::Start)` starts the job (and may run it, for the UI-thread
/// case); `case(Event::Poll)` says whether it is done. Never blocks on the job itself.
fn ui_loop(warmup: usize, tail: usize, case: &mut dyn FnMut(Event) -> bool) -> Run {
    let t0 = Instant::now();
    let mut k: u64 = 0;
    let mut frame = 0usize;
    let mut starts: Vec<Instant> = Vec::new();
    let mut job_start: Option<Instant> = None;
    let mut done_at: Option<(Instant, usize)> = None;
    let mut scratch = [0u8; 256];
    loop {
        let deadline = t0 + Duration::from_nanos(PERIOD.as_nanos() as u64 * k);
        let now = Instant::now();
        if deadline > now {
            std::thread::sleep(deadline - now);
        }
        let start = Instant::now();
        // The frame's own work: a little drawing, far below the frame budget.
        for (i, b) in scratch.iter_mut().enumerate() {
            *b = b.wrapping_add(i as u8 ^ frame as u8);
        }
        black_box(&scratch);
        if frame == warmup {
            job_start = Some(start);
            starts.push(start);
            case(Event::Start);
        } else if frame > warmup {
            starts.push(start);
            match done_at {
                None if case(Event::Poll) => done_at = Some((start, frame)),
                Some((_, f)) if frame >= f + tail => break,
                _ => {}
            }
        }
        frame += 1;
        // The next deadline still ahead: a late frame skips the deadlines it missed.
        let elapsed = t0.elapsed().as_nanos();
        let next = elapsed.div_ceil(PERIOD.as_nanos()) as u64;
        k = (k + 1).max(next);
    }
    let frame_ns = starts
        .windows(2)
        .map(|w| (w[1] - w[0]).as_nanos() as f64)
        .collect();
    let (done, _) = done_at.expect("the loop ends only after the job was seen done");
    let wall_ns = (done - job_start.expect("the job started")).as_nanos() as f64;
    Run { frame_ns, wall_ns }
}

/// Missed frames among these frame times: `round(F / P) − 1` for each F above 1.5 × P.
pub fn missed_frames(frame_ns: &[f64], period_ns: f64) -> u64 {
    frame_ns
        .iter()
        .filter(|&&f| f > MISSED_FACTOR * period_ns)
        .map(|&f| ((f / period_ns).round() as u64).saturating_sub(1))
        .sum()
}

/// One run of `case`: the frames, and each job's (checksum, own time).
fn run_case(
    case: Case,
    rounds: u64,
    cpus: usize,
    warmup: usize,
    tail: usize,
    pool: &proctor::Pool,
) -> Result<(Run, Vec<(u64, u64)>)> {
    match case {
        Case::UiThread => {
            let mut out = None;
            let run = ui_loop(warmup, tail, &mut |e| match e {
                Event::Start => {
                    out = Some(job(rounds));
                    true
                }
                Event::Poll => true,
            });
            Ok((run, out.into_iter().collect()))
        }
        Case::WorkerProcess => {
            let mut task = None;
            let run = ui_loop(warmup, tail, &mut |e| match e {
                Event::Start => {
                    task = Some(pool.submit(job, rounds));
                    false
                }
                Event::Poll => task.as_ref().is_some_and(|t| t.is_finished()),
            });
            let task = task.context("the UI loop started the job")?;
            let out = task.join().context("the worker process ran the job")?;
            Ok((run, vec![out]))
        }
        Case::WorkerThread | Case::ThreadsCores | Case::Threads2xCores => {
            let n = case.workers(cpus);
            std::thread::scope(|s| {
                let mut handles = Vec::new();
                let run = ui_loop(warmup, tail, &mut |e| match e {
                    Event::Start => {
                        handles.extend((0..n).map(|_| s.spawn(move || job(rounds))));
                        false
                    }
                    Event::Poll => handles.iter().all(|h| h.is_finished()),
                });
                let outs = handles
                    .into_iter()
                    .map(|h| h.join().expect("the hashing job does not panic"))
                    .collect();
                Ok((run, outs))
            })
        }
    }
}

impl Experiment for Ui {
    fn id(&self) -> &'static str {
        "ui"
    }

    fn title(&self) -> &'static str {
        "Keeping the UI thread responsive"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let (target, repetitions, warmup, tail) = match config.profile {
            Profile::Tiny => (Duration::from_millis(20), 1, 2, 2),
            Profile::Quick => (Duration::from_millis(200), 2, 6, 10),
            Profile::Full => (Duration::from_secs(1), 5, 10, 30),
        };
        let cpus = allowed_cpus().len().max(1);
        progress.begin("ui", (Case::ALL.len() * repetitions) as u64 + 1);
        let rounds = calibrate(target);
        let checksum = hash_rounds(rounds);
        // A warm worker process: built, and one small job run, before any frame is timed.
        let pool = proctor::Pool::processes(1)
            .build()
            .context("build a one-worker process pool")?;
        pool.submit(job, 1_000)
            .join()
            .context("warm up the worker process")?;
        progress.advance(1, "calibrated the job, warmed the worker process");

        let mut cases: Vec<CaseResult> = Case::ALL
            .iter()
            .map(|&case| CaseResult {
                case,
                workers: case.workers(cpus),
                frame_ns: Vec::new(),
                missed: Vec::new(),
                job_ns: Vec::new(),
                wall_ns: Vec::new(),
            })
            .collect();
        // Repetitions interleave the cases, so a burst of outside load spreads over all.
        for _ in 0..repetitions {
            for r in &mut cases {
                let (run, outs) = run_case(r.case, rounds, cpus, warmup, tail, &pool)?;
                for &(h, ns) in &outs {
                    if h != checksum {
                        bail!(
                            "the job's checksum differs {}: {h:#x} vs {checksum:#x}",
                            r.case.label(cpus)
                        );
                    }
                    r.job_ns.push(ns as f64);
                }
                r.missed
                    .push(missed_frames(&run.frame_ns, PERIOD.as_nanos() as f64));
                r.frame_ns.extend(run.frame_ns);
                r.wall_ns.push(run.wall_ns);
                progress.advance(1, &r.case.label(cpus));
            }
        }
        pool.shutdown();
        progress.end();

        let result = UiResult {
            period_ns: PERIOD.as_nanos() as f64,
            job_rounds: rounds,
            checksum,
            cpus,
            warmup_frames: warmup,
            tail_frames: tail,
            repetitions,
            cases,
        };
        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_frames_count_the_deadlines_a_long_frame_covers() {
        let p = 20.0e6;
        // On time, slightly late (under 1.5 periods): nothing missed.
        assert_eq!(missed_frames(&[p, 1.2 * p, 1.49 * p], p), 0);
        // Just over 1.5 periods: one refresh showed the old frame again.
        assert_eq!(missed_frames(&[1.51 * p], p), 1);
        // A one-second freeze at 20 ms covers 50 deadlines: 49 missed frames.
        assert_eq!(missed_frames(&[1e9], p), 49);
        assert_eq!(missed_frames(&[], p), 0);
    }

    #[test]
    fn the_job_is_deterministic_and_grows_with_its_rounds() {
        assert_eq!(job(10_000).0, job(10_000).0);
        assert_ne!(hash_rounds(10_000), hash_rounds(10_001));
        let rounds = calibrate(Duration::from_millis(2));
        assert!(rounds >= 1 << 14, "{rounds}");
    }
}
