//! The sandbox experiment in the tiny profile: its shape, every attack in every place, the
//! attacks a plain worker cannot be stopped from, the compute sandbox stopping the classic
//! escapes at their system calls, and nothing left behind. Never timings.

use std::os::unix::fs::MetadataExt;

use proctor_lab::experiment::sandbox::Attack;
use proctor_lab::report::Unit;
use serde_json::Value;

fn cell<'a>(cells: &'a [Value], attack: &str, place: &str) -> &'a Value {
    cells
        .iter()
        .find(|c| c["attack"] == attack && c["place"] == place)
        .unwrap_or_else(|| panic!("a cell for {attack} in {place}"))
}

/// The lab's own `sleep` children (the signal attacks' victims) still alive.
fn victims_left() -> Vec<u32> {
    let me = std::process::id().to_string();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // pid (comm) state ppid ...
            let after = stat.rsplit_once(") ").map_or("", |(_, rest)| rest);
            stat.contains("(sleep)") && after.split_whitespace().nth(1) == Some(me.as_str())
        })
        .collect()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn sandbox_runs_the_matrix_everywhere_and_judges_it_from_outside() {
    let stderr_before = std::fs::metadata("/proc/self/fd/2").expect("fd 2");
    let s = super::run_tiny("sandbox");
    assert_eq!(s.id, "sandbox");
    assert!(!s.method.is_empty());
    assert_eq!(s.tables.len(), 3, "attacks, layers, cost");
    assert!(!s.charts.is_empty());
    let count = |key: &str| {
        let f = s
            .figure(key)
            .unwrap_or_else(|| panic!("figure {key} is present"));
        assert_eq!(f.unit, Unit::Count, "{key}");
        f.value
    };
    let cells = s.data["cells"].as_array().expect("cells");
    assert_eq!(
        cells.len(),
        Attack::ALL.len() * 3,
        "every attack in every place"
    );
    assert_eq!(count("sandbox.attacks"), Attack::ALL.len() as f64);

    // The counts agree with the cells, and the headline says them.
    let worked = |c: &Value| c["outcome"] == "worked" || c["pool_intact"] == false;
    for place in ["thread", "process", "sandboxed"] {
        let here: Vec<&Value> = cells.iter().filter(|c| c["place"] == place).collect();
        let tried = here
            .iter()
            .filter(|c| c["outcome"] != "not_applicable")
            .count();
        let w = here.iter().filter(|c| worked(c)).count();
        assert_eq!(count(&format!("sandbox.tried.{place}")), tried as f64);
        assert_eq!(count(&format!("sandbox.worked.{place}")), w as f64);
        if place == "sandboxed" {
            assert_eq!(count("sandbox.stopped.sandboxed"), (tried - w) as f64);
            assert!(
                s.notes[0].starts_with(&format!(
                    "Sandboxed worker: {} of {tried} stopped.",
                    tried - w
                )),
                "{}",
                s.notes[0]
            );
        }
    }
    let broken = cells.iter().filter(|c| c["pool_intact"] == false).count();
    assert_eq!(count("sandbox.pool_broken"), broken as f64);

    // A plain worker process has the lab's rights, stdio and memory model: each of these
    // works wherever the lab may do it (this test runs as a user who can read /etc/passwd,
    // write the temporary directory, connect on loopback, fork and signal its own children).
    let home = std::env::var("HOME").unwrap_or_default();
    let home_readable = std::fs::read_dir(&home).is_ok();
    let plain = [
        "read_passwd",
        "write_file",
        "connect",
        "fork",
        "signal_parent",
        "signal_kill",
        "signal_tgkill",
        "signal_sigqueue",
        "signal_setown",
        "stdin_read",
        "stdout_write",
        "init_thread_read",
        "init_thread_connect",
        "tamper_static",
        "fstatat_path",
        "statx_path",
        "access_path",
        "readlink_parent",
        "prctl_name",
    ];
    for attack in plain
        .into_iter()
        .chain(home_readable.then_some("read_home"))
    {
        let c = cell(cells, attack, "process");
        assert_eq!(c["outcome"], "worked", "{attack} in a plain worker: {c}");
    }
    let forked = cell(cells, "fork", "process");
    let want = format!(
        "forked and reaped {} processes",
        s.data["forks_process"].as_u64().expect("forks")
    );
    let detail = forked["detail"].as_str().unwrap_or_default();
    assert!(detail.starts_with(&want), "{forked}");
    // A thread does what the lab may do.
    for attack in [
        "read_passwd",
        "write_file",
        "connect",
        "fork",
        "signal_parent",
        "signal_kill",
        "tamper_static",
        "readlink_parent",
    ] {
        let c = cell(cells, attack, "thread");
        assert_eq!(c["outcome"], "worked", "{attack} on a thread: {c}");
    }
    // What cannot be set up is n/a, with the reason.
    for (attack, places) in [
        ("trace_parent", &["thread"][..]),
        ("scribble", &["thread"]),
        ("signal_setown", &["thread"]),
        ("fd_read", &["thread"]),
        ("timeout_started_at", &["thread"]),
        ("limit_shared_anon", &["thread"]),
        ("sigsys_handler", &["thread", "process"]),
        ("fake_violation", &["thread", "process"]),
    ] {
        for place in places {
            let c = cell(cells, attack, place);
            assert_eq!(c["outcome"], "not_applicable", "{attack} on {place}: {c}");
            assert!(!c["why"].as_str().unwrap_or_default().is_empty());
        }
    }
    // Every connect that worked reached the lab's listener (the judgement counts it there).
    let connects = cells
        .iter()
        .filter(|c| {
            (c["attack"] == "connect" || c["attack"] == "init_thread_connect")
                && c["outcome"] == "worked"
        })
        .count() as u64;
    assert_eq!(s.data["connections_seen"].as_u64(), Some(connects));

    // Nothing left behind: the file attack removed what it wrote, every victim was reaped,
    // and the lab's stderr is its own again after the stderr attack borrowed it.
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .expect("the temporary directory")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("proctor-sandbox-attack-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(victims_left(), Vec::<u32>::new());
    let stderr_after = std::fs::metadata("/proc/self/fd/2").expect("fd 2");
    assert_eq!(
        (stderr_before.dev(), stderr_before.ino()),
        (stderr_after.dev(), stderr_after.ino())
    );

    let layers = s.data["report"]["layers"].as_array().expect("layers");
    let missing: Vec<&Value> = layers
        .iter()
        .filter(|l| l["status"].get("Unavailable").is_some())
        .collect();
    assert_eq!(count("sandbox.layers_unavailable"), missing.len() as f64);
    if !missing.is_empty() {
        eprintln!(
            "WARNING: sandbox layers unavailable on this kernel, the sandboxed column untested: \
             {missing:?}"
        );
        return;
    }
    // Every layer in force: the classic escapes are stopped at their system call, never
    // refused quietly or let through.
    for (attack, calls) in [
        ("read_passwd", &["openat"][..]),
        ("read_home", &["openat"]),
        ("write_file", &["openat"]),
        ("connect", &["socket"]),
        ("fork", &["clone", "clone3"]),
        ("signal_parent", &["kill"]),
        ("trace_parent", &["ptrace"]),
        ("signal_kill", &["kill"]),
    ] {
        let c = cell(cells, attack, "sandboxed");
        assert_eq!(c["outcome"], "stopped", "{attack} sandboxed: {c}");
        let syscall = c["syscall"].as_str().expect("a syscall");
        assert!(calls.contains(&syscall), "{attack} stopped at {syscall}");
    }
}
