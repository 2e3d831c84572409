//! Thread mode: worker threads pulling jobs from one channel, and for a plain `try_map`,
//! rayon threads that write values in place (see [`MapThreads`]).
//!
//! Values move between threads without serialization. A panic is caught per task. A task
//! past its timeout cannot be stopped: the pool's watchdog thread (started only with a
//! `task_timeout`) delivers [`TaskError::TimedOut`] on time, whether or not anyone waits,
//! marks the worker abandoned and starts a replacement; the stuck thread exits when its task
//! returns. Whether a task finished or was abandoned is decided under one lock (the
//! `running` table), so exactly one of the two delivers its outcome.
//!
//! This file holds the pool, its workers and their shared state; the pieces that only use
//! them live beside it: `run.rs` (running a task or a chunk, a panic caught per task),
//! `task.rs` (a submitted task's handle), `stream.rs` (a stream's batches) and `in_place.rs`
//! (rayon threads for a plain `try_map`).
//!
//! The pool (`pool/mod.rs`, `builder.rs`, `task.rs`, `collect.rs`) imports `ThreadPool`,
//! `ThreadTask` and `MapThreads`; nothing outside `pool/` imports from this folder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use super::Config;
use crate::error::TaskError;

mod in_place;
mod run;
mod stream;
mod task;
#[cfg(test)]
mod tests;

pub(crate) use in_place::MapThreads;
use run::{ChunkOut, cancelled, run_chunk, run_task};
use stream::ThreadStream;
use task::Slot;
pub(crate) use task::ThreadTask;

/// Runs its tasks on a worker (`Some`), or cancels them (`None`).
type RunFn = Box<dyn FnOnce(Option<&WorkerCtx>) + Send>;

enum Job {
    /// Run or cancel `count` tasks.
    Run(RunFn, usize),
    /// One worker should exit.
    Exit,
}

pub(crate) struct WorkerCtx {
    id: u32,
    status: Arc<WorkerStatus>,
    shared: Arc<Shared>,
}

/// A timed task that is running: when it must end, and how to end it if it does not.
struct Running {
    at: Instant,
    worker: u32,
    status: Arc<WorkerStatus>,
    /// Delivers `TimedOut` to the task's handle.
    expire: Box<dyn FnOnce(Duration) + Send>,
}

/// The watchdog's table of timed tasks that are running, and its wake-up.
#[derive(Default)]
struct Watch {
    running: Mutex<WatchState>,
    wake: Condvar,
}

#[derive(Default)]
struct WatchState {
    tasks: HashMap<u64, Running>,
    stop: bool,
}

#[derive(Debug, Default)]
struct WorkerStatus {
    /// The watchdog gave up on this worker's task; the thread exits when the task returns.
    abandoned: AtomicBool,
}

struct Shared {
    config: Config,
    sender: Sender<Job>,
    receiver: Receiver<Job>,
    next_worker: AtomicU32,
    next_task: AtomicU64,
    /// Workers that will consume one `Exit` each.
    live: AtomicUsize,
    cancelled: AtomicBool,
    handles: Mutex<HashMap<u32, JoinHandle<()>>>,
    watch: Watch,
    /// While the pool is being built: where the first workers report their initializer's
    /// outcome.
    init_reports: Mutex<Option<Sender<Result<(), String>>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Starts a worker, or gives `first` back when no thread can be started.
    ///
    /// A worker that retires passes its own id as `retiring`, and the job it may not run
    /// itself as `first`. The new thread removes the retiring one's handle and joins it
    /// (it only returns after this call), so a retired thread is neither kept as a handle
    /// nor left unjoined. Until then both handles are in the map, so `shutdown`, which joins
    /// until the map stays empty, never sees neither.
    fn spawn_worker(
        self: &Arc<Self>,
        retiring: Option<u32>,
        first: Option<(RunFn, usize)>,
    ) -> Result<(), Option<(RunFn, usize)>> {
        let id = self.next_worker.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::clone(self);
        let status = Arc::new(WorkerStatus::default());
        // The job is sent once the thread exists: a failed spawn must not take it along.
        let (hand_over, handed) = crossbeam_channel::bounded::<(RunFn, usize)>(1);
        let spawned = std::thread::Builder::new()
            .name(format!("proctor-worker-{id}"))
            .spawn(move || {
                if let Some(old) = retiring {
                    let predecessor = shared
                        .handles
                        .lock()
                        .expect("handles poisoned")
                        .remove(&old);
                    if let Some(predecessor) = predecessor {
                        // Its tasks' panics were caught: there is none to pass on.
                        let _ = predecessor.join();
                    }
                }
                if let Some(init) = shared.config.init {
                    // Its panic becomes `build()`'s error, or the tasks' (see `with_state`).
                    crate::panic::set_quiet(true);
                    let outcome = init();
                    crate::panic::set_quiet(false);
                    let report = shared
                        .init_reports
                        .lock()
                        .expect("reports poisoned")
                        .clone();
                    if let Some(report) = report {
                        let _ = report.send(outcome);
                    }
                }
                // Fails when there is no job to hand over and the sender has gone.
                let first = handed.recv().ok();
                worker_loop(WorkerCtx { id, status, shared }, first);
            });
        let Ok(handle) = spawned else {
            return Err(first);
        };
        self.config.stats.worker_started(retiring.is_some());
        match retiring {
            Some(old) => log::debug!("proctor: worker thread {id} replaces {old}, retired"),
            None => log::debug!("proctor: worker thread {id} started"),
        }
        self.handles
            .lock()
            .expect("handles poisoned")
            .insert(id, handle);
        match first {
            // The new thread waits for this job, so it cannot have gone unless it panicked;
            // then the job comes back.
            Some(job) => hand_over.send(job).map_err(|back| Some(back.0)),
            None => Ok(()),
        }
    }

    /// A timed task starts on `ctx`'s worker.
    fn start_running(&self, task: u64, ctx: &WorkerCtx, expire: Box<dyn FnOnce(Duration) + Send>) {
        let mut w = self.watch.running.lock().expect("watch poisoned");
        w.tasks.insert(
            task,
            Running {
                at: Instant::now(),
                worker: ctx.id,
                status: Arc::clone(&ctx.status),
                expire,
            },
        );
    }

    /// A timed task returned: true if its outcome is still wanted (it was not abandoned).
    fn finish_running(&self, task: u64) -> bool {
        let mut w = self.watch.running.lock().expect("watch poisoned");
        w.tasks.remove(&task).is_some()
    }

    /// Ends the running task `task` with `TimedOut` and puts a fresh worker in its thread's
    /// place. The thread cannot be stopped: it is abandoned and leaks until its task returns.
    fn abandon(self: &Arc<Self>, task: u64) {
        let Some(r) = self
            .watch
            .running
            .lock()
            .expect("watch poisoned")
            .tasks
            .remove(&task)
        else {
            return;
        };
        let after = r.at.elapsed();
        // Put a fresh worker in its place (unless the pool is stopping). When no thread can
        // be started the stuck worker stays one, and goes on once its task returns.
        let stopping = self.live.load(Ordering::Acquire) == 0;
        if stopping || self.spawn_worker(None, None).is_ok() {
            if !stopping {
                self.config.stats.worker_replaced();
                log::warn!(
                    "proctor: task {task} ran past its timeout; worker thread {} abandoned and replaced",
                    r.worker
                );
            }
            r.status.abandoned.store(true, Ordering::Release);
            // Detach the stuck thread: shutdown must not wait for it.
            self.handles
                .lock()
                .expect("handles poisoned")
                .remove(&r.worker);
        }
        (r.expire)(after);
    }

    /// The watchdog: ends every timed task that runs past the limit, on time.
    fn watchdog(self: Arc<Self>, limit: Duration) {
        let mut w = self.watch.running.lock().expect("watch poisoned");
        loop {
            if w.stop {
                return;
            }
            let now = Instant::now();
            let expired: Vec<u64> = w
                .tasks
                .iter()
                .filter(|(_, r)| now.duration_since(r.at) >= limit)
                .map(|(&t, _)| t)
                .collect();
            if !expired.is_empty() {
                drop(w);
                for task in expired {
                    self.abandon(task);
                }
                w = self.watch.running.lock().expect("watch poisoned");
                continue;
            }
            // Sleep until the next task is due; a task that starts later is due later.
            let next = w
                .tasks
                .values()
                .map(|r| (r.at + limit).saturating_duration_since(now))
                .min()
                .unwrap_or(limit);
            w = self
                .watch
                .wake
                .wait_timeout(w, next.max(Duration::from_millis(1)))
                .expect("watch poisoned")
                .0;
        }
    }

    fn stop_watchdog(&self) {
        self.watch.running.lock().expect("watch poisoned").stop = true;
        self.watch.wake.notify_all();
    }

    fn send(&self, job: Job) {
        // The receiver lives in `self`, so the channel is never disconnected here.
        let _ = self.sender.send(job);
    }
}

/// Runs jobs until an `Exit`, until it is abandoned, or until it has run as many tasks as a
/// worker may. `first` is a job handed over by the worker this one replaces.
fn worker_loop(ctx: WorkerCtx, mut first: Option<(RunFn, usize)>) {
    let shared = &ctx.shared;
    let max = shared.config.max_tasks_per_worker;
    let mut done = 0usize;
    loop {
        let (run, count) = match first.take() {
            Some(job) => job,
            None => match recv_spinning(&shared.receiver) {
                Ok(Job::Run(run, count)) => (run, count),
                Ok(Job::Exit) => return,
                // The receiver lives in `shared`, so this does not happen; leave all the same.
                Err(_) => return,
            },
        };
        if shared.cancelled.load(Ordering::Acquire) {
            run(None);
            continue;
        }
        let (run, count) = if max.is_some_and(|max| done > 0 && done + count > max) {
            // Running the job would take this worker past its limit: a fresh worker runs it.
            // A fresh worker always may (`done` is 0 there), so the job is run exactly once,
            // and no worker waits on another, however many retire at once.
            match shared.spawn_worker(Some(ctx.id), Some((run, count))) {
                Ok(()) => return,
                // No thread can be started: this worker runs past its limit rather than the
                // pool losing a worker (with one worker, it would stall).
                Err(back) => back.expect("a failed spawn gives back the job it was handed"),
            }
        } else {
            (run, count)
        };
        // Tasks' panics are caught and become `TaskError::Panicked`, which carries the message
        // and location, so the panic hook keeps them off stderr. Only while a job runs: a
        // panic in this loop itself would be a bug in the pool, and should be seen.
        crate::panic::set_quiet(true);
        shared.config.stats.job_started(1, count);
        run(Some(&ctx));
        shared.config.stats.job_ended(1, count);
        crate::panic::set_quiet(false);
        if ctx.status.abandoned.load(Ordering::Acquire) {
            // A replacement took this worker's place (and its `Exit`). Dropping the handle,
            // here or in the watchdog that gave up on this worker, detaches the thread: a
            // thread that may be stuck must not hold up `shutdown`.
            shared
                .handles
                .lock()
                .expect("handles poisoned")
                .remove(&ctx.id);
            return;
        }
        done += count;
        // When no replacement can be started the worker goes on, and tries again before its
        // next job.
        if max.is_some_and(|max| done >= max) && shared.spawn_worker(Some(ctx.id), None).is_ok() {
            return;
        }
    }
}

/// How long a thread waiting for a job or an outcome keeps checking before it sleeps.
const SPIN: std::time::Duration = std::time::Duration::from_micros(30);

/// Receives, checking for up to [`SPIN`] before sleeping. Each check yields the CPU: on a
/// shared CPU that lets the other side run at once; on an idle one it returns at once and the
/// loop is a spin that saves a cross-CPU wake-up (tens of µs on a VM).
fn recv_spinning<T>(rx: &Receiver<T>) -> Result<T, crossbeam_channel::RecvError> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(v) => return Ok(v),
            Err(crossbeam_channel::TryRecvError::Disconnected) => {
                return Err(crossbeam_channel::RecvError);
            }
            Err(crossbeam_channel::TryRecvError::Empty) if start.elapsed() < SPIN => {
                std::thread::yield_now();
            }
            Err(crossbeam_channel::TryRecvError::Empty) => return rx.recv(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct ThreadPool {
    shared: Arc<Shared>,
    /// Started when the pool has a task timeout.
    watchdog: Mutex<Option<JoinHandle<()>>>,
    /// Started by the first `map` that may run on them (`None` inside if they could not be).
    map_threads: std::sync::OnceLock<Option<MapThreads>>,
}

impl ThreadPool {
    fn stop_watchdog(&self) {
        self.shared.stop_watchdog();
        if let Some(h) = self.watchdog.lock().expect("watchdog poisoned").take() {
            let _ = h.join();
        }
    }
}

impl ThreadPool {
    pub(crate) fn new(config: Config) -> Result<ThreadPool, crate::error::Error> {
        let (sender, receiver) = crossbeam_channel::unbounded();
        let workers = config.workers;
        let shared = Arc::new(Shared {
            config,
            sender,
            receiver,
            next_worker: AtomicU32::new(0),
            next_task: AtomicU64::new(0),
            live: AtomicUsize::new(workers),
            cancelled: AtomicBool::new(false),
            handles: Mutex::new(HashMap::new()),
            watch: Watch::default(),
            init_reports: Mutex::new(None),
        });
        let (report, reports) = crossbeam_channel::unbounded();
        if shared.config.init.is_some() {
            *shared.init_reports.lock().expect("reports poisoned") = Some(report);
        }
        let watchdog = match shared.config.task_timeout {
            Some(limit) => {
                let shared = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("proctor-watchdog".into())
                    .spawn(move || shared.watchdog(limit));
                match spawned {
                    Ok(h) => Some(h),
                    Err(e) => {
                        return Err(crate::error::Error::new(crate::error::ErrorKind::Spawn(e)));
                    }
                }
            }
            None => None,
        };
        let pool = ThreadPool {
            shared,
            watchdog: Mutex::new(watchdog),
            map_threads: std::sync::OnceLock::new(),
        };
        for started in 0..workers {
            if pool.shared.spawn_worker(None, None).is_err() {
                // Dropping the pool sends the threads already started their `Exit`.
                pool.shared.live.store(started, Ordering::Release);
                return Err(crate::error::Error::new(crate::error::ErrorKind::Spawn(
                    std::io::Error::other(format!(
                        "could not start pool thread {} of {workers}",
                        started + 1
                    )),
                )));
            }
        }
        if pool.shared.config.init.is_some() {
            for _ in 0..workers {
                match reports.recv() {
                    Ok(Ok(())) => {}
                    Ok(Err(why)) => {
                        return Err(crate::error::Error::new(
                            crate::error::ErrorKind::WorkerInit {
                                message: format!("the initializer panicked: {why}"),
                            },
                        ));
                    }
                    Err(_) => break,
                }
            }
            // Replacements report to nobody: their failure reaches their tasks instead.
            pool.shared
                .init_reports
                .lock()
                .expect("reports poisoned")
                .take();
        }
        Ok(pool)
    }

    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    pub(crate) fn workers(&self) -> usize {
        self.shared.config.workers
    }

    pub(crate) fn submit<A, R, F>(&self, f: F, arg: A) -> ThreadTask<R>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
    {
        let task = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        let (slot, rx) = Slot::new();
        let slot = Arc::new(slot);
        let limit = self.shared.config.task_timeout;
        let s = Arc::clone(&slot);
        let stats = Arc::clone(&self.shared.config.stats);
        let run = move |ctx: Option<&WorkerCtx>| match ctx {
            None => {
                // A submitted task is a call of one item: its errors say index 0.
                let o = Err(TaskError::Cancelled { index: 0 });
                if s.is_queued() {
                    // Not cancelled by its caller already (which counted it).
                    stats.outcome(&o);
                }
                s.finish(o);
            }
            Some(_) if !s.claim() => {} // cancelled while queued: it already has its outcome
            Some(ctx) => run_task(ctx, f, arg, task, 0, limit, move |o| {
                stats.outcome(&o);
                s.finish(o);
            }),
        };
        self.shared.send(Job::Run(Box::new(run), 1));
        ThreadTask {
            rx,
            task,
            slot,
            stats: Arc::clone(&self.shared.config.stats),
        }
    }

    pub(crate) fn map<A, R, F, C>(&self, f: F, mut items: Vec<A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Send + 'static,
        R: Send + 'static,
        C: super::Collect<R>,
    {
        let n = items.len();
        if self.shared.config.task_timeout.is_some() {
            // Each item must be timed and abandonable on its own.
            let tasks: Vec<_> = items.into_iter().map(|a| self.submit(f, a)).collect();
            let mut out = C::with_len(n);
            for (i, t) in tasks.into_iter().enumerate() {
                // Each was submitted alone (index 0): its error names its place in this call.
                let outcome = t.join().map_err(|e| e.at_index(i as u64));
                out.add(i, std::iter::once(outcome));
            }
            return out.finish(n);
        }
        let config = &self.shared.config;
        // Worker state lives in the pool's own threads, and a task limit retires them.
        if config.init.is_none() && config.max_tasks_per_worker.is_none() {
            let threads = self.map_threads.get_or_init(|| {
                MapThreads::start(
                    config.workers,
                    config.chunk_size.unwrap_or(1),
                    Arc::clone(&config.stats),
                )
            });
            if let Some(threads) = threads {
                match C::in_place(threads, f, items) {
                    Ok(out) => return out,
                    Err(back) => items = back,
                }
            }
        }
        let chunk = self.shared.config.chunk_for(n);
        let (tx, rx) = crossbeam_channel::unbounded::<(usize, ChunkOut<R>)>();
        // Chunks are cut from the back (`split_off` moves a chunk without shifting the rest)
        // and sent from the front, so outcomes arrive about in order.
        let mut parts = Vec::with_capacity(n.div_ceil(chunk));
        while !items.is_empty() {
            let start = (items.len() - 1) / chunk * chunk;
            parts.push((start, items.split_off(start)));
        }
        for (start, part) in parts.into_iter().rev() {
            let len = part.len();
            let tx = tx.clone();
            let stats = Arc::clone(&self.shared.config.stats);
            let run = move |ctx: Option<&WorkerCtx>| {
                let base = start as u64;
                let out = match ctx {
                    None => ChunkOut::Mixed(cancelled(base, len)),
                    Some(ctx) => run_chunk(f, part, ctx.id, base),
                };
                match &out {
                    ChunkOut::Values(values) => stats.succeeded(values.len()),
                    ChunkOut::Mixed(outcomes) => stats.outcomes(outcomes),
                }
                let _ = tx.send((start, out));
            };
            self.shared.send(Job::Run(Box::new(run), len));
        }
        drop(tx);
        let mut out = C::with_len(n);
        while let Ok((start, part)) = rx.recv() {
            match part {
                ChunkOut::Values(values) => out.add_values(start, values),
                ChunkOut::Mixed(outcomes) => out.add_run(start, outcomes),
            }
        }
        out.finish(n)
    }

    /// Starts a stream of `f` over `items` (see [`crate::Stream`]).
    pub(crate) fn stream<'p, A, R, F, I>(
        &'p self,
        f: F,
        items: I,
    ) -> Box<dyn super::stream::Batches<R> + 'p>
    where
        F: Fn(A) -> R + Copy + Send + 'static,
        A: Send + 'static,
        R: Send + 'static,
        I: Iterator<Item = A> + 'p,
    {
        Box::new(ThreadStream::new(&self.shared, f, items))
    }

    pub(crate) fn shutdown(self) {
        for _ in 0..self.shared.live.load(Ordering::Acquire) {
            self.shared.send(Job::Exit);
        }
        loop {
            let handles: Vec<_> = self
                .shared
                .handles
                .lock()
                .expect("handles poisoned")
                .drain()
                .collect();
            if handles.is_empty() {
                break;
            }
            for (_, h) in handles {
                let _ = h.join();
            }
        }
        // Drop now finds no worker to stop.
        self.shared.live.store(0, Ordering::Release);
        self.stop_watchdog();
    }
}

impl Drop for ThreadPool {
    fn drop(&mut self) {
        // Tasks still queued are cancelled; running ones finish (a thread cannot be killed).
        let live = self.shared.live.swap(0, Ordering::AcqRel);
        if live > 0 {
            self.shared.cancelled.store(true, Ordering::Release);
            for _ in 0..live {
                self.shared.send(Job::Exit);
            }
        }
        self.stop_watchdog();
    }
}
