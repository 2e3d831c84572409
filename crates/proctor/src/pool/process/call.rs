//! The pool's calls: `submit`, `map` (and its captured-output and `map_with` forms) and
//! streams turn their arguments into jobs — encoded many items per serializer call, cut at
//! [`JOB_BYTES`], a large argument left to be encoded straight into a worker's inbox — and
//! queue them; the driver does the rest. Nothing here is imported elsewhere but
//! [`entry_of`] (the probe's entry point, in `start.rs`).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use nix::sys::signal::Signal;

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::job::{Context, Items, Job, JobData, Reencode};
use super::outcome::{CaptureSink, MapSink, RawOutcome, Sink, SlotSink, StreamSink};
use super::recovery::Death;
use super::{ProcessPool, ProcessTask, Shared, State, lock, recovery};
use crate::error::TaskError;
use crate::pool::TaskInner;
use crate::pool::stream::Next;
use crate::wire::{self, MAX_FRAME};
use crate::worker::{EntryFn, entry};

/// A `map` job is cut when its arguments reach this size, so large items stream.
const JOB_BYTES: usize = 8 << 20;

/// Arguments encoded by one serializer call in `map` (a call per item was a fifth of the
/// parent's time in a map of a million `u64`s).
const ENCODE_RUN: usize = 1024;

/// The address of the entry point for tasks of the fn item (or non-capturing closure) `f`.
pub(super) fn entry_of<A, R, F>(_f: F) -> u64
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    let f: EntryFn = entry::<A, R, F>;
    f as usize as u64
}

impl ProcessPool {
    pub(crate) fn submit<A, R, F>(&self, f: F, arg: A) -> TaskInner<R>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let task = self.shared.next_task.fetch_add(1, Ordering::Relaxed);
        // Room for the header and a small argument: one allocation, not three growing ones.
        let mut frame = Vec::with_capacity(wire::RUN_HEADER_LEN + 32);
        wire::begin_run(&mut frame);
        let cap = wire::RUN_HEADER_LEN + wire::INBOX_MIN;
        // A submitted task is a call of one item: its errors say index 0.
        let deferred = match self.shared.encode_arg(&arg, &mut frame, cap, 0) {
            Err(e) => {
                self.shared.config.stats.failed(&e);
                return TaskInner::Ready(Err(e));
            }
            Ok(None) => None,
            Ok(Some(len)) => {
                // A large argument, encoded when sent, into the worker's inbox.
                wire::begin_run(&mut frame);
                Some(len)
            }
        };
        let entry = entry_of(f);
        wire::finish_run(
            &mut frame,
            task,
            entry,
            entry ^ self.shared.server.secret,
            1,
        );
        let items = deferred.map(|_| {
            let items = Items {
                items: Mutex::new(vec![arg]),
                base: 0,
            };
            Arc::new(items) as Arc<dyn Reencode>
        });
        let sink = Arc::new(SlotSink {
            task,
            outcome: Mutex::new(None),
            done: AtomicBool::new(false),
            waker: Mutex::new(None),
            awaited: AtomicBool::new(false),
            output: Mutex::new(None),
        });
        self.shared.enqueue(Arc::new(JobData {
            first_task: task,
            first_index: 0,
            count: 1,
            entry,
            frame,
            sink: Arc::clone(&sink) as Arc<dyn Sink>,
            items,
            context: None,
            deferred,
        }));
        TaskInner::Process(ProcessTask {
            shared: Arc::clone(&self.shared),
            sink,
            awaited: false,
        })
    }

    pub(crate) fn map<A, R, F, C>(&self, f: F, items: Vec<A>) -> C::Output
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: crate::pool::Collect<R>,
    {
        self.map_in::<A, R, F, C>(f, items, None)
    }

    /// Runs `items` through the entry point `entry` as one call, its outcomes going to `sink`,
    /// and waits until `remaining` (the sink's count of outcomes still to come) is zero.
    fn run_call<A, S>(
        &self,
        entry: u64,
        items: Vec<A>,
        context: Option<Arc<Context>>,
        sink: &Arc<S>,
        remaining: &AtomicUsize,
    ) where
        A: Serialize + Send + 'static,
        S: Sink + 'static,
    {
        let n = items.len();
        let first_task = self.shared.next_task.fetch_add(n as u64, Ordering::Relaxed);
        let dyn_sink: Arc<dyn Sink> = Arc::clone(sink) as Arc<dyn Sink>;
        let batch = Batch {
            entry,
            first_task,
            base: 0,
            chunk: self.shared.config.chunk_for(n),
            sink: &dyn_sink,
            context,
        };
        self.shared.enqueue_items(batch, items);
        self.shared
            .wait_until(&|_| remaining.load(Ordering::Acquire) == 0);
    }

    /// `map`, with each task's captured output next to its outcome.
    pub(crate) fn map_captured<A, R, F>(
        &self,
        f: F,
        items: Vec<A>,
    ) -> Vec<(Result<R, TaskError>, crate::pool::Output)>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
    {
        let n = items.len();
        let sink = Arc::new(CaptureSink::<R> {
            results: Mutex::new(crate::pool::Assembler::new(n)),
            orphans: Mutex::new(Default::default()),
            remaining: AtomicUsize::new(n),
        });
        self.run_call(entry_of(f), items, None, &sink, &sink.remaining);
        let results = std::mem::replace(&mut *lock(&sink.results), crate::pool::Assembler::new(0));
        results.finish(n, |i| {
            (
                Err(TaskError::Cancelled { index: i as u64 }),
                crate::pool::Output::default(),
            )
        })
    }

    /// The `Context` frame of a `map_with` call's context, or why it cannot be encoded.
    ///
    /// A context that encodes to the same bytes as the previous call's keeps that call's
    /// frame and id, so a worker that already holds it is not sent it again (thirty calls
    /// with one context send it once per worker); the comparison runs as it is encoded,
    /// with nothing allocated. A context holding a [`crate::Shared`] or
    /// [`crate::SharedBytes`] is refused for workers that could not open its region.
    pub(crate) fn context<C>(&self, context: &C) -> Result<Arc<Context>, String>
    where
        C: Serialize + DeserializeOwned + 'static,
    {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let keep: crate::state::ContextFn = crate::state::context_entry::<C>;
        let entry = keep as usize as u64;
        let prev = lock(&self.last_context).clone();
        if let Some(prev) = prev.filter(|p| p.entry == entry) {
            crate::shared::take_serialized();
            let same = crate::codec::guarded("Serialize", || {
                crate::pool::same_encoding(context, prev.bytes())
            });
            let shared = crate::shared::take_serialized();
            if same == Ok(true) {
                self.can_map(shared)?;
                return Ok(prev);
            }
        }
        let mut bytes = Vec::new();
        crate::shared::take_serialized();
        crate::codec::guarded("Serialize", || {
            wire::append_capped(context, &mut bytes, MAX_FRAME - 64)
        })?
        .map_err(|e| match e {
            postcard::Error::SerializeBufferFull => {
                format!("it exceeds the {} MiB frame limit", MAX_FRAME >> 20)
            }
            e => crate::codec::ser_error(context, &e),
        })?;
        self.can_map(crate::shared::take_serialized())?;
        let mut frame = Vec::new();
        wire::encode_call(
            &mut frame,
            entry,
            entry ^ self.shared.server.secret,
            Some(&bytes),
        );
        let context = Arc::new(Context {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            entry,
            body: frame.len() - bytes.len(),
            frame,
        });
        *lock(&self.last_context) = Some(Arc::clone(&context));
        Ok(context)
    }

    /// Makes the next call's context a new one, sent to every worker whatever it holds.
    pub(crate) fn forget_context(&self) {
        *lock(&self.last_context) = None;
    }

    /// Why this pool's workers cannot take a context that holds a shared region (`shared`:
    /// the context's encoding wrote a handle of one), if they cannot.
    fn can_map(&self, shared: bool) -> Result<(), String> {
        if !shared {
            Ok(())
        } else if self.shared.config.sandbox.is_some() {
            Err(
                "it holds a Shared or SharedBytes, which a sandboxed worker cannot map (it \
                 cannot open /proc)"
                    .to_string(),
            )
        } else if self.shared.remote.is_some() {
            Err(
                "it holds a Shared or SharedBytes, which a remote worker cannot map (its \
                 region is in this host's memory)"
                    .to_string(),
            )
        } else {
            Ok(())
        }
    }

    /// `map`, with the call's context if it has one.
    pub(crate) fn map_in<A, R, F, C>(
        &self,
        f: F,
        items: Vec<A>,
        context: Option<Arc<Context>>,
    ) -> C::Output
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        C: crate::pool::Collect<R>,
    {
        let n = items.len();
        let sink = Arc::new(MapSink::<R, C> {
            results: Mutex::new(Some(C::with_len(n))),
            remaining: AtomicUsize::new(n),
            _result: PhantomData,
        });
        self.run_call(entry_of(f), items, context, &sink, &sink.remaining);
        let results = lock(&sink.results).take();
        results.expect("map results are taken once").finish(n)
    }

    /// Starts a stream of `f` over `items` (see [`crate::Stream`]), with the call's context
    /// if it has one (`stream_with`).
    pub(crate) fn stream<'p, A, R, F, I>(
        &'p self,
        f: F,
        items: I,
        context: Option<Arc<Context>>,
    ) -> Box<dyn crate::pool::stream::Batches<R> + 'p>
    where
        F: Fn(A) -> R + Copy + 'static,
        A: Serialize + DeserializeOwned + Send + 'static,
        R: Serialize + DeserializeOwned + Send + 'static,
        I: Iterator<Item = A> + 'p,
    {
        Box::new(ProcessStream {
            shared: &self.shared,
            entry: entry_of(f),
            items,
            sink: Arc::new(StreamSink::new()),
            context,
        })
    }
}

/// Where `enqueue_items` puts a batch of items: tasks `first_task..` of the entry point
/// `entry`, indices `base..` of their call, in jobs of at most `chunk` items whose outcomes
/// go to `sink`, with the call's context if it has one.
struct Batch<'a> {
    entry: u64,
    first_task: u64,
    base: usize,
    chunk: usize,
    sink: &'a Arc<dyn Sink>,
    context: Option<Arc<Context>>,
}

impl Shared {
    /// The largest encoded argument a task may have: the pool's `max_payload`, or what fits
    /// in a frame for a remote worker (which has no inbox to share).
    fn arg_limit(&self) -> usize {
        if self.remote.is_some() {
            MAX_FRAME - wire::RUN_HEADER_LEN
        } else {
            self.config.max_payload
        }
    }

    /// The error of an argument whose encoding outgrew [`Shared::arg_limit`] (serializing
    /// stops there: a huge argument is rejected without being encoded whole).
    fn too_big(&self, index: u64) -> TaskError {
        let what = if self.remote.is_some() {
            "a remote worker's frame limit"
        } else {
            "the pool's max_payload"
        };
        TaskError::Codec {
            message: arcstr::format!(
                "its argument exceeds {what} of {} MiB",
                self.arg_limit() >> 20
            ),
            index,
        }
    }

    /// Appends the encoding of item `index`'s argument `arg` to `out` if `out` stays within
    /// `cap` bytes (`Ok(None)`); past that, measures it without building it (`Ok(Some(len))`,
    /// an argument to encode when sent, into the worker's inbox, with `out` left partly
    /// written). The task's `Codec` error if its `Serialize` fails or panics (it is the
    /// user's), or if it is over [`Shared::arg_limit`].
    fn encode_arg<A: Serialize>(
        &self,
        arg: &A,
        out: &mut Vec<u8>,
        cap: usize,
        index: u64,
    ) -> Result<Option<usize>, TaskError> {
        let unencodable = |why: String| TaskError::Codec {
            message: arcstr::format!("its argument could not be encoded: {why}"),
            index,
        };
        let failed = |e: postcard::Error| unencodable(crate::codec::ser_error(arg, &e));
        match crate::codec::guarded("Serialize", || wire::append_capped(arg, out, cap)) {
            Ok(Ok(())) => Ok(None),
            Ok(Err(postcard::Error::SerializeBufferFull)) => {
                let max = self.arg_limit();
                match crate::codec::guarded("Serialize", || wire::encoded_len_capped(arg, max)) {
                    Ok(Ok(len)) => Ok(Some(len)),
                    Ok(Err(postcard::Error::SerializeBufferFull)) => Err(self.too_big(index)),
                    Ok(Err(e)) => Err(failed(e)),
                    Err(why) => Err(unencodable(why)),
                }
            }
            Ok(Err(e)) => Err(failed(e)),
            Err(why) => Err(unencodable(why)),
        }
    }

    /// Encodes `items` into jobs and queues them (see [`Batch`]); returns the size of their
    /// encoded arguments.
    fn enqueue_items<A>(&self, to: Batch<'_>, items: Vec<A>) -> usize
    where
        A: Serialize + Send + 'static,
    {
        let Batch {
            entry,
            first_task,
            base,
            chunk,
            sink,
            context,
        } = to;
        let n = items.len();
        let check = entry ^ self.server.secret;
        // The items stay with the jobs until they are done, so that a job whose worker died
        // can be resumed by encoding its remaining arguments again.
        let items = Arc::new(Items {
            items: Mutex::new(items),
            base,
        });
        let reencode: Arc<dyn Reencode> = Arc::clone(&items) as Arc<dyn Reencode>;

        let mut frame = Vec::new();
        let mut job_start = 0usize;
        let mut in_job = 0usize;
        let total = std::cell::Cell::new(0usize);
        wire::begin_run(&mut frame);
        let flush = |frame: &mut Vec<u8>, start: usize, count: usize| {
            if count == 0 {
                return;
            }
            total.set(total.get() + frame.len());
            // The next frame will be about as long: allocate it once, not by doubling.
            let mut f = std::mem::replace(frame, Vec::with_capacity(frame.len()));
            let first = first_task + start as u64;
            wire::finish_run(&mut f, first, entry, check, count as u32);
            self.enqueue(Arc::new(JobData {
                first_task: first,
                first_index: base + start,
                count,
                entry,
                frame: f,
                sink: Arc::clone(sink),
                items: Some(Arc::clone(&reencode)),
                context: context.clone(),
                deferred: None,
            }));
            wire::begin_run(frame);
        };
        let mut one = Vec::new();
        let mut i = 0;
        while i < n {
            // Encode up to ENCODE_RUN items in one serializer call. If that fails or grows
            // the frame past its limit, encode them again one by one, which finds the item
            // at fault and gives it its own error. (The items' lock is held only while
            // encoding: `flush` may resume another job, which encodes from them too.)
            let end = n.min(i + ENCODE_RUN).min(i + chunk - in_job);
            let before = frame.len();
            let fast = {
                let items = lock(&items.items);
                let run = &items[i..end];
                // A `Serialize` that panics sends the run the slow way, which finds it.
                crate::codec::guarded("Serialize", || {
                    wire::append_capped(&wire::Concat(run), &mut frame, MAX_FRAME)
                })
                .is_ok_and(|r| r.is_ok())
            };
            if fast {
                in_job += end - i;
                i = end;
                if in_job == chunk || frame.len() >= JOB_BYTES {
                    flush(&mut frame, job_start, in_job);
                    job_start = i;
                    in_job = 0;
                }
                continue;
            }
            frame.truncate(before);
            for k in i..end {
                one.clear();
                let task = first_task + k as u64;
                let index = (base + k) as u64;
                let encoded = {
                    let items = lock(&items.items);
                    self.encode_arg(&items[k], &mut one, MAX_FRAME - wire::RUN_HEADER_LEN, index)
                };
                if let Ok(Some(len)) = encoded {
                    // Too large for a frame, within the pool's limit: a job of its own, its
                    // argument encoded when sent, into the worker's inbox.
                    flush(&mut frame, job_start, in_job);
                    total.set(total.get() + len);
                    let mut header = Vec::with_capacity(wire::RUN_HEADER_LEN);
                    wire::begin_run(&mut header);
                    wire::finish_run(&mut header, task, entry, check, 1);
                    self.enqueue(Arc::new(JobData {
                        first_task: task,
                        first_index: base + k,
                        count: 1,
                        entry,
                        frame: header,
                        sink: Arc::clone(sink),
                        items: Some(Arc::clone(&reencode)),
                        context: context.clone(),
                        deferred: Some(len),
                    }));
                    job_start = k + 1;
                    in_job = 0;
                    continue;
                }
                if let Err(err) = encoded {
                    // Send what came before, then record this item's error on its own.
                    flush(&mut frame, job_start, in_job);
                    self.config.stats.failed(&err);
                    sink.deliver(base + k, index, &mut std::iter::once(RawOutcome::Err(err)));
                    job_start = k + 1;
                    in_job = 0;
                    continue;
                }
                if in_job > 0 && frame.len() - 4 + one.len() > MAX_FRAME {
                    // It fits in a frame of its own, not after what is already here.
                    flush(&mut frame, job_start, in_job);
                    job_start = k;
                    in_job = 0;
                }
                frame.extend_from_slice(&one);
                in_job += 1;
                if in_job == chunk || frame.len() >= JOB_BYTES {
                    flush(&mut frame, job_start, in_job);
                    job_start = k + 1;
                    in_job = 0;
                }
            }
            i = end;
        }
        flush(&mut frame, job_start, in_job);
        total.get()
    }
}

/// The process-mode side of a [`crate::Stream`]: batches of items become jobs whose
/// outcomes arrive in a [`StreamSink`].
struct ProcessStream<'p, I, R> {
    shared: &'p Arc<Shared>,
    entry: u64,
    items: I,
    sink: Arc<StreamSink<R>>,
    context: Option<Arc<Context>>,
}

impl<A, R, I> crate::pool::stream::Batches<R> for ProcessStream<'_, I, R>
where
    A: Serialize + Send + 'static,
    R: DeserializeOwned + Send + 'static,
    I: Iterator<Item = A>,
{
    fn feed(&mut self, base: usize, max: usize, chunk: usize) -> (usize, usize) {
        let batch: Vec<A> = self.items.by_ref().take(max).collect();
        let n = batch.len();
        if n == 0 {
            return (0, 0);
        }
        self.shared.config.stats.submitted(n);
        let first_task = self.shared.next_task.fetch_add(n as u64, Ordering::Relaxed);
        let sink: Arc<dyn Sink> = Arc::clone(&self.sink) as Arc<dyn Sink>;
        let to = Batch {
            entry: self.entry,
            first_task,
            base,
            chunk,
            sink: &sink,
            context: self.context.clone(),
        };
        (n, self.shared.enqueue_items(to, batch))
    }

    fn next_run(&mut self, deadline: Option<Instant>) -> Next<R> {
        if let Some((run, bytes)) = self.sink.pop() {
            return Next::Run(run, bytes);
        }
        if deadline.is_some() {
            // A wait that may end at once: take in what finished workers have first.
            self.shared.poll();
        }
        let sink = &self.sink;
        let ready = |st: &State| {
            sink.ready.load(Ordering::Acquire) > 0
                || sink.cancelled.load(Ordering::Acquire)
                || st.machine.is_closed()
        };
        self.shared.wait_until_deadline(&ready, deadline);
        match self.sink.pop() {
            Some((run, bytes)) => Next::Run(run, bytes),
            None if deadline.is_some_and(|d| Instant::now() >= d)
                && !self.sink.cancelled.load(Ordering::Acquire) =>
            {
                Next::TimedOut
            }
            None => Next::Closed,
        }
    }

    fn stopper(&self) -> Box<dyn Fn() + Send + Sync> {
        // A canceller kept past the pool (in a Ctrl-C handler, say) must not keep it alive.
        let shared = Arc::downgrade(self.shared);
        let sink = Arc::clone(&self.sink);
        Box::new(move || {
            sink.cancelled.store(true, Ordering::Release);
            if let Some(shared) = shared.upgrade() {
                cancel_jobs(&shared, &sink, true);
            }
        })
    }

    fn default_window(&self, workers: usize) -> usize {
        crate::pool::stream::PROCESS_WINDOW_PER_WORKER * workers
    }
}

/// Cancels the stream's jobs that are queued (they fail `Cancelled`, into a sink nobody
/// reads), and with `kill`, kills the workers running the others (replaced as after a
/// crash; their tasks end `Cancelled` too). Then wakes whoever waits or drives.
fn cancel_jobs<R>(shared: &Shared, sink: &Arc<StreamSink<R>>, kill: bool) {
    let me = Arc::as_ptr(sink) as *const ();
    let is_mine = |job: &Job| Arc::as_ptr(&job.sink) as *const () == me;
    let mut st = shared.lock();
    let mut out = Vec::new();
    loop {
        match st.machine.cancel(is_mine, &mut out) {
            recovery::Cancel::Queued => {}
            recovery::Cancel::Running(slot) if kill => {
                if let Some(w) = st.workers[slot].as_ref() {
                    w.host.kill(Signal::SIGKILL);
                }
                shared.on_death(&mut st, slot, Death::Cancelled, &mut out);
            }
            recovery::Cancel::Running(_) | recovery::Cancel::Gone => break,
        }
    }
    shared.act(&mut st, &mut out);
    shared.notify(&mut st);
    drop(st);
    shared.doorbell.ring();
}

impl<I, R> Drop for ProcessStream<'_, I, R> {
    /// What is queued never runs; what runs finishes, into a sink nobody reads.
    fn drop(&mut self) {
        cancel_jobs(self.shared, &self.sink, false);
    }
}
