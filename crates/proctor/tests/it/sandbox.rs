//! The worker sandbox: each attack a compromised task might try, in a plain worker process
//! (where it succeeds) and in a sandboxed one (where it is stopped, with a typed error).

use proctor::{ErrorKind, LayerStatus, Pool, Sandbox, TaskError};

/// The attacks, by number (a task takes plain data).
const READ_PASSWD: u8 = 0;
const CONNECT: u8 = 1;
const SPAWN_PROCESS: u8 = 2;
const SPAWN_THREAD: u8 = 3;
const SIGNAL_PARENT: u8 = 4;
const TRACE_PARENT: u8 = 5;
const WRITE_TMP: u8 = 6;

/// Tries attack `n`; `Ok` with what it got if it worked, `Err` with the error the system
/// gave (the sandbox may also stop the worker at the call, which ends the task).
fn attack(n: u8) -> Result<String, String> {
    let ppid = std::os::unix::process::parent_id() as i32;
    match n {
        READ_PASSWD => std::fs::read_to_string("/etc/passwd")
            .map(|s| format!("{} bytes", s.len()))
            .map_err(|e| e.to_string()),
        CONNECT => std::net::TcpStream::connect("127.0.0.1:9")
            .map(|_| "connected".into())
            .map_err(|e| e.to_string()),
        SPAWN_PROCESS => std::process::Command::new("true")
            .status()
            .map(|s| s.to_string())
            .map_err(|e| e.to_string()),
        SPAWN_THREAD => std::thread::Builder::new()
            .spawn(|| 1)
            .map(|h| h.join().unwrap_or(0).to_string())
            .map_err(|e| e.to_string()),
        // Signal 0 tests the right to signal without sending anything.
        // SAFETY: kill with signal 0 sends nothing.
        SIGNAL_PARENT => match unsafe { libc::kill(ppid, 0) } {
            0 => Ok("may signal its parent".into()),
            _ => Err(std::io::Error::last_os_error().to_string()),
        },
        TRACE_PARENT => {
            // PTRACE_SEIZE only attaches; the worker exits at once, which detaches.
            // SAFETY: ptrace with integer arguments; null pointers are allowed here.
            let r = unsafe { libc::ptrace(libc::PTRACE_SEIZE, ppid, 0usize, 0usize) };
            match r {
                0 => Ok("traced its parent".into()),
                _ => Err(std::io::Error::last_os_error().to_string()),
            }
        }
        WRITE_TMP => {
            let path = std::env::temp_dir().join(format!("proctor-attack-{}", std::process::id()));
            let r = std::fs::write(&path, b"x").map(|()| "wrote".to_string());
            let _ = std::fs::remove_file(&path);
            r.map_err(|e| e.to_string())
        }
        _ => Err("no such attack".into()),
    }
}

/// What a violation says when the task had SIGSYS blocked.
const UNNAMED: &str = "a forbidden system call (unnamed: SIGSYS was blocked)";

fn square(n: u64) -> u64 {
    n * n
}

fn abort_now(_: u64) -> u64 {
    std::process::abort()
}

pub(crate) fn sandboxed(sandbox: Sandbox) -> Pool {
    // Its stderr (the violation reports) stays out of the test's output.
    Pool::processes(1)
        .forward_stderr(false)
        .sandbox(sandbox)
        .build()
        .expect("a sandboxed pool")
}

/// Says loudly which layers this kernel lacks; true if all are in force.
fn all_applied(pool: &Pool) -> bool {
    let report = pool
        .sandbox_report()
        .expect("a sandboxed pool has a report");
    let missing: Vec<_> = report
        .layers
        .iter()
        .filter(|l| matches!(l.status, LayerStatus::Unavailable(_)))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "WARNING: sandbox layers unavailable on this kernel, their attacks untested: {report}"
        );
    }
    missing.is_empty()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn every_attack_works_in_a_plain_worker_and_is_stopped_in_a_compute_sandbox() {
    let plain = Pool::processes(1).build().unwrap();
    // Tracing needs privilege or a permissive ptrace_scope, so it may fail in a plain worker
    // too; every other attack works there.
    for n in [
        READ_PASSWD,
        SPAWN_PROCESS,
        SPAWN_THREAD,
        SIGNAL_PARENT,
        WRITE_TMP,
    ] {
        let got = plain
            .submit(attack, n)
            .join()
            .expect("a plain worker runs it");
        assert!(got.is_ok(), "attack {n} failed in a plain worker: {got:?}");
    }
    let pool = sandboxed(Sandbox::compute());
    assert!(
        all_applied(&pool),
        "every layer applies as root on this kernel"
    );
    assert_eq!(pool.submit(square, 12).join(), Ok(144));
    let expected = [
        (READ_PASSWD, &["openat"][..]),
        (CONNECT, &["socket"]),
        // posix_spawn and pthread_create block signals around their clone: the kernel then
        // kills the worker without naming the call.
        (SPAWN_PROCESS, &["clone", "clone3", "vfork", UNNAMED]),
        (SPAWN_THREAD, &["clone", "clone3", UNNAMED]),
        (SIGNAL_PARENT, &["kill"]),
        (TRACE_PARENT, &["ptrace"]),
        (WRITE_TMP, &["openat"]),
    ];
    for (n, calls) in expected {
        match pool.submit(attack, n).join() {
            Err(TaskError::SandboxViolation { syscall, .. }) => {
                assert!(
                    calls.contains(&syscall.as_str()),
                    "attack {n} stopped at {syscall}"
                )
            }
            other => panic!("attack {n} was not stopped: {other:?}"),
        }
        // The worker was replaced, sandboxed too.
        assert_eq!(pool.submit(square, 3).join(), Ok(9), "after attack {n}");
    }
    // A task's own abort is still a crash by SIGABRT, not a violation: it may signal itself.
    match pool.submit(abort_now, 0).join() {
        Err(TaskError::Crashed { signal, .. }) => assert_eq!(signal, Some(libc::SIGABRT)),
        other => panic!("{other:?}"),
    }
}

fn read_file(path: String) -> Result<usize, String> {
    std::fs::read(&path)
        .map(|b| b.len())
        .map_err(|e| e.to_string())
}

fn write_file(path: String) -> Result<(), String> {
    std::fs::write(&path, b"result").map_err(|e| e.to_string())
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn landlock_lets_a_task_read_and_write_only_where_the_sandbox_says() {
    let dir = tempfile_dir();
    let inside = dir.join("out.txt");
    let pool = sandboxed(Sandbox::read_only(["/etc"]).write_dir(&dir));
    if !all_applied(&pool) {
        return;
    }
    let passwd = std::fs::read("/etc/passwd").unwrap().len();
    assert_eq!(
        pool.submit(read_file, "/etc/passwd".into()).join(),
        Ok(Ok(passwd))
    );
    assert_eq!(
        pool.submit(write_file, inside.display().to_string()).join(),
        Ok(Ok(()))
    );
    assert_eq!(std::fs::read(&inside).unwrap(), b"result");
    // Outside its paths nothing exists (the file-system view), and the task goes on.
    let home = env!("CARGO_MANIFEST_DIR").to_string() + "/Cargo.toml";
    let denied = pool.submit(read_file, home).join().unwrap().unwrap_err();
    assert!(denied.contains("No such file"), "{denied}");
    let denied = pool
        .submit(write_file, "/etc/proctor-attack".into())
        .join()
        .unwrap()
        .unwrap_err();
    assert!(
        denied.contains("ermission denied") || denied.contains("ead-only"),
        "{denied}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("proctor-sandbox-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_layer_that_cannot_be_applied_fails_the_build_unless_allowed() {
    // No such path to grant: Landlock cannot make its rule.
    let missing = "/no/such/proctor/path";
    let e = Pool::processes(1)
        .forward_stderr(false)
        .sandbox(Sandbox::read_only([missing]))
        .build()
        .unwrap_err();
    match e.kind() {
        ErrorKind::Sandbox { message } => {
            assert!(
                message.contains("landlock") && message.contains(missing),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    // An open-files limit above the kernel's ceiling cannot be set.
    let e = Pool::processes(1)
        .forward_stderr(false)
        .sandbox(Sandbox::compute().open_files(u64::MAX - 1))
        .build()
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::Sandbox { message } if message.contains("rlimits")),
        "{e}"
    );
    // Allowed: the pool runs, and its report says what is missing and why.
    let pool = Pool::processes(1)
        .forward_stderr(false)
        .sandbox(
            Sandbox::compute()
                .open_files(u64::MAX - 1)
                .allow_unavailable(true),
        )
        .build()
        .unwrap();
    let rlimits = pool.sandbox_report().unwrap().layer("rlimits").unwrap();
    assert!(
        matches!(&rlimits.status, LayerStatus::Unavailable(why) if why.contains("NOFILE")),
        "{rlimits:?}"
    );
    assert_eq!(pool.submit(square, 5).join(), Ok(25));
    assert!(
        Pool::threads(1)
            .sandbox(Sandbox::compute())
            .build()
            .is_err()
    );
}

fn connect_to(port: u16) -> Result<(), String> {
    std::net::TcpStream::connect(("127.0.0.1", port))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_network_namespace_leaves_a_worker_alone_on_its_own_loopback() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let open = Pool::processes(1)
        .sandbox(Sandbox::compute().network(true))
        .build()
        .unwrap();
    assert_eq!(open.submit(connect_to, port).join(), Ok(Ok(())));
    let pool = sandboxed(Sandbox::compute().network(true).network_namespace(true));
    let netns = pool
        .sandbox_report()
        .unwrap()
        .layer("network namespace")
        .unwrap();
    if netns.status != LayerStatus::Applied {
        eprintln!("WARNING: no network namespace on this machine, untested: {netns:?}");
        return;
    }
    let refused = pool.submit(connect_to, port).join().unwrap().unwrap_err();
    // The fresh namespace's loopback is down, and the listener is in another namespace.
    assert!(
        refused.contains("unreachable") || refused.contains("refused"),
        "{refused}"
    );
}
