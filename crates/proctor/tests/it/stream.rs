//! Streams: outcomes in order and as they finish, a bounded window, early stop, faults.

use std::cell::Cell;
use std::io::Write;
use std::rc::Rc;
use std::time::Duration;

use proctor::{Mode, Pool, TaskError};

const MODES: [Mode; 2] = [Mode::Threads, Mode::Processes];

fn square(n: u64) -> u64 {
    n * n
}

/// An input that counts how many items were taken from it.
fn counted(items: impl Iterator<Item = u64>) -> (Rc<Cell<usize>>, impl Iterator<Item = u64>) {
    let taken = Rc::new(Cell::new(0));
    let t = Rc::clone(&taken);
    (taken, items.inspect(move |_| t.set(t.get() + 1)))
}

#[test]
fn a_stream_yields_every_outcome_in_input_order() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2).build().unwrap();
        let n = 50_000u64;
        let mut count = 0;
        for (i, outcome) in pool.stream(square, 0..n).window(1_000).enumerate() {
            assert_eq!(outcome, Ok(i as u64 * i as u64), "{mode}: item {i}");
            count += 1;
        }
        assert_eq!(count, n, "{mode}");
    }
}

#[test]
fn an_unordered_stream_yields_each_index_once() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2).chunk_size(7).build().unwrap();
        let n = 20_000usize;
        let mut seen = vec![0u8; n];
        for (i, outcome) in pool.stream_unordered(square, 0..n as u64).window(300) {
            assert_eq!(outcome, Ok(i as u64 * i as u64), "{mode}: item {i}");
            seen[i] += 1;
        }
        assert!(
            seen.iter().all(|&s| s == 1),
            "{mode}: an index missing or repeated"
        );
    }
}

#[test]
fn the_input_is_read_no_further_ahead_than_the_window() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2).build().unwrap();
        let window = 256;
        let (taken, input) = counted(0..1_000_000);
        let mut stream = pool.stream(square, input).window(window);
        for consumed in 1..=5_000usize {
            assert_eq!(
                stream.next(),
                Some(Ok(((consumed - 1) * (consumed - 1)) as u64))
            );
            assert!(
                taken.get() <= consumed + window,
                "{mode}: {} items taken after {consumed} consumed, window {window}",
                taken.get()
            );
        }
    }
}

#[test]
fn an_endless_input_can_be_stopped_early() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2).build().unwrap();
        let (taken, input) = counted(0..);
        let firsts: Vec<u64> = pool
            .stream(square, input)
            .window(64)
            .take(100)
            .map(Result::unwrap)
            .collect();
        assert_eq!(firsts, (0..100).map(square).collect::<Vec<_>>(), "{mode}");
        assert!(taken.get() <= 164, "{mode}: {} taken", taken.get());
        pool.shutdown();
    }
}

/// Sleeps 20 ms and then notes its item in the file `path`.
fn slow_note((path, i): (String, u64)) -> u64 {
    std::thread::sleep(Duration::from_millis(20));
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .unwrap();
    writeln!(f, "{i}").unwrap();
    i
}

#[test]
fn dropping_a_stream_cancels_the_items_not_yet_started() {
    for mode in MODES {
        let dir = tempfile_dir();
        let path = format!("{dir}/ran-{mode}");
        let pool = Pool::builder(mode, 1).chunk_size(1).build().unwrap();
        let items = (0..1_000u64).map(|i| (path.clone(), i));
        let mut stream = pool.stream(slow_note, items).window(16);
        assert_eq!(stream.next(), Some(Ok(0)));
        assert_eq!(stream.next(), Some(Ok(1)));
        drop(stream);
        pool.shutdown();
        let ran = std::fs::read_to_string(&path).unwrap().lines().count();
        // Two consumed, at most one running when the stream was dropped.
        assert!(
            ran <= 3,
            "{mode}: {ran} of 16 queued items ran after the drop"
        );
    }
}

fn tempfile_dir() -> String {
    let dir = std::env::temp_dir().join(format!(
        "proctor-stream-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}

fn abort_on_7s(n: u64) -> u64 {
    if n % 1000 == 7 {
        std::process::abort();
    }
    n + 1
}

fn panic_on_7s(n: u64) -> u64 {
    assert!(n % 1000 != 7, "seven");
    n + 1
}

#[test]
fn a_crash_in_a_stream_fails_its_item_alone() {
    let pool = Pool::processes(2).forward_stderr(false).build().unwrap();
    for (i, outcome) in pool
        .stream(abort_on_7s, 0..5_000u64)
        .window(500)
        .enumerate()
    {
        if i % 1000 == 7 {
            assert!(
                matches!(outcome, Err(TaskError::Crashed { .. })),
                "item {i}: {outcome:?}"
            );
        } else {
            assert_eq!(outcome, Ok(i as u64 + 1), "item {i}");
        }
    }
    for mode in MODES {
        let pool = Pool::builder(mode, 2)
            .forward_stderr(false)
            .build()
            .unwrap();
        let outcomes: Vec<_> = pool.stream_unordered(panic_on_7s, 0..3_000u64).collect();
        assert_eq!(outcomes.len(), 3_000, "{mode}");
        for (i, outcome) in outcomes {
            assert_eq!(
                outcome.is_err(),
                i % 1000 == 7,
                "{mode}: item {i}: {outcome:?}"
            );
        }
    }
}

#[test]
fn an_unordered_stream_does_not_wait_for_a_slow_item() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2)
            .task_timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let items = std::iter::once(400).chain(std::iter::repeat_n(0, 50));
        let order: Vec<usize> = pool
            .stream_unordered(crate::sleep_ms, items)
            .map(|(i, o)| {
                assert!(o.is_ok(), "{mode}: {o:?}");
                i
            })
            .collect();
        assert_eq!(order.len(), 51, "{mode}");
        assert_eq!(
            order.last(),
            Some(&0),
            "{mode}: the 400 ms item should finish last: {order:?}"
        );
    }
}

#[test]
fn a_stream_under_a_timeout_times_each_item() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2)
            .task_timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let outcomes: Vec<_> = pool.stream(crate::sleep_ms, [1, 2_000, 3, 4]).collect();
        assert_eq!(outcomes[0], Ok(1), "{mode}");
        assert!(
            matches!(outcomes[1], Err(TaskError::TimedOut { .. })),
            "{mode}: {:?}",
            outcomes[1]
        );
        assert_eq!(&outcomes[2..], &[Ok(3), Ok(4)], "{mode}");
    }
}

/// A small deterministic generator for the property-style cases.
fn lcg(seed: &mut u64) -> u64 {
    *seed = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *seed >> 33
}

#[test]
fn every_item_gets_one_outcome_in_order_under_the_defaults_and_random_windows() {
    let mut seed = 26;
    for mode in MODES {
        let pool = Pool::builder(mode, 2).build().unwrap();
        for case in 0..12 {
            let n = lcg(&mut seed) % 5_000;
            // Every third case keeps the default window.
            let window = (case % 3 != 0).then(|| 1 + lcg(&mut seed) as usize % 700);
            let ordered = case % 2 == 0;
            let what = format!("{mode}, case {case}: {n} items, window {window:?}");
            let stream = pool.stream(square, 0..n);
            let stream = match window {
                Some(w) => stream.window(w),
                None => stream,
            };
            if ordered {
                let got: Vec<_> = stream.collect();
                let want: Vec<_> = (0..n).map(|i| Ok(square(i))).collect();
                assert_eq!(got, want, "{what}");
            } else {
                let mut seen = vec![0u8; n as usize];
                for (i, o) in stream.unordered() {
                    assert_eq!(o, Ok(square(i as u64)), "{what}: item {i}");
                    seen[i] += 1;
                }
                assert!(seen.iter().all(|&s| s == 1), "{what}: one outcome each");
            }
        }
        let stats = pool.stats();
        assert_eq!(
            stats.submitted, stats.done,
            "{mode}: every submitted item done"
        );
    }
}

/// Waits (up to a minute) for the file `path` to exist when `i` is `slow`; every other item
/// sleeps 2 ms (long enough that the stream gives it a job of its own). Returns `i`.
fn wait_for_file((path, i, slow): (String, u64, u64)) -> u64 {
    if i == slow {
        let start = std::time::Instant::now();
        while !std::path::Path::new(&path).exists() && start.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(1));
        }
    } else {
        std::thread::sleep(Duration::from_millis(2));
    }
    i
}

#[test]
fn a_slow_item_does_not_hold_the_items_that_finished() {
    for mode in MODES {
        let dir = tempfile_dir();
        let go = format!("{dir}/go-{mode}");
        let _ = std::fs::remove_file(&go);
        let pool = Pool::builder(mode, 2).build().unwrap();
        let (n, slow) = (200u64, 37u64);
        let items = (0..n).map(|i| (go.clone(), i, slow));
        let mut stream = pool.stream_unordered(wait_for_file, items);
        let mut seen = Vec::new();
        // Every other item finishes while the slow one waits for the signal.
        while seen.len() < n as usize - 1 {
            match stream.next_timeout(Duration::from_secs(30)) {
                Ok(Some((i, o))) => {
                    assert_eq!(o, Ok(i as u64), "{mode}");
                    seen.push(i as u64);
                }
                other => panic!(
                    "{mode}: {} of {} fast items came while the slow one ran, then {other:?}",
                    seen.len(),
                    n - 1
                ),
            }
        }
        assert!(
            !seen.contains(&slow),
            "{mode}: the slow item came before its signal"
        );
        std::fs::write(&go, b"go").unwrap();
        let last = stream.next().map(|(i, o)| (i, o.unwrap()));
        assert_eq!(last, Some((slow as usize, slow)), "{mode}");
        assert!(stream.next().is_none(), "{mode}");
    }
}

/// Returns `i`, after waiting for the file `path` if `i` is `slow` (no sleep otherwise).
fn trivial_but_one((path, i, slow): (String, u64, u64)) -> u64 {
    if i == slow {
        return wait_for_file((path, i, slow));
    }
    i
}

#[test]
fn a_thread_job_hands_over_what_it_finished_before_a_slow_item() {
    // One worker, one job of 100 items: the 50 before the slow one reach the iterator while
    // it runs.
    let dir = tempfile_dir();
    let go = format!("{dir}/go-job");
    let _ = std::fs::remove_file(&go);
    let pool = Pool::threads(1).chunk_size(100).build().unwrap();
    let items = (0..100u64).map(|i| (go.clone(), i, 50));
    let mut stream = pool.stream(trivial_but_one, items);
    for i in 0..50 {
        assert_eq!(
            stream.next_timeout(Duration::from_secs(30)),
            Ok(Some(Ok(i))),
            "item {i} was held"
        );
    }
    std::fs::write(&go, b"go").unwrap();
    let rest: Vec<u64> = stream.map(Result::unwrap).collect();
    assert_eq!(rest, (50..100).collect::<Vec<_>>());
}

#[test]
fn next_timeout_returns_on_time_out_and_loses_nothing() {
    for mode in MODES {
        let dir = tempfile_dir();
        let go = format!("{dir}/go-timeout-{mode}");
        let _ = std::fs::remove_file(&go);
        let pool = Pool::builder(mode, 2).build().unwrap();
        // The first item waits for the signal: an ordered stream has nothing to give.
        let items = (0..20u64).map(|i| (go.clone(), i, 0));
        let mut stream = pool.stream(wait_for_file, items);
        assert_eq!(
            stream.next_timeout(Duration::from_millis(50)),
            Err(proctor::StreamTimeout),
            "{mode}"
        );
        assert_eq!(
            stream.next_timeout(Duration::ZERO),
            Err(proctor::StreamTimeout),
            "{mode}"
        );
        std::fs::write(&go, b"go").unwrap();
        let mut got = Vec::new();
        loop {
            match stream.next_timeout(Duration::from_secs(30)) {
                Ok(Some(o)) => got.push(o.unwrap()),
                Ok(None) => break,
                Err(e) => panic!("{mode}: {e} after {} outcomes", got.len()),
            }
        }
        assert_eq!(got, (0..20).collect::<Vec<_>>(), "{mode}");
    }
}

#[test]
fn a_cancel_from_another_thread_ends_the_stream_and_the_pool_goes_on() {
    for mode in MODES {
        let dir = tempfile_dir();
        // Never created: in process mode the running items block until their workers are
        // killed. (A thread cannot be stopped: there, items sleep 2 ms.)
        let never = format!("{dir}/never-{mode}");
        let blocks = mode == Mode::Processes;
        let pool = Pool::builder(mode, 2)
            .forward_stderr(false)
            .build()
            .unwrap();
        // (An item is slow when its third field is its own index.)
        let items = (0..).map(|i| (never.clone(), i, if blocks { i } else { u64::MAX }));
        let mut stream = pool.stream_unordered(wait_for_file, items);
        let canceller = stream.canceller();
        let (started, waiting) = std::sync::mpsc::channel();
        let stopper = std::thread::spawn(move || {
            waiting.recv().unwrap();
            canceller.cancel();
            canceller
        });
        if mode == Mode::Threads {
            // A few outcomes first.
            let firsts: Vec<_> = stream.by_ref().take(5).collect();
            assert_eq!(firsts.len(), 5, "{mode}");
        } else {
            assert!(stream.next_timeout(Duration::from_millis(20)).is_err());
        }
        started.send(()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (i, o) in stream.by_ref() {
            assert_eq!(
                o,
                Ok(i as u64),
                "{mode}: an outcome after the cancel is a real one"
            );
            assert!(seen.insert(i), "{mode}: item {i} twice");
        }
        let canceller = stopper.join().unwrap();
        assert!(canceller.is_cancelled(), "{mode}");
        assert!(stream.next().is_none(), "{mode}: nothing after the end");
        assert_eq!(stream.next_timeout(Duration::ZERO), Ok(None), "{mode}");
        drop(stream);
        let out = pool.try_map(square, 0..1_000u64).unwrap();
        assert_eq!(out, (0..1_000).map(square).collect::<Vec<_>>(), "{mode}");
        pool.shutdown();
    }
}

fn offset(by: &u64, n: u64) -> u64 {
    n + by
}

fn worker_base() -> u64 {
    1_000
}

fn from_state(base: &u64, n: u64) -> u64 {
    base + n
}

fn unserializable_context(_: &Unserializable, n: u64) -> u64 {
    n
}

/// A context whose `Serialize` fails.
#[derive(serde::Deserialize)]
struct Unserializable;

impl serde::Serialize for Unserializable {
    fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom("not today"))
    }
}

#[test]
fn stream_with_and_stream_state_give_each_item_its_context_or_state() {
    for mode in MODES {
        let pool = Pool::builder(mode, 2).build().unwrap();
        let got: Vec<u64> = pool
            .stream_with(&7u64, offset, 0..3_000u64)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (7..3_007).collect::<Vec<_>>(), "{mode}");
        let mut got: Vec<(usize, u64)> = pool
            .stream_with(&7u64, offset, 0..500u64)
            .unordered()
            .map(|(i, o)| (i, o.unwrap()))
            .collect();
        got.sort_unstable();
        assert_eq!(
            got,
            (0..500).map(|i| (i, i as u64 + 7)).collect::<Vec<_>>(),
            "{mode}"
        );
        let failed: Vec<_> = pool
            .stream_with(&Unserializable, unserializable_context, 0..3u64)
            .collect();
        assert_eq!(failed.len(), 3, "{mode}");
        for (i, o) in failed.into_iter().enumerate() {
            match o {
                Err(TaskError::Codec { message, index }) => {
                    assert_eq!(index, i as u64, "{mode}");
                    assert!(message.contains("not today"), "{mode}: {message}");
                }
                other => panic!("{mode}: {other:?}"),
            }
        }

        let pool = Pool::builder(mode, 2)
            .init_worker(worker_base)
            .build()
            .unwrap();
        let got: Vec<u64> = pool
            .stream_state(from_state, 0..2_000u64)
            .map(Result::unwrap)
            .collect();
        assert_eq!(got, (1_000..3_000).collect::<Vec<_>>(), "{mode}");
        let n = pool.stream_state(from_state, 0..100u64).unordered().count();
        assert_eq!(n, 100, "{mode}");
    }
}
