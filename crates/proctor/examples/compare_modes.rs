//! Threads or processes, for *your* function? `compare_modes` runs it in both modes on this
//! machine and answers in the lab's words: what processes cost per task here, throughput,
//! memory per worker, and what a crash does in each.
//!
//! Two tasks: one so small that the pool's own cost is all there is to see, and one that
//! does a millisecond of work per item, where the mode's cost disappears in the work. The
//! second is given an input that aborts (a bug in "native" code, say), to see what each
//! mode does with it.
//!
//! ```sh
//! cargo run --release -p proctor-pool --example compare_modes
//! ```

use std::collections::HashMap;

/// A tiny task: count the words of a short line.
fn count_words(line: String) -> usize {
    line.split_whitespace().count()
}

/// About a millisecond of work: the most frequent word of a document, made from a seed.
/// Seed 0 stands for a corrupt file that the "native" parser meets with `abort()`.
fn top_word(seed: u64) -> (String, usize) {
    if seed == 0 {
        std::process::abort();
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut x = seed;
    for _ in 0..12_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *counts.entry(format!("w{}", x % 500)).or_default() += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .unwrap_or_default()
}

fn main() -> Result<(), proctor::Error> {
    proctor::init(); // first line of main: process mode needs the fork server

    let lines: Vec<String> = (0..64)
        .map(|i| format!("line {i} of a log with a few words"))
        .collect();
    let tiny = proctor::compare_modes(count_words, lines)?;
    println!("count_words (a tiny task):\n{tiny:#}\n");

    let heavy = proctor::CompareModes::new(top_word, 1..=16u64)
        .crash_input(0)
        .run()?;
    println!("top_word (about a millisecond of work):\n{heavy:#}");
    Ok(())
}
