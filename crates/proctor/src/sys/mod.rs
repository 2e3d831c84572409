//! Safe wrappers over the system calls the pool needs: shared mappings, file-descriptor
//! hygiene after `fork`, clocks. The most of the crate's `unsafe` of any module lives here;
//! the rest is where the OS demands it in place: the sandbox's filters and trap handler, the
//! fork server's and the agent's forks, `exec`, and `ExitCode::leave`.
//!
//! A leaf: it imports nothing of the crate, and any module may import it.

pub(crate) mod futex;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;

use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};
use nix::unistd::ftruncate;

/// The size of the file `fd` names, by the `fstat` system call itself. glibc's `fstat`
/// (2.33 on) calls `newfstatat` with an empty path, which a sandbox without files refuses:
/// that call can name any path, so it would tell a task which files exist.
pub(crate) fn file_len(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<usize> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    // SAFETY: `fstat` writes one `struct stat` (the kernel's, which `libc::stat` mirrors on
    // Linux's 64-bit targets) to the pointer, which points to one we own.
    let rc = unsafe { libc::syscall(libc::SYS_fstat, fd.as_raw_fd(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: zeroed, then filled by the kernel on success.
    let st = unsafe { st.assume_init() };
    usize::try_from(st.st_size).map_err(|_| std::io::Error::other("a negative file size"))
}

/// Closes every file descriptor from 3 up, except those in `keep`.
///
/// Used right after `fork`, so a worker holds no descriptor of its parent's (the fork
/// server's control socket above all: its EOF is how the server learns the parent died).
pub(crate) fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut next: u32 = 3;
    for &fd in &keep {
        let fd = fd as u32;
        if fd > next {
            close_range(next, fd - 1);
        }
        next = fd + 1;
    }
    close_range(next, u32::MAX);
}

fn close_range(first: u32, last: u32) {
    // SAFETY: close_range(2) only closes descriptors; it takes no pointers. It is called
    // in a freshly forked, single-threaded child (or the fork server), where no Rust object
    // still uses the descriptors being closed (the caller lists every one it keeps).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) };
    if rc != 0 {
        // Kernels before 5.9 lack close_range: close the range the slow way, bounded by the
        // descriptor limit.
        let limit = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft.min(1 << 16) as u32)
            .unwrap_or(1024);
        for fd in first..=last.min(limit) {
            // SAFETY: as above; closing a descriptor that is not open returns EBADF, harmless.
            unsafe { libc::close(fd as i32) };
        }
    }
}

/// CLOCK_MONOTONIC in nanoseconds: the same clock in every process of the machine, so a
/// worker's "task started at" is comparable with the parent's now.
pub(crate) fn monotonic_ns() -> u64 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .expect("CLOCK_MONOTONIC is always available on Linux");
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}

/// The CPU the calling thread runs on (u64::MAX if unknown).
pub(crate) fn current_cpu() -> u64 {
    // SAFETY: sched_getcpu takes no arguments and only reads the calling thread's state
    // (through rseq or the vDSO).
    let cpu = unsafe { libc::sched_getcpu() };
    if cpu < 0 { u64::MAX } else { cpu as u64 }
}

/// A pair of connected sequenced-packet Unix sockets, close-on-exec: the channel to a helper
/// process forked next (the fork server's, an agent's spawner's); `what` names it in the
/// error.
pub(crate) fn seqpacket_pair(what: &str) -> Result<(OwnedFd, OwnedFd), String> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
    socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| format!("could not create {what}: {e}"))
}

/// This process's address space (`VmSize`), in bytes.
#[cfg(feature = "sandbox")]
pub(crate) fn address_space_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmSize:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Number of threads in this process, from /proc (None if unreadable).
pub(crate) fn thread_count() -> Option<usize> {
    std::fs::read_dir("/proc/self/task").ok().map(|d| d.count())
}

/// Which size changes a sealed memfd still allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seals {
    /// It may grow (a result arena), never shrink.
    GrowOnly,
    /// Neither (a doorbell).
    FixedSize,
}

/// A memfd mapped `MAP_SHARED`: the same bytes in every process that maps the descriptor.
///
/// The mapping can grow (`ftruncate` then remap); another process that shares the memfd
/// sees the new size with [`SharedMapping::refresh`].
/// The base page of the Linux targets built for (x86-64; arm64 with 4 KiB pages). On a
/// larger page, `madvise` refuses a range it does not start on a page and nothing happens,
/// and `fallocate` rounds a hole to whole pages itself: both stay optimisations only.
const PAGE: usize = 4096;

#[derive(Debug)]
pub(crate) struct SharedMapping {
    fd: OwnedFd,
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; all access to it goes through atomics or
// through byte copies whose exclusivity the owner (the arena protocol) guarantees.
unsafe impl Send for SharedMapping {}
// SAFETY: as above; `&SharedMapping` only hands out atomics and bounds-checked copies.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Creates an anonymous memfd of `len` bytes (sparse: untouched pages cost nothing),
    /// sealed with `seals` before anyone else sees it.
    ///
    /// The seals are what keeps a hostile worker from turning the shared memory against the
    /// parent: with `F_SEAL_SHRINK` no process can truncate the file under the parent's
    /// mapping, which would make the parent's next read of it a SIGBUS (memfd_create(2),
    /// fcntl(2) "File Sealing").
    pub(crate) fn create(name: &str, len: usize, seals: Seals) -> std::io::Result<SharedMapping> {
        use nix::fcntl::{FcntlArg, SealFlag, fcntl};
        use nix::sys::memfd::MFdFlags;
        let fd = nix::sys::memfd::memfd_create(
            name,
            MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
        )?;
        ftruncate(&fd, len as i64)?;
        let mut flags = SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_SEAL;
        if seals == Seals::FixedSize {
            flags |= SealFlag::F_SEAL_GROW;
        }
        fcntl(fd.as_fd(), FcntlArg::F_ADD_SEALS(flags))?;
        Self::map(fd, len)
    }

    /// Maps an existing memfd at its current size.
    pub(crate) fn from_fd(fd: OwnedFd) -> std::io::Result<SharedMapping> {
        let len = file_len(fd.as_fd())?;
        Self::map(fd, len)
    }

    fn map(fd: OwnedFd, len: usize) -> std::io::Result<SharedMapping> {
        let size = std::num::NonZeroUsize::new(len)
            .ok_or_else(|| std::io::Error::other("shared mapping of zero bytes"))?;
        // SAFETY: a fresh mapping chosen by the kernel (no address hint), of a memfd we own;
        // it aliases no Rust object.
        let ptr = unsafe {
            mmap(
                None,
                size,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )?
        };
        Ok(SharedMapping {
            fd,
            ptr: ptr.cast(),
            len,
        })
    }

    /// A second mapping of the first `len` bytes of the same memfd: its address never
    /// changes when this mapping grows, so other threads can watch it without a lock.
    pub(crate) fn prefix(&self, len: usize) -> std::io::Result<SharedMapping> {
        Self::map(self.fd.try_clone()?, len.min(self.len))
    }

    /// A second descriptor of the memfd, for a second mapping of it.
    pub(crate) fn fd_clone(&self) -> std::io::Result<OwnedFd> {
        self.fd.try_clone()
    }

    /// The memfd, to hand to another process.
    pub(crate) fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Mapped length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Grows the file to `new_len` and remaps it.
    pub(crate) fn grow(&mut self, new_len: usize) -> std::io::Result<()> {
        if new_len <= self.len {
            return Ok(());
        }
        ftruncate(&self.fd, new_len as i64)?;
        self.remap(new_len)
    }

    /// Remaps if another process grew the file; an error if it grew past `max` bytes (the
    /// other process is not to be trusted with the size of our address space).
    pub(crate) fn refresh(&mut self, max: usize) -> std::io::Result<()> {
        let len = file_len(self.fd.as_fd())?;
        if len > max {
            return Err(std::io::Error::other(format!(
                "shared memory grew to {len} bytes, past its {max}-byte limit"
            )));
        }
        if len > self.len {
            self.remap(len)
        } else {
            Ok(())
        }
    }

    fn remap(&mut self, new_len: usize) -> std::io::Result<()> {
        let fd = self.fd.try_clone()?;
        let new = Self::map(fd, new_len)?;
        let old = std::mem::replace(self, new);
        drop(old);
        Ok(())
    }

    /// Frees the memory behind bytes `offset..offset + len` of the file (rounded inward to
    /// whole pages): for every process that maps it, they read as zeros from now on and cost
    /// no memory until written again. For a large argument or result once it has been read.
    pub(crate) fn release(&self, offset: usize, len: usize) {
        use nix::fcntl::{FallocateFlags, fallocate};
        let start = offset.next_multiple_of(PAGE);
        let end = offset.saturating_add(len).min(self.len) / PAGE * PAGE;
        if end > start {
            let flags = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
            // Only an optimisation: the data stays correct whether or not it is punched.
            let _ = fallocate(&self.fd, flags, start as i64, (end - start) as i64);
        }
    }

    /// Takes bytes `offset..offset + len` (rounded inward to whole pages) out of this
    /// process's resident memory, keeping their contents in the file for the other side:
    /// what the parent wrote into a worker's inbox need not count against its own RSS while
    /// the worker reads it.
    pub(crate) fn unmap_pages(&mut self, offset: usize, len: usize) {
        use nix::sys::mman::{MmapAdvise, madvise};
        let start = offset.next_multiple_of(PAGE);
        let end = offset.saturating_add(len).min(self.len) / PAGE * PAGE;
        if end > start {
            // SAFETY: the range lies inside this mapping (clamped above), page aligned. On a
            // MAP_SHARED mapping of a file MADV_DONTNEED only drops this process's page
            // table entries: the contents stay in the file and read back unchanged (madvise(2)),
            // so no Rust reference into the mapping (`&mut self` rules out any) sees a change.
            let _ = unsafe {
                madvise(
                    self.ptr.add(start).cast(),
                    end - start,
                    MmapAdvise::MADV_DONTNEED,
                )
            };
        }
    }

    /// Faults in bytes `offset..offset + len` of the mapping at once, for reading or for
    /// writing, before a large copy into or out of them: one system call that maps every
    /// page, where the copy would take a fault per page (a third of a large transfer's
    /// time here). Only an optimisation: a kernel without `MADV_POPULATE_*` (before 5.14)
    /// refuses, and the copy faults the pages in itself.
    pub(crate) fn populate(&mut self, offset: usize, len: usize, write: bool) {
        use nix::sys::mman::{MmapAdvise, madvise};
        let start = offset / PAGE * PAGE;
        let end = offset.saturating_add(len).min(self.len);
        if end > start {
            let advice = if write {
                MmapAdvise::MADV_POPULATE_WRITE
            } else {
                MmapAdvise::MADV_POPULATE_READ
            };
            // SAFETY: the range lies inside this mapping (clamped above) and starts on a page.
            // Populating maps pages as the first access would: it changes no byte.
            let _ = unsafe { madvise(self.ptr.add(start).cast(), end - start, advice) };
        }
    }

    /// The `index`-th 8-byte word of the mapping, as an atomic.
    #[inline]
    pub(crate) fn word(&self, index: usize) -> &AtomicU64 {
        assert!(
            (index + 1) * 8 <= self.len,
            "shared word {index} outside the mapping"
        );
        // SAFETY: in bounds (checked), 8-aligned (the mapping is page-aligned), and only
        // ever accessed as AtomicU64 by every process that maps it.
        unsafe { &*(self.ptr.as_ptr().add(index * 8) as *const AtomicU64) }
    }

    /// The `index`-th 4-byte word of the mapping, as an atomic (a futex word).
    #[inline]
    pub(crate) fn word32(&self, index: usize) -> &std::sync::atomic::AtomicU32 {
        assert!(
            (index + 1) * 4 <= self.len,
            "shared word {index} outside the mapping"
        );
        // SAFETY: in bounds (checked), 4-aligned (the mapping is page-aligned), and only ever
        // accessed as AtomicU32 (or by the kernel's futex code) by every process mapping it.
        unsafe { &*(self.ptr.as_ptr().add(index * 4) as *const std::sync::atomic::AtomicU32) }
    }

    /// Copies `len` bytes at `offset` out of the mapping, or None when out of bounds.
    ///
    /// The caller guarantees that no other process writes the range meanwhile (the arena
    /// protocol: a worker only writes results of the job it runs, and the parent reads them
    /// after the worker reported the job done, or died).
    #[inline]
    pub(crate) fn bytes(&self, offset: usize, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        // SAFETY: in bounds (checked); no concurrent writer by the protocol above.
        Some(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset), len) })
    }

    /// The bytes from `offset` to the end, writable. Same exclusivity contract as `bytes`.
    #[inline]
    pub(crate) fn tail_mut(&mut self, offset: usize) -> &mut [u8] {
        assert!(offset <= self.len, "offset {offset} outside the mapping");
        // SAFETY: in bounds (checked); `&mut self` and the arena protocol give exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(offset), self.len - offset) }
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly what mmap returned, and no reference into the mapping
        // outlives `self` (every accessor borrows `self`).
        let _ = unsafe { munmap(self.ptr.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes of memory the memfd behind `m` holds (its allocated blocks).
    fn held(m: &SharedMapping) -> u64 {
        nix::sys::stat::fstat(m.fd.as_fd()).unwrap().st_blocks as u64 * 512
    }

    #[test]
    fn released_pages_read_as_zeros_and_hold_no_memory_and_unmapped_ones_keep_their_bytes() {
        let mut m = SharedMapping::create("proctor-test", 64 * PAGE, Seals::GrowOnly).unwrap();
        m.populate(0, 64 * PAGE, true);
        m.tail_mut(0).fill(7);
        assert!(held(&m) >= (64 * PAGE) as u64);
        // Out of this process's memory, kept in the file.
        m.unmap_pages(0, 64 * PAGE);
        assert!(m.bytes(0, 64 * PAGE).unwrap().iter().all(|&b| b == 7));
        // Freed: rounded inward to whole pages, so the partial pages at both ends keep theirs.
        m.release(100, 32 * PAGE);
        // (Checked before the reads below: reading a hole of a memfd allocates its page.)
        assert!(held(&m) <= (33 * PAGE) as u64, "{} bytes held", held(&m));
        let b = m.bytes(0, 64 * PAGE).unwrap();
        assert!(b[..PAGE].iter().all(|&x| x == 7));
        assert!(b[PAGE..32 * PAGE].iter().all(|&x| x == 0));
        assert!(b[32 * PAGE..].iter().all(|&x| x == 7));
    }
}
