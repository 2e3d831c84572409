//! The layers that act on the whole worker process: rlimits, a fresh network namespace, and
//! every capability dropped.

use super::{LayerStatus, Sandbox};

/// Every capability dropped: the bounding and ambient sets (where the worker may change
/// them), then the effective, permitted and inheritable ones. A worker of a pool run as root,
/// or one inside the user namespace of the network layer (where it holds every capability
/// of that namespace: `CAP_NET_RAW` opened raw sockets there), keeps none.
pub(super) fn drop_capabilities(s: &Sandbox) -> LayerStatus {
    // The bounding set only matters to a program the worker execs, and no exec is possible
    // without `processes(true)`; even then no_new_privs keeps an exec from gaining more than
    // the (empty) permitted set. Dropped all the same where exec is allowed; skipped
    // elsewhere, since a prctl per capability was a fifth of a sandboxed worker's start.
    for cap in (0..64).take_while(|_| s.processes) {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
        {
            // Past the last capability this kernel knows. (EPERM: no CAP_SETPCAP, so the
            // set is out of this process's reach, and no_new_privs keeps exec from using it.)
            break;
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two `Data`, for capabilities 0-31 and 32-63.
    let header = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [Data::default(); 2];
    // SAFETY: capset(2) reads one header and, for version 3, two data structs, laid out
    // as the kernel's `__user_cap_header_struct` and `__user_cap_data_struct`.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &header, data.as_ptr()) };
    if rc == 0 {
        LayerStatus::Applied
    } else {
        LayerStatus::Unavailable(format!("capset: {}", std::io::Error::last_os_error()))
    }
}

pub(super) fn rlimits(s: &Sandbox) -> LayerStatus {
    use nix::sys::resource::{Resource, setrlimit};
    // Under a memory limit, no file the worker can grow (its result arena, its captured
    // output) grows past it either: shared memory that `RLIMIT_DATA` does not count.
    let file_size = match (s.file_size, s.memory_limit) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if s.memory_limit.is_some() {
        // A write past the limit then fails (EFBIG), rather than killing the worker with
        // SIGXFSZ before its task's outcome is written.
        // SAFETY: SIG_IGN installs no handler code; the worker has one thread.
        if let Err(e) = unsafe {
            nix::sys::signal::signal(
                nix::sys::signal::Signal::SIGXFSZ,
                nix::sys::signal::SigHandler::SigIgn,
            )
        } {
            return LayerStatus::Unavailable(format!("SIGXFSZ: {e}"));
        }
    }
    // Under a memory limit, the address space too may grow by no more than the limit from
    // what the worker maps now: every page a task can touch is mapped (its heap, and shared
    // mappings, which RLIMIT_DATA does not count), and the filter keeps it from filling
    // shared files without a mapping (see `argument_rules`).
    let address_space = match s.memory_limit {
        Some(limit) => match crate::sys::address_space_bytes() {
            Some(now) => Some(now.saturating_add(limit)),
            None => {
                return LayerStatus::Unavailable("VmSize unreadable in /proc/self/status".into());
            }
        },
        None => None,
    };
    let limits = [
        (Resource::RLIMIT_CPU, s.cpu_seconds),
        (Resource::RLIMIT_NOFILE, s.open_files),
        (Resource::RLIMIT_NPROC, s.max_processes),
        (Resource::RLIMIT_FSIZE, file_size),
        (Resource::RLIMIT_AS, address_space),
    ];
    if limits.iter().all(|(_, v)| v.is_none()) {
        return LayerStatus::NotAsked;
    }
    for (resource, value) in limits {
        if let Some(v) = value {
            if let Err(e) = setrlimit(resource, v, v) {
                return LayerStatus::Unavailable(format!("{resource:?}: {e}"));
            }
        }
    }
    LayerStatus::Applied
}

/// A fresh network namespace: directly where the process may (CAP_SYS_ADMIN), else inside a
/// new user namespace (where the kernel allows unprivileged ones), mapping our own ids.
pub(super) fn network_namespace() -> LayerStatus {
    use nix::sched::{CloneFlags, unshare};
    let direct = match unshare(CloneFlags::CLONE_NEWNET) {
        Ok(()) => return LayerStatus::Applied,
        Err(e) => e,
    };
    match in_user_namespace(CloneFlags::CLONE_NEWNET) {
        Ok(()) => LayerStatus::Applied,
        Err(why) => LayerStatus::Unavailable(format!(
            "unshare(CLONE_NEWNET): {direct}; in a new user namespace: {why}"
        )),
    }
}

/// Unshares `what` together with a new user namespace, mapping our own ids, for a process
/// without the privilege to unshare `what` alone. (The capabilities this gives in the new
/// namespace are dropped by the capabilities layer.)
pub(super) fn in_user_namespace(what: nix::sched::CloneFlags) -> Result<(), String> {
    use nix::sched::{CloneFlags, unshare};
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    unshare(CloneFlags::CLONE_NEWUSER | what).map_err(|e| e.to_string())?;
    let write =
        |file: &str, text: String| std::fs::write(file, text).map_err(|e| format!("{file}: {e}"));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", format!("{uid} {uid} 1"))?;
    write("/proc/self/gid_map", format!("{gid} {gid} 1"))
}
