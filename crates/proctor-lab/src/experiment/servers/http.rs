//! The one handler every server model runs, and the HTTP/1.1 keep-alive loop around it.
//!
//! A request is parsed with `httparse`; its path picks a [`Route`]. The handler does the CPU
//! part itself (hashing, a crash, a leak) and hands back how long the request must then wait,
//! because waiting is where the models differ: a blocking worker sleeps its thread
//! (`std::thread::sleep`), the async model yields its task (`tokio::time::sleep`). Everything
//! else, including the bytes of every reply, is the same code in every model.

use std::hash::{Hash, Hasher};
use std::io::{Read, Write};
use std::time::{Duration, Instant};

/// The wait of `/io`: a backend call that takes 5 ms.
pub(crate) const IO_WAIT: Duration = Duration::from_millis(5);
/// The wait of `/mixed`, after the same hashing as `/cpu`.
pub(crate) const MIXED_WAIT: Duration = Duration::from_millis(1);
/// What one `/leak` request leaks.
pub(crate) const LEAK_BYTES: usize = 1 << 20;
/// The hashing `/cpu` does, in nanoseconds (calibrated to an iteration count before the
/// servers start).
pub(crate) const CPU_TARGET_NS: f64 = 50_000.0;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Cpu,
    Io,
    Mixed,
    Crash,
    Leak,
    NotFound,
}

impl Route {
    pub(crate) fn of(path: &str) -> Route {
        match path {
            "/cpu" => Route::Cpu,
            "/io" => Route::Io,
            "/mixed" => Route::Mixed,
            "/crash" => Route::Crash,
            "/leak" => Route::Leak,
            _ => Route::NotFound,
        }
    }
}

/// `iters` rounds of SipHash (std's `DefaultHasher`), each over the last one's output.
pub(crate) fn hash_work(iters: u64) -> u64 {
    let mut h = std::hint::black_box(0x5eed_u64);
    for i in 0..iters {
        let mut s = std::collections::hash_map::DefaultHasher::new();
        (h, i).hash(&mut s);
        h = s.finish();
    }
    std::hint::black_box(h)
}

/// The iteration count of [`hash_work`] that lasts about [`CPU_TARGET_NS`] here: the median of
/// 21 timings of a fixed count (after one warm-up), scaled.
pub(crate) fn calibrate_cpu() -> u64 {
    const PROBE: u64 = 2_000;
    hash_work(PROBE);
    let mut ns: Vec<f64> = (0..21)
        .map(|_| {
            let t = Instant::now();
            hash_work(PROBE);
            t.elapsed().as_nanos() as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    let per_iter = (ns[ns.len() / 2] / PROBE as f64).max(0.1);
    (CPU_TARGET_NS / per_iter).round().max(1.0) as u64
}

/// Runs the handler's own part of a request: returns the reply's body value and how long the
/// request must wait before the reply goes out.
pub(crate) fn handle(route: Route, cpu_iters: u64) -> (u64, Duration) {
    match route {
        Route::Cpu => (hash_work(cpu_iters), Duration::ZERO),
        Route::Io => (0, IO_WAIT),
        Route::Mixed => (hash_work(cpu_iters), MIXED_WAIT),
        Route::Crash => {
            // A dangling pointer is aligned and non-null, so no debug assertion fires first,
            // and it points into the first page, which is never mapped: the write faults.
            let p = std::ptr::dangling_mut::<u64>();
            // SAFETY: not safe at all, deliberately: a handler that segfaults is the point of
            // `/crash`. It only runs inside a server child, never in the lab.
            unsafe { p.write_volatile(1) };
            (0, Duration::ZERO)
        }
        Route::Leak => {
            // `vec![1; n]` writes every byte, so the leaked MiB is resident, not just reserved.
            let leaked: &'static mut [u8] = Vec::leak(vec![1u8; LEAK_BYTES]);
            (std::hint::black_box(leaked).len() as u64, Duration::ZERO)
        }
        Route::NotFound => (0, Duration::ZERO),
    }
}

/// The reply to a request: status, Content-Length, keep-alive unless `close`.
pub(crate) fn reply(route: Route, value: u64, close: bool) -> Vec<u8> {
    let (status, body) = match route {
        Route::NotFound => ("404 Not Found", "not found\n".to_string()),
        _ => ("200 OK", format!("{value:016x}\n")),
    };
    let connection = if close { "close" } else { "keep-alive" };
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: {connection}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The start of a buffer, parsed as a request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A whole request of `len` bytes, for `route`.
    Request { len: usize, route: Route },
    /// Not a whole request yet: read more.
    Partial,
    /// Not HTTP: the connection is closed.
    Bad,
}

/// Parses the first request in `buf` (GET requests: no body).
pub(crate) fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => Parsed::Request {
            len,
            route: Route::of(req.path.unwrap_or("")),
        },
        Ok(httparse::Status::Partial) if buf.len() < REQUEST_LIMIT => Parsed::Partial,
        _ => Parsed::Bad,
    }
}

/// The longest request head a server reads.
const REQUEST_LIMIT: usize = 8 * 1024;

/// Serves one connection on a blocking socket until the client closes it, an error, or
/// `budget` requests (then the last reply says `Connection: close`); returns the requests
/// served. `served` counts every reply, in memory the lab can read.
pub(crate) fn serve_blocking(
    mut stream: std::net::TcpStream,
    cpu_iters: u64,
    budget: Option<u64>,
    served: &std::sync::atomic::AtomicU64,
) -> u64 {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; REQUEST_LIMIT];
    let (mut filled, mut count) = (0, 0u64);
    loop {
        match parse(&buf[..filled]) {
            Parsed::Request { len, route } => {
                let (value, wait) = handle(route, cpu_iters);
                if !wait.is_zero() {
                    std::thread::sleep(wait);
                }
                count += 1;
                let close = budget.is_some_and(|b| count >= b);
                if stream.write_all(&reply(route, value, close)).is_err() {
                    return count;
                }
                served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if close {
                    return count;
                }
                buf.copy_within(len..filled, 0);
                filled -= len;
            }
            Parsed::Partial => match stream.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => return count,
                Ok(n) => filled += n,
            },
            Parsed::Bad => return count,
        }
    }
}

/// [`serve_blocking`] on a tokio socket: the same parse, handler and reply; the wait yields.
pub(crate) async fn serve_async(
    mut stream: tokio::net::TcpStream,
    cpu_iters: u64,
    served: &std::sync::atomic::AtomicU64,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; REQUEST_LIMIT];
    let mut filled = 0;
    loop {
        match parse(&buf[..filled]) {
            Parsed::Request { len, route } => {
                let (value, wait) = handle(route, cpu_iters);
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                if stream.write_all(&reply(route, value, false)).await.is_err() {
                    return;
                }
                served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                buf.copy_within(len..filled, 0);
                filled -= len;
            }
            Parsed::Partial => match stream.read(&mut buf[filled..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => filled += n,
            },
            Parsed::Bad => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_path_and_split_at_their_end() {
        let two = b"GET /cpu HTTP/1.1\r\nHost: x\r\n\r\nGET /io HTTP/1.1\r\n\r\n";
        let Parsed::Request { len, route } = parse(two) else {
            panic!("a whole request")
        };
        assert_eq!(route, Route::Cpu);
        assert_eq!(
            parse(&two[len..]),
            Parsed::Request {
                len: two.len() - len,
                route: Route::Io
            }
        );
        assert_eq!(parse(b"GET /leak HTTP/1.1\r\nHo"), Parsed::Partial);
        assert_eq!(parse(b"\x00\x01 nonsense\r\n\r\n"), Parsed::Bad);
        assert_eq!(Route::of("/nope"), Route::NotFound);
    }

    #[test]
    fn replies_carry_their_length_and_the_connection_header() {
        let r = String::from_utf8(reply(Route::Cpu, 0xab, false)).expect("ascii");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 17\r\n"), "{r}");
        assert!(r.ends_with("\r\n\r\n00000000000000ab\n"), "{r}");
        assert!(r.contains("Connection: keep-alive"), "{r}");
        let r = String::from_utf8(reply(Route::NotFound, 0, true)).expect("ascii");
        assert!(
            r.starts_with("HTTP/1.1 404") && r.contains("Connection: close"),
            "{r}"
        );
    }

    #[test]
    fn the_hash_work_depends_on_its_count() {
        assert_ne!(hash_work(10), hash_work(11));
        assert!(calibrate_cpu() >= 1);
        assert_eq!(handle(Route::Io, 5).1, IO_WAIT);
        assert_eq!(handle(Route::Mixed, 5), (hash_work(5), MIXED_WAIT));
    }
}
