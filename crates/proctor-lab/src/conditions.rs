//! The machine's state around each section, and whether something else was running.
//!
//! A figure taken while another program used the CPUs, or while the hypervisor stole time,
//! measures that program or that hypervisor as much as ours; on a shared 2-vCPU guest that is
//! the difference between a verdict and noise. So every section runs between two
//! [`Snapshot`]s of `/proc` and `/sys`:
//!
//! - the load average and the runnable tasks (`procs_running`, ours excluded where we know);
//! - the CPU time of the whole machine by kind, from `/proc/stat` (steal included), and the CPU
//!   time of this process and every process it started (itself, its live descendants, and the
//!   reaped ones through their parents' `cutime`/`cstime`);
//! - the idle driver and the transparent-huge-page mode, which change wake-up and fork costs.
//!
//! From the two, [`Conditions::between`] says how busy *other* programs kept the machine and how
//! much time was stolen, and names the interference when either passes its limit
//! ([`OTHERS_LIMIT`], [`STEAL_LIMIT`]). The verdicts refuse to decide a claim on a section
//! measured under interference ("not decided here", with the reason).
//!
//! Read without privileges; what cannot be read is left out, never a failure.

use std::collections::HashMap;
use std::fs;

use serde::{Deserialize, Serialize};

/// Other programs may use at most this share of the machine's CPU time (all CPUs together)
/// while a section runs; above it the section was measured under interference.
pub const OTHERS_LIMIT: f64 = 0.10;

/// The hypervisor may steal at most this share of the machine's CPU time.
pub const STEAL_LIMIT: f64 = 0.05;

/// What `/proc` and `/sys` said at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Snapshot {
    /// The one-minute load average.
    pub load_1m: Option<f64>,
    /// Tasks runnable right now (`procs_running`), this reader included.
    pub runnable: Option<u64>,
    /// CPU time of the whole machine in clock ticks: busy (user, nice, system, irq, softirq),
    /// idle (idle, iowait), steal.
    #[serde(skip)]
    ticks: Option<Ticks>,
    /// CPU time of this process and its descendants, in clock ticks.
    #[serde(skip)]
    ours: Option<u64>,
    /// `cpuidle`'s current driver ("intel_idle", "haltpoll", "none").
    pub idle_driver: Option<String>,
    /// The transparent-huge-page mode ("always", "madvise", "never").
    pub thp: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Ticks {
    busy: u64,
    idle: u64,
    steal: u64,
}

impl Snapshot {
    /// Reads the machine's state now.
    pub fn take() -> Snapshot {
        let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
        Snapshot {
            load_1m: fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok()),
            runnable: stat_field(&stat, "procs_running"),
            ticks: parse_cpu_line(&stat),
            ours: our_tree_ticks(),
            idle_driver: read_trim("/sys/devices/system/cpu/cpuidle/current_driver"),
            thp: read_trim("/sys/kernel/mm/transparent_hugepage/enabled")
                .and_then(|s| bracketed(&s)),
        }
    }
}

/// The machine's state around one section: both snapshots and what happened between them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// Before the section.
    pub before: Snapshot,
    /// After it.
    pub after: Snapshot,
    /// Share of the machine's CPU time other programs used meanwhile (0..=1), where readable.
    pub others_busy: Option<f64>,
    /// Share stolen by the hypervisor meanwhile (0..=1), where readable.
    pub steal: Option<f64>,
    /// Why the section counts as measured under interference; `None` when it does not.
    pub interference: Option<String>,
}

impl Conditions {
    /// What happened between two snapshots, and whether it was interference.
    pub fn between(before: Snapshot, after: Snapshot) -> Conditions {
        let shares = match (before.ticks, after.ticks) {
            (Some(b), Some(a)) => {
                let busy = a.busy.saturating_sub(b.busy);
                let idle = a.idle.saturating_sub(b.idle);
                let steal = a.steal.saturating_sub(b.steal);
                let total = busy + idle + steal;
                let ours = match (before.ours, after.ours) {
                    (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                    _ => None,
                };
                (total > 0).then(|| {
                    let others = ours.map(|o| busy.saturating_sub(o) as f64 / total as f64);
                    (others, steal as f64 / total as f64)
                })
            }
            _ => None,
        };
        let (others_busy, steal) = match shares {
            Some((others, steal)) => (others, Some(steal)),
            None => (None, None),
        };
        let mut reasons = Vec::new();
        if let Some(o) = others_busy.filter(|o| *o > OTHERS_LIMIT) {
            reasons.push(format!(
                "other programs used {:.0} % of the CPUs (limit {:.0} %)",
                o * 100.0,
                OTHERS_LIMIT * 100.0
            ));
        }
        if let Some(s) = steal.filter(|s| *s > STEAL_LIMIT) {
            reasons.push(format!(
                "the hypervisor stole {:.0} % of the CPU time (limit {:.0} %)",
                s * 100.0,
                STEAL_LIMIT * 100.0
            ));
        }
        if before.thp != after.thp {
            reasons.push("the transparent-huge-page mode changed".to_string());
        }
        Conditions {
            before,
            after,
            others_busy,
            steal,
            interference: (!reasons.is_empty()).then(|| reasons.join("; ")),
        }
    }

    /// These conditions with other programs having used `others_pct` % of the CPUs, for
    /// the verdicts' tests.
    #[cfg(test)]
    pub(crate) fn with_interference_for_tests(mut self, others_pct: u64) -> Conditions {
        self.others_busy = Some(others_pct as f64 / 100.0);
        self.interference = Some(format!("other programs used {others_pct} % of the CPUs"));
        self
    }

    /// One line for the report: "others 1 % of the CPUs, steal 0 %, load 0.31 → 1.02, idle
    /// driver haltpoll, THP madvise".
    pub fn describe(&self) -> String {
        let pct = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{:.0} %", v * 100.0));
        let load = |s: &Snapshot| s.load_1m.map_or("?".to_string(), |l| format!("{l:.2}"));
        format!(
            "others {} of the CPUs, steal {}, load {} → {}, idle driver {}, THP {}",
            pct(self.others_busy),
            pct(self.steal),
            load(&self.before),
            load(&self.after),
            self.after.idle_driver.as_deref().unwrap_or("?"),
            self.after.thp.as_deref().unwrap_or("?"),
        )
    }
}

/// `[madvise]` out of "always [madvise] never".
fn bracketed(s: &str) -> Option<String> {
    let start = s.find('[')? + 1;
    let end = start + s[start..].find(']')?;
    Some(s[start..end].to_string())
}

fn stat_field(stat: &str, name: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// The aggregate `cpu` line: user nice system idle iowait irq softirq steal (guest time is
/// already inside user and nice).
fn parse_cpu_line(stat: &str) -> Option<Ticks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    Some(Ticks {
        busy: at(0) + at(1) + at(2) + at(5) + at(6),
        idle: at(3) + at(4),
        steal: at(7),
    })
}

/// utime + stime + cutime + cstime of this process and its live descendants, in clock ticks.
/// A reaped descendant's time is in its parent's `cutime`/`cstime`, so the sum does not drop
/// when a child ends (unless its parent ends unreaped, which the lab never leaves).
fn our_tree_ticks() -> Option<u64> {
    let me = std::process::id();
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let mut ticks: HashMap<u32, u64> = HashMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Some((ppid, t)) = fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| parse_stat(&s))
        else {
            continue;
        };
        parent.insert(pid, ppid);
        ticks.insert(pid, t);
    }
    let is_ours = |mut pid: u32| {
        for _ in 0..64 {
            if pid == me {
                return true;
            }
            match parent.get(&pid) {
                Some(&p) if p != 0 => pid = p,
                _ => return false,
            }
        }
        false
    };
    let own = *ticks.get(&me)?;
    Some(
        own + ticks
            .iter()
            .filter(|(pid, _)| **pid != me && is_ours(**pid))
            .map(|(_, t)| t)
            .sum::<u64>(),
    )
}

/// (ppid, utime + stime + cutime + cstime) from a `/proc/PID/stat` line. The command name
/// may hold spaces and parentheses, so fields are counted after the last ')'.
fn parse_stat(s: &str) -> Option<(u32, u64)> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    let ppid = f.get(1)?.parse().ok()?;
    let t = (11..=14)
        .map(|i| {
            f.get(i)
                .and_then(|x| x.parse::<i64>().ok())
                .map(|x| x.max(0) as u64)
        })
        .sum::<Option<u64>>()?;
    Some((ppid, t))
}

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(busy: u64, idle: u64, steal: u64, ours: u64) -> Snapshot {
        Snapshot {
            ticks: Some(Ticks { busy, idle, steal }),
            ours: Some(ours),
            thp: Some("madvise".into()),
            ..Snapshot::default()
        }
    }

    #[test]
    fn a_quiet_section_is_not_interference() {
        // 200 ticks on 2 CPUs: ours 95 busy, others 5 (2.5 %), no steal.
        let c = Conditions::between(snap(1000, 5000, 0, 300), snap(1100, 5100, 0, 395));
        assert_eq!(c.interference, None);
        assert!((c.others_busy.unwrap() - 0.025).abs() < 1e-9);
        assert_eq!(c.steal, Some(0.0));
    }

    #[test]
    fn others_busy_or_steal_past_the_limits_is_interference() {
        // Others 60 of 200 ticks.
        let busy = Conditions::between(snap(0, 0, 0, 0), snap(160, 40, 0, 100));
        let why = busy.interference.expect("others used 30 %");
        assert!(why.contains("other programs used 30 %"), "{why}");
        let stolen = Conditions::between(snap(0, 0, 0, 0), snap(100, 80, 20, 100));
        assert!(stolen.interference.unwrap().contains("stole 10 %"));
        let mut changed = snap(100, 100, 0, 100);
        changed.thp = Some("always".into());
        assert!(
            Conditions::between(snap(0, 0, 0, 0), changed)
                .interference
                .unwrap()
                .contains("huge-page")
        );
    }

    #[test]
    fn unreadable_state_decides_nothing() {
        let c = Conditions::between(Snapshot::default(), Snapshot::default());
        assert_eq!(
            (c.others_busy, c.steal, c.interference.clone()),
            (None, None, None)
        );
        assert_eq!(
            c.describe(),
            "others ? of the CPUs, steal ?, load ? → ?, idle driver ?, THP ?"
        );
    }

    #[test]
    fn proc_lines_parse() {
        let stat = "cpu  10 1 5 100 4 2 3 7 0 0\ncpu0 1 2 3 4\nprocs_running 3\n";
        assert_eq!(
            parse_cpu_line(stat),
            Some(Ticks {
                busy: 21,
                idle: 104,
                steal: 7
            })
        );
        assert_eq!(stat_field(stat, "procs_running"), Some(3));
        let line = "42 (a b) c)) S 7 42 42 0 -1 4194560 1 0 0 0 11 12 13 14 20 0 1 0";
        assert_eq!(parse_stat(line), Some((7, 50)));
        assert_eq!(
            bracketed("always [madvise] never").as_deref(),
            Some("madvise")
        );
    }

    #[test]
    fn this_machine_counts_our_own_work_as_ours() {
        use nix::sys::resource::{UsageWho, getrusage};
        let cpu = || {
            let u = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
            let t = |tv: nix::sys::time::TimeVal| {
                std::time::Duration::new(tv.tv_sec() as u64, tv.tv_usec() as u32 * 1000)
            };
            t(u.user_time()) + t(u.system_time())
        };
        let before = Snapshot::take();
        let start = cpu();
        // Spin until this process has used 300 ms of CPU, however busy the machine is.
        let mut x = 0u64;
        while cpu() - start < std::time::Duration::from_millis(300) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        let c = Conditions::between(before, Snapshot::take());
        assert!(c.before.ours.is_some() && c.before.ticks.is_some());
        let ours = c.after.ours.unwrap() - c.before.ours.unwrap();
        assert!(
            ours >= 25,
            "300 ms of our CPU is about 30 ticks of ours, got {ours}"
        );
    }
}
