//! Run the same function over many inputs in worker **threads** or worker **processes**,
//! switching with one word. Process mode gives real crash isolation: a task that panics,
//! aborts, segfaults, runs out of memory or hangs yields a typed [`TaskError`] for that task
//! alone; the pool replaces the worker and every other task completes.
//!
//! ```standalone_crate
//! fn square(n: u64) -> u64 { n * n }
//!
//! fn main() -> Result<(), proctor::Error> {
//!     proctor::init(); // first line of main; in a worker process it never returns
//!     let pool = proctor::Pool::processes(5).build()?;        // or Pool::threads(5)
//!     let squares: Vec<u64> = pool.try_map(square, vec![1, 2, 3, 4, 5])?;
//!     assert_eq!(squares, [1, 4, 9, 16, 25]);
//!     let outcomes: Vec<Result<u64, proctor::TaskError>> = pool.map(square, vec![6, 7]);
//!     let task = pool.submit(square, 8);                      // proctor::Task<u64>
//!     let r: Result<u64, proctor::TaskError> = task.join();
//!     assert_eq!(r, Ok(64));
//!     pool.shutdown();                                         // drains; Drop kills leftover workers
//!     Ok(())
//! }
//! ```
//!
//! # Modes
//!
//! [`Pool::threads`] runs tasks on worker threads of this process: cheap to start, values move
//! without copying, and a panic is caught per task. [`Pool::processes`] runs them in worker
//! processes: arguments and results cross as bytes (any serde type), and anything a task does
//! to its process — abort, segfault, exit, leak, hang — stays in that process.
//!
//! The task function is a plain `fn` or a closure that captures nothing: it must be the same
//! code in every worker, so it cannot carry data from the caller. A capturing closure, or a
//! `fn` pointer (`let f: fn(u64) -> u64 = ..`), is refused when the program is built, with
//! one error whose last note names your call (`encountered while instantiating Pool::map`,
//! then your file and line). `cargo check` does not see it: the check needs the concrete
//! type, which only a build has. Pass the function by name instead.
//!
//! ```compile_fail
//! let offset = 3u64;
//! let pool = proctor::Pool::threads(2).build().unwrap();
//! let _ = pool.map(move |n: u64| n + offset, vec![1, 2]);
//! ```
//!
//! ```compile_fail
//! fn double(n: u64) -> u64 { n * 2 }
//! let f: fn(u64) -> u64 = double;
//! let pool = proctor::Pool::threads(2).build().unwrap();
//! let _ = pool.map(f, vec![1, 2]); // pass `double` itself
//! ```
//!
//! Arguments and results must be serde types, in both modes, so switching the mode never
//! breaks the build:
//!
//! ```compile_fail
//! struct NotSerde(u64);
//! let pool = proctor::Pool::threads(2).build().unwrap();
//! let _ = pool.map(|n: NotSerde| n.0, vec![NotSerde(1)]);
//! ```
//!
//! # Errors
//!
//! [`Pool::map`] returns one `Result<R, TaskError>` per item, in input order. [`TaskError`]
//! says what happened to a task in one sentence ("worker 3 was killed by SIGSEGV (segmentation
//! fault) while running item 17"): it [`Panicked`](TaskError::Panicked), its worker
//! [`Crashed`](TaskError::Crashed) under it, it ran [`OutOfMemory`](TaskError::OutOfMemory)
//! under the pool's `memory_limit`, it [`TimedOut`](TaskError::TimedOut), its job was
//! [`Poisoned`](TaskError::Poisoned) (it killed workers before any task started), no worker
//! could be started for it ([`NoWorker`](TaskError::NoWorker)), its argument or result could
//! not cross between processes ([`Codec`](TaskError::Codec)), or the pool was dropped first
//! ([`Cancelled`](TaskError::Cancelled)). [`Error`] is for the pool itself: it could not be
//! built, or [`Pool::try_map`] met a failed task.
//! [`TaskError::kind`] names the variant as a plain [`TaskErrorKind`] (to count failures by
//! kind), and `TaskError` is `Serialize`, for a machine-readable summary.
//!
//! Every task ends with exactly one outcome, and an `Ok` is always the result of that task's
//! own argument, whatever happens to the workers: a worker killed at any instant, a fork
//! server gone, a replacement that cannot start, a task scribbling on the pool's shared
//! memory. Nothing is run again unless [`PoolBuilder::retries`] asks for it.
//!
//! # Beyond `map`
//!
//! * [`Pool::stream`] and [`Pool::stream_unordered`] (and [`Pool::stream_with`],
//!   [`Pool::stream_state`]): outcomes as their tasks finish, over inputs of any length, in
//!   bounded memory; [`Stream::next_timeout`] waits at most a given time, and a
//!   [`Canceller`] ends a stream from another thread; dropping the stream cancels what has
//!   not started.
//! * [`Pool::map_with`] (a read-only context sent to each worker once per call) and
//!   [`PoolBuilder::init_worker`] with [`Pool::map_state`] (a value made once per worker):
//!   see "Crash isolation" below for why process workers need them.
//! * [`Shared`] and [`SharedBytes`] (Linux): large read-only data put once in a sealed memory
//!   region, which each local worker process maps read-only (and a `Shared` decodes once,
//!   however many calls use it) and thread mode shares as one `Arc`; use one as a
//!   `map_with` context.
//! * [`PoolBuilder::capture_output`] with [`Pool::map_captured`] and [`Task::join_captured`]:
//!   each task's own stdout and stderr with its outcome (process mode).
//! * Large arguments (64 KiB or more) cross through shared memory; for big byte buffers use
//!   `serde_bytes::ByteBuf` or `#[serde(with = "serde_bytes")]`, which serde encodes as one
//!   string of bytes rather than one element per byte.
//!
//! # Crash isolation
//!
//! In process mode each worker is a process forked from a *fork server* that [`init`] starts
//! while the program is still single-threaded (forking a multi-threaded program is unsafe: a
//! lock held by another thread stays locked in the child). Each worker leads its own process
//! group, so a task's own child processes are killed with it on crash, timeout and shutdown.
//! Workers die with the program, even mid-task and even if it is killed with SIGKILL.
//!
//! Because workers are forked from the fork server, which [`init`] starts, a worker is a copy
//! of the program *as it was when `init` ran*: a `static` or environment change made later
//! in `main` is not seen by process workers (thread workers do see it, so code that relies on
//! it breaks only when the mode is switched). Pass what tasks need instead:
//!
//! * per item: as the task's argument;
//! * the same for every item of a call: as a context, [`Pool::map_with`]`(&ctx, f, items)`,
//!   sent to each worker once per call;
//! * made once per worker (a connection, a loaded model): with a worker initializer,
//!   [`PoolBuilder::init_worker`]`(open)`, whose value [`Pool::map_state`] lends to each task.
//!
//! ```
//! fn open() -> Vec<u64> { (0..10).collect() }       // runs once in each worker
//! fn pick(table: &Vec<u64>, i: usize) -> u64 { table[i] }
//! fn add(offset: &u64, n: u64) -> u64 { n + offset }
//!
//! let pool = proctor::Pool::threads(2).init_worker(open).build().unwrap();
//! assert_eq!(pool.map_state(pick, vec![3, 4]), vec![Ok(3), Ok(4)]);
//! let offset = 100u64;                                 // known only at run time
//! assert_eq!(pool.map_with(&offset, add, vec![1, 2]), vec![Ok(101), Ok(102)]);
//! ```
//!
//! In thread mode a panic is caught per task, but a hard crash (abort, segfault) takes the
//! whole program down, and a timed-out thread cannot be killed: the task reports
//! [`TaskError::TimedOut`], the pool starts a replacement thread, and the stuck thread leaks
//! until its task returns. That difference is the point of the lab in this repository.
//!
//! # Which mode, for my task?
//!
//! [`compare_modes`]`(f, sample_inputs)` runs your task in both modes on this machine and
//! answers in the lab's words: what processes cost per task here, throughput, memory per
//! worker, and what a crash does in each ([`compare`] has the method).
//!
//! # Async programs (`#[tokio::main]`)
//!
//! `#[tokio::main]` starts the runtime's threads before the body of `main` runs, too late for
//! [`init`] there. Two ways in. Write [`init_before_main!`] once at the top level of the
//! binary crate, and keep `#[tokio::main]` as it is (the `tokio_main` example does this, and
//! a test runs it). Or write a plain `main` that calls [`init`] first and builds the runtime
//! by hand, which is what `#[tokio::main]` expands to:
//!
//! ```standalone_crate
//! fn square(n: u64) -> u64 { n * n }
//!
//! fn main() {
//!     proctor::init(); // before the runtime's threads exist
//!     let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
//!     rt.block_on(async {
//!         let pool = proctor::Pool::processes(2).build().unwrap();
//!         assert_eq!(pool.submit(square, 7).await, Ok(49)); // a `Task` is a `Future`
//!     });
//! }
//! ```
//!
//! # Testing
//!
//! The test harness starts threads before any test runs, too late for [`init`]. Put this one
//! line in the test crate (or in `tests/it/main.rs`), and process pools work in tests:
//!
//! ```ignore
//! proctor::init_before_main!();
//! ```
//!
//! # Cargo features
//!
//! The package is `proctor-pool` and the crate `proctor`: `cargo add proctor-pool`, then
//! `use proctor::Pool`. The default build is the local pool, everything above: threads and
//! processes, crash isolation, timeouts, memory limits, retries, streams, worker state,
//! captured output, `stats()` and `compare_modes`. Two features add what most programs do
//! not need (`cargo add proctor-pool --features sandbox,remote`):
//!
//! | feature | what it gives | crates it adds |
//! |---|---|---|
//! | (none) | the local pool | 28 in all, this one included |
//! | `sandbox` | `PoolBuilder::sandbox`, `Pool::sandbox_report`, `Sandbox` and its report types: seccomp, Landlock, rlimits, dropped capabilities, a file-system view and a network namespace for process workers running hostile input | 5 (`landlock`, `seccompiler`, `enumflags2` and its derive, a second `syn`) |
//! | `remote` | `PoolBuilder::remote` and the `remote` module: worker processes on other hosts through ssh, Slurm or a command, over TLS 1.3 (rustls) with mutual authentication | 28 (`rustls`, `ring`, `rcgen`, `hmac`, `sha2`, `getrandom`, `zeroize` and theirs) |
//!
//! Without a feature its types and methods do not exist, and the rest of the pool is the
//! same code. Both features are Linux-only, as process mode is. The repository's README
//! has what each costs in clean build time.
//!
//! # Platform support
//!
//! Thread mode works everywhere Rust's std does. Process mode is Linux-only (it relies on
//! `PR_SET_PDEATHSIG`, memfd, `close_range` and child subreapers); elsewhere building a process
//! pool returns an [`Error`] whose [`Error::is_unsupported`] is true.
#![deny(missing_docs, missing_debug_implementations)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod codec;
pub mod compare;
mod error;
#[cfg(target_os = "linux")]
mod exit;
mod pool;
mod wire;

#[cfg(target_os = "linux")]
mod arena;
#[cfg(target_os = "linux")]
mod doorbell;
#[cfg(target_os = "linux")]
mod exec;
#[cfg(target_os = "linux")]
mod image;
mod panic;
#[cfg(all(target_os = "linux", feature = "remote"))]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod remote;
#[cfg(all(target_os = "linux", not(feature = "remote")))]
#[path = "remote_off.rs"]
mod remote;
#[cfg(all(target_os = "linux", feature = "sandbox"))]
mod sandbox;
#[cfg(all(target_os = "linux", not(feature = "sandbox")))]
#[path = "sandbox_off.rs"]
mod sandbox;
#[cfg(target_os = "linux")]
mod server;
#[cfg(target_os = "linux")]
mod shared;
mod state;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod worker;

/// Entry points for the fuzz targets in `fuzz/` (not part of the API; may change at any time).
#[doc(hidden)]
pub mod __fuzz {
    /// Runs the worker's frame decoder over `buf`: the number of bytes the frame at its front
    /// takes, `Ok(None)` if `buf` holds only part of one, or why it is not a frame. It must
    /// never panic, whatever `buf` holds.
    pub fn decode_frame(buf: &[u8]) -> Result<Option<usize>, String> {
        crate::wire::decode_frame(buf)
            .map(|frame| frame.map(|(n, _)| n))
            .map_err(|e| e.to_string())
    }

    /// Runs the parent's outcome-record decoder over `buf` as if a worker had committed
    /// `count` records, decoding `Ok` payloads as `(u64, String)`. Returns how many outcomes
    /// were `Ok`. It must never panic, whatever `buf` holds.
    #[cfg(target_os = "linux")]
    pub fn decode_records(buf: &[u8], count: usize) -> usize {
        crate::pool::decode_records_for_fuzz(buf, count)
    }

    /// Runs the pool's decoders of what other hosts send over `buf`: as an agent's control
    /// messages, and as a remote worker's stream of finished jobs, each copied into a mirror
    /// arena that is then read as the driver reads it. Returns how many messages and jobs
    /// decoded. It must never panic, whatever `buf` holds.
    #[cfg(all(target_os = "linux", feature = "remote"))]
    pub fn decode_remote(buf: &[u8]) -> (usize, usize) {
        crate::remote::hub::decode_for_fuzz(buf)
    }
}

/// The one-word shared string in [`TaskError`]'s texts (re-exported from `arcstr`).
pub use arcstr::ArcStr;
pub use compare::{CompareModes, ModeComparison, compare_modes};
pub use error::{Error, ErrorKind, TaskError, TaskErrorKind};
pub use pool::{
    Canceller, Failures, Mode, Output, Pool, PoolBuilder, PoolStats, StartMethod, Stream,
    StreamTimeout, Task, Unordered,
};
#[cfg(all(target_os = "linux", feature = "remote"))]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub use remote::Remote;
#[cfg(all(target_os = "linux", not(feature = "remote")))]
use remote::Remote;
#[cfg(all(target_os = "linux", feature = "sandbox"))]
#[cfg_attr(docsrs, doc(cfg(feature = "sandbox")))]
pub use sandbox::{Layer, LayerStatus, Sandbox, SandboxReport};
#[cfg(all(target_os = "linux", not(feature = "sandbox")))]
use sandbox::{Sandbox, SandboxReport};
#[cfg(target_os = "linux")]
pub use shared::{Shared, SharedBytes};

/// Prepares process mode: starts the fork server that will fork every worker process.
///
/// Call it as the first line of `main`, before any thread starts: forking is only safe while
/// the program has one thread. Calling it again does nothing. If threads already exist, it
/// starts nothing and process pools report why when built; thread pools are unaffected.
/// Workers are forked from the server and never return from this call's caller.
///
/// Each process worker is a copy of the program as it was when `init` ran: what `main` sets
/// up after it (statics, environment) is not seen there. Send it with [`Pool::map_with`] or
/// make it per worker with [`PoolBuilder::init_worker`].
///
/// In tests, and under `#[tokio::main]` (whose threads start before `main`'s body), use
/// [`init_before_main!`] instead.
pub fn init() {
    #[cfg(target_os = "linux")]
    {
        if worker::in_worker() {
            return;
        }
        // A worker of the `exec` start method becomes that worker here.
        exec::become_worker_if_asked();
        // A program a remote launcher started becomes that host's agent here.
        #[cfg(feature = "remote")]
        remote::agent::become_agent_if_asked();
        server::start_once();
    }
    // Elsewhere there is nothing to prepare: building a process pool says it is unsupported.
}

/// Runs [`init`] before `main`, from the program's constructor list (`.init_array`), while
/// the program is certainly single-threaded. Meant for programs whose `main` cannot call
/// [`init`] before threads exist: test crates, whose harness starts threads before any test
/// runs, and binaries under `#[tokio::main]` (or any attribute that starts a runtime before
/// `main`'s body; see the `tokio_main` example). Write it once, at the top level of the
/// crate:
///
/// ```ignore
/// proctor::init_before_main!();
/// ```
#[macro_export]
macro_rules! init_before_main {
    () => {
        const _: () = {
            extern "C" fn __proctor_init_before_main() {
                $crate::init();
            }
            // SAFETY: .init_array entries are called by the loader with no arguments before
            // main; `init` needs nothing main sets up (it reads /proc, forks and creates a
            // socketpair), and a function pointer of the right ABI is what the section holds.
            #[used]
            #[unsafe(link_section = ".init_array")]
            static __PROCTOR_INIT_BEFORE_MAIN: extern "C" fn() = __proctor_init_before_main;
        };
    };
}
