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

use std::hint::black_box;
use std::os::fd::{AsFd, OwnedFd};

use criterion::{BenchmarkId, Criterion, Throughput};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe, read, write};
use proctor::Pool;

fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}

/// A child process that echoes 8-byte messages until its input closes.
struct PipeEcho {
    to_child: Option<OwnedFd>,
    from_child: OwnedFd,
    pid: nix::unistd::Pid,
}

impl PipeEcho {
    fn start() -> PipeEcho {
        let (req_r, req_w) = pipe().expect("pipe");
        let (resp_r, resp_w) = pipe().expect("pipe");
        // SAFETY: the child only calls read/write on its pipes and _exit, all
        // async-signal-safe, so forking this multi-threaded process is sound.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(req_w);
                drop(resp_r);
                let mut buf = [0u8; 8];
                while let Ok(8) = read(&req_r, &mut buf) {
                    if write(&resp_w, &buf) != Ok(8) {
                        break;
                    }
                }
                // SAFETY: leave without running the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => PipeEcho {
                to_child: Some(req_w),
                from_child: resp_r,
                pid: child,
            },
        }
    }

    fn round_trip(&self, v: u64) -> u64 {
        let to = self.to_child.as_ref().expect("open until drop");
        write(to.as_fd(), &v.to_le_bytes()).expect("write");
        let mut buf = [0u8; 8];
        assert_eq!(read(&self.from_child, &mut buf).expect("read"), 8);
        u64::from_le_bytes(buf)
    }
}

impl Drop for PipeEcho {
    fn drop(&mut self) {
        self.to_child = None;
        let _ = waitpid(self.pid, None);
    }
}

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
    for (name, builder) in [
        ("processes", Pool::processes(2)),
        ("threads", Pool::threads(2)),
    ] {
        let pool = builder.build().expect("pool");
        g.bench_with_input(BenchmarkId::new(format!("{name}_map"), n), &n, |b, &n| {
            b.iter(|| {
                let out = pool.map(trivial, 0..n);
                assert_eq!(out.len() as u64, n);
                out
            })
        });
        // try_map keeps only the values (8 bytes each here, against 32 for a Result): the
        // closest match to Python's Pool.map, which returns values or raises.
        g.bench_with_input(
            BenchmarkId::new(format!("{name}_try_map"), n),
            &n,
            |b, &n| {
                b.iter(|| {
                    let out = pool.try_map(trivial, 0..n).expect("trivial tasks succeed");
                    assert_eq!(out.len() as u64, n);
                    out
                })
            },
        );
        pool.shutdown();
    }
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
