//! A live progress line drawn from [`proctor::Pool::stats`] while a long `map` runs.
//!
//! 3 000 tasks of about 2 ms each on 2 worker processes; one task in 100 panics and one in
//! 1 000 crashes its worker (which the pool replaces). A second thread redraws one line
//! every 100 ms with what the pool has done, then the final counts are printed.
//!
//! ```sh
//! cargo run --release -p proctor-pool --example progress            # worker processes
//! cargo run --release -p proctor-pool --example progress -- threads # worker threads (no crashes)
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use proctor::{Mode, Pool, PoolStats};

/// Works for about 2 ms; panics on every 100th item and, in a worker process, aborts on
/// every 1 000th.
fn work(n: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(2));
    if n % 1000 == 999 && std::env::var_os("PROGRESS_NO_CRASH").is_none() {
        std::process::abort();
    }
    assert!(n % 100 != 50, "item {n} is unlucky");
    n
}

/// One progress line: a bar, the counts, the failures by kind, the workers.
fn line(s: &PoolStats, total: u64, elapsed: Duration) -> String {
    const WIDTH: u64 = 30;
    let filled = (s.done * WIDTH / total.max(1)) as usize;
    let bar = format!(
        "{}{}",
        "#".repeat(filled),
        ".".repeat(WIDTH as usize - filled)
    );
    format!(
        "[{bar}] {done}/{total} {rate:>5.0}/s | running {running} queued {queued} | \
         failed {failed} (panicked {panicked}, crashed {crashed}) | \
         workers busy {busy}, replaced {replaced}",
        done = s.done,
        rate = s.done as f64 / elapsed.as_secs_f64().max(1e-3),
        running = s.running,
        queued = s.queued,
        failed = s.failed.total(),
        panicked = s.failed.panicked,
        crashed = s.failed.crashed,
        busy = s.busy_workers,
        replaced = s.workers_replaced,
    )
}

fn main() -> Result<(), proctor::Error> {
    proctor::init(); // first line of main: starts the fork server before any thread exists
    let mode = match std::env::args().nth(1).as_deref() {
        Some("threads") => {
            // A thread cannot crash alone: aborting would end the whole program.
            // SAFETY: no other thread exists yet that could read the environment.
            unsafe { std::env::set_var("PROGRESS_NO_CRASH", "1") };
            Mode::Threads
        }
        _ => Mode::Processes,
    };
    let pool = Pool::builder(mode, 2)
        // Crashes' backtraces would bury the progress line.
        .forward_stderr(false)
        // A job's outcomes come back together: small jobs make the line move smoothly.
        .chunk_size(16)
        .build()?;
    let total = 3_000u64;
    let start = Instant::now();
    let outcomes = std::thread::scope(|scope| {
        let job = scope.spawn(|| pool.map(work, 0..total));
        let mut out = std::io::stdout();
        while !job.is_finished() {
            let _ = write!(out, "\r{}", line(&pool.stats(), total, start.elapsed()));
            let _ = out.flush();
            std::thread::sleep(Duration::from_millis(100));
        }
        job.join().expect("the map returns")
    });
    let s = pool.stats();
    println!("\r{}", line(&s, total, start.elapsed()));
    let failed = outcomes.iter().filter(|o| o.is_err()).count() as u64;
    println!(
        "{mode}: {} outcomes, {failed} failed, in {:.2} s; {s:#?}",
        outcomes.len(),
        start.elapsed().as_secs_f64()
    );
    assert_eq!((s.done, s.failed.total()), (total, failed));
    pool.shutdown();
    Ok(())
}
