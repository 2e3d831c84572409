//! The hand-off's part of the ipc section: a figure per way, size and placement, the ratios
//! the communication claim reads, the shared-memory setup, the table, the charts and the
//! notes, among them the control (the same-transport round trip) read as a control.

use super::handoff::{JSON_MAX, Way, handoff_key, items_for, setup_key};
use super::*;
use crate::units::{AxisUnit, micros_or_millis};

/// The ratios of one way over another at the same size and placement: (key name, costly,
/// cheap, label).
const RATIOS: [(&str, Way, Way, &str); 3] = [
    (
        "copy_over_pointer",
        Way::Shm,
        Way::Box,
        "processes copying into shared memory / threads passing a Box",
    ),
    (
        "pipe_over_pointer",
        Way::Pipe,
        Way::Box,
        "processes through a pipe / threads passing a Box",
    ),
    (
        "json_over_vec",
        Way::Json,
        Way::Vec,
        "processes serializing (serde_json) / threads passing a Vec",
    ),
];

/// The key of a ratio figure.
pub(super) fn ratio_key(name: &str, size: usize, suffix: &str) -> String {
    format!("ipc.handoff.{name}.{size}{suffix}")
}

/// The hand-off's method, before the round trips'.
pub(super) fn method(d: &Data) -> String {
    if d.handoffs.is_empty() {
        return String::new();
    }
    format!(
        "Hand-off (one op, what the communication claim is about): the producer stamps its data \
         afresh (one byte per 64-byte cache line, or one field per struct), hands it over and waits \
         for the consumer's 8-byte answer, the sum of what it read touching every cache line (or \
         struct); the producer checks the sum. Threads move a Box<[u8]> (or a Vec of 24-byte \
         structs) into a slot both reach and get it back with the answer: a pointer, no copy. \
         Processes copy the bytes into a shared mapping made before the fork, the consumer reading \
         them in place (one copy); or send them through a pipe into the consumer's buffer (two \
         copies through the kernel, the pipe ringing its own bell); or serialize the Vec with \
         serde_json into the shared mapping, the consumer deserializing it. The bell is the same \
         for threads and processes (an 8-byte message on the shm ring), so the two differ only in \
         how the data crosses. Sizes: {}. The \
         structured payloads run up to {} (64 KiB in tiny) and only at the deciding placement (the nearest pair of \
         two CPUs, else the same CPU), where the claim is decided; there the Box and the shm copy are measured in 3 independent \
         rounds (fresh partner and region each), the figure their median with their run-to-run \
         spread. Shared-memory setup (map a fresh \
         region, touch each page, unmap) is kept out of the ops and reported on its own. Pinned on \
         the placements the topology offers: {}. ",
        d.handoff_sizes
            .iter()
            .map(|&s| exact_size(s))
            .collect::<Vec<_>>()
            .join(", "),
        exact_size(JSON_MAX),
        d.spots
            .iter()
            .map(|s| s.words.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    )
}

fn find(d: &Data, way: Way, size: usize, suffix: &str) -> Option<f64> {
    d.handoffs
        .iter()
        .find(|r| r.way == way && r.size_bytes == size && r.spot.suffix == suffix)
        .map(|r| r.measurement.value())
}

/// The payload in words: "4 MiB", or "174 762 structs (4 MiB in memory, 8.1 MiB of JSON)".
fn payload(way: Way, size: usize, wire: usize) -> String {
    match way {
        Way::Json => format!(
            "{} structs ({} in memory, {} of JSON)",
            items_for(size),
            exact_size(size),
            exact_size(wire)
        ),
        Way::Vec => format!(
            "{} structs ({} in memory)",
            items_for(size),
            exact_size(size)
        ),
        _ => exact_size(size),
    }
}

/// Every hand-off, the shared-memory setups and the ratios.
pub(super) fn figures(d: &Data) -> Vec<Figure> {
    let mut out: Vec<Figure> = d
        .handoffs
        .iter()
        .map(|r| {
            r.measurement
                .figure(
                    &handoff_key(r.way, r.size_bytes, &r.spot.suffix),
                    &format!(
                        "hand-off of {}, {}",
                        payload(r.way, r.size_bytes, r.wire_bytes),
                        r.way.words()
                    ),
                )
                .with_rounds(&r.rounds_ns)
                .placed(&r.spot.words)
        })
        .collect();
    out.extend(d.setups.iter().map(|s| {
        s.measurement.figure(
            &setup_key(s.size_bytes),
            &format!(
                "shared-memory setup of {}: map, touch every page, unmap (once per region)",
                exact_size(s.size_bytes)
            ),
        )
    }));
    for &size in &d.handoff_sizes {
        for spot in &d.spots {
            for (name, costly, cheap, label) in RATIOS {
                let (Some(a), Some(b)) = (
                    find(d, costly, size, &spot.suffix),
                    find(d, cheap, size, &spot.suffix),
                ) else {
                    continue;
                };
                out.push(
                    Figure::new(
                        &ratio_key(name, size, &spot.suffix),
                        &format!("{label}, {}", exact_size(size)),
                        a / b,
                        Unit::Ratio,
                    )
                    .placed(&spot.words),
                );
            }
        }
    }
    out
}

/// The hand-off by size and placement, with the ratios and the setup; `None` when it did not
/// run.
pub(super) fn table(s: &Section, d: &Data) -> Option<Table> {
    if d.handoffs.is_empty() {
        return None;
    }
    let cell = |v: Option<f64>| v.map_or("-".to_string(), micros_or_millis);
    let ratio = |k: String| {
        s.figure(&k)
            .map_or("-".to_string(), |f| format!("{:.2}x", f.value))
    };
    let mut rows = Vec::new();
    for &size in &d.handoff_sizes {
        for spot in &d.spots {
            let mut row = vec![exact_size(size), spot.words.clone()];
            row.extend(
                Way::ALL
                    .iter()
                    .map(|&w| cell(find(d, w, size, &spot.suffix))),
            );
            row.push(ratio(ratio_key("copy_over_pointer", size, &spot.suffix)));
            row.push(ratio(ratio_key("json_over_vec", size, &spot.suffix)));
            row.push(cell(s.figure(&setup_key(size)).map(|f| f.value)));
            rows.push(row);
        }
    }
    Some(Table {
        title: "Hand-off of a payload: threads pass a pointer, processes copy or serialize \
                (time per hand-off, the consumer reading every cache line)"
            .into(),
        columns: [
            "size",
            "placement",
            "threads: Box",
            "threads: Vec",
            "processes: shm copy",
            "processes: pipe",
            "processes: serde_json",
            "shm copy / Box",
            "serde_json / Vec",
            "shm setup (once)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    })
}

/// Time per hand-off against payload size, log-log, one chart per placement, a series per
/// way.
pub(super) fn charts(d: &Data) -> Vec<Chart> {
    d.spots
        .iter()
        .filter(|spot| d.handoffs.iter().any(|r| r.spot.suffix == spot.suffix))
        .map(|spot| Chart {
            id: format!("handoff{}", spot.suffix.replace(['.', '_'], "-")),
            title: format!("Hand-off by payload size, {}", spot.words),
            kind: ChartKind::Line,
            x_label: "payload size".into(),
            y_label: "time per hand-off".into(),
            x_unit: AxisUnit::Bytes,
            y_unit: AxisUnit::Ns,
            x_log: true,
            y_log: true,
            categories: Vec::new(),
            series: Way::ALL
                .iter()
                .map(|&w| Series {
                    name: w.words().to_string(),
                    points: d
                        .handoff_sizes
                        .iter()
                        .filter_map(|&size| Some((size as f64, find(d, w, size, &spot.suffix)?)))
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect(),
        })
        .collect()
}

/// The control read as one (the same shm ring round trip between threads and between
/// processes, at each pinned placement), and the setup beside the copy it enables.
pub(super) fn notes(s: &Section, d: &Data) -> Vec<String> {
    let mut notes = Vec::new();
    let value = |k: &str| s.figure(k).map(|f| (f.value, f.placement.clone()));
    let mut control = Vec::new();
    for suffix in [".pinned", ".cross_cpu"] {
        let (Some((t, placed)), Some((p, _))) = (
            value(&format!("ipc.rtt.shm.thread.{HEADLINE_SIZE}{suffix}")),
            value(&format!("ipc.rtt.shm.process.{HEADLINE_SIZE}{suffix}")),
        ) else {
            continue;
        };
        control.push(format!(
            "{}: threads {} vs processes {} ({:.2}x)",
            placed.unwrap_or_default(),
            micros(t, 2),
            micros(p, 2),
            p / t
        ));
    }
    if !control.is_empty() {
        notes.push(format!(
            "control: the same {} round trip over one transport (the shm ring), between threads \
             and between processes: {}. Over one transport the partner kind can change little (only \
             the address-space switch on one CPU); the hand-off rows measure what differs, a \
             pointer passed against bytes copied or serialized",
            exact_size(HEADLINE_SIZE),
            control.join("; ")
        ));
    }
    if let Some(&size) = d.handoff_sizes.last() {
        let spot = deciding_spot(&d.spots);
        if let (Some(setup), Some(copy)) = (
            s.figure(&setup_key(size)).map(|f| f.value),
            spot.and_then(|sp| find(d, Way::Shm, size, &sp.suffix)),
        ) {
            notes.push(format!(
                "shared-memory setup is counted apart: a {} region costs {} to map, fault in and \
                 unmap, against {} per hand-off through it once made; a region made for a single \
                 hand-off pays both",
                exact_size(size),
                micros_or_millis(setup),
                micros_or_millis(copy)
            ));
        }
    }
    notes
}
