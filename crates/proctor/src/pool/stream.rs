//! Streaming results: [`Stream`] (outcomes in input order) and [`Unordered`] (outcomes as
//! they finish), over inputs of any length with a bounded number of items in flight.
//!
//! Both iterators sit on one core that does the bookkeeping for either backend: it takes
//! items from the caller's iterator in batches (each batch becomes jobs on the workers) while
//! fewer than the window's worth of items are taken and not yet handed back, and it waits
//! for runs of outcomes from the backend. Only the window's items, their outcomes and the
//! runs that arrived early are ever held, so a stream of ten million items runs in the memory
//! of a few thousand.

use std::collections::BTreeMap;

use crate::error::TaskError;

/// A run of outcomes for the items `index..` of a stream.
pub(crate) type OutcomeRun<R> = (usize, Vec<Result<R, TaskError>>);

/// What a backend does for a stream.
pub(crate) trait Batches<R> {
    /// Takes up to `max` more items from the input and starts them, as jobs of at most
    /// `chunk` items, for the stream's indices `base..`. Returns how many it took: fewer than
    /// `max` means the input is exhausted.
    fn feed(&mut self, base: usize, max: usize, chunk: usize) -> usize;

    /// Waits for the next run of outcomes. `None`: none will come (the pool is closing).
    fn next_run(&mut self) -> Option<OutcomeRun<R>>;
}

/// Items in flight per worker unless [`Stream::window`] says otherwise.
const WINDOW_PER_WORKER: usize = 8192;

/// The bookkeeping both iterators share.
struct Core<'p, R> {
    batches: Box<dyn Batches<R> + 'p>,
    workers: usize,
    /// The pool's `chunk_size` and `max_tasks_per_worker`, which bound a job.
    chunk_size: Option<usize>,
    max_tasks: Option<usize>,
    window: usize,
    /// Items taken from the input, outcomes received, outcomes handed to the caller.
    fed: usize,
    received: usize,
    yielded: usize,
    exhausted: bool,
    /// The size of the next batch while the stream ramps up: 1, 2, 4, ... up to a chunk, so
    /// the first outcome comes back at once and a short input is spread over the workers.
    ramp: usize,
}

impl<R> std::fmt::Debug for Core<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("window", &self.window)
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
        Core {
            batches,
            workers,
            chunk_size: config.chunk_size,
            max_tasks: config.max_tasks_per_worker,
            window: WINDOW_PER_WORKER * workers,
            fed: 0,
            received: 0,
            yielded: 0,
            exhausted: false,
            ramp: 1,
        }
    }

    /// Items per job: the pool's `chunk_size` if set, else enough for four jobs per worker
    /// in the window; never more than the window or a worker's task limit.
    fn chunk(&self) -> usize {
        let auto = (self.window / (self.workers * 4)).clamp(1, 16_384);
        let chunk = self.chunk_size.unwrap_or(auto).min(self.window);
        self.max_tasks.map_or(chunk, |m| chunk.min(m)).max(1)
    }

    /// Starts more items while the window has room for another job's worth.
    fn refill(&mut self) {
        let full = self.chunk();
        loop {
            let chunk = self.ramp.min(full);
            if self.exhausted || self.fed - self.yielded + chunk > self.window {
                return;
            }
            let took = self.batches.feed(self.fed, chunk, chunk);
            self.fed += took;
            self.ramp = self.ramp.saturating_mul(2);
            if took < chunk {
                self.exhausted = true;
            }
        }
    }

    /// The next run of outcomes, or `None` when every item taken has its outcome.
    fn next_run(&mut self) -> Option<OutcomeRun<R>> {
        self.refill();
        if self.received == self.fed {
            return None;
        }
        let run = self.batches.next_run()?;
        self.received += run.1.len();
        Some(run)
    }

    /// Outcomes handed out or still to come: the window's items, for `size_hint`.
    fn pending(&self) -> usize {
        self.fed - self.yielded
    }
}

/// The outcomes of [`Pool::stream`](crate::Pool::stream), one per item, in input order, as
/// soon as each and all before it have finished.
///
/// At most [`window`](Stream::window) items are in flight (taken from the input and not yet
/// handed back), so an input of any length runs in bounded memory: the input is read as
/// outcomes are consumed. Dropping the stream stops it: items not yet started never run
/// (running ones finish; their outcomes are discarded).
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

    /// Keeps at most `items` items in flight (default: 8 192 per worker). A larger window
    /// keeps the workers busier when task times vary; a smaller one holds less memory.
    /// Set it before the first `next`; 0 counts as 1.
    pub fn window(mut self, items: usize) -> Self {
        self.core.window = items.max(1);
        self
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

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(outcome) = self.current.next() {
                self.next += 1;
                self.core.yielded += 1;
                return Some(outcome);
            }
            if let Some(run) = self.parked.remove(&self.next) {
                self.current = run.into_iter();
                continue;
            }
            let (first, run) = self.core.next_run()?;
            if first == self.next {
                self.current = run.into_iter();
            } else {
                self.parked.insert(first, run);
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.core.pending(), None)
    }
}

/// The outcomes of [`Pool::stream_unordered`](crate::Pool::stream_unordered) (or
/// [`Stream::unordered`]), one per item as each finishes, with the item's index in the input.
///
/// It has the window and the early stop of a [`Stream`], and never waits for a slow item
/// while faster ones have finished. In thread mode under a `task_timeout` each item is a job
/// of its own, timed alone.
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
}

impl<R> Iterator for Unordered<'_, R> {
    type Item = (usize, Result<R, TaskError>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(outcome) = self.current.1.next() {
                let index = self.current.0;
                self.current.0 += 1;
                self.core.yielded += 1;
                return Some((index, outcome));
            }
            let (first, run) = match self.early.pop() {
                Some(run) => run,
                None => self.core.next_run()?,
            };
            self.current = (first, run.into_iter());
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.core.pending(), None)
    }
}
