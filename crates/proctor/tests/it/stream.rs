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
