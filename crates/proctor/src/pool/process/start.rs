//! Building a process pool: its fork server's doorbell, its remote hub if it has one, its
//! first workers, and the probe every worker runs before `build()` returns when anything
//! could stop a worker from starting (a memory limit, an initializer, the `exec` start
//! method, remote hosts, a sandbox): its failure is `build()`'s error, not a respawn loop
//! later. Only [`ProcessPool::new`] is for use outside.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::call::entry_of;
use super::recovery::Machine;
use super::{Config, EXIT_WAIT, ProcessPool, Shared, State};
use crate::arena;
use crate::doorbell::Doorbell;
use crate::error::{Error, ErrorKind};
use crate::server::Exit;
use crate::sys::SharedMapping;
use crate::wire;

/// True if the probe committed one record, its `Ok` result.
fn probe_ok(arena: &SharedMapping) -> bool {
    let p = arena::progress(arena);
    p.committed == 1
        && arena::records(arena, &p)
            .and_then(|r| wire::decode_record(r).ok())
            .is_some_and(|(tag, _, _)| tag == wire::RecordTag::Ok)
}

/// What a worker must manage under the pool's memory limit at `build()`: its first job
/// allocates its read buffer and whatever the task needs, so the probe allocates 1 MiB (above
/// glibc's mmap threshold, where `RLIMIT_DATA` bites at once).
const PROBE_BYTES: usize = 1 << 20;

/// How long `build()` waits for a re-executed worker to answer its probe.
const EXEC_WAIT: Duration = Duration::from_secs(10);

/// The probe a worker runs at `build()`: it allocates `n` bytes (under a memory limit) and
/// returns the worker's sandbox report, if it has a sandbox. It is no task (the recovery
/// machine never sees it), so a sandboxed pool's fresh-worker-per-task rule leaves the
/// probed worker to its first task.
fn probe(n: usize) -> Option<crate::SandboxReport> {
    std::hint::black_box(vec![1u8; n]);
    crate::sandbox::report_task(())
}

/// The sandbox report in a probe's record.
fn probe_report(arena: &SharedMapping) -> Option<crate::SandboxReport> {
    let p = arena::progress(arena);
    let (_, payload, _) = wire::decode_record(arena::records(arena, &p)?).ok()?;
    postcard::from_bytes::<Option<crate::SandboxReport>>(payload).ok()?
}

impl ProcessPool {
    pub(crate) fn new(config: Config) -> Result<ProcessPool, Error> {
        let server = crate::server::shared()?;
        let doorbell = Arc::new(Doorbell::new().map_err(|e| Error::new(ErrorKind::Spawn(e)))?);
        server.register(&doorbell);
        let n = config.workers;
        let remote = match &config.remote {
            Some(r) => Some(
                crate::remote::hub::Hub::start(
                    r,
                    n,
                    server,
                    config.task_timeout,
                    config.memory_limit,
                    config.forward_stderr > 0,
                    Arc::clone(&doorbell),
                )
                .map_err(|message| Error::new(ErrorKind::Remote { message }))?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            server,
            doorbell,
            state: Mutex::new(State {
                machine: Machine::new(n, config.max_tasks_per_worker, config.retries),
                workers: Vec::with_capacity(n),
                exits: vec![None; n],
                relaunching: vec![false; n],
                deferred: vec![false; n],
                retired: Vec::new(),
                driving: false,
                waiters: 0,
                delivered: false,
                deaths_seen: super::driver::deaths(server, remote.as_ref()),
                last_drain: Instant::now(),
                records: Vec::new(),
                deliveries: Vec::new(),
                actions: Vec::new(),
                queue: Default::default(),
                out: Vec::new(),
                spawn_error: None,
                init_failed: None,
                supervisor_parked: false,
                awaiting: 0,
                stopping: false,
                next_worker_id: n as u32, // checked by `build`
            }),
            cond: Condvar::new(),
            supervisor: Condvar::new(),
            next_task: AtomicU64::new(0),
            config,
            remote,
        });
        let mut pool = ProcessPool {
            shared,
            supervisor: None,
            sandbox_report: None,
            last_context: std::sync::Mutex::new(None),
        };
        for id in 0..n as u32 {
            let w = pool
                .shared
                .spawn_worker(id as usize, id)
                .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
            pool.shared.lock().workers.push(Some(w));
        }
        let exec = pool.shared.config.start_method == crate::StartMethod::Exec;
        let c = &pool.shared.config;
        let sandboxed = c.sandbox.is_some();
        if c.memory_limit.is_some() || c.init.is_some() || exec || c.remote.is_some() || sandboxed {
            let report = pool.probe_workers()?;
            if sandboxed {
                // A sandbox that cannot be applied ended the probe with the worker's reason.
                pool.sandbox_report = Some(report.ok_or_else(|| {
                    Error::new(ErrorKind::Sandbox {
                        message: "a worker ran without applying it".into(),
                    })
                })?);
            }
        }
        let shared = Arc::clone(&pool.shared);
        let supervisor = std::thread::Builder::new()
            .name("proctor-supervisor".into())
            .spawn(move || shared.supervise())
            .map_err(|e| Error::new(ErrorKind::Spawn(e)))?;
        pool.supervisor = Some(supervisor);
        Ok(pool)
    }

    /// Runs a probe job on every worker and waits for it: so that `build()` returns once
    /// every worker has run its initializer (or fails with the initializer's panic), and
    /// so that a memory limit too small for an idle worker (the probe then allocates 1 MiB)
    /// is an error from `build()` rather than a respawn loop later.
    fn probe_workers(&self) -> Result<Option<crate::SandboxReport>, Error> {
        let shared = &self.shared;
        let limit = shared.config.memory_limit;
        let bytes = if limit.is_some() { PROBE_BYTES } else { 0 };
        let entry = entry_of(probe);
        let mut frame = Vec::new();
        wire::begin_run(&mut frame);
        wire::append(&bytes, &mut frame).expect("a usize encodes");
        wire::finish_run(&mut frame, 0, entry, entry ^ shared.server.secret, 1);
        let too_small = |how: &str| {
            Error::invalid(format!(
                "memory_limit of {} bytes is too small for an idle worker process: {how}",
                limit.unwrap_or(0)
            ))
        };
        let mut st = shared.lock();
        // Without a memory limit the initializer may take its time; with one, a worker
        // that does not answer is taken to be stuck under the limit.
        let exec = shared.config.start_method == crate::StartMethod::Exec;
        let deadline = match (limit, shared.config.init) {
            (Some(_), _) => Some(Instant::now() + EXIT_WAIT),
            // A re-executed program that never reaches `init()` would run its own `main`.
            (None, None) if exec || shared.remote.is_some() => Some(Instant::now() + EXEC_WAIT),
            (None, _) => None,
        };
        let st = &mut *st;
        let mut report = None;
        for (w, exit_of) in st.workers.iter_mut().zip(st.exits.iter_mut()) {
            let Some(w) = w.as_mut() else { continue };
            arena::reset(&w.arena, false, shared.arena_max());
            let sent = w.host.send(&frame).is_ok();
            w.sent_seq += 1;
            let want = w.sent_seq;
            arena::sent(&w.arena, want);
            loop {
                w.host.pump();
                if sent && arena::done_seq(&w.header) == want {
                    if probe_ok(&w.arena) {
                        report = report.or_else(|| probe_report(&w.arena));
                        break;
                    }
                    return Err(too_small(&format!(
                        "it could not allocate {PROBE_BYTES} bytes"
                    )));
                }
                let exit = w.host.try_exit();
                let late = deadline.is_some_and(|d| Instant::now() >= d);
                if !sent || exit.is_some() || late {
                    let exit = match exit {
                        // The pipe closed first: wait for the worker's end, to say why.
                        None if !sent => w.host.wait_exit(EXIT_WAIT),
                        exit => exit,
                    };
                    // Known, so that dropping the pool does not wait for it again.
                    *exit_of = exit;
                    w.drain_stderr();
                    if exit == Some(Exit::Code(crate::exit::ExitCode::SandboxFailed.code() as u8)) {
                        return Err(Error::new(ErrorKind::Sandbox {
                            message: w.sandbox_failure(),
                        }));
                    }
                    if exit == Some(Exit::Code(crate::exit::ExitCode::StartFailed.code() as u8)) {
                        return Err(Error::new(ErrorKind::Spawn(std::io::Error::other(
                            format!(
                                "a re-executed worker refused to start: {}",
                                w.start_failure()
                            ),
                        ))));
                    }
                    if exit == Some(Exit::Code(crate::exit::ExitCode::InitFailed.code() as u8)) {
                        return Err(Error::new(ErrorKind::WorkerInit {
                            message: format!("the initializer panicked: {}", w.init_failure()),
                        }));
                    }
                    let how = match exit {
                        Some(Exit::Signal(s)) => {
                            format!("was killed by {}", crate::error::signal_description(s))
                        }
                        Some(Exit::Code(c)) => format!("exited with code {c}"),
                        None if exec => format!(
                            "did not answer within {} s (does `main` call proctor::init() on \
                             every run, before anything else?)",
                            EXEC_WAIT.as_secs()
                        ),
                        None => "did not answer".to_string(),
                    };
                    if shared.config.init.is_some() && limit.is_none() {
                        return Err(Error::new(ErrorKind::WorkerInit {
                            message: format!(
                                "a worker {how} while running the initializer; its stderr \
                                 ended: {}",
                                w.job_stderr().trim_end()
                            ),
                        }));
                    }
                    if limit.is_none() {
                        return Err(Error::new(ErrorKind::Spawn(std::io::Error::other(
                            format!(
                                "a worker {how} while starting; its stderr ended: {}",
                                w.job_stderr().trim_end()
                            ),
                        ))));
                    }
                    return Err(too_small(&format!(
                        "one {how} while starting (or allocating {PROBE_BYTES} bytes)"
                    )));
                }
                let seq = shared.doorbell.seq();
                match w.host.conn() {
                    Some(c) => {
                        shared
                            .doorbell
                            .poll_wait(seq, &[c.data_fd()], Duration::from_millis(5))
                    }
                    None => shared.doorbell.wait(seq, Duration::from_millis(5)),
                }
            }
        }
        Ok(report)
    }
}
