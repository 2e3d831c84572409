//! [`PoolBuilder`]: one setter per option, and `build()`, which validates the options
//! (`options.rs`) and starts the backend the mode names.

use std::marker::PhantomData;
use std::time::Duration;

use super::options::{Config, mode_table_doc, with_mode_options};
#[cfg(target_os = "linux")]
use super::process;
use super::{Backend, Mode, Pool, StartMethod, plain_fn, thread};
use crate::error::Error;
// Named in the setters' documentation, and by `build()` elsewhere than Linux.
#[cfg(any(doc, not(target_os = "linux")))]
use crate::error::ErrorKind;
#[cfg(doc)]
use {super::Task, crate::error::TaskError};

/// Configures and builds a [`Pool`]. Made by [`Pool::threads`] or [`Pool::processes`].
///
/// Every option, in each mode (switching the mode is one word, so an option that means
/// something in both modes is accepted in both; one that cannot be honoured is an error from
/// [`PoolBuilder::build`] that says why):
///
#[doc = with_mode_options!(mode_table_doc)]
// The table's `sandbox` row links to `PoolBuilder::sandbox`, which the `sandbox` feature
// builds (docs.rs builds every feature); without it the row's links stay plain text.
#[cfg_attr(not(feature = "sandbox"), allow(rustdoc::broken_intra_doc_links))]
#[must_use = "a builder does nothing until .build() is called"]
pub struct PoolBuilder<S = ()> {
    config: Config,
    _state: PhantomData<fn() -> S>,
}

impl<S> Clone for PoolBuilder<S> {
    fn clone(&self) -> Self {
        PoolBuilder {
            config: self.config.clone(),
            _state: PhantomData,
        }
    }
}

impl<S> std::fmt::Debug for PoolBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("config", &self.config)
            .field("state", &std::any::type_name::<S>())
            .finish()
    }
}

impl PoolBuilder {
    /// A builder with the defaults of a pool of `workers` in `mode`.
    pub(super) fn new(mode: Mode, workers: usize) -> PoolBuilder {
        PoolBuilder {
            config: Config::new(mode, workers),
            _state: PhantomData,
        }
    }
}

impl<S: 'static> PoolBuilder<S> {
    /// Runs `init` once in each worker, before its first task, and keeps what it returns as
    /// that worker's state, which [`Pool::map_state`] and [`Pool::submit_state`] lend to
    /// every task it runs: a database connection, a compiled regex, a loaded model — made
    /// once per worker, not once per item (Python's `Pool(initializer=...)`, typed).
    ///
    /// Like a task, `init` is a plain `fn` (or a closure that captures nothing). In process
    /// mode it runs in the worker process, so the state never crosses between processes and
    /// needs no serde. `build()` returns once every worker has run it; if it panics (or its
    /// worker crashes) there, `build()` fails with the panic's message
    /// ([`ErrorKind::WorkerInit`]). If it fails later, in a replacement worker, the pool
    /// starts no more replacements (no respawn loop): tasks that find no worker end with
    /// [`TaskError::NoWorker`], whose reason is the initializer's panic.
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// fn load_table() -> HashMap<u64, &'static str> {
    ///     HashMap::from([(1, "one"), (2, "two")])
    /// }
    /// fn name(table: &HashMap<u64, &'static str>, n: u64) -> String {
    ///     table.get(&n).copied().unwrap_or("many").to_string()
    /// }
    ///
    /// let pool = proctor::Pool::threads(2).init_worker(load_table).build().unwrap();
    /// let names = pool.map_state(name, vec![1, 2, 3]);
    /// assert_eq!(names, vec![Ok("one".into()), Ok("two".into()), Ok("many".into())]);
    /// ```
    pub fn init_worker<T, I>(self, init: I) -> PoolBuilder<T>
    where
        T: 'static,
        I: Fn() -> T + Copy + Send + Sync + 'static,
    {
        plain_fn!(I);
        // A zero-sized fn: its type, in the entry point below, is all there is to keep.
        let _ = init;
        let mut config = self.config;
        config.init = Some(crate::state::init_entry::<T, I>);
        PoolBuilder {
            config,
            _state: PhantomData,
        }
    }

    /// Stops a task that runs longer than `timeout`, counted from the moment it starts on a
    /// worker (not from `join`). Its outcome is [`TaskError::TimedOut`].
    ///
    /// Process mode kills the worker (SIGTERM, a 100 ms grace, then SIGKILL, to its whole
    /// process group) and starts a replacement, on time whether or not a thread is waiting
    /// for the task (the pool's supervisor thread watches the clocks). Thread mode cannot kill
    /// a thread: a watchdog thread delivers `TimedOut` on time and starts a replacement
    /// worker, and the stuck thread leaks until its task returns (the classic "thread
    /// leak"). In thread mode, `map` then runs one item per job so each item is timed.
    pub fn task_timeout(mut self, timeout: Duration) -> Self {
        self.config.task_timeout = Some(timeout);
        self
    }

    /// Replaces a worker after it ran `n` tasks (a fresh process or thread), which bounds what a
    /// leaky task can accumulate.
    pub fn max_tasks_per_worker(mut self, n: usize) -> Self {
        self.config.max_tasks_per_worker = Some(n);
        self
    }

    /// Limits each worker process's data segment (heap and private mappings,
    /// `RLIMIT_DATA`) to `bytes`. A task that allocates past it fails with
    /// [`TaskError::OutOfMemory`] and the worker is replaced. A limit too small for an idle
    /// worker is an error from `build()`. Process mode only.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.config.memory_limit = Some(bytes);
        self
    }

    /// The largest encoded argument of a task, and the largest encoded results of one job,
    /// that travel between this program and a worker process (4 GiB by default; one result
    /// is at most 4 GiB − 1 byte whatever the limit, the size its record's length holds). An
    /// argument past it fails with [`TaskError::Codec`] before it is built in full; results
    /// past it fail the same way in the worker. Large arguments and results travel through
    /// shared memory, encoded in place: no pipe carries them and no copy is made beyond the
    /// encoding on each side.
    ///
    /// The limit is also what a worker can make this program map: a task that claims a
    /// larger result is refused before anything is mapped or allocated, so a hostile task
    /// (see `sandbox`, feature `sandbox`) costs at most this much address space per
    /// worker. Remote workers carry arguments inline in their frames, and keep their own,
    /// smaller limits (256 MiB per argument, 1 GiB of results per job).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.config.max_payload = bytes;
        self
    }

    /// How many items [`Pool::map`] sends to a worker at a time. By default it is chosen
    /// from the number of items and workers.
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.config.chunk_size = Some(n);
        self
    }

    /// Whether what worker processes write to stderr reaches this program's stderr: all of
    /// it (`true`) or none (`false`). Either way the last few KiB are kept for
    /// [`TaskError::Crashed`]'s `stderr_tail`, so turning it off keeps a crashing worker's
    /// panic message, backtrace or "memory allocation failed" off the terminal without
    /// losing it.
    ///
    /// By default neither: at most 20 lines per job (a job: the tasks sent to a worker at
    /// once, see [`PoolBuilder::chunk_size`]) are forwarded, each job a worker starts letting
    /// up to 20 more of its lines through, and the rest is held back, so that a few failures
    /// say what happened while a flood of backtraces cannot bury a progress bar. (Lines are
    /// counted as the pool reads them: a job's lines read after its worker's next job started
    /// count against that one.) Holding lines back is logged (`log`, at `info`) once per
    /// job. [`PoolBuilder::forward_stderr_lines`] sets another number.
    ///
    /// In thread mode tasks write to this program's own stderr, which no pool can filter;
    /// the option is accepted, so that switching the mode stays one word, and the pool's own
    /// output is quiet either way (a caught panic becomes `TaskError::Panicked` and prints
    /// nothing).
    pub fn forward_stderr(mut self, forward: bool) -> Self {
        self.config.forward_stderr = if forward { usize::MAX } else { 0 };
        self
    }

    /// Forwards at most `lines` lines of each job's stderr to this program's stderr, and
    /// holds back the rest of that job's (it still reaches a crash's `stderr_tail`). The
    /// default is 20; see [`PoolBuilder::forward_stderr`].
    ///
    /// ```
    /// let pool = proctor::Pool::threads(2).forward_stderr_lines(5).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn forward_stderr_lines(mut self, lines: usize) -> Self {
        self.config.forward_stderr = lines;
        self
    }

    /// Reruns, on a fresh worker, a task whose worker process died under it (a crash, an
    /// out-of-memory kill, a kill from outside) up to `n` times before it ends with that
    /// error. Off by default (0), since a task that ran halfway may not be safe to run again.
    ///
    /// A task that panicked or timed out is never rerun: its outcome is its own doing. Apart
    /// from this option, a job whose worker dies twice in a row *before any of its tasks
    /// started* (an argument whose decoding aborts, a memory limit too small to decode it)
    /// is never retried in a loop either: its first unstarted task ends with
    /// [`TaskError::Poisoned`] and the rest of the job runs. For comparison, Dask marks a
    /// task that killed 3 workers as `KilledWorker` (its `allowed-failures`), and Ray reruns
    /// a task whose worker died `max_retries` times (3 by default); proctor reruns nothing
    /// unless asked, and blames a task after two deaths.
    ///
    /// A rerun task's error says how many times it was started ([`TaskError::attempts`];
    /// its `Display` ends "after 3 attempts"), whatever it ended with.
    ///
    /// Process mode only (a thread cannot die alone).
    pub fn retries(mut self, n: u32) -> Self {
        self.config.retries = n;
        self
    }

    /// Keeps what each task writes to stdout and stderr (the last 64 KiB of each) with its
    /// outcome, instead of letting it reach this program's: [`Pool::map_captured`] and
    /// [`Task::join_captured`] return it with every outcome, a crashed task's included, and
    /// a crash's [`TaskError::Crashed`] `stderr_tail` is that task's own stderr. It costs a
    /// few system calls per task (the worker empties its capture files as each task starts
    /// and reads them as it ends).
    ///
    /// Process mode only: threads share one stdout and stderr, so what one task writes
    /// cannot be told from another's.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// # proctor::init();
    /// fn shout(n: u64) -> u64 { eprintln!("warning: {n}"); n }
    ///
    /// let pool = proctor::Pool::processes(1).capture_output(true).build().unwrap();
    /// let (outcome, output) = pool.submit(shout, 3).join_captured();
    /// assert_eq!(outcome, Ok(3));
    /// assert_eq!(output.stderr_text(), "warning: 3\n");
    /// assert!(proctor::Pool::threads(1).capture_output(true).build().is_err());
    /// # }
    /// ```
    pub fn capture_output(mut self, capture: bool) -> Self {
        self.config.capture_output = capture;
        self
    }

    /// How worker processes start: [`StartMethod::Fork`] (the default) or
    /// [`StartMethod::Exec`], which re-executes the binary for each worker. An exec'd worker
    /// takes several times longer to start than a forked one (a fresh program is loaded and
    /// runs up to `init()`), and `build()` waits until each first worker has answered a
    /// probe job, so that a worker that cannot start is an error here.
    ///
    /// Process mode only (threads are not started, they are spawned).
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// # proctor::init();
    /// use proctor::{Pool, StartMethod};
    /// fn double(n: u64) -> u64 { 2 * n }
    ///
    /// let pool = Pool::processes(2).start_method(StartMethod::Exec).build().unwrap();
    /// assert_eq!(pool.try_map(double, [1, 2, 3]).unwrap(), [2, 4, 6]);
    /// assert!(Pool::threads(1).start_method(StartMethod::Exec).build().is_err());
    /// # }
    /// ```
    pub fn start_method(mut self, method: StartMethod) -> Self {
        self.config.start_method = method;
        self
    }

    /// Confines each worker process, after its initializer and before its first task, to
    /// what `sandbox` allows: the boundary for tasks that handle hostile input (see
    /// [`crate::Sandbox`] for the layers). A task that breaks it ends with
    /// [`TaskError::SandboxViolation`] naming the system call, and its worker is replaced;
    /// [`Pool::sandbox_report`] says how each layer came out. If a layer the sandbox asks for
    /// is unavailable on this kernel, `build()` fails, unless the sandbox allows it
    /// ([`crate::Sandbox::allow_unavailable`]).
    ///
    /// By default every task runs in a fresh worker (as with `max_tasks_per_worker(1)`), so
    /// that no task can decide another's outcome; [`crate::Sandbox::reuse_workers`] trades
    /// that for speed. The sandbox's memory, stdio and timeout rules, and what it does not
    /// promise, are in `docs/security.md`.
    ///
    /// Process mode only: a thread has its process's rights and cannot be confined alone.
    ///
    /// ```
    /// # #[cfg(target_os = "linux")] {
    /// # proctor::init();
    /// use proctor::{Pool, Sandbox, TaskError};
    /// fn read_passwd(_: u64) -> usize {
    ///     std::fs::read("/etc/passwd").map(|b| b.len()).unwrap_or(0)
    /// }
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// let pool = Pool::processes(1)
    ///     .sandbox(Sandbox::compute().allow_unavailable(true))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(pool.submit(square, 7).join(), Ok(49));
    /// let seccomp = pool.sandbox_report().unwrap().layer("seccomp").unwrap();
    /// if seccomp.status == proctor::LayerStatus::Applied {
    ///     let e = pool.submit(read_passwd, 0).join().unwrap_err();
    ///     assert!(matches!(e, TaskError::SandboxViolation { .. }), "{e}");
    /// }
    /// # }
    /// ```
    #[cfg(all(target_os = "linux", feature = "sandbox"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
    pub fn sandbox(mut self, sandbox: crate::Sandbox) -> Self {
        self.config.sandbox = Some(sandbox);
        self
    }

    /// Runs the worker processes on other hosts (or through a launcher on this one): see
    /// [`crate::Remote`] for the launchers — a command template, ssh and Slurm — and
    /// [`crate::remote`] for how they connect back. Every promise of process mode holds: a
    /// remote task's panic, crash, timeout or memory limit ends with the same [`TaskError`]
    /// as a local one; a host that vanishes ends its running task [`TaskError::Lost`], run
    /// again elsewhere under [`PoolBuilder::retries`]; nothing started outlives the pool.
    /// `build()` waits until every agent has connected.
    ///
    /// Process mode only; not with `capture_output`, `sandbox` or [`StartMethod::Exec`]
    /// (the agent already runs a fresh copy of the binary).
    ///
    /// ```no_run
    /// # proctor::init();
    /// use proctor::{Pool, Remote};
    /// fn square(n: u64) -> u64 { n * n }
    ///
    /// // Inside a Slurm allocation: one worker per task slot.
    /// let pool = Pool::processes(8).remote(Remote::slurm()).retries(1).build()?;
    /// let squares = pool.try_map(square, 0..1000u64)?;
    /// # Ok::<(), proctor::Error>(())
    /// ```
    #[cfg(all(target_os = "linux", feature = "remote"))]
    #[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
    pub fn remote(mut self, remote: crate::Remote) -> Self {
        self.config.remote = Some(remote);
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// An invalid option (zero workers, a zero chunk size or timeout, a memory limit or
    /// retries in thread mode); in process mode, [`crate::init`] not having run in time, an unsupported
    /// platform, or a worker that could not be started.
    pub fn build(mut self) -> Result<Pool<S>, Error> {
        self.config.validate()?;
        // Counters of its own, even when built from a clone of another pool's builder.
        self.config.stats = Default::default();
        #[cfg(target_os = "linux")]
        if let Some(s) = self.config.sandbox.as_mut() {
            s.memory_limit = self.config.memory_limit;
            if s.is_fresh_worker_per_task() {
                // A task that owns its worker could decide what a later task there returns:
                // under the sandbox's default, no task runs where another ran.
                self.config.max_tasks_per_worker = Some(1);
            }
        }
        crate::panic::install_hook();
        let backend = match self.config.mode {
            Mode::Threads => Backend::Threads(thread::ThreadPool::new(self.config)?),
            #[cfg(target_os = "linux")]
            Mode::Processes => Backend::Processes(process::ProcessPool::new(self.config)?),
            #[cfg(not(target_os = "linux"))]
            Mode::Processes => return Err(Error::new(ErrorKind::Unsupported)),
        };
        Ok(Pool {
            backend,
            contexts: Default::default(),
            _state: PhantomData,
        })
    }
}
