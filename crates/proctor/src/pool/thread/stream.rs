//! [`ThreadStream`]: the thread-mode side of a stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Receiver, Sender};

use super::run::{cancelled, run_one, run_task};
use super::{Job, Shared, WorkerCtx};
use crate::pool::stream::OutcomeRun;

/// The thread-mode side of a [`crate::Stream`]: each batch is a job whose outcomes come back
/// through one channel (or, under a task timeout, one job per item, each timed on its own).
pub(super) struct ThreadStream<'p, F, I, R> {
    pub(super) shared: &'p Arc<Shared>,
    pub(super) f: F,
    pub(super) items: I,
    pub(super) tx: Sender<OutcomeRun<R>>,
    pub(super) rx: Receiver<OutcomeRun<R>>,
    /// The stream was dropped: jobs not yet started are cancelled, not run.
    pub(super) dropped: Arc<AtomicBool>,
}

impl<A, R, F, I> crate::pool::stream::Batches<R> for ThreadStream<'_, F, I, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Send + 'static,
    R: Send + 'static,
    I: Iterator<Item = A>,
{
    fn feed(&mut self, base: usize, max: usize, chunk: usize) -> usize {
        let limit = self.shared.config.task_timeout;
        // Under a timeout each item is timed and abandoned on its own.
        let chunk = if limit.is_some() { 1 } else { chunk.max(1) };
        let mut taken = 0;
        while taken < max {
            let part: Vec<A> = self.items.by_ref().take(chunk.min(max - taken)).collect();
            let len = part.len();
            if len == 0 {
                break;
            }
            let start = base + taken;
            let first_task = self
                .shared
                .next_task
                .fetch_add(len as u64, Ordering::Relaxed);
            self.shared.config.stats.submitted(len);
            let tx = self.tx.clone();
            let dropped = Arc::clone(&self.dropped);
            let f = self.f;
            let stats = Arc::clone(&self.shared.config.stats);
            let run = move |ctx: Option<&WorkerCtx>| {
                let ctx = match ctx {
                    Some(ctx) if !dropped.load(Ordering::Acquire) => ctx,
                    _ => {
                        let out = cancelled(start as u64, len);
                        stats.outcomes(&out);
                        let _ = tx.send((start, out));
                        return;
                    }
                };
                if limit.is_some() {
                    let arg = part.into_iter().next().expect("a timed job holds one item");
                    let finish = move |o| {
                        stats.outcome(&o);
                        let _ = tx.send((start, vec![o]));
                    };
                    run_task(ctx, f, arg, first_task, start as u64, limit, finish);
                    return;
                }
                let out: Vec<_> = part
                    .into_iter()
                    .enumerate()
                    .map(|(k, a)| run_one(f, a, ctx.id, (start + k) as u64))
                    .collect();
                stats.outcomes(&out);
                let _ = tx.send((start, out));
            };
            self.shared.send(Job::Run(Box::new(run), len));
            taken += len;
        }
        taken
    }

    fn next_run(&mut self) -> Option<OutcomeRun<R>> {
        // The stream holds a sender, so this waits until a run arrives.
        self.rx.recv().ok()
    }
}

impl<F, I, R> Drop for ThreadStream<'_, F, I, R> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Release);
    }
}
