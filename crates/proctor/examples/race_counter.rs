//! The classic race: two threads each add 1 to a shared counter 100 000 times.
//!
//! * Unsynchronized read-modify-write (an atomic load, then a store: no undefined behaviour,
//!   but another thread's update can land between the two) loses updates.
//! * A `Mutex` or a single atomic `fetch_add` makes the increment indivisible: exactly 200000.
//! * Worker processes do not share ordinary memory: each increments its own copy of the
//!   counter, and the parent's stays at 0.
//!
//! ```sh
//! cargo run --release -p proctor-pool --example race_counter
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};

const PER_THREAD: u64 = 100_000;

/// Runs `body` on two threads that start together.
fn two_threads(body: impl Fn() + Sync) {
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                body();
            });
        }
    });
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// In a worker process: increments that process's own copy of `COUNTER`.
fn increment_in_worker(times: u64) -> u64 {
    for _ in 0..times {
        COUNTER.fetch_add(1, Ordering::Relaxed);
    }
    COUNTER.load(Ordering::Relaxed)
}

fn main() -> Result<(), proctor::Error> {
    proctor::init();

    let racy = AtomicU64::new(0);
    two_threads(|| {
        for _ in 0..PER_THREAD {
            let v = racy.load(Ordering::Relaxed);
            racy.store(v + 1, Ordering::Relaxed);
        }
    });
    let racy = racy.into_inner();
    println!(
        "unsynchronized load+store: {racy} (expected 200000; {} updates lost: another thread wrote between our load and our store)",
        2 * PER_THREAD - racy
    );

    let locked = Mutex::new(0u64);
    two_threads(|| {
        for _ in 0..PER_THREAD {
            *locked.lock().expect("no panics while locked") += 1;
        }
    });
    println!(
        "Mutex:                     {} (the lock makes load+add+store one step)",
        locked.into_inner().expect("threads joined")
    );

    let atomic = AtomicU64::new(0);
    two_threads(|| {
        for _ in 0..PER_THREAD {
            atomic.fetch_add(1, Ordering::Relaxed);
        }
    });
    println!(
        "fetch_add:                 {} (one indivisible instruction, no lock)",
        atomic.into_inner()
    );

    let pool = proctor::Pool::processes(2).build()?;
    let per_worker = pool.try_map(increment_in_worker, vec![PER_THREAD, PER_THREAD])?;
    println!(
        "processes:                 workers counted {per_worker:?}, parent's counter is {} (each process has its own copy of memory)",
        COUNTER.load(Ordering::Relaxed)
    );
    pool.shutdown();
    Ok(())
}
