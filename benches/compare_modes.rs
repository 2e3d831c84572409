//! `proctor::compare_modes` against the same measurement done by hand: a task of 100 µs
//! (a busy loop, so no timer slack), mapped on a thread pool and a process pool of two
//! workers, per-task time = wall time × workers ÷ tasks, median of 5 rounds after a warm-up
//! round, the same number of tasks per round as `compare_modes` chose. The target: each of
//! `compare_modes`' two figures within ±10 % of the hand-rolled one.
//!
//! The pair runs five times, the order swapped each time, so that a drift of the machine's
//! load does not fall on one side only; the target is judged on the medians of the runs.
//!
//! ```sh
//! cargo bench --bench compare_modes
//! taskset -c 0 cargo bench --bench compare_modes   # one CPU: one worker's worth
//! ```

use std::time::{Duration, Instant};

use proctor::{CompareModes, Mode, ModeComparison, Pool};

const WORKERS: usize = 2;
const ROUNDS: usize = 5;
/// Runs of each side, alternating which goes first.
const RUNS: usize = 5;

/// About 100 µs of work, spinning on the clock.
fn spin_100us(n: u64) -> u64 {
    let start = Instant::now();
    let mut x = n;
    while start.elapsed() < Duration::from_micros(100) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    }
    x
}

/// The hand-rolled figure: median per-task time of `ROUNDS` maps of `tasks` items.
fn by_hand(mode: Mode, tasks: usize) -> Duration {
    let pool = Pool::builder(mode, WORKERS).build().expect("a pool");
    let items = || (0..64u64).cycle().take(tasks).collect::<Vec<u64>>();
    let round = || {
        let items = items();
        let start = Instant::now();
        let out = pool.map(spin_100us, items);
        let wall = start.elapsed();
        assert!(out.iter().all(Result::is_ok), "a task failed");
        wall.as_secs_f64() * WORKERS as f64 / tasks as f64
    };
    round(); // warm-up
    let mut per_task: Vec<f64> = (0..ROUNDS).map(|_| round()).collect();
    per_task.sort_by(f64::total_cmp);
    pool.shutdown();
    Duration::from_secs_f64(per_task[ROUNDS / 2])
}

fn compared() -> ModeComparison {
    CompareModes::new(spin_100us, 0..64u64)
        .workers(WORKERS)
        .rounds(ROUNDS)
        .run()
        .expect("compare_modes")
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    proctor::init();
    println!(
        "{:<5} {:<10} {:>14} {:>12} {:>7}",
        "run", "mode", "compare_modes", "by hand", "ratio"
    );
    let modes = [Mode::Threads, Mode::Processes];
    // Per mode, each run's figure from each side, in µs.
    let mut ours: [Vec<f64>; 2] = Default::default();
    let mut hands: [Vec<f64>; 2] = Default::default();
    let mut tasks = 0;
    for run in 0..RUNS {
        let both = |tasks| modes.map(|m| by_hand(m, tasks));
        let (cmp, hand) = if run % 2 == 0 {
            let cmp = compared();
            tasks = cmp.tasks_per_round;
            let hand = both(tasks);
            (cmp, hand)
        } else {
            // The hand-rolled side first this time, with the previous run's round size.
            let hand = both(tasks);
            (compared(), hand)
        };
        for (i, mode) in modes.into_iter().enumerate() {
            let (a, b) = (us(cmp.timing(mode).per_task), us(hand[i]));
            ours[i].push(a);
            hands[i].push(b);
            println!(
                "{run:<5} {:<10} {a:>11.1} µs {b:>9.1} µs {:>7.3}",
                mode.to_string(),
                a / b
            );
        }
        println!(
            "      {} tasks a round (by hand: {tasks}); verdict: {cmp}",
            cmp.tasks_per_round
        );
    }
    println!("medians of the {RUNS} runs (target: compare_modes within ±10 % of by hand):");
    for (i, mode) in modes.into_iter().enumerate() {
        let (a, b) = (median(ours[i].clone()), median(hands[i].clone()));
        println!(
            "      {:<10} {a:>11.1} µs {b:>9.1} µs {:>7.3}",
            mode.to_string(),
            a / b
        );
    }
}
