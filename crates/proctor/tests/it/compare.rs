//! `compare_modes`: the user's own task measured in both modes. Structure and relations
//! that hold on any machine, never a speed ratio.

use std::time::Duration;

use proctor::compare::{CrashOutcome, Difference};
use proctor::{CompareModes, Mode};

const PANICS: u64 = 1_000;
const ABORTS: u64 = 2_000;

/// Sleeps 1 ms and returns its input; panics or aborts on the two bad inputs.
fn nap(n: u64) -> u64 {
    match n {
        PANICS => panic!("bad input {n}"),
        ABORTS => std::process::abort(),
        _ => {
            std::thread::sleep(Duration::from_millis(1));
            n
        }
    }
}

/// Two workers, three rounds of about 20 ms of naps: quick enough for a test.
fn quick(
    inputs: std::ops::Range<u64>,
) -> CompareModes<u64, u64, impl Fn(u64) -> u64 + Copy + Send + Sync + 'static> {
    CompareModes::new(nap, inputs)
        .workers(2)
        .rounds(3)
        .round_time(Duration::from_millis(20))
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_one_millisecond_task_costs_at_least_a_millisecond_in_every_mode() {
    let cmp = quick(0..10).run().unwrap();
    assert_eq!(cmp.workers, 2);
    assert_eq!(cmp.rounds, 3);
    // At least one pass of the inputs, in whole tasks per worker.
    assert!(cmp.tasks_per_round >= 10 && cmp.tasks_per_round % 2 == 0);
    let ms = Duration::from_millis(1);
    for (what, t) in [
        ("inline", &cmp.inline),
        ("threads", &cmp.threads),
        ("processes", &cmp.processes),
    ] {
        assert!(t.per_task >= ms, "{what}: {:?} per task", t.per_task);
        assert!(
            t.per_task_min <= t.per_task && t.per_task <= t.per_task_max,
            "{what}: {t:?}"
        );
        assert!(
            t.throughput.is_finite() && t.throughput > 0.0,
            "{what}: {t:?}"
        );
    }
    // Two workers of 1 ms tasks finish at most 2 000 a second; the task alone 1 000.
    assert!(cmp.threads.throughput <= 2_000.0 && cmp.processes.throughput <= 2_000.0);
    assert!(cmp.inline.throughput <= 1_000.0);
    let ratio = cmp.process_cost_ratio();
    assert!(ratio.is_finite() && ratio > 0.0, "{ratio}");
    assert_eq!(
        cmp.overhead(Mode::Processes),
        cmp.processes.per_task.saturating_sub(cmp.inline.per_task)
    );
    assert!(matches!(
        cmp.difference(),
        Difference::ClearlyMore | Difference::ClearlyLess | Difference::NoClearDifference
    ));

    let m = cmp.memory;
    let (rss, pss, private) = (
        m.process_rss_bytes.unwrap(),
        m.process_pss_bytes.unwrap(),
        m.process_private_bytes.unwrap(),
    );
    assert!(pss > 0 && pss <= rss && private <= rss, "{m:?}");
    assert!(m.process_page_tables_bytes.unwrap() > 0, "{m:?}");
    assert!(m.thread_growth_bytes.is_some(), "{m:?}");

    let verdict = cmp.to_string();
    assert!(verdict.starts_with("processes cost "), "{verdict}");
    assert!(verdict.contains(" per task here ("), "{verdict}");
    assert!(verdict.contains(" in threads: "), "{verdict}");
    assert!(verdict.contains(cmp.difference().words()), "{verdict}");
    assert!(verdict.contains("contained in a process"), "{verdict}");
    let detail = format!("{cmp:#}");
    assert!(
        detail.contains("memory per worker:\n  a process  "),
        "{detail}"
    );
    assert_eq!(cmp.crash.processes, CrashOutcome::NotTried);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_panicking_crash_input_is_caught_in_both_modes_and_the_pools_go_on() {
    let cmp = quick(0..4).crash_input(PANICS).run().unwrap();
    for o in [&cmp.crash.processes, &cmp.crash.threads] {
        match o {
            CrashOutcome::Contained {
                error,
                pool_went_on,
            } => assert!(error.is_panicked() && *pool_went_on, "{o:?}"),
            other => panic!("expected a caught panic, got {other:?}"),
        }
    }
    assert!(
        cmp.to_string()
            .ends_with("the crash input's panic is caught in both modes"),
        "{cmp}"
    );
}

/// An abort runs in a worker process only: a thread would take this test binary down.
#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn an_aborting_crash_input_is_contained_in_a_process_and_not_run_on_a_thread() {
    let cmp = quick(0..4).crash_input(ABORTS).run().unwrap();
    match &cmp.crash.processes {
        CrashOutcome::Contained {
            error,
            pool_went_on,
        } => assert!(error.is_crashed() && *pool_went_on, "{error:?}"),
        other => panic!("expected a contained crash, got {other:?}"),
    }
    match &cmp.crash.threads {
        CrashOutcome::NotRun { why } => assert!(why.contains("end this program"), "{why}"),
        other => panic!("expected not run, got {other:?}"),
    }
    let verdict = cmp.to_string();
    assert!(verdict.contains("SIGABRT"), "{verdict}");
    assert!(
        verdict.ends_with("would end the program in a thread"),
        "{verdict}"
    );
}

#[test]
fn a_failing_sample_input_is_an_error_naming_its_panic() {
    let err = quick(998..1_001).run().unwrap_err();
    let task = err.task_error().expect("a task error");
    assert!(task.is_panicked(), "{task}");
    assert!(err.to_string().contains("bad input 1000"), "{err}");
}

#[test]
fn no_sample_inputs_is_an_error() {
    let err = quick(0..0).run().unwrap_err();
    assert!(err.is_invalid_config(), "{err}");
}
