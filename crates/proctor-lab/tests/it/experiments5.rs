//! Shape tests for the race, sync, memory and scaling experiments in the tiny profile. They check
//! keys, units and the values that must hold exactly; never timings.

use proctor_lab::experiment::find;
use proctor_lab::report::{Section, Unit};
use proctor_lab::{LabConfig, NoProgress, Profile};

use super::figure;

fn run_tiny(id: &str) -> Section {
    let section = super::run_tiny(id);
    assert_eq!(section.id, id);
    assert!(!section.method.is_empty(), "{id} says how it measured");
    assert!(!section.charts.is_empty(), "{id} has a chart");
    assert!(!section.data.is_null(), "{id} carries its typed result");
    section
}

fn positive(section: &Section, key: &str, unit: Unit) -> f64 {
    let v = figure(section, key, unit);
    assert!(v > 0.0, "{key} is positive: {v}");
    v
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn sync_reports_every_cost() {
    let s = run_tiny("sync");
    for key in [
        "sync.mutex.uncontended.thread",
        "sync.mutex.uncontended.process",
        "sync.mutex.contended.thread",
        "sync.mutex.contended.process",
        "sync.rwlock.read_heavy.thread",
        "sync.rwlock.write_heavy.thread",
        "sync.condvar.handoff.thread",
        "sync.semaphore.thread",
        "sync.atomic.uncontended",
        "sync.atomic.contended.thread",
        "sync.atomic.contended.process",
    ] {
        positive(&s, key, Unit::Ns);
        let placement = s.figure(key).and_then(|f| f.placement.clone());
        assert!(
            placement.is_some_and(|p| !p.is_empty()),
            "{key} says where it ran"
        );
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn race_fixes_are_exact_and_processes_do_not_share() {
    let s = run_tiny("race");
    let expected = positive(&s, "race.expected", Unit::Count);
    for key in [
        "race.final.mutex",
        "race.final.atomic",
        "race.final.per_thread",
        "race.final.process_shared_atomic",
    ] {
        assert_eq!(figure(&s, key, Unit::Count), expected, "{key}");
    }
    let unsync = figure(&s, "race.final.unsync", Unit::Count);
    assert!(
        unsync > 0.0 && unsync <= expected,
        "unsync final {unsync} of {expected}"
    );
    let lost = figure(&s, "race.lost.unsync", Unit::Count);
    assert!(lost >= 0.0, "lost {lost}");
    assert_eq!(
        figure(&s, "race.parent_after.process_copy", Unit::Count),
        0.0
    );
    for v in ["unsync", "mutex", "atomic", "per_thread"] {
        positive(&s, &format!("race.ns_per_inc.{v}"), Unit::Ns);
    }

    // Every repetition, not only the medians, must be exact.
    let runs = s.data["runs"].as_array().expect("runs");
    for r in runs {
        if r["variant"] != "unsync" {
            let want = r["expected"].as_u64().expect("expected");
            for f in r["finals"].as_array().expect("finals") {
                assert_eq!(f.as_u64(), Some(want), "{r}");
            }
        }
    }
    let p = &s.data["processes"];
    let half = expected as u64 / 2;
    for v in p["parent_after_copy"].as_array().expect("copy") {
        assert_eq!(v.as_u64(), Some(0));
    }
    for v in p["child_saw_copy"].as_array().expect("children") {
        assert_eq!(v.as_u64(), Some(half), "each child counted its own copy");
    }
    for v in p["shared_atomic_final"].as_array().expect("shared") {
        assert_eq!(v.as_u64(), Some(expected as u64));
    }

    // The many-run distributions: every run in one histogram bin, the fixes exact every time.
    let runs = figure(&s, "race.dist.runs", Unit::Count);
    assert!(runs >= 1.0);
    let dists = s.data["distributions"].as_array().expect("distributions");
    let settings: Vec<&str> = dists.iter().filter_map(|d| d["setting"].as_str()).collect();
    assert_eq!(
        settings,
        ["threads_1", "threads_2", "threads_2x_cores", "one_cpu"]
    );
    let hist = s
        .charts
        .iter()
        .find(|c| c.id == "lost-histogram")
        .expect("a histogram of lost updates");
    assert_eq!(hist.series.len(), dists.len());
    for (d, series) in dists.iter().zip(&hist.series) {
        let lost = d["lost"].as_array().expect("lost per run");
        assert_eq!(lost.len() as f64, runs, "{}", d["setting"]);
        let want = d["expected"].as_u64().expect("expected");
        assert!(lost.iter().all(|l| l.as_u64().is_some_and(|l| l <= want)));
        let binned: f64 = series.points.iter().map(|p| p.1).sum();
        assert_eq!(binned, runs, "histogram counts sum to the runs");
        let lossy = figure(
            &s,
            &format!(
                "race.dist.{}.lossy_runs",
                d["setting"].as_str().unwrap_or("")
            ),
            Unit::Count,
        );
        let counted = lost.iter().filter(|l| l.as_u64() != Some(0)).count() as f64;
        assert_eq!(lossy, counted);
        assert_eq!(series.points[0].1, runs - lossy, "the zero bin");
    }
    // One thread has nobody to race with.
    assert!(
        dists[0]["lost"]
            .as_array()
            .expect("lost")
            .iter()
            .all(|l| l == 0)
    );
    for v in ["mutex", "atomic"] {
        assert_eq!(
            figure(&s, &format!("race.runs_exact.{v}"), Unit::Count),
            runs,
            "{v}"
        );
    }
    for e in s.data["exact"].as_array().expect("exact runs") {
        assert_eq!(e["exact"], e["runs"], "{e}");
        assert_eq!(e["inexact_finals"].as_array().map(Vec::len), Some(0), "{e}");
    }
}

/// Runs the experiments named in `PROCTOR_LAB_EXPERIMENTS` (comma-separated; default all four)
/// in the quick profile (`PROCTOR_LAB_PROFILE=tiny` or `full` to change it) and prints their
/// figures. Measures for real, so it is ignored:
/// `cargo test --release -p proctor-lab --test it quick_figures -- --ignored --nocapture`.
#[test]
#[ignore = "measures for real; run by hand in a release build"]
fn quick_figures() {
    let _guard = super::serial();
    let ids = std::env::var("PROCTOR_LAB_EXPERIMENTS")
        .unwrap_or_else(|_| "race,sync,memory,scaling".to_string());
    let profile = match std::env::var("PROCTOR_LAB_PROFILE").as_deref() {
        Ok("tiny") => Profile::Tiny,
        Ok("full") => Profile::Full,
        _ => Profile::Quick,
    };
    let config = LabConfig {
        profile,
        ..LabConfig::default()
    };
    for id in ids.split(',') {
        let experiment = find(id).unwrap_or_else(|| panic!("experiment {id} is registered"));
        let s = experiment
            .run(&config, &mut NoProgress)
            .unwrap_or_else(|e| panic!("{id}: {e:#}"));
        println!("== {id}: {:.2} s", s.elapsed_ms / 1e3);
        for f in &s.figures {
            let spread = f
                .spread
                .as_ref()
                .map(|s| {
                    format!(
                        " [min {:.4} p99 {:.4} max {:.4}, n={}]",
                        s.min, s.p99, s.max, s.samples
                    )
                })
                .unwrap_or_default();
            println!(
                "{:<45} {:>14.4} {:?}{spread} {}",
                f.key,
                f.value,
                f.unit,
                f.placement.as_deref().unwrap_or("")
            );
        }
        for t in &s.tables {
            println!("-- {}: {}", t.title, t.columns.join(" | "));
            for r in &t.rows {
                println!("   {}", r.join(" | "));
            }
        }
        for n in &s.notes {
            println!("note: {n}");
        }
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn memory_reports_per_worker_and_leaves_nothing_behind() {
    use nix::errno::Errno;
    use nix::sys::wait::{WaitPidFlag, waitpid};
    use nix::unistd::Pid;

    // The fork server that `proctor::init_before_main!` starts is a child of this process from
    // before main; it is the only child allowed to outlive the experiment.
    let before = live_children();
    let s = run_tiny("memory");
    for n in [10, 100] {
        for kind in ["uss", "pss", "rss"] {
            // A child's private copy of the working set is always there.
            positive(
                &s,
                &format!("memory.{kind}_per_worker.process.{n}"),
                Unit::Bytes,
            );
            // A thread's growth is measured on a live process: finite, not necessarily positive.
            figure(
                &s,
                &format!("memory.{kind}_per_worker.thread.{n}"),
                Unit::Bytes,
            );
        }
        let t = figure(&s, &format!("memory.per_task.async.{n}"), Unit::Bytes);
        // A growth of this process is page-granular: a few tasks may read one page below zero
        // (the allocator handing a page back meanwhile), never more.
        assert!(t >= -4096.0 / n as f64, "async task {n}: {t}");
        // Every worker brings at least its kernel stack beyond the working set it wrote, and a
        // process its page tables too.
        for m in ["thread", "process"] {
            let key = format!("memory.overhead_per_worker.{m}.{n}");
            assert!(figure(&s, &key, Unit::Bytes) > 0.0, "{key}");
        }
    }
    let many = figure(&s, "memory.per_task.async.10000", Unit::Bytes);
    assert!(many > 0.0, "10 000 parked tasks take memory: {many}");
    // USS is the private part of RSS, so never larger.
    let uss = figure(&s, "memory.uss_per_worker.process.10", Unit::Bytes);
    let rss = figure(&s, "memory.rss_per_worker.process.10", Unit::Bytes);
    assert!(uss <= rss, "uss {uss} <= rss {rss}");

    // No child left behind: each was reaped, and none is left at all.
    let pids = s.data["child_pids"].as_array().expect("child pids");
    // 10 workers once, 100 workers in each of the headline's 3 independent rounds.
    assert_eq!(pids.len(), 10 + 3 * 100);
    for pid in pids {
        let pid = Pid::from_raw(pid.as_i64().expect("pid") as i32);
        assert_eq!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Err(Errno::ECHILD));
    }
    let left = live_children();
    assert!(
        left.is_subset(&before),
        "children left behind: {:?}",
        left.difference(&before).collect::<Vec<_>>()
    );
    // Every worker thread was joined.
    let tids = s.data["thread_ids"].as_array().expect("thread ids");
    assert_eq!(tids.len(), 10 + 3 * 100);
    for tid in tids {
        let path = format!("/proc/self/task/{}", tid.as_i64().expect("tid"));
        assert!(!std::path::Path::new(&path).exists(), "{path} is gone");
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn scaling_reports_cpu_and_io_sweeps() {
    let s = run_tiny("scaling");
    let cpus = s.data["cpus"].as_u64().expect("cpus") as usize;
    for m in ["thread", "process"] {
        for w in 1..=2 * cpus {
            positive(&s, &format!("scaling.throughput.{m}.{w}"), Unit::PerSec);
            positive(&s, &format!("scaling.speedup.{m}.{w}"), Unit::Ratio);
        }
        assert_eq!(
            figure(&s, &format!("scaling.speedup.{m}.1"), Unit::Ratio),
            1.0
        );
        positive(&s, &format!("scaling.speedup.{m}.cores"), Unit::Ratio);
        positive(&s, &format!("scaling.efficiency.{m}.max"), Unit::Ratio);
    }
    for m in ["thread", "process", "async"] {
        for n in [10, 100] {
            // Every unit sleeps 3 × 10 ms, so no run can finish sooner.
            let ns = positive(&s, &format!("scaling.io.completion.{m}.{n}"), Unit::Ns);
            assert!(ns >= 30e6, "{m} {n}: {ns} ns");
        }
    }
    for p in s.data["io"].as_array().expect("io points") {
        assert!(p["max_alive"].as_i64().expect("max_alive") >= 1, "{p}");
    }
}

/// The pids of this process's live (or unreaped) children, from each process's parent pid in
/// /proc/PID/stat.
fn live_children() -> std::collections::BTreeSet<i32> {
    let me = std::process::id() as i32;
    let mut children = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc")
        .expect("/proc is readable")
        .flatten()
    {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name (field 2) may hold spaces and parentheses: parse after its last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if ppid == Some(me) {
            children.insert(pid);
        }
    }
    children
}
