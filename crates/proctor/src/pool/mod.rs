//! [`Pool`], its builder, and [`Task`] handles. The two backends live in `thread.rs` and
//! `process/` (with `stream.rs`, the streams both share); this file is the one dispatch
//! point between them.

use std::marker::PhantomData;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, ErrorKind, TaskError};

#[cfg(target_os = "linux")]
mod process;
#[cfg(target_os = "linux")]
pub(crate) use process::decode_records_for_fuzz;
mod stream;
mod thread;

pub use stream::{Stream, Unordered};

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

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) start_method: StartMethod,
    pub(crate) workers: usize,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_tasks_per_worker: Option<usize>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) chunk_size: Option<usize>,
    pub(crate) forward_stderr: bool,
    pub(crate) retries: u32,
    /// The worker initializer, run once in each worker before its first task.
    pub(crate) init: Option<crate::state::InitFn>,
    pub(crate) capture_output: bool,
    /// The largest encoded argument, or job's results, a worker process may send or be sent.
    pub(crate) max_payload: usize,
    /// The sandbox each worker process applies before its first task.
    #[cfg(target_os = "linux")]
    pub(crate) sandbox: Option<crate::Sandbox>,
    /// Where worker processes run, when not forked on this host.
    #[cfg(target_os = "linux")]
    pub(crate) remote: Option<crate::Remote>,
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

impl Config {
    /// How many items `map` puts in one job: about four jobs per worker so the load
    /// balances, at most 65 536 so results stream back (a cap of 16 384 cost a
    /// million-item `map` 9 % unpinned and 3.5 % pinned, in handoffs), never more than a
    /// worker may run before it is recycled.
    pub(crate) fn chunk_for(&self, items: usize) -> usize {
        let auto = (items / (self.workers * 4)).clamp(1, 65_536);
        let chunk = self.chunk_size.unwrap_or(auto);
        match self.max_tasks_per_worker {
            Some(max) => chunk.min(max),
            None => chunk,
        }
    }
}

/// The default [`PoolBuilder::max_payload`]: 4 GiB (loky's users send 2.2 GB arguments),
/// or half the address space where that is smaller.
const DEFAULT_MAX_PAYLOAD: usize = if usize::BITS > 32 {
    (4u64 << 30) as usize
} else {
    usize::MAX / 2
};

/// The smallest [`PoolBuilder::max_payload`]: what the pool's own frames need.
const MIN_MAX_PAYLOAD: usize = 64 << 10;

/// Configures and builds a [`Pool`]. Made by [`Pool::threads`] or [`Pool::processes`].
///
/// Every option, in each mode (switching the mode is one word, so an option that means
/// something in both modes is accepted in both; one that cannot be honoured is an error from
/// [`PoolBuilder::build`] that says why):
///
/// | option | processes | threads |
/// |---|---|---|
/// | [`task_timeout`](PoolBuilder::task_timeout) | the worker is killed and replaced, on time | `TimedOut` on time; the stuck thread is replaced and leaks until its task returns |
/// | [`max_tasks_per_worker`](PoolBuilder::max_tasks_per_worker) | a fresh process after `n` tasks | a fresh thread after `n` tasks |
/// | [`chunk_size`](PoolBuilder::chunk_size) | items per job sent to a worker | items per job (one per job under a timeout); in a plain `map`, the fewest items a thread takes at once |
/// | [`memory_limit`](PoolBuilder::memory_limit) | `RLIMIT_DATA` per worker; `OutOfMemory` | error: threads share one address space |
/// | [`max_payload`](PoolBuilder::max_payload) | the largest encoded argument or job's results; `Codec` past it | accepted; values move without being encoded |
/// | [`retries`](PoolBuilder::retries) | reruns a task whose worker died | error: a thread cannot die alone |
/// | [`forward_stderr`](PoolBuilder::forward_stderr) | workers' stderr to ours, or only into `stderr_tail` | accepted; tasks write to our stderr directly |
/// | [`capture_output`](PoolBuilder::capture_output) | each task's stdout and stderr kept with its outcome | error: threads share one stdout and stderr |
/// | [`init_worker`](PoolBuilder::init_worker) | run in each worker process, before its first task | run in each worker thread, before its first task |
/// | [`sandbox`](PoolBuilder::sandbox) | seccomp, Landlock, capabilities dropped, rlimits, a file-system view (with files) and optionally a network namespace, per worker; a fresh worker per task unless [`Sandbox::reuse_workers`](crate::Sandbox::reuse_workers) | error: a thread cannot be confined apart from its process |
/// | [`start_method`](PoolBuilder::start_method) | fork from the fork server, or re-execute the binary | error: threads are not started from a binary |
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
        assert_plain_fn::<I>();
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
    /// (see [`sandbox`](PoolBuilder::sandbox)) costs at most this much address space per
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

    /// Whether what worker processes write to stderr reaches this program's stderr (the
    /// default). Either way the last few KiB are kept for [`TaskError::Crashed`]'s
    /// `stderr_tail`, so turning it off keeps a crashing worker's panic message, backtrace or
    /// "memory allocation failed" off the terminal without losing it.
    ///
    /// In thread mode tasks write to this program's own stderr, which no pool can filter;
    /// the option is accepted, so that switching the mode stays one word, and the pool's own
    /// output is quiet either way (a caught panic becomes `TaskError::Panicked` and prints
    /// nothing).
    pub fn forward_stderr(mut self, forward: bool) -> Self {
        self.config.forward_stderr = forward;
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
    #[cfg(target_os = "linux")]
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
    #[cfg(target_os = "linux")]
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
        let c = &self.config;
        if c.workers == 0 {
            return Err(Error::invalid(format!(
                "a pool needs at least one worker, got Pool::{}(0)",
                c.mode
            )));
        }
        if u32::try_from(c.workers).is_err() {
            return Err(Error::invalid(format!(
                "a pool has at most {} workers, got {}",
                u32::MAX,
                c.workers
            )));
        }
        if c.max_payload < MIN_MAX_PAYLOAD {
            return Err(Error::invalid(format!(
                "max_payload must be at least {} KiB, got {} bytes",
                MIN_MAX_PAYLOAD >> 10,
                c.max_payload
            )));
        }
        if c.chunk_size == Some(0) {
            return Err(Error::invalid("chunk_size must be at least 1"));
        }
        if c.max_tasks_per_worker == Some(0) {
            return Err(Error::invalid("max_tasks_per_worker must be at least 1"));
        }
        if c.task_timeout == Some(Duration::ZERO) {
            return Err(Error::invalid("task_timeout must be longer than zero"));
        }
        if c.mode == Mode::Threads && c.retries > 0 {
            return Err(Error::invalid(
                "retries applies to worker processes only; a thread cannot die alone",
            ));
        }
        if c.mode == Mode::Threads && c.capture_output {
            return Err(Error::invalid(
                "capture_output applies to worker processes only; threads share one stdout \
                 and stderr, so one task's writes cannot be told from another's",
            ));
        }
        if c.mode == Mode::Threads && c.start_method != StartMethod::Fork {
            return Err(Error::invalid(
                "start_method applies to worker processes only; threads are not started \
                 from a binary",
            ));
        }
        #[cfg(target_os = "linux")]
        if c.mode == Mode::Threads && c.sandbox.is_some() {
            return Err(Error::invalid(
                "sandbox applies to worker processes only; a thread has its process's rights \
                 and cannot be confined alone",
            ));
        }
        #[cfg(target_os = "linux")]
        if let Some(r) = &c.remote {
            let refuse = |why: &str| Err(Error::invalid(format!("remote workers: {why}")));
            if c.mode == Mode::Threads {
                return refuse("a thread runs in this process, not on another host");
            }
            if c.capture_output {
                return refuse("capture_output is not supported over TCP yet");
            }
            if c.sandbox.is_some() {
                return refuse("sandbox is not supported over TCP yet");
            }
            if c.start_method != StartMethod::Fork {
                return refuse(
                    "the agent already runs a fresh copy of the binary; leave start_method alone",
                );
            }
            if let Err(why) = r.check(c.workers) {
                return refuse(&why);
            }
        }
        if c.mode == Mode::Threads && c.memory_limit.is_some() {
            return Err(Error::invalid(
                "memory_limit applies to worker processes only; threads share one address space",
            ));
        }
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
            _state: PhantomData,
        })
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
        PoolBuilder {
            config: Config {
                mode,
                workers,
                task_timeout: None,
                start_method: StartMethod::Fork,
                #[cfg(target_os = "linux")]
                sandbox: None,
                #[cfg(target_os = "linux")]
                remote: None,
                max_tasks_per_worker: None,
                memory_limit: None,
                chunk_size: None,
                forward_stderr: true,
                retries: 0,
                init: None,
                capture_output: false,
                max_payload: DEFAULT_MAX_PAYLOAD,
            },
            _state: PhantomData,
        }
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
    #[cfg(target_os = "linux")]
    pub fn sandbox_report(&self) -> Option<&crate::SandboxReport> {
        match &self.backend {
            Backend::Threads(_) => None,
            Backend::Processes(p) => p.sandbox_report(),
        }
    }

    /// The process ids of the current worker processes (empty in thread mode). With
    /// [`PoolBuilder::remote`], each is the pid on the worker's own host.
    pub fn worker_pids(&self) -> Vec<u32> {
        match &self.backend {
            Backend::Threads(_) => Vec::new(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.worker_pids(),
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
        self.collect::<A, R, F, All<R>>(f, items)
    }

    fn collect<A, R, F, C>(&self, f: F, items: impl IntoIterator<Item = A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: Collect<R>,
    {
        assert_plain_fn::<F>();
        let items: Vec<A> = items.into_iter().collect();
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
        self.map(with_state(f), items)
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
        self.submit(with_state(f), arg)
    }

    /// [`Pool::map`] with a read-only context shared by every item: `f(&context, item)`.
    /// The context crosses to each worker process once for the call (before the first job
    /// of the call it runs), not once per item; thread workers share one copy. Use it for a
    /// lookup table, a configuration, a model: whatever is the same for every item.
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
        assert_plain_fn::<F>();
        let items: Vec<A> = items.into_iter().collect();
        match &self.backend {
            Backend::Threads(p) => {
                // One owned copy for the call (a round trip through the codec, so the bounds
                // are those of process mode and no `Clone` is needed), shared by the threads.
                // The `Serialize` and `Deserialize` are the user's: a panic or an error in
                // either is every item's codec error, in the user's own words.
                let owned = crate::codec::guarded("Serialize", || postcard::to_allocvec(context))
                    .and_then(|r| r.map_err(|e| crate::codec::ser_error(context, &e)))
                    .and_then(|b| {
                        crate::codec::guarded("Deserialize", || postcard::from_bytes::<C>(&b))
                            .and_then(|r| r.map_err(|e| crate::codec::de_error::<C>(&b, &e)))
                    });
                let context = match owned {
                    Ok(c) => std::sync::Arc::new(c),
                    Err(why) => return context_failed(items.len(), &why),
                };
                let pairs = items
                    .into_iter()
                    .map(|a| (std::sync::Arc::clone(&context), a))
                    .collect();
                p.map::<_, R, _, All<R>>(move |(c, a): (std::sync::Arc<C>, A)| f(&c, a), pairs)
            }
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => match p.context(context) {
                Ok(ctx) => p.map_in::<A, R, _, All<R>>(
                    move |a: A| crate::state::with_context::<C, R>(|c| f(c, a)),
                    items,
                    Some(ctx),
                ),
                Err(why) => context_failed(items.len(), &why),
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
        assert_plain_fn::<F>();
        match &self.backend {
            Backend::Threads(_) => self
                .map(f, items)
                .into_iter()
                .map(|o| (o, Output::default()))
                .collect(),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.map_captured(f, items.into_iter().collect()),
        }
    }

    /// Runs `f` on every item of `items`, which may be endless, and yields the outcomes in
    /// input order as they are ready, with at most a window of items in flight (see
    /// [`Stream`]): for inputs too big to hold, for progress, and to stop early. Dropping the
    /// stream cancels the items not yet started.
    ///
    /// ```
    /// fn parse(line: String) -> usize { line.len() }
    ///
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let lines = (0..10_000).map(|i| format!("line {i}"));
    /// let mut done = 0;
    /// for outcome in pool.stream(parse, lines).window(512) {
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
        Stream::new(self.batches(f, items.into_iter()), self.config())
    }

    /// Like [`Pool::stream`], but yields each outcome as soon as its task finishes, with the
    /// index of its item: a slow item never holds up the others (see [`Unordered`]).
    pub fn stream_unordered<'p, A, R, F, I>(&'p self, f: F, items: I) -> Unordered<'p, R>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: IntoIterator<Item = A>,
        I::IntoIter: 'p,
    {
        self.stream(f, items).unordered()
    }

    fn batches<'p, A, R, F, I>(&'p self, f: F, items: I) -> Box<dyn stream::Batches<R> + 'p>
    where
        F: Fn(A) -> R + Copy + Send + Sync + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: Iterator<Item = A> + 'p,
    {
        assert_plain_fn::<F>();
        match &self.backend {
            Backend::Threads(p) => p.stream(f, items),
            #[cfg(target_os = "linux")]
            Backend::Processes(p) => p.stream(f, items),
        }
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
        assert_plain_fn::<F>();
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

/// Puts outcomes that arrive in runs, in any order, into one vector in input order.
///
/// Runs that continue the vector are appended at once (so assembly overlaps with the
/// workers' progress); runs that arrive early wait in a map until their turn.
#[derive(Debug)]
pub(crate) struct Assembler<T> {
    out: Vec<T>,
    parked: std::collections::BTreeMap<usize, Vec<T>>,
}

impl<T> Assembler<T> {
    pub(crate) fn new(n: usize) -> Assembler<T> {
        Assembler {
            out: Vec::with_capacity(n),
            parked: Default::default(),
        }
    }

    /// Adds the run of items that starts at index `first`.
    pub(crate) fn add(&mut self, first: usize, items: impl IntoIterator<Item = T>) {
        if first == self.out.len() {
            // `for_each`, not `extend`: it runs the iterator's own `fold`, which the process
            // pool's record decoder makes fast.
            items.into_iter().for_each(|item| self.out.push(item));
            self.unpark();
        } else {
            // `for_each` again (not `collect`), for the same fast decode.
            let items = items.into_iter();
            let mut run = Vec::with_capacity(items.size_hint().0);
            items.for_each(|item| run.push(item));
            self.parked.insert(first, run);
        }
    }

    /// Adds a run held in a vector (moved in one copy).
    pub(crate) fn add_run(&mut self, first: usize, mut run: Vec<T>) {
        if first == self.out.len() {
            self.out.append(&mut run);
            self.unpark();
        } else {
            self.parked.insert(first, run);
        }
    }

    /// Appends the parked runs that now continue the vector.
    fn unpark(&mut self) {
        while let Some(mut next) = self.parked.remove(&self.out.len()) {
            self.out.append(&mut next);
        }
    }

    /// The assembled vector; items never delivered are filled in by `missing(index)`.
    pub(crate) fn finish(mut self, n: usize, missing: impl Fn(usize) -> T) -> Vec<T> {
        self.unpark();
        while self.out.len() < n {
            self.out.push(missing(self.out.len()));
            self.unpark();
        }
        self.out
    }

    /// The assembled vector, or the index of the first item never delivered.
    pub(crate) fn complete(mut self, n: usize) -> Result<Vec<T>, usize> {
        self.unpark();
        if self.out.len() < n {
            Err(self.out.len())
        } else {
            Ok(self.out)
        }
    }
}

/// What a map-like call keeps of its outcomes: [`All`] of them (`map`), or the values until a
/// task fails ([`UntilError`], `try_map`, which then needs no room for errors: 8 bytes per
/// `u64` result instead of 32).
pub(crate) trait Collect<R>: Send + 'static {
    /// What the call returns.
    type Output;
    /// Room for `n` outcomes.
    fn with_len(n: usize) -> Self;
    /// Outcomes for items `first..`, in order.
    fn add(&mut self, first: usize, outcomes: impl Iterator<Item = Result<R, TaskError>>);
    /// Outcomes for items `first..`, in order, held in a vector.
    fn add_run(&mut self, first: usize, outcomes: Vec<Result<R, TaskError>>) {
        self.add(first, outcomes.into_iter());
    }
    /// Results of items `first..` that all succeeded (the common case, 8 bytes a `u64`
    /// instead of an outcome's 32).
    fn add_values(&mut self, first: usize, values: Vec<R>) {
        self.add(first, values.into_iter().map(Ok));
    }
    /// The result; `first_task` numbers the items for a `Cancelled` error if one is missing.
    fn finish(self, n: usize, first_task: u64) -> Self::Output;
    /// Runs `f` over `items` on `threads`, each result written in place (thread mode), the
    /// items numbered from `first_task`; or gives the items back (the default), for a
    /// collector that is faster through the pool's own workers.
    fn in_place<A, F>(
        threads: &thread::MapThreads,
        f: F,
        items: Vec<A>,
        first_task: u64,
    ) -> Result<Self::Output, Vec<A>>
    where
        A: Send,
        F: Fn(A) -> R + Sync,
    {
        let _ = (threads, f, first_task);
        Err(items)
    }
}

/// Every outcome, in input order.
#[derive(Debug)]
pub(crate) struct All<R>(Assembler<Result<R, TaskError>>);

impl<R: Send + 'static> Collect<R> for All<R> {
    type Output = Vec<Result<R, TaskError>>;

    fn with_len(n: usize) -> Self {
        All(Assembler::new(n))
    }

    fn add(&mut self, first: usize, outcomes: impl Iterator<Item = Result<R, TaskError>>) {
        self.0.add(first, outcomes);
    }

    fn add_run(&mut self, first: usize, outcomes: Vec<Result<R, TaskError>>) {
        self.0.add_run(first, outcomes);
    }

    fn finish(self, n: usize, first_task: u64) -> Self::Output {
        self.0.finish(n, |i| {
            Err(TaskError::Cancelled {
                task: first_task + i as u64,
            })
        })
    }
    // Not `in_place`: an outcome has room for an error (32 bytes for a `u64`), and writing
    // those from the work-stealing threads measured slower (5.4 ms against 3.9 for a million
    // `u64`, pinned) than the pool's workers returning bare values that are wrapped once here.
}

/// The values in input order, or the failure with the lowest index.
#[derive(Debug)]
pub(crate) struct UntilError<R> {
    values: Assembler<R>,
    error: Option<(usize, TaskError)>,
}

impl<R: Send + 'static> Collect<R> for UntilError<R> {
    type Output = Result<Vec<R>, TaskError>;

    fn with_len(n: usize) -> Self {
        UntilError {
            values: Assembler::new(n),
            error: None,
        }
    }

    fn add(&mut self, first: usize, outcomes: impl Iterator<Item = Result<R, TaskError>>) {
        let lower = |i: usize, error: &Option<(usize, TaskError)>| {
            error.as_ref().is_none_or(|(e, _)| i < *e)
        };
        if self.error.is_some() {
            // Values no longer matter; only an earlier failure would.
            for (k, o) in outcomes.enumerate() {
                if let Err(e) = o {
                    if lower(first + k, &self.error) {
                        self.error = Some((first + k, e));
                    }
                    break;
                }
            }
            return;
        }
        let mut failed = None;
        let mut k = 0;
        let mut outcomes = outcomes;
        let values = outcomes.by_ref().map_while(|o| match o {
            Ok(v) => {
                k += 1;
                Some(v)
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        });
        self.values.add(first, values);
        if let Some(e) = failed {
            self.error = Some((first + k, e));
            self.values = Assembler::new(0);
        }
    }

    fn add_values(&mut self, first: usize, values: Vec<R>) {
        if self.error.is_none() {
            self.values.add_run(first, values);
        }
    }

    fn finish(self, n: usize, first_task: u64) -> Self::Output {
        if let Some((_, e)) = self.error {
            return Err(e);
        }
        self.values.complete(n).map_err(|i| TaskError::Cancelled {
            task: first_task + i as u64,
        })
    }
    fn in_place<A, F>(
        threads: &thread::MapThreads,
        f: F,
        items: Vec<A>,
        first_task: u64,
    ) -> Result<Self::Output, Vec<A>>
    where
        A: Send,
        F: Fn(A) -> R + Sync,
    {
        Ok(threads.values(f, items, first_task))
    }
}

/// The task `f(&state, a)` as a task of `a` alone, which finds the state in its worker (still
/// zero-sized: it holds only `f`).
fn with_state<S: 'static, A, R, F>(f: F) -> impl Fn(A) -> R + Copy + Send + Sync + 'static
where
    F: Fn(&S, A) -> R + Copy + Send + Sync + 'static,
{
    assert_plain_fn::<F>();
    move |a: A| crate::state::with_state::<S, R>(|s| f(s, a))
}

/// The outcomes of a `map_with` call whose context could not be encoded.
fn context_failed<R>(n: usize, why: &str) -> Vec<Result<R, TaskError>> {
    (0..n as u64)
        .map(|task| {
            Err(TaskError::Codec {
                message: arcstr::format!("its call's context could not be encoded: {why}"),
                task,
            })
        })
        .collect()
}

/// Rejects, at compile time, task functions that carry data: a worker process could not
/// receive it. Fn items and non-capturing closures are zero-sized.
fn assert_plain_fn<F>() {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "proctor runs a plain fn or a closure that captures nothing"
        )
    };
}

/// A handle to one submitted task. [`Task::join`] waits for its outcome; [`Task::is_finished`],
/// [`Task::try_join`] and [`Task::join_timeout`] look without waiting or for a while, and
/// [`Task::cancel`] stops it.
///
/// Dropping a `Task` does not cancel it; its outcome is discarded.
#[derive(Debug)]
#[must_use = "a task's outcome is lost unless it is joined"]
pub struct Task<R> {
    inner: TaskInner<R>,
}

#[derive(Debug)]
pub(crate) enum TaskInner<R> {
    Thread(thread::ThreadTask<R>),
    #[cfg(target_os = "linux")]
    Process(process::ProcessTask<R>),
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Ready(Result<R, TaskError>),
    /// Its outcome went to an `await`.
    Taken,
}

const TAKEN: &str = "a proctor::Task was used after an `await` on it completed";

impl<R> Task<R> {
    /// True once the task's outcome is ready: [`Task::join`] will not wait.
    ///
    /// ```
    /// # fn square(n: u64) -> u64 { n * n }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let task = pool.submit(square, 3);
    /// while !task.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(task.join(), Ok(9));
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            TaskInner::Thread(t) => t.is_finished(),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.is_finished(),
            TaskInner::Ready(_) | TaskInner::Taken => true,
        }
    }

    /// Cancels the task. A task still queued never runs. A running one: process mode kills
    /// its worker (and starts a replacement); thread mode cannot stop a thread, so the task
    /// runs on and this returns false. True if the task's outcome is now
    /// [`TaskError::Cancelled`] (false too when it had already finished).
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let busy = pool.submit(nap, 200);
    /// let queued = pool.submit(nap, 1);
    /// assert!(queued.cancel());
    /// assert!(queued.join().unwrap_err().is_cancelled());
    /// assert_eq!(busy.join(), Ok(200));
    /// ```
    pub fn cancel(&self) -> bool {
        match &self.inner {
            TaskInner::Thread(t) => t.cancel(),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.cancel(),
            TaskInner::Ready(_) | TaskInner::Taken => false,
        }
    }

    /// The task's outcome if it has finished, without waiting; otherwise the task back.
    ///
    /// # Errors
    ///
    /// `Err(task)` when the outcome is not ready yet: join it later.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let task = pool.submit(nap, 100);
    /// let task = task.try_join().expect_err("not finished yet");
    /// assert_eq!(task.join(), Ok(100));
    /// ```
    pub fn try_join(self) -> Result<Result<R, TaskError>, Task<R>> {
        self.join_deadline(std::time::Instant::now())
    }

    /// Waits up to `timeout` for the task's outcome; the task back if it has none by then.
    /// The task itself goes on either way (its own limit is the pool's `task_timeout`).
    ///
    /// # Errors
    ///
    /// `Err(task)` when `timeout` passed first: join it later.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let task = pool.submit(nap, 300);
    /// let task = task.join_timeout(Duration::from_millis(1)).expect_err("still running");
    /// assert_eq!(task.join_timeout(Duration::from_secs(30)).ok(), Some(Ok(300)));
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<R, TaskError>, Task<R>> {
        self.join_deadline(std::time::Instant::now() + timeout)
    }

    fn join_deadline(self, deadline: std::time::Instant) -> Result<Result<R, TaskError>, Task<R>> {
        let back = |inner| Task { inner };
        match self.inner {
            TaskInner::Thread(t) => t
                .join_deadline(deadline)
                .map_err(|t| back(TaskInner::Thread(t))),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t
                .join_deadline(deadline)
                .map_err(|t| back(TaskInner::Process(t))),
            TaskInner::Ready(r) => Ok(r),
            TaskInner::Taken => panic!("{TAKEN}"),
        }
    }

    /// Waits for the task's outcome, and returns it with what the task wrote to stdout and
    /// stderr (see [`PoolBuilder::capture_output`]; without it the [`Output`] is empty).
    ///
    /// ```
    /// // Without capture (here a thread pool, which cannot capture) the output is empty.
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let (outcome, output) = pool.submit(|n: u64| n * 2, 4).join_captured();
    /// assert_eq!((outcome, output), (Ok(8), proctor::Output::default()));
    /// ```
    pub fn join_captured(self) -> (Result<R, TaskError>, Output) {
        match self.inner {
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.join_captured(),
            inner => (Task { inner }.join(), Output::default()),
        }
    }

    /// Waits for the task's outcome.
    ///
    /// With a `task_timeout`, a task that runs too long ends in [`TaskError::TimedOut`]; the
    /// timeout counts from when the task started on a worker.
    pub fn join(self) -> Result<R, TaskError> {
        match self.inner {
            TaskInner::Thread(t) => t.join(),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.join(),
            TaskInner::Ready(r) => r,
            TaskInner::Taken => panic!("{TAKEN}"),
        }
    }
}

// The task never pins its outcome in place (it is moved out whole), so a `Task` may move
// while awaited whatever `R` is.
impl<R> Unpin for Task<R> {}

/// `pool.submit(f, x).await` waits for the outcome without blocking the thread: the task's
/// handle is a `Future`, woken through the standard `Waker` (no runtime is assumed). The
/// waker runs with none of the pool's locks held, so a runtime whose waker polls inline may
/// `submit` more tasks (or drop the pool) from it; a waker that panics is contained and
/// logged, and the pool goes on.
///
/// Polling it again after it returned `Ready` panics, as the `Future` contract allows.
impl<R> std::future::Future for Task<R> {
    type Output = Result<R, TaskError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let poll = match &mut self.inner {
            TaskInner::Thread(t) => t.poll_outcome(cx),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.poll_outcome(cx),
            TaskInner::Ready(_) => {
                let TaskInner::Ready(r) = std::mem::replace(&mut self.inner, TaskInner::Taken)
                else {
                    unreachable!("matched Ready above")
                };
                return Poll::Ready(r);
            }
            TaskInner::Taken => panic!("{TAKEN}"),
        };
        if poll.is_ready() {
            self.inner = TaskInner::Taken;
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::Assembler;

    #[test]
    fn assembler_orders_runs_and_fills_gaps() {
        let mut a = Assembler::new(8);
        a.add(3, vec![3, 4]);
        assert_eq!(a.out.len(), 0);
        a.add(0, vec![0, 1, 2]);
        assert_eq!(a.out.len(), 5);
        a.add(6, vec![6]);
        assert_eq!(a.finish(8, |i| 100 + i), vec![0, 1, 2, 3, 4, 105, 6, 107]);
    }
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    #[test]
    fn until_error_keeps_the_lowest_failure() {
        let mut c = UntilError::<u32>::with_len(6);
        c.add(
            3,
            &mut vec![Ok(3), Err(TaskError::Cancelled { task: 4 }), Ok(5)].into_iter(),
        );
        c.add(
            0,
            &mut vec![Ok(0), Err(TaskError::Cancelled { task: 1 }), Ok(2)].into_iter(),
        );
        assert_eq!(c.finish(6, 0), Err(TaskError::Cancelled { task: 1 }));
        let mut c = UntilError::<u32>::with_len(4);
        c.add(2, &mut vec![Ok(2), Ok(3)].into_iter());
        c.add(0, &mut vec![Ok(0), Ok(1)].into_iter());
        assert_eq!(c.finish(4, 0), Ok(vec![0, 1, 2, 3]));
        let mut c = UntilError::<u32>::with_len(3);
        c.add(0, &mut vec![Ok(0)].into_iter());
        assert_eq!(c.finish(3, 10), Err(TaskError::Cancelled { task: 11 }));
    }
}
