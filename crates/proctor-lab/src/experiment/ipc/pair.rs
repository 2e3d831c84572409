//! One transport between two endpoints: the main side times the messages, the other side
//! (a thread or a forked process) echoes or acknowledges them.

use std::sync::atomic::{AtomicI32, Ordering};

use super::*;
use crate::shared_mem::SharedMem;
use crate::topology::{self, Tagged};

/// Creates a pair, starts the partner (thread or forked process) with the placement, measures
/// round trips or one-way messages, then stops the partner and checks it ended cleanly.
pub(super) fn run_pair(
    kind: TransportKind,
    partner: Worker,
    placement: Placement,
    mode: Pattern,
    size: usize,
    plan: &Plan,
) -> Result<Run> {
    let (mut main, peer) = ipc::pair(kind, size).context("creating the pair")?;
    // Unpinned runs record where the partner runs (its CPU after each message, in shared
    // memory), so each batch is tagged with the placement it ran on.
    let seen = match placement {
        Placement::Unpinned => {
            Some(SharedMem::new(AtomicI32::new(-1)).context("mapping the partner's CPU word")?)
        }
        _ => None,
    };
    let cpu_word: Option<&AtomicI32> = seen.as_deref();
    // Everything the partner touches is allocated before the fork.
    let mut peer_buf: Vec<u8> = Vec::with_capacity(size);
    // The partner owns its endpoint, so a forked partner's is closed in the parent at once. As
    // a child it only runs `serve`, which uses the transport with a buffer sized before the
    // fork (no allocation, no lock another thread could hold); main's endpoint is never
    // dropped there, since the child leaves with `_exit`.
    let body = move || serve(mode, peer, &mut peer_buf, cpu_word);
    // SAFETY: `body` only runs `serve`, async-signal-safe as said above.
    let r = unsafe {
        partner.run_pair(placement, body, || {
            let r = main_side(&mut main, mode, size, plan, cpu_word);
            let stopped = stop(&mut main);
            let r = r?;
            stopped?;
            Ok(r)
        })
    }?;
    drop(seen);
    Ok(r.into_run(kind, partner, placement, mode, size))
}

/// Main's result before it is labelled.
pub(super) struct MainResult {
    measurement: Measurement,
    messages: u64,
    futex_wakes: u64,
    mixture: Option<Mixture>,
}

impl MainResult {
    fn into_run(
        self,
        transport: TransportKind,
        partner: Worker,
        placement: Placement,
        mode: Pattern,
        size_bytes: usize,
    ) -> Run {
        Run {
            transport,
            partner,
            placement,
            mode,
            size_bytes,
            rounds_ns: vec![self.measurement.value()],
            measurement: self.measurement,
            messages: self.messages,
            futex_wakes: self.futex_wakes,
            mixture: self.mixture,
        }
    }
}

/// Main's side: measures round trips (echo) or one-way batches (sink).
pub(super) fn main_side(
    main: &mut Endpoint,
    mode: Pattern,
    size: usize,
    plan: &Plan,
    partner_cpu: Option<&AtomicI32>,
) -> Result<MainResult> {
    let mut msg = vec![0x5Au8; size];
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let wakes_before = main.futex_wakes();
    let mut messages = 0u64;
    let topo = partner_cpu.map(|_| Topology::detect());
    // (ops, tag) of every batch, calibration and warm-up included; the measured ones are the
    // last batches of the final size.
    let mut tags: Vec<(u64, Tagged)> = Vec::new();
    let cpus = || {
        let partner = partner_cpu.map(|w| w.load(Ordering::Relaxed)).unwrap_or(-1);
        (
            topology::current_cpu().unwrap_or(usize::MAX),
            usize::try_from(partner).unwrap_or(usize::MAX),
        )
    };
    let measurement = match mode {
        Pattern::Echo => measure::measure(plan, |n, sampler| {
            messages += 2 * n;
            let before = cpus();
            let elapsed = time_ops(n, sampler, || {
                main.send(black_box(&msg))?;
                main.recv(&mut buf)?;
                if black_box(&buf).len() != size {
                    bail!("the echo has {} bytes, not {size}", buf.len());
                }
                Ok(())
            })?;
            if let Some(t) = &topo {
                let tag = topology::tag(t, before, cpus(), elapsed.as_nanos() as f64 / n as f64);
                tags.push((n, tag));
            }
            Ok(elapsed)
        })?,
        Pattern::Sink => measure::measure(plan, |n, _sampler| {
            // Sends return once the bytes are queued, so per-message timestamps would say
            // little: only the batch, ended by the acknowledgement, is timed.
            messages += n;
            let before = cpus();
            let start = Instant::now();
            for i in 0..n {
                msg[0] = if i + 1 == n { ACK } else { NO_ACK };
                main.send(black_box(&msg))?;
            }
            main.recv(&mut buf)?;
            let elapsed = start.elapsed();
            if buf.as_slice() != [ACK] {
                bail!("the partner acknowledged with {} bytes", buf.len());
            }
            if let Some(t) = &topo {
                let tag = topology::tag(t, before, cpus(), elapsed.as_nanos() as f64 / n as f64);
                tags.push((n, tag));
            }
            Ok(elapsed)
        })?,
    };
    let mixture = if tags.is_empty() {
        None
    } else {
        // The measured and timestamped batches: the last ones, all of the final size.
        let measured = measurement.batch_ns.len()
            + measurement
                .per_op
                .map_or(0, |_| (plan.batches.max(1) as usize).div_ceil(3).max(2));
        let last: Vec<Tagged> = tags
            .iter()
            .rev()
            .take(measured)
            .filter(|(n, _)| *n == measurement.ops_per_batch)
            .map(|(_, t)| *t)
            .collect();
        Mixture::of(&last)
    };
    Ok(MainResult {
        measurement,
        messages,
        futex_wakes: main.futex_wakes().saturating_sub(wakes_before),
        mixture,
    })
}

/// Tells the partner to stop: an empty message, which no measurement sends.
pub(super) fn stop(main: &mut Endpoint) -> Result<()> {
    main.send(&[]).context("telling the partner to stop")
}

/// The partner's loop, until an empty message. Returns an exit code instead of failing, and
/// allocates nothing while `buf` has room for the largest message: it may run in a forked
/// child of a multi-threaded process.
pub(super) fn serve(
    mode: Pattern,
    mut end: Endpoint,
    buf: &mut Vec<u8>,
    cpu_word: Option<&AtomicI32>,
) -> i32 {
    loop {
        if end.recv(buf).is_err() {
            return EXIT_RECV;
        }
        if let Some(w) = cpu_word {
            // SAFETY: sched_getcpu has no preconditions, allocates nothing and takes no lock.
            w.store(unsafe { libc::sched_getcpu() }, Ordering::Relaxed);
        }
        if buf.is_empty() {
            return EXIT_OK;
        }
        let reply: &[u8] = match mode {
            Pattern::Echo => &buf[..],
            Pattern::Sink if buf[0] == ACK => &[ACK],
            Pattern::Sink => continue,
        };
        if end.send(reply).is_err() {
            return EXIT_SEND;
        }
    }
}
