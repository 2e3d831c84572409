//! The thread backend's unit tests.

use super::*;
use crate::pool::All;

fn double(n: u64) -> u64 {
    2 * n
}

fn fail_on_multiples_of_7(n: u64) -> u64 {
    assert!(n % 7 != 0, "seven");
    n
}

#[test]
fn a_chunk_keeps_values_alone_until_a_task_fails_then_every_outcome() {
    crate::panic::install_hook();
    crate::panic::set_quiet(true);
    match run_chunk(double, vec![1, 2, 3], 0, 10) {
        ChunkOut::Values(v) => assert_eq!(v, [2, 4, 6]),
        ChunkOut::Mixed(_) => panic!("no task failed"),
    }
    for items in [vec![7, 1, 2], vec![1, 14, 2, 21], vec![1, 2, 28]] {
        let ChunkOut::Mixed(out) = run_chunk(fail_on_multiples_of_7, items.clone(), 3, 100) else {
            panic!("a task failed: {items:?}");
        };
        assert_eq!(out.len(), items.len());
        for (k, (o, n)) in out.iter().zip(&items).enumerate() {
            match o {
                Ok(v) => assert_eq!(v, n),
                Err(TaskError::Panicked { index, worker, .. }) => {
                    assert_eq!((*index, *worker, n % 7), (100 + k as u64, 3, 0));
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
    crate::panic::set_quiet(false);
}

#[test]
fn retired_workers_leave_no_handle_behind() {
    // The builder's defaults, whatever fields `Config` gains.
    let mut config = Config::new(crate::Mode::Threads, 2);
    config.max_tasks_per_worker = Some(1);
    let pool = ThreadPool::new(config).unwrap();
    let out = pool.map::<u64, u64, _, All<u64>>(double, (0..2000).collect());
    assert!(out.iter().enumerate().all(|(i, r)| *r == Ok(2 * i as u64)));
    let kept = pool.shared.handles.lock().expect("handles poisoned").len();
    // One per live worker, and one per worker that retired just now, until its
    // replacement has joined it.
    assert!(kept <= 4, "{kept} handles kept for 2 workers");
    pool.shutdown();
}
