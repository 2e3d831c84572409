//! `containers`: the isolation ladder. What does stronger isolation cost to start, and in memory?
//!
//! **Rungs**, weakest first: a thread; a forked process; a forked process that enters fresh
//! namespaces (user, PID, mount, network: those this machine permits) and forks the worker
//! (a PID namespace takes effect for children only, so the worker is a grandchild, pid 1 in its
//! namespace); the same moved into a fresh cgroup v2 with a `memory.max` before it unshares;
//! and, where `docker` or `podman` is installed with a tiny image already present locally,
//! `run --rm` of that image.
//!
//! **The interval** is start-to-first-result: from just before the create call (`spawn`,
//! `fork`, `Command::spawn`) to the parent reading the worker's 8-byte result from a pipe. Each
//! worker computes the same trivial result. The worker then parks on a second pipe until the
//! parent has sampled its memory (`/proc/PID/smaps_rollup`: RSS and USS = Private_Clean +
//! Private_Dirty) and releases it; everything is reaped before the next run. The rungs
//! interleave run by run, after one warm-up run each, so drift on a shared machine hits every
//! rung alike.
//!
//! **Placement**: the lab's thread is pinned to one CPU for the whole ladder and every worker
//! (thread, child, grandchild in its namespaces) inherits the pin, so each start is the same
//! two hand-offs on one CPU as `spawn`'s same-CPU figures, never a cross-CPU wake-up at the
//! scheduler's whim; the namespace and fork rungs are compared on that one placement.
//!
//! **The fork rung against `spawn.fork`**: the rung times start to the child's first result
//! (the parent blocked in `poll` on a pipe), without exit or reap, one run at a time between
//! other rungs; `spawn.fork` times fork + `_exit` + `waitpid` back to back, at the start of
//! the run. Fork's cost follows the parent's page tables, and the lab process grows as the
//! report runs: a control, the very op of `spawn.fork`, is timed in every repetition here, in
//! this parent at this point, and the parent's RSS and page-table size are recorded, so a
//! difference between the rung and `spawn.fork` can be told apart from one in the parent.
//!
//! **Refusals**: each namespace kind is probed alone in a throw-away child first; a kind the
//! kernel refuses (EPERM under a seccomp filter or without CAP_SYS_ADMIN, EINVAL, ENOSPC) is
//! left out of the namespace rung and listed with its error. A rung that cannot run at all
//! (no cgroup2 with a memory controller, no container runtime, no local image) carries its
//! reason and no figure.
//!
//! **Nothing left behind**: every child dies with the lab (`PR_SET_PDEATHSIG`), the worker in
//! a namespace dies with its intermediate parent, and the cgroup is removed when [`Cgroup`]
//! drops, also on an error (its processes are killed first).
//!
//! The forked children live in a copy of a possibly multi-threaded process, so they make raw
//! system calls only (`unshare`, `fork`, `read`, `write`, `waitpid`, `_exit`): no allocation.
//!
//! This file is long because each rung starts its worker its own way (a thread, a fork, a
//! clone into new namespaces, a cgroup, a container runtime) and the cgroup and runtime
//! helpers live here too; they are the next to move out (`cgroup.rs`, `runtime.rs`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use super::{Experiment, ROUNDS};
use crate::measure::pin_current_thread;
use crate::report::{Chart, ChartKind, Figure, Profile, Section, Series, Table, Unit};
use crate::shared_mem::{Children, SharedMem, die_with_parent, fork_child};
use crate::stats::median_and_spread;
use crate::topology::{Pair, Placement, Topology};
use crate::{LabConfig, Progress};

mod section;
use section::section_from;

/// The isolation-ladder experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Containers;

/// The memory limit the cgroup rung runs under.
pub const CGROUP_MEMORY_MAX: u64 = 256 << 20;

/// The result every worker computes and sends back.
const ANSWER: u64 = 42;

/// How long the parent waits for a worker's result before giving up on the run.
const RESULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rung {
    /// A thread of this process.
    Thread,
    /// A forked process.
    Fork,
    /// A forked process in fresh namespaces; the worker is its child.
    Namespaces,
    /// The same, moved into a fresh cgroup v2 with a memory limit first.
    Cgroup,
    /// `docker`/`podman run --rm` of a local tiny image.
    Container,
}

impl Rung {
    /// The word figure keys use.
    pub fn key(self) -> &'static str {
        match self {
            Rung::Thread => "thread",
            Rung::Fork => "fork",
            Rung::Namespaces => "namespaces",
            Rung::Cgroup => "cgroup",
            Rung::Container => "container",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Rung::Thread => "thread",
            Rung::Fork => "forked process",
            Rung::Namespaces => "process in fresh namespaces",
            Rung::Cgroup => "namespaces + cgroup v2 memory limit",
            Rung::Container => "container run --rm",
        }
    }
}

/// A namespace kind and whether this machine let a child enter a fresh one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamespaceProbe {
    /// `user`, `pid`, `mount` or `net`.
    pub kind: String,
    /// Whether `unshare` of this kind alone succeeded in a child.
    pub permitted: bool,
    /// The error when it was refused.
    pub reason: Option<String>,
}

/// One rung over all its runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RungRuns {
    /// Which rung.
    pub rung: Rung,
    /// What exactly ran (the namespaces entered, the cgroup, the image).
    pub what: String,
    /// Why the rung did not run; then it has no samples.
    pub refused: Option<String>,
    /// Start-to-first-result, per run.
    pub start_ns: Vec<f64>,
    /// The worker's RSS while parked after its result, per run (threads: none).
    pub rss_bytes: Vec<f64>,
    /// The worker's USS then (threads: this process's USS growth while the thread lived).
    pub uss_bytes: Vec<f64>,
    /// The cgroup's `memory.current` while the worker was parked (cgroup rung only).
    pub cgroup_memory_bytes: Vec<f64>,
    /// The pids of the children forked for the measured runs, all reaped (for the
    /// nothing-left-behind check).
    pub child_pids: Vec<i32>,
}

impl RungRuns {
    fn new(rung: Rung, what: String, refused: Option<String>) -> RungRuns {
        RungRuns {
            rung,
            what,
            refused,
            start_ns: Vec::new(),
            rss_bytes: Vec::new(),
            uss_bytes: Vec::new(),
            cgroup_memory_bytes: Vec::new(),
            child_pids: Vec::new(),
        }
    }
}

/// Everything the experiment measured, for `Section::data`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainersResult {
    /// Runs of each rung after its warm-up run (the container rung may run fewer).
    pub repetitions: usize,
    /// Independent rounds the repetitions are split into, in order, for the run-to-run spread.
    pub rounds: usize,
    /// The namespace kinds probed.
    pub namespaces: Vec<NamespaceProbe>,
    /// Every rung, in ladder order, refused or not.
    pub rungs: Vec<RungRuns>,
    /// The cgroup used, if one could be created.
    pub cgroup_path: Option<String>,
    /// Whether the cgroup directory was gone after the experiment (true when none was made).
    pub cgroup_removed: bool,
    /// The CPU every rung ran on (the lab's thread pinned, the workers inheriting the pin);
    /// `None`: unpinned, when pinning failed.
    #[serde(default)]
    pub placement: Option<Pair>,
    /// The control, per repetition: fork + `_exit` + `waitpid` in this parent, the op of
    /// `spawn.fork`, interleaved with the rungs.
    #[serde(default)]
    pub control_ns: Vec<f64>,
    /// This process's RSS when the measured runs began.
    #[serde(default)]
    pub parent_rss_bytes: Option<u64>,
    /// Its page tables then (`VmPTE`): what fork copies.
    #[serde(default)]
    pub parent_page_tables_bytes: Option<u64>,
}

/// The namespace kinds the ladder tries, with their clone flags.
const NAMESPACES: [(&str, libc::c_int); 4] = [
    ("user", libc::CLONE_NEWUSER),
    ("pid", libc::CLONE_NEWPID),
    ("mount", libc::CLONE_NEWNS),
    ("net", libc::CLONE_NEWNET),
];

/// The error text of `errno`, e.g. "EPERM: Operation not permitted".
fn errno_text(errno: i32) -> String {
    let e = nix::errno::Errno::from_raw(errno);
    format!("{e:?}: {}", e.desc())
}

/// Tries each namespace kind alone in a throw-away child.
pub fn probe_namespaces() -> Result<Vec<NamespaceProbe>> {
    let mut probes = Vec::new();
    for (kind, flag) in NAMESPACES {
        // Only unshare, errno and _exit in the child: async-signal-safe.
        let child = || {
            // SAFETY: unshare takes an integer; the child is single-threaded after fork.
            if unsafe { libc::unshare(flag) } == 0 {
                0
            } else {
                nix::errno::Errno::last_raw().clamp(1, 255)
            }
        };
        // SAFETY: unshare and errno only (see above).
        let pid = unsafe { fork_child(child) }.context("fork a namespace probe")?;
        let status = nix::sys::wait::waitpid(pid, None).context("reap a namespace probe")?;
        let reason = match status {
            nix::sys::wait::WaitStatus::Exited(_, 0) => None,
            nix::sys::wait::WaitStatus::Exited(_, code) => Some(errno_text(code)),
            other => Some(format!("the probe ended with {other:?}")),
        };
        probes.push(NamespaceProbe {
            kind: kind.to_string(),
            permitted: reason.is_none(),
            reason,
        });
    }
    Ok(probes)
}

/// A pipe whose two ends close on drop; both ends are close-on-exec.
#[derive(Debug)]
struct Pipe {
    read: libc::c_int,
    write: libc::c_int,
}

impl Pipe {
    fn new() -> Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid out-array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("create a pipe");
        }
        Ok(Pipe {
            read: fds[0],
            write: fds[1],
        })
    }
}

impl Drop for Pipe {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned by this value and closed once, here.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}

/// Writes the 8 bytes of `v`; raw syscall, usable after fork.
fn write_u64(fd: libc::c_int, v: u64) -> bool {
    let bytes = v.to_ne_bytes();
    // SAFETY: the buffer is valid for 8 bytes; 8 bytes fit a pipe atomically.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), 8) == 8 }
}

/// Blocks until one byte arrives (or the pipe ends); raw syscall, usable after fork.
fn wait_byte(fd: libc::c_int) {
    let mut b = 0u8;
    loop {
        // SAFETY: the buffer is valid for one byte.
        let n = unsafe { libc::read(fd, (&raw mut b).cast(), 1) };
        if n >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR {
            return;
        }
    }
}

/// Reads an 8-byte result from `fd`, waiting at most [`RESULT_TIMEOUT`].
fn read_result(fd: libc::c_int) -> Result<u64> {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = RESULT_TIMEOUT.as_millis() as libc::c_int;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    if ready != 1 {
        bail!("no result from the worker within {RESULT_TIMEOUT:?}");
    }
    let mut bytes = [0u8; 8];
    // SAFETY: the buffer is valid for 8 bytes.
    let n = unsafe { libc::read(fd, bytes.as_mut_ptr().cast(), 8) };
    if n != 8 {
        bail!("the worker ended without sending its result");
    }
    Ok(u64::from_ne_bytes(bytes))
}

/// Results above this encode an errno from the intermediate child: `REFUSED + errno`.
const REFUSED: u64 = u64::MAX - 4096;

/// The trivial work every worker does.
fn work() -> u64 {
    std::hint::black_box(6u64) * std::hint::black_box(7u64)
}

/// Memory of `pid` ("self" for this process): (RSS, USS) in bytes.
fn rss_uss(pid: &str) -> Option<(f64, f64)> {
    let rollup = crate::procfs::smaps_rollup(pid).ok()?;
    Some((rollup.rss? as f64, rollup.uss()? as f64))
}

/// One sample of a rung: start-to-result and the worker's memory.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    start: Duration,
    rss: Option<f64>,
    uss: Option<f64>,
    cgroup_memory: Option<f64>,
    /// The child forked for the run, reaped.
    child: Option<i32>,
}

fn run_thread() -> Result<Sample> {
    let before = rss_uss("self").map(|m| m.1);
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let start = Instant::now();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(work());
        let _ = release_rx.recv();
    });
    let got = rx.recv_timeout(RESULT_TIMEOUT);
    let elapsed = start.elapsed();
    let after = rss_uss("self").map(|m| m.1);
    let _ = release_tx.send(());
    handle
        .join()
        .map_err(|_| anyhow::anyhow!("the worker thread panicked"))?;
    if got.ok() != Some(ANSWER) {
        bail!("the worker thread sent no correct result");
    }
    Ok(Sample {
        start: elapsed,
        rss: None,
        uss: before.zip(after).map(|(b, a)| a - b),
        cgroup_memory: None,
        child: None,
    })
}

/// The page the parent and the intermediate child share: the worker's pid in this namespace.
#[derive(Debug, Default)]
struct Shared {
    worker_pid: AtomicI32,
}

/// A forked worker: `flags == 0` and no cgroup is the plain fork rung (the child is the
/// worker); otherwise the child waits to be placed in `cgroup`, unshares `flags` and forks the
/// worker.
fn run_process(flags: libc::c_int, cgroup: Option<&Cgroup>) -> Result<Sample> {
    let shared = SharedMem::new(Shared::default()).context("map shared memory")?;
    let (result, release, go) = (Pipe::new()?, Pipe::new()?, Pipe::new()?);
    let (result_w, release_r, go_r) = (result.write, release.read, go.read);
    let nested = flags != 0 || cgroup.is_some();
    let wait_for_go = cgroup.is_some();
    let parent = std::process::id() as libc::pid_t;
    let mut children = Children::new();
    let start = Instant::now();
    let s = &*shared;
    // Raw system calls only in both children (see the module docs).
    let child = || {
        if !nested {
            let v = work();
            // SAFETY: getpid takes nothing.
            s.worker_pid
                .store(unsafe { libc::getpid() }, Ordering::Release);
            write_u64(result_w, v);
            wait_byte(release_r);
            return 0;
        }
        if wait_for_go {
            wait_byte(go_r);
        }
        // SAFETY: unshare takes an integer; this child is single-threaded.
        if unsafe { libc::unshare(flags) } != 0 {
            write_u64(result_w, REFUSED + nix::errno::Errno::last_raw() as u64);
            return 1;
        }
        // Entering a user namespace changes credentials, which may clear the death signal.
        die_with_parent(parent);
        // SAFETY: this child is single-threaded; the grandchild runs only raw system calls.
        let worker = unsafe { libc::fork() };
        if worker == 0 {
            // In a fresh PID namespace getppid() is 0, so no parent check: only the signal.
            // SAFETY: prctl with integer arguments.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
            write_u64(result_w, work());
            wait_byte(release_r);
            // SAFETY: `_exit` is async-signal-safe and never returns.
            unsafe { libc::_exit(0) };
        }
        if worker < 0 {
            write_u64(result_w, REFUSED + nix::errno::Errno::last_raw() as u64);
            return 1;
        }
        s.worker_pid.store(worker, Ordering::Release);
        let mut status = 0;
        // SAFETY: waits for our own child; `status` is a valid out-pointer.
        unsafe { libc::waitpid(worker, &mut status, 0) };
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            0
        } else {
            1
        }
    };
    // SAFETY: raw system calls only, in both children (see the module docs).
    let pid = unsafe { fork_child(child) }.context("fork a ladder worker")?;
    children.push(pid);
    if let Some(cg) = cgroup {
        cg.add(pid.as_raw())?;
        // SAFETY: one byte from a valid buffer.
        if unsafe { libc::write(go.write, [1u8].as_ptr().cast(), 1) } != 1 {
            bail!("release the child into its cgroup");
        }
    }
    let got = read_result(result.read)?;
    let elapsed = start.elapsed();
    if got > REFUSED {
        bail!(
            "the child could not set up its worker: {}",
            errno_text((got - REFUSED) as i32)
        );
    }
    if got != ANSWER {
        bail!("the worker sent {got}, not {ANSWER}");
    }
    // The intermediate stores the worker's pid right after fork returns, maybe after the
    // worker already answered: wait for it briefly.
    let deadline = Instant::now() + RESULT_TIMEOUT;
    let worker = loop {
        let p = s.worker_pid.load(Ordering::Acquire);
        if p != 0 || Instant::now() > deadline {
            break p;
        }
        std::thread::yield_now();
    };
    let memory = (worker > 0).then(|| rss_uss(&worker.to_string())).flatten();
    let cgroup_memory = cgroup.and_then(|cg| cg.memory_current());
    // SAFETY: one byte from a valid buffer.
    unsafe { libc::write(release.write, [1u8].as_ptr().cast(), 1) };
    if children.wait_all() != 1 {
        bail!("a ladder worker did not exit cleanly");
    }
    Ok(Sample {
        start: elapsed,
        rss: memory.map(|m| m.0),
        uss: memory.map(|m| m.1),
        cgroup_memory,
        child: Some(pid.as_raw()),
    })
}

/// A cgroup v2 directory this experiment created; dropping it kills what is left inside and
/// removes it.
#[derive(Debug)]
pub struct Cgroup {
    path: PathBuf,
}

/// The cgroup2 mount to create cgroups under: `/sys/fs/cgroup`, or the unified hierarchy of a
/// hybrid setup, with the reason when neither is usable.
pub fn cgroup2_root() -> std::result::Result<PathBuf, String> {
    let mounts =
        std::fs::read_to_string("/proc/mounts").map_err(|e| format!("/proc/mounts: {e}"))?;
    let cgroup2: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, fstype) = (f.next()?, f.next()?, f.next()?);
            (fstype == "cgroup2").then_some(dir)
        })
        .collect();
    let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|d| cgroup2.contains(d))
        .ok_or_else(|| "no cgroup2 at /sys/fs/cgroup (cgroup v1 only)".to_string())?;
    Ok(PathBuf::from(root))
}

impl Cgroup {
    /// Creates `root/name` (a directory a cgroup2 mount turns into a cgroup).
    pub fn create(root: &Path, name: &str) -> Result<Cgroup> {
        let path = root.join(name);
        std::fs::create_dir(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(Cgroup { path })
    }

    /// Creates a cgroup with a memory limit, or says why it cannot.
    pub fn with_memory_limit(max: u64) -> std::result::Result<Cgroup, String> {
        let root = cgroup2_root()?;
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
            .map_err(|e| format!("{}/cgroup.controllers: {e}", root.display()))?;
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(format!(
                "the cgroup2 hierarchy at {} has no memory controller (controllers: {}); it is \
                 bound to cgroup v1 here",
                root.display(),
                if controllers.trim().is_empty() {
                    "none"
                } else {
                    controllers.trim()
                }
            ));
        }
        let subtree =
            std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
        // Enabling the controller would change the machine's cgroup setup and outlive the
        // lab: use it only where it is enabled already.
        if !subtree.split_whitespace().any(|c| c == "memory") {
            return Err(format!(
                "the memory controller is not enabled for children of {} (cgroup.subtree_control), \
                 and the lab does not change that",
                root.display()
            ));
        }
        let cg = Cgroup::create(&root, &format!("proctor-lab-{}", std::process::id()))
            .map_err(|e| format!("{e:#}"))?;
        std::fs::write(cg.path.join("memory.max"), max.to_string())
            .map_err(|e| format!("set {}/memory.max: {e}", cg.path.display()))?;
        Ok(cg)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves process `pid` into this cgroup.
    pub fn add(&self, pid: i32) -> Result<()> {
        let procs = self.path.join("cgroup.procs");
        std::fs::write(&procs, pid.to_string())
            .with_context(|| format!("move {pid} into {}", procs.display()))
    }

    /// The processes in this cgroup.
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    fn memory_current(&self) -> Option<f64> {
        std::fs::read_to_string(self.path.join("memory.current"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Only this experiment's children are ever moved in; kill any still there (an error
        // path), then retry rmdir while the kernel finishes their exit.
        for pid in self.pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        for _ in 0..200 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// A container runtime with a tiny image already present, or why there is none.
#[derive(Debug, Clone)]
struct Runtime {
    binary: String,
    image: String,
}

/// Tiny images tried, in order; none is ever pulled.
const IMAGES: [&str; 4] = ["busybox:latest", "alpine:latest", "busybox", "alpine"];

/// Runs `cmd` with a deadline; its stdout on success.
fn output_within(cmd: &mut Command, limit: Duration) -> std::result::Result<String, String> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("no answer within {limit:?}"));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().next().unwrap_or("failed").trim().to_string())
    }
}

fn on_path(binary: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            d.join(binary).metadata().is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

fn find_runtime() -> std::result::Result<Runtime, String> {
    let mut why = Vec::new();
    for binary in ["docker", "podman"] {
        if !on_path(binary) {
            why.push(format!("{binary}: not installed"));
            continue;
        }
        let listed = output_within(
            Command::new(binary).args(["images", "--format", "{{.Repository}}:{{.Tag}}"]),
            Duration::from_secs(5),
        );
        match listed {
            Err(e) => why.push(format!("{binary} images: {e}")),
            Ok(list) => {
                let present: Vec<&str> = list.lines().map(str::trim).collect();
                match IMAGES.iter().find(|i| {
                    present
                        .iter()
                        .any(|p| p == *i || p.rsplit('/').next() == Some(**i))
                }) {
                    Some(image) => {
                        return Ok(Runtime {
                            binary: binary.to_string(),
                            image: image.to_string(),
                        });
                    }
                    None => why.push(format!(
                        "{binary}: no busybox or alpine image present locally (the lab never pulls)"
                    )),
                }
            }
        }
    }
    Err(why.join("; "))
}

/// `run --rm` of the image, timed from spawn to the first line of its output.
fn run_container(rt: &Runtime) -> Result<Sample> {
    let start = Instant::now();
    let mut child = Command::new(&rt.binary)
        .args(["run", "--rm", "--network", "none", "--pull", "never"])
        .arg(&rt.image)
        .args(["echo", &ANSWER.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("start {} run", rt.binary))?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("the container's stdout")?;
    let read = BufReader::new(stdout).read_line(&mut line);
    let elapsed = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    read.context("read the container's output")?;
    if line.trim() != ANSWER.to_string() || !status.is_some_and(|s| s.success()) {
        bail!("{} run did not answer {ANSWER}", rt.binary);
    }
    Ok(Sample {
        start: elapsed,
        ..Sample::default()
    })
}

/// The control: fork, the child `_exit`s at once, `waitpid`: the op `spawn.fork` times, here
/// in this parent at this point of the run.
fn run_control() -> Result<Duration> {
    let start = Instant::now();
    // SAFETY: the child returns at once into `_exit` (and sets its death signal): raw
    // system calls only.
    let pid = unsafe { fork_child(|| 0) }.context("fork the control")?;
    let status = nix::sys::wait::waitpid(pid, None).context("reap the control")?;
    let elapsed = start.elapsed();
    if status != nix::sys::wait::WaitStatus::Exited(pid, 0) {
        bail!("the control child ended with {status:?}");
    }
    Ok(elapsed)
}

impl Experiment for Containers {
    fn id(&self) -> &'static str {
        "containers"
    }

    fn title(&self) -> &'static str {
        "The isolation ladder"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let repetitions = ROUNDS
            * match config.profile {
                Profile::Tiny => 1,
                Profile::Quick => 15,
                Profile::Full => 17,
            };
        let container_reps = match config.profile {
            Profile::Tiny => 1,
            Profile::Quick => 5,
            Profile::Full => 11,
        };
        progress.begin("containers", (repetitions + 2) as u64);
        // Every rung on one CPU: this thread pinned, every worker inheriting the pin.
        let placement = Topology::detect().pair(Placement::SameCpu);
        let _pin = placement.map(|p| pin_current_thread(p.a)).transpose()?;
        let namespaces = probe_namespaces()?;
        let flags = NAMESPACES
            .iter()
            .zip(&namespaces)
            .filter(|(_, p)| p.permitted)
            .fold(0, |acc, ((_, f), _)| acc | f);
        let entered: Vec<&str> = namespaces
            .iter()
            .filter(|p| p.permitted)
            .map(|p| p.kind.as_str())
            .collect();
        let refused_ns = namespaces
            .iter()
            .filter_map(|p| Some(format!("{}: {}", p.kind, p.reason.as_ref()?)))
            .collect::<Vec<_>>();
        let mut rungs: Vec<RungRuns> = Vec::new();
        rungs.push(RungRuns::new(
            Rung::Thread,
            "std::thread::spawn".into(),
            None,
        ));
        rungs.push(RungRuns::new(Rung::Fork, "fork".into(), None));
        let ns_refusal = (flags == 0).then(|| {
            format!(
                "no namespace kind is permitted here ({})",
                refused_ns.join("; ")
            )
        });
        let ns_what = format!("fork, unshare({}), fork the worker", entered.join(", "));
        rungs.push(RungRuns::new(
            Rung::Namespaces,
            ns_what.clone(),
            ns_refusal.clone(),
        ));
        let cgroup = match &ns_refusal {
            Some(why) => Err(format!("needs the namespace rung: {why}")),
            None => Cgroup::with_memory_limit(CGROUP_MEMORY_MAX),
        };
        let cgroup_path = cgroup.as_ref().ok().map(|c| c.path().display().to_string());
        rungs.push(match &cgroup {
            Ok(cg) => RungRuns::new(
                Rung::Cgroup,
                format!(
                    "{ns_what}, in {} with memory.max = {CGROUP_MEMORY_MAX}",
                    cg.path().display()
                ),
                None,
            ),
            Err(why) => RungRuns::new(Rung::Cgroup, "-".into(), Some(why.clone())),
        });
        let runtime = find_runtime();
        rungs.push(match &runtime {
            Ok(rt) => RungRuns::new(
                Rung::Container,
                format!(
                    "{} run --rm --network none --pull never {} echo {ANSWER}",
                    rt.binary, rt.image
                ),
                None,
            ),
            Err(why) => RungRuns::new(Rung::Container, "-".into(), Some(why.clone())),
        });
        progress.advance(1, "probed namespaces, cgroup and container runtime");

        let cg = cgroup.as_ref().ok();
        let measured = |rung: Rung| -> Result<Sample> {
            match rung {
                Rung::Thread => run_thread(),
                Rung::Fork => run_process(0, None),
                Rung::Namespaces => run_process(flags, None),
                Rung::Cgroup => run_process(flags, cg),
                Rung::Container => {
                    run_container(runtime.as_ref().expect("only run with a runtime"))
                }
            }
        };
        let mut control_ns = Vec::with_capacity(repetitions);
        let mut parent = (None, None);
        let result = (|| -> Result<()> {
            // Warm-up: one run of each rung, discarded. A rung that cannot run here (the
            // namespace kinds together refused, a cgroup that refuses the move) says why.
            for r in rungs.iter_mut().filter(|r| r.refused.is_none()) {
                if let Err(e) = measured(r.rung) {
                    r.refused = Some(format!("{e:#}"));
                }
            }
            run_control()?;
            parent = (
                crate::measure::process_rss_bytes(),
                crate::procfs::read_kib_field("/proc/self/status", "VmPTE"),
            );
            for rep in 0..repetitions {
                for r in rungs.iter_mut().filter(|r| r.refused.is_none()) {
                    if r.rung == Rung::Container && rep >= container_reps {
                        continue;
                    }
                    let s = measured(r.rung)
                        .with_context(|| format!("run the {} rung", r.rung.key()))?;
                    r.start_ns.push(s.start.as_nanos() as f64);
                    r.rss_bytes.extend(s.rss);
                    r.uss_bytes.extend(s.uss);
                    r.cgroup_memory_bytes.extend(s.cgroup_memory);
                    r.child_pids.extend(s.child);
                }
                control_ns.push(run_control()?.as_nanos() as f64);
                progress.advance(1, &format!("round {} of {repetitions}", rep + 1));
            }
            Ok(())
        })();
        let removed_path = cgroup_path.clone();
        drop(cgroup);
        let cgroup_removed = removed_path.is_none_or(|p| !Path::new(&p).exists());
        result?;
        if !cgroup_removed {
            bail!("the cgroup {cgroup_path:?} could not be removed");
        }
        progress.end();
        let result = ContainersResult {
            repetitions,
            rounds: ROUNDS,
            namespaces,
            rungs,
            cgroup_path,
            cgroup_removed,
            placement,
            control_ns,
            parent_rss_bytes: parent.0,
            parent_page_tables_bytes: parent.1,
        };
        let mut section = section_from(&result);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

/// The median of each round's runs (the runs of round k are the k-th slice of the repetitions,
/// every rung's runs of a round interleaved); the container rung, with fewer runs, has none.
fn round_medians(r: &RungRuns, rounds: usize) -> Vec<f64> {
    if r.rung == Rung::Container || rounds < 2 || r.start_ns.len() < rounds {
        return Vec::new();
    }
    r.start_ns
        .chunks(r.start_ns.len() / rounds)
        .take(rounds)
        .map(crate::stats::median)
        .collect()
}

fn median(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| median_and_spread(xs).0)
}

#[cfg(test)]
mod tests;
