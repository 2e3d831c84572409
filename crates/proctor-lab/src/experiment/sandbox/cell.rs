//! The lab's side of one attack in one place: the pool it runs on, the victim or terminal it
//! needs, and the judgement from outside of whether it worked.
//!
//! This file is long because each attack is judged from outside in its own way (a victim's
//! exit, the lab's pty, stdio and descriptor identities, the worker's memory and capabilities),
//! and each of those probes lives beside the one `attempt` that uses it.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use proctor::{Pool, PoolBuilder, Sandbox, TaskError};

use super::attack::{self, Attack, Class, Try};
use super::{CellResult, Outcome, Place};
use crate::procfs;

/// The pool's task timeout in the timeout attacks.
pub(super) const TIMEOUT: Duration = Duration::from_millis(200);

/// The pool's memory limit in the limit attacks.
pub(super) const MEMORY_LIMIT: u64 = 64 << 20;

/// An outcome that arrives this much later than it should is a lost wake-up.
const LATE: Duration = Duration::from_secs(1);

/// What the lab knows and holds for the attacks: the listener, the pty, and its own answers
/// to the questions the attacks ask, to compare theirs with.
pub(super) struct Env {
    pub base: Try,
    pub listener: std::net::TcpListener,
    pub connections_seen: u64,
    /// The lab's pty (master, slave), where one could be opened.
    pub pty: Option<(OwnedFd, OwnedFd)>,
    /// "N bytes, digest D" of /etc/passwd, as the lab reads it.
    pub passwd: Option<String>,
    /// "inode I size S" of the oracle file, as the lab stats it.
    pub oracle: Option<String>,
    /// The lab's own faccessat answer for the oracle file.
    pub access: String,
    /// The lab's working directory.
    pub cwd: String,
    /// Whether any of the lab's stdin, stdout and stderr is a terminal.
    pub has_tty: bool,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Env {
    pub(super) fn new(base: Try) -> Result<Env> {
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
            .context("listen on a loopback port for the connect attacks")?;
        listener
            .set_nonblocking(true)
            .context("make the listener non-blocking")?;
        let port = listener.local_addr().context("the listener's port")?.port();
        let pty = open_pty();
        let summary = |b: Vec<u8>| format!("{} bytes, digest {:016x}", b.len(), attack::digest(&b));
        let oracle = std::fs::metadata(&base.path)
            .ok()
            .map(|m| format!("inode {} size {}", m.ino(), m.size()));
        let path = std::ffi::CString::new(base.path.clone()).context("the oracle path")?;
        // SAFETY: faccessat with a NUL-terminated path this function owns.
        let access = match unsafe { libc::faccessat(libc::AT_FDCWD, path.as_ptr(), libc::R_OK, 0) }
        {
            0 => "readable".to_string(),
            _ => format!(
                "errno {}",
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            ),
        };
        let pty_fd = pty.as_ref().map_or(-1, |(_, s)| s.as_raw_fd());
        Ok(Env {
            base: Try {
                port,
                pid: std::process::id() as i32,
                fd: pty_fd,
                ..base
            },
            listener,
            connections_seen: 0,
            pty,
            passwd: std::fs::read("/etc/passwd").ok().map(summary),
            oracle,
            access,
            cwd: std::env::current_dir()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            // SAFETY: isatty on the standard descriptors.
            has_tty: (0..3).any(|fd| unsafe { libc::isatty(fd) } == 1),
        })
    }

    /// Connections accepted since the last call.
    fn accept(&mut self) -> u64 {
        let mut n = 0;
        while self.listener.accept().is_ok() {
            n += 1;
        }
        self.connections_seen += n;
        n
    }
}

/// Why `attack` cannot be set up in `place`, if it cannot.
fn not_applicable(attack: Attack, place: Place, env: &Env) -> Option<&'static str> {
    use Attack::*;
    let thread = place == Place::Thread;
    let filtered = place == Place::Sandboxed;
    Some(match attack {
        TraceParent if thread => {
            "a thread is the lab process: it has every right the lab has, and would trace the \
             lab's own parent (the shell)"
        }
        Scribble | DoorbellSleepers | FutexRequeue | FutexPi if thread => {
            "a thread shares the lab's whole address space: it can write over any of the \
             lab's memory, the pool's included, with no descriptor to find"
        }
        SignalSetown | SignalFiosetown if thread => {
            "a thread pool has no request pipe to arm (and a thread may kill the victim \
             directly)"
        }
        FdRead | FdWrite if thread => {
            "a thread holds every descriptor the lab holds: there is nothing beyond them to \
             inherit"
        }
        TimeoutStartedAt | TimeoutStarted if thread => {
            "a thread pool keeps its clocks in the lab: there is no arena to write"
        }
        LimitSharedAnon | LimitMemfd | LimitMremap if thread => "memory_limit is process mode only",
        SigsysHandler | FakeViolation if !filtered => {
            "no seccomp filter here: nothing is forbidden, so there is no violation to hide \
             or fake"
        }
        TiocstiInherited if !env.has_tty => {
            "none of the lab's stdin, stdout and stderr is a terminal in this run: no \
             inherited terminal to reach"
        }
        TiocstiPty if env.pty.is_none() => "the lab could not open a pseudo-terminal",
        _ => return None,
    })
}

fn sandbox(attack: Attack) -> Sandbox {
    let s = Sandbox::compute().allow_unavailable(true);
    if attack.class() == Class::Capabilities {
        s.network_namespace(true)
    } else {
        s
    }
}

/// The one-worker pool `attack` runs on in `place`.
fn builder(attack: Attack, place: Place) -> PoolBuilder {
    let mut b = match place {
        Place::Thread => Pool::threads(1),
        Place::Process => Pool::processes(1),
        Place::Sandboxed => Pool::processes(1).sandbox(sandbox(attack)),
    };
    // Only the stderr attack lets a worker's stderr through: it is what it attacks.
    b = b.forward_stderr(attack == Attack::StderrWrite);
    b = match attack.class() {
        Class::Timeout => b.task_timeout(TIMEOUT),
        _ => b.task_timeout(Duration::from_secs(20)),
    };
    if attack.class() == Class::Limit {
        b = b.memory_limit(MEMORY_LIMIT);
    }
    b
}

fn own_pid(_: ()) -> u32 {
    std::process::id()
}

fn square(n: u64) -> u64 {
    n * n
}

/// The pool has gone on: 64 squares, every value right, within [`LATE`].
fn intact(pool: &Pool) -> bool {
    let t0 = Instant::now();
    let out = pool.map(square, (0..64).collect::<Vec<u64>>());
    t0.elapsed() < LATE
        && out.len() == 64
        && out
            .iter()
            .enumerate()
            .all(|(i, o)| *o == Ok((i * i) as u64))
}

/// Runs `attack` in `place` on a pool of its own and judges it.
pub(super) fn run(attack: Attack, place: Place, env: &mut Env, forks: u32) -> CellResult {
    let cell = |outcome, pool_intact| CellResult {
        attack,
        place,
        outcome,
        pool_intact,
    };
    if let Some(why) = not_applicable(attack, place, env) {
        return cell(Outcome::NotApplicable { why: why.into() }, None);
    }
    let mut b = builder(attack, place);
    if attack.class() == Class::InitThread {
        b = b.init_worker(attack::start_server);
    }
    let pool = match b.build() {
        Ok(p) => p,
        Err(e) => {
            return cell(
                Outcome::Refused {
                    error: format!("the pool refused to build: {e}"),
                },
                None,
            );
        }
    };
    let mut victim = None;
    if attack.class() == Class::Signals {
        match std::process::Command::new("sleep")
            .arg("30")
            .stdin(std::process::Stdio::null())
            .spawn()
        {
            Ok(child) => victim = Some(child),
            Err(e) => {
                return cell(
                    Outcome::NotApplicable {
                        why: format!("could not start a victim process (sleep): {e}"),
                    },
                    None,
                );
            }
        }
    }
    // The pool forwards a worker's stderr whenever it drains the worker's pipe, which may be
    // as late as its shutdown: the capture lasts until the pool is gone.
    let capture = (attack == Attack::StderrWrite)
        .then(Capture::start)
        .flatten();
    let outcome = attempt(attack, env, &pool, forks, victim.as_mut());
    let pool_intact = Some(intact(&pool));
    // A signal sent through the request pipe goes out with the pool's next request: the
    // intact check's map above.
    let outcome = match (outcome, victim) {
        (Judged::Victim(detail), Some(mut v)) => victim_died(&mut v, detail),
        (Judged::Victim(_), None) => Outcome::NoEffect {
            detail: "no victim".into(),
        },
        (Judged::Done(o), v) => {
            if let Some(mut v) = v {
                reap(&mut v);
            }
            o
        }
    };
    // Undo what the tamper attacks did to the lab itself, when they ran on its thread.
    if place == Place::Thread {
        attack::ANSWER.store(attack::INNOCENT, std::sync::atomic::Ordering::SeqCst);
        if attack == Attack::TamperCode
            && attack::innocent_bytes() != env_innocent()
            && attack::patch(attack::innocent_at(), &env_innocent()).is_err()
        {
            // The lab's own copy of a function nothing else calls stays patched; said.
            return cell(
                Outcome::Worked {
                    detail: "patched the lab's own code, and the lab could not undo it".into(),
                },
                pool_intact,
            );
        }
    }
    drop(pool);
    let captured = capture.map(Capture::finish).unwrap_or_default();
    let outcome = match outcome {
        Outcome::NoEffect { detail }
            if captured
                .windows(attack::STDERR_MARKER.len())
                .any(|w| w == attack::STDERR_MARKER) =>
        {
            Outcome::Worked {
                detail: format!(
                    "{detail}; but the pool forwarded the line to the lab's stderr verbatim, \
                     escape sequence included"
                ),
            }
        }
        o => o,
    };
    drain_pty(env);
    cell(outcome, pool_intact)
}

/// The bytes at `innocent` before any attack, read once.
fn env_innocent() -> Vec<u8> {
    static ORIGINAL: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ORIGINAL.get_or_init(attack::innocent_bytes).clone()
}

/// An attack's outcome, or "look at the victim" once the pool's next request went out.
enum Judged {
    Done(Outcome),
    Victim(String),
}

/// Submits the attack, watches what the lab can watch while it runs, and judges.
fn attempt(
    attack: Attack,
    env: &mut Env,
    pool: &Pool,
    forks: u32,
    victim: Option<&mut std::process::Child>,
) -> Judged {
    let _ = env_innocent();
    let mut t = Try {
        attack,
        forks,
        ..env.base.clone()
    };
    if let Some(v) = &victim {
        t.pid = v.id() as i32;
    }
    let lab = std::process::id();
    // The worker's pid, from the worker itself (this also makes sure it has started).
    let worker = pool.submit(own_pid, ()).join().unwrap_or(lab);
    env.accept();
    let t0 = Instant::now();
    let task = pool.submit(attack::compromised, t);
    let mut peak_rss = 0u64;
    if attack.class() == Class::Limit {
        while !task.is_finished() {
            peak_rss = peak_rss.max(rss(worker));
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let r = task.join();
    let elapsed = t0.elapsed();

    if attack == Attack::FakeViolation {
        return Judged::Done(match r {
            Err(TaskError::SandboxViolation { syscall, .. }) => Outcome::Worked {
                detail: format!(
                    "the pool reported a violation at {syscall}, a call the task never made"
                ),
            },
            Err(e) => Outcome::NoEffect {
                detail: format!("the pool reported: {e}"),
            },
            Ok(Ok(d)) | Ok(Err(d)) => Outcome::NoEffect { detail: d },
        });
    }
    let detail = match r {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => return Judged::Done(Outcome::failed(Ok(e))),
        Err(e) => return Judged::Done(Outcome::failed(Err(e))),
    };
    let worked = |why: String| Outcome::Worked {
        detail: format!("{detail}; {why}"),
    };
    let no_effect = |why: String| Outcome::NoEffect {
        detail: format!("{detail}; {why}"),
    };
    let verdict = |ok: bool, yes: String, no: String| if ok { worked(yes) } else { no_effect(no) };
    use Attack::*;
    Judged::Done(match attack {
        ReadPasswd | InitThreadRead => verdict(
            env.passwd.as_deref() == Some(detail.as_str()),
            "the lab read the same bytes".into(),
            "not the bytes the lab reads".into(),
        ),
        Connect | InitThreadConnect => {
            let n = env.accept();
            verdict(
                n > 0,
                format!("the lab's listener accepted {n}"),
                "the lab's listener saw nothing".into(),
            )
        }
        SignalKill | SignalTgkill | SignalPidfd | SignalSigqueue | SignalSetown
        | SignalFiosetown => return Judged::Victim(detail),
        TiocstiPty => {
            let got = read_pty(env);
            verdict(
                got.windows(attack::TYPED.len()).any(|w| w == attack::TYPED),
                format!(
                    "the lab read {:?} from its pty",
                    String::from_utf8_lossy(&got)
                ),
                "nothing arrived on the lab's pty".into(),
            )
        }
        StdinRead | StdoutWrite | StdoutPwrite => {
            let fd = if attack == StdinRead { 0 } else { 1 };
            same_stdio(worker, fd, detail)
        }
        // And by what reaches the lab's stderr, once the pool is gone (see `run`).
        StderrWrite => same_stdio(worker, 2, detail),
        FdRead | FdWrite => {
            let foreign = foreign_fds(worker, &detail);
            verdict(
                !foreign.is_empty(),
                format!("not the worker's own: {}", foreign.join(", ")),
                "every one is the worker's own channel to the pool".into(),
            )
        }
        TimeoutStartedAt | TimeoutStarted => verdict(
            elapsed >= attack::TIMEOUT_SLEEP,
            format!(
                "its own result came after {} ms, past the {} ms timeout",
                elapsed.as_millis(),
                TIMEOUT.as_millis()
            ),
            format!("returned after {} ms", elapsed.as_millis()),
        ),
        LimitSharedAnon | LimitMemfd | LimitMremap => verdict(
            peak_rss > MEMORY_LIMIT,
            format!(
                "the worker's resident memory reached {} MiB, past the {} MiB limit",
                peak_rss >> 20,
                MEMORY_LIMIT >> 20
            ),
            format!(
                "the worker's resident memory peaked at {} MiB",
                peak_rss >> 20
            ),
        ),
        TamperCode | TamperStatic => {
            let next = if attack == TamperCode {
                pool.submit(attack::innocent, ()).join()
            } else {
                pool.submit(attack::read_static, ()).join()
            };
            match next {
                Ok(v) if v != attack::INNOCENT => worked(format!(
                    "the next, innocent task returned {v}, not {}",
                    attack::INNOCENT
                )),
                Ok(_) => no_effect("the next, innocent task returned its own value".into()),
                Err(e) => worked(format!("the next, innocent task failed: {e}")),
            }
        }
        // Judged by the pool's next map (see CellResult::worked) and by lateness.
        Scribble | DoorbellSleepers | FutexRequeue | FutexPi => verdict(
            elapsed > attack::TIMEOUT_SLEEP + LATE,
            format!("its outcome came {} ms late", elapsed.as_millis()),
            format!("its outcome came after {} ms", elapsed.as_millis()),
        ),
        CapEff => {
            let caps = cap_eff(worker);
            verdict(
                caps.as_deref()
                    .is_some_and(|c| !c.trim_start_matches('0').is_empty()),
                format!(
                    "the worker's CapEff is {}",
                    caps.clone().unwrap_or_default()
                ),
                format!(
                    "the worker's CapEff is {}",
                    caps.clone().unwrap_or("unknown".into())
                ),
            )
        }
        StatxPath | FstatatPath => verdict(
            env.oracle.as_deref() == Some(detail.as_str()),
            "what the lab's own stat says".into(),
            "not what the lab's own stat says".into(),
        ),
        AccessPath => verdict(
            detail == env.access,
            "the lab's own answer".into(),
            format!("the lab's own answer is {}", env.access),
        ),
        ReadlinkParent => verdict(
            detail == env.cwd,
            "the lab's working directory".into(),
            "not the lab's working directory".into(),
        ),
        SigsysHandler => verdict(
            pool.worker_pids().first().copied().unwrap_or(lab) == worker,
            "the same worker lives on, no violation reported".into(),
            "the worker was replaced".into(),
        ),
        PrctlName => {
            let names = thread_names(worker);
            verdict(
                names.iter().any(|n| n == "sshd"),
                format!("the lab sees a thread named sshd in pid {worker}"),
                format!("the lab sees {names:?}"),
            )
        }
        // The task's own account: the lab has no outside view of these.
        ReadHome | WriteFile | Fork | SignalParent | TraceParent | RawSocket | TiocstiInherited => {
            worked("(the task's own account)".into())
        }
        FakeViolation => unreachable!("judged above"),
    })
}

/// Waits up to 300 ms for the victim to die of a signal; kills and reaps it otherwise.
fn victim_died(v: &mut std::process::Child, detail: String) -> Outcome {
    let until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < until {
        if let Ok(Some(status)) = v.try_wait() {
            return match status.signal() {
                Some(sig) => Outcome::Worked {
                    detail: format!("{detail}; the victim died of signal {sig}"),
                },
                None => Outcome::NoEffect {
                    detail: format!("{detail}; the victim exited: {status}"),
                },
            };
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    reap(v);
    Outcome::NoEffect {
        detail: format!("{detail}; the victim was still alive 300 ms later"),
    }
}

/// Kills (SIGKILL) and reaps the lab's own victim.
fn reap(v: &mut std::process::Child) {
    let _ = v.kill();
    let _ = v.wait();
}

/// "Worked" when the worker's `fd` is the lab's own (the same file), as /proc shows it.
fn same_stdio(worker: u32, fd: i32, detail: String) -> Outcome {
    let theirs = std::fs::metadata(format!("/proc/{worker}/fd/{fd}"));
    let ours = std::fs::metadata(format!("/proc/self/fd/{fd}"));
    let what = std::fs::read_link(format!("/proc/self/fd/{fd}"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match (theirs, ours) {
        (Ok(a), Ok(b)) if (a.dev(), a.ino(), a.rdev()) == (b.dev(), b.ino(), b.rdev()) => {
            Outcome::Worked {
                detail: format!("{detail}; fd {fd} is the lab's own ({what})"),
            }
        }
        _ => Outcome::NoEffect {
            detail: format!("{detail}; fd {fd} is not the lab's own ({what})"),
        },
    }
}

/// The descriptors named in `list` ("3,5,9") that are neither a memfd nor a file the lab
/// itself holds (the pool's pipes, whose other end the lab holds, share their inode).
fn foreign_fds(worker: u32, list: &str) -> Vec<String> {
    let key = |m: &std::fs::Metadata| (m.dev(), m.ino());
    let ours: HashSet<(u64, u64)> = std::fs::read_dir("/proc/self/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .map(|m| key(&m))
                .collect()
        })
        .unwrap_or_default();
    list.split(',')
        .filter_map(|fd| {
            let path = format!("/proc/{worker}/fd/{}", fd.trim());
            let link = std::fs::read_link(&path).ok()?.display().to_string();
            let meta = std::fs::metadata(&path).ok()?;
            (!link.starts_with("/memfd:") && !ours.contains(&key(&meta)))
                .then(|| format!("fd {} ({link})", fd.trim()))
        })
        .collect()
}

/// Resident memory of `pid` (VmRSS: anonymous, file and shared), bytes.
fn rss(pid: u32) -> u64 {
    procfs::read(pid, "status")
        .ok()
        .and_then(|s| procfs::kib_field(&s, "VmRSS"))
        .unwrap_or(0)
}

fn cap_eff(pid: u32) -> Option<String> {
    let status = procfs::read(pid, "status").ok()?;
    procfs::status_value(&status, "CapEff").map(str::to_string)
}

/// The names of `pid`'s threads.
fn thread_names(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
                .map(|s| s.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// A pseudo-terminal of the lab's own: (master, slave), the slave non-blocking.
fn open_pty() -> Option<(OwnedFd, OwnedFd)> {
    use std::os::fd::FromRawFd;
    // SAFETY: posix_openpt, grantpt, unlockpt and ptsname_r on a descriptor this function
    // owns, with a buffer it owns; each new descriptor is owned once, by an OwnedFd.
    unsafe {
        let m = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        if m < 0 {
            return None;
        }
        let master = OwnedFd::from_raw_fd(m);
        let mut name = [0 as libc::c_char; 128];
        if libc::grantpt(m) != 0
            || libc::unlockpt(m) != 0
            || libc::ptsname_r(m, name.as_mut_ptr(), name.len()) != 0
        {
            return None;
        }
        let s = libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC | libc::O_NONBLOCK,
        );
        if s < 0 {
            return None;
        }
        Some((master, OwnedFd::from_raw_fd(s)))
    }
}

/// What the lab's pty slave has to read now.
fn read_pty(env: &Env) -> Vec<u8> {
    let Some((_, slave)) = &env.pty else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 256];
    // The line discipline may take a moment to hand the typed line over.
    let until = Instant::now() + Duration::from_millis(100);
    while Instant::now() < until {
        match nix::unistd::read(slave, &mut buf) {
            Ok(n) if n > 0 => out.extend_from_slice(&buf[..n]),
            _ if !out.is_empty() => break,
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    out
}

/// Empties the pty both ways (the echo of typed bytes waits on the master).
fn drain_pty(env: &Env) {
    let Some((master, slave)) = &env.pty else {
        return;
    };
    let mut buf = [0u8; 256];
    while matches!(nix::unistd::read(slave, &mut buf), Ok(n) if n > 0) {}
    let _ = nix::fcntl::fcntl(
        master,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    while matches!(nix::unistd::read(master, &mut buf), Ok(n) if n > 0) {}
}

/// The lab's stderr, redirected into a pipe for the length of the stderr attack, so that
/// the lab sees what a worker's line looks like when it reaches the parent's stderr.
struct Capture {
    saved: OwnedFd,
    read: OwnedFd,
}

impl Capture {
    fn start() -> Option<Capture> {
        use nix::fcntl::OFlag;
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).ok()?;
        let saved = nix::unistd::dup(std::io::stderr()).ok()?;
        let _ = std::io::Write::flush(&mut std::io::stderr());
        nix::unistd::dup2_stderr(&write).ok()?;
        Some(Capture { saved, read })
    }

    /// Waits up to 300 ms for the marker, puts stderr back, and returns what arrived.
    fn finish(self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let until = Instant::now() + Duration::from_millis(300);
        loop {
            while let Ok(n @ 1..) = nix::unistd::read(&self.read, &mut buf) {
                out.extend_from_slice(&buf[..n]);
            }
            let seen = out
                .windows(attack::STDERR_MARKER.len())
                .any(|w| w == attack::STDERR_MARKER);
            if seen || Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = nix::unistd::dup2_stderr(&self.saved);
        out
    }
}
