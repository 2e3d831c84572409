//! The ssh and Slurm launchers against real engines on this machine: an sshd on a loopback
//! port and a single-node Slurm cluster, both started by `scripts/engines.sh up` (which
//! `.ci/run` runs). Each engine gets the seed's squares, a fault matrix and a 100 000-item
//! map. Without its engine a test fails in CI and, elsewhere, says loudly that it skipped.

use std::collections::HashMap;
use std::time::Duration;

use proctor::{Pool, Remote, TaskError};

/// The engines' settings: the environment, else the file `scripts/engines.sh up` wrote.
fn engines() -> HashMap<String, String> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/engines/env");
    let mut vars: HashMap<String, String> = std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for (k, v) in std::env::vars().filter(|(k, _)| k.starts_with("PROCTOR_TEST_")) {
        vars.insert(k, v);
    }
    vars
}

/// `remote`, or — when the engine is not up — a failure in CI and a loud skip elsewhere.
fn or_skip(engine: &str, remote: Option<Remote>) -> Option<Remote> {
    if remote.is_none() {
        let msg = format!("the {engine} engine is not up: run scripts/engines.sh up");
        assert!(std::env::var_os("CI").is_none(), "{msg}");
        eprintln!("SKIPPED: {msg}");
    }
    remote
}

fn loopback(r: Remote) -> Remote {
    r.listen("127.0.0.1:0".parse().unwrap())
        .connect_timeout(Duration::from_secs(30))
}

fn ssh() -> Option<Remote> {
    let e = engines();
    let remote = match (
        e.get("PROCTOR_TEST_SSH_CONFIG"),
        e.get("PROCTOR_TEST_SSH_HOST"),
    ) {
        (Some(cfg), Some(host)) => Some(loopback(
            Remote::ssh([host.as_str()]).ssh_options(["-F", cfg.as_str()]),
        )),
        _ => None,
    };
    or_skip("ssh", remote)
}

fn slurm() -> Option<Remote> {
    let up = engines()
        .get("PROCTOR_TEST_SLURM")
        .is_some_and(|v| v == "1");
    or_skip(
        "Slurm",
        up.then(|| loopback(Remote::slurm().srun_args(["--overcommit"]))),
    )
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug)]
enum Fault {
    Fine(u64),
    Panic,
    Abort,
    Segfault,
    Exit3,
    Hang,
    Hog,
}

fn run(f: Fault) -> u64 {
    match f {
        Fault::Fine(n) => n * n,
        Fault::Panic => panic!("deliberate panic"),
        Fault::Abort => std::process::abort(),
        Fault::Segfault => {
            let p = std::ptr::dangling::<u64>();
            // SAFETY: not safe at all: the point is the SIGSEGV, inside a remote worker.
            unsafe { p.read_volatile() }
        }
        Fault::Exit3 => std::process::exit(3),
        Fault::Hang => {
            std::thread::sleep(Duration::from_secs(60));
            0
        }
        Fault::Hog => std::hint::black_box(vec![1u8; 1 << 30]).len() as u64,
    }
}

fn square(n: u64) -> u64 {
    n * n
}

/// The squares, the fault matrix and the big map, on one pool of `remote` workers.
fn keeps_every_promise(remote: Remote) {
    let pool = Pool::processes(2)
        .remote(remote)
        .task_timeout(Duration::from_secs(2))
        .memory_limit(256 << 20)
        .forward_stderr(false)
        .build()
        .unwrap();
    assert_eq!(
        pool.try_map(square, vec![1, 2, 3, 4, 5]).unwrap(),
        [1, 4, 9, 16, 25]
    );

    let faults = [
        Fault::Panic,
        Fault::Abort,
        Fault::Segfault,
        Fault::Exit3,
        Fault::Hang,
        Fault::Hog,
    ];
    let mut items = Vec::new();
    for (k, f) in faults.iter().enumerate() {
        items.push(Fault::Fine(k as u64));
        items.push(*f);
    }
    let out = pool.map(run, items.clone());
    for (item, o) in items.iter().zip(&out) {
        match (item, o) {
            (Fault::Fine(n), Ok(v)) => assert_eq!(*v, n * n),
            (Fault::Panic, Err(TaskError::Panicked { message, .. })) => {
                assert_eq!(message, "deliberate panic")
            }
            (Fault::Abort, Err(TaskError::Crashed { signal, .. })) => {
                assert_eq!(*signal, Some(libc::SIGABRT))
            }
            (Fault::Segfault, Err(TaskError::Crashed { signal, .. })) => {
                assert_eq!(*signal, Some(libc::SIGSEGV))
            }
            (Fault::Exit3, Err(TaskError::Crashed { exit_code, .. })) => {
                assert_eq!(*exit_code, Some(3))
            }
            (Fault::Hang, Err(TaskError::TimedOut { .. })) => {}
            (Fault::Hog, Err(TaskError::OutOfMemory { .. })) => {}
            (item, o) => panic!("{item:?} ended as {o:?}"),
        }
    }

    let big: Vec<u64> = (0..100_000).collect();
    let squares = pool.try_map(square, big.clone()).unwrap();
    assert!(squares.iter().zip(&big).all(|(s, n)| *s == n * n));

    // A host lost (its agent killed): the launcher starts its agent again, and the pool
    // goes on with both slots filled.
    let before = pool.worker_pids();
    let agent = crate::remote::parent_of(before[0]);
    crate::remote::kill_all(&[agent]);
    assert!(crate::remote::gone_within(
        before[0],
        Duration::from_secs(10)
    ));
    std::thread::sleep(Duration::from_millis(300));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert_eq!(pool.try_map(square, 0..1000u64).unwrap()[999], 999 * 999);
        let now = pool.worker_pids();
        if now.len() == 2 && !now.contains(&before[0]) {
            assert_ne!(crate::remote::parent_of(now[0]), agent);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not relaunched: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_ssh_launcher_keeps_every_promise() {
    if let Some(remote) = ssh() {
        keeps_every_promise(remote);
    }
}

#[test]
fn the_slurm_launcher_keeps_every_promise() {
    if let Some(remote) = slurm() {
        keeps_every_promise(remote);
    }
}

#[test]
fn an_ssh_host_that_cannot_be_reached_is_a_clear_error() {
    let Some(_) = ssh() else { return };
    let e = Pool::processes(1)
        .remote(loopback(Remote::ssh(["no-such-host.invalid"])))
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("ssh") && text.contains("exited"), "{text}");
}
