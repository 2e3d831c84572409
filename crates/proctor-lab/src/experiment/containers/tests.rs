use super::*;

fn rung(rung: Rung, start: &[f64], refused: Option<&str>) -> RungRuns {
    let mut r = RungRuns::new(rung, "x".into(), refused.map(str::to_string));
    r.start_ns = start.to_vec();
    if refused.is_none() && rung != Rung::Container {
        r.uss_bytes = vec![100_000.0; start.len()];
    }
    r
}

#[test]
fn refused_rungs_carry_a_reason_and_no_figure() {
    let result = ContainersResult {
        repetitions: 3,
        rounds: 3,
        namespaces: vec![NamespaceProbe {
            kind: "net".into(),
            permitted: false,
            reason: Some("EPERM: Operation not permitted".into()),
        }],
        rungs: vec![
            rung(Rung::Thread, &[20e3, 21e3, 22e3], None),
            rung(Rung::Fork, &[100e3, 110e3, 120e3], None),
            rung(Rung::Namespaces, &[400e3, 500e3, 600e3], None),
            rung(Rung::Cgroup, &[], Some("no cgroup2 here")),
            rung(Rung::Container, &[], Some("docker: not installed")),
        ],
        cgroup_path: None,
        cgroup_removed: true,
        placement: Some(Pair {
            placement: Placement::SameCpu,
            a: 0,
            b: 0,
        }),
        control_ns: vec![60e3, 70e3, 80e3],
        parent_rss_bytes: Some(40 << 20),
        parent_page_tables_bytes: Some(300 << 10),
    };
    let s = section_from(&result);
    assert_eq!(
        s.figure("containers.start.fork").map(|f| f.value),
        Some(110e3)
    );
    assert_eq!(
        s.figure("containers.start.namespaces").map(|f| f.value),
        Some(500e3)
    );
    // The ratio the verdict reads, the control and the parent it ran in; one placement.
    let value = |k: &str| s.figure(k).map(|f| f.value);
    assert_eq!(
        value("containers.namespaces_over_fork"),
        Some(500e3 / 110e3)
    );
    assert_eq!(value("containers.control.fork_exit"), Some(70e3));
    assert_eq!(value("containers.parent.page_tables"), Some(300.0 * 1024.0));
    for key in [
        "containers.start.fork",
        "containers.start.namespaces",
        "containers.control.fork_exit",
    ] {
        let placed = s.figure(key).and_then(|f| f.placement.clone());
        assert_eq!(placed.as_deref(), Some("same CPU (cpu 0)"), "{key}");
    }
    let control = s
        .notes
        .iter()
        .find(|n| n.contains("against the control"))
        .expect("a note on the fork rung against the control");
    assert!(
        control.contains("40 MiB RSS with 300 KiB of page tables"),
        "{control}"
    );
    assert!(control.contains("1.57x"), "{control}");
    assert!(s.figure("containers.start.cgroup").is_none());
    assert!(s.figure("containers.start.container").is_none());
    assert_eq!(
        s.figure("containers.namespaces.permitted").map(|f| f.value),
        Some(0.0)
    );
    let rows = &s.tables[0].rows;
    assert_eq!(rows.len(), 5);
    assert!(
        rows[3][1].contains("refused: no cgroup2 here"),
        "{:?}",
        rows[3]
    );
    assert_eq!(rows[3][3], "-");
    assert!(s.notes.iter().any(|n| n.contains("docker: not installed")));
    assert!(s.notes.iter().any(|n| n.contains("EPERM")));
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn a_cgroup_is_removed_with_its_processes_or_refused_with_a_reason() {
    use nix::sys::signal::Signal;
    use nix::sys::wait::{WaitStatus, waitpid};
    let root = match cgroup2_root() {
        Ok(root) => root,
        Err(why) => {
            assert!(!why.is_empty());
            let refused = Cgroup::with_memory_limit(1 << 20).expect_err("no cgroup2");
            assert!(!refused.is_empty());
            return;
        }
    };
    let name = format!("proctor-lab-test-{}", std::process::id());
    let Ok(cg) = Cgroup::create(&root, &name) else {
        // Not writable here: the rung must say why instead of measuring.
        let refused = Cgroup::with_memory_limit(1 << 20).expect_err("not writable");
        assert!(!refused.is_empty());
        return;
    };
    let path = cg.path().to_path_buf();
    assert!(path.join("cgroup.procs").exists(), "a real cgroup");
    let child = || {
        loop {
            // SAFETY: pause takes nothing and is async-signal-safe.
            unsafe { libc::pause() };
        }
    };
    // SAFETY: pause only.
    let child = unsafe { fork_child(child) }.expect("fork");
    cg.add(child.as_raw()).expect("move the child in");
    assert_eq!(cg.pids(), vec![child.as_raw()]);
    drop(cg);
    assert!(!path.exists(), "{} is left behind", path.display());
    assert!(
        matches!(
            waitpid(child, None),
            Ok(WaitStatus::Signaled(_, Signal::SIGKILL, _))
        ),
        "the process left in the cgroup was killed"
    );
}
