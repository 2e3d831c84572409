//! Memory figures of processes, from `/proc`: a worker's pages (`smaps_rollup`) and page
//! tables (`status`), and this program's resident memory.

/// A worker process's memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Usage {
    pub(super) rss: u64,
    pub(super) pss: u64,
    pub(super) private: u64,
    pub(super) page_tables: u64,
}

/// The mean usage of the processes `pids` (`None` if any cannot be read, or none given).
pub(super) fn workers(pids: &[u32]) -> Option<Usage> {
    if pids.is_empty() {
        return None;
    }
    let each: Option<Vec<Usage>> = pids.iter().map(|&pid| usage(pid)).collect();
    let each = each?;
    let n = each.len() as u64;
    let mean = |field: fn(&Usage) -> u64| each.iter().map(field).sum::<u64>() / n;
    Some(Usage {
        rss: mean(|u| u.rss),
        pss: mean(|u| u.pss),
        private: mean(|u| u.private),
        page_tables: mean(|u| u.page_tables),
    })
}

/// One process's figures: `smaps_rollup` for its pages, `status` for its page tables.
fn usage(pid: u32) -> Option<Usage> {
    let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok();
    parse(&read("smaps_rollup")?, &read("status")?)
}

/// This program's resident memory.
pub(super) fn own_rss() -> Option<u64> {
    kib_field(
        &std::fs::read_to_string("/proc/self/smaps_rollup").ok()?,
        "Rss",
    )
}

/// The `Rss`, `Pss` and `Private_*` lines of a `smaps_rollup`, and `VmPTE` of a `status`.
pub(super) fn parse(rollup: &str, status: &str) -> Option<Usage> {
    let field = |name| kib_field(rollup, name);
    Some(Usage {
        rss: field("Rss")?,
        pss: field("Pss")?,
        private: field("Private_Clean")? + field("Private_Dirty")?,
        page_tables: kib_field(status, "VmPTE")?,
    })
}

/// A `Name:   123 kB` line of a `/proc` file, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
