//! Process mode: worker processes forked by the fork server, driven from the caller's thread.
//!
//! There is no dispatcher thread on the fast path. `submit` writes a job straight to an idle
//! worker's pipe, and whichever thread waits for an outcome (`join`, `map`, `shutdown`)
//! becomes the *driver*: it reads finished jobs' outcomes from their arenas, hands queued
//! jobs to idle workers, enforces timeouts and replaces dead workers. Other waiting threads
//! sleep on a condition variable until their outcome arrives or the driver role is free (the
//! leader/followers pattern). A `submit(f, x).join()` round trip is therefore one write and
//! one read on each side, like a bare pipe ping-pong, with no extra thread hand-off.
//!
//! A small *supervisor* thread per pool does the same work when nobody waits: every
//! [`STDERR_TICK`] while a worker is busy (sooner when a timeout is due) it takes the driver
//! role if it is free, so timeouts fire on time, queued jobs reach workers that finished, and
//! workers' stderr is read, even while the caller does something else.
//!
//! Who gets which outcome after a fault is decided by one pure state machine,
//! [`recovery`]; this file carries out its [`Action`]s: it writes frames, reads arenas, kills
//! and starts processes. The pieces:
//!
//! * `recovery.rs` — the state machine (slots, runs, the rules on death), tested alone;
//! * `handle.rs` — one worker process as the parent holds it (pipes, arena, stderr);
//! * `outcome.rs` — the sinks that collect outcomes, and the record decoder;
//! * this file — the pool: encoding jobs, driving, the supervisor, shutdown.

mod handle;
mod outcome;
mod recovery;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::Write;
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Config, TaskInner};

use crate::arena;
use crate::doorbell::Doorbell;
use crate::error::{Error, ErrorKind, TaskError};
use crate::server::{Exit, ForkServer};
use crate::sys::SharedMapping;
use crate::wire::{self, MAX_FRAME};
use crate::worker::{EntryFn, entry};

use handle::{Retired, Worker};
pub(crate) use outcome::decode_records_for_fuzz;
use outcome::{MapSink, RawOutcome, RecordIter, Sink, SlotSink};
use recovery::{Action, Death, Fate, Machine, Run, Seen};

/// Time between SIGTERM and SIGKILL for a timed-out worker.
const KILL_GRACE: Duration = Duration::from_millis(100);
/// How long to wait for the fork server to report a worker's end.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// A `map` job is cut when its arguments reach this size, so large items stream.
const JOB_BYTES: usize = 8 << 20;
/// Arguments encoded by one serializer call in `map` (a call per item was a fifth of the
/// parent's time in a map of a million `u64`s).
const ENCODE_RUN: usize = 1024;
/// How often busy workers' stderr is read, and the supervisor looks at the pool, when
/// nothing else happens (so also the longest a worker blocked on a full stderr pipe waits).
const STDERR_TICK: Duration = Duration::from_millis(10);
/// Quiet ticks after which the supervisor sleeps until the next job arrives.
const PARK_AFTER: u32 = 100;

/// Locks a mutex whether or not a thread panicked while holding it: the pool's state stays
/// consistent across a panic (user code — a result's `Deserialize` — runs under no lock
/// unguarded), so a poisoned lock must not turn every later call, `Drop` included, into a
/// panic.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Encodes again the arguments of tasks of a job, for a run that resumes it after its worker
/// died. (The worker's header says how many tasks were done, never where their arguments
/// ended, so a torn header cannot shift an argument onto another task.)
trait Reencode: Send + Sync {
    /// Appends the arguments of items `first..first + count` of the call.
    fn reencode(&self, first: usize, count: usize, out: &mut Vec<u8>) -> Result<(), String>;
}

/// A `map` call's items, kept until the call returns.
struct Items<A>(Mutex<Vec<A>>);

impl<A: Serialize + Send> Reencode for Items<A> {
    fn reencode(&self, first: usize, count: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let items = lock(&self.0);
        let run = items
            .get(first..first + count)
            .ok_or_else(|| "a resumed run lies outside its call's items".to_string())?;
        wire::append_capped(&wire::Concat(run), out, MAX_FRAME).map_err(|e| e.to_string())
    }
}

/// One job: consecutive tasks of one call, sent to a worker as one frame.
struct JobData {
    first_task: u64,
    /// The first task's index in its call (and sink).
    first_index: usize,
    count: usize,
    entry: u64,
    /// The whole job's `Run` frame.
    frame: Vec<u8>,
    sink: Arc<dyn Sink>,
    /// The call's items, to encode a resumed run (`None` for a single task: its frame is
    /// the only one it ever needs).
    items: Option<Arc<dyn Reencode>>,
}

type Job = Arc<JobData>;

impl std::fmt::Debug for JobData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("first_task", &self.first_task)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl JobData {
    /// The frame of `run`: the job's own, or one encoded afresh for a resumed part of it.
    fn frame_for(&self, run: &Run<Job>, secret: u64) -> Result<Cow<'_, [u8]>, String> {
        if run.from == 0 && run.count == self.count {
            return Ok(Cow::Borrowed(&self.frame));
        }
        let items = self
            .items
            .as_ref()
            .ok_or_else(|| "a single task's job cannot be split".to_string())?;
        let mut frame = Vec::new();
        wire::begin_run(&mut frame);
        items.reencode(self.first_index + run.from, run.count, &mut frame)?;
        let first = self.first_task + run.from as u64;
        wire::finish_run(
            &mut frame,
            first,
            self.entry,
            self.entry ^ secret,
            run.count as u32,
        );
        Ok(Cow::Owned(frame))
    }

    /// Tasks `from..from + count` get `err(task)`.
    fn fail(&self, from: usize, count: usize, err: impl Fn(u64) -> TaskError) {
        let base = self.first_task;
        let mut it = (from..from + count).map(|k| RawOutcome::Err(err(base + k as u64)));
        self.sink.deliver(self.first_index + from, &mut it);
    }
}

/// Records copied out of an arena, waiting to be decoded once the worker has its next job.
struct Delivery {
    job: Job,
    from: usize,
    n: usize,
    bytes: Option<Range<usize>>,
    worker: u32,
}

struct State {
    machine: Machine<Job>,
    /// The worker process of each slot of the machine.
    workers: Vec<Option<Worker>>,
    /// How each slot's current worker ended, once known.
    exits: Vec<Option<Exit>>,
    /// Stopped workers whose stderr is still being read to its end.
    retired: Vec<Retired>,
    driving: bool,
    next_worker_id: u32,
    /// The fork server's death count when this pool last looked for dead workers.
    deaths_seen: u64,
    /// When the busy workers' stderr was last read.
    last_drain: Instant,
    /// Threads asleep on the condition variable (std's `notify_all` always makes a system
    /// call, so it is skipped when nobody waits).
    waiters: usize,
    /// Outcomes were delivered since the waiting threads were last woken.
    delivered: bool,
    /// Finished jobs' outcome records, copied out of their arenas so the workers can start
    /// their next jobs while these are decoded (kept to reuse the allocation).
    records: Vec<u8>,
    deliveries: Vec<Delivery>,
    /// Scratch space for the machine's actions.
    actions: Vec<Action<Job>>,
    /// Why the last replacement worker could not be started.
    spawn_error: Option<String>,
    /// The supervisor sleeps until woken (the pool was quiet for a while).
    supervisor_parked: bool,
    /// The pool is being dropped: the supervisor leaves.
    stopping: bool,
}

impl State {
    fn is_idle(&self) -> bool {
        self.machine.is_idle()
    }
}

struct Shared {
    config: Config,
    server: &'static ForkServer,
    state: Mutex<State>,
    /// Where waiting threads sleep.
    cond: Condvar,
    /// Where the supervisor sleeps.
    supervisor: Condvar,
    /// Where workers, other threads and the fork server's reader ring the driver.
    doorbell: Arc<Doorbell>,
    next_task: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct ProcessPool {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn spawn_worker(&self, id: u32) -> std::io::Result<Worker> {
        Worker::spawn(
            self.server,
            self.doorbell.fd(),
            id,
            self.config.memory_limit,
            self.config.forward_stderr,
        )
    }

    /// Carries out the machine's actions, and those they lead to, until the pool is quiet;
    /// then decodes the records it copied out.
    fn act(&self, st: &mut State, first: Vec<Action<Job>>) {
        let mut queue: VecDeque<Action<Job>> = VecDeque::from(first);
        let mut out = std::mem::take(&mut st.actions);
        let mut records = std::mem::take(&mut st.records);
        records.clear();
        loop {
            while let Some(action) = queue.pop_front() {
                out.clear();
                self.perform(st, action, &mut records, &mut out);
                queue.extend(out.drain(..));
            }
            // Whatever changed may let queued runs go to idle workers.
            st.machine.dispatch(&mut out);
            if out.is_empty() {
                break;
            }
            queue.extend(out.drain(..));
        }
        st.actions = out;
        // Decode last: every worker that could start its next job has it by now.
        let deliveries = std::mem::take(&mut st.deliveries);
        if !deliveries.is_empty() {
            st.delivered = true;
        }
        for d in deliveries.iter() {
            deliver(d, &records);
        }
        st.deliveries = deliveries;
        st.deliveries.clear();
        st.records = records;
    }

    fn perform(
        &self,
        st: &mut State,
        action: Action<Job>,
        records: &mut Vec<u8>,
        out: &mut Vec<Action<Job>>,
    ) {
        match action {
            Action::Send { slot, run } => {
                let frame = match run.job.frame_for(&run, self.server.secret) {
                    Ok(frame) => frame,
                    Err(why) => {
                        log::warn!("proctor: could not encode a resumed job again: {why}");
                        st.machine.unsent(slot, out);
                        return;
                    }
                };
                let w = st.workers[slot].as_mut().expect("a busy slot has a worker");
                arena::reset(&w.arena, self.config.task_timeout.is_some());
                w.mark_job_start();
                let sent = w.requests.write_all(&frame);
                w.sent_seq += 1;
                arena::sent(&w.arena, w.sent_seq);
                if sent.is_err() {
                    // The worker is gone (its end of the pipe closed).
                    self.on_death(st, slot, Death::Died, out);
                }
            }
            Action::Deliver { slot, job, from, n } => {
                let w = st.workers[slot]
                    .as_mut()
                    .expect("records come from a worker");
                let bytes = match arena::refresh(&mut w.arena) {
                    Ok(()) => {
                        let p = arena::progress(&w.arena);
                        arena::records(&w.arena, &p).map(|r| {
                            let start = records.len();
                            records.extend_from_slice(r);
                            start..records.len()
                        })
                    }
                    Err(_) => None,
                };
                st.deliveries.push(Delivery {
                    job,
                    from,
                    n,
                    bytes,
                    worker: w.id,
                });
            }
            Action::Fail {
                slot,
                job,
                from,
                count,
                fate,
            } => {
                st.delivered = true;
                let cause = slot.and_then(|s| Some((st.workers[s].as_ref()?, st.exits[s])));
                job.fail(from, count, |task| self.task_error(cause, fate, task, st));
            }
            Action::Respawn { slot, graceful } => {
                if let Some(mut old) = st.workers[slot].take() {
                    if graceful {
                        // An idle worker being recycled: closing its request pipe lets it
                        // exit by itself, after its output is flushed.
                        self.server.forget(old.pid);
                        let pid = old.pid;
                        st.retired.push(old.retire(Some(pid)));
                    } else {
                        old.drain_stderr();
                        st.retired.push(old.retire(None));
                    }
                }
                st.exits[slot] = None;
                let id = st.next_worker_id;
                st.next_worker_id = st.next_worker_id.wrapping_add(1);
                match self.spawn_worker(id) {
                    Ok(w) => {
                        st.workers[slot] = Some(w);
                        st.machine.replaced(slot, true, out);
                    }
                    Err(e) => {
                        log::warn!("proctor: could not start a replacement worker: {e}");
                        st.spawn_error = Some(e.to_string());
                        st.machine.replaced(slot, false, out);
                    }
                }
            }
        }
    }

    /// The worker in `slot` is gone or must go: learn how it ended, read what it left, and
    /// let the machine decide its run's fate.
    fn on_death(&self, st: &mut State, slot: usize, death: Death, out: &mut Vec<Action<Job>>) {
        let Some(w) = st.workers[slot].as_mut() else {
            return;
        };
        if st.exits[slot].is_none() {
            let exit = self.server.wait_exit(w.pid, EXIT_WAIT);
            if exit.is_none() {
                self.server.kill(w.pid, Signal::SIGKILL);
                self.server.forget(w.pid);
            }
            st.exits[slot] = exit;
        }
        w.drain_stderr();
        let seen = match arena::refresh(&mut w.arena) {
            Ok(()) => seen(&w.arena),
            // An arena we cannot map: nothing it says can be read.
            Err(_) => Seen::default(),
        };
        st.machine.died(slot, seen, death, out);
    }

    /// The error of a task whose fate the machine decided; `cause` is the worker whose end
    /// decided it, and how it ended.
    fn task_error(
        &self,
        cause: Option<(&Worker, Option<Exit>)>,
        fate: Fate,
        task: u64,
        st: &State,
    ) -> TaskError {
        let worker = cause.map_or(0, |(w, _)| w.id);
        match fate {
            Fate::Crashed => {
                let (signal, exit_code) = match cause.and_then(|(_, e)| e) {
                    Some(Exit::Signal(s)) => (Some(s), None),
                    Some(Exit::Code(c)) => (None, Some(c)),
                    None => (None, None),
                };
                let stderr_tail = cause.map(|(w, _)| w.job_stderr()).unwrap_or_default();
                match self.config.memory_limit {
                    Some(limit) if stderr_tail.contains("memory allocation of") => {
                        TaskError::OutOfMemory {
                            limit,
                            stderr_tail,
                            worker,
                            task,
                        }
                    }
                    _ => TaskError::Crashed {
                        signal,
                        exit_code,
                        stderr_tail,
                        worker,
                        task,
                    },
                }
            }
            Fate::TimedOut { after } => TaskError::TimedOut {
                after,
                worker,
                task,
            },
            Fate::Poisoned { attempts } => TaskError::Poisoned {
                attempts,
                stderr_tail: cause.map(|(w, _)| w.job_stderr()).unwrap_or_default(),
                worker,
                task,
            },
            Fate::Violation => TaskError::Codec {
                message: "its worker broke the pool's protocol (an impossible arena header) \
                          and was killed"
                    .into(),
                task,
            },
            Fate::Unencodable => TaskError::Codec {
                message: "its argument could not be encoded again to resume its job".into(),
                task,
            },
            Fate::Cancelled => TaskError::Cancelled { task },
            Fate::NoWorker => TaskError::NoWorker {
                reason: st
                    .spawn_error
                    .as_deref()
                    .unwrap_or("no worker process could be started")
                    .into(),
                task,
            },
        }
    }

    /// Spins (unlocked) up to [`arena::SPIN`] until one of `slots` reports its job done;
    /// true if one did.
    fn spin_for_done(&self, st: MutexGuard<'_, State>, slots: &[usize]) -> bool {
        // The header mappings stay valid while we spin unlocked: they are reference-counted.
        let targets: Vec<(Arc<SharedMapping>, u64)> = slots
            .iter()
            .filter_map(|&s| st.workers[s].as_ref())
            .map(|w| (Arc::clone(&w.header), w.sent_seq))
            .collect();
        drop(st);
        let start = Instant::now();
        while start.elapsed() < arena::SPIN {
            for _ in 0..32 {
                if targets
                    .iter()
                    .any(|(header, sent)| arena::done_seq(header) == *sent)
                {
                    return true;
                }
                std::hint::spin_loop();
            }
        }
        false
    }

    /// Runs the pool until `done(state)` holds or nothing is left to drive.
    fn drive<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        done: &dyn Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        loop {
            // Read the doorbell before looking for news: news that lands after the look
            // moves it, and the wait below then returns at once.
            let seq = self.doorbell.seq();
            if self.collect_news(&mut st) {
                // Outcomes delivered for other waiting threads: let them go now, not when
                // this driver is done.
                self.notify(&mut st);
                continue;
            }
            if done(&st) || st.machine.is_closed() || !st.machine.any_busy() {
                return st;
            }
            let wait = self.next_deadline(&st).min(STDERR_TICK);
            let cpu = crate::sys::current_cpu();
            let spinners: Vec<usize> = (0..st.workers.len())
                .filter(|&s| {
                    st.machine.busy(s).is_some()
                        && st.workers[s]
                            .as_ref()
                            .is_some_and(|w| arena::worker_elsewhere(&w.header, cpu))
                })
                .collect();
            if !spinners.is_empty() {
                // A worker on another CPU: watch its arena a moment for the job to finish,
                // rather than sleep and pay a cross-CPU wake-up.
                let finished = self.spin_for_done(st, &spinners);
                st = self.lock();
                if st.machine.is_closed() || st.stopping {
                    return st;
                }
                if finished {
                    continue;
                }
            }
            drop(st);
            self.doorbell
                .wait(seq, wait.max(Duration::from_micros(100)));
            st = self.lock();
            if st.machine.is_closed() || st.stopping {
                return st;
            }
            if self.doorbell.seq() == seq {
                self.tick(&mut st);
            }
        }
    }

    /// What a quiet moment is for: read busy and retired workers' stderr (a worker whose
    /// stderr pipe is full would otherwise block), and look at the clocks.
    fn tick(&self, st: &mut State) {
        for w in st.workers.iter_mut().flatten() {
            w.drain_stderr();
        }
        let server = self.server;
        st.retired.retain_mut(|r| !r.drain(server));
        st.last_drain = Instant::now();
        if let Some(limit) = self.config.task_timeout {
            self.check_timeouts(st, limit);
        }
    }

    /// How long until the next running task's timeout is due.
    fn next_deadline(&self, st: &State) -> Duration {
        let mut wait = Duration::MAX;
        if let Some(limit) = self.config.task_timeout {
            let now_ns = crate::sys::monotonic_ns();
            for s in 0..st.workers.len() {
                let (Some(_), Some(w)) = (st.machine.busy(s), st.workers[s].as_ref()) else {
                    continue;
                };
                let p = arena::progress(&w.arena);
                if p.started > p.committed {
                    let ends = p.started_at_ns.saturating_add(limit.as_nanos() as u64);
                    wait = wait.min(Duration::from_nanos(ends.saturating_sub(now_ns)));
                }
            }
        }
        wait
    }

    /// Finishes the jobs workers reported done, and buries workers the fork server reported
    /// dead. True if any outcome was delivered.
    fn collect_news(&self, st: &mut State) -> bool {
        let mut out = std::mem::take(&mut st.actions);
        out.clear();
        for s in 0..st.workers.len() {
            if st.machine.busy(s).is_none() {
                continue;
            }
            let Some(w) = st.workers[s].as_mut() else {
                continue;
            };
            if arena::done_seq(&w.header) != w.sent_seq {
                continue;
            }
            let accepted = arena::refresh(&mut w.arena).is_ok()
                && st.machine.done(s, seen(&w.arena), &mut out);
            if !accepted {
                self.server.kill(w.pid, Signal::SIGKILL);
                self.on_death(st, s, Death::Violation, &mut out);
            }
        }
        let deaths = self.server.deaths();
        if deaths != st.deaths_seen {
            st.deaths_seen = deaths;
            for s in 0..st.workers.len() {
                let Some(w) = st.workers[s].as_ref() else {
                    continue;
                };
                if !st.machine.has_worker(s) {
                    continue;
                }
                if let Some(exit) = self.server.try_exit(w.pid) {
                    st.exits[s] = Some(exit);
                    self.on_death(st, s, Death::Died, &mut out);
                }
            }
        }
        if out.is_empty() {
            st.actions = out;
            return std::mem::take(&mut st.delivered);
        }
        let first = std::mem::take(&mut out);
        st.actions = out;
        self.act(st, first);
        if st.last_drain.elapsed() >= STDERR_TICK {
            for w in st.workers.iter_mut().flatten() {
                w.drain_stderr();
            }
            st.last_drain = Instant::now();
        }
        std::mem::take(&mut st.delivered)
    }

    fn check_timeouts(&self, st: &mut State, limit: Duration) {
        let now_ns = crate::sys::monotonic_ns();
        let mut out = Vec::new();
        for s in 0..st.workers.len() {
            let (Some(_), Some(w)) = (st.machine.busy(s), st.workers[s].as_ref()) else {
                continue;
            };
            let p = arena::progress(&w.arena);
            let ran = Duration::from_nanos(now_ns.saturating_sub(p.started_at_ns));
            if p.started <= p.committed || ran < limit {
                continue;
            }
            // The task that overran; if it commits before the kill lands, the machine sees
            // that and blames it on no one.
            let index = p.committed as usize;
            let pid = w.pid;
            self.server.kill(pid, Signal::SIGTERM);
            let mut exit = self.server.wait_exit(pid, KILL_GRACE);
            if exit.is_none() {
                self.server.kill(pid, Signal::SIGKILL);
                exit = self.server.wait_exit(pid, EXIT_WAIT);
            }
            if exit.is_none() {
                self.server.forget(pid);
            }
            st.exits[s] = Some(exit.unwrap_or(Exit::Signal(libc::SIGKILL)));
            self.on_death(st, s, Death::TimedOut { index, after: ran }, &mut out);
        }
        if !out.is_empty() {
            self.act(st, out);
            // A timeout is an outcome too: wake whoever waits for it.
            self.notify(st);
        }
    }

    /// Wakes the threads waiting for outcomes, if any.
    fn notify(&self, st: &mut State) {
        st.delivered = false;
        if st.waiters > 0 {
            self.cond.notify_all();
        }
    }

    /// Sleeps on the condition variable, at most `limit`.
    fn sleep<'a>(
        &'a self,
        mut st: MutexGuard<'a, State>,
        limit: Option<Duration>,
    ) -> MutexGuard<'a, State> {
        st.waiters += 1;
        let mut st = match limit {
            Some(d) => {
                self.cond
                    .wait_timeout(st, d)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => self.cond.wait(st).unwrap_or_else(PoisonError::into_inner),
        };
        st.waiters -= 1;
        st
    }

    /// Waits until `done` holds, driving the pool when no other thread does.
    fn wait_until(&self, done: &dyn Fn(&State) -> bool) {
        let mut st = self.lock();
        loop {
            if done(&st) {
                return;
            }
            if !st.driving {
                st.driving = true;
                st = self.drive(st, done);
                st.driving = false;
                self.notify(&mut st);
                if done(&st) || st.machine.is_closed() {
                    return;
                }
                if !st.machine.any_busy() {
                    // Nothing left to drive yet not done: wait for another thread's news.
                    st = self.sleep(st, Some(Duration::from_millis(10)));
                }
                continue;
            }
            st = self.sleep(st, None);
        }
    }

    fn enqueue(&self, job: Job) {
        let mut st = self.lock();
        let mut out = std::mem::take(&mut st.actions);
        out.clear();
        let count = job.count;
        st.machine.enqueue(Run::new(job, count), &mut out);
        st.machine.dispatch(&mut out);
        self.act(&mut st, out);
        if st.driving {
            self.doorbell.ring();
        } else if self.collect_news(&mut st) {
            // Nobody is driving (a `map` enqueues all its jobs before it waits): take in
            // what finished workers have, which hands them the next jobs now.
            self.notify(&mut st);
        } else if st.delivered {
            self.notify(&mut st);
        }
        if st.supervisor_parked {
            st.supervisor_parked = false;
            self.supervisor.notify_one();
        }
    }

    /// The supervisor: drives the pool when nobody waits (see the module doc).
    fn supervise(&self) {
        let mut st = self.lock();
        let mut quiet = 0u32;
        loop {
            if st.stopping {
                return;
            }
            let busy = st.machine.any_busy() || !st.retired.is_empty();
            if busy && !st.driving {
                st.driving = true;
                let _ = self.collect_news(&mut st);
                self.tick(&mut st);
                st.driving = false;
                self.notify(&mut st);
            }
            quiet = if busy { 0 } else { quiet + 1 };
            if quiet > PARK_AFTER {
                st.supervisor_parked = true;
                st = self
                    .supervisor
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                quiet = 0;
            } else {
                let wait = self.next_deadline(&st).min(STDERR_TICK);
                st = self
                    .supervisor
                    .wait_timeout(st, wait.max(Duration::from_millis(1)))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
    }
}

/// The header as the recovery machine sees it.
fn seen(arena: &SharedMapping) -> Seen {
    let p = arena::progress(arena);
    Seen {
        started: p.started,
        committed: p.committed,
    }
}

/// Decodes one delivery's records into its job's sink.
fn deliver(d: &Delivery, records: &[u8]) {
    let Some(range) = d.bytes.clone() else {
        d.job.fail(d.from, d.n, |task| TaskError::Codec {
            message: "its worker's result arena is inconsistent".into(),
            task,
        });
        return;
    };
    let it = RecordIter {
        buf: &records[range],
        worker: d.worker,
        task: d.job.first_task + d.from as u64,
        left: d.n,
        broken: false,
    };
    d.job.sink.deliver_records(d.job.first_index + d.from, it);
}

/// The process-mode side of a [`crate::Task`].
pub(crate) struct ProcessTask<R> {
    shared: Arc<Shared>,
    sink: Arc<SlotSink<R>>,
}

impl<R> std::fmt::Debug for ProcessTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTask")
            .field("task", &self.sink.task)
            .finish_non_exhaustive()
    }
}

impl<R> ProcessTask<R> {
    pub(crate) fn join(self) -> Result<R, TaskError> {
        let sink = &self.sink;
        self.shared
            .wait_until(&|_| sink.done.load(Ordering::Acquire));
        lock(&sink.outcome)
            .take()
            .unwrap_or(Err(TaskError::Cancelled { task: sink.task }))
    }
}

fn entry_address<A, R, F>() -> u64
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    let f: EntryFn = entry::<A, R, F>;
    f as usize as u64
}

/// True if the probe's one record is its `Ok` result.
fn probe_ok(arena: &SharedMapping) -> bool {
    let p = arena::progress(arena);
    arena::records(arena, &p)
        .and_then(|r| wire::decode_record(r).ok())
        .is_some_and(|(tag, _, _)| tag == wire::RecordTag::Ok)
}

/// The entry point for the fn item `f`.
fn entry_of<A, R, F>(_f: F) -> u64
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    entry_address::<A, R, F>()
}

fn too_big(len: usize, task: u64) -> TaskError {
    TaskError::Codec {
        message: arcstr::format!(
            "its argument of {len} bytes exceeds the {} MiB frame limit",
            MAX_FRAME >> 20
        ),
        task,
    }
}

/// What a worker must manage under the pool's memory limit at `build()`: its first job
/// allocates its read buffer and whatever the task needs, so the probe allocates 1 MiB (above
/// glibc's mmap threshold, where `RLIMIT_DATA` bites at once).
const PROBE_BYTES: usize = 1 << 20;

/// The probe a worker runs at `build()` when the pool has a memory limit.
fn probe(n: usize) -> usize {
    std::hint::black_box(vec![1u8; n]).len()
}

impl ProcessPool {
    pub(crate) fn new(config: Config) -> Result<ProcessPool, Error> {
        let server = crate::fork_server()?;
        let doorbell = Arc::new(Doorbell::new().map_err(|e| Error::new(ErrorKind::Spawn(e)))?);
        server.register(&doorbell);
        let n = config.workers;
        let shared = Arc::new(Shared {
            server,
            doorbell,
            state: Mutex::new(State {
                machine: Machine::new(n, config.max_tasks_per_worker, config.retries),
                workers: Vec::with_capacity(n),
                exits: vec![None; n],
                retired: Vec::new(),
                driving: false,
                waiters: 0,
                delivered: false,
                deaths_seen: server.deaths(),
                last_drain: Instant::now(),
                records: Vec::new(),
                deliveries: Vec::new(),
                actions: Vec::new(),
                spawn_error: None,
                supervisor_parked: false,
                stopping: false,
                next_worker_id: n as u32, // checked by `build`
            }),
            cond: Condvar::new(),
            supervisor: Condvar::new(),
            next_task: AtomicU64::new(0),
            config,
        });
        let mut pool = ProcessPool {
            shared,
            supervisor: None,
        };
        for id in 0..n as u32 {
            let w = pool
                .shared
                .spawn_worker(id)
                .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
            pool.shared.lock().workers.push(Some(w));
        }
        if let Some(limit) = pool.shared.config.memory_limit {
            pool.probe_workers(limit)?;
        }
        let shared = Arc::clone(&pool.shared);
        let supervisor = std::thread::Builder::new()
            .name("proctor-supervisor".into())
            .spawn(move || shared.supervise())
            .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
        pool.supervisor = Some(supervisor);
        Ok(pool)
    }

    /// Runs an empty job on every worker, so that a memory limit too small for an idle worker
    /// is an error from `build()` rather than a respawn loop later.
    fn probe_workers(&self, limit: u64) -> Result<(), Error> {
        let shared = &self.shared;
        let entry = entry_of(probe);
        let mut frame = Vec::new();
        wire::begin_run(&mut frame);
        wire::append(&PROBE_BYTES, &mut frame).expect("a usize encodes");
        wire::finish_run(&mut frame, 0, entry, entry ^ shared.server.secret, 1);
        let st = shared.lock();
        let deadline = Instant::now() + EXIT_WAIT;
        let mut st = st;
        for w in st.workers.iter_mut().flatten() {
            arena::reset(&w.arena, false);
            let sent = (&w.requests).write_all(&frame).is_ok();
            w.sent_seq += 1;
            let want = w.sent_seq;
            arena::sent(&w.arena, want);
            loop {
                if sent && arena::done_seq(&w.header) == want {
                    if arena::progress(&w.arena).committed == 1 && probe_ok(&w.arena) {
                        break;
                    }
                    return Err(Error::invalid(format!(
                        "memory_limit of {limit} bytes is too small for an idle worker \
                         process: it could not allocate {PROBE_BYTES} bytes"
                    )));
                }
                let exit = shared.server.try_exit(w.pid);
                if !sent || exit.is_some() || Instant::now() >= deadline {
                    let how = match exit {
                        Some(Exit::Signal(s)) => {
                            format!("was killed by {}", crate::error::signal_description(s))
                        }
                        Some(Exit::Code(c)) => format!("exited with code {c}"),
                        None => "did not answer".to_string(),
                    };
                    return Err(Error::invalid(format!(
                        "memory_limit of {limit} bytes is too small for an idle worker \
                         process: one {how} while allocating {PROBE_BYTES} bytes"
                    )));
                }
                let seq = shared.doorbell.seq();
                shared.doorbell.wait(seq, Duration::from_millis(5));
            }
        }
        Ok(())
    }

    pub(crate) fn workers(&self) -> usize {
        self.shared.config.workers
    }

    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .lock()
            .workers
            .iter()
            .flatten()
            .map(|w| w.pid as u32)
            .collect()
    }

    pub(crate) fn submit<A, R, F>(&self, _f: F, arg: A) -> TaskInner<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let task = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        let mut frame = Vec::new();
        wire::begin_run(&mut frame);
        if let Err(e) = wire::append(&arg, &mut frame) {
            return TaskInner::Ready(Err(TaskError::Codec {
                message: arcstr::format!("its argument could not be encoded: {e}"),
                task,
            }));
        }
        let len = frame.len() - wire::RUN_HEADER_LEN;
        if len > MAX_FRAME - wire::RUN_HEADER_LEN {
            return TaskInner::Ready(Err(too_big(len, task)));
        }
        let entry = entry_address::<A, R, F>();
        wire::finish_run(
            &mut frame,
            task,
            entry,
            entry ^ self.shared.server.secret,
            1,
        );
        let sink = Arc::new(SlotSink {
            task,
            outcome: Mutex::new(None),
            done: AtomicBool::new(false),
        });
        self.shared.enqueue(Arc::new(JobData {
            first_task: task,
            first_index: 0,
            count: 1,
            entry,
            frame,
            sink: Arc::clone(&sink) as Arc<dyn Sink>,
            items: None,
        }));
        TaskInner::Process(ProcessTask {
            shared: Arc::clone(&self.shared),
            sink,
        })
    }

    pub(crate) fn map<A, R, F, C>(&self, _f: F, items: Vec<A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: super::Collect<R>,
    {
        let n = items.len();
        let first_task = self.shared.next_task.fetch_add(n as u64, Ordering::Relaxed);
        let sink = Arc::new(MapSink::<R, C> {
            first_task,
            results: Mutex::new(Some(C::with_len(n))),
            remaining: AtomicUsize::new(n),
            _result: PhantomData,
        });
        let dyn_sink: Arc<dyn Sink> = Arc::clone(&sink) as Arc<dyn Sink>;
        let entry = entry_address::<A, R, F>();
        let check = entry ^ self.shared.server.secret;
        let chunk = self.shared.config.chunk_for(n);
        // The items stay with the jobs until the call returns, so that a job whose worker
        // died can be resumed by encoding its remaining arguments again.
        let items = Arc::new(Items(Mutex::new(items)));
        let reencode: Arc<dyn Reencode> = Arc::clone(&items) as Arc<dyn Reencode>;

        let mut frame = Vec::new();
        let mut job_start = 0usize;
        let mut in_job = 0usize;
        wire::begin_run(&mut frame);
        let flush = |frame: &mut Vec<u8>, start: usize, count: usize| {
            if count == 0 {
                return;
            }
            // The next frame will be about as long: allocate it once, not by doubling.
            let mut f = std::mem::replace(frame, Vec::with_capacity(frame.len()));
            let first = first_task + start as u64;
            wire::finish_run(&mut f, first, entry, check, count as u32);
            self.shared.enqueue(Arc::new(JobData {
                first_task: first,
                first_index: start,
                count,
                entry,
                frame: f,
                sink: Arc::clone(&dyn_sink),
                items: Some(Arc::clone(&reencode)),
            }));
            wire::begin_run(frame);
        };
        let mut one = Vec::new();
        let mut i = 0;
        while i < n {
            // Encode up to ENCODE_RUN items in one serializer call. If that fails or grows
            // the frame past its limit, encode them again one by one, which finds the item
            // at fault and gives it its own error. (The items' lock is held only while
            // encoding: `flush` may resume another job, which encodes from them too.)
            let end = n.min(i + ENCODE_RUN).min(i + chunk - in_job);
            let before = frame.len();
            let fast = {
                let items = lock(&items.0);
                wire::append_capped(&wire::Concat(&items[i..end]), &mut frame, MAX_FRAME).is_ok()
            };
            if fast {
                in_job += end - i;
                i = end;
                if in_job == chunk || frame.len() >= JOB_BYTES {
                    flush(&mut frame, job_start, in_job);
                    job_start = i;
                    in_job = 0;
                }
                continue;
            }
            frame.truncate(before);
            for k in i..end {
                one.clear();
                let failure = match wire::append(&lock(&items.0)[k], &mut one) {
                    Ok(()) if one.len() > MAX_FRAME - wire::RUN_HEADER_LEN => {
                        Some(too_big(one.len(), first_task + k as u64))
                    }
                    Ok(()) => None,
                    Err(e) => Some(TaskError::Codec {
                        message: arcstr::format!("its argument could not be encoded: {e}"),
                        task: first_task + k as u64,
                    }),
                };
                if let Some(err) = failure {
                    // Send what came before, then record this item's error on its own.
                    flush(&mut frame, job_start, in_job);
                    dyn_sink.deliver(k, &mut std::iter::once(RawOutcome::Err(err)));
                    job_start = k + 1;
                    in_job = 0;
                    continue;
                }
                if in_job > 0 && frame.len() - 4 + one.len() > MAX_FRAME {
                    // It fits in a frame of its own, not after what is already here.
                    flush(&mut frame, job_start, in_job);
                    job_start = k;
                    in_job = 0;
                }
                frame.extend_from_slice(&one);
                in_job += 1;
                if in_job == chunk || frame.len() >= JOB_BYTES {
                    flush(&mut frame, job_start, in_job);
                    job_start = k + 1;
                    in_job = 0;
                }
            }
            i = end;
        }
        flush(&mut frame, job_start, in_job);

        self.shared
            .wait_until(&|_| sink.remaining.load(Ordering::Acquire) == 0);
        let results = lock(&sink.results).take();
        results
            .expect("map results are taken once")
            .finish(n, first_task)
    }

    pub(crate) fn shutdown(self) {
        self.shared.wait_until(&State::is_idle);
        // Drop stops the (now idle) workers and reads their last output.
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut st = shared.lock();
        st.stopping = true;
        shared.supervisor.notify_all();
        let mut out = Vec::new();
        st.machine.close(&mut out);
        while st.driving {
            shared.doorbell.ring();
            st = shared
                .cond
                .wait_timeout(st, Duration::from_millis(20))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        shared.act(&mut st, out);
        // Kill every worker's group at once, then collect the reports.
        for w in st.workers.iter().flatten() {
            shared.server.kill(w.pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + EXIT_WAIT;
        let mut out = Vec::new();
        for s in 0..st.workers.len() {
            let Some(pid) = st.workers[s].as_ref().map(|w| w.pid) else {
                continue;
            };
            if st.exits[s].is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                match shared.server.wait_exit(pid, left) {
                    Some(exit) => st.exits[s] = Some(exit),
                    None => shared.server.forget(pid),
                }
                if st.exits[s].is_none() {
                    st.exits[s] = Some(Exit::Signal(libc::SIGKILL));
                }
            }
            if st.machine.busy(s).is_some() {
                shared.on_death(&mut st, s, Death::Cancelled, &mut out);
            }
        }
        let first = std::mem::take(&mut out);
        shared.act(&mut st, first);
        // Read every pipe to its end: what the workers wrote last is not lost.
        let mut retired: Vec<Retired> = st.retired.drain(..).collect();
        for w in st.workers.iter_mut().filter_map(Option::take) {
            retired.push(w.retire(None));
        }
        shared.cond.notify_all();
        drop(st);
        let deadline = Instant::now() + EXIT_WAIT;
        for r in retired {
            r.finish(shared.server, deadline);
        }
        if let Some(h) = self.supervisor.take() {
            let _ = h.join();
        }
    }
}
