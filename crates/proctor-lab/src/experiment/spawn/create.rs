//! The creation primitives the spawn experiment times: a thread, `fork`, `vfork` and
//! `clone(CLONE_VM)`, each returning once the child has been reaped, with the moment the create
//! call returned in the parent and, where the child can tell, the CPU its first instruction ran
//! on.
//!
//! **What a child may do.** The lab is a multi-threaded process, so a forked child may only make
//! async-signal-safe calls (signal-safety(7)): here `getcpu` and `_exit`, as raw system calls. A
//! child of `clone(CLONE_VM)` (with or without `CLONE_VFORK`) is stricter still: it runs in the
//! parent's memory on a stack of its own, with the parent's thread pointer, so it must not touch
//! anything thread-local (not even `errno`) or anything the parent may be using. Its function
//! returns a constant, and glibc's `clone` wrapper ends it with the raw `exit` system call, which
//! runs no handler and touches no memory (glibc `sysdeps/unix/sysv/linux/x86_64/clone.S`).
//!
//! **Across CPUs** a child must start on another CPU than its parent's, which a child
//! inheriting its parent's CPU mask does not. A thread is made with glibc's
//! `pthread_attr_setaffinity_np`: the new thread waits until its parent has set its CPU, so its
//! body always runs there (std's spawn offers no such attribute, so this op is `pthread_create`
//! and `pthread_join` with std's 2 MiB stack). A forked child is moved by the parent with one
//! `sched_setaffinity` right after `fork` returns (the kernel offers no way to fork elsewhere),
//! whose time is kept apart; a child that ran before it was moved says so by its CPU.
//!
//! **The child's CPU** travels in its exit status (`getcpu` + 1, so that 0 never means "ran");
//! the thread returns it from its closure. `clone(CLONE_VM)` children do not report it (the
//! `syscall` wrapper would write the parent's `errno` on a failure), so they are only measured
//! with parent and child pinned to one CPU, where the CPU is known.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sched::{CpuSet, sched_setaffinity};
use nix::sys::mman::{MapFlags, ProtFlags, mmap_anonymous, munmap};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork};

/// One creation, reaped: when the create call returned in the parent, and the child's CPU.
#[derive(Debug, Clone, Copy)]
pub(super) struct Created {
    /// The moment the create call (`spawn`, `fork`) returned in the parent.
    pub launched: Instant,
    /// The CPU the child's first instruction ran on, where it reported one.
    pub child_cpu: Option<usize>,
    /// How long moving the child to another CPU took, when it was moved.
    pub moved: Option<Duration>,
}

/// A CPU set holding `cpu` alone.
fn only(cpu: usize) -> Result<CpuSet> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .with_context(|| format!("cpu {cpu} is out of range"))?;
    Ok(set)
}

/// The exit code that says "ran, CPU unknown".
const CPU_UNKNOWN: i32 = 255;

/// The calling task's CPU by the raw `getcpu` system call (no vDSO, no rseq area, which a
/// child need not share with the parent's view); `None` when it fails.
fn raw_getcpu() -> Option<usize> {
    let mut cpu: libc::c_uint = 0;
    // SAFETY: getcpu writes one unsigned int through its first pointer; the node and cache
    // pointers may be null. Only called in a thread or in a forked child (own memory), where
    // the wrapper's errno write on a failure is harmless.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_getcpu,
            &raw mut cpu,
            std::ptr::null_mut::<libc::c_uint>(),
            std::ptr::null_mut::<libc::c_void>(),
        )
    };
    (rc == 0).then_some(cpu as usize)
}

/// A CPU as an exit code: `cpu + 1`, or [`CPU_UNKNOWN`].
fn cpu_code(cpu: Option<usize>) -> i32 {
    match cpu {
        Some(c) if c < CPU_UNKNOWN as usize - 1 => c as i32 + 1,
        _ => CPU_UNKNOWN,
    }
}

/// Reaps `child` and reads the CPU from its exit code; anything but a code of 1..=255 means
/// the child did not run to its end.
fn reap(child: Pid) -> Result<Option<usize>> {
    match waitpid(child, None).context("waitpid")? {
        WaitStatus::Exited(_, CPU_UNKNOWN) => Ok(None),
        WaitStatus::Exited(_, code) if code >= 1 => Ok(Some(code as usize - 1)),
        other => bail!("the child did not exit as planned: {other:?}"),
    }
}

/// A thread on `cpu` from its first instruction: `pthread_create` with the affinity
/// attribute (glibc sets the new thread's CPU while the thread waits for it) and std's 2 MiB
/// stack, then `pthread_join`; the thread returns its CPU.
#[cfg(target_env = "gnu")]
pub(super) fn thread_on(cpu: usize) -> Result<Created> {
    extern "C" fn start(_arg: *mut libc::c_void) -> *mut libc::c_void {
        // The CPU + 1 as the thread's return value (0: unknown).
        crate::topology::current_cpu().map_or(0, |c| c + 1) as *mut libc::c_void
    }
    let set = only(cpu)?;
    let mut attr = std::mem::MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: `attr` is initialised by pthread_attr_init before any other use and destroyed
    // once below; `set` is a valid cpu_set_t (CpuSet is a transparent wrapper) of the size
    // given; `start` is a valid thread function that touches nothing but its return value.
    let (rc, tid) = unsafe {
        if libc::pthread_attr_init(attr.as_mut_ptr()) != 0 {
            bail!("pthread_attr_init failed");
        }
        libc::pthread_attr_setstacksize(attr.as_mut_ptr(), 2 << 20);
        libc::pthread_attr_setaffinity_np(
            attr.as_mut_ptr(),
            std::mem::size_of::<libc::cpu_set_t>(),
            std::ptr::from_ref(&set).cast::<libc::cpu_set_t>(),
        );
        let mut tid: libc::pthread_t = 0;
        let rc = libc::pthread_create(&mut tid, attr.as_ptr(), start, std::ptr::null_mut());
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        (rc, tid)
    };
    let launched = Instant::now();
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("pthread_create");
    }
    let mut ret: *mut libc::c_void = std::ptr::null_mut();
    // SAFETY: `tid` is a joinable thread created above and joined exactly once; `ret` is a
    // valid out-pointer.
    let rc = unsafe { libc::pthread_join(tid, &mut ret) };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc)).context("pthread_join");
    }
    Ok(Created {
        launched,
        child_cpu: (ret as usize).checked_sub(1),
        moved: None,
    })
}

/// `std::thread::spawn` + `join`; the thread returns its CPU. With `move_to`, the thread is made
/// on that CPU: by [`thread_on`] where glibc offers it, else moved right after `spawn` returns
/// (`pthread_setaffinity_np`; a thread that already ran to its end cannot be moved, which its
/// CPU shows).
pub(super) fn thread(move_to: Option<usize>) -> Result<Created> {
    #[cfg(target_env = "gnu")]
    if let Some(cpu) = move_to {
        return thread_on(cpu);
    }
    use std::os::unix::thread::JoinHandleExt;
    let input = black_box(7u64);
    let h = std::thread::Builder::new()
        .spawn(move || (black_box(input) + 1, crate::topology::current_cpu()))
        .context("spawning a thread")?;
    let launched = Instant::now();
    let moved = match move_to {
        Some(cpu) => {
            let set = only(cpu)?;
            // SAFETY: the handle's pthread_t stays valid until join below; `set` is a
            // valid cpu_set_t of the size given. An exited thread makes the call fail, which
            // is ignored: the thread then reports the CPU it really ran on.
            unsafe {
                libc::pthread_setaffinity_np(
                    h.as_pthread_t(),
                    std::mem::size_of::<libc::cpu_set_t>(),
                    std::ptr::from_ref(&set).cast::<libc::cpu_set_t>(),
                )
            };
            Some(launched.elapsed())
        }
        None => None,
    };
    let (out, child_cpu) = h
        .join()
        .map_err(|_| anyhow::anyhow!("the spawned thread panicked"))?;
    if black_box(out) != 8 {
        bail!("the spawned thread returned {out}, not 8");
    }
    Ok(Created {
        launched,
        child_cpu,
        moved,
    })
}

/// `fork`; the child `_exit`s with its CPU; `waitpid`. With `move_to`, the child is moved to
/// that CPU right after `fork` returns (`sched_setaffinity`).
pub(super) fn fork_exit_wait(move_to: Option<usize>) -> Result<Created> {
    let set = move_to.map(only).transpose()?;
    // SAFETY: the child calls only getcpu and `_exit`, raw system calls that are
    // async-signal-safe, so forking a multi-threaded process is sound here.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            let code = cpu_code(raw_getcpu());
            // SAFETY: `_exit` ends the child at once without running destructors or atexit
            // handlers, which could touch locks held by threads that do not exist in the child.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let launched = Instant::now();
            // A child that already exited cannot be moved: its CPU shows where it ran.
            let moved = set.map(|set| {
                let _ = sched_setaffinity(child, &set);
                launched.elapsed()
            });
            let child_cpu = reap(child)?;
            Ok(Created {
                launched,
                child_cpu,
                moved,
            })
        }
    }
}

/// A stack for `clone(CLONE_VM)` children, one at a time: an anonymous mapping, unmapped on
/// drop. Each child is reaped before the next one starts, so they never share it.
#[derive(Debug)]
pub(super) struct ChildStack {
    base: NonNull<libc::c_void>,
    len: usize,
}

impl ChildStack {
    /// 64 KiB: the child function needs a few hundred bytes; glibc's wrapper a few words more.
    const LEN: usize = 64 << 10;

    pub(super) fn new() -> Result<ChildStack> {
        let len = NonZeroUsize::new(Self::LEN).expect("the stack size is not zero");
        // SAFETY: a fresh private anonymous mapping at an address the kernel picks aliases
        // nothing.
        let base = unsafe {
            mmap_anonymous(
                None,
                len,
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE | MapFlags::MAP_STACK,
            )
        }
        .context("map a stack for clone children")?;
        Ok(ChildStack {
            base,
            len: Self::LEN,
        })
    }

    /// The top of the stack (stacks grow down on every architecture Linux runs this on),
    /// 16-byte aligned as the ABIs require.
    fn top(&self) -> *mut libc::c_void {
        let top = self.base.as_ptr() as usize + self.len;
        (top & !15) as *mut libc::c_void
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; every child that ran on it has
        // been reaped (each op waits for its child), so nothing runs on it any more.
        unsafe {
            let _ = munmap(self.base, self.len);
        }
    }
}

/// The function a `clone(CLONE_VM)` child runs: nothing but its return, which glibc's wrapper
/// passes to the raw `exit` system call. It touches no memory, thread-local or not.
extern "C" fn clone_child(_arg: *mut libc::c_void) -> libc::c_int {
    1
}

/// `clone(flags | SIGCHLD)` of [`clone_child`] on `stack`, then `waitpid`.
fn clone_exit_wait(stack: &ChildStack, flags: libc::c_int) -> Result<Created> {
    // SAFETY: the child runs `clone_child` on a stack of its own that outlives it (reaped
    // below before `stack` can drop); it makes no call and touches no memory, so sharing the
    // parent's address space and thread pointer is sound. With CLONE_VFORK the parent is
    // suspended until the child exits; without it the parent only waits for it.
    let pid = unsafe {
        libc::clone(
            clone_child,
            stack.top(),
            flags | libc::SIGCHLD,
            std::ptr::null_mut(),
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("clone");
    }
    let launched = Instant::now();
    reap(Pid::from_raw(pid))?;
    Ok(Created {
        launched,
        child_cpu: None,
        moved: None,
    })
}

/// `vfork` as glibc's `posix_spawn` does it: `clone(CLONE_VM | CLONE_VFORK)`, the parent
/// suspended until the child `_exit`s; then `waitpid`.
pub(super) fn vfork_exit_wait(stack: &ChildStack) -> Result<Created> {
    clone_exit_wait(stack, libc::CLONE_VM | libc::CLONE_VFORK)
}

/// `clone(CLONE_VM)`: a child process sharing the parent's memory (no page tables to copy),
/// the parent running on; then `waitpid`.
pub(super) fn clone_vm_exit_wait(stack: &ChildStack) -> Result<Created> {
    clone_exit_wait(stack, libc::CLONE_VM)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_codes_round_trip_and_never_say_zero() {
        assert_eq!(cpu_code(Some(0)), 1);
        assert_eq!(cpu_code(Some(7)), 8);
        assert_eq!(cpu_code(Some(300)), CPU_UNKNOWN);
        assert_eq!(cpu_code(None), CPU_UNKNOWN);
    }

    #[test]
    #[cfg_attr(not(target_os = "linux"), ignore)]
    fn every_primitive_creates_runs_and_reaps_a_child() {
        let stack = ChildStack::new().expect("a stack");
        let allowed = crate::measure::allowed_cpus();
        for created in [
            thread(None).expect("thread"),
            fork_exit_wait(None).expect("fork"),
            vfork_exit_wait(&stack).expect("vfork"),
            clone_vm_exit_wait(&stack).expect("clone(CLONE_VM)"),
        ] {
            if let Some(cpu) = created.child_cpu {
                assert!(allowed.contains(&cpu), "child ran on cpu {cpu}");
            }
        }
        // A forked child always knows its CPU on Linux; a moved one ran where it was moved,
        // unless it ran to its end before the move.
        assert!(fork_exit_wait(None).expect("fork").child_cpu.is_some());
        let last = *allowed.last().expect("a CPU");
        let moved = fork_exit_wait(Some(last)).expect("fork, moved");
        assert!(moved.moved.is_some());
        assert!(moved.child_cpu.is_some());
        // A thread made on a CPU runs its body there, every time.
        for _ in 0..20 {
            assert_eq!(thread(Some(last)).expect("thread").child_cpu, Some(last));
        }
    }
}
