//! The seccomp layer: the rules compiled to classic BPF (a binary search on the call
//! number), installed, and the trap handler that reports a violation before the kernel kills
//! the worker; and reading that report back in the parent.

use std::sync::atomic::Ordering;

use super::syscalls::{Cond, Rule, rules};
use super::{DIAG_FD, KILL_NR, LayerStatus, Sandbox, VIOLATION_LINE};

/// Where `struct seccomp_data` keeps the call number, the architecture and the arguments.
pub(super) const NR: u32 = 0;
pub(super) const ARCH: u32 = 4;
pub(super) const ARGS: u32 = 16;

#[cfg(target_arch = "x86_64")]
pub(super) const AUDIT_ARCH: u32 = 62 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
pub(super) const AUDIT_ARCH: u32 = 183 | 0x8000_0000 | 0x4000_0000;

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
pub(super) fn compile(rules: &[Rule]) -> Vec<seccompiler::sock_filter> {
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
pub(super) const LEAF: usize = 3;

/// The instructions of the search over `n` calls (see [`search`]).
pub(super) fn search_len(n: usize) -> usize {
    if n <= LEAF {
        2 * n + 1
    } else {
        1 + search_len(n / 2) + search_len(n - n / 2)
    }
}

/// Emits a binary search over `calls` (sorted): a `JGE` per inner node, and per leaf a
/// `JEQ` and a long jump for each of its calls, then a long jump to `trap_at`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(super) fn search(
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
pub(super) fn seccomp(s: &Sandbox) -> LayerStatus {
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

pub(super) fn install_trap_handler() -> nix::Result<()> {
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
pub(super) const SI_SYSCALL_OFFSET: usize = 24;

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
pub(super) fn syscall_name(nr: i64) -> Option<&'static str> {
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
        (libc::SYS_rt_sigqueueinfo, "rt_sigqueueinfo"),
        (libc::SYS_rt_tgsigqueueinfo, "rt_tgsigqueueinfo"),
        (libc::SYS_pidfd_open, "pidfd_open"),
        (libc::SYS_pidfd_send_signal, "pidfd_send_signal"),
        (libc::SYS_getpgid, "getpgid"),
        (libc::SYS_setpgid, "setpgid"),
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
