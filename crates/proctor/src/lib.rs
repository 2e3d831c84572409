//! proctor

#[cfg(unix)]
pub mod ipc;
#[cfg(target_os = "linux")]
mod sys;
