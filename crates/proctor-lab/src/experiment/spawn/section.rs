//! The spawn section, from the measured rows: the method, every method's figures, the ratios,
//! the table, the chart and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a spawn run: every method's figures, the ratios, the table, the chart and the
/// notes, in the order the report shows them.
pub(super) fn section(plan: &Plan, rows: &[Row]) -> Section {
    let mut s = Section::new("spawn", "Creation overhead", &method(plan));
    row_figures(&mut s, rows);
    ratio_figures(&mut s);
    s.tables.push(rss_table(rows));
    s.charts.push(rss_chart(rows));
    notes(&mut s, rows);
    s.set_data(rows);
    s
}

/// What the section measured and how, with the run's settings.
fn method(plan: &Plan) -> String {
    format!(
        "One op = create + first instruction + exit + reap: the interval starts before the create \
         call and ends when join/waitpid/.await returns, and the reap checks the child ran (join value \
         or exit status 0). Thread: std::thread::spawn + join. Fork: fork, the child calls _exit(0), \
         the parent waitpid()s. posix_spawn: {TRUE_PATH} with an empty environment, then waitpid. \
         Tokio: tokio::spawn + .await on a current-thread runtime. Pool worker: \
         proctor::Pool::processes(1).build(), submit(trivial fn).join(), drop (kills and reaps the \
         worker); the worker is forked by the pool's fork server, not by this parent; with \
         StartMethod::Exec it then re-executes this binary (a fresh address space). Remote worker: the \
         same with .remote(Remote::command(\"exec {{exe}}\", [\"localhost\"])) listening on 127.0.0.1: \
         /bin/sh -c execs this binary, which becomes an agent in proctor::init(), connects back over \
         loopback TCP with an HMAC challenge-response and forks the worker, which connects and \
         authenticates on its own; the drop closes the connections and waits for the launched \
         process to exit. Its time from the start of build() to the first result (no drop) is \
         reported apart, per op of the timestamped batches. The parent first allocates and \
         touches a ballast of the given size (rule 6). Figure = median over {} batches of the batch \
         mean (batches calibrated to >= {} ms after {} warm-up batches); spread = per-op times \
         where the timer is cheap enough (taken in batches of their own: the figure's batches are \
         timed whole); outliers by modified Z-score > 3.5, kept. When other load preempts the \
         measurement, the batch means absorb the preemption and the figure can sit above the \
         per-op p99. The first op \
         of each kind is reported apart as the cold start. Unpinned. Thread, fork and async at the \
         smallest parent: the figure is the median of 3 independent rounds, each measured as \
         above, with the rounds' run-to-run spread.",
        plan.batches,
        plan.min_batch.as_secs_f64() * 1e3,
        plan.warmup_batches,
    )
}

/// Every method and parent size: the creation cost, its cold start and, for the remote
/// worker, the first result.
fn row_figures(s: &mut Section, rows: &[Row]) {
    for r in rows {
        let base = format!("spawn.{}", r.method.key());
        if let (0, Some(first)) = (r.ballast_bytes, r.first_result_ns) {
            s.figures.push(
                Figure::new(
                    &format!("{base}.first_result"),
                    &format!(
                        "{} (build to first result, drop not timed)",
                        r.method.label()
                    ),
                    first.median,
                    Unit::Ns,
                )
                .with_spread(first.spread())
                .placed("unpinned"),
            );
        }
        if r.ballast_bytes == 0 {
            s.figures.push(
                r.measurement
                    .figure(&base, r.method.label())
                    .with_rounds(&r.rounds_ns)
                    .placed("unpinned"),
            );
            s.figures.push(
                Figure::new(
                    &format!("{base}.cold"),
                    &format!("{} (cold start, first op)", r.method.label()),
                    r.measurement.cold_ns,
                    Unit::Ns,
                )
                .placed("unpinned"),
            );
        } else {
            let mib = r.ballast_bytes / MIB;
            s.figures.push(
                r.measurement
                    .figure(
                        &format!("{base}.rss_{mib}mib"),
                        &format!("{} with a {mib} MiB parent", r.method.label()),
                    )
                    .placed("unpinned"),
            );
        }
    }
}

/// The classic ratios between methods, where both figures were measured.
fn ratio_figures(s: &mut Section) {
    let ratio = |a: &str, b: &str| -> Option<f64> { Some(s.figure(a)?.value / s.figure(b)?.value) };
    let ratios: Vec<Figure> = [
        (
            "spawn.fork_over_thread",
            "fork / thread spawn (small parent)",
            keys::SPAWN_FORK,
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.posix_spawn_over_thread",
            "posix_spawn / thread spawn",
            "spawn.posix_spawn",
            keys::SPAWN_THREAD,
        ),
        (
            "spawn.thread_over_async",
            "thread spawn / tokio task",
            keys::SPAWN_THREAD,
            keys::SPAWN_ASYNC,
        ),
        (
            "spawn.pool_worker_over_fork",
            "pool worker (fork server) / fork (small parent)",
            keys::SPAWN_POOL_WORKER,
            keys::SPAWN_FORK,
        ),
        (
            "spawn.pool_exec_over_pool_worker",
            "pool worker re-executing the binary / forked pool worker",
            "spawn.pool_exec",
            keys::SPAWN_POOL_WORKER,
        ),
        (
            "spawn.pool_remote_over_pool_worker",
            "remote worker (command launcher, loopback) / forked pool worker",
            keys::SPAWN_POOL_REMOTE,
            keys::SPAWN_POOL_WORKER,
        ),
        (
            "spawn.pool_remote_over_pool_exec",
            "remote worker (command launcher, loopback) / pool worker re-executing the binary",
            keys::SPAWN_POOL_REMOTE,
            "spawn.pool_exec",
        ),
    ]
    .into_iter()
    .filter_map(|(k, l, a, b)| Some(Figure::new(k, l, ratio(a, b)?, Unit::Ratio)))
    .collect();
    s.figures.extend(ratios);
}

/// The creation cost against the parent's resident memory, every row.
fn rss_table(rows: &[Row]) -> Table {
    Table {
        title: "Creation cost against the parent's resident memory".into(),
        columns: [
            "method",
            "ballast",
            "parent RSS",
            "median",
            "p1",
            "p99",
            "cold start",
            "outliers",
        ]
        .map(String::from)
        .to_vec(),
        rows: rows
            .iter()
            .map(|r| {
                let sum = r.measurement.summary();
                vec![
                    r.method.label().to_string(),
                    format!("{} MiB", r.ballast_bytes / MIB),
                    format!("{:.0} MiB", r.parent_rss_bytes as f64 / MIB as f64),
                    micros(r.measurement.value(), 1),
                    micros(sum.p1, 1),
                    micros(sum.p99, 1),
                    micros(r.measurement.cold_ns, 1),
                    format!("{}/{}", sum.outliers, sum.samples),
                ]
            })
            .collect(),
    }
}

/// The creation cost against the parent's RSS, per method.
fn rss_chart(rows: &[Row]) -> Chart {
    let series = RSS_METHODS
        .iter()
        .filter(|&&m| rows.iter().any(|r| r.method == m))
        .map(|&m| Series {
            name: m.label().to_string(),
            points: rows
                .iter()
                .filter(|r| r.method == m)
                .map(|r| {
                    (
                        r.parent_rss_bytes as f64 / MIB as f64,
                        r.measurement.value(),
                    )
                })
                .collect(),
        })
        .collect();
    Chart {
        id: "cost-vs-rss".into(),
        title: "Creation cost against parent RSS".into(),
        kind: ChartKind::Line,
        x_label: "parent RSS".into(),
        y_label: "time per create + exit + reap".into(),
        x_unit: AxisUnit::Mib,
        y_unit: AxisUnit::Ns,
        x_log: false,
        y_log: true,
        categories: Vec::new(),
        series,
    }
}

/// How fork grows with the parent, and what the remote start includes.
fn notes(s: &mut Section, rows: &[Row]) {
    let fork_small = rows
        .iter()
        .find(|r| r.method == Method::Fork && r.ballast_bytes == 0);
    let fork_big = rows
        .iter()
        .filter(|r| r.method == Method::Fork && r.ballast_bytes > 0)
        .max_by_key(|r| r.ballast_bytes);
    if let (Some(small), Some(big)) = (fork_small, fork_big) {
        s.notes.push(format!(
            "fork grows with the parent: {} at {:.0} MiB RSS vs {} at {:.0} MiB ({:.1}x)",
            micros(big.measurement.value(), 1),
            big.parent_rss_bytes as f64 / MIB as f64,
            micros(small.measurement.value(), 1),
            small.parent_rss_bytes as f64 / MIB as f64,
            big.measurement.value() / small.measurement.value(),
        ));
    }
    if let Some(note) = remote_note(s) {
        s.notes.push(note);
    }
}

/// What the remote-worker row says beside the local pool rows, when it was measured.
fn remote_note(s: &Section) -> Option<String> {
    let value = |k: &str| s.figure(k).map(|f| f.value);
    let whole = value(keys::SPAWN_POOL_REMOTE)?;
    let mut text = format!(
        "remote worker through the command launcher (/bin/sh -c exec, loopback TCP, small \
         parent): {} with the drop",
        micros(whole, 1)
    );
    if let Some(first) = value("spawn.pool_remote.first_result") {
        text.push_str(&format!(", {} to the first result", micros(first, 1)));
    }
    for (key, what) in [
        (keys::SPAWN_POOL_WORKER, "the forked pool worker"),
        ("spawn.pool_exec", "the exec'd pool worker"),
    ] {
        if let Some(v) = value(key) {
            text.push_str(&format!("; {what} {} ({:.1}x)", micros(v, 1), whole / v));
        }
    }
    text.push_str(
        ". The remote start adds to an exec'd worker a shell, the agent's and the worker's TCP \
         connections and handshakes, and the drop waits for the launched process to exit. All of it is on this host, so it is a \
         lower bound: ssh \
         (a connection, key exchange and a remote shell) and srun (a job step) add their own \
         start cost before the agent runs, and a real network adds its round trips to each \
         handshake, none of which is measured here",
    );
    Some(text)
}
