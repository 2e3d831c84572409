//! Thread mode: worker recycling keeps its bounds, and a fault soak over many items.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use proctor::{Pool, TaskError};

use crate::sleep_ms;

/// How many memory mappings the process has (one line each in `/proc/self/maps`).
fn mappings() -> usize {
    std::fs::read_to_string("/proc/self/maps")
        .expect("reading /proc/self/maps")
        .lines()
        .count()
}

fn triple(n: u64) -> u64 {
    n * 3
}

/// Every worker thread a pool retires must be joined or detached. A finished thread whose
/// handle is kept holds on to its stack (a mapping of about 2 MiB, plus its guard page), so
/// thousands of retirements would leave thousands of mappings behind; with the threads
/// released, the count stays where it was, give or take what tests running alongside map.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn retired_worker_threads_are_released() {
    const ITEMS: u64 = 10_000;
    let pool = Pool::threads(2).max_tasks_per_worker(1).build().unwrap();
    // One warm-up round, so thread-stack caching has reached its steady state.
    assert_eq!(pool.try_map(triple, 0..100).unwrap().len(), 100);
    let before = mappings();
    let out = pool.try_map(triple, 0..ITEMS).unwrap();
    let after = mappings();
    assert_eq!(out, (0..ITEMS).map(triple).collect::<Vec<_>>());
    // Ten thousand kept stacks would add about twenty thousand mappings.
    assert!(
        after < before + 2_000,
        "{ITEMS} retirements grew the mappings from {before} to {after}"
    );
    pool.shutdown();
}

fn thread_name(_: u64) -> String {
    std::thread::current().name().unwrap_or("").to_string()
}

/// `max_tasks_per_worker` is a ceiling, also when `map` hands out chunks that do not divide
/// it: a worker never runs more tasks than that (each worker thread has its own name).
#[test]
fn no_worker_thread_runs_more_than_max_tasks() {
    const ITEMS: u64 = 10_000;
    const MAX: usize = 7;
    let builders = [
        (
            "chunk 5",
            Pool::threads(3).max_tasks_per_worker(MAX).chunk_size(5),
        ),
        (
            "chunk 4",
            Pool::threads(2).max_tasks_per_worker(MAX).chunk_size(4),
        ),
        (
            "chunk 7",
            Pool::threads(2).max_tasks_per_worker(MAX).chunk_size(7),
        ),
        (
            "automatic chunks",
            Pool::threads(3).max_tasks_per_worker(MAX),
        ),
        (
            "with a timeout",
            Pool::threads(2)
                .max_tasks_per_worker(MAX)
                .task_timeout(Duration::from_secs(30)),
        ),
    ];
    for (label, builder) in builders {
        let pool = builder.build().unwrap();
        let names = pool.try_map(thread_name, 0..ITEMS).unwrap();
        assert_eq!(names.len(), ITEMS as usize, "{label}");
        let mut per_thread: HashMap<String, usize> = HashMap::new();
        for name in names {
            assert!(name.starts_with("proctor-worker-"), "{label}: {name:?}");
            *per_thread.entry(name).or_default() += 1;
        }
        let busiest = per_thread.iter().max_by_key(|(_, n)| **n);
        assert!(
            per_thread.values().all(|&n| n <= MAX),
            "{label}: a worker ran more than {MAX} tasks: {busiest:?}"
        );
        // Retirement hands work on; it does not retire workers early either.
        assert!(
            per_thread.len() <= ITEMS as usize / (MAX / 2) + 3,
            "{label}: {} workers for {ITEMS} tasks",
            per_thread.len()
        );
        pool.shutdown();
    }
}

/// What the soak task does with an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Fine,
    /// About 1 % of the items.
    Panic,
    /// About 0.1 % of the items: sleeps for [`SLEEP`], past [`TIMEOUT`].
    Sleep,
}

const TIMEOUT: Duration = Duration::from_millis(200);
const SLEEP: Duration = Duration::from_millis(400);

/// A fixed pseudo-random choice per item (SplitMix64's finalizer), so a failure can be rerun.
fn fault_of(n: u64) -> Fault {
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    match z % 1000 {
        0..10 => Fault::Panic,
        10 => Fault::Sleep,
        _ => Fault::Fine,
    }
}

fn soak_task(n: u64) -> u64 {
    match fault_of(n) {
        Fault::Fine => 2 * n,
        Fault::Panic => panic!("item {n} is faulty"),
        Fault::Sleep => {
            std::thread::sleep(SLEEP);
            2 * n
        }
    }
}

/// One pool configuration of the soak.
#[derive(Debug, Clone, Copy)]
struct Setup {
    timeout: bool,
    chunk: Option<usize>,
    max_tasks: Option<usize>,
}

/// What one configuration's map gave.
#[derive(Debug, Default)]
struct Tally {
    ok: usize,
    panicked: usize,
    timed_out: usize,
    /// Items that do not sleep but timed out all the same (a loaded machine).
    slow: usize,
    /// Of those, the ones that would have panicked.
    slow_panics: usize,
    wall: Duration,
}

/// Maps `items` items in `setup` and checks every outcome against its item's fault.
fn soak_one(setup: Setup, workers: usize, items: u64) -> Tally {
    let mut b = Pool::threads(workers);
    if setup.timeout {
        b = b.task_timeout(TIMEOUT);
    }
    if let Some(c) = setup.chunk {
        b = b.chunk_size(c);
    }
    if let Some(m) = setup.max_tasks {
        b = b.max_tasks_per_worker(m);
    }
    let pool = b.build().unwrap();
    let start = Instant::now();
    let out = pool.map(soak_task, 0..items);
    let mut tally = Tally {
        wall: start.elapsed(),
        ..Tally::default()
    };
    assert_eq!(out.len(), items as usize, "{setup:?}");
    // Task ids are handed out in input order, so every error's id less its index is the same.
    for (n, outcome) in (0..items).zip(&out) {
        let fault = fault_of(n);
        match (fault, outcome) {
            (Fault::Fine, Ok(v)) => {
                assert_eq!(*v, 2 * n, "{setup:?}: item {n}");
                tally.ok += 1;
            }
            (Fault::Sleep, Ok(v)) => {
                assert_eq!(*v, 2 * n, "{setup:?}: item {n}");
                // A sleeper overruns the timeout: it must never come back Ok then, joined
                // in time or not.
                assert!(
                    !setup.timeout,
                    "{setup:?}: item {n} overran yet returned Ok"
                );
                tally.ok += 1;
            }
            (
                Fault::Panic,
                Err(
                    e @ TaskError::Panicked {
                        message, location, ..
                    },
                ),
            ) => {
                assert_eq!(*message, format!("item {n} is faulty"), "{setup:?}");
                assert!(
                    location
                        .as_deref()
                        .is_some_and(|l| l.contains("thread_mode.rs")),
                    "{setup:?}: {location:?}"
                );
                // The error names the item's index in the call (here the item itself).
                assert_eq!(e.index(), n, "{setup:?}: item {n}: {e}");
                tally.panicked += 1;
            }
            (Fault::Sleep, Err(e @ TaskError::TimedOut { after, .. })) if setup.timeout => {
                assert!(*after >= TIMEOUT, "{setup:?}: item {n}: {e}");
                // The error names the item's index in the call (here the item itself).
                assert_eq!(e.index(), n, "{setup:?}: item {n}: {e}");
                tally.timed_out += 1;
            }
            // A task that does not sleep can still run past the limit when the machine is
            // loaded (the full soaks, run at once): an honest outcome, counted apart.
            (fault, Err(e @ TaskError::TimedOut { after, .. })) if setup.timeout => {
                assert!(*after >= TIMEOUT, "{setup:?}: item {n}: {e}");
                tally.slow += 1;
                tally.slow_panics += usize::from(fault == Fault::Panic);
            }
            (fault, outcome) => panic!("{setup:?}: item {n} ({fault:?}) gave {outcome:?}"),
        }
    }
    if setup.timeout {
        assert!(
            tally.timed_out > 0,
            "{setup:?}: no task timed out: {tally:?}"
        );
    }
    pool.shutdown();
    tally
}

/// Runs every configuration at once (each waits mostly on sleeping or timed-out items, so
/// together they take little longer than the slowest) and prints what each gave.
fn soak(workers: usize, items: u64) {
    let mut setups = Vec::new();
    for timeout in [false, true] {
        for chunk in [Some(1), None] {
            for max_tasks in [None, Some(50)] {
                setups.push(Setup {
                    timeout,
                    chunk,
                    max_tasks,
                });
            }
        }
    }
    let expected_panics = (0..items).filter(|&n| fault_of(n) == Fault::Panic).count();
    let sleepers = (0..items).filter(|&n| fault_of(n) == Fault::Sleep).count();
    let start = Instant::now();
    let tallies: Vec<(Setup, Tally)> = std::thread::scope(|s| {
        let runs: Vec<_> = setups
            .iter()
            .map(|&setup| (setup, s.spawn(move || soak_one(setup, workers, items))))
            .collect();
        runs.into_iter()
            .map(|(setup, run)| (setup, run.join().expect("a soak run failed")))
            .collect()
    });
    eprintln!(
        "soak: {items} items, {expected_panics} panicking, {sleepers} sleeping, {workers} \
         workers, {:?} in all",
        start.elapsed()
    );
    for (setup, t) in &tallies {
        eprintln!(
            "  {setup:?}: {} ok, {} panicked, {} timed out, {:?}",
            t.ok, t.panicked, t.timed_out, t.wall
        );
        // A panicking item descheduled past the limit on a loaded machine times out instead.
        assert_eq!(t.panicked + t.slow_panics, expected_panics, "{setup:?}");
        assert_eq!(
            t.ok + t.panicked + t.timed_out + t.slow,
            items as usize,
            "{setup:?}"
        );
    }
}

/// Items for the CI-sized soak: `PROCTOR_SOAK_TASKS`, or 20 000.
fn soak_items() -> u64 {
    match std::env::var("PROCTOR_SOAK_TASKS") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("PROCTOR_SOAK_TASKS is not a number: {s:?}")),
        Err(_) => 20_000,
    }
}

#[test]
fn fault_soak() {
    soak(4, soak_items());
}

/// The full-size soak: a million items (1 000 sleepers, so it takes a while).
#[test]
#[ignore = "a million items take minutes; run it with --ignored"]
fn fault_soak_full_size() {
    soak(16, 1_000_000);
}

#[test]
fn a_timeout_replaces_a_stuck_thread_while_nobody_waits_for_it() {
    // One worker, stuck for a minute: the queued task behind it runs only if the watchdog
    // replaces the stuck thread on time, since nobody joins the stuck task.
    let pool = Pool::threads(1)
        .task_timeout(std::time::Duration::from_millis(100))
        .build()
        .unwrap();
    let stuck = pool.submit(sleep_ms, 60_000);
    let start = std::time::Instant::now();
    assert_eq!(pool.submit(sleep_ms, 1).join(), Ok(1));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(30),
        "the queued task waited for the stuck one"
    );
    assert!(stuck.join().unwrap_err().is_timed_out());
}

fn fails_on_marked(n: u64) -> u64 {
    assert!(n % 1_000 != 999, "item {n} is marked");
    n
}

/// A plain thread-mode `map` writes its outcomes in place on work-stealing threads; every
/// item keeps its own outcome, and `try_map` still names the failure with the lowest index,
/// wherever the threads' shares happen to split.
#[test]
fn thread_map_outcomes_and_the_first_failure_survive_work_stealing() {
    let pool = Pool::threads(2).build().unwrap();
    for first_marked in [999u64, 50_999, 99_999] {
        // Marked items (n % 1000 == 999) from `first_marked` on.
        let items: Vec<u64> = (0..100_000)
            .map(|n| {
                if n % 1_000 == 999 && n < first_marked {
                    n + 1
                } else {
                    n
                }
            })
            .collect();
        let e = pool.try_map(fails_on_marked, items.clone()).unwrap_err();
        match e.task_error() {
            Some(TaskError::Panicked { message, .. }) => {
                assert_eq!(message, &format!("item {first_marked} is marked"))
            }
            other => panic!("{other:?}"),
        }
        // The lowest failure, named by its index in the call.
        assert_eq!(e.task_error().map(TaskError::index), Some(first_marked));
        let out = pool.map(fails_on_marked, items.clone());
        assert_eq!(out.len(), items.len());
        for (i, (o, n)) in out.iter().zip(&items).enumerate() {
            match o {
                Ok(v) => assert_eq!(v, n),
                Err(TaskError::Panicked { index, .. }) => {
                    assert_eq!((n % 1_000, *index), (999, i as u64))
                }
                Err(e) => panic!("item {i}: {e:?}"),
            }
        }
    }
    let values: Vec<u64> = (0..100_000).filter(|n| n % 1_000 != 999).collect();
    assert_eq!(
        pool.try_map(fails_on_marked, values.clone()).unwrap(),
        values
    );
}

/// However `map` runs its items, it runs them on at most `workers` threads at once.
#[test]
fn thread_map_runs_on_as_many_threads_as_the_pool_has_workers() {
    for workers in [1, 3] {
        let pool = Pool::threads(workers).build().unwrap();
        let names = pool.try_map(thread_name, 0..20_000).unwrap();
        let distinct: std::collections::HashSet<_> = names.into_iter().collect();
        assert!(
            !distinct.is_empty() && distinct.len() <= workers,
            "{workers} workers ran on {distinct:?}"
        );
    }
}
