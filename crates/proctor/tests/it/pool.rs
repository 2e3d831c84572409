//! The pool contract, in both modes, and process mode's crash isolation.
//!
//! Longer than 600 lines: the contract is one list of promises, each tested in both modes
//! through the same helpers.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use proctor::{Mode, Pool, TaskError};
use serde::{Deserialize, Serialize};

use crate::sleep_ms;

fn square(n: u64) -> u64 {
    n * n
}

/// True while `/proc/PID` exists and is not a zombie.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

fn wait_gone(pids: &[u32], within: Duration) -> Vec<u32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<u32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    name: String,
    values: Vec<i32>,
    flag: Option<bool>,
}

fn describe(r: Record) -> (String, i64) {
    (
        format!("{}!", r.name),
        r.values.iter().map(|&v| v as i64).sum(),
    )
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn same_map_gives_identical_results_in_both_modes() {
    let input: Vec<Record> = (0..2000)
        .map(|i| Record {
            name: format!("r{i}"),
            values: vec![i, -i, 3 * i],
            flag: Some(i % 2 == 0),
        })
        .collect();
    let mut outputs = Vec::new();
    for mode in [Mode::Threads, Mode::Processes] {
        let pool = Pool::builder(mode, 3).build().unwrap();
        assert_eq!(pool.mode(), mode);
        assert_eq!(pool.workers(), 3);
        let out = pool.try_map(describe, input.clone()).unwrap();
        assert_eq!(pool.map(square, Vec::<u64>::new()).len(), 0);
        let singles: Vec<u64> = (0..20)
            .map(|n| pool.submit(square, n))
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(singles, (0..20).map(square).collect::<Vec<_>>());
        pool.shutdown();
        outputs.push(out);
    }
    assert_eq!(outputs[0], outputs[1]);
    assert_eq!(outputs[0][7], ("r7!".to_string(), 21));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn chunked_map_keeps_input_order() {
    for mode in [Mode::Threads, Mode::Processes] {
        let pool = Pool::builder(mode, 2).chunk_size(7).build().unwrap();
        let out = pool.try_map(square, 0..10_000u64).unwrap();
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, &v)| v == (i as u64) * (i as u64)),
            "{mode}"
        );
    }
}

/// An argument that refuses to be serialized when its number ends in 999.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Picky(u64);

impl Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 % 1000 == 999 {
            return Err(serde::ser::Error::custom("picky refuses"));
        }
        s.serialize_u64(self.0)
    }
}

fn double_picky(p: Picky) -> u64 {
    p.0 * 2
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn an_argument_that_cannot_be_encoded_fails_only_its_task() {
    // Arguments are encoded in runs; a failure anywhere in a run must still be pinned on
    // its own item, in every chunking.
    for chunk in [None, Some(1), Some(300)] {
        let mut builder = Pool::processes(2);
        if let Some(c) = chunk {
            builder = builder.chunk_size(c);
        }
        let pool = builder.build().unwrap();
        let out = pool.map(double_picky, (0..5_000).map(Picky));
        assert_eq!(out.len(), 5_000);
        for (i, o) in out.iter().enumerate() {
            match o {
                // (postcard keeps no custom message: "Serde Serialization Error")
                Err(TaskError::Codec { message, .. }) if i % 1000 == 999 => {
                    assert!(message.contains("could not be encoded"), "{message}")
                }
                Ok(v) if i % 1000 != 999 => assert_eq!(*v, 2 * i as u64),
                other => panic!("item {i} (chunk {chunk:?}): {other:?}"),
            }
        }
    }
}

/// What a task in the fault matrix does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Fault {
    Fine(u64),
    Panic,
    Abort,
    Segfault,
    Hang,
    Exit3,
    SigkillSelf,
}

fn misbehave(f: Fault) -> u64 {
    match f {
        Fault::Fine(n) => n * 10,
        Fault::Panic => panic!("deliberate panic"),
        Fault::Abort => std::process::abort(),
        Fault::Segfault => {
            // A dangling pointer is aligned and non-null (so no debug assertion fires first)
            // and points into the never-mapped first page: the read faults.
            let p = std::ptr::dangling::<u64>();
            // SAFETY: not safe at all: the point is the SIGSEGV, inside a worker process.
            unsafe { p.read_volatile() }
        }
        Fault::Hang => {
            std::thread::sleep(Duration::from_secs(60));
            0
        }
        Fault::Exit3 => std::process::exit(3),
        Fault::SigkillSelf => {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            0
        }
    }
}

fn fault_batch() -> Vec<Fault> {
    let faults = [
        Fault::Panic,
        Fault::Abort,
        Fault::Segfault,
        Fault::Hang,
        Fault::Exit3,
        Fault::SigkillSelf,
    ];
    let mut batch = Vec::new();
    for (i, f) in faults.into_iter().enumerate() {
        batch.push(Fault::Fine(i as u64 * 2));
        batch.push(f);
        batch.push(Fault::Fine(i as u64 * 2 + 1));
    }
    batch
}

fn check_fault_outcomes(batch: &[Fault], out: &[Result<u64, TaskError>]) {
    assert_eq!(out.len(), batch.len());
    for (f, r) in batch.iter().zip(out) {
        match (f, r) {
            (Fault::Fine(n), Ok(v)) => assert_eq!(*v, n * 10),
            (
                Fault::Panic,
                Err(TaskError::Panicked {
                    message, location, ..
                }),
            ) => {
                assert_eq!(message, "deliberate panic");
                assert!(
                    location.as_deref().is_some_and(|l| l.contains("pool.rs")),
                    "{location:?}"
                );
            }
            (
                Fault::Abort,
                Err(TaskError::Crashed {
                    signal: Some(libc::SIGABRT),
                    ..
                }),
            ) => {}
            (
                Fault::Segfault,
                Err(
                    e @ TaskError::Crashed {
                        signal: Some(libc::SIGSEGV),
                        ..
                    },
                ),
            ) => {
                assert!(
                    e.to_string().contains("SIGSEGV (segmentation fault)"),
                    "{e}"
                );
            }
            (Fault::Hang, Err(TaskError::TimedOut { after, .. })) => {
                assert!(*after >= Duration::from_millis(300), "{after:?}");
            }
            (
                Fault::Exit3,
                Err(TaskError::Crashed {
                    exit_code: Some(3),
                    signal: None,
                    ..
                }),
            ) => {}
            (
                Fault::SigkillSelf,
                Err(TaskError::Crashed {
                    signal: Some(libc::SIGKILL),
                    ..
                }),
            ) => {}
            (f, r) => panic!("{f:?} gave {r:?}"),
        }
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn every_fault_is_its_own_typed_error_and_the_pool_goes_on() {
    let batch = fault_batch();
    for chunk in [None, Some(4)] {
        let mut b = Pool::processes(2).task_timeout(Duration::from_millis(400));
        if let Some(c) = chunk {
            b = b.chunk_size(c);
        }
        let pool = b.build().unwrap();
        let out = pool.map(misbehave, batch.clone());
        check_fault_outcomes(&batch, &out);
        // The pool replaced its workers and runs the next map in full.
        assert_eq!(
            pool.try_map(square, 1..=5u64).unwrap(),
            vec![1, 4, 9, 16, 25]
        );
        assert_eq!(pool.worker_pids().len(), 2);
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_crash_report_names_worker_and_task() {
    let pool = Pool::processes(1).build().unwrap();
    let e = pool.submit(misbehave, Fault::Segfault).join().unwrap_err();
    let s = e.to_string();
    assert!(
        s.starts_with("worker 0 was killed by SIGSEGV (segmentation fault) while running item 0"),
        "{s}"
    );
    assert!(e.is_crashed());
    // The replacement worker gets a new number.
    let e = pool.submit(misbehave, Fault::Exit3).join().unwrap_err();
    assert!(
        e.to_string().starts_with("worker 1 exited with code 3"),
        "{e}"
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn killing_a_worker_from_outside_fails_only_its_task() {
    let pool = Pool::processes(2).build().unwrap();
    let pids = pool.worker_pids();
    let hung = pool.submit(misbehave, Fault::Hang);
    let fine = pool.submit(misbehave, Fault::Fine(4));
    std::thread::sleep(Duration::from_millis(100));
    for pid in pids {
        // Only the busy worker is in a task; killing the idle one costs nothing but a respawn.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(matches!(
        hung.join(),
        Err(TaskError::Crashed {
            signal: Some(libc::SIGKILL),
            ..
        })
    ));
    assert_eq!(fine.join(), Ok(40));
    assert_eq!(pool.submit(square, 3).join(), Ok(9));
}

fn allocate_mib(mib: usize) -> usize {
    let v = vec![7u8; mib << 20];
    std::hint::black_box(&v).len()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn memory_limit_turns_oom_into_a_typed_error_of_one_task() {
    let limit = 256 << 20;
    let pool = Pool::processes(1)
        .memory_limit(limit)
        .forward_stderr(false)
        .build()
        .unwrap();
    let out = pool.map(allocate_mib, vec![16, 1024, 32]);
    assert_eq!(out[0], Ok(16 << 20));
    let e = out[1].as_ref().unwrap_err();
    assert!(
        matches!(e, TaskError::OutOfMemory { limit: l, index: 1, .. } if *l == limit),
        "{e:?}"
    );
    assert!(e.is_out_of_memory());
    assert!(e.to_string().contains("ran out of memory"), "{e}");
    assert_eq!(out[2], Ok(32 << 20));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_memory_limit_too_small_for_an_idle_worker_is_a_build_error() {
    let e = Pool::processes(1)
        .memory_limit(1)
        .forward_stderr(false)
        .build()
        .unwrap_err();
    assert!(e.is_invalid_config(), "{e}");
    assert!(
        e.to_string().contains("too small for an idle worker"),
        "{e}"
    );
}

fn recurse(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    if depth == 0 {
        pad[3]
    } else {
        recurse(depth - 1).wrapping_add(pad[7])
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn stack_overflow_is_a_crash_of_one_task() {
    let pool = Pool::processes(1).build().unwrap();
    let out = pool.map(recurse, vec![10, u64::MAX, 10]);
    assert!(out[0].is_ok() && out[2].is_ok(), "{out:?}");
    // SIGSEGV on the guard page, or SIGABRT after std's overflow handler printed its note
    // (std installs that handler in its runtime start-up, which a fork server started before
    // main has not run yet).
    let e = out[1].as_ref().unwrap_err();
    assert!(
        matches!(
            e,
            TaskError::Crashed {
                signal: Some(libc::SIGSEGV | libc::SIGABRT),
                ..
            }
        ),
        "{e:?}"
    );
}

fn pid_of_worker(_: u64) -> u32 {
    std::process::id()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn max_tasks_per_worker_recycles_processes() {
    let pool = Pool::processes(1).max_tasks_per_worker(2).build().unwrap();
    let pids: Vec<u32> = (0..6)
        .map(|i| pool.submit(pid_of_worker, i).join().unwrap())
        .collect();
    let distinct: HashSet<u32> = pids.iter().copied().collect();
    assert_eq!(distinct.len(), 3, "{pids:?}");
    let out = pool.try_map(pid_of_worker, 0..10u64).unwrap();
    let per_pid = out.iter().fold(
        std::collections::HashMap::<u32, usize>::new(),
        |mut m, p| {
            *m.entry(*p).or_default() += 1;
            m
        },
    );
    assert!(per_pid.values().all(|&n| n <= 2), "{per_pid:?}");
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn drop_leaves_no_worker_process() {
    let pool = Pool::processes(3).build().unwrap();
    let pids = pool.worker_pids();
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| alive(p)));
    let busy = pool.submit(misbehave, Fault::Hang);
    std::thread::sleep(Duration::from_millis(50));
    drop(pool);
    assert!(matches!(busy.join(), Err(TaskError::Cancelled { .. })));
    // Drop waits for the workers to be reaped: none may remain, not even as a zombie.
    let left: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|&p| Path::new(&format!("/proc/{p}")).exists())
        .collect();
    assert!(
        left.is_empty(),
        "workers still present after drop: {left:?}"
    );
}

#[allow(clippy::zombie_processes)] // the worker dies; the fork server reaps the orphan
fn spawn_grandchild_then(f: (String, bool)) -> u64 {
    let child = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn sleep");
    std::fs::write(&f.0, child.id().to_string()).expect("write pid file");
    if f.1 {
        std::process::abort();
    }
    std::thread::sleep(Duration::from_secs(60));
    0
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_workers_grandchild_dies_with_it() {
    let dir = std::env::temp_dir().join(format!("proctor-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = Pool::processes(1)
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    for (name, crash) in [("crash", true), ("timeout", false)] {
        let file = dir.join(name);
        let r = pool
            .submit(spawn_grandchild_then, (file.display().to_string(), crash))
            .join();
        assert!(r.is_err(), "{name}: {r:?}");
        let pid: u32 = std::fs::read_to_string(&file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(
            wait_gone(&[pid], Duration::from_secs(1)),
            Vec::<u32>::new(),
            "{name}: grandchild survived"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn shout_then_abort(_: u64) -> u64 {
    eprintln!("MARKER-FROM-WORKER");
    std::process::abort();
}

/// Not a test on its own: the body of the child process in `forward_stderr_...`.
#[test]
#[ignore = "helper run as a child process by another test"]
fn helper_pool_with_a_noisy_crash() {
    let Some(forward) = std::env::var_os("PROCTOR_TEST_FORWARD") else {
        return;
    };
    let pool = Pool::processes(1)
        .forward_stderr(forward == "1")
        .build()
        .unwrap();
    match pool.submit(shout_then_abort, 0).join() {
        Err(TaskError::Crashed { stderr_tail, .. })
            if stderr_tail.contains("MARKER-FROM-WORKER") =>
        {
            println!("TAIL-KEPT");
        }
        other => panic!("expected a crash with the marker in its tail: {other:?}"),
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn forward_stderr_false_keeps_worker_output_off_the_terminal_but_in_the_tail() {
    for (forward, on_terminal) in [("1", true), ("0", false)] {
        let out = crate::helper(
            "pool::helper_pool_with_a_noisy_crash",
            ("PROCTOR_TEST_FORWARD", forward),
        )
        .output()
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("TAIL-KEPT"), "{stdout}");
        assert_eq!(
            stderr.contains("MARKER-FROM-WORKER"),
            on_terminal,
            "forward_stderr({}): {stderr}",
            forward == "1"
        );
    }
}

/// Not a test on its own: the body of the child process in `sigkill_of_the_parent_...`.
#[test]
#[ignore = "helper run as a child process by another test"]
fn helper_pool_parent_that_waits_to_be_killed() {
    if std::env::var_os("PROCTOR_TEST_HELPER").is_none() {
        return;
    }
    let pool = Pool::processes(3).build().unwrap();
    let _busy = pool.submit(misbehave, Fault::Hang);
    std::thread::sleep(Duration::from_millis(50));
    let pids: Vec<String> = pool.worker_pids().iter().map(u32::to_string).collect();
    println!("PIDS {}", pids.join(" "));
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn sigkill_of_the_parent_leaves_no_worker_alive() {
    use std::io::BufRead;
    let mut child = crate::helper(
        "pool::helper_pool_parent_that_waits_to_be_killed",
        ("PROCTOR_TEST_HELPER", "1"),
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut pids = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // libtest prints "test NAME ... " without a newline before the test's own output.
        if let Some((_, rest)) = line.split_once("PIDS ") {
            pids = rest.split(' ').map(|p| p.parse::<u32>().unwrap()).collect();
            break;
        }
    }
    assert_eq!(pids.len(), 3);
    assert!(pids.iter().all(|&p| alive(p)));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        wait_gone(&pids, Duration::from_secs(1)),
        Vec::<u32>::new(),
        "workers outlived their parent"
    );
}

#[test]
fn thread_mode_catches_panics_and_times_out() {
    let pool = Pool::threads(2).build().unwrap();
    let out = pool.map(
        misbehave,
        vec![Fault::Fine(1), Fault::Panic, Fault::Fine(2)],
    );
    assert_eq!(out[0], Ok(10));
    assert!(
        matches!(&out[1], Err(TaskError::Panicked { message, .. }) if message == "deliberate panic")
    );
    assert_eq!(out[2], Ok(20));

    let pool = Pool::threads(1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let out = pool.map(misbehave, vec![Fault::Fine(1), Fault::Hang, Fault::Fine(3)]);
    assert_eq!(out[0], Ok(10));
    assert!(
        matches!(out[1], Err(TaskError::TimedOut { .. })),
        "{:?}",
        out[1]
    );
    // The replacement thread runs the rest, though the stuck one still sleeps.
    assert_eq!(out[2], Ok(30));
    pool.shutdown();
}

fn thread_name(_: u64) -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

#[test]
fn thread_mode_recycles_workers() {
    let pool = Pool::threads(1).max_tasks_per_worker(3).build().unwrap();
    let names: HashSet<String> = (0..9)
        .map(|i| pool.submit(thread_name, i).join().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
}

#[test]
fn bad_options_are_clear_errors() {
    let e = Pool::processes(0).build().unwrap_err();
    assert!(e.is_invalid_config());
    assert_eq!(
        e.to_string(),
        "invalid pool configuration: a pool needs at least one worker, got Pool::processes(0)"
    );
    let e = Pool::threads(2).memory_limit(1 << 20).build().unwrap_err();
    assert!(
        e.to_string()
            .contains("memory_limit applies to worker processes only"),
        "{e}"
    );
    assert!(
        Pool::threads(1)
            .chunk_size(0)
            .build()
            .unwrap_err()
            .is_invalid_config()
    );
    assert!(
        Pool::threads(1)
            .task_timeout(Duration::ZERO)
            .build()
            .unwrap_err()
            .is_invalid_config()
    );
    // Switching the mode stays one word: forward_stderr is accepted by threads too.
    assert!(Pool::threads(1).forward_stderr(false).build().is_ok());
    let e = Pool::threads(1).memory_limit(1 << 30).build().unwrap_err();
    assert!(e.to_string().contains("one address space"), "{e}");
    // Worker numbers are u32 (they keep TaskError small); the builder says so.
    let e = Pool::builder(Mode::Threads, usize::MAX)
        .build()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("a pool has at most 4294967295 workers"),
        "{e}"
    );
}

#[test]
fn try_map_returns_the_first_failure() {
    let pool = Pool::threads(2).build().unwrap();
    let e = pool
        .try_map(misbehave, vec![Fault::Fine(1), Fault::Panic])
        .unwrap_err();
    assert!(e.task_error().is_some_and(TaskError::is_panicked), "{e}");
}

fn odd_fails(n: u64) -> u64 {
    if n % 2 == 1 {
        panic!("item {n} is odd");
    }
    n
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn try_map_reports_the_first_failure_in_input_order_in_both_modes() {
    for mode in [Mode::Threads, Mode::Processes] {
        for chunk in [1, 2, 100] {
            let pool = Pool::builder(mode, 2).chunk_size(chunk).build().unwrap();
            let e = pool.try_map(odd_fails, vec![0, 2, 5, 4, 7, 9]).unwrap_err();
            match e.task_error() {
                Some(TaskError::Panicked { message, .. }) => {
                    assert_eq!(message, "item 5 is odd", "{mode}, chunk {chunk}")
                }
                other => panic!("{mode}, chunk {chunk}: {other:?}"),
            }
            assert_eq!(
                pool.try_map(odd_fails, vec![0, 2, 4]).unwrap(),
                vec![0, 2, 4]
            );
        }
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_task_handle_can_be_polled_and_waited_on_with_a_timeout_in_both_modes() {
    for mode in [Mode::Threads, Mode::Processes] {
        let pool = Pool::builder(mode, 1).build().unwrap();
        let slow = pool.submit(sleep_ms, 300);
        assert!(!slow.is_finished(), "{mode}");
        let slow = slow.try_join().expect_err("not finished yet");
        let slow = slow
            .join_timeout(Duration::from_millis(10))
            .expect_err("not within 10 ms");
        assert_eq!(
            slow.join_timeout(Duration::from_secs(30)).ok(),
            Some(Ok(300)),
            "{mode}"
        );
        let quick = pool.submit(square, 4);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !quick.is_finished() {
            assert!(Instant::now() < deadline, "{mode}: never finished");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(quick.try_join().ok(), Some(Ok(16)), "{mode}");
        pool.shutdown();
    }
}

static NAPPING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sleeps `ms`, after saying so (visible to the caller in thread mode only).
fn flagged_nap(ms: u64) -> u64 {
    NAPPING.store(true, std::sync::atomic::Ordering::SeqCst);
    sleep_ms(ms)
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn cancel_stops_a_queued_task_in_both_modes_and_a_running_one_in_process_mode() {
    for mode in [Mode::Threads, Mode::Processes] {
        let pool = Pool::builder(mode, 1).build().unwrap();
        let busy = pool.submit(flagged_nap, 2_000);
        let queued = pool.submit(sleep_ms, 5);
        assert!(queued.cancel(), "{mode}");
        assert!(queued.join().unwrap_err().is_cancelled(), "{mode}");
        let before = pool.worker_pids();
        match mode {
            Mode::Processes => {
                // A worker process starts its task within microseconds.
                std::thread::sleep(Duration::from_millis(300));
                assert!(busy.cancel(), "a running process task is killed");
                assert!(busy.join().unwrap_err().is_cancelled());
                assert_ne!(pool.worker_pids(), before, "its worker was replaced");
            }
            Mode::Threads => {
                while !NAPPING.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                assert!(!busy.cancel(), "a running thread cannot be stopped");
                assert_eq!(busy.join(), Ok(2_000));
            }
        }
        // The pool goes on, and a finished task cannot be cancelled.
        let done = pool.submit(square, 6);
        while !done.is_finished() {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!done.cancel(), "{mode}");
        assert_eq!(done.join(), Ok(36));
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_task_is_a_future_under_tokio_in_both_modes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    for mode in [Mode::Threads, Mode::Processes] {
        let pool = Pool::builder(mode, 2).build().unwrap();
        rt.block_on(async {
            assert_eq!(pool.submit(square, 7).await, Ok(49), "{mode}");
            // Many at once, awaited together while the runtime's threads stay free.
            let tasks: Vec<_> = (0..200u64).map(|n| pool.submit(square, n)).collect();
            let joined = tokio::spawn(async move {
                let mut out = Vec::new();
                for t in tasks {
                    out.push(t.await);
                }
                out
            });
            // The runtime is not blocked meanwhile: a timer still fires.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let out = joined.await.unwrap();
            assert!(
                out.iter()
                    .enumerate()
                    .all(|(n, o)| *o == Ok((n * n) as u64)),
                "{mode}"
            );
            // A slower task's await, under a runtime timeout.
            let slow = pool.submit(sleep_ms, 50);
            let r = tokio::time::timeout(Duration::from_secs(30), slow).await;
            assert_eq!(r.ok(), Some(Ok(50)), "{mode}");
        });
        pool.shutdown();
    }
}
