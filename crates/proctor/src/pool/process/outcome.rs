//! Outcome delivery: the sinks that collect a call's outcomes, and the decoder of the
//! outcome records a worker commits to its arena (`wire.rs` has the record format).
//!
//! Everything here reads bytes a worker wrote, so nothing here trusts them: a corrupt record
//! is a codec error for its task (and the tasks after it, which can no longer be located),
//! and a result whose `Deserialize` panics is a codec error too, not a panic in the caller.

use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use arcstr::ArcStr;
use serde::de::DeserializeOwned;

use super::lock;
use crate::error::TaskError;
use crate::pool::stream::OutcomeRun;
use crate::wire::{self, RecordTag};

/// One outcome read from an arena, before the sink decodes it into its type.
pub(crate) enum RawOutcome<'a> {
    Ok(&'a [u8]),
    Err(TaskError),
}

impl RawOutcome<'_> {
    /// The outcome of task `task`, its result decoded to `R`.
    #[inline]
    fn decode<R: DeserializeOwned>(self, task: u64) -> Result<R, TaskError> {
        match self {
            RawOutcome::Ok(bytes) => decode_result(bytes, task),
            RawOutcome::Err(e) => Err(e),
        }
    }
}

/// Receives the outcomes of one `map` call or one submitted task.
pub(crate) trait Sink: Send + Sync {
    /// Outcomes for items `first_index..`, in order; `first_task` is the index their errors
    /// carry (the same number: an error names its item's index in the call, not the
    /// pool-wide task id that the wire carries).
    fn deliver(
        &self,
        first_index: usize,
        first_task: u64,
        outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>,
    );

    /// Outcome records read from an arena, for items `first_index..`. A sink may override it
    /// to decode without a virtual call per item (`map` of a million small results).
    fn deliver_records(&self, first_index: usize, mut records: RecordIter<'_>) {
        let task = records.task;
        self.deliver(first_index, task, &mut records);
    }

    /// What the task at `index` wrote before its worker died (with `capture_output`),
    /// ahead of its outcome. Only sinks that return output keep it.
    fn deliver_output(&self, _index: usize, _output: crate::pool::Output) {}
}

/// The parent's record decoder over arbitrary bytes (the fuzz target's entry point).
pub(crate) fn decode_records_for_fuzz(buf: &[u8], count: usize) -> usize {
    let it = RecordIter {
        buf,
        worker: 0,
        task: 0,
        left: count.min(1 << 20),
        broken: false,
        head: 0,
        retried: 0,
        stats: None,
    };
    // The captured-output path must see the same outcomes.
    let mut captured = it;
    let mut outcomes = 0;
    while captured.next_captured().is_some() {
        outcomes += 1;
    }
    assert_eq!(outcomes, it.left, "one captured outcome per record");
    // Both decoding paths: item by item (`try_map`, `submit`), and the batched `for_each`
    // of `map`, which must agree.
    let one_by_one = Decoded::<(u64, String)>::new(it)
        .filter(Result::is_ok)
        .count();
    let mut batched = 0;
    outcomes = 0;
    Decoded::<(u64, String)>::new(it).for_each(|o| {
        outcomes += 1;
        batched += usize::from(o.is_ok());
    });
    assert_eq!(outcomes, it.left, "one outcome per record");
    assert_eq!(batched, one_by_one, "the two decoding paths disagree");
    one_by_one
}

/// Decodes outcome records into [`RawOutcome`]s; after a corrupt record, every remaining
/// task gets a codec error.
#[derive(Clone, Copy)]
pub(crate) struct RecordIter<'a> {
    pub(super) buf: &'a [u8],
    pub(super) worker: u32,
    pub(super) task: u64,
    pub(super) left: usize,
    pub(super) broken: bool,
    /// The first record's task, and the times it had been started before this run and lost
    /// to a crash (rerun under `retries`): its error counts them.
    pub(super) head: u64,
    pub(super) retried: u32,
    /// Where a failed record is counted (every record was counted a success beforehand).
    pub(super) stats: Option<&'a crate::pool::stats::Counters>,
}

impl<'a> RecordIter<'a> {
    /// The next outcome with what its task wrote (with `capture_output`; empty otherwise).
    pub(super) fn next_captured(&mut self) -> Option<(RawOutcome<'a>, crate::pool::Output)> {
        let output = wire::decode_full_record(self.buf)
            .ok()
            .and_then(|r| r.output)
            .map(|(out, err)| crate::pool::Output {
                stdout: out.to_vec(),
                stderr: err.to_vec(),
            })
            .unwrap_or_default();
        Some((self.next()?, output))
    }
}

impl<'a> RecordIter<'a> {
    /// The next record's task and payload if it is an intact `Ok` record (the common case,
    /// kept free of the error type); otherwise `None`, and `next` has the record.
    #[inline]
    fn next_ok(&mut self) -> Option<(u64, &'a [u8])> {
        if self.left == 0 || self.broken {
            return None;
        }
        match wire::decode_record(self.buf) {
            Ok((RecordTag::Ok, payload, used)) => {
                let task = self.task;
                self.left -= 1;
                self.task += 1;
                self.buf = &self.buf[used..];
                Some((task, payload))
            }
            _ => None,
        }
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = RawOutcome<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawOutcome<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let task = self.task;
        self.task += 1;
        let e = if self.broken {
            corrupt(task, "an earlier record was corrupt")
        } else {
            match wire::decode_record(self.buf) {
                Ok((RecordTag::Ok, payload, used)) => {
                    self.buf = &self.buf[used..];
                    return Some(RawOutcome::Ok(payload));
                }
                Ok((tag, payload, used)) => {
                    self.buf = &self.buf[used..];
                    let retried = if task == self.head { self.retried } else { 0 };
                    failed(tag, payload, self.worker, task, retried)
                }
                Err(e) => {
                    self.broken = true;
                    corrupt(task, &e.to_string())
                }
            }
        };
        if let Some(stats) = self.stats {
            stats.failed_record(&e);
        }
        Some(RawOutcome::Err(e))
    }
}

/// The error a `Panicked` or `Codec` record carries. Out of line: the hot loop decodes
/// `Ok` records.
#[cold]
#[inline(never)]
fn failed(tag: RecordTag, payload: &[u8], worker: u32, task: u64, retried: u32) -> TaskError {
    match tag {
        RecordTag::Panicked => {
            let (message, location): (&str, Option<&str>) =
                postcard::from_bytes(payload).unwrap_or(("(unreadable panic message)", None));
            TaskError::Panicked {
                message: message.into(),
                location: location.map(ArcStr::from),
                worker,
                index: task,
                attempts: u8::try_from(retried.saturating_add(1)).unwrap_or(u8::MAX),
            }
        }
        RecordTag::Codec | RecordTag::Ok => {
            let message: &str = postcard::from_bytes(payload).unwrap_or("unknown codec error");
            TaskError::Codec {
                message: message.into(),
                index: task,
            }
        }
    }
}

#[cold]
#[inline(never)]
fn corrupt(task: u64, why: &str) -> TaskError {
    TaskError::Codec {
        message: arcstr::format!("its outcome record is corrupt: {why}"),
        index: task,
    }
}

/// Decodes one result. A `Deserialize` that panics is the task's codec error: the panic is
/// the result type's, it must not take down the caller (or poison the pool's locks).
#[inline]
fn decode_result<R: DeserializeOwned>(bytes: &[u8], task: u64) -> Result<R, TaskError> {
    match catch_unwind(AssertUnwindSafe(|| postcard::from_bytes(bytes))) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(undecodable(bytes, &e, task, crate::codec::de_error::<R>)),
        Err(payload) => Err(decode_panicked(payload.as_ref(), task)),
    }
}

#[cold]
#[inline(never)]
fn undecodable(
    bytes: &[u8],
    e: &postcard::Error,
    task: u64,
    words: fn(&[u8], &postcard::Error) -> String,
) -> TaskError {
    // (`words` is passed, not named by a type parameter: the hot decoding loop that calls
    // this keeps one small call, the same for every result type.)
    TaskError::Codec {
        message: arcstr::format!("its result could not be decoded: {}", words(bytes, e)),
        index: task,
    }
}

#[cold]
#[inline(never)]
fn decode_panicked(payload: &(dyn std::any::Any + Send), task: u64) -> TaskError {
    let (message, _) = crate::panic::details(payload);
    TaskError::Codec {
        message: arcstr::format!(
            "its result could not be decoded: Deserialize panicked: {message}"
        ),
        index: task,
    }
}

/// Collects the outcomes of one `map` or `try_map` call, in input order.
pub(super) struct MapSink<R, C> {
    pub(super) results: Mutex<Option<C>>,
    pub(super) remaining: AtomicUsize,
    pub(super) _result: PhantomData<fn() -> R>,
}

impl<R: DeserializeOwned + Send + 'static, C: crate::pool::Collect<R>> MapSink<R, C> {
    /// Takes in the `n` outcomes of items `first_index..`.
    fn take_in(
        &self,
        first_index: usize,
        n: usize,
        outcomes: impl Iterator<Item = Result<R, TaskError>>,
    ) {
        {
            let mut results = lock(&self.results);
            if let Some(c) = results.as_mut() {
                c.add(first_index, outcomes);
            }
        }
        self.remaining.fetch_sub(n, Ordering::Release);
    }
}

impl<R: DeserializeOwned + Send + 'static, C: crate::pool::Collect<R>> Sink for MapSink<R, C> {
    fn deliver(
        &self,
        first_index: usize,
        base: u64,
        outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>,
    ) {
        let decoded: Vec<Result<R, TaskError>> = outcomes
            .enumerate()
            .map(|(k, o)| o.decode(base + k as u64))
            .collect();
        self.take_in(first_index, decoded.len(), decoded.into_iter());
    }

    fn deliver_records(&self, first_index: usize, records: RecordIter<'_>) {
        self.take_in(first_index, records.left, Decoded::<R>::new(records));
    }
}

/// The outcomes in a run of records, decoded to `R`.
struct Decoded<'a, R> {
    records: RecordIter<'a>,
    _result: PhantomData<fn() -> R>,
}

impl<'a, R> Decoded<'a, R> {
    fn new(records: RecordIter<'a>) -> Self {
        Decoded {
            records,
            _result: PhantomData,
        }
    }
}

impl<R: DeserializeOwned> Decoded<'_, R> {
    /// A failed, corrupt or missing record.
    #[cold]
    #[inline(never)]
    fn next_slow(&mut self) -> Option<Result<R, TaskError>> {
        let task = self.records.task;
        Some(self.records.next()?.decode(task))
    }
}

impl<R: DeserializeOwned> Iterator for Decoded<'_, R> {
    type Item = Result<R, TaskError>;

    #[inline]
    fn next(&mut self) -> Option<Result<R, TaskError>> {
        match self.records.next_ok() {
            Some((task, bytes)) => Some(decode_result(bytes, task)),
            None => self.next_slow(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.records.left, Some(self.records.left))
    }

    /// The hot loop of a big `map` (`Assembler::add` drives it): `Ok` records go straight
    /// to `f` as `Ok` values (one branch per outcome kind, so the compiler writes each in
    /// place). A `Deserialize` that panics must not unwind into the pool, but a
    /// `catch_unwind` per item keeps the decoder from being inlined (a quarter of a
    /// million-item map's time): so one `catch_unwind` covers a whole batch, and after a
    /// panic the item that panicked — the one just taken — becomes a codec error and the loop
    /// goes on from the next.
    #[inline]
    fn for_each<G>(self, mut f: G)
    where
        G: FnMut(Self::Item),
    {
        let mut records = self.records;
        loop {
            // The iterator moves into the batch by value and comes back out: behind a
            // reference its fields went through memory on every item.
            let resume = records;
            let at = std::cell::Cell::new(records.task);
            let batch = catch_unwind(AssertUnwindSafe(|| {
                decode_oks::<R, G>(records, &mut f, &at)
            }));
            match batch {
                Ok(rest) => records = rest,
                Err(payload) => {
                    let task = at.get();
                    f(Err(decode_panicked(payload.as_ref(), task)));
                    // Go on after the item that panicked.
                    records = resume;
                    while records.task <= task && records.next_ok().is_some() {}
                    continue;
                }
            }
            let mut slow = Decoded::<R>::new(records);
            match slow.next_slow() {
                Some(outcome) => {
                    records = slow.records;
                    f(outcome);
                }
                None => return,
            }
        }
    }
}

/// Decodes the `Ok` records at the front of `records` into `f`, noting each one's task in
/// `at` before decoding it; returns where it stopped. Out of line, so that it compiles to
/// the same tight loop whether or not a `catch_unwind` is around it.
#[inline(never)]
fn decode_oks<'a, R: DeserializeOwned, G: FnMut(Result<R, TaskError>)>(
    mut records: RecordIter<'a>,
    f: &mut G,
    at: &std::cell::Cell<u64>,
) -> RecordIter<'a> {
    while let Some((task, bytes)) = records.next_ok() {
        at.set(task);
        match postcard::from_bytes(bytes) {
            Ok(v) => f(Ok(v)),
            Err(e) => f(Err(undecodable(
                bytes,
                &e,
                task,
                crate::codec::de_error::<R>,
            ))),
        }
    }
    records
}

/// Holds the outcome of one submitted task.
pub(super) struct SlotSink<R> {
    /// The pool-wide task id (for `Debug`; its errors say index 0: a call of one item).
    pub(super) task: u64,
    pub(super) outcome: Mutex<Option<Result<R, TaskError>>>,
    pub(super) done: AtomicBool,
    /// The waker of an `await` on the task, woken when the outcome arrives.
    pub(super) waker: Mutex<Option<std::task::Waker>>,
    /// A waker was registered (so a plain `join` never takes the waker's lock).
    pub(super) awaited: AtomicBool,
    /// What the task wrote, with `capture_output`.
    pub(super) output: Mutex<Option<crate::pool::Output>>,
}

impl<R> SlotSink<R> {
    /// The outcome, taken out (`Cancelled` if none ever came: the pool was dropped).
    pub(super) fn take(&self) -> Result<R, TaskError> {
        lock(&self.outcome)
            .take()
            .unwrap_or(Err(TaskError::Cancelled { index: 0 }))
    }
}

impl<R: DeserializeOwned + Send> Sink for SlotSink<R> {
    fn deliver_records(&self, first_index: usize, mut records: RecordIter<'_>) {
        let task = records.task;
        if let Some((o, output)) = records.next_captured() {
            *lock(&self.output) = Some(output);
            self.deliver(first_index, task, &mut std::iter::once(o));
        }
    }

    fn deliver_output(&self, _index: usize, output: crate::pool::Output) {
        *lock(&self.output) = Some(output);
    }

    fn deliver(
        &self,
        _first_index: usize,
        _first_task: u64,
        outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>,
    ) {
        if let Some(o) = outcomes.next() {
            let r = o.decode(0);
            *lock(&self.outcome) = Some(r);
            // SeqCst with `awaited`: either this sees the waker, or the poll that registered
            // it sees `done` (each side stores, then loads the other's flag).
            self.done.store(true, Ordering::SeqCst);
            if self.awaited.load(Ordering::SeqCst) {
                let waker = lock(&self.waker).take();
                if let Some(w) = waker {
                    // Woken once this thread lets go of the pool's lock: a waker may call
                    // back into the pool (`submit`), or panic.
                    super::defer_wake(w);
                }
            }
        }
    }
}

/// Collects a stream's outcomes in the runs they arrive in, for its iterator to take.
pub(super) struct StreamSink<R> {
    /// Each run with the encoded size of its results.
    pub(super) runs: Mutex<std::collections::VecDeque<(OutcomeRun<R>, usize)>>,
    /// Runs waiting in `runs` (read without the lock by the waiting iterator).
    pub(super) ready: AtomicUsize,
    /// The stream was cancelled: its iterator stops waiting.
    pub(super) cancelled: AtomicBool,
}

impl<R> StreamSink<R> {
    pub(super) fn new() -> Self {
        StreamSink {
            runs: Mutex::new(Default::default()),
            ready: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
        }
    }

    fn push(&self, first_index: usize, run: Vec<Result<R, TaskError>>, bytes: usize) {
        if run.is_empty() {
            return;
        }
        lock(&self.runs).push_back(((first_index, run), bytes));
        self.ready.fetch_add(1, Ordering::Release);
    }

    /// The oldest run that arrived, if any, with its results' encoded size.
    pub(super) fn pop(&self) -> Option<(OutcomeRun<R>, usize)> {
        if self.ready.load(Ordering::Acquire) == 0 {
            return None;
        }
        let run = lock(&self.runs).pop_front();
        if run.is_some() {
            self.ready.fetch_sub(1, Ordering::Release);
        }
        run
    }
}

impl<R: DeserializeOwned + Send> Sink for StreamSink<R> {
    fn deliver(
        &self,
        first_index: usize,
        base: u64,
        outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>,
    ) {
        let run = outcomes
            .enumerate()
            .map(|(k, o)| o.decode(base + k as u64))
            .collect();
        self.push(first_index, run, 0);
    }

    fn deliver_records(&self, first_index: usize, records: RecordIter<'_>) {
        let bytes = records.buf.len();
        let mut run = Vec::with_capacity(records.left);
        Decoded::<R>::new(records).for_each(|o| run.push(o));
        self.push(first_index, run, bytes);
    }
}

/// Collects the outcomes of a `map_captured` call with what each task wrote, in input order.
pub(super) struct CaptureSink<R> {
    pub(super) results: Mutex<crate::pool::Assembler<(Result<R, TaskError>, crate::pool::Output)>>,
    /// Output of tasks whose worker died, waiting for their outcome.
    pub(super) orphans: Mutex<std::collections::HashMap<usize, crate::pool::Output>>,
    pub(super) remaining: AtomicUsize,
}

impl<R: DeserializeOwned + Send> Sink for CaptureSink<R> {
    fn deliver(
        &self,
        first_index: usize,
        base: u64,
        outcomes: &mut dyn Iterator<Item = RawOutcome<'_>>,
    ) {
        let mut orphans = lock(&self.orphans);
        let run: Vec<_> = outcomes
            .enumerate()
            .map(|(k, o)| {
                let outcome = o.decode(base + k as u64);
                let output = orphans.remove(&(first_index + k)).unwrap_or_default();
                (outcome, output)
            })
            .collect();
        drop(orphans);
        let n = run.len();
        lock(&self.results).add_run(first_index, run);
        self.remaining.fetch_sub(n, Ordering::Release);
    }

    fn deliver_records(&self, first_index: usize, mut records: RecordIter<'_>) {
        let mut run = Vec::with_capacity(records.left);
        let mut task = records.task;
        while let Some((o, output)) = records.next_captured() {
            let outcome = o.decode(task);
            run.push((outcome, output));
            task += 1;
        }
        let n = run.len();
        lock(&self.results).add_run(first_index, run);
        self.remaining.fetch_sub(n, Ordering::Release);
    }

    fn deliver_output(&self, index: usize, output: crate::pool::Output) {
        lock(&self.orphans).insert(index, output);
    }
}

#[cfg(test)]
mod tests {
    use super::decode_records_for_fuzz;
    use crate::wire::{RecordTag, record_header};

    fn record(tag: RecordTag, payload: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 5];
        record_header(&mut r, tag, false, payload.len());
        r.extend_from_slice(payload);
        r
    }

    #[test]
    fn both_decoding_paths_agree_on_good_bad_and_cut_records() {
        let ok = postcard::to_allocvec(&(7u64, "seven".to_string())).unwrap();
        let panicked = postcard::to_allocvec(&("boom", None::<&str>)).unwrap();
        let mut buf = record(RecordTag::Ok, &ok);
        buf.extend(record(RecordTag::Panicked, &panicked));
        buf.extend(record(RecordTag::Ok, &[0xFF, 0xFF])); // not a (u64, String)
        buf.extend(record(RecordTag::Ok, &ok));
        assert_eq!(decode_records_for_fuzz(&buf, 4), 2);
        // More records claimed than present, a cut payload, an unknown tag: no panic, and
        // every claimed record still gets one outcome (checked inside).
        assert_eq!(decode_records_for_fuzz(&buf, 9), 2);
        assert_eq!(decode_records_for_fuzz(&buf[..buf.len() - 3], 4), 1);
        let mut bad = buf.clone();
        bad[0] = 9;
        assert_eq!(decode_records_for_fuzz(&bad, 4), 0);
    }
}
