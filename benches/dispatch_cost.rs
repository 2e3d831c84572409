//! What one task costs the pool's parent (the dispatcher), by API, in CPU time: the figure
//! that says how many workers one parent can keep busy (`docs/scale-out.md`).
//!
//! For each way of handing out trivial tasks it runs a fixed number of them on two worker
//! processes and divides the parent's CPU time (every thread of this process, not the
//! workers) by the task count, and reports the throughput next to it. When the parent is the
//! bottleneck, throughput × CPU per task comes near one CPU-second per second.
//!
//! ```sh
//! cargo bench --bench dispatch_cost
//! taskset -c 0 cargo bench --bench dispatch_cost
//! cargo bench --bench dispatch_cost -- --remote   # workers over TCP
//! ```

use std::time::Instant;

use proctor::Pool;

fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}

/// CPU time of every thread of this process so far, in seconds.
fn parent_cpu() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 * 1e-6;
    t(usage.user_time()) + t(usage.system_time())
}

/// Runs `work` (which hands out `tasks` tasks) three times and prints the best round's CPU
/// time per task and throughput.
fn row(name: &str, tasks: u64, mut work: impl FnMut()) {
    work(); // warm-up
    let mut best: Option<(f64, f64)> = None;
    for _ in 0..3 {
        let (cpu0, t0) = (parent_cpu(), Instant::now());
        work();
        let (cpu, wall) = (parent_cpu() - cpu0, t0.elapsed().as_secs_f64());
        let per_task = cpu / tasks as f64;
        if best.is_none_or(|(p, _)| per_task < p) {
            best = Some((per_task, tasks as f64 / wall));
        }
    }
    let (per_task, rate) = best.expect("three rounds");
    println!(
        "{name:<44} {:>10.1} ns  {:>12.0} tasks/s  {:>5.2} CPU-s/s",
        per_task * 1e9,
        rate,
        per_task * rate
    );
}

/// Tasks per second of one dispatcher that spends `c` seconds of CPU on each task, feeding
/// `w` workers that each spend `t` seconds per task: a closed loop simulated task by task
/// (every worker takes its next task as soon as the dispatcher has handed it out).
fn simulated_throughput(w: usize, c: f64, t: f64, tasks: usize) -> f64 {
    let mut dispatcher_free = 0.0f64;
    let mut worker_free = vec![0.0f64; w];
    let mut last = 0.0f64;
    for k in 0..tasks {
        let wk = k % w;
        // The dispatcher hands task k out once it is free and the worker has finished.
        let start = dispatcher_free.max(worker_free[wk]);
        dispatcher_free = start + c;
        worker_free[wk] = dispatcher_free + t;
        last = last.max(worker_free[wk]);
    }
    tasks as f64 / last
}

fn main() {
    if std::env::args().any(|a| a == "--simulate") {
        // The model of docs/scale-out.md: throughput = min(w / t, 1 / c), so one dispatcher
        // saturates at w* = t / c workers.
        let (c, t) = (2.4e-6, 1e-3);
        println!(
            "one dispatcher at {:.1} µs a task, tasks of {} ms:",
            c * 1e6,
            t * 1e3
        );
        for w in [100, 200, 400, 416, 800, 1600] {
            let sim = simulated_throughput(w, c, t, 200_000);
            let model = (w as f64 / t).min(1.0 / c);
            println!("  {w:>5} workers: {sim:>9.0} tasks/s simulated, {model:>9.0} by the model");
        }
        return;
    }
    proctor::init();
    // With --remote, the two workers are agents over loopback TCP (the command launcher):
    // what a remote job adds to the parent's cost.
    let remote = std::env::args().any(|a| a == "--remote");
    let mut builder = Pool::processes(2);
    if remote {
        builder = builder.remote(
            proctor::Remote::command("exec {exe}", ["localhost"])
                .listen("127.0.0.1:0".parse().expect("an address")),
        );
    }
    let pool = builder.build().expect("a process pool");
    println!(
        "{:<44} {:>13}  {:>18}  {:>11}",
        "API (2 worker processes, trivial tasks)", "parent CPU", "throughput", "parent busy"
    );
    row("submit().join(), one at a time", 20_000, || {
        for i in 0..20_000 {
            pool.submit(trivial, i).join().expect("a trivial task");
        }
    });
    row("1 000 submits, then 1 000 joins", 20_000, || {
        for round in 0..20u64 {
            let tasks: Vec<_> = (0..1_000)
                .map(|i| pool.submit(trivial, round + i))
                .collect();
            for t in tasks {
                t.join().expect("a trivial task");
            }
        }
    });
    row("map of 1 000 000 items (chunked)", 1_000_000, || {
        let out = pool.try_map(trivial, 0..1_000_000).expect("trivial tasks");
        assert_eq!(out.len(), 1_000_000);
    });
    row("stream of 1 000 000 items", 1_000_000, || {
        let n = pool
            .stream(trivial, 0..1_000_000u64)
            .filter(Result::is_ok)
            .count();
        assert_eq!(n, 1_000_000);
    });
    pool.shutdown();
}
