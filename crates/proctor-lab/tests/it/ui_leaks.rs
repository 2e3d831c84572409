//! Shape tests for the ui and leaks experiments in the tiny profile: keys, units, the values
//! that must hold by construction, and nothing left running. Never timings.

use proctor_lab::report::{Section, Unit};

use super::figure;

fn run_tiny(id: &str) -> Section {
    let section = super::run_tiny(id);
    assert_eq!(section.id, id);
    assert!(!section.method.is_empty(), "{id} says how it measured");
    assert!(!section.charts.is_empty(), "{id} has a chart");
    assert!(!section.tables.is_empty(), "{id} has a table");
    assert!(!section.data.is_null(), "{id} carries its typed result");
    section
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn ui_records_frames_for_every_case() {
    let s = run_tiny("ui");
    let period = figure(&s, "ui.period", Unit::Ns);
    assert!((period - 16_666_667.0).abs() < 1.0, "60 Hz: {period}");
    let cpus = s.data["cpus"].as_u64().expect("cpus");
    let tail = s.data["tail_frames"].as_u64().expect("tail frames");
    let reps = s.data["repetitions"].as_u64().expect("repetitions");
    let cases = s.data["cases"].as_array().expect("cases");
    assert_eq!(cases.len(), 5);
    for (case, workers) in [
        ("ui_thread", 0),
        ("worker_thread", 1),
        ("worker_process", 1),
        ("threads_cores", cpus),
        ("threads_2x_cores", 2 * cpus),
    ] {
        let frames = figure(&s, &format!("ui.frames.{case}"), Unit::Count);
        // The frame that saw the job done and the tail after it, at least.
        assert!(frames > tail as f64, "{case}: {frames} frames");
        let p50 = figure(&s, &format!("ui.frame_p50.{case}"), Unit::Ns);
        let p99 = figure(&s, &format!("ui.frame_p99.{case}"), Unit::Ns);
        let max = figure(&s, &format!("ui.frame_max.{case}"), Unit::Ns);
        assert!(
            0.0 < p50 && p50 <= p99 && p99 <= max,
            "{case}: {p50} {p99} {max}"
        );
        let missed = figure(&s, &format!("ui.missed.{case}"), Unit::Count);
        assert!(missed >= 0.0, "{case}: {missed}");
        assert!(figure(&s, &format!("ui.job.{case}"), Unit::Ns) > 0.0);
        let c = cases
            .iter()
            .find(|c| c["case"] == case)
            .unwrap_or_else(|| panic!("{case} in the data"));
        assert_eq!(c["workers"].as_u64(), Some(workers), "{case}");
        let jobs = c["job_ns"].as_array().expect("job times").len() as u64;
        assert_eq!(jobs, reps * workers.max(1), "{case}: one time per job run");
        // Missed frames follow from the frame times by the declared rule.
        let frame_ns: Vec<f64> = c["frame_ns"]
            .as_array()
            .expect("frame times")
            .iter()
            .map(|f| f.as_f64().expect("a number"))
            .collect();
        let total: u64 = c["missed"]
            .as_array()
            .expect("missed")
            .iter()
            .map(|m| m.as_u64().expect("a count"))
            .sum();
        assert_eq!(
            total,
            proctor_lab::experiment::ui::missed_frames(&frame_ns, period),
            "{case}"
        );
    }
    // On the UI thread the job runs inside one frame, so that frame lasts at least the job.
    let job = figure(&s, "ui.job.ui_thread", Unit::Ns);
    let max = figure(&s, "ui.frame_max.ui_thread", Unit::Ns);
    assert!(
        max >= job,
        "the job's frame {max} ns holds the job's {job} ns"
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn leaks_measures_blocked_threads_and_leaves_none_behind() {
    let s = run_tiny("leaks");
    let points = s.data["points"].as_array().expect("points");
    assert_eq!(
        points[0]["threads"], 0,
        "a baseline without blocked threads"
    );
    for p in points {
        let n = p["threads"].as_u64().expect("n");
        assert!(figure(&s, &format!("leaks.pingpong.{n}"), Unit::Ns) > 0.0);
        // Every blocked thread existed, and was joined: its id is gone from this process.
        let tids = p["tids"].as_array().expect("tids");
        assert_eq!(tids.len() as u64, n);
        for tid in tids {
            let path = format!("/proc/self/task/{}", tid.as_i64().expect("tid"));
            assert!(!std::path::Path::new(&path).exists(), "{path} is gone");
        }
        if n > 0 {
            for what in [
                "rss",
                "uss",
                "pss",
                "virtual",
                "page_tables",
                "kernel_stack",
            ] {
                figure(&s, &format!("leaks.{what}_per_thread.{n}"), Unit::Bytes);
            }
            // Each thread reserves a stack: the address space grows.
            assert!(figure(&s, &format!("leaks.virtual_per_thread.{n}"), Unit::Bytes) > 0.0);
            assert!(figure(&s, &format!("leaks.spawn_per_thread.{n}"), Unit::Ns) > 0.0);
            if p["blocked_cpu_ns"].is_number() {
                assert!(figure(&s, &format!("leaks.blocked_cpu.{n}"), Unit::Ns) >= 0.0);
                assert!(figure(&s, &format!("leaks.blocked_runs.{n}"), Unit::Count) >= 0.0);
            }
        }
    }
    let ballast = figure(&s, "leaks.ballast", Unit::Bytes);
    for t in s.data["process_timeouts"].as_array().expect("process runs") {
        assert!(
            t["outcome"]
                .as_str()
                .expect("outcome")
                .contains("timed out"),
            "{t}"
        );
        assert_eq!(
            t["old_worker_gone"], true,
            "the hung worker was killed: {t}"
        );
        // Measured in the worker itself, so no other test can move it.
        assert!(
            t["held_bytes"].as_f64().expect("held") >= ballast / 2.0,
            "{t}"
        );
    }
    for t in s.data["thread_timeouts"].as_array().expect("thread runs") {
        assert!(
            t["outcome"]
                .as_str()
                .expect("outcome")
                .contains("timed out"),
            "{t}"
        );
        assert_eq!(
            t["stuck_alive_after_recovery"], true,
            "the thread leaked: {t}"
        );
        assert_eq!(
            t["stuck_gone_after_release"], true,
            "and ended when let go: {t}"
        );
    }
    for key in [
        "leaks.timeout.process.held",
        "leaks.timeout.process.after",
        "leaks.timeout.thread.after",
    ] {
        figure(&s, key, Unit::Bytes);
    }
    for mode in ["process", "thread"] {
        assert!(figure(&s, &format!("leaks.timeout.{mode}.recovery"), Unit::Ns) > 0.0);
    }
}
