//! One remote worker as the pool holds it ([`Gen`]): its connection, which carries jobs
//! one way and finished jobs' records the other, the [`Reader`] that copies those into
//! the worker's mirror arena as they arrive, checking every length before it allocates,
//! and how the worker ended, as its agent reported it. The pool's driver uses [`Gen`]'s
//! `pub(crate)` methods, through the remote flavor of its worker handle
//! (`pool::process::host`); the hub also builds [`Reader`]s and [`Ends`].

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::control::Link;
use super::lock_of;
use crate::arena;
use crate::doorbell::Doorbell;
use crate::remote::conn::Conn;
use crate::remote::proto::{self, ToAgent, Token};
use crate::server::Exit;
use crate::sys::SharedMapping;

/// The ends of one pool's remote workers: counted, and rung on the pool's doorbell, as the
/// fork server counts and rings local workers' ends (see `ForkServer::deaths`), so that a
/// driver asleep on its doorbell learns of a death at once, and looks for the dead only
/// when the count moved.
#[derive(Debug)]
pub(super) struct Ends {
    count: AtomicU64,
    doorbell: Arc<Doorbell>,
}

impl Ends {
    pub(super) fn new(doorbell: Arc<Doorbell>) -> Ends {
        Ends {
            count: AtomicU64::new(0),
            doorbell,
        }
    }

    /// How many remote workers ended so far.
    pub(super) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    fn announce(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.doorbell.ring();
    }
}

/// How a remote worker ended: set once, by its agent's report or its host's loss (a later
/// word is ignored), and handed over once, to whoever takes or waits for it first, as the
/// fork server hands over a local worker's end.
#[derive(Debug, Default)]
pub(super) struct End {
    state: Mutex<EndState>,
    cond: Condvar,
}

#[derive(Debug, Default)]
struct EndState {
    /// How it ended, until it is handed over.
    exit: Option<Exit>,
    /// It ended (whether or not that was handed over yet).
    over: bool,
}

impl End {
    /// Records that the worker ended, and how; false if it had already.
    fn set(&self, exit: Exit) -> bool {
        {
            let mut st = lock_of(&self.state);
            if st.over {
                return false;
            }
            st.over = true;
            st.exit = Some(exit);
        }
        self.cond.notify_all();
        true
    }

    /// Whether the worker ended.
    fn is_over(&self) -> bool {
        lock_of(&self.state).over
    }

    /// How the worker ended, if it did and that was not handed over yet.
    fn take(&self) -> Option<Exit> {
        lock_of(&self.state).exit.take()
    }

    /// Waits up to `timeout` for the worker's end; [`End::take`] then.
    fn wait(&self, timeout: Duration) -> Option<Exit> {
        let deadline = Instant::now() + timeout;
        let mut st = lock_of(&self.state);
        loop {
            if let Some(exit) = st.exit.take() {
                return Some(exit);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            st = self
                .cond
                .wait_timeout(st, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }
}

/// One remote worker process.
pub(crate) struct Gen {
    pub(super) token: Token,
    /// Its pid on its own host.
    pub(crate) host_pid: u32,
    pub(super) host: String,
    pub(super) mirror: Mutex<SharedMapping>,
    /// The last job whose records were copied into the mirror.
    pub(super) applied: AtomicU64,
    /// What the worker sent that is not yet in the mirror. The driver reads it (no thread
    /// of its own: a hand-off between threads was a third of a loopback round trip), and
    /// the agent's thread reads the rest when the worker died.
    pub(super) reader: Mutex<Reader>,
    /// The connection both ways (one TLS session, when encrypted).
    pub(super) conn: Mutex<Conn>,
    pub(super) stderr: Mutex<Option<File>>,
    /// Its socket, to wait on and to shut down without the lock.
    pub(super) data: TcpStream,
    /// Set when the agent killed it for overrunning the task timeout: how long it ran.
    pub(super) timed_out: Mutex<Option<Duration>>,
    /// Its agent, to kill it through.
    pub(super) link: Weak<Link>,
    /// False once its connection ended or broke the protocol.
    pub(super) open: AtomicBool,
    /// Set when its host was lost: why.
    pub(super) lost: Mutex<Option<String>>,
    /// The number of the last job the driver sent it, and what that number was when its
    /// host was lost (a job sent later never reached a live worker).
    pub(super) jobs_sent: AtomicU64,
    pub(super) sent_at_loss: AtomicU64,
    /// How it ended.
    pub(super) end: End,
    /// Where its end is announced to the pool.
    pub(super) ends: Arc<Ends>,
}

impl std::fmt::Debug for Gen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gen")
            .field("token", &self.token)
            .field("host", &self.host)
            .finish()
    }
}

impl Gen {
    /// Closes the worker's connection: a worker being recycled sees the end of its jobs and
    /// exits; a dead one's reader thread stops.
    pub(crate) fn close(&self) {
        let _ = self.data.shutdown(Shutdown::Both);
    }

    pub(super) fn close_stderr(&self) {
        lock_of(&self.stderr).take();
    }

    /// Whether the worker's connection may still say something (a driver waits on it only
    /// then: a closed socket is always readable).
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// The worker's connection, for a driver to wait on.
    pub(crate) fn data_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.data)
    }

    /// Sends a job (or a call) to the worker.
    pub(crate) fn send(&self, bytes: &[u8]) -> std::io::Result<()> {
        lock_of(&self.conn).write_all(bytes)
    }

    /// Copies what the worker sent so far into the mirror, without waiting (driver side).
    /// Skipped while the agent's thread drains the connection after the worker's death.
    pub(crate) fn pump(&self) {
        if let Ok(mut r) = self.reader.try_lock() {
            r.fill(self, true);
            if r.done {
                self.open.store(false, Ordering::Relaxed);
            }
            if let Some(why) = r.broken.take() {
                drop(r);
                self.break_off(&why);
            }
        }
    }

    /// The worker's connection carried bytes that are not the protocol: whatever wrote
    /// them, nothing more it says can be trusted. The worker is killed (its agent reports
    /// its end, as for any death) and its job ends saying why, rather than waiting for
    /// results that cannot come.
    fn break_off(&self, why: &str) {
        {
            let mut lost = lock_of(&self.lost);
            if lost.is_some() {
                return;
            }
            *lost = Some(format!("its connection broke the protocol: {why}"));
        }
        // The job it was sent is blamed, as for a lost host.
        self.sent_at_loss
            .store(self.jobs_sent.load(Ordering::SeqCst), Ordering::SeqCst);
        self.close();
        if let Some(link) = self.link.upgrade() {
            let _ = link.send(&ToAgent::Kill {
                token: self.token,
                signal: libc::SIGKILL,
            });
        }
    }

    /// Job `seq` is about to leave for the worker: counted before it leaves, so that a job
    /// that may have reached the host before the host was lost is blamed on the loss.
    pub(crate) fn sending(&self, seq: u64) {
        self.jobs_sent.store(seq, Ordering::SeqCst);
    }

    /// Whether job `seq` left before the worker's host was lost (or its connection broke
    /// the protocol), so may have run there.
    pub(crate) fn sent_before_loss(&self, seq: u64) -> bool {
        seq <= self.sent_at_loss.load(Ordering::SeqCst)
    }

    /// How long its task ran, when its agent killed it for overrunning the task timeout.
    pub(crate) fn timed_out(&self) -> Option<Duration> {
        *lock_of(&self.timed_out)
    }

    /// The worker's host and why it was lost, once it was.
    pub(crate) fn lost(&self) -> Option<(String, String)> {
        let why = lock_of(&self.lost).clone()?;
        Some((self.host.clone(), why))
    }

    /// Sends `signal` to the worker's process group, through its agent; nothing once it
    /// ended (its agent knows it no more).
    pub(crate) fn kill(&self, signal: Signal) {
        if self.end.is_over() {
            return;
        }
        if let Some(link) = self.link.upgrade() {
            let _ = link.send(&ToAgent::Kill {
                token: self.token,
                signal: signal as i32,
            });
        }
    }

    /// How the worker ended, if it did, without waiting. Handed over once, as the fork
    /// server hands over a local worker's end.
    pub(crate) fn try_exit(&self) -> Option<Exit> {
        self.end.take()
    }

    /// Waits up to `timeout` for the worker's end; returns how it ended.
    pub(crate) fn wait_exit(&self, timeout: Duration) -> Option<Exit> {
        self.end.wait(timeout)
    }

    /// The worker ended (its agent said how, or its host was lost): kept until the driver
    /// takes it, and announced to the pool. Once: a second word is ignored.
    pub(super) fn report_exit(&self, exit: Exit) {
        if self.end.set(exit) {
            self.ends.announce();
        }
    }

    /// Reads the connection to its end (the worker is gone), or until `wait` passes.
    pub(super) fn drain(&self, wait: Duration) {
        let mut r = lock_of(&self.reader);
        let _ = self
            .data
            .set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let deadline = Instant::now() + wait;
        while !r.done && Instant::now() < deadline {
            r.fill(self, false);
        }
    }
}

/// The reading end of a remote worker's connection: `done` messages, whole or in part.
pub(super) struct Reader {
    pub(super) buf: Vec<u8>,
    pub(super) end: usize,
    /// End of file, a broken connection, or bytes that are not the protocol.
    pub(super) done: bool,
    /// Why the connection's bytes are not the protocol, once they are not: the worker is
    /// then ended (see [`Gen::pump`]).
    pub(super) broken: Option<String>,
    /// The number of the last job whose message was read: the next must be one more.
    pub(super) last_seq: u64,
}

impl Reader {
    pub(super) fn new(buf: Vec<u8>) -> Reader {
        let end = buf.len();
        Reader {
            buf,
            end,
            done: false,
            broken: None,
            last_seq: 0,
        }
    }

    /// Stops trusting the connection.
    fn break_off(&mut self, why: String) {
        self.done = true;
        self.broken.get_or_insert(why);
    }

    /// Reads once (or, without waiting, until nothing is left), then copies every whole
    /// message into the mirror.
    fn fill(&mut self, g: &Gen, dont_wait: bool) {
        loop {
            if self.done {
                return;
            }
            if self.end >= 4 {
                // A length past the limit ends the connection before anything is allocated.
                let len = u32::from_le_bytes(self.buf[..4].try_into().expect("4")) as usize;
                if let Err(e) = proto::check_len(len, proto::MAX_MESSAGE) {
                    self.break_off(e.to_string());
                    return;
                }
            }
            let whole = if self.end >= 4 {
                4 + u32::from_le_bytes(self.buf[..4].try_into().expect("4")) as usize
            } else {
                4
            };
            if self.buf.len() - self.end < 4096 {
                // The buffer grows with what arrives (it at most doubles per full buffer),
                // never to the length a message claims: a worker that announces a gigabyte
                // and sends four bytes costs nothing.
                let want = whole.max(self.end + 4096);
                let grown = (self.buf.len() * 2).max(64 << 10);
                self.buf.resize(want.min(grown).max(self.buf.len()), 0);
            }
            let got = {
                let mut conn = lock_of(&g.conn);
                let buf = &mut self.buf[self.end..];
                if dont_wait {
                    conn.read_available(buf)
                } else {
                    conn.read(buf)
                }
            };
            match got {
                Ok(0) => self.done = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                // Bytes that fail TLS's (or the sealed records') checks: someone wrote on
                // the connection who should not.
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                    self.break_off(e.to_string())
                }
                Err(_) => self.done = true,
            }
            let _ = self.apply(&g.mirror, &g.applied);
            // Without waiting, read on while the socket has more (a full buffer read).
            if !dont_wait || self.end < self.buf.len() {
                return;
            }
        }
    }

    /// Copies the whole messages at the front of the buffer into the mirror.
    /// Returns how many it copied.
    pub(super) fn apply(&mut self, mirror: &Mutex<SharedMapping>, applied: &AtomicU64) -> usize {
        let mut start = 0;
        let mut copied = 0;
        while self.end - start >= 4 {
            let len =
                u32::from_le_bytes(self.buf[start..start + 4].try_into().expect("4")) as usize;
            if !(proto::DONE_HEADER - 4..=proto::MAX_MESSAGE).contains(&len) {
                // Not the protocol: stop trusting this connection (the agent's report of
                // the worker's end still comes).
                self.break_off(format!(
                    "a {len}-byte message is not a finished job's (at most {} bytes)",
                    proto::MAX_MESSAGE
                ));
                break;
            }
            // Each message is the next job's: checked as soon as its number arrives, so
            // that bytes slipped in before a real message cannot hold the connection
            // waiting for a body that never comes.
            if let Some(seq) = self.buf.get(start + 4..start + 12) {
                let seq = u64::from_le_bytes(seq.try_into().expect("8"));
                if seq != self.last_seq + 1 {
                    self.break_off(format!(
                        "a message for job {seq} came where job {} was due",
                        self.last_seq + 1
                    ));
                    break;
                }
            }
            if self.end - start < 4 + len {
                break;
            }
            let Some((seq, started, committed, records)) =
                proto::parse_done(&self.buf[start + 4..start + 4 + len])
            else {
                self.break_off("a finished job's message that does not parse".into());
                break;
            };
            let mut m = lock_of(mirror);
            if let Err(e) = arena::mirror(&mut m, started, committed, records, Some(seq)) {
                self.break_off(e.to_string());
                break;
            }
            self.last_seq = seq;
            applied.store(seq, Ordering::Release);
            start += 4 + len;
            copied += 1;
        }
        if start > 0 {
            self.buf.copy_within(start..self.end, 0);
            self.end -= start;
        }
        copied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_workers_end_is_set_once_and_handed_over_once() {
        let end = End::default();
        assert_eq!(end.take(), None);
        assert!(!end.is_over());
        assert!(end.set(Exit::Signal(libc::SIGSEGV)));
        // The first word stands: a host lost after its agent reported the death changes
        // nothing.
        assert!(!end.set(Exit::Signal(libc::SIGKILL)));
        assert_eq!(end.take(), Some(Exit::Signal(libc::SIGSEGV)));
        assert_eq!(end.take(), None);
        assert_eq!(end.wait(Duration::from_millis(1)), None);
        // Still over: a signal for it goes nowhere.
        assert!(end.is_over());
    }

    #[test]
    fn a_waiter_wakes_when_the_end_arrives() {
        let end = Arc::new(End::default());
        let waiter = {
            let end = Arc::clone(&end);
            std::thread::spawn(move || end.wait(Duration::from_secs(60)))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(end.set(Exit::Code(3)));
        assert_eq!(waiter.join().unwrap(), Some(Exit::Code(3)));
        assert_eq!(end.take(), None);
    }
}
