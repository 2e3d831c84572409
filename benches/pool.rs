//! proctor's pool against the bare mechanisms it is built on, side by side in one run.
//!
//! * `roundtrip`: one trivial task, submitted and joined, in a loop: process mode and thread
//!   mode, next to a raw pipe ping-pong between two processes (the floor for process mode)
//!   and a channel ping-pong between two threads (the floor for thread mode).
//! * `map_1m`: `map` and `try_map` over 1 000 000 trivial `u64` items with two workers, both
//!   modes.
//!
//! Run it twice, pinned and unpinned (see `benches/README.md`):
//!
//! ```sh
//! taskset -c 0 cargo bench --bench pool
//! cargo bench --bench pool
//! ```

mod common;

use std::hint::black_box;

use common::{PipeEcho, trivial};
use criterion::{Criterion, Throughput};
use proctor::Pool;

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    let echo = PipeEcho::start();
    g.bench_function("raw_pipe_processes", |b| {
        b.iter(|| echo.round_trip(black_box(7)))
    });
    drop(echo);

    let (req_tx, req_rx) = crossbeam_channel::bounded::<u64>(1);
    let (resp_tx, resp_rx) = crossbeam_channel::bounded::<u64>(1);
    let echo = std::thread::spawn(move || {
        while let Ok(v) = req_rx.recv() {
            let _ = resp_tx.send(v);
        }
    });
    g.bench_function("raw_channel_threads", |b| {
        b.iter(|| {
            req_tx.send(black_box(7)).expect("send");
            resp_rx.recv().expect("recv")
        })
    });
    drop(req_tx);
    echo.join().expect("echo thread");

    let pool = Pool::processes(1).build().expect("process pool");
    g.bench_function("proctor_processes", |b| {
        b.iter(|| pool.submit(trivial, black_box(7)).join())
    });
    pool.shutdown();
    let pool = Pool::threads(1).build().expect("thread pool");
    g.bench_function("proctor_threads", |b| {
        b.iter(|| pool.submit(trivial, black_box(7)).join())
    });
    pool.shutdown();
    g.finish();
}

fn map_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("map_1m");
    g.sample_size(10);
    let n = 1_000_000u64;
    g.throughput(Throughput::Elements(n));
    common::bench_maps(
        &mut g,
        [
            ("processes", Pool::processes(2)),
            ("threads", Pool::threads(2)),
        ],
        n,
    );
    g.finish();
}

fn main() {
    // Before criterion starts any thread.
    proctor::init();
    let mut c = Criterion::default().configure_from_args();
    roundtrip(&mut c);
    map_1m(&mut c);
    c.final_summary();
}
