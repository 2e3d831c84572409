use super::section::{cost_row, noise};
use super::*;

#[test]
fn task_errors_map_to_outcomes() {
    assert_eq!(
        Outcome::failed(Ok("Permission denied".into())),
        Outcome::Refused {
            error: "Permission denied".into()
        }
    );
    let stopped = Outcome::failed(Err(TaskError::SandboxViolation {
        syscall: "socket".into(),
        worker: 1,
        index: 2,
        attempts: 1,
    }));
    assert_eq!(
        stopped,
        Outcome::Stopped {
            syscall: "socket".into()
        }
    );
    assert!(stopped.cell().contains("at socket") && stopped.tried() && !stopped.worked());
    let broke = Outcome::failed(Err(TaskError::Codec {
        message: "bad record".into(),
        index: 3,
    }));
    assert!(matches!(broke, Outcome::Broke { .. }) && !broke.worked());
    assert!(!Outcome::NotApplicable { why: "x".into() }.tried());
}

/// Every attack worked on a thread and in a plain process (but the scribble, n/a on a
/// thread), and came to `sandboxed` in the sandboxed worker.
fn result(sandboxed: Outcome, landlock: LayerStatus) -> SandboxResult {
    let mut cells = Vec::new();
    for attack in Attack::ALL {
        for place in Place::ALL {
            let outcome = match place {
                Place::Sandboxed => sandboxed.clone(),
                Place::Thread if attack == Attack::Scribble => Outcome::NotApplicable {
                    why: "shares the address space".into(),
                },
                _ => Outcome::Worked {
                    detail: "got it".into(),
                },
            };
            let pool_intact = outcome.tried().then_some(true);
            cells.push(CellResult {
                attack,
                place,
                outcome,
                pool_intact,
            });
        }
    }
    let rtt = |placement| RttResult {
        placement,
        plain: crate::fixture::measurement(5_000.0),
        sandboxed: crate::fixture::measurement(5_100.0),
        plain_rounds: vec![5_000.0],
        sandboxed_rounds: vec![5_100.0],
    };
    SandboxResult {
        report: SandboxReport {
            layers: vec![
                proctor::Layer {
                    name: "landlock".into(),
                    status: landlock,
                },
                proctor::Layer {
                    name: "seccomp".into(),
                    status: LayerStatus::Applied,
                },
            ],
        },
        forks_process: 1000,
        forks_thread: 100,
        port: 4242,
        connections_seen: 4,
        oracle_path: "/etc/shadow".into(),
        cells,
        cost: Cost {
            start_plain_ns: vec![400e3, 420e3, 380e3],
            start_sandboxed_ns: vec![1.0e6, 1.1e6, 0.9e6],
            start_netns_ns: vec![600e3, 610e3, 590e3],
            fresh_task_ns: vec![700e3, 720e3, 690e3],
            rtt: vec![rtt(Placement::Pinned(0)), rtt(Placement::Unpinned)],
        },
    }
}

fn value(s: &Section, key: &str) -> f64 {
    s.figure(key)
        .unwrap_or_else(|| panic!("figure {key}"))
        .value
}

#[test]
fn the_section_counts_what_worked_per_place_and_the_broken_pools() {
    let stopped = Outcome::Stopped {
        syscall: "openat".into(),
    };
    let mut r = result(stopped, LayerStatus::Applied);
    // The scribble in the plain process left the pool broken in this made-up run.
    let all = Attack::ALL.len() as f64;
    let c = r
        .cells
        .iter_mut()
        .find(|c| c.attack == Attack::Scribble && c.place == Place::Process)
        .unwrap();
    c.outcome = Outcome::NoEffect {
        detail: "overwrote 3".into(),
    };
    c.pool_intact = Some(false);
    let s = section_from(&r);
    assert_eq!(value(&s, "sandbox.attacks"), all);
    assert_eq!(value(&s, "sandbox.tried.thread"), all - 1.0);
    assert_eq!(value(&s, "sandbox.worked.thread"), all - 1.0);
    // A broken pool counts as worked, whatever the task's own account.
    assert_eq!(value(&s, "sandbox.worked.process"), all);
    assert_eq!(value(&s, "sandbox.tried.sandboxed"), all);
    assert_eq!(value(&s, "sandbox.worked.sandboxed"), 0.0);
    assert_eq!(value(&s, "sandbox.stopped.sandboxed"), all);
    assert_eq!(value(&s, "sandbox.pool_broken"), 1.0);
    assert_eq!(value(&s, "sandbox.layers_unavailable"), 0.0);
    assert!((value(&s, "sandbox.start.ratio") - 2.5).abs() < 1e-9);
    assert!((value(&s, "sandbox.rtt.ratio.pinned") - 1.02).abs() < 1e-9);
    assert_eq!(
        s.notes[0],
        format!("Sandboxed worker: {all} of {all} stopped.")
    );
    let attacks = &s.tables[0];
    assert_eq!(attacks.rows.len(), Attack::ALL.len());
    assert_eq!(attacks.rows[0][0], "files");
    assert!(attacks.rows[0][4].contains("stopped by the sandbox at openat"));
    let scribble = Attack::ALL
        .iter()
        .position(|&a| a == Attack::Scribble)
        .unwrap();
    assert!(
        attacks.rows[scribble][3].contains("POOL BROKEN"),
        "{:?}",
        attacks.rows[scribble]
    );
    assert!(attacks.rows[scribble][2].starts_with("n/a"));
    let cost = &s.tables[2];
    assert_eq!(cost.rows[0][6], "NO", "2.5× misses the 1.5× target");
    assert_eq!(cost.rows[1][6], "yes", "1.02× meets the 1.05× target");
    // 1.08× over rounds that overlap: this run cannot tell it from a met target.
    let near = cost_row(
        "task round trip",
        "unpinned",
        (5_000.0, 5_400.0),
        (
            noise(&[4_900.0, 5_000.0, 5_600.0], None),
            noise(&[5_300.0, 5_400.0, 5_500.0], None),
        ),
        RTT_TARGET,
    );
    assert_eq!(near[6], "no (within the noise)");
    let far = cost_row(
        "task round trip",
        "unpinned",
        (5_000.0, 5_400.0),
        (
            noise(&[4_900.0, 5_000.0, 5_100.0], None),
            noise(&[5_300.0, 5_400.0, 5_500.0], None),
        ),
        RTT_TARGET,
    );
    assert_eq!(far[6], "NO");
    // Four connects worked (two routes, thread and plain process), the listener saw four.
    assert!(!s.notes.iter().any(|n| n.contains("WARNING")));
    assert!(!s.notes.iter().any(|n| n.contains("listener saw")));
}

#[test]
fn the_headline_names_what_got_through_the_sandbox() {
    let refused = Outcome::Refused {
        error: "Permission denied".into(),
    };
    let mut r = result(refused, LayerStatus::Applied);
    for c in r.cells.iter_mut().filter(|c| c.place == Place::Sandboxed) {
        if matches!(c.attack, Attack::TamperCode | Attack::SignalSetown) {
            c.outcome = Outcome::Worked {
                detail: "did it".into(),
            };
        }
        if c.attack == Attack::DoorbellSleepers {
            c.pool_intact = Some(false);
        }
    }
    let s = section_from(&r);
    let all = Attack::ALL.len();
    assert_eq!(value(&s, "sandbox.worked.sandboxed"), 3.0);
    assert_eq!(value(&s, "sandbox.stopped.sandboxed"), (all - 3) as f64);
    assert_eq!(
        s.notes[0],
        format!(
            "Sandboxed worker: {} of {all} stopped. Worked: signal_setown, tamper_code, \
             doorbell_sleepers.",
            all - 3
        )
    );
}

#[test]
fn a_missing_layer_is_said_loudly() {
    let refused = Outcome::Refused {
        error: "Permission denied".into(),
    };
    let mut r = result(refused, LayerStatus::Unavailable("old kernel".into()));
    r.connections_seen = 5;
    let s = section_from(&r);
    assert_eq!(value(&s, "sandbox.layers_unavailable"), 1.0);
    assert_eq!(value(&s, "sandbox.worked.sandboxed"), 0.0);
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("WARNING") && n.contains("landlock (old kernel)")),
        "{:?}",
        s.notes
    );
    assert!(s.tables[1].rows[0][1].contains("UNAVAILABLE: old kernel"));
    // Four connects reported success, the listener saw five: said.
    assert!(s.notes.iter().any(|n| n.contains("listener saw 5")));
}

#[test]
fn the_median_round_is_the_middle_value() {
    assert_eq!(middle(&[30.0, 10.0, 20.0]), 2);
    assert_eq!(middle(&[7.0]), 0);
}

#[test]
fn every_class_has_more_than_one_route() {
    let mut seen: Vec<Class> = Attack::ALL.iter().map(|a| a.class()).collect();
    seen.dedup();
    let distinct: std::collections::HashSet<Class> = seen.iter().copied().collect();
    assert_eq!(
        seen.len(),
        distinct.len(),
        "each class's routes are adjacent"
    );
    assert_eq!(seen.len(), classes());
    for class in seen {
        let routes = Attack::ALL.iter().filter(|a| a.class() == class).count();
        let single = matches!(class, Class::Network | Class::Processes);
        assert!(routes > 1 || single, "{class:?} has {routes} route(s)");
    }
    let keys: std::collections::HashSet<&str> = Attack::ALL.iter().map(|a| a.key()).collect();
    assert_eq!(keys.len(), Attack::ALL.len());
}
