//! Creation timed op by op on a chosen placement, and what each op's parent and child did.
//!
//! **Placements.** Same CPU: the measuring thread is pinned to one CPU, and every child
//! inherits the pin, so the child runs when the parent blocks in `join`/`waitpid` and the
//! parent runs again when the child has exited: two context switches on one CPU, no
//! inter-processor wake-up. Across CPUs: the measuring thread is pinned to the pair's first CPU
//! and moves each new child to the second right after the create call returns (one
//! `sched_setaffinity`, timed apart), so the child's start and the parent's wake-up after its
//! exit are cross-CPU wake-ups (an IPI, and on a VM an idle exit). Leaving the child to the
//! scheduler instead (both CPUs allowed) does not place it: on a busy machine the kernel's fork
//! balancing keeps almost every child on the parent's CPU. A child may still run to its end
//! before it is moved: every op records the parent's CPU before and after and the child's own
//! CPU, and a placement's figure keeps only the ops that really ran there; the others are
//! reported as the run's mixture.
//!
//! **Ops.** One op = create + first instruction + exit + reap, timed alone with `Instant`
//! (tens of ns against tens of µs). The first op is kept apart as the cold start; a few warm-up
//! ops size each round to the profile's target time; each round is a fresh set of ops.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use super::create::Created;
use crate::measure::{PinGuard, pin_current_thread};
use crate::report::Profile;
use crate::stats::{self, Summary};
use crate::topology::{self, Mixture, Pair, Tagged, Topology};

/// How many ops a round takes, per profile.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizing {
    /// Ops run and discarded after the cold one, which also size the rounds.
    pub warmup: usize,
    /// A round lasts about this long.
    pub target: Duration,
    /// But has at least this many ops ...
    pub min_ops: usize,
    /// ... and at most this many.
    pub max_ops: usize,
}

impl Sizing {
    pub(super) fn for_profile(profile: Profile) -> Sizing {
        match profile {
            Profile::Tiny => Sizing {
                warmup: 1,
                target: Duration::from_millis(2),
                min_ops: 3,
                max_ops: 50,
            },
            Profile::Quick => Sizing {
                warmup: 5,
                target: Duration::from_millis(60),
                min_ops: 15,
                max_ops: 4_000,
            },
            Profile::Full => Sizing {
                warmup: 10,
                target: Duration::from_millis(250),
                min_ops: 40,
                max_ops: 20_000,
            },
        }
    }

    /// Ops per round for ops that take `per_op` each.
    fn ops(&self, per_op: Duration) -> usize {
        let n = self.target.as_secs_f64() / per_op.as_secs_f64().max(1e-9);
        (n.round() as usize).clamp(self.min_ops, self.max_ops)
    }
}

/// One op: its time, the create call's own part, and where parent and child ran.
#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Op {
    /// Create to reap.
    pub total_ns: f64,
    /// Create to the create call's return in the parent.
    pub launch_ns: f64,
    /// The parent's CPU before the op and after it.
    pub parent: (Option<usize>, Option<usize>),
    /// The child's CPU, where it reported one.
    pub child: Option<usize>,
    /// Create to the child's move to another CPU, when it was moved.
    pub moved_ns: Option<f64>,
}

/// Every op of one placement's run.
#[derive(Debug, Clone)]
pub(super) struct OpRuns {
    /// The first op, alone.
    pub cold: Op,
    /// The measured rounds, in order.
    pub rounds: Vec<Vec<Op>>,
}

fn one(op: &mut impl FnMut() -> Result<Created>) -> Result<Op> {
    let before = topology::current_cpu();
    let start = Instant::now();
    let created = op()?;
    let total = start.elapsed();
    let after = topology::current_cpu();
    Ok(Op {
        total_ns: total.as_nanos() as f64,
        launch_ns: created.launched.duration_since(start).as_nanos() as f64,
        parent: (before, after),
        child: created.child_cpu,
        moved_ns: created
            .moved
            .map(|m| (created.launched.duration_since(start) + m).as_nanos() as f64),
    })
}

/// Runs `op` alone (cold), `sizing.warmup` times more (discarded), then `rounds` rounds sized
/// from the warm-up ops.
pub(super) fn run(
    sizing: &Sizing,
    rounds: usize,
    mut op: impl FnMut() -> Result<Created>,
) -> Result<OpRuns> {
    let cold = one(&mut op).context("the cold-start op")?;
    let mut warm = Vec::with_capacity(sizing.warmup);
    for _ in 0..sizing.warmup {
        warm.push(one(&mut op).context("a warm-up op")?.total_ns);
    }
    let per_op = if warm.is_empty() {
        cold.total_ns
    } else {
        stats::median(&warm)
    };
    let n = sizing.ops(Duration::from_nanos(per_op as u64));
    let mut all = Vec::with_capacity(rounds.max(1));
    for _ in 0..rounds.max(1) {
        let mut ops = Vec::with_capacity(n);
        for _ in 0..n {
            ops.push(one(&mut op).context("a measured op")?);
        }
        all.push(ops);
    }
    Ok(OpRuns { cold, rounds: all })
}

/// Puts the calling thread, the parent, on `pair.a` until the guard drops (the ops move each
/// child to `pair.b` when it is another CPU).
pub(super) fn place(pair: &Pair) -> Result<PinGuard> {
    pin_current_thread(pair.a)
}

/// The fewest ops that ran on a placement for it to have a figure.
pub(super) const MIN_MATCHED: usize = 3;

/// The ops of one placement's run that really ran on it, as a timing.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Placed {
    /// The median of the rounds' medians of the matched ops.
    pub value_ns: f64,
    /// Each round's median of its matched ops (rounds with none left out).
    pub rounds_ns: Vec<f64>,
    /// Every matched op, pooled.
    pub ops: Summary,
    /// The create call's own part of the matched ops.
    pub launch: Summary,
    /// Create to the child's move to the other CPU, of the matched ops that moved one.
    pub moved: Option<Summary>,
    /// The first op.
    pub cold_ns: f64,
    /// Ops that ran on the intended placement, of all measured ops.
    pub matched: usize,
    /// All measured ops.
    pub total: usize,
    /// Where the ops ran, by placement, when not all ran where intended.
    pub mixture: Option<Mixture>,
}

/// Whether an op ran on `pair`: the parent on `pair.a` throughout and the child on `pair.b`.
/// A child that did not report its CPU counts as on `pair.b` only when `pair` is one CPU (the
/// pin leaves it no other).
fn on_pair(op: &Op, pair: &Pair) -> bool {
    let parent_stayed = op.parent.0 == op.parent.1 && op.parent.1 == Some(pair.a);
    let child = op.child.or((pair.a == pair.b).then_some(pair.b));
    parent_stayed && child == Some(pair.b)
}

/// Each measured op tagged with the placement its parent and child were seen on.
fn tags(runs: &OpRuns, topology: &Topology) -> Vec<Tagged> {
    runs.rounds
        .iter()
        .flatten()
        .filter_map(|op| {
            let (before, after) = (op.parent.0?, op.parent.1?);
            let child = op.child.unwrap_or(after);
            Some(topology::tag(
                topology,
                (before, child),
                (after, child),
                op.total_ns,
            ))
        })
        .collect()
}

/// The ops of `runs` that ran on `pair`; `None` when fewer than a quarter of them, or fewer
/// than [`MIN_MATCHED`], did (then the placement cannot be said to have been measured). A
/// quarter, not a half: a new thread on a busy CPU often runs, and ends, before its parent can
/// move it, and the ops that did run across are still hundreds of like ops; the figure's
/// placement says how many of how many.
pub(super) fn matched(runs: &OpRuns, pair: &Pair, topology: &Topology) -> Option<Placed> {
    let total = runs.rounds.iter().map(Vec::len).sum::<usize>();
    let kept: Vec<Vec<&Op>> = runs
        .rounds
        .iter()
        .map(|r| r.iter().filter(|op| on_pair(op, pair)).collect())
        .collect();
    let matched = kept.iter().map(Vec::len).sum::<usize>();
    let mixture = (matched < total)
        .then(|| Mixture::of(&tags(runs, topology)))
        .flatten();
    if total == 0 || 4 * matched < total || matched < MIN_MATCHED {
        return None;
    }
    let rounds_ns: Vec<f64> = kept
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| stats::median(&r.iter().map(|op| op.total_ns).collect::<Vec<_>>()))
        .collect();
    let pooled: Vec<&Op> = kept.into_iter().flatten().collect();
    let totals: Vec<f64> = pooled.iter().map(|op| op.total_ns).collect();
    let launches: Vec<f64> = pooled.iter().map(|op| op.launch_ns).collect();
    let moves: Vec<f64> = pooled.iter().filter_map(|op| op.moved_ns).collect();
    Some(Placed {
        value_ns: stats::median(&rounds_ns),
        rounds_ns,
        ops: stats::summarize(&totals)?,
        launch: stats::summarize(&launches)?,
        moved: stats::summarize(&moves),
        cold_ns: runs.cold.total_ns,
        matched,
        total,
        mixture,
    })
}

/// The mixture of a run none of whose placements could be said to be measured, for the note
/// that explains the missing figure.
pub(super) fn mixture_of(runs: &OpRuns, topology: &Topology) -> Option<Mixture> {
    Mixture::of(&tags(runs, topology))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::{Placement, Topology};

    fn op(ns: f64, parent: usize, child: Option<usize>) -> Op {
        Op {
            total_ns: ns,
            launch_ns: ns / 4.0,
            parent: (Some(parent), Some(parent)),
            child,
            moved_ns: None,
        }
    }

    #[test]
    fn rounds_are_sized_from_the_warm_ops_within_bounds() {
        let s = Sizing::for_profile(Profile::Quick);
        assert_eq!(s.ops(Duration::from_micros(30)), 2_000);
        assert_eq!(s.ops(Duration::from_millis(50)), s.min_ops);
        assert_eq!(s.ops(Duration::from_nanos(10)), s.max_ops);
    }

    #[test]
    fn only_ops_that_ran_across_the_pair_make_the_cross_figure() {
        let topo = Topology::two_cores_one_llc();
        let cross = topo.nearest_cross().expect("two cpus");
        let runs = OpRuns {
            cold: op(500.0, 0, Some(1)),
            rounds: vec![
                vec![
                    op(40.0, 0, Some(1)),
                    op(42.0, 0, Some(1)),
                    op(10.0, 0, Some(0)),
                ],
                vec![
                    op(44.0, 0, Some(1)),
                    op(46.0, 0, Some(1)),
                    op(12.0, 0, Some(0)),
                ],
            ],
        };
        let p = matched(&runs, &cross, &topo).expect("4 of 6 ran across");
        assert_eq!((p.matched, p.total), (4, 6));
        assert_eq!(p.rounds_ns, vec![41.0, 45.0]);
        assert_eq!(p.value_ns, 43.0);
        assert_eq!(p.cold_ns, 500.0);
        let mixture = p.mixture.expect("a mixture: not every op ran across");
        assert_eq!(mixture.modes[0].placement, Placement::SharedCache);
        assert_eq!(mixture.modes[0].batches, 4);
        // The same-CPU ops are a third, but only two: too few to stand for the same CPU.
        let same = topo.pair(Placement::SameCpu).expect("same cpu");
        assert!(matched(&runs, &same, &topo).is_none());
    }

    #[test]
    fn a_pinned_child_that_cannot_tell_its_cpu_counts_as_on_the_pin() {
        let topo = Topology::two_cores_one_llc();
        let same = topo.pair(Placement::SameCpu).expect("same cpu");
        let runs = OpRuns {
            cold: op(90.0, 0, None),
            rounds: vec![vec![
                op(30.0, 0, None),
                op(32.0, 0, None),
                op(31.0, 0, None),
            ]],
        };
        let p = matched(&runs, &same, &topo).expect("all on cpu 0");
        assert_eq!((p.matched, p.total), (3, 3));
        assert!(p.mixture.is_none());
        // A parent that moved mid-op is not on the pair.
        let mut moved = op(30.0, 0, None);
        moved.parent = (Some(1), Some(0));
        assert!(!on_pair(&moved, &same));
    }
}
