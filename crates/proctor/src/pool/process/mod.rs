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
//! [`recovery`]; the rest of this module carries out its [`Action`]s: it writes frames,
//! reads arenas, kills and starts processes. The pieces:
//!
//! * `recovery.rs` — the state machine (slots, runs, the rules on death), tested alone;
//! * `act.rs` — carrying out its actions with system calls, and learning how a worker died;
//! * `driver.rs` — driving (waiting threads and the supervisor), timeouts, collecting news;
//! * `handle.rs` — one worker process as the parent holds it (pipes, arena, stderr);
//! * `host.rs` — where a worker lives (on this host, or another through its agent): the
//!   one interface the driver sends jobs, signals and asks for exits through;
//! * `job.rs` — a job's frame, sink and items (to resume it after a death);
//! * `outcome.rs` — the sinks that collect outcomes, and the record decoder;
//! * `call.rs` — `submit`, `map` and streams: arguments encoded into jobs and queued;
//! * `start.rs` — building the pool: its first workers, and the probe they run;
//! * this file — the pool's state ([`State`], [`Shared`]), the lock that defers wakers, a
//!   task handle, shutdown and drop.
//!
//! [`Shared`] (what the pool's handles, tasks and supervisor share) has its methods split by
//! concern across the files that use its state that way: encoding and queueing arguments
//! in `call.rs`; carrying out actions in `act.rs`; driving, waiting and the supervisor in
//! `driver.rs`.

mod act;
mod call;
mod driver;
mod handle;
mod host;
mod job;
mod outcome;
mod recovery;
mod start;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::Config;

use crate::doorbell::Doorbell;
use crate::error::TaskError;
use crate::server::{Exit, ForkServer};

use handle::{Retired, Worker};
use job::{Delivery, Job};
use outcome::SlotSink;
pub(crate) use outcome::decode_records_for_fuzz;
use recovery::{Action, Death, Machine};

/// Time between SIGTERM and SIGKILL for a timed-out worker.
const KILL_GRACE: Duration = Duration::from_millis(100);
/// How long to wait for the fork server to report a worker's end.
const EXIT_WAIT: Duration = Duration::from_secs(2);
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
    /// The last `map_with` context, kept so that the next call with the same bytes is not
    /// sent again to the workers that hold it (see `ProcessPool::context`).
    last_context: Mutex<Option<Arc<job::Context>>>,
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

impl ProcessPool {
    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    #[cfg(feature = "sandbox")]
    pub(crate) fn sandbox_report(&self) -> Option<&crate::SandboxReport> {
        self.sandbox_report.as_ref()
    }

    pub(crate) fn workers(&self) -> usize {
        self.shared.config.workers
    }

    /// The pool's counters, with the tasks and workers at work read from the scheduler.
    pub(crate) fn stats(&self) -> crate::PoolStats {
        let st = self.shared.lock();
        let (mut running, mut busy) = (0, 0);
        for slot in 0..st.workers.len() {
            if let Some(run) = st.machine.busy(slot) {
                running += run.count as u64;
                busy += 1;
            }
        }
        drop(st);
        self.shared.config.stats.snapshot(Some((running, busy)))
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
