//! Carrying out the recovery machine's actions with system calls: sending a job, delivering
//! a finished job's records, failing tasks with the error their fate calls for, starting a
//! replacement worker; and, when a worker dies, learning how it ended and what it left, for
//! the machine to decide its run's fate. The driver (`driver.rs`) calls [`Shared::act`],
//! [`Shared::on_death`], [`Shared::spawn_worker`], [`Shared::spawn_deferred`],
//! [`Shared::revive`] and [`seen`]; everything else here is this file's own.

use std::time::Instant;

use nix::sys::signal::Signal;

use super::handle::Worker;
use super::job::{Delivery, Job};
use super::outcome::RecordIter;
use super::recovery::{Action, Death, Fate, Seen};
use super::{EXIT_WAIT, Shared, State};
use crate::arena;
use crate::error::TaskError;
use crate::exit::ExitCode;
use crate::pool::stats::Counters;
use crate::server::Exit;
use crate::sys::SharedMapping;
use crate::wire;

impl Shared {
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
        self.config.stats.worker_started(false);
        log::debug!("proctor: worker {id} started (pid {})", w.host.pid());
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
            deliver(&d, &records, &self.config.stats);
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
                if run.head_attempts > 0 {
                    // Its first task is started again after its worker crashed.
                    self.config.stats.retried();
                }
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
            Action::Deliver {
                slot,
                job,
                from,
                n,
                retried,
            } => {
                let w = st.workers[slot]
                    .as_mut()
                    .expect("records come from a worker");
                let mut d = Delivery {
                    job,
                    from,
                    n,
                    bytes: None,
                    worker: w.id,
                    retried,
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
                        decode(&d, r, &self.config.stats);
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
                started,
            } => {
                st.delivered = true;
                let cause = slot.and_then(|s| Some((st.workers[s].as_ref()?, st.exits[s])));
                // Only the first of the tasks can have been started (the one a death hit).
                let first = (job.first_index + from) as u64;
                job.fail(&self.config.stats, from, count, |task| {
                    let started = if task == first { started } else { 0 };
                    self.task_error(cause, fate, task, started, st)
                });
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

    /// Starts the replacements deferred by recycles, and carries out what follows.
    pub(super) fn spawn_deferred(&self, st: &mut State) {
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
                self.config.stats.worker_replaced();
                log::info!(
                    "proctor: worker {id} (pid {}) replaces the one in slot {slot}",
                    w.host.pid()
                );
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
        // A worker killed to cancel its task ended as asked; any other end is news.
        let level = if death == Death::Cancelled {
            log::Level::Info
        } else {
            log::Level::Warn
        };
        log::log!(
            level,
            "proctor: worker {} (pid {}) in slot {slot} ended: {death:?}, exit {:?}",
            w.id,
            w.host.pid(),
            st.exits[slot]
        );
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
    /// decided it, and how it ended; `task` is the item's index in its call, `started` how
    /// many times it was started.
    fn task_error(
        &self,
        cause: Option<(&Worker, Option<Exit>)>,
        fate: Fate,
        task: u64,
        started: u32,
        st: &State,
    ) -> TaskError {
        let worker = cause.map_or(0, |(w, _)| w.id);
        let attempts = u8::try_from(started.max(1)).unwrap_or(u8::MAX);
        match fate {
            Fate::Crashed => {
                if let Some((host, reason)) = cause.and_then(|(w, _)| w.host.lost()) {
                    return TaskError::Lost {
                        host: host.into(),
                        reason: reason.into(),
                        worker,
                        index: task,
                        attempts,
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
                            index: task,
                            attempts,
                        };
                    }
                }
                match self.config.memory_limit {
                    Some(limit) if stderr_tail.contains("memory allocation of") => {
                        TaskError::OutOfMemory {
                            limit,
                            stderr_tail,
                            worker,
                            index: task,
                            attempts,
                        }
                    }
                    _ => TaskError::Crashed {
                        signal,
                        exit_code,
                        stderr_tail,
                        worker,
                        index: task,
                        attempts,
                    },
                }
            }
            Fate::TimedOut { after } => TaskError::TimedOut {
                after,
                worker,
                index: task,
                attempts,
            },
            Fate::Poisoned { attempts } => TaskError::Poisoned {
                attempts,
                stderr_tail: cause.map(|(w, _)| w.job_stderr()).unwrap_or_default(),
                worker,
                index: task,
            },
            Fate::Violation => TaskError::Codec {
                message: "its worker broke the pool's protocol (an impossible arena header) \
                          and was killed"
                    .into(),
                index: task,
            },
            Fate::Unencodable => TaskError::Codec {
                message: "its argument could not be encoded again to resume its job".into(),
                index: task,
            },
            Fate::Cancelled => TaskError::Cancelled { index: task },
            Fate::NoWorker => TaskError::NoWorker {
                reason: st
                    .spawn_error
                    .as_deref()
                    .unwrap_or("no worker process could be started")
                    .into(),
                index: task,
            },
        }
    }

    /// A lost host's agent came back, or will not: its slots take workers again, or are
    /// given up.
    pub(super) fn revive(&self, st: &mut State, out: &mut Vec<Action<Job>>) {
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
}

/// How a worker ended, in words.
fn describe(exit: Exit) -> String {
    match exit {
        Exit::Signal(s) => format!("killed by signal {s}"),
        Exit::Code(c) => format!("exit code {c}"),
    }
}

/// The header as the recovery machine sees it.
pub(super) fn seen(arena: &SharedMapping) -> Seen {
    let p = arena::progress(arena);
    Seen {
        started: p.started,
        committed: p.committed,
    }
}

/// Decodes one delivery's records into its job's sink.
fn deliver(d: &Delivery, records: &[u8], stats: &Counters) {
    let Some(range) = d.bytes.clone() else {
        d.job.fail(stats, d.from, d.n, |task| TaskError::Codec {
            message: "its worker's result arena is inconsistent".into(),
            index: task,
        });
        return;
    };
    decode(d, &records[range], stats);
}

/// Hands the delivery's records, `buf`, to its job's sink.
fn decode(d: &Delivery, buf: &[u8], stats: &Counters) {
    // Every record counts as a success until decoding finds it is not (a failed record is
    // rare, and this keeps the decoder's loop over `Ok` records free of counting).
    stats.succeeded(d.n);
    let it = RecordIter {
        buf,
        worker: d.worker,
        task: (d.job.first_index + d.from) as u64,
        head: (d.job.first_index + d.from) as u64,
        retried: d.retried,
        left: d.n,
        broken: false,
        stats: Some(stats),
    };
    d.job.sink.deliver_records(d.job.first_index + d.from, it);
}
