//! A sandbox for worker processes: what a task fed hostile input may still do once it has
//! gained code execution in its worker.
//!
//! Applied in each worker after its initializer and before its first task. First the worker
//! must have one thread (seccomp, Landlock and no_new_privs bind only the calling thread: an
//! initializer that left a thread fails `build()`), and its stdin becomes `/dev/null` and its
//! stdout joins the stderr pipe the pool reads. Then the layers, in this order (each needs
//! the system calls the later ones take away):
//!
//! 1. **rlimits**: CPU seconds, open files, processes, file size (`setrlimit`); under a
//!    `memory_limit`, the file size too, so no memfd the worker holds grows past it.
//! 2. **network namespace** (when asked for, see [`Sandbox::network_namespace`]): a fresh,
//!    empty network namespace (`unshare(CLONE_NEWNET)`, or inside a new user namespace where
//!    that is what the kernel lets an unprivileged process do).
//! 3. **file system view** (when files are granted): a mount namespace whose root is an
//!    empty read-only tmpfs with each granted path bound at its own place, so a path outside
//!    the grants does not exist (Landlock alone let `stat` see every path).
//! 4. **capabilities**: every one dropped, the bounding and ambient sets too (the user
//!    namespaces of layers 2 and 3 gave the worker all of theirs).
//! 5. **no_new_privs**: `PR_SET_NO_NEW_PRIVS`, so no exec can gain privileges.
//! 6. **Landlock**: file access (none, read-only paths, writable directories) and, without
//!    network access, TCP bind and connect; from ABI 6, scoped signals and abstract Unix
//!    sockets ("landlock scopes", reported but not required: seccomp closes both routes
//!    under the presets).
//! 7. **seccomp**: a filter of the system calls the worker runtime and a computing task need,
//!    with the dangerous ones checked argument by argument (see `argument_rules`); any other
//!    traps. The trap's handler writes the call's number to the worker's own stderr pipe and
//!    exits, and the task ends with [`crate::TaskError::SandboxViolation`] naming it.
//!
//! And by default a fresh worker for every task ([`Sandbox::reuse_workers`]). What this
//! promises against whom, and what it does not, is in `docs/security.md`; each promise is
//! held by an attack in `tests/it/attacks.rs`.
//!
//! This file holds the API ([`Sandbox`], [`SandboxReport`]) and the worker's entry point that
//! applies the layers in order; the layers live beside it: `process.rs` (rlimits, network
//! namespace, capabilities), `fs.rs` (the file-system view), `landlock.rs`, `syscalls.rs`
//! (which calls, with which arguments, each sandbox allows) and `filter.rs` (the seccomp
//! filter compiled from them, its trap handler, and how a violation is read back).
//!
//! Each layer is reported (see [`SandboxReport`]) as applied or unavailable with the reason.
//! A worker whose sandbox lacks a layer the kernel cannot give refuses to run tasks, unless
//! the caller allowed it with [`Sandbox::allow_unavailable`]: never silently unsandboxed.
//!
//! Imported by the pool (the API and the report), the worker (`apply_entry`, the descriptor
//! setters) and the worker handle (`violation`, the failure lines); it imports nothing of
//! the pool or the worker.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

mod filter;
mod fs;
mod landlock;
mod process;
mod syscalls;
#[cfg(test)]
mod tests;

use filter::seccomp;
pub(crate) use filter::violation;
use fs::{file_view, resolved};
use landlock::{OPTIONAL_LAYER, landlock};
use process::{drop_capabilities, network_namespace, rlimits};

/// A call number no kernel assigns, which every filter answers by killing the process.
///
/// A violation is decided by the kernel, not by the task: the trap's handler writes which
/// call was stopped, then makes this call, and the kernel kills the worker with `SIGSYS`.
/// The parent reports `SandboxViolation` only for a worker the kernel killed so (no task can
/// send itself `SIGSYS`: the filter allows signals to itself but that one). A task that
/// merely writes the line and exits, as a faked violation, ends as the crash it is.
const KILL_NR: i64 = 1000;
/// What a worker's stderr says before it exits with [`ExitCode::SandboxFailed`](crate::exit::ExitCode::SandboxFailed).
pub(crate) const FAILED_LINE: &str = "proctor: the sandbox could not be applied: ";
/// How a pool that starts no more workers after a sandbox failure says why.
pub(crate) const FAILED_REASON: &str = "the worker sandbox could not be applied: ";
/// What a worker's stderr says before the kernel kills it for a violation (see [`KILL_NR`]).
pub(crate) const VIOLATION_LINE: &str = "proctor: sandbox violation: system call ";

/// What a sandboxed worker may do. Start from a preset and loosen it:
///
/// ```
/// use proctor::Sandbox;
///
/// // Computing only: no files, no network, no new processes or threads.
/// let strict = Sandbox::compute();
/// // Reading a model, writing results into one directory, nothing else.
/// let custom = Sandbox::read_only(["/usr/share/dict"])
///     .write_dir("/tmp")
///     .cpu_seconds(60)
///     .open_files(64);
/// assert_ne!(strict, custom);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sandbox {
    read: Vec<PathBuf>,
    write: Vec<PathBuf>,
    network: bool,
    network_namespace: bool,
    processes: bool,
    cpu_seconds: Option<u64>,
    open_files: Option<u64>,
    max_processes: Option<u64>,
    file_size: Option<u64>,
    allow_unavailable: bool,
    reuse_workers: bool,
    /// The pool's `memory_limit`, which the sandbox also applies to the files the worker can
    /// grow (set by `build()`).
    #[serde(default)]
    pub(crate) memory_limit: Option<u64>,
}

impl Sandbox {
    /// For tasks that only compute: no file can be opened, no socket made, no process or
    /// thread started, no other process signalled or traced. The files the worker already
    /// holds (its pipes and shared memory) keep working.
    pub fn compute() -> Sandbox {
        Sandbox {
            read: Vec::new(),
            write: Vec::new(),
            network: false,
            network_namespace: false,
            processes: false,
            cpu_seconds: None,
            open_files: None,
            max_processes: None,
            file_size: None,
            allow_unavailable: false,
            reuse_workers: false,
            memory_limit: None,
        }
    }

    /// [`Sandbox::compute`], and reading (files and directories beneath) `paths`.
    pub fn read_only<P: Into<PathBuf>>(paths: impl IntoIterator<Item = P>) -> Sandbox {
        let mut s = Sandbox::compute();
        s.read = paths.into_iter().map(Into::into).collect();
        s
    }

    /// Also reading beneath `path`.
    pub fn read(mut self, path: impl Into<PathBuf>) -> Sandbox {
        self.read.push(path.into());
        self
    }

    /// Also reading and writing beneath the directory `path`.
    pub fn write_dir(mut self, path: impl Into<PathBuf>) -> Sandbox {
        self.write.push(path.into());
        self
    }

    /// Allows sockets (no network namespace, no Landlock TCP rules).
    pub fn network(mut self, allow: bool) -> Sandbox {
        self.network = allow;
        self
    }

    /// Also puts each worker in a fresh, empty network namespace (no interface but its own
    /// loopback), a second wall behind seccomp's ban on sockets. Off by default: creating a
    /// namespace is the dearest layer by far (about 0.45 ms per worker start, against 0.25 ms
    /// for the whole start of an unsandboxed worker, on a 2-core VM). Needs CAP_SYS_ADMIN or
    /// unprivileged user namespaces.
    pub fn network_namespace(mut self, isolate: bool) -> Sandbox {
        self.network_namespace = isolate;
        self
    }

    /// Allows starting processes and threads (`clone`, `fork`, `execve`).
    pub fn processes(mut self, allow: bool) -> Sandbox {
        self.processes = allow;
        self
    }

    /// At most `seconds` of CPU time for the worker process (`RLIMIT_CPU`: over its whole
    /// life, so combine it with [`crate::PoolBuilder::max_tasks_per_worker`]).
    pub fn cpu_seconds(mut self, seconds: u64) -> Sandbox {
        self.cpu_seconds = Some(seconds);
        self
    }

    /// At most `n` open descriptors (`RLIMIT_NOFILE`; the worker holds about ten).
    pub fn open_files(mut self, n: u64) -> Sandbox {
        self.open_files = Some(n);
        self
    }

    /// At most `n` processes for the user (`RLIMIT_NPROC`; the kernel ignores it for root).
    pub fn max_processes(mut self, n: u64) -> Sandbox {
        self.max_processes = Some(n);
        self
    }

    /// No file written larger than `bytes` (`RLIMIT_FSIZE`).
    pub fn file_size(mut self, bytes: u64) -> Sandbox {
        self.file_size = Some(bytes);
        self
    }

    /// Runs with the layers the kernel can give when it cannot give all (each missing one is
    /// in [`crate::Pool::sandbox_report`] with the reason). By default a missing layer makes
    /// [`crate::PoolBuilder::build`] fail.
    pub fn allow_unavailable(mut self, allow: bool) -> Sandbox {
        self.allow_unavailable = allow;
        self
    }

    /// Lets a worker run more than one task (default: a fresh worker for every task).
    ///
    /// A task that runs hostile code owns its worker process: it can change the worker's
    /// memory, code and descriptors, and so decide what any later task on that worker
    /// returns. So by default a sandboxed pool gives every task a fresh worker (as if
    /// [`crate::PoolBuilder::max_tasks_per_worker`] were 1, with one task per job), and no
    /// task can change another's outcome. That costs a worker start per task (about
    /// 0.3 ms on a 2-core VM; see the lab's `sandbox` section). Reusing workers gives that
    /// cost back and gives the guarantee up: only for input you do not fear.
    pub fn reuse_workers(mut self, reuse: bool) -> Sandbox {
        self.reuse_workers = reuse;
        self
    }

    /// True if every task gets a fresh worker (see [`Sandbox::reuse_workers`]).
    pub fn is_fresh_worker_per_task(&self) -> bool {
        !self.reuse_workers
    }

    fn wants_netns(&self) -> bool {
        self.network_namespace
    }
}

/// How each layer of a pool's sandbox came out in its workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxReport {
    /// One per layer, in the order applied.
    pub layers: Vec<Layer>,
}

impl SandboxReport {
    /// The layer called `name` (`"rlimits"`, `"network namespace"`, `"file system view"`,
    /// `"capabilities"`, `"no_new_privs"`, `"landlock"`, `"landlock scopes"` (reported, not
    /// required), `"seccomp"`).
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.name == name)
    }
}

impl std::fmt::Display for SandboxReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, l) in self.layers.iter().enumerate() {
            if k > 0 {
                f.write_str("; ")?;
            }
            match &l.status {
                LayerStatus::Applied => write!(f, "{}: applied", l.name)?,
                LayerStatus::NotAsked => write!(f, "{}: not asked for", l.name)?,
                LayerStatus::Unavailable(why) => write!(f, "{}: unavailable ({why})", l.name)?,
            }
        }
        Ok(())
    }
}

/// One layer of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Its name, e.g. `"seccomp"`.
    pub name: String,
    /// Whether it holds.
    pub status: LayerStatus,
}

/// Whether a layer of the sandbox holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LayerStatus {
    /// In force.
    Applied,
    /// The sandbox does not call for it (e.g. a network namespace when network is allowed).
    NotAsked,
    /// Asked for, but the kernel could not give it; the reason.
    Unavailable(String),
}

/// The worker's sandbox report, once applied.
static REPORT: OnceLock<SandboxReport> = OnceLock::new();

/// Where the seccomp trap's handler writes (the worker's stderr pipe).
static DIAG_FD: AtomicI32 = AtomicI32::new(2);

/// Whether this worker ran an initializer: the only code that can have started a thread in
/// it (it is a fork of the single-threaded fork server, or a fresh exec), so the only case
/// in which its threads need counting.
static INIT_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that the worker's initializer ran (see [`INIT_RAN`]).
pub(crate) fn initializer_ran() {
    INIT_RAN.store(true, Ordering::Relaxed);
}

/// The worker's descriptors of the memory it shares with the parent: the doorbell, the
/// result arena and the inbox, in that order (-1 until the worker sets them).
static SHARED_FDS: [AtomicI32; 3] = [AtomicI32::new(-1), AtomicI32::new(-1), AtomicI32::new(-1)];

/// Tells the sandbox which descriptors hold the memory shared with the parent (the
/// doorbell, the arena, the inbox), so that its filter can keep a task from growing them.
pub(crate) fn set_shared_fds(fds: [i32; 3]) {
    for (cell, fd) in SHARED_FDS.iter().zip(fds) {
        cell.store(fd, Ordering::Relaxed);
    }
}

/// Tells the trap's handler where the worker's own messages go.
pub(crate) fn set_diag_fd(fd: i32) {
    DIAG_FD.store(fd, Ordering::Relaxed);
}

/// The task that reports a worker's sandbox (run by `build()`).
pub(crate) fn report_task(_: ()) -> Option<SandboxReport> {
    REPORT.get().cloned()
}

/// The bytes of the frame that carries `sandbox` to a worker.
pub(crate) fn encode(sandbox: &Sandbox) -> Vec<u8> {
    postcard::to_allocvec(sandbox).expect("a sandbox encodes")
}

/// In a worker (the `ContextFn` of the sandbox frame): applies the sandbox, or exits with
/// [`ExitCode::SandboxFailed`](crate::exit::ExitCode::SandboxFailed) and the reason when it cannot apply it as asked.
pub(crate) fn apply_entry(bytes: &[u8]) {
    let fail = |why: &str| -> ! {
        let line = format!("{FAILED_LINE}{why}\n");
        let fd = DIAG_FD.load(Ordering::Relaxed);
        // SAFETY: writing a buffer we own to a descriptor number; a closed one fails.
        let _ = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        crate::exit::ExitCode::SandboxFailed.leave()
    };
    let sandbox: Sandbox = match postcard::from_bytes(bytes) {
        Ok(s) => s,
        Err(e) => fail(&format!("its description did not decode: {e}")),
    };
    // (Counting threads reads /proc: a sixth of the sandbox's cost, spent only where an
    // initializer could have started one.)
    let threads = if INIT_RAN.load(Ordering::Relaxed) {
        crate::sys::thread_count()
    } else {
        Some(1)
    };
    match threads {
        Some(1) => {}
        Some(n) => fail(&format!(
            "the worker initializer left {} other thread(s) running; seccomp, Landlock and \
             no_new_privs bind only the thread that applies them, so a sandboxed worker runs \
             one thread: join the initializer's threads before it returns",
            n - 1
        )),
        None => fail("the worker's threads could not be counted (/proc/self/task)"),
    }
    // A backtrace (RUST_BACKTRACE, printed on an allocation failure under a memory limit)
    // reads the working directory and the binary to symbolize itself, which the sandbox
    // forbids: the task would end as a violation instead of running out of memory.
    // SAFETY: this process has one thread (just checked), so nothing reads the environment
    // while it changes.
    unsafe { std::env::set_var("RUST_BACKTRACE", "0") };
    if let Err(e) = confine_stdio() {
        fail(&format!(
            "its standard streams could not be redirected: {e}"
        ));
    }
    let report = apply(&sandbox);
    if let Err(why) = check(&sandbox, &report) {
        fail(&why);
    }
    let _ = REPORT.set(report);
}

/// Takes the parent's standard streams away from the task: stdin reads `/dev/null`, and
/// stdout (unless the pool captures it) joins stderr in the worker's stderr pipe, which the
/// pool reads and forwards marked as the worker's, stripped of terminal control sequences.
/// A task so can neither read what was meant for the parent, nor write into the parent's
/// output (or its terminal) as if the parent wrote it.
fn confine_stdio() -> std::io::Result<()> {
    let null = std::fs::File::open("/dev/null")?;
    nix::unistd::dup2_stdin(&null)?;
    if DIAG_FD.load(Ordering::Relaxed) == 2 {
        // Not capturing: fd 2 is the stderr pipe (a capturing worker's fd 1 is its memfd).
        nix::unistd::dup2_stdout(std::io::stderr())?;
    }
    Ok(())
}

/// Fails if a layer asked for is unavailable and the sandbox does not allow that.
fn check(sandbox: &Sandbox, report: &SandboxReport) -> Result<(), String> {
    if sandbox.allow_unavailable {
        return Ok(());
    }
    let missing: Vec<String> = report
        .layers
        .iter()
        .filter(|l| l.name != OPTIONAL_LAYER)
        .filter_map(|l| match &l.status {
            LayerStatus::Unavailable(why) => Some(format!("{} ({why})", l.name)),
            _ => None,
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unavailable here: {}; Sandbox::allow_unavailable(true) runs without them",
            missing.join(", ")
        ))
    }
}

fn layer(name: &str, status: LayerStatus) -> Layer {
    Layer {
        name: name.to_string(),
        status,
    }
}

/// Applies every layer in order and says how each came out.
fn apply(s: &Sandbox) -> SandboxReport {
    let s = &resolved(s);
    let mut layers = vec![layer("rlimits", rlimits(s))];
    layers.push(layer(
        "network namespace",
        if s.wants_netns() {
            network_namespace()
        } else {
            LayerStatus::NotAsked
        },
    ));
    layers.push(layer("file system view", file_view(s)));
    layers.push(layer("capabilities", drop_capabilities(s)));
    // SAFETY: prctl with PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    layers.push(layer(
        "no_new_privs",
        if nnp == 0 {
            LayerStatus::Applied
        } else {
            LayerStatus::Unavailable(std::io::Error::last_os_error().to_string())
        },
    ));
    let (files, scopes) = landlock(s);
    layers.push(layer("landlock", files));
    layers.push(layer(OPTIONAL_LAYER, scopes));
    layers.push(layer("seccomp", seccomp(s)));
    SandboxReport { layers }
}
