//! The fork server process: its loop over the parent's requests, forking and preparing each
//! worker, and reaping.

use std::collections::HashSet;
use std::io::IoSliceMut;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use crate::exit::ExitCode;
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, kill, killpg, signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
use nix::sys::wait::{Id, WaitPidFlag, WaitStatus, waitid, waitpid};
use nix::unistd::{ForkResult, Pid, fork, getpid, getppid, setpgid};

use super::{EXITED, KILL, MSG_LEN, SPAWN, SPAWNED, decode, encode};

/// The server process: never returns.
pub(super) fn server_main(ctrl: OwnedFd, secret: u64) -> ! {
    match serve(ctrl, secret) {
        Ok(()) => ExitCode::Clean.leave(),
        Err(_) => ExitCode::ServerFailed.leave(),
    }
}

fn serve(ctrl: OwnedFd, secret: u64) -> nix::Result<()> {
    // Orphaned grandchildren are re-parented to us, so we reap them: no zombies.
    nix::sys::prctl::set_child_subreaper(true)?;
    // The server lives exactly as long as the parent (EOF on ctrl): a Ctrl-C aimed at the
    // parent's process group must not take it down first.
    // SAFETY: SIG_IGN installs no handler code; this process is single-threaded.
    unsafe {
        signal(Signal::SIGINT, SigHandler::SigIgn)?;
        signal(Signal::SIGQUIT, SigHandler::SigIgn)?;
        // A write to the parent's closed socket must be an EPIPE, not our death: the server
        // still has every worker group to kill. (Rust's runtime ignores SIGPIPE before
        // `main`, but `init_before_main!` forks us before that; workers inherit this, as
        // every Rust program's threads would.)
        signal(Signal::SIGPIPE, SigHandler::SigIgn)?;
    }
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&chld), None)?;
    let sfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)?;
    crate::sys::close_fds_except(&[ctrl.as_raw_fd(), sfd.as_fd().as_raw_fd()]);

    let mut workers: HashSet<i32> = HashSet::new();
    let server_pid = getpid();
    loop {
        let mut fds = [
            PollFd::new(ctrl.as_fd(), PollFlags::POLLIN),
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
        let ctrl_ready = fds[0].any().unwrap_or(false);
        let chld_ready = fds[1].any().unwrap_or(false);
        if chld_ready {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(&ctrl, &mut workers);
        }
        if ctrl_ready && !handle_request(&ctrl, &mut workers, server_pid, secret) {
            // The parent is gone: take every worker group down with it, then leave.
            for &pid in &workers {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) => std::thread::sleep(Duration::from_millis(1)),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            return Ok(());
        }
    }
}

/// Reaps every child that ended, killing a dead worker's group before reaping the worker
/// (while the zombie leader exists its group id cannot be reused).
fn reap(ctrl: &OwnedFd, workers: &mut HashSet<i32>) {
    loop {
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        let pid = match waitid(Id::All, flags) {
            Ok(WaitStatus::Exited(pid, _)) | Ok(WaitStatus::Signaled(pid, _, _)) => pid,
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(other) => match other.pid() {
                Some(pid) => pid,
                None => return,
            },
        };
        let is_worker = workers.remove(&pid.as_raw());
        if is_worker {
            let _ = killpg(pid, Signal::SIGKILL);
        }
        let status = waitpid(pid, None);
        if is_worker {
            let (kind, value) = match status {
                Ok(WaitStatus::Exited(_, code)) => (0, code as u64),
                Ok(WaitStatus::Signaled(_, sig, _)) => (1, sig as i32 as u64),
                _ => (1, Signal::SIGKILL as i32 as u64),
            };
            let _ = nix::unistd::write(ctrl, &encode(EXITED, pid.as_raw() as u64, kind, value));
        }
    }
}

/// Handles one request; false when the parent is gone.
fn handle_request(
    ctrl: &OwnedFd,
    workers: &mut HashSet<i32>,
    server_pid: Pid,
    secret: u64,
) -> bool {
    let mut m = [0u8; MSG_LEN];
    let mut cmsg_buf = nix::cmsg_space!([RawFd; 7]);
    let (n, fds) = {
        let mut iov = [IoSliceMut::new(&mut m)];
        match recvmsg::<()>(
            ctrl.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg_buf),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds: Vec<OwnedFd> = Vec::new();
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(raw) = c {
                            // SAFETY: SCM_RIGHTS just installed these descriptors in this
                            // process; nothing else owns them.
                            fds.extend(
                                raw.into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                }
                (msg.bytes, fds)
            }
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => return true,
            Err(_) => return false,
        }
    };
    if n == 0 {
        return false;
    }
    if n != MSG_LEN {
        return true;
    }
    match decode(&m) {
        (SPAWN, token, memory_limit, flags) => {
            let exec = flags & 1 == 1;
            let reply = match WorkerFds::try_from(fds) {
                Ok(fds) => match spawn_worker(fds, memory_limit, exec, server_pid, secret) {
                    Ok(pid) => {
                        workers.insert(pid.as_raw());
                        encode(SPAWNED, token, pid.as_raw() as u64, 0)
                    }
                    Err(e) => encode(SPAWNED, token, 0, e as i32 as u64),
                },
                Err(_) => encode(SPAWNED, token, 0, Errno::EINVAL as i32 as u64),
            };
            let _ = nix::unistd::write(ctrl, &reply);
        }
        (KILL, pid, sig, _) => {
            let pid = pid as i32;
            if workers.contains(&pid) {
                if let Ok(sig) = Signal::try_from(sig as i32) {
                    if killpg(Pid::from_raw(pid), sig).is_err() {
                        let _ = kill(Pid::from_raw(pid), sig);
                    }
                }
            }
        }
        _ => {}
    }
    true
}

/// The descriptors a worker is started with.
struct WorkerFds {
    requests: OwnedFd,
    doorbell: OwnedFd,
    stderr: OwnedFd,
    arena: OwnedFd,
    /// Where the parent puts a large job's arguments.
    inbox: OwnedFd,
    /// The memfds that become its stdout and stderr when the pool captures task output.
    capture: Option<(OwnedFd, OwnedFd)>,
}

impl TryFrom<Vec<OwnedFd>> for WorkerFds {
    type Error = ();

    fn try_from(fds: Vec<OwnedFd>) -> Result<Self, ()> {
        let mut fds = fds.into_iter();
        let mut next = || fds.next().ok_or(());
        let (requests, doorbell, stderr, arena) = (next()?, next()?, next()?, next()?);
        let inbox = next()?;
        let capture = match (next(), next()) {
            (Ok(out), Ok(err)) => Some((out, err)),
            (Err(()), Err(())) => None,
            _ => return Err(()),
        };
        Ok(WorkerFds {
            requests,
            doorbell,
            stderr,
            arena,
            inbox,
            capture,
        })
    }
}

fn spawn_worker(
    fds: WorkerFds,
    memory_limit: u64,
    exec: bool,
    server_pid: Pid,
    secret: u64,
) -> nix::Result<Pid> {
    if exec {
        // Known before the fork, so each worker need not read the binary again.
        crate::image::identity();
    }
    // SAFETY: the server is single-threaded, so the child is a complete copy of it.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => {
            // Set the group from both sides so a KILL that arrives before the child ran
            // its own setpgid still reaches the right group.
            let _ = setpgid(child, child);
            Ok(child)
        }
        ForkResult::Child => {
            let WorkerFds {
                requests,
                doorbell,
                stderr,
                arena,
                inbox,
                capture,
            } = fds;
            let ok = prepare_worker(&stderr, memory_limit, server_pid).is_ok();
            if !ok {
                ExitCode::PrepareFailed.leave()
            }
            if exec {
                let capturing = capture.is_some();
                let mut fds = vec![requests, doorbell, arena, inbox];
                if let Some((out, err)) = capture {
                    fds.extend([stderr, out, err]);
                }
                crate::sys::close_fds_except(
                    &fds.iter().map(|f| f.as_raw_fd()).collect::<Vec<_>>(),
                );
                let why = crate::exec::exec_worker(fds, capturing, secret);
                let _ = nix::unistd::write(
                    std::io::stderr(),
                    format!("proctor: could not re-execute the program as a worker: {why}\n")
                        .as_bytes(),
                );
                ExitCode::ExecFailed.leave()
            }
            let mut keep = vec![
                requests.as_raw_fd(),
                doorbell.as_raw_fd(),
                arena.as_raw_fd(),
                inbox.as_raw_fd(),
            ];
            let capture = match capture {
                Some((out, err)) => {
                    // The pipe stays as the worker's own channel (for the pool's messages),
                    // and the task's fd 1 and 2 write to the memfds.
                    keep.extend([stderr.as_raw_fd(), out.as_raw_fd(), err.as_raw_fd()]);
                    Some(crate::worker::Capture {
                        diag: stderr,
                        out,
                        err,
                    })
                }
                None => {
                    // Already fd 2.
                    drop(stderr);
                    None
                }
            };
            crate::sys::close_fds_except(&keep);
            crate::worker::worker_main(crate::worker::WorkerEnds {
                requests: crate::worker::Requests::Pipe(requests),
                doorbell,
                arena,
                inbox,
                capture,
                secret,
            })
        }
    }
}

fn prepare_worker(stderr: &OwnedFd, memory_limit: u64, server_pid: Pid) -> nix::Result<()> {
    setpgid(Pid::from_raw(0), Pid::from_raw(0))?;
    // Die with the server. PR_SET_PDEATHSIG fires when the *thread* that forked us exits;
    // the server has exactly one thread, so that is the server's death.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)?;
    if getppid() != server_pid {
        // The server died between fork and prctl.
        return Err(Errno::ESRCH);
    }
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
    // SAFETY: SIG_DFL installs no handler code; this process is single-threaded.
    unsafe {
        signal(Signal::SIGINT, SigHandler::SigDfl)?;
        signal(Signal::SIGQUIT, SigHandler::SigDfl)?;
    }
    nix::unistd::dup2_stderr(stderr)?;
    if memory_limit > 0 {
        // RLIMIT_DATA counts the heap and private mappings but not the shared arena, so the
        // limit is about what the task allocates.
        nix::sys::resource::setrlimit(
            nix::sys::resource::Resource::RLIMIT_DATA,
            memory_limit,
            memory_limit,
        )?;
    }
    Ok(())
}
