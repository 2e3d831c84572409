//! Process mode: worker processes forked by the fork server, driven from the caller's thread.
//!
//! There is no dispatcher thread. `submit` writes a job straight to an idle worker's socket,
//! and whichever thread waits for an outcome (`join`, `map`, `shutdown`) becomes the *driver*:
//! it polls the busy workers' sockets and stderr pipes, reads finished jobs' outcomes from
//! their arenas, hands queued jobs to idle workers, enforces timeouts and replaces dead
//! workers. Other waiting threads sleep on a condition variable until their outcome arrives or
//! the driver role is free (the leader/followers pattern). A `submit(f, x).join()` round trip
//! is therefore one write and one read on each side, like a bare pipe ping-pong, with no extra
//! thread hand-off.
//!
//! When a worker dies, the outcomes it committed to its arena are delivered, the task that
//! was running gets [`TaskError::Crashed`] (or [`TaskError::TimedOut`]), and the tasks of the
//! job it had not started go back to the front of the queue: they never ran, so this is no
//! retry.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Write};
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::Signal;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Config, TaskInner};
use arcstr::ArcStr;

use crate::arena::{self, Progress};
use crate::doorbell::Doorbell;
use crate::error::{Error, ErrorKind, TaskError};
use crate::server::{Exit, ForkServer};
use crate::sys::SharedMapping;
use crate::wire::{self, MAX_FRAME, RecordTag};
use crate::worker::{EntryFn, entry};

/// Time between SIGTERM and SIGKILL for a timed-out worker.
const KILL_GRACE: Duration = Duration::from_millis(100);
/// How long to wait for the fork server to report a worker's end.
const EXIT_WAIT: Duration = Duration::from_secs(2);
/// A `map` job is cut when its arguments reach this size, so large items stream.
const JOB_BYTES: usize = 8 << 20;
/// Arguments encoded by one serializer call in `map` (a call per item was a fifth of the
/// parent's time in a map of a million `u64`s).
const ENCODE_RUN: usize = 1024;
/// How often a driver that waits forwards the busy workers' stderr (and so the longest a
/// worker blocked on a full stderr pipe waits).
const STDERR_TICK: Duration = Duration::from_millis(10);

/// Bytes of a worker's stderr kept for [`TaskError::Crashed::stderr_tail`].
const TAIL: usize = 16 << 10;

/// One outcome read from an arena, before the sink decodes it into its type.
pub(crate) enum RawOutcome<'a> {
    Ok(&'a [u8]),
    Err(TaskError),
}

/// Receives the outcomes of one `map` call or one submitted task.
pub(crate) trait Sink: Send + Sync {
    /// Outcomes for items `first_index..`, in order.
    fn deliver(&self, first_index: usize, outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>);

    /// Outcome records read from an arena, for items `first_index..`. A sink may override it
    /// to decode without a virtual call per item (`map` of a million small results).
    fn deliver_records(&self, first_index: usize, mut records: RecordIter<'_>) {
        self.deliver(first_index, &mut records);
    }
}

struct Job {
    first_task: u64,
    first_index: usize,
    count: usize,
    entry: u64,
    /// A complete `Run` frame: header, then the arguments.
    frame: Vec<u8>,
    sink: Arc<dyn Sink>,
}

impl Job {
    fn args(&self) -> &[u8] {
        &self.frame[wire::RUN_HEADER_LEN..]
    }

    /// Every task of the job from `from` on gets `err(task)`.
    fn fail_from(&self, from: usize, err: impl Fn(u64) -> TaskError) {
        let base = self.first_task;
        let mut it = (from..self.count).map(|k| RawOutcome::Err(err(base + k as u64)));
        self.sink.deliver(self.first_index + from, &mut it);
    }
}

struct Worker {
    id: u32,
    pid: i32,
    /// Job frames to the worker.
    requests: File,
    stderr: File,
    arena: SharedMapping,
    /// The arena's header page, mapped apart so a spinning driver can watch it unlocked.
    header: Arc<SharedMapping>,
    job: Option<Job>,
    /// The arena's job counter when the current job was sent.
    sent_seq: u64,
    done_tasks: usize,
    tail: Vec<u8>,
    /// Copy what the worker writes to stderr to ours (`PoolBuilder::forward_stderr`).
    forward: bool,
}

impl Worker {
    /// Reads what the worker wrote to stderr: forwarded to ours (unless the pool says not
    /// to), and the end kept.
    fn drain_stderr(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            match self.stderr.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if self.forward {
                        let _ = std::io::stderr().write_all(&buf[..n]);
                    }
                    self.tail.extend_from_slice(&buf[..n]);
                    if self.tail.len() > 2 * TAIL {
                        let cut = self.tail.len() - TAIL;
                        self.tail.drain(..cut);
                    }
                }
            }
        }
    }

    fn stderr_tail(&self) -> ArcStr {
        let start = self.tail.len().saturating_sub(TAIL);
        String::from_utf8_lossy(&self.tail[start..]).into()
    }
}

struct State {
    workers: Vec<Worker>,
    pending: VecDeque<Job>,
    driving: bool,
    closed: bool,
    next_worker_id: u32,
    /// The fork server's death count when this pool last looked for dead workers.
    deaths_seen: u64,
    /// When the busy workers' stderr was last forwarded.
    last_drain: Instant,
    /// Threads asleep on the condition variable (std's `notify_all` always makes a system
    /// call, so it is skipped when nobody waits).
    waiters: usize,
    /// A finished job's outcome records, copied out of its worker's arena so the worker
    /// can start its next job while they are decoded (kept to reuse its allocation).
    records: Vec<u8>,
}

impl State {
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.workers.iter().all(|w| w.job.is_none())
    }
}

struct Shared {
    config: Config,
    server: &'static ForkServer,
    state: Mutex<State>,
    cond: Condvar,
    /// Where workers, other threads and the fork server's reader ring the driver.
    doorbell: Arc<Doorbell>,
    next_task: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct ProcessPool {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn io_error(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("process pool state poisoned")
    }

    fn spawn_worker(&self, id: u32) -> std::io::Result<Worker> {
        let (req_r, req_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error)?;
        fcntl(&err_r, FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(io_error)?;
        let arena = SharedMapping::create("proctor-arena", arena::INITIAL_LEN)?;
        let fds: [RawFd; 4] = [
            req_r.as_raw_fd(),
            self.doorbell.fd(),
            err_w.as_raw_fd(),
            arena.fd(),
        ];
        let pid = self.server.spawn(self.config.memory_limit, fds)?;
        let header = Arc::new(arena.prefix(arena::DATA_START)?);
        Ok(Worker {
            id,
            pid,
            header,
            requests: File::from(req_w),
            stderr: File::from(err_r),
            arena,
            job: None,
            sent_seq: 0,
            done_tasks: 0,
            tail: Vec::new(),
            forward: self.config.forward_stderr,
        })
    }

    /// Spins (unlocked) up to [`arena::SPIN`] until one of `workers` reports its job done;
    /// true if one did.
    fn spin_for_done(&self, st: MutexGuard<'_, State>, workers: &[usize]) -> bool {
        // The header mappings stay valid while we spin unlocked: they are reference-counted.
        let targets: Vec<(Arc<SharedMapping>, u64)> = workers
            .iter()
            .map(|&idx| {
                (
                    Arc::clone(&st.workers[idx].header),
                    st.workers[idx].sent_seq,
                )
            })
            .collect();
        drop(st);
        let start = Instant::now();
        while start.elapsed() < arena::SPIN {
            for _ in 0..32 {
                if targets
                    .iter()
                    .any(|(header, sent)| arena::done_seq(header) >= *sent)
                {
                    return true;
                }
                std::hint::spin_loop();
            }
        }
        false
    }

    /// Puts a fresh worker in slot `idx`, or removes the slot if none can be started.
    fn replace(&self, st: &mut State, idx: usize) {
        let id = st.next_worker_id;
        st.next_worker_id = st.next_worker_id.wrapping_add(1);
        match self.spawn_worker(id) {
            Ok(w) => st.workers[idx] = w,
            Err(e) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "proctor: could not replace a worker: {e}"
                );
                st.workers.remove(idx);
            }
        }
    }

    /// Stops worker `idx` (idle) and puts a fresh one in its place.
    fn recycle(&self, st: &mut State, idx: usize) {
        let pid = st.workers[idx].pid;
        self.server.kill(pid, Signal::SIGKILL);
        self.server.forget(pid);
        self.replace(st, idx);
    }

    /// Hands queued jobs to idle workers.
    fn dispatch(&self, st: &mut State) {
        if st.closed {
            return;
        }
        if st.workers.is_empty() {
            while let Some(job) = st.pending.pop_front() {
                job.fail_from(0, |task| TaskError::Crashed {
                    signal: None,
                    exit_code: None,
                    stderr_tail: "no worker process could be started".into(),
                    worker: 0,
                    task,
                });
            }
            return;
        }
        let mut idx = 0;
        while idx < st.workers.len() && !st.pending.is_empty() {
            if st.workers[idx].job.is_some() {
                idx += 1;
                continue;
            }
            let job = st.pending.pop_front().expect("pending is not empty");
            if let Some(max) = self.config.max_tasks_per_worker {
                let done = st.workers[idx].done_tasks;
                if done > 0 && done + job.count > max {
                    self.recycle(st, idx);
                    if idx >= st.workers.len() {
                        st.pending.push_front(job);
                        break;
                    }
                }
            }
            let w = &mut st.workers[idx];
            arena::reset(&w.arena, self.config.task_timeout.is_some());
            let sent = w.requests.write_all(&job.frame);
            w.sent_seq = arena::sent(&w.arena);
            w.job = Some(job);
            if sent.is_err() {
                self.on_death(st, idx, None);
                continue;
            }
            idx += 1;
        }
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
            self.dispatch(&mut st);
            if self.collect_news(&mut st) {
                // Outcomes delivered for other waiting threads: let them go now, not when
                // this driver is done.
                self.notify(&st);
                continue;
            }
            if done(&st) || st.closed || st.workers.iter().all(|w| w.job.is_none()) {
                return st;
            }
            let mut wait = STDERR_TICK;
            if let Some(limit) = self.config.task_timeout {
                let now_ns = crate::sys::monotonic_ns();
                for w in st.workers.iter().filter(|w| w.job.is_some()) {
                    let p = arena::progress(&w.arena);
                    if p.started > p.committed {
                        let ends = p.started_at_ns.saturating_add(limit.as_nanos() as u64);
                        wait = wait.min(Duration::from_nanos(ends.saturating_sub(now_ns)));
                    }
                }
            }
            let cpu = crate::sys::current_cpu();
            let spinners: Vec<usize> = (0..st.workers.len())
                .filter(|&i| {
                    let w = &st.workers[i];
                    w.job.is_some() && arena::worker_elsewhere(&w.header, cpu)
                })
                .collect();
            if !spinners.is_empty() {
                // A worker on another CPU: watch its arena a moment for the job to finish,
                // rather than sleep and pay a cross-CPU wake-up.
                let finished = self.spin_for_done(st, &spinners);
                st = self.lock();
                if st.closed {
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
            if st.closed {
                return st;
            }
            if self.doorbell.seq() == seq {
                // A quiet tick: forward what the busy workers wrote to stderr (a worker whose
                // stderr pipe is full would otherwise block until its job's end), and look at
                // the clocks.
                for w in st.workers.iter_mut().filter(|w| w.job.is_some()) {
                    w.drain_stderr();
                }
                st.last_drain = Instant::now();
            }
            if let Some(limit) = self.config.task_timeout {
                self.check_timeouts(&mut st, limit);
            }
        }
    }

    /// Finishes the jobs workers reported done, and buries workers the fork server reported
    /// dead. True if anything happened.
    fn collect_news(&self, st: &mut State) -> bool {
        let mut news = false;
        let mut idx = 0;
        while idx < st.workers.len() {
            let w = &st.workers[idx];
            if w.job.is_some() && arena::done_seq(&w.header) >= w.sent_seq {
                news = true;
                if !self.finish_job(st, idx) {
                    self.kill_and_bury(st, idx);
                }
            }
            idx += 1;
        }
        let deaths = self.server.deaths();
        if deaths != st.deaths_seen {
            st.deaths_seen = deaths;
            let mut idx = 0;
            while idx < st.workers.len() {
                let pid = st.workers[idx].pid;
                if let Some(exit) = self.server.try_exit(pid) {
                    news = true;
                    let before = st.workers.len();
                    self.bury(st, idx, None, Some(exit));
                    if st.workers.len() < before {
                        continue;
                    }
                }
                idx += 1;
            }
        }
        if news && st.last_drain.elapsed() >= STDERR_TICK {
            for w in st.workers.iter_mut() {
                w.drain_stderr();
            }
            st.last_drain = Instant::now();
        }
        news
    }

    /// A worker broke the protocol: treat it as crashed.
    fn kill_and_bury(&self, st: &mut State, idx: usize) {
        self.server.kill(st.workers[idx].pid, Signal::SIGKILL);
        self.on_death(st, idx, None);
    }

    /// The worker reported its job done: deliver every outcome. False on a protocol error.
    fn finish_job(&self, st: &mut State, idx: usize) -> bool {
        let w = &mut st.workers[idx];
        let Some(job) = w.job.take() else {
            return false;
        };
        if arena::refresh(&mut w.arena).is_err() {
            w.job = Some(job);
            return false;
        }
        let p = arena::progress(&w.arena);
        if p.committed != job.count as u64 {
            w.job = Some(job);
            return false;
        }
        // Copy the outcomes out and give the worker its next job before decoding them: the
        // decoding then overlaps with the worker's next job instead of idling it.
        let mut records = std::mem::take(&mut st.records);
        records.clear();
        let w = &mut st.workers[idx];
        let intact = arena::records(&w.arena, &p).map(|r| records.extend_from_slice(r));
        let worker = w.id;
        w.done_tasks += job.count;
        if self
            .config
            .max_tasks_per_worker
            .is_some_and(|max| w.done_tasks >= max)
        {
            self.recycle(st, idx);
        }
        self.dispatch(st);
        deliver(&job, intact.map(|()| &records[..]), job.count, worker);
        st.records = records;
        true
    }

    fn check_timeouts(&self, st: &mut State, limit: Duration) {
        let now_ns = crate::sys::monotonic_ns();
        let mut idx = 0;
        while idx < st.workers.len() {
            let w = &st.workers[idx];
            if let Some(job) = &w.job {
                let p = arena::progress(&w.arena);
                let ran = Duration::from_nanos(now_ns.saturating_sub(p.started_at_ns));
                if p.started > p.committed && ran >= limit {
                    let task = job.first_task + p.committed;
                    let err = TaskError::TimedOut {
                        after: ran,
                        worker: w.id,
                        task,
                    };
                    let pid = w.pid;
                    self.server.kill(pid, Signal::SIGTERM);
                    let mut exit = self.server.wait_exit(pid, KILL_GRACE);
                    if exit.is_none() {
                        self.server.kill(pid, Signal::SIGKILL);
                        exit = self.server.wait_exit(pid, EXIT_WAIT);
                    }
                    self.bury(st, idx, Some(err), exit);
                }
            }
            idx += 1;
        }
    }

    /// The worker's socket closed: it died. Deliver what it finished, report the task it
    /// was running, queue the rest, replace it.
    fn on_death(&self, st: &mut State, idx: usize, running: Option<TaskError>) {
        let exit = self.server.wait_exit(st.workers[idx].pid, EXIT_WAIT);
        self.bury(st, idx, running, exit);
    }

    fn bury(&self, st: &mut State, idx: usize, running: Option<TaskError>, exit: Option<Exit>) {
        let w = &mut st.workers[idx];
        if exit.is_none() {
            self.server.kill(w.pid, Signal::SIGKILL);
            self.server.forget(w.pid);
        }
        w.drain_stderr();
        if let Some(job) = w.job.take() {
            let _ = arena::refresh(&mut w.arena);
            let p = arena::progress(&w.arena);
            let committed = deliver_committed(&job, &w.arena, &p, w.id);
            let started = (p.started as usize).min(job.count).max(committed);
            let crashed = |task: u64| {
                let (signal, exit_code) = match exit {
                    Some(Exit::Signal(s)) => (Some(s), None),
                    Some(Exit::Code(c)) => (None, Some(c)),
                    None => (None, None),
                };
                TaskError::Crashed {
                    signal,
                    exit_code,
                    stderr_tail: w.stderr_tail(),
                    worker: w.id,
                    task,
                }
            };
            let mut rest = committed;
            if started > committed {
                let task = job.first_task + committed as u64;
                let err = match running {
                    Some(e) => e,
                    None => crashed(task),
                };
                job.sink.deliver(
                    job.first_index + committed,
                    &mut std::iter::once(RawOutcome::Err(err)),
                );
                rest = committed + 1;
            }
            if rest < job.count {
                let off = p.next_arg as usize;
                if started > committed + 1 || off > job.args().len() {
                    // The header is not what a live worker writes: the remaining arguments
                    // cannot be located, so those tasks share the crash.
                    job.fail_from(rest, crashed);
                } else {
                    st.pending
                        .push_front(requeue(&job, rest, off, self.server.secret));
                }
            }
        }
        self.replace(st, idx);
    }

    /// Wakes the threads waiting for outcomes, if any.
    fn notify(&self, st: &State) {
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
                    .expect("process pool state poisoned")
                    .0
            }
            None => self.cond.wait(st).expect("process pool state poisoned"),
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
                self.notify(&st);
                if done(&st) || st.closed {
                    return;
                }
                if st.is_idle() {
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
        if st.closed {
            job.fail_from(0, |task| TaskError::Cancelled { task });
            return;
        }
        st.pending.push_back(job);
        self.dispatch(&mut st);
        if st.driving {
            self.doorbell.ring();
        } else if self.collect_news(&mut st) {
            // Nobody is driving (a `map` enqueues all its jobs before it waits): take in
            // what finished workers have, which hands them the next jobs now.
            self.notify(&st);
        }
    }
}

/// Delivers the records a worker committed for `job`; returns how many.
fn deliver_committed(job: &Job, arena: &SharedMapping, p: &Progress, worker: u32) -> usize {
    let committed = (p.committed as usize).min(job.count);
    deliver(job, arena::records(arena, p), committed, worker)
}

/// Delivers the first `committed` outcome records of `job` (`None`: they could not be
/// read); returns how many outcomes were delivered.
fn deliver(job: &Job, records: Option<&[u8]>, committed: usize, worker: u32) -> usize {
    let Some(records) = records else {
        job.fail_from(0, |task| TaskError::Codec {
            message: "the worker's result arena is inconsistent".into(),
            task,
        });
        return job.count;
    };
    let it = RecordIter {
        buf: records,
        worker,
        task: job.first_task,
        left: committed,
        broken: false,
    };
    job.sink.deliver_records(job.first_index, it);
    committed
}

/// A job for tasks `from..` of `job`, whose arguments start at byte `off` of its arguments.
fn requeue(job: &Job, from: usize, off: usize, secret: u64) -> Job {
    let mut frame = Vec::new();
    wire::begin_run(&mut frame);
    frame.extend_from_slice(&job.args()[off..]);
    let first_task = job.first_task + from as u64;
    let count = job.count - from;
    wire::finish_run(
        &mut frame,
        first_task,
        job.entry,
        job.entry ^ secret,
        count as u32,
    );
    Job {
        first_task,
        first_index: job.first_index + from,
        count,
        entry: job.entry,
        frame,
        sink: Arc::clone(&job.sink),
    }
}

/// Decodes outcome records into [`RawOutcome`]s; after a corrupt record, every remaining
/// task gets a codec error.
pub(crate) struct RecordIter<'a> {
    buf: &'a [u8],
    worker: u32,
    task: u64,
    left: usize,
    broken: bool,
}

impl<'a> RecordIter<'a> {
    /// The next record's task and payload if it is an intact `Ok` record (the common case,
    /// kept free of the error type); otherwise `None`, and `next` has the record.
    #[inline]
    fn next_ok(&mut self) -> Option<(u64, &'a [u8])> {
        if self.left == 0 || self.broken {
            return None;
        }
        match wire::decode_record(self.buf) {
            Ok((RecordTag::Ok, payload, used)) => {
                let task = self.task;
                self.left -= 1;
                self.task += 1;
                self.buf = &self.buf[used..];
                Some((task, payload))
            }
            _ => None,
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RawOutcome<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawOutcome<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let task = self.task;
        self.task += 1;
        if self.broken {
            return Some(RawOutcome::Err(corrupt(
                task,
                "an earlier record was corrupt",
            )));
        }
        let (tag, payload, used) = match wire::decode_record(self.buf) {
            Ok(r) => r,
            Err(e) => {
                self.broken = true;
                return Some(RawOutcome::Err(corrupt(task, &e.to_string())));
            }
        };
        self.buf = &self.buf[used..];
        Some(match tag {
            RecordTag::Ok => RawOutcome::Ok(payload),
            tag => RawOutcome::Err(failed(tag, payload, self.worker, task)),
        })
    }
}

/// The error a `Panicked` or `Codec` record carries. Out of line: the hot loop decodes
/// `Ok` records.
#[cold]
#[inline(never)]
fn failed(tag: RecordTag, payload: &[u8], worker: u32, task: u64) -> TaskError {
    match tag {
        RecordTag::Panicked => {
            let (message, location): (&str, Option<&str>) =
                postcard::from_bytes(payload).unwrap_or(("(unreadable panic message)", None));
            TaskError::Panicked {
                message: message.into(),
                location: location.map(ArcStr::from),
                worker,
                task,
            }
        }
        RecordTag::Codec | RecordTag::Ok => {
            let message: &str = postcard::from_bytes(payload).unwrap_or("unknown codec error");
            TaskError::Codec {
                message: message.into(),
                task,
            }
        }
    }
}

#[cold]
#[inline(never)]
fn corrupt(task: u64, why: &str) -> TaskError {
    TaskError::Codec {
        message: arcstr::format!("its outcome record is corrupt: {why}"),
        task,
    }
}

#[inline]
fn decode_result<R: DeserializeOwned>(bytes: &[u8], task: u64) -> Result<R, TaskError> {
    postcard::from_bytes(bytes).map_err(|e| undecodable(&e, task))
}

#[cold]
#[inline(never)]
fn undecodable(e: &postcard::Error, task: u64) -> TaskError {
    TaskError::Codec {
        message: arcstr::format!("its result could not be decoded: {e}"),
        task,
    }
}

/// Collects the outcomes of one `map` or `try_map` call, in input order.
struct MapSink<R, C> {
    first_task: u64,
    results: Mutex<Option<C>>,
    remaining: AtomicUsize,
    _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned + Send + 'static, C: super::Collect<R>> MapSink<R, C> {
    /// Takes in the `n` outcomes of items `first_index..`.
    fn take_in(
        &self,
        first_index: usize,
        n: usize,
        outcomes: impl Iterator<Item = Result<R, TaskError>>,
    ) {
        {
            let mut results = self.results.lock().expect("map results poisoned");
            if let Some(c) = results.as_mut() {
                c.add(first_index, outcomes);
            }
        }
        self.remaining.fetch_sub(n, Ordering::Release);
    }
}

impl<R: DeserializeOwned + Send + 'static, C: super::Collect<R>> Sink for MapSink<R, C> {
    fn deliver(&self, first_index: usize, outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>) {
        let base = self.first_task + first_index as u64;
        let decoded: Vec<Result<R, TaskError>> = outcomes
            .enumerate()
            .map(|(k, o)| match o {
                RawOutcome::Ok(bytes) => decode_result(bytes, base + k as u64),
                RawOutcome::Err(e) => Err(e),
            })
            .collect();
        self.take_in(first_index, decoded.len(), decoded.into_iter());
    }

    fn deliver_records(&self, first_index: usize, records: RecordIter<'_>) {
        self.take_in(first_index, records.left, Decoded::<R>::new(records));
    }
}

/// The outcomes in a run of records, decoded to `R`.
struct Decoded<'a, R> {
    records: RecordIter<'a>,
    _result: PhantomData<fn() -> R>,
}

impl<'a, R> Decoded<'a, R> {
    fn new(records: RecordIter<'a>) -> Self {
        Decoded {
            records,
            _result: PhantomData,
        }
    }
}

impl<R: DeserializeOwned> Decoded<'_, R> {
    /// A failed, corrupt or missing record.
    #[cold]
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R, TaskError>> {
        let task = self.records.task;
        Some(match self.records.next()? {
            RawOutcome::Ok(bytes) => decode_result(bytes, task),
            RawOutcome::Err(e) => Err(e),
        })
    }
}

impl<R: DeserializeOwned> Iterator for Decoded<'_, R> {
    type Item = Result<R, TaskError>;

    #[inline]
    fn next(&mut self) -> Option<Result<R, TaskError>> {
        match self.records.next_ok() {
            Some((task, bytes)) => Some(decode_result(bytes, task)),
            None => self.next_slow(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.records.left, Some(self.records.left))
    }

    /// The hot loop of a big `map`: `Ok` records go straight to `g` as `Ok` values (one
    /// branch per outcome kind, so the compiler writes each in place).
    #[inline]
    fn fold<B, G>(mut self, init: B, mut g: G) -> B
    where
        G: FnMut(B, Self::Item) -> B,
    {
        let mut acc = init;
        loop {
            while let Some((task, bytes)) = self.records.next_ok() {
                acc = match postcard::from_bytes(bytes) {
                    Ok(v) => g(acc, Ok(v)),
                    Err(e) => g(acc, Err(undecodable(&e, task))),
                };
            }
            match self.next_slow() {
                Some(outcome) => acc = g(acc, outcome),
                None => return acc,
            }
        }
    }
}

/// Holds the outcome of one submitted task.
struct SlotSink<R> {
    task: u64,
    outcome: Mutex<Option<Result<R, TaskError>>>,
    done: AtomicBool,
}

impl<R: DeserializeOwned + Send> Sink for SlotSink<R> {
    fn deliver(&self, _first_index: usize, outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>) {
        if let Some(o) = outcomes.next() {
            let r = match o {
                RawOutcome::Ok(bytes) => decode_result(bytes, self.task),
                RawOutcome::Err(e) => Err(e),
            };
            *self.outcome.lock().expect("task outcome poisoned") = Some(r);
            self.done.store(true, Ordering::Release);
        }
    }
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
        sink.outcome
            .lock()
            .expect("task outcome poisoned")
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

fn too_big(len: usize, task: u64) -> TaskError {
    TaskError::Codec {
        message: arcstr::format!(
            "its argument of {len} bytes exceeds the {} MiB frame limit",
            MAX_FRAME >> 20
        ),
        task,
    }
}

impl ProcessPool {
    pub(crate) fn new(config: Config) -> Result<ProcessPool, Error> {
        let server = crate::fork_server()?;
        let doorbell = Arc::new(Doorbell::new().map_err(|e| Error::new(ErrorKind::Spawn(e)))?);
        server.register(&doorbell);
        let shared = Arc::new(Shared {
            server,
            doorbell,
            state: Mutex::new(State {
                workers: Vec::new(),
                pending: VecDeque::new(),
                driving: false,
                closed: false,
                waiters: 0,
                deaths_seen: server.deaths(),
                last_drain: Instant::now(),
                records: Vec::new(),
                next_worker_id: config.workers as u32, // checked by `build`
            }),
            cond: Condvar::new(),
            next_task: AtomicU64::new(0),
            config,
        });
        let pool = ProcessPool { shared };
        for id in 0..pool.shared.config.workers as u32 {
            let w = pool
                .shared
                .spawn_worker(id)
                .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
            pool.shared.lock().workers.push(w);
        }
        Ok(pool)
    }

    pub(crate) fn workers(&self) -> usize {
        self.shared.config.workers
    }

    pub(crate) fn worker_pids(&self) -> Vec<u32> {
        self.shared
            .lock()
            .workers
            .iter()
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
        match wire::append(&arg, &mut frame) {
            Ok(()) => {}
            Err(e) => {
                return TaskInner::Ready(Err(TaskError::Codec {
                    message: arcstr::format!("its argument could not be encoded: {e}"),
                    task,
                }));
            }
        };
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
        self.shared.enqueue(Job {
            first_task: task,
            first_index: 0,
            count: 1,
            entry,
            frame,
            sink: Arc::clone(&sink) as Arc<dyn Sink>,
        });
        TaskInner::Process(ProcessTask {
            shared: Arc::clone(&self.shared),
            sink,
        })
    }

    pub(crate) fn map<A, R, F, C>(&self, _f: F, items: Vec<A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned,
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
            self.shared.enqueue(Job {
                first_task: first,
                first_index: start,
                count,
                entry,
                frame: f,
                sink: Arc::clone(&dyn_sink),
            });
            wire::begin_run(frame);
        };
        let mut i = 0;
        while i < n {
            // Encode up to ENCODE_RUN items in one serializer call. If that fails or grows
            // the frame past its limit, encode them again one by one, which finds the item
            // at fault and gives it its own error.
            let end = n.min(i + ENCODE_RUN).min(i + chunk - in_job);
            let before = frame.len();
            if wire::append_capped(&wire::Concat(&items[i..end]), &mut frame, MAX_FRAME).is_ok() {
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
            for (i, item) in items.iter().enumerate().take(end).skip(i) {
                let before = frame.len();
                let failure = match wire::append(item, &mut frame) {
                    Ok(()) => {
                        let len = frame.len() - before;
                        (len > MAX_FRAME - wire::RUN_HEADER_LEN)
                            .then(|| too_big(len, first_task + i as u64))
                    }
                    Err(e) => Some(TaskError::Codec {
                        message: arcstr::format!("its argument could not be encoded: {e}"),
                        task: first_task + i as u64,
                    }),
                };
                if let Some(err) = failure {
                    // Send what came before, then record this item's error on its own.
                    frame.truncate(before.max(wire::RUN_HEADER_LEN));
                    if frame.len() < wire::RUN_HEADER_LEN {
                        wire::begin_run(&mut frame);
                    }
                    flush(&mut frame, job_start, in_job);
                    dyn_sink.deliver(i, &mut std::iter::once(RawOutcome::Err(err)));
                    job_start = i + 1;
                    in_job = 0;
                    continue;
                }
                in_job += 1;
                if in_job == chunk || frame.len() >= JOB_BYTES {
                    flush(&mut frame, job_start, in_job);
                    job_start = i + 1;
                    in_job = 0;
                }
            }
            i = end;
        }
        flush(&mut frame, job_start, in_job);

        self.shared
            .wait_until(&|_| sink.remaining.load(Ordering::Acquire) == 0);
        let results = sink.results.lock().expect("map results poisoned").take();
        results
            .expect("map results are taken once")
            .finish(n, first_task)
    }

    pub(crate) fn shutdown(self) {
        self.shared.wait_until(&State::is_idle);
        // Drop stops the (now idle) workers.
    }
}

impl Drop for ProcessPool {
    fn drop(&mut self) {
        let shared = &self.shared;
        let mut st = shared.lock();
        st.closed = true;
        while st.driving {
            shared.doorbell.ring();
            st = shared
                .cond
                .wait_timeout(st, Duration::from_millis(20))
                .expect("poisoned")
                .0;
        }
        for job in st.pending.drain(..) {
            job.fail_from(0, |task| TaskError::Cancelled { task });
        }
        // Kill every worker's group at once, then collect the reports.
        for w in &st.workers {
            shared.server.kill(w.pid, Signal::SIGKILL);
        }
        let deadline = Instant::now() + EXIT_WAIT;
        for w in st.workers.iter_mut() {
            let left = deadline.saturating_duration_since(Instant::now());
            if shared.server.wait_exit(w.pid, left).is_none() {
                shared.server.forget(w.pid);
            }
            if let Some(job) = w.job.take() {
                let _ = arena::refresh(&mut w.arena);
                let p = arena::progress(&w.arena);
                let committed = deliver_committed(&job, &w.arena, &p, w.id);
                job.fail_from(committed, |task| TaskError::Cancelled { task });
            }
        }
        st.workers.clear();
        shared.cond.notify_all();
    }
}
