//! `capture_output`: what each task writes comes back with its outcome, and only there.

use std::io::Write;

use proctor::{Pool, TaskError};

fn chatty(n: u64) -> u64 {
    println!("item {n}");
    eprintln!("warn {n}");
    n * 10
}

#[test]
fn each_task_gets_its_own_output_and_no_other() {
    let pool = Pool::processes(2)
        .capture_output(true)
        .chunk_size(16)
        .build()
        .unwrap();
    let out = pool.map_captured(chatty, 0..500u64);
    assert_eq!(out.len(), 500);
    for (n, (outcome, output)) in out.into_iter().enumerate() {
        assert_eq!(outcome, Ok(n as u64 * 10));
        assert_eq!(output.stdout_text(), format!("item {n}\n"));
        assert_eq!(output.stderr_text(), format!("warn {n}\n"));
    }
    let (outcome, output) = pool.submit(chatty, 7).join_captured();
    assert_eq!(outcome, Ok(70));
    assert_eq!(output.stdout_text(), "item 7\n");
    // A pool that does not capture returns empty output.
    let plain = Pool::threads(1).build().unwrap();
    let (outcome, output) = plain.submit(|n: u64| n, 1).join_captured();
    assert_eq!((outcome, output), (Ok(1), proctor::Output::default()));
}

fn print_then_fail(n: u64) -> u64 {
    print!("before {n}"); // no newline: still flushed into the capture
    let _ = std::io::stdout().flush();
    eprintln!("about to fail {n}");
    match n % 3 {
        0 => n,
        1 => panic!("boom {n}"),
        _ => std::process::abort(),
    }
}

#[test]
fn failed_and_crashed_tasks_keep_what_they_wrote() {
    let pool = Pool::processes(2)
        .capture_output(true)
        .chunk_size(4)
        .build()
        .unwrap();
    for (n, (outcome, output)) in pool
        .map_captured(print_then_fail, 0..30u64)
        .into_iter()
        .enumerate()
    {
        assert_eq!(
            output.stdout_text(),
            format!("before {n}"),
            "item {n}: {outcome:?}"
        );
        assert_eq!(
            output.stderr_text(),
            format!("about to fail {n}\n"),
            "item {n}"
        );
        match n % 3 {
            0 => assert_eq!(outcome, Ok(n as u64)),
            1 => assert!(
                matches!(outcome, Err(TaskError::Panicked { .. })),
                "{outcome:?}"
            ),
            _ => match outcome {
                Err(TaskError::Crashed { stderr_tail, .. }) => {
                    assert_eq!(stderr_tail.trim_end(), format!("about to fail {n}"))
                }
                other => panic!("item {n}: {other:?}"),
            },
        }
    }
}

fn flood(kib: usize) -> usize {
    let line = "x".repeat(1023);
    for i in 0..kib {
        println!("{line}");
        if i == kib - 1 {
            print!("END");
        }
    }
    kib
}

#[test]
fn output_is_kept_to_its_last_64_kib() {
    let pool = Pool::processes(1).capture_output(true).build().unwrap();
    let (outcome, output) = pool.submit(flood, 200).join_captured();
    assert_eq!(outcome, Ok(200));
    assert_eq!(output.stdout.len(), 64 << 10);
    assert!(output.stdout.ends_with(b"END"));
}

#[test]
fn threads_cannot_capture_and_say_why() {
    let err = Pool::threads(2).capture_output(true).build().unwrap_err();
    assert!(err.is_invalid_config(), "{err:?}");
    assert!(
        err.to_string().contains("threads share one stdout"),
        "{err}"
    );
}

#[test]
#[ignore = "helper: run by captured_output_never_reaches_the_programs_own"]
fn helper_capturing_pool() {
    let pool = Pool::processes(2).capture_output(true).build().unwrap();
    let out = pool.map_captured(chatty, 0..100u64);
    assert!(out.iter().all(|(o, _)| o.is_ok()));
    drop(pool);
    println!("helper done");
}

#[test]
fn captured_output_never_reaches_the_programs_own() {
    let out = crate::helper("capture::helper_capturing_pool", ("PROCTOR_TEST", "1"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("helper done"), "{stdout}");
    assert!(
        !stdout.contains("item "),
        "task output leaked to stdout: {stdout}"
    );
    assert!(
        !stderr.contains("warn "),
        "task output leaked to stderr: {stderr}"
    );
}
