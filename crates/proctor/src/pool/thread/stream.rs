//! [`ThreadStream`]: the thread-mode side of a stream.
//!
//! A job's outcomes go into a buffer it shares with the stream (each one as it finishes in a
//! job of up to [`PUBLISH_PARTS`] items, in 64 parts in a larger one), and reach the stream's
//! channel when the job ends. An iterator that has waited [`PEEK`] for a run takes what the
//! running jobs have put there so far (and again every `PEEK` while it waits), so a slow item
//! holds the finished items of its own job for at most that long (but for the last part's, in
//! a large job: under a 64th of about a millisecond of work).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::run::{cancelled, run_one, run_task};
use super::{Job, Shared, WorkerCtx};
use crate::pool::stream::{Next, OutcomeRun};

/// The outcomes one running job has finished and not yet sent.
struct Partial<R> {
    /// The job's first item's index in the stream.
    start: usize,
    state: Mutex<PartialState<R>>,
}

struct PartialState<R> {
    /// Outcomes of the job sent so far (the buffer holds the next ones).
    sent: usize,
    buf: Vec<Result<R, crate::TaskError>>,
    done: bool,
}

impl<R> Partial<R> {
    /// The buffered outcomes as a run, if there are any.
    fn take(&self, st: &mut PartialState<R>) -> Option<OutcomeRun<R>> {
        if st.buf.is_empty() {
            return None;
        }
        let run = std::mem::take(&mut st.buf);
        let at = self.start + st.sent;
        st.sent += run.len();
        Some((at, run))
    }
}

/// How long a waiting iterator waits for a job to end before it takes what the running jobs
/// have finished so far.
const PEEK: Duration = Duration::from_millis(1);

/// Jobs in the list of those that may hold finished outcomes past which the ended ones are
/// dropped from it.
const ACTIVE_PRUNE: usize = 256;

/// A job makes its finished outcomes visible to a waiting iterator in this many parts (or
/// one by one, for a job of fewer items).
const PUBLISH_PARTS: usize = 64;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The thread-mode side of a [`crate::Stream`]: each batch is a job whose outcomes come back
/// through one channel (or, under a task timeout, one job per item, each timed on its own).
pub(super) struct ThreadStream<'p, F, I, R> {
    shared: &'p Arc<Shared>,
    f: F,
    items: I,
    tx: Sender<OutcomeRun<R>>,
    rx: Receiver<OutcomeRun<R>>,
    /// The stream was dropped or cancelled: items not yet started are not run.
    dropped: Arc<AtomicBool>,
    /// Jobs that may still hold finished outcomes.
    active: Vec<Arc<Partial<R>>>,
}

impl<'p, F, I, R> ThreadStream<'p, F, I, R> {
    pub(super) fn new(shared: &'p Arc<Shared>, f: F, items: I) -> Self {
        let (tx, rx) = crossbeam_channel::unbounded();
        ThreadStream {
            shared,
            f,
            items,
            tx,
            rx,
            dropped: Arc::new(AtomicBool::new(false)),
            active: Vec::new(),
        }
    }

    /// What running jobs have finished and not sent, as one run (of one job).
    fn take_finished(&mut self) -> Option<OutcomeRun<R>> {
        let mut found = None;
        self.active.retain(|p| {
            if found.is_some() {
                return true;
            }
            let mut st = lock(&p.state);
            found = p.take(&mut st);
            !st.done
        });
        found
    }
}

impl<A, R, F, I> crate::pool::stream::Batches<R> for ThreadStream<'_, F, I, R>
where
    F: Fn(A) -> R + Copy + Send + 'static,
    A: Send + 'static,
    R: Send + 'static,
    I: Iterator<Item = A>,
{
    fn feed(&mut self, base: usize, max: usize, chunk: usize) -> (usize, usize) {
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
            let partial = Arc::new(Partial {
                start,
                state: Mutex::new(PartialState {
                    sent: 0,
                    buf: Vec::with_capacity(len),
                    done: false,
                }),
            });
            if limit.is_none() {
                if self.active.len() >= ACTIVE_PRUNE {
                    // Forget the jobs that ended (an endless stream must not keep them all).
                    self.active.retain(|p| !lock(&p.state).done);
                }
                self.active.push(Arc::clone(&partial));
            }
            let run = move |ctx: Option<&WorkerCtx>| {
                let ctx = match ctx {
                    Some(ctx) if !dropped.load(Ordering::Acquire) => ctx,
                    _ => {
                        let out = cancelled(start as u64, len);
                        stats.outcomes(&out);
                        lock(&partial.state).done = true;
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
                let mut ok = 0;
                // Finished outcomes are put where the iterator can see them every `every`
                // items: each one alone for small jobs, a 64th of the job for big ones (a
                // lock per trivial item cost a fifth of its time).
                let every = (len / PUBLISH_PARTS).max(1);
                let mut finished = Vec::with_capacity(every);
                for (k, a) in part.into_iter().enumerate() {
                    if dropped.load(Ordering::Acquire) {
                        // Cancelled: the rest never run (counted, sent to nobody).
                        stats.outcomes(&cancelled::<R>((start + k) as u64, len - k));
                        break;
                    }
                    let o = run_one(f, a, ctx.id, (start + k) as u64);
                    match &o {
                        Ok(_) => ok += 1,
                        Err(e) => stats.failed(e),
                    }
                    finished.push(o);
                    if finished.len() >= every {
                        lock(&partial.state).buf.append(&mut finished);
                    }
                }
                // (Counted once per job: the counters are shared between the workers.)
                stats.succeeded(ok);
                let mut st = lock(&partial.state);
                st.buf.append(&mut finished);
                st.done = true;
                if let Some(run) = partial.take(&mut st) {
                    drop(st);
                    let _ = tx.send(run);
                }
            };
            self.shared.send(Job::Run(Box::new(run), len));
            taken += len;
        }
        (taken, 0)
    }

    fn next_run(&mut self, deadline: Option<Instant>) -> Next<R> {
        loop {
            if self.dropped.load(Ordering::Acquire) {
                return Next::Closed;
            }
            let peek = Instant::now() + PEEK;
            let until = deadline.map_or(peek, |d| d.min(peek));
            match self.rx.recv_deadline(until) {
                // (An empty run is the canceller's wake-up call.)
                Ok(run) if run.1.is_empty() => continue,
                Ok(run) => return Next::Run(run, 0),
                Err(RecvTimeoutError::Disconnected) => return Next::Closed,
                Err(RecvTimeoutError::Timeout) => {}
            }
            // Nothing ended for a while: what running jobs finished so far.
            if let Some(run) = self.take_finished() {
                return Next::Run(run, 0);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Next::TimedOut;
            }
        }
    }

    fn stopper(&self) -> Box<dyn Fn() + Send + Sync> {
        let dropped = Arc::clone(&self.dropped);
        let tx = self.tx.clone();
        Box::new(move || {
            dropped.store(true, Ordering::Release);
            let _ = tx.send((usize::MAX, Vec::new()));
        })
    }

    fn default_window(&self, workers: usize) -> usize {
        crate::pool::stream::THREAD_WINDOW_PER_WORKER * workers
    }
}

impl<F, I, R> Drop for ThreadStream<'_, F, I, R> {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::Release);
    }
}
