//! The `exec` start method: a worker re-executes the program's own binary, for an address
//! space that holds nothing of the parent's (no inherited heap, no copies of secrets, its
//! own ASLR layout).
//!
//! The fork server forks the worker as usual (process group, death signal, memory limit,
//! stderr pipe), then `execve`s `/proc/self/exe` with the worker's descriptors at fixed
//! numbers ([`FIRST_FD`] on) and one environment variable, [`MARKER`]. The new program runs
//! its `main` until [`crate::init`], which finds the marker and becomes the worker: it never
//! returns to `main`.
//!
//! Functions travel as they do between forks, as addresses in the parent's layout. ASLR
//! moves the whole binary by one offset, so the worker adds the distance between its own
//! [`anchor`] and the parent's. That only holds for the same build of the same binary, so
//! the marker carries the binary's identity (its GNU build id, read from the ELF notes) and
//! a worker of another build refuses to start, with a message that says so, rather than
//! jump to a wrong address.

use std::ffi::CString;
use std::os::fd::{AsFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::exit::ExitCode;
use nix::fcntl::{FcntlArg, fcntl};

/// The environment variable that makes a re-executed program a worker.
pub(crate) const MARKER: &str = "PROCTOR_EXEC_WORKER";

/// The worker's descriptors start here: requests, doorbell, arena, inbox, then (capturing
/// output) the stderr pipe, stdout memfd and stderr memfd.
const FIRST_FD: RawFd = 3;

/// What a worker's stderr says before it exits with [`ExitCode::StartFailed`].
pub(crate) const START_FAILED_LINE: &str = "proctor: the worker could not start: ";

use crate::image::{anchor_address, identity, relocate_from};

/// The marker's value: the worker's pid (a child that inherits the variable is someone
/// else), the pool's secret, the parent's anchor, the binary's identity and whether the
/// worker captures output.
fn marker(pid: i32, secret: u64, capture: bool) -> String {
    format!(
        "1 {pid} {secret:x} {:x} {} {}",
        anchor_address(),
        identity(),
        u8::from(capture)
    )
}

/// In the fork server's child: re-executes the binary as a worker on `fds` (see
/// [`FIRST_FD`]). Returns only the reason it could not.
pub(crate) fn exec_worker(fds: Vec<OwnedFd>, capture: bool, secret: u64) -> std::io::Error {
    // Every descriptor but 0-2 and these is closed: move these above the fixed range, then
    // down into it in order (F_DUPFD takes the lowest free number at or above the one
    // asked for, so the n-th lands on FIRST_FD + n), without close-on-exec.
    let high: Result<Vec<OwnedFd>, _> = fds
        .iter()
        .map(|fd| {
            fcntl(fd.as_fd(), FcntlArg::F_DUPFD_CLOEXEC(FIRST_FD + 64)).map(|raw| {
                // SAFETY: fcntl just made this descriptor; nothing else owns it.
                unsafe { OwnedFd::from_raw_fd(raw) }
            })
        })
        .collect();
    let high = match high {
        Ok(h) => h,
        Err(e) => return e.into(),
    };
    drop(fds);
    for (k, fd) in high.iter().enumerate() {
        match fcntl(fd.as_fd(), FcntlArg::F_DUPFD(FIRST_FD + k as RawFd)) {
            Ok(got) if got == FIRST_FD + k as RawFd => {}
            Ok(_) => return std::io::Error::other("a worker descriptor landed out of place"),
            Err(e) => return e.into(),
        }
    }
    let argv: Vec<CString> = match std::fs::read("/proc/self/cmdline") {
        Ok(raw) => raw
            .split(|&b| b == 0)
            .filter(|a| !a.is_empty())
            .filter_map(|a| CString::new(a).ok())
            .collect(),
        Err(e) => return e,
    };
    let argv = if argv.is_empty() {
        vec![CString::new("proctor-worker").expect("no NUL")]
    } else {
        argv
    };
    let pid = std::process::id() as i32;
    let mut env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MARKER)
        .filter_map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).ok()
        })
        .collect();
    env.push(
        CString::new(format!("{MARKER}={}", marker(pid, secret, capture)))
            .expect("the marker has no NUL"),
    );
    let exe = c"/proc/self/exe";
    match nix::unistd::execve(exe, &argv, &env) {
        Err(e) => e.into(),
        Ok(never) => match never {},
    }
}

/// The marker's fields, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Marker<'a> {
    pid: i32,
    secret: u64,
    anchor: u64,
    identity: &'a str,
    capture: bool,
}

fn parse(value: &str) -> Option<Marker<'_>> {
    let mut f = value.split(' ');
    if f.next()? != "1" {
        return None;
    }
    let m = Marker {
        pid: f.next()?.parse().ok()?,
        secret: u64::from_str_radix(f.next()?, 16).ok()?,
        anchor: u64::from_str_radix(f.next()?, 16).ok()?,
        identity: f.next()?,
        capture: match f.next()? {
            "0" => false,
            "1" => true,
            _ => return None,
        },
    };
    f.next().is_none().then_some(m)
}

/// In [`crate::init`]: if this process was re-executed as a worker, becomes it and never
/// returns. A process that merely inherited the marker (another pid) goes on as itself.
pub(crate) fn become_worker_if_asked() {
    let Some(value) = std::env::var_os(MARKER) else {
        return;
    };
    let value = value.to_string_lossy().into_owned();
    let refuse = |why: &str| -> ! {
        let line = format!("{START_FAILED_LINE}{why}\n");
        // fd 2 is the worker's stderr pipe, which the parent reads.
        let _ = nix::unistd::write(std::io::stderr(), line.as_bytes());
        // Nothing of `main` ran that needs unwinding; the parent learns why from the line
        // above and the exit code.
        ExitCode::StartFailed.leave()
    };
    // Only the fork server writes the marker, so one that does not parse was set by hand:
    // this process is not a worker.
    let Some(m) = parse(&value) else {
        return;
    };
    if m.pid != std::process::id() as i32 {
        return;
    }
    if m.identity != identity() {
        refuse(&format!(
            "this program is another build than the pool's ({}, the pool runs {}), so \
             functions cannot be found by address",
            identity(),
            m.identity
        ));
    }
    if crate::sys::thread_count() == Some(1) {
        // SAFETY: this process has one thread (just checked), so nothing reads the
        // environment while it changes. Children of the tasks must not see the marker.
        unsafe { std::env::remove_var(MARKER) };
    }
    relocate_from(m.anchor);
    let fd = |k: RawFd| {
        // SAFETY: the fork server put the worker's descriptors at these numbers before
        // exec (see `exec_worker`), and only this worker, started just now, owns them.
        unsafe { OwnedFd::from_raw_fd(FIRST_FD + k) }
    };
    let (requests, doorbell, arena, inbox) = (fd(0), fd(1), fd(2), fd(3));
    for own in [&requests, &doorbell, &arena, &inbox] {
        // Not to be inherited by what the tasks start.
        let _ = fcntl(
            own.as_fd(),
            FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    let capture = m.capture.then(|| crate::worker::Capture {
        diag: fd(4),
        out: fd(5),
        err: fd(6),
    });
    if let Some(c) = &capture {
        for own in [&c.diag, &c.out, &c.err] {
            let _ = fcntl(
                own.as_fd(),
                FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
        }
    }
    crate::worker::worker_main(crate::worker::WorkerEnds {
        requests: crate::worker::Requests::Pipe(requests),
        doorbell,
        arena,
        inbox,
        capture,
        secret: m.secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_reads_back_what_was_written_and_nothing_else() {
        let written = marker(4242, 0xdead_beef, true);
        let m = parse(&written).expect("a marker parses");
        assert_eq!(
            m,
            Marker {
                pid: 4242,
                secret: 0xdead_beef,
                anchor: anchor_address(),
                identity: identity(),
                capture: true,
            }
        );
        for bad in [
            "",
            "2 1 1 1 build-id:00 0",
            "1 x 1 1 build-id:00 0",
            "1 1 1 1 build-id:00 2",
            "1 1 1 1 build-id:00 0 extra",
            "1 1 1 1 build-id:00",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_identity_of_a_test_binary_is_its_build_id() {
        // Cargo's test binaries are linked with a GNU build id on Linux.
        let id = identity();
        assert!(id.starts_with("build-id:") && id.len() > 20, "{id}");
        assert_eq!(identity(), id, "computed once");
    }
}
