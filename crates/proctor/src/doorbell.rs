//! A pool's doorbell: one futex word in a memfd that the parent and all of the pool's workers
//! map. Whoever has news for the driving thread — a worker that finished a job, a thread that
//! queued one, the fork server's reader on a worker's death, a pool shutting down — bumps the
//! word and wakes the driver if it announced that it sleeps. The driver so waits for every
//! kind of news with one `FUTEX_WAIT`, and a finished job costs the worker one atomic add (and
//! one `FUTEX_WAKE` only when the driver sleeps).
//!
//! No wake-up is lost: the driver reads the sequence number *before* it looks for news, and
//! `FUTEX_WAIT` returns at once if the word moved since (futex(2); Drepper, "Futexes Are
//! Tricky", 2011). `sleepers` is only an optimisation that spares the ringer a system call.

use std::os::fd::{OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::sys::SharedMapping;
use crate::sys::futex;

const LEN: usize = 4096;

/// The shared futex word and its sleeper count.
#[derive(Debug)]
pub(crate) struct Doorbell {
    map: SharedMapping,
    /// For a driver that sleeps in `poll` on remote workers' sockets instead of on the
    /// futex: an eventfd that a ring writes while such a driver is registered. (Only this
    /// process rings a remote pool's doorbell: its workers are on other hosts.)
    wake: std::sync::OnceLock<OwnedFd>,
    pollers: AtomicU32,
}

impl Doorbell {
    pub(crate) fn new() -> std::io::Result<Doorbell> {
        Ok(Doorbell {
            map: SharedMapping::create("proctor-doorbell", LEN, crate::sys::Seals::FixedSize)?,
            wake: std::sync::OnceLock::new(),
            pollers: AtomicU32::new(0),
        })
    }

    /// The doorbell of a memfd received from the parent (worker side).
    pub(crate) fn from_fd(fd: OwnedFd) -> std::io::Result<Doorbell> {
        Ok(Doorbell {
            map: SharedMapping::from_fd(fd)?,
            wake: std::sync::OnceLock::new(),
            pollers: AtomicU32::new(0),
        })
    }

    /// The memfd, to hand to a worker.
    pub(crate) fn fd(&self) -> RawFd {
        self.map.fd()
    }

    fn word(&self) -> &AtomicU32 {
        self.map.word32(0)
    }

    fn sleepers(&self) -> &AtomicU32 {
        self.map.word32(1)
    }

    /// The current sequence number: read it before looking for news, then [`Doorbell::wait`].
    pub(crate) fn seq(&self) -> u32 {
        self.word().load(Ordering::SeqCst)
    }

    /// There is news: bump the word, and wake the driver if it sleeps.
    pub(crate) fn ring(&self) {
        self.word().fetch_add(1, Ordering::SeqCst);
        if self.sleepers().load(Ordering::SeqCst) != 0 {
            futex::wake(self.word(), u32::MAX);
        }
        if self.pollers.load(Ordering::SeqCst) != 0 {
            if let Some(fd) = self.wake.get() {
                let _ = nix::unistd::write(fd, &1u64.to_ne_bytes());
            }
        }
    }

    /// Sleeps until the word moves past `seq`, one of `fds` is readable, or `timeout`.
    pub(crate) fn poll_wait(
        &self,
        seq: u32,
        fds: &[std::os::fd::BorrowedFd<'_>],
        timeout: Duration,
    ) {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        let wake = self.wake.get_or_init(|| {
            nix::sys::eventfd::EventFd::from_flags(
                nix::sys::eventfd::EfdFlags::EFD_CLOEXEC
                    | nix::sys::eventfd::EfdFlags::EFD_NONBLOCK,
            )
            .map(OwnedFd::from)
            .expect("an eventfd (Linux has had them since 2.6.27)")
        });
        // Registered before the word is read, as a futex sleeper is (see the module doc):
        // a ring after the read writes the eventfd, and poll returns at once.
        self.pollers.fetch_add(1, Ordering::SeqCst);
        if self.word().load(Ordering::SeqCst) == seq {
            let mut set: Vec<PollFd<'_>> = fds
                .iter()
                .map(|fd| PollFd::new(*fd, PollFlags::POLLIN))
                .collect();
            set.push(PollFd::new(
                std::os::fd::AsFd::as_fd(wake),
                PollFlags::POLLIN,
            ));
            let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
            let _ = nix::poll::poll(
                &mut set,
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
            );
        }
        self.pollers.fetch_sub(1, Ordering::SeqCst);
        let mut buf = [0u8; 8];
        let _ = nix::unistd::read(wake, &mut buf);
    }

    /// Sleeps until the word moves past `seq`, or `timeout`.
    pub(crate) fn wait(&self, seq: u32, timeout: Duration) {
        self.sleepers().fetch_add(1, Ordering::SeqCst);
        if self.word().load(Ordering::SeqCst) == seq {
            let _ = futex::wait(self.word(), seq, timeout);
        }
        self.sleepers().fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_wakes_a_waiter_and_an_old_seq_returns_at_once() {
        let bell = std::sync::Arc::new(Doorbell::new().unwrap());
        let seq = bell.seq();
        bell.ring();
        // The word moved: no sleep at all.
        let start = std::time::Instant::now();
        bell.wait(seq, Duration::from_secs(5));
        assert!(start.elapsed() < Duration::from_secs(4));
        let seq = bell.seq();
        let ringer = {
            let bell = std::sync::Arc::clone(&bell);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                bell.ring();
            })
        };
        bell.wait(seq, Duration::from_secs(5));
        assert_ne!(bell.seq(), seq);
        ringer.join().unwrap();
    }
}
