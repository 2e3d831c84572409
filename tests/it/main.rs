//! The root package's one integration-test binary (one link on 2 cores).

mod browser;
mod cli;
mod report;

pub use cli::proctor;
