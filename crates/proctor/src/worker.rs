//! The worker process: its main loop and the entry points that run tasks.
//!
//! A worker is forked from the fork server (see `server.rs`), so it is a copy of the program
//! as it was when [`crate::init`] ran: the same code at the same addresses. A job names the
//! function to run by the address of a monomorphized entry point (`entry::<A, R, F>`); the
//! worker calls it with the job's serialized arguments. The task function itself is a
//! zero-sized type (a fn item or a non-capturing closure), so the entry point can make one
//! out of nothing.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::AtomicBool;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::arena::{OutputFiles, WorkerArena};
use crate::exit::ExitCode;
use crate::state::{ContextFn, InitFn};
use crate::sys::SharedMapping;
use crate::wire::{self, Frame, RecordTag};

/// A monomorphized entry point: runs `count` tasks whose arguments are in `args`.
pub(crate) type EntryFn = fn(args: &[u8], count: u32, arena: &mut WorkerArena);

/// The entry point for tasks of type `F: Fn(A) -> R`.
pub(crate) fn entry<A, R, F>(args: &[u8], count: u32, arena: &mut WorkerArena)
where
    F: Fn(A) -> R + Copy + 'static,
    A: DeserializeOwned,
    R: Serialize,
{
    let f: F = crate::state::conjure::<F>();
    let mut rest = args;
    let mut left = count;
    // A `Deserialize` or `Serialize` that panics is the task's codec error, and the worker
    // lives on. One `catch_unwind` covers the whole loop (one per decode kept the decoder
    // from being inlined: a fifth of a worker's time in a map of small items); after a panic
    // the arena's counts say where it struck, and `dropping` whether it struck while a
    // committed result was dropped: no task's failure then (not that task's, whose outcome
    // is committed, nor the next one's, whose argument is not yet decoded).
    let mut dropping = false;
    loop {
        let run = catch_unwind(AssertUnwindSafe(|| {
            while left > 0 {
                let a = match postcard::take_from_bytes::<A>(rest) {
                    Ok((a, tail)) => {
                        rest = tail;
                        a
                    }
                    Err(e) => {
                        arena.begin();
                        undecodable(arena, &crate::codec::de_error::<A>(rest, &e));
                        return false;
                    }
                };
                left -= 1;
                arena.begin();
                match catch_unwind(AssertUnwindSafe(|| f(a))) {
                    Ok(r) => {
                        commit_result(arena, &r);
                        dropping = true;
                        drop(r);
                        dropping = false;
                    }
                    Err(payload) => commit_panic(arena, payload.as_ref()),
                }
            }
            false
        }));
        let payload = match run {
            Ok(_) => return,
            Err(payload) => payload,
        };
        let (message, _) = crate::panic::details(payload.as_ref());
        if std::mem::take(&mut dropping) {
            // A committed result's `Drop` panicked: the job goes on.
            continue;
        }
        if arena.is_running() {
            // The result's `Serialize` panicked: that task fails, the job goes on.
            let msg = format!("its result could not be encoded: Serialize panicked: {message}");
            arena.commit_bytes(RecordTag::Codec, &encode_str(&msg));
        } else {
            // The argument's `Deserialize` panicked.
            arena.begin();
            undecodable(arena, &format!("Deserialize panicked: {message}"));
            return;
        }
    }
}

/// Commits task's result `r`, or the codec error of a result that does not encode.
#[inline]
fn commit_result<R: Serialize>(arena: &mut WorkerArena, r: &R) {
    let mut failed = None;
    let res = arena.commit_with(
        RecordTag::Ok,
        |buf| {
            wire::write_into(r, buf).inspect_err(|e| {
                if let wire::WriteError::Failed(e) = e {
                    failed = Some(e.clone());
                }
            })
        },
        || wire::encoded_len_capped(r, usize::MAX).ok(),
    );
    if let Err(e) = res {
        let why = match failed {
            // In the user's own words, where their `Serialize` gave some.
            Some(e) => format!(
                "its result could not be encoded: {}",
                crate::codec::ser_error(r, &e)
            ),
            None => e,
        };
        arena.commit_bytes(RecordTag::Codec, &encode_str(&why));
    }
}

/// Commits the outcome of a task that panicked: `Panicked`, or `Codec` where the panic says
/// the task's input could not be decoded (a `map_with` context, see [`crate::codec::Undecodable`]).
#[cold]
fn commit_panic(arena: &mut WorkerArena, payload: &(dyn std::any::Any + Send)) {
    if let Some(crate::codec::Undecodable(why)) = payload.downcast_ref() {
        arena.commit_bytes(RecordTag::Codec, &encode_str(why));
        return;
    }
    let (message, location) = crate::panic::details(payload);
    let bytes = postcard::to_allocvec(&(message, location)).unwrap_or_default();
    arena.commit_bytes(RecordTag::Panicked, &bytes);
}

/// Commits the codec error of a task whose argument did not decode. Past it the next
/// arguments cannot be located, so the job ends there; the parent sends the rest again,
/// encoded afresh.
#[cold]
fn undecodable(arena: &mut WorkerArena, why: &str) {
    let msg = format!("its argument could not be decoded: {why}");
    arena.commit_bytes(RecordTag::Codec, &encode_str(&msg));
}

fn encode_str(s: &str) -> Vec<u8> {
    postcard::to_allocvec(s).unwrap_or_default()
}

/// Reads frames from a stream, reusing one buffer.
#[derive(Debug, Default)]
pub(crate) struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    /// The next frame, reading as needed. EOF before a whole frame is `UnexpectedEof`;
    /// an invalid frame is `InvalidData`.
    pub(crate) fn next(&mut self, r: &mut impl Read) -> std::io::Result<Frame<'_>> {
        loop {
            if let Some(n) = self.complete()? {
                let s = self.start;
                self.start += n;
                let (frame, _) = wire::decode(&self.buf[s..s + n])
                    .ok()
                    .flatten()
                    .expect("a frame that decoded once decodes again");
                return Ok(frame);
            }
            self.fill(r)?;
        }
    }

    /// The size of a complete frame at the front of the buffer, if there is one.
    pub(crate) fn complete(&self) -> std::io::Result<Option<usize>> {
        match wire::decode(&self.buf[self.start..self.end]) {
            Ok(Some((_, n))) => Ok(Some(n)),
            Ok(None) => Ok(None),
            Err(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
    }

    /// Reads once more from `r` (one `read` call).
    pub(crate) fn fill(&mut self, r: &mut impl Read) -> std::io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let want = match self.buf.get(..4) {
            Some(p) if self.end >= 4 => {
                4 + u32::from_le_bytes(p.try_into().expect("4 bytes")) as usize
            }
            _ => 4,
        }
        .min(wire::MAX_FRAME + 4)
        .max(self.end + 4096)
        .max(64 << 10);
        if self.buf.len() - self.end < 4096 || self.buf.len() < 64 << 10 {
            // A remote worker's frames come from the network: the buffer grows with what
            // arrives (it at most doubles when full), never at once to the length a frame
            // claims.
            let grown = (self.buf.len() * 2).max(64 << 10);
            self.buf.resize(want.min(grown).max(self.buf.len()), 0);
        }
        let n = r.read(&mut self.buf[self.end..])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }
}

/// The function at address `entry`, which the frame's `check` vouches for.
fn vouched<T: Copy>(entry: u64, check: u64, secret: u64) -> std::io::Result<T> {
    const { assert!(std::mem::size_of::<T>() == std::mem::size_of::<usize>()) };
    if entry ^ secret != check || entry == 0 {
        return Err(std::io::Error::other(
            "job frame names no valid entry point",
        ));
    }
    let entry = crate::image::relocate(entry);
    // SAFETY: `T` is one of the pool's fn-pointer types (`EntryFn`, `InitFn`, `ContextFn`),
    // the size of an address (asserted above), and `entry` is the address of a function of
    // that type taken in the parent for a frame of this kind, vouched for by `check` (only
    // the parent and its fork server know `secret`). The worker is a fork of the parent's
    // image, so the same address holds the same function; or it re-executed the same build
    // (its identity was checked at start), whose code lies one fixed offset away, which
    // `relocate` added.
    Ok(unsafe { std::mem::transmute_copy::<usize, T>(&(entry as usize)) })
}

/// A worker whose tasks' output is captured: fd 1 and 2 write to `out` and `err` (memfds
/// the parent reads too), and the pool's own messages go to `diag`, the stderr pipe.
#[derive(Debug)]
pub(crate) struct Capture {
    pub(crate) diag: OwnedFd,
    pub(crate) out: OwnedFd,
    pub(crate) err: OwnedFd,
}

/// The line a worker writes to its stderr pipe when it reaches its first job (see
/// `handle.rs`, which takes it out of what it forwards and quotes).
pub(crate) const READY_LINE: &[u8] = b"\x01proctor worker ready\x01\n";

/// Says the worker is ready, in one write (atomic on a pipe).
fn ready(to: &mut Option<File>) {
    let _ = match to {
        Some(pipe) => pipe.write_all(READY_LINE),
        None => std::io::stderr().write_all(READY_LINE),
    };
}

/// Writes one of the pool's own messages where the parent reads them: the stderr pipe.
fn diag(to: &mut Option<File>, message: std::fmt::Arguments<'_>) {
    let _ = match to {
        Some(pipe) => writeln!(pipe, "{message}"),
        None => writeln!(std::io::stderr(), "{message}"),
    };
}

/// Where a worker's jobs come from: its request pipe, or (a remote worker) its connection
/// to the pool, which carries its results back too.
#[derive(Debug)]
pub(crate) enum Requests {
    Pipe(OwnedFd),
    // Only the remote agent makes one; without the `remote` feature its arms stay unreached.
    #[cfg_attr(not(feature = "remote"), allow(dead_code))]
    Remote(Box<dyn Uplink>),
}

/// A remote worker's connection to the pool as the worker loop uses it: job frames come in,
/// and each finished job's records go out. The remote agent implements it over its
/// connection, so the worker imports nothing of `remote`.
pub(crate) trait Uplink: Read + Send + std::fmt::Debug {
    /// Sends job `seq`'s results: the arena's `started` and `committed` marks and the
    /// records committed since the last job.
    fn send_done(
        &mut self,
        seq: u64,
        started: u64,
        committed: u64,
        records: &[u8],
    ) -> std::io::Result<()>;
}

/// What a worker process is started with, wherever it was started (forked by the fork
/// server, re-executed, or under a remote agent): its ends of what it shares with the pool.
#[derive(Debug)]
pub(crate) struct WorkerEnds {
    /// Where its jobs come from.
    pub(crate) requests: Requests,
    /// The pool's doorbell, rung when a job is done.
    pub(crate) doorbell: OwnedFd,
    /// Its result arena (a memfd).
    pub(crate) arena: OwnedFd,
    /// Its inbox for large arguments (a memfd).
    pub(crate) inbox: OwnedFd,
    /// With `capture_output`: where its tasks' stdout and stderr go.
    pub(crate) capture: Option<Capture>,
    /// What vouches for the entry points its frames name.
    pub(crate) secret: u64,
}

/// True in a worker process: there `init` does nothing and process pools cannot be built
/// (the worker is a fork of the fork server, whose cell in `server` was still being
/// initialised when it was forked, so touching the cell would wait for ever).
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// True in a worker process (see [`IN_WORKER`]).
pub(crate) fn in_worker() -> bool {
    IN_WORKER.load(std::sync::atomic::Ordering::Relaxed)
}

/// The worker's main loop: run jobs until the parent closes the request stream, then leave.
pub(crate) fn worker_main(ends: WorkerEnds) -> ! {
    let WorkerEnds {
        requests,
        doorbell,
        arena,
        inbox,
        capture,
        secret,
    } = ends;
    IN_WORKER.store(true, std::sync::atomic::Ordering::Relaxed);
    crate::panic::install_hook();
    // Panics become typed errors in the parent; printing them here too would be noise.
    crate::panic::set_quiet(true);
    let (mut pipe, tails) = match capture {
        Some(c) => {
            crate::sandbox::set_diag_fd(std::os::fd::AsRawFd::as_raw_fd(&c.diag));
            let redirected =
                nix::unistd::dup2_stdout(&c.out).and_then(|()| nix::unistd::dup2_stderr(&c.err));
            let mut pipe = Some(File::from(c.diag));
            if let Err(e) = redirected {
                diag(
                    &mut pipe,
                    format_args!("proctor worker: cannot capture output: {e}"),
                );
                ExitCode::WorkerFailed.leave()
            }
            (
                pipe,
                Some(OutputFiles::new(File::from(c.out), File::from(c.err))),
            )
        }
        None => (None, None),
    };
    let code = match run_jobs(requests, doorbell, arena, inbox, tails, &mut pipe, secret) {
        Ok(()) => ExitCode::Clean,
        Err(e) => {
            diag(&mut pipe, format_args!("proctor worker: {e}"));
            ExitCode::WorkerFailed
        }
    };
    let _ = std::io::stdout().flush();
    // (Not `exit`: atexit handlers the parent registered before the fork must not run twice.)
    code.leave()
}

/// Runs jobs until the request stream ends. A remote worker sends each finished job's
/// records back on its connection too, since the pool cannot map this worker's arena (the
/// agent, its parent here, reads the arena if the worker dies).
fn run_jobs(
    requests: Requests,
    doorbell: OwnedFd,
    arena: OwnedFd,
    inbox: OwnedFd,
    capture: Option<OutputFiles>,
    pipe: &mut Option<File>,
    secret: u64,
) -> std::io::Result<()> {
    let (mut local, mut remote) = match requests {
        Requests::Pipe(fd) => (Some(File::from(fd)), None),
        Requests::Remote(conn) => (None, Some(conn)),
    };
    use std::os::fd::AsRawFd;
    crate::sandbox::set_shared_fds([doorbell.as_raw_fd(), arena.as_raw_fd(), inbox.as_raw_fd()]);
    let doorbell = crate::doorbell::Doorbell::from_fd(doorbell)?;
    let mut arena = WorkerArena::new(SharedMapping::from_fd(arena)?, capture);
    let mut inbox = SharedMapping::from_fd(inbox)?;
    let mut reader = FrameReader::default();
    let mut jobs_seen = 0u64;
    loop {
        if remote.is_none() && reader.complete()?.is_none() {
            // Between jobs: when the parent runs on another CPU, watch for the next job a
            // moment before sleeping in read (a sleeping worker costs a cross-CPU wake-up).
            arena.await_job(jobs_seen);
        }
        let next = match (local.as_mut(), remote.as_mut()) {
            (Some(pipe), _) => reader.next(pipe),
            (None, Some(conn)) => reader.next(conn),
            (None, None) => unreachable!("a worker has a pipe or a connection"),
        };
        let frame = match next {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        };
        let (entry, check, count, args) = match frame {
            Frame::Run {
                entry,
                check,
                count,
                args,
                ..
            } => (entry, check, count, args),
            Frame::RunShared {
                entry,
                check,
                count,
                args_len,
                ..
            } => {
                let len = usize::try_from(args_len).unwrap_or(usize::MAX);
                if len > inbox.len() {
                    // The parent grew the inbox for this job.
                    // (The parent is trusted with this worker's address space.)
                    inbox.refresh(usize::MAX)?;
                }
                if len >= wire::LARGE {
                    // A large argument: its pages mapped in one call, not a fault each.
                    inbox.populate(0, len, false);
                }
                let args = inbox
                    .bytes(0, len)
                    .ok_or_else(|| std::io::Error::other("a job's arguments run past the inbox"))?;
                (entry, check, count, args)
            }
            Frame::Init { entry, check } => {
                let init: InitFn = vouched(entry, check, secret)?;
                crate::sandbox::initializer_ran();
                if let Err(why) = init() {
                    // The parent reads this line from the worker's stderr and the exit code
                    // as "the initializer failed": a clear error, not a respawn loop.
                    diag(
                        pipe,
                        format_args!("proctor: the worker initializer panicked: {why}"),
                    );
                    let _ = std::io::stdout().flush();
                    ExitCode::InitFailed.leave()
                }
                continue;
            }
            Frame::Context {
                entry,
                check,
                bytes,
            } => {
                let keep: ContextFn = vouched(entry, check, secret)?;
                keep(bytes);
                continue;
            }
        };
        jobs_seen += 1;
        if jobs_seen == 1 {
            // Past its initializer and sandbox, before any of its first job's own code (the
            // argument's `Deserialize`) runs: the parent reads this as the worker's word that
            // it became ready, which no task can take back.
            ready(pipe);
        }
        let f: EntryFn = vouched(entry, check, secret)?;
        if remote.is_some() {
            arena.start_remote_job(jobs_seen);
        } else {
            arena.start_job();
        }
        f(args, count, &mut arena);
        // What the tasks printed leaves before the job is reported done (and so before the
        // worker can be recycled or killed): a flush with nothing buffered costs no system
        // call.
        let _ = std::io::stdout().flush();
        // The results are committed: publish the job as done, then ring the driver.
        arena.done(jobs_seen);
        doorbell.ring();
        if let Some(conn) = remote.as_mut() {
            let (started, committed, records) = arena.committed();
            conn.send_done(jobs_seen, started, committed, records)?;
        }
    }
}
