//! `servers`: prefork processes vs worker threads vs async, under load and under crashes.
//!
//! Three minimal HTTP/1.1 servers with the same handler (`http`), each started as its own
//! child process on a loopback port (`model`): **prefork** (worker processes accepting on one
//! shared socket, a master that forks dead workers again), **threaded** (a pool of threads
//! accepting on it) and **async** (tokio). A load generator in the lab (`load`) drives each
//! with keep-alive connections for a fixed time, per handler (`/cpu`: ~50 µs of hashing,
//! `/io`: a 5 ms wait, `/mixed`: both, a 1 ms wait) and connection count; it reports
//! requests/s, latency percentiles from an hdrhistogram, errors, and the server's PSS and USS
//! at the end.
//!
//! Then the faults. Crash: while 16 connections load the server, one more client asks for
//! `/crash`, whose handler segfaults; the lab counts the requests the other clients lost,
//! whether the server still serves a new connection, and how soon. Leak: `/leak` leaks 1 MiB
//! per request; against a prefork server whose workers are recycled after a request budget
//! and against the threaded and async ones, the lab measures how much of the leak the server
//! still holds. Every server child is stopped and reaped at the end, also on error (a guard),
//! and the section records that none is left.
//!
//! The blocking models serve one connection per worker, as Apache's prefork and worker MPMs
//! do, so they get one worker per keep-alive connection and two spare ones; the async server
//! runs one worker thread per CPU for any number of connections.
//!
//! The folder: `http.rs` is the request parser and the handler the three servers share,
//! `model.rs` starts and stops each server model, `load.rs` is the load generator, `section.rs`
//! turns a [`ServersResult`] into the section, and this file runs the experiment. Only
//! [`Servers`] and the result types are for use outside the folder.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use super::Experiment;
use crate::report::{Profile, Section};
use crate::{LabConfig, Progress};

mod http;
mod load;
mod model;
mod section;

use load::{Load, Outcome};
use model::{Model, Server, Spec};
use section::section_from;

/// The servers experiment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Servers;

/// How much of each phase a profile runs.
#[derive(Debug, Clone)]
struct Settings {
    connections: Vec<usize>,
    handlers: Vec<&'static str>,
    warmup: Duration,
    measure: Duration,
    /// Independent rounds of the `/cpu`, 16-connection cells (the headline's).
    rounds: usize,
    crash_run: Duration,
    crash_at: Duration,
    leak_requests: u64,
    recycle_after: u64,
    wrk: bool,
}

fn settings(profile: Profile) -> Settings {
    match profile {
        Profile::Tiny => Settings {
            connections: vec![1, 16],
            handlers: vec!["cpu"],
            warmup: Duration::from_millis(20),
            measure: Duration::from_millis(80),
            rounds: 1,
            crash_run: Duration::from_millis(400),
            crash_at: Duration::from_millis(100),
            leak_requests: 8,
            recycle_after: 2,
            wrk: false,
        },
        Profile::Quick => Settings {
            connections: vec![1, 16, 256],
            handlers: vec!["cpu", "io", "mixed"],
            warmup: Duration::from_millis(50),
            measure: Duration::from_millis(250),
            rounds: super::ROUNDS,
            crash_run: Duration::from_millis(900),
            crash_at: Duration::from_millis(300),
            leak_requests: 32,
            recycle_after: 4,
            wrk: true,
        },
        Profile::Full => Settings {
            connections: vec![1, 16, 256, 1024],
            handlers: vec!["cpu", "io", "mixed"],
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs(2),
            rounds: super::ROUNDS,
            crash_run: Duration::from_secs(3),
            crash_at: Duration::from_secs(1),
            leak_requests: 64,
            recycle_after: 8,
            wrk: true,
        },
    }
}

/// The connections of the crash phase (and of the headline's throughput cell).
const CRASH_CONNECTIONS: usize = 16;

/// Every sample behind the section, for `Section::data`.
#[derive(Debug, Clone, Serialize)]
pub struct ServersResult {
    /// Logical CPUs this process may use (the async server's worker threads).
    pub cpus: usize,
    /// Iterations of the `/cpu` hashing, calibrated to about 50 µs.
    pub cpu_iters: u64,
    /// What one `/cpu` hashing took, measured in the lab after calibration, in ns.
    pub cpu_ns: f64,
    /// The load cells, in the order they ran.
    pub cells: Vec<Cell>,
    /// Connection counts skipped because the limits leave no room for that many workers.
    pub skipped: Vec<usize>,
    /// One crash run per model.
    pub crashes: Vec<CrashRun>,
    /// One leak run per model.
    pub leaks: Vec<LeakRun>,
    /// The requests each prefork worker serves before it is recycled, in the leak run.
    pub recycle_after: u64,
    /// `wrk` against the threaded server, and our generator against the same server.
    pub wrk: Option<WrkRun>,
    /// Server processes (of any server started) still present at the end.
    pub processes_left: u64,
    /// The first process of every server started (each also its process group's id).
    pub server_pids: Vec<i32>,
}

/// One model, handler and connection count under load.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// prefork, threaded or async.
    pub model: &'static str,
    /// cpu, io or mixed.
    pub handler: &'static str,
    /// Keep-alive connections.
    pub connections: usize,
    /// Worker processes or threads of the server.
    pub workers: usize,
    /// Requests/s of each independent round (a fresh server each); the figure is their median.
    pub rounds_rps: Vec<f64>,
    /// Requests/s of the median round.
    pub rps: f64,
    /// Replies in the median round's window.
    pub ok: u64,
    /// Failed requests and failed connection attempts, median round.
    pub errors: u64,
    /// Latency percentiles of the median round, in ns.
    pub p50_ns: f64,
    /// 99th percentile.
    pub p99_ns: f64,
    /// 99.9th percentile.
    pub p999_ns: f64,
    /// The server's PSS at the end (summed over its processes), in bytes.
    pub pss_bytes: f64,
    /// The server's USS at the end (summed over its processes), in bytes.
    pub uss_bytes: f64,
    /// The server's processes at the end.
    pub processes: usize,
}

/// A handler crash under load.
#[derive(Debug, Clone, Serialize)]
pub struct CrashRun {
    /// prefork, threaded or async.
    pub model: &'static str,
    /// Whether a new connection was served after the crash.
    pub kept_serving: bool,
    /// From the crashing request's connection closing until a new connection was served, in
    /// ns; `None` if none was within the run.
    pub recovery_ns: Option<f64>,
    /// Requests the other clients lost (their connection broke mid-request).
    pub lost: u64,
    /// Connection attempts of the other clients that failed after the crash.
    pub refused: u64,
    /// Requests the other clients sent after the crash that were answered.
    pub ok_after: u64,
    /// Prefork: workers the master forked again.
    pub restarts: u64,
    /// Whether the server's first process was still running at the end.
    pub process_alive: bool,
}

/// A leaking handler.
#[derive(Debug, Clone, Serialize)]
pub struct LeakRun {
    /// prefork (recycled workers), threaded or async.
    pub model: &'static str,
    /// `/leak` requests sent, one per connection, one after the other.
    pub requests: u64,
    /// Replies to them.
    pub served: u64,
    /// Bytes the handler leaked in all.
    pub leaked_bytes: f64,
    /// Growth of the server's USS (summed over its processes) over the leak, in bytes.
    pub held_bytes: f64,
    /// Prefork: workers recycled meanwhile.
    pub restarts: u64,
}

/// `wrk` and our generator against one threaded server, one after the other.
#[derive(Debug, Clone, Serialize)]
pub struct WrkRun {
    /// The exact command.
    pub command: String,
    /// wrk's Requests/sec, or why there is none.
    pub wrk_rps: Option<f64>,
    /// Why wrk gave no figure.
    pub why_not: Option<String>,
    /// Our generator's requests/s with as many connections.
    pub ours_rps: f64,
}

impl Experiment for Servers {
    fn id(&self) -> &'static str {
        "servers"
    }

    fn title(&self) -> &'static str {
        "Servers: prefork vs threaded vs async"
    }

    fn run(&self, config: &LabConfig, progress: &mut dyn Progress) -> Result<Section> {
        let started = Instant::now();
        let s = settings(config.profile);
        let cpus = crate::measure::allowed_cpus().len().max(1);
        let cpu_iters = http::calibrate_cpu();
        let cpu_ns = {
            let t = Instant::now();
            for _ in 0..20 {
                http::hash_work(cpu_iters);
            }
            t.elapsed().as_nanos() as f64 / 20.0
        };
        // Each blocking server forks or starts one worker per connection: keep to half the
        // room the limits leave, as the leaks experiment does.
        let headroom = super::leaks::thread_headroom();
        let (connections, skipped): (Vec<usize>, Vec<usize>) = s
            .connections
            .iter()
            .partition(|&&n| ((n + 2) as u64) <= headroom / 2);
        let rt = load::runtime()?;
        let mut groups = Vec::new();
        let steps = 3 * (connections.len() * s.handlers.len() + 2) + 1;
        progress.begin("servers", steps as u64);

        let mut cells = Vec::new();
        for &handler in &s.handlers {
            for &conns in &connections {
                for m in Model::ALL {
                    let rounds = if handler == "cpu" && conns == CRASH_CONNECTIONS {
                        s.rounds
                    } else {
                        1
                    };
                    let spec = Spec {
                        model: m,
                        workers: workers(m, conns, cpus),
                        cpu_iters,
                        recycle_after: None,
                    };
                    cells.push(cell(&rt, spec, handler, conns, &s, rounds, &mut groups)?);
                    progress.advance(1, &format!("{} /{handler}, {conns} connections", m.key()));
                }
            }
        }
        let mut crashes = Vec::new();
        for m in Model::ALL {
            let spec = Spec {
                model: m,
                workers: workers(m, CRASH_CONNECTIONS, cpus),
                cpu_iters,
                recycle_after: None,
            };
            crashes.push(crash(&rt, spec, &s, &mut groups)?);
            progress.advance(1, &format!("{}: a handler crash", m.key()));
        }
        let mut leaks = Vec::new();
        for m in Model::ALL {
            let spec = Spec {
                model: m,
                workers: if m == Model::Async { cpus } else { 2 },
                cpu_iters,
                recycle_after: (m == Model::Prefork).then_some(s.recycle_after),
            };
            leaks.push(leak(&rt, spec, &s, &mut groups)?);
            progress.advance(1, &format!("{}: a leaking handler", m.key()));
        }
        let wrk = if s.wrk {
            let spec = Spec {
                model: Model::Threaded,
                workers: workers(Model::Threaded, CRASH_CONNECTIONS, cpus),
                cpu_iters,
                recycle_after: None,
            };
            Some(wrk_run(&rt, spec, &s, &mut groups)?)
        } else {
            None
        };
        progress.advance(1, "wrk");
        progress.end();
        drop(rt);
        let processes_left = groups.iter().filter(|&&g| model::group_exists(g)).count() as u64;

        let result = ServersResult {
            cpus,
            cpu_iters,
            cpu_ns,
            cells,
            skipped,
            crashes,
            leaks,
            recycle_after: s.recycle_after,
            wrk,
            processes_left,
            server_pids: groups.iter().map(|g| g.as_raw()).collect(),
        };
        let mut section = section_from(&result, &s);
        section.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
        Ok(section)
    }
}

/// Workers for `conns` keep-alive connections: one each and two spare for the blocking
/// models, one thread per CPU for async.
fn workers(m: Model, conns: usize, cpus: usize) -> usize {
    match m {
        Model::Async => cpus,
        Model::Prefork | Model::Threaded => conns + 2,
    }
}

/// Starts a server and waits until it answers `/cpu`.
fn start(
    rt: &tokio::runtime::Runtime,
    spec: Spec,
    groups: &mut Vec<nix::unistd::Pid>,
) -> Result<Server> {
    let server = Server::start(spec)?;
    groups.push(server.pid);
    let ready = rt.block_on(async {
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if load::probe(server.port, "/cpu", Duration::from_secs(1)).await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        false
    });
    if !ready {
        bail!(
            "the {} server on port {} did not answer within 5 s",
            spec.model.key(),
            server.port
        );
    }
    // A blocking server serves one connection per worker: measuring before every worker is
    // up would leave connections waiting in the backlog, unserved and uncounted.
    let start = Instant::now();
    while worker_count(&server, spec.model) < spec.workers {
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "the {} server started {} of its {} workers within 60 s",
                spec.model.key(),
                worker_count(&server, spec.model),
                spec.workers
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(server)
}

/// The workers a server has started: prefork's worker processes, the threaded server's
/// threads besides its main one; async (a runtime of its own making) counts as complete.
fn worker_count(server: &Server, m: Model) -> usize {
    match m {
        Model::Prefork => server.pids().len().saturating_sub(1),
        Model::Threaded => {
            crate::procfs::thread_count(server.pid).map_or(0, |n| (n as usize).saturating_sub(1))
        }
        Model::Async => usize::MAX,
    }
}

/// The server's PSS and USS, summed over its processes, and how many there are.
fn memory(server: &Server) -> (f64, f64, usize) {
    let pids = server.pids();
    let (mut pss, mut uss) = (0.0, 0.0);
    for pid in &pids {
        if let Ok(rollup) = crate::procfs::smaps_rollup(pid) {
            pss += crate::procfs::or_zero(rollup.pss);
            uss += rollup.uss_or_zero();
        }
    }
    (pss, uss, pids.len())
}

fn percentile(o: &Outcome, q: f64) -> f64 {
    if o.latency.is_empty() {
        f64::NAN
    } else {
        o.latency.value_at_quantile(q) as f64
    }
}

fn cell(
    rt: &tokio::runtime::Runtime,
    spec: Spec,
    handler: &'static str,
    conns: usize,
    s: &Settings,
    rounds: usize,
    groups: &mut Vec<nix::unistd::Pid>,
) -> Result<Cell> {
    let path = match handler {
        "cpu" => "/cpu",
        "io" => "/io",
        _ => "/mixed",
    };
    let (best, rounds_rps) = super::median_round(
        rounds,
        || {
            let server = start(rt, spec, groups)?;
            let out = load::run(
                rt,
                Load {
                    port: server.port,
                    path,
                    connections: conns,
                    warmup: s.warmup,
                    measure: s.measure,
                },
            )?;
            let mem = memory(&server);
            Ok((out, mem))
        },
        |(o, _)| o.rps(),
    )?;
    let (out, (pss, uss, processes)) = best;
    Ok(Cell {
        model: spec.model.key(),
        handler,
        connections: conns,
        workers: spec.workers,
        rps: out.rps(),
        rounds_rps,
        ok: out.ok,
        errors: out.failed + out.refused,
        p50_ns: percentile(&out, 0.5),
        p99_ns: percentile(&out, 0.99),
        p999_ns: percentile(&out, 0.999),
        pss_bytes: pss,
        uss_bytes: uss,
        processes,
    })
}

fn crash(
    rt: &tokio::runtime::Runtime,
    spec: Spec,
    s: &Settings,
    groups: &mut Vec<nix::unistd::Pid>,
) -> Result<CrashRun> {
    let mut server = start(rt, spec, groups)?;
    let port = server.port;
    let load = Load {
        port,
        path: "/cpu",
        connections: CRASH_CONNECTIONS,
        warmup: Duration::ZERO,
        measure: s.crash_run,
    };
    let (crash_at, out, recovery) = rt.block_on(async {
        let start = Instant::now();
        let end = start + s.crash_run;
        let others = tokio::spawn(load::run_from(load, start));
        tokio::time::sleep_until((start + s.crash_at).into()).await;
        // The crashing request fails by design: its reply never comes.
        let _ = load::probe(port, "/crash", Duration::from_secs(1)).await;
        let crashed = Instant::now();
        let mut recovery = None;
        while Instant::now() < end {
            if load::probe(port, "/cpu", end.saturating_duration_since(Instant::now())).await {
                recovery = Some(crashed.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let out = others.await;
        (crashed.duration_since(start), out, recovery)
    });
    let out = out??;
    let process_alive = server.is_running();
    Ok(CrashRun {
        model: spec.model.key(),
        kept_serving: recovery.is_some(),
        recovery_ns: recovery.map(|d| d.as_nanos() as f64),
        lost: out.failed,
        refused: out.refused_after(crash_at),
        ok_after: out.ok_after(crash_at),
        restarts: server
            .counters
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
        process_alive,
    })
}

fn leak(
    rt: &tokio::runtime::Runtime,
    spec: Spec,
    s: &Settings,
    groups: &mut Vec<nix::unistd::Pid>,
) -> Result<LeakRun> {
    let server = start(rt, spec, groups)?;
    let before = memory(&server).1;
    let served = rt.block_on(async {
        let mut served = 0;
        for _ in 0..s.leak_requests {
            if load::probe(server.port, "/leak", Duration::from_secs(2)).await {
                served += 1;
            }
        }
        // One more plain request: a recycled worker has been forked again by then.
        let _ = load::probe(server.port, "/cpu", Duration::from_secs(2)).await;
        served
    });
    let after = memory(&server).1;
    Ok(LeakRun {
        model: spec.model.key(),
        requests: s.leak_requests,
        served,
        leaked_bytes: (served as usize * http::LEAK_BYTES) as f64,
        held_bytes: after - before,
        restarts: server
            .counters
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed),
    })
}

fn wrk_run(
    rt: &tokio::runtime::Runtime,
    spec: Spec,
    s: &Settings,
    groups: &mut Vec<nix::unistd::Pid>,
) -> Result<WrkRun> {
    let server = start(rt, spec, groups)?;
    let run = crate::crosscheck::wrk(server.port, "/cpu", 2, CRASH_CONNECTIONS, 1);
    let ours = load::run(
        rt,
        Load {
            port: server.port,
            path: "/cpu",
            connections: CRASH_CONNECTIONS,
            warmup: s.warmup,
            measure: Duration::from_secs(1),
        },
    )?;
    let (wrk_rps, why_not) = match run.result {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e)),
    };
    Ok(WrkRun {
        command: run.command,
        wrk_rps,
        why_not,
        ours_rps: ours.rps(),
    })
}
