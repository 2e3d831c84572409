//! What `benches/pool.rs` and `benches/peers.rs` share: the trivial task and the raw pipe
//! ping-pong that is the floor for a process-mode round trip.

use std::os::fd::{AsFd, OwnedFd};

use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, fork, pipe, read, write};

/// `map` and `try_map` of `trivial` over `0..n` on a pool built by each builder, one
/// benchmark each, named `{name}_map` and `{name}_try_map`.
pub(crate) fn bench_maps(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    pools: impl IntoIterator<Item = (&'static str, proctor::PoolBuilder)>,
    n: u64,
) {
    use criterion::BenchmarkId;
    for (name, builder) in pools {
        let pool = builder.build().expect("pool");
        g.bench_with_input(BenchmarkId::new(format!("{name}_map"), n), &n, |b, &n| {
            b.iter(|| {
                let out = pool.map(trivial, 0..n);
                assert_eq!(out.len() as u64, n);
                out
            })
        });
        // try_map keeps only the values (8 bytes each here, against 32 for a Result): the
        // same output as rayon's collect, and the closest match to Python's Pool.map, which
        // returns values or raises.
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
}

/// The trivial task of every round-trip and `map` scenario.
pub(crate) fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}

/// A child process that echoes 8-byte messages until its input closes.
pub(crate) struct PipeEcho {
    to_child: Option<OwnedFd>,
    from_child: OwnedFd,
    pid: nix::unistd::Pid,
}

impl PipeEcho {
    pub(crate) fn start() -> PipeEcho {
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

    /// One round trip: 8 bytes to the child and the same 8 bytes back.
    pub(crate) fn round_trip(&self, v: u64) -> u64 {
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
