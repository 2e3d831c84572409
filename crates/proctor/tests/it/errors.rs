//! What a task's error carries: its item's index in the call (not a pool-wide counter), in
//! both modes and through every way in (`map`, `try_map`, streams, `submit`), and its kind.

use std::time::Duration;

use proctor::{Mode, Pool, PoolBuilder, TaskError, TaskErrorKind};

/// Panics on every item `n` with `n % 7 == 3` (items 3, 10, 17...).
fn fails_on_3_mod_7(n: u64) -> u64 {
    if n % 7 == 3 {
        panic!("item {n} is faulty");
    }
    n
}

/// Every outcome of `fails_on_3_mod_7` over `0..n`, item `i` at position `i`, checked: a
/// failure is item `i`'s panic and names index `i`.
fn check(what: &str, outcomes: impl IntoIterator<Item = (usize, Result<u64, TaskError>)>) {
    let mut failed = 0;
    for (i, o) in outcomes {
        match o {
            Ok(v) => assert_eq!(v, i as u64, "{what}: item {i}"),
            Err(e) => {
                assert_eq!(i % 7, 3, "{what}: item {i}: {e}");
                assert_eq!(e.kind(), TaskErrorKind::Panicked, "{what}: {e}");
                assert_eq!(e.index(), i as u64, "{what}: {e}");
                assert!(
                    e.to_string()
                        .starts_with(&format!("item {i} panicked on worker")),
                    "{what}: {e}"
                );
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "{what}: no failure seen");
}

fn builders(mode: Mode) -> Vec<(&'static str, PoolBuilder)> {
    let quiet = |b: PoolBuilder| b.forward_stderr(false);
    vec![
        ("default", quiet(Pool::builder(mode, 2))),
        ("chunk 1", quiet(Pool::builder(mode, 2).chunk_size(1))),
        ("chunk 4", quiet(Pool::builder(mode, 2).chunk_size(4))),
        (
            "timeout",
            quiet(Pool::builder(mode, 2).task_timeout(Duration::from_secs(60))),
        ),
    ]
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn an_error_names_its_items_index_in_the_call_in_both_modes() {
    for mode in [Mode::Threads, Mode::Processes] {
        for (setup, builder) in builders(mode) {
            let pool = builder.build().unwrap();
            // Calls before this one must not shift the indices of the next.
            for round in 0..2 {
                let what = format!("{mode:?} {setup} round {round}");
                let n = 40;
                let out = pool.map(fails_on_3_mod_7, 0..n);
                check(&format!("{what} map"), out.into_iter().enumerate());

                let e = pool.try_map(fails_on_3_mod_7, 0..n).unwrap_err();
                assert_eq!(
                    e.task_error().map(TaskError::index),
                    Some(3),
                    "{what} try_map: {e}"
                );

                let ordered = pool.stream(fails_on_3_mod_7, 0..n).window(5);
                check(&format!("{what} stream"), ordered.enumerate());

                let unordered = pool.stream_unordered(fails_on_3_mod_7, 0..n).window(5);
                check(&format!("{what} stream_unordered"), unordered);

                // A submitted task is a call of one item: index 0.
                let e = pool.submit(fails_on_3_mod_7, 10).join().unwrap_err();
                assert_eq!((e.index(), e.kind()), (0, TaskErrorKind::Panicked), "{e}");
            }
        }
    }
}

/// Aborts on item 2, else returns it.
fn aborts_on_2(n: u64) -> u64 {
    if n == 2 {
        std::process::abort();
    }
    n
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_crash_names_its_items_index_and_the_others_run() {
    let pool = Pool::processes(2)
        .chunk_size(3)
        .forward_stderr(false)
        .build()
        .unwrap();
    for _ in 0..2 {
        let out = pool.map(aborts_on_2, 0..8);
        for (i, o) in out.iter().enumerate() {
            match o {
                Ok(v) => assert_eq!(*v, i as u64),
                Err(e) => {
                    assert_eq!(
                        (i, e.index(), e.kind()),
                        (2, 2, TaskErrorKind::Crashed),
                        "{e}"
                    );
                    assert!(e.to_string().contains("while running item 2"), "{e}");
                }
            }
        }
        assert!(out[2].is_err());
    }
}

/// Its argument's `Serialize` fails on item 5.
#[derive(Debug, serde::Deserialize)]
struct Picky(u64);

impl serde::Serialize for Picky {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 5 {
            return Err(serde::ser::Error::custom("five is not welcome"));
        }
        s.serialize_u64(self.0)
    }
}

fn unwrap_picky(p: Picky) -> u64 {
    p.0
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn an_unencodable_argument_names_its_items_index() {
    let pool = Pool::processes(2).build().unwrap();
    for _ in 0..2 {
        let out = pool.map(unwrap_picky, (0..9).map(Picky));
        for (i, o) in out.iter().enumerate() {
            match o {
                Ok(v) => assert_eq!(*v, i as u64),
                Err(e) => {
                    assert_eq!(
                        (i, e.index(), e.kind()),
                        (5, 5, TaskErrorKind::Codec),
                        "{e}"
                    );
                    assert!(
                        e.to_string().starts_with("item 5 could not be carried"),
                        "{e}"
                    );
                }
            }
        }
        assert!(out[5].is_err());
    }
}

#[test]
fn a_summary_groups_failures_by_kind_and_serializes_them() {
    let pool = Pool::threads(2).build().unwrap();
    let out = pool.map(fails_on_3_mod_7, 0..30);
    let mut by_kind = std::collections::BTreeMap::<TaskErrorKind, Vec<u64>>::new();
    for e in out.iter().filter_map(|r| r.as_ref().err()) {
        by_kind.entry(e.kind()).or_default().push(e.index());
    }
    assert_eq!(
        by_kind.into_iter().collect::<Vec<_>>(),
        [(TaskErrorKind::Panicked, vec![3, 10, 17, 24])]
    );
    let e = out[10].as_ref().unwrap_err();
    let json = serde_json::to_value(e).unwrap();
    assert_eq!(json["kind"], "Panicked");
    assert_eq!(json["index"], 10);
    assert_eq!(json["message"], "item 10 is faulty");
    assert!(
        json["location"]
            .as_str()
            .is_some_and(|l| l.contains("errors.rs")),
        "{json}"
    );
}

/// Item 1 aborts its worker every time; the others return themselves.
fn aborts_on_1(n: u64) -> u64 {
    if n == 1 {
        std::process::abort();
    }
    n
}

/// The first time (no file at `path` yet) it leaves the file and aborts its worker; after
/// that it panics: a task that crashed, was retried, then failed otherwise.
fn crashes_then_panics(path: String) -> u64 {
    if std::fs::metadata(&path).is_err() {
        std::fs::write(&path, b"ran").unwrap();
        std::process::abort();
    }
    panic!("second time unlucky");
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_retried_tasks_error_says_how_many_attempts_it_had() {
    for retries in [0u32, 2] {
        let pool = Pool::processes(2)
            .retries(retries)
            .forward_stderr(false)
            .build()
            .unwrap();
        let out = pool.map(aborts_on_1, 0..4);
        assert_eq!((out[0].clone(), out[2].clone()), (Ok(0), Ok(2)));
        let e = out[1].as_ref().unwrap_err();
        assert_eq!(e.kind(), TaskErrorKind::Crashed, "{e}");
        assert_eq!((e.index(), e.attempts()), (1, Some(retries + 1)), "{e}");
        let said = format!("after {} attempts", retries + 1);
        assert_eq!(e.to_string().contains(&said), retries > 0, "{e}");
        let json = serde_json::to_value(e).unwrap();
        assert_eq!(json["attempts"], retries + 1);
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_task_that_crashed_then_panicked_counts_both_attempts() {
    let dir = std::env::temp_dir().join(format!("proctor-attempts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pool = Pool::processes(1)
        .retries(1)
        .forward_stderr(false)
        .build()
        .unwrap();
    let paths: Vec<String> = (0..3)
        .map(|i| dir.join(format!("item-{i}")).display().to_string())
        .collect();
    // Item 1's marker exists already: it panics at its first attempt.
    std::fs::write(&paths[1], b"ran").unwrap();
    let out = pool.map(crashes_then_panics, paths);
    std::fs::remove_dir_all(&dir).unwrap();
    for (i, o) in out.iter().enumerate() {
        let e = o.as_ref().unwrap_err();
        assert_eq!(
            (e.kind(), e.index()),
            (TaskErrorKind::Panicked, i as u64),
            "{e}"
        );
        let attempts = if i == 1 { 1 } else { 2 };
        assert_eq!(e.attempts(), Some(attempts), "item {i}: {e}");
        assert_eq!(
            e.to_string().contains("after 2 attempts"),
            attempts == 2,
            "{e}"
        );
    }
}

/// Writes `n` numbered lines to stderr, then returns `n`.
fn spams_stderr(n: u64) -> u64 {
    for i in 0..n {
        eprintln!("spam {i}");
    }
    n
}

/// Writes 100 lines to stderr, then aborts its worker.
fn spams_then_aborts(n: u64) -> u64 {
    spams_stderr(n);
    std::process::abort();
}

#[test]
#[ignore = "helper: run by stderr_is_forwarded_capped_per_job_by_default"]
fn helper_spamming_pool() {
    let b = Pool::processes(1);
    let pool = match std::env::var("PROCTOR_STDERR").as_deref() {
        Ok("all") => b.forward_stderr(true),
        Ok("5") => b.forward_stderr_lines(5),
        _ => b,
    }
    .build()
    .unwrap();
    // Two jobs of 100 lines each.
    assert_eq!(pool.submit(spams_stderr, 100).join(), Ok(100));
    assert_eq!(pool.submit(spams_stderr, 100).join(), Ok(100));
    pool.shutdown();
    println!("helper done");
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn stderr_is_forwarded_capped_per_job_by_default() {
    // Two jobs of 100 lines: each job started lets `limit` more lines through (a job's
    // lines read after the next job started count against that one).
    for (setting, least, most) in [("default", 20, 40), ("5", 5, 10), ("all", 200, 200)] {
        let out = crate::helper("errors::helper_spamming_pool", ("PROCTOR_STDERR", setting))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}{stderr}");
        assert!(stdout.contains("helper done"), "{stdout}");
        let spam: Vec<&str> = stderr.lines().filter(|l| l.starts_with("spam ")).collect();
        assert!(
            (least..=most).contains(&spam.len()),
            "{setting}: {} lines: {stderr}",
            spam.len()
        );
        // What is forwarded is each job's first lines.
        assert_eq!(spam.first(), Some(&"spam 0"), "{setting}");
    }
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn stderr_held_back_still_reaches_a_crashs_tail() {
    let pool = Pool::processes(1).forward_stderr_lines(1).build().unwrap();
    let e = pool.submit(spams_then_aborts, 100).join().unwrap_err();
    match &e {
        TaskError::Crashed { stderr_tail, .. } => {
            assert!(stderr_tail.contains("spam 99\n"), "{stderr_tail}")
        }
        other => panic!("{other:?}"),
    }
}
