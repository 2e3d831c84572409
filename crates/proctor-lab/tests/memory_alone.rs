//! The memory experiment's thread figures, in a test binary of their own: a thread's figure is
//! a growth of this whole process, which other tests running alongside would move.

use proctor_lab::experiment::find;
use proctor_lab::{LabConfig, NoProgress, Profile};

/// Bytes each worker writes (the experiment's working set).
const WORKING_SET: f64 = 64.0 * 1024.0;

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_thread_that_wrote_its_working_set_never_reads_less() {
    let config = LabConfig {
        profile: Profile::Tiny,
        workers: Some(vec![1, 4]),
        ..LabConfig::default()
    };
    let memory = find("memory").expect("memory is registered");
    // The first round leaves the stacks and malloc arenas of ended threads cached and resident;
    // a heap working set landed there, and the next round's threads grew the process by 0 B.
    for round in 0..3 {
        let s = memory.run(&config, &mut NoProgress).expect("memory runs");
        for n in [1, 4] {
            let key = format!("memory.uss_per_worker.thread.{n}");
            let v = s.figure(&key).expect("the thread figure is there").value;
            assert!(
                v >= 0.9 * WORKING_SET,
                "round {round}: {key} = {v} B, for threads that each wrote {WORKING_SET} B"
            );
        }
    }
}
