//! The lab's load generator: N keep-alive connections, closed loop, fixed duration.
//!
//! Each connection is one tokio task that sends a request, reads the whole reply and sends the
//! next (as `wrk` does). A request whose connection fails is an error; the task then connects
//! again (10 ms apart, so a dead server is not hammered). Latency is from the first byte
//! written to the last byte read, into one hdrhistogram per connection, merged at the end;
//! only requests that start after the warm-up and finish before the end count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One run of the generator.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    pub port: u16,
    pub path: &'static str,
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
}

/// What a run saw.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    /// Replies inside the measuring window.
    pub ok: u64,
    /// Failed requests (the connection broke or closed mid-request), over the whole run.
    pub failed: u64,
    /// Failed connection attempts, over the whole run.
    pub refused: u64,
    /// The measuring window.
    pub window: Duration,
    /// Latencies of the replies in the window, in ns.
    pub latency: Histogram<u64>,
    /// When each failed request failed, from the start of the run.
    pub failures_at: Vec<Duration>,
    /// When each failed connection attempt failed, from the start of the run.
    pub refused_at: Vec<Duration>,
    /// When each answered request (in the window or not) was sent, from the start of the run.
    pub ok_at: Vec<Duration>,
}

impl Outcome {
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// Failed connection attempts after `t`.
    pub(crate) fn refused_after(&self, t: Duration) -> u64 {
        self.refused_at.iter().filter(|&&at| at > t).count() as u64
    }

    /// Answered requests sent after `t` (a reply already on its way at `t` does not count:
    /// it says nothing of what the server did after).
    pub(crate) fn ok_after(&self, t: Duration) -> u64 {
        self.ok_at.iter().filter(|&&at| at > t).count() as u64
    }
}

/// A runtime for the generator: as many worker threads as `wrk -t2` uses.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("start the load generator's runtime")
}

struct Tally {
    ok: u64,
    failed: u64,
    refused: u64,
    hist: Histogram<u64>,
    failures_at: Vec<Duration>,
    refused_at: Vec<Duration>,
    ok_at: Vec<Duration>,
}

/// Runs `load` to completion.
pub(crate) fn run(rt: &tokio::runtime::Runtime, load: Load) -> Result<Outcome> {
    rt.block_on(run_from(load, Instant::now()))
}

/// Runs `load`, its clock started at `start`.
pub(crate) async fn run_from(load: Load, start: Instant) -> Result<Outcome> {
    {
        let request: Arc<[u8]> = format!("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", load.path)
            .into_bytes()
            .into();
        let tasks: Vec<_> = (0..load.connections)
            .map(|_| tokio::spawn(connection(load, start, Arc::clone(&request))))
            .collect();
        let mut out = Outcome {
            ok: 0,
            failed: 0,
            refused: 0,
            window: load.measure,
            latency: Histogram::new(3).context("histogram")?,
            failures_at: Vec::new(),
            refused_at: Vec::new(),
            ok_at: Vec::new(),
        };
        for t in tasks {
            let t = t.await.context("a load connection panicked")??;
            out.ok += t.ok;
            out.failed += t.failed;
            out.refused += t.refused;
            out.latency.add(&t.hist).context("merge histograms")?;
            out.failures_at.extend(t.failures_at);
            out.refused_at.extend(t.refused_at);
            out.ok_at.extend(t.ok_at);
        }
        out.failures_at.sort();
        Ok(out)
    }
}

async fn connection(load: Load, start: Instant, request: Arc<[u8]>) -> Result<Tally> {
    let (window_start, end) = (start + load.warmup, start + load.warmup + load.measure);
    let mut t = Tally {
        ok: 0,
        failed: 0,
        refused: 0,
        hist: Histogram::new(3).context("histogram")?,
        failures_at: Vec::new(),
        refused_at: Vec::new(),
        ok_at: Vec::new(),
    };
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 4096];
    while Instant::now() < end {
        let s = match stream.as_mut() {
            Some(s) => s,
            None => match connect(load.port, end).await {
                Some(s) => stream.insert(s),
                None => {
                    t.refused += 1;
                    t.refused_at.push(start.elapsed());
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent = Instant::now();
        match tokio::time::timeout_at(end.into(), exchange(s, &request, &mut buf)).await {
            Err(_) => break,
            Ok(Ok(())) => {
                let done = Instant::now();
                if sent >= window_start && done <= end {
                    t.ok += 1;
                    let _ = t.hist.record(done.duration_since(sent).as_nanos() as u64);
                }
                t.ok_at.push(sent.duration_since(start));
            }
            Ok(Err(_)) => {
                t.failed += 1;
                t.failures_at.push(start.elapsed());
                stream = None;
            }
        }
    }
    Ok(t)
}

/// Connects with TCP_NODELAY; `None` if the attempt fails or outlasts `end`.
pub(crate) async fn connect(port: u16, end: Instant) -> Option<TcpStream> {
    let s = tokio::time::timeout_at(end.into(), TcpStream::connect(("127.0.0.1", port)))
        .await
        .ok()?
        .ok()?;
    s.set_nodelay(true).ok()?;
    Some(s)
}

/// Writes one request and reads its whole reply (headers, then Content-Length bytes).
pub(crate) async fn exchange(
    s: &mut TcpStream,
    request: &[u8],
    buf: &mut [u8],
) -> std::io::Result<()> {
    s.write_all(request).await?;
    let mut filled = 0;
    loop {
        let n = s.read(&mut buf[filled..]).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..filled]) {
            Ok(httparse::Status::Complete(head)) => {
                let len = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| {
                        std::str::from_utf8(h.value)
                            .ok()?
                            .trim()
                            .parse::<usize>()
                            .ok()
                    })
                    .ok_or(std::io::ErrorKind::InvalidData)?;
                if resp.code != Some(200) {
                    return Err(std::io::ErrorKind::InvalidData.into());
                }
                while filled < head + len {
                    let n = s.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    filled += n;
                }
                // Keep-alive replies are read whole, one at a time: nothing follows.
                return Ok(());
            }
            Ok(httparse::Status::Partial) if filled < buf.len() => continue,
            _ => return Err(std::io::ErrorKind::InvalidData.into()),
        }
    }
}

/// One request on a fresh connection, on a fresh socket: whether a reply came back within
/// `limit`.
pub(crate) async fn probe(port: u16, path: &str, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let Some(mut s) = connect(port, end).await else {
        return false;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut buf = vec![0u8; 4096];
    matches!(
        tokio::time::timeout_at(end.into(), exchange(&mut s, request.as_bytes(), &mut buf)).await,
        Ok(Ok(()))
    )
}
