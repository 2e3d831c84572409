//! Remote workers on loopback against what they are built on, side by side in one run.
//!
//! * `roundtrip`: one trivial task, submitted and joined, in a loop, on one remote worker
//!   (an agent started by the command launcher on this machine, over TLS, the default,
//!   and with `Remote::insecure_plaintext(true)`: sealed records), next to a raw TCP
//!   ping-pong between two processes (its floor), and a local process-mode worker beside
//!   its own floor, a raw pipe ping-pong.
//! * `map_1m`: `map` and `try_map` over 1 000 000 trivial `u64` items with two remote
//!   workers, next to two local worker processes.
//!
//! Run it twice, pinned and unpinned (see `benches/README.md`):
//!
//! ```sh
//! taskset -c 0 cargo bench --bench remote
//! cargo bench --bench remote
//! ```

mod common;

use std::hint::black_box;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use common::{PipeEcho, trivial};
use criterion::{Criterion, Throughput};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork};
use proctor::{Pool, PoolBuilder, Remote};

/// A child process that echoes 8-byte messages over a loopback TCP connection.
struct TcpEcho {
    conn: TcpStream,
    pid: nix::unistd::Pid,
}

impl TcpEcho {
    fn start() -> TcpEcho {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("address");
        // SAFETY: the child only connects, reads, writes and leaves with _exit; it touches
        // no lock another thread of this process could hold.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                drop(listener);
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.set_nodelay(true);
                    let mut buf = [0u8; 8];
                    while s.read_exact(&mut buf).is_ok() {
                        if s.write_all(&buf).is_err() {
                            break;
                        }
                    }
                }
                // SAFETY: leave without running the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            ForkResult::Parent { child } => {
                let (conn, _) = listener.accept().expect("accept");
                conn.set_nodelay(true).expect("nodelay");
                TcpEcho { conn, pid: child }
            }
        }
    }

    fn round_trip(&mut self, v: u64) -> u64 {
        self.conn.write_all(&v.to_le_bytes()).expect("write");
        let mut buf = [0u8; 8];
        self.conn.read_exact(&mut buf).expect("read");
        u64::from_le_bytes(buf)
    }
}

impl Drop for TcpEcho {
    fn drop(&mut self) {
        let _ = self.conn.shutdown(std::net::Shutdown::Both);
        let _ = waitpid(self.pid, None);
    }
}

/// Agents started on this machine by the command launcher, over loopback (with TLS when
/// `tls`).
fn remote(workers: usize, tls: bool) -> PoolBuilder {
    Pool::processes(workers).remote(
        Remote::command("exec {exe}", ["localhost"])
            .listen("127.0.0.1:0".parse().expect("addr"))
            .tls(tls),
    )
}

fn roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_roundtrip");
    let mut echo = TcpEcho::start();
    g.bench_function("raw_tcp_processes", |b| {
        b.iter(|| echo.round_trip(black_box(7)))
    });
    drop(echo);
    let pipe = PipeEcho::start();
    g.bench_function("raw_pipe_processes", |b| {
        b.iter(|| pipe.round_trip(black_box(7)))
    });
    drop(pipe);
    for (name, tls) in [
        ("proctor_remote_plaintext", false),
        ("proctor_remote_tls", true),
    ] {
        let pool = remote(1, tls).build().expect("remote pool");
        g.bench_function(name, |b| {
            b.iter(|| pool.submit(trivial, black_box(7)).join())
        });
        pool.shutdown();
    }
    let pool = Pool::processes(1).build().expect("process pool");
    g.bench_function("proctor_processes", |b| {
        b.iter(|| pool.submit(trivial, black_box(7)).join())
    });
    pool.shutdown();
    g.finish();
}

fn map_1m(c: &mut Criterion) {
    let mut g = c.benchmark_group("remote_map_1m");
    g.sample_size(10);
    let n = 1_000_000u64;
    g.throughput(Throughput::Elements(n));
    common::bench_maps(
        &mut g,
        [
            ("remote_tls", remote(2, true)),
            ("remote_plaintext", remote(2, false)),
            ("processes", Pool::processes(2)),
        ],
        n,
    );
    g.finish();
}

fn main() {
    // Before criterion starts any thread; in an agent started by the launcher, never
    // returns.
    proctor::init();
    let mut c = Criterion::default().configure_from_args();
    roundtrip(&mut c);
    map_1m(&mut c);
    c.final_summary();
}
