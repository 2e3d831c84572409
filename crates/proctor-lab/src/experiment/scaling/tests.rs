use super::*;

#[test]
fn section_from_hand_made_points() {
    let cpu = |model, workers, median_ns: f64, speedup: f64| CpuPoint {
        model,
        workers,
        elapsed_ns: vec![median_ns; 3],
        median_ns,
        throughput_per_sec: 1e9 / median_ns,
        speedup,
        efficiency: speedup / workers as f64,
        checksum: 7,
    };
    let io = |model, ms: f64| IoPoint {
        model,
        units: 1_000,
        completion_ns: vec![ms * 1e6; 3],
        median_ns: ms * 1e6,
        creation_ns: vec![ms * 2e6; 3],
        reaped_ns: vec![ms * 1.5e6; 3],
        memory_bytes: Some(1e6),
        max_alive: 1_000,
    };
    let r = ScalingResult {
        cpus: 2,
        physical_cores: Some(1),
        total_iterations: 1_000_000,
        cpu: vec![
            cpu(Runner::Thread, 1, 100e6, 1.0),
            cpu(Runner::Thread, 2, 55e6, 100.0 / 55.0),
            cpu(Runner::Process, 1, 100e6, 1.0),
            cpu(Runner::Process, 2, 60e6, 100.0 / 60.0),
        ],
        io: vec![
            io(Runner::Thread, 120.0),
            io(Runner::Process, 900.0),
            io(Runner::Async, 40.0),
        ],
        skipped: vec![],
    };
    let mut r = r;
    // Memory freed meanwhile: a growth below zero.
    r.io[2].memory_bytes = Some(-946_176.0);
    r.cpu[0].elapsed_ns = vec![100e6, 110e6, 90e6];
    r.cpu[1].elapsed_ns = vec![50e6, 55e6, 60e6];
    let s = section_from(&r);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("scaling.cores"), Some(2.0));
    let rounds = s
        .figure("scaling.speedup.thread.cores")
        .and_then(|f| f.rounds.clone());
    assert_eq!(rounds.map(|r| r.values), Some(vec![2.0, 2.0, 1.5]));
    assert_eq!(value("scaling.speedup.thread.cores"), Some(100.0 / 55.0));
    assert_eq!(value("scaling.speedup.process.cores"), Some(100.0 / 60.0));
    assert_eq!(value("scaling.io.completion.process.1000"), Some(900e6));
    assert_eq!(value("scaling.io.completion.async.1000"), Some(40e6));
    // Creation and waiting apart: figures, table columns and a note with both.
    assert_eq!(value("scaling.io.create.process.1000"), Some(1800e6));
    let io_table = &s.tables[1];
    assert_eq!(
        &io_table.columns[2..5],
        ["create ms", "wait ms", "wait + reap ms"]
    );
    assert_eq!(&io_table.rows[1][2..5], ["1800.0", "900.0", "1350.0"]);
    let phases = s
        .notes
        .iter()
        .find(|n| n.contains("the phases apart"))
        .expect("a note on creation against waiting");
    assert!(
        phases.contains("process 1800.0 ms to create, 900.0 ms to wait"),
        "{phases}"
    );
    assert!(!s.notes.iter().any(|n| n.contains("a unit died early")));
    // A growth below a page is no figure: "< 4.00 KiB", never a negative size.
    let freed = s
        .figure("scaling.io.memory.async.1000")
        .expect("memory figure");
    assert!(freed.below_resolution() && freed.value == 0.0);
    assert_eq!(io_table.rows[2][5], "< 4");
}

#[test]
fn units_are_capped_by_the_machine_and_async_tasks_are_not() {
    let (cap, why) = unit_cap(Profile::Quick, Runner::Process);
    assert!((1..=1_000).contains(&cap), "{cap}");
    assert!(!why.is_empty());
    let (threads, _) = unit_cap(Profile::Full, Runner::Thread);
    assert!(threads >= 1);
    assert_eq!(unit_cap(Profile::Quick, Runner::Async).0, usize::MAX);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn every_unit_is_alive_at_the_gate_before_the_waits_begin() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    for model in [Runner::Thread, Runner::Process, Runner::Async] {
        let run = io_run(model, 12, &runtime).expect("an I/O-bound run");
        assert_eq!(run.max_alive, 12, "{model:?}");
        // Three 10 ms sleeps after the gate opened, at the least.
        assert!(run.wait >= 30e6, "{model:?}: {}", run.wait);
        assert!(run.reaped >= run.wait, "{model:?}");
        assert!(run.creation > 0.0, "{model:?}");
    }
}

#[test]
fn shares_add_up() {
    assert_eq!(shares(10, 3), vec![4, 3, 3]);
    assert_eq!(shares(10, 3).iter().sum::<u64>(), 10);
}

#[test]
fn worker_counts_cover_the_range() {
    assert_eq!(worker_counts(2), vec![1, 2, 3, 4]);
    let w = worker_counts(16);
    assert_eq!((w[0], *w.last().expect("non-empty")), (1, 32));
    assert!(w.contains(&16) && w.contains(&8));
}

#[test]
fn split_work_gives_the_same_checksum_in_any_model() {
    let a = cpu_run(Runner::Thread, 2, 1000).expect("threads");
    let b = cpu_run(Runner::Process, 2, 1000).expect("processes");
    assert_eq!(a.1, b.1);
}
