//! The result arena: a memfd shared by the parent and one worker, where the worker appends
//! an outcome record (see `wire.rs`) as each task of a job finishes.
//!
//! Why shared memory rather than the socket: records written before a crash survive it, so a
//! worker that dies in the middle of a job of many small tasks loses none of the results it
//! had already produced, and the parent knows exactly which task was running. It also keeps
//! per-task system calls off the hot path: a job of ten thousand tasks costs one frame each
//! way.
//!
//! Layout: a header page of 8-byte atomic words, then the records.
//!
//! | word | written by | meaning |
//! |---|---|---|
//! | STARTED | worker | tasks of the current job started so far |
//! | STARTED_AT | worker | CLOCK_MONOTONIC ns when the last one started (the timeout clock) |
//! | COMMITTED | worker | records complete so far |
//! | COMMITTED_LEN | worker | bytes of those records |
//! | LEN | worker | the arena's length after the worker grew it (the parent remaps when it changes) |
//! | REQ_SEQ, PARENT_CPU | parent | jobs sent so far, and the CPU the parent sent the last from |
//! | DONE_SEQ, WORKER_CPU | worker | the number of the last job done (stored after the job's last record is committed), and the worker's CPU |
//! | TIMED | parent | 1 if the pool has a task timeout: only then does the worker read the clock |
//! | LIMIT | parent | the longest the worker may grow the arena (the pool's `max_payload`, plus the header) |
//!
//! Ordering: the worker stores STARTED_AT before STARTED (release), and a record's bytes and
//! COMMITTED_LEN before COMMITTED (release); the parent loads STARTED and COMMITTED with
//! acquire. The parent resets the header before sending a job; it reads records only after
//! the worker reported the job done or died, so the byte ranges are never shared with a
//! writer.
//!
//! The header says *how many* tasks started and committed, never *where* the next argument
//! is: when a worker dies, the parent re-encodes the unfinished tasks' arguments from the
//! caller's items. (It once requeued from an offset the worker published, and a kill between
//! that store and STARTED's made the requeue skip an argument: every later task of the job
//! then returned its neighbour's result.)
//!
//! Nothing in the header is trusted: a task can scribble on it. The recovery machine
//! (`pool/process/recovery.rs`) clamps the counts to the job; the memfd is sealed against
//! shrinking, so the parent's reads never fault; and its size is capped by the parent's own
//! limit (a worker told a larger LIMIT, by a task that scribbled on it, grows the arena past
//! what the parent maps: its job fails, nothing else).
//!
//! Longer than 600 lines because its tests stay beside it: the arena is read by the parent
//! while a possibly hostile worker writes it, and its checks and their tests belong together.

use std::sync::atomic::Ordering;

use crate::sys::SharedMapping;
use crate::wire::{RECORD_HEADER, RecordTag, WriteError, record_header};

const STARTED: usize = 0;
const STARTED_AT: usize = 1;
const COMMITTED: usize = 3;
const COMMITTED_LEN: usize = 4;
const TIMED: usize = 5;
const LEN: usize = 6;
const REQ_SEQ: usize = 7;
const DONE_SEQ: usize = 8;
const PARENT_CPU: usize = 9;
const WORKER_CPU: usize = 10;
/// A remote worker's own arena only: the number of the job it began (the agent reads it
/// after the worker died, to tell the counts of that job from those of the one before).
const RUN_SEQ: usize = 11;
const LIMIT: usize = 12;

/// How long a side spins for the other's next move before it sleeps, when the two run on
/// different CPUs (where a sleeping side costs a cross-CPU wake-up, tens of µs on a VM). On
/// one CPU spinning cannot help (the other side needs this CPU to move), so nobody spins.
pub(crate) const SPIN: std::time::Duration = std::time::Duration::from_micros(30);

/// Bytes before the first record.
pub(crate) const DATA_START: usize = 4096;
/// Initial size of an arena (sparse: untouched pages cost nothing).
pub(crate) const INITIAL_LEN: usize = DATA_START + (1 << 20);
/// Largest arena of a remote worker (whose records also travel in one message), and of a
/// worker whose parent set no LIMIT: a job's results beyond it fail with a codec error.
pub(crate) const MAX_LEN: usize = 1 << 30;

/// The longest arena that holds a job's results of up to `max_payload` bytes.
pub(crate) fn max_len(max_payload: usize) -> usize {
    max_payload.saturating_add(BEYOND_PAYLOAD)
}

/// What an arena holds beyond a job's results: its header page, and room for the records'
/// own headers.
const BEYOND_PAYLOAD: usize = DATA_START + (64 << 10);

/// The header as the parent reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Progress {
    pub started: u64,
    pub started_at_ns: u64,
    pub committed: u64,
    pub committed_len: u64,
}

/// Reads the header.
pub(crate) fn progress(map: &SharedMapping) -> Progress {
    let started = map.word(STARTED).load(Ordering::Acquire);
    let committed = map.word(COMMITTED).load(Ordering::Acquire);
    Progress {
        started,
        started_at_ns: map.word(STARTED_AT).load(Ordering::Relaxed),
        committed,
        committed_len: map.word(COMMITTED_LEN).load(Ordering::Relaxed),
    }
}

/// When the parent takes the running task of a job to have started: from its own clock,
/// with the worker's STARTED_AT word only as a hint inside what the parent saw.
///
/// A task can write any number into its worker's header, and it once set STARTED_AT to
/// `u64::MAX` and outlived its timeout. So the parent believes only what it can check. A task
/// started no earlier than the job was sent and no earlier than the parent's previous look
/// at the header (had it started before, that look would have seen STARTED move: the worker
/// stores STARTED_AT before STARTED, with release), and no later than the look that first
/// saw it: the hint is clamped into that window. STARTED only counts up, to the job's task
/// count, as the parent sees it. And the whole job ends no later than `count` timeouts
/// after it was sent, whatever the header says.
///
/// So a task gets its timeout plus at most the time between two of the parent's looks, and
/// a job with one task (every job of a sandboxed pool, by default) at most its timeout and
/// the [`start_allowance`] from the moment it was sent. Pure: the driver and a remote agent feed it the header and the
/// time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StartClock {
    sent_ns: u64,
    count: u64,
    started: u64,
    started_ns: u64,
    looked_ns: u64,
}

impl StartClock {
    /// A job of `count` tasks, sent at `sent_ns`.
    pub(crate) fn new(sent_ns: u64, count: u64) -> StartClock {
        StartClock {
            sent_ns,
            count: count.max(1),
            started: 0,
            started_ns: sent_ns,
            looked_ns: sent_ns,
        }
    }

    /// Takes a look at the header at `now_ns`.
    pub(crate) fn look(&mut self, p: &Progress, now_ns: u64) {
        let now_ns = now_ns.max(self.looked_ns);
        let started = p.started.min(self.count);
        if started > self.started {
            self.started = started;
            self.started_ns = p.started_at_ns.clamp(self.looked_ns, now_ns);
        }
        self.looked_ns = now_ns;
    }

    /// When the running task started, as far as the parent can vouch.
    pub(crate) fn started_ns(&self) -> u64 {
        self.started_ns
    }

    /// When the running task's `limit` runs out: its own, or the job's.
    pub(crate) fn deadline_ns(&self, limit: std::time::Duration) -> u64 {
        let task = self.started_ns.saturating_add(nanos(limit));
        task.min(self.job_deadline_ns(limit))
    }

    /// When the whole job's time runs out: `count` timeouts after it was sent, plus
    /// [`start_allowance`] for the worker to read the job and decode its first argument (a
    /// task's timeout counts from its start, so without it an honest one-task job was killed
    /// short of its timeout by as long as its worker took to begin: 0.5 ms forked, 16 ms for a
    /// re-executed replacement). (For a worker whose header the parent cannot watch, a
    /// remote one, this is the parent's own bound.)
    pub(crate) fn job_deadline_ns(&self, limit: std::time::Duration) -> u64 {
        self.sent_ns
            .saturating_add(nanos(limit).saturating_mul(self.count))
            .saturating_add(nanos(start_allowance(limit)))
    }

    /// Starts the clock again for a new job seen at `now_ns` (an agent, which learns of a
    /// remote worker's jobs only from its header).
    #[cfg(feature = "remote")]
    pub(crate) fn restart(&mut self, now_ns: u64) {
        *self = StartClock::new(now_ns, u64::MAX);
    }
}

/// What a job gets beyond its tasks' timeouts for its worker to begin: a quarter of one
/// timeout, and at least 50 ms (a re-executed worker's start). What a task that stalls in its
/// argument's `Deserialize`, before it counts as started, gains at most.
pub(crate) fn start_allowance(limit: std::time::Duration) -> std::time::Duration {
    (limit / 4).max(std::time::Duration::from_millis(50))
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl StartClock {}

/// Clears the header for a new job (parent side, worker idle).
pub(crate) fn reset(map: &SharedMapping, timed: bool, max_len: usize) {
    map.word(TIMED).store(timed as u64, Ordering::Relaxed);
    map.word(LIMIT).store(max_len as u64, Ordering::Relaxed);
    for w in [STARTED, STARTED_AT, COMMITTED, COMMITTED_LEN] {
        map.word(w).store(0, Ordering::Relaxed);
    }
    map.word(COMMITTED).store(0, Ordering::Release);
}

/// Records that job number `seq` (counted by the parent, from 1) was written to the
/// worker's request pipe (parent side). The parent keeps its own count rather than trust the
/// word: a task may have scribbled on it.
pub(crate) fn sent(map: &SharedMapping, seq: u64) {
    map.word(PARENT_CPU)
        .store(crate::sys::current_cpu(), Ordering::Relaxed);
    map.word(REQ_SEQ).store(seq, Ordering::Release);
}

/// The number of the job the worker last reported done (parent side): the job sent as
/// number `seq` is done when this equals `seq`.
pub(crate) fn done_seq(map: &SharedMapping) -> u64 {
    map.word(DONE_SEQ).load(Ordering::Acquire)
}

/// True if the worker last ran on another CPU than `cpu`, the caller's (parent side).
pub(crate) fn worker_elsewhere(map: &SharedMapping, cpu: u64) -> bool {
    map.word(WORKER_CPU).load(Ordering::Relaxed) != cpu
}

/// A new arena: sealed so that it can grow but never shrink under the parent's mapping.
pub(crate) fn create() -> std::io::Result<SharedMapping> {
    SharedMapping::create("proctor-arena", INITIAL_LEN, crate::sys::Seals::GrowOnly)
}

/// Remaps the parent's view if the worker grew the arena (parent side).
pub(crate) fn refresh(map: &mut SharedMapping, max_len: usize) -> std::io::Result<()> {
    // The word says when the worker grew the arena; only then is the size asked of the
    // kernel (an fstat per job was a third of a round trip). A word scribbled larger than
    // the truth costs a look; the size itself comes from the kernel, capped.
    let len = map.word(LEN).load(Ordering::Acquire) as usize;
    if len > map.len() {
        map.refresh(max_len)
    } else {
        Ok(())
    }
}

/// The committed records (parent side). None if the header is inconsistent with the mapping.
pub(crate) fn records<'a>(map: &'a SharedMapping, p: &Progress) -> Option<&'a [u8]> {
    map.bytes(DATA_START, usize::try_from(p.committed_len).ok()?)
}

/// Copies a remote worker's report into its mirror arena (parent side, the thread that
/// reads the worker's connection): the records of its current job, its counts, and, when
/// the job is finished, its number. The driver then reads the mirror as it reads a local
/// worker's arena.
#[cfg(feature = "remote")]
pub(crate) fn mirror(
    map: &mut SharedMapping,
    started: u64,
    committed: u64,
    records: &[u8],
    done: Option<u64>,
) -> std::io::Result<()> {
    let end = DATA_START + records.len();
    if end > MAX_LEN {
        return Err(std::io::Error::other(
            "a remote worker's records exceed the result limit",
        ));
    }
    if end > map.len() {
        map.grow(end.next_power_of_two().min(MAX_LEN))?;
        map.word(LEN).store(map.len() as u64, Ordering::Release);
    }
    map.tail_mut(DATA_START)[..records.len()].copy_from_slice(records);
    map.word(COMMITTED_LEN)
        .store(records.len() as u64, Ordering::Relaxed);
    map.word(STARTED).store(started, Ordering::Release);
    map.word(COMMITTED).store(committed, Ordering::Release);
    if let Some(seq) = done {
        map.word(WORKER_CPU)
            .store(crate::sys::current_cpu(), Ordering::Relaxed);
        map.word(DONE_SEQ).store(seq, Ordering::Release);
    }
    Ok(())
}

/// A remote worker's arena as its agent reads it after the worker died: the job it began,
/// the last one it finished, and the counts.
#[cfg(feature = "remote")]
pub(crate) fn remote_view(map: &SharedMapping) -> (u64, u64, Progress) {
    let run = map.word(RUN_SEQ).load(Ordering::Acquire);
    let done = map.word(DONE_SEQ).load(Ordering::Acquire);
    (run, done, progress(map))
}

/// Marks an arena as timed (the agent's side: no parent resets a remote worker's header).
#[cfg(feature = "remote")]
pub(crate) fn set_timed(map: &SharedMapping, timed: bool) {
    map.word(TIMED).store(timed as u64, Ordering::Relaxed);
}

/// The most of each of a task's stdout and stderr kept with its outcome (the end of it).
pub(crate) const OUTPUT_TAIL: usize = 64 << 10;

/// The memfds a capturing worker's stdout and stderr write to: emptied as each task starts,
/// their ends copied into its outcome record as it finishes. The parent holds them too, to
/// read what a task that crashed had written.
#[derive(Debug)]
pub(crate) struct OutputFiles {
    out: std::fs::File,
    err: std::fs::File,
    /// The encoded output of the task that just finished, written before its record.
    prefix: Vec<u8>,
}

impl OutputFiles {
    pub(crate) fn new(out: std::fs::File, err: std::fs::File) -> OutputFiles {
        OutputFiles {
            out,
            err,
            prefix: Vec::new(),
        }
    }

    /// Empties both files, and puts their write offsets back at the start.
    fn reset(&mut self) {
        use std::io::Seek;
        for f in [&mut self.out, &mut self.err] {
            let _ = f.set_len(0);
            let _ = f.seek(std::io::SeekFrom::Start(0));
        }
    }

    /// Encodes what the task wrote (the last [`OUTPUT_TAIL`] bytes of each) into `prefix`.
    fn take(&mut self) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        self.prefix.clear();
        for f in [&self.out, &self.err] {
            let tail = read_tail(f);
            self.prefix
                .extend_from_slice(&(tail.len() as u32).to_le_bytes());
            self.prefix.extend_from_slice(&tail);
        }
    }
}

/// The last [`OUTPUT_TAIL`] bytes of a capture file (either side).
pub(crate) fn read_tail(f: &std::fs::File) -> Vec<u8> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::FileExt;
    let len = crate::sys::file_len(f.as_fd()).map_or(0, |n| n as u64);
    let start = len.saturating_sub(OUTPUT_TAIL as u64);
    let mut tail = vec![0u8; (len - start) as usize];
    let n = f.read_at(&mut tail, start).unwrap_or(0);
    tail.truncate(n);
    tail
}

/// The worker's side of its arena.
#[derive(Debug)]
pub(crate) struct WorkerArena {
    map: SharedMapping,
    committed: u64,
    len: usize,
    started: u64,
    timed: bool,
    /// The longest this arena may grow (the parent's LIMIT).
    max_len: usize,
    capture: Option<OutputFiles>,
}

impl WorkerArena {
    pub(crate) fn new(map: SharedMapping, capture: Option<OutputFiles>) -> WorkerArena {
        WorkerArena {
            map,
            committed: 0,
            len: 0,
            started: 0,
            timed: false,
            max_len: MAX_LEN,
            capture,
        }
    }

    /// Job number `seq` (the frames this worker read) is finished, every record committed:
    /// tell a spinning parent. A store, not an increment, so whatever a task scribbled on the
    /// word is overwritten with the truth.
    pub(crate) fn done(&mut self, seq: u64) {
        self.map.word(DONE_SEQ).store(seq, Ordering::Release);
    }

    /// Spins up to [`SPIN`] for the parent's next job when the parent runs on another CPU;
    /// true if one was sent (it is then in the pipe, and reading it will not sleep).
    pub(crate) fn await_job(&mut self, jobs_seen: u64) -> bool {
        let cpu = crate::sys::current_cpu();
        self.map.word(WORKER_CPU).store(cpu, Ordering::Relaxed);
        if self.map.word(PARENT_CPU).load(Ordering::Relaxed) == cpu {
            return false;
        }
        let start = std::time::Instant::now();
        while start.elapsed() < SPIN {
            for _ in 0..64 {
                if self.map.word(REQ_SEQ).load(Ordering::Acquire) != jobs_seen {
                    return true;
                }
                std::hint::spin_loop();
            }
        }
        false
    }

    /// A new job begins (the parent already reset the header).
    pub(crate) fn start_job(&mut self) {
        self.timed = self.map.word(TIMED).load(Ordering::Relaxed) != 0;
        self.max_len = match self.map.word(LIMIT).load(Ordering::Relaxed) {
            0 => MAX_LEN,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        self.committed = 0;
        self.len = 0;
        self.started = 0;
    }

    /// A remote worker begins job `seq`: it clears its own header (no parent shares it), then
    /// says which job the counts now belong to.
    pub(crate) fn start_remote_job(&mut self, seq: u64) {
        self.start_job();
        for w in [STARTED, COMMITTED, COMMITTED_LEN] {
            self.map.word(w).store(0, Ordering::Relaxed);
        }
        self.map.word(RUN_SEQ).store(seq, Ordering::Release);
    }

    /// The current job's counts and committed records (a remote worker sends them).
    pub(crate) fn committed(&self) -> (u64, u64, &[u8]) {
        let records = self.map.bytes(DATA_START, self.len).unwrap_or(&[]);
        (self.started, self.committed, records)
    }

    /// True if a task started and has no record yet.
    pub(crate) fn is_running(&self) -> bool {
        self.started > self.committed
    }

    /// A task starts.
    #[inline]
    pub(crate) fn begin(&mut self) {
        if let Some(c) = self.capture.as_mut() {
            c.reset();
        }
        self.started += 1;
        if self.timed {
            let now = crate::sys::monotonic_ns();
            self.map.word(STARTED_AT).store(now, Ordering::Relaxed);
        }
        self.map
            .word(STARTED)
            .store(self.started, Ordering::Release);
    }

    /// Appends a record whose payload `encode` writes into the slice it is given, returning
    /// the payload length; the arena grows while it reports [`WriteError::Full`]: the first
    /// time to what `measure` says the payload needs (a large result grows it once, and is
    /// encoded twice at most), then by doubling.
    #[inline]
    pub(crate) fn commit_with(
        &mut self,
        tag: RecordTag,
        mut encode: impl FnMut(&mut [u8]) -> Result<usize, WriteError>,
        measure: impl FnOnce() -> Option<usize>,
    ) -> Result<(), String> {
        // The common case, kept small enough to inline into the worker's task loop (a map
        // of a million small results spends a fifth of its time here): no captured output,
        // and room for the record.
        if self.capture.is_none() {
            let at = DATA_START + self.len;
            let tail = self.map.tail_mut(at);
            if tail.len() > RECORD_HEADER {
                if let Ok(n) = encode(&mut tail[RECORD_HEADER..]) {
                    if u32::try_from(n).is_ok() {
                        record_header(tail, tag, false, n);
                        self.committed_record(n);
                        return Ok(());
                    }
                }
            }
        }
        self.commit_slow(tag, encode, measure)
    }

    /// Publishes a record of `n` payload bytes just written.
    #[inline]
    fn committed_record(&mut self, n: usize) {
        self.len += RECORD_HEADER + n;
        self.committed += 1;
        self.map
            .word(COMMITTED_LEN)
            .store(self.len as u64, Ordering::Relaxed);
        self.map
            .word(COMMITTED)
            .store(self.committed, Ordering::Release);
    }

    /// [`WorkerArena::commit_with`] with captured output, growth, or an error (the first
    /// try is made again: a `Serialize` fails or fills the buffer the same way twice).
    #[inline(never)]
    fn commit_slow(
        &mut self,
        tag: RecordTag,
        mut encode: impl FnMut(&mut [u8]) -> Result<usize, WriteError>,
        measure: impl FnOnce() -> Option<usize>,
    ) -> Result<(), String> {
        let mut measure = Some(measure);
        // With capture, the task's output goes first in the payload, and the tag says so.
        let captured = self.capture.is_some();
        let prefix: &[u8] = match self.capture.as_mut() {
            Some(c) => {
                c.take();
                &c.prefix
            }
            None => &[],
        };
        loop {
            let at = DATA_START + self.len;
            let tail = self.map.tail_mut(at);
            if tail.len() > RECORD_HEADER + prefix.len() {
                let mut body = &mut tail[RECORD_HEADER..];
                if captured {
                    // (Only then: a copy of nothing is still a `memcpy` call per task.)
                    body[..prefix.len()].copy_from_slice(prefix);
                    body = &mut body[prefix.len()..];
                }
                let written = match encode(body) {
                    Ok(n) => Some(prefix.len() + n),
                    Err(WriteError::Full) => None,
                    Err(WriteError::Failed(why)) => {
                        let why = why.to_string();
                        return Err(format!("its result could not be encoded: {why}"));
                    }
                };
                if let Some(n) = written {
                    if u32::try_from(n).is_err() {
                        // A record's length field is 32 bits.
                        return Err(format!(
                            "its result of {n} bytes exceeds the 4 GiB a single result may have"
                        ));
                    }
                    record_header(tail, tag, captured, n);
                    self.committed_record(n);
                    return Ok(());
                }
            }
            let payload = measure.take().and_then(|m| m()).unwrap_or(0);
            let need = (at + RECORD_HEADER + prefix.len()).saturating_add(payload);
            grow_to(&mut self.map, self.max_len, need)?;
            if payload >= crate::wire::LARGE {
                // A large result: its pages allocated in one call, not a fault each.
                self.map.populate(at, need - at, true);
            }
        }
    }

    /// Appends a record whose payload is `bytes`.
    pub(crate) fn commit_bytes(&mut self, tag: RecordTag, bytes: &[u8]) {
        let r = self.commit_with(
            tag,
            |buf| {
                let dst = buf.get_mut(..bytes.len()).ok_or(WriteError::Full)?;
                dst.copy_from_slice(bytes);
                Ok(bytes.len())
            },
            || Some(bytes.len()),
        );
        if r.is_err() {
            // Even a short error record does not fit: the arena is at its limit. Commit an
            // empty codec record, which always fits after growth failed only for big payloads.
            let _ = self.commit_with(RecordTag::Codec, |_| Ok(0), || Some(0));
        }
    }
}

/// Grows the arena `map` to hold at least `need` bytes: to twice its length (a job of many
/// records grows it a few times), or to `need` rounded up to a page if that is more (a large
/// result grows it once), never past `max_len`, the parent's limit.
fn grow_to(map: &mut SharedMapping, max_len: usize, need: usize) -> Result<(), String> {
    let need = need.max(map.len() + 1);
    if need > max_len {
        return Err(format!(
            "the job's results exceed the pool's max_payload of {} MiB",
            max_len.saturating_sub(BEYOND_PAYLOAD) >> 20
        ));
    }
    let want = (map.len() * 2)
        .max(INITIAL_LEN)
        .max(need.next_multiple_of(4096))
        .min(max_len);
    map.grow(want)
        .map_err(|e| format!("could not grow the result arena: {e}"))?;
    map.word(LEN).store(map.len() as u64, Ordering::Release);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn header(started: u64, started_at_ns: u64) -> Progress {
        Progress {
            started,
            started_at_ns,
            committed: 0,
            committed_len: 0,
        }
    }

    #[test]
    fn an_honest_start_is_believed() {
        let limit = Duration::from_millis(100);
        let mut c = StartClock::new(1_000 * MS, 3);
        c.look(&header(1, 1_001 * MS), 1_002 * MS);
        assert_eq!(c.deadline_ns(limit), 1_101 * MS);
        c.look(&header(2, 1_050 * MS), 1_060 * MS);
        assert_eq!(c.started_ns(), 1_050 * MS);
        assert_eq!(c.deadline_ns(limit), 1_150 * MS);
    }

    #[test]
    fn a_start_in_the_future_or_the_past_is_clamped_to_what_the_parent_saw() {
        let limit = Duration::from_millis(500);
        // The attack of the review: STARTED_AT set to u64::MAX.
        let mut c = StartClock::new(1_000 * MS, 1);
        c.look(&header(1, u64::MAX), 1_010 * MS);
        assert_eq!(
            c.deadline_ns(limit),
            1_510 * MS,
            "one task: its timeout from the look that saw it start"
        );
        // One that stalls before it counts as started (in its argument's `Deserialize`): its
        // timeout and the allowance from the send.
        let mut c = StartClock::new(1_000 * MS, 1);
        c.look(&header(1, u64::MAX), 1_400 * MS);
        assert_eq!(c.deadline_ns(limit), 1_625 * MS);
        // A start before the previous look is not believed either.
        let mut c = StartClock::new(1_000 * MS, 4);
        c.look(&header(1, 1_001 * MS), 1_002 * MS);
        c.look(&header(1, 0), 1_200 * MS);
        c.look(&header(2, 0), 1_300 * MS);
        assert_eq!(c.started_ns(), 1_200 * MS);
    }

    #[test]
    fn counts_that_go_back_or_past_the_job_buy_no_time() {
        let limit = Duration::from_millis(100);
        let mut c = StartClock::new(0, 2);
        c.look(&header(2, 50 * MS), 60 * MS);
        // Back to 1, then "2" again, with fresh start times: not a new task.
        c.look(&header(1, 150 * MS), 160 * MS);
        c.look(&header(2, 170 * MS), 180 * MS);
        assert_eq!(c.started_ns(), 50 * MS);
        // Past the job's count: clamped to it.
        c.look(&header(u64::MAX, 190 * MS), 190 * MS);
        assert_eq!(c.started_ns(), 50 * MS);
        assert_eq!(c.deadline_ns(limit), 150 * MS);
    }

    /// Whatever the header says at each look, a task's deadline is never later than its job's
    /// `count` timeouts and the start allowance after the send, nor later than the look that
    /// first saw it start plus one timeout.
    #[test]
    fn no_header_buys_more_than_the_bounds() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let limit = Duration::from_millis(10);
        for _ in 0..2_000 {
            let count = 1 + next() % 5;
            let sent = next() % (1 << 40);
            let mut c = StartClock::new(sent, count);
            let mut now = sent;
            let mut seen_max = 0;
            let mut first_seen = sent;
            for _ in 0..20 {
                now += next() % (30 * MS);
                let p = header(next() % (count + 3), next());
                c.look(&p, now);
                if p.started.min(count) > seen_max {
                    seen_max = p.started.min(count);
                    first_seen = now;
                }
                let d = c.deadline_ns(limit);
                // (The allowance of a 10 ms timeout: 50 ms.)
                assert!(d <= sent + count * 10 * MS + 50 * MS);
                assert!(d <= first_seen + 10 * MS);
            }
        }
    }
}
