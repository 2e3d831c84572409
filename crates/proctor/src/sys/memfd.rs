//! An anonymous shared mapping backed by `memfd_create(2)`.
//!
//! The memory has no name in any file system (nothing appears in `/dev/shm`), so nothing can
//! outlive the processes that map it, even after a crash. The mapping is `MAP_SHARED`, so a
//! child created by `fork` after [`SharedMapping::new`] sees the same pages.

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::sys::memfd::{MFdFlags, memfd_create};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// A zero-filled, read-write, `MAP_SHARED` mapping of `len` bytes; unmapped on drop.
#[derive(Debug)]
pub(crate) struct SharedMapping {
    ptr: NonNull<u8>,
    len: NonZeroUsize,
}

// SAFETY: the mapping is plain memory owned by this value; moving it to another thread moves
// the right to unmap it. Concurrent access to the contents is the caller's business and goes
// through atomics.
unsafe impl Send for SharedMapping {}
// SAFETY: `&SharedMapping` only hands out the base pointer; see the `Send` impl.
unsafe impl Sync for SharedMapping {}

impl SharedMapping {
    /// Creates a mapping of `len` bytes (rounded up to whole pages by the kernel).
    pub(crate) fn new(len: NonZeroUsize) -> std::io::Result<Self> {
        let fd = memfd_create(c"proctor-ipc", MFdFlags::MFD_CLOEXEC)?;
        let size = libc::off_t::try_from(len.get())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        nix::unistd::ftruncate(&fd, size)?;
        // SAFETY: we map a fresh memfd that nobody else can reach, at an address the kernel
        // picks, so no existing Rust object is aliased. The fd may be closed afterwards: the
        // mapping keeps the file alive.
        let ptr = unsafe {
            mmap(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED,
                &fd,
                0,
            )?
        };
        Ok(SharedMapping {
            ptr: ptr.cast(),
            len,
        })
    }

    /// The first byte of the mapping (page aligned).
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for SharedMapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe exactly the mapping created in `new`, and every pointer
        // derived from it is owned by values that hold this mapping (through an `Arc`), so none
        // is used after this point.
        let _ = unsafe { munmap(self.ptr.cast(), self.len.get()) };
    }
}
