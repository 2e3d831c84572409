//! [`ThreadTask`]: a submitted task's handle in thread mode, and the one-slot channel
//! ([`Slot`]) its outcome travels through.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use super::recv_spinning;
use crate::error::TaskError;

/// One task's outcome channel, and when and where it started.
///
/// The outcome travels through a one-slot crossbeam channel rather than a Mutex and Condvar:
/// its receiver spins and yields briefly before it sleeps, so a joiner on another CPU usually
/// sees a short task's result without a cross-CPU wake-up.
pub(super) struct Slot<R> {
    tx: Sender<Result<R, TaskError>>,
    /// `QUEUED`, then `RUNNING` (a worker took it) or `CANCELLED` (the caller did first).
    state: std::sync::atomic::AtomicU8,
    /// The waker of an `await` on the task, woken with the outcome.
    waker: Mutex<Option<std::task::Waker>>,
    /// A waker was registered (so a plain `join` never takes the waker's lock).
    awaited: AtomicBool,
}

pub(super) const QUEUED: u8 = 0;
pub(super) const RUNNING: u8 = 1;
pub(super) const CANCELLED: u8 = 2;

impl<R> Slot<R> {
    pub(super) fn new() -> (Slot<R>, Receiver<Result<R, TaskError>>) {
        let (tx, rx) = crossbeam_channel::bounded(1);
        (
            Slot {
                tx,
                state: std::sync::atomic::AtomicU8::new(QUEUED),
                waker: Mutex::new(None),
                awaited: AtomicBool::new(false),
            },
            rx,
        )
    }

    /// A worker takes the task: false if the caller cancelled it first.
    pub(super) fn claim(&self) -> bool {
        self.state
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Neither a worker nor the caller has taken the task yet.
    pub(super) fn is_queued(&self) -> bool {
        self.state.load(Ordering::Acquire) == QUEUED
    }

    /// The caller cancels the task: true if no worker had taken it (it then never runs).
    pub(super) fn cancel(&self) -> bool {
        let won = self
            .state
            .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if won {
            // A submitted task is a call of one item: index 0.
            self.finish(Err(TaskError::Cancelled { index: 0 }));
        }
        won
    }

    /// The one outcome. After a timeout the joiner has gone and the late outcome is dropped.
    pub(super) fn finish(&self, outcome: Result<R, TaskError>) {
        let _ = self.tx.try_send(outcome);
        // A fence on each side (here after the send, in the poll after `awaited`): either
        // this sees the waker, or the poll that registered it finds the outcome.
        std::sync::atomic::fence(Ordering::SeqCst);
        if self.awaited.load(Ordering::SeqCst) {
            let waker = self.waker.lock().expect("slot poisoned").take();
            if let Some(w) = waker {
                crate::panic::wake_contained(w);
            }
        }
    }
}

/// The thread-mode side of a [`crate::Task`].
pub(crate) struct ThreadTask<R> {
    pub(super) rx: Receiver<Result<R, TaskError>>,
    pub(super) task: u64,
    pub(super) slot: Arc<Slot<R>>,
    pub(super) stats: Arc<crate::pool::stats::Counters>,
}

impl<R> std::fmt::Debug for ThreadTask<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadTask")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

impl<R> ThreadTask<R> {
    /// Cancels the task if no worker has taken it yet; a running thread cannot be stopped.
    pub(crate) fn cancel(&self) -> bool {
        let won = self.slot.cancel();
        if won {
            // A submitted task is a call of one item: its error says index 0.
            self.stats.failed(&TaskError::Cancelled { index: 0 });
        }
        won
    }

    pub(crate) fn is_finished(&self) -> bool {
        !self.rx.is_empty()
    }

    /// The `Future` side: ready once the outcome is in the channel.
    pub(crate) fn poll_outcome(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<R, TaskError>> {
        use crossbeam_channel::TryRecvError;
        use std::task::Poll;
        let cancelled = || Err(TaskError::Cancelled { index: 0 });
        match self.rx.try_recv() {
            Ok(outcome) => return Poll::Ready(outcome),
            Err(TryRecvError::Disconnected) => return Poll::Ready(cancelled()),
            Err(TryRecvError::Empty) => {}
        }
        *self.slot.waker.lock().expect("slot poisoned") = Some(cx.waker().clone());
        self.slot.awaited.store(true, Ordering::SeqCst);
        std::sync::atomic::fence(Ordering::SeqCst);
        // The outcome may have landed between the look and the waker's registration.
        match self.rx.try_recv() {
            Ok(outcome) => Poll::Ready(outcome),
            Err(TryRecvError::Disconnected) => Poll::Ready(cancelled()),
            Err(TryRecvError::Empty) => Poll::Pending,
        }
    }

    /// The outcome, if it arrives by `deadline`; the task back otherwise.
    pub(crate) fn join_deadline(self, deadline: Instant) -> Result<Result<R, TaskError>, Self> {
        use crossbeam_channel::RecvTimeoutError;
        match self.rx.recv_deadline(deadline) {
            Ok(outcome) => Ok(outcome),
            Err(RecvTimeoutError::Timeout) => Err(self),
            Err(RecvTimeoutError::Disconnected) => Ok(Err(TaskError::Cancelled { index: 0 })),
        }
    }

    /// Waits for the task's outcome. With a task timeout the pool's watchdog delivers
    /// `TimedOut` on time, so this needs no clock of its own.
    pub(crate) fn join(self) -> Result<R, TaskError> {
        recv_spinning(&self.rx).unwrap_or_else(|_| Err(TaskError::Cancelled { index: 0 }))
    }
}
