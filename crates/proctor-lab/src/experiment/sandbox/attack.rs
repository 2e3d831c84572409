//! The compromised task's side of the sandbox experiment: every attack, as the plain `fn`s a
//! pool runs, and the innocent tasks that run after some of them to see whether a later
//! task's outcome changed.
//!
//! Everything here is hostile on purpose, and bounded on purpose: signals go only to the
//! victim process the lab started for the attack, terminal input is injected only into a
//! pseudo-terminal the lab opened itself (on an inherited terminal the attack passes a null
//! pointer, so the kernel runs every permission check and then fails to read the byte),
//! writes to the parent's stdio are zero-length, memory attacks stop at 256 MiB, and a file
//! written is removed again. Whether an attack *worked* is decided by the lab from outside
//! where it can be (see `judge` in the parent module); what a task returns here is its own
//! account.
//!
//! This file is long on purpose: one short plain `fn` per attack, and a list of attacks is
//! easier to audit side by side in one place than spread over files.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A family of attacks: what the attacker is after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    /// Files the user can read or write.
    Files,
    /// The network.
    Network,
    /// Starting processes.
    Processes,
    /// The parent process.
    Parent,
    /// Signals to another process (one the lab started as a victim).
    Signals,
    /// The terminal: typing into it.
    Terminal,
    /// The parent's stdin, stdout and stderr.
    Stdio,
    /// Descriptors the worker inherited beyond its own.
    Descriptors,
    /// A thread an initializer left running, outside the sandbox.
    InitThread,
    /// Outliving the task timeout.
    Timeout,
    /// Outgrowing the memory limit.
    Limit,
    /// Changing a later task's outcome through code or data.
    Tamper,
    /// Memory shared with the pool.
    SharedMemory,
    /// Capabilities.
    Capabilities,
    /// Learning about files without opening them.
    Oracle,
    /// The seccomp filter itself, and the calls it lets through with any argument.
    Seccomp,
}

impl Class {
    /// The words the report uses.
    pub fn label(self) -> &'static str {
        match self {
            Class::Files => "files",
            Class::Network => "network",
            Class::Processes => "processes",
            Class::Parent => "the parent",
            Class::Signals => "signals to another process",
            Class::Terminal => "the terminal",
            Class::Stdio => "the parent's stdio",
            Class::Descriptors => "inherited descriptors",
            Class::InitThread => "an initializer's thread",
            Class::Timeout => "the task timeout",
            Class::Limit => "the memory limit",
            Class::Tamper => "a later task's code or data",
            Class::SharedMemory => "memory shared with the pool",
            Class::Capabilities => "capabilities",
            Class::Oracle => "metadata oracles",
            Class::Seccomp => "the seccomp filter",
        }
    }
}

/// What a compromised task tries: one route of one class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attack {
    /// Read `/etc/passwd`.
    ReadPasswd,
    /// List the user's home directory.
    ReadHome,
    /// Write a file in the temporary directory.
    WriteFile,
    /// Connect to the lab's loopback port.
    Connect,
    /// Fork 1 000 processes, one after another.
    Fork,
    /// Signal the parent (signal 0).
    SignalParent,
    /// `PTRACE_SEIZE` the parent.
    TraceParent,
    /// `kill(victim, SIGUSR1)`.
    SignalKill,
    /// `tgkill(victim, victim, SIGUSR1)`.
    SignalTgkill,
    /// `pidfd_open(victim)` + `pidfd_send_signal(SIGUSR1)`.
    SignalPidfd,
    /// `rt_sigqueueinfo(victim, SIGUSR1)`.
    SignalSigqueue,
    /// `fcntl(F_SETOWN(victim), F_SETSIG(SIGUSR1))` + `O_ASYNC` on the worker's request pipe:
    /// the parent's next request signals the victim.
    SignalSetown,
    /// The same through `ioctl(FIOSETOWN)` (or `F_SETOWN` where the file has no
    /// FIOSETOWN, as a pipe has not) + `ioctl(FIOASYNC)` (signal SIGIO).
    SignalFiosetown,
    /// `ioctl(TIOCSTI)` on an inherited descriptor that is a terminal, with a null byte
    /// pointer: every permission check runs, nothing is typed.
    TiocstiInherited,
    /// `ioctl(TIOCSTI)` on the lab's own pseudo-terminal, reached through
    /// `/proc/<lab>/fd/<n>`: the lab reads back what arrives.
    TiocstiPty,
    /// `read(0, _, 0)` on the parent's stdin.
    StdinRead,
    /// `write(1, _, 0)` on the parent's stdout.
    StdoutWrite,
    /// `pwrite(1, _, 0, 0)` on the parent's stdout (a file's start, where stdout is a file).
    StdoutPwrite,
    /// `write(2, ..)` of an escape sequence and a line, to the parent's stderr.
    StderrWrite,
    /// Read every descriptor beyond stdio and the shared memory (`read(fd, _, 0)`).
    FdRead,
    /// Duplicate and write every such descriptor (`fcntl(F_DUPFD)`, `write(fd, _, 0)`).
    FdWrite,
    /// Ask the initializer's thread (started before the sandbox) to read `/etc/passwd`.
    InitThreadRead,
    /// Ask it to connect to the lab's loopback port.
    InitThreadConnect,
    /// Write `u64::MAX` into the arena's STARTED_AT word, then sleep past the timeout.
    TimeoutStartedAt,
    /// Write 0 into the arena's STARTED word (no task started), then sleep past it.
    TimeoutStarted,
    /// 256 MiB through `mmap(MAP_SHARED | MAP_ANONYMOUS)`, touched.
    LimitSharedAnon,
    /// 256 MiB by growing the arena's memfd with `ftruncate`, mapped and touched.
    LimitMemfd,
    /// 256 MiB by `mremap` of a small private mapping, touched.
    LimitMremap,
    /// `mprotect(RWX)` on an innocent task's code page and patch it to return 7.
    TamperCode,
    /// Set a static that the next, innocent task returns.
    TamperStatic,
    /// Overwrite the shared memory the worker holds.
    Scribble,
    /// Keep the doorbell's sleeper count at zero while the parent waits.
    DoorbellSleepers,
    /// The worker's effective capabilities (`CapEff`), with a network namespace.
    CapEff,
    /// `socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)`, with a network namespace.
    RawSocket,
    /// `statx(AT_FDCWD, "/etc/shadow", AT_EMPTY_PATH)`.
    StatxPath,
    /// `newfstatat(AT_FDCWD, "/etc/shadow", AT_EMPTY_PATH)`.
    FstatatPath,
    /// `faccessat(AT_FDCWD, "/etc/shadow", R_OK)`.
    AccessPath,
    /// `readlink("/proc/<lab>/cwd")`: where the parent works.
    ReadlinkParent,
    /// Install its own SIGSYS handler, then make a forbidden call: the violation is hidden.
    SigsysHandler,
    /// Write the sandbox's violation line to stderr and exit with its code: a fake violation.
    FakeViolation,
    /// `prctl(PR_SET_NAME, "sshd")`: the worker hides under another name.
    PrctlName,
    /// `FUTEX_CMP_REQUEUE` of the doorbell's waiters onto a word nobody rings.
    FutexRequeue,
    /// `FUTEX_TRYLOCK_PI` on every word of the arena's header: the kernel writes the task's
    /// thread id into each word that is 0.
    FutexPi,
}

impl Attack {
    /// Every attack, in report order.
    pub const ALL: [Attack; 43] = [
        Attack::ReadPasswd,
        Attack::ReadHome,
        Attack::WriteFile,
        Attack::Connect,
        Attack::Fork,
        Attack::SignalParent,
        Attack::TraceParent,
        Attack::SignalKill,
        Attack::SignalTgkill,
        Attack::SignalPidfd,
        Attack::SignalSigqueue,
        Attack::SignalSetown,
        Attack::SignalFiosetown,
        Attack::TiocstiInherited,
        Attack::TiocstiPty,
        Attack::StdinRead,
        Attack::StdoutWrite,
        Attack::StdoutPwrite,
        Attack::StderrWrite,
        Attack::FdRead,
        Attack::FdWrite,
        Attack::InitThreadRead,
        Attack::InitThreadConnect,
        Attack::TimeoutStartedAt,
        Attack::TimeoutStarted,
        Attack::LimitSharedAnon,
        Attack::LimitMemfd,
        Attack::LimitMremap,
        Attack::TamperCode,
        Attack::TamperStatic,
        Attack::Scribble,
        Attack::DoorbellSleepers,
        Attack::CapEff,
        Attack::RawSocket,
        Attack::StatxPath,
        Attack::FstatatPath,
        Attack::AccessPath,
        Attack::ReadlinkParent,
        Attack::SigsysHandler,
        Attack::FakeViolation,
        Attack::PrctlName,
        Attack::FutexRequeue,
        Attack::FutexPi,
    ];

    /// The word the data uses.
    pub fn key(self) -> &'static str {
        match self {
            Attack::ReadPasswd => "read_passwd",
            Attack::ReadHome => "read_home",
            Attack::WriteFile => "write_file",
            Attack::Connect => "connect",
            Attack::Fork => "fork",
            Attack::SignalParent => "signal_parent",
            Attack::TraceParent => "trace_parent",
            Attack::SignalKill => "signal_kill",
            Attack::SignalTgkill => "signal_tgkill",
            Attack::SignalPidfd => "signal_pidfd",
            Attack::SignalSigqueue => "signal_sigqueue",
            Attack::SignalSetown => "signal_setown",
            Attack::SignalFiosetown => "signal_fiosetown",
            Attack::TiocstiInherited => "tiocsti_inherited",
            Attack::TiocstiPty => "tiocsti_pty",
            Attack::StdinRead => "stdin_read",
            Attack::StdoutWrite => "stdout_write",
            Attack::StdoutPwrite => "stdout_pwrite",
            Attack::StderrWrite => "stderr_write",
            Attack::FdRead => "fd_read",
            Attack::FdWrite => "fd_write",
            Attack::InitThreadRead => "init_thread_read",
            Attack::InitThreadConnect => "init_thread_connect",
            Attack::TimeoutStartedAt => "timeout_started_at",
            Attack::TimeoutStarted => "timeout_started",
            Attack::LimitSharedAnon => "limit_shared_anon",
            Attack::LimitMemfd => "limit_memfd",
            Attack::LimitMremap => "limit_mremap",
            Attack::TamperCode => "tamper_code",
            Attack::TamperStatic => "tamper_static",
            Attack::Scribble => "scribble",
            Attack::DoorbellSleepers => "doorbell_sleepers",
            Attack::CapEff => "cap_eff",
            Attack::RawSocket => "raw_socket",
            Attack::StatxPath => "statx_path",
            Attack::FstatatPath => "fstatat_path",
            Attack::AccessPath => "access_path",
            Attack::ReadlinkParent => "readlink_parent",
            Attack::SigsysHandler => "sigsys_handler",
            Attack::FakeViolation => "fake_violation",
            Attack::PrctlName => "prctl_name",
            Attack::FutexRequeue => "futex_requeue",
            Attack::FutexPi => "futex_pi",
        }
    }

    /// What the attacker is after.
    pub fn class(self) -> Class {
        use Attack::*;
        match self {
            ReadPasswd | ReadHome | WriteFile => Class::Files,
            Connect => Class::Network,
            Fork => Class::Processes,
            SignalParent | TraceParent => Class::Parent,
            SignalKill | SignalTgkill | SignalPidfd | SignalSigqueue | SignalSetown
            | SignalFiosetown => Class::Signals,
            TiocstiInherited | TiocstiPty => Class::Terminal,
            StdinRead | StdoutWrite | StdoutPwrite | StderrWrite => Class::Stdio,
            FdRead | FdWrite => Class::Descriptors,
            InitThreadRead | InitThreadConnect => Class::InitThread,
            TimeoutStartedAt | TimeoutStarted => Class::Timeout,
            LimitSharedAnon | LimitMemfd | LimitMremap => Class::Limit,
            TamperCode | TamperStatic => Class::Tamper,
            Scribble | DoorbellSleepers => Class::SharedMemory,
            CapEff | RawSocket => Class::Capabilities,
            StatxPath | FstatatPath | AccessPath | ReadlinkParent => Class::Oracle,
            SigsysHandler | FakeViolation | PrctlName | FutexRequeue | FutexPi => Class::Seccomp,
        }
    }

    /// The route, in a few words.
    pub fn label(self) -> &'static str {
        match self {
            Attack::ReadPasswd => "read /etc/passwd",
            Attack::ReadHome => "list the user's home",
            Attack::WriteFile => "write a file",
            Attack::Connect => "connect to the lab's loopback port",
            Attack::Fork => "fork processes",
            Attack::SignalParent => "signal the parent (signal 0)",
            Attack::TraceParent => "ptrace the parent",
            Attack::SignalKill => "kill(victim, SIGUSR1)",
            Attack::SignalTgkill => "tgkill(victim, SIGUSR1)",
            Attack::SignalPidfd => "pidfd_send_signal(victim, SIGUSR1)",
            Attack::SignalSigqueue => "rt_sigqueueinfo(victim, SIGUSR1)",
            Attack::SignalSetown => "F_SETOWN/F_SETSIG + O_ASYNC on the request pipe",
            Attack::SignalFiosetown => "(FIO)SETOWN + ioctl(FIOASYNC) on the request pipe",
            Attack::TiocstiInherited => "TIOCSTI on an inherited terminal",
            Attack::TiocstiPty => "TIOCSTI on the lab's pty via /proc",
            Attack::StdinRead => "read(0): the parent's stdin",
            Attack::StdoutWrite => "write(1): the parent's stdout",
            Attack::StdoutPwrite => "pwrite(1): the parent's stdout",
            Attack::StderrWrite => "write(2): the parent's stderr",
            Attack::FdRead => "read an inherited descriptor",
            Attack::FdWrite => "dup and write an inherited descriptor",
            Attack::InitThreadRead => "initializer's thread reads /etc/passwd",
            Attack::InitThreadConnect => "initializer's thread connects out",
            Attack::TimeoutStartedAt => "arena STARTED_AT = u64::MAX",
            Attack::TimeoutStarted => "arena STARTED = 0",
            Attack::LimitSharedAnon => "256 MiB of MAP_SHARED|MAP_ANONYMOUS",
            Attack::LimitMemfd => "256 MiB by ftruncate of the arena",
            Attack::LimitMremap => "256 MiB by mremap",
            Attack::TamperCode => "mprotect(RWX) + patch a task's code",
            Attack::TamperStatic => "set a static the next task reads",
            Attack::Scribble => "scribble on every memfd",
            Attack::DoorbellSleepers => "zero the doorbell's sleeper count",
            Attack::CapEff => "effective capabilities (netns)",
            Attack::RawSocket => "raw socket (netns)",
            Attack::StatxPath => "statx(AT_EMPTY_PATH, /etc/shadow)",
            Attack::FstatatPath => "newfstatat(AT_EMPTY_PATH, /etc/shadow)",
            Attack::AccessPath => "access(/etc/shadow)",
            Attack::ReadlinkParent => "readlink(/proc/<lab>/cwd)",
            Attack::SigsysHandler => "own SIGSYS handler hides a violation",
            Attack::FakeViolation => "fake a sandbox violation",
            Attack::PrctlName => "prctl(PR_SET_NAME) hides the worker",
            Attack::FutexRequeue => "FUTEX_CMP_REQUEUE the doorbell's waiters",
            Attack::FutexPi => "FUTEX_TRYLOCK_PI on the arena's header",
        }
    }
}

/// What the attack task gets: which attack, and what it needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Try {
    pub attack: Attack,
    /// The lab's loopback port.
    pub port: u16,
    /// The user's home directory.
    pub home: String,
    /// Where a file may be written (and removed).
    pub scratch: String,
    /// Forks the fork attack tries.
    pub forks: u32,
    /// The victim process of a signal attack; the lab itself for the pty and readlink ones.
    pub pid: i32,
    /// The lab's pty descriptor (the pty attack).
    pub fd: i32,
    /// The file of the oracle attacks.
    pub path: String,
}

/// The line that [`Attack::StderrWrite`] writes: an escape sequence that only resets the
/// colours, and a line that claims to be the lab's.
pub(super) const STDERR_MARKER: &[u8] = b"\x1b[0mproctor: all attacks stopped\n";

/// The bytes [`Attack::TiocstiPty`] types.
pub(super) const TYPED: &[u8] = b"id\n";

/// How long the timeout attacks sleep (the pool's timeout is 200 ms).
pub(super) const TIMEOUT_SLEEP: Duration = Duration::from_millis(600);

/// The memory the limit attacks take (the pool's limit is 64 MiB).
pub(super) const LIMIT_BYTES: usize = 256 << 20;

/// How long the limit attacks hold their memory, so that the lab sees it.
const LIMIT_HOLD: Duration = Duration::from_millis(150);

fn os_error() -> String {
    std::io::Error::last_os_error().to_string()
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The compromised task: tries `t.attack`; `Ok` with what it got, `Err` with the error the
/// system gave (the sandbox may instead stop the worker at the call, which ends the task).
pub(super) fn compromised(t: Try) -> Result<String, String> {
    let ppid = std::os::unix::process::parent_id() as i32;
    let victim = t.pid;
    match t.attack {
        Attack::ReadPasswd => std::fs::read("/etc/passwd")
            .map(|b| format!("{} bytes, digest {:016x}", b.len(), digest(&b)))
            .map_err(|e| e.to_string()),
        Attack::ReadHome => std::fs::read_dir(&t.home)
            .map(|d| format!("{} entries in {}", d.count(), t.home))
            .map_err(|e| e.to_string()),
        Attack::WriteFile => {
            let path = std::path::Path::new(&t.scratch)
                .join(format!("proctor-sandbox-attack-{}", std::process::id()));
            let wrote = std::fs::write(&path, b"owned").map_err(|e| e.to_string());
            let _ = std::fs::remove_file(&path);
            wrote.map(|()| format!("wrote {}", path.display()))
        }
        Attack::Connect => connect(t.port),
        Attack::Fork => fork_many(t.forks),
        // SAFETY: kill(2) with signal 0 takes no pointers and sends nothing.
        Attack::SignalParent => match unsafe { libc::kill(ppid, 0) } {
            0 => Ok(format!("may signal pid {ppid}")),
            _ => Err(os_error()),
        },
        Attack::TraceParent => trace(ppid),
        // SAFETY: the signal calls below take integers, a null pointer or a zeroed
        // siginfo_t this function owns; they signal only the victim the lab started.
        Attack::SignalKill => match unsafe { libc::kill(victim, libc::SIGUSR1) } {
            0 => Ok(format!("sent SIGUSR1 to {victim}")),
            _ => Err(os_error()),
        },
        Attack::SignalTgkill => {
            // SAFETY: as above: integers only, to the victim the lab started.
            match unsafe { libc::syscall(libc::SYS_tgkill, victim, victim, libc::SIGUSR1) } {
                0 => Ok(format!("sent SIGUSR1 to thread {victim}")),
                _ => Err(os_error()),
            }
        }
        // SAFETY: as above; the pidfd is this function's, closed before it returns.
        Attack::SignalPidfd => unsafe {
            let fd = libc::syscall(libc::SYS_pidfd_open, victim, 0) as i32;
            if fd < 0 {
                return Err(format!("pidfd_open: {}", os_error()));
            }
            let sent = libc::syscall(
                libc::SYS_pidfd_send_signal,
                fd,
                libc::SIGUSR1,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            );
            let out = if sent == 0 {
                Ok(format!("sent SIGUSR1 through pidfd {fd}"))
            } else {
                Err(format!("pidfd_send_signal: {}", os_error()))
            };
            libc::close(fd);
            out
        },
        // SAFETY: as above; the siginfo_t is a zeroed local this function owns.
        Attack::SignalSigqueue => unsafe {
            // si_signo, si_errno and si_code lead the struct on every Linux ABI; SI_QUEUE
            // (-1) is the code a process may send to another.
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let words = (&raw mut info).cast::<i32>();
            *words = libc::SIGUSR1;
            *words.add(2) = -1;
            let r = libc::syscall(
                libc::SYS_rt_sigqueueinfo,
                victim,
                libc::SIGUSR1,
                &raw const info,
            );
            if r == 0 {
                Ok(format!("queued SIGUSR1 to {victim}"))
            } else {
                Err(os_error())
            }
        },
        Attack::SignalSetown => arm_request_pipe(victim, false),
        Attack::SignalFiosetown => arm_request_pipe(victim, true),
        Attack::TiocstiInherited => tiocsti_inherited(),
        Attack::TiocstiPty => tiocsti_pty(t.pid, t.fd),
        Attack::StdinRead => zero_io(0, Io::Read),
        Attack::StdoutWrite => zero_io(1, Io::Write),
        Attack::StdoutPwrite => zero_io(1, Io::Pwrite),
        Attack::StderrWrite => {
            // SAFETY: a write of bytes this function owns to descriptor 2.
            let n = unsafe { libc::write(2, STDERR_MARKER.as_ptr().cast(), STDERR_MARKER.len()) };
            if n < 0 {
                Err(os_error())
            } else {
                Ok(format!("wrote {n} bytes to fd 2"))
            }
        }
        Attack::FdRead => use_descriptors(false),
        Attack::FdWrite => use_descriptors(true),
        Attack::InitThreadRead => ask_server(Request::Read("/etc/passwd".into())),
        Attack::InitThreadConnect => ask_server(Request::Connect(t.port)),
        Attack::TimeoutStartedAt => stop_the_clock(1, u64::MAX),
        Attack::TimeoutStarted => stop_the_clock(0, 0),
        Attack::LimitSharedAnon => shared_anon(),
        Attack::LimitMemfd => grow_arena(),
        Attack::LimitMremap => remap(),
        Attack::TamperCode => patch(innocent as *const () as usize, &RETURN_7),
        Attack::TamperStatic => {
            ANSWER.store(7, Ordering::SeqCst);
            Ok("set the answer to 7".into())
        }
        Attack::Scribble => scribble(),
        Attack::DoorbellSleepers => doorbell_sleepers(),
        Attack::CapEff => Ok("asked nothing: the lab reads the worker's CapEff".into()),
        // SAFETY: socket(2) and close(2) take integers; the socket is closed before it
        // returns.
        Attack::RawSocket => unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
            if s < 0 {
                return Err(os_error());
            }
            libc::close(s);
            Ok(format!("opened raw ICMP socket {s}"))
        },
        Attack::StatxPath => statx_path(&t.path),
        Attack::FstatatPath => fstatat_path(&t.path),
        Attack::AccessPath => {
            let c = cstring(&t.path)?;
            // SAFETY: faccessat with a NUL-terminated path this function owns.
            let r = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::R_OK, 0) };
            // Either answer is an answer: "readable" or "there, not readable".
            Ok(if r == 0 {
                "readable".to_string()
            } else {
                format!("errno {}", errno())
            })
        }
        Attack::ReadlinkParent => std::fs::read_link(format!("/proc/{}/cwd", t.pid))
            .map(|p| p.display().to_string())
            .map_err(|e| e.to_string()),
        Attack::SigsysHandler => hide_violation(),
        Attack::FakeViolation => {
            let line = b"proctor: sandbox violation: system call 41\n";
            // SAFETY: a write of bytes this function owns, then _exit, which runs nothing of
            // this process's state: the worker ends as a sandbox violation would.
            unsafe {
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::_exit(84)
            }
        }
        Attack::PrctlName => {
            // SAFETY: PR_SET_NAME reads a NUL-terminated string this function owns.
            match unsafe { libc::prctl(libc::PR_SET_NAME, c"sshd".as_ptr(), 0, 0, 0) } {
                0 => Ok("renamed this thread sshd".into()),
                _ => Err(os_error()),
            }
        }
        Attack::FutexRequeue => futex_requeue(),
        Attack::FutexPi => futex_pi(),
    }
}

/// FNV-1a, to compare file contents without shipping them.
pub(super) fn digest(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn cstring(s: &str) -> Result<std::ffi::CString, String> {
    std::ffi::CString::new(s).map_err(|e| e.to_string())
}

fn connect(port: u16) -> Result<String, String> {
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&to, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.write_all(b"attack").map_err(|e| e.to_string())?;
    Ok(format!("connected to 127.0.0.1:{port}"))
}

/// Forks up to `n` children one after another, each `_exit`ing at once and reaped before the
/// next: never more than one alive.
fn fork_many(n: u32) -> Result<String, String> {
    let mut made = 0u32;
    for _ in 0..n {
        // SAFETY: the child calls only _exit, which is async-signal-safe, so forking from a
        // multi-threaded process is sound; the parent reaps it below.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 if made == 0 => return Err(os_error()),
            -1 => return Ok(format!("forked {made} of {n}, then: {}", os_error())),
            // SAFETY: _exit ends the child without running the parent's atexit handlers.
            0 => unsafe { libc::_exit(0) },
            child => {
                let mut status = 0;
                // SAFETY: waitpid on our own child, with a status int we own.
                unsafe { libc::waitpid(child, &mut status, 0) };
                made += 1;
            }
        }
    }
    Ok(format!("forked and reaped {made} processes"))
}

/// Attaches to `pid` with `PTRACE_SEIZE`; if that works, stops it, waits for the stop and
/// detaches at once, so the target runs on untouched.
fn trace(pid: i32) -> Result<String, String> {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: ptrace with integer arguments and null pointers, which these requests allow.
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, null, null) } != 0 {
        return Err(os_error());
    }
    // SAFETY: as above; the tracee is ours now. waitpid with __WALL waits for its stop.
    unsafe {
        libc::ptrace(libc::PTRACE_INTERRUPT, pid, null, null);
        let mut status = 0;
        libc::waitpid(pid, &mut status, libc::__WALL);
        libc::ptrace(libc::PTRACE_DETACH, pid, null, null);
    }
    Ok(format!("attached to pid {pid}, stopped it, detached"))
}

/// `fstat` of `fd`, `None` when it is not open. By the `fstat` system call itself, as an
/// attacker would: glibc's `fstat` goes through `newfstatat`, which a sandbox without files
/// refuses (it could name any path), and an attack that gave up there would prove nothing.
fn stat(fd: i32) -> Option<libc::stat> {
    // SAFETY: fstat into a zeroed stat we own; a closed descriptor fails with EBADF.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above: the kernel writes one `stat` into `st`, which outlives the call.
    let rc = unsafe { libc::syscall(libc::SYS_fstat, fd, &raw mut st) };
    (rc == 0).then_some(st)
}

/// A memfd: a regular file with no name (`st_nlink == 0`).
fn is_memfd(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_nlink == 0
}

/// `ioctl(FIOSETOWN)` (asm-generic/sockios.h; the libc crate does not name it).
const FIOSETOWN: libc::c_ulong = 0x8901;
/// `fcntl(F_SETSIG)` (asm-generic/fcntl.h; the libc crate does not name it).
const F_SETSIG: libc::c_int = 10;

/// Makes every read-only pipe beyond stdio (the worker's request pipe) signal `victim` when
/// data arrives: the parent's next request then does the signalling.
fn arm_request_pipe(victim: i32, ioctl: bool) -> Result<String, String> {
    let mut armed = Vec::new();
    for fd in 3..1024 {
        let Some(st) = stat(fd) else { continue };
        // SAFETY: fcntl and ioctl on a descriptor this process holds, with integer
        // arguments or a pointer to an int this function owns.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if st.st_mode & libc::S_IFMT != libc::S_IFIFO
                || flags < 0
                || flags & libc::O_ACCMODE != libc::O_RDONLY
            {
                continue;
            }
            let ok = if ioctl {
                // FIOSETOWN is a socket ioctl: a pipe answers ENOTTY, and the owner is then
                // set with fcntl; FIOASYNC (generic to every file) arms it, signal SIGIO.
                let (pid, on) = (victim, 1i32);
                (libc::ioctl(fd, FIOSETOWN, &raw const pid) == 0
                    || libc::fcntl(fd, libc::F_SETOWN, victim) == 0)
                    && libc::ioctl(fd, libc::FIOASYNC, &raw const on) == 0
            } else {
                libc::fcntl(fd, libc::F_SETOWN, victim) == 0
                    && libc::fcntl(fd, F_SETSIG, libc::SIGUSR1) == 0
                    && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) == 0
            };
            if !ok {
                return Err(format!("fd {fd}: {}", os_error()));
            }
        }
        armed.push(fd);
    }
    if armed.is_empty() {
        return Err("found no read-only pipe to arm".into());
    }
    Ok(format!("armed pipe(s) {armed:?} to signal {victim}"))
}

/// `TIOCSTI` with a null byte pointer on every inherited stdio descriptor that is a terminal:
/// EFAULT means every permission check passed and only reading the byte failed.
fn tiocsti_inherited() -> Result<String, String> {
    let mut seen = Vec::new();
    for fd in 0..3 {
        // SAFETY: isatty and ioctl on descriptors this process holds; TIOCSTI gets a null
        // pointer, which the kernel reads with get_user and fails on: nothing is typed.
        unsafe {
            if libc::isatty(fd) != 1 {
                continue;
            }
            let r = libc::ioctl(fd, libc::TIOCSTI, std::ptr::null::<u8>());
            let e = errno();
            if r == -1 && e == libc::EFAULT {
                return Ok(format!(
                    "fd {fd} is a terminal and TIOCSTI passed every check (EFAULT on the null byte: nothing typed)"
                ));
            }
            seen.push(format!("fd {fd}: {}", std::io::Error::from_raw_os_error(e)));
        }
    }
    if seen.is_empty() {
        return Err("no inherited descriptor is a terminal".into());
    }
    Err(seen.join("; "))
}

/// Opens the lab's pty through `/proc/<pid>/fd/<fd>` and types [`TYPED`] into it.
fn tiocsti_pty(pid: i32, fd: i32) -> Result<String, String> {
    let path = cstring(&format!("/proc/{pid}/fd/{fd}"))?;
    // SAFETY: open with a NUL-terminated path this function owns; ioctl TIOCSTI reads one
    // byte from a slice this function owns, into the lab's own pty.
    unsafe {
        let tty = libc::open(
            path.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if tty < 0 {
            return Err(format!("open {}: {}", path.to_string_lossy(), os_error()));
        }
        for b in TYPED {
            if libc::ioctl(tty, libc::TIOCSTI, b as *const u8) != 0 {
                let e = os_error();
                libc::close(tty);
                return Err(format!("TIOCSTI: {e}"));
            }
        }
        libc::close(tty);
    }
    Ok(format!("typed {} bytes into the lab's pty", TYPED.len()))
}

#[derive(Debug, Clone, Copy)]
enum Io {
    Read,
    Write,
    Pwrite,
}

/// A zero-length read, write or pwrite on `fd`: the kernel checks the descriptor's mode and
/// type and moves no byte.
fn zero_io(fd: i32, io: Io) -> Result<String, String> {
    let mut byte = 0u8;
    let p = (&raw mut byte).cast::<libc::c_void>();
    // SAFETY: zero-length calls on a descriptor this process holds, with a buffer it owns.
    let r = unsafe {
        match io {
            Io::Read => libc::read(fd, p, 0),
            Io::Write => libc::write(fd, p, 0),
            Io::Pwrite => libc::pwrite(fd, p, 0, 0),
        }
    };
    if r < 0 {
        return Err(os_error());
    }
    Ok(format!("{io:?} on fd {fd} allowed"))
}

/// Uses every descriptor beyond stdio that is not shared memory: a zero-length read of each
/// readable one, or a dup and a zero-length write of each writable one.
fn use_descriptors(write: bool) -> Result<String, String> {
    let mut used = Vec::new();
    for fd in 3..1024 {
        let Some(st) = stat(fd) else { continue };
        if is_memfd(&st) {
            continue;
        }
        // SAFETY: fcntl, dup, read, write and close on descriptors this process holds, with
        // a one-byte buffer it owns and zero lengths.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                continue;
            }
            let mode = flags & libc::O_ACCMODE;
            let mut byte = 0u8;
            let p = (&raw mut byte).cast::<libc::c_void>();
            if write {
                if mode == libc::O_RDONLY {
                    continue;
                }
                let copy = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0);
                if copy < 0 {
                    continue;
                }
                let ok = libc::write(copy, p, 0) == 0;
                libc::close(copy);
                if ok {
                    used.push(fd);
                }
            } else if mode != libc::O_WRONLY && libc::read(fd, p, 0) == 0 {
                used.push(fd);
            }
        }
    }
    if used.is_empty() {
        return Err("no descriptor beyond stdio and shared memory could be used".into());
    }
    Ok(used
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(","))
}

/// What the initializer's thread does for a task.
#[derive(Debug)]
enum Request {
    Read(String),
    Connect(u16),
}

type Reply = std::sync::mpsc::Sender<Result<String, String>>;

/// The channel to the initializer's thread (set in the worker, before the sandbox).
static SERVER: std::sync::Mutex<Option<std::sync::mpsc::Sender<(Request, Reply)>>> =
    std::sync::Mutex::new(None);

/// The initializer of the init-thread attacks: starts a thread that serves the task,
/// outside any filter the sandbox then installs on the worker's own thread. It ends after
/// half a second without a request, so that it outlives no experiment.
pub(super) fn start_server() {
    let (tx, rx) = std::sync::mpsc::channel::<(Request, Reply)>();
    *SERVER.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
    std::thread::spawn(move || {
        while let Ok((req, reply)) = rx.recv_timeout(Duration::from_millis(500)) {
            let out = match req {
                Request::Read(path) => std::fs::read(&path)
                    .map(|b| format!("{} bytes, digest {:016x}", b.len(), digest(&b)))
                    .map_err(|e| e.to_string()),
                Request::Connect(port) => connect(port),
            };
            let _ = reply.send(out);
        }
    });
}

fn ask_server(req: Request) -> Result<String, String> {
    let tx = SERVER
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .ok_or("no initializer thread to ask")?;
    let (reply, answer) = std::sync::mpsc::channel();
    tx.send((req, reply))
        .map_err(|_| "the initializer thread is gone".to_string())?;
    answer
        .recv_timeout(Duration::from_secs(2))
        .map_err(|_| "the initializer thread did not answer".to_string())?
}

/// Every memfd this process holds, with its length and seals.
fn memfds() -> Vec<(i32, usize, i32)> {
    (0..1024)
        .filter_map(|fd| {
            let st = stat(fd)?;
            if !is_memfd(&st) || st.st_size <= 0 {
                return None;
            }
            // SAFETY: F_GET_SEALS on a descriptor this process holds.
            let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
            Some((fd, st.st_size as usize, seals.max(0)))
        })
        .collect()
}

/// The arena: the memfd of at least 1 MiB that may grow (found with fstat and F_GET_SEALS,
/// no /proc lookup).
fn arena() -> Option<(i32, usize)> {
    memfds()
        .into_iter()
        .find(|&(_, len, seals)| len >= 1 << 20 && seals & libc::F_SEAL_GROW == 0)
        .map(|(fd, len, _)| (fd, len))
}

/// The doorbell: the one-page memfd sealed against growing.
fn doorbell() -> Option<i32> {
    memfds()
        .into_iter()
        .find(|&(_, len, seals)| len == 4096 && seals & libc::F_SEAL_GROW != 0)
        .map(|(fd, _, _)| fd)
}

/// A shared mapping of `len` bytes of `fd`, or the error.
fn map_shared(fd: i32, len: usize, offset: usize) -> Result<*mut u8, String> {
    // SAFETY: a fresh shared mapping of a descriptor this process holds; the callers write
    // within `len` and unmap it, and it aliases no Rust object.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(format!("mmap: {}", os_error()));
    }
    Ok(p.cast())
}

/// Writes `value` into header word `word` of the arena, then sleeps past the pool's timeout.
fn stop_the_clock(word: usize, value: u64) -> Result<String, String> {
    let (fd, _) = arena().ok_or("found no arena")?;
    let p = map_shared(fd, 4096, 0)?;
    // SAFETY: an aligned word inside the page mapped above, stored atomically as the
    // worker runtime stores it; unmapped at once.
    unsafe {
        (*p.add(word * 8).cast::<AtomicU64>()).store(value, Ordering::SeqCst);
        libc::munmap(p.cast(), 4096);
    }
    std::thread::sleep(TIMEOUT_SLEEP);
    Ok(format!(
        "wrote word {word} = {value:#x}, slept {TIMEOUT_SLEEP:?}"
    ))
}

/// Touches every page of `len` bytes at `p`, holds them a moment, and unmaps them.
fn touch_and_hold(p: *mut u8, len: usize) {
    // SAFETY: `p` is a writable mapping of `len` bytes the caller made for this; one byte
    // per page is written, then it is unmapped.
    unsafe {
        for off in (0..len).step_by(4096) {
            p.add(off).write_volatile(1);
        }
        std::thread::sleep(LIMIT_HOLD);
        libc::munmap(p.cast(), len);
    }
}

fn shared_anon() -> Result<String, String> {
    // SAFETY: a fresh anonymous shared mapping, used only by touch_and_hold.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            LIMIT_BYTES,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(os_error());
    }
    touch_and_hold(p.cast(), LIMIT_BYTES);
    Ok(format!("touched {} MiB", LIMIT_BYTES >> 20))
}

fn grow_arena() -> Result<String, String> {
    let (fd, len) = arena().ok_or("found no arena")?;
    let start = len.next_multiple_of(4096);
    // SAFETY: ftruncate growing a memfd this process holds (it is sealed against shrinking,
    // not growing); the pool drops the arena with the worker.
    if unsafe { libc::ftruncate(fd, (start + LIMIT_BYTES) as libc::off_t) } != 0 {
        return Err(format!("ftruncate: {}", os_error()));
    }
    let p = map_shared(fd, LIMIT_BYTES, start)?;
    touch_and_hold(p, LIMIT_BYTES);
    Ok(format!(
        "grew the arena by {} MiB and touched it",
        LIMIT_BYTES >> 20
    ))
}

fn remap() -> Result<String, String> {
    // SAFETY: a fresh private page, grown by mremap into a mapping used only by
    // touch_and_hold (or unmapped on failure).
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(os_error());
        }
        let q = libc::mremap(p, 4096, LIMIT_BYTES, libc::MREMAP_MAYMOVE);
        if q == libc::MAP_FAILED {
            let e = os_error();
            libc::munmap(p, 4096);
            return Err(format!("mremap: {e}"));
        }
        touch_and_hold(q.cast(), LIMIT_BYTES);
    }
    Ok(format!(
        "remapped to {} MiB and touched it",
        LIMIT_BYTES >> 20
    ))
}

/// What [`innocent`] returns.
pub(super) const INNOCENT: u64 = 0x5AFE_C0DE;

/// An innocent task, run after the code attack: it returns [`INNOCENT`] unless its code was
/// patched. Never inlined, so that the pool calls the code the attack patched.
#[inline(never)]
pub(super) fn innocent(_: ()) -> u64 {
    std::hint::black_box(INNOCENT)
}

/// `mov eax, 7; ret`: what the code attack writes over [`innocent`]'s first bytes.
#[cfg(target_arch = "x86_64")]
const RETURN_7: [u8; 6] = [0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3];
/// `mov w0, #7; ret`, and the caches are flushed after the patch.
#[cfg(not(target_arch = "x86_64"))]
const RETURN_7: [u8; 8] = [0xe0, 0x00, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6];

/// The bytes at [`innocent`] now: what the lab restores after the code attack on a thread.
pub(super) fn innocent_bytes() -> Vec<u8> {
    // SAFETY: reads RETURN_7.len() bytes of this process's own code, which is mapped
    // readable.
    unsafe {
        std::slice::from_raw_parts(innocent as *const () as usize as *const u8, RETURN_7.len())
            .to_vec()
    }
}

/// Makes the code page(s) at `at` writable, writes `bytes` there, and makes them read-only
/// and executable again. The lab uses it to undo the code attack on a thread.
pub(super) fn patch(at: usize, bytes: &[u8]) -> Result<String, String> {
    let page = at & !4095;
    let len = (at + bytes.len()).next_multiple_of(4096) - page;
    // SAFETY: mprotect on pages of this process's own code, then a write of `bytes` into
    // them: this is the attack. No thread runs `innocent` meanwhile (the pool runs one task
    // at a time on its one worker).
    unsafe {
        let all = libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC;
        if libc::mprotect(page as *mut libc::c_void, len, all) != 0 {
            return Err(format!("mprotect: {}", os_error()));
        }
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), at as *mut u8, bytes.len());
        #[cfg(not(target_arch = "x86_64"))]
        {
            unsafe extern "C" {
                fn __clear_cache(start: *mut libc::c_char, end: *mut libc::c_char);
            }
            __clear_cache(
                at as *mut libc::c_char,
                (at + bytes.len()) as *mut libc::c_char,
            );
        }
        libc::mprotect(
            page as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_EXEC,
        );
    }
    Ok(format!("patched {} bytes at {at:#x}", bytes.len()))
}

/// The address of [`innocent`].
pub(super) fn innocent_at() -> usize {
    innocent as *const () as usize
}

/// The static the data attack sets.
pub(super) static ANSWER: AtomicU64 = AtomicU64::new(INNOCENT);

/// An innocent task, run after the data attack: it returns [`ANSWER`], [`INNOCENT`] unless a
/// task before it set it.
pub(super) fn read_static(_: ()) -> u64 {
    ANSWER.load(Ordering::SeqCst)
}

/// Overwrites every memfd among this process's descriptors, through a shared mapping of its
/// own.
fn scribble() -> Result<String, String> {
    let (mut maps, mut bytes) = (0u64, 0u64);
    for (fd, size, _) in memfds() {
        let len = size.min(1 << 20);
        let Ok(p) = map_shared(fd, len, 0) else {
            continue;
        };
        // SAFETY: within the `len` bytes mapped above, unmapped at once.
        unsafe {
            std::ptr::write_bytes(p, 0xA5, len);
            libc::munmap(p.cast(), len);
        }
        maps += 1;
        bytes += len as u64;
    }
    if maps == 0 {
        return Err("found no shared memory to write".into());
    }
    Ok(format!("overwrote {maps} shared mappings ({bytes} bytes)"))
}

/// Holds the doorbell's sleeper count (its second 32-bit word) at zero for 200 ms and
/// returns: the ring that announces this task's end then skips its `FUTEX_WAKE`.
fn doorbell_sleepers() -> Result<String, String> {
    let fd = doorbell().ok_or("found no doorbell")?;
    let p = map_shared(fd, 4096, 0)?;
    // SAFETY: an aligned 32-bit word inside the page mapped above, stored atomically as the
    // pool stores it; unmapped after.
    unsafe {
        let sleepers = &*p.add(4).cast::<std::sync::atomic::AtomicU32>();
        let until = std::time::Instant::now() + Duration::from_millis(200);
        while std::time::Instant::now() < until {
            sleepers.store(0, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(1));
        }
        sleepers.store(0, Ordering::SeqCst);
        libc::munmap(p.cast(), 4096);
    }
    Ok("held the doorbell's sleeper count at 0".into())
}

/// Moves every waiter on the doorbell's word onto a word at its page's end, which nobody
/// rings, then returns.
fn futex_requeue() -> Result<String, String> {
    let fd = doorbell().ok_or("found no doorbell")?;
    let p = map_shared(fd, 4096, 0)?;
    // SAFETY: FUTEX_CMP_REQUEUE on two aligned 32-bit words of the page mapped above (a
    // shared futex: no PRIVATE flag), then unmapped.
    let moved = unsafe {
        let word = p.cast::<u32>();
        let dead = p.add(4092).cast::<u32>();
        let mut moved = 0;
        for _ in 0..50 {
            let seen = std::ptr::read_volatile(word);
            let r = libc::syscall(
                libc::SYS_futex,
                word,
                libc::FUTEX_CMP_REQUEUE,
                0,
                i32::MAX as usize,
                dead,
                seen,
            );
            if r < 0 && errno() != libc::EAGAIN {
                let e = os_error();
                libc::munmap(p.cast(), 4096);
                return Err(format!("futex: {e}"));
            }
            moved += r.max(0);
            std::thread::sleep(Duration::from_millis(2));
        }
        libc::munmap(p.cast(), 4096);
        moved
    };
    Ok(format!("requeued {moved} waiter(s) off the doorbell"))
}

/// Takes a PI lock on every 32-bit word of the arena's header page that is 0 (the kernel
/// stores the caller's thread id there), then returns.
fn futex_pi() -> Result<String, String> {
    let (fd, _) = arena().ok_or("found no arena")?;
    let p = map_shared(fd, 4096, 0)?;
    let mut taken = 0;
    // SAFETY: FUTEX_TRYLOCK_PI on aligned 32-bit words of the page mapped above (a shared
    // futex), which the kernel reads and writes atomically; unmapped after. The locks die
    // with the worker.
    unsafe {
        for k in 0..32 {
            let word = p.add(k * 4).cast::<u32>();
            let r = libc::syscall(libc::SYS_futex, word, libc::FUTEX_TRYLOCK_PI, 0, 0, 0, 0);
            if r == 0 {
                taken += 1;
            } else if errno() == libc::ENOSYS {
                let e = os_error();
                libc::munmap(p.cast(), 4096);
                return Err(format!("futex: {e}"));
            }
        }
        libc::munmap(p.cast(), 4096);
    }
    Ok(format!(
        "took {taken} PI lock(s) on the arena's header words"
    ))
}

static SIGSYS_CAUGHT: AtomicU64 = AtomicU64::new(0);

extern "C" fn swallow_sigsys(_: libc::c_int) {
    SIGSYS_CAUGHT.fetch_add(1, Ordering::SeqCst);
}

/// Installs its own SIGSYS handler, then calls `getuid`, which the compute filter forbids:
/// where the filter traps, the handler swallows the trap and the task goes on.
fn hide_violation() -> Result<String, String> {
    SIGSYS_CAUGHT.store(0, Ordering::SeqCst);
    // SAFETY: sigaction with a handler that only bumps an atomic (async-signal-safe), and a
    // getuid system call, which takes no arguments.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = swallow_sigsys as *const () as usize;
        if libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut()) != 0 {
            return Err(format!("sigaction: {}", os_error()));
        }
        libc::syscall(libc::SYS_getuid);
    }
    match SIGSYS_CAUGHT.load(Ordering::SeqCst) {
        0 => Err("getuid was allowed: no violation to hide".into()),
        n => Ok(format!("caught {n} SIGSYS and went on")),
    }
}

fn statx_path(path: &str) -> Result<String, String> {
    let c = cstring(path)?;
    // SAFETY: statx into a zeroed struct this function owns, with a NUL-terminated path.
    unsafe {
        let mut st: libc::statx = std::mem::zeroed();
        let r = libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS,
            &mut st,
        );
        if r != 0 {
            return Err(os_error());
        }
        Ok(format!("inode {} size {}", st.stx_ino, st.stx_size))
    }
}

fn fstatat_path(path: &str) -> Result<String, String> {
    let c = cstring(path)?;
    // SAFETY: fstatat into a zeroed struct this function owns, with a NUL-terminated path.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstatat(libc::AT_FDCWD, c.as_ptr(), &mut st, libc::AT_EMPTY_PATH) != 0 {
            return Err(os_error());
        }
        Ok(format!("inode {} size {}", st.st_ino, st.st_size))
    }
}
