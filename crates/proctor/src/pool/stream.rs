//! Streaming results: [`Stream`] (outcomes in input order) and [`Unordered`] (outcomes as
//! they finish), over inputs of any length, in bounded memory, with outcomes delivered as
//! their tasks finish.
//!
//! Both iterators sit on one core that does the bookkeeping for either backend: it takes
//! items from the caller's iterator as jobs for the workers and waits for runs of outcomes.
//! Three bounds decide when it takes more:
//!
//! * **jobs in flight**: [`JOBS_PER_WORKER`] jobs per worker (or [`QUEUE_TIME`] of work per
//!   worker by the estimate below, if that is more) are queued or running, enough to keep
//!   every worker busy while the iterator's thread waits for a CPU, and no more (the pool's
//!   queue is shared, so an idle worker takes the next job, never one behind a slow item);
//! * **the window**: at most `window` items are taken from the input and not yet handed back
//!   (this also bounds the outcomes held for an ordered stream behind a slow item);
//! * **bytes**: in process mode, every argument's encoded size and every result's record size
//!   is known; the window shrinks so that the items held take about `window_bytes`.
//!
//! Jobs start at one item each, so the first outcome comes back after one task. From the
//! rate at which outcomes then arrive the core estimates one task's time and sizes the next
//! jobs to take about [`TARGET_JOB`] each (growing at most eightfold per estimate, one a
//! millisecond): one item per job for tasks of a millisecond or more, thousands for trivial
//! ones. In thread
//! mode an iterator that has waited a millisecond also takes what running jobs have finished
//! so far, so a slow item holds no finished outcome for longer than that; in process mode a
//! job's outcomes arrive together when it ends (reading a running job's records would take
//! the recovery machine's bookkeeping apart), which the job size keeps to about a
//! millisecond of work. In both, the items of a job after a slow one wait for it: at most a
//! millisecond's worth by the estimate.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::error::TaskError;

/// A run of outcomes for the items `index..` of a stream.
pub(crate) type OutcomeRun<R> = (usize, Vec<Result<R, TaskError>>);

/// What a backend's wait for outcomes came to.
pub(crate) enum Next<R> {
    /// A run of outcomes, and the encoded size of its results (0 where unknown).
    Run(OutcomeRun<R>, usize),
    /// The deadline passed first.
    TimedOut,
    /// No more will come: the pool is closing, or the stream was cancelled.
    Closed,
}

/// What a backend does for a stream.
pub(crate) trait Batches<R> {
    /// Takes up to `max` more items from the input and starts them, as jobs of at most
    /// `chunk` items, for the stream's indices `base..`. Returns how many it took (fewer than
    /// `max` means the input is exhausted) and their arguments' encoded size (0 where
    /// unknown).
    fn feed(&mut self, base: usize, max: usize, chunk: usize) -> (usize, usize);

    /// Waits for the next run of outcomes, until `deadline` if there is one.
    fn next_run(&mut self, deadline: Option<Instant>) -> Next<R>;

    /// What cancelling the stream does: stop its jobs and wake its waiting iterator. Called
    /// once, from any thread.
    fn stopper(&self) -> Box<dyn Fn() + Send + Sync>;

    /// The default window, in items, for the pool's `workers`.
    fn default_window(&self, workers: usize) -> usize;
}

/// Jobs queued or running per worker, at least: one running and the next ready for it.
const JOBS_PER_WORKER: usize = 2;

/// Work queued or running per worker, at least (as far as the estimate of a task's time
/// says): enough to keep a worker busy while the iterator's thread waits for a CPU.
const QUEUE_TIME: Duration = Duration::from_millis(10);

/// How long a job should take once the stream knows its tasks' times.
const TARGET_JOB: Duration = Duration::from_millis(1);

/// Outcomes arriving over at least this long make one estimate of a task's time.
const SAMPLE: Duration = Duration::from_millis(1);

/// The most items in one job of a stream.
const MAX_CHUNK: usize = 16_384;

/// The default bound on what a stream holds, in bytes, where the sizes are known.
pub(crate) const WINDOW_BYTES: usize = 16 << 20;

/// Thread mode's default window per worker (item counts are all it knows).
pub(crate) const THREAD_WINDOW_PER_WORKER: usize = 8_192;

/// Process mode's default window per worker (bytes bound it first for all but tiny items).
pub(crate) const PROCESS_WINDOW_PER_WORKER: usize = 65_536;

/// Ends a stream from anywhere: see [`Stream::canceller`].
///
/// `Send`, `Sync` and `Clone`, and `'static`: it can be moved into a Ctrl-C handler or
/// another thread, and outlive the stream (cancelling then does nothing).
#[derive(Clone)]
pub struct Canceller {
    inner: Arc<CancelState>,
}

struct CancelState {
    cancelled: AtomicBool,
    stop: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Canceller")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl Canceller {
    /// Cancels the stream: it yields nothing more (its `next` returns `None`, at once if it
    /// is waiting), items not yet started never run, and running ones are stopped — in
    /// process mode their workers are killed (and replaced, as after a crash); in thread
    /// mode a running task cannot be stopped, so it finishes its current item and runs no
    /// other. Items whose outcomes were handed out keep them; every other item gets none.
    /// Calling it again does nothing.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::SeqCst) {
            (self.inner.stop)();
        }
    }

    /// True once [`Canceller::cancel`] ran.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }
}

/// [`Stream::next_timeout`] (or [`Unordered::next_timeout`]) waited its whole time and no
/// outcome came; none was lost, and the stream goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeout;

impl std::fmt::Display for StreamTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no outcome of the stream arrived in time")
    }
}

impl std::error::Error for StreamTimeout {}

/// The bookkeeping both iterators share.
struct Core<'p, R> {
    batches: Box<dyn Batches<R> + 'p>,
    cancel: Canceller,
    workers: usize,
    /// The pool's `chunk_size` (fixed jobs) and `max_tasks_per_worker` (which bounds a job).
    fixed_chunk: Option<usize>,
    max_tasks: Option<usize>,
    window: usize,
    window_bytes: usize,
    /// Items taken from the input, outcomes received, outcomes handed to the caller.
    fed: usize,
    received: usize,
    yielded: usize,
    exhausted: bool,
    /// Encoded sizes of the arguments fed and the results received so far.
    arg_bytes: usize,
    result_bytes: usize,
    /// Items per job now (without a fixed `chunk_size`).
    chunk: usize,
    /// The estimate of one task's time on one worker, in seconds.
    per_item: Option<f64>,
    /// Since when outcomes are counted for the next estimate, and how many came.
    mark: Option<Instant>,
    since_mark: usize,
}

impl<R> std::fmt::Debug for Core<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("window", &self.window)
            .field("window_bytes", &self.window_bytes)
            .field("chunk", &self.chunk)
            .field("fed", &self.fed)
            .field("received", &self.received)
            .field("yielded", &self.yielded)
            .field("exhausted", &self.exhausted)
            .finish_non_exhaustive()
    }
}

impl<'p, R> Core<'p, R> {
    fn new(batches: Box<dyn Batches<R> + 'p>, config: &super::Config) -> Core<'p, R> {
        let workers = config.workers.max(1);
        let cancel = Canceller {
            inner: Arc::new(CancelState {
                cancelled: AtomicBool::new(false),
                stop: batches.stopper(),
            }),
        };
        Core {
            window: batches.default_window(workers).max(1),
            batches,
            cancel,
            workers,
            fixed_chunk: config.chunk_size,
            max_tasks: config.max_tasks_per_worker,
            window_bytes: WINDOW_BYTES,
            fed: 0,
            received: 0,
            yielded: 0,
            exhausted: false,
            arg_bytes: 0,
            result_bytes: 0,
            chunk: 1,
            per_item: None,
            mark: None,
            since_mark: 0,
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The window in items, narrowed so that the items held take about `window_bytes`:
    /// each counts twice its argument's and its result's average encoded size (the value
    /// and its encoding are both held for a while).
    fn effective_window(&self) -> usize {
        let arg = self.arg_bytes / self.fed.max(1);
        let result = self.result_bytes / self.received.max(1);
        let per_item = 2 * (arg + result);
        if per_item == 0 {
            return self.window;
        }
        (self.window_bytes / per_item).clamp(1, self.window)
    }

    /// Items per job: the pool's `chunk_size` if set, else the adaptive size, which never
    /// leaves fewer than two jobs per worker in the window; never more than a worker's
    /// task limit.
    fn chunk(&self) -> usize {
        let window = self.effective_window();
        let chunk = match self.fixed_chunk {
            Some(c) => c.min(window),
            None => self
                .chunk
                .min(window / (JOBS_PER_WORKER * self.workers))
                .min(MAX_CHUNK),
        };
        self.max_tasks.map_or(chunk, |m| chunk.min(m)).max(1)
    }

    /// Takes in a run of `n` outcomes: a new estimate of a task's time once outcomes have
    /// been arriving for [`SAMPLE`], and the job size that follows from it.
    fn observe(&mut self, n: usize) {
        let Some(mark) = self.mark else {
            return;
        };
        self.since_mark += n;
        let now = Instant::now();
        let dt = now.duration_since(mark);
        if dt < SAMPLE || self.since_mark == 0 {
            return;
        }
        // Every worker is taken to have been busy: where one was not (a slow consumer, a
        // worker being replaced), the estimate is too long, and the jobs only smaller.
        let sample = dt.as_secs_f64() * self.workers as f64 / self.since_mark as f64;
        let estimate = match self.per_item {
            Some(p) => (p + sample) / 2.0,
            None => sample,
        };
        self.per_item = Some(estimate);
        self.mark = Some(now);
        self.since_mark = 0;
        let want = (TARGET_JOB.as_secs_f64() / estimate.max(1e-9)).min(MAX_CHUNK as f64) as usize;
        self.chunk = want.clamp(1, self.chunk.saturating_mul(8));
    }

    /// Items queued or running to keep every worker busy: [`JOBS_PER_WORKER`] jobs each, or
    /// [`QUEUE_TIME`] of work each once a task's time is known, whichever is more.
    fn in_flight_target(&self, chunk: usize) -> usize {
        let jobs = JOBS_PER_WORKER * self.workers * chunk;
        let timed = match self.per_item {
            Some(t) => (QUEUE_TIME.as_secs_f64() / t.max(1e-9)).min(1e9) as usize * self.workers,
            None => 0,
        };
        jobs.max(timed)
    }

    /// Starts more items while fewer than [`JOBS_PER_WORKER`] jobs per worker are in flight
    /// and the window has room.
    fn refill(&mut self) {
        while !self.exhausted && !self.cancelled() {
            let chunk = self.chunk();
            let in_flight = self.fed - self.received;
            if in_flight >= self.in_flight_target(chunk) {
                return;
            }
            let room = self
                .effective_window()
                .saturating_sub(self.fed - self.yielded);
            // A job's worth of room, or (nothing in flight) whatever there is.
            if room == 0 || (room < chunk && in_flight > 0) {
                return;
            }
            let take = chunk.min(room);
            self.mark.get_or_insert_with(Instant::now);
            let (took, bytes) = self.batches.feed(self.fed, take, chunk);
            self.fed += took;
            self.arg_bytes = self.arg_bytes.saturating_add(bytes);
            if took < take {
                self.exhausted = true;
            }
        }
    }

    /// The next run of outcomes; `Ok(None)` when every item taken has its outcome (or the
    /// stream was cancelled), `Err` when `deadline` passed first.
    fn next_run(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<OutcomeRun<R>>, StreamTimeout> {
        loop {
            if self.cancelled() {
                return Ok(None);
            }
            self.refill();
            if self.received == self.fed {
                return Ok(None);
            }
            match self.batches.next_run(deadline) {
                Next::Run(run, bytes) => {
                    if run.1.is_empty() {
                        continue;
                    }
                    let n = run.1.len();
                    self.received += n;
                    self.result_bytes = self.result_bytes.saturating_add(bytes);
                    self.observe(n);
                    if self.cancelled() {
                        return Ok(None);
                    }
                    return Ok(Some(run));
                }
                Next::TimedOut => return Err(StreamTimeout),
                Next::Closed => return Ok(None),
            }
        }
    }

    /// Outcomes handed out or still to come: the window's items, for `size_hint`.
    fn pending(&self) -> usize {
        self.fed - self.yielded
    }
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// The outcomes of [`Pool::stream`](crate::Pool::stream), one per item, in input order, as
/// soon as each and all before it have finished.
///
/// **Memory.** At most [`window`](Stream::window) items are taken from the input and not yet
/// handed back, and in process mode also about [`window_bytes`](Stream::window_bytes) of
/// them (their arguments' and results' encoded sizes, which process mode knows), so an
/// input of any length runs in bounded memory: the input is read as outcomes are consumed.
/// Defaults: 8 192 items per worker in thread mode; 65 536 per worker and 16 MiB in
/// process mode. Measured (`benches/stream_latency.rs`, 2 process workers, a shared 2-CPU
/// machine): a million 1 KiB items streamed with the caller's peak RSS at 10–13 MiB.
///
/// **Latency.** Jobs start at one item each and grow, from the measured task time, to about
/// a millisecond of work each; two jobs per worker (or about 10 ms of work per worker, if
/// that is more) are queued or running. So the first outcome comes back after about one
/// task (measured: 1.1 ms for a 1 000-item stream of 1–2 ms tasks on 2 process workers,
/// against 1.5 s with a window of 16 384 and 2 048-item chunks), and the throughput stays
/// near that of the best hand-set `window` and `chunk_size` (1 ms tasks: within 1.03× in
/// both modes; ten million trivial ones: 0.98× in process mode, 1.38× in thread mode, whose
/// default window is small; the ramp from one-item jobs costs a few milliseconds). Setting
/// [`PoolBuilder::chunk_size`](crate::PoolBuilder::chunk_size) fixes the job size instead.
///
/// **Stopping.** Dropping the stream stops it: items not yet started never run (running
/// ones finish; their outcomes are discarded). [`Stream::canceller`] stops it from another
/// thread (a Ctrl-C handler) and stops running tasks too; [`Stream::next_timeout`] waits
/// for at most a given time.
///
/// ```
/// fn square(n: u64) -> u64 { n * n }
///
/// let pool = proctor::Pool::threads(2).build().unwrap();
/// let mut total = 0;
/// for (i, outcome) in pool.stream(square, 0..1_000_000u64).enumerate() {
///     total += outcome.unwrap() % 7;
///     if i == 999 {
///         break; // stops the rest
///     }
/// }
/// assert!(total > 0);
/// ```
#[derive(Debug)]
#[must_use = "a stream does nothing until it is iterated"]
pub struct Stream<'p, R> {
    core: Core<'p, R>,
    /// The run being handed out: its next item is index `next`.
    current: std::vec::IntoIter<Result<R, TaskError>>,
    /// Runs that arrived before their turn, by first index.
    parked: BTreeMap<usize, Vec<Result<R, TaskError>>>,
    next: usize,
}

impl<'p, R> Stream<'p, R> {
    pub(crate) fn new(batches: Box<dyn Batches<R> + 'p>, config: &super::Config) -> Self {
        Stream {
            core: Core::new(batches, config),
            current: Vec::new().into_iter(),
            parked: BTreeMap::new(),
            next: 0,
        }
    }

    /// Keeps at most `items` items taken from the input and not yet handed back (default:
    /// 8 192 per worker in thread mode, 65 536 per worker in process mode, where
    /// [`window_bytes`](Stream::window_bytes) usually bounds them first). A larger window
    /// keeps the workers busy behind a slow item of an ordered stream; a smaller one holds
    /// less memory. Set it before the first `next`; 0 counts as 1.
    pub fn window(mut self, items: usize) -> Self {
        self.core.window = items.max(1);
        self
    }

    /// Keeps the items held to about `bytes` (default 16 MiB), counting each as twice its
    /// argument's and its result's average encoded size. Only process mode knows the sizes;
    /// in thread mode this does nothing. At least one item is always in flight.
    pub fn window_bytes(mut self, bytes: usize) -> Self {
        self.core.window_bytes = bytes;
        self
    }

    /// A handle that cancels this stream from anywhere (see [`Canceller::cancel`]).
    ///
    /// ```
    /// fn slow(n: u64) -> u64 {
    ///     std::thread::sleep(std::time::Duration::from_millis(5));
    ///     n
    /// }
    ///
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let mut stream = pool.stream(slow, 0..1_000_000u64);
    /// let stop = stream.canceller();
    /// // In a real program: `ctrlc::set_handler(move || stop.cancel())`.
    /// std::thread::spawn(move || {
    ///     std::thread::sleep(std::time::Duration::from_millis(30));
    ///     stop.cancel();
    /// });
    /// let done = stream.by_ref().count();
    /// assert!(done < 1_000_000);
    /// assert!(stream.next().is_none());
    /// ```
    pub fn canceller(&self) -> Canceller {
        self.core.cancel.clone()
    }

    /// The next outcome, waiting at most `timeout` for it. `Ok(None)`: the stream is over
    /// (every item had its outcome, or it was cancelled). `Err(StreamTimeout)`: nothing
    /// came in time; nothing is lost, and a later call goes on where this one stopped.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// fn nap(ms: u64) -> u64 {
    ///     std::thread::sleep(Duration::from_millis(ms));
    ///     ms
    /// }
    ///
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let mut stream = pool.stream(nap, [200, 1]);
    /// assert_eq!(stream.next_timeout(Duration::from_millis(1)), Err(proctor::StreamTimeout));
    /// assert_eq!(stream.next_timeout(Duration::from_secs(60)), Ok(Some(Ok(200))));
    /// assert_eq!(stream.next(), Some(Ok(1)));
    /// assert_eq!(stream.next_timeout(Duration::ZERO), Ok(None));
    /// ```
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<Result<R, TaskError>>, StreamTimeout> {
        self.next_by(Some(deadline_after(timeout)))
    }

    fn next_by(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<Result<R, TaskError>>, StreamTimeout> {
        loop {
            if self.core.cancelled() {
                return Ok(None);
            }
            if let Some(outcome) = self.current.next() {
                self.next += 1;
                self.core.yielded += 1;
                return Ok(Some(outcome));
            }
            if let Some(run) = self.parked.remove(&self.next) {
                self.current = run.into_iter();
                continue;
            }
            let Some((first, run)) = self.core.next_run(deadline)? else {
                return Ok(None);
            };
            if first == self.next {
                self.current = run.into_iter();
            } else {
                self.parked.insert(first, run);
            }
        }
    }

    /// Outcomes out of order, each with its item's index: see [`Unordered`].
    ///
    /// ```
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let mut got: Vec<(usize, u64)> = pool
    ///     .stream(|n: u64| n + 1, 0..10u64)
    ///     .window(4)
    ///     .unordered()
    ///     .map(|(i, o)| (i, o.unwrap()))
    ///     .collect();
    /// got.sort();
    /// assert_eq!(got, (0..10).map(|i| (i, i as u64 + 1)).collect::<Vec<_>>());
    /// ```
    pub fn unordered(self) -> Unordered<'p, R> {
        let mut early: Vec<OutcomeRun<R>> = self.parked.into_iter().collect();
        let rest: Vec<_> = self.current.collect();
        if !rest.is_empty() {
            early.push((self.next, rest));
        }
        Unordered {
            core: self.core,
            current: (0, Vec::new().into_iter()),
            early,
        }
    }
}

impl<R> Iterator for Stream<'_, R> {
    type Item = Result<R, TaskError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The common case, kept small: the next outcome of the run at hand.
        if !self.core.cancelled() {
            if let Some(outcome) = self.current.next() {
                self.next += 1;
                self.core.yielded += 1;
                return Some(outcome);
            }
        }
        self.next_by(None).unwrap_or(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.core.pending(), None)
    }
}

/// The outcomes of [`Pool::stream_unordered`](crate::Pool::stream_unordered) (or
/// [`Stream::unordered`]), one per item as each finishes, with the item's index in the input.
///
/// It has the window, the early stop, the cancel handle and the timed wait of a [`Stream`],
/// and holds back behind a slow item only the items of its own job: the pool's queue is
/// shared, so a free worker takes the next job; in thread mode a job's finished outcomes
/// reach an iterator that has waited a millisecond (in up to 64 parts); in process mode a job's outcomes come together when it
/// ends, and jobs are sized to about a millisecond of work (one item each for tasks of a
/// millisecond or more). In thread mode under a `task_timeout` each item is a job of its
/// own, timed alone.
///
/// ```
/// fn square(n: u64) -> u64 { n * n }
///
/// let pool = proctor::Pool::threads(2).build().unwrap();
/// let mut seen = vec![false; 100];
/// for (i, outcome) in pool.stream_unordered(square, 0..100u64) {
///     assert_eq!(outcome.unwrap(), (i * i) as u64);
///     seen[i] = true;
/// }
/// assert!(seen.iter().all(|&s| s));
/// ```
#[derive(Debug)]
#[must_use = "a stream does nothing until it is iterated"]
pub struct Unordered<'p, R> {
    core: Core<'p, R>,
    /// The run being handed out, and the index of its next item.
    current: (usize, std::vec::IntoIter<Result<R, TaskError>>),
    /// Runs received before this became unordered.
    early: Vec<OutcomeRun<R>>,
}

impl<R> Unordered<'_, R> {
    /// Keeps at most `items` items in flight: see [`Stream::window`].
    pub fn window(mut self, items: usize) -> Self {
        self.core.window = items.max(1);
        self
    }

    /// Keeps the items held to about `bytes`: see [`Stream::window_bytes`].
    pub fn window_bytes(mut self, bytes: usize) -> Self {
        self.core.window_bytes = bytes;
        self
    }

    /// A handle that cancels this stream from anywhere: see [`Stream::canceller`].
    pub fn canceller(&self) -> Canceller {
        self.core.cancel.clone()
    }

    /// The next outcome, waiting at most `timeout`: see [`Stream::next_timeout`].
    pub fn next_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<Option<<Self as Iterator>::Item>, StreamTimeout> {
        self.next_by(Some(deadline_after(timeout)))
    }

    fn next_by(
        &mut self,
        deadline: Option<Instant>,
    ) -> Result<Option<<Self as Iterator>::Item>, StreamTimeout> {
        loop {
            if self.core.cancelled() {
                return Ok(None);
            }
            if let Some(outcome) = self.current.1.next() {
                let index = self.current.0;
                self.current.0 += 1;
                self.core.yielded += 1;
                return Ok(Some((index, outcome)));
            }
            let (first, run) = match self.early.pop() {
                Some(run) => run,
                None => match self.core.next_run(deadline)? {
                    Some(run) => run,
                    None => return Ok(None),
                },
            };
            self.current = (first, run.into_iter());
        }
    }
}

impl<R> Iterator for Unordered<'_, R> {
    type Item = (usize, Result<R, TaskError>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        // The common case, kept small: the next outcome of the run at hand.
        if !self.core.cancelled() {
            if let Some(outcome) = self.current.1.next() {
                let index = self.current.0;
                self.current.0 += 1;
                self.core.yielded += 1;
                return Some((index, outcome));
            }
        }
        self.next_by(None).unwrap_or(None)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.core.pending(), None)
    }
}

/// The side of a `stream_with` whose context could not be encoded: every item taken fails
/// with a codec error that says so (and is counted in the pool's stats).
pub(crate) struct ContextFailed<I> {
    items: I,
    why: String,
    stats: Arc<super::stats::Counters>,
    runs: std::collections::VecDeque<(usize, usize)>,
}

impl<I> ContextFailed<I> {
    pub(crate) fn new(items: I, why: String, stats: Arc<super::stats::Counters>) -> Self {
        ContextFailed {
            items,
            why,
            stats,
            runs: Default::default(),
        }
    }
}

impl<R, I: Iterator> Batches<R> for ContextFailed<I> {
    fn feed(&mut self, base: usize, max: usize, _chunk: usize) -> (usize, usize) {
        let took = self.items.by_ref().take(max).count();
        if took > 0 {
            self.stats.submitted(took);
            self.runs.push_back((base, took));
        }
        (took, 0)
    }

    fn next_run(&mut self, _deadline: Option<Instant>) -> Next<R> {
        let Some((base, n)) = self.runs.pop_front() else {
            return Next::Closed;
        };
        let run: Vec<Result<R, TaskError>> = super::context_failed(n, &self.why)
            .into_iter()
            .enumerate()
            .map(|(k, o)| {
                o.map_err(|e| match e {
                    TaskError::Codec { message, .. } => TaskError::Codec {
                        message,
                        index: (base + k) as u64,
                    },
                    e => e,
                })
            })
            .collect();
        self.stats.outcomes(&run);
        Next::Run((base, run), 0)
    }

    fn stopper(&self) -> Box<dyn Fn() + Send + Sync> {
        Box::new(|| {})
    }

    fn default_window(&self, workers: usize) -> usize {
        THREAD_WINDOW_PER_WORKER * workers
    }
}
