use super::*;
use crate::fixture::measurement;
use crate::topology::Placement as Place;

fn run(partner: Worker, pair: Pair, work: Work, rtt: f64) -> PingPong {
    PingPong {
        transport: Handoff::Pipe,
        partner,
        placement: if pair.a == pair.b {
            Placement::Pinned(pair.a)
        } else {
            Placement::CrossCpu(pair.a, pair.b)
        },
        pair: Some(pair),
        work,
        rtt: measurement(rtt),
        rtt_rounds: vec![rtt],
        round_trips: 1_000,
        main_switches: 1_000,
        partner_switches: 1_000,
        mixture: None,
    }
}

fn one_sided(work: Work, v: f64) -> OneSided {
    OneSided {
        transport: Handoff::Pipe,
        work,
        cpu: 0,
        per_rtt: measurement(v),
    }
}

const SAME: Pair = Pair {
    placement: Place::SameCpu,
    a: 0,
    b: 0,
};

const BIG: Work = Work {
    footprint_bytes: 2048 * KIB,
    stride_bytes: 64,
    sharing: Sharing::Private,
};

fn hand_made(thread_big_rtt: f64, process_big_rtt: f64) -> Data {
    let cross = Pair {
        placement: Place::SharedCache,
        a: 0,
        b: 1,
    };
    let shared = Work {
        sharing: Sharing::Shared,
        ..BIG
    };
    Data {
        timer_ns: 20.0,
        same_cpu: SAME,
        sweep_plan: Plan::for_profile(Profile::Tiny),
        one_sided: vec![
            OneSided {
                transport: Handoff::Futex,
                ..one_sided(Work::NONE, 400.0)
            },
            one_sided(Work::NONE, 1_000.0),
        ],
        ping_pong: vec![
            PingPong {
                transport: Handoff::Futex,
                rtt_rounds: vec![3_000.0, 2_700.0, 3_600.0],
                ..run(Worker::Process, SAME, Work::NONE, 3_000.0)
            },
            run(Worker::Process, SAME, Work::NONE, 5_000.0),
            run(Worker::Thread, SAME, Work::NONE, 4_000.0),
            run(Worker::Thread, cross, Work::NONE, 9_000.0),
        ],
        sweep_one_sided: vec![one_sided(BIG, 41_000.0), one_sided(shared, 41_000.0)],
        sweep: vec![
            run(Worker::Thread, SAME, BIG, thread_big_rtt),
            run(Worker::Process, SAME, BIG, process_big_rtt),
            run(Worker::Thread, SAME, shared, 45_000.0),
            run(Worker::Process, SAME, shared, 47_000.0),
        ],
        facts: Facts::from_parts(
            Some("flags\t: fpu pcid invpcid\n"),
            Some("Not affected".into()),
            Some("Mitigation: Retpolines; IBPB: conditional".into()),
        ),
    }
}

#[test]
fn section_from_hand_made_runs() {
    let d = hand_made(64_000.0, 71_000.0);
    let s = section(&Plan::for_profile(Profile::Tiny), &d, true);
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(value("switch.futex.process.pinned.rtt"), Some(3_000.0));
    assert_eq!(value("switch.futex.process.pinned"), Some(1_500.0));
    let rounds = s
        .figure("switch.futex.process.pinned")
        .and_then(|f| f.rounds.clone());
    let rounds = rounds.expect("the switch figure has its rounds");
    assert_eq!(rounds.values, vec![1_500.0, 1_350.0, 1_800.0]);
    assert_eq!(rounds.spread_pct, 20.0);
    assert_eq!(value("switch.futex.process.pinned.net"), Some(1_300.0));
    assert_eq!(
        value("switch.futex.process.pinned.switches_per_rtt"),
        Some(2.0)
    );
    assert_eq!(value("switch.futex.one_sided"), Some(400.0));
    assert!(
        s.figure("switch.futex.process.pinned")
            .and_then(|f| f.placement.as_deref())
            .is_some_and(|p| p.contains("same CPU"))
    );
    // A cross pair is keyed and labelled by its placement, and has no net switch cost.
    let cross = s
        .figure("switch.pipe.thread.shared_llc")
        .expect("the cross pair's figure");
    assert_eq!(cross.value, 4_500.0);
    let place = cross.placement.as_deref().unwrap_or_default();
    assert!(place.contains("shared LLC (cpu 0 → cpu 1)"), "{place}");
    assert!(place.contains("wake-up"), "{place}");
    assert!(s.figure("switch.pipe.thread.shared_llc.net").is_none());

    // Indirect: total = (RTT - one-sided) / 2, less the direct cost of the same partner kind
    // (the same-CPU pipe net switch: threads 1.5 µs, processes 2 µs).
    assert_eq!(value("switch.pipe.thread.pinned.net"), Some(1_500.0));
    assert_eq!(value("switch.pipe.process.pinned.net"), Some(2_000.0));
    assert_eq!(
        value("switch.total.thread.private.2048kib.s64"),
        Some(11_500.0)
    );
    assert_eq!(
        value("switch.indirect.thread.private.2048kib.s64"),
        Some(10_000.0)
    );
    assert_eq!(
        value("switch.indirect.process.private.2048kib.s64"),
        Some(13_000.0)
    );
    assert_eq!(
        value("switch.indirect.process.shared.2048kib.s64"),
        Some(1_000.0)
    );
    let table = s
        .tables
        .iter()
        .find(|t| t.title.starts_with("Indirect"))
        .expect("the sweep's table");
    assert_eq!(table.rows.len(), 4);
    assert!(
        s.charts
            .iter()
            .any(|c| c.id == "indirect-switch-vs-footprint")
    );
    assert!(s.notes.iter().any(|n| n.contains("PCID yes, INVPCID yes")));
    assert!(s.notes.iter().any(|n| n.contains("IBPB conditional")));
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("Indirect cost at 2048 KiB"))
    );
    // Published anchors stand beside figures of ours that exist.
    let keys: Vec<&str> = s.published.iter().map(|p| p.ours_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "switch.pipe.process.pinned.net",
            "switch.total.process.private.2048kib.s64"
        ],
        "no futex thread figure here, so no anchor for it"
    );
    for p in &s.published {
        assert!(s.figure(&p.ours_key).is_some(), "{}", p.ours_key);
        assert!(p.source.contains("Li, Ding & Shen 2007"));
    }
    // A sweep that stops below their largest arrays (2 MB) gets no anchor for its largest point.
    let mut small = hand_made(64_000.0, 71_000.0);
    for r in &mut small.sweep {
        r.work.footprint_bytes = KIB * 512;
    }
    for o in &mut small.sweep_one_sided {
        o.work.footprint_bytes = KIB * 512;
    }
    let s = section(&Plan::for_profile(Profile::Tiny), &small, true);
    assert!(
        s.figure("switch.total.process.private.512kib.s64")
            .is_some()
    );
    assert!(
        !s.published
            .iter()
            .any(|p| p.ours_key.starts_with("switch.total"))
    );
    // Nor does a largest point that came out negative (noise).
    let s = section(
        &Plan::for_profile(Profile::Tiny),
        &hand_made(64_000.0, 40_000.0),
        true,
    );
    assert!(
        s.figure("switch.total.process.private.2048kib.s64")
            .is_some_and(|f| f.value < 0.0)
    );
    assert!(
        !s.published
            .iter()
            .any(|p| p.ours_key.starts_with("switch.total"))
    );
    let mut with_futex_threads = d;
    with_futex_threads.ping_pong.push(PingPong {
        transport: Handoff::Futex,
        ..run(Worker::Thread, SAME, Work::NONE, 2_800.0)
    });
    let s = section(&Plan::for_profile(Profile::Tiny), &with_futex_threads, true);
    let anchor = s
        .published
        .iter()
        .find(|p| p.ours_key == "switch.futex.thread.pinned")
        .expect("Bendersky's thread switch stands beside ours");
    assert!(anchor.source.starts_with("Bendersky 2018"));
    assert_eq!(s.figure(&anchor.ours_key).map(|f| f.value), Some(1_400.0));
}

#[test]
fn the_indirect_cost_follows_the_process_runs_both_ways() {
    // Processes pay more indirect cost than threads on one machine, less on another: the
    // figures follow the runs, whichever way they go.
    for (thread, process) in [(64_000.0, 90_000.0), (90_000.0, 64_000.0)] {
        let s = section(
            &Plan::for_profile(Profile::Tiny),
            &hand_made(thread, process),
            false,
        );
        let v = |k: &str| s.figure(k).map(|f| f.value).expect(k);
        let (t, p) = (
            v("switch.indirect.thread.private.2048kib.s64"),
            v("switch.indirect.process.private.2048kib.s64"),
        );
        assert_eq!(t > p, thread > process);
        assert!(s.notes.iter().any(|n| n.contains("no cross-CPU figures")));
        assert!(!s.notes.iter().any(|n| n.contains("came out negative")));
    }
    // A ping-pong faster than the same work in one thread: an indirect cost below zero, which
    // the section calls noise rather than a saving.
    let s = section(
        &Plan::for_profile(Profile::Tiny),
        &hand_made(40_000.0, 90_000.0),
        true,
    );
    let v = s
        .figure("switch.indirect.thread.private.2048kib.s64")
        .map(|f| f.value);
    assert_eq!(v, Some(-2_000.0));
    assert!(
        s.notes
            .iter()
            .any(|n| n.starts_with("1 of 4 sweep points came out negative"))
    );
}

#[test]
fn sweep_points_cover_every_footprint_stride_and_sharing_once() {
    let works = sweep_works(&[0, 256 * KIB, 8 << 20], &[64, 4096]);
    assert_eq!(works.len(), 2 * 2 * 2);
    assert!(works.iter().all(|w| w.footprint_bytes > 0));
    let mut keys: Vec<String> = works.iter().map(|&w| section::work_key(w)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), works.len(), "every point has its own key");
    let (fps, strides) = sweep_axes(Profile::Quick);
    assert!(fps.len() <= 3 && fps[0] == 0 && strides.contains(&64));
    assert!(fps.iter().all(|&f| f <= 8 << 20));
}

use crate::NoProgress;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn tiny_profile_gives_positive_finite_figures() {
    let config = LabConfig {
        profile: Profile::Tiny,
        ..LabConfig::default()
    };
    let s = Switch.run(&config, &mut NoProgress).expect("switch runs");
    assert_eq!(s.id, "switch");
    for t in ["pipe", "futex"] {
        for p in ["thread", "process"] {
            for suffix in ["", ".rtt"] {
                let key = format!("switch.{t}.{p}.pinned{suffix}");
                let f = s
                    .figure(&key)
                    .unwrap_or_else(|| panic!("figure {key} is missing"));
                assert!(f.value > 0.0 && f.value.is_finite(), "{key} = {}", f.value);
                assert!(
                    f.placement
                        .as_deref()
                        .is_some_and(|p| p.contains("same CPU"))
                );
            }
            let key = format!("switch.{t}.{p}.pinned.switches_per_rtt");
            let spr = s.figure(&key).expect("switch count is reported").value;
            // Pinned to one CPU, each side must block once per round trip.
            assert!(spr >= 1.5, "{key} = {spr}");
            assert!(s.figure(&format!("switch.{t}.{p}.pinned.net")).is_some());
        }
        let os = s
            .figure(&format!("switch.{t}.one_sided"))
            .expect("one-sided cost");
        assert!(os.value > 0.0 && os.value.is_finite());
    }
    for f in &s.figures {
        assert!(f.value.is_finite(), "{} = {}", f.key, f.value);
    }
    // Every cross pair the machine offers, keyed by its placement.
    for pair in Topology::detect().pairs().iter().filter(|p| p.a != p.b) {
        for t in ["pipe", "futex"] {
            for p in ["thread", "process"] {
                let key = format!("switch.{t}.{p}.{}", pair.placement.key());
                let f = s.figure(&key).unwrap_or_else(|| panic!("{key} is missing"));
                let place = f.placement.as_deref().unwrap_or_default();
                assert!(place.contains(pair.placement.words()), "{key}: {place}");
            }
        }
    }
    // The indirect sweep: the zero point and the tiny profile's footprint, both sharings.
    for p in ["thread", "process"] {
        for key in [
            format!("switch.total.{p}.private.64kib.s64"),
            format!("switch.indirect.{p}.private.64kib.s64"),
            format!("switch.indirect.{p}.shared.64kib.s64"),
        ] {
            assert!(s.figure(&key).is_some(), "{key} is missing");
        }
    }
    assert!(s.data["facts"].is_object());
    assert!(!s.published.is_empty());
    assert!(!s.cross_checks.is_empty());
    assert!(s.method.contains("syscall cost subtracted"));
}

#[test]
fn one_sided_pipe_does_not_block() {
    let plan = Plan::for_profile(Profile::Tiny);
    let m = measure_one_sided(Handoff::Pipe, measure::allowed_cpus()[0], Work::NONE, &plan)
        .expect("pipe works");
    assert!(m.value() > 0.0);
}

#[test]
fn an_unpinned_run_is_described_as_a_mixture_of_placements() {
    let plan = Plan::for_profile(Profile::Tiny);
    for partner in [Worker::Thread, Worker::Process] {
        let r = ping_pong(Handoff::Pipe, partner, None, Work::NONE, &plan).expect("runs");
        let m = r.mixture.as_ref().expect("the batches were tagged");
        assert_eq!(
            m.batches, plan.batches as usize,
            "one tag per measured batch"
        );
        let total: f64 = m.modes.iter().map(|x| x.fraction).sum();
        assert!((total - 1.0).abs() < 1e-9);
        let words = section::place_words(&r);
        assert!(words.starts_with("unpinned mixture: "), "{words}");
    }
    let pinned = ping_pong(
        Handoff::Pipe,
        Worker::Thread,
        Topology::detect().pairs().first().copied(),
        Work::NONE,
        &plan,
    )
    .expect("runs");
    assert!(pinned.mixture.is_none(), "a pinned run is not a mixture");
}
