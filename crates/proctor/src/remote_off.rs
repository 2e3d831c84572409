//! Remote workers when the `remote` feature is off: the types the process pool names, with
//! no value. Nothing can build a [`Remote`] (`PoolBuilder::remote` is not compiled), so a
//! pool's hub is always `None`, every path that would reach a remote worker is statically
//! unreachable, and the pool's code is the same in both builds. The TLS stack, the HMAC
//! and the agent stay out of the build.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

/// No value: what the stand-ins below hold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Never {}

/// Stands for the launcher settings of `crate::remote::Remote`; it has no value.
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    /// As the real one's: how long a silent host is given before it counts as lost.
    pub(crate) lost_after: Duration,
    never: Never,
}

impl Remote {
    /// As the real one's: whether these launchers can serve `workers` slots.
    pub(crate) fn check(&self, _workers: usize) -> Result<(), String> {
        match self.never {}
    }
}

pub(crate) mod hub {
    //! Stand-ins for the pool's end of remote workers.

    use super::*;
    use crate::server::{Exit, ForkServer};
    use crate::sys::SharedMapping;
    use nix::sys::signal::Signal;

    /// Stands for the listener and launchers of a pool's remote workers; it has no value.
    #[derive(Debug)]
    pub(crate) struct Hub(Never);

    impl Hub {
        pub(crate) fn start(
            remote: &Remote,
            _workers: usize,
            _server: &'static ForkServer,
            _task_timeout: Option<Duration>,
            _memory_limit: Option<u64>,
            _forward: bool,
            _doorbell: Arc<crate::doorbell::Doorbell>,
        ) -> Result<Hub, String> {
            match remote.never {}
        }
        pub(crate) fn deaths(&self) -> u64 {
            match self.0 {}
        }
        pub(crate) fn take_revived(&self) -> Vec<(usize, bool)> {
            match self.0 {}
        }
        pub(crate) fn awaiting_relaunch(&self, _slot: usize) -> bool {
            match self.0 {}
        }
        pub(crate) fn spawn(
            &self,
            _slot: usize,
            _mirror: SharedMapping,
            _stderr: File,
        ) -> std::io::Result<Arc<Gen>> {
            match self.0 {}
        }
        pub(crate) fn shutdown(&self) {
            match self.0 {}
        }
    }

    /// Stands for one remote worker's connection; it has no value.
    #[derive(Debug)]
    pub(crate) struct Gen {
        pub(crate) host_pid: u32,
        never: Never,
    }

    impl Gen {
        pub(crate) fn close(&self) {
            match self.never {}
        }
        pub(crate) fn is_open(&self) -> bool {
            match self.never {}
        }
        pub(crate) fn data_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            match self.never {}
        }
        pub(crate) fn send(&self, _bytes: &[u8]) -> std::io::Result<()> {
            match self.never {}
        }
        pub(crate) fn pump(&self) {
            match self.never {}
        }
        pub(crate) fn sending(&self, _seq: u64) {
            match self.never {}
        }
        pub(crate) fn sent_before_loss(&self, _seq: u64) -> bool {
            match self.never {}
        }
        pub(crate) fn timed_out(&self) -> Option<Duration> {
            match self.never {}
        }
        pub(crate) fn lost(&self) -> Option<(String, String)> {
            match self.never {}
        }
        pub(crate) fn kill(&self, _signal: Signal) {
            match self.never {}
        }
        pub(crate) fn try_exit(&self) -> Option<Exit> {
            match self.never {}
        }
        pub(crate) fn wait_exit(&self, _timeout: Duration) -> Option<Exit> {
            match self.never {}
        }
    }
}
