use super::*;

const SAME: Pair = Pair {
    placement: Placement::SameCpu,
    a: 0,
    b: 0,
};

const CROSS: Pair = Pair {
    placement: Placement::SharedCache,
    a: 0,
    b: 1,
};

/// A hand-made row: `ns` per op (its spread ±5 %), on `pair` (None: unpinned).
fn row(method: Method, pair: Option<Pair>, size: usize, thp: Thp, ns: f64) -> Row {
    let timing = Timing::of(&crate::fixture::measurement(ns));
    Row {
        method,
        thp,
        pair,
        ballast_bytes: size,
        parent_rss_bytes: (10 * MIB + size) as u64,
        anon_huge_bytes: Some(if thp == Thp::On { size as u64 } else { 0 }),
        timing,
        rounds_ns: vec![ns],
        launch_ns: stats::summarize(&[ns / 5.0, ns / 4.0, ns / 3.0]),
        moved_ns: pair
            .filter(|p| p.a != p.b)
            .and_then(|_| stats::summarize(&[ns / 3.0])),
        matched: pair.map(|_| (30, 30)),
        mixture: None,
        first_result_ns: None,
    }
}

fn result(rows: Vec<Row>) -> SpawnResult {
    SpawnResult {
        thp_mode: Some("madvise".to_string()),
        rows,
        skipped: Vec::new(),
    }
}

fn tiny_section(rows: Vec<Row>) -> Section {
    let profile = Profile::Tiny;
    section(
        &Plan::for_profile(profile),
        &Sizing::for_profile(profile),
        &result(rows),
    )
}

#[test]
fn section_from_hand_made_rows() {
    let mut thread = row(Method::Thread, Some(SAME), 0, Thp::None, 20_000.0);
    thread.rounds_ns = vec![24_000.0, 18_000.0, 20_000.0];
    let mut cross = row(Method::Fork, Some(CROSS), 0, Thp::None, 300_000.0);
    cross.matched = Some((25, 30));
    let rows = vec![
        thread,
        row(Method::Thread, Some(CROSS), 0, Thp::None, 60_000.0),
        row(Method::Fork, Some(SAME), 0, Thp::None, 100_000.0),
        cross,
        row(Method::Vfork, Some(SAME), 0, Thp::None, 25_000.0),
        row(Method::Fork, Some(SAME), 64 * MIB, Thp::Off, 400_000.0),
        row(Method::Fork, Some(SAME), 64 * MIB, Thp::On, 120_000.0),
        row(Method::Vfork, Some(SAME), 64 * MIB, Thp::Off, 26_000.0),
        row(Method::TokioTask, Some(SAME), 0, Thp::None, 400.0),
        row(Method::PoolWorker, None, 0, Thp::None, 500_000.0),
    ];
    let n = rows.len();
    let s = tiny_section(rows);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert!(s.figure("spawn.pool_remote").is_none());
    assert!(!s.notes.iter().any(|n| n.contains("remote worker")));
    assert_eq!(value("spawn.thread"), Some(20_000.0));
    let rounds = s.figure("spawn.thread").and_then(|f| f.rounds.clone());
    let rounds = rounds.expect("the thread figure has its rounds");
    assert_eq!(
        (rounds.min, rounds.max, rounds.spread_pct),
        (18_000.0, 24_000.0, 20.0)
    );
    // Every placed figure says where it ran; a partial match says how many ops did.
    let placed = |k: &str| s.figure(k).and_then(|f| f.placement.clone());
    assert_eq!(placed("spawn.thread").as_deref(), Some("same CPU (cpu 0)"));
    assert_eq!(
        placed("spawn.fork.cross_cpu").as_deref(),
        Some("shared LLC (cpu 0 → cpu 1) (25 of 30 ops)")
    );
    assert_eq!(placed("spawn.async").as_deref(), Some("same CPU (cpu 0)"));
    assert_eq!(placed("spawn.pool_worker").as_deref(), Some("unpinned"));
    assert_eq!(value("spawn.fork.cold"), Some(200_000.0));
    assert!(s.figure("spawn.fork.cross_cpu.cold").is_none());
    assert_eq!(value("spawn.fork.launch"), Some(25_000.0));
    assert_eq!(value("spawn.fork.launch.cross_cpu"), Some(75_000.0));
    assert_eq!(value("spawn.fork.rss_64mib"), Some(400_000.0));
    assert_eq!(value("spawn.fork.thp.rss_64mib"), Some(120_000.0));
    assert_eq!(value("spawn.fork_over_thread"), Some(5.0));
    assert_eq!(value("spawn.fork_over_thread.cross_cpu"), Some(5.0));
    assert_eq!(value("spawn.thread.cross_over_same"), Some(3.0));
    assert_eq!(value("spawn.fork_over_vfork"), Some(4.0));
    assert_eq!(value("spawn.thread_over_async"), Some(50.0));
    assert_eq!(s.tables[0].rows.len(), n);
    // fork without and with huge pages, vfork: three lines, the THP one starting at 0 MiB.
    let series = &s.charts[0].series;
    let thp = series
        .iter()
        .find(|l| l.name.ends_with("(THP on)"))
        .expect("a THP line");
    assert_eq!(thp.points.len(), 2);
    assert!(series.iter().all(|l| !l.name.contains("across")));
    let grows = s
        .notes
        .iter()
        .find(|n| n.contains("fork grows with the parent"))
        .expect("a note on fork against parent size");
    assert!(grows.contains("3.3x less"), "{grows}");
    assert!(grows.contains("vfork 25.0 µs -> 26.0 µs"), "{grows}");
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("System THP mode: madvise"))
    );
    assert!(s.notes.iter().any(|n| n.starts_with("Placement:")));
    // Published anchors stand beside figures we have, and only those.
    let anchored: Vec<&str> = s.published.iter().map(|p| p.ours_key.as_str()).collect();
    assert_eq!(
        anchored,
        vec![
            "spawn.fork",
            "spawn.vfork",
            "spawn.thread.launch",
            "spawn.fork.launch"
        ]
    );
    assert!(s.published.iter().all(|p| !p.hardware.is_empty()));
    assert!(s.published_table().is_some());
}

#[test]
fn remote_row_has_its_first_result_ratios_and_note() {
    let mut remote = row(Method::PoolRemote, None, 0, Thp::None, 12_000_000.0);
    remote.first_result_ns = stats::summarize(&[3_000_000.0, 4_000_000.0, 5_000_000.0]);
    let rows = vec![
        row(Method::PoolWorker, None, 0, Thp::None, 400_000.0),
        row(Method::PoolExec, None, 0, Thp::None, 2_000_000.0),
        remote,
    ];
    let s = tiny_section(rows);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("spawn.pool_remote"), Some(12_000_000.0));
    assert_eq!(value("spawn.pool_remote.first_result"), Some(4_000_000.0));
    assert!(value("spawn.pool_remote.cold").is_some());
    assert_eq!(value("spawn.pool_remote_over_pool_worker"), Some(30.0));
    assert_eq!(value("spawn.pool_remote_over_pool_exec"), Some(6.0));
    let note = s
        .notes
        .iter()
        .find(|n| n.contains("remote worker"))
        .expect("a note on the remote row");
    assert!(note.contains("12000.0 µs with the drop"), "{note}");
    assert!(note.contains("4000.0 µs to the first result"), "{note}");
    assert!(
        note.contains("the exec'd pool worker 2000.0 µs (6.0x)"),
        "{note}"
    );
    assert!(note.contains("ssh") && note.contains("srun"), "{note}");
    let table_row = s.tables[0]
        .rows
        .iter()
        .find(|r| r[0] == Method::PoolRemote.label())
        .expect("the remote row is in the table");
    assert_eq!(table_row[6], "12000.0 µs");
    assert_eq!(table_row[1], "unpinned");
}

#[test]
fn steps_cover_both_placements_and_huge_pages_where_they_mean_something() {
    let methods = [
        Method::Thread,
        Method::Fork,
        Method::Vfork,
        Method::PoolRemote,
    ];
    let all = steps(&[0, 64 * MIB], Some("madvise"), &methods, true);
    let has = |size, thp, method, cross| {
        all.contains(&Step {
            size,
            thp,
            method,
            cross,
        })
    };
    assert!(has(0, Thp::None, Method::Thread, true));
    assert!(has(0, Thp::None, Method::Fork, true));
    assert!(!has(0, Thp::None, Method::Vfork, true));
    assert!(has(64 * MIB, Thp::On, Method::Fork, false));
    assert!(!has(64 * MIB, Thp::On, Method::Vfork, false));
    assert!(!has(64 * MIB, Thp::Off, Method::Thread, true));
    assert!(!has(64 * MIB, Thp::Off, Method::PoolRemote, false));
    // A ballast is made once per size and advice: the steps come grouped.
    let mut groups: Vec<(usize, Thp)> = all.iter().map(|s| (s.size, s.thp)).collect();
    groups.dedup();
    assert_eq!(groups.len(), 3);
    let never = steps(&[0, 64 * MIB], Some("never"), &methods, false);
    assert!(never.iter().all(|s| s.thp != Thp::On && !s.cross));
    assert!(
        steps(&[64 * MIB], None, &methods, true)
            .iter()
            .all(|s| s.thp == Thp::Off)
    );
}

use crate::NoProgress;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn tiny_profile_gives_positive_finite_figures() {
    let config = LabConfig {
        profile: Profile::Tiny,
        ..LabConfig::default()
    };
    let s = Spawn.run(&config, &mut NoProgress).expect("spawn runs");
    assert_eq!(s.id, "spawn");
    for key in [
        "spawn.thread",
        "spawn.fork",
        "spawn.vfork",
        "spawn.clone_vm",
        "spawn.posix_spawn",
        "spawn.async",
        "spawn.fork.cold",
        "spawn.thread.launch",
        "spawn.fork.launch",
    ] {
        let f = s
            .figure(key)
            .unwrap_or_else(|| panic!("figure {key} is missing"));
        assert!(f.value > 0.0 && f.value.is_finite(), "{key} = {}", f.value);
        assert_eq!(f.unit, Unit::Ns);
    }
    assert!(
        s.figure("spawn.fork")
            .and_then(|f| f.placement.clone())
            .is_some_and(|p| p.starts_with("same CPU"))
    );
    // Across CPUs: measured where the machine has two CPUs, or said why not.
    for key in ["spawn.thread.cross_cpu", "spawn.fork.cross_cpu"] {
        if s.figure(key).is_none() {
            assert!(
                s.notes
                    .iter()
                    .any(|n| n.contains("fewer than a quarter") || n.contains("only one CPU")),
                "{key} is missing without a reason"
            );
        }
    }
    assert!(
        s.figures
            .iter()
            .all(|f| f.value.is_finite() && f.value > 0.0)
    );
    assert_eq!(s.charts.len(), 1);
    assert!(s.notes.iter().any(|n| n.contains("THP")));
    assert!(!s.published.is_empty());
    // The lib's unit-test binary starts no fork server, so the pool rows are skipped
    // there.
    let pool = s.figure("spawn.pool_worker").is_some();
    assert_eq!(pool, s.figure("spawn.pool_exec").is_some());
    if !pool {
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("pool-worker row is skipped"))
        );
        assert!(s.figure("spawn.pool_remote").is_none());
    }
    // Where pools work, the remote row is measured or skipped with its reason.
    let remote = s.figure("spawn.pool_remote").is_some();
    assert_eq!(remote, s.figure("spawn.pool_remote.first_result").is_some());
    if pool && !remote {
        assert!(
            s.notes
                .iter()
                .any(|n| n.contains("remote-worker row is skipped"))
        );
    }
    assert!(
        s.method
            .contains("create + first instruction + exit + reap")
    );
}

#[test]
fn quick_profile_sweeps_parent_size() {
    let sizes = Spawn::ballast_sizes(Profile::Quick);
    assert_eq!(sizes[0], 0);
    assert!(sizes.len() >= 2, "{sizes:?}");
}
