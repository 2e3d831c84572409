//! The attacks of a security review of the sandbox, one test each: a task running hostile code
//! inside `Sandbox::compute()` (or a preset loosened as named), against today's pool. Each
//! test says which finding it holds down; each failed before the sandbox was hardened.
//! Where an attack works in a plain worker, the test shows that too: the sandbox is what
//! stops it.

use std::time::{Duration, Instant};

use proctor::{Pool, Sandbox, TaskError};

use crate::sandbox::sandboxed;

fn violation(r: Result<impl std::fmt::Debug, TaskError>, calls: &[&str]) {
    match r {
        Err(TaskError::SandboxViolation { syscall, .. }) => {
            assert!(calls.contains(&syscall.as_str()), "stopped at {syscall}");
        }
        other => panic!("not stopped by the sandbox: {other:?}"),
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Finding 1: on every descriptor, make the parent's next write to the worker signal `victim`
/// (`F_SETOWN`, `F_SETSIG`, `O_ASYNC`).
fn arm_async_signal(victim: i32) -> u32 {
    let mut armed = 0;
    for fd in 0..64 {
        // SAFETY: fcntl with integer arguments on descriptor numbers; a closed one fails.
        unsafe {
            if libc::fcntl(fd, libc::F_SETOWN, victim) == 0
                && libc::fcntl(fd, 10 /* F_SETSIG */, libc::SIGTERM) == 0
            {
                let fl = libc::fcntl(fd, libc::F_GETFL);
                if fl >= 0 && libc::fcntl(fd, libc::F_SETFL, fl | libc::O_ASYNC) == 0 {
                    armed += 1;
                }
            }
        }
    }
    armed
}

fn square(n: u64) -> u64 {
    n * n
}

fn victim_dies(armed_pool: &Pool, victim: &mut std::process::Child) -> bool {
    // The parent's next job write is what fires the armed descriptor.
    let _ = armed_pool.submit(square, 2).join();
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        if victim.try_wait().expect("wait for the victim").is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_1_a_task_cannot_make_the_parent_signal_another_process() {
    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = victim.id() as i32;
    let plain = Pool::processes(1).build().unwrap();
    assert!(plain.submit(arm_async_signal, pid).join().unwrap() > 0);
    assert!(
        victim_dies(&plain, &mut victim),
        "the route works in a plain worker"
    );

    let mut victim = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let pid = victim.id() as i32;
    for s in [Sandbox::compute(), Sandbox::compute().network(true)] {
        let pool = sandboxed(s);
        violation(pool.submit(arm_async_signal, pid).join(), &["fcntl"]);
        assert!(!victim_dies(&pool, &mut victim), "the victim was signalled");
    }
    let _ = victim.kill();
    let _ = victim.wait();
}

/// Finding 2: an initializer that leaves a thread running.
fn leave_a_thread() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_2_a_sandboxed_worker_cannot_keep_an_unconfined_thread() {
    let err = Pool::processes(1)
        .forward_stderr(false)
        .init_worker(leave_a_thread)
        .sandbox(Sandbox::compute())
        .build()
        .expect_err("a thread the sandbox would not bind");
    let text = err.to_string();
    assert!(
        text.contains("initializer left 1 other thread"),
        "the error says why: {text}"
    );
}

/// Finding 3: typing into the terminal (`TIOCSTI`) on stdin, with network allowed (where
/// `ioctl` is).
fn type_into_terminal(_: ()) -> i32 {
    let c = b'x';
    // SAFETY: TIOCSTI reads one byte through the pointer, which points to one.
    unsafe { libc::ioctl(0, libc::TIOCSTI, &c) }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_3_a_task_cannot_type_into_the_terminal() {
    let pool = sandboxed(Sandbox::compute().network(true));
    violation(pool.submit(type_into_terminal, ()).join(), &["ioctl"]);
}

/// Finding 4: the parent's stdin and stdout. Reads what stdin holds, writes a marker to
/// stdout, and dies so that the stderr tail comes back.
fn use_parents_stdio(_: ()) -> u64 {
    let mut buf = [0u8; 64];
    // SAFETY: reading into a buffer we own.
    let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
    let line = format!("STDOUT-MARKER read {n}\n");
    // SAFETY: writing a buffer we own.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    std::process::abort()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_4_a_task_has_neither_the_parents_stdin_nor_its_stdout() {
    let pool = sandboxed(Sandbox::compute());
    match pool.submit(use_parents_stdio, ()).join() {
        Err(TaskError::Crashed { stderr_tail, .. }) => {
            // Its stdout went to the stderr pipe the pool reads, and stdin was /dev/null.
            assert!(
                stderr_tail.contains("STDOUT-MARKER read 0"),
                "{stderr_tail}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Finding 5: every shared mapping the worker holds gets a start time of `u64::MAX` and, with
/// `look_done`, a header that says the task is finished (a committed count equal to the
/// started one, and, for a remote worker's agent, a done job number equal to the begun
/// one); then the task sleeps. (Also the remote attack's task.)
pub(crate) fn outlive_timeout((sleep_ms, look_done): (u64, bool)) -> u64 {
    for fd in 3..64 {
        // SAFETY: a fresh shared mapping of one page of a descriptor; a descriptor that is
        // not a mappable file fails and is skipped; the page is unmapped again.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            );
            if p == libc::MAP_FAILED {
                continue;
            }
            let words = p.cast::<u64>();
            if *words == 1 {
                // The arena: STARTED (word 0) is 1; STARTED_AT is word 1, COMMITTED word 3,
                // DONE_SEQ word 8 and RUN_SEQ word 11 (a remote worker's own count; a local
                // pool keeps its own count of the jobs it sent, so this changes nothing there).
                *words.add(1) = u64::MAX;
                if look_done {
                    *words.add(3) = 1;
                    *words.add(8) = *words.add(11);
                }
            }
            libc::munmap(p, 4096);
        }
    }
    std::thread::sleep(Duration::from_millis(sleep_ms));
    sleep_ms
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_5_a_task_cannot_turn_off_its_own_timeout() {
    let plain = Pool::processes(1)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let sandboxed = Pool::processes(1)
        .forward_stderr(false)
        .task_timeout(Duration::from_millis(300))
        .sandbox(Sandbox::compute())
        .build()
        .unwrap();
    for pool in [plain, sandboxed] {
        for look_done in [false, true] {
            let start = Instant::now();
            match pool.submit(outlive_timeout, (3_000, look_done)).join() {
                Err(TaskError::TimedOut { .. }) => {}
                // A task that claims a record it never wrote makes its own outcome a codec
                // error: its own business, as long as it ends on time.
                Err(TaskError::Codec { message, .. }) if look_done => {
                    assert!(message.contains("corrupt"), "{message}")
                }
                other => panic!("the task outlived its timeout: {other:?}"),
            }
            assert!(
                start.elapsed() < Duration::from_millis(2_500),
                "killed {:?} after the start",
                start.elapsed()
            );
            assert_eq!(pool.submit(square, 4).join(), Ok(16));
        }
    }
}

/// Finding 6: a task that patches the task function's code.
fn patch_code(_: ()) -> i32 {
    let page = (square as fn(u64) -> u64 as usize) & !4095;
    // SAFETY: mprotect of a page of our own code; it only changes its protection.
    unsafe {
        libc::mprotect(
            page as *mut libc::c_void,
            4096,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
        )
    }
}

static LEFT_BEHIND: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Finding 6, by data: a task leaves a value in the worker for the next task to return.
fn leave_behind(v: u64) -> u64 {
    LEFT_BEHIND.store(v, std::sync::atomic::Ordering::Relaxed);
    v
}

fn innocent(_: u64) -> u64 {
    LEFT_BEHIND.load(std::sync::atomic::Ordering::Relaxed)
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_6_no_task_decides_a_later_tasks_outcome() {
    let pool = sandboxed(Sandbox::compute());
    violation(pool.submit(patch_code, ()).join(), &["mprotect"]);
    // A later task on the same one-worker pool: in a plain pool it returns what the hostile
    // one left; under the sandbox's default it runs in a fresh worker.
    let plain = Pool::processes(1).build().unwrap();
    assert_eq!(plain.submit(leave_behind, 666).join(), Ok(666));
    assert_eq!(plain.submit(innocent, 0).join(), Ok(666));
    assert_eq!(pool.submit(leave_behind, 666).join(), Ok(666));
    assert_eq!(pool.submit(innocent, 0).join(), Ok(0));
    assert_eq!(pool.map(innocent, vec![0; 8]), vec![Ok(0); 8]);
    // Reusing workers is the caller's choice, and gives that up.
    let reused = sandboxed(Sandbox::compute().reuse_workers(true));
    assert_eq!(reused.submit(leave_behind, 7).join(), Ok(7));
    assert_eq!(reused.submit(innocent, 0).join(), Ok(7));
}

/// Finding 7: memory that `RLIMIT_DATA` does not count. Route 0: shared anonymous pages;
/// route 1: growing a memfd the worker holds (its arena) with `ftruncate`, then mapping it.
fn shared_memory(route: u8) -> Result<u64, i32> {
    const SIZE: usize = 256 << 20;
    // SAFETY: fresh mappings of memory this task asked for; each is touched within its
    // length, then unmapped.
    unsafe {
        let (p, fd) = match route {
            0 => (
                libc::mmap(
                    std::ptr::null_mut(),
                    SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                ),
                -1,
            ),
            _ => {
                let mut refused = 0;
                let grown = (3..64).find(|&fd| {
                    let ok = libc::ftruncate(fd, SIZE as i64) == 0;
                    if !ok && errno() == libc::EFBIG {
                        refused = libc::EFBIG;
                    }
                    ok
                });
                let Some(fd) = grown else {
                    // EFBIG if some memfd refused to grow; else why the last one failed.
                    return Err(if refused != 0 { refused } else { errno() });
                };
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                (p, fd)
            }
        };
        if p == libc::MAP_FAILED {
            return Err(errno());
        }
        for off in (0..SIZE).step_by(4096) {
            *p.cast::<u8>().add(off) = 1;
        }
        libc::munmap(p, SIZE);
        Ok(fd as u64)
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_7_shared_memory_is_no_way_past_the_memory_limit() {
    let pool = Pool::processes(1)
        .forward_stderr(false)
        .memory_limit(64 << 20)
        .sandbox(Sandbox::compute())
        .build()
        .unwrap();
    violation(pool.submit(shared_memory, 0).join(), &["mmap"]);
    match pool.submit(shared_memory, 1).join() {
        // The arena may grow, not past the limit; the inbox and doorbell may not grow.
        Ok(Err(e)) => assert_eq!(e, libc::EFBIG, "the memfd could not grow past the limit"),
        Err(TaskError::SandboxViolation { syscall, .. }) => assert_eq!(syscall, "ftruncate"),
        other => panic!("a memfd grew past the memory limit: {other:?}"),
    }
    // Filling a shared memfd by `write`, which no mapping (and so no RLIMIT_AS) counts.
    violation(pool.submit(write_shared, ()).join(), &["write"]);
    assert_eq!(pool.submit(square, 5).join(), Ok(25));
}

/// Finding 7, by `write`: 1 MiB into every descriptor from 3 up (the worker's memfds among
/// them).
fn write_shared(_: ()) -> usize {
    let buf = vec![1u8; 1 << 20];
    (3..64)
        .filter(|&fd| {
            // SAFETY: writing a buffer we own to a descriptor number; a closed one fails.
            unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) > 0 }
        })
        .count()
}

/// Finding 8: a raw socket (`CAP_NET_RAW`) in the network namespace's user namespace.
fn raw_socket(_: ()) -> Result<(), i32> {
    // SAFETY: socket(2) with integer arguments; the descriptor is closed at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: closing the descriptor just made.
    unsafe { libc::close(fd) };
    Ok(())
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_8_no_capability_is_left_in_the_network_namespace() {
    let pool = Pool::processes(1)
        .forward_stderr(false)
        .sandbox(
            Sandbox::compute()
                .network(true)
                .network_namespace(true)
                .allow_unavailable(true),
        )
        .build()
        .unwrap();
    let caps = pool
        .sandbox_report()
        .unwrap()
        .layer("capabilities")
        .cloned();
    assert_eq!(caps.map(|l| l.status), Some(proctor::LayerStatus::Applied));
    assert_eq!(pool.submit(raw_socket, ()).join(), Ok(Err(libc::EPERM)));
}

/// Finding 9: the metadata of a path, with and without `AT_EMPTY_PATH`.
fn stat_path(flags: i32) -> Result<u64, i32> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: fstatat writes one stat to a buffer we own; the path is a C string literal.
    let rc = unsafe {
        libc::fstatat(
            libc::AT_FDCWD,
            c"/etc/passwd".as_ptr(),
            st.as_mut_ptr(),
            flags,
        )
    };
    if rc != 0 {
        return Err(errno());
    }
    // SAFETY: filled by a successful fstatat.
    Ok(unsafe { st.assume_init() }.st_size as u64)
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_9_a_task_learns_nothing_of_paths_by_stat() {
    let plain = Pool::processes(1).build().unwrap();
    assert!(matches!(plain.submit(stat_path, 0).join(), Ok(Ok(_))));
    let pool = sandboxed(Sandbox::compute());
    for flags in [0, libc::AT_EMPTY_PATH] {
        assert_eq!(pool.submit(stat_path, flags).join(), Ok(Err(libc::EPERM)));
    }
    // The worker's own fstat still works: a large argument goes through its inbox.
    let big = vec![7u8; 1 << 20];
    assert_eq!(pool.submit(len_of, big).join(), Ok(1 << 20));

    // With files granted, Landlock allows stat everywhere: the file-system view is what
    // hides every path outside the grants.
    let dir = std::env::temp_dir().join(format!("proctor-view-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("granted"), b"12345").unwrap();
    let pool = sandboxed(Sandbox::read_only([&dir]));
    let view = pool
        .sandbox_report()
        .unwrap()
        .layer("file system view")
        .cloned();
    assert_eq!(view.map(|l| l.status), Some(proctor::LayerStatus::Applied));
    assert_eq!(pool.submit(stat_path, 0).join(), Ok(Err(libc::ENOENT)));
    let granted = dir.join("granted").to_string_lossy().into_owned();
    assert_eq!(pool.submit(file_len, granted).join(), Ok(Ok(5)));
    std::fs::remove_dir_all(&dir).unwrap();
}

fn file_len(path: String) -> Result<u64, String> {
    std::fs::read(path)
        .map(|b| b.len() as u64)
        .map_err(|e| e.to_string())
}

fn len_of(v: Vec<u8>) -> usize {
    v.len()
}

/// Finding 10: a SIGSYS handler of the task's own (to hide violations), and a
/// priority-inheritance futex operation.
fn own_sigsys_handler(_: ()) -> i32 {
    // SAFETY: SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGSYS, libc::SIG_IGN) as i32 }
}

fn pi_futex(_: ()) -> i64 {
    let word = std::sync::atomic::AtomicU32::new(0);
    // SAFETY: FUTEX_LOCK_PI on a word of our own stack, no timeout.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_LOCK_PI,
            0,
            std::ptr::null::<libc::timespec>(),
        )
    }
}

/// Finding 10, faked: the trap handler's line, then the exit code it once used.
fn fake_violation(_: ()) -> u64 {
    let line = b"proctor: sandbox violation: system call 2\n";
    // SAFETY: writing a buffer we own to stderr, then leaving at once.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(84)
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_10_a_task_cannot_hide_or_fake_violations_or_use_pi_futexes() {
    let pool = sandboxed(Sandbox::compute());
    match pool.submit(fake_violation, ()).join() {
        Err(TaskError::Crashed { exit_code, .. }) => assert_eq!(exit_code, Some(84)),
        other => panic!("a violation the kernel never saw: {other:?}"),
    }
    violation(
        pool.submit(own_sigsys_handler, ()).join(),
        &["rt_sigaction"],
    );
    violation(pool.submit(pi_futex, ()).join(), &["futex"]);
}

/// Finding 1, by another route, where sockets are allowed (`network(true)`): an abstract
/// Unix socket of another process (the test's own listener here), which Landlock's scopes
/// (ABI 6) close to a sandboxed worker.
fn connect_abstract(name: String) -> Result<(), String> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .map_err(|e| e.to_string())?;
    std::os::unix::net::UnixStream::connect_addr(&addr)
        .map(drop)
        .map_err(|e| e.to_string())
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn finding_1_an_abstract_unix_socket_outside_the_worker_is_out_of_reach() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("proctor-attack-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let plain = Pool::processes(1).build().unwrap();
    assert_eq!(
        plain.submit(connect_abstract, name.clone()).join(),
        Ok(Ok(()))
    );
    let pool = sandboxed(Sandbox::compute().network(true));
    let scopes = pool
        .sandbox_report()
        .unwrap()
        .layer("landlock scopes")
        .cloned();
    match scopes.map(|l| l.status) {
        Some(proctor::LayerStatus::Applied) => {
            let got = pool.submit(connect_abstract, name).join().unwrap();
            assert!(
                got.as_ref().is_err_and(|e| e.contains("not permitted")),
                "{got:?}"
            );
        }
        other => eprintln!("WARNING: Landlock scopes unavailable here, route untested: {other:?}"),
    }
}
