//! Established tools run in the same session, beside our figures (LAB-METHODS rule 16).
//!
//! - `perf bench sched pipe` (Debian `linux-perf`): two tasks ping-pong 4 bytes over two
//!   pipes; **one op is a full round trip** (2 writes, 2 reads, 2 switches on one CPU) and its
//!   time includes creating and reaping the tasks. It does not pin, so we run it under
//!   `taskset -c N` for the same-CPU figure, and `-T` for threads.
//! - `stress-ng --switch` (Debian `stress-ng`): nanoseconds per one-way pipe switch.
//! - `hackbench` (Debian `rt-tests`): total time of a messaging storm; a throughput figure
//!   with no per-op counterpart of ours, shown for context.
//!
//! A missing tool is not an error: the cross-check says so and names the package.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::report::{CrossCheck, Unit};
use crate::stats::relative_gap;

/// A gap above this (as a fraction) gets a note: a bug until explained.
pub const GAP_NOTE_THRESHOLD: f64 = 0.15;

/// How long any tool may run before it is killed.
const TOOL_TIMEOUT: Duration = Duration::from_secs(20);

/// What a tool run produced: its figure and the exact command, or why there is none.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRun {
    /// The exact command line that was run.
    pub command: String,
    /// The tool's figure, or why there is none (tool missing, failed, output not understood).
    pub result: Result<f64, String>,
}

/// The tool's path, if it is on `PATH`.
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Builds the cross-check, adding a note when the gap exceeds 15 % or a figure is missing.
pub fn compare(
    tool: &str,
    ours_key: &str,
    ours: Option<f64>,
    run: ToolRun,
    unit: Unit,
) -> CrossCheck {
    let (theirs, mut note) = match run.result {
        Ok(v) => (Some(v), None),
        Err(why) => (None, Some(why)),
    };
    if let (Some(o), Some(t), None) = (ours, theirs, &note) {
        let gap = relative_gap(o, t);
        if gap.abs() > GAP_NOTE_THRESHOLD {
            note = Some(format!(
                "ours is {:+.0}% from {tool}: over the 15 % limit, check placement, noise \
                 (other load on the machine) and what one op is on each side",
                gap * 100.0
            ));
        }
    }
    CrossCheck {
        tool: tool.to_string(),
        command: run.command,
        ours_key: ours_key.to_string(),
        ours,
        theirs,
        unit,
        note,
    }
}

/// Runs `perf bench sched pipe` with `loops` round trips, pinned to `cpu` through `taskset`
/// when given, with threads (`-T`) or processes, and returns nanoseconds per round trip.
pub fn perf_sched_pipe(cpu: Option<usize>, threads: bool, loops: u64) -> ToolRun {
    let mut args: Vec<String> = Vec::new();
    if let Some(cpu) = cpu {
        args.extend(["taskset".into(), "-c".into(), cpu.to_string()]);
    }
    args.extend(["perf", "bench", "sched", "pipe", "-l"].map(String::from));
    args.push(loops.to_string());
    if threads {
        args.push("-T".into());
    }
    let command = args.join(" ");
    if which("perf").is_none() {
        return missing(command, "perf", "linux-perf");
    }
    if cpu.is_some() && which("taskset").is_none() {
        return missing(command, "taskset", "util-linux");
    }
    let result = run_tool(&args).and_then(|out| {
        parse_perf_usecs_per_op(&out)
            .map(|us| us * 1000.0)
            .ok_or_else(|| format!("no `usecs/op` in perf's output: {}", tail(&out)))
    });
    ToolRun { command, result }
}

/// Runs `perf bench futex hash` with one thread on one futex for `seconds`, pinned to `cpu`,
/// private or shared (`-S`) futexes, and returns nanoseconds per operation (one `FUTEX_WAIT`
/// whose value does not match, so it returns at once: the key lookup and the syscall).
pub fn perf_futex_hash(cpu: usize, shared: bool, seconds: u64) -> ToolRun {
    let mut args: Vec<String> = ["taskset", "-c", &cpu.to_string()]
        .map(String::from)
        .to_vec();
    args.extend(["perf", "bench", "futex", "hash", "-t", "1", "-f", "1", "-r"].map(String::from));
    args.push(seconds.max(1).to_string());
    if shared {
        args.push("-S".into());
    }
    let command = args.join(" ");
    if which("perf").is_none() {
        return missing(command, "perf", "linux-perf");
    }
    if which("taskset").is_none() {
        return missing(command, "taskset", "util-linux");
    }
    let result = run_tool(&args).and_then(|out| {
        parse_perf_futex_ops_per_sec(&out)
            .filter(|ops| *ops > 0.0)
            .map(|ops| 1e9 / ops)
            .ok_or_else(|| format!("no `operations/sec` in perf's output: {}", tail(&out)))
    });
    ToolRun { command, result }
}

/// Runs `stress-ng --switch 1` pinned to `cpu` and returns nanoseconds per one-way switch.
pub fn stress_ng_switch(cpu: usize, ops: u64) -> ToolRun {
    let args: Vec<String> = [
        "stress-ng",
        "--switch",
        "1",
        "--taskset",
        &cpu.to_string(),
        "--switch-ops",
        &ops.to_string(),
        "--metrics",
    ]
    .map(String::from)
    .to_vec();
    let command = args.join(" ");
    if which("stress-ng").is_none() {
        return missing(command, "stress-ng", "stress-ng");
    }
    let result = run_tool(&args).and_then(|out| {
        parse_stress_ng_switch_ns(&out).ok_or_else(|| {
            format!(
                "no `nanosecs per context switch` in stress-ng's output: {}",
                tail(&out)
            )
        })
    });
    ToolRun { command, result }
}

/// Runs `hackbench -p -l LOOPS` (pipes, processes) and returns its total time in nanoseconds.
pub fn hackbench(loops: u64) -> ToolRun {
    let args: Vec<String> = ["hackbench", "-p", "-l", &loops.to_string()]
        .map(String::from)
        .to_vec();
    let command = args.join(" ");
    if which("hackbench").is_none() {
        return missing(command, "hackbench", "rt-tests");
    }
    let result = run_tool(&args).and_then(|out| {
        parse_hackbench_seconds(&out)
            .map(|s| s * 1e9)
            .ok_or_else(|| format!("no `Time:` in hackbench's output: {}", tail(&out)))
    });
    ToolRun { command, result }
}

/// Runs `perf bench sched messaging -g GROUPS -l LOOPS`, with threads (`-t`) or processes,
/// and returns its total time in nanoseconds: groups of 20 senders and 20 receivers passing
/// 100-byte messages over socketpairs, the same transport for either kind.
pub fn perf_sched_messaging(threads: bool, groups: u32, loops: u64) -> ToolRun {
    let mut args: Vec<String> = ["perf", "bench", "sched", "messaging", "-g"]
        .map(String::from)
        .to_vec();
    args.push(groups.to_string());
    args.push("-l".into());
    args.push(loops.to_string());
    if threads {
        args.push("-t".into());
    }
    let command = args.join(" ");
    if which("perf").is_none() {
        return missing(command, "perf", "linux-perf");
    }
    let result = run_tool(&args).and_then(|out| {
        parse_perf_total_seconds(&out)
            .map(|s| s * 1e9)
            .ok_or_else(|| format!("no `Total time:` in perf's output: {}", tail(&out)))
    });
    ToolRun { command, result }
}

/// Runs `wrk -t THREADS -c CONNECTIONS -d SECONDSs http://127.0.0.1:PORT/PATH` and returns its
/// requests per second.
pub fn wrk(port: u16, path: &str, threads: usize, connections: usize, seconds: u64) -> ToolRun {
    let args: Vec<String> = vec![
        "wrk".into(),
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        format!("http://127.0.0.1:{port}{path}"),
    ];
    let command = args.join(" ");
    if which("wrk").is_none() {
        return missing(command, "wrk", "wrk");
    }
    let result = run_tool(&args).and_then(|out| {
        parse_wrk_requests_per_sec(&out)
            .ok_or_else(|| format!("no `Requests/sec:` in wrk's output: {}", tail(&out)))
    });
    ToolRun { command, result }
}

/// The number after `Requests/sec:` in wrk's output.
pub fn parse_wrk_requests_per_sec(out: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
}

fn missing(command: String, tool: &str, package: &str) -> ToolRun {
    ToolRun {
        command,
        result: Err(format!(
            "{tool} is not installed (Debian package `{package}`)"
        )),
    }
}

/// Runs a command with a timeout and returns its stdout and stderr together.
fn run_tool(args: &[String]) -> Result<String, String> {
    let mut child = Command::new(&args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("could not start {}: {e}", args[0]))?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > TOOL_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} ran over {}s and was killed",
                    args[0],
                    TOOL_TIMEOUT.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {}: {e}", args[0])),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("reading {}'s output: {e}", args[0]))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{} failed ({}): {}",
            args[0],
            out.status,
            tail(&text)
        ))
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

/// The number before `usecs/op` in `perf bench sched pipe` output.
pub fn parse_perf_usecs_per_op(out: &str) -> Option<f64> {
    out.lines()
        .find(|l| l.contains("usecs/op"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The number after `Averaged` in `perf bench futex hash` output
/// ("Averaged 804864 operations/sec (+- 0.00%), total secs = 1").
pub fn parse_perf_futex_ops_per_sec(out: &str) -> Option<f64> {
    out.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Averaged")?;
        let (n, _) = rest.split_once("operations/sec")?;
        n.trim().parse().ok()
    })
}

/// The number before `nanosecs per context switch` in `stress-ng --switch --metrics` output.
pub fn parse_stress_ng_switch_ns(out: &str) -> Option<f64> {
    out.lines().find_map(|l| {
        let (before, _) = l.split_once("nanosecs per context switch")?;
        before.split_whitespace().last()?.parse().ok()
    })
}

/// The seconds after `Total time:` in `perf bench` output ("Total time: 0.452 [sec]").
pub fn parse_perf_total_seconds(out: &str) -> Option<f64> {
    out.lines().find_map(|l| {
        l.trim()
            .strip_prefix("Total time:")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// The seconds after `Time:` in hackbench output.
pub fn parse_hackbench_seconds(out: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Time:")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perf_futex_hash_output_parses() {
        let out = "Run summary [PID 4907]: 1 threads, each operating on 1 [private] futexes \
                   for 1 secs.\n\n[thread  0] futex: 0x55 [ 804864 ops/sec ]\n\n\
                   Averaged 804864 operations/sec (+- 0.00%), total secs = 1\n";
        assert_eq!(parse_perf_futex_ops_per_sec(out), Some(804_864.0));
        assert_eq!(parse_perf_futex_ops_per_sec("nothing here"), None);
    }

    #[test]
    fn parses_perf_total_time() {
        let out = "# Running 'sched/messaging' benchmark:\n# 20 sender and receiver threads per group\n# 1 groups == 40 threads run\n\n     Total time: 0.092 [sec]\n";
        assert_eq!(parse_perf_total_seconds(out), Some(0.092));
        assert_eq!(parse_perf_total_seconds("Total time: soon"), None);
    }

    #[test]
    fn parses_perf_sched_pipe() {
        let out = "# Running 'sched/pipe' benchmark:\n# Executed 100000 pipe operations between two processes\n\n     Total time: 0.195 [sec]\n\n       1.953410 usecs/op\n         511925 ops/sec\n";
        assert_eq!(parse_perf_usecs_per_op(out), Some(1.953410));
        assert_eq!(parse_perf_usecs_per_op("nothing"), None);
    }

    #[test]
    fn parses_stress_ng_and_hackbench() {
        let s = "stress-ng: metrc: [42] switch            2345.67 nanosecs per context switch (harmonic mean of 1 instance)\n";
        assert_eq!(parse_stress_ng_switch_ns(s), Some(2345.67));
        let h = "Running in process mode with 10 groups using 40 file descriptors each (== 400 tasks)\nEach sender will pass 100 messages of 100 bytes\nTime: 0.123\n";
        assert_eq!(parse_hackbench_seconds(h), Some(0.123));
    }

    #[test]
    fn a_gap_over_15_percent_gets_a_note() {
        let run = |v| ToolRun {
            command: "x".into(),
            result: Ok(v),
        };
        assert!(
            compare("t", "k", Some(1.12), run(1.0), Unit::Ns)
                .note
                .is_none()
        );
        let far = compare("t", "k", Some(1.2), run(1.0), Unit::Ns);
        assert!(far.note.expect("a 20% gap is noted").contains("+20%"));
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let run = missing("nope".into(), "nope", "nope-pkg");
        let c = compare("nope", "k", Some(1.0), run, Unit::Ns);
        assert_eq!(c.theirs, None);
        assert!(
            c.note
                .expect("missing tools are noted")
                .contains("nope-pkg")
        );
    }
}
