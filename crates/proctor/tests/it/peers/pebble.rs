//! pebble (noxdafox/pebble), `test/test_process_pool_fork.py` (its `_spawn` and `_forkserver`
//! twins are the same tests; `test_thread_pool.py` is their thread-mode run here):
//! `TestProcessPool` and `TestAsyncIOProcessPool`. Not ported, one line each:
//!
//! * `test_process_pool_running`, `_stopped`, `_close_stopped`, `_stop_stopped`,
//!   `_join_running`: the `active` flag and `join()` of a running pool are not API here (a
//!   pool is alive while its handle is, and `shutdown` takes it);
//! * `test_process_pool_join_futures_timeout`: `shutdown` has no timeout (a task's
//!   `join_timeout` is `cpython_wait_timeout`);
//! * `test_process_pool_callback_error`: it is `known2_a_panicking_waker_...`;
//! * `test_process_pool_map_broken_pool` and the `TestProcessPoolDeadlockOn*` classes: they
//!   patch pebble's internals (its channel lock, its worker loop).
//!
//! Longer than 600 lines: one peer's suite, ported scenario by scenario in its source's order
//! so that each port can be checked against the original.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};
use std::time::Duration;

use proctor::{ErrorKind, Pool, TaskError};

use super::fault::{Bomb, Kind, Point, check_guilty, expect, run_bomb};
use super::loky::poll_pending;
use super::{
    Mode, Scenario, block_on, builder, finish, join_within, pool, reuse, scratch, shutdown_within,
    slow_whoami, started_then_sleep, wait_for, wait_started, whoami,
};

const TIMEOUT: Duration = Duration::from_millis(100);

pub(super) fn scenarios(s: &mut Vec<Scenario>) {
    super::push_rows(s, ROWS);
}

const ROWS: &[super::Row] = &[
    (
        "pebble_single_future",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_single_future",
        single_future,
        None,
    ),
    (
        "pebble_multiple_futures",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_multiple_futures",
        multiple_futures,
        None,
    ),
    (
        "pebble_callback",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_callback",
        callback,
        None,
    ),
    (
        "pebble_error",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_error (and test_process_pool_error_callback)",
        error,
        None,
    ),
    (
        "pebble_pickling_error_task",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_pickling_error_task",
        |m| pickling_error(m, Point::SerArg),
        None,
    ),
    (
        "pebble_pickling_error_result",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_pickling_error_result",
        |m| pickling_error(m, Point::SerRes),
        None,
    ),
    (
        "pebble_timeout",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_timeout",
        timeout,
        None,
    ),
    (
        "pebble_timeout_callback",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_timeout_callback",
        timeout_callback,
        None,
    ),
    (
        "pebble_cancel",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_cancel",
        |m| cancel(m, false),
        None,
    ),
    (
        "pebble_cancel_callback",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_cancel_callback",
        |m| cancel(m, true),
        None,
    ),
    (
        "pebble_different_process",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_different_process",
        different_process,
        None,
    ),
    (
        "pebble_future_limit",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_future_limit",
        future_limit,
        None,
    ),
    (
        "pebble_stop_timeout",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_stop_timeout",
        stop_timeout,
        None,
    ),
    (
        "pebble_stop_cancel",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_stop_cancel",
        stop_cancel,
        Some("a running thread cannot be stopped, so its worker is never replaced"),
    ),
    (
        "pebble_initializer",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_initializer",
        initializer,
        None,
    ),
    (
        "pebble_broken_initializer",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_broken_initializer",
        broken_initializer,
        None,
    ),
    (
        "pebble_close_futures",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_close_futures",
        close_futures,
        None,
    ),
    (
        "pebble_stop_futures",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_stop_futures",
        stop_futures,
        None,
    ),
    (
        "pebble_stop_stopped_callback",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_stop_stopped_callback",
        stop_in_waker,
        None,
    ),
    (
        "pebble_large_data",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_large_data",
        large_data,
        None,
    ),
    (
        "pebble_stop_large_data",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_stop_large_data",
        stop_large_data,
        None,
    ),
    (
        "pebble_join_workers",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_join_workers",
        join_workers,
        None,
    ),
    (
        "pebble_exception_isolated",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_exception_isolated",
        exception_isolated,
        None,
    ),
    (
        "pebble_ignoring_sigterm",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_ignoring_sigterm",
        ignoring_sigterm,
        Some("ignoring SIGTERM in a thread ignores it for the whole program"),
    ),
    (
        "pebble_expired_worker",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_expired_worker",
        expired_worker,
        Some("an exit ends a thread pool's whole process"),
    ),
    (
        "pebble_map",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map",
        |m| map_of(m, vec![1, 2, 3], None),
        None,
    ),
    (
        "pebble_map_empty",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_empty",
        |m| map_of(m, vec![], None),
        None,
    ),
    (
        "pebble_map_single",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_single",
        |m| map_of(m, vec![0], None),
        None,
    ),
    (
        "pebble_map_multi",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_multi",
        map_multi,
        None,
    ),
    (
        "pebble_map_one_chunk",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_one_chunk",
        |m| map_of(m, vec![1, 2, 3], Some(1)),
        None,
    ),
    (
        "pebble_map_zero_chunk",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_zero_chunk",
        map_zero_chunk,
        None,
    ),
    (
        "pebble_map_timeout",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_timeout",
        map_timeout,
        None,
    ),
    (
        "pebble_map_timeout_chunks",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_timeout_chunks",
        map_timeout_chunks,
        None,
    ),
    (
        "pebble_map_error",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_error",
        map_error,
        None,
    ),
    (
        "pebble_map_cancel",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_map_cancel",
        map_cancel,
        None,
    ),
    (
        "pebble_child_process",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_child_process",
        child_process,
        None,
    ),
    (
        "pebble_child_pool",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_child_pool",
        child_pool,
        None,
    ),
    (
        "pebble_child_pebble",
        "pebble test/test_process_pool_fork.py::TestProcessPool::test_process_pool_child_pebble",
        child_pebble,
        None,
    ),
    (
        "pebble_asyncio_multiple_futures",
        "pebble test/test_process_pool_fork.py::TestAsyncIOProcessPool::test_process_pool_multiple_futures",
        asyncio_multiple_futures,
        None,
    ),
    (
        "pebble_asyncio_stop_timeout",
        "pebble test/test_process_pool_fork.py::TestAsyncIOProcessPool::test_process_pool_stop_timeout",
        asyncio_stop_timeout,
        None,
    ),
];

/// pebble's `function(argument, keyword_argument=0)`.
fn function((argument, keyword): (u64, u64)) -> u64 {
    argument + keyword
}

fn error_function(_: u64) -> u64 {
    panic!("BOOM!")
}

fn single_future(mode: Mode) {
    let pool = pool(mode, 1);
    let f = pool.submit(function, (1, 1));
    shutdown_within(pool);
    assert_eq!(join_within(f, "the task"), Ok(2));
}

fn multiple_futures(mode: Mode) {
    let pool = pool(mode, 2);
    let fs: Vec<_> = (0..5).map(|_| pool.submit(function, (1, 0))).collect();
    shutdown_within(pool);
    let sum: u64 = fs
        .into_iter()
        .map(|f| join_within(f, "a task").unwrap())
        .sum();
    assert_eq!(sum, 5);
}

/// A done-callback is an `await` on the task.
fn callback(mode: Mode) {
    let pool = pool(mode, 1);
    assert_eq!(block_on(pool.submit(function, (1, 1))), Ok(2));
    finish(pool);
}

fn error(mode: Mode) {
    let pool = pool(mode, 1);
    let f = pool.submit(error_function, 0);
    match join_within(f, "the failing task") {
        Err(TaskError::Panicked { message, .. }) => assert_eq!(message, "BOOM!"),
        other => panic!("want Panicked, got {other:?}"),
    }
    // The same through an `await` (test_process_pool_error_callback).
    match block_on(pool.submit(error_function, 0)) {
        Err(TaskError::Panicked { message, .. }) => assert_eq!(message, "BOOM!"),
        other => panic!("want Panicked, got {other:?}"),
    }
    reuse(&pool);
    finish(pool);
}

fn pickling_error(mode: Mode, point: Point) {
    let pool = pool(mode, 1);
    let got = super::no_escape("submit", || {
        join_within(
            pool.submit(run_bomb, Bomb::armed(1, point, Kind::Error)),
            "the task",
        )
    });
    let want = expect(point, Kind::Error, mode.is_process());
    if let Err(e) = check_guilty(&want, Kind::Error, point, 1, &got) {
        panic!("{e}");
    }
    drop(got);
    reuse(&pool);
    finish(pool);
}

fn assert_timed_out(r: Result<u64, TaskError>) {
    match r {
        // `after` is how long the task had run when it was stopped, counted from its start
        // on a worker: never less than the timeout.
        Err(TaskError::TimedOut { after, .. }) => assert!(
            after >= TIMEOUT,
            "TimedOut after {after:?}, short of the {TIMEOUT:?} task_timeout: stopped before its time"
        ),
        other => panic!("want TimedOut, got {other:?}"),
    }
}

fn timeout(mode: Mode) {
    let pool = builder(mode, 1).task_timeout(TIMEOUT).build().unwrap();
    assert_timed_out(join_within(
        pool.submit(crate::sleep_ms, 800),
        "the long task",
    ));
    reuse(&pool);
    finish(pool);
}

fn timeout_callback(mode: Mode) {
    let pool = builder(mode, 1).task_timeout(TIMEOUT).build().unwrap();
    assert_timed_out(block_on(pool.submit(crate::sleep_ms, 800)));
    finish(pool);
}

fn cancel(mode: Mode, awaited: bool) {
    let _ = std::fs::remove_file(scratch("started"));
    let pool = pool(mode, 1);
    let f = pool.submit(started_then_sleep, 800);
    wait_started();
    let cancelled = f.cancel();
    let r = if awaited {
        block_on(f)
    } else {
        join_within(f, "the cancelled task")
    };
    if mode.is_process() {
        assert!(cancelled, "a running process task can be cancelled");
        assert!(matches!(r, Err(TaskError::Cancelled { .. })), "{r:?}");
    } else {
        // A thread cannot be stopped: the task runs to its end.
        assert!(!cancelled);
        assert_eq!(r, Ok(800));
    }
    reuse(&pool);
    finish(pool);
}

/// How many distinct workers ran `n` tasks of `ms` milliseconds each.
fn workers_used(pool: &Pool, n: usize, ms: u64) -> usize {
    let fs: Vec<_> = (0..n).map(|_| pool.submit(slow_whoami, ms)).collect();
    let who: std::collections::BTreeSet<String> = fs
        .into_iter()
        .map(|f| join_within(f, "a task").unwrap())
        .collect();
    who.len()
}

fn different_process(mode: Mode) {
    let pool = pool(mode, 2);
    assert_eq!(workers_used(&pool, 5, 100), 2);
    finish(pool);
}

fn future_limit(mode: Mode) {
    let pool = builder(mode, 1).max_tasks_per_worker(2).build().unwrap();
    assert_eq!(workers_used(&pool, 4, 10), 2);
    finish(pool);
}

fn stop_timeout(mode: Mode) {
    let pool = builder(mode, 1).task_timeout(TIMEOUT).build().unwrap();
    let f1 = pool.submit(whoami, 0);
    let long = pool.submit(crate::sleep_ms, 800);
    let f2 = pool.submit(whoami, 0);
    let (w1, w2) = (
        join_within(f1, "f1").unwrap(),
        join_within(f2, "f2").unwrap(),
    );
    assert_timed_out(join_within(long, "the long task"));
    assert_ne!(w1, w2, "the timed-out worker was not replaced");
    finish(pool);
}

fn stop_cancel(mode: Mode) {
    let _ = std::fs::remove_file(scratch("started"));
    let pool = pool(mode, 1);
    let f1 = pool.submit(whoami, 0);
    let long = pool.submit(started_then_sleep, 5_000);
    wait_started();
    assert!(long.cancel());
    let f2 = pool.submit(whoami, 0);
    let (w1, w2) = (
        join_within(f1, "f1").unwrap(),
        join_within(f2, "f2").unwrap(),
    );
    assert_ne!(w1, w2, "the cancelled task's worker was not replaced");
    assert!(
        join_within(long, "the cancelled task")
            .unwrap_err()
            .is_cancelled()
    );
    finish(pool);
}

fn one() -> u64 {
    1
}

fn initializer_function(state: &u64, _: u64) -> u64 {
    *state
}

fn initializer(mode: Mode) {
    let pool = builder(mode, 2).init_worker(one).build().unwrap();
    assert_eq!(
        join_within(pool.submit_state(initializer_function, 0), "the task"),
        Ok(1)
    );
    finish(pool);
}

fn broken_init() -> u64 {
    panic!("BOOM!")
}

fn broken_initializer(mode: Mode) {
    let err = builder(mode, 2)
        .init_worker(broken_init)
        .build()
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WorkerInit { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("BOOM!"), "{err}");
}

fn close_futures(mode: Mode) {
    let pool = pool(mode, 1);
    let fs: Vec<_> = (0..10u64).map(|i| pool.submit(function, (i, 0))).collect();
    shutdown_within(pool);
    for (i, f) in (0..).zip(fs) {
        assert_eq!(join_within(f, "a task"), Ok(i));
    }
}

fn stop_futures(mode: Mode) {
    let pool = pool(mode, 1);
    let fs: Vec<_> = (0..10).map(|_| pool.submit(crate::sleep_ms, 100)).collect();
    finish(pool);
    let mut not_done = 0;
    for f in fs {
        match join_within(f, "a task") {
            Ok(100) => {}
            Err(TaskError::Cancelled { .. }) => not_done += 1,
            other => panic!("want Ok(100) or Cancelled, got {other:?}"),
        }
    }
    assert!(not_done > 0, "dropping the pool ran all ten tasks");
}

/// A waker that drops the pool (pebble's `stop_pool_callback`).
struct DropOnWake {
    pool: Mutex<Option<Pool>>,
    woken: AtomicBool,
}

impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let pool = self.pool.lock().unwrap().take();
        drop(pool);
        self.woken.store(true, Ordering::SeqCst);
    }
}

fn stop_in_waker(mode: Mode) {
    let pool = pool(mode, 1);
    let mut f = pool.submit(crate::sleep_ms, 100);
    let hook = Arc::new(DropOnWake {
        pool: Mutex::new(Some(pool)),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&hook));
    poll_pending(&mut f, &waker);
    super::step("waiting for the waker, which drops the pool");
    wait_for("the waker's drop(pool) did not return", || {
        hook.woken.load(Ordering::SeqCst)
    });
    assert_eq!(block_on(f), Ok(100));
    assert!(hook.pool.lock().unwrap().is_none(), "the pool was dropped");
}

fn echo(s: String) -> String {
    s
}

fn big_text() -> String {
    String::from_utf8(vec![b'a'; 32 << 20]).expect("ASCII")
}

fn large_data(mode: Mode) {
    let pool = pool(mode, 1);
    let data = big_text();
    let back = join_within(pool.submit(echo, data.clone()), "the large task").unwrap();
    assert!(back == data, "the 32 MB string came back changed");
    finish(pool);
}

fn stop_large_data(mode: Mode) {
    let pool = pool(mode, 1);
    let f = pool.submit(echo, big_text());
    finish(pool);
    match join_within(f, "the large task") {
        Ok(s) => assert_eq!(s.len(), 32 << 20),
        Err(TaskError::Cancelled { .. }) => {}
        Err(e) => panic!("want the string or Cancelled, got {e:?}"),
    }
}

fn join_workers(mode: Mode) {
    let pool = pool(mode, 4);
    let f = pool.submit(function, (1, 0));
    finish(pool);
    // Every worker is gone (the leak check after the scenario looks); the task has its
    // one outcome.
    match join_within(f, "the task") {
        Ok(1) | Err(TaskError::Cancelled { .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn exception_isolated(mode: Mode) {
    let pool = pool(mode, 1);
    assert!(join_within(pool.submit(error_function, 0), "the failing task").is_err());
    assert_eq!(
        join_within(pool.submit(function, (1, 1)), "the next task"),
        Ok(2)
    );
    finish(pool);
}

fn sigterm_function(_: u64) -> u64 {
    // SAFETY: signal(2) with SIG_IGN installs no handler code.
    unsafe { libc::signal(libc::SIGTERM, libc::SIG_IGN) };
    crate::sleep_ms(10_000)
}

fn ignoring_sigterm(mode: Mode) {
    let pool = builder(mode, 1)
        .task_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    match join_within(
        pool.submit(sigterm_function, 0),
        "the task ignoring SIGTERM",
    ) {
        Err(TaskError::TimedOut { .. }) => {}
        other => panic!("want TimedOut, got {other:?}"),
    }
    reuse(&pool);
    finish(pool);
}

fn suicide_function(_: u64) -> u64 {
    std::process::exit(1)
}

fn expired_worker(mode: Mode) {
    let pool = pool(mode, 1);
    match join_within(pool.submit(suicide_function, 0), "the task") {
        Err(TaskError::Crashed {
            exit_code: Some(1),
            signal: None,
            ..
        }) => {}
        other => panic!("want Crashed with exit code 1, got {other:?}"),
    }
    reuse(&pool);
    finish(pool);
}

fn map_of(mode: Mode, elements: Vec<u64>, chunk: Option<usize>) {
    let mut b = builder(mode, 1);
    if let Some(c) = chunk {
        b = b.chunk_size(c);
    }
    let pool = b.build().unwrap();
    let out = pool
        .try_map(function, elements.iter().map(|&e| (e, 0)))
        .unwrap();
    assert_eq!(out, elements);
    finish(pool);
}

fn map_multi(mode: Mode) {
    let pool = pool(mode, 1);
    // pebble's map(function, (1, 2, 3), (1, 2)): zipped, the shorter one ends it.
    let out = pool
        .try_map(function, [1u64, 2, 3].into_iter().zip([1u64, 2]))
        .unwrap();
    assert_eq!(out, [2, 4]);
    finish(pool);
}

fn map_zero_chunk(mode: Mode) {
    let err = builder(mode, 1).chunk_size(0).build().unwrap_err();
    assert!(err.is_invalid_config(), "{err}");
}

fn map_timeout(mode: Mode) {
    let pool = builder(mode, 1).task_timeout(TIMEOUT).build().unwrap();
    let out = pool.map(crate::sleep_ms, [600u64, 600, 600]);
    assert_eq!(out.len(), 3);
    for o in out {
        assert_timed_out(o);
    }
    reuse(&pool);
    finish(pool);
}

fn map_timeout_chunks(mode: Mode) {
    let pool = builder(mode, 1)
        .chunk_size(5)
        .task_timeout(Duration::from_millis(1_800))
        .build()
        .unwrap();
    let out = pool.try_map(crate::sleep_ms, vec![20u64; 20]).unwrap();
    assert_eq!(out, vec![20; 20]);
    finish(pool);
}

/// pebble's `function` over `[1, 'a', 3]`: a string that is not a number is its TypeError.
fn parse_plus_zero(s: String) -> u64 {
    s.parse::<u64>()
        .unwrap_or_else(|_| panic!("TypeError: {s:?} is not a number"))
}

fn map_error(mode: Mode) {
    let pool = pool(mode, 1);
    let out = pool.map(parse_plus_zero, ["1", "a", "3"].map(String::from));
    assert_eq!(out[0], Ok(1));
    assert!(
        out[1].as_ref().is_err_and(TaskError::is_panicked),
        "{:?}",
        out[1]
    );
    assert_eq!(out[2], Ok(3));
    finish(pool);
}

/// Sleeps `ms` after noting that it ran (one line per run in a shared file).
fn noted_sleep(ms: u64) -> u64 {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(scratch("runs"))
        .expect("the runs file");
    let _ = writeln!(f, "{ms}");
    crate::sleep_ms(ms)
}

fn map_cancel(mode: Mode) {
    let runs = scratch("runs");
    let _ = std::fs::remove_file(&runs);
    let pool = builder(mode, 1).chunk_size(1).build().unwrap();
    let mut s = pool.stream(noted_sleep, vec![200u64; 5]).window(1);
    assert_eq!(s.next(), Some(Ok(200)));
    drop(s);
    shutdown_within(pool);
    let ran = std::fs::read_to_string(&runs)
        .unwrap_or_default()
        .lines()
        .count();
    assert!(
        ran < 5,
        "the stream was dropped after one item, yet all {ran} ran"
    );
}

fn process_function(_: u64) -> u64 {
    let status = std::process::Command::new("true")
        .status()
        .expect("running true");
    status.success() as u64
}

fn child_process(mode: Mode) {
    let pool = pool(mode, 1);
    assert_eq!(
        join_within(pool.submit(process_function, 0), "the task"),
        Ok(1)
    );
    finish(pool);
}

fn pool_function(_: u64) -> u64 {
    let inner = Pool::threads(1).build().expect("an inner thread pool");
    let r = inner
        .submit(function, (1, 0))
        .join()
        .expect("the inner task");
    inner.shutdown();
    r
}

fn child_pool(mode: Mode) {
    let pool = pool(mode, 1);
    assert_eq!(
        join_within(pool.submit(pool_function, 0), "the task"),
        Ok(1)
    );
    finish(pool);
}

fn pebble_function(_: u64) -> String {
    match Pool::processes(1).forward_stderr(false).build() {
        Ok(inner) => {
            let r = inner.submit(function, (1, 0)).join();
            inner.shutdown();
            format!("{r:?}")
        }
        Err(e) => e.to_string(),
    }
}

fn child_pebble(mode: Mode) {
    let pool = pool(mode, 1);
    let said = join_within(pool.submit(pebble_function, 0), "the task").unwrap();
    if mode.is_process() {
        // A worker process cannot start process pools of its own, and says so.
        assert!(said.contains("cannot be nested"), "{said}");
    } else {
        assert_eq!(said, "Ok(1)");
    }
    finish(pool);
}

fn asyncio_multiple_futures(mode: Mode) {
    let pool = pool(mode, 2);
    let fs: Vec<_> = (0..5).map(|_| pool.submit(function, (1, 0))).collect();
    let sum: u64 = block_on(async {
        let mut sum = 0;
        for f in fs {
            sum += f.await.unwrap();
        }
        sum
    });
    assert_eq!(sum, 5);
    finish(pool);
}

fn asyncio_stop_timeout(mode: Mode) {
    let pool = builder(mode, 1).task_timeout(TIMEOUT).build().unwrap();
    let (w1, w2) = block_on(async {
        let f1 = pool.submit(whoami, 0);
        assert_timed_out(pool.submit(crate::sleep_ms, 800).await);
        let f2 = pool.submit(whoami, 0);
        (f1.await.unwrap(), f2.await.unwrap())
    });
    assert_ne!(w1, w2, "the timed-out worker was not replaced");
    finish(pool);
}
