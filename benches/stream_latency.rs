//! What a stream does with no tuning, next to hand-set windows and chunk sizes, in one run:
//!
//! * `first`: when the first outcome of 1 000 tasks of 1–2 ms each comes back (2 process
//!   workers), and the whole run's time, for the defaults and a few hand settings;
//! * `rss`: the caller's peak RSS while a million 1 KiB items stream through 2 process
//!   workers (each measurement in a fresh process of this bench: peak memory is per process);
//! * `throughput`: trivial items and 1 ms items, the defaults against a small grid of
//!   `window` × `chunk_size`, in both modes;
//! * `stop`: how long a stream of 300 ms tasks takes to end after its `Canceller` fires, and
//!   `shutdown` after it, against dropping the stream and shutting down without cancelling.
//!
//! ```sh
//! cargo bench --bench stream_latency            # everything
//! cargo bench --bench stream_latency -- first   # one part: first, rss, stop, throughput
//! cargo bench --bench stream_latency -- trivial # the trivial items' throughput alone
//! ```

use std::time::{Duration, Instant};

use proctor::{Mode, Pool};

fn trivial(n: u64) -> u64 {
    n.wrapping_add(1)
}

/// Keeps its CPU busy for `us` microseconds (a parse, say), then returns it.
fn spin_us(us: u64) -> u64 {
    let start = Instant::now();
    while start.elapsed() < Duration::from_micros(us) {
        std::hint::spin_loop();
    }
    us
}

fn nap_ms(ms: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    ms
}

/// The length of a 1 KiB item.
fn kib_len(item: Vec<u8>) -> usize {
    item.len()
}

/// The process's peak resident memory, in KiB (`VmHWM`).
fn peak_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A hand setting: `window` items and a fixed `chunk_size`, or the defaults (`None`).
type Setting = Option<(usize, usize)>;

fn label(s: Setting) -> String {
    match s {
        None => "defaults".to_string(),
        Some((w, c)) => format!("window {w}, chunk {c}"),
    }
}

fn pool_for(mode: Mode, s: Setting) -> Pool {
    let b = Pool::builder(mode, 2);
    let b = match s {
        Some((_, chunk)) => b.chunk_size(chunk),
        None => b,
    };
    b.build().expect("a pool")
}

/// Runs a stream of `f` over `items` under setting `s`: (time to the first outcome, whole time).
fn run<F>(mode: Mode, s: Setting, f: F, items: Vec<u64>) -> (Duration, Duration)
where
    F: Fn(u64) -> u64 + Copy + Send + Sync + 'static,
{
    let pool = pool_for(mode, s);
    let n = items.len();
    let start = Instant::now();
    let stream = pool.stream(f, items);
    let stream = match s {
        Some((w, _)) => stream.window(w),
        None => stream,
    };
    let mut first = None;
    let mut count = 0;
    for o in stream {
        o.expect("a task's outcome");
        first.get_or_insert_with(|| start.elapsed());
        count += 1;
    }
    let all = start.elapsed();
    assert_eq!(count, n, "every outcome");
    (first.unwrap_or(all), all)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

/// Runs every setting `rounds` times, interleaved (a shared machine's load falls on all of
/// them alike), and keeps each one's best (first outcome, whole time).
fn best_of(
    rounds: usize,
    settings: &[Setting],
    mut one: impl FnMut(Setting) -> (Duration, Duration),
) -> Vec<(Duration, Duration)> {
    let mut best = vec![(Duration::MAX, Duration::MAX); settings.len()];
    for _ in 0..rounds {
        for (k, &s) in settings.iter().enumerate() {
            let (first, all) = one(s);
            best[k] = (best[k].0.min(first), best[k].1.min(all));
        }
    }
    best
}

/// Prints each setting's whole time, and the defaults' (the first setting) against the best
/// of the others.
fn report(settings: &[Setting], times: &[(Duration, Duration)], n: u64) {
    for (s, (_, all)) in settings.iter().zip(times) {
        println!(
            "{:<26} {:>9} ({:.0} ns/item)",
            label(*s),
            ms(*all),
            all.as_nanos() as f64 / n as f64
        );
    }
    let best = times[1..]
        .iter()
        .map(|t| t.1)
        .min()
        .unwrap_or(Duration::MAX);
    println!(
        "defaults / best hand setting: {:.2}x",
        times[0].1.as_secs_f64() / best.as_secs_f64()
    );
}

fn first() {
    println!("## first outcome: 1 000 tasks of 1-2 ms (spinning), 2 process workers, best of 3");
    let items: Vec<u64> = (0..1_000u64).map(|i| 1_000 + (i * 7919) % 1_000).collect();
    let settings = [None, Some((32, 1)), Some((256, 8)), Some((16_384, 2_048))];
    let times = best_of(3, &settings, |s| {
        run(Mode::Processes, s, spin_us, items.clone())
    });
    for (s, (first, all)) in settings.iter().zip(&times) {
        println!(
            "{:<26} first outcome {:>9}, all {:>9}",
            label(*s),
            ms(*first),
            ms(*all)
        );
    }
}

fn rss_child(n: usize) {
    let pool = Pool::processes(2).build().expect("a pool");
    let before = peak_kib().unwrap_or(0);
    let start = Instant::now();
    let items = (0..n).map(|i| vec![(i % 251) as u8; 1024]);
    let total: usize = pool.stream(kib_len, items).map(|o| o.unwrap_or(0)).sum();
    assert_eq!(total, n * 1024);
    println!(
        "{n} items of 1 KiB: {:.2} s, caller peak RSS {:.1} MiB (before the stream {:.1} MiB)",
        start.elapsed().as_secs_f64(),
        peak_kib().unwrap_or(0) as f64 / 1024.0,
        before as f64 / 1024.0
    );
}

fn rss() {
    println!("## caller's peak RSS, 2 process workers, defaults");
    let exe = std::env::current_exe().expect("this bench's path");
    for n in [10_000usize, 1_000_000] {
        let out = std::process::Command::new(&exe)
            .args(["rss-child", &n.to_string()])
            .output()
            .expect("the bench again");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
}

fn throughput(slow_too: bool) {
    for mode in [Mode::Processes, Mode::Threads] {
        let trivial_grid = [
            None,
            Some((1_024, 256)),
            Some((16_384, 1_024)),
            Some((16_384, 4_096)),
            Some((131_072, 4_096)),
            Some((131_072, 16_384)),
        ];
        // Two lengths: the short run is mostly the ramp from one-item jobs (a few ms).
        for n in [2_000_000u64, 10_000_000] {
            println!("## {n} trivial items, {mode}, 2 workers, best of 3");
            let times = best_of(3, &trivial_grid, |s| {
                run(mode, s, trivial, (0..n).collect())
            });
            report(&trivial_grid, &times, n);
        }
        if !slow_too {
            continue;
        }

        let slow_grid = [
            None,
            Some((32, 1)),
            Some((256, 1)),
            Some((256, 4)),
            Some((4_096, 16)),
        ];
        let n = 2_000u64;
        println!("## {n} items of 1 ms (spinning), {mode}, 2 workers, best of 2");
        let times = best_of(2, &slow_grid, |s| {
            run(mode, s, spin_us, vec![1_000; n as usize])
        });
        report(&slow_grid, &times, n);
    }
}

fn stop() {
    println!("## stopping a stream of 300 ms tasks (sleeping), 2 process workers");
    for cancel in [true, false] {
        let pool = Pool::processes(2).build().expect("a pool");
        let mut stream = pool.stream(nap_ms, std::iter::repeat_n(300u64, 1_000));
        let canceller = stream.canceller();
        // Let the first tasks start.
        assert!(stream.next_timeout(Duration::from_millis(100)).is_err());
        let start = Instant::now();
        if cancel {
            canceller.cancel();
            assert!(stream.next().is_none());
        }
        let ended = start.elapsed();
        drop(stream);
        pool.shutdown();
        let all = start.elapsed();
        println!(
            "{:<26} stream ended after {:>9}, shutdown done after {:>9}",
            if cancel {
                "cancel(), then shutdown"
            } else {
                "drop, then shutdown"
            },
            ms(ended),
            ms(all)
        );
    }
}

fn main() {
    proctor::init();
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("rss-child") {
        let n = args
            .get(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(1_000_000);
        rss_child(n);
        return;
    }
    let part = args.first().map_or("all", String::as_str);
    println!("(each figure from one run on this machine; the machine may be shared)");
    if matches!(part, "all" | "first") {
        first();
    }
    if matches!(part, "all" | "rss") {
        rss();
    }
    if matches!(part, "all" | "stop") {
        stop();
    }
    if matches!(part, "all" | "throughput" | "trivial") {
        throughput(part != "trivial");
    }
}
