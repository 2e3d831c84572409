//! This program's image as other processes see it: which build of which binary it is, and
//! where that binary was loaded. Functions travel between processes as addresses (a job names
//! its entry point by address); a forked worker shares the parent's layout, a re-executed or
//! remote one adds the distance between its own anchor and the parent's.
//!
//! A leaf: it imports nothing of the crate, and the worker, the `exec` start method and the
//! remote agent import it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// How far this process's code lies from the parent's: 0 in forked workers.
static SHIFT: AtomicUsize = AtomicUsize::new(0);

/// A function whose address marks where this binary was loaded.
#[inline(never)]
fn anchor() -> usize {
    std::hint::black_box(anchor as fn() -> usize as usize)
}

/// This process's anchor address, for a process that will run this process's functions.
pub(crate) fn anchor_address() -> u64 {
    anchor() as u64
}

/// From now on, addresses taken in a process whose anchor is `parent_anchor` (of this same
/// build) are relocated into this process's layout.
pub(crate) fn relocate_from(parent_anchor: u64) {
    SHIFT.store(
        anchor().wrapping_sub(parent_anchor as usize),
        Ordering::Relaxed,
    );
}

/// The address `entry`, taken in the parent, in this process's layout.
pub(crate) fn relocate(entry: u64) -> u64 {
    entry.wrapping_add(SHIFT.load(Ordering::Relaxed) as u64)
}

/// The identity of the running binary: `build-id:<hex>` from its ELF notes, or, for a
/// binary linked without one, its file's device, inode, size and modification time (enough
/// on one machine, where a re-executed worker runs the very same file).
pub(crate) fn identity() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let build_id = || -> Option<String> {
            use object::Object;
            let file = std::fs::File::open("/proc/self/exe").ok()?;
            let cache = object::read::ReadCache::new(file);
            let binary = object::File::parse(&cache).ok()?;
            let id = binary.build_id().ok()??;
            Some(id.iter().map(|b| format!("{b:02x}")).collect())
        };
        match build_id() {
            Some(hex) => format!("build-id:{hex}"),
            None => {
                use std::os::unix::fs::MetadataExt;
                match std::fs::metadata("/proc/self/exe") {
                    Ok(m) => format!(
                        "file:{}:{}:{}:{}",
                        m.dev(),
                        m.ino(),
                        m.size(),
                        m.mtime_nsec() + m.mtime() * 1_000_000_000
                    ),
                    Err(_) => "unknown".to_string(),
                }
            }
        }
    })
}
