//! proctor-lab's integration tests: one binary, one module per area.

use std::sync::{Mutex, MutexGuard};

use proctor_lab::experiment::find;
use proctor_lab::report::{Section, Unit};
use proctor_lab::{LabConfig, NoProgress, Profile};

// Process pools need the fork server started while the program is single-threaded; the test
// harness starts threads before any test runs, so start it before main.
proctor::init_before_main!();

mod containers;
mod experiments5;
mod ipc;
mod isolation;
mod sandbox;
mod servers;
mod transport;
mod ui_leaks;

/// Tests that fork children or count threads take this lock, so that one test's children and
/// threads cannot show up in another test's "nothing left behind" checks.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes [`SERIAL`], ignoring poison from a failed test so that one failure does not fail all.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The figure `key`, checked for its unit and a finite value.
pub(crate) fn figure(section: &Section, key: &str, unit: Unit) -> f64 {
    let f = section
        .figure(key)
        .unwrap_or_else(|| panic!("figure {key} is present"));
    assert_eq!(f.unit, unit, "unit of {key}");
    assert!(f.value.is_finite(), "{key} is finite: {}", f.value);
    f.value
}

/// Runs experiment `id` in the tiny profile, holding [`SERIAL`] while it runs.
fn run_tiny(id: &str) -> Section {
    let _guard = serial();
    let config = LabConfig {
        profile: Profile::Tiny,
        ..LabConfig::default()
    };
    let experiment = find(id).unwrap_or_else(|| panic!("experiment {id} is registered"));
    experiment
        .run(&config, &mut NoProgress)
        .unwrap_or_else(|e| panic!("{id} runs in the tiny profile: {e:#}"))
}
