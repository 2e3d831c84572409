//! The driver: what a waiting thread (or the supervisor) does to move the pool along —
//! collect finished jobs, bury dead workers, enforce timeouts, read stderr — and how it
//! carries out the recovery machine's actions with system calls.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::handle::Worker;
use super::job::{Delivery, Job};
use super::outcome::RecordIter;
use super::recovery::{Action, Death, Fate, Run, Seen};
use super::{EXIT_WAIT, KILL_GRACE, PARK_AFTER, STDERR_TICK, Shared, State, StateGuard};
use crate::arena;
use crate::error::TaskError;
use crate::exit::ExitCode;
use crate::remote::hub::Hub;
use crate::server::{Exit, ForkServer};
use crate::sys::SharedMapping;
use crate::wire;

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

    /// Starts a worker; with a worker initializer or a sandbox, their frames go first, so the
    /// worker runs them before any job.
    pub(super) fn spawn_worker(&self, slot: usize, id: u32) -> std::io::Result<Worker> {
        let mut w = match &self.remote {
            Some(hub) => Worker::spawn_remote(hub, slot, id, self.config.forward_stderr)?,
            None => Worker::spawn(
                self.server,
                self.doorbell.fd(),
                id,
                self.config.memory_limit,
                self.config.forward_stderr,
                self.config.capture_output,
                self.config.start_method == crate::StartMethod::Exec,
            )?,
        };
        // The calls the worker makes before its first job, in one write: the initializer,
        // then the sandbox (after the initializer, trusted code that may open what the tasks
        // then may not).
        let mut frames = Vec::new();
        let secret = self.server.secret;
        let mut call = |entry: u64, bytes: Option<&[u8]>| {
            wire::encode_call(&mut frames, entry, entry ^ secret, bytes);
        };
        if let Some(init) = self.config.init {
            call(init as usize as u64, None);
        }
        if let Some(sandbox) = &self.config.sandbox {
            w.mark_output();
            let apply: crate::state::ContextFn = crate::sandbox::apply_entry;
            call(
                apply as usize as u64,
                Some(&crate::sandbox::encode(sandbox)),
            );
        }
        if !frames.is_empty() {
            // A failed write means the worker is already gone: its death is seen like any.
            let _ = w.host.send(&frames);
        }
        Ok(w)
    }

    /// Carries out the machine's actions, and those they lead to, until the pool is quiet;
    /// then decodes the records it copied out.
    pub(super) fn act(&self, st: &mut State, first: &mut Vec<Action<Job>>) {
        // Scratch space kept in the state: a round trip allocates nothing here.
        let mut queue = std::mem::take(&mut st.queue);
        queue.extend(first.drain(..));
        let mut out = std::mem::take(&mut st.out);
        let mut records = std::mem::take(&mut st.records);
        records.clear();
        loop {
            while let Some(action) = queue.pop_front() {
                out.clear();
                self.perform(st, action, &mut records, &mut out);
                queue.extend(out.drain(..));
            }
            // Whatever changed may let queued runs go to idle workers.
            st.machine.dispatch(&mut out);
            if out.is_empty() {
                break;
            }
            queue.extend(out.drain(..));
        }
        st.queue = queue;
        st.out = out;
        // Decode last: every worker that could start its next job has it by now.
        let mut deliveries = std::mem::take(&mut st.deliveries);
        if !deliveries.is_empty() {
            st.delivered = true;
        }
        for d in deliveries.drain(..) {
            deliver(&d, &records);
        }
        st.deliveries = deliveries;
        st.records = records;
    }

    fn perform(
        &self,
        st: &mut State,
        action: Action<Job>,
        records: &mut Vec<u8>,
        out: &mut Vec<Action<Job>>,
    ) {
        match action {
            Action::Send { slot } => {
                let run = st.machine.busy(slot).expect("a run is sent to a busy slot");
                let frame = match run.job.frame_for(run, self.server.secret) {
                    Ok(frame) => frame,
                    Err(why) => {
                        log::warn!("proctor: could not encode a resumed job again: {why}");
                        st.machine.unsent(slot, out);
                        return;
                    }
                };
                let w = st.workers[slot].as_mut().expect("a busy slot has a worker");
                if w.read_memory_due(Instant::now()) {
                    // What the supervisor did not free in time (the worker is idle till this
                    // job's frame leaves).
                    w.free_read();
                }
                arena::reset(
                    &w.arena,
                    self.config.task_timeout.is_some(),
                    self.arena_max(),
                );
                w.mark_job_start(run.count);
                // Counted before it leaves (see `Host::sending`).
                w.host.sending(w.sent_seq + 1);
                let mut sent = true;
                if let Some(c) = run.job.context.as_ref().filter(|c| c.id != w.context) {
                    // The call's context, once per worker, ahead of its first job.
                    sent = w.host.send(&c.frame).is_ok();
                    w.context = c.id;
                }
                let sent = sent
                    && match (run.job.deferred, run.job.items.as_ref()) {
                        (Some(len), Some(items)) => {
                            let write = |buf: &mut [u8]| items.write(run.job.first_index, 1, buf);
                            match w.send_deferred(&frame, len, write) {
                                Ok(sent) => sent,
                                Err(why) => {
                                    log::warn!("proctor: could not send a large argument: {why}");
                                    drop(frame);
                                    st.machine.unsent(slot, out);
                                    return;
                                }
                            }
                        }
                        _ => w.send_frame(&frame),
                    };
                drop(frame);
                w.sent_seq += 1;
                arena::sent(&w.arena, w.sent_seq);
                if !sent {
                    // The worker is gone (its end of the pipe closed).
                    self.on_death(st, slot, Death::Died, out);
                }
            }
            Action::Deliver { slot, job, from, n } => {
                let w = st.workers[slot]
                    .as_mut()
                    .expect("records come from a worker");
                let mut d = Delivery {
                    job,
                    from,
                    n,
                    bytes: None,
                    worker: w.id,
                };
                let mut large = 0;
                let committed = arena::refresh(&mut w.arena, self.arena_max())
                    .ok()
                    .and_then(|()| {
                        let p = arena::progress(&w.arena);
                        let len = usize::try_from(p.committed_len).unwrap_or(usize::MAX);
                        if len >= wire::LARGE {
                            w.arena.populate(arena::DATA_START, len, false);
                        }
                        arena::records(&w.arena, &p)
                    });
                match committed {
                    // Large results (64 KiB or more each) are decoded in place, now, before the
                    // worker can be sent its next job: no copy as large as they are.
                    Some(r) if r.len() >= n.max(1) * wire::INBOX_MIN => {
                        decode(&d, r);
                        large = r.len();
                        st.delivered = true;
                    }
                    // Many small ones are copied out, and decoded while the worker runs its
                    // next job.
                    Some(r) => {
                        let start = records.len();
                        records.extend_from_slice(r);
                        d.bytes = Some(start..records.len());
                        st.deliveries.push(d);
                    }
                    None => st.deliveries.push(d),
                }
                // The job is done and read: the memory its large argument and results took
                // can go, while the worker is idle.
                if let Some(w) = st.workers[slot].as_mut() {
                    w.read_done(large);
                }
            }
            Action::Fail {
                slot,
                job,
                from,
                count,
                fate,
            } => {
                st.delivered = true;
                let cause = slot.and_then(|s| Some((st.workers[s].as_ref()?, st.exits[s])));
                job.fail(from, count, |task| self.task_error(cause, fate, task, st));
            }
            Action::Respawn { slot, graceful } => {
                if let Some(mut old) = st.workers[slot].take() {
                    if graceful {
                        // An idle worker being recycled: closing its request pipe lets it
                        // exit by itself, after its output is flushed.
                        old.host.forget();
                        st.retired.push(old.retire(true));
                    } else {
                        old.drain_stderr();
                        st.retired.push(old.retire(false));
                    }
                }
                st.exits[slot] = None;
                if self
                    .remote
                    .as_ref()
                    .is_some_and(|h| h.awaiting_relaunch(slot))
                {
                    // Its host is being launched again: the slot stays `Respawning`, and
                    // queued tasks wait for it, until `revive` hears how that went.
                    st.relaunching[slot] = true;
                    return;
                }
                if graceful {
                    // A worker recycled after its last task (every task, under a sandbox's
                    // fresh worker per task): its replacement's fork would hold back the
                    // outcome just delivered, so it starts after (see `spawn_deferred`). The
                    // slot stays `Respawning` till then, and queued tasks wait for it.
                    st.deferred[slot] = true;
                    // Wake the supervisor wherever it sleeps: on its condition variable
                    // (parked or ticking) or on the doorbell.
                    st.supervisor_parked = false;
                    self.supervisor.notify_one();
                    self.doorbell.ring();
                    return;
                }
                self.replace(st, slot, out);
            }
        }
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

    /// Starts the replacements deferred by recycles, and carries out what follows.
    fn spawn_deferred(&self, st: &mut State) {
        if !st.deferred.contains(&true) {
            return;
        }
        let mut out = Vec::new();
        for slot in 0..st.deferred.len() {
            if std::mem::take(&mut st.deferred[slot]) {
                self.replace(st, slot, &mut out);
            }
        }
        self.act(st, &mut out);
    }

    /// Starts slot `slot`'s replacement worker and tells the machine how it went.
    fn replace(&self, st: &mut State, slot: usize, out: &mut Vec<Action<Job>>) {
        if let Some(why) = &st.init_failed {
            // The initializer failed in a replacement, or it refused to start: starting
            // more would loop.
            st.spawn_error = Some(why.clone());
            st.machine.replaced(slot, false, out);
            return;
        }
        let id = st.next_worker_id;
        st.next_worker_id = st.next_worker_id.wrapping_add(1);
        match self.spawn_worker(slot, id) {
            Ok(w) => {
                st.workers[slot] = Some(w);
                st.machine.replaced(slot, true, out);
            }
            Err(e) => {
                log::warn!("proctor: could not start a replacement worker: {e}");
                st.spawn_error = Some(e.to_string());
                st.machine.replaced(slot, false, out);
            }
        }
    }

    /// The worker in `slot` is gone or must go: learn how it ended, read what it left, and
    /// let the machine decide its run's fate.
    pub(super) fn on_death(
        &self,
        st: &mut State,
        slot: usize,
        death: Death,
        out: &mut Vec<Action<Job>>,
    ) {
        let Some(w) = st.workers[slot].as_mut() else {
            return;
        };
        if st.exits[slot].is_none() {
            let exit = w.host.wait_exit(EXIT_WAIT);
            if exit.is_none() {
                w.host.kill(Signal::SIGKILL);
                w.host.forget();
            }
            st.exits[slot] = exit;
        }
        w.drain_stderr();
        // A local worker that never said it reached its first job died in its initializer,
        // its sandbox or its start: no fault of the job it was sent, and one that will strike
        // every replacement too. Its word is read from its stderr, which a task can neither
        // take back nor forge early (an exit code it can forge: it counts only with the word
        // missing). A remote worker's word travels with its agent: its exit code decides.
        let ended = match st.exits[slot] {
            Some(Exit::Code(c)) => ExitCode::of(c),
            _ => None,
        };
        let mut unready = if w.host.is_remote() {
            ended.is_some_and(ExitCode::is_start_failure)
        } else {
            !w.is_ready()
        };
        let said = |c: ExitCode| unready && ended == Some(c);
        if said(ExitCode::InitFailed) {
            st.init_failed = Some(format!(
                "the worker initializer panicked: {}",
                w.init_failure()
            ));
        } else if said(ExitCode::SandboxFailed) {
            st.init_failed = Some(format!(
                "{}{}",
                crate::sandbox::FAILED_REASON,
                w.sandbox_failure()
            ));
        } else if said(ExitCode::StartFailed) {
            st.init_failed = Some(format!(
                "a re-executed worker refused to start: {}",
                w.start_failure()
            ));
        } else if unready && death == Death::Died {
            match st.exits[slot] {
                // Killed from outside before it was ready: no word on its initializer, and a
                // replacement may fare better. (A death like any, with its strike: a killer
                // that keeps striking new workers must not stall the queue for ever.)
                Some(Exit::Signal(libc::SIGKILL | libc::SIGTERM)) | None => unready = false,
                // It crashed or exited in its initializer (or its sandbox's setup), and a
                // replacement would too.
                Some(exit) => {
                    st.init_failed = Some(format!(
                        "a worker died before it was ready ({}); its stderr ended: {}",
                        describe(exit),
                        w.job_stderr().trim_end()
                    ));
                }
            }
        }
        let lost = w.host.lost().is_some();
        let mut seen = match arena::refresh(&mut w.arena, self.arena_max()) {
            Ok(()) => seen(&w.arena),
            // An arena we cannot map: nothing it says can be read.
            Err(_) => Seen::default(),
        };
        // A worker that went with its host, or never became ready for the job it was sent,
        // is not the run's fault (see `Death::Outside`): the job is queued again with no
        // strike against it, and once no worker is left its tasks end `NoWorker`.
        let unready = unready && seen.started == 0;
        let death = if death == Death::Died && (lost || unready) {
            Death::Outside
        } else {
            death
        };
        let sent_before_loss = w.host.sent_before_loss(w.sent_seq);
        if lost
            && sent_before_loss
            && arena::done_seq(&w.header) != w.sent_seq
            && seen.started <= seen.committed
        {
            // A lost host says nothing of the job it ran: it was cut short at its first
            // unfinished task, which is taken to have started, so that one is blamed (or
            // retried), not the whole job. A job sent after the loss never ran anywhere: it
            // is queued again like any job whose worker died before starting it.
            seen.started = seen.committed + 1;
        }
        if let (Some(output), Some(run)) = (w.task_output(), st.machine.busy(slot)) {
            // What the task the death hit had written, for its outcome (the files were
            // emptied as it started).
            let committed = seen.committed.min(run.count as u64) as usize;
            if seen.started > seen.committed && committed < run.count {
                let index = run.job.first_index + run.from + committed;
                run.job.sink.deliver_output(index, output);
            }
        }
        st.machine.died(slot, seen, death, out);
    }

    /// The error of a task whose fate the machine decided; `cause` is the worker whose end
    /// decided it, and how it ended.
    fn task_error(
        &self,
        cause: Option<(&Worker, Option<Exit>)>,
        fate: Fate,
        task: u64,
        st: &State,
    ) -> TaskError {
        let worker = cause.map_or(0, |(w, _)| w.id);
        match fate {
            Fate::Crashed => {
                if let Some((host, reason)) = cause.and_then(|(w, _)| w.host.lost()) {
                    return TaskError::Lost {
                        host: host.into(),
                        reason: reason.into(),
                        worker,
                        task,
                    };
                }
                let (signal, exit_code) = match cause.and_then(|(_, e)| e) {
                    Some(Exit::Signal(s)) => (Some(s), None),
                    Some(Exit::Code(c)) => (None, Some(c)),
                    None => (None, None),
                };
                let stderr_tail = cause.map(|(w, _)| w.job_stderr()).unwrap_or_default();
                if self.config.sandbox.is_some() {
                    // Only the kernel's word counts: a worker killed by SIGSYS made a call
                    // its filter forbids (no task may send itself SIGSYS). Which call is
                    // the worker's own report, from its trap handler; a task that had SIGSYS
                    // blocked (as `posix_spawn` does around its clone) was killed without it.
                    let syscall = (signal == Some(libc::SIGSYS)).then(|| {
                        crate::sandbox::violation(&stderr_tail).unwrap_or_else(|| {
                            "a forbidden system call (unnamed: SIGSYS was blocked)".into()
                        })
                    });
                    if let Some(syscall) = syscall {
                        return TaskError::SandboxViolation {
                            syscall: syscall.into(),
                            worker,
                            task,
                        };
                    }
                }
                match self.config.memory_limit {
                    Some(limit) if stderr_tail.contains("memory allocation of") => {
                        TaskError::OutOfMemory {
                            limit,
                            stderr_tail,
                            worker,
                            task,
                        }
                    }
                    _ => TaskError::Crashed {
                        signal,
                        exit_code,
                        stderr_tail,
                        worker,
                        task,
                    },
                }
            }
            Fate::TimedOut { after } => TaskError::TimedOut {
                after,
                worker,
                task,
            },
            Fate::Poisoned { attempts } => TaskError::Poisoned {
                attempts,
                stderr_tail: cause.map(|(w, _)| w.job_stderr()).unwrap_or_default(),
                worker,
                task,
            },
            Fate::Violation => TaskError::Codec {
                message: "its worker broke the pool's protocol (an impossible arena header) \
                          and was killed"
                    .into(),
                task,
            },
            Fate::Unencodable => TaskError::Codec {
                message: "its argument could not be encoded again to resume its job".into(),
                task,
            },
            Fate::Cancelled => TaskError::Cancelled { task },
            Fate::NoWorker => TaskError::NoWorker {
                reason: st
                    .spawn_error
                    .as_deref()
                    .unwrap_or("no worker process could be started")
                    .into(),
                task,
            },
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

    /// A lost host's agent came back, or will not: its slots take workers again, or are
    /// given up.
    fn revive(&self, st: &mut State, out: &mut Vec<Action<Job>>) {
        let Some(hub) = &self.remote else { return };
        for (slot, back) in hub.take_revived() {
            match (std::mem::take(&mut st.relaunching[slot]), back) {
                // The replacement the machine asked for, now that there is an agent.
                (true, true) => out.push(Action::Respawn {
                    slot,
                    graceful: false,
                }),
                (true, false) => {
                    st.spawn_error = Some(format!(
                        "the host of worker slot {slot} was lost and could not be launched again"
                    ));
                    st.machine.replaced(slot, false, out);
                }
                // A slot given up on before (the relaunch took longer than one try).
                (false, true) => st.machine.revive(slot, out),
                (false, false) => {}
            }
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

/// How a worker ended, in words.
fn describe(exit: Exit) -> String {
    match exit {
        Exit::Signal(s) => format!("killed by signal {s}"),
        Exit::Code(c) => format!("exit code {c}"),
    }
}

/// The header as the recovery machine sees it.
fn seen(arena: &SharedMapping) -> Seen {
    let p = arena::progress(arena);
    Seen {
        started: p.started,
        committed: p.committed,
    }
}

/// Decodes one delivery's records into its job's sink.
fn deliver(d: &Delivery, records: &[u8]) {
    let Some(range) = d.bytes.clone() else {
        d.job.fail(d.from, d.n, |task| TaskError::Codec {
            message: "its worker's result arena is inconsistent".into(),
            task,
        });
        return;
    };
    decode(d, &records[range]);
}

/// Hands the delivery's records, `buf`, to its job's sink.
fn decode(d: &Delivery, buf: &[u8]) {
    let it = RecordIter {
        buf,
        worker: d.worker,
        task: d.job.first_task + d.from as u64,
        left: d.n,
        broken: false,
    };
    d.job.sink.deliver_records(d.job.first_index + d.from, it);
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
