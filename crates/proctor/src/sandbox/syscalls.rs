//! Which system calls a sandboxed worker may make, and with which arguments: the lists per
//! permission and the argument rules ([`Rule`]) the filter is compiled from.

use std::sync::atomic::Ordering;

use super::filter::ARGS;
use super::{KILL_NR, SHARED_FDS, Sandbox};

/// The system calls every sandboxed worker may make: its own loop (pipe reads and writes,
/// futex waits, mapping the shared arena and inbox, the capture files) and a computing task
/// (memory, time, randomness, `abort` on itself).
pub(super) fn base_syscalls() -> Vec<i64> {
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
pub(super) fn file_syscalls() -> Vec<i64> {
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

pub(super) fn network_syscalls() -> Vec<i64> {
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

pub(super) fn process_syscalls() -> Vec<i64> {
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
pub(super) struct Cond {
    pub(super) offset: u32,
    pub(super) mask: u32,
    pub(super) value: u32,
    pub(super) equal: bool,
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
    pub(super) fn holds(&self, data: &[u8; 64]) -> bool {
        let at = self.offset as usize;
        let word = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
        (word & self.mask == self.value) == self.equal
    }
}

/// A rule of the filter: a call allowed outright, or allowed when every test of one of its
/// alternatives holds and otherwise answered with `deny` (a trap, or an error number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Rule {
    Always(i64),
    Where {
        call: i64,
        any: Vec<Vec<Cond>>,
        deny: u32,
    },
}

impl Rule {
    pub(super) fn call(&self) -> i64 {
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
pub(super) const F_GETPIPE_SZ: u32 = 1032;
pub(super) const F_GET_SEALS: u32 = 1034;
pub(super) const FUTEX_CMD_MASK: u32 = 0x7f;
pub(super) const FUTEX_WAIT_BITSET: u32 = 9;
pub(super) const FUTEX_WAKE_BITSET: u32 = 10;

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
pub(super) fn argument_rules(s: &Sandbox, pid: u32) -> Vec<Rule> {
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
pub(super) fn rules(s: &Sandbox, pid: u32) -> Vec<Rule> {
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
