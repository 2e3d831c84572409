//! What starting a remote worker costs through each launcher on this machine, beside the
//! launcher's own cost: `ssh host true` and `srun true` next to a pool whose one worker
//! starts through ssh or Slurm, built until its first result; and the command launcher
//! (`/bin/sh -c 'exec <binary>'`) and a local forked worker for scale.
//!
//! The engines come from `scripts/engines.sh up` (an sshd on a loopback port and a
//! single-node Slurm); a launcher whose engine is not up is left out, with a line saying so.
//!
//! ```sh
//! scripts/engines.sh up
//! cargo bench --bench remote_start
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use proctor::{Pool, PoolBuilder, Remote};

const RUNS: usize = 7;

fn one(n: u64) -> u64 {
    n + 1
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The median time of `RUNS` runs of `f`.
fn timed(mut f: impl FnMut()) -> Duration {
    median(
        (0..RUNS)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .collect(),
    )
}

fn command_cost(argv: &[&str]) -> Duration {
    timed(|| {
        let ok = Command::new(argv[0])
            .args(&argv[1..])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "`{}` failed", argv.join(" "));
    })
}

fn pool_start(make: impl Fn() -> PoolBuilder) -> Duration {
    timed(|| {
        let pool = make().build().expect("pool");
        assert_eq!(pool.submit(one, 1).join(), Ok(2));
    })
}

fn engines() -> Vec<(String, String)> {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/engines/env");
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn row(what: &str, d: Duration) {
    println!("{what:<58} {:>9.1} ms", d.as_secs_f64() * 1e3);
}

fn main() {
    proctor::init();
    let loopback = |r: Remote| r.listen("127.0.0.1:0".parse().expect("address"));
    let env = engines();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    println!("median of {RUNS} runs, start to first result of one worker:");
    row("local forked worker", pool_start(|| Pool::processes(1)));
    row(
        "command launcher: /bin/sh -c 'exec <binary>' (agent over TCP)",
        pool_start(|| Pool::processes(1).remote(loopback(Remote::command("exec {exe}", ["l"])))),
    );
    match (get("PROCTOR_TEST_SSH_CONFIG"), get("PROCTOR_TEST_SSH_HOST")) {
        (Some(cfg), Some(host)) => {
            row(
                "ssh host true (the launcher alone)",
                command_cost(&["ssh", "-F", &cfg, &host, "true"]),
            );
            row(
                "ssh launcher",
                pool_start(|| {
                    Pool::processes(1).remote(loopback(
                        Remote::ssh([host.as_str()]).ssh_options(["-F", cfg.as_str()]),
                    ))
                }),
            );
        }
        _ => println!("ssh: not up (scripts/engines.sh up)"),
    }
    if get("PROCTOR_TEST_SLURM").as_deref() == Some("1") {
        row(
            "srun -N1 -n1 true (the launcher alone)",
            command_cost(&["srun", "-N1", "-n1", "true"]),
        );
        row(
            "Slurm launcher (srun --ntasks=1)",
            pool_start(|| Pool::processes(1).remote(loopback(Remote::slurm()))),
        );
    } else {
        println!("slurm: not up (scripts/engines.sh up)");
    }
}
