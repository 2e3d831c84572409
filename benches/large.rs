//! Large arguments and results through a process worker, against the copies they cannot
//! avoid: issue 23's target is each direction within 1.5x of two `memcpy`s of its size,
//! with the caller's resident memory growing by about one copy at most beyond the data it
//! holds itself.
//!
//! * `argument`: `submit(len, buf)`: the parent encodes `buf` into the worker's inbox, the
//!   worker decodes it (two copies), and a `usize` comes back.
//! * `result`: `submit(make, n)`: the worker builds `n` bytes (not timed apart: the baseline
//!   builds them too) and encodes them into its arena, the parent decodes them (two copies).
//! * `two memcpys`: a fresh buffer filled from the source, then a second from the first, as
//!   `Vec`s freshly allocated each time (page faults included, as the decoded value's are);
//!   and `warm`, the same copies into buffers already faulted in (the floor: what the pool's
//!   inbox and arena pay once their pages are there, for 5 s after a large transfer).
//!
//! Plain timings (each run moves gigabytes: criterion's many samples would take minutes),
//! medians of `RUNS` runs, side by side in one process. Run pinned and unpinned:
//!
//! ```sh
//! taskset -c 0 cargo bench --bench large
//! cargo bench --bench large
//! PROCTOR_LARGE_MIB=512 cargo bench --bench large   # another size
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use proctor::Pool;
use serde_bytes::ByteBuf;

proctor::init_before_main!();

const RUNS: usize = 5;

fn len_of(buf: ByteBuf) -> usize {
    buf.len()
}

fn make(n: usize) -> ByteBuf {
    ByteBuf::from(vec![7u8; n])
}

fn make_only(n: usize) -> usize {
    black_box(vec![7u8; n]).len()
}

/// Two copies of `src` into fresh buffers (the second from the first).
fn two_memcpys(src: &[u8]) -> usize {
    let a = src.to_vec();
    let b = black_box(&a).to_vec();
    black_box(&b);
    b.len()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// A figure of `/proc/self/status`, in bytes.
fn status(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// Resets the peak resident set (`VmHWM`) to the current one (proc(5), `clear_refs`).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

fn main() {
    let mib: usize = std::env::var("PROCTOR_LARGE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2048);
    let n = mib << 20;
    let pool = Pool::processes(1).build().expect("a process pool");
    let src = vec![3u8; n];
    // The floor: two copies into buffers already faulted in (what the pool's reused inbox
    // and arena pay), measured first and freed before the pool's own runs.
    let warm = {
        let mut a = vec![1u8; n];
        let mut b = vec![2u8; n];
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            a.copy_from_slice(black_box(&src));
            b.copy_from_slice(black_box(&a));
            black_box(&b);
            runs.push(t.elapsed());
        }
        median(runs)
    };
    // What the caller holds before any large transfer: the pool's memory beyond it is what
    // each peak below measures (the worker's memfds keep a transfer's pages a few seconds
    // for the next, and what of them the caller maps counts).
    let baseline = status("VmRSS");
    // Warm-up: the worker's inbox and arena reach their size, the allocator its mappings.
    assert_eq!(
        pool.submit(len_of, ByteBuf::from(src.clone()))
            .join()
            .unwrap(),
        n
    );
    assert_eq!(pool.submit(make, n).join().unwrap().len(), n);

    let mut copies = Vec::new();
    let mut arg = Vec::new();
    let mut res = Vec::new();
    let mut build = Vec::new();
    let (mut arg_rss, mut res_rss) = (0u64, 0u64);
    for _ in 0..RUNS {
        let t = Instant::now();
        assert_eq!(two_memcpys(&src), n);
        copies.push(t.elapsed());

        // The argument: the caller built it (a copy of `src`, outside the timing).
        let buf = ByteBuf::from(src.clone());
        reset_peak();
        let t = Instant::now();
        assert_eq!(pool.submit(len_of, buf).join().unwrap(), n);
        arg.push(t.elapsed());
        // The argument was the caller's own: what the peak adds beyond it is the pool's.
        arg_rss = arg_rss.max(status("VmHWM").saturating_sub(baseline + n as u64));

        let t = Instant::now();
        assert_eq!(pool.submit(make_only, n).join().unwrap(), n);
        build.push(t.elapsed());

        reset_peak();
        let t = Instant::now();
        let got = pool.submit(make, n).join().unwrap();
        res.push(t.elapsed());
        assert_eq!(got.len(), n);
        // The result is the caller's own now: the peak beyond it is the pool's.
        res_rss = res_rss.max(status("VmHWM").saturating_sub(baseline + n as u64));
        drop(got);
    }
    let copies = median(copies);
    let (arg, res, build) = (median(arg), median(res), median(build));
    // The result's trip includes the worker building it; so does its baseline.
    let res_base = copies + build;
    println!("large payloads, {mib} MiB, medians of {RUNS} runs, one process worker");
    println!(
        "  two memcpys                {:>9.1} ms  into fresh buffers (a page fault per 4 KiB)",
        ms(copies)
    );
    println!(
        "  two memcpys, warm          {:>9.1} ms  into buffers already faulted in",
        ms(warm)
    );
    println!(
        "  argument round trip        {:>9.1} ms  {:.2}x two memcpys, {:.2}x warm; caller's peak RSS +{:.2} GiB beyond the argument ({:.2} copies)",
        ms(arg),
        ratio(arg, copies),
        ratio(arg, warm),
        gib(arg_rss),
        arg_rss as f64 / n as f64
    );
    println!(
        "  result round trip          {:>9.1} ms  {:.2}x (two memcpys + building it in the worker, {:.1} ms), {:.2}x warm; caller's peak RSS +{:.2} GiB beyond the result ({:.2} copies)",
        ms(res),
        ratio(res, res_base),
        ratio(res, warm + build),
        ms(build),
        gib(res_rss),
        res_rss as f64 / n as f64
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
