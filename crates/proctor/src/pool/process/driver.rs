//! The driver: what a waiting thread (or the supervisor) does to move the pool along —
//! collect finished jobs, bury dead workers, enforce timeouts, read stderr — and the
//! supervisor's loop. How it carries out the recovery machine's actions with system calls
//! is `act.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::act::seen;
use super::handle::Worker;
use super::job::Job;
use super::recovery::{Death, Run};
use super::{EXIT_WAIT, KILL_GRACE, PARK_AFTER, STDERR_TICK, Shared, State, StateGuard};
use crate::arena;
use crate::remote::hub::Hub;
use crate::server::{Exit, ForkServer};
use crate::sys::SharedMapping;

impl Shared {
    pub(super) fn lock(&self) -> StateGuard<'_> {
        StateGuard::new(&self.state)
    }

    /// The longest a worker's arena may grow: what holds a job's results of `max_payload`
    /// bytes. (A remote worker's arena is the hub's mirror of what its agent sent, within
    /// the remote limit.)
    pub(super) fn arena_max(&self) -> usize {
        if self.remote.is_some() {
            arena::MAX_LEN
        } else {
            arena::max_len(self.config.max_payload)
        }
    }

    /// How many worker ends were announced so far (see [`deaths`]).
    pub(super) fn deaths(&self) -> u64 {
        deaths(self.server, self.remote.as_ref())
    }

    /// Frees the memory of large arguments and results already read, in idle workers (the
    /// supervisor's work: off the path of the outcomes that brought them).
    fn free_read(&self, st: &mut State) {
        let now = Instant::now();
        for s in 0..st.workers.len() {
            if st.machine.busy(s).is_some() {
                continue;
            }
            if let Some(w) = st.workers[s].as_mut().filter(|w| w.read_memory_due(now)) {
                w.free_read();
            }
        }
    }

    /// Spins (unlocked) up to [`arena::SPIN`] until one of `slots` reports its job done;
    /// true if one did.
    fn spin_for_done(&self, st: StateGuard<'_>, slots: &[usize]) -> bool {
        // The header mappings stay valid while we spin unlocked: they are reference-counted.
        let targets: Vec<(Arc<SharedMapping>, u64)> = slots
            .iter()
            .filter_map(|&s| st.workers[s].as_ref())
            .map(|w| (Arc::clone(&w.header), w.sent_seq))
            .collect();
        drop(st);
        let start = Instant::now();
        while start.elapsed() < arena::SPIN {
            for _ in 0..32 {
                if targets
                    .iter()
                    .any(|(header, sent)| arena::done_seq(header) == *sent)
                {
                    return true;
                }
                std::hint::spin_loop();
            }
        }
        false
    }

    /// Runs the pool until `done(state)` holds or nothing is left to drive.
    fn drive<'a>(
        &'a self,
        mut st: StateGuard<'a>,
        done: &dyn Fn(&State) -> bool,
        deadline: Option<Instant>,
    ) -> StateGuard<'a> {
        loop {
            // Read the doorbell before looking for news: news that lands after the look
            // moves it, and the wait below then returns at once.
            let seq = self.doorbell.seq();
            if self.collect_news(&mut st) {
                // Outcomes delivered for other waiting threads: let them go now, not when
                // this driver is done.
                self.notify(&mut st);
                if done(&st) {
                    // Ours among them: what is left (a recycled worker's replacement) is
                    // the supervisor's, or the next driver's.
                    return st;
                }
                continue;
            }
            if done(&st) || st.machine.is_closed() || !st.machine.any_busy() {
                return st;
            }
            let mut wait = self.next_deadline(&mut st).min(STDERR_TICK);
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return st;
                }
                wait = wait.min(left);
            }
            if self.remote.is_some() {
                st = self.wait_remote(st, seq, wait.max(Duration::from_micros(100)));
                if st.machine.is_closed() || st.stopping {
                    return st;
                }
                continue;
            }
            let cpu = crate::sys::current_cpu();
            let spinners: Vec<usize> = (0..st.workers.len())
                .filter(|&s| {
                    st.machine.busy(s).is_some()
                        && st.workers[s]
                            .as_ref()
                            .is_some_and(|w| arena::worker_elsewhere(&w.header, cpu))
                })
                .collect();
            if !spinners.is_empty() {
                // A worker on another CPU: watch its arena a moment for the job to finish,
                // rather than sleep and pay a cross-CPU wake-up.
                let finished = self.spin_for_done(st, &spinners);
                st = self.lock();
                if st.machine.is_closed() || st.stopping {
                    return st;
                }
                if finished {
                    continue;
                }
            }
            drop(st);
            self.doorbell
                .wait(seq, wait.max(Duration::from_micros(100)));
            st = self.lock();
            if st.machine.is_closed() || st.stopping {
                return st;
            }
            if self.doorbell.seq() == seq {
                self.tick(&mut st);
            }
        }
    }

    /// Sleeps until the doorbell rings past `seq`, a busy remote worker's connection has
    /// something to read, or `wait` passes (then looks at the clocks and stderr, as a quiet
    /// moment of the futex path does).
    fn wait_remote<'a>(&'a self, st: StateGuard<'a>, seq: u32, wait: Duration) -> StateGuard<'a> {
        let conns: Vec<Arc<crate::remote::hub::Gen>> = (0..st.workers.len())
            .filter(|&s| st.machine.busy(s).is_some())
            .filter_map(|s| st.workers[s].as_ref()?.host.conn())
            .filter(|c| c.is_open())
            .map(Arc::clone)
            .collect();
        drop(st);
        let fds: Vec<_> = conns.iter().map(|c| c.data_fd()).collect();
        let start = Instant::now();
        self.doorbell.poll_wait(seq, &fds, wait);
        let mut st = self.lock();
        if self.doorbell.seq() == seq && start.elapsed() >= wait {
            self.tick(&mut st);
        }
        st
    }

    /// What a quiet moment is for: read busy and retired workers' stderr (a worker whose
    /// stderr pipe is full would otherwise block), and look at the clocks.
    fn tick(&self, st: &mut State) {
        self.read_stderr(st);
        if let Some(limit) = self.config.task_timeout {
            self.check_timeouts(st, limit);
        }
    }

    /// Reads what every worker, live or retired, wrote to stderr so far.
    fn read_stderr(&self, st: &mut State) {
        for w in st.workers.iter_mut().flatten() {
            w.drain_stderr();
        }
        st.retired.retain_mut(|r| !r.drain());
        st.last_drain = Instant::now();
    }

    /// How long until the next running task's timeout is due (each busy worker's clock
    /// takes a look at its header on the way).
    fn next_deadline(&self, st: &mut State) -> Duration {
        let mut wait = Duration::MAX;
        if let Some(limit) = self.config.task_timeout {
            let now_ns = crate::sys::monotonic_ns();
            let grace = self.remote_grace();
            for s in 0..st.workers.len() {
                let Some(w) = self.running(st, s) else {
                    continue;
                };
                let ends = deadline(w, limit, grace, now_ns);
                wait = wait.min(Duration::from_nanos(ends.saturating_sub(now_ns)));
            }
        }
        wait
    }

    /// What a remote worker's job gets past its own time before the pool kills it: its agent
    /// enforces each task's timeout where it runs, and reports within a heartbeat's loss.
    fn remote_grace(&self) -> Duration {
        self.config
            .remote
            .as_ref()
            .map_or(Duration::ZERO, |r| r.lost_after)
    }

    /// The worker of slot `s`, if it is running a job it has not reported done.
    fn running<'a>(&self, st: &'a mut State, s: usize) -> Option<&'a mut Worker> {
        st.machine.busy(s)?;
        let w = st.workers[s].as_mut()?;
        let running = arena::done_seq(&w.header) != w.sent_seq;
        running.then_some(w)
    }

    /// Finishes the jobs workers reported done, and buries workers the fork server reported
    /// dead. True if any outcome was delivered.
    pub(super) fn collect_news(&self, st: &mut State) -> bool {
        self.spawn_deferred(st);
        let mut out = std::mem::take(&mut st.actions);
        out.clear();
        if self.remote.is_some() {
            self.revive(st, &mut out);
            // What remote workers sent is read by whoever drives, here.
            for s in 0..st.workers.len() {
                if let (Some(_), Some(Some(w))) = (st.machine.busy(s), st.workers.get(s)) {
                    w.host.pump();
                }
            }
        }
        for s in 0..st.workers.len() {
            if st.machine.busy(s).is_none() {
                continue;
            }
            let Some(w) = st.workers[s].as_mut() else {
                continue;
            };
            if arena::done_seq(&w.header) != w.sent_seq {
                continue;
            }
            let accepted = arena::refresh(&mut w.arena, self.arena_max()).is_ok()
                && st.machine.done(s, seen(&w.arena), &mut out);
            if !accepted {
                w.host.kill(Signal::SIGKILL);
                self.on_death(st, s, Death::Violation, &mut out);
            }
        }
        let deaths = self.deaths();
        if deaths != st.deaths_seen {
            st.deaths_seen = deaths;
            for s in 0..st.workers.len() {
                let Some(w) = st.workers[s].as_ref() else {
                    continue;
                };
                if !st.machine.has_worker(s) {
                    continue;
                }
                if let Some(exit) = w.host.try_exit() {
                    st.exits[s] = Some(exit);
                    // A remote worker's agent enforces the timeout on its host, and says so.
                    let death = match w.host.timed_out() {
                        Some(after) => Death::TimedOut {
                            index: arena::progress(&w.arena).committed as usize,
                            after,
                        },
                        None => Death::Died,
                    };
                    self.on_death(st, s, death, &mut out);
                }
            }
        }
        if out.is_empty() {
            st.actions = out;
            return std::mem::take(&mut st.delivered);
        }
        self.act(st, &mut out);
        st.actions = out;
        if st.last_drain.elapsed() >= STDERR_TICK {
            self.read_stderr(st);
        }
        std::mem::take(&mut st.delivered)
    }

    fn check_timeouts(&self, st: &mut State, limit: Duration) {
        let now_ns = crate::sys::monotonic_ns();
        let grace = self.remote_grace();
        let mut out = Vec::new();
        for s in 0..st.workers.len() {
            // Every job the worker has not reported done has a running task, whatever the
            // header's counts say: a task that wrote COMMITTED = STARTED into it was once
            // taken for idle, and never timed out.
            let Some(w) = self.running(st, s) else {
                continue;
            };
            if now_ns < deadline(w, limit, grace, now_ns) {
                continue;
            }
            let p = arena::progress(&w.arena);
            let ran = Duration::from_nanos(now_ns.saturating_sub(w.clock.started_ns()));
            // The task that overran; if it commits before the kill lands, the machine sees
            // that and blames it on no one.
            let index = p.committed as usize;
            w.host.kill(Signal::SIGTERM);
            let mut exit = w.host.wait_exit(KILL_GRACE);
            if exit.is_none() {
                w.host.kill(Signal::SIGKILL);
                exit = w.host.wait_exit(EXIT_WAIT);
            }
            if exit.is_none() {
                w.host.forget();
            }
            st.exits[s] = Some(exit.unwrap_or(Exit::Signal(libc::SIGKILL)));
            self.on_death(st, s, Death::TimedOut { index, after: ran }, &mut out);
        }
        if !out.is_empty() {
            self.act(st, &mut out);
            // A timeout is an outcome too: wake whoever waits for it.
            self.notify(st);
        }
    }

    /// Wakes the threads waiting for outcomes, if any.
    pub(super) fn notify(&self, st: &mut State) {
        st.delivered = false;
        if st.waiters > 0 {
            self.cond.notify_all();
        }
    }

    /// Sleeps on the condition variable, at most `limit`.
    fn sleep<'a>(&'a self, mut st: StateGuard<'a>, limit: Option<Duration>) -> StateGuard<'a> {
        st.waiters += 1;
        let mut st = st.wait(&self.cond, limit);
        st.waiters -= 1;
        st
    }

    /// Waits until `done` holds, driving the pool when no other thread does.
    pub(super) fn wait_until(&self, done: &dyn Fn(&State) -> bool) {
        self.wait_until_deadline(done, None);
    }

    /// Waits until `done` holds or `deadline` passes, driving the pool when no other thread
    /// does. True if `done` holds.
    pub(super) fn wait_until_deadline(
        &self,
        done: &dyn Fn(&State) -> bool,
        deadline: Option<Instant>,
    ) -> bool {
        let left = || deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut st = self.lock();
        loop {
            if done(&st) {
                return true;
            }
            if left() == Some(Duration::ZERO) {
                return false;
            }
            if !st.driving {
                st.driving = true;
                super::DRIVING.set(true);
                st = self.drive(st, done, deadline);
                super::DRIVING.set(false);
                st.driving = false;
                self.notify(&mut st);
                if done(&st) {
                    return true;
                }
                if st.machine.is_closed() {
                    return false;
                }
                if !st.machine.any_busy() {
                    // Nothing left to drive yet not done: wait for another thread's news.
                    let nap = Duration::from_millis(10);
                    st = self.sleep(st, Some(left().map_or(nap, |l| l.min(nap))));
                }
                continue;
            }
            st = self.sleep(st, left());
        }
    }

    /// Takes in what finished workers have, if no thread is driving (for a look at a task
    /// that does not wait).
    pub(super) fn poll(&self) {
        let mut st = self.lock();
        if !st.driving && !st.machine.is_closed() {
            st.driving = true;
            let _ = self.collect_news(&mut st);
            st.driving = false;
            self.notify(&mut st);
        }
    }

    pub(super) fn enqueue(&self, job: Job) {
        let mut st = self.lock();
        let mut out = std::mem::take(&mut st.actions);
        out.clear();
        // Before the job is queued: with every slot vacant it would fail at once.
        self.revive(&mut st, &mut out);
        let count = job.count;
        st.machine.enqueue(Run::new(job, count), &mut out);
        st.machine.dispatch(&mut out);
        self.act(&mut st, &mut out);
        st.actions = out;
        if st.driving {
            self.doorbell.ring();
        } else if self.collect_news(&mut st) {
            // Nobody is driving (a `map` enqueues all its jobs before it waits): take in
            // what finished workers have, which hands them the next jobs now.
            self.notify(&mut st);
        } else if st.delivered {
            self.notify(&mut st);
        }
        if st.supervisor_parked {
            st.supervisor_parked = false;
            self.supervisor.notify_one();
        }
    }

    /// The supervisor: drives the pool when nobody waits (see the module doc).
    pub(super) fn supervise(&self) {
        let mut st = self.lock();
        let mut quiet = 0u32;
        loop {
            if st.stopping {
                return;
            }
            let seq = self.doorbell.seq();
            // A slot waiting for its host's relaunch counts: whoever drives hands it back.
            let busy = st.machine.any_busy()
                || !st.retired.is_empty()
                || st.relaunching.iter().any(|&r| r)
                || st.deferred.contains(&true);
            if busy && !st.driving {
                st.driving = true;
                let _ = self.collect_news(&mut st);
                self.tick(&mut st);
                st.driving = false;
                self.notify(&mut st);
            }
            if !st.driving {
                self.free_read(&mut st);
            }
            quiet = if busy || st.awaiting > 0 {
                0
            } else {
                quiet + 1
            };
            if st.awaiting > 0 && busy {
                // Someone awaits an outcome: sleep on the doorbell, which the worker rings.
                let wait = self.next_deadline(&mut st).min(STDERR_TICK);
                if self.remote.is_some() {
                    st = self.wait_remote(st, seq, wait.max(Duration::from_micros(100)));
                    continue;
                }
                drop(st);
                self.doorbell
                    .wait(seq, wait.max(Duration::from_micros(100)));
                st = self.lock();
            } else if quiet > PARK_AFTER {
                let free_at = st
                    .workers
                    .iter()
                    .flatten()
                    .filter_map(Worker::free_after)
                    .min();
                if let Some(at) = free_at {
                    // Memory to free later: sleep till then, not indefinitely.
                    let wait = at.saturating_duration_since(Instant::now());
                    st = st.wait(&self.supervisor, Some(wait.max(Duration::from_millis(1))));
                    continue;
                }
                st.supervisor_parked = true;
                st = st.wait(&self.supervisor, None);
                quiet = 0;
            } else {
                let wait = self.next_deadline(&mut st).min(STDERR_TICK);
                st = st.wait(&self.supervisor, Some(wait.max(Duration::from_millis(1))));
            }
        }
    }
}

/// How many worker ends were announced so far: the fork server's (of every pool's local
/// workers), and the pool's remote workers' (by their agents). A driver looks for dead
/// workers only when this moved.
pub(super) fn deaths(server: &ForkServer, remote: Option<&Hub>) -> u64 {
    server.deaths().wrapping_add(remote.map_or(0, Hub::deaths))
}

/// When worker `w`'s running task must be killed. A local worker's clock looks at its
/// header (see [`arena::StartClock`]); a remote one's agent keeps each task's timeout where
/// it runs, and the pool bounds the whole job itself, since an agent reads a header its
/// task can write: `count` timeouts from the send, and `grace` for the agent to report.
fn deadline(w: &mut Worker, limit: Duration, grace: Duration, now_ns: u64) -> u64 {
    if w.host.is_remote() {
        let grace = u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX);
        return w.clock.job_deadline_ns(limit).saturating_add(grace);
    }
    w.clock.look(&arena::progress(&w.arena), now_ns);
    w.clock.deadline_ns(limit)
}
