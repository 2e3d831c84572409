use super::*;

#[test]
fn section_from_hand_made_rows() {
    use crate::fixture::measurement;
    let row = |method, ballast_bytes, ns| Row {
        method,
        ballast_bytes,
        parent_rss_bytes: 10 * MIB as u64,
        measurement: measurement(ns),
        rounds_ns: vec![ns],
        first_result_ns: None,
    };
    let mut thread = row(Method::Thread, 0, 20_000.0);
    thread.rounds_ns = vec![24_000.0, 18_000.0, 20_000.0];
    let rows = [
        thread,
        row(Method::Fork, 0, 100_000.0),
        row(Method::Fork, 64 * MIB, 300_000.0),
        row(Method::TokioTask, 0, 400.0),
    ];
    let s = section(&Plan::for_profile(Profile::Tiny), &rows);
    assert!(s.figure("spawn.pool_remote").is_none());
    assert!(!s.notes.iter().any(|n| n.contains("remote worker")));
    assert_eq!(s.figure("spawn.thread").map(|f| f.value), Some(20_000.0));
    let rounds = s.figure("spawn.thread").and_then(|f| f.rounds.clone());
    let rounds = rounds.expect("the thread figure has its rounds");
    assert_eq!(
        (rounds.min, rounds.max, rounds.spread_pct),
        (18_000.0, 24_000.0, 20.0)
    );
    assert!(s.figure("spawn.fork").is_some_and(|f| f.rounds.is_none()));
    assert_eq!(
        s.figure("spawn.fork.cold").map(|f| f.value),
        Some(200_000.0)
    );
    assert!(s.figure("spawn.fork.rss_64mib").is_some());
    assert_eq!(
        s.figure("spawn.fork_over_thread").map(|f| f.value),
        Some(5.0)
    );
    assert_eq!(
        s.figure("spawn.thread_over_async").map(|f| f.value),
        Some(50.0)
    );
    assert_eq!(s.tables[0].rows.len(), rows.len());
    assert!(
        s.notes
            .iter()
            .any(|n| n.contains("fork grows with the parent"))
    );
}

#[test]
fn remote_row_has_its_first_result_ratios_and_note() {
    use crate::fixture::measurement;
    let row = |method, ns| Row {
        method,
        ballast_bytes: 0,
        parent_rss_bytes: 10 * MIB as u64,
        measurement: measurement(ns),
        rounds_ns: vec![ns],
        first_result_ns: None,
    };
    let mut remote = row(Method::PoolRemote, 12_000_000.0);
    remote.first_result_ns = stats::summarize(&[3_000_000.0, 4_000_000.0, 5_000_000.0]);
    let rows = [
        row(Method::PoolWorker, 400_000.0),
        row(Method::PoolExec, 2_000_000.0),
        remote,
    ];
    let s = section(&Plan::for_profile(Profile::Tiny), &rows);
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
    assert_eq!(table_row[3], "12000.0 µs");
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
        "spawn.posix_spawn",
        "spawn.async",
        "spawn.fork.cold",
    ] {
        let f = s
            .figure(key)
            .unwrap_or_else(|| panic!("figure {key} is missing"));
        assert!(f.value > 0.0 && f.value.is_finite(), "{key} = {}", f.value);
        assert_eq!(f.unit, Unit::Ns);
    }
    assert!(
        s.figures
            .iter()
            .all(|f| f.value.is_finite() && f.value > 0.0)
    );
    assert_eq!(s.charts.len(), 1);
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
    let measured = RSS_METHODS.iter().filter(|m| !m.is_pool() || pool).count();
    assert_eq!(s.charts[0].series.len(), measured);
    // Every method at each size (one here), the remote worker and the async task.
    assert_eq!(s.tables[0].rows.len(), measured + usize::from(remote) + 1);
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
