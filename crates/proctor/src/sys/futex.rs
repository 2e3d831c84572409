//! Process-shared futex wait and wake on a 32-bit word.
//!
//! `futex(2)` has no wrapper in nix 0.32, so this is the one place that calls
//! `libc::syscall(SYS_futex, …)` directly. The operations are the plain `FUTEX_WAIT` and
//! `FUTEX_WAKE`, **without** `FUTEX_PRIVATE_FLAG`: the word lives in a `MAP_SHARED` mapping
//! that other processes map too, and a private futex is keyed by the address space, so a
//! waiter in another process would never be woken. See futex(2) and Ulrich Drepper,
//! "Futexes Are Tricky" (2011), for the protocol the callers follow.

use std::sync::atomic::AtomicU32;
use std::time::Duration;

/// Why [`wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOutcome {
    /// Woken by `FUTEX_WAKE`, by a signal, or spuriously: re-check the condition.
    Woken,
    /// The word did not hold the expected value when the kernel looked at it.
    ValueChanged,
    /// The timeout elapsed.
    TimedOut,
}

/// Sleeps while `*word == expected`, for at most `timeout`.
///
/// The kernel compares the word and queues the caller atomically, which is what makes the
/// "announce, re-check, sleep" protocol free of lost wake-ups.
pub(crate) fn wait(word: &AtomicU32, expected: u32, timeout: Duration) -> WaitOutcome {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9, so it fits a `c_long` on every target.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, 4-byte aligned `AtomicU32` (a reference guarantees both) and
    // `ts` outlives the call; FUTEX_WAIT only reads both. The kernel accesses the word
    // atomically, which is compatible with our atomic accesses from user space.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
    if rc == 0 {
        return WaitOutcome::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => WaitOutcome::ValueChanged,
        Some(libc::ETIMEDOUT) => WaitOutcome::TimedOut,
        // EINTR and anything unexpected: let the caller re-check its condition.
        _ => WaitOutcome::Woken,
    }
}

/// Wakes at most `n` waiters sleeping on `word`, in any process that maps it.
pub(crate) fn wake(word: &AtomicU32, n: u32) {
    // SAFETY: `word` is a live, aligned `AtomicU32`; FUTEX_WAKE does not access the word's
    // contents, it only uses its address as the key of the wait queue.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
    }
}
