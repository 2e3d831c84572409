//! The ipc experiment's unit tests.

use super::*;

#[test]
fn section_from_hand_made_runs() {
    use crate::fixture::measurement;
    let run = |transport, partner, mode, ns| Run {
        transport,
        partner,
        placement: Placement::Unpinned,
        mode,
        size_bytes: 64,
        measurement: measurement(ns),
        rounds_ns: vec![ns],
        messages: 2_000,
        futex_wakes: 0,
    };
    let d = Data {
        sizes: vec![64],
        transports: vec![TransportKind::Pipe],
        shm_spin_ns: 0,
        runs: vec![
            run(TransportKind::Pipe, Worker::Thread, Pattern::Echo, 8_000.0),
            run(TransportKind::Pipe, Worker::Process, Pattern::Echo, 9_000.0),
            run(TransportKind::Pipe, Worker::Process, Pattern::Sink, 1_000.0),
        ],
        pool_runs: Vec::new(),
        pool_skipped: Vec::new(),
    };
    let s = section(&Plan::for_profile(Profile::Tiny), &d);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("ipc.rtt.pipe.thread.64"), Some(8_000.0));
    assert_eq!(value("ipc.rtt.pipe.process.64"), Some(9_000.0));
    // 64 B per 1 µs message.
    let mbs = value("ipc.throughput.pipe.process.64").expect("a throughput figure");
    assert!((mbs - 64e3 * 1e3).abs() / mbs < 0.1, "{mbs}");
    assert!(value("ipc.throughput.pipe.thread.64").is_none());
    assert_eq!(s.tables.len(), 1, "no pool rows, no pool table");
    assert!(!s.figures.iter().any(|f| f.key.starts_with("ipc.pool_rtt")));
}

#[test]
fn pool_round_trips_sit_beside_raw_tcp_at_each_placement() {
    use crate::fixture::measurement;
    let tcp = |placement, ns| Run {
        transport: TransportKind::Tcp,
        partner: Worker::Process,
        placement,
        mode: Pattern::Echo,
        size_bytes: 64,
        measurement: measurement(ns),
        rounds_ns: vec![ns],
        messages: 2_000,
        futex_wakes: 0,
    };
    let pool = |pool, placement, ns| PoolRun {
        pool,
        placement,
        measurement: measurement(ns),
    };
    let pinned = Placement::Pinned(0);
    let d = Data {
        sizes: vec![64],
        transports: vec![TransportKind::Tcp],
        shm_spin_ns: 0,
        runs: vec![tcp(pinned, 20_000.0), tcp(Placement::Unpinned, 12_000.0)],
        pool_runs: vec![
            pool(PoolKind::Thread, pinned, 4_000.0),
            pool(PoolKind::Thread, Placement::Unpinned, 5_000.0),
            pool(PoolKind::Process, pinned, 8_000.0),
            pool(PoolKind::Process, Placement::Unpinned, 4_000.0),
            pool(PoolKind::Remote, pinned, 32_000.0),
            pool(PoolKind::Remote, Placement::Unpinned, 20_000.0),
        ],
        pool_skipped: Vec::new(),
    };
    let s = section(&Plan::for_profile(Profile::Tiny), &d);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("ipc.pool_rtt.remote"), Some(20_000.0));
    assert_eq!(value("ipc.pool_rtt.remote.pinned"), Some(32_000.0));
    assert_eq!(value("ipc.pool_rtt.thread.pinned"), Some(4_000.0));
    assert_eq!(value("ipc.pool_rtt.remote_over_process"), Some(5.0));
    assert_eq!(value("ipc.pool_rtt.remote_over_process.pinned"), Some(4.0));
    assert_eq!(value("ipc.pool_rtt.remote_over_thread"), Some(4.0));
    assert_eq!(value("ipc.pool_rtt.remote_over_tcp.pinned"), Some(1.6));
    let placed = |k: &str| s.figure(k).and_then(|f| f.placement.clone());
    assert!(placed("ipc.pool_rtt.remote.pinned").is_some_and(|p| p.contains("same CPU")));
    assert!(placed("ipc.pool_rtt.remote_over_tcp").is_some_and(|p| p.contains("unpinned")));
    let t = &s.tables[1];
    assert_eq!(t.rows.len(), 4, "three pools and raw tcp: {:?}", t.rows);
    assert_eq!(t.rows[2][0], PoolKind::Remote.label());
    assert_eq!(t.rows[1][1..3], ["8.00 µs", "4.00 µs"]);
    assert_eq!(t.rows[1][4..], ["4.0x", "5.0x"]);
    assert!(t.rows[3][0].contains("raw tcp"));
    assert_eq!(t.rows[3][5], "1.7x");
    let note = s
        .notes
        .iter()
        .find(|n| n.starts_with("pool round trip, pinned"))
        .expect("a pinned pool note");
    assert!(note.contains("remote worker 32.00 µs"), "{note}");
    assert!(
        note.contains("raw tcp 64 B between processes 20.00 µs (remote / it = 1.6x)"),
        "{note}"
    );
    assert!(s.notes.iter().any(|n| n.contains("no network")));
    assert!(s.method.contains("Pool round trip"));
    // Without a remote row there are no ratios and no remote notes.
    let mut d = d;
    d.pool_runs.retain(|r| r.pool != PoolKind::Remote);
    d.pool_skipped = vec!["the remote-worker round trips are skipped: no loopback".into()];
    let s = section(&Plan::for_profile(Profile::Tiny), &d);
    assert!(value("ipc.pool_rtt.process").is_some());
    assert!(s.figure("ipc.pool_rtt.remote_over_tcp").is_none());
    assert!(s.notes.iter().any(|n| n.contains("no loopback")));
    assert!(!s.notes.iter().any(|n| n.contains("no network")));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_pinned_thread_pool_round_trip_is_measured() {
    let cpu = measure::allowed_cpus()[0];
    let m = pool_rtt(
        PoolKind::Thread,
        Placement::Pinned(cpu),
        &plan(Profile::Tiny, None),
    )
    .expect("a thread pool works anywhere");
    assert!(m.value() > 0.0 && m.value().is_finite());
    // The lib's unit-test binary starts no fork server: process pools say why.
    if let Some(why) = processes_unavailable().expect("no other failure") {
        assert!(!why.is_empty());
    }
}

#[test]
fn transports_default_to_all_and_reject_unknown_names() {
    let config = LabConfig::default();
    assert_eq!(
        transports(&config).expect("the default is valid"),
        TransportKind::ALL
    );
    let config = LabConfig {
        transports: Some(vec!["shm".into(), "pipe".into(), "shm".into()]),
        ..LabConfig::default()
    };
    assert_eq!(
        transports(&config).expect("known names"),
        [TransportKind::Shm, TransportKind::Pipe]
    );
    let config = LabConfig {
        transports: Some(vec!["carrier-pigeon".into()]),
        ..LabConfig::default()
    };
    assert!(transports(&config).is_err());
}

#[test]
fn zero_sizes_are_rejected() {
    let config = LabConfig {
        sizes: Some(vec![64, 0]),
        ..LabConfig::default()
    };
    assert!(sizes(&config).is_err());
    assert_eq!(
        sizes(&LabConfig::default()).expect("defaults"),
        [64, 4096, 65536, 1 << 20]
    );
}

#[test]
fn throughput_round_trip_between_threads() {
    let plan = plan(Profile::Tiny, None);
    let r = run_pair(
        TransportKind::Pipe,
        Worker::Thread,
        Placement::Unpinned,
        Pattern::Sink,
        4096,
        &plan,
    )
    .expect("a pipe between threads works");
    assert!(r.throughput().median > 0.0);
    assert!(r.messages >= 10);
    assert_eq!(r.futex_wakes, 0);
}
