//! The fault soak of process mode: many tasks, about 1 % of them faulty in every way a task
//! can be, while another thread SIGKILLs random workers from outside. Every outcome is
//! checked: exactly one per task, every `Ok` the task's own value, every error on a faulty
//! task (of its fault's kind) or on a task that a kill hit.
//!
//! The outcomes are taken by `map`, by an ordered `stream` and by `stream_unordered`; one
//! setup's workers re-execute the binary (the exec start method) and one's run sandboxed
//! (`Sandbox::compute()`, whose seccomp filter every fault must get through). Some setups give
//! every 64th item a 100 KiB pad, so that jobs cross through the workers' inboxes
//! (and are encoded again from there after a kill) while the rest go through the pipe.
//!
//! `PROCTOR_SOAK_TASKS` sets the size of the CI-sized run; the full run is
//! `cargo test --release -p proctor-pool --test it soak_full -- --ignored --nocapture`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proctor::{Pool, TaskError};
use serde_bytes::ByteBuf;

/// What item `n` does (about 1 % are faulty, spread by a hash so faults land anywhere in a
/// chunk).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Panic,
    Abort,
    Segfault,
    Exit,
    Hang,
    Oom,
}

fn fault_of(n: u64, hangs: bool) -> Fault {
    let h = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54; // 0..1024
    match h {
        0..=1 => Fault::Panic,
        2..=3 => Fault::Abort,
        4..=5 => Fault::Segfault,
        6..=7 => Fault::Exit,
        8 if hangs => Fault::Hang,
        9 => Fault::Oom,
        _ => Fault::None,
    }
}

const MEMORY_LIMIT: u64 = 256 << 20;

/// The pad of item `n`: 100 KiB of `n as u8` for every 64th item when padding, else empty.
fn pad_of(n: u64, pad: bool) -> ByteBuf {
    let len = if pad && n % 64 == 0 { 100 << 10 } else { 0 };
    ByteBuf::from(vec![n as u8; len])
}

/// The soak's task: `2n`, unless item `n` is faulty (or its pad arrived changed: then a value
/// no item returns).
fn soak_task((n, hangs, pad): (u64, bool, ByteBuf)) -> u64 {
    if pad.iter().any(|&b| b != n as u8) {
        return u64::MAX;
    }
    match fault_of(n, hangs) {
        Fault::None => 2 * n,
        Fault::Panic => panic!("item {n} panics"),
        Fault::Abort => std::process::abort(),
        Fault::Segfault => {
            let p = std::hint::black_box(std::ptr::null::<u64>());
            // SAFETY: none: the point is to segfault (a null read the compiler cannot see).
            unsafe { std::ptr::read_volatile(p) }
        }
        Fault::Exit => std::process::exit(3),
        Fault::Hang => {
            std::thread::sleep(Duration::from_secs(30));
            2 * n
        }
        Fault::Oom => {
            let v = vec![1u8; 1 << 30];
            std::hint::black_box(&v).len() as u64
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Setup {
    timeout: bool,
    chunk: Option<usize>,
    max_tasks: Option<usize>,
    retries: u32,
    via: Via,
    pad: bool,
    /// Workers re-execute the binary (`StartMethod::Exec`).
    exec: bool,
    /// Workers run in `Sandbox::compute()`.
    #[cfg_attr(not(feature = "sandbox"), allow(dead_code))]
    sandbox: bool,
    /// Workers are remote: agents started through the command launcher, over TCP.
    remote: bool,
    /// ... over TLS, both workers under one agent.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    tls: bool,
}

/// How the outcomes are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Map,
    Stream,
    Unordered,
}

#[derive(Debug, Default)]
struct Tally {
    ok: u64,
    fault_errors: u64,
    /// Errors on tasks that were not faulty: a kill from outside hit them (or a neighbour's
    /// timeout, whose kill can land on the next task when the first commits just in time).
    collateral: u64,
    kills: u64,
    /// Remote setups: agents killed (each ends all of its host's workers, and is launched
    /// again).
    agent_kills: u64,
    hangs: u64,
    /// Timeouts of items that do not hang: a worker descheduled past the 100 ms limit on a
    /// loaded machine (an honest outcome: the task did run past its limit, by the clock).
    slow: u64,
}

/// The parent of a remote worker: its agent (`None` if the worker is already gone).
#[cfg(feature = "remote")]
fn agent_of(worker: u32) -> Option<u32> {
    let parent = crate::remote::parent(worker)?;
    // A worker whose agent died already belongs to init (or a subreaper): leave it.
    (parent > 1 && parent != std::process::id()).then_some(parent)
}

/// Without the `remote` feature no setup is remote.
#[cfg(not(feature = "remote"))]
fn agent_of(_worker: u32) -> Option<u32> {
    None
}

fn run_soak(n: u64, setup: Setup) -> Tally {
    let mut b = Pool::processes(2)
        .memory_limit(MEMORY_LIMIT)
        .forward_stderr(false);
    if setup.timeout {
        b = b.task_timeout(Duration::from_millis(100));
    }
    if let Some(c) = setup.chunk {
        b = b.chunk_size(c);
    }
    if let Some(m) = setup.max_tasks {
        b = b.max_tasks_per_worker(m);
    }
    if setup.exec {
        b = b.start_method(proctor::StartMethod::Exec);
    }
    #[cfg(feature = "sandbox")]
    if setup.sandbox {
        b = b.sandbox(proctor::Sandbox::compute());
    }
    #[cfg(feature = "remote")]
    if setup.remote && setup.tls {
        // Both workers under one agent, as on one host.
        b = b.remote(
            proctor::Remote::command("exec {exe}", ["localhost"])
                .listen("127.0.0.1:0".parse().unwrap())
                .tls(true)
                .relaunch(u32::MAX),
        );
    } else if setup.remote {
        // TLS is the default: the other remote setup runs the sealed plaintext records.
        b = b.remote(
            crate::remote::local_remote()
                .insecure_plaintext(true)
                .relaunch(u32::MAX),
        );
    }
    let pool = b.retries(setup.retries).build().unwrap();
    let items = (0..n).map(|i| (i, setup.timeout, pad_of(i, setup.pad)));
    let stop = AtomicBool::new(false);
    let kills = AtomicU64::new(0);
    let agent_kills = AtomicU64::new(0);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            // A killer from outside: SIGKILL a random worker every 3–8 ms.
            let mut x = 0x2545_F491_4F6C_DD1Du64;
            while !stop.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                std::thread::sleep(Duration::from_millis(3 + x % 6));
                let pids = pool.worker_pids();
                if pids.is_empty() {
                    continue;
                }
                let mut pid = pids[(x >> 8) as usize % pids.len()];
                let mut count = &kills;
                if setup.remote && (x >> 32) % 150 == 0 {
                    // Now and then the worker's agent instead: its host is lost at once.
                    match agent_of(pid) {
                        Some(agent) => (pid, count) = (agent, &agent_kills),
                        None => continue,
                    }
                }
                // SAFETY: kill(2) takes no pointers; the pid is one of the pool's workers
                // (at worst one that just exited, whose pid the fork server has not reaped).
                if unsafe { libc::kill(pid as i32, libc::SIGKILL) } == 0 {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        let out: Vec<Result<u64, TaskError>> = match setup.via {
            Via::Map => pool.map(soak_task, items),
            Via::Stream => pool.stream(soak_task, items).window(2_000).collect(),
            Via::Unordered => {
                let mut got: Vec<Option<Result<u64, TaskError>>> = vec![None; n as usize];
                for (i, o) in pool.stream_unordered(soak_task, items).window(2_000) {
                    assert!(got[i].is_none(), "{setup:?}: item {i} got two outcomes");
                    got[i] = Some(o);
                }
                got.into_iter()
                    .enumerate()
                    .map(|(i, o)| o.unwrap_or_else(|| panic!("{setup:?}: item {i} got none")))
                    .collect()
            }
        };
        stop.store(true, Ordering::Relaxed);
        out
    });
    let mut t = Tally {
        kills: kills.load(Ordering::Relaxed),
        agent_kills: agent_kills.load(Ordering::Relaxed),
        ..Tally::default()
    };
    assert_eq!(out.len() as u64, n, "{setup:?}: one outcome per task");
    for (i, o) in out.iter().enumerate() {
        let i = i as u64;
        let fault = fault_of(i, setup.timeout);
        if fault == Fault::Hang {
            t.hangs += 1;
        }
        match o {
            Ok(v) => {
                assert_eq!(
                    *v,
                    2 * i,
                    "{setup:?}: item {i} returned another item's value"
                );
                assert!(
                    matches!(fault, Fault::None | Fault::Hang),
                    "{setup:?}: faulty item {i} ({fault:?}) returned Ok"
                );
                t.ok += 1;
            }
            Err(e) => {
                let killed = matches!(
                    e,
                    TaskError::Crashed { signal: Some(s), .. }
                        if *s == libc::SIGKILL || *s == libc::SIGTERM
                ) || e.is_poisoned()
                    || (setup.remote && matches!(e, TaskError::Lost { .. }));
                let own = match fault {
                    Fault::None => false,
                    Fault::Panic => e.is_panicked(),
                    Fault::Abort => matches!(
                        e,
                        TaskError::Crashed {
                            signal: Some(libc::SIGABRT),
                            ..
                        }
                    ),
                    Fault::Segfault => matches!(
                        e,
                        TaskError::Crashed {
                            signal: Some(libc::SIGSEGV),
                            ..
                        }
                    ),
                    Fault::Exit => matches!(
                        e,
                        TaskError::Crashed {
                            exit_code: Some(3),
                            ..
                        }
                    ),
                    Fault::Hang => e.is_timed_out(),
                    Fault::Oom => e.is_out_of_memory(),
                };
                let slow = setup.timeout && fault != Fault::Hang && e.is_timed_out();
                assert!(
                    own || killed || slow,
                    "{setup:?}: item {i} ({fault:?}) got an error it did not earn: {e}"
                );
                if slow {
                    t.slow += 1;
                } else if fault == Fault::None {
                    t.collateral += 1;
                } else {
                    t.fault_errors += 1;
                }
            }
        }
    }
    // Each kill from outside ends at most one running task, and each timeout's kill at
    // most one more (the next task, when the overrunning one commits just in time); an
    // agent's kill ends its host's running tasks, one per worker (two at most here).
    assert!(
        t.collateral <= t.kills + 2 * t.agent_kills + t.hangs + t.slow,
        "{setup:?}: {} non-faulty tasks failed but only {} kills, {} agent kills and {} timeouts happened",
        t.collateral,
        t.kills,
        t.agent_kills,
        t.hangs
    );
    if setup.remote && n >= 100_000 {
        assert!(t.agent_kills > 0, "{setup:?}: no agent was killed: {t:?}");
    }
    pool.shutdown();
    t
}

/// Tasks per setup: `PROCTOR_SOAK_TASKS`, or `default`.
fn soak_tasks(default: u64) -> u64 {
    std::env::var("PROCTOR_SOAK_TASKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn setups() -> Vec<Setup> {
    let s = |timeout, chunk, max_tasks, retries| Setup {
        timeout,
        chunk,
        max_tasks,
        retries,
        via: Via::Map,
        pad: false,
        exec: false,
        sandbox: false,
        remote: false,
        tls: false,
    };
    let by = |setup: Setup, via, pad| Setup { via, pad, ..setup };
    let setups = vec![
        s(true, None, None, 0),
        s(false, None, None, 0),
        s(true, Some(1), None, 0),
        s(false, None, Some(50), 0),
        s(true, None, None, 2),
        by(s(true, None, None, 0), Via::Stream, true),
        by(s(false, Some(100), None, 1), Via::Unordered, true),
        by(s(false, None, None, 0), Via::Map, true),
        Setup {
            exec: true,
            ..by(s(true, None, None, 0), Via::Map, true)
        },
        Setup {
            sandbox: true,
            ..by(s(true, Some(100), None, 1), Via::Stream, true)
        },
        Setup {
            remote: true,
            ..by(s(true, None, None, 0), Via::Map, true)
        },
        Setup {
            remote: true,
            tls: true,
            ..by(s(false, Some(100), Some(500), 1), Via::Unordered, false)
        },
    ];
    // The setups of a feature this build lacks are left out.
    setups
        .into_iter()
        .filter(|s| cfg!(feature = "remote") || !s.remote)
        .filter(|s| cfg!(feature = "sandbox") || !s.sandbox)
        .collect()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn soak_every_task_gets_one_right_outcome_under_faults_and_kills() {
    let n = soak_tasks(50_000);
    for setup in setups() {
        let t = run_soak(n, setup);
        assert!(t.ok > 0 && t.fault_errors > 0, "{setup:?}: {t:?}");
    }
}

#[test]
#[ignore = "the full soak: a million tasks per setup, minutes; run it by hand with --release"]
fn soak_full() {
    let n = soak_tasks(1_000_000);
    // PROCTOR_SOAK_ONLY="remote: true" (say) keeps the setups whose description holds it.
    let only = std::env::var("PROCTOR_SOAK_ONLY").unwrap_or_default();
    for setup in setups()
        .into_iter()
        .filter(|s| format!("{s:?}").contains(&only))
    {
        let start = Instant::now();
        let t = run_soak(n, setup);
        println!(
            "{setup:?}: {n} tasks in {:.1}s: {} ok, {} faulty errors, {} collateral, {} kills, {} agent kills, {} hang items, {} slow",
            start.elapsed().as_secs_f64(),
            t.ok,
            t.fault_errors,
            t.collateral,
            t.kills,
            t.agent_kills,
            t.hangs,
            t.slow
        );
    }
}
