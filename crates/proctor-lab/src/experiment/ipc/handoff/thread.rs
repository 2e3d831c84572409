//! Threads hand the data over: the value moves into a slot both reach, a pointer and no copy,
//! and the bell is the processes' own (an 8-byte message on the shm ring).

use std::sync::Mutex;

use super::*;

/// Threads hand `T` over by moving it into a slot both can reach (a pointer moves, nothing
/// is copied) and ringing the same bell as the processes: an 8-byte message on the shm ring.
/// The consumer takes the value, reads it, puts it back and answers with the sum; the
/// producer takes it back. Nothing is allocated per op.
fn thread_pass<T: Send>(
    data: T,
    placement: Placement,
    plan: &Plan,
    stamp: impl Fn(&mut T, u8),
    touch: impl Fn(&T) -> u64 + Send,
    expected: u64,
) -> Result<Measurement> {
    let slot: Mutex<Option<T>> = Mutex::new(None);
    let (mut main, peer) = ipc::pair(TransportKind::Shm, 8).context("creating the bell")?;
    let slot_ref = &slot;
    let body = move || consume_slot(peer, slot_ref, touch);
    let main_side = move || {
        let mut held = Some(data);
        let mut seq = 0u8;
        let mut answer: Vec<u8> = Vec::with_capacity(8);
        let m = measure::measure(plan, |ops, sampler| {
            time_ops(ops, sampler, || {
                seq = seq.wrapping_add(1).max(1);
                let mut d = held
                    .take()
                    .expect("the value came back with the last answer");
                stamp(&mut d, seq);
                *lock(slot_ref)? = Some(d);
                main.send(&u64::from(seq).to_le_bytes())?;
                main.recv(&mut answer)?;
                held = lock(slot_ref)?.take();
                if held.is_none() {
                    bail!("the consumer thread did not put the value back");
                }
                let sum: [u8; 8] = answer
                    .as_slice()
                    .try_into()
                    .context("the consumer's answer is not 8 bytes")?;
                check(u64::from_le_bytes(sum), expected * u64::from(seq))
            })
        });
        let stopped = stop(&mut main);
        let m = m?;
        stopped?;
        Ok(m)
    };
    // SAFETY: a thread partner: `body` is not forked, so it may do anything.
    unsafe { Worker::Thread.run_pair(placement, body, main_side) }
}

fn lock<T>(slot: &Mutex<Option<T>>) -> Result<std::sync::MutexGuard<'_, Option<T>>> {
    slot.lock()
        .map_err(|_| anyhow::anyhow!("the other thread panicked holding the slot"))
}

/// The consumer of [`thread_pass`]: on each bell, takes the value from the slot, reads it,
/// puts it back and answers with the sum.
fn consume_slot<T>(mut end: Endpoint, slot: &Mutex<Option<T>>, touch: impl Fn(&T) -> u64) -> i32 {
    let mut buf: Vec<u8> = Vec::with_capacity(8);
    loop {
        if end.recv(&mut buf).is_err() {
            return EXIT_RECV;
        }
        if buf.is_empty() {
            return EXIT_OK;
        }
        let Some(d) = lock(slot).ok().and_then(|mut g| g.take()) else {
            return EXIT_RECV;
        };
        let sum = touch(&d);
        match lock(slot) {
            Ok(mut g) => *g = Some(d),
            Err(_) => return EXIT_SEND,
        }
        if end.send(&sum.to_le_bytes()).is_err() {
            return EXIT_SEND;
        }
    }
}

pub(super) fn thread_box(size: usize, placement: Placement, plan: &Plan) -> Result<Measurement> {
    let data = vec![0u8; size].into_boxed_slice();
    thread_pass(
        data,
        placement,
        plan,
        |d, seq| stamp(d, seq),
        |d| touch(d),
        touched(size, 1),
    )
}

pub(super) fn thread_vec(size: usize, placement: Placement, plan: &Plan) -> Result<Measurement> {
    let data = items(size);
    let n = data.len();
    thread_pass(
        data,
        placement,
        plan,
        |d, seq| stamp_items(d, seq),
        |d| touch_items(d),
        n as u64,
    )
}
