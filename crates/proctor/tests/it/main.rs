//! The proctor crate's integration tests: one binary, one module per area.

// Process pools need the fork server started while the program is single-threaded; the
// test harness starts threads before any test runs, so start it before main.
proctor::init_before_main!();

mod examples;
mod faults;
mod pool;
mod soak;
mod thread_mode;
mod transport;
