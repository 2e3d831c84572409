//! The sandbox experiment in the tiny profile: its shape, every attack in every place, the
//! compute sandbox stopping every escape where all its layers apply, and nothing left behind.
//! Never timings.

use proctor_lab::report::Unit;
use serde_json::Value;

fn cell<'a>(cells: &'a [Value], attack: &str, place: &str) -> &'a Value {
    cells
        .iter()
        .find(|c| c["attack"] == attack && c["place"] == place)
        .unwrap_or_else(|| panic!("a cell for {attack} in {place}"))
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn sandbox_runs_every_attack_everywhere_and_the_compute_sandbox_stops_every_escape() {
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
    assert_eq!(cells.len(), 8 * 3, "every attack in every place");

    // After every attack that ran, the pool mapped 64 squares right: nothing broke it.
    for c in cells {
        if c["outcome"] != "not_applicable" {
            assert_eq!(c["pool_intact"], true, "{c}");
        }
    }
    assert_eq!(count("sandbox.pool_broken"), 0.0);

    // A plain worker process has the lab's rights: each of these works where the lab may do
    // it (this test runs as a user who can read /etc/passwd, write the temporary directory,
    // connect on loopback, fork and signal its own processes).
    let home = std::env::var("HOME").unwrap_or_default();
    let home_readable = std::fs::read_dir(&home).is_ok();
    for attack in [
        "read_passwd",
        "write_file",
        "connect",
        "fork",
        "signal_parent",
        "scribble",
    ]
    .into_iter()
    .chain(home_readable.then_some("read_home"))
    {
        let c = cell(cells, attack, "process");
        assert_eq!(c["outcome"], "succeeded", "{attack} in a plain worker: {c}");
    }
    let forked = cell(cells, "fork", "process");
    let want = format!(
        "forked and reaped {} processes",
        s.data["forks_process"].as_u64().expect("forks")
    );
    assert_eq!(forked["detail"].as_str(), Some(want.as_str()), "{forked}");
    // A thread does what the lab may do; it is not asked to trace or scribble.
    for attack in [
        "read_passwd",
        "write_file",
        "connect",
        "fork",
        "signal_parent",
    ] {
        let c = cell(cells, attack, "thread");
        assert_eq!(c["outcome"], "succeeded", "{attack} on a thread: {c}");
    }
    for attack in ["trace_parent", "scribble"] {
        assert_eq!(cell(cells, attack, "thread")["outcome"], "not_applicable");
    }
    // Every successful connect reached the lab's listener.
    let connects = cells
        .iter()
        .filter(|c| c["attack"] == "connect" && c["outcome"] == "succeeded")
        .count() as u64;
    assert_eq!(s.data["connections_seen"].as_u64(), Some(connects));
    // The file attack removed what it wrote.
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
    // Every layer in force: every escape is stopped at its system call, never refused
    // quietly or let through.
    for (attack, calls) in [
        ("read_passwd", &["openat"][..]),
        ("read_home", &["openat"]),
        ("write_file", &["openat"]),
        ("connect", &["socket"]),
        ("fork", &["clone", "clone3"]),
        ("signal_parent", &["kill"]),
        ("trace_parent", &["ptrace"]),
    ] {
        let c = cell(cells, attack, "sandboxed");
        assert_eq!(c["outcome"], "stopped", "{attack} sandboxed: {c}");
        let syscall = c["syscall"].as_str().expect("a syscall");
        assert!(calls.contains(&syscall), "{attack} stopped at {syscall}");
    }
    assert_eq!(count("sandbox.escaped.sandboxed"), 0.0);
    assert_eq!(count("sandbox.escapes"), 7.0);
    assert!(count("sandbox.escaped.process") >= 6.0);
}
