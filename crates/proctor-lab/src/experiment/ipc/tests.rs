//! The ipc experiment's unit tests.

use super::handoff::{Item, decode_into, spots};
use super::*;
use crate::fixture::measurement;
use crate::topology::{Cpu, Placement as TopoPlacement};

/// Data with nothing measured, for tests to fill.
fn empty_data() -> Data {
    Data {
        sizes: Vec::new(),
        topology: Topology::two_cores_one_llc(),
        transports: Vec::new(),
        shm_spin_ns: 0,
        runs: Vec::new(),
        pool_runs: Vec::new(),
        pool_skipped: Vec::new(),
        handoff_sizes: Vec::new(),
        spots: Vec::new(),
        handoffs: Vec::new(),
        setups: Vec::new(),
    }
}

/// Hand-offs at 64 B and 4 MiB on the same CPU and the nearest pair, threads passing a Box
/// and processes copying, with the given 4 MiB figures at the pair; and the control.
fn handoff_data(box_4m: f64, shm_4m: f64) -> Data {
    let spots = spots(&Topology::two_cores_one_llc(), Profile::Quick);
    let run = |way, size, spot: &Spot, ns| HandoffRun {
        way,
        size_bytes: size,
        wire_bytes: size,
        spot: spot.clone(),
        measurement: measurement(ns),
        rounds_ns: vec![ns],
    };
    let mut handoffs = Vec::new();
    for spot in &spots {
        handoffs.push(run(Way::Box, 64, spot, 3_000.0));
        handoffs.push(run(Way::Shm, 64, spot, 3_100.0));
        handoffs.push(run(Way::Pipe, 64, spot, 9_000.0));
        let cross = spot.suffix == ".cross_cpu";
        handoffs.push(run(
            Way::Box,
            4 * MIB,
            spot,
            if cross { box_4m } else { 200_000.0 },
        ));
        handoffs.push(run(
            Way::Shm,
            4 * MIB,
            spot,
            if cross { shm_4m } else { 500_000.0 },
        ));
    }
    handoffs.push(run(Way::Vec, 4 * MIB, &spots[1], 150_000.0));
    handoffs.push(run(Way::Json, 4 * MIB, &spots[1], 45_000_000.0));
    let control = |partner, placement, ns| Run {
        transport: TransportKind::Shm,
        partner,
        placement,
        mode: Pattern::Echo,
        size_bytes: 64,
        measurement: measurement(ns),
        rounds_ns: vec![ns],
        messages: 2_000,
        futex_wakes: 0,
        mixture: None,
    };
    Data {
        sizes: vec![64],
        transports: vec![TransportKind::Shm],
        runs: vec![
            control(Worker::Thread, Placement::Pinned(0), 2_000.0),
            control(Worker::Process, Placement::Pinned(0), 2_100.0),
            control(Worker::Thread, Placement::CrossCpu(0, 1), 9_000.0),
            control(Worker::Process, Placement::CrossCpu(0, 1), 9_200.0),
        ],
        handoff_sizes: vec![64, 4 * MIB],
        setups: vec![SetupRun {
            size_bytes: 4 * MIB,
            measurement: measurement(1_500_000.0),
        }],
        spots,
        handoffs,
        ..empty_data()
    }
}

#[test]
fn spots_come_from_the_topology_per_profile() {
    let t = Topology::two_cores_one_llc();
    let tiny = spots(&t, Profile::Tiny);
    assert_eq!(tiny[0].placement, Placement::Pinned(0));
    assert_eq!(tiny[0].suffix, ".pinned");
    // Even tiny has the pair the claim is decided on.
    assert_eq!(tiny.len(), 2);
    let quick = spots(&t, Profile::Quick);
    assert_eq!(quick.len(), 2);
    assert_eq!(quick[1].placement, Placement::CrossCpu(0, 1));
    assert_eq!(quick[1].words, "shared LLC (cpu 0 → cpu 1)");
    // A bigger machine: the full profile adds every other pair under its placement's key.
    let big = Topology::from_cpus(vec![
        Cpu {
            id: 0,
            core: 0,
            llc: 0,
            node: 0,
        },
        Cpu {
            id: 1,
            core: 0,
            llc: 0,
            node: 0,
        },
        Cpu {
            id: 2,
            core: 2,
            llc: 0,
            node: 0,
        },
        Cpu {
            id: 3,
            core: 3,
            llc: 3,
            node: 1,
        },
    ]);
    let full = spots(&big, Profile::Full);
    let suffixes: Vec<&str> = full.iter().map(|s| s.suffix.as_str()).collect();
    assert_eq!(
        suffixes,
        [".pinned", ".cross_cpu", ".shared_llc", ".other_node"]
    );
    assert!(full[1].words.starts_with(TopoPlacement::SmtSibling.words()));
}

#[test]
fn hand_off_figures_ratios_table_chart_and_control_note() {
    let d = handoff_data(300_000.0, 700_000.0);
    let s = section(&Plan::for_profile(Profile::Quick), &d);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(
        value("ipc.handoff.thread.box.4194304.cross_cpu"),
        Some(300_000.0)
    );
    assert_eq!(
        value("ipc.handoff.process.shm.4194304.pinned"),
        Some(500_000.0)
    );
    assert_eq!(
        value("ipc.handoff.process.json.4194304.cross_cpu"),
        Some(45_000_000.0)
    );
    let r = value("ipc.handoff.copy_over_pointer.4194304.cross_cpu").expect("a ratio");
    assert!((r - 700.0 / 300.0).abs() < 1e-9, "{r}");
    assert_eq!(
        value("ipc.handoff.json_over_vec.4194304.cross_cpu"),
        Some(300.0)
    );
    assert!(value("ipc.handoff.json_over_vec.4194304.pinned").is_none());
    assert_eq!(value("ipc.shm_setup.4194304"), Some(1_500_000.0));
    let placed = s
        .figure("ipc.handoff.thread.box.64.cross_cpu")
        .and_then(|f| f.placement.clone());
    assert_eq!(placed.as_deref(), Some("shared LLC (cpu 0 → cpu 1)"));
    let t = &s.tables[0];
    assert!(t.title.starts_with("Hand-off"), "{}", t.title);
    assert_eq!(t.rows.len(), 4, "two sizes at two placements");
    assert_eq!(t.rows[3][7], "2.33x");
    let charts: Vec<&Chart> = s
        .charts
        .iter()
        .filter(|c| c.id.starts_with("handoff"))
        .collect();
    assert_eq!(charts.len(), 2, "one per placement");
    assert!(charts.iter().all(|c| c.x_log && c.y_log));
    assert!(
        charts[1]
            .series
            .iter()
            .any(|s| s.name.contains("Box") && s.points.len() == 2)
    );
    let control = s
        .notes
        .iter()
        .find(|n| n.starts_with("control"))
        .expect("a control note");
    assert!(
        control.contains("threads 2.00 µs vs processes 2.10 µs (1.05x)"),
        "{control}"
    );
    assert!(s.notes.iter().any(|n| n.contains("counted apart")));
    assert!(s.method.contains("Hand-off (one op"));

    // The claim reads these figures: copying clearly costs more here ...
    let (_, claims) = crate::verdict::judge(std::slice::from_ref(&s));
    let claim = claims
        .iter()
        .find(|c| c.id == "communication")
        .expect("claim");
    assert_eq!(
        claim.verdict,
        crate::report::Verdict::Confirmed,
        "{}",
        claim.evidence
    );
    // ... and the other way round, or within the tolerance, it says so.
    for (box_4m, shm_4m, want) in [
        (700_000.0, 300_000.0, crate::report::Verdict::Refuted),
        (
            300_000.0,
            315_000.0,
            crate::report::Verdict::NoClearDifference,
        ),
    ] {
        let s = section(
            &Plan::for_profile(Profile::Quick),
            &handoff_data(box_4m, shm_4m),
        );
        let (_, claims) = crate::verdict::judge(std::slice::from_ref(&s));
        let claim = claims
            .iter()
            .find(|c| c.id == "communication")
            .expect("claim");
        assert_eq!(claim.verdict, want, "{}", claim.evidence);
    }
}

#[test]
fn json_decodes_into_the_reserved_vec_and_refuses_more() {
    let items = vec![Item::default(); 5];
    let json = serde_json::to_vec(&items).expect("serializes");
    let mut into = Vec::with_capacity(5);
    decode_into(&json, &mut into).expect("fits");
    assert_eq!(into, items);
    let mut small = Vec::with_capacity(2);
    assert!(decode_into(&json, &mut small).is_err());
    assert_eq!(small.capacity(), 2, "never grown");
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn every_way_hands_off_and_the_consumer_reads_the_data() {
    let plan = handoff_plan(Profile::Tiny, None);
    let spot = &spots(&Topology::detect(), Profile::Tiny)[0];
    assert_eq!(spot.suffix, ".pinned");
    for way in Way::ALL {
        for size in [64, 100_000] {
            let r = run_handoff(way, size, spot, &plan)
                .unwrap_or_else(|e| panic!("{way:?} of {size} B: {e:#}"));
            assert!(r.measurement.value() > 0.0, "{way:?} {size}");
            if way == Way::Json {
                assert!(r.wire_bytes > size, "JSON text is longer than the structs");
            }
        }
    }
    let setup = shm_setup(3 * 4096, &plan).expect("maps");
    assert!(setup.measurement.value() > 0.0);
}

#[test]
fn section_from_hand_made_runs() {
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
        mixture: None,
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
        ..empty_data()
    };
    let s = section(&Plan::for_profile(Profile::Tiny), &d);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("ipc.rtt.pipe.thread.64"), Some(8_000.0));
    assert_eq!(value("ipc.rtt.pipe.process.64"), Some(9_000.0));
    // 64 B per 1 µs message.
    let mbs = value("ipc.throughput.pipe.process.64").expect("a throughput figure");
    assert!((mbs - 64e3 * 1e3).abs() / mbs < 0.1, "{mbs}");
    assert!(value("ipc.throughput.pipe.thread.64").is_none());
    // The published pipe round trip stands beside ours; no transport not measured does.
    assert_eq!(s.published.len(), 1);
    assert_eq!(s.published[0].ours_key, "ipc.rtt.pipe.process.64");
    assert!((s.published[0].value - 1e9 / 162_441.0).abs() < 1e-6);
    assert!(s.published_table().is_some());
    assert_eq!(s.tables.len(), 1, "no pool rows, no pool table");
    assert!(!s.figures.iter().any(|f| f.key.starts_with("ipc.pool_rtt")));
}

#[test]
fn pool_round_trips_sit_beside_raw_tcp_at_each_placement() {
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
        mixture: None,
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
        ..empty_data()
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
