//! The recovery logic of process mode: one explicit state machine, with no system calls.
//!
//! The process backend (`mod.rs`) owns the worker processes, their pipes and arenas; this
//! module owns every decision about *who gets which outcome*. The backend tells it what
//! happened ([`Machine::enqueue`], [`Machine::dispatch`], [`Machine::done`],
//! [`Machine::died`], [`Machine::replaced`], [`Machine::close`]) together with what it read
//! from a worker's arena header ([`Seen`]), and carries out the [`Action`]s it returns. Because
//! nothing here touches the operating system, the property test at the bottom can drive it
//! through millions of random event sequences — workers dying at every instant, timeouts
//! racing commits, replacements failing, hostile headers — and check the contract:
//!
//! * every task ends with exactly one outcome;
//! * an `Ok` is only ever the record its own worker committed for that task's own argument;
//! * nothing runs again after it committed, and a started task runs again only when the
//!   caller asked for retries.
//!
//! ## States
//!
//! A *run* is a contiguous range of a job's tasks, sent to one worker as one frame. A job
//! starts as one run; what a dead worker leaves unfinished goes back to the front of the
//! queue as a new, shorter run (re-encoded by the backend from the caller's items, so a torn
//! header can never shift an argument onto the wrong task).
//!
//! A slot holds one worker:
//!
//! | state | meaning | leaves by |
//! |---|---|---|
//! | `Idle` | a live worker with no run | `dispatch` → `Busy`, or → `Respawning` when recycling is due |
//! | `Busy` | a live worker running a run | `done` → `Idle` (or `Respawning`), `died` → `Respawning` |
//! | `Respawning` | the backend is starting a replacement | `replaced(true)` → `Idle`, `replaced(false)` → `Vacant` |
//! | `Vacant` | no worker could be started | `revive` → `Respawning` (a lost host is back); when every slot is vacant, queued tasks fail |
//!
//! ## The rules on a worker's death
//!
//! The arena header says how many of the run's tasks started (`started`) and how many
//! committed an outcome record (`committed`). Records `0..committed` are delivered. If a task
//! was running (`started > committed`, or the pool killed the worker for a timeout, which
//! its own clock decides whatever the header says) it is the one the death hit: it gets `TimedOut` when
//! the pool killed it for overrunning, `Crashed` otherwise — or, if the caller allowed
//! [`retries`](crate::PoolBuilder::retries) and the death was a crash, it goes back to the
//! queue with one attempt used. The tasks after it never started and go back to the queue
//! (that is no retry). If no task was running, the death is a *strike* against the rest of
//! the run — unless it was its host's loss (`Death::Outside`), or a worker that never became ready, which is no fault of the run.
//! After two strikes in a row (a job whose argument kills the worker while it is
//! decoded, say) a run of one task ends `Poisoned` instead of looping forever, and a longer
//! run is halved, so the strikes close in on the task at fault in a few deaths (about two per
//! halving) and the others run.

use std::collections::VecDeque;
use std::time::Duration;

/// Consecutive deaths with no task running after which a run's first task is blamed.
pub(crate) const POISON_LIMIT: u32 = 2;

/// A contiguous range of one job's tasks, as sent to one worker.
#[derive(Debug, Clone)]
pub(crate) struct Run<J> {
    /// The backend's job: what it needs to encode, send and deliver.
    pub(crate) job: J,
    /// The run's first task, as an index into the job.
    pub(crate) from: usize,
    /// How many tasks the run holds (at least one).
    pub(crate) count: usize,
    /// Times the run's first task was started and lost to a worker's crash.
    pub(crate) head_attempts: u32,
    /// Consecutive deaths of this run's workers before any of its tasks started.
    pub(crate) strikes: u32,
}

impl<J> Run<J> {
    /// A whole job of `count` tasks.
    pub(crate) fn new(job: J, count: usize) -> Run<J> {
        Run {
            job,
            from: 0,
            count,
            head_attempts: 0,
            strikes: 0,
        }
    }
}

/// What the backend read from a worker's arena header. A hostile worker can write anything
/// there, so the machine trusts none of it beyond the run's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Seen {
    /// Tasks of the run started so far.
    pub(crate) started: u64,
    /// Tasks of the run whose outcome record is complete.
    pub(crate) committed: u64,
}

/// Why a worker with a run is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Death {
    /// It died by itself (crash, `exit`, out of memory) or was killed from outside.
    Died,
    /// The pool killed it because task `index` of its run ran past the timeout.
    TimedOut {
        /// The overrunning task, as an index into the run.
        index: usize,
        /// How long it had run.
        after: Duration,
    },
    /// It broke the protocol (an impossible header or an unreadable arena) and was killed.
    Violation,
    /// The pool was dropped and killed it.
    Cancelled,
    /// A cause outside the run, so a run none of whose tasks had started is queued again
    /// without a strike against it: its host was lost (remote workers), or the worker never
    /// became ready for a job (its initializer or its sandbox failed, or a re-executed worker
    /// refused to start) — no task of the run it was sent had any part in that.
    Outside,
}

/// Why one task ends without a result of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Its worker died under it.
    Crashed,
    /// It ran past the timeout and was killed.
    TimedOut {
        /// How long it had run.
        after: Duration,
    },
    /// Its run killed `attempts` workers in a row before any task started.
    Poisoned {
        /// The deaths in a row.
        attempts: u32,
    },
    /// Its worker broke the protocol while running it.
    Violation,
    /// The pool was dropped first.
    Cancelled,
    /// No worker process could be started for it.
    NoWorker,
    /// Its argument could not be encoded again for a run that resumes its job (a
    /// `Serialize` that failed this time though it had worked before).
    Unencodable,
}

/// Where a job was when the caller cancelled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancel {
    /// It was queued: it failed `Cancelled` and never runs.
    Queued,
    /// It is running in this slot: kill the worker.
    Running(usize),
    /// It is not in the pool any more (it finished).
    Gone,
}

/// What the backend must do, in order.
#[derive(Debug, Clone)]
pub(crate) enum Action<J> {
    /// Send the run `slot` is now busy with ([`Machine::busy`]) to its worker (its arena
    /// reset first).
    Send {
        /// The slot, now `Busy`.
        slot: usize,
    },
    /// Deliver the first `n` outcome records in `slot`'s arena, as the outcomes of tasks
    /// `from..from + n` of `job`.
    Deliver {
        /// Whose arena holds the records.
        slot: usize,
        /// The job they belong to.
        job: J,
        /// The first task's index in the job.
        from: usize,
        /// How many records.
        n: usize,
        /// Times the first of these tasks had been started before and lost to a crash
        /// (rerun under `retries`): its error, if it has one, says so. Data only: no
        /// decision here reads it.
        retried: u32,
    },
    /// Tasks `from..from + count` of `job` end with `fate`.
    Fail {
        /// The slot whose worker's death decided it (its exit and stderr explain it), if
        /// any. Its worker is still there: `Respawn` comes after.
        slot: Option<usize>,
        /// The job.
        job: J,
        /// The first task's index in the job.
        from: usize,
        /// How many tasks.
        count: usize,
        /// Why.
        fate: Fate,
        /// Times the first of these tasks was started: its runs lost to crashes and rerun
        /// under `retries`, and this one if it was running (0 if it never started). Its
        /// error says so. Data only: no decision here reads it.
        started: u32,
    },
    /// Stop the worker in `slot` (if it still lives) and start a replacement; report with
    /// [`Machine::replaced`]. `graceful`: the worker is idle and is being recycled, so let it
    /// exit by itself.
    Respawn {
        /// The slot, now `Respawning`.
        slot: usize,
        /// Recycling an idle worker rather than replacing a dead one.
        graceful: bool,
    },
}

#[derive(Debug, Clone)]
enum SlotState<J> {
    Idle { done: usize },
    Busy { run: Run<J>, done: usize },
    Respawning,
    Vacant,
}

/// The pool's recovery state: the slots and the queue of runs.
#[derive(Debug)]
pub(crate) struct Machine<J> {
    slots: Vec<SlotState<J>>,
    queue: VecDeque<Run<J>>,
    /// Recycle a worker after this many tasks.
    max_tasks: Option<usize>,
    /// Reruns allowed per task whose worker crashed.
    retries: u32,
    closed: bool,
}

impl<J: Clone> Machine<J> {
    /// `workers` idle slots.
    pub(crate) fn new(workers: usize, max_tasks: Option<usize>, retries: u32) -> Machine<J> {
        Machine {
            slots: (0..workers).map(|_| SlotState::Idle { done: 0 }).collect(),
            queue: VecDeque::new(),
            max_tasks,
            retries,
            closed: false,
        }
    }

    /// The run `slot` is busy with.
    pub(crate) fn busy(&self, slot: usize) -> Option<&Run<J>> {
        match &self.slots[slot] {
            SlotState::Busy { run, .. } => Some(run),
            _ => None,
        }
    }

    /// True if `slot` holds a live worker (idle or busy).
    pub(crate) fn has_worker(&self, slot: usize) -> bool {
        matches!(
            self.slots[slot],
            SlotState::Idle { .. } | SlotState::Busy { .. }
        )
    }

    /// True if nothing is queued and no slot is busy (or being replaced).
    pub(crate) fn is_idle(&self) -> bool {
        self.queue.is_empty()
            && self
                .slots
                .iter()
                .all(|s| matches!(s, SlotState::Idle { .. } | SlotState::Vacant))
    }

    /// True if some slot is busy.
    pub(crate) fn any_busy(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s, SlotState::Busy { .. }))
    }

    /// True once [`Machine::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// A new job: queued behind the others (or failed at once when the pool is closed or
    /// has no worker left).
    pub(crate) fn enqueue(&mut self, run: Run<J>, out: &mut Vec<Action<J>>) {
        if self.closed {
            out.push(fail_all(run, Fate::Cancelled));
        } else if self.all_vacant() {
            out.push(fail_all(run, Fate::NoWorker));
        } else {
            self.queue.push_back(run);
        }
    }

    /// Hands queued runs to idle slots; a slot whose worker would pass `max_tasks` is
    /// recycled first.
    pub(crate) fn dispatch(&mut self, out: &mut Vec<Action<J>>) {
        if self.closed {
            return;
        }
        for slot in 0..self.slots.len() {
            let Some(run) = self.queue.front() else {
                return;
            };
            let SlotState::Idle { done } = self.slots[slot] else {
                continue;
            };
            if let Some(max) = self.max_tasks {
                if done > 0 && done + run.count > max {
                    self.slots[slot] = SlotState::Respawning;
                    out.push(Action::Respawn {
                        slot,
                        graceful: true,
                    });
                    continue;
                }
            }
            let mut run = self.queue.pop_front().expect("the queue has a front");
            if let Some(max) = self.max_tasks {
                if run.count > max {
                    // A fresh worker may run `max` tasks: send that many, keep the rest.
                    self.queue.push_front(rest(&run, max, 0, 0));
                    run.count = max;
                }
            }
            self.slots[slot] = SlotState::Busy { run, done };
            out.push(Action::Send { slot });
        }
    }

    /// The backend could not encode the run it was told to send to `slot`: the run's tasks
    /// fail, and the slot is idle again.
    pub(crate) fn unsent(&mut self, slot: usize, out: &mut Vec<Action<J>>) {
        let state = std::mem::replace(&mut self.slots[slot], SlotState::Idle { done: 0 });
        match state {
            SlotState::Busy { run, done } => {
                self.slots[slot] = SlotState::Idle { done };
                out.push(fail_all(run, Fate::Unencodable));
            }
            other => self.slots[slot] = other,
        }
    }

    /// The worker in `slot` reported its run done. A worker may end a run early (after an
    /// argument that did not decode, the next ones cannot be located), so the tasks it did
    /// not reach go back to the queue. Returns false — and changes nothing — if the report is
    /// impossible (nothing committed, or more than the run holds): the backend then kills
    /// the worker and reports [`Death::Violation`].
    pub(crate) fn done(&mut self, slot: usize, seen: Seen, out: &mut Vec<Action<J>>) -> bool {
        let SlotState::Busy { run, done } = &self.slots[slot] else {
            return false;
        };
        let count = run.count as u64;
        if seen.committed == 0 || seen.committed > count || seen.started != seen.committed {
            return false;
        }
        let (run, done) = (run.clone(), *done);
        let n = seen.committed as usize;
        out.push(Action::Deliver {
            slot,
            job: run.job.clone(),
            from: run.from,
            n,
            retried: run.head_attempts,
        });
        if n < run.count {
            self.requeue(rest(&run, n, 0, 0), out);
        }
        let done = done + n;
        if self.closed {
            self.slots[slot] = SlotState::Idle { done };
        } else if self.max_tasks.is_some_and(|max| done >= max) {
            self.slots[slot] = SlotState::Respawning;
            out.push(Action::Respawn {
                slot,
                graceful: true,
            });
        } else {
            self.slots[slot] = SlotState::Idle { done };
        }
        true
    }

    /// The worker in `slot` is gone (`seen` read after it died). Its committed records are
    /// delivered, the task it was running gets its fate, and the rest of its run is queued
    /// again. The slot is then replaced (unless the pool is closed).
    pub(crate) fn died(&mut self, slot: usize, seen: Seen, death: Death, out: &mut Vec<Action<J>>) {
        let state = std::mem::replace(&mut self.slots[slot], SlotState::Respawning);
        if let SlotState::Busy { run, .. } = state {
            self.bury(slot, run, seen, death, out);
        }
        if self.closed {
            self.slots[slot] = SlotState::Vacant;
        } else {
            out.push(Action::Respawn {
                slot,
                graceful: false,
            });
        }
    }

    fn bury(
        &mut self,
        slot: usize,
        run: Run<J>,
        seen: Seen,
        death: Death,
        out: &mut Vec<Action<J>>,
    ) {
        let count = run.count;
        // A live worker keeps committed <= started <= committed + 1 <= count; clamp whatever
        // a hostile or torn header says into that range.
        let committed = (seen.committed.min(count as u64)) as usize;
        // A timeout kill is the parent's own word that a task was running (its clock runs
        // from the job's send, whatever the header's counts say): a task that wrote its
        // STARTED count back was otherwise taken for one that never started, and ran again.
        let timed_out = matches!(death, Death::TimedOut { .. });
        let running = (seen.started > seen.committed || timed_out) && committed < count;
        if committed > 0 {
            out.push(Action::Deliver {
                slot,
                job: run.job.clone(),
                from: run.from,
                n: committed,
                retried: run.head_attempts,
            });
        }
        let job = run.job.clone();
        let at = run.from + committed;
        // Times the task at `at` was started before this run (none if it was not its head).
        let before = if committed == 0 { run.head_attempts } else { 0 };
        let fail = |count: usize, fate: Fate, started: u32, out: &mut Vec<Action<J>>| {
            out.push(Action::Fail {
                slot: Some(slot),
                job: job.clone(),
                from: at,
                count,
                fate,
                started,
            });
        };
        if death == Death::Cancelled {
            fail(
                count - committed,
                Fate::Cancelled,
                before + u32::from(running),
                out,
            );
            return;
        }
        if running {
            let fate = match death {
                Death::TimedOut { index, after } if index == committed => Fate::TimedOut { after },
                Death::Violation => Fate::Violation,
                _ => Fate::Crashed,
            };
            let attempts = if committed == 0 { run.head_attempts } else { 0 } + 1;
            if fate == Fate::Crashed && attempts <= self.retries {
                // Rerun it (the caller allowed it), with one attempt used.
                self.requeue(rest(&run, committed, attempts, 0), out);
                return;
            }
            fail(1, fate, attempts, out);
            if committed + 1 < count {
                self.requeue(rest(&run, committed + 1, 0, 0), out);
            }
            return;
        }
        if committed == count {
            return;
        }
        // No task was running: a strike against the run from its first unstarted task on,
        // unless its host was lost, which is no fault of the run.
        let strike = u32::from(death != Death::Outside);
        let strikes = if committed == 0 { run.strikes } else { 0 } + strike;
        let left = count - committed;
        // The head keeps its attempts if it is still the run's head: the same task.
        let head = if committed == 0 { run.head_attempts } else { 0 };
        if strikes >= POISON_LIMIT && left == 1 {
            fail(1, Fate::Poisoned { attempts: strikes }, head, out);
        } else if strikes >= POISON_LIMIT {
            // Something in the run kills its worker before any task starts (its frame is too
            // big to read under the memory limit, say). Halve it, so the strikes close in on
            // the task at fault in a few deaths, and the innocent ones run.
            let half = left / 2;
            let second = part(&run, committed + half, left - half, 0);
            let first = part(&run, committed, half, head);
            self.requeue(second, out);
            self.requeue(first, out);
        } else {
            self.requeue(rest(&run, committed, head, strikes), out);
        }
    }

    /// The backend started a replacement in `slot` (`ok`), or could not. When no slot has a
    /// worker left, every queued task fails.
    pub(crate) fn replaced(&mut self, slot: usize, ok: bool, out: &mut Vec<Action<J>>) {
        debug_assert!(matches!(self.slots[slot], SlotState::Respawning));
        self.slots[slot] = if ok && !self.closed {
            SlotState::Idle { done: 0 }
        } else {
            SlotState::Vacant
        };
        if self.all_vacant() {
            for run in self.queue.drain(..) {
                out.push(fail_all(run, Fate::NoWorker));
            }
        }
    }

    /// A vacant slot can have a worker again (a lost host's agent came back): the backend
    /// is asked for one. Nothing happens to any other slot, or once the pool is closed.
    pub(crate) fn revive(&mut self, slot: usize, out: &mut Vec<Action<J>>) {
        if self.closed || !matches!(self.slots.get(slot), Some(SlotState::Vacant)) {
            return;
        }
        self.slots[slot] = SlotState::Respawning;
        out.push(Action::Respawn {
            slot,
            graceful: false,
        });
    }

    /// The caller cancels the job `is_job` picks (a submitted task: one run). A queued run
    /// fails `Cancelled` at once; for a running one the slot comes back, and the backend
    /// kills its worker and reports [`Death::Cancelled`] (a record committed just before the
    /// kill is still delivered).
    pub(crate) fn cancel(
        &mut self,
        is_job: impl Fn(&J) -> bool,
        out: &mut Vec<Action<J>>,
    ) -> Cancel {
        if let Some(i) = self.queue.iter().position(|r| is_job(&r.job)) {
            let run = self.queue.remove(i).expect("the position is in the queue");
            out.push(fail_all(run, Fate::Cancelled));
            return Cancel::Queued;
        }
        for (slot, state) in self.slots.iter().enumerate() {
            if let SlotState::Busy { run, .. } = state {
                if is_job(&run.job) {
                    return Cancel::Running(slot);
                }
            }
        }
        Cancel::Gone
    }

    /// The pool is dropped: queued runs are cancelled. Busy slots stay busy until the
    /// backend kills their workers and reports [`Death::Cancelled`] (their committed
    /// records are still delivered).
    pub(crate) fn close(&mut self, out: &mut Vec<Action<J>>) {
        self.closed = true;
        for run in self.queue.drain(..) {
            out.push(fail_all(run, Fate::Cancelled));
        }
    }

    fn requeue(&mut self, run: Run<J>, out: &mut Vec<Action<J>>) {
        if self.closed {
            // A run finished early after the pool closed: the rest never runs.
            out.push(fail_all(run, Fate::Cancelled));
        } else {
            self.queue.push_front(run);
        }
    }

    fn all_vacant(&self) -> bool {
        self.slots.iter().all(|s| matches!(s, SlotState::Vacant))
    }
}

/// Tasks `k..` of `run` as a new run.
fn rest<J: Clone>(run: &Run<J>, k: usize, head_attempts: u32, strikes: u32) -> Run<J> {
    Run {
        job: run.job.clone(),
        from: run.from + k,
        count: run.count - k,
        head_attempts,
        strikes,
    }
}

/// Tasks `k..k + count` of `run` as a new run with no strikes.
fn part<J: Clone>(run: &Run<J>, k: usize, count: usize, head_attempts: u32) -> Run<J> {
    Run {
        job: run.job.clone(),
        from: run.from + k,
        count,
        head_attempts,
        strikes: 0,
    }
}

fn fail_all<J>(run: Run<J>, fate: Fate) -> Action<J> {
    Action::Fail {
        slot: None,
        job: run.job,
        from: run.from,
        count: run.count,
        fate,
        started: run.head_attempts,
    }
}

#[cfg(test)]
mod tests;
