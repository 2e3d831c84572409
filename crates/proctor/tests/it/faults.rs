//! Regression tests for the faults that once broke process mode's promise (one outcome per
//! task, never a hang, nothing lost). Each failed before its fix.
//!
//! Longer than 600 lines: one regression test per fault that once broke the promise, each
//! with the story of its bug; they share helpers and read best in the order they were found.

use std::io::Write;
use std::time::{Duration, Instant};

use proctor::{Pool, TaskError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::sleep_ms;

fn double(n: u64) -> u64 {
    2 * n
}

/// A `u64` whose `Deserialize` panics on 13.
#[derive(Debug, Clone, Copy, Serialize)]
struct Touchy(u64);

impl<'de> Deserialize<'de> for Touchy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        assert!(n != 13, "13 does not decode");
        Ok(Touchy(n))
    }
}

fn untouchy(t: Touchy) -> u64 {
    2 * t.0
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn an_argument_whose_deserialize_panics_fails_alone_and_map_returns() {
    let pool = Pool::processes(2).build().unwrap();
    for chunk in [1, 4] {
        let out = pool.map(untouchy, [1, 13, 3, 4].map(Touchy));
        assert_eq!(out.len(), 4, "chunk {chunk}");
        assert_eq!(out[0], Ok(2));
        let e = out[1].as_ref().unwrap_err();
        assert!(e.to_string().contains("13 does not decode"), "{e}");
        assert_eq!((out[2].clone(), out[3].clone()), (Ok(6), Ok(8)));
    }
}

fn length(v: Vec<u8>) -> usize {
    v.len()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn an_argument_too_big_to_decode_under_the_memory_limit_is_poisoned_not_looped() {
    let pool = Pool::processes(1)
        .memory_limit(64 << 20)
        .chunk_size(3)
        .forward_stderr(false)
        .build()
        .unwrap();
    let out = pool.map(
        length,
        vec![vec![1u8; 10], vec![2u8; 96 << 20], vec![3u8; 20]],
    );
    // The three share one frame, too big to read under the limit: the strikes halve the job
    // until they isolate the big argument, and the others run.
    assert_eq!(out[0], Ok(10));
    assert!(
        matches!(
            out[1],
            Err(TaskError::Poisoned {
                attempts: 2,
                index: 1,
                ..
            })
        ),
        "{:?}",
        out[1]
    );
    assert_eq!(out[2], Ok(20));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn map_never_builds_a_frame_over_the_limit_from_items_that_fit_alone() {
    let pool = Pool::processes(1).chunk_size(2).build().unwrap();
    // The first item starts a job (it is under the 8 MiB cut); the second fits in a frame
    // alone, but not after the first.
    let out = pool.map(length, vec![vec![0u8; 7 << 20], vec![1u8; 250 << 20]]);
    assert_eq!(out, vec![Ok(7 << 20), Ok(250 << 20)]);
}

/// A result whose `Serialize` always fails.
#[derive(Debug, Deserialize)]
struct Unsendable;

impl Serialize for Unsendable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("never on the wire"))
    }
}

fn unsendable(_: u64) -> Unsendable {
    Unsendable
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_result_that_fails_to_serialize_is_a_codec_error_of_its_own() {
    let pool = Pool::processes(1).build().unwrap();
    let out = pool.map(unsendable, vec![1, 2]);
    for o in &out {
        let e = o.as_ref().unwrap_err();
        assert!(e.to_string().contains("could not be encoded"), "{e}");
        assert!(!e.to_string().contains("limit"), "{e}");
    }
    assert_eq!(pool.submit(double, 4).join(), Ok(8));
}

/// A result whose `Deserialize` panics in the parent.
#[derive(Debug, Serialize)]
struct Fragile(u64);

impl<'de> Deserialize<'de> for Fragile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        assert!(n != 7, "7 breaks on arrival");
        Ok(Fragile(n))
    }
}

fn fragile(n: u64) -> Fragile {
    Fragile(n)
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_result_whose_deserialize_panics_leaves_the_pool_usable() {
    let pool = Pool::processes(2).build().unwrap();
    let out = pool.map(fragile, vec![6, 7, 8]);
    assert_eq!(out[0].as_ref().map(|f| f.0), Ok(6));
    assert!(
        out[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("7 breaks on arrival")
    );
    assert_eq!(out[2].as_ref().map(|f| f.0), Ok(8));
    let e = pool.submit(fragile, 7).join().unwrap_err();
    assert!(matches!(e, TaskError::Codec { .. }), "{e:?}");
    assert_eq!(pool.try_map(double, vec![1, 2]).unwrap(), vec![2, 4]);
    pool.shutdown();
}

fn nested(_: u64) -> String {
    proctor::init();
    match Pool::processes(1).build() {
        Ok(_) => "built".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn init_inside_a_task_returns_and_a_nested_process_pool_says_why_not() {
    let pool = Pool::processes(1)
        .task_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let said = pool.submit(nested, 0).join().unwrap();
    assert!(said.contains("cannot be nested"), "{said}");
}

fn sigpipe_ignored_by_server_and_worker(_: u64) -> (bool, bool) {
    let ignored = |status: String| {
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap_or(0))
            .unwrap_or(0);
        mask & (1 << (libc::SIGPIPE - 1)) != 0
    };
    let me = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    // SAFETY: getppid takes no arguments and cannot fail.
    let server = unsafe { libc::getppid() };
    let parent = std::fs::read_to_string(format!("/proc/{server}/status")).unwrap_or_default();
    (ignored(parent), ignored(me))
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn the_fork_server_ignores_sigpipe_even_when_started_before_main() {
    // This test binary starts the server with init_before_main!, before Rust's runtime
    // ignores SIGPIPE: the server must ignore it itself, or a write to a dead parent kills
    // it before it kills its worker groups.
    let pool = Pool::processes(1).build().unwrap();
    assert_eq!(
        pool.submit(sigpipe_ignored_by_server_and_worker, 0).join(),
        Ok((true, true))
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_timeout_fires_while_nobody_waits() {
    let pool = Pool::processes(1)
        .task_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let task = pool.submit(sleep_ms, 60_000);
    // Nobody joins: the pool's supervisor must stop the task and replace its worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    while pool.worker_pids() == before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_ne!(
        pool.worker_pids(),
        before,
        "the overrunning worker was not replaced"
    );
    assert!(task.join().unwrap_err().is_timed_out());
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_timeout_wakes_the_thread_waiting_for_it_while_another_drives() {
    let pool = Pool::processes(2)
        .task_timeout(Duration::from_millis(500))
        .chunk_size(10)
        .build()
        .unwrap();
    let hung = pool.submit(sleep_ms, 60_000);
    std::thread::scope(|s| {
        // Ten tasks of 300 ms in one job on the other worker: that thread drives for about
        // 3 s, with no news until the job ends.
        let driver = s.spawn(|| {
            let out = pool.map(sleep_ms, vec![300; 10]);
            (out, Instant::now())
        });
        // Join only once the map's thread has taken the driver's role: this one follows.
        std::thread::sleep(Duration::from_millis(100));
        let r = hung.join();
        let hung_done = Instant::now();
        let (out, map_done) = driver.join().unwrap();
        assert!(out.iter().all(|o| *o == Ok(300)), "{out:?}");
        assert!(r.unwrap_err().is_timed_out());
        // The timed-out task's waiter got its outcome when it timed out, not at the map's end.
        assert!(
            hung_done + Duration::from_secs(1) < map_done,
            "the timeout's waiter slept until the map ended"
        );
    });
}

fn truncate_shared_memory(_: u64) -> u64 {
    // A hostile task: truncate every memfd this worker holds (its arena, the doorbell).
    let mut hit = 0;
    for entry in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().contains("memfd:proctor") {
            if let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() {
                // SAFETY: ftruncate(2) on a descriptor number; it takes no pointers.
                unsafe { libc::ftruncate(fd, 0) };
                hit += 1;
            }
        }
    }
    hit
}

fn scribble_on_the_arena(pattern: u8) -> u64 {
    // A hostile task: overwrite its arena (header and records) through a mapping of its own.
    for entry in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().contains("memfd:proctor-arena") {
            let fd: i32 = entry.file_name().to_string_lossy().parse().unwrap_or(-1);
            let len = 1 << 16;
            // SAFETY: a fresh shared mapping of a memfd this process holds; written below
            // within its length, then unmapped. It aliases no Rust object.
            unsafe {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                if p != libc::MAP_FAILED {
                    std::ptr::write_bytes(p as *mut u8, pattern, len);
                    libc::munmap(p, len);
                }
            }
        }
    }
    7
}

fn close_my_pipes(_: u64) -> u64 {
    for fd in 0..64 {
        // SAFETY: close(2) on descriptor numbers; at worst EBADF.
        unsafe { libc::close(fd) };
    }
    1
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_hostile_task_spoils_at_most_its_own_job() {
    let pool = Pool::processes(2).forward_stderr(false).build().unwrap();
    // Truncating the memfds is refused (they are sealed): no SIGBUS in the parent.
    let hit = pool.submit(truncate_shared_memory, 0).join().unwrap();
    assert!(hit >= 2, "the task found {hit} memfds");
    for pattern in [0xFF, 0x00, 0x7F] {
        let out = pool.map(scribble_on_the_arena, vec![pattern; 3]);
        assert_eq!(out.len(), 3);
        for o in &out {
            // Garbage is never an Ok of another value: an error, or the task's own 7.
            assert!(matches!(o, Ok(7) | Err(_)), "{o:?}");
        }
    }
    let closed = pool.submit(close_my_pipes, 0).join();
    assert!(matches!(closed, Ok(1) | Err(_)));
    // The pool is whole: the next calls are all right.
    let out = pool.map(double, (0..1000).collect::<Vec<u64>>());
    assert!(out.iter().enumerate().all(|(i, o)| *o == Ok(2 * i as u64)));
    assert_eq!(pool.submit(double, 21).join(), Ok(42));
}

fn chatty(n: u64) -> u64 {
    let mut err = std::io::stderr().lock();
    for k in 0..1000 {
        let _ = writeln!(err, "line {n}-{k}");
    }
    drop(err);
    let raw = format!("raw {n}\n");
    // SAFETY: write(2) of a live buffer's bytes to fd 2.
    unsafe { libc::write(2, raw.as_ptr().cast(), raw.len()) };
    print!("out {n}");
    n
}

/// Not a test on its own: the child process of `nothing_a_task_writes_is_lost`.
#[test]
#[ignore = "helper run as a child process by another test"]
fn helper_chatty_pool() {
    let Ok(how) = std::env::var("PROCTOR_TEST_CHATTY") else {
        return;
    };
    // Everything forwarded (the default holds back a job's lines past 20).
    let mut b = Pool::processes(2).forward_stderr(true);
    if how.contains("recycle") {
        b = b.max_tasks_per_worker(1);
    }
    let pool = b.build().unwrap();
    let out = pool.map(chatty, (0..10).collect::<Vec<u64>>());
    assert!(out.iter().all(Result::is_ok));
    if how.contains("shutdown") {
        pool.shutdown();
    } else {
        drop(pool);
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn nothing_a_task_writes_is_lost() {
    for how in ["shutdown", "drop", "recycle,shutdown", "recycle,drop"] {
        let out = crate::helper("faults::helper_chatty_pool", ("PROCTOR_TEST_CHATTY", how))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{how}: {stderr}");
        let lines = stderr.lines().filter(|l| l.starts_with("line ")).count();
        let raw = stderr.lines().filter(|l| l.starts_with("raw ")).count();
        let printed = stdout.matches("out ").count();
        assert_eq!((lines, raw, printed), (10_000, 10, 10), "{how}");
    }
}

/// Crashes the first time it runs for `dir`, succeeds after (a marker file remembers).
fn crash_once(dir: String) -> u64 {
    let marker = std::path::Path::new(&dir).join("ran");
    let runs = std::fs::read_to_string(&marker).map_or(0, |s| s.len() as u64);
    let _ = std::fs::write(&marker, "x".repeat(runs as usize + 1));
    if runs == 0 {
        std::process::abort();
    }
    runs + 1
}

/// Panics every time, counting its runs in a marker file.
fn panic_counting(dir: String) -> u64 {
    let marker = std::path::Path::new(&dir).join("ran");
    let runs = std::fs::read_to_string(&marker).map_or(0, |s| s.len());
    let _ = std::fs::write(&marker, "x".repeat(runs + 1));
    panic!("run {}", runs + 1);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn retries_rerun_a_crashed_task_only_when_asked_and_never_a_panicked_one() {
    let dir = |name: &str| {
        let d = std::env::temp_dir().join(format!("proctor-retries-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.to_string_lossy().into_owned()
    };
    let plain = Pool::processes(1).forward_stderr(false).build().unwrap();
    let e = plain.submit(crash_once, dir("off")).join().unwrap_err();
    assert!(
        matches!(
            e,
            TaskError::Crashed {
                signal: Some(libc::SIGABRT),
                ..
            }
        ),
        "{e:?}"
    );

    let retrying = Pool::processes(1)
        .retries(2)
        .forward_stderr(false)
        .build()
        .unwrap();
    assert_eq!(retrying.submit(crash_once, dir("on")).join(), Ok(2));
    let out = retrying.map(crash_once, vec![dir("map0"), dir("map1"), dir("map2")]);
    assert_eq!(out, vec![Ok(2), Ok(2), Ok(2)]);

    let d = dir("panic");
    let e = retrying
        .submit(panic_counting, d.clone())
        .join()
        .unwrap_err();
    assert!(e.is_panicked(), "{e:?}");
    let runs = std::fs::read_to_string(std::path::Path::new(&d).join("ran")).unwrap();
    assert_eq!(runs.len(), 1, "a panicked task was rerun");
    assert!(
        Pool::threads(1)
            .retries(1)
            .build()
            .unwrap_err()
            .is_invalid_config()
    );
}

/// Not a test on its own: the child process of `a_dead_fork_server_ends_tasks_not_the_program`.
#[test]
#[ignore = "helper run as a child process by another test"]
fn helper_fork_server_dies() {
    if std::env::var_os("PROCTOR_TEST_SERVER_DIES").is_none() {
        return;
    }
    let pool = Pool::processes(2).forward_stderr(false).build().unwrap();
    assert_eq!(pool.submit(double, 1).join(), Ok(2));
    let worker = pool.worker_pids()[0];
    let stat = std::fs::read_to_string(format!("/proc/{worker}/stat")).unwrap();
    let server: i32 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let busy = pool.submit(sleep_ms, 60_000);
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: kill(2) takes no pointers; `server` is this program's fork server.
    assert_eq!(unsafe { libc::kill(server, libc::SIGKILL) }, 0);
    // No task timeout: only the server's death can end this join.
    let e = busy.join().unwrap_err();
    assert!(e.is_crashed(), "{e:?}");
    let later = pool.submit(double, 2).join().unwrap_err();
    assert!(matches!(later, TaskError::NoWorker { .. }), "{later:?}");
    let out = pool.map(double, vec![1, 2, 3]);
    assert!(
        out.iter()
            .all(|o| matches!(o, Err(TaskError::NoWorker { .. }))),
        "{out:?}"
    );
    println!("SERVER-DEATH-HANDLED");
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_dead_fork_server_ends_tasks_not_the_program() {
    let mut child = crate::helper(
        "faults::helper_fork_server_dies",
        ("PROCTOR_TEST_SERVER_DIES", "1"),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the pool hung after its fork server died");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("SERVER-DEATH-HANDLED"), "{stdout}");
}

/// A result whose `Serialize` panics on 5, in the worker.
#[derive(Debug, Deserialize, PartialEq)]
struct Explosive(u64);

impl Serialize for Explosive {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(self.0 != 5, "5 explodes on the way out");
        s.serialize_u64(self.0)
    }
}

fn explosive(n: u64) -> Explosive {
    Explosive(n)
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_result_whose_serialize_panics_fails_alone_and_its_job_goes_on() {
    let pool = Pool::processes(1).chunk_size(10).build().unwrap();
    let before = pool.worker_pids();
    let out = pool.map(explosive, (0..10).collect::<Vec<u64>>());
    for (i, o) in out.iter().enumerate() {
        if i == 5 {
            let e = o.as_ref().unwrap_err();
            assert!(e.to_string().contains("5 explodes on the way out"), "{e}");
        } else {
            assert_eq!(o.as_ref().ok(), Some(&Explosive(i as u64)));
        }
    }
    // The same worker did it all: the panic did not cost it its life.
    assert_eq!(pool.worker_pids(), before);
}

/// Exits with `code`: the pool's own codes for a failed initializer (87), sandbox (85) or
/// re-executed start (86).
fn exit_as_pool(code: i32) -> u64 {
    std::process::exit(code)
}

/// A task that exits with one of the pool's own exit codes is that task's crash: the pool
/// believes "the initializer failed" only from a worker that never reached its first job, so
/// the forgery neither stops its replacements nor fails the next task `NoWorker`.
#[test]
fn a_task_that_forges_an_initializer_failure_only_crashes_itself() {
    let pool = Pool::processes(1).build().unwrap();
    for code in [87, 85, 86] {
        let err = pool.submit(exit_as_pool, code).join().unwrap_err();
        assert!(
            matches!(&err, TaskError::Crashed { exit_code: Some(c), .. } if i32::from(*c) == code),
            "{err:?}"
        );
        assert_eq!(pool.submit(double, 21).join().unwrap(), 42);
    }
}

/// Floods its stderr, then segfaults.
fn flood_then_crash(kib: usize) -> u64 {
    use std::io::Write;
    let line = [b'x'; 1023];
    let mut err = std::io::stderr().lock();
    for _ in 0..kib {
        let _ = err.write_all(&line);
        let _ = err.write_all(b"\n");
    }
    drop(err);
    // SAFETY: none: the point is to crash the worker (a null read the compiler cannot see).
    unsafe { std::ptr::read_volatile(std::hint::black_box(std::ptr::null::<u64>())) }
}

/// A task that floods its stderr right after its worker said it was ready, so that the word
/// scrolls out of what the pool keeps of the stream, and then crashes, is its own crash: the
/// pool does not take the worker for one that died in its initializer (which stops every
/// replacement).
#[test]
fn a_task_that_floods_stderr_before_crashing_is_not_taken_for_a_failed_start() {
    let pool = Pool::processes(1).forward_stderr(false).build().unwrap();
    for _ in 0..3 {
        let err = pool.submit(flood_then_crash, 256).join().unwrap_err();
        assert!(
            matches!(
                &err,
                TaskError::Crashed {
                    signal: Some(libc::SIGSEGV),
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(pool.submit(double, 21).join().unwrap(), 42);
    }
}
