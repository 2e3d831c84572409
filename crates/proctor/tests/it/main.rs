//! The proctor crate's integration tests: one binary, one module per area.

// Process pools need the fork server started while the program is single-threaded; the
// test harness starts threads before any test runs, so start it before main.
proctor::init_before_main!();

/// This test binary, set to run only the ignored helper test `name` (a child-process test's
/// body) with `env` set.
pub(crate) fn helper(name: &str, env: (&str, &str)) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args([
        "--exact",
        name,
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(env.0, env.1);
    cmd
}

/// A figure of this process's `/proc/self/status` (e.g. `VmRSS`, `VmHWM`), in bytes.
pub(crate) fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.split(':').next() == Some(field))
        .unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

/// A task that sleeps `ms` milliseconds and returns `ms` (shared by the modules' tests).
pub(crate) fn sleep_ms(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

#[cfg(feature = "sandbox")]
mod attacks;
mod capture;
mod compare;
#[cfg(feature = "remote")]
mod engines;
mod errors;
mod examples;
mod exec;
mod faults;
mod large;
mod peers;
mod pool;
mod refusal;
#[cfg(feature = "remote")]
mod remote;
#[cfg(feature = "remote")]
mod remote_attacks;
#[cfg(feature = "sandbox")]
mod sandbox;
mod shared;
mod soak;
mod state;
mod stats;
mod stream;
mod thread_mode;
