//! One transport between two endpoints: the main side times the messages, the other side
//! (a thread or a forked process) echoes or acknowledges them.

use super::*;

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
    // Everything the partner touches is allocated before the fork.
    let mut peer_buf: Vec<u8> = Vec::with_capacity(size);
    // The partner owns its endpoint, so a forked partner's is closed in the parent at once. As
    // a child it only runs `serve`, which uses the transport with a buffer sized before the
    // fork (no allocation, no lock another thread could hold); main's endpoint is never
    // dropped there, since the child leaves with `_exit`.
    let body = move || serve(mode, peer, &mut peer_buf);
    // SAFETY: `body` only runs `serve`, async-signal-safe as said above.
    let r = unsafe {
        partner.run_pair(placement, body, || {
            let r = main_side(&mut main, mode, size, plan);
            let stopped = stop(&mut main);
            let r = r?;
            stopped?;
            Ok(r)
        })
    }?;
    Ok(r.into_run(kind, partner, placement, mode, size))
}

/// Main's result before it is labelled.
pub(super) struct MainResult {
    measurement: Measurement,
    messages: u64,
    futex_wakes: u64,
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
        }
    }
}

/// Main's side: measures round trips (echo) or one-way batches (sink).
pub(super) fn main_side(
    main: &mut Endpoint,
    mode: Pattern,
    size: usize,
    plan: &Plan,
) -> Result<MainResult> {
    let mut msg = vec![0x5Au8; size];
    let mut buf: Vec<u8> = Vec::with_capacity(size);
    let wakes_before = main.futex_wakes();
    let mut messages = 0u64;
    let measurement = match mode {
        Pattern::Echo => measure::measure(plan, |n, sampler| {
            messages += 2 * n;
            time_ops(n, sampler, || {
                main.send(black_box(&msg))?;
                main.recv(&mut buf)?;
                if black_box(&buf).len() != size {
                    bail!("the echo has {} bytes, not {size}", buf.len());
                }
                Ok(())
            })
        })?,
        Pattern::Sink => measure::measure(plan, |n, _sampler| {
            // Sends return once the bytes are queued, so per-message timestamps would say
            // little: only the batch, ended by the acknowledgement, is timed.
            messages += n;
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
            Ok(elapsed)
        })?,
    };
    Ok(MainResult {
        measurement,
        messages,
        futex_wakes: main.futex_wakes().saturating_sub(wakes_before),
    })
}

/// Tells the partner to stop: an empty message, which no measurement sends.
pub(super) fn stop(main: &mut Endpoint) -> Result<()> {
    main.send(&[]).context("telling the partner to stop")
}

/// The partner's loop, until an empty message. Returns an exit code instead of failing, and
/// allocates nothing while `buf` has room for the largest message: it may run in a forked
/// child of a multi-threaded process.
pub(super) fn serve(mode: Pattern, mut end: Endpoint, buf: &mut Vec<u8>) -> i32 {
    loop {
        if end.recv(buf).is_err() {
            return EXIT_RECV;
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
