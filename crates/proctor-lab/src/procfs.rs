//! The one reader of `/proc`: a process's memory (`smaps_rollup`), its `status` fields and
//! thread count, and the system's `meminfo`. Every experiment, the measuring core and the
//! machine description read `/proc` through here, so a field is parsed one way everywhere.
//!
//! This module is a leaf: it imports nothing from the lab, and anything in the lab may import
//! from it. A `pid` is anything that prints as a `/proc` entry: a number, or `"self"` for this
//! process.

use std::fmt::Display;

use anyhow::{Context, Result};

/// The field `name` of a text made of `Name:   value kB` lines (`status`, `meminfo`,
/// `smaps_rollup`), in bytes (its value is in KiB).
pub fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
        kib.checked_mul(1024)
    })
}

/// The field `name` of the file at `path`, in bytes; `None` if the file or field is missing.
pub fn read_kib_field(path: &str, name: &str) -> Option<u64> {
    kib_field(&std::fs::read_to_string(path).ok()?, name)
}

/// A size the kernel may not report, as the experiments add it up: missing counts as 0.
pub fn or_zero(bytes: Option<u64>) -> f64 {
    bytes.map_or(0.0, |b| b as f64)
}

/// A process's memory, from `/proc/<pid>/smaps_rollup`, in bytes; a field the kernel does not
/// report is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rollup {
    /// Resident set size (`Rss`).
    pub rss: Option<u64>,
    /// Proportional set size (`Pss`): shared pages divided among their sharers.
    pub pss: Option<u64>,
    /// Private pages not written since they were read in (`Private_Clean`).
    pub private_clean: Option<u64>,
    /// Private pages written to (`Private_Dirty`).
    pub private_dirty: Option<u64>,
}

impl Rollup {
    /// The fields of a `smaps_rollup` text.
    pub fn parse(text: &str) -> Rollup {
        Rollup {
            rss: kib_field(text, "Rss"),
            pss: kib_field(text, "Pss"),
            private_clean: kib_field(text, "Private_Clean"),
            private_dirty: kib_field(text, "Private_Dirty"),
        }
    }

    /// The unique set size (`Private_Clean + Private_Dirty`), `None` if either is missing.
    pub fn uss(&self) -> Option<u64> {
        Some(self.private_clean? + self.private_dirty?)
    }

    /// The unique set size with a missing part counted as 0, as the experiments add it up.
    pub fn uss_or_zero(&self) -> f64 {
        or_zero(self.private_clean) + or_zero(self.private_dirty)
    }
}

/// The text of `/proc/<pid>/<file>`, with an error that names the path.
pub fn read(pid: impl Display, file: &str) -> Result<String> {
    let path = format!("/proc/{pid}/{file}");
    std::fs::read_to_string(&path).with_context(|| format!("read {path}"))
}

/// The memory of process `pid`, from its `smaps_rollup`.
///
/// # Errors
///
/// The file cannot be read (the process is gone, or another user's).
pub fn smaps_rollup(pid: impl Display) -> Result<Rollup> {
    Ok(Rollup::parse(&read(pid, "smaps_rollup")?))
}

/// The value of the line `name:` of a `status` text, trimmed: `status_value(text, "CapEff")`.
pub fn status_value<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// The thread count (`Threads:`) of a `status` text.
pub fn threads_in(status: &str) -> Option<u64> {
    status_value(status, "Threads")?.parse().ok()
}

/// The number of threads of process `pid`, from its `status`.
pub fn thread_count(pid: impl Display) -> Option<u64> {
    threads_in(&read(pid, "status").ok()?)
}

/// The system-wide kernel stack memory (`KernelStack` in `/proc/meminfo`), in bytes.
pub fn kernel_stack_bytes() -> Option<u64> {
    read_kib_field("/proc/meminfo", "KernelStack")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_found_by_exact_name_in_bytes() {
        let text = "Rss:                 1084 kB\nPss_Anon:    12 kB\nPss:    900 kB\n";
        assert_eq!(kib_field(text, "Rss"), Some(1084 * 1024));
        assert_eq!(kib_field(text, "Pss"), Some(900 * 1024), "not Pss_Anon");
        assert_eq!(kib_field(text, "Swap"), None);
        assert!(read_kib_field("/proc/self/status", "VmRSS").is_some_and(|b| b > 0));
    }

    #[test]
    fn a_rollup_adds_its_private_pages_into_the_uss() {
        let r = Rollup::parse("Rss: 40 kB\nPss: 30 kB\nPrivate_Clean: 4 kB\nPrivate_Dirty: 8 kB\n");
        assert_eq!(r.rss, Some(40 << 10));
        assert_eq!(r.uss(), Some(12 << 10));
        assert_eq!(r.uss_or_zero(), (12 << 10) as f64);
        let half = Rollup::parse("Private_Dirty: 8 kB\n");
        assert_eq!(half.uss(), None);
        assert_eq!(half.uss_or_zero(), (8 << 10) as f64);
        assert!(smaps_rollup("self").is_ok_and(|r| r.rss.is_some_and(|b| b > 0)));
        let e = smaps_rollup(u32::MAX).unwrap_err().to_string();
        assert!(e.contains("/proc/4294967295/smaps_rollup"), "{e}");
    }

    #[test]
    fn status_lines_are_read_by_exact_name() {
        let status = "Name:\tx\nThreads:\t17\nCapEff:\t0000000000000000\nVmRSS:\t  1 kB\n";
        assert_eq!(threads_in(status), Some(17));
        assert_eq!(threads_in("Name:\tx\n"), None);
        assert_eq!(status_value(status, "CapEff"), Some("0000000000000000"));
        assert_eq!(status_value(status, "Cap"), None);
        assert!(thread_count("self").is_some_and(|n| n >= 1));
    }
}

/// Memory figures of one process, in bytes, and its thread count: what the memory and leaks
/// experiments sample. A field the kernel does not report reads as zero.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Resident set size.
    pub rss: f64,
    /// Proportional set size.
    pub pss: f64,
    /// Unique set size (private clean + private dirty).
    pub uss: f64,
    /// Virtual size (`VmSize`).
    pub vsize: f64,
    /// Page-table size (`VmPTE`).
    pub pte: f64,
    /// Threads.
    pub threads: f64,
}

impl std::ops::Sub for Usage {
    type Output = Usage;
    fn sub(self, o: Usage) -> Usage {
        Usage {
            rss: self.rss - o.rss,
            pss: self.pss - o.pss,
            uss: self.uss - o.uss,
            vsize: self.vsize - o.vsize,
            pte: self.pte - o.pte,
            threads: self.threads - o.threads,
        }
    }
}

/// Reads `/proc/<pid>/smaps_rollup` and `/proc/<pid>/status` (`pid` "self" for this process).
pub fn usage(pid: impl Display) -> Result<Usage> {
    let rollup = smaps_rollup(&pid)?;
    let status = read(&pid, "status")?;
    let field = |n: &str| or_zero(kib_field(&status, n));
    Ok(Usage {
        rss: or_zero(rollup.rss),
        pss: or_zero(rollup.pss),
        uss: rollup.uss_or_zero(),
        vsize: field("VmSize"),
        pte: field("VmPTE"),
        threads: threads_in(&status).unwrap_or(0) as f64,
    })
}
