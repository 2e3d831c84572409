//! [`Pool`]: the one dispatch point between the two backends, `thread/` and `process/`.
//!
//! Room by room: `options.rs` holds the options and the option-by-mode table, `builder.rs`
//! the [`PoolBuilder`], `task.rs` the [`Task`] handle, `collect.rs` how a `map`'s outcomes
//! are put in order, `stream.rs` the streams both backends share, `stats.rs` the counters
//! behind [`Pool::stats`]. The backends import from here only those pieces (`Config`,
//! `Collect`, `Assembler`, `Output`, `TaskInner`, `Counters`); nothing below `pool/` imports
//! the backends.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, TaskError};

mod builder;
mod collect;
mod context;
mod options;
#[cfg(target_os = "linux")]
mod process;
mod stats;
#[cfg(target_os = "linux")]
pub(crate) use process::decode_records_for_fuzz;
mod stream;
mod task;
mod thread;

pub use builder::PoolBuilder;
pub(crate) use collect::{All, Assembler, Collect, UntilError};
#[cfg(target_os = "linux")]
pub(crate) use context::same_encoding;
pub(crate) use options::Config;
pub use stats::{Failures, PoolStats};
pub use stream::{Canceller, Stream, StreamTimeout, Unordered};
pub use task::Task;
pub(crate) use task::TaskInner;

/// Where a pool runs its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Worker threads of this process.
    Threads,
    /// Worker processes forked from the fork server (see [`crate::init`]).
    Processes,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Threads => "threads",
            Mode::Processes => "processes",
        })
    }
}

/// How a pool starts its worker processes (see [`PoolBuilder::start_method`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StartMethod {
    /// Forked from the fork server that [`crate::init`] started: fast (a fork of a small
    /// process), and the worker sees the program as it was at `init()`.
    #[default]
    Fork,
    /// Forked from the fork server, then re-executing this program's binary
    /// (`/proc/self/exe`): the worker's address space holds nothing of the parent's or the
    /// server's, and gets its own ASLR layout. The new program runs `main` up to
    /// [`crate::init`], which makes it the worker, so `init()` must be called on every run of
    /// `main` (first, or through [`crate::init_before_main!`]), before `main` does anything a
    /// worker should not. A worker of another build of the program (its GNU build id differs)
    /// refuses to start, and `build()` says so.
    Exec,
}

/// What a task wrote to stdout and stderr: the last 64 KiB of each, with
/// [`PoolBuilder::capture_output`] (empty otherwise). Given with every outcome by
/// [`Pool::map_captured`] and [`Task::join_captured`], for tasks that failed or crashed too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Output {
    /// The end of the task's stdout.
    pub stdout: Vec<u8>,
    /// The end of the task's stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// The stdout as text (invalid UTF-8 replaced).
    ///
    /// ```
    /// let out = proctor::Output { stdout: b"ok\n".to_vec(), stderr: vec![0xff] };
    /// assert_eq!(out.stdout_text(), "ok\n");
    /// assert_eq!(out.stderr_text(), "\u{fffd}");
    /// ```
    pub fn stdout_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// The stderr as text (invalid UTF-8 replaced).
    pub fn stderr_text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }
}

/// A pool of workers, threads or processes, that runs one function over many inputs.
///
/// ```
/// fn square(n: u64) -> u64 { n * n }
///
/// let pool = proctor::Pool::threads(2).build().unwrap();
/// assert_eq!(pool.try_map(square, vec![1, 2, 3]).unwrap(), vec![1, 4, 9]);
/// ```
///
/// A pool built with [`PoolBuilder::init_worker`] is a `Pool<S>`, where `S` is the state each
/// worker made: [`Pool::map_state`] and [`Pool::submit_state`] lend it to tasks.
pub struct Pool<S = ()> {
    backend: Backend,
    /// Thread mode's last `map_with` context, shared again by a call that repeats it.
    contexts: context::ThreadContexts,
    _state: PhantomData<fn() -> S>,
}

impl<S> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("backend", &self.backend)
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

#[derive(Debug)]
enum Backend {
    Threads(thread::ThreadPool),
    #[cfg(target_os = "linux")]
    Processes(process::ProcessPool),
}

impl Pool {
    /// A builder for a pool of `workers` threads.
    ///
    /// A `try_map` on a pool without [`PoolBuilder::init_worker`],
    /// [`PoolBuilder::max_tasks_per_worker`] or [`PoolBuilder::task_timeout`] runs on a second
    /// set of `workers` threads, started by the first such call, that write each value in
    /// place (rayon's work stealing); every other call runs on the pool's own threads.
    pub fn threads(workers: usize) -> PoolBuilder {
        Pool::builder(Mode::Threads, workers)
    }

    /// A builder for a pool of `workers` processes. [`crate::init`] must have run.
    ///
    /// Each worker process is a copy of the program as it was when `init` ran (see the
    /// crate docs): data that `main` makes later reaches tasks through their arguments,
    /// [`Pool::map_with`], or [`PoolBuilder::init_worker`].
    pub fn processes(workers: usize) -> PoolBuilder {
        Pool::builder(Mode::Processes, workers)
    }

    /// A builder for a pool in `mode`: the one word that switches between threads and
    /// processes.
    pub fn builder(mode: Mode, workers: usize) -> PoolBuilder {
        PoolBuilder::new(mode, workers)
    }
}

impl<S: 'static> Pool<S> {
    /// The pool's mode.
    pub fn mode(&self) -> Mode {
        match &self.backend {
            Backend::Threads(_) => Mode::Threads,
            #[cfg(target_os = "linux")]
            Backend::Processes(_) => Mode::Processes,
        }
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        match &self.backend {
            Backend::Threads(p) => p.workers(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.workers(),
        }
    }

    /// How each layer of the pool's sandbox came out in its workers, if it has one
    /// ([`PoolBuilder::sandbox`]).
    #[cfg(all(target_os = "linux", feature = "sandbox"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
    pub fn sandbox_report(&self) -> Option<&crate::SandboxReport> {
        match &self.backend {
            Backend::Threads(_) => None,
            Backend::Processes(p) => p.sandbox_report(),
        }
    }

    /// The process ids of the current worker processes (empty in thread mode). With
    /// `PoolBuilder::remote` (feature `remote`), each is the pid on the worker's own host.
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.backend {
            Backend::Threads(_) => Vec::new(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.worker_pids(),
        }
    }

    /// What the pool has done so far: tasks submitted, running, queued and done, failures
    /// by kind, retries, workers started and replaced, busy workers (see [`PoolStats`]).
    ///
    /// Cheap enough to call from a progress loop: the pool keeps relaxed atomic counters
    /// as it works, and this reads them (process mode also looks at which workers are busy,
    /// under the scheduler's lock, for a moment). Another thread may call it while `map`,
    /// a stream or `shutdown` runs, since it takes `&self`.
    ///
    /// ```
    /// fn check(n: u64) -> u64 {
    ///     assert!(n % 4 != 0, "a multiple of 4");
    ///     n
    /// }
    ///
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let _ = pool.map(check, 1..=10);
    /// let stats = pool.stats();
    /// assert_eq!((stats.submitted, stats.done, stats.succeeded), (10, 10, 8));
    /// assert_eq!(stats.failed.panicked, 2);
    /// assert_eq!((stats.running, stats.queued), (0, 0));
    /// ```
    pub fn stats(&self) -> PoolStats {
        match &self.backend {
            Backend::Threads(p) => p.config().stats.snapshot(None),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.stats(),
        }
    }

    /// Runs `f` on every item and returns one outcome per item, in input order.
    ///
    /// Every item gets exactly one outcome: its result or the [`TaskError`] that stopped it.
    /// A failed task never stops the others. Items are sent to workers in chunks (see
    /// [`PoolBuilder::chunk_size`]).
    pub fn map<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Vec<Result<R, TaskError>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        self.collect::<A, R, F, All<R>>(f, items)
    }

    /// [`Pool::map`] for a task type its caller has checked (`compare_modes`, which checks at
    /// its own entry so that a bad type is one error at the user's call).
    pub(crate) fn map_unchecked<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Vec<Result<R, TaskError>>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.collect::<A, R, F, All<R>>(f, items)
    }

    fn collect<A, R, F, C>(&self, f: F, items: impl IntoIterator<Item = A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: Collect<R>,
    {
        let items: Vec<A> = items.into_iter().collect();
        self.config().stats.submitted(items.len());
        match &self.backend {
            Backend::Threads(p) => p.map::<A, R, F, C>(f, items),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.map::<A, R, F, C>(f, items),
        }
    }

    /// Like [`Pool::map`], but returns the results alone, or the first failure in input
    /// order. It keeps only the values (no room for errors), so it needs less memory than
    /// `map` for many small results. After a failure the call may stop early: a task not yet
    /// started when another fails may never run (thread mode stops at once; process mode
    /// finishes the jobs already sent). Use [`Pool::map`] when every task must run.
    ///
    /// # Errors
    ///
    /// An [`Error`] of kind [`ErrorKind::Task`] holding the first failed task's error.
    pub fn try_map<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<R>, Error>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        self.collect::<A, R, F, UntilError<R>>(f, items)
            .map_err(|e| Error::new(ErrorKind::Task(e)))
    }

    /// [`Pool::map`] for tasks that use their worker's state (what
    /// [`PoolBuilder::init_worker`] made in that worker): `f(&state, item)`.
    ///
    /// On a pool without an initializer the state is `()`.
    pub fn map_state<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Vec<Result<R, TaskError>>
    where
        F: Fn(&S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        self.collect::<A, R, _, All<R>>(with_state(f), items)
    }

    /// [`Pool::submit`] for a task that uses its worker's state: `f(&state, arg)`.
    ///
    /// ```
    /// fn greeting() -> String { "hello".to_string() }
    /// fn greet(g: &String, name: String) -> String { format!("{g}, {name}") }
    ///
    /// let pool = proctor::Pool::threads(1).init_worker(greeting).build().unwrap();
    /// assert_eq!(pool.submit_state(greet, "ada".to_string()).join(), Ok("hello, ada".into()));
    /// ```
    pub fn submit_state<A, R, F>(&self, f: F, arg: A) -> Task<R>
    where
        F: Fn(&S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        self.submit_unchecked(with_state(f), arg)
    }

    /// [`Pool::map`] with a read-only context shared by every item: `f(&context, item)`.
    /// Use it for a lookup table, a configuration, a model: whatever is the same for every
    /// item.
    ///
    /// What a call costs, as measured (`benches/shared.rs`, `benches/README.md`):
    ///
    /// * **Process mode**: the context is encoded once per call and crosses to each worker
    ///   once (before the first of the call's jobs it runs), not once per item. A call whose
    ///   context encodes to the same bytes as the previous call's is not sent again to the
    ///   workers that hold it (the pool keeps that encoding till the next call): it is still
    ///   encoded, to compare, at about the cost of a `memcmp`.
    /// * **Thread mode**: one copy per call (a round trip through the codec, so the bounds are
    ///   those of process mode and no `Clone` is needed), shared by the threads; a call that
    ///   repeats the previous call's context, byte for byte, shares that copy (the pool keeps
    ///   its encoding and value till the next call).
    /// * **Large data**: wrap it in a [`crate::Shared`] (any value, decoded once per worker
    ///   process) or a [`crate::SharedBytes`] (bytes read in place) and pass that as the
    ///   context: only a handle of a few words is encoded per call, process workers map one
    ///   sealed region (in memory once, whatever the number of workers), and threads share
    ///   the very same value. Thirty calls with a 50 MB context then cost what one does.
    ///
    /// Thirty calls of 20 trivial items with the same 50 MB `ByteBuf` context, 2 workers, on
    /// a loaded 2-CPU guest: 0.32 s in process mode (5.4 s when each call's context differs
    /// and is sent), 0.17 s in thread mode (1.7 s); as a `Shared<ByteBuf>`, 0.15 s and 0.07 s,
    /// making it included (one call: 0.14 s and 0.07 s).
    ///
    /// ```
    /// fn scale(factor: &f64, x: f64) -> f64 { x * factor }
    ///
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let out = pool.map_with(&2.5, scale, vec![1.0, 2.0]);
    /// assert_eq!(out, vec![Ok(2.5), Ok(5.0)]);
    /// ```
    ///
    /// If the context cannot be encoded (its `Serialize` fails or panics, or it is over the
    /// 256 MiB frame limit), every item fails with a [`TaskError::Codec`] that says so; if
    /// it cannot be decoded, every item that needed it does.
    pub fn map_with<C, A, R, F>(
        &self,
        context: &C,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Vec<Result<R, TaskError>>
    where
        C: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(&C, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        let items: Vec<A> = items.into_iter().collect();
        self.config().stats.submitted(items.len());
        match &self.backend {
            Backend::Threads(p) => {
                // One owned copy, shared by the threads (and by the next calls, while they
                // repeat it).
                let context = match self.contexts.get(context) {
                    Ok(c) => c,
                    Err(why) => return self.context_failed(items.len(), &why),
                };
                let pairs = items
                    .into_iter()
                    .map(|a| (std::sync::Arc::clone(&context), a))
                    .collect();
                p.map::<_, R, _, All<R>>(move |(c, a): (std::sync::Arc<C>, A)| f(&c, a), pairs)
            }
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => match p.context(context) {
                Ok(ctx) => {
                    let out = p.map_in::<A, R, _, All<R>>(
                        move |a: A| crate::state::with_context::<C, R>(|c| f(c, a)),
                        items,
                        Some(ctx),
                    );
                    if out.iter().any(crate::state::is_context_error) {
                        // Sent again next time: what failed may not fail twice (a region
                        // that could not be mapped for want of a descriptor).
                        p.forget_context();
                    }
                    out
                }
                Err(why) => self.context_failed(items.len(), &why),
            },
        }
    }

    /// [`Pool::map`] with what each task wrote to stdout and stderr next to its outcome
    /// (see [`PoolBuilder::capture_output`]; without it every [`Output`] is empty).
    ///
    /// ```
    /// fn noisy(n: u64) -> u64 {
    ///     println!("working on {n}");
    ///     n + 1
    /// }
    ///
    /// # #[cfg(target_os = "linux")] {
    /// # proctor::init();
    /// let pool = proctor::Pool::processes(2).capture_output(true).build().unwrap();
    /// for (outcome, output) in pool.map_captured(noisy, vec![1, 2]) {
    ///     let n = outcome.unwrap() - 1;
    ///     assert_eq!(output.stdout_text(), format!("working on {n}\n"));
    /// }
    /// # }
    /// ```
    pub fn map_captured<A, R, F>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Vec<(Result<R, TaskError>, Output)>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        match &self.backend {
            // `collect` counts them.
            Backend::Threads(_) => self
                .collect::<A, R, F, All<R>>(f, items)
                .into_iter()
                .map(|o| (o, Output::default()))
                .collect(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => {
                let items: Vec<A> = items.into_iter().collect();
                p.config().stats.submitted(items.len());
                p.map_captured(f, items)
            }
        }
    }

    /// Runs `f` on every item of `items`, which may be endless, and yields the outcomes in
    /// input order as they are ready (see [`Stream`]): for inputs too big to hold, for
    /// progress, and to stop early.
    ///
    /// With no tuning it holds a bounded part of the input (at most 8 192 items per worker in
    /// thread mode; in process mode about 16 MiB of arguments and results, at most 65 536
    /// items per worker), starts with jobs of one item so the first outcome comes after one
    /// task, then sizes jobs to about a millisecond of work each, with a couple of jobs per
    /// worker queued or running. Measured on a shared 2-CPU machine with 2 process workers
    /// (`benches/stream_latency.rs`): the first of 1 000 tasks of 1–2 ms came back after
    /// 1.1 ms, a million 1 KiB items streamed with the caller's peak RSS at 10–13 MiB, and
    /// the throughput of 1 ms tasks was within 1.03× of the best hand-set
    /// `window`/`chunk_size` (ten million trivial tasks: 0.98× in process mode, 1.38× in
    /// thread mode, whose window is smaller). Dropping the stream cancels the items not yet
    /// started; [`Stream::canceller`] and [`Stream::next_timeout`] stop or bound it from
    /// elsewhere.
    ///
    /// ```
    /// fn parse(line: String) -> usize { line.len() }
    ///
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let lines = (0..10_000).map(|i| format!("line {i}"));
    /// let mut done = 0;
    /// for outcome in pool.stream(parse, lines) {
    ///     assert!(outcome.unwrap() >= 6);
    ///     done += 1; // progress
    /// }
    /// assert_eq!(done, 10_000);
    /// ```
    pub fn stream<'p, A, R, F, I>(&'p self, f: F, items: I) -> Stream<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        plain_fn!(F);
        Stream::new(self.batches(f, items.into_iter()), self.config())
    }

    /// Like [`Pool::stream`], but yields each outcome as soon as its task finishes, with the
    /// index of its item: a slow item holds up only the items of its own job, about a
    /// millisecond of work by the stream's estimate (see [`Unordered`]).
    pub fn stream_unordered<'p, A, R, F, I>(&'p self, f: F, items: I) -> Unordered<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        plain_fn!(F);
        Stream::new(self.batches(f, items.into_iter()), self.config()).unordered()
    }

    /// [`Pool::stream`] for tasks that use their worker's state (what
    /// [`PoolBuilder::init_worker`] made in that worker): `f(&state, item)`. Add
    /// [`Stream::unordered`] for outcomes as they finish.
    ///
    /// ```
    /// fn prefix() -> String { "item".to_string() }
    /// fn label(p: &String, n: u64) -> String { format!("{p} {n}") }
    ///
    /// let pool = proctor::Pool::threads(2).init_worker(prefix).build().unwrap();
    /// let labels: Vec<String> = pool.stream_state(label, 0..3u64).map(Result::unwrap).collect();
    /// assert_eq!(labels, ["item 0", "item 1", "item 2"]);
    /// ```
    pub fn stream_state<'p, A, R, F, I>(&'p self, f: F, items: I) -> Stream<'p, R>
    where
        F: Fn(&S, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        plain_fn!(F);
        Stream::new(
            self.batches(with_state(f), items.into_iter()),
            self.config(),
        )
    }

    /// [`Pool::stream`] with a read-only context shared by every item: `f(&context, item)`,
    /// the context handled as in [`Pool::map_with`] (process workers receive it once, before
    /// the first job of the stream each runs). Add [`Stream::unordered`] for outcomes as they
    /// finish.
    ///
    /// ```
    /// fn scale(factor: &u64, x: u64) -> u64 { x * factor }
    ///
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let out: Vec<u64> = pool.stream_with(&3, scale, 0..4u64).map(Result::unwrap).collect();
    /// assert_eq!(out, [0, 3, 6, 9]);
    /// ```
    ///
    /// If the context cannot be encoded, every item's outcome is a [`TaskError::Codec`] that
    /// says so.
    pub fn stream_with<'p, C, A, R, F, I>(&'p self, context: &C, f: F, items: I) -> Stream<'p, R>
    where
        C: Serialize + DeserializeOwned + Send + Sync + 'static,
        F: Fn(&C, A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        plain_fn!(F);
        let items = items.into_iter();
        let stats = std::sync::Arc::clone(&self.config().stats);
        let batches: Box<dyn stream::Batches<R> + 'p> = match &self.backend {
            // As in `map_with`: one owned copy, kept while calls repeat it.
            Backend::Threads(p) => match self.contexts.get(context) {
                Ok(c) => p.stream(
                    move |(c, a): (std::sync::Arc<C>, A)| f(&c, a),
                    items.map(move |a| (std::sync::Arc::clone(&c), a)),
                ),
                Err(why) => Box::new(stream::ContextFailed::new(items, why, stats)),
            },
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => match p.context(context) {
                Ok(ctx) => p.stream(
                    move |a: A| crate::state::with_context::<C, R>(|c| f(c, a)),
                    items,
                    Some(ctx),
                ),
                Err(why) => Box::new(stream::ContextFailed::new(items, why, stats)),
            },
        };
        Stream::new(batches, self.config())
    }

    fn batches<'p, A, R, F, I>(&'p self, f: F, items: I) -> Box<dyn stream::Batches<R> + 'p>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: Iterator<Item = A> + 'p,
    {
        match &self.backend {
            Backend::Threads(p) => p.stream(f, items),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.stream(f, items, None),
        }
    }

    /// The outcomes of a `map_with` call whose context could not be encoded (counted).
    fn context_failed<R>(&self, n: usize, why: &str) -> Vec<Result<R, TaskError>> {
        let out = context_failed(n, why);
        self.config().stats.outcomes(&out);
        out
    }

    fn config(&self) -> &Config {
        match &self.backend {
            Backend::Threads(p) => p.config(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.config(),
        }
    }

    /// Starts `f(arg)` on a worker and returns a handle to its outcome.
    pub fn submit<A, R, F>(&self, f: F, arg: A) -> Task<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        plain_fn!(F);
        self.submit_unchecked(f, arg)
    }

    /// [`Pool::submit`] for a task type its caller has checked.
    pub(crate) fn submit_unchecked<A, R, F>(&self, f: F, arg: A) -> Task<R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        self.config().stats.submitted(1);
        let inner = match &self.backend {
            Backend::Threads(p) => TaskInner::Thread(p.submit(f, arg)),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.submit(f, arg),
        };
        Task { inner }
    }

    /// Waits for every submitted task to finish, then stops the workers.
    pub fn shutdown(self) {
        match self.backend {
            Backend::Threads(p) => p.shutdown(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.shutdown(),
        }
    }
}

/// The task `f(&state, a)` as a task of `a` alone, which finds the state in its worker (still
/// zero-sized: it holds only `f`).
fn with_state<S: 'static, A, R, F>(f: F) -> impl Fn(A) -> R + Copy + Send + Sync + 'static
where
    F: Fn(&S, A) -> R + Copy + Send + Sync + 'static,
{
    move |a: A| crate::state::with_state::<S, R>(|s| f(s, a))
}

/// The outcomes of a `map_with` call whose context could not be encoded.
fn context_failed<R>(n: usize, why: &str) -> Vec<Result<R, TaskError>> {
    (0..n as u64)
        .map(|task| {
            Err(TaskError::Codec {
                message: arcstr::format!("its call's context could not be encoded: {why}"),
                index: task,
            })
        })
        .collect()
}

/// Rejects, at compile time, a task type that carries data (a `fn` pointer, or a closure
/// that captures something): a worker process could not receive it. Fn items and closures
/// that capture nothing are zero-sized.
///
/// A macro, not a function, and used once in each public entry point and nowhere below it:
/// the check is then a constant of the user's own instantiation, so the one error the
/// compiler gives ends with "encountered while instantiating `Pool::map::<..>`" and the
/// caller's file and line, and no second error comes from deeper in the library.
macro_rules! plain_fn {
    ($f:ty) => {
        const {
            assert!(
                std::mem::size_of::<$f>() == 0,
                "proctor runs a fn item or a closure that captures nothing; a `fn` pointer or a \
                 capturing closure cannot reach a worker process: pass the function by name"
            )
        }
    };
}
pub(crate) use plain_fn;
