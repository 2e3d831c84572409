use std::time::Duration;

use proctor::{Mode, Pool, TaskError};

fn square(n: u64) -> u64 {
    n * n
}

#[test]
fn smoke_both_modes() {
    for mode in [Mode::Threads, Mode::Processes] {
        let pool = Pool::builder(mode, 3).build().unwrap();
        let r = pool.try_map(square, 0..100u64).unwrap();
        assert_eq!(r, (0..100u64).map(square).collect::<Vec<_>>(), "{mode}");
        assert_eq!(pool.submit(square, 9).join(), Ok(81));
        pool.shutdown();
    }
    let _ = Duration::ZERO;
    let _ = TaskError::Cancelled { task: 0 };
}
