//! `Pool::stats`: exact counts after known workloads, in both modes.

use std::time::Duration;

use proctor::{Mode, Pool, PoolStats};

/// Panics on multiples of 5.
fn fail_on_fives(n: u64) -> u64 {
    assert!(n % 5 != 0, "a multiple of five");
    n
}

fn abort_now(_: u64) -> u64 {
    std::process::abort();
}

fn double(n: u64) -> u64 {
    n * 2
}

/// A quiet pool: nothing running, queued or busy, and every task submitted has its outcome.
fn assert_quiet(s: &PoolStats) {
    assert_eq!((s.running, s.queued, s.busy_workers), (0, 0, 0), "{s:?}");
    assert_eq!(s.submitted, s.done, "{s:?}");
    assert_eq!(s.done, s.succeeded + s.failed.total(), "{s:?}");
}

fn modes() -> Vec<Mode> {
    if cfg!(target_os = "linux") {
        vec![Mode::Threads, Mode::Processes]
    } else {
        vec![Mode::Threads]
    }
}

#[test]
fn a_map_with_panics_counts_every_outcome_by_kind() {
    for mode in modes() {
        let pool = Pool::builder(mode, 2).build().unwrap();
        assert_eq!(
            pool.stats(),
            PoolStats {
                workers_started: 2,
                ..Default::default()
            }
        );
        let out = pool.map(fail_on_fives, 1..=100);
        assert_eq!(out.iter().filter(|o| o.is_err()).count(), 20);
        let s = pool.stats();
        assert_quiet(&s);
        assert_eq!(
            (s.submitted, s.succeeded, s.failed.panicked),
            (100, 80, 20),
            "{mode}: {s:?}"
        );
        assert_eq!(s.failed.total(), 20, "{mode}: {s:?}");
        assert_eq!(
            (s.workers_started, s.workers_replaced, s.retried),
            (2, 0, 0),
            "{mode}"
        );

        // The counts add up across calls and kinds of call.
        assert_eq!(pool.try_map(double, 0..50).unwrap().len(), 50);
        assert_eq!(pool.submit(double, 4).join(), Ok(8));
        assert!(pool.submit(fail_on_fives, 5).join().is_err());
        let n = pool.stream(fail_on_fives, 1..=30).count();
        assert_eq!(n, 30);
        let n = pool.stream_unordered(double, 0..30).count();
        assert_eq!(n, 30);
        let s = pool.stats();
        assert_quiet(&s);
        assert_eq!(s.submitted, 100 + 50 + 1 + 1 + 30 + 30, "{mode}: {s:?}");
        assert_eq!(s.failed.panicked, 20 + 1 + 6, "{mode}: {s:?}");
        pool.shutdown();
    }
}

#[test]
fn a_cancelled_task_counts_once_as_cancelled() {
    for mode in modes() {
        let pool = Pool::builder(mode, 1).build().unwrap();
        let slow = pool.submit(crate::sleep_ms, 100);
        let queued = pool.submit(double, 1);
        let won = queued.cancel();
        assert_eq!(slow.join(), Ok(100));
        let outcome = queued.join();
        assert_eq!(outcome.is_err(), won, "{mode}: {outcome:?}");
        let s = pool.stats();
        assert_quiet(&s);
        assert_eq!(s.submitted, 2, "{mode}: {s:?}");
        assert_eq!(s.failed.cancelled, u64::from(won), "{mode}: {s:?}");
        assert_eq!(s.succeeded, 2 - u64::from(won), "{mode}: {s:?}");
    }
}

#[test]
fn a_try_map_that_stops_early_still_gives_every_task_one_count() {
    for mode in modes() {
        let pool = Pool::builder(mode, 2).build().unwrap();
        assert!(pool.try_map(fail_on_fives, 1..=40).is_err());
        let s = pool.stats();
        assert_quiet(&s);
        assert_eq!(s.submitted, 40, "{mode}: {s:?}");
        assert!(s.failed.panicked >= 1, "{mode}: {s:?}");
    }
}

#[test]
fn a_timed_out_thread_task_counts_and_its_worker_is_replaced() {
    let pool = Pool::threads(1)
        .task_timeout(Duration::from_millis(20))
        .build()
        .unwrap();
    a_timeout_counts_once_and_replaces_its_worker(&pool, 400);
}

/// One task past the pool's timeout, then one that succeeds: the timeout is counted once, and
/// the single worker was replaced once.
fn a_timeout_counts_once_and_replaces_its_worker(pool: &Pool, sleep_ms: u64) {
    let e = pool.submit(crate::sleep_ms, sleep_ms).join().unwrap_err();
    assert!(e.is_timed_out(), "{e:?}");
    assert_eq!(pool.submit(double, 1).join(), Ok(2));
    let s = pool.stats();
    assert_quiet(&s);
    assert_eq!((s.failed.timed_out, s.succeeded), (1, 1), "{s:?}");
    assert_eq!((s.workers_started, s.workers_replaced), (2, 1), "{s:?}");
}

#[test]
fn a_recycled_thread_worker_counts_as_replaced() {
    let pool = Pool::threads(1).max_tasks_per_worker(1).build().unwrap();
    for i in 0..3 {
        assert_eq!(pool.submit(double, i).join(), Ok(i * 2));
    }
    pool.shutdown_stats_check(3);
}

trait ShutdownCheck {
    fn shutdown_stats_check(self, tasks: u64);
}

impl ShutdownCheck for Pool {
    /// After `tasks` tasks, each on a fresh worker: every outcome counted, and at least
    /// `tasks - 1` replacements (the last one may still be starting).
    fn shutdown_stats_check(self, tasks: u64) {
        let s = self.stats();
        assert_quiet(&s);
        assert_eq!(s.succeeded, tasks, "{s:?}");
        assert!(s.workers_replaced >= tasks - 1, "{s:?}");
        assert_eq!(s.workers_started, 1 + s.workers_replaced, "{s:?}");
        self.shutdown();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_crash_in_process_mode_counts_and_its_worker_is_replaced() {
    let pool = Pool::processes(1).forward_stderr(false).build().unwrap();
    let e = pool.submit(abort_now, 0).join().unwrap_err();
    assert!(e.is_crashed(), "{e:?}");
    // The next task needs the replacement.
    assert_eq!(pool.submit(double, 3).join(), Ok(6));
    let s = pool.stats();
    assert_quiet(&s);
    assert_eq!(
        (s.failed.crashed, s.succeeded, s.retried),
        (1, 1, 0),
        "{s:?}"
    );
    assert_eq!((s.workers_started, s.workers_replaced), (2, 1), "{s:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn a_retried_crash_counts_as_a_retry_not_a_failure() {
    let dir = std::env::temp_dir().join(format!("proctor-stats-retry-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pool = Pool::processes(1)
        .retries(2)
        .forward_stderr(false)
        .build()
        .unwrap();
    let d = dir.to_string_lossy().into_owned();
    assert_eq!(pool.submit(crash_once, d).join(), Ok(2));
    let s = pool.stats();
    assert_quiet(&s);
    assert_eq!(
        (s.retried, s.succeeded, s.failed.total()),
        (1, 1, 0),
        "{s:?}"
    );
    assert_eq!(s.workers_replaced, 1, "{s:?}");
    let _ = std::fs::remove_dir_all(&dir);
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

#[cfg(target_os = "linux")]
#[test]
fn a_timed_out_process_task_counts_and_its_worker_is_replaced() {
    let pool = Pool::processes(1)
        .task_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    a_timeout_counts_once_and_replaces_its_worker(&pool, 5_000);
}
