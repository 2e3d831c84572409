//! A sandbox for worker processes: what a task fed hostile input may still do once it has
//! gained code execution in its worker.
//!
//! Applied in each worker after its initializer and before its first task, in this order
//! (each layer needs the system calls the later ones take away):
//!
//! 1. **rlimits**: CPU seconds, open files, processes, file size (`setrlimit`).
//! 2. **network namespace** (when asked for, see [`Sandbox::network_namespace`]): a fresh,
//!    empty network namespace (`unshare(CLONE_NEWNET)`, or inside a new user namespace where
//!    that is what the kernel lets an unprivileged process do).
//! 3. **no_new_privs**: `PR_SET_NO_NEW_PRIVS`, so no exec can gain privileges.
//! 4. **Landlock**: file access (none, read-only paths, writable directories) and, without
//!    network access, TCP bind and connect.
//! 5. **seccomp**: a filter of the system calls the worker runtime and a computing task need;
//!    any other traps. The trap's handler writes the call's number to the worker's own stderr
//!    pipe and exits, and the task ends with [`crate::TaskError::SandboxViolation`] naming it.
//!
//! Each layer is reported (see [`SandboxReport`]) as applied or unavailable with the reason.
//! A worker whose sandbox lacks a layer the kernel cannot give refuses to run tasks, unless
//! the caller allowed it with [`Sandbox::allow_unavailable`]: never silently unsandboxed.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

/// The exit code of a worker whose sandbox could not be applied as asked.
pub(crate) const SANDBOX_FAILED: i32 = 85;
/// The exit code of a worker that made a system call its sandbox forbids.
pub(crate) const SANDBOX_VIOLATION: i32 = 84;
/// What a worker's stderr says before it exits with [`SANDBOX_FAILED`].
pub(crate) const FAILED_LINE: &str = "proctor: the sandbox could not be applied: ";
/// How a pool that starts no more workers after a sandbox failure says why.
pub(crate) const FAILED_REASON: &str = "the worker sandbox could not be applied: ";
/// What a worker's stderr says before it exits with [`SANDBOX_VIOLATION`].
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
    /// The layer called `name` (`"rlimits"`, `"network namespace"`, `"no_new_privs"`,
    /// `"landlock"`, `"seccomp"`).
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
/// [`SANDBOX_FAILED`] and the reason when it cannot apply it as asked.
pub(crate) fn apply_entry(bytes: &[u8]) {
    let fail = |why: &str| -> ! {
        let line = format!("{FAILED_LINE}{why}\n");
        let fd = DIAG_FD.load(Ordering::Relaxed);
        // SAFETY: writing a buffer we own to a descriptor number; a closed one fails.
        let _ = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        // SAFETY: as in the worker's own exits: skip the parent's atexit handlers.
        unsafe { libc::_exit(SANDBOX_FAILED) }
    };
    let sandbox: Sandbox = match postcard::from_bytes(bytes) {
        Ok(s) => s,
        Err(e) => fail(&format!("its description did not decode: {e}")),
    };
    if crate::sys::thread_count() == Some(1) {
        // A backtrace (RUST_BACKTRACE, printed on an allocation failure under a memory limit)
        // reads the working directory and the binary to symbolize itself, which the sandbox
        // forbids: the task would end as a violation instead of running out of memory.
        // SAFETY: this process has one thread (just checked), so nothing reads the
        // environment while it changes.
        unsafe { std::env::set_var("RUST_BACKTRACE", "0") };
    }
    let report = apply(&sandbox);
    if let Err(why) = check(&sandbox, &report) {
        fail(&why);
    }
    let _ = REPORT.set(report);
}

/// Fails if a layer asked for is unavailable and the sandbox does not allow that.
fn check(sandbox: &Sandbox, report: &SandboxReport) -> Result<(), String> {
    if sandbox.allow_unavailable {
        return Ok(());
    }
    let missing: Vec<String> = report
        .layers
        .iter()
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
    let mut layers = vec![layer("rlimits", rlimits(s))];
    layers.push(layer(
        "network namespace",
        if s.wants_netns() {
            network_namespace()
        } else {
            LayerStatus::NotAsked
        },
    ));
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
    layers.push(layer("landlock", landlock(s)));
    layers.push(layer("seccomp", seccomp(s)));
    SandboxReport { layers }
}

fn rlimits(s: &Sandbox) -> LayerStatus {
    use nix::sys::resource::{Resource, setrlimit};
    let limits = [
        (Resource::RLIMIT_CPU, s.cpu_seconds),
        (Resource::RLIMIT_NOFILE, s.open_files),
        (Resource::RLIMIT_NPROC, s.max_processes),
        (Resource::RLIMIT_FSIZE, s.file_size),
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
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let nested = unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            let write = |file: &str, text: String| {
                std::fs::write(file, text).map_err(|e| format!("{file}: {e}"))
            };
            write("/proc/self/setgroups", "deny".into())?;
            write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
            write("/proc/self/gid_map", format!("{gid} {gid} 1"))
        });
    match nested {
        Ok(()) => LayerStatus::Applied,
        Err(why) => LayerStatus::Unavailable(format!(
            "unshare(CLONE_NEWNET): {direct}; in a new user namespace: {why}"
        )),
    }
}

fn landlock(s: &Sandbox) -> LayerStatus {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus,
    };
    let abi = ABI::V5;
    let run = || -> Result<RulesetStatus, String> {
        let mut ruleset = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .map_err(|e| e.to_string())?;
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
    match run() {
        Ok(RulesetStatus::FullyEnforced) => LayerStatus::Applied,
        Ok(RulesetStatus::PartiallyEnforced) => LayerStatus::Unavailable(
            "partly enforced: this kernel's Landlock lacks some of the access rights".into(),
        ),
        Ok(RulesetStatus::NotEnforced) => {
            LayerStatus::Unavailable("this kernel does not enforce Landlock".into())
        }
        Err(why) => LayerStatus::Unavailable(why),
    }
}

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

/// A rule of the filter: a call allowed outright, or only when one argument's low 32 bits,
/// masked, equal a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Always(i64),
    ArgIs {
        call: i64,
        arg: u32,
        mask: u32,
        value: u32,
    },
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
    calls.sort_unstable();
    calls.dedup();
    let mut rules: Vec<Rule> = calls.into_iter().map(Rule::Always).collect();
    if !s.processes {
        for call in [libc::SYS_kill, libc::SYS_tgkill, libc::SYS_tkill] {
            rules.push(Rule::ArgIs {
                call,
                arg: 0,
                mask: u32::MAX,
                value: pid,
            });
        }
    }
    if !files {
        // `fstat` on a descriptor (std's metadata), never on a path.
        let empty_path = libc::AT_EMPTY_PATH as u32;
        for (call, arg) in [(libc::SYS_newfstatat, 3), (libc::SYS_statx, 2)] {
            rules.push(Rule::ArgIs {
                call,
                arg,
                mask: empty_path,
                value: empty_path,
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

/// Compiles `rules` to classic BPF: the architecture check, one compare per allowed call,
/// then the argument checks.
///
/// Written here rather than by seccompiler's compiler: that one spends about five
/// instructions a call, and the kernel's cost of installing a filter grows with its length
/// (it runs the filter for every call number to cache the always-allowed ones): 155 µs for
/// seccompiler's 315 instructions here, more than half of an unsandboxed worker's whole
/// start. One compare per call keeps it near a fifth of that. Installing still goes through
/// seccompiler.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn compile(rules: &[Rule]) -> Vec<seccompiler::sock_filter> {
    const LD_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const AND: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let op = |code: u16, k: u32, jt: u8, jf: u8| seccompiler::sock_filter { code, jt, jf, k };
    let always: Vec<i64> = rules
        .iter()
        .filter_map(|r| match r {
            Rule::Always(c) => Some(*c),
            Rule::ArgIs { .. } => None,
        })
        .collect();
    let checked: Vec<(i64, u32, u32, u32)> = rules
        .iter()
        .filter_map(|r| match *r {
            Rule::ArgIs {
                call,
                arg,
                mask,
                value,
            } => Some((call, arg, mask, value)),
            Rule::Always(_) => None,
        })
        .collect();
    let mut p = vec![
        op(LD_ABS, ARCH, 0, 0),
        op(JEQ, AUDIT_ARCH, 1, 0),
        op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0),
        op(LD_ABS, NR, 0, 0),
    ];
    #[cfg(target_arch = "x86_64")]
    {
        // x32 calls carry this bit: none is allowed.
        const JGE: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
        p.push(op(JGE, 0x4000_0000, 0, 1));
        p.push(op(RET, libc::SECCOMP_RET_KILL_PROCESS, 0, 0));
    }
    // After the compares: TRAP, ALLOW, then a block of BLOCK instructions per checked call.
    const BLOCK: usize = 5;
    let trap_at = p.len() + always.len() + checked.len();
    let allow_at = trap_at + 1;
    for &call in &always {
        let here = p.len();
        let jt = u8::try_from(allow_at - here - 1).expect("a short filter");
        p.push(op(JEQ, call as u32, jt, 0));
    }
    for (k, &(call, ..)) in checked.iter().enumerate() {
        let here = p.len();
        let block = allow_at + 1 + k * BLOCK;
        let jt = u8::try_from(block - here - 1).expect("a short filter");
        p.push(op(JEQ, call as u32, jt, 0));
    }
    p.push(op(RET, libc::SECCOMP_RET_TRAP, 0, 0));
    p.push(op(RET, libc::SECCOMP_RET_ALLOW, 0, 0));
    for &(_, arg, mask, value) in &checked {
        // The low half of the argument (little-endian), masked, compared.
        p.push(op(LD_ABS, ARGS + 8 * arg, 0, 0));
        p.push(op(AND, mask, 0, 0));
        p.push(op(JEQ, value, 0, 1));
        p.push(op(RET, libc::SECCOMP_RET_ALLOW, 0, 0));
        p.push(op(RET, libc::SECCOMP_RET_TRAP, 0, 0));
    }
    p
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
    // SAFETY: write and _exit are async-signal-safe; the buffer is ours.
    unsafe {
        libc::write(DIAG_FD.load(Ordering::Relaxed), line.as_ptr().cast(), len);
        libc::_exit(SANDBOX_VIOLATION);
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

    /// Runs the classic-BPF program the way the kernel would, on one call.
    fn run(program: &[seccompiler::sock_filter], nr: u32, arch: u32, args: [u64; 6]) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        for (i, a) in args.iter().enumerate() {
            data[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_le_bytes());
        }
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
                c if c == libc::BPF_RET | libc::BPF_K => return k,
                other => panic!("an instruction the filter should not hold: {other:#x}"),
            }
        }
    }

    #[test]
    fn the_filter_allows_exactly_its_rules_for_every_call_number() {
        let pid = 4242u32;
        for s in [
            Sandbox::compute(),
            Sandbox::read_only(["/etc"]).write_dir("/tmp"),
            Sandbox::compute().network(true).processes(true),
        ] {
            let rules = rules(&s, pid);
            let program = compile(&rules);
            assert!(program.len() < 200, "{} instructions", program.len());
            for nr in 0..1024u32 {
                let mine: Vec<&Rule> = rules
                    .iter()
                    .filter(|r| match r {
                        Rule::Always(c) | Rule::ArgIs { call: c, .. } => *c == i64::from(nr),
                    })
                    .collect();
                let zero = run(&program, nr, AUDIT_ARCH, [0; 6]);
                match mine.as_slice() {
                    [] => assert_eq!(zero, libc::SECCOMP_RET_TRAP, "call {nr} in {s:?}"),
                    [Rule::Always(_)] => assert_eq!(zero, libc::SECCOMP_RET_ALLOW, "call {nr}"),
                    [Rule::ArgIs { arg, value, .. }] => {
                        let mut args = [0u64; 6];
                        args[*arg as usize] = u64::from(*value) | 0xffff_0000_0000;
                        let ok = run(&program, nr, AUDIT_ARCH, args);
                        assert_eq!(ok, libc::SECCOMP_RET_ALLOW, "call {nr} with its value");
                        args[*arg as usize] = u64::from(value.wrapping_add(1) & !*value);
                        let other = run(&program, nr, AUDIT_ARCH, args);
                        assert_eq!(other, libc::SECCOMP_RET_TRAP, "call {nr} with another");
                    }
                    more => panic!("call {nr} has two rules: {more:?}"),
                }
            }
            // Another architecture's calls, and x86's x32 ones, kill.
            let read = libc::SYS_read as u32;
            assert_eq!(
                run(&program, read, AUDIT_ARCH ^ 1, [0; 6]),
                libc::SECCOMP_RET_KILL_PROCESS
            );
            #[cfg(target_arch = "x86_64")]
            assert_eq!(
                run(&program, read | 0x4000_0000, AUDIT_ARCH, [0; 6]),
                libc::SECCOMP_RET_KILL_PROCESS
            );
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
