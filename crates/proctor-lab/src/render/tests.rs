//! Renderer tests over the fixed fixture: inline snapshots for the text forms, properties for
//! JSON, HTML and SVG.
//!
//! This file is long because the snapshots show each whole rendered report inline, which is
//! the point of them: a change to any cell shows in review.

use super::*;
use crate::fixture;
use crate::report::{Chart, ChartKind, Series};

fn chart_count(report: &Report) -> usize {
    report.sections.iter().map(|s| s.charts.len()).sum()
}

#[test]
fn table_plain() {
    let out = table::render(&fixture::report(), false);
    assert!(!out.contains('\x1b'), "no ANSI codes without color");
    insta::assert_snapshot!(out, @"
    Processes vs threads on AMD EPYC 7B13, 2 logical CPUs, 6.8.0-1015-gcp
    ─────────────────────────────────────────────────────────────────────
    proctor 0.1.0 · profile quick · proctor report --profile quick
    topology: 2 CPUs: 1 core, 1 LLC, 1 NUMA node; placements: same CPU, SMT sibling
    warning: virtualized (kvm): switch and wake-up latencies include hypervisor exits
    warning: cpufreq governor not readable: frequency scaling unknown

    Comparison
    ──────────
    ┌───────────────────────┬──────────────┬───────────────────┬─────────┬───────┬──────────────────────────┬──────────────┐
    │ aspect                ┆       thread ┆           process ┆   async ┆ ratio ┆ claim                    ┆ verdict      │
    ╞═══════════════════════╪══════════════╪═══════════════════╪═════════╪═══════╪══════════════════════════╪══════════════╡
    │ memory space          ┆            – ┆                 – ┆       – ┆       ┆ processes do not share   ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ ordinary memory          ┆              │
    │ communication         ┆ 310 µs (Box) ┆ 720 µs (shm copy) ┆       – ┆ 2.32× ┆ threads communicate      ┆ confirmed    │
    │                       ┆              ┆                   ┆         ┆       ┆ faster                   ┆              │
    │ creation overhead     ┆      18.4 µs ┆            112 µs ┆ 1.15 µs ┆ 6.09× ┆ creating a process costs ┆ confirmed    │
    │                       ┆              ┆                   ┆         ┆       ┆ more                     ┆              │
    │ context switching     ┆      1.18 µs ┆           1.42 µs ┆       – ┆ 1.20× ┆ switching between        ┆ confirmed    │
    │                       ┆              ┆                   ┆         ┆       ┆ threads is faster        ┆              │
    │ fault isolation       ┆            – ┆                 – ┆       – ┆       ┆ a crashing process does  ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ not take the others down ┆              │
    │ security boundary     ┆            – ┆                 – ┆       – ┆       ┆ a sandboxed process      ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ stops a compromised task ┆              │
    │ resource usage        ┆            – ┆                 – ┆       – ┆       ┆ a process uses more      ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ memory per worker        ┆              │
    │ multi-core use        ┆            – ┆                 – ┆       – ┆       ┆ both use many cores (no  ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ GIL)                     ┆              │
    │ many concurrent waits ┆            – ┆                 – ┆       – ┆       ┆ threads or async suit    ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ many waits better        ┆              │
    │ synchronization       ┆            – ┆                 – ┆       – ┆       ┆ synchronizing processes  ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ costs more               ┆              │
    │ server crash          ┆            – ┆                 – ┆       – ┆       ┆ a prefork server keeps   ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ serving; a threaded one  ┆              │
    │                       ┆              ┆                   ┆         ┆       ┆ dies                     ┆              │
    │ isolation ladder      ┆            – ┆                 – ┆       – ┆       ┆ fresh namespaces cost    ┆ not measured │
    │                       ┆              ┆                   ┆         ┆       ┆ more to start            ┆              │
    └───────────────────────┴──────────────┴───────────────────┴─────────┴───────┴──────────────────────────┴──────────────┘
    ratio = process / thread

    Claims
    ──────
    ┌──────────────┬───────────────────────────────────────────────────┬───────────────────────────────────────────────────┐
    │ verdict      ┆ claim                                             ┆ evidence                                          │
    ╞══════════════╪═══════════════════════════════════════════════════╪═══════════════════════════════════════════════════╡
    │ confirmed    ┆ process creation costs more than thread creation  ┆ fork 112 µs vs thread spawn 18.4 µs: 6.09×        │
    │              ┆                                                   ┆ (clearly more); decided by spawn.fork /           │
    │              ┆                                                   ┆ spawn.thread on one matched placement: same CPU   │
    │              ┆                                                   ┆ (cpu 0)                                           │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ confirmed    ┆ a switch between threads is cheaper than a switch ┆ process switch 1.42 µs vs thread switch 1.18 µs:  │
    │              ┆ between processes                                 ┆ 1.20× (clearly more); decided by                  │
    │              ┆                                                   ┆ switch.futex.process.pinned /                     │
    │              ┆                                                   ┆ switch.futex.thread.pinned; matched placement:    │
    │              ┆                                                   ┆ both partners on same CPU (cpu 0), a switch per   │
    │              ┆                                                   ┆ hand-off (pairs on two CPUs are wake-ups and do   │
    │              ┆                                                   ┆ not decide it)                                    │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ confirmed    ┆ threads communicate faster than processes         ┆ 4 MiB hand-off, shared LLC (cpu 0 → cpu 1):       │
    │              ┆                                                   ┆ processes copying into shared memory 720 µs vs    │
    │              ┆                                                   ┆ threads passing a Box 310 µs: 2.32× (clearly      │
    │              ┆                                                   ┆ more); decided by                                 │
    │              ┆                                                   ┆ ipc.handoff.process.shm.4194304.cross_cpu /       │
    │              ┆                                                   ┆ ipc.handoff.thread.box.4194304.cross_cpu          │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ a crash in a process leaves the others running,   ┆ not measured: isolation did not run               │
    │              ┆ while a crash in a thread takes the whole program ┆                                                   │
    │              ┆ down                                              ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ processes use more memory per worker than threads ┆ not measured: memory failed: reading              │
    │              ┆                                                   ┆ /proc/4242/smaps_rollup: Permission denied (os    │
    │              ┆                                                   ┆ error 13)                                         │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ an unsynchronized shared counter loses updates,   ┆ not measured: race did not run                    │
    │              ┆ and locks or atomics fix it                       ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ processes do not share ordinary memory            ┆ not measured: race did not run                    │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ both processes and threads use many cores for     ┆ not measured: scaling did not run                 │
    │              ┆ CPU-bound work (no GIL in Rust)                   ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ more CPU-bound threads than cores costs           ┆ not measured: scaling did not run                 │
    │              ┆ throughput (over-threading)                       ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ threads or async tasks suit many concurrent waits ┆ not measured: scaling did not run                 │
    │              ┆ better than processes                             ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ synchronizing processes costs more than           ┆ not measured: sync did not run                    │
    │              ┆ synchronizing threads                             ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ a CPU-heavy job on the UI thread drops frames;    ┆ not measured: ui did not run                      │
    │              ┆ moved to a worker thread or process it does not   ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ a timed-out thread keeps its memory until its     ┆ not measured: leaks did not run                   │
    │              ┆ task returns; a killed worker process gives it    ┆                                                   │
    │              ┆ back                                              ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ a sandboxed worker process stops what a           ┆ not measured: sandbox did not run                 │
    │              ┆ compromised task can do on a thread or in a plain ┆                                                   │
    │              ┆ process                                           ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ prefork servers survive a handler crash; threaded ┆ not measured: servers did not run                 │
    │              ┆ die                                               ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ recycled prefork workers give leaked memory back  ┆ not measured: servers did not run                 │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ prefork and threaded servers serve at the same    ┆ not measured: servers did not run                 │
    │              ┆ rate                                              ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ fresh namespaces cost more to start than a plain  ┆ not measured: containers did not run              │
    │              ┆ fork                                              ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ lost updates vary by run; the fixes never lose    ┆ not measured: race did not run                    │
    │              ┆ one                                               ┆                                                   │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ not measured ┆ pinned to one CPU, far fewer runs lose updates    ┆ not measured: race did not run                    │
    ├╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┼╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌╌┤
    │ confirmed    ┆ a worker process runs on another host for one     ┆ pool submit().join() round trip to a remote       │
    │              ┆ round trip                                        ┆ worker (an agent on this host over loopback TCP): │
    │              ┆                                                   ┆ pinned: 12.4 µs a task, 1.17× a raw TCP 64 B      │
    │              ┆                                                   ┆ round trip between processes, 3.0× a local worker │
    │              ┆                                                   ┆ process, 5.3× a thread; unpinned: 12.2 µs a task, │
    │              ┆                                                   ┆ 1.05× a raw TCP 64 B round trip between           │
    │              ┆                                                   ┆ processes, 2.7× a local worker process, 4.9× a    │
    │              ┆                                                   ┆ thread; the pool adds little to the network when  │
    │              ┆                                                   ┆ it is at most 1.5× the raw round trip in every    │
    │              ┆                                                   ┆ placement measured; a real network adds its own   │
    │              ┆                                                   ┆ round-trip time to each task, which loopback does │
    │              ┆                                                   ┆ not measure; a one-worker pool built, run once    │
    │              ┆                                                   ┆ and dropped: remote 4.20 ms, local forked 74.0 µs │
    │              ┆                                                   ┆ (56.8×)                                           │
    └──────────────┴───────────────────────────────────────────────────┴───────────────────────────────────────────────────┘

    Creation overhead [spawn] (4.31 s)
    ──────────────────────────────────
    method: One op is create + first instruction + exit + reap, timed by a handshake over a pipe. Warm median of 30 batches;
      the first (cold) creation is reported apart.
    ┌───────────────────────────────────────┬─────────┬──────────────────────────┬──────────────────┬───────────────────┐
    │ figure                                ┆   value ┆                 p1 – p99 ┆ placement        ┆ key               │
    ╞═══════════════════════════════════════╪═════════╪══════════════════════════╪══════════════════╪═══════════════════╡
    │ thread spawn + join                   ┆ 18.4 µs ┆ 17.3 µs – 20.6 µs (n=30) ┆ same CPU (cpu 0) ┆ spawn.thread      │
    │ fork + _exit + waitpid                ┆  112 µs ┆   102 µs – 132 µs (n=30) ┆ same CPU (cpu 0) ┆ spawn.fork        │
    │ posix_spawn + exec + wait             ┆  486 µs ┆ 428 µs – 603 µs (n=30, 2 ┆                  ┆ spawn.posix_spawn │
    │                                       ┆         ┆                outliers) ┆                  ┆                   │
    │ pool worker from the fork server      ┆ 74.0 µs ┆ 68.1 µs – 85.8 µs (n=30) ┆                  ┆ spawn.pool_worker │
    │ one-worker remote pool (loopback TCP) ┆ 4.20 ms ┆ 3.78 ms – 5.04 ms (n=30) ┆                  ┆ spawn.pool_remote │
    │ built, run once, dropped              ┆         ┆                          ┆                  ┆                   │
    │ async task spawn + await              ┆ 1.15 µs ┆ 1.10 µs – 1.24 µs (n=30) ┆                  ┆ spawn.async       │
    └───────────────────────────────────────┴─────────┴──────────────────────────┴──────────────────┴───────────────────┘
    Creation cost against the parent's resident memory
    ┌────────────┬─────────┬─────────────┬─────────┐
    │ parent RSS ┆    fork ┆ posix_spawn ┆  thread │
    ╞════════════╪═════════╪═════════════╪═════════╡
    │ 4 MiB      ┆  112 µs ┆      486 µs ┆ 18.4 µs │
    │ 64 MiB     ┆  431 µs ┆      490 µs ┆ 18.6 µs │
    │ 1 GiB      ┆ 5.82 ms ┆      494 µs ┆ 18.5 µs │
    └────────────┴─────────┴─────────────┴─────────┘
    chart: Creation cost by method (in the HTML report)
    chart: Creation cost against parent RSS (in the HTML report)
    note: The cold first fork took 412 µs and is excluded from the median.
    note: fork grows with the parent's page tables; posix_spawn (vfork) does not.

    Context switching [switch] (6.02 s)
    ───────────────────────────────────
    method: Two threads, then two processes, ping-pong on one pinned CPU through a futex and through pipes. One switch is
      half a round trip, with the same syscalls timed in one task subtracted. Switch counts verified with getrusage.
    ┌───────────────────────────┬─────────┬──────────────────────────┬──────────────────────────┬──────────────────────────┐
    │ figure                    ┆   value ┆                 p1 – p99 ┆ placement                ┆ key                      │
    ╞═══════════════════════════╪═════════╪══════════════════════════╪══════════════════════════╪══════════════════════════╡
    │ thread switch (futex)     ┆ 1.18 µs ┆ 1.12 µs – 1.30 µs (n=30) ┆ same CPU (cpu 0)         ┆ switch.futex.thread.pinn │
    │                           ┆         ┆                          ┆                          ┆ ed                       │
    │ process switch (futex)    ┆ 1.42 µs ┆ 1.35 µs – 1.56 µs (n=30) ┆ same CPU (cpu 0)         ┆ switch.futex.process.pin │
    │                           ┆         ┆                          ┆                          ┆ ned                      │
    │ thread switch (pipe)      ┆ 2.70 µs ┆ 2.51 µs – 3.08 µs (n=30) ┆ same CPU (cpu 0)         ┆ switch.pipe.thread.pinne │
    │                           ┆         ┆                          ┆                          ┆ d                        │
    │ process switch (pipe)     ┆ 2.90 µs ┆ 2.70 µs – 3.31 µs (n=30) ┆ same CPU (cpu 0)         ┆ switch.pipe.process.pinn │
    │                           ┆         ┆                          ┆                          ┆ ed                       │
    │ thread wake-up (futex)    ┆ 4.90 µs ┆ 4.17 µs – 6.37 µs (n=30, ┆ across CPUs (cpu 0 → cpu ┆ switch.futex.thread.cros │
    │                           ┆         ┆              2 outliers) ┆ 1)                       ┆ s                        │
    │ switches counted /        ┆  99.6 % ┆   99.6 % – 99.6 % (n=30) ┆                          ┆ switch.counted           │
    │ expected                  ┆         ┆                          ┆                          ┆                          │
    └───────────────────────────┴─────────┴──────────────────────────┴──────────────────────────┴──────────────────────────┘
    chart: Switch cost: threads vs processes (in the HTML report)
    cross-checks
    ┌──────────────────────────┬───────────────────────────┬─────────┬─────────┬───────────────┬───────────────────────────┐
    │ tool                     ┆ command                   ┆    ours ┆  theirs ┆ ours / theirs ┆ note                      │
    ╞══════════════════════════╪═══════════════════════════╪═════════╪═════════╪═══════════════╪═══════════════════════════╡
    │ perf bench sched pipe    ┆ taskset -c 0 perf bench   ┆ 2.90 µs ┆ 3.05 µs ┆         0.95× ┆ perf's usecs/op is a      │
    │                          ┆ sched pipe -l 100000      ┆         ┆         ┆               ┆ round trip; halved here   │
    │ perf bench sched pipe -T ┆ taskset -c 0 perf bench   ┆ 2.70 µs ┆ 2.84 µs ┆         0.95× ┆                           │
    │                          ┆ sched pipe -T -l 100000   ┆         ┆         ┆               ┆                           │
    │ lmbench lat_ctx          ┆ lat_ctx -s 0 2            ┆ 2.90 µs ┆       – ┆               ┆ lat_ctx not installed:    │
    │                          ┆                           ┆         ┆         ┆               ┆ apt install lmbench       │
    └──────────────────────────┴───────────────────────────┴─────────┴─────────┴───────────────┴───────────────────────────┘
    note: Virtualized: a switch may include a VM exit; compare the ratio, not the absolute figure.

    Communication [ipc] (9.87 s)
    ────────────────────────────
    method: Round trip of one message and its reply between two threads (channel) or two processes (pipe, unix socket,
      shared-memory ring with futex wait). p50 of per-op timestamps; unpinned.
    ┌──────────────────────────┬───────────┬──────────────────────────┬──────────────────────────┬─────────────────────────┐
    │ figure                   ┆     value ┆                 p1 – p99 ┆ placement                ┆ key                     │
    ╞══════════════════════════╪═══════════╪══════════════════════════╪══════════════════════════╪═════════════════════════╡
    │ channel, 64 B            ┆   2.35 µs ┆ 2.16 µs – 2.73 µs (n=30) ┆ unpinned                 ┆ ipc.rtt.channel.thread. │
    │                          ┆           ┆                          ┆                          ┆ 64                      │
    │ pipe, 64 B               ┆   9.80 µs ┆ 8.72 µs – 12.0 µs (n=30, ┆ unpinned                 ┆ ipc.rtt.pipe.process.64 │
    │                          ┆           ┆              2 outliers) ┆                          ┆                         │
    │ unix socket, 64 B        ┆   11.2 µs ┆ 9.86 µs – 13.9 µs (n=30, ┆ unpinned                 ┆ ipc.rtt.unix.process.64 │
    │                          ┆           ┆              2 outliers) ┆                          ┆                         │
    │ shm ring (futex), 64 B   ┆   3.10 µs ┆ 2.82 µs – 3.66 µs (n=30) ┆ unpinned                 ┆ ipc.rtt.shm.process.64  │
    │ pipe throughput, 1 MiB   ┆ 2.90 GB/s ┆    2.75 GB/s – 3.19 GB/s ┆                          ┆ ipc.throughput.pipe.pro │
    │ messages                 ┆           ┆                   (n=30) ┆                          ┆ cess.1m                 │
    │ hand-off of 4 MiB,       ┆    290 µs ┆   267 µs – 336 µs (n=30) ┆ same CPU (cpu 0)         ┆ ipc.handoff.thread.box. │
    │ threads: Box<[u8]>       ┆           ┆                          ┆                          ┆ 4194304.pinned          │
    │ through a channel        ┆           ┆                          ┆                          ┆                         │
    │ hand-off of 4 MiB,       ┆    650 µs ┆   598 µs – 754 µs (n=30) ┆ same CPU (cpu 0)         ┆ ipc.handoff.process.shm │
    │ processes: copy into     ┆           ┆                          ┆                          ┆ .4194304.pinned         │
    │ shared memory            ┆           ┆                          ┆                          ┆                         │
    │ hand-off of 4 MiB,       ┆    310 µs ┆   285 µs – 360 µs (n=30) ┆ shared LLC (cpu 0 → cpu  ┆ ipc.handoff.thread.box. │
    │ threads: Box<[u8]>       ┆           ┆                          ┆ 1)                       ┆ 4194304.cross_cpu       │
    │ through a channel        ┆           ┆                          ┆                          ┆                         │
    │ hand-off of 4 MiB,       ┆    720 µs ┆   662 µs – 835 µs (n=30) ┆ shared LLC (cpu 0 → cpu  ┆ ipc.handoff.process.shm │
    │ processes: copy into     ┆           ┆                          ┆ 1)                       ┆ .4194304.cross_cpu      │
    │ shared memory            ┆           ┆                          ┆                          ┆                         │
    │ tcp, 64 B                ┆   10.6 µs ┆ 9.75 µs – 12.3 µs (n=30) ┆ same CPU (cpu 0)         ┆ ipc.rtt.tcp.process.64. │
    │                          ┆           ┆                          ┆                          ┆ pinned                  │
    │ pool round trip to a     ┆   2.34 µs ┆ 2.15 µs – 2.71 µs (n=30) ┆ same CPU (cpu 0)         ┆ ipc.pool_rtt.thread.pin │
    │ thread-pool worker       ┆           ┆                          ┆                          ┆ ned                     │
    │ pool round trip to a     ┆   4.13 µs ┆ 3.80 µs – 4.79 µs (n=30) ┆ same CPU (cpu 0)         ┆ ipc.pool_rtt.process.pi │
    │ local process-pool       ┆           ┆                          ┆                          ┆ nned                    │
    │ worker                   ┆           ┆                          ┆                          ┆                         │
    │ pool round trip to a     ┆   12.4 µs ┆ 11.4 µs – 14.4 µs (n=30) ┆ same CPU (cpu 0)         ┆ ipc.pool_rtt.remote.pin │
    │ remote worker (loopback  ┆           ┆                          ┆                          ┆ ned                     │
    │ TCP)                     ┆           ┆                          ┆                          ┆                         │
    │ remote worker / raw tcp  ┆     1.17× ┆                          ┆ same CPU (cpu 0)         ┆ ipc.pool_rtt.remote_ove │
    │ 64 B round trip          ┆           ┆                          ┆                          ┆ r_tcp.pinned            │
    │ remote worker / local    ┆     3.00× ┆                          ┆ same CPU (cpu 0)         ┆ ipc.pool_rtt.remote_ove │
    │ process-pool worker      ┆           ┆                          ┆                          ┆ r_process.pinned        │
    │ remote worker /          ┆     5.30× ┆                          ┆ same CPU (cpu 0)         ┆ ipc.pool_rtt.remote_ove │
    │ thread-pool worker       ┆           ┆                          ┆                          ┆ r_thread.pinned         │
    │ tcp, 64 B                ┆   11.7 µs ┆ 10.7 µs – 13.5 µs (n=30) ┆ unpinned                 ┆ ipc.rtt.tcp.process.64  │
    │ pool round trip to a     ┆   2.48 µs ┆ 2.28 µs – 2.88 µs (n=30) ┆ unpinned                 ┆ ipc.pool_rtt.thread     │
    │ thread-pool worker       ┆           ┆                          ┆                          ┆                         │
    │ pool round trip to a     ┆   4.45 µs ┆ 4.09 µs – 5.16 µs (n=30) ┆ unpinned                 ┆ ipc.pool_rtt.process    │
    │ local process-pool       ┆           ┆                          ┆                          ┆                         │
    │ worker                   ┆           ┆                          ┆                          ┆                         │
    │ pool round trip to a     ┆   12.2 µs ┆ 11.2 µs – 14.2 µs (n=30) ┆ unpinned                 ┆ ipc.pool_rtt.remote     │
    │ remote worker (loopback  ┆           ┆                          ┆                          ┆                         │
    │ TCP)                     ┆           ┆                          ┆                          ┆                         │
    │ remote worker / raw tcp  ┆     1.05× ┆                          ┆ unpinned                 ┆ ipc.pool_rtt.remote_ove │
    │ 64 B round trip          ┆           ┆                          ┆                          ┆ r_tcp                   │
    │ remote worker / local    ┆     2.74× ┆                          ┆ unpinned                 ┆ ipc.pool_rtt.remote_ove │
    │ process-pool worker      ┆           ┆                          ┆                          ┆ r_process               │
    │ remote worker /          ┆     4.92× ┆                          ┆ unpinned                 ┆ ipc.pool_rtt.remote_ove │
    │ thread-pool worker       ┆           ┆                          ┆                          ┆ r_thread                │
    └──────────────────────────┴───────────┴──────────────────────────┴──────────────────────────┴─────────────────────────┘
    Round trip, p50 / p99
    ┌───────────────────┬────────────────┬────────────────┬────────────────┬──────────────┐
    │ transport         ┆           64 B ┆          4 KiB ┆         64 KiB ┆        1 MiB │
    ╞═══════════════════╪════════════════╪════════════════╪════════════════╪══════════════╡
    │ channel (threads) ┆ 2.35 / 4.10 µs ┆ 2.61 / 4.52 µs ┆ 9.80 / 14.1 µs ┆ 210 / 260 µs │
    │ pipe              ┆ 9.80 / 21.3 µs ┆ 11.2 / 24.0 µs ┆ 48.0 / 71.5 µs ┆ 720 / 910 µs │
    │ unix socket       ┆ 11.2 / 23.9 µs ┆ 12.0 / 25.1 µs ┆ 41.3 / 60.2 µs ┆ 650 / 820 µs │
    │ shm ring (futex)  ┆ 3.10 / 6.20 µs ┆ 3.40 / 6.60 µs ┆ 12.9 / 19.0 µs ┆ 240 / 300 µs │
    └───────────────────┴────────────────┴────────────────┴────────────────┴──────────────┘
    chart: Round trip against message size (in the HTML report)
    note: TCP loopback and POSIX mq were not selected in this run.
    note: Message sizes straddle 4 KiB (page), 64 KiB (pipe capacity) and the socket buffer.

    Resource usage [memory] (380 ms)
    ────────────────────────────────
    FAILED: reading /proc/4242/smaps_rollup: Permission denied (os error 13)
    method: N idle workers (1, 10, 100) as processes and as threads; USS, PSS and RSS per worker from
      /proc/PID/smaps_rollup.
    ");
}

#[test]
fn table_colored_marks_verdicts() {
    let out = table::render(&fixture::report(), true);
    assert!(out.contains("\x1b["), "color on gives ANSI codes");
}

#[test]
fn markdown() {
    insta::assert_snapshot!(markdown::render(&fixture::report()), @r#"
    # Processes vs threads, measured

    AMD EPYC 7B13 · 2 logical CPUs · kernel 6.8.0-1015-gcp · proctor 0.1.0 · `proctor report --profile quick`

    Each section states its method; `METHODS.md` in the proctor repository gathers them.

    Topology: 2 CPUs: 1 core, 1 LLC, 1 NUMA node; placements: same CPU, SMT sibling.

    > **Warning:** virtualized (kvm): switch and wake-up latencies include hypervisor exits
    > **Warning:** cpufreq governor not readable: frequency scaling unknown

    ## Comparison

    | aspect | thread | process | async | ratio | claim | verdict |
    |---|---:|---:|---:|---:|---|---|
    | memory space | – | – | – |  | processes do not share ordinary memory | **not measured** |
    | communication | 310 µs (Box) | 720 µs (shm copy) | – | 2.32× | threads communicate faster | **confirmed** |
    | creation overhead | 18.4 µs | 112 µs | 1.15 µs | 6.09× | creating a process costs more | **confirmed** |
    | context switching | 1.18 µs | 1.42 µs | – | 1.20× | switching between threads is faster | **confirmed** |
    | fault isolation | – | – | – |  | a crashing process does not take the others down | **not measured** |
    | security boundary | – | – | – |  | a sandboxed process stops a compromised task | **not measured** |
    | resource usage | – | – | – |  | a process uses more memory per worker | **not measured** |
    | multi-core use | – | – | – |  | both use many cores (no GIL) | **not measured** |
    | many concurrent waits | – | – | – |  | threads or async suit many waits better | **not measured** |
    | synchronization | – | – | – |  | synchronizing processes costs more | **not measured** |
    | server crash | – | – | – |  | a prefork server keeps serving; a threaded one dies | **not measured** |
    | isolation ladder | – | – | – |  | fresh namespaces cost more to start | **not measured** |

    Ratio = process / thread.

    ## Claims

    - **confirmed**: process creation costs more than thread creation. fork 112 µs vs thread spawn 18.4 µs: 6.09× (clearly more); decided by spawn.fork / spawn.thread on one matched placement: same CPU (cpu 0) (figures: `spawn.fork`, `spawn.thread`)
    - **confirmed**: a switch between threads is cheaper than a switch between processes. process switch 1.42 µs vs thread switch 1.18 µs: 1.20× (clearly more); decided by switch.futex.process.pinned / switch.futex.thread.pinned; matched placement: both partners on same CPU (cpu 0), a switch per hand-off (pairs on two CPUs are wake-ups and do not decide it) (figures: `switch.futex.process.pinned`, `switch.futex.thread.pinned`)
    - **confirmed**: threads communicate faster than processes. 4 MiB hand-off, shared LLC (cpu 0 → cpu 1): processes copying into shared memory 720 µs vs threads passing a Box 310 µs: 2.32× (clearly more); decided by ipc.handoff.process.shm.4194304.cross\_cpu / ipc.handoff.thread.box.4194304.cross\_cpu (figures: `ipc.handoff.process.shm.4194304.cross_cpu`, `ipc.handoff.thread.box.4194304.cross_cpu`)
    - **not measured**: a crash in a process leaves the others running, while a crash in a thread takes the whole program down. not measured: isolation did not run (figures: `isolation.faults`, `isolation.survived.process`, `isolation.whole_program_died.thread`)
    - **not measured**: processes use more memory per worker than threads. not measured: memory failed: reading /proc/4242/smaps\_rollup: Permission denied (os error 13) (figures: `memory.overhead_per_worker.process.100`, `memory.overhead_per_worker.thread.100`)
    - **not measured**: an unsynchronized shared counter loses updates, and locks or atomics fix it. not measured: race did not run (figures: `race.expected`, `race.final.unsync`, `race.final.mutex`, `race.final.atomic`, `race.ns_per_inc.unsync`, `race.ns_per_inc.mutex`, `race.ns_per_inc.atomic`)
    - **not measured**: processes do not share ordinary memory. not measured: race did not run (figures: `race.parent_after.process_copy`)
    - **not measured**: both processes and threads use many cores for CPU-bound work (no GIL in Rust). not measured: scaling did not run (figures: `scaling.cores`, `scaling.speedup.thread.cores`, `scaling.speedup.process.cores`)
    - **not measured**: more CPU-bound threads than cores costs throughput (over-threading). not measured: scaling did not run (figures: `scaling.oversubscription.thread`)
    - **not measured**: threads or async tasks suit many concurrent waits better than processes. not measured: scaling did not run (figures: `scaling.io.completion.process.1000`, `scaling.io.completion.thread.1000`, `scaling.io.completion.async.1000`)
    - **not measured**: synchronizing processes costs more than synchronizing threads. not measured: sync did not run (figures: `sync.mutex.contended.process`, `sync.futex_mutex.contended.thread`)
    - **not measured**: a CPU-heavy job on the UI thread drops frames; moved to a worker thread or process it does not. not measured: ui did not run (figures: `ui.period`, `ui.job.ui_thread`, `ui.missed.ui_thread`, `ui.missed.worker_thread`, `ui.missed.worker_process`)
    - **not measured**: a timed-out thread keeps its memory until its task returns; a killed worker process gives it back. not measured: leaks did not run (figures: `leaks.ballast`, `leaks.timeout.process.held`, `leaks.timeout.process.after`, `leaks.timeout.thread.after`)
    - **not measured**: a sandboxed worker process stops what a compromised task can do on a thread or in a plain process. not measured: sandbox did not run (figures: `sandbox.tried.sandboxed`, `sandbox.stopped.sandboxed`, `sandbox.worked.process`, `sandbox.worked.thread`)
    - **not measured**: prefork servers survive a handler crash; threaded die. not measured: servers did not run (figures: `servers.crash.kept_serving.prefork`, `servers.crash.kept_serving.threaded`, `servers.crash.kept_serving.async`)
    - **not measured**: recycled prefork workers give leaked memory back. not measured: servers did not run (figures: `servers.leak.leaked`, `servers.leak.held.prefork`, `servers.leak.held.threaded`)
    - **not measured**: prefork and threaded servers serve at the same rate. not measured: servers did not run (figures: `servers.rps.prefork.cpu.16`, `servers.rps.threaded.cpu.16`)
    - **not measured**: fresh namespaces cost more to start than a plain fork. not measured: containers did not run (figures: `containers.start.namespaces`, `containers.start.fork`)
    - **not measured**: lost updates vary by run; the fixes never lose one. not measured: race did not run (figures: `race.dist.runs`, `race.dist.threads_2.lossy_runs`, `race.dist.threads_2.lost_min`, `race.dist.threads_2.lost_max`, `race.runs_exact.mutex`, `race.runs_exact.atomic`)
    - **not measured**: pinned to one CPU, far fewer runs lose updates. not measured: race did not run (figures: `race.cpus`, `race.dist.threads_2.lossy_runs`, `race.dist.one_cpu.lossy_runs`)
    - **confirmed**: a worker process runs on another host for one round trip. pool submit().join() round trip to a remote worker (an agent on this host over loopback TCP): pinned: 12.4 µs a task, 1.17× a raw TCP 64 B round trip between processes, 3.0× a local worker process, 5.3× a thread; unpinned: 12.2 µs a task, 1.05× a raw TCP 64 B round trip between processes, 2.7× a local worker process, 4.9× a thread; the pool adds little to the network when it is at most 1.5× the raw round trip in every placement measured; a real network adds its own round-trip time to each task, which loopback does not measure; a one-worker pool built, run once and dropped: remote 4.20 ms, local forked 74.0 µs (56.8×) (figures: `ipc.pool_rtt.remote_over_tcp.pinned`, `ipc.pool_rtt.remote.pinned`, `ipc.pool_rtt.remote_over_process.pinned`, `ipc.pool_rtt.remote_over_thread.pinned`, `ipc.pool_rtt.remote_over_tcp`, `ipc.pool_rtt.remote`, `ipc.pool_rtt.remote_over_process`, `ipc.pool_rtt.remote_over_thread`, `spawn.pool_remote`, `spawn.pool_worker`)

    ## Creation overhead (`spawn`)

    One op is create + first instruction + exit + reap, timed by a handshake over a pipe. Warm median of 30 batches; the first (cold) creation is reported apart. Took 4.31 s.

    | figure | value | p1 – p99 | placement | key |
    |---|---:|---:|---|---|
    | thread spawn + join | 18.4 µs | 17.3 µs – 20.6 µs (n=30) | same CPU (cpu 0) | `spawn.thread` |
    | fork + _exit + waitpid | 112 µs | 102 µs – 132 µs (n=30) | same CPU (cpu 0) | `spawn.fork` |
    | posix_spawn + exec + wait | 486 µs | 428 µs – 603 µs (n=30, 2 outliers) |  | `spawn.posix_spawn` |
    | pool worker from the fork server | 74.0 µs | 68.1 µs – 85.8 µs (n=30) |  | `spawn.pool_worker` |
    | one-worker remote pool (loopback TCP) built, run once, dropped | 4.20 ms | 3.78 ms – 5.04 ms (n=30) |  | `spawn.pool_remote` |
    | async task spawn + await | 1.15 µs | 1.10 µs – 1.24 µs (n=30) |  | `spawn.async` |

    **Creation cost against the parent's resident memory**

    | parent RSS | fork | posix_spawn | thread |
    |---|---:|---:|---:|
    | 4 MiB | 112 µs | 486 µs | 18.4 µs |
    | 64 MiB | 431 µs | 490 µs | 18.6 µs |
    | 1 GiB | 5.82 ms | 494 µs | 18.5 µs |

    *Chart: Creation cost by method (drawn in the HTML report).*

    *Chart: Creation cost against parent RSS (drawn in the HTML report).*

    - The cold first fork took 412 µs and is excluded from the median.
    - fork grows with the parent's page tables; posix\_spawn (vfork) does not.

    ## Context switching (`switch`)

    Two threads, then two processes, ping-pong on one pinned CPU through a futex and through pipes. One switch is half a round trip, with the same syscalls timed in one task subtracted. Switch counts verified with getrusage. Took 6.02 s.

    | figure | value | p1 – p99 | placement | key |
    |---|---:|---:|---|---|
    | thread switch (futex) | 1.18 µs | 1.12 µs – 1.30 µs (n=30) | same CPU (cpu 0) | `switch.futex.thread.pinned` |
    | process switch (futex) | 1.42 µs | 1.35 µs – 1.56 µs (n=30) | same CPU (cpu 0) | `switch.futex.process.pinned` |
    | thread switch (pipe) | 2.70 µs | 2.51 µs – 3.08 µs (n=30) | same CPU (cpu 0) | `switch.pipe.thread.pinned` |
    | process switch (pipe) | 2.90 µs | 2.70 µs – 3.31 µs (n=30) | same CPU (cpu 0) | `switch.pipe.process.pinned` |
    | thread wake-up (futex) | 4.90 µs | 4.17 µs – 6.37 µs (n=30, 2 outliers) | across CPUs (cpu 0 → cpu 1) | `switch.futex.thread.cross` |
    | switches counted / expected | 99.6 % | 99.6 % – 99.6 % (n=30) |  | `switch.counted` |

    *Chart: Switch cost: threads vs processes (drawn in the HTML report).*

    **Cross-checks**

    | tool | command | ours | theirs | ours / theirs | note |
    |---|---|---:|---:|---:|---|
    | perf bench sched pipe | `taskset -c 0 perf bench sched pipe -l 100000` | 2.90 µs | 3.05 µs | 0.95× | perf's usecs/op is a round trip; halved here |
    | perf bench sched pipe -T | `taskset -c 0 perf bench sched pipe -T -l 100000` | 2.70 µs | 2.84 µs | 0.95× |  |
    | lmbench lat_ctx | `lat_ctx -s 0 2` | 2.90 µs | – |  | lat_ctx not installed: apt install lmbench |

    - Virtualized: a switch may include a VM exit; compare the ratio, not the absolute figure.

    ## Communication (`ipc`)

    Round trip of one message and its reply between two threads (channel) or two processes (pipe, unix socket, shared-memory ring with futex wait). p50 of per-op timestamps; unpinned. Took 9.87 s.

    | figure | value | p1 – p99 | placement | key |
    |---|---:|---:|---|---|
    | channel, 64 B | 2.35 µs | 2.16 µs – 2.73 µs (n=30) | unpinned | `ipc.rtt.channel.thread.64` |
    | pipe, 64 B | 9.80 µs | 8.72 µs – 12.0 µs (n=30, 2 outliers) | unpinned | `ipc.rtt.pipe.process.64` |
    | unix socket, 64 B | 11.2 µs | 9.86 µs – 13.9 µs (n=30, 2 outliers) | unpinned | `ipc.rtt.unix.process.64` |
    | shm ring (futex), 64 B | 3.10 µs | 2.82 µs – 3.66 µs (n=30) | unpinned | `ipc.rtt.shm.process.64` |
    | pipe throughput, 1 MiB messages | 2.90 GB/s | 2.75 GB/s – 3.19 GB/s (n=30) |  | `ipc.throughput.pipe.process.1m` |
    | hand-off of 4 MiB, threads: Box<[u8]> through a channel | 290 µs | 267 µs – 336 µs (n=30) | same CPU (cpu 0) | `ipc.handoff.thread.box.4194304.pinned` |
    | hand-off of 4 MiB, processes: copy into shared memory | 650 µs | 598 µs – 754 µs (n=30) | same CPU (cpu 0) | `ipc.handoff.process.shm.4194304.pinned` |
    | hand-off of 4 MiB, threads: Box<[u8]> through a channel | 310 µs | 285 µs – 360 µs (n=30) | shared LLC (cpu 0 → cpu 1) | `ipc.handoff.thread.box.4194304.cross_cpu` |
    | hand-off of 4 MiB, processes: copy into shared memory | 720 µs | 662 µs – 835 µs (n=30) | shared LLC (cpu 0 → cpu 1) | `ipc.handoff.process.shm.4194304.cross_cpu` |
    | tcp, 64 B | 10.6 µs | 9.75 µs – 12.3 µs (n=30) | same CPU (cpu 0) | `ipc.rtt.tcp.process.64.pinned` |
    | pool round trip to a thread-pool worker | 2.34 µs | 2.15 µs – 2.71 µs (n=30) | same CPU (cpu 0) | `ipc.pool_rtt.thread.pinned` |
    | pool round trip to a local process-pool worker | 4.13 µs | 3.80 µs – 4.79 µs (n=30) | same CPU (cpu 0) | `ipc.pool_rtt.process.pinned` |
    | pool round trip to a remote worker (loopback TCP) | 12.4 µs | 11.4 µs – 14.4 µs (n=30) | same CPU (cpu 0) | `ipc.pool_rtt.remote.pinned` |
    | remote worker / raw tcp 64 B round trip | 1.17× |  | same CPU (cpu 0) | `ipc.pool_rtt.remote_over_tcp.pinned` |
    | remote worker / local process-pool worker | 3.00× |  | same CPU (cpu 0) | `ipc.pool_rtt.remote_over_process.pinned` |
    | remote worker / thread-pool worker | 5.30× |  | same CPU (cpu 0) | `ipc.pool_rtt.remote_over_thread.pinned` |
    | tcp, 64 B | 11.7 µs | 10.7 µs – 13.5 µs (n=30) | unpinned | `ipc.rtt.tcp.process.64` |
    | pool round trip to a thread-pool worker | 2.48 µs | 2.28 µs – 2.88 µs (n=30) | unpinned | `ipc.pool_rtt.thread` |
    | pool round trip to a local process-pool worker | 4.45 µs | 4.09 µs – 5.16 µs (n=30) | unpinned | `ipc.pool_rtt.process` |
    | pool round trip to a remote worker (loopback TCP) | 12.2 µs | 11.2 µs – 14.2 µs (n=30) | unpinned | `ipc.pool_rtt.remote` |
    | remote worker / raw tcp 64 B round trip | 1.05× |  | unpinned | `ipc.pool_rtt.remote_over_tcp` |
    | remote worker / local process-pool worker | 2.74× |  | unpinned | `ipc.pool_rtt.remote_over_process` |
    | remote worker / thread-pool worker | 4.92× |  | unpinned | `ipc.pool_rtt.remote_over_thread` |

    **Round trip, p50 / p99**

    | transport | 64 B | 4 KiB | 64 KiB | 1 MiB |
    |---|---:|---:|---:|---:|
    | channel (threads) | 2.35 / 4.10 µs | 2.61 / 4.52 µs | 9.80 / 14.1 µs | 210 / 260 µs |
    | pipe | 9.80 / 21.3 µs | 11.2 / 24.0 µs | 48.0 / 71.5 µs | 720 / 910 µs |
    | unix socket | 11.2 / 23.9 µs | 12.0 / 25.1 µs | 41.3 / 60.2 µs | 650 / 820 µs |
    | shm ring (futex) | 3.10 / 6.20 µs | 3.40 / 6.60 µs | 12.9 / 19.0 µs | 240 / 300 µs |

    *Chart: Round trip against message size (drawn in the HTML report).*

    - TCP loopback and POSIX mq were not selected in this run.
    - Message sizes straddle 4 KiB (page), 64 KiB (pipe capacity) and the socket buffer.

    ## Resource usage (`memory`)

    **Failed:** reading /proc/4242/smaps\_rollup: Permission denied (os error 13)

    N idle workers (1, 10, 100) as processes and as threads; USS, PSS and RSS per worker from /proc/PID/smaps\_rollup. Took 380 ms.
    "#);
}

#[test]
fn json_round_trips() {
    let report = fixture::report();
    let out = json::render(&report).expect("the fixture serializes");
    let back: Report = serde_json::from_str(&out).expect("the JSON parses back");
    assert_eq!(back, report);
    let value: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(value["schema_version"], crate::report::SCHEMA_VERSION);
}

#[test]
fn html_is_self_contained() {
    let out = html::render(&fixture::report());
    for forbidden in [
        "http://", "https://", "<script", "@import", "url(", "<link", "<img", "//fonts",
    ] {
        assert!(!out.contains(forbidden), "HTML contains {forbidden:?}");
    }
}

#[test]
fn html_has_one_svg_per_chart_with_ids() {
    let report = fixture::report();
    let out = html::render(&report);
    assert_eq!(out.matches("<svg").count(), chart_count(&report));
    for s in &report.sections {
        assert_eq!(
            out.matches(&format!("<section id=\"{}\"", s.id)).count(),
            1,
            "one section for {}",
            s.id
        );
        for c in &s.charts {
            let id = format!("id=\"chart-{}-{}\"", s.id, c.id);
            assert_eq!(out.matches(&id).count(), 1, "{id}");
        }
    }
    assert_eq!(out.matches("<section").count(), report.sections.len());
}

#[test]
fn html_shows_headline_machine_claims_and_failure() {
    let report = fixture::report();
    let out = html::render(&report);
    let headline = out.find("id=\"comparison\"").expect("headline table");
    let first_section = out.find("<section").expect("sections");
    assert!(headline < first_section, "headline comes first");
    assert!(out.contains("AMD EPYC 7B13"));
    assert!(out.contains("virtualized (kvm)"));
    assert!(out.contains("class=\"experiment failed\""));
    assert!(out.contains("Permission denied"));
    for c in &report.claims {
        assert!(out.contains(&html::esc(&c.statement)), "claim {}", c.id);
    }
}

#[test]
fn html_escapes_text() {
    let mut report = fixture::report();
    report.sections[0].title = "<script>alert('x')</script> & co".to_string();
    report.sections[0].charts[0].title = "a <b> chart & \"more\"".to_string();
    let out = html::render(&report);
    assert!(!out.contains("<script>"));
    assert!(out.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; co"));
    assert!(!out.contains("<b> chart"));
}

fn chart(kind: ChartKind, x_log: bool, y_log: bool, series: Vec<Series>) -> Chart {
    Chart {
        id: "c".to_string(),
        title: "test chart".to_string(),
        kind,
        x_label: "x".to_string(),
        y_label: "y".to_string(),
        x_unit: crate::units::AxisUnit::Plain,
        y_unit: crate::units::AxisUnit::Plain,
        x_log,
        y_log,
        categories: vec!["a".to_string(), "b".to_string()],
        series,
    }
}

fn series(points: &[(f64, f64)]) -> Series {
    Series {
        name: "s".to_string(),
        points: points.to_vec(),
    }
}

#[test]
fn svg_log_axes_skip_non_positive_values() {
    let bad = series(&[
        (0.0, 1.0),
        (-3.0, 5.0),
        (10.0, 0.0),
        (100.0, -2.0),
        (1000.0, 40.0),
        (f64::NAN, 1.0),
    ]);
    for kind in [ChartKind::Line, ChartKind::Bar] {
        let out = svg::render(&chart(kind, true, true, vec![bad.clone()]));
        assert!(out.starts_with("<svg"), "{kind:?}: {out}");
        assert!(
            out.contains("not shown"),
            "{kind:?} says points were left out"
        );
    }
}

#[test]
fn svg_handles_empty_and_degenerate_charts() {
    let cases = [
        chart(ChartKind::Line, false, false, vec![]),
        chart(ChartKind::Line, true, true, vec![series(&[])]),
        chart(
            ChartKind::Line,
            true,
            true,
            vec![series(&[(0.0, 0.0), (-1.0, -1.0)])],
        ),
        chart(ChartKind::Line, false, false, vec![series(&[(1.0, 1.0)])]),
        chart(ChartKind::Bar, false, false, vec![]),
        chart(ChartKind::Bar, false, true, vec![series(&[(0.0, 0.0)])]),
        chart(
            ChartKind::Bar,
            false,
            false,
            vec![series(&[(7.0, 3.0), (0.0, -2.0)])],
        ),
        chart(
            ChartKind::Line,
            false,
            false,
            vec![series(&[(f64::INFINITY, 1.0), (1.0, f64::MAX)])],
        ),
        chart(
            ChartKind::Line,
            false,
            false,
            vec![series(&[(1.0, 1.0), (1.0 + 1e-15, 1e-300)])],
        ),
        chart(
            ChartKind::Line,
            true,
            true,
            vec![series(&[(1e-300, 1e-300), (2e-300, 1e90)])],
        ),
        chart(
            ChartKind::Bar,
            false,
            false,
            vec![series(&[(f64::NAN, 1.0), (-1.0, 1.0)])],
        ),
    ];
    for c in &cases {
        let out = svg::render(c);
        assert!(
            out.starts_with("<svg") && out.trim_end().ends_with("</svg>"),
            "{c:?}"
        );
    }
    assert!(svg::render(&cases[0]).contains("no data"));
}

#[test]
fn svg_draws_every_series() {
    let report = fixture::report();
    let ipc = &report.sections[2].charts[0];
    let out = svg::render(ipc);
    for s in &ipc.series {
        assert!(out.contains(&s.name), "legend names {}", s.name);
    }
    assert!(out.contains("<polyline"), "lines are drawn");
}

#[test]
fn dispatch_matches_the_renderers() {
    let report = fixture::report();
    assert_eq!(
        render(&report, Format::Markdown).unwrap(),
        markdown::render(&report)
    );
    assert_eq!(
        render(&report, Format::Html).unwrap(),
        html::render(&report)
    );
    assert_eq!(
        render(&report, Format::Table { color: false }).unwrap(),
        table::render(&report, false)
    );
    assert_eq!(
        render(&report, Format::Json).unwrap(),
        json::render(&report).unwrap()
    );
}

#[test]
#[ignore = "writes the fixture's HTML for a visual check"]
fn write_fixture_html() {
    let path = std::env::var("PROCTOR_FIXTURE_HTML").unwrap_or_else(|_| "report.html".to_string());
    std::fs::write(&path, html::render(&fixture::report())).expect("writable path");
    // The same page with every experiment's figures, for a full headline table.
    let mut full = fixture::report();
    full.sections = fixture::all_sections();
    (full.headline, full.claims) = crate::verdict::judge(&full.sections);
    std::fs::write(format!("{path}.full.html"), html::render(&full)).expect("writable path");
}

#[test]
#[ignore = "renders a report.json again as HTML, for a visual check of the renderer"]
fn rerender_report_json() {
    let Ok(json) = std::env::var("PROCTOR_REPORT_JSON") else {
        panic!("set PROCTOR_REPORT_JSON to the report.json to render");
    };
    let report: crate::report::Report =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("readable report.json"))
            .expect("a report.json of this schema");
    let out = std::path::Path::new(&json).with_extension("html");
    std::fs::write(&out, html::render(&report)).expect("writable folder");
}

#[test]
fn the_headline_explains_its_run_to_run_spread_in_every_format_when_it_shows_one() {
    let mut report = fixture::report();
    let plain = table::render(&report, false);
    assert!(!plain.contains("run-to-run"), "no rounds, no note");
    report.headline[0].thread_rounds = crate::report::Rounds::around(&[10.0, 11.0, 12.0], 11.0);
    for out in [markdown::render(&report), html::render(&report)] {
        assert!(
            out.contains(
                "run-to-run spread: each of 3 independent runs is within it of the median"
            ),
            "{out}"
        );
    }
    // The terminal says it in one line with the ratio's legend, to keep the answer a screen.
    let terminal = table::render(&report, false);
    assert!(
        terminal.contains(
            "ratio = process / thread · ± = spread of 3 independent runs around the median"
        ),
        "{terminal}"
    );
}

#[test]
fn an_axis_unit_is_data_and_its_ticks_are_written_in_a_readable_unit() {
    use crate::units::AxisUnit;
    let mut c = chart(
        ChartKind::Line,
        false,
        false,
        vec![series(&[(1.0, 250_000.0), (2.0, 750_000.0)])],
    );
    c.x_label = "footprint per side".to_string();
    c.y_label = "time per switch".to_string();
    c.x_unit = AxisUnit::Kib;
    c.y_unit = AxisUnit::Ns;
    let out = svg::render(&c);
    let texts = |class: &str| -> Vec<String> {
        out.split(&format!("class=\"{class}\""))
            .skip(1)
            .filter_map(|rest| {
                let body = &rest[rest.find('>')? + 1..];
                Some(body[..body.find('<')?].trim().to_string())
            })
            .collect()
    };
    let y_ticks = texts("tick-y");
    assert!(
        y_ticks.iter().any(|t| t.ends_with(" µs")) && y_ticks.iter().all(|t| !t.ends_with(" ns")),
        "nanoseconds in the hundreds of thousands read as µs: {y_ticks:?}"
    );
    let x_ticks = texts("tick-x");
    assert!(
        x_ticks.iter().any(|t| t.ends_with(" KiB")),
        "one KiB per data unit: {x_ticks:?}"
    );
    let labels = texts("axis-label");
    assert!(
        labels.iter().any(|l| l == "time per switch"),
        "the label is shown as given: {labels:?}"
    );

    // In JSON a unit is a field of its own, left out when the axis is plain; a report written
    // before units were fields still loads, with plain axes.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["y_unit"], "ns");
    assert_eq!(json["x_unit"], "kib");
    let plain = serde_json::to_value(chart(ChartKind::Bar, false, false, vec![])).unwrap();
    assert!(plain.get("x_unit").is_none() && plain.get("y_unit").is_none());
    let mut old = json.clone();
    let fields = old.as_object_mut().unwrap();
    fields.remove("x_unit");
    fields.remove("y_unit");
    let back: Chart = serde_json::from_value(old).unwrap();
    assert_eq!(back.y_unit, AxisUnit::Plain);
}

#[test]
fn every_line_of_the_terminal_answer_fits_the_terminal() {
    let mut report = fixture::report();
    report.machine.cpu_model =
        "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz with a long name".into();
    report.command_line = format!(
        "proctor report --profile quick --out {}",
        "/home/someone/projects/proctor-runs/2026-12-07".repeat(3)
    );
    report.machine.warnings.push(
        "running under a hypervisor (KVM): timings include VM exits and may shift between runs; \
         compare ratios, not absolute figures"
            .into(),
    );
    for width in [60u16, 80, 100] {
        let options = table::TableOptions {
            color: false,
            width,
            verbose: false,
        };
        let out = table::render_with(&report, options);
        for line in out.lines() {
            let shown = textwrap::core::display_width(line);
            assert!(
                shown <= usize::from(width),
                "{shown} > {width} columns: {line:?}"
            );
        }
    }
    // Wrapped text keeps every word, and a path longer than a line is broken, not lost.
    let wrapped = table::wrap(&report.command_line, 40, 2);
    let words: String = report.command_line.split_whitespace().collect();
    let back: String = wrapped.split_whitespace().collect();
    assert_eq!(back, words);
}

#[test]
fn published_figures_are_drawn_beside_ours_in_every_format() {
    use crate::report::{Published, Unit};
    let mut report = fixture::report();
    let spawn = report
        .sections
        .iter_mut()
        .find(|s| s.figure("spawn.thread").is_some())
        .expect("the fixture has a spawn section");
    let ours = spawn.figure("spawn.thread").expect("figure").value;
    spawn.published.push(Published::new(
        "spawn.thread",
        "pthread_create + join",
        ours / 2.0,
        Unit::Ns,
        "Source 2018, table 1",
        "Example CPU 3.0 GHz",
    ));
    let verbose = table::render_with(
        &report,
        table::TableOptions {
            color: false,
            width: 200,
            verbose: true,
        },
    );
    for out in [verbose, markdown::render(&report), html::render(&report)] {
        assert!(out.contains("pthread_create + join"), "{out}");
        assert!(out.contains("Source 2018, table 1; Example CPU 3.0 GHz"));
        assert!(
            out.contains("2.00×"),
            "ours / theirs is ours over the published figure"
        );
    }
    let json = serde_json::to_string(&report).expect("serializes");
    let back: Report = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, report);
    let plain = serde_json::to_string(&fixture::report()).expect("serializes");
    assert!(
        !plain.contains("\"published\""),
        "left out of the JSON when empty"
    );
}

#[test]
fn a_level_shift_and_interference_are_noted_under_their_section() {
    let mut report = fixture::report();
    let s = &mut report.sections[0];
    let key = s.figures[0].key.clone();
    s.figures[0].batches = vec![10.0, 10.1, 9.9, 10.0, 10.2, 15.0, 15.1, 14.9, 15.2, 15.0];
    s.conditions = Some(
        crate::conditions::Conditions::between(Default::default(), Default::default())
            .with_interference_for_tests(40),
    );
    let notes = s.all_notes();
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with(&format!("{key} shifted level"))),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("machine state meanwhile: others 40 %"))
    );
    assert!(notes.iter().any(|n| n.contains("not decided here")));
    let md = markdown::render(&report);
    assert!(md.contains("shifted level between its batches"));
}
