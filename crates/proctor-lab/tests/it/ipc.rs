//! Shape tests for the ipc experiment and the spawn experiment's pool-worker row in the tiny
//! profile: keys, units, placements and positive finite values; never timings.

use proctor_lab::experiment::find;
use proctor_lab::ipc::TransportKind;
use proctor_lab::report::{Section, Unit};
use proctor_lab::topology::Topology;
use proctor_lab::{LabConfig, NoProgress, Profile};

use super::run_tiny;

/// The figure `key`: present, in `unit`, positive and finite; returns its placement.
fn positive(section: &Section, key: &str, unit: Unit) -> Option<String> {
    let f = section
        .figure(key)
        .unwrap_or_else(|| panic!("figure {key} is present"));
    assert_eq!(f.unit, unit, "unit of {key}");
    assert!(
        f.value.is_finite() && f.value > 0.0,
        "{key} is positive and finite: {}",
        f.value
    );
    f.placement.clone()
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn ipc_has_every_transport_partner_and_size() {
    let s = run_tiny("ipc");
    assert_eq!(s.id, "ipc");
    assert_eq!(s.title, "Communication (IPC)");
    assert!(s.method.contains("one op"), "{}", s.method);
    for kind in TransportKind::ALL {
        let partners: &[&str] = if kind.supports_processes() {
            &["thread", "process"]
        } else {
            &["thread"]
        };
        for partner in partners {
            for size in [64, 4096] {
                let base = format!("{}.{partner}.{size}", kind.name());
                let unpinned = positive(&s, &format!("ipc.rtt.{base}"), Unit::Ns);
                assert!(unpinned.is_some_and(|p| p.contains("unpinned")), "{base}");
                let pinned = positive(&s, &format!("ipc.rtt.{base}.pinned"), Unit::Ns);
                assert!(pinned.is_some_and(|p| p.contains("same CPU")), "{base}");
                for suffix in ["", ".pinned"] {
                    positive(
                        &s,
                        &format!("ipc.throughput.{base}{suffix}"),
                        Unit::BytesPerSec,
                    );
                    positive(&s, &format!("ipc.msgs.{base}{suffix}"), Unit::PerSec);
                }
                let rtt = s.figure(&format!("ipc.rtt.{base}")).expect("checked above");
                let spread = rtt.spread.as_ref().expect("a round trip has a spread");
                assert!(spread.min <= spread.p99 && spread.samples > 0, "{base}");
            }
        }
        // A channel cannot cross processes: no process figures, and a note says so.
        if !kind.supports_processes() {
            assert!(
                s.figure(&format!("ipc.rtt.{}.process.64", kind.name()))
                    .is_none()
            );
            assert!(s.notes.iter().any(|n| n.contains(kind.name())));
        }
    }
    for size in [64, 4096] {
        let key = format!("ipc.futex_wakes_per_msg.shm.process.{size}");
        let f = s
            .figure(&key)
            .unwrap_or_else(|| panic!("figure {key} is present"));
        assert!(f.value.is_finite() && f.value >= 0.0, "{key} = {}", f.value);
    }
    // This binary starts the fork server before main, so every pool runs, and can be its
    // own remote agent.
    for pool in ["thread", "process", "remote"] {
        let unpinned = positive(&s, &format!("ipc.pool_rtt.{pool}"), Unit::Ns);
        assert!(unpinned.is_some_and(|p| p.contains("unpinned")), "{pool}");
        let pinned = positive(&s, &format!("ipc.pool_rtt.{pool}.pinned"), Unit::Ns);
        assert!(pinned.is_some_and(|p| p.contains("same CPU")), "{pool}");
    }
    for suffix in ["", ".pinned"] {
        for other in ["process", "thread", "tcp"] {
            positive(
                &s,
                &format!("ipc.pool_rtt.remote_over_{other}{suffix}"),
                Unit::Ratio,
            );
        }
    }
    // The hand-off, in tiny on the same CPU and on the nearest pair of two CPUs where the
    // machine has one (the claim is decided there): threads pass a pointer, processes copy,
    // through shared memory and a pipe, at both ends of the sizes; the structured payloads at
    // 64 B, at the deciding placement only.
    let deciding = if Topology::detect().nearest_cross().is_some() {
        ".cross_cpu"
    } else {
        ".pinned"
    };
    for suffix in [".pinned", deciding] {
        for size in [64, 4 << 20] {
            for way in ["thread.box", "process.shm", "process.pipe"] {
                positive(&s, &format!("ipc.handoff.{way}.{size}{suffix}"), Unit::Ns);
            }
            positive(
                &s,
                &format!("ipc.handoff.copy_over_pointer.{size}{suffix}"),
                Unit::Ratio,
            );
        }
    }
    let placed = s
        .figure("ipc.handoff.thread.box.64.pinned")
        .and_then(|f| f.placement.clone());
    assert!(placed.is_some_and(|p| p.contains("same CPU")));
    for size in [64, 4 << 20] {
        positive(&s, &format!("ipc.shm_setup.{size}"), Unit::Ns);
    }
    for way in ["thread.vec", "process.json"] {
        positive(&s, &format!("ipc.handoff.{way}.64{deciding}"), Unit::Ns);
        assert!(
            s.figure(&format!("ipc.handoff.{way}.4194304{deciding}"))
                .is_none()
        );
    }
    // The pair the claim reads comes from independent rounds.
    for way in ["thread.box", "process.shm"] {
        let key = format!("ipc.handoff.{way}.4194304{deciding}");
        let rounds = s.figure(&key).and_then(|f| f.rounds.clone());
        assert!(rounds.is_some_and(|r| r.values.len() == 3), "{key}");
    }
    // perf bench sched messaging, processes and threads, beside the control (a row each,
    // with the tool's figure or why there is none).
    let messaging: Vec<_> = s
        .cross_checks
        .iter()
        .filter(|c| c.tool == "perf bench sched messaging")
        .collect();
    assert_eq!(messaging.len(), 2);
    assert!(messaging[1].command.ends_with("-t"));
    if messaging.iter().all(|c| c.theirs.is_some()) {
        assert!(s.notes.iter().any(|n| n.starts_with("second control")));
    }
    // Unpinned round trips say which placements they ran on.
    let mixed = s
        .figure("ipc.rtt.shm.process.64")
        .and_then(|f| f.placement.clone());
    assert!(
        mixed.is_some_and(|p| p.starts_with("unpinned mixture:")),
        "an unpinned round trip is described as a mixture"
    );
    let mixed = s
        .figure("ipc.throughput.shm.process.64")
        .and_then(|f| f.placement.clone());
    assert!(
        mixed.is_some_and(|p| p.starts_with("unpinned mixture:") && p.contains("per message")),
        "so is an unpinned throughput"
    );
    assert_eq!(
        s.tables.len(),
        3,
        "the hand-off table, the transport table and the pool table"
    );
    assert!(s.tables[0].title.starts_with("Hand-off"));
    assert_eq!(s.tables[2].rows.len(), 4);
    assert!(s.notes.iter().any(|n| n.contains("no network")));
    assert!(s.notes.iter().any(|n| n.contains("spin-then-futex")));
    assert!(s.notes.iter().any(|n| n.contains("TCP_NODELAY")));
    let handoff_charts = if deciding == ".pinned" { 1 } else { 2 };
    assert_eq!(
        s.charts.len(),
        3 + handoff_charts,
        "a hand-off chart per placement, and the round trips' three"
    );
    assert!(s.charts.iter().all(|c| c.x_log && c.y_log));
    assert!(!s.tables.is_empty());
    assert!(!s.data.is_null());
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn ipc_honours_sizes_and_transports() {
    let _guard = super::serial();
    let config = LabConfig {
        profile: Profile::Tiny,
        sizes: Some(vec![100]),
        transports: Some(vec!["pipe".into()]),
        ..LabConfig::default()
    };
    let s = find("ipc")
        .expect("ipc is registered")
        .run(&config, &mut NoProgress)
        .expect("ipc runs with one transport and one size");
    let keys: Vec<&str> = s.figures.iter().map(|f| f.key.as_str()).collect();
    // Narrowed transports leave the hand-off out: only the pipe's figures, at 100 B.
    assert!(
        keys.iter()
            .all(|k| k.contains(".pipe.") && k.contains(".100")),
        "{keys:?}"
    );
    assert!(keys.contains(&"ipc.rtt.pipe.process.100.pinned"));
    let bad = LabConfig {
        transports: Some(vec!["carrier-pigeon".into()]),
        ..config
    };
    assert!(
        find("ipc")
            .expect("registered")
            .run(&bad, &mut NoProgress)
            .is_err()
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn spawn_has_the_pool_worker_row() {
    let s = run_tiny("spawn");
    for key in [
        "spawn.thread",
        "spawn.fork",
        "spawn.posix_spawn",
        "spawn.async",
        "spawn.pool_worker",
        "spawn.pool_exec",
        // This binary starts the fork server before main, so it can be its own agent too.
        "spawn.pool_remote",
        "spawn.pool_remote.first_result",
    ] {
        positive(&s, key, Unit::Ns);
    }
    let first = s.figure("spawn.pool_remote.first_result").expect("checked");
    let whole = s.figure("spawn.pool_remote").expect("checked");
    // The first result comes before the drop ends; but the two are medians of different
    // batches (the first result only of the timestamped ones), and the drop is a small part
    // of the whole, so on a loaded machine noise may cross them by a little, never by half.
    assert!(
        first.value < whole.value * 1.5,
        "the first result ({}) comes before the drop ends ({})",
        first.value,
        whole.value
    );
    assert!(s.notes.iter().any(|n| n.contains("srun")));
}
