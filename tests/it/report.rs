//! `proctor report` end to end, in the hidden tiny profile.

use predicates::prelude::*;

use crate::proctor;

const ASPECTS: [&str; 8] = [
    "memory space",
    "communication",
    "creation overhead",
    "context switching",
    "fault isolation",
    "resource usage",
    "multi-core use",
    "synchronization",
];

/// `proctor report` of every experiment in the tiny profile, uncolored, into `out`.
pub(crate) fn tiny_report(out: &std::path::Path) -> assert_cmd::Command {
    proctor(&[
        "report",
        "--profile",
        "tiny",
        "--no-color",
        "--out",
        out.to_str().unwrap(),
    ])
}

#[test]
fn the_terminal_gets_the_answer_in_a_screen_and_everything_with_verbose() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let short = tiny_report(&out).env("COLUMNS", "80").output().unwrap();
    assert!(short.status.success());
    let short = String::from_utf8(short.stdout).unwrap();
    let lines = short.lines().count();
    assert!(lines <= 80, "{lines} lines at 80 columns:\n{short}");
    assert!(
        short.contains("Claims") && short.contains("report written to"),
        "{short}"
    );
    assert!(
        !short.contains("method:"),
        "sections printed without --verbose:\n{short}"
    );
    // Every line fits the width: tables, titles, warnings and paths alike.
    for l in short.lines() {
        assert!(l.chars().count() <= 80, "a line wider than 80 columns: {l}");
    }
    let long = tiny_report(&out).arg("--verbose").output().unwrap();
    let long = String::from_utf8(long.stdout).unwrap();
    assert!(
        long.contains("method:") && long.lines().count() > lines,
        "--verbose adds the sections"
    );
}

#[test]
fn report_writes_every_format_with_the_table_rows() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let assert = tiny_report(&out)
        .assert()
        .success()
        .stdout(predicate::str::contains("report written to"));
    let stdout = String::from_utf8(assert.get_output().stdout.clone()).unwrap();
    for aspect in ASPECTS {
        assert!(
            stdout.contains(aspect),
            "the terminal table lacks `{aspect}`"
        );
    }

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 1);
    let ids: Vec<&str> = json["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let listed = String::from_utf8(proctor(&["list"]).output().unwrap().stdout).unwrap();
    let expected: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, expected, "one section per experiment, in order");
    for s in json["sections"].as_array().unwrap() {
        assert_eq!(
            s["status"]["state"], "ok",
            "section {} did not succeed: {}",
            s["id"], s["status"]
        );
    }
    let rows: Vec<&str> = json["headline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["aspect"].as_str().unwrap())
        .collect();
    for aspect in ASPECTS {
        assert!(
            rows.contains(&aspect),
            "headline lacks `{aspect}`: {rows:?}"
        );
    }
    assert!(json["claims"].as_array().unwrap().len() >= 10);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        md.contains("| aspect") || md.contains("|aspect"),
        "markdown headline table"
    );
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
    for bad in ["http://", "https://", "<script src"] {
        assert!(!html.contains(bad), "report.html loads `{bad}`");
    }
    assert!(html.contains("<svg"), "report.html has charts");
    // No temporary file is left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn report_only_runs_the_chosen_experiments() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    proctor(&[
        "report",
        "--profile",
        "tiny",
        "--only",
        "race",
        "--out",
        out.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stdout(predicate::str::contains("race"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(json["sections"].as_array().unwrap().len(), 1);
}

#[test]
fn report_rejects_unknown_experiments_with_usage_error() {
    proctor(&["report", "--only", "teleport"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("teleport"));
}

/// Processes whose command line names `needle` (this test's unique folder).
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!(
                "{}: {cmdline}",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    found
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn ctrl_c_keeps_what_finished_says_so_and_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("interrupted-report");
    let bin = assert_cmd::cargo::cargo_bin("proctor");
    let child = std::process::Command::new(bin)
        .args(["report", "--only", "spawn,switch,ipc", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the first experiment is kept, then interrupt the second.
    let json = out.join("report.json");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&json).is_ok_and(|j| j.contains("\"ok\"")) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "spawn never finished"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: kill(2) takes no pointers; the pid is our own child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted during `"), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let sections = report["sections"].as_array().unwrap();
    assert_eq!(sections[0]["status"]["state"], "ok", "spawn was kept");
    assert!(
        sections.iter().any(|s| s["status"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("interrupted (Ctrl-C)"))),
        "the running experiment says it was interrupted: {sections:?}"
    );
    // Every process the lab forked died with it.
    let needle = out.to_string_lossy().into_owned();
    let start = std::time::Instant::now();
    while !processes_naming(&needle).is_empty() && start.elapsed().as_secs() < 5 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        processes_naming(&needle),
        Vec::<String>::new(),
        "left behind"
    );
}

#[test]
fn every_figure_a_verdict_reads_is_in_a_real_run() {
    // The tiny profile runs every experiment for real: a renamed figure would otherwise
    // turn its claim into "not measured" without failing anything.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    tiny_report(&out).assert().success();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let keys: Vec<&str> = json["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["figures"].as_array().unwrap())
        .map(|f| f["key"].as_str().unwrap())
        .collect();
    let missing: Vec<&str> = proctor_lab::verdict::KEYS
        .iter()
        .map(|k| k.key)
        .filter(|k| !keys.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "verdict keys no experiment produced: {missing:?}"
    );
}

#[test]
fn methods_md_has_a_section_for_every_experiment() {
    let methods = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/METHODS.md"))
        .expect("METHODS.md at the repository root");
    let listed = String::from_utf8(proctor(&["list"]).output().unwrap().stdout).unwrap();
    for id in listed.lines().filter_map(|l| l.split_whitespace().next()) {
        assert!(
            methods
                .lines()
                .any(|l| l.starts_with("## ") && l.ends_with(&format!("(`{id}`)"))),
            "METHODS.md has no section for `{id}`"
        );
    }
}

#[test]
fn two_reports_compare_side_by_side_and_a_bad_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let run = proctor(&[
            "report",
            "--profile",
            "tiny",
            "--only",
            "spawn,memory",
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let html = dir.path().join("compare.html");
    let (ja, jb) = (a.join("report.json"), b.join("report.json"));
    proctor(&[
        "compare",
        ja.to_str().unwrap(),
        jb.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
    ])
    .assert()
    .success()
    .stdout(
        predicate::str::contains("Machines").and(predicate::str::contains("creation overhead")),
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<svg") && page.contains("spawn.thread"),
        "{page}"
    );
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not json").unwrap();
    proctor(&["compare", ja.to_str().unwrap(), notes.to_str().unwrap()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("notes.txt is not JSON"));
    proctor(&["compare", ja.to_str().unwrap()]).assert().code(2);
}
