//! Shape tests for the race, sync, memory and scaling experiments in the tiny profile. They check
//! keys, units and the values that must hold exactly; never timings.

use proctor_lab::experiment::find;
use proctor_lab::report::{Section, Unit};
use proctor_lab::{LabConfig, NoProgress, Profile};

fn run_tiny(id: &str) -> Section {
    let _guard = super::serial();
    let config = LabConfig {
        profile: Profile::Tiny,
        ..LabConfig::default()
    };
    let experiment = find(id).unwrap_or_else(|| panic!("experiment {id} is registered"));
    let section = experiment
        .run(&config, &mut NoProgress)
        .unwrap_or_else(|e| panic!("{id} runs in the tiny profile: {e:#}"));
    assert_eq!(section.id, id);
    assert!(!section.method.is_empty(), "{id} says how it measured");
    assert!(!section.charts.is_empty(), "{id} has a chart");
    assert!(!section.data.is_null(), "{id} carries its typed result");
    section
}

/// The figure `key`, checked for its unit and a finite value.
fn figure(section: &Section, key: &str, unit: Unit) -> f64 {
    let f = section
        .figure(key)
        .unwrap_or_else(|| panic!("figure {key} is present"));
    assert_eq!(f.unit, unit, "unit of {key}");
    assert!(f.value.is_finite(), "{key} is finite: {}", f.value);
    f.value
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
