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
//! * `act.rs` — carrying out its actions with system calls, and learning how a worker died;
//! * `driver.rs` — driving (waiting threads and the supervisor), timeouts, collecting news;
//! * `handle.rs` — one worker process as the parent holds it (pipes, arena, stderr);
//! * `host.rs` — where a worker lives (on this host, or another through its agent): the
//!   one interface the driver sends jobs, signals and asks for exits through;
//! * `job.rs` — a job's frame, sink and items (to resume it after a death);
//! * `outcome.rs` — the sinks that collect outcomes, and the record decoder;
//! * this file — the pool's state, building it, `submit`, `map`, shutdown and drop.

mod act;
mod driver;
mod handle;
mod host;
mod job;
mod outcome;
mod recovery;

use std::marker::PhantomData;
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
use job::{Context, Delivery, Items, Job, JobData, Reencode};
pub(crate) use outcome::decode_records_for_fuzz;
use outcome::{CaptureSink, MapSink, RawOutcome, Sink, SlotSink, StreamSink};
use recovery::{Action, Death, Machine};

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

thread_local! {
    /// Wakers of awaited tasks whose outcomes this thread delivered while it held the pool's
    /// lock, to be woken once it lets go (see [`StateGuard`]).
    static WAKES: std::cell::RefCell<Vec<std::task::Waker>> =
        const { std::cell::RefCell::new(Vec::new()) };
    /// This thread holds the driver role of a pool (in `wait_until`): a waker it wakes that
    /// drops the pool must not wait for the driver to finish.
    static DRIVING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Holds a waker until this thread lets go of the pool's lock.
fn defer_wake(waker: std::task::Waker) {
    WAKES.with(|w| w.borrow_mut().push(waker));
}

/// Wakes the wakers this thread deferred (with the pool's lock let go). A waker may call
/// `submit`, whose delivery defers more: they are woken too.
fn wake_deferred() {
    loop {
        let wakes = WAKES.with(|w| std::mem::take(&mut *w.borrow_mut()));
        if wakes.is_empty() {
            return;
        }
        for w in wakes {
            crate::panic::wake_contained(w);
        }
    }
}

fn wakes_pending() -> bool {
    WAKES.with(|w| !w.borrow().is_empty())
}

/// The pool's lock, held. Outcomes are delivered under it, but user code must not run
/// under it: an awaited task's waker (an async runtime's) may call back into the pool —
/// `submit` from a waker that polls inline would deadlock on this lock — or panic. So the
/// wakers of outcomes delivered under the lock wait in this thread's list, and are woken
/// when the guard lets go: dropped, or put to sleep on a condition variable (which then
/// returns at once, as a spurious wake-up, which every sleeper already allows for).
struct StateGuard<'a> {
    mutex: &'a Mutex<State>,
    guard: Option<MutexGuard<'a, State>>,
}

impl<'a> StateGuard<'a> {
    fn new(mutex: &'a Mutex<State>) -> Self {
        StateGuard {
            mutex,
            guard: Some(lock(mutex)),
        }
    }

    /// Sleeps on `cond`, at most `limit`, with the lock let go; at once if wakers wait.
    fn wait(mut self, cond: &Condvar, limit: Option<Duration>) -> Self {
        if wakes_pending() {
            let mutex = self.mutex;
            drop(self);
            return StateGuard::new(mutex);
        }
        let guard = self.guard.take().expect("a held guard");
        let guard = match limit {
            Some(d) => {
                cond.wait_timeout(guard, d)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => cond.wait(guard).unwrap_or_else(PoisonError::into_inner),
        };
        self.guard = Some(guard);
        self
    }
}

impl std::ops::Deref for StateGuard<'_> {
    type Target = State;

    #[inline]
    fn deref(&self) -> &State {
        self.guard.as_ref().expect("a held guard")
    }
}

impl std::ops::DerefMut for StateGuard<'_> {
    #[inline]
    fn deref_mut(&mut self) -> &mut State {
        self.guard.as_mut().expect("a held guard")
    }
}

impl Drop for StateGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        drop(self.guard.take());
        if wakes_pending() {
            wake_deferred();
        }
    }
}

struct State {
    machine: Machine<Job>,
    /// The worker process of each slot of the machine.
    workers: Vec<Option<Worker>>,
    /// How each slot's current worker ended, once known.
    exits: Vec<Option<Exit>>,
    /// Slots that wait for their lost host's agent to be launched again.
    relaunching: Vec<bool>,
    /// Slots whose worker was recycled and whose replacement is started after the outcomes
    /// of that moment are delivered (by the supervisor, or whoever drives next).
    deferred: Vec<bool>,
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
    /// Scratch space for the machine's actions, and for carrying them out.
    actions: Vec<Action<Job>>,
    queue: std::collections::VecDeque<Action<Job>>,
    out: Vec<Action<Job>>,
    /// Why the last replacement worker could not be started.
    spawn_error: Option<String>,
    /// Why the worker initializer failed in a replacement worker: no more are started.
    init_failed: Option<String>,
    /// The supervisor sleeps until woken (the pool was quiet for a while).
    supervisor_parked: bool,
    /// Tasks with a pending `await`: while there are any, the supervisor also wakes on the
    /// doorbell, so an awaited outcome is delivered as soon as its worker is done.
    awaiting: usize,
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
    /// The agents and connections of remote workers ([`crate::PoolBuilder::remote`]).
    remote: Option<crate::remote::hub::Hub>,
}

#[derive(Debug)]
pub(crate) struct ProcessPool {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
    /// How the sandbox came out in the first worker, if the pool has one.
    sandbox_report: Option<crate::SandboxReport>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The process-mode side of a [`crate::Task`].
pub(crate) struct ProcessTask<R> {
    shared: Arc<Shared>,
    sink: Arc<SlotSink<R>>,
    /// Counted in `State::awaiting` (an `await` on it is pending).
    awaited: bool,
}

impl<R> Drop for ProcessTask<R> {
    fn drop(&mut self) {
        if self.awaited {
            self.shared.lock().awaiting -= 1;
        }
    }
}

impl<R> std::fmt::Debug for ProcessTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTask")
            .field("task", &self.sink.task)
            .finish_non_exhaustive()
    }
}

impl<R> ProcessTask<R> {
    pub(crate) fn is_finished(&self) -> bool {
        if !self.sink.done.load(Ordering::Acquire) {
            self.shared.poll();
        }
        self.sink.done.load(Ordering::Acquire)
    }

    /// The outcome, if it arrives by `deadline`; the task back otherwise.
    pub(crate) fn join_deadline(self, deadline: Instant) -> Result<Result<R, TaskError>, Self> {
        if !self.is_finished() {
            let sink = &self.sink;
            let done = self
                .shared
                .wait_until_deadline(&|_| sink.done.load(Ordering::Acquire), Some(deadline));
            if !done {
                return Err(self);
            }
        }
        Ok(self.join())
    }

    /// Cancels the task: a queued one never runs; a running one has its worker killed (and
    /// replaced). True if its outcome is `Cancelled` (false: it had finished first).
    pub(crate) fn cancel(&self) -> bool {
        let shared = &self.shared;
        let me = Arc::as_ptr(&self.sink) as *const ();
        let is_mine = |job: &Job| Arc::as_ptr(&job.sink) as *const () == me;
        let mut st = shared.lock();
        let mut out = Vec::new();
        match st.machine.cancel(is_mine, &mut out) {
            recovery::Cancel::Queued => shared.act(&mut st, &mut out),
            recovery::Cancel::Running(slot) => {
                if let Some(w) = st.workers[slot].as_ref() {
                    w.host.kill(Signal::SIGKILL);
                }
                shared.on_death(&mut st, slot, Death::Cancelled, &mut out);
                shared.act(&mut st, &mut out);
            }
            recovery::Cancel::Gone => {}
        }
        shared.notify(&mut st);
        drop(st);
        matches!(
            *lock(&self.sink.outcome),
            Some(Err(TaskError::Cancelled { .. }))
        )
    }

    /// The `Future` side: ready once the outcome arrived. Until then the supervisor watches
    /// the doorbell (not only its 10 ms clock) so that the waker runs as soon as the worker is
    /// done.
    pub(crate) fn poll_outcome(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<R, TaskError>> {
        use std::task::Poll;
        if self.is_finished() {
            return Poll::Ready(self.sink.take());
        }
        *lock(&self.sink.waker) = Some(cx.waker().clone());
        self.sink.awaited.store(true, Ordering::SeqCst);
        if !self.awaited {
            self.awaited = true;
            let mut st = self.shared.lock();
            st.awaiting += 1;
            if st.supervisor_parked {
                st.supervisor_parked = false;
                self.shared.supervisor.notify_one();
            }
        }
        // The outcome may have landed between the look and the waker's registration.
        if self.sink.done.load(Ordering::SeqCst) {
            return Poll::Ready(self.sink.take());
        }
        Poll::Pending
    }

    pub(crate) fn join_captured(self) -> (Result<R, TaskError>, super::Output) {
        let output = std::sync::Arc::clone(&self.sink);
        let outcome = self.join();
        let output = lock(&output.output).take().unwrap_or_default();
        (outcome, output)
    }

    pub(crate) fn join(self) -> Result<R, TaskError> {
        let sink = &self.sink;
        self.shared
            .wait_until(&|_| sink.done.load(Ordering::Acquire));
        sink.take()
    }
}

/// True if the probe committed one record, its `Ok` result.
fn probe_ok(arena: &SharedMapping) -> bool {
    let p = arena::progress(arena);
    p.committed == 1
        && arena::records(arena, &p)
            .and_then(|r| wire::decode_record(r).ok())
            .is_some_and(|(tag, _, _)| tag == wire::RecordTag::Ok)
}

/// The address of the entry point for tasks of the fn item (or non-capturing closure) `f`.
fn entry_of<A, R, F>(_f: F) -> u64
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    let f: EntryFn = entry::<A, R, F>;
    f as usize as u64
}

/// What a worker must manage under the pool's memory limit at `build()`: its first job
/// allocates its read buffer and whatever the task needs, so the probe allocates 1 MiB (above
/// glibc's mmap threshold, where `RLIMIT_DATA` bites at once).
const PROBE_BYTES: usize = 1 << 20;

/// How long `build()` waits for a re-executed worker to answer its probe.
const EXEC_WAIT: Duration = Duration::from_secs(10);

/// The probe a worker runs at `build()`: it allocates `n` bytes (under a memory limit) and
/// returns the worker's sandbox report, if it has a sandbox. It is no task (the recovery
/// machine never sees it), so a sandboxed pool's fresh-worker-per-task rule leaves the
/// probed worker to its first task.
fn probe(n: usize) -> Option<crate::SandboxReport> {
    std::hint::black_box(vec![1u8; n]);
    crate::sandbox::report_task(())
}

/// The sandbox report in a probe's record.
fn probe_report(arena: &SharedMapping) -> Option<crate::SandboxReport> {
    let p = arena::progress(arena);
    let (_, payload, _) = wire::decode_record(arena::records(arena, &p)?).ok()?;
    postcard::from_bytes::<Option<crate::SandboxReport>>(payload).ok()?
}

impl ProcessPool {
    pub(crate) fn new(config: Config) -> Result<ProcessPool, Error> {
        let server = crate::fork_server()?;
        let doorbell = Arc::new(Doorbell::new().map_err(|e| Error::new(ErrorKind::Spawn(e)))?);
        server.register(&doorbell);
        let n = config.workers;
        let remote = match &config.remote {
            Some(r) => Some(
                crate::remote::hub::Hub::start(
                    r,
                    n,
                    server,
                    config.task_timeout,
                    config.memory_limit,
                    config.forward_stderr,
                    Arc::clone(&doorbell),
                )
                .map_err(|message| Error::new(ErrorKind::Remote { message }))?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            server,
            doorbell,
            state: Mutex::new(State {
                machine: Machine::new(n, config.max_tasks_per_worker, config.retries),
                workers: Vec::with_capacity(n),
                exits: vec![None; n],
                relaunching: vec![false; n],
                deferred: vec![false; n],
                retired: Vec::new(),
                driving: false,
                waiters: 0,
                delivered: false,
                deaths_seen: driver::deaths(server, remote.as_ref()),
                last_drain: Instant::now(),
                records: Vec::new(),
                deliveries: Vec::new(),
                actions: Vec::new(),
                queue: Default::default(),
                out: Vec::new(),
                spawn_error: None,
                init_failed: None,
                supervisor_parked: false,
                awaiting: 0,
                stopping: false,
                next_worker_id: n as u32, // checked by `build`
            }),
            cond: Condvar::new(),
            supervisor: Condvar::new(),
            next_task: AtomicU64::new(0),
            config,
            remote,
        });
        let mut pool = ProcessPool {
            shared,
            supervisor: None,
            sandbox_report: None,
        };
        for id in 0..n as u32 {
            let w = pool
                .shared
                .spawn_worker(id as usize, id)
                .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
            pool.shared.lock().workers.push(Some(w));
        }
        let exec = pool.shared.config.start_method == crate::StartMethod::Exec;
        let c = &pool.shared.config;
        let sandboxed = c.sandbox.is_some();
        if c.memory_limit.is_some() || c.init.is_some() || exec || c.remote.is_some() || sandboxed {
            let report = pool.probe_workers()?;
            if sandboxed {
                // A sandbox that cannot be applied ended the probe with the worker's reason.
                pool.sandbox_report = Some(report.ok_or_else(|| {
                    Error::new(ErrorKind::Sandbox {
                        message: "a worker ran without applying it".into(),
                    })
                })?);
            }
        }
        let shared = Arc::clone(&pool.shared);
        let supervisor = std::thread::Builder::new()
            .name("proctor-supervisor".into())
            .spawn(move || shared.supervise())
            .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
        pool.supervisor = Some(supervisor);
        Ok(pool)
    }

    /// Runs a probe job on every worker and waits for it: so that `build()` returns once
    /// every worker has run its initializer (or fails with the initializer's panic), and
    /// so that a memory limit too small for an idle worker (the probe then allocates 1 MiB)
    /// is an error from `build()` rather than a respawn loop later.
    fn probe_workers(&self) -> Result<Option<crate::SandboxReport>, Error> {
        let shared = &self.shared;
        let limit = shared.config.memory_limit;
        let bytes = if limit.is_some() { PROBE_BYTES } else { 0 };
        let entry = entry_of(probe);
        let mut frame = Vec::new();
        wire::begin_run(&mut frame);
        wire::append(&bytes, &mut frame).expect("a usize encodes");
        wire::finish_run(&mut frame, 0, entry, entry ^ shared.server.secret, 1);
        let too_small = |how: &str| {
            Error::invalid(format!(
                "memory_limit of {} bytes is too small for an idle worker process: {how}",
                limit.unwrap_or(0)
            ))
        };
        let mut st = shared.lock();
        // Without a memory limit the initializer may take its time; with one, a worker
        // that does not answer is taken to be stuck under the limit.
        let exec = shared.config.start_method == crate::StartMethod::Exec;
        let deadline = match (limit, shared.config.init) {
            (Some(_), _) => Some(Instant::now() + EXIT_WAIT),
            // A re-executed program that never reaches `init()` would run its own `main`.
            (None, None) if exec || shared.remote.is_some() => Some(Instant::now() + EXEC_WAIT),
            (None, _) => None,
        };
        let st = &mut *st;
        let mut report = None;
        for (w, exit_of) in st.workers.iter_mut().zip(st.exits.iter_mut()) {
            let Some(w) = w.as_mut() else { continue };
            arena::reset(&w.arena, false, shared.arena_max());
            let sent = w.host.send(&frame).is_ok();
            w.sent_seq += 1;
            let want = w.sent_seq;
            arena::sent(&w.arena, want);
            loop {
                w.host.pump();
                if sent && arena::done_seq(&w.header) == want {
                    if probe_ok(&w.arena) {
                        report = report.or_else(|| probe_report(&w.arena));
                        break;
                    }
                    return Err(too_small(&format!(
                        "it could not allocate {PROBE_BYTES} bytes"
                    )));
                }
                let exit = w.host.try_exit();
                let late = deadline.is_some_and(|d| Instant::now() >= d);
                if !sent || exit.is_some() || late {
                    let exit = match exit {
                        // The pipe closed first: wait for the worker's end, to say why.
                        None if !sent => w.host.wait_exit(EXIT_WAIT),
                        exit => exit,
                    };
                    // Known, so that dropping the pool does not wait for it again.
                    *exit_of = exit;
                    w.drain_stderr();
                    if exit == Some(Exit::Code(crate::exit::ExitCode::SandboxFailed.code() as u8)) {
                        return Err(Error::new(ErrorKind::Sandbox {
                            message: w.sandbox_failure(),
                        }));
                    }
                    if exit == Some(Exit::Code(crate::exit::ExitCode::StartFailed.code() as u8)) {
                        return Err(Error::new(ErrorKind::Spawn(std::io::Error::other(
                            format!(
                                "a re-executed worker refused to start: {}",
                                w.start_failure()
                            ),
                        ))));
                    }
                    if exit == Some(Exit::Code(crate::exit::ExitCode::InitFailed.code() as u8)) {
                        return Err(Error::new(ErrorKind::WorkerInit {
                            message: format!("the initializer panicked: {}", w.init_failure()),
                        }));
                    }
                    let how = match exit {
                        Some(Exit::Signal(s)) => {
                            format!("was killed by {}", crate::error::signal_description(s))
                        }
                        Some(Exit::Code(c)) => format!("exited with code {c}"),
                        None if exec => format!(
                            "did not answer within {} s (does `main` call proctor::init() on \
                             every run, before anything else?)",
                            EXEC_WAIT.as_secs()
                        ),
                        None => "did not answer".to_string(),
                    };
                    if shared.config.init.is_some() && limit.is_none() {
                        return Err(Error::new(ErrorKind::WorkerInit {
                            message: format!(
                                "a worker {how} while running the initializer; its stderr \
                                 ended: {}",
                                w.job_stderr().trim_end()
                            ),
                        }));
                    }
                    if limit.is_none() {
                        return Err(Error::new(ErrorKind::Spawn(std::io::Error::other(
                            format!(
                                "a worker {how} while starting; its stderr ended: {}",
                                w.job_stderr().trim_end()
                            ),
                        ))));
                    }
                    return Err(too_small(&format!(
                        "one {how} while starting (or allocating {PROBE_BYTES} bytes)"
                    )));
                }
                let seq = shared.doorbell.seq();
                match w.host.conn() {
                    Some(c) => {
                        shared
                            .doorbell
                            .poll_wait(seq, &[c.data_fd()], Duration::from_millis(5))
                    }
                    None => shared.doorbell.wait(seq, Duration::from_millis(5)),
                }
            }
        }
        Ok(report)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    pub(crate) fn sandbox_report(&self) -> Option<&crate::SandboxReport> {
        self.sandbox_report.as_ref()
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
            .map(|w| w.host.pid())
            .collect()
    }

    pub(crate) fn submit<A, R, F>(&self, f: F, arg: A) -> TaskInner<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let task = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        // Room for the header and a small argument: one allocation, not three growing ones.
        let mut frame = Vec::with_capacity(wire::RUN_HEADER_LEN + 32);
        wire::begin_run(&mut frame);
        let cap = wire::RUN_HEADER_LEN + wire::INBOX_MIN;
        let deferred = match self.shared.encode_arg(&arg, &mut frame, cap, task) {
            Err(e) => return TaskInner::Ready(Err(e)),
            Ok(None) => None,
            Ok(Some(len)) => {
                // A large argument, encoded when sent, into the worker's inbox.
                wire::begin_run(&mut frame);
                Some(len)
            }
        };
        let entry = entry_of(f);
        wire::finish_run(
            &mut frame,
            task,
            entry,
            entry ^ self.shared.server.secret,
            1,
        );
        let items = deferred.map(|_| {
            let items = Items {
                items: Mutex::new(vec![arg]),
                base: 0,
            };
            Arc::new(items) as Arc<dyn Reencode>
        });
        let sink = Arc::new(SlotSink {
            task,
            outcome: Mutex::new(None),
            done: AtomicBool::new(false),
            waker: Mutex::new(None),
            awaited: AtomicBool::new(false),
            output: Mutex::new(None),
        });
        self.shared.enqueue(Arc::new(JobData {
            first_task: task,
            first_index: 0,
            count: 1,
            entry,
            frame,
            sink: Arc::clone(&sink) as Arc<dyn Sink>,
            items,
            context: None,
            deferred,
        }));
        TaskInner::Process(ProcessTask {
            shared: Arc::clone(&self.shared),
            sink,
            awaited: false,
        })
    }

    pub(crate) fn map<A, R, F, C>(&self, f: F, items: Vec<A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: super::Collect<R>,
    {
        self.map_in::<A, R, F, C>(f, items, None)
    }

    /// Runs `items` through the entry point `entry` as one call, its outcomes going to `sink`,
    /// and waits until `remaining` (the sink's count of outcomes still to come) is zero.
    /// Returns the call's first task.
    fn run_call<A, S>(
        &self,
        entry: u64,
        items: Vec<A>,
        context: Option<Arc<Context>>,
        sink: &Arc<S>,
        remaining: &AtomicUsize,
    ) -> u64
    where
        A: Serialize + Send + 'static,
        S: Sink + 'static,
    {
        let n = items.len();
        let first_task = self.shared.next_task.fetch_add(n as u64, Ordering::Relaxed);
        let dyn_sink: Arc<dyn Sink> = Arc::clone(sink) as Arc<dyn Sink>;
        let batch = Batch {
            entry,
            first_task,
            base: 0,
            chunk: self.shared.config.chunk_for(n),
            sink: &dyn_sink,
            context,
        };
        self.shared.enqueue_items(batch, items);
        self.shared
            .wait_until(&|_| remaining.load(Ordering::Acquire) == 0);
        first_task
    }

    /// `map`, with each task's captured output next to its outcome.
    pub(crate) fn map_captured<A, R, F>(
        &self,
        f: F,
        items: Vec<A>,
    ) -> Vec<(Result<R, TaskError>, super::Output)>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let n = items.len();
        let sink = Arc::new(CaptureSink::<R> {
            results: Mutex::new(super::Assembler::new(n)),
            orphans: Mutex::new(Default::default()),
            remaining: AtomicUsize::new(n),
        });
        let first_task = self.run_call(entry_of(f), items, None, &sink, &sink.remaining);
        let results = std::mem::replace(&mut *lock(&sink.results), super::Assembler::new(0));
        results.finish(n, |i| {
            let task = first_task + i as u64;
            (Err(TaskError::Cancelled { task }), super::Output::default())
        })
    }

    /// The `Context` frame of a `map_with` call's context, or why it cannot be encoded.
    pub(crate) fn context<C>(&self, context: &C) -> Result<Arc<Context>, String>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let mut bytes = Vec::new();
        crate::codec::guarded("Serialize", || {
            wire::append_capped(context, &mut bytes, MAX_FRAME - 64)
        })?
        .map_err(|e| match e {
            postcard::Error::SerializeBufferFull => {
                format!("it exceeds the {} MiB frame limit", MAX_FRAME >> 20)
            }
            e => crate::codec::ser_error(context, &e),
        })?;
        let keep: crate::state::ContextFn = crate::state::context_entry::<C>;
        let entry = keep as usize as u64;
        let mut frame = Vec::new();
        wire::encode_call(
            &mut frame,
            entry,
            entry ^ self.shared.server.secret,
            Some(&bytes),
        );
        Ok(Arc::new(Context {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            frame,
        }))
    }

    /// `map`, with the call's context if it has one.
    pub(crate) fn map_in<A, R, F, C>(
        &self,
        f: F,
        items: Vec<A>,
        context: Option<Arc<Context>>,
    ) -> C::Output
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: super::Collect<R>,
    {
        let n = items.len();
        let sink = Arc::new(MapSink::<R, C> {
            results: Mutex::new(Some(C::with_len(n))),
            remaining: AtomicUsize::new(n),
            _result: PhantomData,
        });
        let first_task = self.run_call(entry_of(f), items, context, &sink, &sink.remaining);
        let results = lock(&sink.results).take();
        results
            .expect("map results are taken once")
            .finish(n, first_task)
    }

    /// Starts a stream of `f` over `items` (see [`crate::Stream`]).
    pub(crate) fn stream<'p, A, R, F, I>(
        &'p self,
        f: F,
        items: I,
    ) -> Box<dyn super::stream::Batches<R> + 'p>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: Iterator<Item = A> + 'p,
    {
        Box::new(ProcessStream {
            shared: &self.shared,
            entry: entry_of(f),
            items,
            sink: Arc::new(StreamSink::new()),
        })
    }

    pub(crate) fn shutdown(self) {
        self.shared.wait_until(&State::is_idle);
        // Drop stops the (now idle) workers and reads their last output.
    }
}

/// Where `enqueue_items` puts a batch of items: tasks `first_task..` of the entry point
/// `entry`, indices `base..` of their call, in jobs of at most `chunk` items whose outcomes
/// go to `sink`, with the call's context if it has one.
struct Batch<'a> {
    entry: u64,
    first_task: u64,
    base: usize,
    chunk: usize,
    sink: &'a Arc<dyn Sink>,
    context: Option<Arc<Context>>,
}

impl Shared {
    /// The largest encoded argument a task may have: the pool's `max_payload`, or what fits
    /// in a frame for a remote worker (which has no inbox to share).
    fn arg_limit(&self) -> usize {
        if self.remote.is_some() {
            MAX_FRAME - wire::RUN_HEADER_LEN
        } else {
            self.config.max_payload
        }
    }

    /// The error of an argument whose encoding outgrew [`Shared::arg_limit`] (serializing
    /// stops there: a huge argument is rejected without being encoded whole).
    fn too_big(&self, task: u64) -> TaskError {
        let what = if self.remote.is_some() {
            "a remote worker's frame limit"
        } else {
            "the pool's max_payload"
        };
        TaskError::Codec {
            message: arcstr::format!(
                "its argument exceeds {what} of {} MiB",
                self.arg_limit() >> 20
            ),
            task,
        }
    }

    /// Appends the encoding of task `task`'s argument `arg` to `out` if `out` stays within
    /// `cap` bytes (`Ok(None)`); past that, measures it without building it (`Ok(Some(len))`,
    /// an argument to encode when sent, into the worker's inbox, with `out` left partly
    /// written). The task's `Codec` error if its `Serialize` fails or panics (it is the
    /// user's), or if it is over [`Shared::arg_limit`].
    fn encode_arg<A: Serialize>(
        &self,
        arg: &A,
        out: &mut Vec<u8>,
        cap: usize,
        task: u64,
    ) -> Result<Option<usize>, TaskError> {
        let unencodable = |why: String| TaskError::Codec {
            message: arcstr::format!("its argument could not be encoded: {why}"),
            task,
        };
        let failed = |e: postcard::Error| unencodable(crate::codec::ser_error(arg, &e));
        match crate::codec::guarded("Serialize", || wire::append_capped(arg, out, cap)) {
            Ok(Ok(())) => Ok(None),
            Ok(Err(postcard::Error::SerializeBufferFull)) => {
                let max = self.arg_limit();
                match crate::codec::guarded("Serialize", || wire::encoded_len_capped(arg, max)) {
                    Ok(Ok(len)) => Ok(Some(len)),
                    Ok(Err(postcard::Error::SerializeBufferFull)) => Err(self.too_big(task)),
                    Ok(Err(e)) => Err(failed(e)),
                    Err(why) => Err(unencodable(why)),
                }
            }
            Ok(Err(e)) => Err(failed(e)),
            Err(why) => Err(unencodable(why)),
        }
    }

    /// Encodes `items` into jobs and queues them (see [`Batch`]).
    fn enqueue_items<A>(&self, to: Batch<'_>, items: Vec<A>)
    where
        A: Serialize + Send + 'static,
    {
        let Batch {
            entry,
            first_task,
            base,
            chunk,
            sink,
            context,
        } = to;
        let n = items.len();
        let check = entry ^ self.server.secret;
        // The items stay with the jobs until they are done, so that a job whose worker died
        // can be resumed by encoding its remaining arguments again.
        let items = Arc::new(Items {
            items: Mutex::new(items),
            base,
        });
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
            self.enqueue(Arc::new(JobData {
                first_task: first,
                first_index: base + start,
                count,
                entry,
                frame: f,
                sink: Arc::clone(sink),
                items: Some(Arc::clone(&reencode)),
                context: context.clone(),
                deferred: None,
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
                let items = lock(&items.items);
                let run = &items[i..end];
                // A `Serialize` that panics sends the run the slow way, which finds it.
                crate::codec::guarded("Serialize", || {
                    wire::append_capped(&wire::Concat(run), &mut frame, MAX_FRAME)
                })
                .is_ok_and(|r| r.is_ok())
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
                let task = first_task + k as u64;
                let encoded = {
                    let items = lock(&items.items);
                    self.encode_arg(&items[k], &mut one, MAX_FRAME - wire::RUN_HEADER_LEN, task)
                };
                if let Ok(Some(len)) = encoded {
                    // Too large for a frame, within the pool's limit: a job of its own, its
                    // argument encoded when sent, into the worker's inbox.
                    flush(&mut frame, job_start, in_job);
                    let mut header = Vec::with_capacity(wire::RUN_HEADER_LEN);
                    wire::begin_run(&mut header);
                    wire::finish_run(&mut header, task, entry, check, 1);
                    self.enqueue(Arc::new(JobData {
                        first_task: task,
                        first_index: base + k,
                        count: 1,
                        entry,
                        frame: header,
                        sink: Arc::clone(sink),
                        items: Some(Arc::clone(&reencode)),
                        context: context.clone(),
                        deferred: Some(len),
                    }));
                    job_start = k + 1;
                    in_job = 0;
                    continue;
                }
                if let Err(err) = encoded {
                    // Send what came before, then record this item's error on its own.
                    flush(&mut frame, job_start, in_job);
                    sink.deliver(base + k, task, &mut std::iter::once(RawOutcome::Err(err)));
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
    }
}

/// The process-mode side of a [`crate::Stream`]: batches of items become jobs whose
/// outcomes arrive in a [`StreamSink`].
struct ProcessStream<'p, I, R> {
    shared: &'p Arc<Shared>,
    entry: u64,
    items: I,
    sink: Arc<StreamSink<R>>,
}

impl<A, R, I> super::stream::Batches<R> for ProcessStream<'_, I, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    fn feed(&mut self, base: usize, max: usize, chunk: usize) -> usize {
        let batch: Vec<A> = self.items.by_ref().take(max).collect();
        let n = batch.len();
        if n > 0 {
            let first_task = self.shared.next_task.fetch_add(n as u64, Ordering::Relaxed);
            let sink: Arc<dyn Sink> = Arc::clone(&self.sink) as Arc<dyn Sink>;
            let to = Batch {
                entry: self.entry,
                first_task,
                base,
                chunk,
                sink: &sink,
                context: None,
            };
            self.shared.enqueue_items(to, batch);
        }
        n
    }

    fn next_run(&mut self) -> Option<super::stream::OutcomeRun<R>> {
        if let Some(run) = self.sink.pop() {
            return Some(run);
        }
        let sink = &self.sink;
        let ready = |st: &State| sink.ready.load(Ordering::Acquire) > 0 || st.machine.is_closed();
        self.shared.wait_until(&ready);
        self.sink.pop()
    }
}

impl<I, R> Drop for ProcessStream<'_, I, R> {
    /// What is queued never runs; what runs finishes, into a sink nobody reads.
    fn drop(&mut self) {
        let shared = self.shared;
        let me = Arc::as_ptr(&self.sink) as *const ();
        let is_mine = |job: &Job| Arc::as_ptr(&job.sink) as *const () == me;
        let mut st = shared.lock();
        let mut out = Vec::new();
        while let recovery::Cancel::Queued = st.machine.cancel(is_mine, &mut out) {}
        shared.act(&mut st, &mut out);
        shared.notify(&mut st);
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
        // (Unless this thread is the driver: a waker it woke dropped the pool. The drive it
        // returns to sees the pool closed.)
        while st.driving && !DRIVING.get() {
            shared.doorbell.ring();
            st = st.wait(&shared.cond, Some(Duration::from_millis(20)));
        }
        shared.act(&mut st, &mut out);
        // Kill every worker's group at once, then collect the reports.
        for w in st.workers.iter().flatten() {
            w.host.kill(Signal::SIGKILL);
        }
        let deadline = Instant::now() + EXIT_WAIT;
        let mut out = Vec::new();
        for s in 0..st.workers.len() {
            let Some(w) = st.workers[s].as_ref() else {
                continue;
            };
            if st.exits[s].is_none() {
                let left = deadline.saturating_duration_since(Instant::now());
                let exit = w.host.wait_exit(left).unwrap_or_else(|| {
                    w.host.forget();
                    Exit::Signal(libc::SIGKILL)
                });
                st.exits[s] = Some(exit);
            }
            if st.machine.busy(s).is_some() {
                shared.on_death(&mut st, s, Death::Cancelled, &mut out);
            }
        }
        shared.act(&mut st, &mut out);
        // Read every pipe to its end: what the workers wrote last is not lost.
        let mut retired: Vec<Retired> = st.retired.drain(..).collect();
        for w in st.workers.iter_mut().filter_map(Option::take) {
            retired.push(w.retire(false));
        }
        shared.cond.notify_all();
        drop(st);
        let deadline = Instant::now() + EXIT_WAIT;
        for r in retired {
            r.finish(deadline);
        }
        if let Some(h) = self.supervisor.take() {
            // Unless the supervisor drops the pool itself (a waker it woke held the last
            // handle): it leaves by itself, seeing `stopping`.
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
        if let Some(hub) = &self.shared.remote {
            hub.shutdown();
        }
    }
}
