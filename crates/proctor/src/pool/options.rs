//! A pool's options: [`Config`], what [`PoolBuilder`](super::PoolBuilder) fills in and every
//! backend reads, and the option-by-mode table, written once: the builder's documentation
//! and [`Config::validate`] both read it, so what the docs promise in thread mode is what
//! `build()` enforces.
//!
//! Imported by the builder and the backends; imports nothing of the pool but [`Mode`] and
//! [`StartMethod`].

use std::time::Duration;

use super::{Mode, StartMethod};
use crate::error::Error;

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) mode: Mode,
    pub(crate) start_method: StartMethod,
    pub(crate) workers: usize,
    pub(crate) task_timeout: Option<Duration>,
    pub(crate) max_tasks_per_worker: Option<usize>,
    pub(crate) memory_limit: Option<u64>,
    pub(crate) chunk_size: Option<usize>,
    /// Lines of each job's stderr forwarded to ours (`usize::MAX`: all; 0: none).
    pub(crate) forward_stderr: usize,
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
    /// What the pool has done so far (see [`crate::Pool::stats`]).
    pub(crate) stats: std::sync::Arc<super::stats::Counters>,
}

/// Lines of a job's stderr that reach the terminal by default: enough for a panic message or
/// a short report, while a task that floods (a backtrace per failure, say) cannot bury the
/// caller's own output. What is held back still reaches a crash's `stderr_tail`.
pub(crate) const DEFAULT_STDERR_LINES: usize = 20;

impl Config {
    /// The defaults of a pool of `workers` in `mode`.
    pub(super) fn new(mode: Mode, workers: usize) -> Config {
        Config {
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
            forward_stderr: DEFAULT_STDERR_LINES,
            retries: 0,
            init: None,
            capture_output: false,
            max_payload: DEFAULT_MAX_PAYLOAD,
            stats: Default::default(),
        }
    }

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

    /// Why these options cannot make a pool, if they cannot: a value out of range, an
    /// option the mode cannot honour (the table's thread-mode errors), or remote workers
    /// with an option they do not support.
    pub(super) fn validate(&self) -> Result<(), Error> {
        if self.workers == 0 {
            return Err(Error::invalid(format!(
                "a pool needs at least one worker, got Pool::{}(0)",
                self.mode
            )));
        }
        if u32::try_from(self.workers).is_err() {
            return Err(Error::invalid(format!(
                "a pool has at most {} workers, got {}",
                u32::MAX,
                self.workers
            )));
        }
        if self.max_payload < MIN_MAX_PAYLOAD {
            return Err(Error::invalid(format!(
                "max_payload must be at least {} KiB, got {} bytes",
                MIN_MAX_PAYLOAD >> 10,
                self.max_payload
            )));
        }
        if self.chunk_size == Some(0) {
            return Err(Error::invalid("chunk_size must be at least 1"));
        }
        if self.max_tasks_per_worker == Some(0) {
            return Err(Error::invalid("max_tasks_per_worker must be at least 1"));
        }
        if self.task_timeout == Some(Duration::ZERO) {
            return Err(Error::invalid("task_timeout must be longer than zero"));
        }
        if self.mode == Mode::Threads {
            if let Some(r) = THREAD_REFUSALS.iter().find(|r| (r.set)(self)) {
                return Err(Error::invalid(format!(
                    "{} applies to worker processes only; {}",
                    r.option, r.why
                )));
            }
        }
        #[cfg(target_os = "linux")]
        self.validate_remote()?;
        Ok(())
    }

    /// Remote workers support fewer options than local ones, for now.
    #[cfg(target_os = "linux")]
    fn validate_remote(&self) -> Result<(), Error> {
        let Some(r) = &self.remote else {
            return Ok(());
        };
        let refuse = |why: &str| Err(Error::invalid(format!("remote workers: {why}")));
        if self.mode == Mode::Threads {
            return refuse("a thread runs in this process, not on another host");
        }
        if self.capture_output {
            return refuse("capture_output is not supported over TCP yet");
        }
        if self.sandbox.is_some() {
            return refuse("sandbox is not supported over TCP yet");
        }
        if self.start_method != StartMethod::Fork {
            return refuse(
                "the agent already runs a fresh copy of the binary; leave start_method alone",
            );
        }
        match r.check(self.workers) {
            Ok(()) => Ok(()),
            Err(why) => refuse(&why),
        }
    }

    /// Whether a sandbox was asked for.
    fn has_sandbox(&self) -> bool {
        #[cfg(target_os = "linux")]
        return self.sandbox.is_some();
        #[cfg(not(target_os = "linux"))]
        return false;
    }
}

/// The default [`PoolBuilder::max_payload`]: 4 GiB (loky's users send 2.2 GB arguments),
/// or half the address space where that is smaller.
pub(super) const DEFAULT_MAX_PAYLOAD: usize = if usize::BITS > 32 {
    (4u64 << 30) as usize
} else {
    usize::MAX / 2
};

/// The smallest [`PoolBuilder::max_payload`]: what the pool's own frames need.
pub(super) const MIN_MAX_PAYLOAD: usize = 64 << 10;

/// The option-by-mode table, the one place it is written. Each row names a builder method,
/// what it does in process mode, and in thread mode either what it does there or why it
/// cannot be honoured (then `build()` refuses it when `set` says it was asked for).
/// It hands the rows to `$then`: [`mode_table_doc`] or [`thread_refusals`].
macro_rules! with_mode_options {
    ($then:ident) => {
        $then! {
            both {
                task_timeout:
                    "the worker is killed and replaced, on time",
                    "`TimedOut` on time; the stuck thread is replaced and leaks until its task returns";
                max_tasks_per_worker:
                    "a fresh process after `n` tasks",
                    "a fresh thread after `n` tasks";
                chunk_size:
                    "items per job sent to a worker",
                    "items per job (one per job under a timeout); in a plain `map`, the fewest items a thread takes at once";
                max_payload:
                    "the largest encoded argument or job's results; `Codec` past it",
                    "accepted; values move without being encoded";
                forward_stderr:
                    "workers' stderr to ours (at most 20 lines per job by default, or all), or only into `stderr_tail`",
                    "accepted; tasks write to our stderr directly";
                init_worker:
                    "run in each worker process, before its first task",
                    "run in each worker thread, before its first task";
            }
            processes_only {
                retries:
                    "reruns a task whose worker died",
                    "a thread cannot die alone",
                    |c| c.retries > 0;
                capture_output:
                    "each task's stdout and stderr kept with its outcome",
                    "threads share one stdout and stderr, so one task's writes cannot be told from another's",
                    |c| c.capture_output;
                start_method:
                    "fork from the fork server, or re-execute the binary",
                    "threads are not started from a binary",
                    |c| c.start_method != StartMethod::Fork;
                sandbox:
                    "seccomp, Landlock, capabilities dropped, rlimits, a file-system view (with files) and optionally a network namespace, per worker; a fresh worker per task unless [`Sandbox::reuse_workers`](crate::Sandbox::reuse_workers)",
                    "a thread has its process's rights and cannot be confined alone",
                    Config::has_sandbox;
                memory_limit:
                    "`RLIMIT_DATA` per worker; `OutOfMemory`",
                    "threads share one address space",
                    |c| c.memory_limit.is_some();
            }
        }
    };
}
pub(super) use with_mode_options;

/// The table as Markdown, for [`PoolBuilder`](super::PoolBuilder)'s documentation.
macro_rules! mode_table_doc {
    (
        both { $($both:ident: $both_p:literal, $both_t:literal;)* }
        processes_only { $($only:ident: $only_p:literal, $why:literal, $set:expr;)* }
    ) => {
        concat!(
            "| option | processes | threads |\n|---|---|---|\n",
            $(
                "| [`", stringify!($both), "`](PoolBuilder::", stringify!($both), ") | ",
                $both_p, " | ", $both_t, " |\n",
            )*
            $(
                "| [`", stringify!($only), "`](PoolBuilder::", stringify!($only), ") | ",
                $only_p, " | error: ", $why, " |\n",
            )*
        )
    };
}
pub(super) use mode_table_doc;

/// The table's thread-mode errors, for [`Config::validate`].
macro_rules! thread_refusals {
    (
        both { $($both:ident: $both_p:literal, $both_t:literal;)* }
        processes_only { $($only:ident: $only_p:literal, $why:literal, $set:expr;)* }
    ) => {
        &[$(Refusal { option: stringify!($only), why: $why, set: $set },)*]
    };
}

/// An option thread mode refuses: its name, why, and whether a config asked for it.
struct Refusal {
    option: &'static str,
    why: &'static str,
    set: fn(&Config) -> bool,
}

const THREAD_REFUSALS: &[Refusal] = with_mode_options!(thread_refusals);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_trip_no_refusal_and_each_refusal_is_documented() {
        let defaults = Config::new(Mode::Threads, 2);
        assert!(defaults.validate().is_ok());
        let doc = with_mode_options!(mode_table_doc);
        for r in THREAD_REFUSALS {
            assert!(!(r.set)(&defaults), "{} is refused by default", r.option);
            let row = format!("| [`{0}`](PoolBuilder::{0}) |", r.option);
            let line = doc.lines().find(|l| l.starts_with(&row));
            let line = line.unwrap_or_else(|| panic!("{} has no row in the table", r.option));
            assert!(line.ends_with(&format!(" | error: {} |", r.why)), "{line}");
        }
    }

    #[test]
    fn thread_mode_refuses_what_the_table_refuses_with_its_reason() {
        let mut c = Config::new(Mode::Threads, 2);
        c.memory_limit = Some(1 << 30);
        let err = c.validate().unwrap_err().to_string();
        assert!(
            err.contains(
                "memory_limit applies to worker processes only; threads share one address space"
            ),
            "{err}"
        );
        c.mode = Mode::Processes;
        assert!(c.validate().is_ok());
    }
}
