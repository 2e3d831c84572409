//! The recovery machine against a simulated pool: random event sequences, every outcome
//! checked.
//!
//! The simulation plays the workers. A worker given a run "decodes" the arguments of tasks
//! `run.from..` of its job — so a record it commits is the value *its frame's* argument
//! gives — and the machine decides whose outcome each record becomes. If the machine ever
//! delivered a record to the wrong task, requeued from the wrong place, delivered twice or
//! lost a task, the final check sees it.
//!
//! Longer than 600 lines: the simulated pool, its event generator and the checks are one
//! model; split, no part could be read or trusted alone.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// The task function of the simulation, applied to a task's global argument.
fn value_of(job: usize, index: usize) -> u64 {
    (job as u64) << 32 | (2 * index as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok(u64),
    /// A record the worker committed as a failure (a panic or codec error).
    Failed,
    Fate(Fate),
}

#[derive(Debug)]
struct SimWorker {
    run: Run<usize>,
    started: u64,
    committed: u64,
    records: Vec<Outcome>,
    /// The worker wrote a false header: records past its true ones are whatever bytes the
    /// arena held, which the backend's decoder rejects (each record names its task).
    hostile: bool,
}

#[derive(Debug, Clone)]
enum Event {
    Enqueue(usize),
    Dispatch,
    Start(usize),
    Commit(usize, bool),
    /// The next argument does not decode: one codec record, and the run ends early.
    DecodeFail(usize),
    Finish(usize),
    Die(usize),
    /// The worker dies of a cause outside its run: its host is lost (remote workers), or
    /// it never became ready (its initializer or sandbox failed before it read the job).
    Outside(usize),
    /// A timeout fires on the running task; `finish_first` lets it commit (and the next one
    /// start) before the kill lands.
    Timeout(usize, bool),
    /// The worker writes a random header and reports done (or dies).
    Hostile(usize, u64, u64, bool),
    /// The worker writes a random header and never reports done: the pool's own clock
    /// kills it for the timeout, the counts being whatever the worker wrote.
    HostileTimeout(usize, u64, u64),
    /// The next replacement fails.
    BreakSpawn,
    /// A vacant slot gets a worker again (a lost host came back).
    Revive(usize),
    Close,
}

fn event(slots: usize) -> impl Strategy<Value = Event> {
    let s = 0..slots;
    prop_oneof![
        3 => (1usize..6).prop_map(Event::Enqueue),
        3 => Just(Event::Dispatch),
        8 => s.clone().prop_map(Event::Start),
        8 => (s.clone(), any::<bool>()).prop_map(|(s, ok)| Event::Commit(s, ok)),
        1 => s.clone().prop_map(Event::DecodeFail),
        4 => s.clone().prop_map(Event::Finish),
        2 => s.clone().prop_map(Event::Die),
        1 => s.clone().prop_map(Event::Outside),
        2 => (s.clone(), any::<bool>()).prop_map(|(s, f)| Event::Timeout(s, f)),
        1 => (s.clone(), 0u64..8, 0u64..8, any::<bool>())
            .prop_map(|(s, a, b, d)| Event::Hostile(s, a, b, d)),
        1 => (s.clone(), 0u64..8, 0u64..8).prop_map(|(s, a, b)| Event::HostileTimeout(s, a, b)),
        1 => Just(Event::BreakSpawn),
        1 => s.clone().prop_map(Event::Revive),
        1 => Just(Event::Close),
    ]
}

struct Sim {
    m: Machine<usize>,
    retries: u32,
    max_tasks: Option<usize>,
    workers: Vec<Option<SimWorker>>,
    /// Tasks per job.
    jobs: Vec<usize>,
    /// Outcomes delivered, per (job, index).
    outcomes: HashMap<(usize, usize), Vec<Outcome>>,
    starts: HashMap<(usize, usize), u32>,
    commits: HashMap<(usize, usize), u32>,
    /// Tasks that were running when their worker died.
    hit: HashMap<(usize, usize), u32>,
    /// Deaths of the run's own making (not `Outside`) each task saw unstarted in a run
    /// whose worker died before starting any further task: only those may poison it.
    struck: HashMap<(usize, usize), u32>,
    /// Tasks a timeout fired on.
    timed: HashMap<(usize, usize), u32>,
    /// Tasks run by each worker incarnation, to check recycling.
    ran_by_worker: Vec<usize>,
    /// The slot's worker lied in its header: the machine can only count what it reports.
    liar: Vec<bool>,
    break_spawn: bool,
    spawn_failed: bool,
    /// Tasks of runs whose worker lied in its header: it can make them run again (it spoils
    /// its own outcomes), but they still get exactly one outcome, and no other task suffers.
    tainted: std::collections::HashSet<(usize, usize)>,
    /// The task a timeout kill of a lying worker was blamed on: it ends `TimedOut` (or
    /// `Crashed`), never `Poisoned` (a task that hid its start once ran twice that way).
    timed_liars: std::collections::HashSet<(usize, usize)>,
}

impl Sim {
    fn new(slots: usize, max_tasks: Option<usize>, retries: u32) -> Sim {
        Sim {
            m: Machine::new(slots, max_tasks, retries),
            retries,
            max_tasks,
            workers: (0..slots).map(|_| None).collect(),
            jobs: Vec::new(),
            outcomes: HashMap::new(),
            starts: HashMap::new(),
            commits: HashMap::new(),
            hit: HashMap::new(),
            struck: HashMap::new(),
            timed: HashMap::new(),
            ran_by_worker: vec![0; slots],
            liar: vec![false; slots],
            break_spawn: false,
            spawn_failed: false,
            tainted: Default::default(),
            timed_liars: Default::default(),
        }
    }

    fn apply(&mut self, actions: Vec<Action<usize>>, mut dead: Option<(usize, SimWorker)>) {
        let mut queue: VecDeque<Action<usize>> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Send { slot } => {
                    let run = self
                        .m
                        .busy(slot)
                        .expect("a run sent to an idle slot")
                        .clone();
                    assert!(self.workers[slot].is_none(), "a run sent to a busy slot");
                    assert!(run.count > 0 && run.from + run.count <= self.jobs[run.job]);
                    self.workers[slot] = Some(SimWorker {
                        run,
                        started: 0,
                        committed: 0,
                        records: Vec::new(),
                        hostile: false,
                    });
                }
                Action::Deliver {
                    slot,
                    job,
                    from,
                    n,
                    retried,
                } => {
                    // The count an error of the first record would carry: every start.
                    if !self.tainted.contains(&(job, from)) {
                        let starts = self.starts.get(&(job, from)).copied().unwrap_or(0);
                        assert_eq!(
                            retried + 1,
                            starts,
                            "task {:?}: starts miscounted",
                            (job, from)
                        );
                    }
                    let w = match &dead {
                        Some((s, w)) if *s == slot => w,
                        _ => self.workers[slot]
                            .as_ref()
                            .expect("records delivered from an empty slot"),
                    };
                    assert_eq!(
                        (w.run.job, w.run.from),
                        (job, from),
                        "records of another run"
                    );
                    assert!(
                        n <= w.records.len() || w.hostile,
                        "more records delivered than committed"
                    );
                    for k in 0..n {
                        let o = w.records.get(k).copied().unwrap_or(Outcome::Failed);
                        self.outcomes.entry((job, from + k)).or_default().push(o);
                    }
                }
                Action::Fail {
                    slot: _,
                    job,
                    from,
                    count,
                    fate,
                    started,
                } => {
                    // The count the first task's error carries: every start, this one's too.
                    if count > 0 && !self.tainted.contains(&(job, from)) {
                        let starts = self.starts.get(&(job, from)).copied().unwrap_or(0);
                        assert_eq!(started, starts, "task {:?} ({fate:?})", (job, from));
                    }
                    for i in from..from + count {
                        self.outcomes
                            .entry((job, i))
                            .or_default()
                            .push(Outcome::Fate(fate));
                    }
                }
                Action::Respawn { slot, .. } => {
                    if let Some(w) = self.workers[slot].take() {
                        // Recycling: the idle worker is stopped; it has nothing left.
                        assert_eq!(w.committed as usize, w.records.len());
                        dead = Some((slot, w));
                    }
                    if let (Some(max), false) = (self.max_tasks, self.liar[slot]) {
                        assert!(
                            self.ran_by_worker[slot] <= max,
                            "a worker ran past max_tasks"
                        );
                    }
                    self.ran_by_worker[slot] = 0;
                    self.liar[slot] = false;
                    let ok = !self.break_spawn;
                    if !ok {
                        self.spawn_failed = true;
                        self.break_spawn = false;
                    }
                    let mut out = Vec::new();
                    self.m.replaced(slot, ok, &mut out);
                    queue.extend(out);
                }
            }
        }
    }

    fn run_event(&mut self, e: Event) {
        let mut out = Vec::new();
        match e {
            Event::Enqueue(n) => {
                let job = self.jobs.len();
                self.jobs.push(n);
                self.m.enqueue(Run::new(job, n), &mut out);
                self.apply(out, None);
            }
            Event::Dispatch => {
                self.m.dispatch(&mut out);
                self.apply(out, None);
            }
            Event::Start(slot) => {
                if let Some(w) = &mut self.workers[slot] {
                    if w.started == w.committed && (w.started as usize) < w.run.count {
                        let key = (w.run.job, w.run.from + w.started as usize);
                        *self.starts.entry(key).or_default() += 1;
                        w.started += 1;
                        self.ran_by_worker[slot] += 1;
                        if let (Some(max), false) = (self.max_tasks, self.liar[slot]) {
                            assert!(self.ran_by_worker[slot] <= max, "a worker ran past max");
                        }
                    }
                }
            }
            Event::Commit(slot, ok) => {
                if let Some(w) = &mut self.workers[slot] {
                    if w.started == w.committed + 1 {
                        let index = w.run.from + w.committed as usize;
                        *self.commits.entry((w.run.job, index)).or_default() += 1;
                        w.records.push(if ok {
                            Outcome::Ok(value_of(w.run.job, index))
                        } else {
                            Outcome::Failed
                        });
                        w.committed += 1;
                    }
                }
            }
            Event::DecodeFail(slot) => {
                if let Some(w) = &mut self.workers[slot] {
                    if w.started == w.committed && (w.started as usize) < w.run.count {
                        let index = w.run.from + w.committed as usize;
                        *self.starts.entry((w.run.job, index)).or_default() += 1;
                        *self.commits.entry((w.run.job, index)).or_default() += 1;
                        self.ran_by_worker[slot] += 1;
                        w.started += 1;
                        w.committed += 1;
                        w.records.push(Outcome::Failed);
                        self.finish(slot);
                    }
                }
            }
            Event::Finish(slot) => {
                if let Some(w) = &self.workers[slot] {
                    if w.committed == w.run.count as u64 && w.started == w.committed {
                        self.finish(slot);
                    }
                }
            }
            Event::Die(slot) => self.die(slot, Death::Died),
            Event::Outside(slot) => self.die(slot, Death::Outside),
            Event::Timeout(slot, finish_first) => {
                let Some(w) = &self.workers[slot] else {
                    return;
                };
                if w.started != w.committed + 1 {
                    return;
                }
                let index = w.committed as usize;
                *self
                    .timed
                    .entry((w.run.job, w.run.from + index))
                    .or_default() += 1;
                if finish_first {
                    self.run_event(Event::Commit(slot, true));
                    self.run_event(Event::Start(slot));
                }
                let after = Duration::from_secs(1);
                self.die(slot, Death::TimedOut { index, after });
            }
            Event::Hostile(slot, started, committed, report_done) => {
                let Some(w) = &mut self.workers[slot] else {
                    return;
                };
                w.hostile = true;
                self.liar[slot] = true;
                for i in w.run.from..w.run.from + w.run.count {
                    self.tainted.insert((w.run.job, i));
                }
                let seen = Seen { started, committed };
                let mut out = Vec::new();
                if report_done && self.m.done(slot, seen, &mut out) {
                    self.apply(out, None);
                    self.vacate_if_idle(slot);
                } else {
                    assert!(out.is_empty(), "a refused done report acted");
                    self.die_seen(slot, seen, Death::Violation);
                }
            }
            Event::HostileTimeout(slot, started, committed) => {
                let Some(w) = &mut self.workers[slot] else {
                    return;
                };
                w.hostile = true;
                self.liar[slot] = true;
                let (job, from, count) = (w.run.job, w.run.from, w.run.count);
                for i in from..from + count {
                    self.tainted.insert((job, i));
                }
                let index = committed as usize;
                if index < count {
                    self.timed_liars.insert((job, from + index));
                }
                let after = Duration::from_secs(1);
                self.die_seen(
                    slot,
                    Seen { started, committed },
                    Death::TimedOut { index, after },
                );
            }
            Event::BreakSpawn => self.break_spawn = true,
            Event::Revive(slot) => {
                self.m.revive(slot, &mut out);
                self.apply(out, None);
            }
            Event::Close => {
                self.m.close(&mut out);
                self.apply(out, None);
                for slot in 0..self.workers.len() {
                    self.die(slot, Death::Cancelled);
                }
            }
        }
    }

    fn finish(&mut self, slot: usize) {
        let w = self.workers[slot].as_ref().expect("finish on a busy slot");
        let seen = Seen {
            started: w.started,
            committed: w.committed,
        };
        let mut out = Vec::new();
        assert!(
            self.m.done(slot, seen, &mut out),
            "a true done report was refused"
        );
        self.apply(out, None);
        self.vacate_if_idle(slot);
    }

    /// After `done`, the slot's worker is idle: forget its run.
    fn vacate_if_idle(&mut self, slot: usize) {
        if self.m.busy(slot).is_none() {
            if let Some(w) = self.workers[slot].take() {
                // Still present only if the slot was not respawned (idle worker lives on).
                let _ = w;
            }
        }
    }

    fn die(&mut self, slot: usize, death: Death) {
        let Some(w) = &self.workers[slot] else {
            // An idle worker can die too (killed from outside): it is simply replaced.
            if matches!(death, Death::Died | Death::Outside) && self.m.has_worker(slot) {
                let mut out = Vec::new();
                self.m.died(slot, Seen::default(), death, &mut out);
                self.ran_by_worker[slot] = 0;
                self.apply(out, None);
            }
            return;
        };
        let seen = Seen {
            started: w.started,
            committed: w.committed,
        };
        self.die_seen(slot, seen, death);
    }

    fn die_seen(&mut self, slot: usize, seen: Seen, death: Death) {
        let w = self.workers[slot].take().expect("a busy slot");
        if w.started > w.committed && death != Death::Cancelled {
            let key = (w.run.job, w.run.from + w.committed as usize);
            *self.hit.entry(key).or_default() += 1;
        }
        if w.started == w.committed && matches!(death, Death::Died | Death::Violation) {
            for index in w.run.from + w.committed as usize..w.run.from + w.run.count {
                *self.struck.entry((w.run.job, index)).or_default() += 1;
            }
        }
        let mut out = Vec::new();
        self.m.died(slot, seen, death, &mut out);
        self.apply(out, Some((slot, w)));
    }

    /// Runs everything left to completion, as healthy workers would.
    fn drain(&mut self) {
        for _ in 0..10_000 {
            if self.m.is_idle() && self.workers.iter().all(Option::is_none) {
                return;
            }
            self.run_event(Event::Dispatch);
            for slot in 0..self.workers.len() {
                while let Some(w) = &self.workers[slot] {
                    if (w.committed as usize) < w.run.count {
                        self.run_event(Event::Start(slot));
                        self.run_event(Event::Commit(slot, true));
                    } else {
                        self.finish(slot);
                    }
                }
            }
        }
        panic!("the pool never became idle: {:?}", self.m);
    }

    fn check(&self) {
        let closed = self.m.is_closed();
        for (job, &n) in self.jobs.iter().enumerate() {
            for i in 0..n {
                let key = (job, i);
                let got = self.outcomes.get(&key).map(Vec::as_slice).unwrap_or(&[]);
                assert_eq!(got.len(), 1, "task {key:?} has outcomes {got:?}");
                if self.timed_liars.contains(&key) {
                    assert!(
                        !matches!(got[0], Outcome::Fate(Fate::Poisoned { .. })),
                        "{key:?} was killed running past its timeout, yet poisoned: {got:?}"
                    );
                }
                if self.tainted.contains(&key) {
                    // Its own worker lied: its records may be anything (stale bytes in the
                    // arena), but there is exactly one outcome.
                    continue;
                }
                match got[0] {
                    Outcome::Ok(v) => assert_eq!(v, value_of(job, i), "task {key:?}"),
                    Outcome::Failed => {}
                    Outcome::Fate(Fate::Crashed) => {
                        assert!(self.hit.contains_key(&key), "{key:?} crashed unhit")
                    }
                    Outcome::Fate(Fate::TimedOut { .. }) => {
                        assert!(self.timed.contains_key(&key), "{key:?} timed out untimed")
                    }
                    Outcome::Fate(Fate::Violation) => {}
                    Outcome::Fate(Fate::Poisoned { attempts }) => {
                        assert!(attempts >= POISON_LIMIT);
                        // A worker that never became ready, or whose host was lost, is no
                        // strike: only deaths of the run's own making poison a task.
                        let struck = self.struck.get(&key).copied().unwrap_or(0);
                        assert!(
                            struck >= POISON_LIMIT,
                            "{key:?} poisoned after {struck} strikes"
                        );
                    }
                    Outcome::Fate(Fate::Cancelled) => assert!(closed, "{key:?} cancelled"),
                    Outcome::Fate(Fate::NoWorker) => assert!(self.spawn_failed),
                    Outcome::Fate(Fate::Unencodable) => panic!("the simulation always encodes"),
                }
                let commits = self.commits.get(&key).copied().unwrap_or(0);
                assert!(commits <= 1, "task {key:?} committed {commits} times");
                let starts = self.starts.get(&key).copied().unwrap_or(0);
                assert!(
                    starts <= 1 + self.retries,
                    "task {key:?} started {starts} times with {} retries",
                    self.retries
                );
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROCTOR_MODEL_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(5000)
    ))]

    /// Every task ends with exactly one outcome, an `Ok` is its own argument's value,
    /// nothing reruns after committing, and reruns stay within `retries`.
    #[test]
    fn every_task_ends_once_with_its_own_value(
        slots in 1usize..4,
        max_tasks in prop_oneof![Just(None), (1usize..5).prop_map(Some)],
        retries in 0u32..3,
        events in prop::collection::vec(event(3), 0..120),
    ) {
        let mut sim = Sim::new(slots, max_tasks, retries);
        for e in events {
            let e = match e {
                // Aim slot-specific events at existing slots.
                Event::Start(s) => Event::Start(s % slots),
                Event::Commit(s, ok) => Event::Commit(s % slots, ok),
                Event::DecodeFail(s) => Event::DecodeFail(s % slots),
                Event::Finish(s) => Event::Finish(s % slots),
                Event::Die(s) => Event::Die(s % slots),
                Event::Outside(s) => Event::Outside(s % slots),
                Event::Timeout(s, f) => Event::Timeout(s % slots, f),
                Event::Hostile(s, a, b, d) => Event::Hostile(s % slots, a, b, d),
                Event::HostileTimeout(s, a, b) => Event::HostileTimeout(s % slots, a, b),
                e => e,
            };
            sim.run_event(e);
        }
        sim.drain();
        sim.check();
    }
}

#[test]
fn a_run_that_kills_its_worker_before_starting_is_poisoned_after_two_tries() {
    let mut sim = Sim::new(1, None, 0);
    sim.run_event(Event::Enqueue(1));
    sim.run_event(Event::Dispatch);
    sim.run_event(Event::Die(0));
    sim.run_event(Event::Dispatch);
    sim.run_event(Event::Die(0));
    sim.drain();
    sim.check();
    assert_eq!(
        sim.outcomes[&(0, 0)],
        [Outcome::Fate(Fate::Poisoned { attempts: 2 })]
    );
}

#[test]
fn host_losses_before_a_run_starts_are_no_strikes_against_it() {
    // Its worker's host is lost three times before the run's task starts: the run is
    // innocent, and it runs (locally, two such deaths would poison it).
    let mut sim = Sim::new(1, None, 0);
    sim.run_event(Event::Enqueue(1));
    for _ in 0..3 {
        sim.run_event(Event::Dispatch);
        sim.run_event(Event::Outside(0));
    }
    sim.drain();
    sim.check();
    assert_eq!(sim.outcomes[&(0, 0)], [Outcome::Ok(value_of(0, 0))]);
    // A loss while its task runs is that task's crash (the driver reports it `Lost`).
    let mut sim = Sim::new(1, None, 0);
    sim.run_event(Event::Enqueue(2));
    sim.run_event(Event::Dispatch);
    sim.run_event(Event::Start(0));
    sim.run_event(Event::Outside(0));
    sim.drain();
    sim.check();
    assert_eq!(sim.outcomes[&(0, 0)], [Outcome::Fate(Fate::Crashed)]);
    assert_eq!(sim.outcomes[&(0, 1)], [Outcome::Ok(value_of(0, 1))]);
}

#[test]
fn strikes_halve_a_run_until_they_find_the_task_at_fault() {
    // Task 2 of 4 kills every worker that reads its run; the others are fine.
    let mut sim = Sim::new(1, None, 0);
    sim.run_event(Event::Enqueue(4));
    let mut deaths = 0;
    for _ in 0..50 {
        sim.run_event(Event::Dispatch);
        let Some(w) = &sim.workers[0] else { break };
        let (from, count) = (w.run.from, w.run.count);
        if (from..from + count).contains(&2) {
            sim.run_event(Event::Die(0));
            deaths += 1;
        } else {
            for _ in 0..count {
                sim.run_event(Event::Start(0));
                sim.run_event(Event::Commit(0, true));
            }
            sim.run_event(Event::Finish(0));
        }
    }
    sim.drain();
    sim.check();
    assert_eq!(
        sim.outcomes[&(0, 2)],
        [Outcome::Fate(Fate::Poisoned { attempts: 2 })]
    );
    for i in [0, 1, 3] {
        assert_eq!(
            sim.outcomes[&(0, i)],
            [Outcome::Ok(value_of(0, i))],
            "task {i}"
        );
    }
    assert!(deaths <= 6, "{deaths} deaths to find the task at fault");
}

#[test]
fn a_crash_is_retried_only_when_allowed() {
    for retries in [0, 1] {
        let mut sim = Sim::new(1, None, retries);
        sim.run_event(Event::Enqueue(2));
        sim.run_event(Event::Dispatch);
        sim.run_event(Event::Start(0));
        sim.run_event(Event::Die(0));
        sim.drain();
        sim.check();
        let expect = if retries == 0 {
            Outcome::Fate(Fate::Crashed)
        } else {
            Outcome::Ok(value_of(0, 0))
        };
        assert_eq!(sim.outcomes[&(0, 0)], [expect]);
    }
}

#[test]
fn a_timeout_that_lands_after_the_task_finished_falls_on_no_one_else_as_a_timeout() {
    let mut sim = Sim::new(1, None, 0);
    sim.run_event(Event::Enqueue(3));
    sim.run_event(Event::Dispatch);
    sim.run_event(Event::Start(0));
    sim.run_event(Event::Timeout(0, true));
    sim.drain();
    sim.check();
    assert_eq!(sim.outcomes[&(0, 0)], [Outcome::Ok(value_of(0, 0))]);
    // The next task was running when the kill landed: it crashed, it did not time out.
    assert_eq!(sim.outcomes[&(0, 1)], [Outcome::Fate(Fate::Crashed)]);
}

#[test]
fn a_revived_slot_takes_work_again_and_only_a_vacant_one_revives() {
    let mut m: Machine<usize> = Machine::new(1, None, 0);
    let mut out = Vec::new();
    m.revive(0, &mut out);
    assert!(out.is_empty(), "an idle slot is not vacant");
    m.enqueue(Run::new(0, 1), &mut out);
    out.clear();
    m.died(
        0,
        Seen {
            started: 1,
            committed: 0,
        },
        Death::Died,
        &mut out,
    );
    out.clear();
    m.replaced(0, false, &mut out);
    m.enqueue(Run::new(1, 1), &mut out);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Fail {
                fate: Fate::NoWorker,
                ..
            }
        )),
        "with no worker, work fails at once: {out:?}"
    );
    out.clear();
    m.revive(0, &mut out);
    assert!(
        matches!(
            out[..],
            [Action::Respawn {
                slot: 0,
                graceful: false
            }]
        ),
        "{out:?}"
    );
    out.clear();
    m.replaced(0, true, &mut out);
    m.enqueue(Run::new(2, 1), &mut out);
    m.dispatch(&mut out);
    assert!(
        out.iter().any(|a| matches!(a, Action::Send { slot: 0 })),
        "{out:?}"
    );
}

#[test]
fn a_failed_replacement_never_overwrites_a_busy_slot() {
    let mut sim = Sim::new(2, Some(2), 0);
    sim.run_event(Event::Enqueue(2));
    sim.run_event(Event::Enqueue(2));
    sim.run_event(Event::Dispatch);
    sim.run_event(Event::BreakSpawn);
    sim.drain();
    sim.run_event(Event::Enqueue(2));
    sim.drain();
    sim.check();
}

#[test]
fn a_cancelled_task_never_runs_when_queued_and_is_killed_when_running() {
    let mut sim = Sim::new(1, None, 0);
    sim.run_event(Event::Enqueue(1));
    sim.run_event(Event::Enqueue(1));
    sim.run_event(Event::Dispatch);
    // Job 1 is queued behind job 0: cancelling it fails it at once.
    let mut out = Vec::new();
    assert_eq!(sim.m.cancel(|&j| j == 1, &mut out), Cancel::Queued);
    sim.apply(out, None);
    // Job 0 runs: cancelling it names its slot; the backend kills the worker and reports it.
    sim.run_event(Event::Start(0));
    let mut out = Vec::new();
    assert_eq!(sim.m.cancel(|&j| j == 0, &mut out), Cancel::Running(0));
    assert!(out.is_empty());
    sim.die(0, Death::Cancelled);
    sim.drain();
    assert_eq!(sim.outcomes[&(0, 0)], [Outcome::Fate(Fate::Cancelled)]);
    assert_eq!(sim.outcomes[&(1, 0)], [Outcome::Fate(Fate::Cancelled)]);
    assert_eq!(sim.starts.get(&(1, 0)), None, "a cancelled queued task ran");
    // The pool goes on, and a finished job is gone.
    sim.run_event(Event::Enqueue(1));
    sim.drain();
    assert_eq!(sim.outcomes[&(2, 0)], [Outcome::Ok(value_of(2, 0))]);
    let mut out = Vec::new();
    assert_eq!(sim.m.cancel(|&j| j == 2, &mut out), Cancel::Gone);
}
