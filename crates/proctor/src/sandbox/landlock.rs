//! The Landlock layer: file access and, without network access, TCP bind and connect; from
//! ABI 6, scoped signals and abstract Unix sockets.

use super::{LayerStatus, Sandbox};

/// The Landlock ABI version this kernel implements (0 without Landlock).
pub(super) fn landlock_abi() -> i64 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and this flag, the call only returns the
    // ABI version (landlock_create_ruleset(2)); it reads and writes no memory.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    v.max(0)
}

/// The "landlock" layer (files and TCP) and the "landlock scopes" one: from ABI 6 (Linux
/// 6.12) the domain is also scoped, so that the task can neither signal a process outside
/// it nor connect to an abstract Unix socket made outside it. Under the presets seccomp
/// already closes both routes (signals go only to the worker itself; no socket is made), so
/// the scopes are a second wall, reported but not required.
pub(super) fn landlock(s: &Sandbox) -> (LayerStatus, LayerStatus) {
    use ::landlock::{
        ABI, Access, AccessFs, AccessNet, PathBeneath, PathFd, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, Scope,
    };
    let abi = ABI::V5;
    let version = landlock_abi();
    let scoped = version >= 6;
    let run = || -> Result<RulesetStatus, String> {
        let mut ruleset = Ruleset::default()
            .handle_access(AccessFs::from_all(abi))
            .map_err(|e| e.to_string())?;
        if scoped {
            ruleset = ruleset
                .scope(Scope::from_all(ABI::V6))
                .map_err(|e| e.to_string())?;
        }
        if !s.network {
            ruleset = ruleset
                .handle_access(AccessNet::from_all(abi))
                .map_err(|e| e.to_string())?;
        }
        let mut created = ruleset.create().map_err(|e| e.to_string())?;
        let rules = s
            .read
            .iter()
            .map(|p| (p, AccessFs::from_read(abi)))
            .chain(s.write.iter().map(|p| (p, AccessFs::from_all(abi))));
        for (path, access) in rules {
            let fd = PathFd::new(path).map_err(|e| format!("{}: {e}", path.display()))?;
            created = created
                .add_rule(PathBeneath::new(fd, access))
                .map_err(|e| e.to_string())?;
        }
        Ok(created.restrict_self().map_err(|e| e.to_string())?.ruleset)
    };
    let files = match run() {
        Ok(RulesetStatus::FullyEnforced) => LayerStatus::Applied,
        Ok(RulesetStatus::PartiallyEnforced) => LayerStatus::Unavailable(
            "partly enforced: this kernel's Landlock lacks some of the access rights".into(),
        ),
        Ok(RulesetStatus::NotEnforced) => {
            LayerStatus::Unavailable("this kernel does not enforce Landlock".into())
        }
        Err(why) => LayerStatus::Unavailable(why),
    };
    let scopes = match (&files, scoped) {
        (LayerStatus::Applied, true) => LayerStatus::Applied,
        (_, true) => LayerStatus::Unavailable("the Landlock ruleset did not apply".into()),
        (_, false) => LayerStatus::Unavailable(format!(
            "this kernel's Landlock ABI is {version}; scoping signals and abstract Unix \
             sockets needs 6 (Linux 6.12)"
        )),
    };
    (files, scopes)
}

/// A layer that is reported but never required (see [`landlock`]).
pub(super) const OPTIONAL_LAYER: &str = "landlock scopes";
