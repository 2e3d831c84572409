//! Memory shared between forked processes, a process-shared futex mutex, and the small
//! fork/reap helpers the race, sync, memory and scaling experiments use with them.
//!
//! [`SharedMem`] is an anonymous `MAP_SHARED` mapping: after `fork` parent and children see
//! the same physical pages, so an atomic in it is one counter for all of them (ordinary memory
//! is copied on write, so each process counts alone).
//!
//! [`FutexMutex`] is the classic three-state mutex from Ulrich Drepper, "Futexes Are Tricky"
//! (2011), section 6 ("mutex3"): `0` unlocked, `1` locked, `2` locked with possible waiters.
//! Lock takes the fast path with one compare-and-swap; only a contended lock sleeps in
//! `FUTEX_WAIT`, and only an unlock that saw state `2` calls `FUTEX_WAKE`. It uses the shared
//! (not `FUTEX_PRIVATE_FLAG`) futex operations, so it works across processes on a `MAP_SHARED`
//! page; see futex(2).
//!
//! Forking from a multi-threaded process (the lab always is one: tests, tokio, progress) leaves
//! only async-signal-safe work to the child: see signal-safety(7). [`fork_child`] runs a closure
//! that must keep to that (atomics, `read`/`write`, `nanosleep`, futex calls, no allocation, no
//! locks) and ends the child with `_exit`.

use std::cell::UnsafeCell;
use std::num::NonZeroUsize;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork};

/// A value of `T` in an anonymous `MAP_SHARED` mapping, visible to children forked after it
/// was created.
///
/// `T` should hold only plain data and atomics: a pointer inside it would point into memory
/// that is copied, not shared, after `fork`.
pub struct SharedMem<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: `SharedMem<T>` owns its `T` like a `Box<T>` does; sending or sharing it is as safe as
// sending or sharing the `T`.
unsafe impl<T: Send> Send for SharedMem<T> {}
// SAFETY: see above; `&SharedMem<T>` only hands out `&T`.
unsafe impl<T: Sync> Sync for SharedMem<T> {}

impl<T> SharedMem<T> {
    /// Maps a fresh shared page (or more, rounded up) and moves `value` into it.
    pub fn new(value: T) -> nix::Result<SharedMem<T>> {
        assert!(
            std::mem::align_of::<T>() <= 4096,
            "shared values are page aligned at most"
        );
        let len = std::mem::size_of::<T>().max(1);
        let length = NonZeroUsize::new(len).expect("len is at least 1");
        // SAFETY: a fresh anonymous mapping at an address the kernel picks aliases nothing; the
        // kernel zero-fills it and returns page-aligned memory, aligned enough for `T` (asserted).
        let raw = unsafe {
            mmap_anonymous(
                None,
                length,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )?
        };
        let ptr = raw.cast::<T>();
        // SAFETY: `ptr` is valid for writes of `size_of::<T>()` bytes and aligned (see above).
        unsafe { ptr.as_ptr().write(value) };
        Ok(SharedMem { ptr, len })
    }
}

impl<T> Deref for SharedMem<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `ptr` was initialised in `new` and stays mapped until `drop`.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Drop for SharedMem<T> {
    fn drop(&mut self) {
        // SAFETY: the value was initialised in `new` and is dropped exactly once, here; then the
        // mapping made in `new` is unmapped with its own length. Children that still use the
        // mapping have their own reference to the pages, so this does not pull it from them.
        unsafe {
            std::ptr::drop_in_place(self.ptr.as_ptr());
            let _ = munmap(self.ptr.cast(), self.len);
        }
    }
}

impl<T> std::fmt::Debug for SharedMem<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedMem").field("len", &self.len).finish()
    }
}

/// `len` zeroed bytes in an anonymous `MAP_SHARED` mapping, visible to children forked after
/// it was created: the memory of the shared-memory IPC transport, which lays out its own
/// atomics in it.
pub struct SharedBytes {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: plain shared memory; whoever lays data out in it orders every access through atomics
// (the only way two processes can share it soundly anyway).
unsafe impl Send for SharedBytes {}
// SAFETY: as above; `&SharedBytes` hands out only a raw pointer.
unsafe impl Sync for SharedBytes {}

impl SharedBytes {
    /// Maps `len` fresh zeroed bytes (page aligned; untouched pages cost nothing).
    pub fn new(len: NonZeroUsize) -> nix::Result<SharedBytes> {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks aliases nothing.
        let raw = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
            )?
        };
        Ok(SharedBytes {
            ptr: raw.cast(),
            len: len.get(),
        })
    }

    /// The first byte (page aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for SharedBytes {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference into it outlives
        // `self` (the pointer is handed out raw, and its users hold `self` while they use it).
        unsafe {
            let _ = munmap(self.ptr.cast(), self.len);
        }
    }
}

impl std::fmt::Debug for SharedBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBytes")
            .field("len", &self.len)
            .finish()
    }
}

/// Drepper's three-state futex mutex over a value of `T`, usable across processes when it lives
/// in a [`SharedMem`].
#[derive(Debug, Default)]
pub struct FutexMutex<T> {
    /// 0 unlocked, 1 locked, 2 locked and someone may be waiting.
    state: AtomicU32,
    /// How often a locker slept in `FUTEX_WAIT` (slow path only, so it costs nothing uncontended).
    waits: AtomicU64,
    /// How often an unlocker called `FUTEX_WAKE`.
    wakes: AtomicU64,
    value: UnsafeCell<T>,
}

// SAFETY: the mutex hands out `&mut T` to one holder at a time, like `std::sync::Mutex`.
unsafe impl<T: Send> Sync for FutexMutex<T> {}

impl<T> FutexMutex<T> {
    /// An unlocked mutex holding `value`.
    pub fn new(value: T) -> FutexMutex<T> {
        FutexMutex {
            state: AtomicU32::new(0),
            waits: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Locks, sleeping in the kernel while another thread or process holds the lock.
    pub fn lock(&self) -> FutexGuard<'_, T> {
        if let Err(mut c) = self
            .state
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
        {
            if c != 2 {
                c = self.state.swap(2, Ordering::Acquire);
            }
            while c != 0 {
                self.waits.fetch_add(1, Ordering::Relaxed);
                futex_wait(&self.state, 2);
                c = self.state.swap(2, Ordering::Acquire);
            }
        }
        FutexGuard { mutex: self }
    }

    fn unlock(&self) {
        if self.state.fetch_sub(1, Ordering::Release) != 1 {
            self.state.store(0, Ordering::Release);
            self.wakes.fetch_add(1, Ordering::Relaxed);
            futex_wake(&self.state, 1);
        }
    }

    /// `(FUTEX_WAIT calls, FUTEX_WAKE calls)` since creation.
    pub fn futex_calls(&self) -> (u64, u64) {
        (
            self.waits.load(Ordering::Relaxed),
            self.wakes.load(Ordering::Relaxed),
        )
    }
}

/// Holds a [`FutexMutex`] locked; unlocks on drop.
#[derive(Debug)]
pub struct FutexGuard<'a, T> {
    mutex: &'a FutexMutex<T>,
}

impl<T> Deref for FutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this holder owns the lock.
        unsafe { &*self.mutex.value.get() }
    }
}

impl<T> DerefMut for FutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this holder owns the lock, so no other reference
        // to the value is live.
        unsafe { &mut *self.mutex.value.get() }
    }
}

impl<T> Drop for FutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

/// Sleeps while `*word == expected` (shared futex, so it works across processes).
pub fn futex_wait(word: &AtomicU32, expected: u32) {
    futex_wait_timespec(word, expected, std::ptr::null(), false);
}

/// One `FUTEX_WAIT` that cannot sleep (it expects a value `word` does not hold, so the kernel
/// looks the futex up, compares and returns `EAGAIN`): the cost of the futex key lookup and
/// the syscall, private (`FUTEX_PRIVATE_FLAG`: keyed by the address in this mm) or shared
/// (keyed by the backing page or inode, which the kernel must look up). What `perf bench
/// futex hash` times.
pub fn futex_wait_mismatch(word: &AtomicU32, private: bool) {
    let other = word
        .load(std::sync::atomic::Ordering::Relaxed)
        .wrapping_add(1);
    futex_wait_timespec(word, other, std::ptr::null(), private);
}

/// Sleeps while `*word == expected`, for at most `timeout`. It may return early (woken, a
/// signal, the value changed): the caller re-checks its condition either way.
pub fn futex_wait_for(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        // Below 10^9, so it fits a `c_long` on every target.
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    futex_wait_timespec(word, expected, &ts, false);
}

/// The one `FUTEX_WAIT` call of the lab; `ts` is null (no timeout) or a live timespec;
/// `private` adds `FUTEX_PRIVATE_FLAG` (only valid within one address space).
fn futex_wait_timespec(word: &AtomicU32, expected: u32, ts: *const libc::timespec, private: bool) {
    let op = if private {
        libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG
    } else {
        libc::FUTEX_WAIT
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind a live reference and sleeps; `ts` is null
    // (no timeout) or points to a timespec the caller keeps alive across the call. EAGAIN (value
    // changed), ETIMEDOUT and EINTR are fine: the caller re-checks.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), op, expected, ts);
    }
}

/// Wakes up to `n` waiters on `word`.
/// Wakes up to `n` waiters on `word` (shared futex, so it works across processes).
pub fn futex_wake(word: &AtomicU32, n: u32) {
    // SAFETY: FUTEX_WAKE only uses the address of the aligned u32 as a key.
    unsafe {
        libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, n);
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: one clock for parent and children (an `Instant` cannot
/// cross a process boundary), and async-signal-safe.
pub fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sleeps `ns` nanoseconds with `nanosleep` (async-signal-safe), resuming after signals.
pub fn sleep_ns(ns: u64) {
    let mut req = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    let mut rem = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are valid timespecs for the duration of the call.
    while unsafe { libc::nanosleep(&req, &mut rem) } == -1 {
        req = rem;
    }
}

/// In a forked child: be killed when the parent dies, so an interrupted lab (Ctrl-C sent to
/// it alone, a kill) leaves no child behind waiting for a peer that is gone. Leaves at once if
/// the parent is already gone. Async-signal-safe: raw system calls only.
pub fn die_with_parent(parent: libc::pid_t) {
    // SAFETY: prctl(PR_SET_PDEATHSIG) with an integer argument, getppid and _exit take no
    // pointers and are async-signal-safe, as a child forked from a multi-threaded process needs.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
}

/// Forks a child that runs `child` and leaves with `_exit(code)`; returns its pid. The child
/// dies with this process.
///
/// # Safety
///
/// `child` runs in a copy of a possibly multi-threaded process, so it must only do
/// async-signal-safe work: no allocation, no locks another thread could hold, no printing.
/// It must not panic either.
pub unsafe fn fork_child(child: impl FnOnce() -> i32) -> nix::Result<Pid> {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the child runs only `child`, which callers keep async-signal-safe (see above), and
    // then `_exit`s without running destructors or atexit handlers that could touch state copied
    // mid-update from other threads.
    match unsafe { fork()? } {
        ForkResult::Parent { child } => Ok(child),
        ForkResult::Child => {
            die_with_parent(parent);
            let code = child();
            // SAFETY: `_exit` is async-signal-safe and never returns.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Children this process forked: [`Children::wait_all`] reaps them; dropping the set instead
/// (an error, a panic) kills and reaps every one left, so no experiment leaves one behind.
#[derive(Debug, Default)]
pub struct Children {
    pids: Vec<Pid>,
}

impl Children {
    /// An empty set.
    pub fn new() -> Children {
        Children::default()
    }

    /// Adds a forked child to the set.
    pub fn push(&mut self, pid: Pid) {
        self.pids.push(pid);
    }

    /// The children's pids, in the order they were added.
    pub fn pids(&self) -> &[Pid] {
        &self.pids
    }

    /// Number of children in the set.
    pub fn len(&self) -> usize {
        self.pids.len()
    }

    /// True when the set holds no child.
    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    /// Waits for every child to exit and returns how many exited with status 0.
    pub fn wait_all(&mut self) -> usize {
        let mut ok = 0;
        for pid in self.pids.drain(..) {
            if let Ok(nix::sys::wait::WaitStatus::Exited(_, 0)) = waitpid(pid, None) {
                ok += 1;
            }
        }
        ok
    }

    /// Kills (SIGKILL) and reaps every child.
    pub fn kill_all(&mut self) {
        for &pid in &self.pids {
            let _ = kill(pid, Signal::SIGKILL);
        }
        for pid in self.pids.drain(..) {
            let _ = waitpid(pid, None);
        }
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_atomic_is_shared_across_fork() {
        let shared = SharedMem::new(AtomicU64::new(0)).expect("mmap");
        let mut children = Children::new();
        for _ in 0..2 {
            let s = &*shared;
            let child = || {
                for _ in 0..1000 {
                    s.fetch_add(1, Ordering::Relaxed);
                }
                0
            };
            // SAFETY: a futex lock on shared memory that only the two children take.
            children.push(unsafe { fork_child(child) }.expect("fork"));
        }
        assert_eq!(children.wait_all(), 2);
        assert_eq!(shared.load(Ordering::Relaxed), 2000);
    }

    #[test]
    fn futex_mutex_excludes_processes() {
        let shared = SharedMem::new(FutexMutex::new(0u64)).expect("mmap");
        let mut children = Children::new();
        for _ in 0..2 {
            let m = &*shared;
            let child = || {
                for _ in 0..20_000 {
                    // Non-atomic read-modify-write under the lock: exact only if it excludes.
                    let mut g = m.lock();
                    *g = std::hint::black_box(*g + 1);
                }
                0
            };
            // SAFETY: atomics on shared memory only.
            children.push(unsafe { fork_child(child) }.expect("fork"));
        }
        assert_eq!(children.wait_all(), 2);
        assert_eq!(*shared.lock(), 40_000);
    }
}
