use super::*;

#[test]
fn section_from_hand_made_runs() {
    use crate::fixture::measurement;
    let d = Data {
        timer_ns: 20.0,
        one_sided: vec![OneSided {
            transport: Handoff::Futex,
            footprint_bytes: 0,
            cpu: 0,
            per_rtt: measurement(400.0),
        }],
        ping_pong: vec![PingPong {
            transport: Handoff::Futex,
            partner: Worker::Process,
            placement: Placement::Pinned(0),
            footprint_bytes: 0,
            rtt: measurement(3_000.0),
            rtt_rounds: vec![3_000.0, 2_700.0, 3_600.0],
            round_trips: 1_000,
            main_switches: 1_000,
            partner_switches: 1_000,
        }],
    };
    let s = section(&Plan::for_profile(Profile::Tiny), &d, 2);
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
    assert!(!s.cross_checks.is_empty());
    assert!(s.method.contains("syscall cost subtracted"));
}

#[test]
fn one_sided_pipe_does_not_block() {
    let plan = Plan::for_profile(Profile::Tiny);
    let m =
        measure_one_sided(Handoff::Pipe, measure::allowed_cpus()[0], 0, &plan).expect("pipe works");
    assert!(m.value() > 0.0);
}
