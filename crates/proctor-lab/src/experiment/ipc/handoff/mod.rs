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

use serde::{Deserialize, Serialize};

use super::pair::stop;
use super::*;
use crate::shared_mem::SharedBytes;
use crate::topology::{Pair, Placement as TopoPlacement, Topology};

mod json;
mod process;
mod thread;

pub(super) use json::decode_into;
use process::{process_pipe, process_shm};
use thread::{thread_box, thread_vec};

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
