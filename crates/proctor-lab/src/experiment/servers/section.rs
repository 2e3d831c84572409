//! The servers section: figures, tables, the chart and the notes, from a [`ServersResult`].

use super::*;
use crate::report::{Chart, ChartKind, CrossCheck, Figure, Series, Table, Unit};
use crate::units::AxisUnit;
use crate::verdict::keys;

/// The section of a servers run, in the order the report shows it: figures, tables, chart, notes.
pub(super) fn section_from(r: &ServersResult, s: &Settings) -> Section {
    let mut section = Section::new(
        "servers",
        "Servers: prefork vs threaded vs async",
        &method(r, s),
    );
    section.figures.push(Figure::new(
        "servers.cpu_work",
        "one /cpu hashing, measured in the lab",
        r.cpu_ns,
        Unit::Ns,
    ));
    cell_figures(&mut section, r);
    model_notes(&mut section, r);
    crash_figures(&mut section, r);
    leak_figures(&mut section, r);
    section.figures.push(Figure::new(
        "servers.processes_left",
        "server processes left after the experiment",
        r.processes_left as f64,
        Unit::Count,
    ));
    wrk_check(&mut section, r);
    section.tables.push(load_table(r, s));
    section.tables.push(crash_table(r));
    section.tables.push(leak_table(r));
    section.charts.push(throughput_chart(r));
    limit_notes(&mut section, r);
    section.set_data(r);
    section
}

/// Where the load figures were taken: the servers and the generator share the CPUs.
const PLACEMENT: &str = "unpinned, generator and server on the same CPUs";

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A latency cell in whole microseconds, `-` when there is none.
fn us(ns: f64) -> String {
    if ns.is_finite() {
        format!("{:.0}", ns / 1e3)
    } else {
        "-".to_string()
    }
}

/// A memory cell in MiB with one decimal.
fn mib(b: f64) -> String {
    format!("{:.1}", b / 1048576.0)
}

/// What the section measured and how, with the run's settings.
fn method(r: &ServersResult, s: &Settings) -> String {
    format!(
        "Three HTTP/1.1 keep-alive servers with one handler (httparse; /cpu: {} rounds of \
             SipHash, calibrated to ~50 µs, measured {:.1} µs; /io: a 5 ms wait; /mixed: the \
             hashing then a 1 ms wait; a blocking worker sleeps its thread, the async server \
             awaits a tokio timer), each a child process forked from the lab on a loopback port: \
             prefork (a master forks one worker process per connection plus two spare, each \
             accepting on the shared socket and serving one connection at a time, and forks \
             again any worker that ends; the load starts once every worker is up), threaded (as many threads, accepting the same way) and \
             async (tokio, {} worker threads, one task per connection). The lab's generator \
             (tokio, 2 threads) keeps N connections busy in a closed loop: {:.0} ms warm-up, then \
             {:.0} ms measured; requests/s = replies that started and ended in the window / the \
             window; latency from the request's first byte written to the reply's last byte \
             read (hdrhistogram, 3 significant digits; closed loop, so a stalled server delays \
             the next request instead of adding to its latency). The /cpu, {CRASH_CONNECTIONS}-connection \
             cell runs {} independent rounds, each on a fresh server. PSS and USS are summed \
             over the server's processes (/proc/PID/smaps_rollup) at the end of the cell; PSS \
             includes the server's share of the pages it still shares with the lab it was \
             forked from, so USS is the server's own memory. \
             Crash: while {CRASH_CONNECTIONS} connections load /cpu for {:.0} ms, at {:.0} ms one more \
             client requests /crash, whose handler writes through an invalid pointer \
             (SIGSEGV); then new connections are tried every 1 ms until one is served: the time \
             from the crashing connection's end to that reply is the recovery. Leak: {} \
             sequential /leak requests (1 MiB each, touched) on fresh connections, against \
             two workers (prefork: recycled after {} requests; threaded), or async; held = \
             growth of the summed USS (private pages: the shared pages a fork leaves move PSS \
             between the lab and the server's processes). Unpinned: the servers and the generator share the CPUs. \
             Every server is stopped (SIGTERM; its master kills and reaps its workers) and \
             reaped at the end.",
        r.cpu_iters,
        r.cpu_ns / 1e3,
        r.cpus,
        ms(s.warmup),
        ms(s.measure),
        s.rounds,
        ms(s.crash_run),
        ms(s.crash_at),
        s.leak_requests,
        r.recycle_after,
    )
}

/// Requests/s, p99 latency and errors of every cell, and the memory of the /cpu ones.
fn cell_figures(section: &mut Section, r: &ServersResult) {
    for c in &r.cells {
        let id = format!("{}.{}.{}", c.model, c.handler, c.connections);
        let what = format!("{}, /{}, {} connections", c.model, c.handler, c.connections);
        section.figures.push(
            Figure::new(
                &format!("servers.rps.{id}"),
                &format!("requests/s, {what}"),
                c.rps,
                Unit::PerSec,
            )
            .with_rounds(&c.rounds_rps)
            .placed(PLACEMENT),
        );
        section.figures.push(
            Figure::new(
                &format!("servers.p99.{id}"),
                &format!("p99 latency, {what}"),
                c.p99_ns,
                Unit::Ns,
            )
            .placed(PLACEMENT),
        );
        section.figures.push(Figure::new(
            &format!("servers.errors.{id}"),
            &format!("errors, {what}"),
            c.errors as f64,
            Unit::Count,
        ));
        if c.handler == "cpu" {
            section.figures.push(Figure::new(
                &format!("servers.pss.{}.{}", c.model, c.connections),
                &format!(
                    "server PSS after /cpu load, {} with {} connections",
                    c.model, c.connections
                ),
                c.pss_bytes,
                Unit::Bytes,
            ));
        }
    }
}

/// Prefork against threaded, and async against threaded, with a note where they differ.
fn model_notes(section: &mut Section, r: &ServersResult) {
    let rps = |model: &str| {
        r.cells
            .iter()
            .find(|c| c.model == model && c.handler == "cpu" && c.connections == CRASH_CONNECTIONS)
            .map(|c| c.rps)
    };
    if let (Some(p), Some(t)) = (rps("prefork"), rps("threaded")) {
        section.figures.push(Figure::new(
            "servers.prefork_over_threaded",
            &format!("prefork / threaded requests/s, /cpu, {CRASH_CONNECTIONS} connections"),
            p / t,
            Unit::Ratio,
        ));
        if !(1.0 / 1.2..=1.2).contains(&(p / t)) {
            section.notes.push(format!(
                "Prefork and threaded differ by more than 20 % on /cpu at {CRASH_CONNECTIONS} \
                 connections ({:.0} vs {:.0} requests/s). Both run the same handler and reply \
                 code and are CPU-bound here; with the generator on the same {} CPUs, the \
                 difference is in what each model costs the scheduler and the memory system: \
                 {} processes with their own page tables (a TLB flush on every switch between \
                 them) against {} threads of one address space.",
                p,
                t,
                r.cpus,
                CRASH_CONNECTIONS + 2,
                CRASH_CONNECTIONS + 2
            ));
        }
    }
    if let (Some(a), Some(t)) = (rps("async"), rps("threaded"))
        && a < 0.8 * t
    {
        section.notes.push(format!(
            "The async server served {:.0} % of the threaded server's requests/s on /cpu at \
             {CRASH_CONNECTIONS} connections. It runs the CPU-bound handler on {} worker threads \
             against {} threads or processes in the blocking models, with the generator on the \
             same CPUs: the scheduler shares CPU time per thread, and a task hashing for 50 µs \
             holds its worker thread, which meanwhile polls no other connection. Tokio's own \
             advice for CPU-bound work is to move it off the runtime (spawn_blocking or a \
             thread pool); this server deliberately does not.",
            100.0 * a / t,
            r.cpus,
            CRASH_CONNECTIONS + 2
        ));
    }
}

/// What a handler crash did to each model.
fn crash_figures(section: &mut Section, r: &ServersResult) {
    for c in &r.crashes {
        let m = c.model;
        section.figures.push(Figure::new(
            &format!("servers.crash.kept_serving.{m}"),
            &format!("{m} served a new connection after a handler crash (1 yes, 0 no)"),
            if c.kept_serving { 1.0 } else { 0.0 },
            Unit::Count,
        ));
        if let Some(ns) = c.recovery_ns {
            section.figures.push(Figure::new(
                &format!("servers.crash.recovery.{m}"),
                &format!("{m}: crash until a new connection was served"),
                ns,
                Unit::Ns,
            ));
        }
        section.figures.push(Figure::new(
            &format!("servers.crash.lost.{m}"),
            &format!("{m}: requests the other {CRASH_CONNECTIONS} clients lost to the crash"),
            c.lost as f64,
            Unit::Count,
        ));
        section.figures.push(Figure::new(
            &format!("servers.crash.refused.{m}"),
            &format!("{m}: failed connection attempts of the other clients after the crash"),
            c.refused as f64,
            Unit::Count,
        ));
    }
    if let Some(c) = r.crashes.iter().find(|c| c.model == "prefork") {
        section.figures.push(Figure::new(
            "servers.crash.restarts.prefork",
            "prefork: workers the master forked again after the crash",
            c.restarts as f64,
            Unit::Count,
        ));
    }
}

/// What a leaking handler left behind in each model.
fn leak_figures(section: &mut Section, r: &ServersResult) {
    if let Some(l) = r.leaks.first() {
        section.figures.push(Figure::new(
            keys::SERVERS_LEAK_LEAKED,
            "memory the /leak requests leaked in all",
            l.leaked_bytes,
            Unit::Bytes,
        ));
    }
    for l in &r.leaks {
        section.figures.push(
            Figure::new(
                &format!("servers.leak.held.{}", l.model),
                &format!("{}: server USS growth over the leak", l.model),
                l.held_bytes,
                Unit::Bytes,
            )
            // PSS moves by shared pages as workers come and go: less than one leaked request's
            // worth cannot be told from nothing.
            .with_resolution(http::LEAK_BYTES as f64),
        );
    }
}

/// Our generator against wrk on the same server, or why wrk did not run.
fn wrk_check(section: &mut Section, r: &ServersResult) {
    match &r.wrk {
        Some(w) => {
            section.figures.push(
                Figure::new(
                    "servers.wrk.ours",
                    "our generator, threaded /cpu, 16 connections",
                    w.ours_rps,
                    Unit::PerSec,
                )
                .placed(PLACEMENT),
            );
            if let Some(theirs) = w.wrk_rps {
                section.figures.push(Figure::new(
                    "servers.wrk.ours_over_wrk",
                    "our generator's requests/s / wrk's, same server",
                    w.ours_rps / theirs,
                    Unit::Ratio,
                ));
                if w.ours_rps < 0.8 * theirs {
                    section.notes.push(format!(
                        "Our generator reached {:.0} % of wrk's requests/s: below 80 %, so the \
                         generator, not the server, may limit the figures above.",
                        100.0 * w.ours_rps / theirs
                    ));
                }
            }
            let mut check: CrossCheck = crate::crosscheck::compare(
                "wrk",
                "servers.wrk.ours",
                Some(w.ours_rps),
                crate::crosscheck::ToolRun {
                    command: w.command.clone(),
                    result: w
                        .wrk_rps
                        .ok_or_else(|| w.why_not.clone().unwrap_or_default()),
                },
                Unit::PerSec,
            );
            if check.note.is_none() && w.wrk_rps.is_some() {
                check.note = Some(
                    "run one after the other against the same threaded server; wrk's figure \
                     covers its whole run"
                        .to_string(),
                );
            }
            section.cross_checks.push(check);
        }
        None => section
            .notes
            .push("wrk is not run in this profile: no cross-check of the generator.".to_string()),
    }
}

/// Every cell under load.
fn load_table(r: &ServersResult, s: &Settings) -> Table {
    Table {
        title: format!(
            "Under load: {:.0} ms per cell (median of {} rounds for /cpu at {CRASH_CONNECTIONS})",
            ms(s.measure),
            s.rounds
        ),
        columns: [
            "handler",
            "connections",
            "model",
            "workers",
            "requests/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "errors",
            "PSS MiB",
            "USS MiB",
            "processes",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .cells
            .iter()
            .map(|c| {
                vec![
                    format!("/{}", c.handler),
                    c.connections.to_string(),
                    c.model.to_string(),
                    c.workers.to_string(),
                    format!("{:.0}", c.rps),
                    us(c.p50_ns),
                    us(c.p99_ns),
                    us(c.p999_ns),
                    c.errors.to_string(),
                    mib(c.pss_bytes),
                    mib(c.uss_bytes),
                    c.processes.to_string(),
                ]
            })
            .collect(),
    }
}

/// The handler crash, per model.
fn crash_table(r: &ServersResult) -> Table {
    Table {
        title: format!("A handler crash under {CRASH_CONNECTIONS} connections"),
        columns: [
            "model",
            "kept serving",
            "served again after ms",
            "requests lost",
            "refused connects",
            "replies after",
            "workers restarted",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .crashes
            .iter()
            .map(|c| {
                vec![
                    c.model.to_string(),
                    if c.kept_serving { "yes" } else { "no" }.to_string(),
                    c.recovery_ns
                        .map_or("never".to_string(), |ns| format!("{:.2}", ns / 1e6)),
                    c.lost.to_string(),
                    c.refused.to_string(),
                    c.ok_after.to_string(),
                    c.restarts.to_string(),
                ]
            })
            .collect(),
    }
}

/// The leaking handler, per model.
fn leak_table(r: &ServersResult) -> Table {
    Table {
        title: "A leaking handler (1 MiB per request)".to_string(),
        columns: [
            "model",
            "requests",
            "leaked MiB",
            "held MiB",
            "workers recycled",
        ]
        .map(String::from)
        .to_vec(),
        rows: r
            .leaks
            .iter()
            .map(|l| {
                vec![
                    l.model.to_string(),
                    l.served.to_string(),
                    mib(l.leaked_bytes),
                    if l.held_bytes < http::LEAK_BYTES as f64 {
                        "< 1.0".to_string()
                    } else {
                        mib(l.held_bytes)
                    },
                    l.restarts.to_string(),
                ]
            })
            .collect(),
    }
}

/// Requests/s of the /cpu handler per connection count, one series per model.
fn throughput_chart(r: &ServersResult) -> Chart {
    let conns: Vec<usize> = {
        let mut v: Vec<usize> = r.cells.iter().map(|c| c.connections).collect();
        v.dedup();
        v.sort_unstable();
        v.dedup();
        v
    };
    Chart {
        id: "throughput".to_string(),
        title: "Requests/s, /cpu handler".to_string(),
        kind: ChartKind::Bar,
        x_label: "connections".to_string(),
        y_label: "requests/s".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Plain,
        x_log: false,
        y_log: false,
        categories: conns.iter().map(|c| c.to_string()).collect(),
        series: Model::ALL
            .iter()
            .map(|m| Series {
                name: m.key().to_string(),
                points: conns
                    .iter()
                    .enumerate()
                    .filter_map(|(i, &n)| {
                        let c = r.cells.iter().find(|c| {
                            c.model == m.key() && c.handler == "cpu" && c.connections == n
                        })?;
                        Some((i as f64, c.rps))
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// Connection counts the limits skipped, and server processes that outlived the experiment.
fn limit_notes(section: &mut Section, r: &ServersResult) {
    if !r.skipped.is_empty() {
        section.notes.push(format!(
            "Skipped {:?} connections: the limits leave too little room for one worker per \
             connection.",
            r.skipped
        ));
    }
    if r.processes_left > 0 {
        section.notes.push(format!(
            "{} server process groups still had a process at the end.",
            r.processes_left
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(model: &'static str, rps: f64) -> Cell {
        Cell {
            model,
            handler: "cpu",
            connections: CRASH_CONNECTIONS,
            workers: 18,
            rounds_rps: vec![rps],
            rps,
            ok: 1000,
            errors: 0,
            p50_ns: 500e3,
            p99_ns: 2e6,
            p999_ns: 8e6,
            pss_bytes: 4e6,
            uss_bytes: 1e6,
            processes: 1,
        }
    }

    fn result(prefork: f64, threaded: f64, wrk: Option<WrkRun>) -> ServersResult {
        ServersResult {
            cpus: 2,
            cpu_iters: 1000,
            cpu_ns: 50e3,
            cells: vec![
                cell("prefork", prefork),
                cell("threaded", threaded),
                cell("async", threaded),
            ],
            skipped: Vec::new(),
            crashes: Vec::new(),
            leaks: Vec::new(),
            recycle_after: 4,
            wrk,
            processes_left: 0,
            server_pids: Vec::new(),
        }
    }

    fn has_note(s: &Section, words: &str) -> bool {
        s.notes.iter().any(|n| n.contains(words))
    }

    #[test]
    fn the_section_says_why_when_prefork_and_threaded_differ_and_when_wrk_is_faster() {
        let close = section_from(&result(23_000.0, 22_000.0, None), &settings(Profile::Quick));
        assert!(!has_note(&close, "differ by more than 20 %"));
        assert!(has_note(&close, "wrk is not run"), "{:?}", close.notes);
        let ratio = close
            .figure("servers.prefork_over_threaded")
            .expect("ratio");
        assert!((ratio.value - 23.0 / 22.0).abs() < 1e-9);

        let wrk = WrkRun {
            command: "wrk -t2 -c16 -d1s http://127.0.0.1:1/cpu".to_string(),
            wrk_rps: Some(30_000.0),
            why_not: None,
            ours_rps: 21_000.0,
        };
        let apart = section_from(
            &result(30_000.0, 20_000.0, Some(wrk)),
            &settings(Profile::Quick),
        );
        assert!(
            has_note(&apart, "differ by more than 20 %"),
            "{:?}",
            apart.notes
        );
        assert!(has_note(&apart, "below 80 %"), "{:?}", apart.notes);
        let ours = apart.figure("servers.wrk.ours_over_wrk").expect("ratio");
        assert!((ours.value - 0.7).abs() < 1e-9);
        assert_eq!(apart.cross_checks.len(), 1);
        assert_eq!(apart.cross_checks[0].theirs, Some(30_000.0));

        let missing = WrkRun {
            command: "wrk -t2 -c16 -d1s http://127.0.0.1:1/cpu".to_string(),
            wrk_rps: None,
            why_not: Some("wrk is not installed (Debian package `wrk`)".to_string()),
            ours_rps: 21_000.0,
        };
        let none = section_from(&result(1.0, 1.0, Some(missing)), &settings(Profile::Quick));
        assert!(
            none.figure("servers.wrk.ours_over_wrk").is_none(),
            "no made-up ratio"
        );
        assert_eq!(none.cross_checks[0].theirs, None);
        assert!(
            none.cross_checks[0]
                .note
                .as_deref()
                .is_some_and(|n| n.contains("not installed"))
        );
    }

    #[test]
    fn wrks_requests_per_second_are_read_from_its_summary() {
        let out = "Running 1s test @ http://127.0.0.1:4000/cpu\n  2 threads and 16 connections\n\
                   \x20 Thread Stats   Avg      Stdev     Max   +/- Stdev\n\
                   \x20   Latency   690.12us  300.01us   5.00ms   80.00%\n\
                   \x20 23861 requests in 1.00s, 2.30MB read\n\
                   Requests/sec:  23861.63\nTransfer/sec:      2.30MB\n";
        assert_eq!(
            crate::crosscheck::parse_wrk_requests_per_sec(out),
            Some(23861.63)
        );
        assert_eq!(
            crate::crosscheck::parse_wrk_requests_per_sec("no summary"),
            None
        );
    }
}
