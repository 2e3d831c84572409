//! Errors: [`Error`] for the pool itself, [`TaskError`] for one task.

use std::fmt;
use std::time::Duration;

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

/// Why a single task produced no result.
///
/// Every submitted task ends with exactly one outcome: its value or one of these.
/// The `Display` form is one plain sentence that names the worker and the task.
///
/// It is four words (32 bytes), so `Result<u64, TaskError>` is too: [`crate::Pool::map`]
/// returns one per item, and for a million small items the error's size is paid a million
/// times, failed or not. Hence the one-word [`ArcStr`] texts, `u32` worker numbers and a
/// `u8` exit code (all the kernel keeps of one).
///
/// [`TaskError::kind`] names the variant as a plain [`TaskErrorKind`], to count or group
/// failures without a `match`. It is `Serialize`, as an object whose `"kind"` field is that
/// name, beside the variant's fields (durations as `after_ns`, the memory limit as
/// `limit_bytes`):
///
/// ```
/// use proctor::{TaskError, TaskErrorKind};
/// # fn boom(n: u32) -> u32 { if n == 2 { panic!("no two") } n }
/// let pool = proctor::Pool::threads(2).build().unwrap();
/// let outcomes = pool.map(boom, vec![1, 2, 3]);
/// let mut failed = std::collections::BTreeMap::<TaskErrorKind, usize>::new();
/// for e in outcomes.iter().filter_map(|r| r.as_ref().err()) {
///     *failed.entry(e.kind()).or_default() += 1;
/// }
/// assert_eq!(failed[&TaskErrorKind::Panicked], 1);
/// let e: &TaskError = outcomes[1].as_ref().unwrap_err();
/// let json = serde_json::to_value(e).unwrap();
/// assert_eq!(json["kind"], "Panicked");
/// assert_eq!(json["message"], "no two");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked. The panic was caught and the worker lives on.
    #[error("item {index} panicked on worker {worker}{}{}: {message}", at(location), tries(*attempts))]
    Panicked {
        /// The panic message (`panic!("...")`'s text, or a placeholder for other payloads).
        message: ArcStr,
        /// `file:line:column` of the panic, where it was captured.
        location: Option<ArcStr>,
        /// The worker that ran the task.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
        /// How many times the task was started: more than 1 when
        /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it
        /// (counted up to 255). See [`TaskError::attempts`].
        attempts: u8,
    },
    /// The worker process died while running the task (process mode only): a signal such as
    /// SIGSEGV or SIGABRT (an `abort()`, a failed allocation, a stack overflow), or an `exit`.
    #[error("{}", crash_sentence(*worker, *index, *signal, *exit_code, stderr_tail, *attempts))]
    Crashed {
        /// The signal that killed the worker, if a signal did.
        signal: Option<i32>,
        /// The worker's exit code, if it exited (`exit(n)` keeps the low 8 bits of `n`).
        exit_code: Option<u8>,
        /// The last lines the worker wrote to stderr (up to a few KiB).
        stderr_tail: ArcStr,
        /// The worker that died.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
        /// How many times the task was started: more than 1 when
        /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it
        /// (counted up to 255). See [`TaskError::attempts`].
        attempts: u8,
    },
    /// The task ran longer than the pool's `task_timeout`, measured from the moment it started
    /// on a worker. In process mode the worker was killed and replaced; in thread mode the
    /// thread cannot be killed and was abandoned (it leaks until the task returns).
    #[error("item {index} timed out after {} on worker {worker}{}", human(*after), tries(*attempts))]
    TimedOut {
        /// How long the task had run when it was stopped.
        #[serde(rename = "after_ns", serialize_with = "nanos")]
        after: Duration,
        /// The worker that ran it.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
        /// How many times the task was started: more than 1 when
        /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it
        /// (counted up to 255). See [`TaskError::attempts`].
        attempts: u8,
    },
    /// The task allocated past the pool's `memory_limit` and its worker process was
    /// replaced (process mode only).
    #[error("item {index} ran out of memory on worker {worker} (memory_limit {}){}{}", bytes(*limit), tries(*attempts), said(stderr_tail))]
    OutOfMemory {
        /// The pool's memory limit, in bytes.
        #[serde(rename = "limit_bytes")]
        limit: u64,
        /// The last lines the worker wrote to stderr during the task's job.
        stderr_tail: ArcStr,
        /// The worker that died.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
        /// How many times the task was started: more than 1 when
        /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it
        /// (counted up to 255). See [`TaskError::attempts`].
        attempts: u8,
    },
    /// The task never ran: its job killed `attempts` workers in a row before any task
    /// started (an argument whose decoding aborts the worker, say), so the pool blamed this,
    /// its first unstarted task, rather than try for ever (process mode only).
    #[error(
        "item {index} was not run: its job killed {attempts} workers in a row before any task started (last on worker {worker}){}",
        said(stderr_tail)
    )]
    Poisoned {
        /// How many workers died in a row.
        attempts: u32,
        /// The last lines the last of those workers wrote to stderr.
        stderr_tail: ArcStr,
        /// The last worker that died.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
    },
    /// No worker process could be started to run the task (the fork server is gone, or
    /// the system refused a new process).
    #[error("item {index} could not run: {reason}")]
    NoWorker {
        /// Why no worker could be started.
        reason: ArcStr,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
    },
    /// The task made a system call its worker's sandbox forbids
    /// (`PoolBuilder::sandbox`, feature `sandbox`): the worker was stopped at the call, and
    /// replaced.
    #[error("item {index} was stopped by its sandbox on worker {worker}{}: it called {syscall}", tries(*attempts))]
    SandboxViolation {
        /// The forbidden call, by name where known (`openat`, `socket`, `clone3`...).
        syscall: ArcStr,
        /// The worker that was stopped.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
        /// How many times the task was started: more than 1 when
        /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it
        /// (counted up to 255). See [`TaskError::attempts`].
        attempts: u8,
    },
    /// The host of the task's remote worker was lost (it stopped answering heartbeats, or
    /// its agent's connection broke) while the task ran.
    #[error("item {index} was lost with its remote worker {worker} on {host}{}: {reason}", tries(*attempts))]
    Lost {
        /// The host, as its agent named itself.
        host: ArcStr,
        /// Why the pool took it to be lost.
        reason: ArcStr,
        /// The worker that ran the task.
        worker: u32,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
        /// How many times the task was started: more than 1 when
        /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it
        /// (counted up to 255). See [`TaskError::attempts`].
        attempts: u8,
    },
    /// The pool was dropped before the task finished.
    #[error("item {index} was cancelled because its pool was dropped before it finished")]
    Cancelled {
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
    },
    /// The task's argument or result could not be carried between processes: its
    /// `Serialize` or `Deserialize` returned an error (whose own text `message` quotes) or
    /// panicked, or it exceeds [`crate::PoolBuilder::max_payload`].
    #[error("item {index} could not be carried to or from its worker: {message}")]
    Codec {
        /// What went wrong.
        message: ArcStr,
        /// The item's index in its call ([`TaskError::index`]).
        index: u64,
    },
}

/// What kind of [`TaskError`] a task ended with: its variant's name, without its fields.
///
/// A plain `Copy` value, to count failures by kind, use as a map key or print in a summary
/// ([`TaskErrorKind::as_str`]); it serializes as that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum TaskErrorKind {
    /// [`TaskError::Panicked`].
    Panicked,
    /// [`TaskError::Crashed`].
    Crashed,
    /// [`TaskError::TimedOut`].
    TimedOut,
    /// [`TaskError::OutOfMemory`].
    OutOfMemory,
    /// [`TaskError::Poisoned`].
    Poisoned,
    /// [`TaskError::NoWorker`].
    NoWorker,
    /// [`TaskError::SandboxViolation`].
    SandboxViolation,
    /// [`TaskError::Lost`].
    Lost,
    /// [`TaskError::Cancelled`].
    Cancelled,
    /// [`TaskError::Codec`].
    Codec,
}

impl TaskErrorKind {
    /// Every kind, in declaration order (to print a summary with a row for each).
    pub const ALL: [TaskErrorKind; 10] = [
        TaskErrorKind::Panicked,
        TaskErrorKind::Crashed,
        TaskErrorKind::TimedOut,
        TaskErrorKind::OutOfMemory,
        TaskErrorKind::Poisoned,
        TaskErrorKind::NoWorker,
        TaskErrorKind::SandboxViolation,
        TaskErrorKind::Lost,
        TaskErrorKind::Cancelled,
        TaskErrorKind::Codec,
    ];

    /// The variant's name, as it is serialized: `"Panicked"`, `"TimedOut"`...
    pub fn as_str(self) -> &'static str {
        match self {
            TaskErrorKind::Panicked => "Panicked",
            TaskErrorKind::Crashed => "Crashed",
            TaskErrorKind::TimedOut => "TimedOut",
            TaskErrorKind::OutOfMemory => "OutOfMemory",
            TaskErrorKind::Poisoned => "Poisoned",
            TaskErrorKind::NoWorker => "NoWorker",
            TaskErrorKind::SandboxViolation => "SandboxViolation",
            TaskErrorKind::Lost => "Lost",
            TaskErrorKind::Cancelled => "Cancelled",
            TaskErrorKind::Codec => "Codec",
        }
    }
}

impl fmt::Display for TaskErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TaskError {
    /// What kind of error this is, as a plain `Copy` value.
    ///
    /// ```
    /// use proctor::{TaskError, TaskErrorKind};
    /// let after = std::time::Duration::from_secs(2);
    /// let e = TaskError::TimedOut { after, worker: 1, index: 7, attempts: 1 };
    /// assert_eq!(e.kind(), TaskErrorKind::TimedOut);
    /// ```
    pub fn kind(&self) -> TaskErrorKind {
        match self {
            TaskError::Panicked { .. } => TaskErrorKind::Panicked,
            TaskError::Crashed { .. } => TaskErrorKind::Crashed,
            TaskError::TimedOut { .. } => TaskErrorKind::TimedOut,
            TaskError::OutOfMemory { .. } => TaskErrorKind::OutOfMemory,
            TaskError::Poisoned { .. } => TaskErrorKind::Poisoned,
            TaskError::NoWorker { .. } => TaskErrorKind::NoWorker,
            TaskError::SandboxViolation { .. } => TaskErrorKind::SandboxViolation,
            TaskError::Lost { .. } => TaskErrorKind::Lost,
            TaskError::Cancelled { .. } => TaskErrorKind::Cancelled,
            TaskError::Codec { .. } => TaskErrorKind::Codec,
        }
    }

    /// The index of the task's item in its call: its position in the input of
    /// [`crate::Pool::map`], [`crate::Pool::try_map`] or a stream (counted from 0 over the
    /// whole input, whatever the window), and 0 for [`crate::Pool::submit`], a call of one.
    ///
    /// ```
    /// fn boom(n: u32) -> u32 { if n == 30 { panic!("no thirty") } n }
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let e = pool.try_map(boom, vec![10, 20, 30]).unwrap_err();
    /// assert_eq!(e.task_error().unwrap().index(), 2);
    /// assert!(e.to_string().starts_with("item 2 panicked"), "{e}");
    /// ```
    pub fn index(&self) -> u64 {
        match self {
            TaskError::Panicked { index, .. }
            | TaskError::Crashed { index, .. }
            | TaskError::TimedOut { index, .. }
            | TaskError::Cancelled { index }
            | TaskError::Lost { index, .. }
            | TaskError::OutOfMemory { index, .. }
            | TaskError::Poisoned { index, .. }
            | TaskError::NoWorker { index, .. }
            | TaskError::SandboxViolation { index, .. }
            | TaskError::Codec { index, .. } => *index,
        }
    }

    /// How many times the task was started on a worker: 1, or more when
    /// [`crate::PoolBuilder::retries`] ran it again after its worker died under it (then its
    /// `Display` ends "after N attempts"). `None` for the errors that carry no count:
    /// [`Poisoned`](TaskError::Poisoned), [`NoWorker`](TaskError::NoWorker),
    /// [`Cancelled`](TaskError::Cancelled) and [`Codec`](TaskError::Codec).
    ///
    /// ```
    /// fn boom(n: u32) -> u32 { if n == 1 { panic!("no one") } n }
    /// let pool = proctor::Pool::threads(2).build().unwrap();
    /// let out = pool.map(boom, vec![0, 1]);
    /// assert_eq!(out[1].as_ref().unwrap_err().attempts(), Some(1));
    /// ```
    pub fn attempts(&self) -> Option<u32> {
        match self {
            TaskError::Panicked { attempts, .. }
            | TaskError::Crashed { attempts, .. }
            | TaskError::TimedOut { attempts, .. }
            | TaskError::OutOfMemory { attempts, .. }
            | TaskError::SandboxViolation { attempts, .. }
            | TaskError::Lost { attempts, .. } => Some(u32::from(*attempts)),
            TaskError::Poisoned { .. }
            | TaskError::NoWorker { .. }
            | TaskError::Cancelled { .. }
            | TaskError::Codec { .. } => None,
        }
    }

    /// The same error, for the item at `index` of its call.
    pub(crate) fn at_index(mut self, at: u64) -> TaskError {
        match &mut self {
            TaskError::Panicked { index, .. }
            | TaskError::Crashed { index, .. }
            | TaskError::TimedOut { index, .. }
            | TaskError::Cancelled { index }
            | TaskError::Lost { index, .. }
            | TaskError::OutOfMemory { index, .. }
            | TaskError::Poisoned { index, .. }
            | TaskError::NoWorker { index, .. }
            | TaskError::SandboxViolation { index, .. }
            | TaskError::Codec { index, .. } => *index = at,
        }
        self
    }

    /// The index of the task's item in its call.
    #[deprecated(note = "errors carry the item's index in its call now: use `index()`")]
    pub fn task(&self) -> u64 {
        self.index()
    }

    /// True if the task panicked.
    pub fn is_panicked(&self) -> bool {
        matches!(self, TaskError::Panicked { .. })
    }

    /// True if the worker process died under the task.
    pub fn is_crashed(&self) -> bool {
        matches!(self, TaskError::Crashed { .. })
    }

    /// True if the task ran past the pool's timeout.
    pub fn is_timed_out(&self) -> bool {
        matches!(self, TaskError::TimedOut { .. })
    }

    /// True if the task ran past the pool's memory limit.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, TaskError::OutOfMemory { .. })
    }

    /// True if the task was blamed for its job killing workers before any task started.
    pub fn is_poisoned(&self) -> bool {
        matches!(self, TaskError::Poisoned { .. })
    }

    /// True if the task was stopped by its worker's sandbox.
    pub fn is_sandbox_violation(&self) -> bool {
        matches!(self, TaskError::SandboxViolation { .. })
    }

    /// True if the task's remote host was lost.
    pub fn is_lost(&self) -> bool {
        matches!(self, TaskError::Lost { .. })
    }

    /// True if the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, TaskError::Cancelled { .. })
    }
}

/// A duration as whole nanoseconds (saturating), for `after_ns`.
fn nanos<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// `, after 3 attempts` for a task run more than once; nothing otherwise.
fn tries(attempts: u8) -> String {
    if attempts > 1 {
        format!(", after {attempts} attempts")
    } else {
        String::new()
    }
}

fn at(location: &Option<ArcStr>) -> String {
    match location {
        Some(l) => format!(" at {l}"),
        None => String::new(),
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n % (1 << 10) == 0 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

fn said(tail: &str) -> String {
    match last_words(tail) {
        Some(last) => format!("; its last words: {:?}", last.trim()),
        None => String::new(),
    }
}

fn human(d: Duration) -> String {
    if d.as_secs() >= 1 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn crash_sentence(
    worker: u32,
    index: u64,
    signal: Option<i32>,
    exit_code: Option<u8>,
    stderr_tail: &str,
    attempts: u8,
) -> String {
    let how = match (signal, exit_code) {
        (Some(sig), _) => format!("was killed by {}", signal_description(sig)),
        (None, Some(code)) => format!("exited with code {code}"),
        (None, None) => "vanished".to_string(),
    };
    let mut s = format!(
        "worker {worker} {how} while running item {index}{}",
        tries(attempts)
    );
    if stderr_tail.contains("memory allocation of") {
        s.push_str(" (out of memory)");
    }
    if let Some(last) = last_words(stderr_tail) {
        s.push_str(&format!("; its last words: {:?}", last.trim()));
    }
    s
}

/// The most telling line of a dead worker's stderr: an out-of-memory or stack-overflow note
/// if there is one, else the last line that is not part of a backtrace.
fn last_words(tail: &str) -> Option<&str> {
    let telling = [
        "memory allocation of",
        "has overflowed its stack",
        "panicked at",
        "fatal runtime error",
    ];
    let lines = || {
        tail.lines()
            .rev()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
    };
    lines()
        .find(|l| telling.iter().any(|t| l.contains(t)))
        .or_else(|| {
            lines().find(|l| {
                !l.starts_with(char::is_whitespace)
                    && !l.starts_with("stack backtrace:")
                    && !l.starts_with("note: ")
            })
        })
        .map(str::trim)
}

/// `SIGSEGV (segmentation fault)` for a signal number.
pub(crate) fn signal_description(sig: i32) -> String {
    let (name, what) = match sig {
        libc::SIGSEGV => ("SIGSEGV", "segmentation fault"),
        libc::SIGABRT => ("SIGABRT", "abort"),
        libc::SIGKILL => ("SIGKILL", "killed"),
        libc::SIGTERM => ("SIGTERM", "terminated"),
        libc::SIGBUS => ("SIGBUS", "bus error"),
        libc::SIGILL => ("SIGILL", "illegal instruction"),
        libc::SIGFPE => ("SIGFPE", "arithmetic error"),
        libc::SIGXCPU => ("SIGXCPU", "CPU time limit exceeded"),
        libc::SIGPIPE => ("SIGPIPE", "broken pipe"),
        libc::SIGINT => ("SIGINT", "interrupted"),
        _ => return format!("signal {sig}"),
    };
    format!("{name} ({what})")
}

/// An error of the pool itself: it could not be built, or a whole call failed.
///
/// Query it with [`Error::kind`] or the `is_*` helpers.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
}

/// What kind of [`Error`] happened.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Process mode is not supported on this platform (Linux only).
    Unsupported,
    /// A process pool was built but [`crate::init`] never ran (or ran too late, after
    /// threads had started, so forking was not safe).
    NotInitialized {
        /// Why the fork server is not available.
        reason: String,
    },
    /// The builder was given an invalid option (`Pool::processes(0)`, a memory limit in
    /// thread mode...).
    InvalidConfig(String),
    /// Starting a worker failed.
    Spawn(std::io::Error),
    /// A worker initializer ([`crate::PoolBuilder::init_worker`]) panicked, or its worker
    /// crashed, while the pool was being built.
    WorkerInit {
        /// What happened, with the panic's message.
        message: String,
    },
    /// The pool's sandbox (`PoolBuilder::sandbox`, feature `sandbox`) could not be applied as asked
    /// in a worker (a layer this kernel cannot give, and no `allow_unavailable`).
    Sandbox {
        /// What failed, layer by layer.
        message: String,
    },
    /// Remote workers (`PoolBuilder::remote`, feature `remote`) could not be started: a launcher
    /// failed, an agent never connected, or one refused the pool.
    Remote {
        /// What failed, with what the launcher or agent said.
        message: String,
    },
    /// A task failed during [`crate::Pool::try_map`].
    Task(TaskError),
}

impl Error {
    pub(crate) fn new(kind: ErrorKind) -> Error {
        Error { kind }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidConfig(message.into()))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// True when process mode is not available on this platform.
    pub fn is_unsupported(&self) -> bool {
        matches!(self.kind, ErrorKind::Unsupported)
    }

    /// True when a process pool was built without [`crate::init`] having run in time.
    pub fn is_not_initialized(&self) -> bool {
        matches!(self.kind, ErrorKind::NotInitialized { .. })
    }

    /// True when a builder option was invalid.
    pub fn is_invalid_config(&self) -> bool {
        matches!(self.kind, ErrorKind::InvalidConfig(_))
    }

    /// The task error, when a task failed inside `try_map`.
    pub fn task_error(&self) -> Option<&TaskError> {
        match &self.kind {
            ErrorKind::Task(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            ErrorKind::Unsupported => {
                write!(
                    f,
                    "process pools are supported on Linux only; use Pool::threads here"
                )
            }
            ErrorKind::NotInitialized { reason } => write!(
                f,
                "process pool unavailable: {reason} (call proctor::init() as the first line of \
                 main, or proctor::init_before_main!() in tests and under #[tokio::main])"
            ),
            ErrorKind::InvalidConfig(msg) => write!(f, "invalid pool configuration: {msg}"),
            ErrorKind::Spawn(e) => write!(f, "could not start a worker: {e}"),
            ErrorKind::WorkerInit { message } => {
                write!(f, "a worker could not be initialized: {message}")
            }
            ErrorKind::Sandbox { message } => {
                write!(f, "the worker sandbox could not be applied: {message}")
            }
            ErrorKind::Remote { message } => {
                write!(f, "the remote workers could not be started: {message}")
            }
            ErrorKind::Task(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Spawn(e) => Some(e),
            ErrorKind::Task(e) => Some(e),
            _ => None,
        }
    }
}

impl From<TaskError> for Error {
    fn from(e: TaskError) -> Error {
        Error::new(ErrorKind::Task(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_of_a_small_value_is_four_words() {
        assert_eq!(std::mem::size_of::<TaskError>(), 32);
        assert_eq!(std::mem::size_of::<Result<u64, TaskError>>(), 32);
        assert_eq!(std::mem::size_of::<Result<String, TaskError>>(), 32);
    }

    #[test]
    fn kind_names_each_variant_and_serializes_as_its_name() {
        let s = ArcStr::new;
        let all = [
            TaskError::Panicked {
                message: s(),
                location: None,
                worker: 0,
                index: 0,
                attempts: 1,
            },
            TaskError::Crashed {
                signal: None,
                exit_code: None,
                stderr_tail: s(),
                worker: 0,
                index: 0,
                attempts: 1,
            },
            TaskError::TimedOut {
                after: Duration::ZERO,
                worker: 0,
                index: 0,
                attempts: 1,
            },
            TaskError::OutOfMemory {
                limit: 0,
                stderr_tail: s(),
                worker: 0,
                index: 0,
                attempts: 1,
            },
            TaskError::Poisoned {
                attempts: 2,
                stderr_tail: s(),
                worker: 0,
                index: 0,
            },
            TaskError::NoWorker {
                reason: s(),
                index: 0,
            },
            TaskError::SandboxViolation {
                syscall: s(),
                worker: 0,
                index: 0,
                attempts: 1,
            },
            TaskError::Lost {
                host: s(),
                reason: s(),
                worker: 0,
                index: 0,
                attempts: 1,
            },
            TaskError::Cancelled { index: 0 },
            TaskError::Codec {
                message: s(),
                index: 0,
            },
        ];
        let kinds: Vec<TaskErrorKind> = all.iter().map(TaskError::kind).collect();
        assert_eq!(kinds, TaskErrorKind::ALL);
        for e in &all {
            let json = serde_json::to_value(e).unwrap();
            assert_eq!(json["kind"], e.kind().as_str(), "{json}");
            assert_eq!(serde_json::to_value(e.kind()).unwrap(), e.kind().as_str());
            let back: TaskErrorKind = serde_json::from_value(json["kind"].clone()).unwrap();
            assert_eq!(back, e.kind());
        }
    }

    #[test]
    fn serialized_fields_carry_their_units_and_texts() {
        let t = TaskError::TimedOut {
            after: Duration::from_millis(1500),
            worker: 2,
            index: 9,
            attempts: 1,
        };
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            serde_json::json!({"kind": "TimedOut", "after_ns": 1_500_000_000u64, "worker": 2, "index": 9, "attempts": 1})
        );
        let c = TaskError::Crashed {
            signal: Some(libc::SIGSEGV),
            exit_code: None,
            stderr_tail: "boom\n".into(),
            worker: 3,
            index: 17,
            attempts: 1,
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["signal"], libc::SIGSEGV);
        assert_eq!(json["exit_code"], serde_json::Value::Null);
        assert_eq!(json["stderr_tail"], "boom\n");
        let m = TaskError::OutOfMemory {
            limit: 64 << 20,
            stderr_tail: ArcStr::new(),
            worker: 1,
            index: 1,
            attempts: 1,
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap()["limit_bytes"],
            64u64 << 20
        );
    }

    #[test]
    fn crash_sentence_names_worker_signal_and_task() {
        let e = TaskError::Crashed {
            signal: Some(libc::SIGSEGV),
            exit_code: None,
            stderr_tail: ArcStr::new(),
            worker: 3,
            index: 17,
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "worker 3 was killed by SIGSEGV (segmentation fault) while running item 17"
        );
    }

    #[test]
    fn crash_sentence_mentions_oom_and_last_words() {
        let e = TaskError::Crashed {
            signal: Some(libc::SIGABRT),
            exit_code: None,
            stderr_tail: "memory allocation of 1024 bytes failed\n".into(),
            worker: 1,
            index: 2,
            attempts: 1,
        };
        let s = e.to_string();
        assert!(s.contains("(out of memory)"), "{s}");
        assert!(s.contains("memory allocation of 1024 bytes failed"), "{s}");
    }

    #[test]
    fn exit_and_timeout_sentences() {
        let e = TaskError::Crashed {
            signal: None,
            exit_code: Some(3),
            stderr_tail: ArcStr::new(),
            worker: 0,
            index: 4,
            attempts: 1,
        };
        assert_eq!(
            e.to_string(),
            "worker 0 exited with code 3 while running item 4"
        );
        let t = TaskError::TimedOut {
            after: Duration::from_millis(250),
            worker: 2,
            index: 9,
            attempts: 1,
        };
        assert_eq!(t.to_string(), "item 9 timed out after 250ms on worker 2");
    }
}
