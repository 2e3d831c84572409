//! Shape tests for the containers experiment in the tiny profile: every rung either measured or
//! refused with a reason (never both), and nothing left behind. Never timings.

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;
use proctor_lab::report::Unit;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn every_rung_is_measured_or_refused_with_a_reason_and_nothing_is_left() {
    let s = super::run_tiny("containers");
    assert_eq!(s.id, "containers");
    assert!(!s.method.is_empty());
    assert!(!s.charts.is_empty() && s.tables.len() == 2);

    let probes = s.data["namespaces"].as_array().expect("namespace probes");
    let kinds: Vec<&str> = probes.iter().filter_map(|p| p["kind"].as_str()).collect();
    assert_eq!(kinds, ["user", "pid", "mount", "net"]);
    for p in probes {
        // A refused kind names its error; a permitted one has none.
        assert_eq!(p["permitted"].as_bool(), Some(p["reason"].is_null()), "{p}");
    }
    let permitted = probes.iter().filter(|p| p["permitted"] == true).count();
    let f = s.figure("containers.namespaces.permitted").expect("count");
    assert_eq!((f.value, f.unit), (permitted as f64, Unit::Count));

    let reps = s.data["repetitions"].as_u64().expect("repetitions") as usize;
    let rungs = s.data["rungs"].as_array().expect("rungs");
    let names: Vec<&str> = rungs.iter().filter_map(|r| r["rung"].as_str()).collect();
    assert_eq!(
        names,
        ["thread", "fork", "namespaces", "cgroup", "container"]
    );
    for (i, r) in rungs.iter().enumerate() {
        let key = names[i];
        let start = r["start_ns"].as_array().expect("samples");
        let figure = s.figure(&format!("containers.start.{key}"));
        let row = &s.tables[0].rows[i];
        match r["refused"].as_str() {
            Some(why) => {
                assert!(!why.is_empty(), "{key} says why it was refused");
                assert!(start.is_empty(), "{key}: refused, yet samples");
                assert!(figure.is_none(), "{key}: refused, yet a figure");
                assert!(row[1].starts_with("refused: "), "{row:?}");
            }
            None => {
                let want = if key == "container" { 1 } else { reps };
                assert_eq!(start.len(), want, "{key}: one sample per run");
                assert!(start.iter().all(|v| v.as_f64().is_some_and(|v| v > 0.0)));
                let f = figure.unwrap_or_else(|| panic!("{key} measured: a figure"));
                assert_eq!(f.unit, Unit::Ns);
                assert!(f.value > 0.0 && f.placement.is_some(), "{key}");
            }
        }
        if matches!(key, "fork" | "namespaces" | "cgroup") && r["refused"].is_null() {
            // Every child forked for a run is reaped: none is left running or a zombie.
            let pids = r["child_pids"].as_array().expect("child pids");
            assert_eq!(pids.len(), reps, "{key}");
            for pid in pids {
                let pid = Pid::from_raw(pid.as_i64().expect("pid") as i32);
                assert_eq!(
                    waitpid(pid, Some(WaitPidFlag::WNOHANG)),
                    Err(Errno::ECHILD),
                    "{key}: {pid} left behind"
                );
            }
            for m in ["rss_bytes", "uss_bytes"] {
                let v = r[m].as_array().expect("memory samples");
                assert_eq!(v.len(), reps, "{key} {m}");
                assert!(
                    v.iter().all(|b| b.as_f64().is_some_and(|b| b > 0.0)),
                    "{key} {m}"
                );
            }
        }
    }
    assert!(rungs[0]["refused"].is_null() && rungs[1]["refused"].is_null());
    // The namespace rung runs exactly when some kind is permitted.
    assert_eq!(rungs[2]["refused"].is_null(), permitted > 0);

    assert_eq!(s.data["cgroup_removed"], true);
    if let Some(path) = s.data["cgroup_path"].as_str() {
        assert!(!std::path::Path::new(path).exists(), "{path} left behind");
    }
}
