//! `servers`: prefork processes vs worker threads vs async, under load and under crashes.
//!
//! Three minimal HTTP/1.1 servers with the same handler ([`http`]), each started as its own
//! child process on a loopback port ([`model`]): **prefork** (worker processes accepting on one
//! shared socket, a master that forks dead workers again), **threaded** (a pool of threads
//! accepting on it) and **async** (tokio). A load generator in the lab ([`load`]) drives each
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

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::Serialize;

use super::Experiment;
use crate::report::{Chart, ChartKind, CrossCheck, Figure, Profile, Section, Series, Table, Unit};
use crate::{LabConfig, Progress};

mod http;
mod load;
mod model;

use load::{Load, Outcome};
use model::{Model, Server, Spec};

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
    /// Replies the other clients got after the crash.
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
        Model::Threaded => std::fs::read_to_string(format!("/proc/{}/status", server.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Threads:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
            })
            .map_or(0, |n| n.saturating_sub(1)),
        Model::Async => usize::MAX,
    }
}

/// The server's PSS and USS, summed over its processes, and how many there are.
fn memory(server: &Server) -> (f64, f64, usize) {
    let pids = server.pids();
    let (mut pss, mut uss) = (0.0, 0.0);
    for pid in &pids {
        if let Ok(t) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            let field = |n: &str| crate::procfs::kib_field(&t, n).map_or(0.0, |b| b as f64);
            pss += field("Pss");
            uss += field("Private_Clean") + field("Private_Dirty");
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

fn section_from(r: &ServersResult, s: &Settings) -> Section {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mut section = Section::new(
        "servers",
        "Servers: prefork vs threaded vs async",
        &format!(
            "Three HTTP/1.1 keep-alive servers with one handler (httparse; /cpu: {} rounds of \
             SipHash, calibrated to ~50 µs, measured {:.1} µs; /io: a 5 ms wait; /mixed: the \
             hashing then a 1 ms wait; a blocking worker sleeps its thread, the async server \
             awaits a tokio timer), each a child process forked from the lab on a loopback port: \
             prefork (a master forks one worker process per connection plus two spare, each \
             accepting on the shared socket and serving one connection at a time, and forks \
             again any worker that ends; the load starts once every worker is up), threaded (as many threads, accepting the same way) and \
             async (tokio, {} worker threads, one task per connection). The lab's generator \
             (tokio, 2 threads) keeps N connections busy in a closed loop: {:.0} ms warm-up, then \
             {:.0} ms measured; requests/s = replies that started and ended in the window / the \
             window; latency from the request's first byte written to the reply's last byte \
             read (hdrhistogram, 3 significant digits; closed loop, so a stalled server delays \
             the next request instead of adding to its latency). The /cpu, {CRASH_CONNECTIONS}-connection \
             cell runs {} independent rounds, each on a fresh server. PSS and USS are summed \
             over the server's processes (/proc/PID/smaps_rollup) at the end of the cell; PSS \
             includes the server's share of the pages it still shares with the lab it was \
             forked from, so USS is the server's own memory. \
             Crash: while {CRASH_CONNECTIONS} connections load /cpu for {:.0} ms, at {:.0} ms one more \
             client requests /crash, whose handler writes through an invalid pointer \
             (SIGSEGV); then new connections are tried every 1 ms until one is served: the time \
             from the crashing connection's end to that reply is the recovery. Leak: {} \
             sequential /leak requests (1 MiB each, touched) on fresh connections, against \
             two workers (prefork: recycled after {} requests; threaded), or async; held = \
             growth of the summed USS (private pages: the shared pages a fork leaves move PSS \
             between the lab and the server's processes). Unpinned: the servers and the generator share the CPUs. \
             Every server is stopped (SIGTERM; its master kills and reaps its workers) and \
             reaped at the end.",
            r.cpu_iters,
            r.cpu_ns / 1e3,
            r.cpus,
            ms(s.warmup),
            ms(s.measure),
            s.rounds,
            ms(s.crash_run),
            ms(s.crash_at),
            s.leak_requests,
            r.recycle_after,
        ),
    );
    let placement = "unpinned, generator and server on the same CPUs";
    section.figures.push(Figure::new(
        "servers.cpu_work",
        "one /cpu hashing, measured in the lab",
        r.cpu_ns,
        Unit::Ns,
    ));
    for c in &r.cells {
        let id = format!("{}.{}.{}", c.model, c.handler, c.connections);
        let what = format!("{}, /{}, {} connections", c.model, c.handler, c.connections);
        section.figures.push(
            Figure::new(
                &format!("servers.rps.{id}"),
                &format!("requests/s, {what}"),
                c.rps,
                Unit::PerSec,
            )
            .with_rounds(&c.rounds_rps)
            .placed(placement),
        );
        section.figures.push(
            Figure::new(
                &format!("servers.p99.{id}"),
                &format!("p99 latency, {what}"),
                c.p99_ns,
                Unit::Ns,
            )
            .placed(placement),
        );
        section.figures.push(Figure::new(
            &format!("servers.errors.{id}"),
            &format!("errors, {what}"),
            c.errors as f64,
            Unit::Count,
        ));
        if c.handler == "cpu" {
            section.figures.push(Figure::new(
                &format!("servers.pss.{}.{}", c.model, c.connections),
                &format!(
                    "server PSS after /cpu load, {} with {} connections",
                    c.model, c.connections
                ),
                c.pss_bytes,
                Unit::Bytes,
            ));
        }
    }
    let rps = |model: &str| {
        r.cells
            .iter()
            .find(|c| c.model == model && c.handler == "cpu" && c.connections == CRASH_CONNECTIONS)
            .map(|c| c.rps)
    };
    if let (Some(p), Some(t)) = (rps("prefork"), rps("threaded")) {
        section.figures.push(Figure::new(
            "servers.prefork_over_threaded",
            &format!("prefork / threaded requests/s, /cpu, {CRASH_CONNECTIONS} connections"),
            p / t,
            Unit::Ratio,
        ));
        if !(1.0 / 1.2..=1.2).contains(&(p / t)) {
            section.notes.push(format!(
                "Prefork and threaded differ by more than 20 % on /cpu at {CRASH_CONNECTIONS} \
                 connections ({:.0} vs {:.0} requests/s). Both run the same handler and reply \
                 code and are CPU-bound here; with the generator on the same {} CPUs, the \
                 difference is in what each model costs the scheduler and the memory system: \
                 {} processes with their own page tables (a TLB flush on every switch between \
                 them) against {} threads of one address space.",
                p,
                t,
                r.cpus,
                CRASH_CONNECTIONS + 2,
                CRASH_CONNECTIONS + 2
            ));
        }
    }
    if let (Some(a), Some(t)) = (rps("async"), rps("threaded"))
        && a < 0.8 * t
    {
        section.notes.push(format!(
            "The async server served {:.0} % of the threaded server's requests/s on /cpu at \
             {CRASH_CONNECTIONS} connections. It runs the CPU-bound handler on {} worker threads \
             against {} threads or processes in the blocking models, with the generator on the \
             same CPUs: the scheduler shares CPU time per thread, and a task hashing for 50 µs \
             holds its worker thread, which meanwhile polls no other connection. Tokio's own \
             advice for CPU-bound work is to move it off the runtime (spawn_blocking or a \
             thread pool); this server deliberately does not.",
            100.0 * a / t,
            r.cpus,
            CRASH_CONNECTIONS + 2
        ));
    }
    for c in &r.crashes {
        let m = c.model;
        section.figures.push(Figure::new(
            &format!("servers.crash.kept_serving.{m}"),
            &format!("{m} served a new connection after a handler crash (1 yes, 0 no)"),
            if c.kept_serving { 1.0 } else { 0.0 },
            Unit::Count,
        ));
        if let Some(ns) = c.recovery_ns {
            section.figures.push(Figure::new(
                &format!("servers.crash.recovery.{m}"),
                &format!("{m}: crash until a new connection was served"),
                ns,
                Unit::Ns,
            ));
        }
        section.figures.push(Figure::new(
            &format!("servers.crash.lost.{m}"),
            &format!("{m}: requests the other {CRASH_CONNECTIONS} clients lost to the crash"),
            c.lost as f64,
            Unit::Count,
        ));
        section.figures.push(Figure::new(
            &format!("servers.crash.refused.{m}"),
            &format!("{m}: failed connection attempts of the other clients after the crash"),
            c.refused as f64,
            Unit::Count,
        ));
    }
    if let Some(c) = r.crashes.iter().find(|c| c.model == "prefork") {
        section.figures.push(Figure::new(
            "servers.crash.restarts.prefork",
            "prefork: workers the master forked again after the crash",
            c.restarts as f64,
            Unit::Count,
        ));
    }
    if let Some(l) = r.leaks.first() {
        section.figures.push(Figure::new(
            "servers.leak.leaked",
            "memory the /leak requests leaked in all",
            l.leaked_bytes,
            Unit::Bytes,
        ));
    }
    for l in &r.leaks {
        section.figures.push(
            Figure::new(
                &format!("servers.leak.held.{}", l.model),
                &format!("{}: server USS growth over the leak", l.model),
                l.held_bytes,
                Unit::Bytes,
            )
            // PSS moves by shared pages as workers come and go: less than one leaked request's
            // worth cannot be told from nothing.
            .with_resolution(http::LEAK_BYTES as f64),
        );
    }
    section.figures.push(Figure::new(
        "servers.processes_left",
        "server processes left after the experiment",
        r.processes_left as f64,
        Unit::Count,
    ));
    match &r.wrk {
        Some(w) => {
            section.figures.push(
                Figure::new(
                    "servers.wrk.ours",
                    "our generator, threaded /cpu, 16 connections",
                    w.ours_rps,
                    Unit::PerSec,
                )
                .placed(placement),
            );
            if let Some(theirs) = w.wrk_rps {
                section.figures.push(Figure::new(
                    "servers.wrk.ours_over_wrk",
                    "our generator's requests/s / wrk's, same server",
                    w.ours_rps / theirs,
                    Unit::Ratio,
                ));
                if w.ours_rps < 0.8 * theirs {
                    section.notes.push(format!(
                        "Our generator reached {:.0} % of wrk's requests/s: below 80 %, so the \
                         generator, not the server, may limit the figures above.",
                        100.0 * w.ours_rps / theirs
                    ));
                }
            }
            let mut check: CrossCheck = crate::crosscheck::compare(
                "wrk",
                "servers.wrk.ours",
                Some(w.ours_rps),
                crate::crosscheck::ToolRun {
                    command: w.command.clone(),
                    result: w
                        .wrk_rps
                        .ok_or_else(|| w.why_not.clone().unwrap_or_default()),
                },
                Unit::PerSec,
            );
            if check.note.is_none() && w.wrk_rps.is_some() {
                check.note = Some(
                    "run one after the other against the same threaded server; wrk's figure \
                     covers its whole run"
                        .to_string(),
                );
            }
            section.cross_checks.push(check);
        }
        None => section
            .notes
            .push("wrk is not run in this profile: no cross-check of the generator.".to_string()),
    }

    let us = |ns: f64| {
        if ns.is_finite() {
            format!("{:.0}", ns / 1e3)
        } else {
            "-".to_string()
        }
    };
    let mib = |b: f64| format!("{:.1}", b / 1048576.0);
    section.tables.push(Table {
        title: format!(
            "Under load: {:.0} ms per cell (median of {} rounds for /cpu at {CRASH_CONNECTIONS})",
            ms(s.measure),
            s.rounds
        ),
        columns: [
            "handler",
            "connections",
            "model",
            "workers",
            "requests/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "errors",
            "PSS MiB",
            "USS MiB",
            "processes",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .cells
            .iter()
            .map(|c| {
                vec![
                    format!("/{}", c.handler),
                    c.connections.to_string(),
                    c.model.to_string(),
                    c.workers.to_string(),
                    format!("{:.0}", c.rps),
                    us(c.p50_ns),
                    us(c.p99_ns),
                    us(c.p999_ns),
                    c.errors.to_string(),
                    mib(c.pss_bytes),
                    mib(c.uss_bytes),
                    c.processes.to_string(),
                ]
            })
            .collect(),
    });
    section.tables.push(Table {
        title: format!("A handler crash under {CRASH_CONNECTIONS} connections"),
        columns: [
            "model",
            "kept serving",
            "served again after ms",
            "requests lost",
            "refused connects",
            "replies after",
            "workers restarted",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .crashes
            .iter()
            .map(|c| {
                vec![
                    c.model.to_string(),
                    if c.kept_serving { "yes" } else { "no" }.to_string(),
                    c.recovery_ns
                        .map_or("never".to_string(), |ns| format!("{:.2}", ns / 1e6)),
                    c.lost.to_string(),
                    c.refused.to_string(),
                    c.ok_after.to_string(),
                    c.restarts.to_string(),
                ]
            })
            .collect(),
    });
    section.tables.push(Table {
        title: "A leaking handler (1 MiB per request)".to_string(),
        columns: [
            "model",
            "requests",
            "leaked MiB",
            "held MiB",
            "workers recycled",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .leaks
            .iter()
            .map(|l| {
                vec![
                    l.model.to_string(),
                    l.served.to_string(),
                    mib(l.leaked_bytes),
                    if l.held_bytes < http::LEAK_BYTES as f64 {
                        "< 1.0".to_string()
                    } else {
                        mib(l.held_bytes)
                    },
                    l.restarts.to_string(),
                ]
            })
            .collect(),
    });
    let conns: Vec<usize> = {
        let mut v: Vec<usize> = r.cells.iter().map(|c| c.connections).collect();
        v.dedup();
        v.sort_unstable();
        v.dedup();
        v
    };
    section.charts.push(Chart {
        id: "throughput".to_string(),
        title: "Requests/s, /cpu handler".to_string(),
        kind: ChartKind::Bar,
        x_label: "connections".to_string(),
        y_label: "requests/s".to_string(),
        x_log: false,
        y_log: false,
        categories: conns.iter().map(|c| c.to_string()).collect(),
        series: Model::ALL
            .iter()
            .map(|m| Series {
                name: m.key().to_string(),
                points: conns
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &n)| {
                        let c = r.cells.iter().find(|c| {
                            c.model == m.key() && c.handler == "cpu" && c.connections == n
                        })?;
                        Some((i as f64, c.rps))
                    })
                    .collect(),
            })
            .collect(),
    });
    if !r.skipped.is_empty() {
        section.notes.push(format!(
            "Skipped {:?} connections: the limits leave too little room for one worker per \
             connection.",
            r.skipped
        ));
    }
    if r.processes_left > 0 {
        section.notes.push(format!(
            "{} server process groups still had a process at the end.",
            r.processes_left
        ));
    }
    section.data = serde_json::to_value(r).unwrap_or(serde_json::Value::Null);
    section
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(model: &'static str, rps: f64) -> Cell {
        Cell {
            model,
            handler: "cpu",
            connections: CRASH_CONNECTIONS,
            workers: 18,
            rounds_rps: vec![rps],
            rps,
            ok: 1000,
            errors: 0,
            p50_ns: 500e3,
            p99_ns: 2e6,
            p999_ns: 8e6,
            pss_bytes: 4e6,
            uss_bytes: 1e6,
            processes: 1,
        }
    }

    fn result(prefork: f64, threaded: f64, wrk: Option<WrkRun>) -> ServersResult {
        ServersResult {
            cpus: 2,
            cpu_iters: 1000,
            cpu_ns: 50e3,
            cells: vec![
                cell("prefork", prefork),
                cell("threaded", threaded),
                cell("async", threaded),
            ],
            skipped: Vec::new(),
            crashes: Vec::new(),
            leaks: Vec::new(),
            recycle_after: 4,
            wrk,
            processes_left: 0,
            server_pids: Vec::new(),
        }
    }

    fn has_note(s: &Section, words: &str) -> bool {
        s.notes.iter().any(|n| n.contains(words))
    }

    #[test]
    fn the_section_says_why_when_prefork_and_threaded_differ_and_when_wrk_is_faster() {
        let close = section_from(&result(23_000.0, 22_000.0, None), &settings(Profile::Quick));
        assert!(!has_note(&close, "differ by more than 20 %"));
        assert!(has_note(&close, "wrk is not run"), "{:?}", close.notes);
        let ratio = close
            .figure("servers.prefork_over_threaded")
            .expect("ratio");
        assert!((ratio.value - 23.0 / 22.0).abs() < 1e-9);

        let wrk = WrkRun {
            command: "wrk -t2 -c16 -d1s http://127.0.0.1:1/cpu".to_string(),
            wrk_rps: Some(30_000.0),
            why_not: None,
            ours_rps: 21_000.0,
        };
        let apart = section_from(
            &result(30_000.0, 20_000.0, Some(wrk)),
            &settings(Profile::Quick),
        );
        assert!(
            has_note(&apart, "differ by more than 20 %"),
            "{:?}",
            apart.notes
        );
        assert!(has_note(&apart, "below 80 %"), "{:?}", apart.notes);
        let ours = apart.figure("servers.wrk.ours_over_wrk").expect("ratio");
        assert!((ours.value - 0.7).abs() < 1e-9);
        assert_eq!(apart.cross_checks.len(), 1);
        assert_eq!(apart.cross_checks[0].theirs, Some(30_000.0));

        let missing = WrkRun {
            command: "wrk -t2 -c16 -d1s http://127.0.0.1:1/cpu".to_string(),
            wrk_rps: None,
            why_not: Some("wrk is not installed (Debian package `wrk`)".to_string()),
            ours_rps: 21_000.0,
        };
        let none = section_from(&result(1.0, 1.0, Some(missing)), &settings(Profile::Quick));
        assert!(
            none.figure("servers.wrk.ours_over_wrk").is_none(),
            "no made-up ratio"
        );
        assert_eq!(none.cross_checks[0].theirs, None);
        assert!(
            none.cross_checks[0]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("not installed"))
        );
    }

    #[test]
    fn wrks_requests_per_second_are_read_from_its_summary() {
        let out = "Running 1s test @ http://127.0.0.1:4000/cpu\n  2 threads and 16 connections\n\
                   \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                   \x20   Latency   690.12us  300.01us   5.00ms   80.00%\n\
                   \x20 23861 requests in 1.00s, 2.30MB read\n\
                   Requests/sec:  23861.63\nTransfer/sec:      2.30MB\n";
        assert_eq!(
            crate::crosscheck::parse_wrk_requests_per_sec(out),
            Some(23861.63)
        );
        assert_eq!(
            crate::crosscheck::parse_wrk_requests_per_sec("no summary"),
            None
        );
    }
}
