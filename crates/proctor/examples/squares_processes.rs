//! The classic example: square five numbers in five worker processes.
//!
//! Each square sleeps one second, so the five run in parallel and the whole map takes about
//! one second, not five.
//!
//! ```sh
//! cargo run --release -p proctor-pool --example squares_processes
//! ```

use std::time::{Duration, Instant};

fn slow_square(n: u64) -> u64 {
    std::thread::sleep(Duration::from_secs(1));
    n * n
}

fn main() -> Result<(), proctor::Error> {
    proctor::init(); // first line of main: starts the fork server before any thread exists
    let start = Instant::now();
    let pool = proctor::Pool::processes(5).build()?;
    let squares: Vec<u64> = pool.try_map(slow_square, vec![1, 2, 3, 4, 5])?;
    println!("Squares (Processes): {squares:?}");
    println!(
        "five 1-second tasks took {:.2} s in {} worker processes",
        start.elapsed().as_secs_f64(),
        pool.workers()
    );
    pool.shutdown();
    Ok(())
}
