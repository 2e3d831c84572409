//! The servers experiment in the tiny profile: every model serves, a handler crash takes down
//! the threaded and async servers and not the prefork one, recycling bounds a leak, and no
//! server process outlives the experiment. Never timings.

use proctor_lab::report::Unit;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn servers_serve_crash_by_model_and_leave_nothing_running() {
    let s = super::run_tiny("servers");
    assert_eq!(s.id, "servers");
    assert!(!s.tables.is_empty() && !s.charts.is_empty() && !s.method.is_empty());
    let cells = s.data["cells"].as_array().expect("cells");
    assert_eq!(
        cells.len(),
        3 * 2,
        "three models, one handler, two connection counts"
    );
    for c in cells {
        assert!(c["ok"].as_u64().expect("ok") > 0, "every model served: {c}");
        let p50 = c["p50_ns"].as_f64().expect("p50");
        let p99 = c["p99_ns"].as_f64().expect("p99");
        assert!(0.0 < p50 && p50 <= p99, "{c}");
        assert!(c["pss_bytes"].as_f64().expect("pss") > 0.0, "{c}");
    }
    for m in ["prefork", "threaded", "async"] {
        let f = s
            .figure(&format!("servers.rps.{m}.cpu.16"))
            .unwrap_or_else(|| panic!("{m} throughput"));
        assert_eq!(f.unit, Unit::PerSec);
        assert!(f.value > 0.0);
    }

    let crash = |m: &str| {
        s.data["crashes"]
            .as_array()
            .expect("crashes")
            .iter()
            .find(|c| c["model"] == m)
            .unwrap_or_else(|| panic!("a crash run for {m}"))
            .clone()
    };
    let prefork = crash("prefork");
    assert_eq!(prefork["kept_serving"], true, "{prefork}");
    assert_eq!(
        prefork["process_alive"], true,
        "the master survived: {prefork}"
    );
    assert!(
        prefork["restarts"].as_u64().expect("restarts") >= 1,
        "{prefork}"
    );
    assert!(
        prefork["ok_after"].as_u64().expect("ok after") > 0,
        "{prefork}"
    );
    for m in ["threaded", "async"] {
        let c = crash(m);
        assert_eq!(c["kept_serving"], false, "{c}");
        assert_eq!(c["process_alive"], false, "the whole server died: {c}");
        assert_eq!(c["ok_after"], 0, "{c}");
    }
    assert_eq!(
        s.figure("servers.crash.kept_serving.prefork")
            .map(|f| f.value),
        Some(1.0)
    );
    assert_eq!(
        s.figure("servers.crash.kept_serving.threaded")
            .map(|f| f.value),
        Some(0.0)
    );

    let leaks = s.data["leaks"].as_array().expect("leaks");
    for l in leaks {
        assert_eq!(
            l["served"], l["requests"],
            "every /leak request was answered: {l}"
        );
    }
    let prefork_leak = leaks
        .iter()
        .find(|l| l["model"] == "prefork")
        .expect("prefork");
    assert!(
        prefork_leak["restarts"].as_u64().expect("restarts") >= 1,
        "recycled: {prefork_leak}"
    );

    // Nothing left running: every server's process group is empty, and none of its first
    // processes is still a child of this one.
    assert_eq!(
        s.figure("servers.processes_left").map(|f| f.value),
        Some(0.0)
    );
    let me = std::process::id() as i32;
    let pids = s.data["server_pids"].as_array().expect("pids");
    assert!(
        pids.len() >= 3 * 2 + 3 + 3,
        "one server per cell, crash and leak run"
    );
    for pid in pids {
        let pid = pid.as_i64().expect("a pid") as i32;
        let group = nix::unistd::Pid::from_raw(-pid);
        assert!(
            nix::sys::signal::kill(group, None).is_err(),
            "group {pid} is gone"
        );
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            assert_ne!(
                ppid,
                Some(me),
                "server {pid} is still a child of this process"
            );
        }
    }
}
