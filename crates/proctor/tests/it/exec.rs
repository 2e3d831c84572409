//! The `exec` start method: workers that re-execute this binary keep every promise a forked
//! worker keeps, and a worker of another build refuses to start.

use std::process::Command;

use proctor::{Pool, StartMethod, TaskError};

/// Whether this process was started as a re-executed worker: its environment at start (what
/// `/proc/self/environ` keeps, whatever the program changed since) holds the marker.
fn reexecuted(_: u64) -> bool {
    let environ = std::fs::read("/proc/self/environ").expect("reading /proc/self/environ");
    environ
        .split(|&b| b == 0)
        .any(|kv| kv.starts_with(b"PROCTOR_EXEC_WORKER="))
}

fn double(n: u64) -> u64 {
    2 * n
}

fn abort_on_7(n: u64) -> u64 {
    if n == 7 {
        std::process::abort();
    }
    n
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn exec_workers_are_fresh_programs_that_run_tasks_like_forked_ones() {
    let pool = Pool::processes(2)
        .start_method(StartMethod::Exec)
        .build()
        .unwrap();
    assert!(pool.try_map(reexecuted, 0..4).unwrap().iter().all(|&r| r));
    assert_eq!(
        pool.try_map(double, 0..10_000u64).unwrap(),
        (0..10_000).map(double).collect::<Vec<_>>()
    );
    // A crash stays the task's own, and the replacement is re-executed too.
    let out = pool.map(abort_on_7, 0..20u64);
    for (n, o) in out.iter().enumerate() {
        match o {
            Ok(v) => assert_eq!(*v, n as u64),
            Err(TaskError::Crashed { .. }) => assert_eq!(n, 7),
            Err(e) => panic!("item {n}: {e}"),
        }
    }
    assert!(pool.try_map(reexecuted, 0..4).unwrap().iter().all(|&r| r));
    let forked = Pool::processes(1).build().unwrap();
    assert!(!forked.submit(reexecuted, 0).join().unwrap());
}

fn greeting() -> String {
    "hello".to_string()
}

fn greet(g: &String, name: String) -> String {
    eprintln!("greeting {name}");
    format!("{g}, {name}")
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn exec_workers_run_the_initializer_and_capture_output() {
    let pool = Pool::processes(1)
        .start_method(StartMethod::Exec)
        .capture_output(true)
        .init_worker(greeting)
        .build()
        .unwrap();
    let (outcome, output) = pool.submit_state(greet, "ada".to_string()).join_captured();
    assert_eq!(outcome.unwrap(), "hello, ada");
    assert_eq!(output.stderr_text(), "greeting ada\n");
}

/// This test binary started through `sh`, which sets `PROCTOR_EXEC_WORKER` to `marker`
/// (with `$$`, the shell's pid, which `exec` keeps) and runs the ignored helper test
/// `helper` in it.
fn started_as_worker(marker: &str, helper: &str) -> std::process::Output {
    Command::new("sh")
        .args([
            "-c",
            &format!("PROCTOR_EXEC_WORKER=\"{marker}\" exec \"$0\" \"$@\""),
            std::env::current_exe().unwrap().to_str().unwrap(),
            "--exact",
            helper,
            "--ignored",
            "--nocapture",
        ])
        .output()
        .expect("running sh")
}

#[test]
#[ignore = "a helper: run by a_worker_of_another_build_refuses_to_start"]
fn exec_helper_runs_as_itself() {
    println!("ran as itself");
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_worker_of_another_build_refuses_to_start() {
    let helper = "exec::exec_helper_runs_as_itself";
    // Addressed to this process (`$$`), from a build with another identity.
    let out = started_as_worker("1 $$ 1 1000 build-id:00ff 0", helper);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(86), "{stderr}");
    assert!(
        stderr.contains("another build than the pool's") && stderr.contains("build-id:00ff"),
        "{stderr}"
    );
    // A process that merely inherited a marker meant for another pid is not a worker.
    let out = started_as_worker("1 1 1 1000 build-id:00ff 0", helper);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ran as itself"));
}
