//! Regression scenarios for the eight failures known when the peers' matrices were ported
//! (issue 23): each asserts the correct behaviour, so each failed on the code of that day.
//! Several have siblings in the matrices (named in the comments); these are the short,
//! named ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};

use proctor::TaskError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::fault::{Bomb, Kind, Point, check_guilty, check_innocent, expect, message, run_bomb};
use super::loky::{SubmitOnWake, poll_pending};
use super::{
    Mode, Scenario, block_on, builder, finish, join_within, no_escape, pool, reuse, scratch, step,
    wait_for,
};

pub(super) fn scenarios(s: &mut Vec<Scenario>) {
    // 1. loky test_in_callback_submit_with_crash (its plain case): a waker that submits.
    s.push(Scenario::new(
        "known1_a_waker_that_submits_gets_its_task_done",
        "loky tests/test_reusable_executor.py::TestExecutorDeadLock::test_in_callback_submit_with_crash",
        waker_that_submits,
    ));
    // 2. loky test_callback_crash_on_submit and pebble test_process_pool_callback_error: a
    // callback that raises.
    s.push(Scenario::new(
        "known2_a_panicking_waker_is_contained_and_the_pool_goes_on",
        "loky tests/test_reusable_executor.py::TestExecutorDeadLock::test_callback_crash_on_submit",
        panicking_waker,
    ));
    // 3. loky (id, (ErrorAtPickle(),), PicklingError), CPython test_error_at_task_pickle and
    // test_map_unplicklable, with a panic in the argument's Serialize, through every call.
    for via in [
        "submit",
        "map",
        "map_with_item",
        "map_with_context",
        "stream",
        "stream_unordered",
    ] {
        s.push(Scenario::new(
            format!("known3_an_argument_serialize_panic_is_its_tasks_codec_error_{via}"),
            "loky tests/test_reusable_executor.py::TestExecutorDeadLock::test_crashes (ErrorAtPickle)",
            move |m| serialize_panic(m, via),
        ));
    }
    // 4. loky test_call_item_gc_crash_or_exit, with a panic in the result's Drop.
    s.push(Scenario::new(
        "known4_a_result_drop_panic_in_the_worker_never_blames_the_next_task",
        "loky tests/test_reusable_executor.py::TestTerminateExecutor::test_call_item_gc_crash_or_exit",
        result_drop_panic,
    ));
    // 5. loky test_informative_error_when_fail_at_unpickle, at each of the four codec points.
    s.push(
        Scenario::new(
            "known5_codec_errors_keep_the_users_serde_message",
            "loky tests/test_reusable_executor.py::TestExecutorDeadLock::test_informative_error_when_fail_at_unpickle",
            codec_messages,
        )
        .processes_only("a thread pool encodes no argument or result"),
    );
    // 6. The same for a map_with context (CPython test_init.py's initargs are its nearest
    // peer: data sent to each worker once).
    s.push(Scenario::new(
        "known6_a_map_with_context_that_fails_to_decode_is_codec",
        "CPython Lib/test/test_concurrent_futures/test_init.py::InitializerMixin::test_initializer",
        context_decode_error,
    ));
    // 7. loky _test_process_executor.py test_no_failure_on_large_data_send, over the frame
    // limit of the day (256 MiB).
    s.push(
        Scenario::new(
            "known7_a_300mb_argument_through_submit_is_ok",
            "loky tests/_test_process_executor.py::ExecutorTest::test_no_failure_on_large_data_send",
            |m| super::loky::large_data_send(m, 300 << 20),
        )
        .processes_only("the frame limit is process mode's"),
    );
    // 8. CPython test_failed_worker_replacement_breaks_pool and pebble
    // test_process_pool_broken_initializer: no replacement can start.
    s.push(
        Scenario::new(
            "known8_a_replacement_initializer_that_panics_ends_waiting_tasks_no_worker",
            "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_failed_worker_replacement_breaks_pool",
            |m| replacement_init_fails(m, init_once),
        )
        .processes_only("a thread pool's worker cannot crash alone"),
    );
    s.push(
        Scenario::new(
            "known8_a_replacement_initializer_that_aborts_ends_waiting_tasks_no_worker",
            "CPython Lib/test/test_concurrent_futures/test_process_pool.py::ProcessPoolExecutorTest::test_failed_worker_replacement_breaks_pool",
            |m| replacement_init_fails(m, init_once_or_abort),
        )
        .processes_only("a thread pool's worker cannot crash alone"),
    );
}

fn waker_that_submits(mode: Mode) {
    let pool = Arc::new(pool(mode, 2));
    let hook = SubmitOnWake::new(&pool, Bomb::plain(21));
    let waker = Waker::from(Arc::clone(&hook));
    let mut first = pool.submit(crate::sleep_ms, 100);
    poll_pending(&mut first, &waker);
    step("waiting for the waker, which calls pool.submit");
    wait_for("the waker's pool.submit did not return", || {
        hook.woken.load(Ordering::SeqCst)
    });
    assert_eq!(block_on(first), Ok(100));
    let nested = hook
        .nested
        .lock()
        .unwrap()
        .take()
        .expect("the waker submitted");
    let got = join_within(nested, "the task the waker submitted");
    if let Err(e) = check_innocent(21, &got) {
        panic!("{e}");
    }
    drop(got);
    reuse(&pool);
    drop(waker);
    drop(hook);
    finish(Arc::try_unwrap(pool).expect("only the scenario holds the pool"));
}

/// A waker that panics when woken.
struct PanicOnWake {
    woken: AtomicBool,
}

impl Wake for PanicOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        panic!("a waker panicked");
    }
}

fn panicking_waker(mode: Mode) {
    let pool = pool(mode, 2);
    let hook = Arc::new(PanicOnWake {
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(Arc::clone(&hook));
    let mut first = pool.submit(crate::sleep_ms, 100);
    poll_pending(&mut first, &waker);
    step("waiting for the waker, which panics");
    wait_for("the waker was never woken", || {
        hook.woken.load(Ordering::SeqCst)
    });
    // The task's outcome arrived before its waker panicked; the pool goes on.
    assert_eq!(block_on(first), Ok(100));
    step("a task after the waker panicked");
    assert_eq!(
        join_within(pool.submit(super::double, 21), "a later task"),
        Ok(42)
    );
    reuse(&pool);
    finish(pool);
}

/// An argument whose `Serialize` panics (in the caller), carrying `n`.
#[derive(Debug, Deserialize)]
struct PanicAtPickle(u64);

impl Serialize for PanicAtPickle {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(
            super::in_worker() || self.0 != 1,
            "cannot pickle item {}",
            self.0
        );
        s.serialize_u64(self.0)
    }
}

fn unpickle_double(p: PanicAtPickle) -> u64 {
    2 * p.0
}

fn with_offset(offset: &u64, p: PanicAtPickle) -> u64 {
    offset + p.0
}

/// A `map_with` context whose `Serialize` panics (in the caller).
#[derive(Debug, Deserialize)]
struct PanickyContext(u64);

impl Serialize for PanickyContext {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        panic!("cannot pickle the context");
    }
}

fn with_panicky_context(c: &PanickyContext, n: u64) -> u64 {
    c.0 + n
}

/// Checks the outcomes of items `0..4` of [`PanicAtPickle`]: item 1 a `Codec` error that
/// mentions the panic (its argument is encoded in process mode only), the others `want(n)`.
fn check_pickled(mode: Mode, out: &[Result<u64, TaskError>], want: impl Fn(u64) -> u64) {
    assert_eq!(out.len(), 4, "{out:?}");
    for (n, o) in (0..).zip(out) {
        if n == 1 && mode.is_process() {
            match o {
                Err(TaskError::Codec { message, .. }) => assert!(
                    message.contains("cannot pickle item 1"),
                    "item 1: the panic's text is missing: {message:?}"
                ),
                other => panic!("item 1: want Codec, got {other:?}"),
            }
        } else {
            assert_eq!(*o, Ok(want(n)), "item {n}");
        }
    }
}

fn serialize_panic(mode: Mode, via: &str) {
    let pool = pool(mode, 2);
    let items = || (0..4).map(PanicAtPickle);
    match via {
        "submit" => {
            let tasks: Vec<_> = items()
                .map(|p| no_escape("submit", || pool.submit(unpickle_double, p)))
                .collect();
            let out: Vec<_> = tasks
                .into_iter()
                .map(|t| join_within(t, "a task"))
                .collect();
            check_pickled(mode, &out, |n| 2 * n);
        }
        "map" => {
            let out = no_escape("map", || pool.map(unpickle_double, items()));
            check_pickled(mode, &out, |n| 2 * n);
        }
        "map_with_item" => {
            let out = no_escape("map_with", || pool.map_with(&100, with_offset, items()));
            check_pickled(mode, &out, |n| 100 + n);
        }
        "map_with_context" => {
            let out = no_escape("map_with", || {
                pool.map_with(&PanickyContext(100), with_panicky_context, 0..4u64)
            });
            assert_eq!(out.len(), 4);
            for o in &out {
                match o {
                    Err(TaskError::Codec { message, .. }) => assert!(
                        message.contains("cannot pickle the context"),
                        "the panic's text is missing: {message:?}"
                    ),
                    other => panic!("want Codec, got {other:?}"),
                }
            }
        }
        "stream" => {
            let out: Vec<_> =
                no_escape("stream", || pool.stream(unpickle_double, items()).collect());
            check_pickled(mode, &out, |n| 2 * n);
        }
        "stream_unordered" => {
            let mut got: Vec<(usize, Result<u64, TaskError>)> =
                no_escape("stream_unordered", || {
                    pool.stream_unordered(unpickle_double, items()).collect()
                });
            got.sort_by_key(|(i, _)| *i);
            let idx: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
            assert_eq!(idx, [0, 1, 2, 3]);
            let out: Vec<_> = got.into_iter().map(|(_, o)| o).collect();
            check_pickled(mode, &out, |n| 2 * n);
        }
        _ => unreachable!("no such call: {via}"),
    }
    reuse(&pool);
    finish(pool);
}

fn result_drop_panic(mode: Mode) {
    let (point, kind) = (Point::DropRes, Kind::Panic);
    let want = expect(point, kind, mode.is_process());
    let pool = builder(mode, 1).chunk_size(4).build().unwrap();
    let guilty = join_within(
        pool.submit(run_bomb, Bomb::armed(1, point, kind)),
        "the guilty task",
    );
    let next = join_within(pool.submit(run_bomb, Bomb::plain(2)), "the next task");
    let mut failures: Vec<String> = check_guilty(&want, kind, point, 1, &guilty)
        .err()
        .into_iter()
        .collect();
    failures.extend(check_innocent(2, &next).err());
    // In one job: the items after the guilty one ran on the same worker, after its drop.
    let items = (0..4).map(|n| {
        if n == 1 {
            Bomb::armed(n, point, kind)
        } else {
            Bomb::plain(n)
        }
    });
    let out = pool.map(run_bomb, items);
    for (n, o) in (0..).zip(&out) {
        let r = if n == 1 {
            check_guilty(&want, kind, point, n, o)
        } else {
            check_innocent(n, o)
        };
        failures.extend(r.err());
    }
    drop((guilty, next, out));
    assert!(failures.is_empty(), "{}", failures.join("; "));
    reuse(&pool);
    finish(pool);
}

fn codec_messages(mode: Mode) {
    let pool = pool(mode, 2);
    let mut failures = Vec::new();
    for point in [Point::SerArg, Point::DeArg, Point::SerRes, Point::DeRes] {
        let got = no_escape("submit", || {
            join_within(
                pool.submit(run_bomb, Bomb::armed(1, point, Kind::Error)),
                "the task",
            )
        });
        let want = expect(point, Kind::Error, mode.is_process());
        failures.extend(check_guilty(&want, Kind::Error, point, 1, &got).err());
    }
    assert!(
        failures.is_empty(),
        "the user's message ({:?}, ...) is lost: {}",
        message(Kind::Error, Point::SerArg, 1),
        failures.join("; ")
    );
    reuse(&pool);
    finish(pool);
}

/// A `map_with` context that refuses to decode, anywhere.
#[derive(Debug, Serialize)]
struct RefusingContext(u64);

impl<'de> Deserialize<'de> for RefusingContext {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let _ = u64::deserialize(d)?;
        Err(serde::de::Error::custom(
            "RuntimeError: context refused, message raised in child",
        ))
    }
}

fn with_refusing_context(c: &RefusingContext, n: u64) -> u64 {
    c.0 + n
}

fn context_decode_error(mode: Mode) {
    let pool = pool(mode, 2);
    let out = no_escape("map_with", || {
        pool.map_with(&RefusingContext(1), with_refusing_context, 0..4u64)
    });
    assert_eq!(out.len(), 4);
    for (n, o) in out.iter().enumerate() {
        match o {
            Err(TaskError::Codec { message, .. }) => assert!(
                message.contains("message raised in child"),
                "item {n}: the user's message is missing: {message:?}"
            ),
            other => panic!("item {n}: want Codec, got {other:?}"),
        }
    }
    reuse(&pool);
    finish(pool);
}

/// A worker initializer that succeeds the first time (a marker file remembers), then panics.
fn init_once() -> u64 {
    let marker = scratch("init-once");
    assert!(!marker.exists(), "the initializer refuses to run twice");
    std::fs::write(&marker, b"x").expect("writing the marker");
    7
}

/// The same, but a second run aborts its worker instead of panicking.
fn init_once_or_abort() -> u64 {
    let marker = scratch("init-once");
    if marker.exists() {
        eprintln!("the initializer refuses to run twice");
        std::process::abort();
    }
    std::fs::write(&marker, b"x").expect("writing the marker");
    7
}

fn abort_after(_: &u64, ms: u64) -> u64 {
    crate::sleep_ms(ms);
    std::process::abort()
}

fn plus_state(s: &u64, n: u64) -> u64 {
    s + n
}

fn abort_on_zero(s: &u64, n: u64) -> u64 {
    if n == 0 {
        crate::sleep_ms(50);
        std::process::abort()
    }
    s + n
}

/// Checks that a task that waited while its worker crashed ended `NoWorker`, saying why.
fn check_no_worker(what: &str, r: Result<u64, TaskError>) {
    match r {
        Err(TaskError::NoWorker { reason, .. }) => assert!(
            reason.contains("refuses to run twice"),
            "{what}: the initializer's panic is missing: {reason:?}"
        ),
        other => panic!("{what}: want NoWorker, got {other:?}"),
    }
}

fn check_abort(what: &str, r: &Result<u64, TaskError>) {
    assert!(
        matches!(
            r,
            Err(TaskError::Crashed {
                signal: Some(libc::SIGABRT),
                ..
            })
        ),
        "{what}: want Crashed by SIGABRT, got {r:?}"
    );
}

fn replacement_init_fails<I>(mode: Mode, init: I)
where
    I: Fn() -> u64 + Copy + Send + Sync + 'static,
{
    // Tasks submitted one by one, waiting in the queue while the only worker crashes.
    let _ = std::fs::remove_file(scratch("init-once"));
    let pool = builder(mode, 1).init_worker(init).build().unwrap();
    assert_eq!(
        join_within(pool.submit_state(plus_state, 1), "a first task"),
        Ok(8)
    );
    let crash = pool.submit_state(abort_after, 100);
    let waiting: Vec<_> = (0..3).map(|n| pool.submit_state(plus_state, n)).collect();
    check_abort(
        "the crashing task",
        &join_within(crash, "the crashing task"),
    );
    for (n, t) in waiting.into_iter().enumerate() {
        check_no_worker(
            &format!("waiting task {n}"),
            join_within(t, "a waiting task"),
        );
    }
    finish(pool);
    // The rest of a job whose first task crashed its worker, resumed on a replacement
    // that cannot start.
    let _ = std::fs::remove_file(scratch("init-once"));
    let pool = builder(mode, 1)
        .chunk_size(4)
        .init_worker(init)
        .build()
        .unwrap();
    let out = pool.map_state(abort_on_zero, 0..4u64);
    assert_eq!(out.len(), 4);
    let mut out = out.into_iter();
    check_abort("map item 0", &out.next().unwrap());
    for (n, o) in (1..).zip(out) {
        check_no_worker(&format!("map item {n}"), o);
    }
    finish(pool);
}
