//! Large read-only data handed to workers: a 1 GiB `SharedBytes` reaching two process
//! workers (time, and the memory it takes in all processes together), and thirty `map_with`
//! calls with a 50 MB context against one, plain and shared, in both modes, side by side.
//!
//! ```sh
//! cargo bench --bench shared
//! ```
//!
//! Optional argument: the size of part A's region in MiB (default 1024).

use std::time::{Duration, Instant};

use proctor::{Mode, Pool, Shared, SharedBytes};
use serde_bytes::ByteBuf;

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process of the host.
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Reads two bytes of the region, notes when, then holds its worker a while so that the
/// other item goes to the other worker.
fn touch(data: &SharedBytes, i: usize) -> (u32, u64, u8) {
    let b = data[i] ^ data[data.len() - 1 - i];
    let at = monotonic_ns();
    std::thread::sleep(Duration::from_millis(100));
    (std::process::id(), at, b)
}

/// Reads every byte of the region.
fn scan(data: &SharedBytes, _: usize) -> (u32, u64) {
    let sum = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .fold(0u64, u64::wrapping_add);
    std::thread::sleep(Duration::from_millis(200));
    (std::process::id(), sum)
}

/// The `Rss` and `Pss` (bytes) of process `pid`'s mappings of shared regions, and its
/// page tables (`VmPTE`).
fn region_memory(pid: u32) -> (u64, u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let (mut rss, mut pss, mut inside) = (0, 0, false);
    for line in smaps.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if first.contains('-') && !first.ends_with(':') {
            inside = line.contains("memfd:proctor-shared-");
            continue;
        }
        let kib = || {
            words
                .clone()
                .next()
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        match first {
            "Rss:" if inside => rss += kib(),
            "Pss:" if inside => pss += kib(),
            _ => {}
        }
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let pte = status
        .lines()
        .find(|l| l.starts_with("VmPTE:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    (rss, pss, pte)
}

/// `Shmem` of `/proc/meminfo`, in bytes (the whole host's: noisy on a shared machine).
fn host_shmem() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    info.lines()
        .find(|l| l.starts_with("Shmem:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn part_a(size: usize) -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "## A. {} MiB of SharedBytes to 2 process workers\n",
        size >> 20
    );
    let pool = Pool::processes(2).build()?;
    let _ = pool.map(|x: u8| x, [0, 1]);
    let shmem_before = host_shmem();
    let t = Instant::now();
    let data = SharedBytes::with_len(size, |buf| {
        for (i, c) in buf.chunks_mut(8).enumerate() {
            let w = (i as u64).to_le_bytes();
            c.copy_from_slice(&w[..c.len()]);
        }
    })?;
    let made = t.elapsed();
    let t0 = monotonic_ns();
    let start = Instant::now();
    let out = pool.map_with(&data, touch, [0usize, 1]);
    let call = start.elapsed();
    let mut reach = Vec::new();
    for o in &out {
        let (pid, at, _) = o.as_ref().map_err(|e| e.to_string())?;
        reach.push((*pid, Duration::from_nanos(at.saturating_sub(t0))));
    }
    reach.sort();
    reach.dedup_by_key(|r| r.0);
    println!("| step | figure |\n|---|---|");
    println!(
        "| `SharedBytes::with_len` (write {} MiB in place, seal) | {} |",
        size >> 20,
        ms(made)
    );
    for (pid, d) in &reach {
        println!(
            "| call start → a task in worker {pid} has read it | {} |",
            ms(*d)
        );
    }
    println!("| distinct workers reached | {} |", reach.len());
    println!(
        "| whole `map_with` call (2 tasks, each then sleeps 100 ms) | {} |",
        ms(call)
    );
    // Each worker now reads every byte.
    let start = Instant::now();
    let out = pool.map_with(&data, scan, [0usize, 1]);
    let scanned = start.elapsed();
    let mut pids: Vec<u32> = out
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|o| o.0))
        .collect();
    pids.sort();
    pids.dedup();
    let sums: Vec<u64> = out
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|o| o.1))
        .collect();
    assert!(
        sums.windows(2).all(|w| w[0] == w[1]),
        "workers read the same bytes"
    );
    println!(
        "| both workers read all {} MiB (each then sleeps 200 ms) | {} |",
        size >> 20,
        ms(scanned)
    );
    let (prss, ppss, _) = region_memory(std::process::id());
    println!(
        "| parent: region Rss / Pss | {} / {} |",
        mib(prss),
        mib(ppss)
    );
    let mut total_pss = ppss;
    let mut pte = 0;
    for pid in &pids {
        let (rss, pss, t) = region_memory(*pid);
        total_pss += pss;
        pte += t;
        println!(
            "| worker {pid}: region Rss / Pss | {} / {} |",
            mib(rss),
            mib(pss)
        );
    }
    println!(
        "| sum of the region's Pss, all processes | {} |",
        mib(total_pss)
    );
    println!("| workers' page tables (VmPTE, all of it) | {} |", mib(pte));
    println!(
        "| host `Shmem` grew (whole host, shared machine) | {} |",
        mib(host_shmem().saturating_sub(shmem_before))
    );
    drop(pool);
    drop(data);
    println!();
    Ok(())
}

fn bytes_plain(ctx: &ByteBuf, i: usize) -> usize {
    ctx.len() + i
}
fn bytes_shared(ctx: &Shared<ByteBuf>, i: usize) -> usize {
    ctx.len() + i
}
fn bytes_region(ctx: &SharedBytes, i: usize) -> usize {
    ctx.len() + i
}
// The context's own type: a task of `map_with` gets `&C`.
#[allow(clippy::ptr_arg)]
fn table_plain(ctx: &Vec<String>, i: usize) -> usize {
    ctx[i].len()
}
fn table_shared(ctx: &Shared<Vec<String>>, i: usize) -> usize {
    ctx[i].len()
}
fn unit(_: &(), i: usize) -> usize {
    i
}

const CALLS: usize = 30;
const ITEMS: usize = 20;

/// `calls` calls of 20 items on a fresh 2-worker pool, call `i` with context
/// `contexts[i % len]`. (A macro: the context's bounds name serde, which this package does
/// not depend on.)
macro_rules! timed {
    ($mode:expr, $calls:expr, $contexts:expr, $f:expr) => {{
        let contexts = $contexts;
        let pool = Pool::builder($mode, 2).build().expect("a pool");
        let _ = pool.map(|x: u8| x, [0, 1]);
        let start = Instant::now();
        for call in 0..$calls {
            let out = pool.map_with(&contexts[call % contexts.len()], $f, 0..ITEMS);
            assert!(
                out.iter().all(Result::is_ok),
                "{:?}",
                out.iter().find(|o| o.is_err())
            );
        }
        start.elapsed()
    }};
}

/// `make()` timed, and its value.
fn made<C>(make: impl FnOnce() -> C) -> (Duration, C) {
    let start = Instant::now();
    let c = make();
    (start.elapsed(), c)
}

fn part_b() {
    println!(
        "## B. {CALLS} `map_with` calls of {ITEMS} trivial items with a 50 MB context, 2 workers\n"
    );
    println!(
        "A shared context's figures include making it (`Shared::new`, `SharedBytes::new`): a \
         plain one is encoded inside each call. `bound` is the target: 1.2 × (one call + {} \
         calls with a `()` context).\n",
        CALLS - 1
    );
    println!(
        "| mode | context | 1 call | {CALLS} calls | bound | {CALLS} calls ≤ bound |\n|---|---|---|---|---|---|"
    );
    let bytes = ByteBuf::from(vec![7u8; 50_000_000]);
    let mut other = bytes.clone();
    other[0] = 8;
    // About 50 MB of 44-byte strings: a context whose decoding costs.
    let table: Vec<String> = (0..1_136_000)
        .map(|i| format!("{i:0>12}-a-row-of-the-lookup-table-"))
        .collect();
    for mode in [Mode::Threads, Mode::Processes] {
        let base = timed!(mode, CALLS - 1, &[()], unit);
        let row = |what: &str, one: Duration, many: Duration| {
            let bound = (one + base).mul_f64(1.2);
            println!(
                "| {mode} | {what} | {} | {} | {} | {} |",
                ms(one),
                ms(many),
                ms(bound),
                if many <= bound { "yes" } else { "no" }
            );
        };
        let same = [bytes.clone()];
        row(
            "plain `ByteBuf`, the same every call",
            timed!(mode, 1, &same, bytes_plain),
            timed!(mode, CALLS, &same, bytes_plain),
        );
        drop(same);
        // Two values that differ in one byte, alternating: sent every call, as before.
        let two = [bytes.clone(), other.clone()];
        row(
            "plain `ByteBuf`, two values alternating",
            timed!(mode, 1, &two, bytes_plain),
            timed!(mode, CALLS, &two, bytes_plain),
        );
        drop(two);
        let (t1, c1) = made(|| Shared::new(bytes.clone()).expect("a region"));
        let (t30, c30) = made(|| Shared::new(bytes.clone()).expect("a region"));
        row(
            "`Shared<ByteBuf>`",
            t1 + timed!(mode, 1, &[c1], bytes_shared),
            t30 + timed!(mode, CALLS, &[c30], bytes_shared),
        );
        let (t1, c1) = made(|| SharedBytes::new(&bytes).expect("a region"));
        let (t30, c30) = made(|| SharedBytes::new(&bytes).expect("a region"));
        row(
            "`SharedBytes`",
            t1 + timed!(mode, 1, &[c1], bytes_region),
            t30 + timed!(mode, CALLS, &[c30], bytes_region),
        );
        let same = [table.clone()];
        row(
            "plain `Vec<String>`, the same every call",
            timed!(mode, 1, &same, table_plain),
            timed!(mode, CALLS, &same, table_plain),
        );
        drop(same);
        let (t1, c1) = made(|| Shared::new(table.clone()).expect("a region"));
        let (t30, c30) = made(|| Shared::new(table.clone()).expect("a region"));
        row(
            "`Shared<Vec<String>>`",
            t1 + timed!(mode, 1, &[c1], table_shared),
            t30 + timed!(mode, CALLS, &[c30], table_shared),
        );
    }
    println!();
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    proctor::init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let size_mib: usize = match args.first() {
        Some(s) => s.parse().map_err(|e| format!("bad size {s:?}: {e}"))?,
        None => 1024,
    };
    part_a(size_mib << 20)?;
    part_b();
    Ok(())
}
