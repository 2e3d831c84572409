//! Processes hand the data over: copied into shared memory made before the fork, serialized
//! into it, or sent through a pipe. The consumer is a forked child and allocates nothing.

use std::num::NonZeroUsize;

use super::*;

/// The exit code of a forked consumer that could not decode the JSON it was handed.
const EXIT_DECODE: i32 = 12;

/// Processes: the producer copies the bytes (`shm`) or serializes the structs (`json`) into a
/// shared mapping made before the fork, then rings an 8-byte bell (the length) over the shm
/// ring; the consumer reads the region in place. Returns the measurement and the bytes that
/// crossed at the last op.
pub(super) fn process_shm(
    way: Way,
    size: usize,
    placement: Placement,
    plan: &Plan,
) -> Result<(Measurement, usize)> {
    let mut items = items(size);
    let n = items.len();
    // The region holds the bytes, or the JSON text at its longest (every stamp 3 digits).
    let cap = if way == Way::Json {
        stamp_items(&mut items, u8::MAX);
        serde_json::to_vec(&items)
            .context("serializing the structs once to size the region")?
            .len()
    } else {
        size
    };
    let region = SharedBytes::new(NonZeroUsize::new(cap).context("an empty region")?)
        .context("mapping the shared region")?;
    let at = region.as_ptr() as usize;
    let (mut main, peer) = ipc::pair(TransportKind::Shm, 8).context("creating the doorbell")?;
    // Everything the consumer touches is allocated before the fork.
    let mut peer_buf: Vec<u8> = Vec::with_capacity(8);
    let mut into: Vec<Item> = Vec::with_capacity(n);
    let body = move || consume_shm(way, peer, &mut peer_buf, (at, cap), &mut into);
    let mut src = vec![0u8; size];
    let mut wire = size;
    let main_side = || {
        let mut seq = 0u8;
        let mut answer: Vec<u8> = Vec::with_capacity(8);
        let m = measure::measure(plan, |ops, sampler| {
            time_ops(ops, sampler, || {
                seq = seq.wrapping_add(1).max(1);
                // SAFETY: the region is `cap` bytes and alive (`region` outlives the pair);
                // the consumer reads it only between our bell and its answer, so nothing
                // reads it while we write, and the shm ring's release/acquire positions order
                // our writes before its reads and its reads before our next writes.
                let dst = unsafe { std::slice::from_raw_parts_mut(at as *mut u8, cap) };
                let (len, expected) = if way == Way::Json {
                    stamp_items(&mut items, seq);
                    let mut w: &mut [u8] = dst;
                    serde_json::to_writer(&mut w, &items).context("serializing the structs")?;
                    (cap - w.len(), n as u64 * u64::from(seq))
                } else {
                    stamp(&mut src, seq);
                    dst[..size].copy_from_slice(&src);
                    (size, touched(size, seq))
                };
                wire = len;
                main.send(&(len as u64).to_le_bytes())?;
                main.recv(&mut answer)?;
                let sum: [u8; 8] = answer
                    .as_slice()
                    .try_into()
                    .context("the consumer's answer is not 8 bytes")?;
                check(u64::from_le_bytes(sum), expected)
            })
        });
        let stopped = stop(&mut main);
        let m = m?;
        stopped?;
        Ok(m)
    };
    // SAFETY: `body` only runs `consume_shm`, which allocates nothing (see there).
    let m = unsafe { Worker::Process.run_pair(placement, body, main_side) }?;
    drop(region);
    Ok((m, wire))
}

/// The consumer of [`process_shm`]: reads the region (`at`, `cap` bytes) on each bell and
/// answers with the sum. Allocates nothing: `buf` has room for the bell and `into` for every
/// struct, and serde_json reads integers and unescaped names from a slice in place.
fn consume_shm(
    way: Way,
    mut end: Endpoint,
    buf: &mut Vec<u8>,
    (at, cap): (usize, usize),
    into: &mut Vec<Item>,
) -> i32 {
    loop {
        if end.recv(buf).is_err() {
            return EXIT_RECV;
        }
        if buf.is_empty() {
            return EXIT_OK;
        }
        let Ok(bell) = <[u8; 8]>::try_from(buf.as_slice()) else {
            return EXIT_RECV;
        };
        let len = usize::try_from(u64::from_le_bytes(bell)).map_or(cap, |l| l.min(cap));
        // SAFETY: the mapping is inherited from the parent and `len <= cap` bytes long; the
        // producer wrote it before the bell and writes again only after our answer.
        let data = unsafe { std::slice::from_raw_parts(at as *const u8, len) };
        let sum = if way == Way::Json {
            if decode_into(data, into).is_err() {
                return EXIT_DECODE;
            }
            touch_items(into)
        } else {
            touch(data)
        };
        if end.send(&sum.to_le_bytes()).is_err() {
            return EXIT_SEND;
        }
    }
}

/// Processes: the bytes go through a pipe into the consumer's buffer (write, read: two
/// copies through the kernel); the consumer answers with the sum on the other pipe.
pub(super) fn process_pipe(size: usize, placement: Placement, plan: &Plan) -> Result<Measurement> {
    let (mut main, peer) =
        ipc::pair(TransportKind::Pipe, size.max(8)).context("creating the pipes")?;
    let mut peer_buf: Vec<u8> = Vec::with_capacity(size.max(8));
    let body = move || consume_pipe(peer, &mut peer_buf);
    let mut src = vec![0u8; size];
    let main_side = || {
        let mut seq = 0u8;
        let mut answer: Vec<u8> = Vec::with_capacity(8);
        let m = measure::measure(plan, |ops, sampler| {
            time_ops(ops, sampler, || {
                seq = seq.wrapping_add(1).max(1);
                stamp(&mut src, seq);
                main.send(&src)?;
                main.recv(&mut answer)?;
                let sum: [u8; 8] = answer
                    .as_slice()
                    .try_into()
                    .context("the consumer's answer is not 8 bytes")?;
                check(u64::from_le_bytes(sum), touched(size, seq))
            })
        });
        let stopped = stop(&mut main);
        let m = m?;
        stopped?;
        Ok(m)
    };
    // SAFETY: `body` only runs `consume_pipe`, which allocates nothing (its buffer has room).
    unsafe { Worker::Process.run_pair(placement, body, main_side) }
}

/// The consumer of [`process_pipe`]: receives into `buf` (sized before the fork), answers
/// with the sum.
fn consume_pipe(mut end: Endpoint, buf: &mut Vec<u8>) -> i32 {
    loop {
        if end.recv(buf).is_err() {
            return EXIT_RECV;
        }
        if buf.is_empty() {
            return EXIT_OK;
        }
        if end.send(&touch(buf).to_le_bytes()).is_err() {
            return EXIT_SEND;
        }
    }
}
