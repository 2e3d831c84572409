//! The classic example with threads: five `std::thread` workers push squares into a shared
//! `Arc<Mutex<Vec<_>>>` (so the order depends on scheduling), then the same work through
//! `Pool::threads(5)`, which returns results in input order.
//!
//! ```sh
//! cargo run --release -p proctor-pool --example squares_threads
//! ```

use std::sync::{Arc, Mutex};
use std::time::Duration;

fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    n * n
}

fn main() -> Result<(), proctor::Error> {
    let shared = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = (1..=5u64)
        .map(|n| {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || {
                let sq = slow_square(n);
                shared
                    .lock()
                    .expect("no thread panics while holding the lock")
                    .push(sq);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("worker thread finished");
    }
    let raw = shared.lock().expect("all threads joined").clone();
    println!("Squares (std::thread + Arc<Mutex<Vec>>, completion order): {raw:?}");

    let pool = proctor::Pool::threads(5).build()?;
    let squares = pool.try_map(slow_square, vec![1, 2, 3, 4, 5])?;
    println!("Squares (Threads): {squares:?}");
    pool.shutdown();
    Ok(())
}
