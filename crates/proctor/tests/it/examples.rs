//! The classic examples in `examples/` run and print what they promise.

use std::path::PathBuf;
use std::process::Command;

/// `cargo test` builds the examples next to the test binary's `deps/` folder; a filtered run
/// (`cargo test --test it`) does not, so build the one we need then.
fn example(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?.parent()?;
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "proctor-pool", "--example", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let status = cmd.status().ok()?;
        assert!(status.success(), "building example {name} failed");
    }
    path.exists().then_some(path)
}

fn run(name: &str) -> String {
    let Some(path) = example(name) else {
        panic!("example {name} was not built next to the tests");
    };
    let out = Command::new(path).output().expect("example runs");
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn squares_processes_prints_the_squares() {
    let out = run("squares_processes");
    assert!(
        out.contains("Squares (Processes): [1, 4, 9, 16, 25]"),
        "{out}"
    );
}

#[test]
fn squares_threads_prints_both_forms() {
    let out = run("squares_threads");
    assert!(
        out.contains("Squares (Threads): [1, 4, 9, 16, 25]"),
        "{out}"
    );
    let raw = out
        .lines()
        .find(|l| l.contains("completion order"))
        .expect("raw line");
    let mut nums: Vec<u64> = raw
        .split(['[', ']'])
        .nth(1)
        .expect("a list")
        .split(", ")
        .map(|n| n.parse().expect("a number"))
        .collect();
    nums.sort_unstable();
    assert_eq!(nums, vec![1, 4, 9, 16, 25]);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn race_counter_shows_exact_fixes_and_separate_memory() {
    let out = run("race_counter");
    assert!(out.contains("Mutex:                     200000"), "{out}");
    assert!(out.contains("fetch_add:                 200000"), "{out}");
    assert!(out.contains("parent's counter is 0"), "{out}");
    // The unsynchronized count never exceeds the true total (it may reach it on one core).
    let racy: u64 = out
        .split("unsynchronized load+store: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("racy count");
    assert!(racy <= 200_000);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn compare_modes_prints_a_verdict_for_each_task_and_contains_the_abort() {
    let out = run("compare_modes");
    let verdicts: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("processes cost "))
        .collect();
    assert_eq!(verdicts.len(), 2, "{out}");
    for v in &verdicts {
        assert!(
            v.contains(" per task here (") && v.contains(" in threads: "),
            "{v}"
        );
    }
    assert_eq!(out.matches("memory per worker:\n").count(), 2, "{out}");
    assert!(
        verdicts[1].ends_with(
            "the crash input (SIGABRT) is contained in a process and would end the program in a thread"
        ),
        "{out}"
    );
    assert!(
        out.contains("in a process: the pool went on after"),
        "{out}"
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn tokio_main_runs_process_pools_inside_a_runtime() {
    let out = run("tokio_main");
    assert!(
        out.contains("Squares (Processes, under tokio): [1, 4, 9, 16, 25]"),
        "{out}"
    );
    assert!(out.contains("map under tokio: [Ok(36), Ok(49)]"), "{out}");
}

#[test]
fn progress_counts_every_outcome_and_each_crash() {
    let out = run("progress");
    assert!(out.contains("processes: 3000 outcomes, 33 failed"), "{out}");
    assert!(out.contains("workers_replaced: 3,"), "{out}");
}
