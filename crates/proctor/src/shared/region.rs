//! A sealed memory region: a memfd written once by the process that made it, then sealed
//! against every write, size change and further seal, and mapped read-only wherever it is
//! read.
//!
//! The owner keeps the memfd open; a worker process on the same host opens it through
//! `/proc/<owner>/fd/<n>` (read-only, which also takes away the mapping's right ever to
//! become writable), checks that it is the region it was told of (its memfd name carries the
//! owner's pid, a per-process nonce and the region's id; its size and seals are the
//! expected ones), and maps it. The seals are what make this safe in both directions: no
//! process, the owner included, can change a byte of it once it is shared, so nothing the
//! parent reads from it was ever written by a worker.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::ptr::NonNull;

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::mman::{MapFlags, ProtFlags, mmap, munmap};

/// The seals every shared region carries once written.
fn seals() -> SealFlag {
    SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL
}

/// A mapping of a region's bytes, unmapped on drop.
#[derive(Debug)]
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory owned by this value. A read-only one is of a sealed
// file (no process can change it); the writable one exists only while its creator fills it,
// through `&mut self`.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` hands out only `&[u8]` of memory nobody can write.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn new(
        fd: impl AsFd,
        len: usize,
        writable: bool,
        read_only_fd: bool,
    ) -> std::io::Result<Mapping> {
        let Some(size) = std::num::NonZeroUsize::new(len) else {
            return Ok(Mapping {
                ptr: NonNull::dangling(),
                len: 0,
                writable,
            });
        };
        let (prot, flags) = match (writable, read_only_fd) {
            // Populated: the pages are made in one call, not in a fault each as they are
            // written (a quarter of a million faults for 1 GiB).
            (true, _) => (
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_SHARED | MapFlags::MAP_POPULATE,
            ),
            // A descriptor opened read-only: the kernel takes from a shared mapping of it
            // the right ever to become writable, so `mprotect` cannot make it so.
            (false, true) => (ProtFlags::PROT_READ, MapFlags::MAP_SHARED),
            // The owner's read-write memfd: a shared mapping of it once write-sealed is
            // refused before Linux 6.7. A private read-only one reads the file's own pages
            // (nothing is copied until a write, and the owner never writes it).
            (false, false) => (ProtFlags::PROT_READ, MapFlags::MAP_PRIVATE),
        };
        // SAFETY: a fresh mapping chosen by the kernel (no address hint) of a file of at
        // least `len` bytes (its size was set, or checked, by the caller and sealed); it
        // aliases no Rust object.
        let ptr = unsafe { mmap(None, size, prot, flags, fd, 0)? };
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
            writable,
        })
    }

    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is a live mapping of `len` readable bytes (or dangling with `len`
        // 0), unmapped only on drop; its bytes change only through `bytes_mut` of the
        // writable mapping, which needs `&mut self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        assert!(self.writable, "only a region being filled is written");
        // SAFETY: a live, writable mapping of `len` bytes, exclusively borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        if self.len > 0 {
            // SAFETY: our own mapping of `len` bytes; no reference into it outlives `self`.
            let _ = unsafe { munmap(self.ptr.cast(), self.len) };
        }
    }
}

/// What names one region: the memfd's name says it, so a worker that opens a descriptor
/// number that has since been reused for another file notices.
pub(super) fn memfd_name(pid: u32, nonce: u64, id: u64) -> String {
    format!("proctor-shared-{pid}-{nonce:016x}-{id}")
}

/// Makes a sealed region of `len` bytes named `name`, written by `fill`: its descriptor and
/// what `fill` returned.
pub(super) fn create<R>(
    name: &str,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> R,
) -> std::io::Result<(OwnedFd, R)> {
    use nix::sys::memfd::MFdFlags;
    let fd =
        nix::sys::memfd::memfd_create(name, MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING)?;
    let size = i64::try_from(len).map_err(|_| std::io::Error::other("region too large"))?;
    nix::unistd::ftruncate(&fd, size)?;
    let out = {
        let mut map = Mapping::new(&fd, len, true, false)?;
        fill(map.bytes_mut())
        // The writable mapping goes here: `F_SEAL_WRITE` is refused while one exists.
    };
    fcntl(fd.as_fd(), FcntlArg::F_ADD_SEALS(seals()))?;
    Ok((fd, out))
}

/// The mapping of an empty region (nothing to open).
pub(super) fn empty() -> Mapping {
    Mapping {
        ptr: NonNull::dangling(),
        len: 0,
        writable: false,
    }
}

/// A read-only mapping of the owner's own sealed region.
pub(super) fn map_own(fd: &OwnedFd, len: usize) -> std::io::Result<Mapping> {
    Mapping::new(fd, len, false, false)
}

/// Opens and maps region `name` of `len` bytes, descriptor `fd` of process `pid` on this
/// host, checking that it is that region and sealed as every region is.
pub(super) fn open(pid: u32, fd: i32, name: &str, len: usize) -> Result<Mapping, String> {
    let path = format!("/proc/{pid}/fd/{fd}");
    // Read-only: the mapping can then never be made writable (`mprotect` is refused), and
    // the seals refuse a write through any other descriptor.
    let file = File::open(&path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let own = format!("/proc/self/fd/{}", file.as_raw_fd());
    let target = std::fs::read_link(&own).map_err(|e| format!("cannot read {own}: {e}"))?;
    let expected = format!("/memfd:{name} (deleted)");
    if target.as_os_str() != expected.as_str() {
        return Err(format!(
            "{path} is no longer the region (its owner dropped it, or this is another host)"
        ));
    }
    let got = fcntl(file.as_fd(), FcntlArg::F_GET_SEALS).map_err(|e| e.to_string())?;
    if !SealFlag::from_bits_truncate(got).contains(seals()) {
        return Err("the region is not sealed".to_string());
    }
    let size = crate::sys::file_len(file.as_fd()).map_err(|e| e.to_string())?;
    if size != len {
        return Err(format!(
            "the region has {size} bytes, not the {len} announced"
        ));
    }
    Mapping::new(&file, len, false, true).map_err(|e| format!("cannot map the region: {e}"))
}
