//! The file-system view: a mount namespace whose root is an empty read-only tmpfs with each
//! granted path bound at its own place.

use std::path::PathBuf;

use super::process::in_user_namespace;
use super::{LayerStatus, Sandbox};

/// The sandbox's paths made absolute and free of symbolic links, so that they name the same
/// files inside the file-system view as outside it. A path that cannot be resolved is kept
/// as given (Landlock then says why it cannot be opened).
pub(super) fn resolved(s: &Sandbox) -> Sandbox {
    let resolve = |paths: &[PathBuf]| -> Vec<PathBuf> {
        paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .collect()
    };
    Sandbox {
        read: resolve(&s.read),
        write: resolve(&s.write),
        ..s.clone()
    }
}

/// A sandbox with files gets a mount namespace whose root holds only the granted paths, as
/// bubblewrap and nsjail build theirs: a read-only tmpfs as `/`, and each granted path bound
/// at its own place (read-only unless it is a `write_dir`). Landlock decides what may be
/// read and written but not what may be looked at: `stat` of any path worked through it,
/// so a task learnt which files exist and their sizes and owners. In this view, a path
/// outside the grants does not exist.
pub(super) fn file_view(s: &Sandbox) -> LayerStatus {
    if s.read.is_empty() && s.write.is_empty() {
        return LayerStatus::NotAsked;
    }
    match build_file_view(s) {
        Ok(()) => LayerStatus::Applied,
        Err(why) => LayerStatus::Unavailable(why),
    }
}

pub(super) fn build_file_view(s: &Sandbox) -> Result<(), String> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    use nix::sched::{CloneFlags, unshare};
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let none = None::<&str>;
    let cwd = std::env::current_dir().ok();
    if unshare(CloneFlags::CLONE_NEWNS).is_err() {
        in_user_namespace(CloneFlags::CLONE_NEWNS)?;
    }
    let at = |what: &str, e: nix::Error| format!("{what}: {e}");
    // Nothing mounted from here on reaches the parent's namespace.
    mount(none, "/", none, MsFlags::MS_REC | MsFlags::MS_PRIVATE, none)
        .map_err(|e| at("making / private", e))?;
    // The grants, opened in the new namespace (a bind mount's source must be one of its
    // mounts) before anything is hidden (a granted path may lie under the directory the new
    // root is built in). Parents first, so a grant inside another is
    // bound over it, not under it.
    let mut grants = Vec::new();
    for (path, writable) in s
        .read
        .iter()
        .map(|p| (p, false))
        .chain(s.write.iter().map(|p| (p, true)))
    {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let is_dir = file
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .is_dir();
        let flags = nix::sys::statvfs::statvfs(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .flags();
        grants.push((path.clone(), writable, file, is_dir, flags));
    }
    grants.sort_by_key(|g| g.0.components().count());
    // The new root: a tmpfs over this namespace's /tmp (the host's is untouched).
    let base = std::path::Path::new("/tmp");
    mount(
        Some("tmpfs"),
        base,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755,size=1m"),
    )
    .map_err(|e| at("a tmpfs for the new root", e))?;
    for (path, writable, file, is_dir, flags) in &grants {
        let target = base.join(path.strip_prefix("/").unwrap_or(path));
        let exists = target.symlink_metadata().is_ok();
        if !exists {
            let made = if *is_dir {
                std::fs::create_dir_all(&target)
            } else {
                target
                    .parent()
                    .map_or(Ok(()), std::fs::create_dir_all)
                    .and_then(|()| std::fs::File::create(&target).map(drop))
            };
            made.map_err(|e| format!("{}: {e}", target.display()))?;
        }
        let source = format!("/proc/self/fd/{}", file.as_raw_fd());
        mount(
            Some(source.as_str()),
            &target,
            none,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            none,
        )
        .map_err(|e| at(&format!("binding {}", path.display()), e))?;
        // A remount keeps the flags the kernel locked on the original mount (a user
        // namespace may not clear them), and adds read-only where only reading is granted.
        use nix::sys::statvfs::FsFlags;
        let mut keep =
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        for (have, want) in [
            (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
            (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
            (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
            (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        ] {
            if flags.contains(have) {
                keep |= want;
            }
        }
        if !*writable || flags.contains(FsFlags::ST_RDONLY) {
            keep |= MsFlags::MS_RDONLY;
        }
        mount(none, &target, none, keep, none)
            .map_err(|e| at(&format!("remounting {}", path.display()), e))?;
    }
    std::env::set_current_dir(base).map_err(|e| format!("/tmp: {e}"))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| at("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| at("detaching the old root", e))?;
    mount(
        none,
        "/",
        none,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        none,
    )
    .map_err(|e| at("making the new root read-only", e))?;
    // The same working directory where it is inside a grant, else the root.
    let inside = cwd.filter(|c| grants.iter().any(|g| c.starts_with(&g.0)));
    let _ = std::env::set_current_dir(inside.as_deref().unwrap_or(std::path::Path::new("/")))
        .or_else(|_| std::env::set_current_dir("/"));
    Ok(())
}
