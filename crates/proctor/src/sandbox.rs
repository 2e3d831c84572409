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
//! Each layer is reported (see [`SandboxReport`]) as applied or unavailable with the reason.
//! A worker whose sandbox lacks a layer the kernel cannot give refuses to run tasks, unless
//! the caller allowed it with [`Sandbox::allow_unavailable`]: never silently unsandboxed.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

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

/// Every capability dropped: the bounding and ambient sets (where the worker may change
/// them), then the effective, permitted and inheritable ones. A worker of a pool run as root,
/// or one inside the user namespace of the network layer (where it holds every capability
/// of that namespace: `CAP_NET_RAW` opened raw sockets there), keeps none.
fn drop_capabilities(s: &Sandbox) -> LayerStatus {
    // The bounding set only matters to a program the worker execs, and no exec is possible
    // without `processes(true)`; even then no_new_privs keeps an exec from gaining more than
    // the (empty) permitted set. Dropped all the same where exec is allowed; skipped
    // elsewhere, since a prctl per capability was a fifth of a sandboxed worker's start.
    for cap in (0..64).take_while(|_| s.processes) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        {
            // Past the last capability this kernel knows. (EPERM: no CAP_SETPCAP, so the
            // set is out of this process's reach, and no_new_privs keeps exec from using it.)
            break;
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two `Data`, for capabilities 0-31 and 32-63.
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [Data::default(); 2];
    // SAFETY: capset(2) reads one header and, for version 3, two data structs, laid out
    // as the kernel's `__user_cap_header_struct` and `__user_cap_data_struct`.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc == 0 {
        LayerStatus::Applied
    } else {
        LayerStatus::Unavailable(format!("capset: {}", std::io::Error::last_os_error()))
    }
}

fn rlimits(s: &Sandbox) -> LayerStatus {
    use nix::sys::resource::{Resource, setrlimit};
    // Under a memory limit, no file the worker can grow (its result arena, its captured
    // output) grows past it either: shared memory that `RLIMIT_DATA` does not count.
    let file_size = match (s.file_size, s.memory_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if s.memory_limit.is_some() {
        // A write past the limit then fails (EFBIG), rather than killing the worker with
        // SIGXFSZ before its task's outcome is written.
        // SAFETY: SIG_IGN installs no handler code; the worker has one thread.
        if let Err(e) = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGXFSZ,
                nix::sys::signal::SigHandler::SigIgn,
            )
        } {
            return LayerStatus::Unavailable(format!("SIGXFSZ: {e}"));
        }
    }
    // Under a memory limit, the address space too may grow by no more than the limit from
    // what the worker maps now: every page a task can touch is mapped (its heap, and shared
    // mappings, which RLIMIT_DATA does not count), and the filter keeps it from filling
    // shared files without a mapping (see `argument_rules`).
    let address_space = match s.memory_limit {
        Some(limit) => match crate::sys::address_space_bytes() {
            Some(now) => Some(now.saturating_add(limit)),
            None => {
                return LayerStatus::Unavailable("VmSize unreadable in /proc/self/status".into());
            }
        },
        None => None,
    };
    let limits = [
        (Resource::RLIMIT_CPU, s.cpu_seconds),
        (Resource::RLIMIT_NOFILE, s.open_files),
        (Resource::RLIMIT_NPROC, s.max_processes),
        (Resource::RLIMIT_FSIZE, file_size),
        (Resource::RLIMIT_AS, address_space),
    ];
    if limits.iter().all(|(_, v)| v.is_none()) {
        return LayerStatus::NotAsked;
    }
    for (resource, value) in limits {
        if let Some(v) = value {
            if let Err(e) = setrlimit(resource, v, v) {
                return LayerStatus::Unavailable(format!("{resource:?}: {e}"));
            }
        }
    }
    LayerStatus::Applied
}

/// A fresh network namespace: directly where the process may (CAP_SYS_ADMIN), else inside a
/// new user namespace (where the kernel allows unprivileged ones), mapping our own ids.
fn network_namespace() -> LayerStatus {
    use nix::sched::{CloneFlags, unshare};
    let direct = match unshare(CloneFlags::CLONE_NEWNET) {
        Ok(()) => return LayerStatus::Applied,
        Err(e) => e,
    };
    match in_user_namespace(CloneFlags::CLONE_NEWNET) {
        Ok(()) => LayerStatus::Applied,
        Err(why) => LayerStatus::Unavailable(format!(
            "unshare(CLONE_NEWNET): {direct}; in a new user namespace: {why}"
        )),
    }
}

/// Unshares `what` together with a new user namespace, mapping our own ids, for a process
/// without the privilege to unshare `what` alone. (The capabilities this gives in the new
/// namespace are dropped by the capabilities layer.)
fn in_user_namespace(what: nix::sched::CloneFlags) -> Result<(), String> {
    use nix::sched::{CloneFlags, unshare};
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | what).map_err(|e| e.to_string())?;
    let write =
        |file: &str, text: String| std::fs::write(file, text).map_err(|e| format!("{file}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}

/// The sandbox's paths made absolute and free of symbolic links, so that they name the same
/// files inside the file-system view as outside it. A path that cannot be resolved is kept
/// as given (Landlock then says why it cannot be opened).
fn resolved(s: &Sandbox) -> Sandbox {
    let resolve = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect()
    };
    Sandbox {
        read: resolve(&s.read),
        write: resolve(&s.write),
        ..s.clone()
    }
}

/// A sandbox with files gets a mount namespace whose root holds only the granted paths, as
/// bubblewrap and nsjail build theirs: a read-only tmpfs as `/`, and each granted path bound
/// at its own place (read-only unless it is a `write_dir`). Landlock decides what may be
/// read and written but not what may be looked at: `stat` of any path worked through it,
/// so a task learnt which files exist and their sizes and owners. In this view, a path
/// outside the grants does not exist.
fn file_view(s: &Sandbox) -> LayerStatus {
    if s.read.is_empty() && s.write.is_empty() {
        return LayerStatus::NotAsked;
    }
    match build_file_view(s) {
        Ok(()) => LayerStatus::Applied,
        Err(why) => LayerStatus::Unavailable(why),
    }
}

fn build_file_view(s: &Sandbox) -> Result<(), String> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    use nix::sched::{CloneFlags, unshare};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let none = None::<&str>;
    let cwd = std::env::current_dir().ok();
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        in_user_namespace(CloneFlags::CLONE_NEWNS)?;
    }
    let at = |what: &str, e: nix::Error| format!("{what}: {e}");
    // Nothing mounted from here on reaches the parent's namespace.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| at("making / private", e))?;
    // The grants, opened in the new namespace (a bind mount's source must be one of its
    // mounts) before anything is hidden (a granted path may lie under the directory the new
    // root is built in). Parents first, so a grant inside another is
    // bound over it, not under it.
    let mut grants = Vec::new();
    for (path, writable) in s
        .read
        .iter()
        .map(|p| (p, false))
        .chain(s.write.iter().map(|p| (p, true)))
    {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let is_dir = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .is_dir();
        let flags = nix::sys::statvfs::statvfs(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .flags();
        grants.push((path.clone(), writable, file, is_dir, flags));
    }
    grants.sort_by_key(|g| g.0.components().count());
    // The new root: a tmpfs over this namespace's /tmp (the host's is untouched).
    let base = std::path::Path::new("/tmp");
    mount(
        Some("tmpfs"),
        base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=1m"),
    )
    .map_err(|e| at("a tmpfs for the new root", e))?;
    for (path, writable, file, is_dir, flags) in &grants {
        let target = base.join(path.strip_prefix("/").unwrap_or(path));
        let exists = target.symlink_metadata().is_ok();
        if !exists {
            let made = if *is_dir {
                std::fs::create_dir_all(&target)
            } else {
                target
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::File::create(&target).map(drop))
            };
            made.map_err(|e| format!("{}: {e}", target.display()))?;
        }
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        mount(
            Some(source.as_str()),
            &target,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(|e| at(&format!("binding {}", path.display()), e))?;
        // A remount keeps the flags the kernel locked on the original mount (a user
        // namespace may not clear them), and adds read-only where only reading is granted.
        use nix::sys::statvfs::FsFlags;
        let mut keep =
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        for (have, want) in [
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if flags.contains(have) {
                keep |= want;
            }
        }
        if !*writable || flags.contains(FsFlags::ST_RDONLY) {
            keep |= MsFlags::MS_RDONLY;
        }
        mount(none, &target, none, keep, none)
            .map_err(|e| at(&format!("remounting {}", path.display()), e))?;
    }
    std::env::set_current_dir(base).map_err(|e| format!("/tmp: {e}"))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| at("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| at("detaching the old root", e))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        none,
    )
    .map_err(|e| at("making the new root read-only", e))?;
    // The same working directory where it is inside a grant, else the root.
    let inside = cwd.filter(|c| grants.iter().any(|g| c.starts_with(&g.0)));
    let _ = std::env::set_current_dir(inside.as_deref().unwrap_or(std::path::Path::new("/")))
        .or_else(|_| std::env::set_current_dir("/"));
    Ok(())
}

/// The Landlock ABI version this kernel implements (0 without Landlock).
fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and this flag, the call only returns the
    // ABI version (landlock_create_ruleset(2)); it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// The "landlock" layer (files and TCP) and the "landlock scopes" one: from ABI 6 (Linux
/// 6.12) the domain is also scoped, so that the task can neither signal a process outside
/// it nor connect to an abstract Unix socket made outside it. Under the presets seccomp
/// already closes both routes (signals go only to the worker itself; no socket is made), so
/// the scopes are a second wall, reported but not required.
fn landlock(s: &Sandbox) -> (LayerStatus, LayerStatus) {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope,
    };
    let abi = ABI::V5;
    let version = landlock_abi();
    let scoped = version >= 6;
    let run = || -> Result<RulesetStatus, String> {
        let mut ruleset = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .map_err(|e| e.to_string())?;
        if scoped {
            ruleset = ruleset
                .scope(Scope::from_all(ABI::V6))
                .map_err(|e| e.to_string())?;
        }
        if !s.network {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(abi))
                .map_err(|e| e.to_string())?;
        }
        let mut created = ruleset.create().map_err(|e| e.to_string())?;
        let rules = s
            .read
            .iter()
            .map(|p| (p, AccessFs::from_read(abi)))
            .chain(s.write.iter().map(|p| (p, AccessFs::from_all(abi))));
        for (path, access) in rules {
            let fd = PathFd::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| e.to_string())?;
        }
        Ok(created.restrict_self().map_err(|e| e.to_string())?.ruleset)
    };
    let files = match run() {
        Ok(RulesetStatus::FullyEnforced) => LayerStatus::Applied,
        Ok(RulesetStatus::PartiallyEnforced) => LayerStatus::Unavailable(
            "partly enforced: this kernel's Landlock lacks some of the access rights".into(),
        ),
        Ok(RulesetStatus::NotEnforced) => {
            LayerStatus::Unavailable("this kernel does not enforce Landlock".into())
        }
        Err(why) => LayerStatus::Unavailable(why),
    };
    let scopes = match (&files, scoped) {
        (LayerStatus::Applied, true) => LayerStatus::Applied,
        (_, true) => LayerStatus::Unavailable("the Landlock ruleset did not apply".into()),
        (_, false) => LayerStatus::Unavailable(format!(
            "this kernel's Landlock ABI is {version}; scoping signals and abstract Unix \
             sockets needs 6 (Linux 6.12)"
        )),
    };
    (files, scopes)
}

/// A layer that is reported but never required (see [`landlock`]).
const OPTIONAL_LAYER: &str = "landlock scopes";

/// The system calls every sandboxed worker may make: its own loop (pipe reads and writes,
/// futex waits, mapping the shared arena and inbox, the capture files) and a computing task
/// (memory, time, randomness, `abort` on itself).
fn base_syscalls() -> Vec<i64> {
    let mut calls = vec![
        libc::SYS_read,
        libc::SYS_write,
        libc::SYS_readv,
        libc::SYS_writev,
        libc::SYS_pread64,
        libc::SYS_pwrite64,
        libc::SYS_lseek,
        libc::SYS_close,
        libc::SYS_fstat,
        libc::SYS_ftruncate,
        libc::SYS_fcntl,
        libc::SYS_futex,
        libc::SYS_mmap,
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_mprotect,
        libc::SYS_madvise,
        libc::SYS_brk,
        libc::SYS_clock_gettime,
        libc::SYS_clock_getres,
        libc::SYS_clock_nanosleep,
        libc::SYS_nanosleep,
        libc::SYS_gettimeofday,
        libc::SYS_sched_yield,
        libc::SYS_sched_getaffinity,
        libc::SYS_getrandom,
        libc::SYS_getpid,
        libc::SYS_getppid,
        libc::SYS_gettid,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_rt_sigaction,
        libc::SYS_sigaltstack,
        libc::SYS_restart_syscall,
        libc::SYS_exit,
        libc::SYS_exit_group,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.push(libc::SYS_arch_prctl);
    calls
}

/// What reading and writing files needs on top (Landlock decides which paths).
fn file_syscalls() -> Vec<i64> {
    let mut calls = vec![
        libc::SYS_openat,
        libc::SYS_getdents64,
        libc::SYS_newfstatat,
        libc::SYS_statx,
        libc::SYS_readlinkat,
        libc::SYS_faccessat,
        libc::SYS_faccessat2,
        libc::SYS_fstatfs,
        libc::SYS_mkdirat,
        libc::SYS_unlinkat,
        libc::SYS_renameat2,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_utimensat,
        libc::SYS_fsync,
        libc::SYS_fdatasync,
        libc::SYS_fallocate,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([
        libc::SYS_open,
        libc::SYS_stat,
        libc::SYS_lstat,
        libc::SYS_access,
        libc::SYS_readlink,
        libc::SYS_mkdir,
        libc::SYS_unlink,
        libc::SYS_rename,
        libc::SYS_renameat,
    ]);
    calls
}

fn network_syscalls() -> Vec<i64> {
    vec![
        libc::SYS_socket,
        libc::SYS_socketpair,
        libc::SYS_connect,
        libc::SYS_bind,
        libc::SYS_listen,
        libc::SYS_accept,
        libc::SYS_accept4,
        libc::SYS_sendto,
        libc::SYS_recvfrom,
        libc::SYS_sendmsg,
        libc::SYS_recvmsg,
        libc::SYS_shutdown,
        libc::SYS_getsockopt,
        libc::SYS_setsockopt,
        libc::SYS_getsockname,
        libc::SYS_getpeername,
        libc::SYS_ppoll,
        libc::SYS_epoll_create1,
        libc::SYS_epoll_ctl,
        libc::SYS_epoll_pwait,
        libc::SYS_eventfd2,
        libc::SYS_ioctl,
    ]
}

fn process_syscalls() -> Vec<i64> {
    let mut calls = vec![
        libc::SYS_clone,
        libc::SYS_clone3,
        libc::SYS_execve,
        libc::SYS_execveat,
        libc::SYS_wait4,
        libc::SYS_waitid,
        libc::SYS_kill,
        libc::SYS_tgkill,
        libc::SYS_tkill,
        libc::SYS_set_robust_list,
        libc::SYS_rseq,
        libc::SYS_prlimit64,
        libc::SYS_pipe2,
        libc::SYS_dup3,
        libc::SYS_prctl,
    ];
    #[cfg(target_arch = "x86_64")]
    calls.extend([libc::SYS_fork, libc::SYS_vfork, libc::SYS_dup2]);
    calls
}

/// One test of a rule: the 32-bit word at `offset` in `struct seccomp_data` (an argument's
/// low or high half), masked, equal to `value` (or, with `equal` false, different from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cond {
    offset: u32,
    mask: u32,
    value: u32,
    equal: bool,
}

impl Cond {
    /// Argument `arg`'s low 32 bits, masked, equal `value`. The kernel reads the `int` and
    /// `unsigned int` arguments these rules test (commands, flags, signal numbers) from the
    /// low half only, so the high half cannot smuggle anything past them.
    fn is(arg: u32, mask: u32, value: u32) -> Cond {
        Cond {
            offset: ARGS + 8 * arg,
            mask,
            value,
            equal: true,
        }
    }

    /// Argument `arg`'s low 32 bits, masked, differ from `value`.
    fn is_not(arg: u32, mask: u32, value: u32) -> Cond {
        Cond {
            equal: false,
            ..Cond::is(arg, mask, value)
        }
    }

    /// Argument `arg`'s high 32 bits equal `value` (for a whole 64-bit test, with `is`).
    fn high_is(arg: u32, value: u32) -> Cond {
        Cond {
            offset: ARGS + 8 * arg + 4,
            mask: u32::MAX,
            value,
            equal: true,
        }
    }

    /// Whether the call's argument words satisfy the test.
    #[cfg(test)]
    fn holds(&self, data: &[u8; 64]) -> bool {
        let at = self.offset as usize;
        let word = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        (word & self.mask == self.value) == self.equal
    }
}

/// A rule of the filter: a call allowed outright, or allowed when every test of one of its
/// alternatives holds and otherwise answered with `deny` (a trap, or an error number).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Always(i64),
    Where {
        call: i64,
        any: Vec<Vec<Cond>>,
        deny: u32,
    },
}

impl Rule {
    fn call(&self) -> i64 {
        match self {
            Rule::Always(c) | Rule::Where { call: c, .. } => *c,
        }
    }

    /// Allowed when one of `any`'s alternatives holds; a trap otherwise.
    fn trap_unless(call: i64, any: Vec<Vec<Cond>>) -> Rule {
        Rule::Where {
            call,
            any,
            deny: libc::SECCOMP_RET_TRAP,
        }
    }

    /// Allowed when one of `any`'s values is the low half of argument `arg`; a trap otherwise.
    fn trap_unless_arg_in(call: i64, arg: u32, mask: u32, values: &[u32]) -> Rule {
        let any = values
            .iter()
            .map(|&v| vec![Cond::is(arg, mask, v)])
            .collect();
        Rule::trap_unless(call, any)
    }
}

// The commands and flags the argument rules name that libc does not export for every target.
const F_GETPIPE_SZ: u32 = 1032;
const F_GET_SEALS: u32 = 1034;
const FUTEX_CMD_MASK: u32 = 0x7f;
const FUTEX_WAIT_BITSET: u32 = 9;
const FUTEX_WAKE_BITSET: u32 = 10;

/// The argument rules every sandbox keeps, whatever it allows: each closes a route from a
/// task to something outside its worker that the bare call list left open.
///
/// - `fcntl`: the descriptor-flag and size queries the runtime and std use. Not `F_SETOWN`,
///   `F_SETOWN_EX` or `F_SETSIG` (with `O_ASYNC` they make the kernel signal any process
///   the worker could, each time the parent writes to the worker's pipe), nor `F_SETFL` with
///   `O_ASYNC`, leases, notifications or locks.
/// - `futex`: wait and wake only. Not the requeue and priority-inheritance operations, which
///   act on the words of other processes' futexes in memory the worker shares with the
///   parent, and which have held most of the futex code's kernel bugs.
/// - `rt_sigaction`: anything but installing a handler for `SIGSYS`, so the report of a
///   trapped call cannot be hidden or faked by the task.
/// - `kill`, `tgkill`, `tkill`: only the worker itself (`abort`), and never `SIGSYS`, when
///   processes are not allowed.
/// - [`KILL_NR`]: kills the process (how the trap's handler ends a worker).
fn argument_rules(s: &Sandbox, pid: u32) -> Vec<Rule> {
    let mut rules = vec![
        Rule::trap_unless(
            libc::SYS_fcntl,
            [
                libc::F_GETFD as u32,
                libc::F_SETFD as u32,
                libc::F_GETFL as u32,
                libc::F_DUPFD_CLOEXEC as u32,
                F_GETPIPE_SZ,
                F_GET_SEALS,
            ]
            .iter()
            .map(|&cmd| vec![Cond::is(1, u32::MAX, cmd)])
            .chain([vec![
                Cond::is(1, u32::MAX, libc::F_SETFL as u32),
                Cond::is(2, libc::O_ASYNC as u32, 0),
            ]])
            .collect(),
        ),
        Rule::trap_unless_arg_in(
            libc::SYS_futex,
            1,
            FUTEX_CMD_MASK,
            &[
                libc::FUTEX_WAIT as u32,
                libc::FUTEX_WAKE as u32,
                FUTEX_WAIT_BITSET,
                FUTEX_WAKE_BITSET,
            ],
        ),
        Rule::trap_unless(
            libc::SYS_rt_sigaction,
            vec![
                vec![Cond::is_not(0, u32::MAX, libc::SIGSYS as u32)],
                // No new action (a query of SIGSYS's): the pointer is null, both halves.
                vec![Cond::is(1, u32::MAX, 0), Cond::high_is(1, 0)],
            ],
        ),
    ];
    rules.push(Rule::Where {
        call: KILL_NR,
        any: Vec::new(),
        deny: libc::SECCOMP_RET_KILL_PROCESS,
    });
    let sigsys = libc::SIGSYS as u32;
    if !s.processes {
        // Itself only (`abort`), with any signal but SIGSYS, which is the kernel's word
        // that a call was forbidden.
        for (call, sig) in [
            (libc::SYS_kill, 1),
            (libc::SYS_tkill, 1),
            (libc::SYS_tgkill, 2),
        ] {
            rules.push(Rule::trap_unless(
                call,
                vec![vec![
                    Cond::is(0, u32::MAX, pid),
                    Cond::is_not(sig, u32::MAX, sigsys),
                ]],
            ));
        }
        // No executable memory: a task can neither write code into a new mapping nor
        // patch the program's own (`mprotect` of a text page to writable and executable).
        // Only without processes: a program the task may exec maps its libraries executable.
        // No shared anonymous memory either: `RLIMIT_DATA` does not count it, so it was a
        // way past `memory_limit`; the runtime maps its memfds, never anonymous shared pages.
        let exec = libc::PROT_EXEC as u32;
        let shared_anon = (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u32;
        rules.push(Rule::trap_unless(
            libc::SYS_mmap,
            vec![vec![
                Cond::is(2, exec, 0),
                Cond::is_not(3, shared_anon, shared_anon),
            ]],
        ));
        rules.push(Rule::trap_unless(
            libc::SYS_mprotect,
            vec![vec![Cond::is(2, exec, 0)]],
        ));
    }
    if s.memory_limit.is_some() {
        // Under a memory limit, the shared files grow only as the worker maps them, which
        // RLIMIT_AS counts: no `write` to them (it fills a memfd without a mapping), and no
        // `ftruncate` of the inbox or doorbell (the parent grows the inbox). The arena grows
        // by `ftruncate` and is written through its mapping.
        let [doorbell, arena, inbox] = SHARED_FDS.each_ref().map(|f| f.load(Ordering::Relaxed));
        let not_shared = |arg: u32, fds: &[i32]| -> Vec<Cond> {
            fds.iter()
                .filter(|&&fd| fd >= 0)
                .map(|&fd| Cond::is_not(arg, u32::MAX, fd as u32))
                .collect()
        };
        for call in [libc::SYS_write, libc::SYS_pwrite64, libc::SYS_writev] {
            rules.push(Rule::trap_unless(
                call,
                vec![not_shared(0, &[doorbell, arena, inbox])],
            ));
        }
        rules.push(Rule::trap_unless(
            libc::SYS_ftruncate,
            vec![not_shared(0, &[doorbell, inbox])],
        ));
    }
    if s.network {
        // The socket and terminal queries std and event loops use; not `TIOCSTI` (typing
        // into a terminal), `FIOSETOWN`/`SIOCSPGRP`/`FIOASYNC` (the signal route above),
        // nor any device's own commands.
        rules.push(Rule::trap_unless_arg_in(
            libc::SYS_ioctl,
            1,
            u32::MAX,
            &[
                libc::FIONBIO as u32,
                libc::FIONREAD as u32,
                libc::FIOCLEX as u32,
                libc::FIONCLEX as u32,
                libc::TCGETS as u32,
                libc::TIOCGWINSZ as u32,
            ],
        ));
    }
    rules
}

/// The rules of `s`'s filter; `pid` is the worker's own (it may signal itself: `abort`).
fn rules(s: &Sandbox, pid: u32) -> Vec<Rule> {
    let files = !s.read.is_empty() || !s.write.is_empty();
    let mut calls = base_syscalls();
    if files {
        calls.extend(file_syscalls());
    }
    if s.network {
        calls.extend(network_syscalls());
    }
    if s.processes {
        calls.extend(process_syscalls());
    }
    let mut rules = argument_rules(s, pid);
    calls.sort_unstable();
    calls.dedup();
    calls.retain(|c| !rules.iter().any(|r| r.call() == *c));
    rules.extend(calls.into_iter().map(Rule::Always));
    if !files {
        // A stat call names a path even with `AT_EMPTY_PATH` (the flag only allows an empty
        // one), and seccomp cannot read the path: answered "not permitted", so nothing is
        // learnt of any file. The runtime's own `fstat`s use the `fstat` call itself.
        for call in [libc::SYS_newfstatat, libc::SYS_statx] {
            rules.push(Rule::Where {
                call,
                any: Vec::new(),
                deny: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
            });
        }
    }
    rules
}

/// Where `struct seccomp_data` keeps the call number, the architecture and the arguments.
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARGS: u32 = 16;

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

/// Compiles `rules` to classic BPF: the architecture check, a binary search on the call
/// number whose leaves jump to ALLOW, to TRAP, or to the block of a call with argument tests,
/// which tries its alternatives in turn.
///
/// Written here rather than by seccompiler's compiler: that one tests the calls one after
/// another, about five instructions each, and the kernel's cost of installing a filter grows
/// with the path a call takes through it (it runs the filter for every call number to cache
/// the always-allowed ones): 155 µs for seccompiler's 315 instructions here, more than half
/// of an unsandboxed worker's whole start. A search takes about eight instructions to any
/// call. Installing still goes through seccompiler.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn compile(rules: &[Rule]) -> Vec<seccompiler::sock_filter> {
    const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code: u16, k: u32, jt: u8, jf: u8| seccompiler::sock_filter { code, jt, jf, k };
    let short = |n: usize| u8::try_from(n).expect("a short jump");
    // Where each call goes: `None` to ALLOW, `Some(k)` to the k-th block of argument tests.
    let mut calls: Vec<(u32, Option<usize>)> = Vec::new();
    let mut blocks: Vec<(&[Vec<Cond>], u32)> = Vec::new();
    for r in rules {
        match r {
            Rule::Always(c) => calls.push((*c as u32, None)),
            Rule::Where { call, any, deny } => {
                calls.push((*call as u32, Some(blocks.len())));
                blocks.push((any.as_slice(), *deny));
            }
        }
    }
    calls.sort_unstable_by_key(|c| c.0);
    let mut p = vec![
        op(LD_ABS, ARCH, 0, 0),
        op(JEQ, AUDIT_ARCH, 1, 0),
        op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(LD_ABS, NR, 0, 0),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        // x32 calls carry this bit: none is allowed.
        p.push(op(JGE, 0x4000_0000, 0, 1));
        p.push(op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0));
    }
    let trap_at = p.len() + search_len(calls.len());
    let allow_at = trap_at + 1;
    let block_len = |any: &[Vec<Cond>]| any.iter().map(|alt| 3 * alt.len() + 1).sum::<usize>() + 1;
    let mut block_at = Vec::with_capacity(blocks.len());
    let mut at = allow_at + 1;
    for (any, _) in &blocks {
        block_at.push(at);
        at += block_len(any);
    }
    let target = |c: Option<usize>| c.map_or(allow_at, |k| block_at[k]);
    search(&calls, &mut p, &target, trap_at);
    debug_assert_eq!(p.len(), trap_at);
    p.push(op(RET, libc::SECCOMP_RET_TRAP, 0, 0));
    p.push(op(RET, libc::SECCOMP_RET_ALLOW, 0, 0));
    for (any, deny) in blocks {
        for alt in any {
            // Each test that fails jumps past this alternative's ALLOW, to the next one.
            let n = alt.len();
            for (i, c) in alt.iter().enumerate() {
                let skip = short(3 * (n - i) - 2);
                p.push(op(LD_ABS, c.offset, 0, 0));
                p.push(op(AND, c.mask, 0, 0));
                if c.equal {
                    p.push(op(JEQ, c.value, 0, skip));
                } else {
                    p.push(op(JEQ, c.value, skip, 0));
                }
            }
            p.push(op(RET, libc::SECCOMP_RET_ALLOW, 0, 0));
        }
        p.push(op(RET, deny, 0, 0));
    }
    p
}

/// Calls a leaf of the search tests one after another.
const LEAF: usize = 3;

/// The instructions of the search over `n` calls (see [`search`]).
fn search_len(n: usize) -> usize {
    if n <= LEAF {
        2 * n + 1
    } else {
        1 + search_len(n / 2) + search_len(n - n / 2)
    }
}

/// Emits a binary search over `calls` (sorted): a `JGE` per inner node, and per leaf a
/// `JEQ` and a long jump for each of its calls, then a long jump to `trap_at`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn search(
    calls: &[(u32, Option<usize>)],
    p: &mut Vec<seccompiler::sock_filter>,
    target: &dyn Fn(Option<usize>) -> usize,
    trap_at: usize,
) {
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    let op = |code: u16, k: u32, jt: u8, jf: u8| seccompiler::sock_filter { code, jt, jf, k };
    let long = |from: usize, to: usize| u32::try_from(to - from - 1).expect("a filter under 4 G");
    if calls.len() <= LEAF {
        for &(nr, to) in calls {
            p.push(op(JEQ, nr, 0, 1));
            let here = p.len();
            p.push(op(JA, long(here, target(to)), 0, 0));
        }
        let here = p.len();
        p.push(op(JA, long(here, trap_at), 0, 0));
        return;
    }
    let (low, high) = calls.split_at(calls.len() / 2);
    let skip = u8::try_from(search_len(low.len())).expect("a short jump over the low half");
    p.push(op(JGE, high[0].0, skip, 0));
    search(low, p, target, trap_at);
    search(high, p, target, trap_at);
}

/// Installs the seccomp filter for `s`, after the handler that reports a trapped call.
fn seccomp(s: &Sandbox) -> LayerStatus {
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return LayerStatus::Unavailable(format!("no seccomp filter for {}", std::env::consts::ARCH));
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        let program = compile(&rules(s, std::process::id()));
        if let Err(e) = install_trap_handler() {
            return LayerStatus::Unavailable(format!("no SIGSYS handler: {e}"));
        }
        match seccompiler::apply_filter(&program) {
            Ok(()) => LayerStatus::Applied,
            Err(e) => LayerStatus::Unavailable(e.to_string()),
        }
    }
}

fn install_trap_handler() -> nix::Result<()> {
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let action = SigAction::new(
        SigHandler::SigAction(on_sigsys),
        SaFlags::SA_SIGINFO,
        SigSet::empty(),
    );
    // SAFETY: the handler only reads its siginfo, formats into a stack buffer and calls
    // write and _exit, which are async-signal-safe.
    unsafe { sigaction(Signal::SIGSYS, &action) }.map(|_| ())
}

/// Where Linux puts the trapped call's number in a `siginfo_t` (`si_syscall` of its
/// `_sigsys` member): after three ints, padded to 8, and the call's address.
const SI_SYSCALL_OFFSET: usize = 24;

extern "C" fn on_sigsys(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler; for a seccomp
    // trap it is the `_sigsys` form (Linux's ABI), whose `si_syscall` int lies at this
    // offset on 64-bit targets.
    let nr = unsafe {
        info.cast::<u8>()
            .add(SI_SYSCALL_OFFSET)
            .cast::<i32>()
            .read()
    };
    let mut line = [0u8; 80];
    let mut len = 0;
    for &b in VIOLATION_LINE.as_bytes() {
        line[len] = b;
        len += 1;
    }
    let mut digits = [0u8; 12];
    let mut n = nr.unsigned_abs();
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[k..] {
        line[len] = d;
        len += 1;
    }
    line[len] = b'\n';
    len += 1;
    // SAFETY: write, a raw system call and _exit are async-signal-safe; the buffer is ours.
    unsafe {
        libc::write(DIAG_FD.load(Ordering::Relaxed), line.as_ptr().cast(), len);
        libc::syscall(KILL_NR);
        libc::_exit(crate::exit::ExitCode::SandboxViolation.code());
    }
}

/// The system call a worker's stderr says it was stopped at, by name where known.
pub(crate) fn violation(stderr: &str) -> Option<String> {
    let at = stderr.rfind(VIOLATION_LINE)?;
    let nr: i64 = stderr[at + VIOLATION_LINE.len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(match syscall_name(nr) {
        Some(name) => name.to_string(),
        None => format!("system call {nr}"),
    })
}

/// The names of the calls a sandbox is most often asked to stop.
fn syscall_name(nr: i64) -> Option<&'static str> {
    let mut known: Vec<(i64, &'static str)> = vec![
        (libc::SYS_openat, "openat"),
        (libc::SYS_newfstatat, "newfstatat"),
        (libc::SYS_statx, "statx"),
        (libc::SYS_socket, "socket"),
        (libc::SYS_connect, "connect"),
        (libc::SYS_bind, "bind"),
        (libc::SYS_clone, "clone"),
        (libc::SYS_clone3, "clone3"),
        (libc::SYS_execve, "execve"),
        (libc::SYS_execveat, "execveat"),
        (libc::SYS_ptrace, "ptrace"),
        (libc::SYS_kill, "kill"),
        (libc::SYS_tgkill, "tgkill"),
        (libc::SYS_tkill, "tkill"),
        (libc::SYS_process_vm_readv, "process_vm_readv"),
        (libc::SYS_process_vm_writev, "process_vm_writev"),
        (libc::SYS_mount, "mount"),
        (libc::SYS_unshare, "unshare"),
        (libc::SYS_setns, "setns"),
        (libc::SYS_bpf, "bpf"),
        (libc::SYS_perf_event_open, "perf_event_open"),
        (libc::SYS_ioctl, "ioctl"),
        (libc::SYS_fcntl, "fcntl"),
        (libc::SYS_futex, "futex"),
        (libc::SYS_mmap, "mmap"),
        (libc::SYS_mprotect, "mprotect"),
        (libc::SYS_rt_sigaction, "rt_sigaction"),
        (libc::SYS_ftruncate, "ftruncate"),
        (libc::SYS_write, "write"),
        (libc::SYS_pwrite64, "pwrite64"),
        (libc::SYS_writev, "writev"),
        (libc::SYS_prctl, "prctl"),
        (libc::SYS_mkdirat, "mkdirat"),
        (libc::SYS_unlinkat, "unlinkat"),
        (libc::SYS_getdents64, "getdents64"),
    ];
    #[cfg(target_arch = "x86_64")]
    known.extend([
        (libc::SYS_open, "open"),
        (libc::SYS_stat, "stat"),
        (libc::SYS_fork, "fork"),
        (libc::SYS_vfork, "vfork"),
    ]);
    known
        .into_iter()
        .find(|&(n, _)| n == nr)
        .map(|(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seccomp data of call `nr` with `args`.
    fn data(nr: u32, arch: u32, args: [u64; 6]) -> [u8; 64] {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
        data
    }

    /// What the rules say of one call: the action the filter must return.
    fn expected(rules: &[Rule], nr: u32, d: &[u8; 64]) -> u32 {
        let mine: Vec<&Rule> = rules.iter().filter(|r| r.call() == i64::from(nr)).collect();
        match mine.as_slice() {
            [] => libc::SECCOMP_RET_TRAP,
            [Rule::Always(_)] => libc::SECCOMP_RET_ALLOW,
            [Rule::Where { any, deny, .. }] => {
                if any.iter().any(|alt| alt.iter().all(|c| c.holds(d))) {
                    libc::SECCOMP_RET_ALLOW
                } else {
                    *deny
                }
            }
            more => panic!("call {nr} has two rules: {more:?}"),
        }
    }

    /// Argument vectors that probe every test of a rule: each alternative met, then each of
    /// its tests broken in turn, plus some arbitrary words.
    fn probes(rule: &Rule) -> Vec<[u64; 6]> {
        let mut out = vec![[0u64; 6], [u64::MAX; 6], [0x0000_0001_0000_0000; 6]];
        let Rule::Where { any, .. } = rule else {
            return out;
        };
        let set = |args: &mut [u64; 6], c: &Cond, meet: bool| {
            let arg = ((c.offset - ARGS) / 8) as usize;
            let high = (c.offset - ARGS) % 8 == 4;
            let want = if meet == c.equal {
                c.value
            } else {
                (c.value ^ c.mask) & c.mask
            };
            let word = (if high { args[arg] >> 32 } else { args[arg] } as u32 & !c.mask) | want;
            args[arg] = if high {
                (args[arg] & 0xffff_ffff) | (u64::from(word) << 32)
            } else {
                (args[arg] & !0xffff_ffff) | u64::from(word)
            };
        };
        for alt in any {
            for base in [[0u64; 6], [0xdead_beef_0000_0000; 6]] {
                let mut met = base;
                for c in alt {
                    set(&mut met, c, true);
                }
                out.push(met);
                for broken in alt {
                    let mut args = met;
                    set(&mut args, broken, false);
                    out.push(args);
                }
            }
        }
        out
    }

    /// Runs the classic-BPF program the way the kernel would, on one call.
    fn run(program: &[seccompiler::sock_filter], data: &[u8; 64]) -> u32 {
        let (mut acc, mut pc) = (0u32, 0usize);
        loop {
            let op = &program[pc];
            pc += 1;
            let k = op.k;
            match u32::from(op.code) {
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => {
                    let at = k as usize;
                    acc = u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
                }
                c if c == libc::BPF_ALU | libc::BPF_AND | libc::BPF_K => acc &= k,
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if acc == k { op.jt } else { op.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K => {
                    pc += usize::from(if acc >= k { op.jt } else { op.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k as usize,
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                other => panic!("an instruction the filter should not hold: {other:#x}"),
            }
        }
    }

    /// The shared descriptors the tests' filters protect (a worker sets its own).
    const SHARED: [i32; 3] = [5, 6, 7];

    fn sandboxes() -> [Sandbox; 5] {
        set_shared_fds(SHARED);
        [
            Sandbox::compute(),
            Sandbox::read_only(["/etc"]).write_dir("/tmp"),
            Sandbox::compute().network(true),
            Sandbox::compute().network(true).processes(true),
            Sandbox {
                memory_limit: Some(64 << 20),
                ..Sandbox::compute()
            },
        ]
    }

    #[test]
    fn the_filter_does_exactly_what_its_rules_say_for_every_call_number() {
        let pid = 4242u32;
        for s in sandboxes() {
            let rules = rules(&s, pid);
            let program = compile(&rules);
            assert!(program.len() < 400, "{} instructions", program.len());
            for nr in 0..1024u32 {
                let rule = rules.iter().find(|r| r.call() == i64::from(nr));
                let probes = rule.map(probes).unwrap_or_else(|| vec![[0; 6]]);
                for args in probes {
                    let d = data(nr, AUDIT_ARCH, args);
                    assert_eq!(
                        run(&program, &d),
                        expected(&rules, nr, &d),
                        "call {nr} with {args:x?} in {s:?}"
                    );
                }
            }
            // Another architecture's calls, and x86's x32 ones, kill.
            let read = libc::SYS_read as u32;
            let other = data(read, AUDIT_ARCH ^ 1, [0; 6]);
            assert_eq!(run(&program, &other), libc::SECCOMP_RET_KILL_PROCESS);
            #[cfg(target_arch = "x86_64")]
            assert_eq!(
                run(&program, &data(read | 0x4000_0000, AUDIT_ARCH, [0; 6])),
                libc::SECCOMP_RET_KILL_PROCESS
            );
        }
    }

    /// The routes an attacker's review walked through, each as the call the filter sees.
    #[test]
    fn the_routes_of_the_review_are_closed_in_every_sandbox() {
        let pid = 4242u32;
        let trap = libc::SECCOMP_RET_TRAP;
        let call = |s: &Sandbox, nr: i64, args: [u64; 6]| {
            run(&compile(&rules(s, pid)), &data(nr as u32, AUDIT_ARCH, args))
        };
        let fcntl = |cmd: i32, arg: i64| [3, cmd as u64, arg as u64, 0, 0, 0];
        for s in sandboxes() {
            // A signal to another process through the parent's writes to the pipe.
            assert_eq!(call(&s, libc::SYS_fcntl, fcntl(libc::F_SETOWN, 1)), trap);
            // F_SETSIG is 10 and F_SETOWN_EX 15 (not in the libc crate either).
            assert_eq!(call(&s, libc::SYS_fcntl, fcntl(10, 9)), trap);
            assert_eq!(call(&s, libc::SYS_fcntl, fcntl(15, 0)), trap);
            let async_on = libc::O_ASYNC as i64 | libc::O_NONBLOCK as i64;
            assert_eq!(
                call(&s, libc::SYS_fcntl, fcntl(libc::F_SETFL, async_on)),
                trap
            );
            let nonblock = libc::O_NONBLOCK as i64;
            assert_eq!(
                call(&s, libc::SYS_fcntl, fcntl(libc::F_SETFL, nonblock)),
                libc::SECCOMP_RET_ALLOW
            );
            // The terminal and the owner of a socket, by ioctl.
            // FIOSETOWN is 0x8901 and SIOCSPGRP 0x8902 (the libc crate names neither).
            for req in [libc::TIOCSTI, 0x8901, 0x8902, libc::FIOASYNC] {
                assert_eq!(call(&s, libc::SYS_ioctl, [0, req, 0, 0, 0, 0]), trap);
            }
            // Priority inheritance and requeueing on shared words.
            for op in [
                libc::FUTEX_LOCK_PI,
                libc::FUTEX_CMP_REQUEUE,
                libc::FUTEX_WAKE_OP,
            ] {
                let op = (op | libc::FUTEX_PRIVATE_FLAG) as u64;
                assert_eq!(call(&s, libc::SYS_futex, [0, op, 0, 0, 0, 0]), trap);
            }
            // A handler of its own for SIGSYS; a query of it stays allowed.
            let sigsys = libc::SIGSYS as u64;
            assert_eq!(
                call(&s, libc::SYS_rt_sigaction, [sigsys, 0x7000, 0, 8, 0, 0]),
                trap
            );
            assert_eq!(
                call(&s, libc::SYS_rt_sigaction, [sigsys, 1 << 32, 0, 8, 0, 0]),
                trap
            );
            assert_eq!(
                call(&s, libc::SYS_rt_sigaction, [sigsys, 0, 0x7000, 8, 0, 0]),
                libc::SECCOMP_RET_ALLOW
            );
            if !s.processes {
                // Executable memory, and shared anonymous memory.
                let rwx = (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64;
                assert_eq!(
                    call(&s, libc::SYS_mprotect, [0x1000, 4096, rwx, 0, 0, 0]),
                    trap
                );
                let private = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
                assert_eq!(
                    call(&s, libc::SYS_mmap, [0, 4096, rwx, private, 0, 0]),
                    trap
                );
                let rw = (libc::PROT_READ | libc::PROT_WRITE) as u64;
                let shared = (libc::MAP_SHARED | libc::MAP_ANONYMOUS) as u64;
                assert_eq!(call(&s, libc::SYS_mmap, [0, 4096, rw, shared, 0, 0]), trap);
                let validate = (libc::MAP_SHARED_VALIDATE | libc::MAP_ANONYMOUS) as u64;
                assert_eq!(
                    call(&s, libc::SYS_mmap, [0, 4096, rw, validate, 0, 0]),
                    trap
                );
                for ok in [private, libc::MAP_SHARED as u64] {
                    let r = call(&s, libc::SYS_mmap, [0, 4096, rw, ok, 3, 0]);
                    assert_eq!(r, libc::SECCOMP_RET_ALLOW, "{ok:#x}");
                }
                // Another process's pid, its group, or every process.
                for target in [1u64, 0, u64::MAX, u64::from(pid).wrapping_neg()] {
                    assert_eq!(call(&s, libc::SYS_kill, [target, 9, 0, 0, 0, 0]), trap);
                }
                // Itself, but never SIGSYS: that is the kernel's word for a violation.
                let me = u64::from(pid);
                let abrt = libc::SIGABRT as u64;
                let sys = libc::SIGSYS as u64;
                let allow = libc::SECCOMP_RET_ALLOW;
                assert_eq!(call(&s, libc::SYS_kill, [me, abrt, 0, 0, 0, 0]), allow);
                assert_eq!(call(&s, libc::SYS_tgkill, [me, me, abrt, 0, 0, 0]), allow);
                assert_eq!(call(&s, libc::SYS_kill, [me, sys, 0, 0, 0, 0]), trap);
                assert_eq!(call(&s, libc::SYS_tkill, [me, sys, 0, 0, 0, 0]), trap);
                assert_eq!(call(&s, libc::SYS_tgkill, [me, me, sys, 0, 0, 0]), trap);
            }
            if s.memory_limit.is_some() {
                // No filling a shared memfd without a mapping, no growing the inbox.
                let [doorbell, arena, inbox] = SHARED.map(|fd| fd as u64);
                let allow = libc::SECCOMP_RET_ALLOW;
                for fd in [doorbell, arena, inbox] {
                    assert_eq!(call(&s, libc::SYS_write, [fd, 0x7000, 4096, 0, 0, 0]), trap);
                    assert_eq!(
                        call(&s, libc::SYS_pwrite64, [fd, 0x7000, 4096, 0, 0, 0]),
                        trap
                    );
                    assert_eq!(call(&s, libc::SYS_writev, [fd, 0x7000, 1, 0, 0, 0]), trap);
                }
                assert_eq!(call(&s, libc::SYS_write, [1, 0x7000, 4096, 0, 0, 0]), allow);
                assert_eq!(
                    call(&s, libc::SYS_ftruncate, [inbox, 1 << 30, 0, 0, 0, 0]),
                    trap
                );
                assert_eq!(
                    call(&s, libc::SYS_ftruncate, [arena, 1 << 30, 0, 0, 0, 0]),
                    allow
                );
            }
            // The trap handler's way out is the kernel's kill.
            assert_eq!(call(&s, KILL_NR, [0; 6]), libc::SECCOMP_RET_KILL_PROCESS);
            if s.read.is_empty() && s.write.is_empty() {
                // A path's metadata, even under AT_EMPTY_PATH.
                let at_empty = libc::AT_EMPTY_PATH as u64;
                let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
                assert_eq!(
                    call(
                        &s,
                        libc::SYS_newfstatat,
                        [3, 0x7000, 0x8000, at_empty, 0, 0]
                    ),
                    eperm
                );
                assert_eq!(
                    call(&s, libc::SYS_statx, [3, 0x7000, at_empty, 0xfff, 0x8000, 0]),
                    eperm
                );
            }
        }
    }

    #[test]
    fn a_missing_layer_fails_unless_allowed() {
        let report = SandboxReport {
            layers: vec![
                layer("seccomp", LayerStatus::Applied),
                layer("landlock", LayerStatus::Unavailable("old kernel".into())),
                layer("rlimits", LayerStatus::NotAsked),
            ],
        };
        let why = check(&Sandbox::compute(), &report).unwrap_err();
        assert!(why.contains("landlock (old kernel)"), "{why}");
        assert!(
            !why.contains("seccomp") && !why.contains("rlimits"),
            "{why}"
        );
        assert_eq!(
            check(&Sandbox::compute().allow_unavailable(true), &report),
            Ok(())
        );
        // The scopes are a second wall: reported, never required.
        let optional = SandboxReport {
            layers: vec![layer(
                OPTIONAL_LAYER,
                LayerStatus::Unavailable("ABI 4".into()),
            )],
        };
        assert_eq!(check(&Sandbox::compute(), &optional), Ok(()));
        assert_eq!(
            report.to_string(),
            "seccomp: applied; landlock: unavailable (old kernel); rlimits: not asked for"
        );
    }

    #[test]
    fn a_violation_line_names_its_call() {
        let line = format!("junk\n{VIOLATION_LINE}{}\n", libc::SYS_socket);
        assert_eq!(violation(&line).as_deref(), Some("socket"));
        assert_eq!(
            violation(&format!("{VIOLATION_LINE}99999")).as_deref(),
            Some("system call 99999")
        );
        assert_eq!(violation("a crash with no such line"), None);
    }

    #[test]
    fn a_sandbox_crosses_to_the_worker_intact() {
        let s = Sandbox::read_only(["/a", "/b"])
            .write_dir("/c")
            .cpu_seconds(3);
        assert_eq!(postcard::from_bytes::<Sandbox>(&encode(&s)).unwrap(), s);
    }
}
