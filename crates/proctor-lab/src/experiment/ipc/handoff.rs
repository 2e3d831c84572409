//! Hand-off: what it costs to hand `size` bytes of data to the other side, the claim
//! "threads communicate faster" in its own terms. A thread passes a pointer; a process has to
//! copy the bytes or serialize the value.
//!
//! **One op**: the producer stamps its data afresh (one byte per 64-byte cache line, or one
//! field per struct, set to the op's sequence number), hands it over, and waits for the
//! consumer's 8-byte answer: the sum of what it read, touching every cache line (or every
//! struct) of the data it received. The producer checks the sum, so the consumer provably read
//! this op's data. Stamping and touching are the same work on every way; what differs is the
//! hand-over itself:
//!
//! | way | partner | how the data crosses |
//! |---|---|---|
//! | `box` | thread | a `Box<[u8]>` moves into a slot both threads reach (a `Mutex<Option<_>>`) and back: a pointer, no copy |
//! | `vec` | thread | a `Vec` of small structs moves the same way |
//! | `shm` | process | the producer copies the bytes into a shared mapping made before the fork; the consumer reads them there (one copy) |
//! | `pipe` | process | the bytes go through a pipe into the consumer's buffer (two copies, through the kernel) |
//! | `json` | process | the `Vec` of structs is serialized with serde_json into the shared mapping and deserialized by the consumer |
//!
//! **The bell is the same on every way but `pipe`**: an 8-byte message on the lab's shm ring
//! (spin while the peer progresses, yield, futex), so threads and processes differ only in how
//! the data crosses (LAB-METHODS rule 4). A thread's idiomatic channel (crossbeam: a short spin,
//! then park) would bring its own wake-up cost into the comparison, which at small sizes
//! outweighs the data; the pipe carries the data and the bell at once, as pipes do.
//!
//! **Shared-memory setup** is kept out of the `shm` and `json` ops (the mapping is made once,
//! before timing) and measured on its own: map a fresh shared region, touch each of its pages
//! once, unmap it.
//!
//! **Placement**: pinned, on the pairs of CPUs the topology offers (same CPU; the nearest
//! pair of different CPUs; in the full profile every other pair). A forked consumer runs only
//! code that allocates nothing: its buffers, and the `Vec` it deserializes into, are reserved
//! before the fork, and serde_json reads integers and unescaped names from a slice without
//! allocating.

use std::num::NonZeroUsize;
use std::sync::Mutex;

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::pair::stop;
use super::*;
use crate::shared_mem::SharedBytes;
use crate::topology::{Pair, Placement as TopoPlacement, Topology};

/// The stride of the stamp and the touch: one cache line.
const LINE: usize = 64;
/// A page, the stride of the shared-memory setup's first touch.
const PAGE: usize = 4096;
/// The largest serialized value: beyond it one op takes a large part of a second.
pub(super) const JSON_MAX: usize = 4 * MIB;

/// How the data is handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Way {
    /// Threads: a `Box<[u8]>` moves (a pointer) to the consumer and back.
    Box,
    /// Threads: a `Vec` of small structs moves the same way.
    Vec,
    /// Processes: the bytes are copied into shared memory.
    Shm,
    /// Processes: the bytes go through a pipe.
    Pipe,
    /// Processes: the structs are serialized into shared memory and deserialized.
    Json,
}

impl Way {
    pub(super) const ALL: [Way; 5] = [Way::Box, Way::Vec, Way::Shm, Way::Pipe, Way::Json];

    pub(super) fn worker(self) -> Worker {
        match self {
            Way::Box | Way::Vec => Worker::Thread,
            Way::Shm | Way::Pipe | Way::Json => Worker::Process,
        }
    }

    /// The key fragment after the worker: `ipc.handoff.thread.box.4194304.pinned`.
    pub(super) fn key(self) -> &'static str {
        match self {
            Way::Box => "box",
            Way::Vec => "vec",
            Way::Shm => "shm",
            Way::Pipe => "pipe",
            Way::Json => "json",
        }
    }

    /// Short words for labels, tables and chart series.
    pub(super) fn words(self) -> &'static str {
        match self {
            Way::Box => "threads: Box<[u8]> moved",
            Way::Vec => "threads: Vec of structs moved",
            Way::Shm => "processes: copy into shared memory",
            Way::Pipe => "processes: through a pipe",
            Way::Json => "processes: serde_json into shared memory",
        }
    }

    /// Whether the payload is a `Vec` of structs rather than bytes.
    pub(super) fn structured(self) -> bool {
        matches!(self, Way::Vec | Way::Json)
    }
}

/// The figure key of a hand-off.
pub(super) fn handoff_key(way: Way, size: usize, suffix: &str) -> String {
    format!(
        "ipc.handoff.{}.{}.{size}{suffix}",
        way.worker().key(),
        way.key()
    )
}

/// The figure key of the shared-memory setup of a region of `size` bytes.
pub(super) fn setup_key(size: usize) -> String {
    format!("ipc.shm_setup.{size}")
}

/// One small struct of the structured payload: integers and a flag, 24 bytes in memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Item {
    id: u64,
    value: u64,
    weight: u32,
    flag: bool,
}

/// The structs of a payload of `size` bytes in memory (at least one).
pub(super) fn items_for(size: usize) -> usize {
    (size / std::mem::size_of::<Item>()).max(1)
}

/// The structs of a payload of `size` bytes, their fields varied like real records (ids
/// counting up, weights of one to three digits, flags alternating); `value` is the stamp.
fn items(size: usize) -> Vec<Item> {
    (0..items_for(size))
        .map(|i| Item {
            id: i as u64,
            value: 0,
            weight: (i % 1000) as u32,
            flag: i % 2 == 0,
        })
        .collect()
}

/// Where a hand-off or a round trip runs: the experiment's placement, the figure keys' suffix
/// and the words the figures carry.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Spot {
    pub(super) placement: Placement,
    pub(super) suffix: String,
    pub(super) words: String,
}

/// The pinned spots of a profile, from the topology: same CPU (`.pinned`), the nearest pair of
/// two CPUs (`.cross_cpu`, where the claim is decided, so in every profile) and, in full,
/// every other pair (`.<placement key>`).
pub(super) fn spots(topology: &Topology, profile: Profile) -> Vec<Spot> {
    let mut out = Vec::new();
    let spot = |pair: &Pair, suffix: String| Spot {
        placement: if pair.a == pair.b {
            Placement::Pinned(pair.a)
        } else {
            Placement::CrossCpu(pair.a, pair.b)
        },
        suffix,
        words: pair.describe(),
    };
    if let Some(same) = topology.pair(TopoPlacement::SameCpu) {
        out.push(spot(&same, ".pinned".into()));
    }
    let nearest = topology.nearest_cross();
    if let Some(cross) = &nearest {
        out.push(spot(cross, ".cross_cpu".into()));
    }
    if profile == Profile::Full {
        for p in topology.pairs() {
            if p.a != p.b && Some(p) != nearest {
                out.push(spot(&p, format!(".{}", p.placement.key())));
            }
        }
    }
    out
}

/// One measured hand-off.
#[derive(Debug, Serialize)]
pub(super) struct HandoffRun {
    pub(super) way: Way,
    pub(super) size_bytes: usize,
    /// The bytes that crossed: `size_bytes`, or the JSON text's length.
    pub(super) wire_bytes: usize,
    pub(super) spot: Spot,
    /// Per hand-off, in ns: the round whose figure is the median of the rounds.
    pub(super) measurement: Measurement,
    /// The figure of each independent round (several only for the pair the claim reads).
    pub(super) rounds_ns: Vec<f64>,
}

/// One measured shared-memory setup.
#[derive(Debug, Serialize)]
pub(super) struct SetupRun {
    pub(super) size_bytes: usize,
    /// Per region (map, touch every page, unmap), in ns.
    pub(super) measurement: Measurement,
}

/// Stamps one byte per cache line with `seq`.
fn stamp(bytes: &mut [u8], seq: u8) {
    for b in bytes.iter_mut().step_by(LINE) {
        *b = seq;
    }
}

/// Sums one byte per cache line: reads every line of `bytes`.
fn touch(bytes: &[u8]) -> u64 {
    bytes.iter().step_by(LINE).map(|&b| u64::from(b)).sum()
}

/// What [`touch`] returns on bytes stamped with `seq`.
fn touched(len: usize, seq: u8) -> u64 {
    len.div_ceil(LINE) as u64 * u64::from(seq)
}

fn stamp_items(items: &mut [Item], seq: u8) {
    for it in items.iter_mut() {
        it.value = u64::from(seq);
    }
}

fn touch_items(items: &[Item]) -> u64 {
    items.iter().map(|it| it.value).sum()
}

fn check(sum: u64, expected: u64) -> Result<()> {
    if sum != expected {
        bail!("the consumer read a sum of {sum}, not {expected}: it did not see this op's data");
    }
    Ok(())
}

/// Measures one hand-off of `size` bytes the given way at `spot`.
pub(super) fn run_handoff(way: Way, size: usize, spot: &Spot, plan: &Plan) -> Result<HandoffRun> {
    let (measurement, wire_bytes) = match way {
        Way::Box => (thread_box(size, spot.placement, plan)?, size),
        Way::Vec => (thread_vec(size, spot.placement, plan)?, size),
        Way::Shm | Way::Json => process_shm(way, size, spot.placement, plan)?,
        Way::Pipe => (process_pipe(size, spot.placement, plan)?, size),
    };
    Ok(HandoffRun {
        way,
        size_bytes: size,
        wire_bytes,
        spot: spot.clone(),
        rounds_ns: vec![measurement.value()],
        measurement,
    })
}

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

fn thread_box(size: usize, placement: Placement, plan: &Plan) -> Result<Measurement> {
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

fn thread_vec(size: usize, placement: Placement, plan: &Plan) -> Result<Measurement> {
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

/// The exit code of a forked consumer that could not decode the JSON it was handed.
const EXIT_DECODE: i32 = 12;

/// Processes: the producer copies the bytes (`shm`) or serializes the structs (`json`) into a
/// shared mapping made before the fork, then rings an 8-byte bell (the length) over the shm
/// ring; the consumer reads the region in place. Returns the measurement and the bytes that
/// crossed at the last op.
fn process_shm(
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

/// Deserializes a JSON array of [`Item`]s into `into`, within its reserved capacity.
pub(super) fn decode_into(json: &[u8], into: &mut Vec<Item>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_slice(json);
    Fill(into).deserialize(&mut de)?;
    de.end()
}

/// Fills a reserved `Vec` from a JSON array without growing it.
struct Fill<'a>(&'a mut Vec<Item>);

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.clear();
        while let Some(item) = seq.next_element::<Item>()? {
            if self.0.len() == self.0.capacity() {
                return Err(de::Error::custom("more items than were reserved"));
            }
            self.0.push(item);
        }
        Ok(())
    }
}

/// Processes: the bytes go through a pipe into the consumer's buffer (write, read: two
/// copies through the kernel); the consumer answers with the sum on the other pipe.
fn process_pipe(size: usize, placement: Placement, plan: &Plan) -> Result<Measurement> {
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

/// The shared-memory setup a process hand-off needs once per region: map `size` fresh shared
/// bytes, touch each page once (its first-touch fault), unmap.
pub(super) fn shm_setup(size: usize, plan: &Plan) -> Result<SetupRun> {
    let len = NonZeroUsize::new(size).context("an empty region")?;
    let measurement = measure::measure(plan, |n, sampler| {
        time_ops(n, sampler, || {
            let region = SharedBytes::new(len).context("mapping a shared region")?;
            let p = region.as_ptr();
            for off in (0..size).step_by(PAGE) {
                // SAFETY: `off < size`, inside the fresh mapping, which nothing else uses.
                unsafe { p.add(off).write_volatile(1) };
            }
            drop(black_box(region));
            Ok(())
        })
    })?;
    Ok(SetupRun {
        size_bytes: size,
        measurement,
    })
}
