//! Remote workers: agents started by a launcher connect back over TCP and keep every
//! promise a local worker keeps. These tests launch the agents on this machine through the
//! command launcher (the ssh and Slurm presets are tested against real engines in
//! `engines.rs`).

use std::time::Duration;

use proctor::{Pool, Remote, TaskError};

fn square(n: u64) -> u64 {
    n * n
}

/// Remote workers on this host, started by `/bin/sh -c 'exec <this binary>'`, as if on two
/// hosts (one agent each, each host's workers its own): "a" and "b" both run here.
pub(crate) fn local_remote() -> Remote {
    Remote::command("exec {exe}", ["a", "b"])
        .listen("127.0.0.1:0".parse().unwrap())
        .connect_timeout(Duration::from_secs(20))
}

fn faulty(n: u64) -> u64 {
    match n % 100 {
        13 => panic!("thirteen"),
        37 => std::process::abort(),
        _ => n + 1,
    }
}

fn my_pid(_: u64) -> u32 {
    std::process::id()
}

#[test]
fn remote_workers_run_tasks_like_local_ones() {
    let pool = Pool::processes(2).remote(local_remote()).build().unwrap();
    assert_eq!(pool.submit(square, 7).join(), Ok(49));
    let items: Vec<u64> = (0..100_000).collect();
    assert_eq!(
        pool.try_map(square, items.clone()).unwrap(),
        items.iter().map(|n| n * n).collect::<Vec<_>>()
    );
    // The workers are other processes than this one.
    let pids = pool.try_map(my_pid, 0..8u64).unwrap();
    assert!(pids.iter().all(|&p| p != std::process::id()));
    // A panic and an abort stay their tasks' own; every other task completes.
    let out = pool.map(faulty, 0..300u64);
    for (n, o) in out.iter().enumerate() {
        match (n % 100, o) {
            (13, Err(TaskError::Panicked { message, .. })) => assert_eq!(message, "thirteen"),
            (37, Err(TaskError::Crashed { signal, .. })) => {
                assert_eq!(*signal, Some(libc::SIGABRT))
            }
            (_, Ok(v)) => assert_eq!(*v, n as u64 + 1),
            (_, o) => panic!("item {n}: {o:?}"),
        }
    }
    // Large arguments travel inline (no shared inbox across hosts).
    let big = vec![7u8; 3 << 20];
    assert_eq!(pool.submit(|v: Vec<u8>| v.len(), big).join(), Ok(3 << 20));
}

#[test]
fn a_remote_task_that_overruns_is_killed_by_its_agent() {
    let pool = Pool::processes(1)
        .remote(local_remote())
        .task_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let slow = pool.submit(crate::sleep_ms, 10_000);
    match slow.join() {
        Err(TaskError::TimedOut { after, .. }) => {
            assert!(
                after >= Duration::from_millis(300) && after < Duration::from_secs(5),
                "{after:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    // The replacement works.
    assert_eq!(pool.submit(square, 3).join(), Ok(9));
}

#[test]
fn a_launcher_that_fails_is_an_error_that_quotes_it() {
    let e = Pool::processes(1)
        .remote(
            Remote::command("echo no such host >&2; exit 3", ["h"])
                .listen("127.0.0.1:0".parse().unwrap()),
        )
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("no such host") && text.contains("exit"),
        "{text}"
    );
    let e = Pool::processes(1)
        .remote(
            Remote::command("sleep 30", ["h"])
                .listen("127.0.0.1:0".parse().unwrap())
                .connect_timeout(Duration::from_millis(300)),
        )
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("connect within 300 ms"), "{e}");
}

/// The parent of process `pid` (for a remote worker: its agent), `None` once it is gone.
pub(crate) fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.get(stat.rfind(')')? + 2..)?;
    after.split(' ').nth(1)?.parse().ok()
}

/// [`parent`] of a process that must still run.
pub(crate) fn parent_of(pid: u32) -> u32 {
    parent(pid).unwrap_or_else(|| panic!("process {pid} is gone"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s[s.rfind(')').unwrap() + 2..].starts_with('Z'))
}

pub(crate) fn gone_within(pid: u32, wait: Duration) -> bool {
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Stops a remote worker and its agent, as a host that vanished leaves its sockets open.
fn freeze(worker: u32) -> [u32; 2] {
    let agent = parent_of(worker);
    for p in [agent, worker] {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGSTOP,
        )
        .unwrap();
    }
    [agent, worker]
}

/// SIGKILLs each of `pids` (one already gone is no error).
pub(crate) fn kill_all(pids: &[u32]) {
    for &p in pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

fn pid_after_ms(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::process::id()
}

#[test]
fn a_host_that_goes_silent_loses_its_task_and_retries_run_it_elsewhere() {
    for retries in [0, 1] {
        let pool = Pool::processes(2)
            .remote(
                local_remote().heartbeat(Duration::from_millis(100), Duration::from_millis(500)),
            )
            .retries(retries)
            .build()
            .unwrap();
        let pids = pool.try_map(my_pid, 0..2u64).unwrap();
        let tasks: Vec<_> = (0..2).map(|_| pool.submit(pid_after_ms, 1500)).collect();
        std::thread::sleep(Duration::from_millis(200));
        // Which worker runs which task is the pool's business: freeze the first one.
        let frozen = freeze(pids[0]);
        let started = std::time::Instant::now();
        let out: Vec<_> = tasks.into_iter().map(|t| t.join()).collect();
        kill_all(&frozen);
        let lost = out
            .iter()
            .filter(|o| matches!(o, Err(TaskError::Lost { .. })))
            .count();
        let ok = out.iter().filter(|o| o.is_ok()).count();
        if retries == 0 {
            assert_eq!((lost, ok), (1, 1), "{out:?}");
            let e = out
                .iter()
                .find(|o| o.is_err())
                .unwrap()
                .as_ref()
                .unwrap_err();
            assert!(e.is_lost() && e.to_string().contains("no word"), "{e}");
        } else {
            // The lost task ran again on the other worker.
            assert_eq!(ok, 2, "{out:?}");
            assert!(
                out.iter().all(|o| o.as_ref().is_ok_and(|&p| p != pids[0])),
                "{out:?}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(8));
        // The pool goes on with the worker it has left, and the lost host's agent is
        // launched again: its slot fills up with a new worker.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            assert_eq!(pool.try_map(square, 0..1000u64).unwrap()[999], 999 * 999);
            let now = pool.worker_pids();
            if now.len() == 2 && !now.contains(&pids[0]) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lost slot stayed empty: {now:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let again: std::collections::BTreeSet<u32> = pool
            .try_map(my_pid, 0..2000u64)
            .unwrap()
            .into_iter()
            .collect();
        assert!(!again.contains(&pids[0]), "{again:?}");
    }
}

#[test]
fn with_relaunch_off_a_lost_host_leaves_its_slot_empty() {
    let pool = Pool::processes(2)
        .remote(
            local_remote()
                .heartbeat(Duration::from_millis(100), Duration::from_millis(400))
                .relaunch(0),
        )
        .build()
        .unwrap();
    let pids = pool.worker_pids();
    let frozen = freeze(pids[0]);
    std::thread::sleep(Duration::from_millis(1500));
    // The loss is noticed by the next call that drives the pool.
    assert_eq!(pool.try_map(square, 0..100u64).unwrap()[99], 99 * 99);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pool.try_map(square, 0..100u64).unwrap()[99], 99 * 99);
    kill_all(&frozen);
    assert_eq!(pool.worker_pids(), [pids[1]]);
}

#[test]
fn when_the_only_host_is_lost_queued_tasks_wait_for_its_relaunch() {
    // One host, both workers under its agent: killing the agent leaves no worker at all.
    let pool = Pool::processes(2)
        .remote(Remote::command("exec {exe}", ["localhost"]).listen("127.0.0.1:0".parse().unwrap()))
        .retries(1)
        .build()
        .unwrap();
    let before = pool.worker_pids();
    let agent = parent_of(before[0]);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        kill_all(&[agent]);
    });
    // 400 tasks of 2 ms on 2 workers: about 400 ms, so the kill lands mid-map.
    let out = pool.map(pid_after_ms, std::iter::repeat_n(2u64, 400));
    killer.join().unwrap();
    assert_eq!(out.len(), 400);
    for (i, o) in out.iter().enumerate() {
        // Nothing failed NoWorker while the host was away; the tasks it cut short ran again.
        assert!(o.is_ok(), "task {i}: {o:?}");
    }
    let after = pool.worker_pids();
    assert_eq!(after.len(), 2);
    assert!(
        after.iter().all(|p| !before.contains(p)),
        "{before:?} -> {after:?}"
    );
    assert_ne!(
        parent_of(after[0]),
        agent,
        "a new agent runs the new workers"
    );
    let ran_on: std::collections::BTreeSet<u32> = out.into_iter().map(Result::unwrap).collect();
    assert!(
        ran_on.iter().any(|p| after.contains(p)),
        "the relaunched workers took tasks"
    );
}

#[test]
fn a_host_that_cannot_be_launched_again_fails_waiting_tasks_saying_why() {
    // The launcher works once: every later launch fails.
    let marker = std::env::temp_dir().join(format!("proctor-relaunch-{}", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    let template = format!(
        "test -e {m} && {{ echo no second start >&2; exit 1; }}; touch {m}; exec {{exe}}",
        m = marker.display()
    );
    let pool = Pool::processes(2)
        .remote(
            Remote::command(template, ["localhost"])
                .listen("127.0.0.1:0".parse().unwrap())
                .relaunch(1),
        )
        .build()
        .unwrap();
    let workers = pool.worker_pids();
    let agent = parent_of(workers[0]);
    kill_all(&[agent]);
    assert!(
        workers
            .iter()
            .all(|&w| gone_within(w, Duration::from_secs(5)))
    );
    let started = std::time::Instant::now();
    // It waits for the one relaunch (after 0.2 s), which fails: then no worker is left.
    match pool.submit(square, 3).join() {
        Err(TaskError::NoWorker { reason, .. }) => {
            assert!(reason.contains("could not be launched again"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    let _ = std::fs::remove_file(&marker);
}

#[test]
fn one_agent_serves_all_of_its_hosts_workers() {
    let pool = Pool::processes(4)
        .remote(Remote::command("exec {exe}", ["localhost"]).listen("127.0.0.1:0".parse().unwrap()))
        .build()
        .unwrap();
    let mut workers = pool.worker_pids();
    workers.sort_unstable();
    workers.dedup();
    assert_eq!(workers.len(), 4);
    let agents: std::collections::BTreeSet<u32> = workers.iter().map(|&w| parent_of(w)).collect();
    assert_eq!(agents.len(), 1, "one agent for the one host: {agents:?}");
    assert_eq!(
        pool.try_map(square, 0..10_000u64).unwrap()[9_999],
        9_999 * 9_999
    );
}

#[test]
fn nothing_a_remote_pool_started_outlives_it_and_recycled_workers_are_replaced() {
    let pool = Pool::processes(2)
        .remote(local_remote())
        .max_tasks_per_worker(50)
        .build()
        .unwrap();
    let out = pool.try_map(my_pid, 0..1000u64).unwrap();
    let mut workers: Vec<u32> = out.clone();
    workers.sort_unstable();
    workers.dedup();
    assert!(
        workers.len() >= 1000 / 50,
        "recycled every 50 tasks: {} workers",
        workers.len()
    );
    let last = pool.try_map(my_pid, 0..2u64).unwrap();
    let agents: Vec<u32> = last.iter().map(|&w| parent_of(w)).collect();
    drop(pool);
    for p in last.iter().chain(&agents) {
        assert!(
            gone_within(*p, Duration::from_secs(5)),
            "process {p} outlived the pool"
        );
    }
}

fn shout(s: String) -> String {
    format!("{s} AND BACK")
}

/// A relay on loopback that forwards every connection to the address the launcher wrote to
/// `target` (the pool's), keeping a copy of every byte either way: an eavesdropper.
struct Tap {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Tap {
    fn start(target: std::path::PathBuf) -> Tap {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = std::sync::Arc::clone(&seen);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let addr = std::fs::read_to_string(&target).unwrap();
                let server = std::net::TcpStream::connect(addr.trim()).unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let keep = std::sync::Arc::clone(&keep);
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 << 10];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            keep.lock().unwrap().extend_from_slice(&buf[..n]);
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Tap { port, seen }
    }

    fn saw(&self, needle: &[u8]) -> bool {
        let seen = self.seen.lock().unwrap();
        seen.windows(needle.len()).any(|w| w == needle)
    }
}

#[test]
fn with_tls_an_eavesdropper_sees_no_argument_and_without_it_sees_them() {
    let marker = "the eavesdropper should not read this";
    for tls in [false, true] {
        let dir = std::env::temp_dir().join(format!("proctor-tap-{}-{tls}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = dir.join("addr");
        let tap = Tap::start(target.clone());
        // The launcher tells the tap where the pool is, and the agent to call the tap.
        let template = format!(
            "echo {{addr}} > {}; PROCTOR_REMOTE_AGENT=127.0.0.1:{} exec {{exe}}",
            target.display(),
            tap.port
        );
        let pool = Pool::processes(1)
            .remote(
                Remote::command(template, ["localhost"])
                    .listen("127.0.0.1:0".parse().unwrap())
                    .tls(tls),
            )
            .build()
            .unwrap();
        let back = pool.submit(shout, marker.to_string()).join().unwrap();
        assert_eq!(back, format!("{marker} AND BACK"));
        let out = pool.map(faulty, 0..200u64);
        assert!(out[13].as_ref().unwrap_err().is_panicked());
        assert!(out[37].as_ref().unwrap_err().is_crashed());
        assert_eq!(out[199], Ok(200));
        drop(pool);
        assert_eq!(tap.saw(marker.as_bytes()), !tls, "tls {tls}");
        assert_eq!(tap.saw(b"AND BACK"), !tls, "tls {tls}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn an_agent_refuses_a_pool_whose_certificate_is_not_the_announced_one() {
    // The launcher hands the agent a wrong fingerprint, as a pool impostor's would be.
    let template = "PROCTOR_REMOTE_SECRET=\"${PROCTOR_REMOTE_SECRET%/*}/$(printf '0%.0s' $(seq 64))\" exec {exe}";
    let e = Pool::processes(1)
        .remote(
            Remote::command(template, ["localhost"])
                .listen("127.0.0.1:0".parse().unwrap())
                .tls(true)
                .connect_timeout(Duration::from_secs(20)),
        )
        .forward_stderr(false)
        .build()
        .unwrap_err();
    let text = e.to_string();
    assert!(text.contains("certificate"), "{text}");
}

/// Not a test on its own: the child process of `a_killed_pool_leaves_no_agent_running`.
#[test]
#[ignore = "helper run as a child process by another test"]
fn helper_remote_pool_killed() {
    if std::env::var_os("PROCTOR_TEST_REMOTE_KILLED").is_none() {
        return;
    }
    let pool = Pool::processes(2).remote(local_remote()).build().unwrap();
    assert_eq!(pool.submit(square, 2).join(), Ok(4));
    let workers = pool.worker_pids();
    let busy = pool.submit(crate::sleep_ms, 60_000);
    for w in &workers {
        println!("PID {w} {}", parent_of(*w));
    }
    println!("READY");
    let _ = busy.join();
}

#[test]
fn a_killed_pool_leaves_no_agent_running() {
    use std::io::BufRead;
    let mut child = crate::helper(
        "remote::helper_remote_pool_killed",
        ("PROCTOR_TEST_REMOTE_KILLED", "1"),
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let mut pids = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if line.ends_with("READY") {
            break;
        }
        // (The harness may print the test's name on the same line first.)
        if let Some((_, rest)) = line.split_once("PID ") {
            pids.extend(rest.split(' ').map(|p| p.parse::<u32>().unwrap()));
        }
    }
    assert_eq!(pids.len(), 4, "two workers and their agents: {pids:?}");
    // The pool's process dies at once, with no chance to say goodbye.
    child.kill().unwrap();
    child.wait().unwrap();
    for p in pids {
        assert!(
            gone_within(p, Duration::from_secs(5)),
            "process {p} outlived its pool"
        );
    }
}

fn load_offset() -> u64 {
    1_000
}

fn add_offset(offset: &u64, n: u64) -> u64 {
    offset + n
}

fn scale(k: &u64, n: u64) -> u64 {
    k * n
}

#[test]
fn worker_state_context_streams_and_await_work_on_remote_workers() {
    let pool = Pool::processes(2)
        .init_worker(load_offset)
        .remote(local_remote())
        .build()
        .unwrap();
    // The initializer ran in each remote worker; its value reaches the tasks.
    let out = pool.map_state(add_offset, 0..1000u64);
    assert!(
        out.iter()
            .enumerate()
            .all(|(n, o)| *o == Ok(1_000 + n as u64))
    );
    // A context sent once per worker.
    let out = pool.map_with(&7u64, scale, 0..1000u64);
    assert!(out.iter().enumerate().all(|(n, o)| *o == Ok(7 * n as u64)));
    // Streams, in order and as they finish, with a bounded window.
    let ordered: Vec<_> = pool
        .stream(square, 0..20_000u64)
        .window(500)
        .map(|o| o.unwrap())
        .collect();
    assert!(
        ordered
            .iter()
            .enumerate()
            .all(|(n, v)| *v == (n * n) as u64)
    );
    let mut seen = vec![false; 5_000];
    for (i, o) in pool.stream_unordered(square, 0..5_000u64).window(100) {
        assert_eq!(o, Ok((i * i) as u64));
        seen[i] = true;
    }
    assert!(seen.iter().all(|&s| s));
    // A task is a Future: awaited under tokio, with no thread of ours driving the pool.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let got = rt.block_on(async {
        let a = pool.submit(square, 11);
        let b = pool.submit(square, 12);
        (a.await, b.await)
    });
    assert_eq!(got, (Ok(121), Ok(144)));
}
