//! One agent as the pool holds it ([`Link`]): the hello that opens its control
//! connection, the thread that reads its messages and says the pool is alive, a worker's
//! death report (what it adds to the mirror), and the agent's loss. The hub imports
//! [`Link`], [`LinkSetup`] and, for the fuzz entry, [`MessageReader`].

use std::collections::HashMap;
use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::launch::Relaunches;
use super::lock_of;
use super::worker::Gen;
use crate::arena;
use crate::remote::conn::Conn;
use crate::remote::proto::{self, FromAgent, Report, ToAgent, Token};
use crate::server::Exit;

/// How long the death report waits for the worker's connection to deliver what it sent.
const DRAIN_WAIT: Duration = Duration::from_secs(2);

/// One agent, as the pool holds it.
pub(crate) struct Link {
    pub(crate) host: String,
    /// The slot its agent claimed (its first).
    pub(super) key: u32,
    /// Its place in the hub's links, and where to ask for it to be relaunched once lost.
    index: usize,
    relaunch: Option<Arc<Relaunches>>,
    pub(super) ctrl: Mutex<Conn>,
    /// The control connection's socket, to wait on without the lock, and to shut down.
    pub(super) sock: TcpStream,
    pub(super) st: Mutex<LinkState>,
    pub(super) cond: Condvar,
}

#[derive(Default)]
pub(super) struct LinkState {
    /// Why the agent is gone, once it is.
    pub(super) gone: Option<String>,
    pub(super) spawned: HashMap<Token, Result<u32, String>>,
    pub(super) workers: HashMap<Token, Arc<Gen>>,
}

impl Link {
    pub(super) fn send(&self, msg: &ToAgent) -> std::io::Result<()> {
        proto::send(&mut *lock_of(&self.ctrl), msg)
    }

    /// The agent is gone: every worker it ran ends as lost, and no more start there.
    fn lose(&self, why: String) {
        let workers: Vec<Arc<Gen>> = {
            let mut st = lock_of(&self.st);
            if st.gone.is_some() {
                return;
            }
            st.gone = Some(why.clone());
            st.workers.drain().map(|(_, g)| g).collect()
        };
        self.cond.notify_all();
        if let Some(r) = &self.relaunch {
            // Marked before its workers' deaths are reported, so that the driver, seeing
            // them, waits for the new agent instead of calling the slots vacant.
            r.ask(self.index);
        }
        let _ = self.sock.shutdown(Shutdown::Both);
        for g in workers {
            g.sent_at_loss
                .store(g.jobs_sent.load(Ordering::SeqCst), Ordering::SeqCst);
            *lock_of(&g.lost) = Some(why.clone());
            g.close();
            // What it finished before the host went quiet still counts.
            g.drain(DRAIN_WAIT);
            g.close_stderr();
            g.report_exit(Exit::Signal(libc::SIGKILL));
        }
    }
}

/// What it takes to turn an agent's accepted connection into a [`Link`]: the hello, and
/// what its control thread needs.
pub(super) struct LinkSetup {
    pub(super) hello: proto::Hello,
    pub(super) heartbeat: Duration,
    pub(super) lost_after: Duration,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) relaunch: Option<Arc<Relaunches>>,
}

impl LinkSetup {
    /// Says hello to agent `key` (it checks the build) and starts its control thread.
    pub(super) fn connect(
        &self,
        index: usize,
        key: u32,
        mut ctrl: Conn,
        host: String,
    ) -> Result<Arc<Link>, String> {
        let _ = ctrl.socket().set_read_timeout(Some(proto::HANDSHAKE_WAIT));
        // The frame secret goes masked with a key of this connection's handshake.
        let mut hello = self.hello.clone();
        hello.frame_secret ^= ctrl.frame_mask();
        let said = proto::send(&mut ctrl, &ToAgent::Hello(hello))
            .and_then(|()| proto::recv::<FromAgent>(&mut ctrl, proto::MAX_ANSWER));
        match said {
            Ok(FromAgent::Ready) => {}
            Ok(FromAgent::Refused { why }) => {
                return Err(format!(
                    "the agent for worker {key} on {host} refused: {why}"
                ));
            }
            Ok(other) => {
                return Err(format!(
                    "the agent for worker {key} on {host} answered {other:?}"
                ));
            }
            Err(e) => {
                return Err(format!(
                    "the agent for worker {key} on {host} did not answer: {e}"
                ));
            }
        }
        let _ = ctrl.socket().set_read_timeout(None);
        let sock = ctrl
            .socket()
            .try_clone()
            .map_err(|e| format!("the agent's connection: {e}"))?;
        let link = Arc::new(Link {
            host,
            key,
            index,
            relaunch: self.relaunch.clone(),
            ctrl: Mutex::new(ctrl),
            sock,
            st: Mutex::new(LinkState::default()),
            cond: Condvar::new(),
        });
        let (l, stop) = (Arc::clone(&link), Arc::clone(&self.stop));
        let (beat, lost) = (self.heartbeat, self.lost_after);
        std::thread::Builder::new()
            .name("proctor-remote-agent".into())
            .spawn(move || control_loop(l, beat, lost, stop))
            .map_err(|e| format!("could not start an agent thread: {e}"))?;
        Ok(link)
    }
}

/// What a dead remote worker's report adds to its mirror.
#[derive(Debug, PartialEq, Eq)]
enum OnDeath {
    /// It finished a job whose message never arrived: that job's records, as done.
    Finished,
    /// It died in the job after the last one whose results arrived (which the pool sent
    /// after it had taken in that one's results, so nobody reads the mirror now): that
    /// job's counts and records so far.
    Running,
    /// It died before beginning the job it was sent, or idle: the mirror already says so
    /// (the pool cleared it before sending; or it holds the last finished job, whose
    /// results the driver may be reading this very moment, and which must stay).
    Nothing,
}

/// The decision of [`finish`], given the report and the last job whose results arrived.
fn on_death(r: &Report, applied: u64) -> OnDeath {
    if r.done_seq > applied && r.run_seq == r.done_seq {
        OnDeath::Finished
    } else if r.run_seq == applied + 1 && r.done_seq < r.run_seq {
        OnDeath::Running
    } else {
        OnDeath::Nothing
    }
}

/// Reads one agent's messages, says the pool is alive, and notices the agent going quiet.
fn control_loop(link: Arc<Link>, heartbeat: Duration, lost_after: Duration, stop: Arc<AtomicBool>) {
    use nix::poll::{PollFd, PollFlags, PollTimeout};
    let mut inbox = MessageReader::default();
    let mut heard = Instant::now();
    let mut said = Instant::now();
    let beat_ms = u16::try_from(heartbeat.as_millis().max(1)).unwrap_or(u16::MAX);
    loop {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if said.elapsed() >= heartbeat {
            said = Instant::now();
            if link.send(&ToAgent::Ping).is_err() && !stop.load(Ordering::SeqCst) {
                link.lose("its agent's connection broke".into());
                return;
            }
        }
        let mut fds = [PollFd::new(
            std::os::fd::AsFd::as_fd(&link.sock),
            PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, PollTimeout::from(beat_ms));
        // One message at a time (the buffer never holds more), until the connection has
        // nothing more for now.
        let got = loop {
            let got = inbox.take_from(&mut lock_of(&link.ctrl));
            loop {
                match inbox.next() {
                    Ok(Some(msg)) => {
                        heard = Instant::now();
                        on_message(&link, msg);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        if !stop.load(Ordering::SeqCst) {
                            link.lose(format!("its agent broke the protocol: {e}"));
                        }
                        return;
                    }
                }
            }
            if !matches!(got, Ok(true)) {
                break got;
            }
        };
        if let Err(e) = got {
            if e.kind() == std::io::ErrorKind::InvalidData && !stop.load(Ordering::SeqCst) {
                link.lose(format!("its agent broke the protocol: {e}"));
                return;
            }
            if !stop.load(Ordering::SeqCst) {
                let why = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "its agent closed its connection".to_string()
                } else {
                    format!("its agent's connection broke: {e}")
                };
                link.lose(why);
            }
            return;
        }
        if heard.elapsed() >= lost_after {
            link.lose(format!(
                "no word from its agent for {} ms (the host may be down or cut off)",
                lost_after.as_millis()
            ));
            return;
        }
    }
}

fn on_message(link: &Link, msg: FromAgent) {
    match msg {
        FromAgent::Spawned { token, pid } => {
            lock_of(&link.st).spawned.insert(token, Ok(pid));
            link.cond.notify_all();
        }
        FromAgent::SpawnFailed { token, why } => {
            lock_of(&link.st).spawned.insert(token, Err(why));
            link.cond.notify_all();
        }
        FromAgent::Stderr { token, bytes } => {
            let rw = lock_of(&link.st).workers.get(&token).cloned();
            if let Some(g) = rw {
                if let Some(pipe) = lock_of(&g.stderr).as_mut() {
                    let _ = pipe.write_all(&bytes);
                }
            }
        }
        FromAgent::Exited(report) => {
            let rw = lock_of(&link.st).workers.remove(&report.token);
            match rw {
                Some(g) => finish(&g, report),
                None => {
                    // It ended before its connection came: its spawn is waited for no more.
                    let how = match (report.signal, report.code) {
                        (Some(s), _) => format!("it was killed by signal {s}"),
                        (None, Some(c)) => format!("it exited with code {c}"),
                        (None, None) => "it ended".to_string(),
                    };
                    lock_of(&link.st).spawned.insert(report.token, Err(how));
                    link.cond.notify_all();
                }
            }
        }
        FromAgent::Ping | FromAgent::Ready | FromAgent::Refused { .. } => {}
    }
}

/// A remote worker ended: the mirror takes what its arena held, then the worker its exit,
/// which the driver sees as any worker's death.
fn finish(g: &Gen, report: Report) {
    // Its connection closed with it: first take in what it sent before it died.
    g.drain(DRAIN_WAIT);
    let applied = g.applied.load(Ordering::Acquire);
    {
        let mut m = lock_of(&g.mirror);
        let r = &report;
        let _ = match on_death(r, applied) {
            OnDeath::Finished => {
                arena::mirror(&mut m, r.started, r.committed, &r.records, Some(r.done_seq))
            }
            OnDeath::Running => arena::mirror(&mut m, r.started, r.committed, &r.records, None),
            OnDeath::Nothing => Ok(()),
        };
    }
    if let Some(ns) = report.timed_out_ns {
        *lock_of(&g.timed_out) = Some(Duration::from_nanos(ns));
    }
    g.close_stderr();
    let exit = match (report.signal, report.code) {
        (Some(s), _) => Exit::Signal(s),
        (None, Some(c)) => Exit::Code(c),
        (None, None) => Exit::Signal(libc::SIGKILL),
    };
    g.report_exit(exit);
}

/// Collects length-prefixed messages as their bytes arrive, in pieces or many at once.
#[derive(Default)]
pub(super) struct MessageReader {
    pub(super) buf: Vec<u8>,
}

impl MessageReader {
    /// Takes in what the connection has now, without waiting, up to the end of the next
    /// whole message: the buffer holds at most one message and one read more, and a
    /// message's length is checked against [`proto::MAX_MESSAGE`] as soon as it arrives,
    /// before its bytes are. True if it stopped at a whole message (more may wait), false
    /// if the connection has nothing more now. Err at the connection's end, or on a length
    /// past the limit.
    fn take_from(&mut self, conn: &mut Conn) -> std::io::Result<bool> {
        let mut chunk = [0u8; 64 << 10];
        loop {
            let want = match self.whole()? {
                Some(whole) if self.buf.len() >= whole => return Ok(true),
                Some(whole) => (whole - self.buf.len()).min(chunk.len()),
                None => 4 - self.buf.len(),
            };
            match conn.read_available(&mut chunk[..want]) {
                Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The size of the next message with its length, once the length has arrived; an
    /// error if it is past the limit.
    fn whole(&self) -> std::io::Result<Option<usize>> {
        let Some(prefix) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes(prefix.try_into().expect("4")) as usize;
        proto::check_len(len, proto::MAX_MESSAGE)?;
        Ok(Some(4 + len))
    }

    /// The next whole message, if one has arrived.
    pub(super) fn next(&mut self) -> std::io::Result<Option<FromAgent>> {
        let Some(whole) = self.whole()? else {
            return Ok(None);
        };
        if self.buf.len() < whole {
            return Ok(None);
        }
        let msg = proto::recv::<FromAgent>(&mut &self.buf[..whole], proto::MAX_MESSAGE);
        self.buf.drain(..whole);
        msg.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(run_seq: u64, done_seq: u64) -> Report {
        Report {
            run_seq,
            done_seq,
            ..Report::default()
        }
    }

    #[test]
    fn a_death_report_never_overwrites_results_that_arrived() {
        // Job 3 finished and its results arrived; the worker died idle, or after job 4 was
        // sent but before it began: the mirror keeps job 3's results (a soak once caught
        // them cleared while the driver read them).
        assert_eq!(on_death(&report(3, 3), 3), OnDeath::Nothing);
        // It died in job 4.
        assert_eq!(on_death(&report(4, 3), 3), OnDeath::Running);
        // It finished job 4 and died before its message left.
        assert_eq!(on_death(&report(4, 4), 3), OnDeath::Finished);
        // A fresh worker that died before its first job.
        assert_eq!(on_death(&report(0, 0), 0), OnDeath::Nothing);
        assert_eq!(on_death(&report(1, 0), 0), OnDeath::Running);
        // Every report with a job at or before the last that arrived changes nothing.
        for applied in 0..6 {
            for run in 0..=applied {
                for done in 0..=run {
                    assert_eq!(on_death(&report(run, done), applied), OnDeath::Nothing);
                }
            }
        }
    }
}
