//! Where two partners run, chosen from the machine's topology, and what an unpinned run
//! actually did.
//!
//! A latency between two partners depends first on where they run: on one CPU a hand-off is a
//! switch; on two SMT siblings it shares a core's caches; across cores it crosses to the
//! shared last-level cache; across caches or NUMA nodes it crosses an interconnect. A figure
//! that mixes these is a mixture, not a measurement (LAB-METHODS rule 5). So the lab:
//!
//! - reads the topology from `/sys/devices/system/cpu` (SMT siblings, the last-level cache's
//!   sharers, NUMA nodes), restricted to the CPUs this process may use;
//! - offers one pair of CPUs for each [`Placement`] the machine has ([`Topology::pairs`]),
//!   which experiments measure one by one and decide verdicts on;
//! - describes an unpinned run as a [`Mixture`]: each batch tagged with the placement its two
//!   partners were seen on (`sched_getcpu` before and after), the share and median of each
//!   placement, and how many batches migrated mid-way.
//!
//! Everything is read without privileges; a file that cannot be read leaves the CPU in a
//! class of its own rather than failing the run.

use std::collections::BTreeMap;
use std::fs;

use serde::{Deserialize, Serialize};

use crate::measure::allowed_cpus;
use crate::stats;

/// Where two partners run relative to each other, nearest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// Both on one CPU: every hand-off is a context switch.
    SameCpu,
    /// Two hardware threads of one core (SMT siblings): private caches shared.
    SmtSibling,
    /// Two cores sharing the last-level cache.
    SharedCache,
    /// Two cores with different last-level caches, one NUMA node (e.g. two AMD CCXs).
    OtherCache,
    /// Two NUMA nodes.
    OtherNode,
}

impl Placement {
    /// Every placement, nearest first.
    pub const ALL: [Placement; 5] = [
        Placement::SameCpu,
        Placement::SmtSibling,
        Placement::SharedCache,
        Placement::OtherCache,
        Placement::OtherNode,
    ];

    /// Short words for tables: "same CPU", "SMT sibling", "shared LLC", ...
    pub fn words(self) -> &'static str {
        match self {
            Placement::SameCpu => "same CPU",
            Placement::SmtSibling => "SMT sibling",
            Placement::SharedCache => "shared LLC",
            Placement::OtherCache => "other LLC",
            Placement::OtherNode => "other NUMA node",
        }
    }

    /// A key fragment: "same_cpu", "smt", "shared_llc", "other_llc", "other_node".
    pub fn key(self) -> &'static str {
        match self {
            Placement::SameCpu => "same_cpu",
            Placement::SmtSibling => "smt",
            Placement::SharedCache => "shared_llc",
            Placement::OtherCache => "other_llc",
            Placement::OtherNode => "other_node",
        }
    }
}

/// Two CPUs and how they relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    /// Which relation.
    pub placement: Placement,
    /// The first partner's CPU (the measuring side).
    pub a: usize,
    /// The second partner's CPU (equal to `a` for [`Placement::SameCpu`]).
    pub b: usize,
}

impl Pair {
    /// The text a figure's `placement` carries: "same CPU (cpu 0)",
    /// "shared LLC (cpu 0 → cpu 1)".
    pub fn describe(&self) -> String {
        if self.a == self.b {
            format!("{} (cpu {})", self.placement.words(), self.a)
        } else {
            format!(
                "{} (cpu {} → cpu {})",
                self.placement.words(),
                self.a,
                self.b
            )
        }
    }
}

/// One CPU's place in the machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cpu {
    /// The logical CPU number.
    pub id: usize,
    /// Its core: the lowest CPU among its SMT siblings.
    pub core: usize,
    /// Its last-level cache: the lowest CPU sharing it.
    pub llc: usize,
    /// Its NUMA node (0 where unknown).
    pub node: usize,
}

/// The CPUs this process may use and how they relate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Topology {
    /// Allowed CPUs, in order.
    pub cpus: Vec<Cpu>,
}

impl Topology {
    /// Reads the topology of the allowed CPUs from sysfs.
    pub fn detect() -> Topology {
        let allowed = allowed_cpus();
        let nodes = node_of_cpus();
        let cpus = allowed
            .iter()
            .map(|&id| {
                let base = format!("/sys/devices/system/cpu/cpu{id}");
                let core = read_list(&format!("{base}/topology/thread_siblings_list"))
                    .and_then(|l| l.into_iter().min())
                    .unwrap_or(id);
                let llc = last_level_cache_sharers(&base)
                    .and_then(|l| l.into_iter().min())
                    .unwrap_or(id);
                Cpu {
                    id,
                    core,
                    llc,
                    node: nodes.get(&id).copied().unwrap_or(0),
                }
            })
            .collect();
        Topology { cpus }
    }

    /// A topology from parts, for tests and fixtures.
    pub fn from_cpus(cpus: Vec<Cpu>) -> Topology {
        Topology { cpus }
    }

    /// Two cores sharing one last-level cache, one NUMA node: a small VM, for tests.
    #[cfg(test)]
    pub(crate) fn two_cores_one_llc() -> Topology {
        Topology::from_cpus(
            (0..2)
                .map(|id| Cpu {
                    id,
                    core: id,
                    llc: 0,
                    node: 0,
                })
                .collect(),
        )
    }

    fn cpu(&self, id: usize) -> Option<&Cpu> {
        self.cpus.iter().find(|c| c.id == id)
    }

    /// How CPUs `a` and `b` relate; CPUs outside the topology count as other NUMA nodes when
    /// they differ (the most distant guess, so a verdict never leans on an unknown pair).
    pub fn classify(&self, a: usize, b: usize) -> Placement {
        if a == b {
            return Placement::SameCpu;
        }
        match (self.cpu(a), self.cpu(b)) {
            (Some(x), Some(y)) if x.node != y.node => Placement::OtherNode,
            (Some(x), Some(y)) if x.core == y.core => Placement::SmtSibling,
            (Some(x), Some(y)) if x.llc == y.llc => Placement::SharedCache,
            (Some(_), Some(_)) => Placement::OtherCache,
            _ => Placement::OtherNode,
        }
    }

    /// One pair of CPUs for each placement this machine offers, nearest first. The first CPU
    /// is the lowest allowed one (so every pair shares its measuring side), except where no
    /// pair through it exists.
    pub fn pairs(&self) -> Vec<Pair> {
        let mut out = Vec::new();
        for placement in Placement::ALL {
            let found = self.cpus.iter().find_map(|x| {
                if placement == Placement::SameCpu {
                    return Some((x.id, x.id));
                }
                self.cpus
                    .iter()
                    .find(|y| y.id != x.id && self.classify(x.id, y.id) == placement)
                    .map(|y| (x.id, y.id))
            });
            if let Some((a, b)) = found {
                out.push(Pair { placement, a, b });
            }
        }
        out
    }

    /// The pair for one placement, if the machine has it.
    pub fn pair(&self, placement: Placement) -> Option<Pair> {
        self.pairs().into_iter().find(|p| p.placement == placement)
    }

    /// The nearest pair on two different CPUs: what "across CPUs" means on this machine.
    pub fn nearest_cross(&self) -> Option<Pair> {
        self.pairs().into_iter().find(|p| p.a != p.b)
    }

    /// One line for the report: "2 CPUs: 2 cores, 1 LLC, 1 NUMA node; placements: same CPU,
    /// shared LLC".
    pub fn describe(&self) -> String {
        let count = |f: fn(&Cpu) -> usize| {
            let mut v: Vec<usize> = self.cpus.iter().map(f).collect();
            v.sort_unstable();
            v.dedup();
            v.len()
        };
        let places: Vec<&str> = self.pairs().iter().map(|p| p.placement.words()).collect();
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        format!(
            "{}: {}, {}, {}; placements: {}",
            plural(self.cpus.len(), "CPU"),
            plural(count(|c| c.core), "core"),
            plural(count(|c| c.llc), "LLC"),
            plural(count(|c| c.node), "NUMA node"),
            places.join(", ")
        )
    }
}

/// The CPU the calling thread runs on now, if the kernel says.
pub fn current_cpu() -> Option<usize> {
    nix::sched::sched_getcpu().ok()
}

/// One batch of an unpinned run: where its partners were seen and its time per op.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    /// The placement the partners were seen on at the batch's end.
    pub placement: Placement,
    /// Whether either partner was on another CPU at the batch's start than at its end.
    pub migrated: bool,
    /// Time per op in the batch, in the figure's unit.
    pub value: f64,
}

/// One mode of a mixture: a placement, its share of the batches and its median.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mode {
    /// The placement.
    pub placement: Placement,
    /// Batches seen on it.
    pub batches: usize,
    /// Their share of all batches, 0..=1.
    pub fraction: f64,
    /// The median of their values.
    pub median: f64,
}

/// What an unpinned run did: its modes by placement and its migrations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mixture {
    /// Modes, most frequent first.
    pub modes: Vec<Mode>,
    /// Batches during which a partner changed CPU.
    pub migrated: usize,
    /// All batches.
    pub batches: usize,
}

impl Mixture {
    /// Groups tagged batches by placement; `None` when there are none.
    pub fn of(tagged: &[Tagged]) -> Option<Mixture> {
        if tagged.is_empty() {
            return None;
        }
        let mut by: BTreeMap<Placement, Vec<f64>> = BTreeMap::new();
        for t in tagged {
            by.entry(t.placement).or_default().push(t.value);
        }
        let n = tagged.len();
        let mut modes: Vec<Mode> = by
            .into_iter()
            .map(|(placement, values)| Mode {
                placement,
                batches: values.len(),
                fraction: values.len() as f64 / n as f64,
                median: stats::median(&values),
            })
            .collect();
        modes.sort_by(|a, b| {
            b.batches
                .cmp(&a.batches)
                .then(a.placement.cmp(&b.placement))
        });
        Some(Mixture {
            modes,
            migrated: tagged.iter().filter(|t| t.migrated).count(),
            batches: n,
        })
    }

    /// Whether more than one placement was seen.
    pub fn is_mixed(&self) -> bool {
        self.modes.len() > 1
    }

    /// "unpinned mixture: 70 % shared LLC (median 4.1), 30 % same CPU (median 2.0); 3 of 10
    /// batches migrated", with each median shown by `show`.
    pub fn describe(&self, show: impl Fn(f64) -> String) -> String {
        let modes: Vec<String> = self
            .modes
            .iter()
            .map(|m| {
                format!(
                    "{:.0} % {} (median {})",
                    m.fraction * 100.0,
                    m.placement.words(),
                    show(m.median)
                )
            })
            .collect();
        format!(
            "unpinned mixture: {}; {} of {} batches migrated",
            modes.join(", "),
            self.migrated,
            self.batches
        )
    }
}

/// Tags one batch from the partners' CPUs seen before and after it.
pub fn tag(
    topology: &Topology,
    before: (usize, usize),
    after: (usize, usize),
    value: f64,
) -> Tagged {
    Tagged {
        placement: topology.classify(after.0, after.1),
        migrated: before != after,
        value,
    }
}

/// The CPUs sharing cpuN's highest-level cache, from `cache/index*/{level,shared_cpu_list}`.
fn last_level_cache_sharers(base: &str) -> Option<Vec<usize>> {
    let mut best: Option<(u32, Vec<usize>)> = None;
    for index in 0..8 {
        let dir = format!("{base}/cache/index{index}");
        let Some(level) = read_trim(&format!("{dir}/level")).and_then(|l| l.parse::<u32>().ok())
        else {
            continue;
        };
        if read_trim(&format!("{dir}/type")).as_deref() == Some("Instruction") {
            continue;
        }
        let Some(list) = read_list(&format!("{dir}/shared_cpu_list")) else {
            continue;
        };
        if best.as_ref().is_none_or(|(l, _)| level > *l) {
            best = Some((level, list));
        }
    }
    best.map(|(_, list)| list)
}

/// NUMA node of each CPU, from `/sys/devices/system/node/node*/cpulist`.
fn node_of_cpus() -> BTreeMap<usize, usize> {
    let mut out = BTreeMap::new();
    let Ok(dir) = fs::read_dir("/sys/devices/system/node") else {
        return out;
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(node) = name
            .strip_prefix("node")
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let path = entry.path().join("cpulist");
        if let Some(cpus) = read_list(&path.to_string_lossy()) {
            for c in cpus {
                out.insert(c, node);
            }
        }
    }
    out
}

fn read_trim(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

fn read_list(path: &str) -> Option<Vec<usize>> {
    read_trim(path).and_then(|s| parse_cpu_list(&s))
}

/// Parses a kernel CPU list such as "0-3,8,10-11"; `None` when malformed.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (lo.parse::<usize>().ok()?, hi.parse::<usize>().ok()?);
                if hi < lo || hi - lo > 65_536 {
                    return None;
                }
                out.extend(lo..=hi);
            }
            None => out.push(part.parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(id: usize, core: usize, llc: usize, node: usize) -> Cpu {
        Cpu {
            id,
            core,
            llc,
            node,
        }
    }

    /// Two nodes; node 0 has two LLCs; the first LLC has two SMT cores.
    fn big() -> Topology {
        Topology::from_cpus(vec![
            cpu(0, 0, 0, 0),
            cpu(1, 1, 0, 0),
            cpu(2, 0, 0, 0),
            cpu(3, 1, 0, 0),
            cpu(4, 4, 4, 0),
            cpu(5, 5, 5, 1),
        ])
    }

    #[test]
    fn cpu_lists_parse_and_malformed_ones_are_refused() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11"),
            Some(vec![0, 1, 2, 3, 8, 10, 11])
        );
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    #[test]
    fn every_relation_is_classified_nearest_first() {
        let t = big();
        assert_eq!(t.classify(0, 0), Placement::SameCpu);
        assert_eq!(t.classify(0, 2), Placement::SmtSibling);
        assert_eq!(t.classify(0, 1), Placement::SharedCache);
        assert_eq!(t.classify(0, 4), Placement::OtherCache);
        assert_eq!(t.classify(0, 5), Placement::OtherNode);
        assert_eq!(t.classify(0, 99), Placement::OtherNode);
    }

    #[test]
    fn pairs_offer_each_placement_once_from_the_first_cpu() {
        let pairs = big().pairs();
        let got: Vec<(Placement, usize, usize)> =
            pairs.iter().map(|p| (p.placement, p.a, p.b)).collect();
        assert_eq!(
            got,
            vec![
                (Placement::SameCpu, 0, 0),
                (Placement::SmtSibling, 0, 2),
                (Placement::SharedCache, 0, 1),
                (Placement::OtherCache, 0, 4),
                (Placement::OtherNode, 0, 5),
            ]
        );
        let small = Topology::from_cpus(vec![cpu(0, 0, 0, 0), cpu(1, 1, 0, 0)]);
        assert_eq!(
            small.nearest_cross().map(|p| p.placement),
            Some(Placement::SharedCache)
        );
        assert_eq!(small.pair(Placement::SmtSibling), None);
        assert_eq!(
            small.describe(),
            "2 CPUs: 2 cores, 1 LLC, 1 NUMA node; placements: same CPU, shared LLC"
        );
        assert_eq!(
            big().describe(),
            "6 CPUs: 4 cores, 3 LLCs, 2 NUMA nodes; placements: same CPU, SMT sibling, \
             shared LLC, other LLC, other NUMA node"
        );
        let one = Topology::from_cpus(vec![cpu(3, 3, 3, 0)]);
        assert_eq!(one.nearest_cross(), None);
        assert_eq!(one.pairs()[0].describe(), "same CPU (cpu 3)");
    }

    #[test]
    fn a_mixture_counts_modes_shares_and_migrations() {
        let t = big();
        let batches = [
            tag(&t, (0, 1), (0, 1), 4.0),
            tag(&t, (0, 1), (0, 1), 5.0),
            tag(&t, (0, 0), (0, 0), 1.0),
            tag(&t, (0, 1), (0, 0), 2.0),
        ];
        let m = Mixture::of(&batches).expect("batches given");
        assert!(m.is_mixed());
        assert_eq!(m.migrated, 1);
        assert_eq!(m.modes[0].placement, Placement::SameCpu);
        assert_eq!(m.modes[0].batches, 2);
        assert!((m.modes[0].median - 1.5).abs() < 1e-9);
        assert_eq!(
            m.describe(|v| format!("{v:.1}")),
            "unpinned mixture: 50 % same CPU (median 1.5), 50 % shared LLC (median 4.5); \
             1 of 4 batches migrated"
        );
        assert_eq!(Mixture::of(&[]), None);
    }

    #[test]
    fn this_machine_has_at_least_the_same_cpu_placement() {
        let t = Topology::detect();
        assert!(!t.cpus.is_empty());
        assert_eq!(t.pairs()[0].placement, Placement::SameCpu);
        for p in t.pairs() {
            assert_eq!(t.classify(p.a, p.b), p.placement);
        }
    }
}
