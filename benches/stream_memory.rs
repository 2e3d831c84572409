//! Streams ten million trivial items through a pool, or maps them, and reports the time and
//! the caller's peak memory: a stream holds a window of items, a `map` all of them.
//!
//! ```sh
//! cargo bench --bench stream_memory -- stream processes
//! cargo bench --bench stream_memory -- map processes
//! ```
//!
//! Arguments: `stream`, `unordered` or `map`; `processes` or `threads`; optionally the item
//! count (default 10 000 000). Run each in its own process: peak memory is per process.

use std::time::Instant;

use proctor::{Mode, Pool};

fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}

/// The process's peak resident memory, in KiB (`VmHWM`).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    proctor::init();
    // `cargo bench` adds `--bench` to a bench's arguments; it is not one of ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let how = args.first().map_or("stream", String::as_str);
    let mode = match args.get(1).map_or("processes", String::as_str) {
        "processes" => Mode::Processes,
        "threads" => Mode::Threads,
        other => return Err(format!("mode must be processes or threads, not {other:?}").into()),
    };
    let n: u64 = match args.get(2) {
        Some(s) => s
            .parse()
            .map_err(|e| format!("bad item count {s:?}: {e}"))?,
        None => 10_000_000,
    };
    let pool = Pool::builder(mode, 2).build()?;
    let before = peak_kib();
    let start = Instant::now();
    let sum: u64 = match how {
        "stream" => pool.stream(trivial, 0..n).map(|o| o.unwrap_or(0)).sum(),
        "unordered" => pool
            .stream_unordered(trivial, 0..n)
            .map(|(_, o)| o.unwrap_or(0))
            .sum(),
        "map" => pool
            .map(trivial, 0..n)
            .into_iter()
            .map(|o| o.unwrap_or(0))
            .sum(),
        other => {
            return Err(format!("how must be stream, unordered or map, not {other:?}").into());
        }
    };
    let took = start.elapsed();
    assert_eq!(sum, n * (n + 1) / 2, "every item's outcome, once");
    let kib =
        |k: Option<u64>| k.map_or("?".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!(
        "{how} {mode} {n} items: {:.3} s ({:.1} ns/item), caller peak memory {} (before the call {})",
        took.as_secs_f64(),
        took.as_nanos() as f64 / n as f64,
        kib(peak_kib()),
        kib(before),
    );
    Ok(())
}
