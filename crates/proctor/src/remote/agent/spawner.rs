//! The spawner: the process an agent's workers are forked from, forked before the agent
//! parses the secret so that it never holds it (see [`Spawner`]), and the start of each
//! worker it forks (its descriptors, its one-time key, its own connection to the pool).
//! The agent imports [`Spawner`] and [`SpawnRequest`].

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::{ForkResult, Pid, fork, getppid, setpgid};
use serde::{Deserialize, Serialize};

use crate::exit::ExitCode;
use crate::remote::proto::{Claim, Hi, KEY_LEN, Token};
use zeroize::{Zeroize, Zeroizing};

use super::dial;

/// What the spawner needs to start one worker (its descriptors travel beside it).
#[derive(Serialize, Deserialize)]
pub(super) struct SpawnRequest {
    pub(super) addr: String,
    pub(super) slot: u32,
    pub(super) token: Token,
    pub(super) key: [u8; KEY_LEN],
    pub(super) pin: Option<[u8; KEY_LEN]>,
    pub(super) anchor: u64,
    pub(super) frame_secret: u64,
    pub(super) memory_limit: Option<u64>,
    pub(super) agent: i32,
}

impl Drop for SpawnRequest {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

/// The process the agent's workers are forked from. It is forked from the agent before the
/// agent parses the pool's secret, and zeroes the one copy it inherits (the environment
/// variable's value; the environment block itself was overwritten before the fork), so
/// neither it nor a worker ever holds the secret or a key derived from it that could
/// open a new connection: a worker gets its one-time key, which the pool accepts once —
/// for the worker's own connection, made before its first task.
///
/// For each request it forks a helper that forks the worker and leaves at once, so that
/// the worker is re-parented to the agent (a child subreaper), which waits for it, kills
/// its process group and reads its arena as before.
pub(super) struct Spawner {
    sock: OwnedFd,
    pid: Pid,
}

/// Descriptors of one request: the doorbell, the arena, the inbox, the stderr pipe.
const SPAWN_FDS: usize = 4;

/// How long the agent waits for the spawner's answer.
const SPAWN_ANSWER_WAIT: Duration = Duration::from_secs(5);

impl Spawner {
    pub(super) fn start(secret_copy: &mut Option<Zeroizing<String>>) -> Result<Spawner, String> {
        let (ours, theirs) = crate::sys::seqpacket_pair("the spawner's socket")?;
        let agent = Pid::this();
        // SAFETY: the agent has one thread (checked in `run`), so the child is a complete
        // copy of it and may run any code.
        match unsafe { fork() }.map_err(|e| format!("could not fork the spawner: {e}"))? {
            ForkResult::Parent { child } => Ok(Spawner {
                sock: ours,
                pid: child,
            }),
            ForkResult::Child => {
                if let Some(copy) = secret_copy.as_mut() {
                    copy.zeroize();
                }
                drop(ours);
                let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
                if getppid() != agent {
                    ExitCode::Clean.leave()
                }
                spawner_main(theirs)
            }
        }
    }

    /// Asks for a worker; its pid once forked.
    pub(super) fn spawn(
        &mut self,
        request: SpawnRequest,
        fds: &[RawFd; SPAWN_FDS],
    ) -> Result<Pid, String> {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let body = Zeroizing::new(postcard::to_allocvec(&request).map_err(|e| e.to_string())?);
        drop(request);
        let iov = [std::io::IoSlice::new(&body)];
        sendmsg::<()>(
            self.sock.as_raw_fd(),
            &iov,
            &[ControlMessage::ScmRights(fds)],
            MsgFlags::empty(),
            None,
        )
        .map_err(|e| format!("could not reach the spawner: {e}"))?;
        let mut fd = [nix::poll::PollFd::new(
            self.sock.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let ms = SPAWN_ANSWER_WAIT.as_millis() as u16;
        if !matches!(nix::poll::poll(&mut fd, ms), Ok(n) if n > 0) {
            return Err("the spawner did not answer".into());
        }
        let mut answer = [0u8; 512];
        let n = nix::unistd::read(&self.sock, &mut answer)
            .map_err(|e| format!("the spawner's answer: {e}"))?;
        match answer.get(..n) {
            Some([0, pid @ ..]) if pid.len() == 4 => Ok(Pid::from_raw(i32::from_le_bytes(
                pid.try_into().expect("4 bytes"),
            ))),
            Some([1, why @ ..]) => Err(String::from_utf8_lossy(why).into_owned()),
            _ => Err("the spawner's answer is not the protocol".into()),
        }
    }

    pub(super) fn stop(&mut self) {
        let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// The spawner's loop: a request (and its descriptors) in, a worker forked, its pid out;
/// until the agent closes the socket.
fn spawner_main(sock: OwnedFd) -> ! {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    loop {
        let mut body = Zeroizing::new(vec![0u8; 4096]);
        let mut space = nix::cmsg_space!([RawFd; SPAWN_FDS]);
        let (n, fds) = {
            let mut iov = [std::io::IoSliceMut::new(&mut body)];
            match recvmsg::<()>(
                sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::empty(),
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(got) = c {
                                // SAFETY: the kernel just installed these descriptors in
                                // this process for this message; nothing else owns them.
                                fds.extend(got.into_iter().map(|fd| unsafe {
                                    <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd)
                                }));
                            }
                        }
                    }
                    (msg.bytes, fds)
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        };
        if n == 0 {
            break;
        }
        let answer = match (
            postcard::from_bytes::<SpawnRequest>(&body[..n]),
            <[OwnedFd; SPAWN_FDS]>::try_from(fds),
        ) {
            (Ok(request), Ok(fds)) => match fork_worker(&sock, request, fds) {
                Ok(pid) => {
                    let mut a = vec![0u8];
                    a.extend_from_slice(&pid.as_raw().to_le_bytes());
                    a
                }
                Err(why) => {
                    let mut a = vec![1u8];
                    a.extend_from_slice(why.as_bytes());
                    a
                }
            },
            _ => b"\x01a spawn request that is not the protocol".to_vec(),
        };
        if nix::unistd::write(&sock, &answer).is_err() {
            break;
        }
    }
    ExitCode::Clean.leave()
}

/// Forks the helper that forks the worker; the worker's pid.
fn fork_worker(
    sock: &OwnedFd,
    request: SpawnRequest,
    fds: [OwnedFd; SPAWN_FDS],
) -> Result<Pid, String> {
    let (pid_r, pid_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)
        .map_err(|e| format!("could not create a pipe: {e}"))?;
    // SAFETY: the spawner has one thread (it is a fork of the single-threaded agent and
    // starts none), so the child may run any code.
    match unsafe { fork() }.map_err(|e| format!("could not fork a worker: {e}"))? {
        ForkResult::Parent { child } => {
            drop(pid_w);
            let _ = waitpid(child, None);
            let mut pid = [0u8; 4];
            match nix::unistd::read(&pid_r, &mut pid) {
                Ok(4) => Ok(Pid::from_raw(i32::from_le_bytes(pid))),
                _ => Err("could not fork a worker".into()),
            }
        }
        ForkResult::Child => {
            // SAFETY: as above: this helper has one thread.
            match unsafe { fork() } {
                Ok(ForkResult::Parent { child }) => {
                    let _ = nix::unistd::write(&pid_w, &child.as_raw().to_le_bytes());
                    // The helper's work is done: its leaving hands the worker to the agent.
                    ExitCode::Clean.leave()
                }
                Ok(ForkResult::Child) => {
                    drop((pid_r, pid_w));
                    worker(sock, request, fds)
                }
                Err(_) => ExitCode::PrepareFailed.leave(),
            }
        }
    }
}

/// The worker's side: once the agent is its parent, it prepares as a local worker does,
/// connects to the pool with its one-time key, and runs jobs.
fn worker(spawner: &OwnedFd, request: SpawnRequest, fds: [OwnedFd; SPAWN_FDS]) -> ! {
    let [bell, arena, inbox, err_w] = fds;
    let agent = Pid::from_raw(request.agent);
    let deadline = Instant::now() + Duration::from_secs(2);
    while getppid() != agent && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if prepare(&err_w, request.memory_limit, agent).is_err() {
        ExitCode::PrepareFailed.leave()
    }
    drop(err_w);
    crate::image::relocate_from(request.anchor);
    let claim = Claim::Worker {
        slot: request.slot,
        token: request.token,
    };
    let data = match dial(&request.addr, &request.key, request.pin, &claim, &Hi::Data) {
        Ok(conn) => conn,
        Err(why) => {
            let line = format!("{}{why}\n", crate::exec::START_FAILED_LINE);
            let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
            ExitCode::StartFailed.leave()
        }
    };
    let frame_secret = request.frame_secret;
    // The key is spent (the pool accepts it once): zeroed all the same.
    drop(request);
    let _ = spawner;
    let keep = [
        data.socket().as_raw_fd(),
        bell.as_raw_fd(),
        arena.as_raw_fd(),
        inbox.as_raw_fd(),
    ];
    crate::sys::close_fds_except(&keep);
    let (bell_fd, arena_fd, inbox_fd) = (
        dup_cloexec(bell.as_raw_fd()),
        dup_cloexec(arena.as_raw_fd()),
        dup_cloexec(inbox.as_raw_fd()),
    );
    crate::worker::worker_main(crate::worker::WorkerEnds {
        requests: crate::worker::Requests::Remote(Box::new(Uplink {
            conn: data,
            msg: Vec::new(),
        })),
        doorbell: bell_fd,
        arena: arena_fd,
        inbox: inbox_fd,
        capture: None,
        secret: frame_secret,
    })
}

/// A close-on-exec duplicate of `fd`, for the forked worker to own (what its tasks start
/// must not inherit it).
fn dup_cloexec(fd: std::os::fd::RawFd) -> OwnedFd {
    // SAFETY: `fd` belongs to a mapping that lives until the worker exits (`worker_main`
    // never returns), so it stays open while borrowed.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    match fcntl(borrowed, FcntlArg::F_DUPFD_CLOEXEC(3)) {
        // SAFETY: fcntl just made this descriptor; nothing else owns it.
        Ok(raw) => unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) },
        // The forked worker leaves at once.
        Err(_) => ExitCode::PrepareFailed.leave(),
    }
}

/// The worker's side of the fork, as the fork server prepares a local worker: its own
/// process group, death with the agent, default signals, stderr to the agent's pipe, and
/// the memory limit.
fn prepare(stderr: &OwnedFd, memory_limit: Option<u64>, agent: Pid) -> nix::Result<()> {
    use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, signal, sigprocmask};
    setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    // The agent has one thread, so its thread's death (which PR_SET_PDEATHSIG watches) is
    // the agent's.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if getppid() != agent {
        return Err(nix::errno::Errno::ESRCH);
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    // SAFETY: SIG_DFL installs no handler code; this process is single-threaded.
    unsafe {
        signal(Signal::SIGINT, SigHandler::SigDfl)?;
        signal(Signal::SIGQUIT, SigHandler::SigDfl)?;
    }
    nix::unistd::dup2_stderr(stderr)?;
    // The launcher's stdin may still hold the secret's line (the command launcher writes it
    // there and in the environment, and the agent read only one): tasks get nothing there.
    let null = nix::fcntl::open(
        "/dev/null",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    nix::unistd::dup2_stdin(&null)?;
    if let Some(limit) = memory_limit {
        nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_DATA, limit, limit)?;
    }
    Ok(())
}

/// The worker's connection to the pool: what it reads, and where its `done` messages go.
#[derive(Debug)]
struct Uplink {
    conn: crate::remote::conn::Conn,
    /// The last `done` message, kept for its capacity.
    msg: Vec<u8>,
}

impl std::io::Read for Uplink {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.conn.read(buf)
    }
}

impl crate::worker::Uplink for Uplink {
    fn send_done(
        &mut self,
        seq: u64,
        started: u64,
        committed: u64,
        records: &[u8],
    ) -> std::io::Result<()> {
        crate::remote::proto::done(&mut self.msg, seq, started, committed, records);
        std::io::Write::write_all(&mut self.conn, &self.msg)
    }
}
