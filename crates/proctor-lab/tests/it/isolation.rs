//! The fault-isolation matrix in the tiny profile: counts, never timings.

use proctor_lab::report::{Section, Unit};

fn count(s: &Section, key: &str) -> u64 {
    let f = s
        .figure(key)
        .unwrap_or_else(|| panic!("figure {key} is present"));
    assert_eq!(f.unit, Unit::Count, "unit of {key}");
    assert!(
        f.value >= 0.0 && f.value.fract() == 0.0,
        "{key} is a count: {}",
        f.value
    );
    f.value as u64
}

/// The thread-mode cell for `fault`, from the typed result.
fn thread_cell<'a>(s: &'a Section, fault: &str) -> &'a serde_json::Value {
    s.data["cells"]
        .as_array()
        .expect("cells")
        .iter()
        .find(|c| c["side"] == "thread" && c["fault"] == fault)
        .unwrap_or_else(|| panic!("a thread cell for {fault}"))
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn processes_survive_every_fault_threads_only_panics_and_timeouts() {
    let s = super::run_tiny("isolation");
    assert_eq!(s.id, "isolation");
    assert!(!s.method.is_empty());
    assert!(!s.charts.is_empty());
    assert!(!s.tables.is_empty());
    assert!(!s.data.is_null());

    let faults = count(&s, "isolation.faults");
    let batch = count(&s, "isolation.batch");
    assert_eq!(faults, 7);
    assert_eq!(
        count(&s, "isolation.survived.process"),
        faults,
        "{:#?}",
        s.tables
    );
    let all = [
        "panic",
        "abort",
        "segfault",
        "stack_overflow",
        "oom",
        "timeout",
        "exit",
    ];
    for fault in all {
        assert_eq!(
            count(&s, &format!("isolation.completed.process.{fault}")),
            batch - 1,
            "process pool, {fault}"
        );
        let recovery = s
            .figure(&format!("isolation.recovery.process.{fault}"))
            .unwrap_or_else(|| panic!("recovery figure for {fault}"));
        assert_eq!(recovery.unit, Unit::Ns);
    }

    // Thread mode: a panic is caught and a hang times out; everything else kills the program.
    for fault in ["panic", "timeout"] {
        assert_eq!(
            count(&s, &format!("isolation.completed.thread.{fault}")),
            batch - 1,
            "thread pool, {fault}"
        );
        assert_eq!(
            thread_cell(&s, fault)["survived"],
            true,
            "thread pool, {fault}"
        );
    }
    let timeout = &thread_cell(&s, "timeout")["outcome"];
    assert!(
        timeout["fault_error"]
            .as_str()
            .is_some_and(|e| e.contains("timed out")),
        "{timeout}"
    );
    assert!(
        timeout["leaked_threads"].as_i64().is_some_and(|n| n >= 1),
        "the stuck thread leaks: {timeout}"
    );
    for (fault, death) in [
        ("abort", "SIGABRT"),
        ("segfault", "SIGSEGV"),
        ("exit", "exit code 3"),
    ] {
        let c = thread_cell(&s, fault);
        assert_eq!(c["program_death"], death, "thread pool, {fault}: {c}");
        assert_eq!(count(&s, &format!("isolation.completed.thread.{fault}")), 0);
    }
    for fault in ["stack_overflow", "oom"] {
        let c = thread_cell(&s, fault);
        assert!(c["program_death"].is_string(), "thread pool, {fault}: {c}");
    }
    assert_eq!(count(&s, "isolation.survived.thread"), 2);
    assert_eq!(count(&s, "isolation.whole_program_died.thread"), 5);

    // The lab process is still here (this line runs), and nothing was left behind.
    assert_eq!(count(&s, "isolation.leftover_processes"), 0);
    assert_eq!(s.data["leftover_processes"], serde_json::json!([]));
}
