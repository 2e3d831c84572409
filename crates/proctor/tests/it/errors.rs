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
