//! A job as the pool holds it: the frame sent to a worker, the sink its outcomes go to, and
//! the caller's items, to encode again the part of a job a dead worker left unfinished.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::lock;
use super::outcome::{RawOutcome, Sink};
use super::recovery::Run;
use crate::error::TaskError;
use crate::wire::{self, MAX_FRAME, WriteError};

/// Encodes again the arguments of tasks of a job, for a run that resumes it after its worker
/// died. (The worker's header says how many tasks were done, never where their arguments
/// ended, so a torn header cannot shift an argument onto another task.)
pub(super) trait Reencode: Send + Sync {
    /// Appends the arguments of items `first..first + count` of the call.
    fn reencode(&self, first: usize, count: usize, out: &mut Vec<u8>) -> Result<(), String>;

    /// Writes the arguments of items `first..first + count` at the start of `buf` (a
    /// worker's inbox), returning their length.
    fn write(&self, first: usize, count: usize, buf: &mut [u8]) -> Result<usize, WriteError>;
}

/// A `map` call's items (or one batch of a stream's), kept until their jobs are done.
pub(super) struct Items<A> {
    pub(super) items: Mutex<Vec<A>>,
    /// The index in its call of the first item.
    pub(super) base: usize,
}

impl<A: Serialize + Send> Reencode for Items<A> {
    fn reencode(&self, first: usize, count: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let items = lock(&self.items);
        let run = first
            .checked_sub(self.base)
            .and_then(|at| items.get(at..at + count))
            .ok_or_else(|| "a resumed run lies outside its call's items".to_string())?;
        // Under the pool's lock: a `Serialize` that panics must not unwind through it.
        crate::codec::guarded("Serialize", || {
            wire::append_capped(&wire::Concat(run), out, MAX_FRAME)
        })?
        .map_err(|e| crate::codec::ser_error(&wire::Concat(run), &e))
    }

    fn write(&self, first: usize, count: usize, buf: &mut [u8]) -> Result<usize, WriteError> {
        let items = lock(&self.items);
        let run = first
            .checked_sub(self.base)
            .and_then(|at| items.get(at..at + count))
            .ok_or(WriteError::Failed(postcard::Error::SerializeBufferFull))?;
        crate::codec::guarded("Serialize", || wire::write_into(&wire::Concat(run), buf))
            .unwrap_or(Err(WriteError::Failed(postcard::Error::SerdeSerCustom)))
    }
}

/// One job: consecutive tasks of one call, sent to a worker as one frame.
pub(super) struct JobData {
    pub(super) first_task: u64,
    /// The first task's index in its call (and sink).
    pub(super) first_index: usize,
    pub(super) count: usize,
    pub(super) entry: u64,
    /// The whole job's `Run` frame.
    pub(super) frame: Vec<u8>,
    pub(super) sink: Arc<dyn Sink>,
    /// The call's items, to encode a resumed run (`None` for a single task: its frame is
    /// the only one it ever needs).
    pub(super) items: Option<Arc<dyn Reencode>>,
    /// The call's context (`map_with`), sent to a worker before the first of the call's
    /// jobs it runs.
    pub(super) context: Option<Arc<Context>>,
    /// A large argument is encoded when the job is sent, straight into the worker's inbox
    /// (saving a buffer as large as it): its encoded length, and `frame` is the header only.
    pub(super) deferred: Option<usize>,
}

/// The context of one `map_with` call, as a `Context` frame.
#[derive(Debug)]
pub(crate) struct Context {
    /// Unique to the call: a worker that last received this id holds the context.
    pub(super) id: u64,
    /// The `ContextFn` it is decoded by (one per context type).
    pub(super) entry: u64,
    /// Where in `frame` the encoded context begins.
    pub(super) body: usize,
    pub(super) frame: Vec<u8>,
}

impl Context {
    /// The encoded context.
    pub(super) fn bytes(&self) -> &[u8] {
        &self.frame[self.body..]
    }
}

pub(super) type Job = Arc<JobData>;

impl std::fmt::Debug for JobData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("first_task", &self.first_task)
            .field("count", &self.count)
            .finish_non_exhaustive()
    }
}

impl JobData {
    /// The frame of `run`: the job's own, or one encoded afresh for a resumed part of it.
    pub(super) fn frame_for(&self, run: &Run<Job>, secret: u64) -> Result<Cow<'_, [u8]>, String> {
        if run.from == 0 && run.count == self.count {
            return Ok(Cow::Borrowed(&self.frame));
        }
        let items = self
            .items
            .as_ref()
            .ok_or_else(|| "a single task's job cannot be split".to_string())?;
        let mut frame = Vec::new();
        wire::begin_run(&mut frame);
        items.reencode(self.first_index + run.from, run.count, &mut frame)?;
        let first = self.first_task + run.from as u64;
        wire::finish_run(
            &mut frame,
            first,
            self.entry,
            self.entry ^ secret,
            run.count as u32,
        );
        Ok(Cow::Owned(frame))
    }

    /// Tasks `from..from + count` get `err(index)`, each with its item's index in the call,
    /// and each error is counted in `stats`.
    pub(super) fn fail(
        &self,
        stats: &crate::pool::stats::Counters,
        from: usize,
        count: usize,
        err: impl Fn(u64) -> TaskError,
    ) {
        let base = self.first_index as u64;
        let mut it = (from..from + count).map(|k| {
            let e = err(base + k as u64);
            stats.failed(&e);
            RawOutcome::Err(e)
        });
        self.sink
            .deliver(self.first_index + from, base + from as u64, &mut it);
    }
}

/// Records copied out of an arena, waiting to be decoded once the worker has its next job.
pub(super) struct Delivery {
    pub(super) job: Job,
    pub(super) from: usize,
    pub(super) n: usize,
    pub(super) bytes: Option<Range<usize>>,
    pub(super) worker: u32,
    /// Times the first of the tasks had been started before and lost to a crash.
    pub(super) retried: u32,
}
