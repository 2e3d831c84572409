//! The sandbox's unit tests: the filter compiled and run on made-up calls, the rules, the
//! report.

use super::filter::*;
use super::syscalls::*;
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
