//! CPython: `Lib/test/test_concurrent_futures/` (`executor.py`, `test_deadlock.py`,
//! `test_process_pool.py`, `test_shutdown.py`, `test_init.py`, `test_wait.py`,
//! `test_as_completed.py`) and the pool tests of `Lib/test/_test_multiprocessing.py`
//! (`_TestPool`, `_TestPoolWorkerErrors`, `_TestPoolWorkerLifetime`), prefixed `cpython_` and
//! `mp_`.
//!
//! `test_deadlock.py`'s `_check_error` cases are loky's crash cases, and run in the loky
//! matrix: `test_error_at_task_pickle` is `loky_crash_submit_error_at_serialize_arg`,
//! `test_exit_at_task_unpickle` `..._exit_at_deserialize_arg`, `test_error_at_task_unpickle`
//! `..._error_at_deserialize_arg`, `test_crash_at_task_unpickle` `..._segfault_at_deserialize_arg`,
//! `test_crash_during_func_exec_on_worker` `..._segfault_at_task`,
//! `test_exit_during_func_exec_on_worker` `..._exit_at_task`,
//! `test_error_during_func_exec_on_worker` `..._panic_at_task`,
//! `test_crash_during_result_pickle_on_worker` `..._segfault_at_serialize_result`,
//! `test_exit_during_result_pickle_on_worker` `..._exit_at_serialize_result`,
//! `test_error_during_result_pickle_on_worker` `..._error_at_serialize_result`,
//! `test_error_during_result_unpickle_in_result_handler` `..._error_at_deserialize_result`;
//! `test_exit_during_result_unpickle_in_result_handler` would end the caller (skipped there).
//!
//! Not ported, one line each:
//! * `test_submit_keyword`, `test_map_multi`-style keyword and varargs calls: a task takes one
//!   argument (a tuple where Python passes several);
//! * `test_map_timeout`, `test_async_timeout` of a whole `map`: proctor's deadline is per task
//!   (`task_timeout`, in pebble's scenarios), a call has none;
//! * `test_run_after_shutdown`, `test_context`, `test_enter`, `test_force_shutdown_workers_stops_pool`:
//!   `shutdown` takes the pool by value, so using it afterwards does not compile;
//! * `test_interpreter_shutdown`, `test_submit_after_interpreter_shutdown`, `test_hang_gh83386`,
//!   `test_worker_finalization_via_atexit_handler_of_multiprocessing`, `test_resource_warning`:
//!   Python's interpreter finalization (`atexit`) has no Rust counterpart;
//! * `test_20369`, `test_duplicate_futures`, `test_free_reference_yielded_future`,
//!   `test_correct_timeout_exception_msg`: a `Task` is not `Clone` and `as_completed` over
//!   foreign futures has no counterpart (`stream_unordered` yields outcomes);
//! * `test_max_workers_too_large` (Windows), `test_sysconf_permission_error`,
//!   `test_python_finalization_error`, `test_terminate_workers`/`test_kill_workers` (mocks),
//!   `test_gh105829_should_not_deadlock_if_wakeup_pipe_full`'s mocked wakeup pipe (its load
//!   is kept: many submits at once), `test_wrapped_exception`, `test_traceback`'s
//!   `sys.excepthook`: Python internals.
//!
//! Longer than 600 lines: one peer's suites, ported scenario by scenario in their sources'
//! order so that each port can be checked against the original.

use std::sync::atomic::{AtomicIsize, Ordering};

use proctor::{ErrorKind, TaskError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fault::{Bomb, Kind, Point, check_guilty, expect, run_bomb};
use super::loky::say_when;
use super::{
    Mode, Scenario, block_on, builder, double, finish, join_within, pool, reuse, scratch,
    shutdown_within, slow_whoami, started_then_sleep, wait_for, wait_started, whoami,
};

const NO_PROCESS: &str = "a thread pool has no worker processes";

pub(super) fn scenarios(s: &mut Vec<Scenario>) {
    super::push_rows(s, ROWS);
}

const ROWS: &[super::Row] = &[
    // test_deadlock.py
    (
        "cpython_shutdown_deadlock",
        "CPython Lib/test/test_concurrent_futures/test_deadlock.py::ExecutorDeadlockTest::test_shutdown_deadlock",
        shutdown_deadlock,
        None,
    ),
    (
        "cpython_shutdown_deadlock_pickle",
        "CPython Lib/test/test_concurrent_futures/test_deadlock.py::ExecutorDeadlockTest::test_shutdown_deadlock_pickle",
        shutdown_deadlock_pickle,
        None,
    ),
    (
        "cpython_crash_big_data",
        "CPython Lib/test/test_concurrent_futures/test_deadlock.py::ExecutorDeadlockTest::test_crash_big_data",
        crash_big_data,
        Some("a segfault ends a thread pool's whole process"),
    ),
    (
        "cpython_gh105829_many_submits_at_once",
        "CPython Lib/test/test_concurrent_futures/test_deadlock.py::ExecutorDeadlockTest::test_gh105829_should_not_deadlock_if_wakeup_pipe_full",
        many_submits,
        None,
    ),
    // test_process_pool.py
    (
        "cpython_killed_child",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_killed_child",
        killed_child,
        Some(NO_PROCESS),
    ),
    (
        "cpython_broken_process_pool_traceback",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_broken_process_pool_traceback",
        broken_pool_errors_are_per_task,
        Some(NO_PROCESS),
    ),
    (
        "cpython_map_chunksize",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_map_chunksize",
        map_chunksize,
        None,
    ),
    (
        "cpython_traceback",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_traceback (and _test_multiprocessing.py _TestPool.test_traceback)",
        traceback,
        None,
    ),
    (
        "cpython_traceback_when_child_process_terminates_abruptly",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_traceback_when_child_process_terminates_abruptly",
        terminates_abruptly,
        Some("an exit ends a thread pool's whole process"),
    ),
    (
        "cpython_ressources_gced_in_workers",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_ressources_gced_in_workers",
        resources_dropped_in_workers,
        None,
    ),
    (
        "cpython_saturation",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_saturation",
        saturation,
        None,
    ),
    (
        "cpython_idle_process_reuse_multiple",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_idle_process_reuse_multiple",
        idle_reuse,
        None,
    ),
    (
        "cpython_max_tasks_per_child",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_max_tasks_per_child",
        max_tasks_per_child,
        None,
    ),
    (
        "cpython_max_tasks_per_child_pending_tasks_gh115634",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_max_tasks_per_child_pending_tasks_gh115634",
        max_tasks_pending,
        None,
    ),
    (
        "cpython_shutdown_no_wait_max_tasks_gh119592",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_shutdown_no_wait_max_tasks_gh119592",
        max_tasks_shutdown,
        None,
    ),
    (
        "cpython_gc_during_max_tasks_worker_exit_gh152967",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_gc_during_max_tasks_worker_exit_gh152967",
        max_tasks_dropped,
        None,
    ),
    (
        "cpython_max_tasks_early_shutdown",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_max_tasks_early_shutdown",
        max_tasks_early_shutdown,
        None,
    ),
    (
        "cpython_force_shutdown_workers",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_force_shutdown_workers",
        force_shutdown,
        None,
    ),
    (
        "cpython_force_shutdown_workers_dead_workers",
        "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_force_shutdown_workers_dead_workers",
        force_shutdown_dead_workers,
        Some("an exit ends a thread pool's whole process"),
    ),
    // executor.py
    (
        "cpython_submit",
        "CPython Lib/test/test_concurrent_futures/executor.py::ExecutorTest::test_submit",
        submit,
        None,
    ),
    (
        "cpython_map",
        "CPython Lib/test/test_concurrent_futures/executor.py::ExecutorTest::test_map",
        map,
        None,
    ),
    (
        "cpython_map_exception",
        "CPython Lib/test/test_concurrent_futures/executor.py::ExecutorTest::test_map_exception",
        map_exception,
        None,
    ),
    (
        "cpython_shutdown_race_issue12456",
        "CPython Lib/test/test_concurrent_futures/executor.py::ExecutorTest::test_shutdown_race_issue12456",
        shutdown_race,
        None,
    ),
    (
        "cpython_no_stale_references",
        "CPython Lib/test/test_concurrent_futures/executor.py::ExecutorTest::test_no_stale_references (and test_free_reference, _test_multiprocessing.py test_release_task_refs)",
        no_stale_references,
        None,
    ),
    (
        "cpython_max_workers_zero",
        "CPython Lib/test/test_concurrent_futures/executor.py::ExecutorTest::test_max_workers_negative (and _test_multiprocessing.py test_make_pool)",
        max_workers_zero,
        None,
    ),
    // test_shutdown.py
    (
        "cpython_hang_issue12364",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ExecutorShutdownTest::test_hang_issue12364",
        hang_issue12364,
        None,
    ),
    (
        "cpython_cancel_futures",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ExecutorShutdownTest::test_cancel_futures",
        cancel_futures,
        None,
    ),
    (
        "cpython_hang_gh94440",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ExecutorShutdownTest::test_hang_gh94440",
        hang_gh94440,
        None,
    ),
    (
        "cpython_processes_terminate",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ProcessPoolShutdownTest::test_processes_terminate (threads: test_threads_terminate)",
        processes_terminate,
        None,
    ),
    (
        "cpython_context_manager_shutdown",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ProcessPoolShutdownTest::test_context_manager_shutdown",
        context_manager_shutdown,
        None,
    ),
    (
        "cpython_del_shutdown",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ProcessPoolShutdownTest::test_del_shutdown (and test_shutdown_no_wait)",
        del_shutdown,
        None,
    ),
    (
        "cpython_shutdown_gh_132969_2_workers",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ProcessPoolShutdownTest::test_shutdown_gh_132969_case_1",
        |m| gh_132969(m, 2),
        None,
    ),
    (
        "cpython_shutdown_gh_132969_4_workers",
        "CPython Lib/test/test_concurrent_futures/test_shutdown.py::ProcessPoolShutdownTest::test_shutdown_gh_132969_case_2",
        |m| gh_132969(m, 4),
        None,
    ),
    // test_init.py
    (
        "cpython_initializer",
        "CPython Lib/test/test_concurrent_futures/test_init.py::InitializerMixin::test_initializer",
        initializer,
        None,
    ),
    (
        "cpython_failing_initializer",
        "CPython Lib/test/test_concurrent_futures/test_init.py::FailingInitializerMixin::test_initializer",
        failing_initializer,
        None,
    ),
    // test_wait.py
    (
        "cpython_wait_first_completed",
        "CPython Lib/test/test_concurrent_futures/test_wait.py::WaitTests::test_first_completed",
        wait_first_completed,
        None,
    ),
    (
        "cpython_wait_first_exception",
        "CPython Lib/test/test_concurrent_futures/test_wait.py::WaitTests::test_first_exception",
        wait_first_exception,
        None,
    ),
    (
        "cpython_wait_all_completed",
        "CPython Lib/test/test_concurrent_futures/test_wait.py::WaitTests::test_all_completed",
        wait_all_completed,
        None,
    ),
    (
        "cpython_wait_timeout",
        "CPython Lib/test/test_concurrent_futures/test_wait.py::WaitTests::test_timeout",
        wait_timeout,
        None,
    ),
    // test_as_completed.py
    (
        "cpython_as_completed_no_timeout",
        "CPython Lib/test/test_concurrent_futures/test_as_completed.py::AsCompletedTests::test_no_timeout",
        as_completed,
        None,
    ),
    (
        "cpython_as_completed_future_times_out",
        "CPython Lib/test/test_concurrent_futures/test_as_completed.py::AsCompletedTests::test_future_times_out",
        as_completed_times_out,
        None,
    ),
    // _test_multiprocessing.py, _TestPool
    (
        "mp_apply",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_apply (and test_async)",
        apply,
        None,
    ),
    (
        "mp_map",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_map",
        mp_map,
        None,
    ),
    (
        "mp_starmap",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_starmap",
        starmap,
        None,
    ),
    (
        "mp_map_unplicklable",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_map_unplicklable",
        map_unpicklable,
        None,
    ),
    (
        "mp_map_chunksize",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_map_chunksize",
        map_chunksize_empty,
        None,
    ),
    (
        "mp_map_handle_iterable_exception",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_map_handle_iterable_exception",
        map_iterable_exception,
        None,
    ),
    (
        "mp_async_timeout",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_async_timeout",
        async_timeout,
        None,
    ),
    (
        "mp_imap",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_imap",
        imap,
        None,
    ),
    (
        "mp_imap_handle_iterable_exception",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_imap_handle_iterable_exception",
        |m| imap_iterable_exception(m, false),
        None,
    ),
    (
        "mp_imap_unordered",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_imap_unordered",
        imap_unordered,
        None,
    ),
    (
        "mp_imap_unordered_handle_iterable_exception",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_imap_unordered_handle_iterable_exception",
        |m| imap_iterable_exception(m, true),
        None,
    ),
    (
        "mp_terminate",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_terminate",
        terminate,
        None,
    ),
    (
        "mp_empty_iterable",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_empty_iterable",
        empty_iterable,
        None,
    ),
    (
        "mp_map_no_failfast",
        "CPython Lib/test/_test_multiprocessing.py::_TestPool::test_map_no_failfast",
        map_no_failfast,
        None,
    ),
    // _TestPoolWorkerErrors
    (
        "mp_async_error_callback",
        "CPython Lib/test/_test_multiprocessing.py::_TestPoolWorkerErrors::test_async_error_callback",
        async_error_callback,
        None,
    ),
    (
        "mp_unpickleable_result",
        "CPython Lib/test/_test_multiprocessing.py::_TestPoolWorkerErrors::test_unpickleable_result",
        unpickleable_result_each_time,
        Some("a thread pool never encodes a result"),
    ),
    // _TestPoolWorkerLifetime
    (
        "mp_pool_worker_lifetime",
        "CPython Lib/test/_test_multiprocessing.py::_TestPoolWorkerLifetime::test_pool_worker_lifetime",
        worker_lifetime,
        None,
    ),
    (
        "mp_pool_worker_lifetime_early_close",
        "CPython Lib/test/_test_multiprocessing.py::_TestPoolWorkerLifetime::test_pool_worker_lifetime_early_close",
        worker_lifetime_early_close,
        None,
    ),
    (
        "mp_pool_maxtasksperchild_invalid",
        "CPython Lib/test/_test_multiprocessing.py::_TestPoolWorkerLifetime::test_pool_maxtasksperchild_invalid",
        maxtasks_invalid,
        None,
    ),
];

/// Crashes the worker after `ms` ms: a segfault in a worker process, a panic in a thread.
fn crash_after(ms: u64) -> u64 {
    crate::sleep_ms(ms);
    if std::process::id() != super::CALLER_PID.load(Ordering::Relaxed) {
        super::fault::segfault()
    }
    panic!("crashed after {ms} ms")
}

fn is_mode_crash(mode: Mode, r: &Result<u64, TaskError>) -> bool {
    match mode {
        Mode::Threads => matches!(r, Err(TaskError::Panicked { .. })),
        _ => matches!(
            r,
            Err(TaskError::Crashed {
                signal: Some(libc::SIGSEGV),
                ..
            })
        ),
    }
}

fn shutdown_deadlock(mode: Mode) {
    let pool = pool(mode, 2);
    let f = pool.submit(crash_after, 100);
    shutdown_within(pool);
    let r = join_within(f, "the crashing task");
    assert!(is_mode_crash(mode, &r), "{r:?}");
}

fn shutdown_deadlock_pickle(mode: Mode) {
    let pool = pool(mode, 2);
    assert_eq!(join_within(pool.submit(double, 42), "a first task"), Ok(84));
    let f = super::no_escape("submit", || {
        pool.submit(run_bomb, Bomb::armed(1, Point::SerArg, Kind::Error))
    });
    shutdown_within(pool);
    let got = join_within(f, "the task whose argument fails to encode");
    let want = expect(Point::SerArg, Kind::Error, mode.is_process());
    if let Err(e) = check_guilty(&want, Kind::Error, Point::SerArg, 1, &got) {
        panic!("{e}");
    }
}

fn crash_with_data(_data: String) -> u64 {
    super::fault::segfault()
}

fn crash_big_data(mode: Mode) {
    let pool = pool(mode, 2);
    // Above a pipe's capacity, as CPython's `support.PIPE_MAX_SIZE`.
    let data = "a".repeat((1 << 20) + 1);
    let out = pool.map(crash_with_data, vec![data; 10]);
    assert_eq!(out.len(), 10);
    for (i, o) in out.iter().enumerate() {
        assert!(
            matches!(
                o,
                Err(TaskError::Crashed {
                    signal: Some(libc::SIGSEGV),
                    ..
                })
            ),
            "item {i}: {o:?}"
        );
    }
    reuse(&pool);
    finish(pool);
}

fn many_submits(mode: Mode) {
    let pool = pool(mode, 2);
    let tasks: Vec<_> = (0..100u64).map(|n| pool.submit(double, n)).collect();
    for (n, t) in (0..).zip(tasks) {
        assert_eq!(join_within(t, "one of 100 tasks"), Ok(2 * n));
    }
    finish(pool);
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill(2) takes no pointers.
    assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0, "kill {pid}");
}

fn killed_child(mode: Mode) {
    let _ = std::fs::remove_file(scratch("started"));
    let pool = pool(mode, 2);
    let f = pool.submit(started_then_sleep, 5_000);
    let pid = wait_started();
    signal(pid, libc::SIGTERM);
    match join_within(f, "the task of the terminated worker") {
        Err(TaskError::Crashed {
            signal: Some(libc::SIGTERM),
            ..
        }) => {}
        other => panic!("want Crashed by SIGTERM, got {other:?}"),
    }
    // Unlike CPython, the pool is not broken: other work goes on.
    assert_eq!(
        join_within(pool.submit(double, 128), "a later task"),
        Ok(256)
    );
    reuse(&pool);
    finish(pool);
}

fn broken_pool_errors_are_per_task(mode: Mode) {
    let _ = std::fs::remove_file(scratch("started"));
    let pool = pool(mode, 1);
    let first = pool.submit(started_then_sleep, 5_000);
    let queued: Vec<_> = (0..2u64).map(|n| pool.submit(double, n)).collect();
    signal(wait_started(), libc::SIGKILL);
    match join_within(first, "the task of the killed worker") {
        Err(TaskError::Crashed {
            signal: Some(libc::SIGKILL),
            ..
        }) => {}
        other => panic!("want Crashed by SIGKILL, got {other:?}"),
    }
    for (n, t) in (0..).zip(queued) {
        assert_eq!(join_within(t, "a queued task"), Ok(2 * n));
    }
    finish(pool);
}

fn pow_pair((a, b): (u64, u32)) -> u64 {
    a.wrapping_pow(b)
}

fn map_chunksize(mode: Mode) {
    let want: Vec<Result<u64, TaskError>> =
        (0..40u64).map(|i| Ok(i.wrapping_pow(i as u32))).collect();
    for chunk in [6, 50, 40] {
        let pool = builder(mode, 2).chunk_size(chunk).build().unwrap();
        let out = pool.map(pow_pair, (0..40u64).map(|i| (i, i as u32)));
        assert_eq!(out, want, "chunk {chunk}");
        finish(pool);
    }
    let err = builder(mode, 2).chunk_size(0).build().unwrap_err();
    assert!(err.is_invalid_config(), "{err}");
}

fn raise_123(_: u64) -> u64 {
    panic!("RuntimeError(123)") // some comment
}

fn traceback(mode: Mode) {
    let pool = pool(mode, 1);
    match join_within(pool.submit(raise_123, 0), "the failing task") {
        Err(TaskError::Panicked {
            message, location, ..
        }) => {
            assert_eq!(message, "RuntimeError(123)");
            assert!(
                location
                    .as_deref()
                    .is_some_and(|l| l.contains("cpython.rs")),
                "the panic's location did not cross: {location:?}"
            );
        }
        other => panic!("want Panicked, got {other:?}"),
    }
    reuse(&pool);
    finish(pool);
}

fn exit_with(code: i32) -> u64 {
    std::process::exit(code)
}

fn terminates_abruptly(mode: Mode) {
    let pool = pool(mode, 1);
    let e = join_within(pool.submit(exit_with, 99), "the exiting task").unwrap_err();
    assert!(
        matches!(
            e,
            TaskError::Crashed {
                exit_code: Some(99),
                signal: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("exited with code 99"), "{e}");
    reuse(&pool);
    finish(pool);
}

/// An argument whose drop in a worker leaves a marker (CPython's `EventfulGCObj`).
#[derive(Debug, Serialize, Deserialize)]
struct EventfulDrop(String);

impl Drop for EventfulDrop {
    fn drop(&mut self) {
        if super::in_worker() {
            let _ = std::fs::write(&self.0, b"dropped");
        }
    }
}

fn ignore_it(e: EventfulDrop) -> usize {
    e.0.len()
}

fn resources_dropped_in_workers(mode: Mode) {
    let marker = scratch("dropped");
    let _ = std::fs::remove_file(&marker);
    let pool = pool(mode, 1);
    let path = marker.to_string_lossy().into_owned();
    let len = path.len();
    assert_eq!(
        join_within(pool.submit(ignore_it, EventfulDrop(path)), "the task"),
        Ok(len)
    );
    wait_for("the argument was not dropped in the worker", || {
        marker.exists()
    });
    finish(pool);
}

fn saturation(mode: Mode) {
    let pool = pool(mode, 2);
    let tasks: Vec<_> = (0..30).map(|_| pool.submit(crate::sleep_ms, 5)).collect();
    assert_eq!(pool.workers(), 2);
    if mode.is_process() {
        assert_eq!(pool.worker_pids().len(), 2, "{:?}", pool.worker_pids());
    }
    for t in tasks {
        assert_eq!(join_within(t, "a task"), Ok(5));
    }
    finish(pool);
}

fn idle_reuse(mode: Mode) {
    let pool = pool(mode, 3);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..3 {
        seen.insert(join_within(pool.submit(whoami, 0), "a task").unwrap());
        let _background = pool.submit(whoami, 0);
    }
    assert!(seen.len() <= 3, "{seen:?}");
    if mode.is_process() {
        let pids = pool.worker_pids();
        for w in &seen {
            let pid: u32 = w.split(':').next().unwrap().parse().unwrap();
            assert!(pids.contains(&pid), "{pid} is not a worker: {pids:?}");
        }
    }
    finish(pool);
}

fn max_tasks_per_child(mode: Mode) {
    let pool = builder(mode, 1).max_tasks_per_worker(3).build().unwrap();
    let w: Vec<String> = (0..4)
        .map(|_| join_within(pool.submit(whoami, 0), "a task").unwrap())
        .collect();
    assert_eq!(w[0], w[1]);
    assert_eq!(w[0], w[2]);
    assert_ne!(w[0], w[3], "a fourth task on a worker limited to three");
    if mode.is_process() {
        assert_eq!(pool.worker_pids().len(), 1);
    }
    finish(pool);
}

fn max_tasks_pending(mode: Mode) {
    for (workers, max, n) in [(1, 2, 6u64), (2, 2, 8)] {
        let pool = builder(mode, workers)
            .max_tasks_per_worker(max)
            .build()
            .unwrap();
        let tasks: Vec<_> = (0..n).map(|i| pool.submit(double, i)).collect();
        for (i, t) in (0..).zip(tasks) {
            assert_eq!(join_within(t, "a task"), Ok(2 * i), "{workers} workers");
        }
        shutdown_within(pool);
    }
}

fn max_tasks_shutdown(mode: Mode) {
    let pool = builder(mode, 1).max_tasks_per_worker(1).build().unwrap();
    let tasks: Vec<_> = (0..3).map(|_| pool.submit(crate::sleep_ms, 50)).collect();
    shutdown_within(pool);
    for t in tasks {
        assert_eq!(join_within(t, "a task after shutdown"), Ok(50));
    }
}

fn max_tasks_dropped(mode: Mode) {
    let _ = std::fs::remove_file(scratch("started"));
    let pool = builder(mode, 1).max_tasks_per_worker(1).build().unwrap();
    let first = pool.submit(started_then_sleep, 100);
    let rest: Vec<_> = (0..2).map(|_| pool.submit(crate::sleep_ms, 10)).collect();
    wait_started();
    finish(pool);
    // Dropped, not shut down: every task still has exactly one outcome, promptly.
    match join_within(first, "the running task") {
        Ok(100) | Err(TaskError::Cancelled { .. }) => {}
        other => panic!("want Ok(100) or Cancelled, got {other:?}"),
    }
    for t in rest {
        match join_within(t, "a queued task") {
            Ok(10) | Err(TaskError::Cancelled { .. }) => {}
            other => panic!("want Ok(10) or Cancelled, got {other:?}"),
        }
    }
}

fn max_tasks_early_shutdown(mode: Mode) {
    let pool = builder(mode, 3).max_tasks_per_worker(1).build().unwrap();
    let tasks: Vec<_> = (0..6u64).map(|i| pool.submit(sqr, i)).collect();
    shutdown_within(pool);
    for (i, t) in (0..).zip(tasks) {
        assert_eq!(join_within(t, "a task"), Ok(i * i));
    }
}

fn force_shutdown(mode: Mode) {
    let _ = std::fs::remove_file(scratch("started"));
    let pool = pool(mode, 1);
    let f = pool.submit(started_then_sleep, 300);
    wait_started();
    finish(pool);
    match join_within(f, "the running task") {
        Err(TaskError::Cancelled { .. }) => {}
        // A thread cannot be stopped: it runs on, and may finish.
        Ok(300) if mode == Mode::Threads => {}
        other => panic!("want Cancelled, got {other:?}"),
    }
}

fn force_shutdown_dead_workers(mode: Mode) {
    let pool = pool(mode, 1);
    let e = join_within(pool.submit(exit_with, 1), "the exiting task").unwrap_err();
    assert!(
        matches!(
            e,
            TaskError::Crashed {
                exit_code: Some(1),
                ..
            }
        ),
        "{e:?}"
    );
    finish(pool);
}

fn submit(mode: Mode) {
    let pool = pool(mode, 2);
    assert_eq!(join_within(pool.submit(pow_pair, (2, 8)), "pow"), Ok(256));
    finish(pool);
}

fn map(mode: Mode) {
    let want: Vec<Result<u64, TaskError>> = (0..10u64).map(|i| Ok(i.pow(i as u32))).collect();
    let pool = pool(mode, 2);
    assert_eq!(pool.map(pow_pair, (0..10u64).map(|i| (i, i as u32))), want);
    finish(pool);
    let pool = builder(mode, 2).chunk_size(3).build().unwrap();
    assert_eq!(pool.map(pow_pair, (0..10u64).map(|i| (i, i as u32))), want);
    finish(pool);
}

fn divmod((a, b): (u64, u64)) -> (u64, u64) {
    (a / b, a % b)
}

fn map_exception(mode: Mode) {
    let pool = pool(mode, 2);
    let out = pool.map(divmod, [(1, 2), (1, 3), (1, 0), (1, 5)]);
    assert_eq!(out[0], Ok((0, 1)));
    assert_eq!(out[1], Ok((0, 1)));
    match &out[2] {
        Err(TaskError::Panicked { message, .. }) => {
            assert!(message.contains("divide by zero"), "{message}")
        }
        other => panic!("want Panicked, got {other:?}"),
    }
    assert_eq!(out[3], Ok((0, 1)));
    reuse(&pool);
    finish(pool);
}

fn to_text(n: u64) -> String {
    n.to_string()
}

fn shutdown_race(mode: Mode) {
    let pool = pool(mode, 2);
    let out = pool.map(to_text, vec![2; 3]);
    assert!(out.iter().all(|o| o.as_deref() == Ok("2")), "{out:?}");
    shutdown_within(pool);
}

/// Live `Counted` values in this process (CPython's `CountedObject`).
static LIVE: AtomicIsize = AtomicIsize::new(0);

#[derive(Debug)]
struct Counted(u64);

impl Counted {
    fn new(n: u64) -> Counted {
        LIVE.fetch_add(1, Ordering::SeqCst);
        Counted(n)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Serialize for Counted {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Counted {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        u64::deserialize(d).map(Counted::new)
    }
}

fn identity(c: Counted) -> Counted {
    c
}

fn no_stale_references(mode: Mode) {
    let pool = pool(mode, 2);
    let before = LIVE.load(Ordering::SeqCst);
    let out = pool.map(identity, (0..10).map(Counted::new));
    assert!(out.iter().all(Result::is_ok), "{out:?}");
    drop(out);
    let t = pool.submit(identity, Counted::new(99));
    assert_eq!(join_within(t, "a task").map(|c| c.0), Ok(99));
    let _discarded = pool.submit(identity, Counted::new(100));
    drop(_discarded);
    reuse(&pool);
    shutdown_within(pool);
    // Neither the pool nor its handles keep an argument or a result alive.
    wait_for("a Counted value outlived its call", || {
        LIVE.load(Ordering::SeqCst) == before
    });
}

fn max_workers_zero(mode: Mode) {
    let err = builder(mode, 0).build().unwrap_err();
    assert!(err.is_invalid_config(), "{err}");
    let pool = pool(mode, 3);
    assert_eq!(pool.workers(), 3);
    finish(pool);
}

fn hang_issue12364(mode: Mode) {
    let pool = pool(mode, 2);
    let tasks: Vec<_> = (0..20).map(|_| pool.submit(crate::sleep_ms, 10)).collect();
    shutdown_within(pool);
    for t in tasks {
        assert_eq!(join_within(t, "a task"), Ok(10));
    }
}

fn cancel_futures(mode: Mode) {
    let pool = pool(mode, 2);
    let tasks: Vec<_> = (0..20).map(|_| pool.submit(crate::sleep_ms, 50)).collect();
    let cancelled = tasks.iter().filter(|t| t.cancel()).count();
    assert!(cancelled > 10, "only {cancelled} of 20 cancelled");
    let mut done = 0;
    for t in tasks {
        match join_within(t, "a task") {
            Ok(50) => done += 1,
            Err(TaskError::Cancelled { .. }) => {}
            other => panic!("want Ok(50) or Cancelled, got {other:?}"),
        }
    }
    assert_eq!(done + cancelled, 20);
    shutdown_within(pool);
}

fn hang_gh94440(mode: Mode) {
    let pool = pool(mode, 1);
    assert_eq!(join_within(pool.submit(double, 1), "a task"), Ok(2));
    let t = pool.submit(double, 2);
    let _ = t.cancel();
    shutdown_within(pool);
    match join_within(t, "the cancelled task") {
        Ok(4) | Err(TaskError::Cancelled { .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn processes_terminate(mode: Mode) {
    let pool = pool(mode, 3);
    let tasks: Vec<_> = (0..3).map(|_| pool.submit(crate::sleep_ms, 30)).collect();
    if mode.is_process() {
        assert_eq!(pool.worker_pids().len(), 3);
    }
    shutdown_within(pool);
    for t in tasks {
        assert_eq!(join_within(t, "a task"), Ok(30));
    }
}

fn abs(n: i64) -> i64 {
    n.abs()
}

fn context_manager_shutdown(mode: Mode) {
    let pool = pool(mode, 5);
    assert_eq!(
        pool.try_map(abs, -5..5i64).unwrap(),
        [5, 4, 3, 2, 1, 0, 1, 2, 3, 4]
    );
    shutdown_within(pool);
}

fn del_shutdown(mode: Mode) {
    let pool = pool(mode, 5);
    let res = pool.map(abs, -5..5i64);
    finish(pool);
    let want: Vec<Result<i64, TaskError>> = (-5..5i64).map(|v| Ok(v.abs())).collect();
    assert_eq!(res, want);
}

fn failing_task(_: u64) -> u64 {
    panic!("failing task")
}

fn gh_132969(mode: Mode, workers: usize) {
    let pool = builder(mode, workers)
        .max_tasks_per_worker(1)
        .build()
        .unwrap();
    let f1 = pool.submit(crate::sleep_ms, 100);
    let f2 = pool.submit(failing_task, 2);
    let f3 = pool.submit(crate::sleep_ms, 300);
    let mut result = join_within(f1, "f1").unwrap();
    match join_within(f2, "f2") {
        Ok(v) => result += v,
        Err(e) => assert!(e.is_panicked(), "{e:?}"),
    }
    shutdown_within(pool);
    assert_eq!(result, 100);
    assert_eq!(join_within(f3, "f3"), Ok(300));
}

fn init_status() -> String {
    "initialized".to_string()
}

#[allow(clippy::ptr_arg)] // the state's type is `String`, so a task takes `&String`
fn get_init_status(s: &String, _: u64) -> String {
    s.clone()
}

fn initializer(mode: Mode) {
    let pool = builder(mode, 2).init_worker(init_status).build().unwrap();
    let out = pool.map_state(get_init_status, 0..2u64);
    assert!(
        out.iter().all(|o| o.as_deref() == Ok("initialized")),
        "{out:?}"
    );
    finish(pool);
}

fn init_fail() -> String {
    panic!("ValueError: error in initializer")
}

fn failing_initializer(mode: Mode) {
    let err = builder(mode, 2).init_worker(init_fail).build().unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::WorkerInit { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("error in initializer"), "{err}");
}

fn mul((a, b): (u64, u64)) -> u64 {
    a * b
}

fn wait_first_completed(mode: Mode) {
    let pool = pool(mode, 2);
    let f1 = pool.submit(mul, (21, 2));
    let f2 = pool.submit(crate::sleep_ms, 1_000);
    wait_for("no task completed", || f1.is_finished() || f2.is_finished());
    assert!(f1.is_finished() && !f2.is_finished());
    assert_eq!(join_within(f1, "f1"), Ok(42));
    assert_eq!(join_within(f2, "f2"), Ok(1_000));
    finish(pool);
}

fn sleep_then_fail(ms: u64) -> u64 {
    crate::sleep_ms(ms);
    panic!("this is an exception")
}

fn wait_first_exception(mode: Mode) {
    let pool = pool(mode, 3);
    let f1 = pool.submit(mul, (2, 21));
    let f2 = pool.submit(sleep_then_fail, 100);
    let f3 = pool.submit(crate::sleep_ms, 1_000);
    wait_for("the failing task did not finish", || f2.is_finished());
    assert!(f1.is_finished() && !f3.is_finished());
    assert_eq!(join_within(f1, "f1"), Ok(42));
    assert!(join_within(f2, "f2").unwrap_err().is_panicked());
    assert_eq!(join_within(f3, "f3"), Ok(1_000));
    finish(pool);
}

fn wait_all_completed(mode: Mode) {
    let pool = pool(mode, 2);
    let f1 = pool.submit(divmod, (2, 0));
    let f2 = pool.submit(mul, (2, 21));
    wait_for("not every task finished", || {
        f1.is_finished() && f2.is_finished()
    });
    assert!(join_within(f1, "f1").unwrap_err().is_panicked());
    assert_eq!(join_within(f2, "f2"), Ok(42));
    finish(pool);
}

fn wait_timeout(mode: Mode) {
    let pool = pool(mode, 1);
    let f = pool.submit(crate::sleep_ms, 500);
    let f = f
        .join_timeout(std::time::Duration::from_millis(50))
        .expect_err("a 500 ms task finished within 50 ms");
    assert_eq!(join_within(f, "the task"), Ok(500));
    finish(pool);
}

fn as_completed(mode: Mode) {
    let pool = pool(mode, 2);
    let mut got: Vec<(usize, Result<u64, TaskError>)> =
        pool.stream_unordered(mul, [(2, 21), (7, 6)]).collect();
    got.sort_by_key(|(i, _)| *i);
    assert_eq!(got, [(0, Ok(42)), (1, Ok(42))]);
    finish(pool);
}

fn as_completed_times_out(mode: Mode) {
    let pool = pool(mode, 2);
    for timeout in [0, 100] {
        let f = pool.submit(crate::sleep_ms, 600);
        let f = f
            .join_timeout(std::time::Duration::from_millis(timeout))
            .expect_err("a 600 ms task finished early");
        if mode.is_process() {
            assert!(f.cancel(), "a running process task can be cancelled");
            assert!(
                join_within(f, "the cancelled task")
                    .unwrap_err()
                    .is_cancelled()
            );
        } else {
            assert_eq!(join_within(f, "the task"), Ok(600));
        }
    }
    reuse(&pool);
    finish(pool);
}

fn sqr(n: u64) -> u64 {
    n * n
}

fn apply(mode: Mode) {
    let pool = pool(mode, 2);
    assert_eq!(join_within(pool.submit(sqr, 5), "sqr"), Ok(25));
    assert_eq!(block_on(pool.submit(sqr, 7)), Ok(49));
    finish(pool);
}

fn mp_map(mode: Mode) {
    let pool = pool(mode, 4);
    assert_eq!(
        pool.try_map(sqr, 0..10u64).unwrap(),
        (0..10).map(sqr).collect::<Vec<_>>()
    );
    finish(pool);
    let pool = builder(mode, 4).chunk_size(20).build().unwrap();
    assert_eq!(
        pool.try_map(sqr, 0..100u64).unwrap(),
        (0..100).map(sqr).collect::<Vec<_>>()
    );
    finish(pool);
}

fn starmap(mode: Mode) {
    let pool = pool(mode, 4);
    let tuples: Vec<(u64, u64)> = (0..100).zip((0..100).rev()).collect();
    let want: Vec<u64> = tuples.iter().map(|&(a, b)| a * b).collect();
    assert_eq!(pool.try_map(mul, tuples.clone()).unwrap(), want);
    finish(pool);
}

/// CPython's class `A` whose `__reduce__` raises `RuntimeError('cannot pickle')`.
#[derive(Debug, Deserialize)]
struct Unpicklable(u64);

impl Serialize for Unpicklable {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("RuntimeError: cannot pickle"))
    }
}

fn sqr_unpicklable(a: Unpicklable) -> u64 {
    a.0 * a.0
}

fn map_unpicklable(mode: Mode) {
    let pool = pool(mode, 2);
    let out = super::no_escape("map", || {
        pool.map(sqr_unpicklable, (0..10).map(|_| Unpicklable(3)))
    });
    assert_eq!(out.len(), 10);
    for o in &out {
        match (mode, o) {
            (Mode::Threads, Ok(9)) => {}
            (Mode::Fork | Mode::Exec, Err(TaskError::Codec { message, .. })) => assert!(
                message.contains("cannot pickle"),
                "the user's message is missing: {message:?}"
            ),
            (_, other) => panic!("{other:?}"),
        }
    }
    reuse(&pool);
    finish(pool);
}

fn map_chunksize_empty(mode: Mode) {
    let pool = builder(mode, 2).chunk_size(1).build().unwrap();
    assert_eq!(pool.map(sqr, Vec::<u64>::new()), Vec::new());
    finish(pool);
}

fn map_iterable_exception(mode: Mode) {
    let pool = builder(mode, 2).chunk_size(1).build().unwrap();
    for (total, when) in [(1, 0), (1, 0), (10, 3)] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.map(sqr, say_when(total, when))
        }));
        let p = caught.expect_err("map over a failing iterator returned");
        assert!(super::panic_text(p.as_ref()).contains("Somebody said when"));
    }
    reuse(&pool);
    finish(pool);
}

fn async_timeout(mode: Mode) {
    let pool = pool(mode, 3);
    let f = pool.submit(crate::sleep_ms, 400);
    let f = f
        .join_timeout(std::time::Duration::from_millis(100))
        .expect_err("a 400 ms task finished within 100 ms");
    // `p.terminate()`: the pool goes with its task running.
    finish(pool);
    match join_within(f, "the task") {
        Ok(400) | Err(TaskError::Cancelled { .. }) => {}
        other => panic!("{other:?}"),
    }
}

fn imap(mode: Mode) {
    let pool = pool(mode, 2);
    let out: Vec<_> = pool.stream(sqr, 0..10u64).collect();
    assert_eq!(out, (0..10).map(|i| Ok(sqr(i))).collect::<Vec<_>>());
    let mut it = pool.stream(sqr, 0..10u64);
    for i in 0..10 {
        assert_eq!(it.next(), Some(Ok(i * i)));
    }
    assert_eq!(it.next(), None);
    drop(it);
    finish(pool);
    let pool = builder(mode, 2).chunk_size(100).build().unwrap();
    let mut it = pool.stream(sqr, 0..1000u64);
    for i in 0..1000 {
        assert_eq!(it.next(), Some(Ok(i * i)));
    }
    assert_eq!(it.next(), None);
    drop(it);
    finish(pool);
}

fn imap_iterable_exception(mode: Mode, unordered: bool) {
    for (chunk, total, when) in [(1, 1, 0), (1, 1, 0), (1, 10, 3), (2, 20, 7), (4, 20, 7)] {
        let pool = builder(mode, 2).chunk_size(chunk).build().unwrap();
        let mut got = Vec::new();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if unordered {
                for (i, o) in pool.stream_unordered(sqr, say_when(total, when)) {
                    got.push((i as u64, o));
                }
            } else {
                for (i, o) in pool.stream(sqr, say_when(total, when)).enumerate() {
                    got.push((i as u64, o));
                }
            }
        }));
        let p = caught.expect_err("a stream over a failing iterator ended normally");
        assert!(super::panic_text(p.as_ref()).contains("Somebody said when"));
        assert!(got.len() as u64 <= when, "{got:?}");
        for (i, o) in &got {
            assert!(*i < when, "{got:?}");
            assert_eq!(*o, Ok(i * i));
        }
        reuse(&pool);
        finish(pool);
    }
}

fn imap_unordered(mode: Mode) {
    let pool = pool(mode, 2);
    let mut out: Vec<u64> = pool
        .stream_unordered(sqr, 0..10u64)
        .map(|(_, o)| o.unwrap())
        .collect();
    out.sort_unstable();
    assert_eq!(out, (0..10).map(sqr).collect::<Vec<_>>());
    finish(pool);
    let pool = builder(mode, 2).chunk_size(100).build().unwrap();
    let mut out: Vec<u64> = pool
        .stream_unordered(sqr, 0..1000u64)
        .map(|(_, o)| o.unwrap())
        .collect();
    out.sort_unstable();
    assert_eq!(out, (0..1000).map(sqr).collect::<Vec<_>>());
    finish(pool);
}

fn terminate(mode: Mode) {
    let pool = builder(mode, 3).chunk_size(1).build().unwrap();
    let mut s = pool
        .stream(crate::sleep_ms, std::iter::repeat_n(50u64, 10_000))
        .window(6);
    assert_eq!(s.next(), Some(Ok(50)));
    drop(s);
    finish(pool);
}

fn empty_iterable(mode: Mode) {
    let pool = pool(mode, 1);
    assert_eq!(pool.map(sqr, Vec::<u64>::new()), Vec::new());
    assert_eq!(
        pool.try_map(sqr, Vec::<u64>::new()).unwrap(),
        Vec::<u64>::new()
    );
    assert_eq!(pool.stream(sqr, Vec::<u64>::new()).count(), 0);
    assert_eq!(pool.stream_unordered(sqr, Vec::<u64>::new()).count(), 0);
    shutdown_within(pool);
}

fn raise_large_valueerror(_: u64) -> u64 {
    panic!("{}", "x".repeat(1 << 20))
}

fn map_no_failfast(mode: Mode) {
    let pool = pool(mode, 2);
    let out = pool.map(raise_large_valueerror, 0..2u64);
    for o in &out {
        match o {
            Err(TaskError::Panicked { message, .. }) => {
                assert!(
                    message.starts_with("xxxx"),
                    "{}",
                    &message[..message.len().min(40)]
                )
            }
            other => panic!("want Panicked, got {other:?}"),
        }
    }
    assert!(pool.try_map(raise_large_valueerror, 0..2u64).is_err());
    reuse(&pool);
    shutdown_within(pool);
}

fn raising(_: u64) -> u64 {
    panic!("KeyError: key")
}

fn async_error_callback(mode: Mode) {
    let pool = pool(mode, 2);
    match block_on(pool.submit(raising, 0)) {
        Err(TaskError::Panicked { message, .. }) => assert_eq!(message, "KeyError: key"),
        other => panic!("{other:?}"),
    }
    finish(pool);
}

/// CPython's `unpickleable_result` (a lambda): a result that refuses to encode.
#[derive(Debug, Deserialize)]
struct Lambda;

impl Serialize for Lambda {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("cannot pickle a lambda"))
    }
}

fn unpickleable_result(_: u64) -> Lambda {
    Lambda
}

fn unpickleable_result_each_time(mode: Mode) {
    let pool = pool(mode, 2);
    assert!(pool.map(double, 0..4u64).iter().all(Result::is_ok));
    let pids = pool.worker_pids();
    for _ in 0..20 {
        match join_within(pool.submit(unpickleable_result, 0), "the task") {
            Err(TaskError::Codec { message, .. }) => assert!(
                message.contains("cannot pickle a lambda"),
                "the user's message is missing: {message:?}"
            ),
            other => panic!("want Codec, got {other:?}"),
        }
    }
    // No worker was lost to the encoding errors.
    assert_eq!(pool.worker_pids(), pids);
    finish(pool);
}

fn worker_lifetime(mode: Mode) {
    let pool = builder(mode, 3).max_tasks_per_worker(10).build().unwrap();
    let before: Vec<String> = (0..3)
        .map(|_| pool.submit(slow_whoami, 30))
        .map(|t| join_within(t, "a task").unwrap())
        .collect();
    let tasks: Vec<_> = (0..100u64).map(|i| pool.submit(sqr, i)).collect();
    for (i, t) in (0..).zip(tasks) {
        assert_eq!(join_within(t, "a task"), Ok(sqr(i)));
    }
    let after: Vec<String> = (0..3)
        .map(|_| pool.submit(slow_whoami, 30))
        .map(|t| join_within(t, "a task").unwrap())
        .collect();
    let mut b = before.clone();
    let mut a = after.clone();
    b.sort();
    a.sort();
    assert_ne!(
        a, b,
        "no worker was replaced after 100 tasks on 3 workers limited to 10"
    );
    finish(pool);
}

fn worker_lifetime_early_close(mode: Mode) {
    let pool = builder(mode, 3).max_tasks_per_worker(1).build().unwrap();
    let tasks: Vec<_> = (0..6u64).map(|i| pool.submit(sqr_slowly, i)).collect();
    shutdown_within(pool);
    for (i, t) in (0..).zip(tasks) {
        assert_eq!(join_within(t, "a task"), Ok(i * i));
    }
}

fn sqr_slowly(n: u64) -> u64 {
    crate::sleep_ms(30);
    n * n
}

fn maxtasks_invalid(mode: Mode) {
    let err = builder(mode, 3)
        .max_tasks_per_worker(0)
        .build()
        .unwrap_err();
    assert!(err.is_invalid_config(), "{err}");
}
