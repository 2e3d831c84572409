//! The parent's ballast: touched memory that makes `fork` copy more page-table entries, with
//! transparent huge pages asked for or refused on that region alone.
//!
//! With THP a 2 MiB extent of anonymous memory is one page-table entry at the PMD level
//! instead of 512 PTEs, so `fork` copies (and the child's exit tears down) 512 times fewer
//! entries for it. Whether a region gets huge pages depends on the system mode in
//! `/sys/kernel/mm/transparent_hugepage/enabled` (`always`, `madvise` or `never`) and on the
//! region's own advice: `madvise(MADV_HUGEPAGE)` asks for them in `always` and `madvise` modes,
//! `MADV_NOHUGEPAGE` refuses them in every mode. Both are per region and need no privilege
//! (madvise(2)). What the region really got is read back from `AnonHugePages` in
//! `/proc/self/smaps_rollup`.

use std::num::NonZeroUsize;
use std::ptr::NonNull;

use anyhow::{Context, Result};
use nix::sys::mman::{MapFlags, MmapAdvise, ProtFlags, madvise, mmap_anonymous, munmap};
use serde::Serialize;

/// The region's advice about transparent huge pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Thp {
    /// No ballast, nothing to advise.
    None,
    /// `MADV_NOHUGEPAGE`: 4 KiB pages only.
    Off,
    /// `MADV_HUGEPAGE`: huge pages where the system mode allows them.
    On,
}

impl Thp {
    /// Words for tables: "-", "off", "on".
    pub(super) fn words(self) -> &'static str {
        match self {
            Thp::None => "-",
            Thp::Off => "off",
            Thp::On => "on",
        }
    }
}

/// The system THP mode, the bracketed word of `/sys/kernel/mm/transparent_hugepage/enabled`
/// ("always [madvise] never" → "madvise"); `None` where THP is not built in.
pub(super) fn system_mode() -> Option<String> {
    let text = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok()?;
    parse_mode(&text)
}

/// The bracketed word of a sysfs choice list.
pub(super) fn parse_mode(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// This process's anonymous memory in transparent huge pages, in bytes.
pub(super) fn anon_huge_bytes() -> Option<u64> {
    crate::procfs::read_kib_field("/proc/self/smaps_rollup", "AnonHugePages")
}

/// Touched memory that makes the parent bigger, unmapped on drop.
#[derive(Debug)]
pub(super) struct Ballast {
    region: Option<(NonNull<libc::c_void>, usize)>,
}

impl Ballast {
    /// Maps `bytes` of private anonymous memory, advises it (`thp`), and writes every byte, so
    /// every page is resident and private (a zeroed, untouched mapping would cost `fork`
    /// nothing).
    pub(super) fn new(bytes: usize, thp: Thp) -> Result<Ballast> {
        let Some(len) = NonZeroUsize::new(bytes) else {
            return Ok(Ballast { region: None });
        };
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks aliases
        // nothing.
        let base = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .with_context(|| format!("map a {} MiB ballast", bytes >> 20))?;
        let ballast = Ballast {
            region: Some((base, bytes)),
        };
        let advice = match thp {
            Thp::On => Some(MmapAdvise::MADV_HUGEPAGE),
            Thp::Off => Some(MmapAdvise::MADV_NOHUGEPAGE),
            Thp::None => None,
        };
        if let Some(advice) = advice {
            // SAFETY: the advice covers exactly the mapping made above, which nothing else
            // uses; THP advice changes how it is backed, never its contents.
            unsafe { madvise(base, bytes, advice) }
                .with_context(|| format!("madvise({advice:?}) on the ballast"))?;
        }
        // SAFETY: the mapping is `bytes` long, readable and writable, and only this value
        // refers to it; a non-zero fill writes every byte.
        unsafe { std::ptr::write_bytes(base.as_ptr().cast::<u8>(), 0xA5, bytes) };
        std::hint::black_box(base);
        Ok(ballast)
    }
}

impl Drop for Ballast {
    fn drop(&mut self) {
        if let Some((base, len)) = self.region.take() {
            // SAFETY: unmaps exactly the mapping made in `new`; nothing refers to it any more.
            unsafe {
                let _ = munmap(base, len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bracketed_mode_is_the_system_mode() {
        assert_eq!(
            parse_mode("always [madvise] never\n").as_deref(),
            Some("madvise")
        );
        assert_eq!(
            parse_mode("[always] madvise never").as_deref(),
            Some("always")
        );
        assert_eq!(parse_mode("always madvise never"), None);
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn a_ballast_is_resident_and_refused_huge_pages_gets_none() {
        let before = crate::measure::process_rss_bytes().expect("VmRSS");
        let huge_before = anon_huge_bytes().unwrap_or(0);
        let b = Ballast::new(16 << 20, Thp::Off).expect("ballast");
        let after = crate::measure::process_rss_bytes().expect("VmRSS");
        assert!(after >= before + (15 << 20), "{before} -> {after}");
        // Other threads of the test binary may fault huge pages in meanwhile; the ballast
        // itself adds none.
        assert!(anon_huge_bytes().unwrap_or(0) < huge_before + (2 << 20));
        drop(b);
        assert!(Ballast::new(0, Thp::None).is_ok());
    }
}
