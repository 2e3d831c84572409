//! One worker process as the parent holds it: where it lives ([`Host`]: its pid and request
//! pipe, or its agent and connection), its stderr pipe, its arena, and what it wrote to
//! stderr.
//!
//! Output is never lost: whatever a worker writes to stderr is read from its pipe on every
//! tick of the pool and when its job ends, and after the worker is gone its pipe is kept
//! ([`Retired`]) and read until end of file, so the last lines before a crash, a recycle or
//! the pool's drop reach the terminal too.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arcstr::ArcStr;
use nix::fcntl::{FcntlArg, OFlag, fcntl};

use super::host::Host;
use crate::arena;
use crate::server::ForkServer;
use crate::sys::{Seals, SharedMapping};
use crate::wire;

/// Bytes of a worker's stderr kept for a crash report's last words.
const TAIL: usize = 16 << 10;

/// How long a retired worker's stderr pipe is read for end of file before it is dropped
/// (a grandchild that left the worker's process group may hold it open for ever).
const RETIRE_WAIT: Duration = Duration::from_secs(2);

/// What happened when a pipe was read.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Drained {
    /// Nothing more to read for now.
    Open,
    /// Every writer is gone.
    Eof,
}

/// Copies a worker's stderr to ours a line at a time, so that lines from different workers
/// never interleave mid-line on the terminal, and at most `limit` lines of each job.
struct Forward {
    /// Lines of a job forwarded at most (`usize::MAX`: all).
    limit: usize,
    /// Lines the current job may still forward.
    left: usize,
    /// The worker's id, for the log line that says a job's lines were held back.
    worker: u32,
    /// A sandboxed worker's id: each of its lines is forwarded marked as the worker's, and
    /// stripped of control characters (escape sequences, carriage returns, bells), so that
    /// hostile output can neither pass for the parent's own nor drive the terminal.
    marked: Option<u32>,
    /// The start of a line whose end has not arrived yet.
    partial: Vec<u8>,
}

impl Forward {
    /// The longest partial line held back before it is written anyway.
    const MAX_PARTIAL: usize = 64 << 10;

    fn new(limit: usize, worker: u32) -> Forward {
        Forward {
            limit,
            left: limit,
            worker,
            marked: None,
            partial: Vec::new(),
        }
    }

    /// A new job starts: `limit` more lines may pass.
    fn restart(&mut self) {
        self.left = self.limit;
    }

    fn take(&mut self, bytes: &[u8]) {
        if self.left == 0 {
            return;
        }
        let mut bytes = bytes;
        let mut capped = false;
        if self.limit != usize::MAX {
            // The worker's word that it is ready is no line of the job's (it is not forwarded).
            let ready = usize::from(find(bytes, crate::worker::READY_LINE).is_some());
            // Up to the end of the last line this job may still forward.
            match bytes
                .iter()
                .enumerate()
                .filter(|&(_, &b)| b == b'\n')
                .map(|(i, _)| i)
                .nth(self.left - 1 + ready)
            {
                Some(end) => {
                    bytes = &bytes[..=end];
                    self.left = 0;
                    capped = true;
                }
                None => {
                    let lines = bytes.iter().filter(|&&b| b == b'\n').count();
                    self.left -= lines - ready;
                }
            }
        }
        self.forward(bytes);
        if capped {
            log::info!(
                "worker {}: the rest of its job's stderr is held back after {} lines (a crash \
                 still quotes its last lines; PoolBuilder::forward_stderr(true) forwards all)",
                self.worker,
                self.limit
            );
        }
    }

    fn forward(&mut self, bytes: &[u8]) {
        match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => {
                self.partial.extend_from_slice(&bytes[..=end]);
                self.write_partial();
                self.partial.extend_from_slice(&bytes[end + 1..]);
            }
            None => self.partial.extend_from_slice(bytes),
        }
        if self.partial.len() > Self::MAX_PARTIAL {
            self.flush();
        }
    }

    /// Writes the held-back partial line (the worker is gone: no end will come).
    fn flush(&mut self) {
        if !self.partial.is_empty() {
            if self.marked.is_some() && self.partial.last() != Some(&b'\n') {
                self.partial.push(b'\n');
            }
            self.write_partial();
        }
    }

    /// Writes what is held (whole lines, or a last partial one) and empties it.
    fn write_partial(&mut self) {
        let at = self
            .partial
            .contains(&1)
            .then(|| find(&self.partial, crate::worker::READY_LINE));
        if let Some(at) = at.flatten() {
            // The worker's word that it is ready is the pool's, not the task's output.
            self.partial.drain(at..at + crate::worker::READY_LINE.len());
        }
        let mut err = std::io::stderr().lock();
        match self.marked {
            None => {
                let _ = err.write_all(&self.partial);
            }
            Some(id) => {
                let _ = err.write_all(marked_lines(id, &self.partial).as_bytes());
            }
        }
        self.partial.clear();
    }
}

/// Where `needle` first occurs in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `bytes` (whole lines) with each line marked as worker `id`'s and every control character
/// but a tab removed (the C0 and C1 sets and DEL: what starts an escape sequence, moves the
/// cursor or rings the bell).
fn marked_lines(id: u32, bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len() + 32);
    for line in text.split_terminator('\n') {
        out.push_str(&format!("[proctor worker {id}] "));
        out.extend(line.chars().filter(|&c| c == '\t' || !c.is_control()));
        out.push('\n');
    }
    out
}

/// Reads what is in `pipe` now (it is non-blocking), forwarding it and handing it to `keep`.
fn drain(pipe: &mut File, forward: &mut Forward, mut keep: impl FnMut(&[u8])) -> Drained {
    let mut buf = [0u8; 8192];
    loop {
        match pipe.read(&mut buf) {
            Ok(0) => {
                forward.flush();
                return Drained::Eof;
            }
            Ok(n) => {
                forward.take(&buf[..n]);
                keep(&buf[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Drained::Open,
            Err(_) => {
                forward.flush();
                return Drained::Eof;
            }
        }
    }
}

/// The inbox's size when a worker starts (it grows for the first large job).
const INBOX_INITIAL: usize = 4096;

/// How long the memory of a large argument or result stays with an idle worker after it was
/// read, for the next one to reuse (as allocators keep freed pages a while: jemalloc's decay
/// is 10 s).
const FREE_AFTER: Duration = Duration::from_secs(5);

/// The parent's side of one worker process.
pub(super) struct Worker {
    pub(super) id: u32,
    /// Where it lives: what takes its job frames and its signals, and reports its end.
    pub(super) host: Host,
    stderr: File,
    pub(super) arena: SharedMapping,
    /// The arena's header page, mapped apart so a spinning driver can watch it unlocked.
    pub(super) header: Arc<SharedMapping>,
    /// How many jobs were sent to this worker (the last one is done when the arena says
    /// this number).
    pub(super) sent_seq: u64,
    /// When the parent takes the running task of the current job to have started.
    pub(super) clock: arena::StartClock,
    /// The id of the `map_with` context last sent to this worker (0: none).
    pub(super) context: u64,
    /// The end of what the worker wrote to stderr.
    tail: Vec<u8>,
    /// Where in `tail` the current job's output begins: a crash quotes only that.
    mark: usize,
    /// Copies what the worker writes to stderr to ours (`PoolBuilder::forward_stderr`).
    forward: Forward,
    /// With `capture_output`: the memfds the worker's stdout and stderr write to.
    capture: Option<(File, File)>,
    /// Where large arguments go (see `wire::INBOX_MIN`); the parent grows it, nobody can
    /// shrink it (sealed), so writing to it never faults.
    inbox: SharedMapping,
    /// It wrote `READY_LINE`: it got past its initializer and sandbox.
    ready: bool,
    /// Memory of large arguments and results, to free once the worker has been idle a while
    /// (see [`Worker::free_read`]): bytes of the inbox, and of the arena's records, and when
    /// (`None` while a large argument is on its way: a job that moves as much again reuses
    /// the pages).
    inbox_to_free: usize,
    arena_to_free: usize,
    free_after: Option<Instant>,
}

impl Worker {
    /// Asks the fork server for a worker process.
    pub(super) fn spawn(
        server: &'static ForkServer,
        doorbell: RawFd,
        id: u32,
        memory_limit: Option<u64>,
        forward: usize,
        capture: bool,
        exec: bool,
    ) -> std::io::Result<Worker> {
        let (req_r, req_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(err_r.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let arena = arena::create()?;
        let inbox = SharedMapping::create("proctor-inbox", INBOX_INITIAL, Seals::GrowOnly)?;
        let mut fds = vec![
            req_r.as_raw_fd(),
            doorbell,
            err_w.as_raw_fd(),
            arena.fd(),
            inbox.fd(),
        ];
        let capture = if capture {
            let memfd = |name: &str| -> std::io::Result<File> {
                let fd =
                    nix::sys::memfd::memfd_create(name, nix::sys::memfd::MFdFlags::MFD_CLOEXEC)?;
                Ok(File::from(fd))
            };
            let (out, err) = (memfd("proctor-stdout")?, memfd("proctor-stderr")?);
            fds.extend([out.as_raw_fd(), err.as_raw_fd()]);
            Some((out, err))
        } else {
            None
        };
        let pid = server.spawn(memory_limit, exec, &fds)?;
        let host = Host::local(server, pid, File::from(req_w));
        Worker::new(id, host, File::from(err_r), arena, inbox, capture, forward)
    }

    /// Asks the agent of slot `slot` for a worker on its host.
    pub(super) fn spawn_remote(
        hub: &crate::remote::hub::Hub,
        slot: usize,
        id: u32,
        forward: usize,
    ) -> std::io::Result<Worker> {
        let (err_r, err_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(err_r.as_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
        let arena = arena::create()?;
        let mirror = SharedMapping::from_fd(arena.fd_clone()?)?;
        let conn = hub.spawn(slot, mirror, File::from(err_w))?;
        // (An inbox it never uses: large arguments travel inline across hosts.)
        let inbox = SharedMapping::create("proctor-inbox", INBOX_INITIAL, Seals::GrowOnly)?;
        let host = Host::remote(conn);
        Worker::new(id, host, File::from(err_r), arena, inbox, None, forward)
    }

    /// The handle on a worker process that lives at `host`, around the stderr pipe, arena,
    /// inbox (and capture files) it was started with: the same for either flavor.
    fn new(
        id: u32,
        host: Host,
        stderr: File,
        arena: SharedMapping,
        inbox: SharedMapping,
        capture: Option<(File, File)>,
        forward: usize,
    ) -> std::io::Result<Worker> {
        let header = Arc::new(arena.prefix(arena::DATA_START)?);
        Ok(Worker {
            id,
            host,
            header,
            stderr,
            arena,
            sent_seq: 0,
            clock: arena::StartClock::new(0, 1),
            context: 0,
            tail: Vec::new(),
            mark: 0,
            forward: Forward::new(forward, id),
            capture,
            inbox,
            ready: false,
            inbox_to_free: 0,
            arena_to_free: 0,
            free_after: None,
        })
    }

    /// Writes a job's `Run` frame: through the inbox when its arguments are large (the
    /// pipe then carries only the header), else whole through the pipe. False if the worker
    /// is gone.
    pub(super) fn send_frame(&mut self, frame: &[u8]) -> bool {
        let args = &frame[wire::RUN_HEADER_LEN..];
        if args.len() >= wire::INBOX_MIN && !self.host.is_remote() {
            let copy = |buf: &mut [u8]| {
                let dst = buf.get_mut(..args.len()).ok_or(wire::WriteError::Full)?;
                dst.copy_from_slice(args);
                Ok(args.len())
            };
            if let Ok(sent) = self.send_deferred(frame, args.len(), copy) {
                return sent;
            }
            // No room for a larger inbox: the pipe still works.
        }
        self.host.send(frame).is_ok()
    }

    /// Sends a job whose `len` bytes of arguments `write` encodes straight into the inbox
    /// (`header` is its `Run` frame without them). Err if the inbox cannot grow to `len`.
    pub(super) fn send_deferred(
        &mut self,
        header: &[u8],
        len: usize,
        write: impl FnOnce(&mut [u8]) -> Result<usize, wire::WriteError>,
    ) -> Result<bool, String> {
        if self.host.is_remote() {
            // No shared inbox across hosts: the arguments go inline, in one frame.
            let mut frame = header[..wire::RUN_HEADER_LEN].to_vec();
            frame.resize(wire::RUN_HEADER_LEN + len, 0);
            let n = write(&mut frame[wire::RUN_HEADER_LEN..]).map_err(|e| match e {
                wire::WriteError::Full => {
                    "the argument grew while it was encoded again".to_string()
                }
                wire::WriteError::Failed(e) => format!("it could not be encoded again: {e}"),
            })?;
            frame.truncate(wire::RUN_HEADER_LEN + n);
            let body = (frame.len() - 4) as u32;
            frame[..4].copy_from_slice(&body.to_le_bytes());
            return Ok(self.host.send(&frame).is_ok());
        }
        self.inbox
            .grow(len.next_power_of_two())
            .map_err(|e| format!("could not grow the worker's inbox to {len} bytes: {e}"))?;
        if len >= wire::LARGE {
            self.inbox.populate(0, len, true);
        }
        let n = write(self.inbox.tail_mut(0)).map_err(|e| match e {
            wire::WriteError::Full => "the argument grew while it was encoded again".to_string(),
            wire::WriteError::Failed(e) => format!("it could not be encoded again: {e}"),
        })?;
        if n >= wire::LARGE {
            // A large argument: out of this process's resident memory now (the worker reads
            // it from the file), and out of memory altogether once its job is done. (What a
            // previous one left to free is written over, or freed with this one.)
            self.inbox.unmap_pages(0, n);
            self.inbox_to_free = self.inbox_to_free.max(n);
            self.free_after = None;
        }
        Ok(self.host.send(&wire::shared_run(header, n)).is_ok())
    }

    /// The worker finished its job, whose results were read: what a large argument and large
    /// results took is freed [`FREE_AFTER`] from now if the worker is idle then. Not at once:
    /// punching a GiB out of a memfd takes a few hundred milliseconds, and the next large
    /// transfer would pay as much again to allocate and zero fresh pages (three times the
    /// cost of the copies themselves, measured); a burst of large tasks reuses them.
    pub(super) fn read_done(&mut self, results: usize) {
        if results >= wire::LARGE {
            self.arena_to_free = self.arena_to_free.max(results);
            self.free_after = None;
        }
        // The clock starts after the last large transfer (a job of small tasks leaves it be).
        if self.free_after.is_none() && (self.inbox_to_free > 0 || self.arena_to_free > 0) {
            self.free_after = Some(Instant::now() + FREE_AFTER);
        }
    }

    /// When memory of large arguments or results read is due to be freed, if there is any.
    pub(super) fn free_after(&self) -> Option<Instant> {
        self.free_after
    }

    /// Whether memory of large arguments or results read is due to be freed at `now`.
    pub(super) fn read_memory_due(&self, now: Instant) -> bool {
        self.free_after.is_some_and(|t| now >= t)
    }

    /// Frees the memory of large arguments and results already read. Only while the worker
    /// is idle: it neither reads its inbox nor writes its arena then.
    pub(super) fn free_read(&mut self) {
        self.free_after = None;
        if self.inbox_to_free > 0 {
            self.inbox
                .release(0, std::mem::take(&mut self.inbox_to_free));
        }
        if self.arena_to_free > 0 {
            let len = std::mem::take(&mut self.arena_to_free);
            self.arena.release(arena::DATA_START, len);
        }
    }

    /// Reads what the worker wrote to stderr so far.
    pub(super) fn drain_stderr(&mut self) -> Drained {
        let (tail, mark, ready) = (&mut self.tail, &mut self.mark, &mut self.ready);
        drain(&mut self.stderr, &mut self.forward, |bytes| {
            tail.extend_from_slice(bytes);
            if !*ready {
                // Looked for as each chunk arrives, before the tail is cut: a task that floods
                // its stderr must not scroll the word out of sight unseen (and so pass for a
                // worker that died in its initializer, which stops every replacement).
                let line = crate::worker::READY_LINE;
                if let Some(at) = find(tail, line) {
                    *ready = true;
                    tail.drain(at..at + line.len());
                    if *mark > at {
                        *mark = mark.saturating_sub(line.len()).max(at);
                    }
                }
            }
            if tail.len() > 2 * TAIL {
                let cut = tail.len() - TAIL;
                tail.drain(..cut);
                *mark = mark.saturating_sub(cut);
            }
        })
    }

    /// Whether the worker said it reached its first job (past its initializer and sandbox),
    /// as far as its stderr was read. A task cannot take the word back, nor say it early.
    pub(super) fn is_ready(&self) -> bool {
        self.ready
    }

    /// Marks what this worker writes to stderr as its own when it is forwarded, stripped of
    /// control characters (a sandboxed worker's: see [`Forward::marked`]).
    pub(super) fn mark_output(&mut self) {
        self.forward.marked = Some(self.id);
    }

    /// A new job of `count` tasks starts: a crash from now on quotes only what follows, and
    /// its timeout clock starts now.
    pub(super) fn mark_job_start(&mut self, count: usize) {
        self.mark = self.tail.len();
        // Up to `limit` more lines may pass. (No read of the pipe here, to count what is in
        // it against the last job: that read cost a tenth of a submitted task's round trip.
        // A job's lines read after the next job started count against that one, so it is
        // at most `limit` lines per job started, whichever job wrote them.)
        self.forward.restart();
        self.clock = arena::StartClock::new(crate::sys::monotonic_ns(), count as u64);
    }

    /// What the worker wrote to stderr during its current job (its last `TAIL` bytes).
    pub(super) fn job_stderr(&self) -> ArcStr {
        if let Some((_, err)) = &self.capture {
            // The task's own stderr: the worker empties the file as each task starts.
            return String::from_utf8_lossy(&arena::read_tail(err)).into();
        }
        let out = &self.tail[self.mark.min(self.tail.len())..];
        let start = out.len().saturating_sub(TAIL);
        String::from_utf8_lossy(&out[start..]).into()
    }

    /// What the running task wrote so far, when output is captured.
    pub(super) fn task_output(&self) -> Option<crate::pool::Output> {
        let (out, err) = self.capture.as_ref()?;
        Some(crate::pool::Output {
            stdout: arena::read_tail(out),
            stderr: arena::read_tail(err),
        })
    }

    /// Why its initializer failed: the line the worker wrote before it exited, else the end
    /// of its stderr.
    pub(super) fn init_failure(&self) -> String {
        const LINE: &str = "proctor: the worker initializer panicked: ";
        let text = String::from_utf8_lossy(&self.tail);
        match text.rfind(LINE) {
            Some(at) => text[at + LINE.len()..].trim_end().to_string(),
            None => format!("its worker exited; its stderr ended: {}", text.trim_end()),
        }
    }

    /// Why a worker of the `exec` start method refused to start, from its stderr.
    pub(super) fn start_failure(&self) -> String {
        self.said_after(crate::exec::START_FAILED_LINE)
    }

    /// Why a worker could not apply its sandbox, from its stderr.
    pub(super) fn sandbox_failure(&self) -> String {
        self.said_after(crate::sandbox::FAILED_LINE)
    }

    /// The rest of the last line of its stderr that starts with `prefix`.
    fn said_after(&self, prefix: &str) -> String {
        let text = String::from_utf8_lossy(&self.tail);
        match line_after(&text, prefix) {
            Some(rest) => rest.to_string(),
            None => format!("its stderr ended: {}", text.trim_end()),
        }
    }

    /// The worker is gone or going: no more jobs go to it, and its stderr is read until end
    /// of file. With `kill_late`, an idle worker asked to exit (recycled) is killed if it has
    /// not exited by then.
    pub(super) fn retire(self, kill_late: bool) -> Retired {
        let mut host = self.host;
        host.close();
        Retired {
            stderr: self.stderr,
            forward: self.forward,
            until: Instant::now() + RETIRE_WAIT,
            doomed: kill_late.then_some(host),
        }
    }
}

/// The rest of the line of `text` after the last `prefix` (a worker's own message on its
/// stderr), if it has one.
pub(super) fn line_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let at = text.rfind(prefix)?;
    Some(text[at + prefix.len()..].lines().next().unwrap_or(""))
}

/// The stderr pipe of a worker that was stopped, read until every writer is gone.
pub(super) struct Retired {
    stderr: File,
    forward: Forward,
    until: Instant,
    /// An idle worker asked to exit (recycled): killed if it has not exited by `until`.
    doomed: Option<Host>,
}

impl Retired {
    /// Reads what is there; true when the pipe is finished with (end of file, or given up).
    pub(super) fn drain(&mut self) -> bool {
        if drain(&mut self.stderr, &mut self.forward, |_| {}) == Drained::Eof {
            return true;
        }
        if Instant::now() >= self.until {
            if let Some(host) = self.doomed.take() {
                // It ignored the closed request pipe: stop it, and give its pipe another go.
                host.kill(nix::sys::signal::Signal::SIGKILL);
                self.until = Instant::now() + RETIRE_WAIT;
                return false;
            }
            self.forward.flush();
            return true;
        }
        false
    }

    /// Reads until end of file or `deadline`, sleeping between reads.
    pub(super) fn finish(mut self, deadline: Instant) {
        self.until = self.until.min(deadline);
        while !self.drain() {
            if Instant::now() >= deadline {
                self.forward.flush();
                return;
            }
            let mut fds = [nix::poll::PollFd::new(
                self.stderr.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(10u16));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::marked_lines;

    #[test]
    fn a_sandboxed_workers_lines_are_marked_and_lose_their_control_characters() {
        let hostile = b"ok\n\x1b[2J\x1b]0;owned\x07rm -rf ~\r\n\xc2\x9b31mred\ttab\x7f\n";
        assert_eq!(
            marked_lines(7, hostile),
            "[proctor worker 7] ok\n\
             [proctor worker 7] [2J]0;ownedrm -rf ~\n\
             [proctor worker 7] 31mred\ttab\n"
        );
    }
}
