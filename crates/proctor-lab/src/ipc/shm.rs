//! A shared-memory ring per direction, with futex wake-ups.
//!
//! # Memory
//!
//! One anonymous `MAP_SHARED` mapping ([`SharedBytes`]), created before `fork` so that both
//! processes map the same pages: no name in `/dev/shm`, nothing outlives the processes. It holds a control page, then two byte rings of `cap`
//! bytes each: a power of two, `HEADER_LEN + max_message` rounded up, between 4 KiB and
//! 256 KiB (4× the default pipe capacity; see `MAX_RING` for why not larger). Pages are only
//! allocated when first touched, so a small message never pays for the whole ring. Ring 0 carries A→B, ring 1 carries B→A. Each ring is
//! single-producer/single-consumer: the producer alone writes `tail`, the consumer alone
//! writes `head`; both are ever-increasing byte positions, so `tail - head` is the fill level
//! and the slot is `pos & (cap - 1)`. Publishing is a release store of `tail` (or `head`),
//! observed with an acquire load, as in Lamport's SPSC queue and crossbeam-channel's
//! `src/flavors/array.rs`. `head` and `tail` live on separate cache lines.
//!
//! # Protocol
//!
//! The ring carries a byte stream: each message is a 4-byte little-endian length, then the
//! payload. Both sides copy in pieces of at most `CHUNK` (32 KiB) and publish their position
//! after each, so a long message is **pipelined**: the consumer copies out the first piece
//! while the producer copies in the next, and a message larger than the ring streams through
//! it. The consumer validates the length against `max_message` before copying anything.
//!
//! # Wait strategy: spin while the peer makes progress, yield, then sleep on a futex
//!
//! 1. **Spin** with [`std::hint::spin_loop`] only if the peer last ran on another CPU (each
//!    side records `sched_getcpu()` in the control page), and only while it is working: every
//!    64 iterations the waiter reads the peer's positions (its `head` on our ring, its `tail`
//!    on the ring we read) and gives up after [`SPIN`] without any change, or at once when the
//!    peer announced that it sleeps (its flag below is 1: it waits for us, nothing will come).
//!    So a 1 MiB message, whose 32 KiB pieces move the positions every few µs, never puts a
//!    side to sleep however long it takes, and [`SPIN`] (50 µs) covers a cross-CPU wake-up:
//!    a side woken by `FUTEX_WAKE` finds its peer still spinning, so one sleep does not start a
//!    chain of sleeps, each paying a wake-up. Spinning as long as blocking costs is the
//!    2-competitive rule of Karlin et al., "Empirical studies of competitive spinning for a
//!    shared-memory multiprocessor" (SOSP 1991); the progress test is the idea of Linux's
//!    adaptive mutex spinning (spin while the lock owner runs).
//! 2. **Yield** (`sched_yield`) a few times when the peer last ran on our CPU: it cannot make
//!    progress while we spin, and yielding hands it the CPU. Sleeping instead, so that the
//!    wake-up might place one side on the other CPU, was measured and rejected: the kernel woke
//!    the sleeper on the same CPU almost every time, and a futex round trip there costs about
//!    twice the yield's.
//! 3. **Sleep** with `FUTEX_WAIT` on a per-ring "sleeping" word, following the waiter-flag
//!    protocol of Drepper, "Futexes Are Tricky" (2011): store 1 in the word (SeqCst), re-check
//!    the ring, then `FUTEX_WAIT(word, 1)`. The other side publishes its position (SeqCst),
//!    then reads the word; only if it is 1 does it swap it to 0 and call `FUTEX_WAKE`. Under a
//!    single total order either the sleeper sees the new position or the publisher sees the
//!    flag, so no wake-up is lost, and **the fast path makes no system call**. Futexes are not
//!    `FUTEX_PRIVATE_FLAG` because the word is shared across processes (futex(2)).
//!
//! The CPU cost: a waiter whose peer runs elsewhere burns up to [`SPIN`] of CPU per wait
//! beyond the peer's last progress before it sleeps.
//!
//! [`Transport::futex_wakes`] counts the `FUTEX_WAKE` calls made by `send` and `recv` (an
//! atomic counter in the control page, so either process reads the pair's total).
//!
//! # Peer gone
//!
//! A crashed process cannot clear a flag, so liveness is a unix socket pair that never carries
//! data: each endpoint holds one end, and when the peer's end is closed (drop or process
//! exit) ours polls readable. A waiter checks it before each sleep and sleeps at most
//! [`SLEEP_SLICE`], so a crashed peer is noticed within that time; a dropped endpoint also
//! wakes the peer's futexes so an orderly drop is noticed at once. Bytes published before the
//! peer left are still delivered.

use std::mem::size_of;
use std::num::NonZeroUsize;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::{Error, HEADER_LEN, Transport, TransportKind, check_send, decode_header, set_len};
use crate::shared_mem::{SharedBytes, futex_wait_for, futex_wake};

const KIND: TransportKind = TransportKind::Shm;

/// Longest busy-wait without progress from the peer, when the peer runs on another CPU and is
/// not asleep. About the cost of one cross-CPU wake-up (tens of µs in a VM): spinning as long
/// as blocking would cost is the classic 2-competitive rule, and it lets a side woken by a
/// `FUTEX_WAKE` find its peer still spinning instead of asleep in turn.
pub const SPIN: Duration = Duration::from_micros(50);
/// `sched_yield` calls before sleeping, when the peer last ran on our CPU.
const YIELDS: u32 = 4;
/// Longest single futex sleep: the bound on noticing a crashed peer.
pub const SLEEP_SLICE: Duration = Duration::from_millis(50);

const MIN_RING: usize = 4096;
/// The largest ring per direction: 4× the default pipe capacity. Measured against 64 KiB and
/// 1–2 MiB rings for 1 MiB messages: as fast across CPUs as the larger rings, and faster than
/// them on one CPU, where ring, source and destination still fit in the L2 cache together.
const MAX_RING: usize = 256 * 1024;
/// Largest piece copied before publishing it: the peer starts on the first piece of a long
/// message while the rest is still being copied.
const CHUNK: usize = 32 * 1024;
/// Spin iterations between two looks at the clock and the peer's state.
const SPIN_CHECK: u32 = 64;
const CONTROL_LEN: usize = 4096;

/// Keeps a value on its own cache line pair (adjacent-line prefetch on x86 pulls 128 bytes).
#[repr(C, align(128))]
struct Padded<T>(T);

/// One ring's indices and sleep flags.
#[repr(C)]
struct RingControl {
    /// Bytes ever published by the producer.
    tail: Padded<AtomicU64>,
    /// Bytes ever consumed by the consumer.
    head: Padded<AtomicU64>,
    /// 1 while the consumer sleeps (or is about to) waiting for data; the futex word.
    consumer_sleeping: Padded<AtomicU32>,
    /// 1 while the producer sleeps (or is about to) waiting for space; the futex word.
    producer_sleeping: Padded<AtomicU32>,
}

/// The control page. All-zero bytes are a valid initial state (empty rings, nobody asleep).
#[repr(C)]
struct Control {
    rings: [RingControl; 2],
    /// CPU each side last waited on, for the spin decision. Stale values are harmless: a wrong
    /// guess costs one bounded spin or one sleep.
    cpu: [AtomicI32; 2],
    /// `FUTEX_WAKE` calls made by `send`/`recv` of both endpoints.
    wakes: AtomicU64,
}

const _: () = assert!(size_of::<Control>() <= CONTROL_LEN);

/// One endpoint of a shared-memory ring pair.
#[derive(Debug)]
pub struct Shm {
    map: Arc<SharedBytes>,
    /// 0 for endpoint A, 1 for B: it sends on ring `side`, receives on ring `1 - side`.
    side: usize,
    cap: usize,
    max: usize,
    /// `None` only during drop.
    live: Option<UnixStream>,
}

// SAFETY: `Shm` holds the mapping through an `Arc<SharedBytes>`, which is `Send`; all
// shared state in it is accessed through atomics or ordered by them (see the module doc).
// It has no thread-affine state.
unsafe impl Send for Shm {}

/// Which condition a waiter waits for, and so which flag it raises.
#[derive(Clone, Copy)]
enum Waiting {
    Data,
    Space,
}

/// The ring size for a `max_message`: one whole frame fits, within the bounds.
fn ring_size(max_message: usize) -> usize {
    (HEADER_LEN + max_message)
        .checked_next_power_of_two()
        .unwrap_or(MAX_RING)
        .clamp(MIN_RING, MAX_RING)
}

impl Shm {
    /// Creates two connected endpoints.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the shared memory or the liveness socket cannot be created.
    pub fn pair(max_message: usize) -> Result<(Shm, Shm), Error> {
        let cap = ring_size(max_message);
        let len = NonZeroUsize::new(CONTROL_LEN + 2 * cap).expect("CONTROL_LEN is not zero");
        let map = Arc::new(SharedBytes::new(len).map_err(|e| Error::io(KIND, "mmap", e))?);
        let (live_a, live_b) = UnixStream::pair().map_err(|e| Error::io(KIND, "socketpair", e))?;
        let endpoint = |side, live| Shm {
            map: Arc::clone(&map),
            side,
            cap,
            max: max_message,
            live: Some(live),
        };
        Ok((endpoint(0, live_a), endpoint(1, live_b)))
    }

    fn control(&self) -> &Control {
        // SAFETY: the mapping is page aligned, at least CONTROL_LEN bytes long, and alive as
        // long as `self.map`; it started zero-filled, a valid `Control`, and is only ever
        // modified through the atomics inside, so a shared reference is sound even while the
        // peer (thread or process) writes to it.
        unsafe { &*self.map.as_ptr().cast::<Control>() }
    }

    fn data(&self, ring: usize) -> *mut u8 {
        // SAFETY: ring data starts after the control page; both rings lie inside the mapping
        // of CONTROL_LEN + 2 * cap bytes.
        unsafe { self.map.as_ptr().add(CONTROL_LEN + ring * self.cap) }
    }

    fn peer_alive(&self) -> bool {
        let Some(live) = &self.live else { return false };
        let mut fds = [PollFd::new(live.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::ZERO) {
            Ok(0) => true,
            Ok(_) => false,
            // EINTR or ENOMEM: assume alive, the next check decides.
            Err(_) => true,
        }
    }

    /// Whether the peer announced that it sleeps (waiting for data from us, or for space in
    /// the ring we read): then it makes no progress until we do, and spinning is pointless.
    fn peer_sleeping(&self) -> bool {
        let ctl = self.control();
        ctl.rings[self.side]
            .consumer_sleeping
            .0
            .load(Ordering::Relaxed)
            == 1
            || ctl.rings[1 - self.side]
                .producer_sleeping
                .0
                .load(Ordering::Relaxed)
                == 1
    }

    /// Everything the peer moves forward: how far it read our ring plus how far it wrote
    /// the one we read. A change means the peer is running and working.
    fn peer_progress(&self) -> u64 {
        let ctl = self.control();
        ctl.rings[self.side]
            .head
            .0
            .load(Ordering::Relaxed)
            .wrapping_add(ctl.rings[1 - self.side].tail.0.load(Ordering::Relaxed))
    }

    /// Publishes a position, then wakes the other side if (and only if) it announced sleep.
    fn publish(&self, pos: &AtomicU64, value: u64, sleeping: &AtomicU32) {
        pos.store(value, Ordering::SeqCst);
        if sleeping.load(Ordering::SeqCst) == 1 && sleeping.swap(0, Ordering::SeqCst) == 1 {
            futex_wake(sleeping, 1);
            self.control().wakes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits until `ready()` holds: spin while the peer works on another CPU, yield when it
    /// last ran on ours, then sleep on the futex (see the module doc).
    fn wait(&self, ring: usize, what: Waiting, ready: impl Fn() -> bool) -> Result<(), Error> {
        let ctl = self.control();
        // SAFETY: sched_getcpu has no preconditions.
        let cpu = unsafe { libc::sched_getcpu() };
        ctl.cpu[self.side].store(cpu, Ordering::Relaxed);
        if cpu != ctl.cpu[1 - self.side].load(Ordering::Relaxed) {
            // The peer runs (or last ran) elsewhere: spin as long as it is awake and moves.
            let mut last_progress = Instant::now();
            let mut progress = self.peer_progress();
            let mut spins = 0u32;
            loop {
                if ready() {
                    return Ok(());
                }
                std::hint::spin_loop();
                spins += 1;
                if spins % SPIN_CHECK == 0 {
                    if self.peer_sleeping() {
                        break;
                    }
                    let now = self.peer_progress();
                    if now != progress {
                        progress = now;
                        last_progress = Instant::now();
                    } else if last_progress.elapsed() >= SPIN {
                        break;
                    }
                }
            }
        } else {
            // Same CPU: the peer cannot progress while we spin; yielding hands it the CPU.
            for _ in 0..YIELDS {
                if ready() {
                    return Ok(());
                }
                std::thread::yield_now();
            }
        }
        let flag = match what {
            Waiting::Data => &ctl.rings[ring].consumer_sleeping.0,
            Waiting::Space => &ctl.rings[ring].producer_sleeping.0,
        };
        loop {
            flag.store(1, Ordering::SeqCst);
            if ready() {
                flag.store(0, Ordering::Relaxed);
                return Ok(());
            }
            if !self.peer_alive() {
                flag.store(0, Ordering::Relaxed);
                // Bytes published before the peer left still count.
                return if ready() {
                    Ok(())
                } else {
                    Err(Error::PeerGone { kind: KIND })
                };
            }
            futex_wait_for(flag, 1, SLEEP_SLICE);
            flag.store(0, Ordering::Relaxed);
        }
    }

    /// Streams `parts` into the send ring, publishing every [`CHUNK`] bytes, when the ring is
    /// full and at the end.
    fn write_all(&self, parts: &[&[u8]]) -> Result<(), Error> {
        let ring = self.side;
        let rc = &self.control().rings[ring];
        let data = self.data(ring);
        let mask = self.cap as u64 - 1;
        let mut tail = rc.tail.0.load(Ordering::Relaxed);
        let mut published = tail;
        let mut head = rc.head.0.load(Ordering::Acquire);
        for part in parts {
            let mut src = *part;
            while !src.is_empty() {
                let mut free = self.cap - (tail - head) as usize;
                if free == 0 {
                    head = rc.head.0.load(Ordering::Acquire);
                    free = self.cap - (tail - head) as usize;
                }
                if free == 0 {
                    self.publish(&rc.tail.0, tail, &rc.consumer_sleeping.0);
                    published = tail;
                    self.wait(ring, Waiting::Space, || {
                        rc.head.0.load(Ordering::Acquire) != head
                    })?;
                    head = rc.head.0.load(Ordering::Acquire);
                    continue;
                }
                let n = free.min(src.len()).min(CHUNK);
                let off = (tail & mask) as usize;
                let first = n.min(self.cap - off);
                // SAFETY: [tail, tail + n) is free (the consumer finished it, acquire-loaded
                // `head` says so) and lies in the ring after wrapping at `cap`; `src` has n
                // bytes and cannot overlap the mapping's ring area we own for writing.
                unsafe {
                    ptr::copy_nonoverlapping(src.as_ptr(), data.add(off), first);
                    ptr::copy_nonoverlapping(src.as_ptr().add(first), data, n - first);
                }
                tail += n as u64;
                src = &src[n..];
                if tail - published >= CHUNK as u64 {
                    self.publish(&rc.tail.0, tail, &rc.consumer_sleeping.0);
                    published = tail;
                }
            }
        }
        self.publish(&rc.tail.0, tail, &rc.consumer_sleeping.0);
        Ok(())
    }

    /// Fills `dst` from the receive ring; `head` is the local read position, published by the
    /// caller, here every [`CHUNK`] bytes and before waiting, so the producer can make room.
    fn read_exact(&self, head: &mut u64, mut dst: &mut [u8]) -> Result<(), Error> {
        let ring = 1 - self.side;
        let rc = &self.control().rings[ring];
        let data = self.data(ring);
        let mask = self.cap as u64 - 1;
        let mut published = rc.head.0.load(Ordering::Relaxed);
        let mut tail = rc.tail.0.load(Ordering::Acquire);
        while !dst.is_empty() {
            if tail == *head {
                tail = rc.tail.0.load(Ordering::Acquire);
            }
            if tail == *head {
                self.publish(&rc.head.0, *head, &rc.producer_sleeping.0);
                published = *head;
                let h = *head;
                self.wait(ring, Waiting::Data, || {
                    rc.tail.0.load(Ordering::Acquire) != h
                })?;
                tail = rc.tail.0.load(Ordering::Acquire);
                continue;
            }
            let n = ((tail - *head) as usize).min(dst.len()).min(CHUNK);
            let off = (*head & mask) as usize;
            let first = n.min(self.cap - off);
            // SAFETY: [head, head + n) was published by the producer (acquire-loaded `tail`)
            // and is not written again until we publish a `head` past it; `dst` is ours.
            unsafe {
                ptr::copy_nonoverlapping(data.add(off), dst.as_mut_ptr(), first);
                ptr::copy_nonoverlapping(data, dst.as_mut_ptr().add(first), n - first);
            }
            *head += n as u64;
            dst = &mut dst[n..];
            if *head - published >= CHUNK as u64 {
                self.publish(&rc.head.0, *head, &rc.producer_sleeping.0);
                published = *head;
            }
        }
        Ok(())
    }
}

impl Transport for Shm {
    fn kind(&self) -> TransportKind {
        KIND
    }

    fn max_message(&self) -> usize {
        self.max
    }

    fn send(&mut self, msg: &[u8]) -> Result<(), Error> {
        check_send(KIND, self.max, msg.len())?;
        let header = u32::try_from(msg.len())
            .expect("max_message fits in u32, checked by pair()")
            .to_le_bytes();
        self.write_all(&[&header, msg])
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> Result<(), Error> {
        let rc = &self.control().rings[1 - self.side];
        let mut head = rc.head.0.load(Ordering::Relaxed);
        let mut header = [0u8; HEADER_LEN];
        let result = self.read_exact(&mut head, &mut header).and_then(|()| {
            let len = decode_header(KIND, self.max, header)?;
            set_len(buf, len);
            self.read_exact(&mut head, buf)
        });
        self.publish(&rc.head.0, head, &rc.producer_sleeping.0);
        result
    }

    fn futex_wakes(&self) -> u64 {
        self.control().wakes.load(Ordering::Relaxed)
    }
}

impl Drop for Shm {
    fn drop(&mut self) {
        // Close our liveness end first, then wake the peer wherever it may sleep, so it
        // re-checks and finds us gone. In a process that holds a copy of this endpoint only
        // because of `fork`, the wake is spurious and harmless: the peer re-checks and sleeps.
        drop(self.live.take());
        let ctl = self.control();
        futex_wake(&ctl.rings[self.side].consumer_sleeping.0, 1);
        futex_wake(&ctl.rings[1 - self.side].producer_sleeping.0, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_length_is_rejected() {
        let (a, mut b) = Shm::pair(1024).expect("pair");
        a.write_all(&[&u32::MAX.to_le_bytes()]).expect("write");
        match b.recv(&mut Vec::new()) {
            Err(Error::FrameTooLarge { len, max: 1024, .. }) => {
                assert_eq!(len, u64::from(u32::MAX));
            }
            other => panic!("oversized header gave {other:?}"),
        }
    }

    #[test]
    fn a_sleeping_receiver_is_woken_once_and_counted() {
        let (mut a, mut b) = Shm::pair(64).expect("pair");
        let receiver = std::thread::spawn(move || {
            let mut buf = Vec::new();
            b.recv(&mut buf).map(|()| buf)
        });
        // Long enough for the receiver to pass its spin and yield phases and sleep.
        std::thread::sleep(Duration::from_millis(200));
        a.send(b"wake up").expect("send");
        let buf = receiver.join().expect("thread").expect("recv");
        assert_eq!(buf, b"wake up");
        assert_eq!(a.futex_wakes(), 1);
    }

    #[test]
    fn ring_sizes_are_powers_of_two_within_bounds() {
        for (max, cap) in [
            (0, MIN_RING),
            (4092, 4096),
            (4093, 8192),
            (65532, 65536),
            (65533, 131_072),
            (1 << 20, MAX_RING),
        ] {
            let (a, _b) = Shm::pair(max).expect("pair");
            assert_eq!(a.cap, cap, "max_message {max}");
        }
    }
}
