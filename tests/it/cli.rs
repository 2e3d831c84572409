//! The `proctor` binary, run from outside. Every bench here uses the hidden `tiny` profile,
//! which checks shapes in milliseconds instead of measuring for real.

use assert_cmd::Command;
use predicates::prelude::*;

/// The `proctor` binary with the given arguments.
pub fn proctor(args: &[&str]) -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("proctor");
    cmd.args(args);
    cmd
}

#[test]
fn list_names_the_experiments() {
    proctor(&["list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("spawn").and(predicate::str::contains("switch")));
}

#[test]
fn unknown_experiment_is_a_usage_error() {
    proctor(&["bench", "teleport"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("teleport").and(predicate::str::contains("spawn")));
}

#[test]
fn bad_sizes_are_a_usage_error() {
    proctor(&["bench", "spawn", "--sizes", "64,lots"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--sizes"));
    proctor(&["bench", "spawn", "--sizes", "4XB"])
        .assert()
        .code(2);
}

#[test]
fn sizes_past_what_a_round_trip_can_take_are_a_usage_error_not_a_failure() {
    proctor(&["bench", "ipc", "--sizes", "99GiB"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("most a round trip can take"));
}

#[test]
fn too_many_workers_are_refused_before_anything_starts() {
    proctor(&["bench", "memory", "--workers", "100000000"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("more than this machine can start"));
}

#[test]
fn a_flag_the_experiment_ignores_is_refused_and_names_who_takes_it() {
    proctor(&["bench", "spawn", "--sizes", "64"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--sizes does not apply to the `spawn` experiment (it applies to: ipc)",
        ));
    proctor(&["bench", "isolation", "--iterations", "5"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--iterations does not apply"));
}

#[test]
fn bad_iterations_and_conflicting_profiles_are_usage_errors() {
    proctor(&["bench", "spawn", "--iterations", "0"])
        .assert()
        .code(2);
    proctor(&["bench", "spawn", "--quick", "--full"])
        .assert()
        .code(2);
    proctor(&["bench", "spawn", "--transports", "smoke-signals"])
        .assert()
        .code(2);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn bench_spawn_json_has_figures() {
    let out = proctor(&["bench", "spawn", "--profile", "tiny", "--json"])
        .assert()
        .success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    // A one-section report: the schema and the machine of `proctor report`.
    assert_eq!(report["schema_version"], 1);
    assert!(
        report["machine"]["logical_cpus"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    let v = &report["sections"][0];
    assert_eq!(v["id"], "spawn");
    assert_eq!(v["status"]["state"], "ok");
    let figures = v["figures"].as_array().expect("figures is an array");
    assert!(!figures.is_empty());
    for f in figures {
        let value = f["value"].as_f64().expect("a figure has a numeric value");
        assert!(value > 0.0 && value.is_finite(), "{f}");
    }
    assert!(figures.iter().any(|f| f["key"] == "spawn.fork"));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn bench_switch_table_shows_cross_checks() {
    proctor(&["bench", "switch", "--profile", "tiny"])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("Context switching")
                .and(predicate::str::contains("cross-checks")),
        );
}
