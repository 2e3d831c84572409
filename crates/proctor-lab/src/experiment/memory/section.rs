//! The memory section, from a [`MemoryResult`]: the method, the figures per worker and task,
//! the table, the chart and the notes.

use super::*;
use crate::units::AxisUnit;

/// The section of a memory run: the figures per worker and task, the table, the chart and the
/// notes, in the order the report shows them.
pub(super) fn section_from(result: &MemoryResult) -> Section {
    let mut section = Section::new("memory", "Memory per worker", &method(result));
    worker_figures(&mut section, result);
    overhead_figures(&mut section, result);
    section.tables.push(overhead_table(result));
    section.tables.push(worker_table(result));
    section.charts.push(per_worker_chart(result));
    notes(&mut section, result);
    section.set_data(result);
    section
}

/// What the section measured and how, with the run's settings.
fn method(result: &MemoryResult) -> String {
    let ws_kib = result.working_set_bytes / 1024;
    format!(
        "N idle workers each write a {ws_kib} KiB working set, report ready over a pipe and \
             block reading another. Processes are forked children writing their copy of a buffer \
             the parent allocated (so those pages are copied on write); the figures are the sum \
             over the children of /proc/PID/smaps_rollup (Rss, Pss, Private_Clean+Private_Dirty = \
             USS) and VmPTE, divided by N. Threads write their own {ws_kib} KiB, each in a fresh \
             mmap (pages new to the process, not ones malloc kept from an ended thread); the \
             figures are this process's growth divided by N. Async tasks are tokio tasks on a \
             current-thread runtime, each parked on a oneshot receiver with no working set of its \
             own; figures are the process's growth per task. Kernel stacks are the growth of \
             KernelStack in /proc/meminfo, which is system-wide (16 KiB per thread assumed where it \
             cannot be read or did not grow, and said so). Before the threads, {drain} threads are parked so \
             that glibc's cache of exited threads' stacks is taken and every measured thread gets \
             a fresh stack. Sampled once, after every worker said it was ready; every child is \
             killed and reaped, every thread joined. Overhead per worker = USS - the {ws_kib} KiB \
             working set + page tables + kernel stack (the last two are kernel memory, outside \
             USS); the PSS overhead is the same with PSS. Overhead at {headline} workers: the \
             median of 3 independent rounds (fresh workers each), with the rounds' run-to-run \
             spread; async tasks are measured once, since a second round would reuse the memory \
             the first one freed.",
        drain = STACK_CACHE_DRAIN,
        headline = HEADLINE_WORKERS,
    )
}

/// Memory per worker (threads and processes) and per async task, at every count.
fn worker_figures(section: &mut Section, result: &MemoryResult) {
    // A growth of this process (threads, tasks) is counted in whole pages shared among the N
    // workers: less than a page over N cannot be told from nothing (or from the allocator
    // handing back memory meanwhile, which made such figures negative).
    let page = page_size();
    for p in &result.workers {
        let n = p.workers;
        let m = p.model.key();
        for (kind, v, what) in [
            ("uss", p.uss_bytes, "USS"),
            ("pss", p.pss_bytes, "PSS"),
            ("rss", p.rss_bytes, "RSS (not additive)"),
            ("pte", p.page_table_bytes, "page tables"),
            ("kernel_stack", p.kernel_stack_bytes, "kernel stack"),
        ] {
            let figure = Figure::new(
                &format!("memory.{kind}_per_worker.{m}.{n}"),
                &format!("{what} per idle {m}, {n} workers"),
                v,
                Unit::Bytes,
            );
            let figure = if kind == "uss" && p.rounds_uss_bytes.len() > 1 {
                figure.with_rounds(&p.rounds_uss_bytes)
            } else {
                figure
            };
            let figure = if kind == "kernel_stack" && !p.kernel_stack_measured {
                figure.placed("assumed: 16 KiB per thread (KernelStack unreadable)")
            } else {
                figure
            };
            // Children's figures are sums of their own counters; a thread's is a growth.
            section.figures.push(
                if m == "thread" || (kind == "kernel_stack" && p.kernel_stack_measured) {
                    figure.with_resolution(page / n as f64)
                } else {
                    figure
                },
            );
        }
        if let Some(v) = p.virtual_bytes {
            section.figures.push(Figure::new(
                &format!("memory.virtual_per_worker.{m}.{n}"),
                &format!("virtual size per idle {m}, {n} workers (reserved, not resident)"),
                v,
                Unit::Bytes,
            ));
        }
    }
    for t in &result.tasks {
        section.figures.push(
            Figure::new(
                &format!("memory.per_task.async.{}", t.tasks),
                &format!("USS per idle tokio task, {} tasks", t.tasks),
                t.uss_bytes,
                Unit::Bytes,
            )
            .with_resolution(page / t.tasks as f64),
        );
    }
    section.figures.push(Figure::new(
        "memory.thread_stack_reserved",
        "default thread stack reservation (virtual)",
        result.thread_stack_reserved_bytes as f64,
        Unit::Bytes,
    ));
}

/// The page size, for the resolution of figures that are growths of page-granular counters.
fn page_size() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .map_or(4096.0, |p| p as f64)
}

/// The overhead per worker at every count: USS (and PSS) less the working set, plus page
/// tables and kernel stack; the figures the memory claim reads.
fn overhead_figures(section: &mut Section, result: &MemoryResult) {
    let ws = result.working_set_bytes as f64;
    let page = page_size();
    for p in &result.workers {
        let (n, m) = (p.workers, p.model.key());
        let parts = if p.kernel_stack_measured {
            "USS - working set + page tables + kernel stack"
        } else {
            "USS - working set + page tables + kernel stack (16 KiB assumed)"
        };
        let mut figure = Figure::new(
            &format!("memory.overhead_per_worker.{m}.{n}"),
            &format!("overhead per idle {m} ({parts}), {n} workers"),
            p.overhead(ws),
            Unit::Bytes,
        );
        if p.rounds_overhead_bytes.len() > 1 {
            figure = figure.with_rounds(&p.rounds_overhead_bytes);
        }
        // A thread's USS is a growth of this process, counted in pages shared among N.
        if p.model == Worker::Thread {
            figure = figure.with_resolution(page / n as f64);
        }
        section.figures.push(figure);
        section.figures.push(Figure::new(
            &format!("memory.overhead_pss_per_worker.{m}.{n}"),
            &format!("overhead per idle {m} with PSS in place of USS, {n} workers"),
            p.overhead_pss(ws),
            Unit::Bytes,
        ));
    }
    section.figures.push(Figure::new(
        "memory.working_set",
        "working set the lab gives each worker (subtracted from the overhead)",
        ws,
        Unit::Bytes,
    ));
}

/// What one worker adds beyond its working set, part by part, at every count.
fn overhead_table(result: &MemoryResult) -> Table {
    let ws = result.working_set_bytes as f64;
    let kib = |v: f64| format!("{:.1}", v / 1024.0);
    let rows = result
        .workers
        .iter()
        .map(|p| {
            vec![
                p.model.key().to_string(),
                p.workers.to_string(),
                kib(p.uss_bytes - ws),
                kib(p.pss_bytes - ws),
                kib(p.page_table_bytes),
                if p.kernel_stack_measured {
                    kib(p.kernel_stack_bytes)
                } else {
                    format!("{} (assumed)", kib(p.kernel_stack_bytes))
                },
                kib(p.overhead(ws)),
                kib(p.overhead_pss(ws)),
            ]
        })
        .collect();
    Table {
        title: format!(
            "Overhead per idle worker (KiB), the {} KiB working set subtracted",
            result.working_set_bytes / 1024
        ),
        columns: [
            "model",
            "N",
            "USS - working set",
            "PSS - working set",
            "page tables",
            "kernel stack",
            "overhead (USS)",
            "overhead (PSS)",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// Every count of workers and tasks: what each adds.
fn worker_table(result: &MemoryResult) -> Table {
    let kib = |v: f64| format!("{:.1}", v / 1024.0);
    let mut rows: Vec<Vec<String>> = result
        .workers
        .iter()
        .map(|p| {
            vec![
                p.model.key().to_string(),
                p.workers.to_string(),
                kib(p.uss_bytes),
                kib(p.pss_bytes),
                kib(p.rss_bytes),
                kib(p.page_table_bytes),
                kib(p.kernel_stack_bytes),
                p.virtual_bytes.map_or("-".to_string(), kib),
            ]
        })
        .collect();
    rows.extend(result.tasks.iter().map(|t| {
        vec![
            "async task".to_string(),
            t.tasks.to_string(),
            kib(t.uss_bytes),
            kib(t.pss_bytes),
            kib(t.rss_bytes),
            "-".to_string(),
            "-".to_string(),
            "-".to_string(),
        ]
    }));
    Table {
        title: "Per idle worker (KiB)".to_string(),
        columns: [
            "model",
            "N",
            "USS",
            "PSS",
            "RSS",
            "page tables",
            "kernel stack",
            "virtual",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    }
}

/// Memory per worker against the worker count, per model.
fn per_worker_chart(result: &MemoryResult) -> Chart {
    let series = |model: Worker| Series {
        name: model.key().to_string(),
        points: result
            .workers
            .iter()
            .filter(|p| p.model == model)
            .map(|p| {
                let overhead = p.overhead(result.working_set_bytes as f64);
                (p.workers as f64, overhead.max(1.0))
            })
            .collect(),
    };
    Chart {
        id: "overhead-per-worker".to_string(),
        title: "Overhead per idle worker (working set subtracted; async: USS per task)".to_string(),
        kind: ChartKind::Line,
        x_label: "workers".to_string(),
        y_label: "bytes per worker".to_string(),
        x_unit: AxisUnit::Plain,
        y_unit: AxisUnit::Bytes,
        x_log: true,
        y_log: true,
        categories: Vec::new(),
        series: vec![
            series(Worker::Process),
            series(Worker::Thread),
            Series {
                name: "async task".to_string(),
                points: result
                    .tasks
                    .iter()
                    .map(|t| (t.tasks as f64, t.uss_bytes.max(1.0)))
                    .collect(),
            },
        ],
    }
}

/// How to read the thread figures (reserved stacks, reused arenas) and the noisy ones.
fn notes(section: &mut Section, result: &MemoryResult) {
    section.notes.push(format!(
        "Threads reserve a {} KiB stack each (Rust's default; glibc's pthread default is 8 MiB, \
         `ulimit -s`), but only the pages they touch are resident: compare the virtual column \
         with USS. A thread's first malloc may also create a new glibc arena, which reserves \
         address space, not memory.",
        result.thread_stack_reserved_bytes / 1024
    ));
    section.notes.push(format!(
        "glibc caches the stacks of exited threads (up to 40 MiB), pages still resident, and \
         hands them to new threads, whose growth would then miss them: {STACK_CACHE_DRAIN} \
         parked threads take that cache before each thread measurement. Malloc arenas of ended \
         threads are still reused, so the thread figures may be a slight lower bound. The \
         working sets are fresh mappings, so a thread never reads less than the working set it \
         wrote."
    ));
    if result.workers.iter().any(|p| !p.kernel_stack_measured) {
        section.notes.push(
            "KernelStack could not be read (or did not grow) for some rows: their kernel stack \
             is assumed, 16 KiB per thread (x86-64 and arm64 THREAD_SIZE)"
                .to_string(),
        );
    }
    section.notes.push(
        "KernelStack is system-wide: other processes starting or ending during the sample move \
         it, so the kernel-stack column is noisy on a shared machine. Figures for one worker are \
         page-granular and noisy; the per-worker figures at larger N are the ones to read."
            .to_string(),
    );
}
