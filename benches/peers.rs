//! proctor next to its peers, side by side in one run: procspawn (processes), rayon (threads)
//! and the bare mechanisms underneath. `benches/python_multiprocessing.py` runs the same
//! scenarios with Python's `multiprocessing.Pool` and `ProcessPoolExecutor`.
//!
//! * `roundtrip`: one trivial task submitted and joined, in a loop: `Pool::processes(1)`,
//!   `Pool::threads(1)`, `procspawn::Pool::new(1)`, and a raw pipe ping-pong between two
//!   processes (the floor for a process round trip).
//! * `map_1m`: 1 000 000 trivial `u64` items, two workers: proctor `map` and `try_map` in both
//!   modes, and rayon's `into_par_iter().map().collect()` on a 2-thread pool.
//! * `bytes_64mib`: a 64 MiB `Vec<u8>` to one worker and back (the task returns it): proctor in
//!   both modes, procspawn, and as the floor two `to_vec()` copies into fresh buffers; also
//!   proctor processes with the bytes as a `serde_bytes::ByteBuf` (one byte string for serde,
//!   where a `Vec<u8>` is a sequence of single bytes).
//! * `cpu_64x1ms`: 64 items of about 1 ms of arithmetic each, two workers: proctor in both
//!   modes and rayon, next to the same 64 items run one after another on the calling thread.
//! * `start_first_result`: build a 2-worker pool, submit one trivial task, join it, drop the
//!   pool: proctor in both modes, `procspawn::Pool::new(2)`, rayon's `ThreadPoolBuilder`.
//!
//! Run it twice, pinned and unpinned (see `benches/README.md`):
//!
//! ```sh
//! taskset -c 0 cargo bench --bench peers
//! cargo bench --bench peers
//! ```

mod common;

use std::hint::black_box;
use std::time::Duration;

use common::{PipeEcho, trivial};
use criterion::{BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput};
use proctor::Pool;
use rayon::prelude::*;

/// Iterations of [`spin`]: about 1 ms on the 2-vCPU EPYC guest of `benches/README.md`
/// (0.97–1.05 ms there, from `cpu_64x1ms/serial_one_thread`).
const SPIN_ITERS: u64 = 1_000_000;

/// About 1 ms of pure arithmetic: a dependent chain of wrapping multiply-adds.
fn spin(seed: u64) -> u64 {
    let mut x = seed;
    for _ in 0..SPIN_ITERS {
        x = black_box(
            x.wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407),
        );
    }
    x
}

/// The task of `bytes_64mib`: hand the buffer back.
fn echo_bytes(buf: Vec<u8>) -> Vec<u8> {
    buf
}

fn echo_bytebuf(buf: serde_bytes::ByteBuf) -> serde_bytes::ByteBuf {
    buf
}

fn rayon_pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool")
}

fn modest(g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, samples: usize) {
    g.sample_size(samples);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(3));
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip");
    modest(&mut g, 20);

    let echo = PipeEcho::start();
    g.bench_function("raw_pipe_processes", |b| {
        b.iter(|| echo.round_trip(black_box(7)))
    });
    drop(echo);

    for (name, builder) in [
        ("proctor_processes", Pool::processes(1)),
        ("proctor_threads", Pool::threads(1)),
    ] {
        let pool = builder.build().expect("pool");
        g.bench_function(name, |b| {
            b.iter(|| pool.submit(trivial, black_box(7)).join())
        });
        pool.shutdown();
    }

    let pool = procspawn::Pool::new(1).expect("procspawn pool");
    g.bench_function("procspawn_processes", |b| {
        b.iter(|| {
            pool.spawn(black_box(7u64), trivial)
                .join()
                .expect("procspawn task")
        })
    });
    drop(pool);
    g.finish();
}

fn map_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("map_1m");
    modest(&mut g, 10);
    let n = 1_000_000u64;
    g.throughput(Throughput::Elements(n));

    common::bench_maps(
        &mut g,
        [
            ("proctor_processes", Pool::processes(2)),
            ("proctor_threads", Pool::threads(2)),
        ],
        n,
    );

    let pool = rayon_pool(2);
    g.bench_with_input(BenchmarkId::new("rayon_threads", n), &n, |b, &n| {
        b.iter(|| {
            let out: Vec<u64> = pool.install(|| (0..n).into_par_iter().map(trivial).collect());
            assert_eq!(out.len() as u64, n);
            out
        })
    });
    // The same output as proctor's `map`: an outcome per item, room for an error in each.
    g.bench_with_input(
        BenchmarkId::new("rayon_threads_outcomes", n),
        &n,
        |b, &n| {
            b.iter(|| {
                let out: Vec<Result<u64, proctor::TaskError>> =
                    pool.install(|| (0..n).into_par_iter().map(|x| Ok(trivial(x))).collect());
                assert_eq!(out.len() as u64, n);
                out
            })
        },
    );
    g.finish();
}

fn bytes_64mib(c: &mut Criterion) {
    let mut g = c.benchmark_group("bytes_64mib");
    modest(&mut g, 10);
    let len = 64 << 20;
    let buf: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    g.throughput(Throughput::Bytes(len as u64));

    // The floor: the bytes copied twice (there and back) into fresh buffers.
    g.bench_function("two_copies", |b| {
        b.iter_batched(
            || (),
            |()| {
                let there = black_box(&buf).to_vec();
                black_box(&there).to_vec()
            },
            BatchSize::PerIteration,
        )
    });

    // Each iteration moves a fresh clone in (made outside the timed part) and gets it back.
    for (name, builder) in [
        ("proctor_processes", Pool::processes(1)),
        ("proctor_threads", Pool::threads(1)),
    ] {
        let pool = builder.build().expect("pool");
        g.bench_function(name, |b| {
            b.iter_batched(
                || buf.clone(),
                |arg| {
                    let back = pool.submit(echo_bytes, arg).join().expect("echo task");
                    assert_eq!(back.len(), len);
                    back
                },
                BatchSize::PerIteration,
            )
        });
        pool.shutdown();
    }

    let pool = Pool::processes(1).build().expect("pool");
    g.bench_function("proctor_processes_serde_bytes", |b| {
        b.iter_batched(
            || serde_bytes::ByteBuf::from(buf.clone()),
            |arg| {
                let back = pool.submit(echo_bytebuf, arg).join().expect("echo task");
                assert_eq!(back.len(), len);
                back
            },
            BatchSize::PerIteration,
        )
    });
    pool.shutdown();

    let pool = procspawn::Pool::new(1).expect("procspawn pool");
    g.bench_function("procspawn_processes", |b| {
        b.iter_batched(
            || buf.clone(),
            |arg| {
                let back = pool.spawn(arg, echo_bytes).join().expect("procspawn task");
                assert_eq!(back.len(), len);
                back
            },
            BatchSize::PerIteration,
        )
    });
    drop(pool);
    g.finish();
}

fn cpu_64x1ms(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_64x1ms");
    modest(&mut g, 10);
    let items = 64u64;
    g.throughput(Throughput::Elements(items));
    let expected: Vec<u64> = (0..items).map(spin).collect();

    // The serial reference: two workers at best halve it.
    g.bench_function("serial_one_thread", |b| {
        b.iter(|| (0..black_box(items)).map(spin).collect::<Vec<u64>>())
    });

    for (name, builder) in [
        ("proctor_processes", Pool::processes(2)),
        ("proctor_threads", Pool::threads(2)),
    ] {
        let pool = builder.build().expect("pool");
        g.bench_function(name, |b| {
            b.iter(|| {
                let out = pool.try_map(spin, 0..items).expect("spin tasks succeed");
                assert_eq!(out, expected);
                out
            })
        });
        pool.shutdown();
    }

    let pool = rayon_pool(2);
    g.bench_function("rayon_threads", |b| {
        b.iter(|| {
            let out: Vec<u64> = pool.install(|| (0..items).into_par_iter().map(spin).collect());
            assert_eq!(out, expected);
            out
        })
    });
    g.finish();
}

fn start_first_result(c: &mut Criterion) {
    let mut g = c.benchmark_group("start_first_result");
    modest(&mut g, 20);

    g.bench_function("proctor_processes", |b| {
        b.iter(|| {
            let pool = Pool::processes(2).build().expect("pool");
            let r = pool.submit(trivial, black_box(7)).join();
            drop(pool);
            r
        })
    });
    g.bench_function("proctor_threads", |b| {
        b.iter(|| {
            let pool = Pool::threads(2).build().expect("pool");
            let r = pool.submit(trivial, black_box(7)).join();
            drop(pool);
            r
        })
    });
    g.bench_function("procspawn_processes", |b| {
        b.iter(|| {
            let pool = procspawn::Pool::new(2).expect("procspawn pool");
            let r = pool
                .spawn(black_box(7u64), trivial)
                .join()
                .expect("procspawn task");
            drop(pool);
            r
        })
    });
    g.bench_function("rayon_threads", |b| {
        b.iter(|| {
            let pool = rayon_pool(2);
            let r = pool.install(|| trivial(black_box(7)));
            drop(pool);
            r
        })
    });
    g.finish();
}

fn main() {
    // procspawn starts a worker by re-executing this binary: in such a worker `init()` runs
    // the worker and never returns, so it comes first, before proctor's fork server would be
    // started there for nothing. In the parent it only sets two flags and starts no thread,
    // so `proctor::init()` still runs while the process has one thread, as it must.
    procspawn::init();
    proctor::init();
    let mut c = Criterion::default().configure_from_args();
    roundtrip(&mut c);
    map_1m(&mut c);
    bytes_64mib(&mut c);
    cpu_64x1ms(&mut c);
    start_first_result(&mut c);
    c.final_summary();
}
