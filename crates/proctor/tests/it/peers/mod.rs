//! The peers' matrices (issue 23): the scenarios of loky's `tests/test_reusable_executor.py`,
//! CPython's `Lib/test/test_concurrent_futures/` and `_test_multiprocessing.py` pool tests,
//! and pebble's `test/test_process_pool_*.py`, ported to proctor as a user would write them,
//! each run in three modes: a process pool started by fork, one started by exec, and a thread
//! pool.
//!
//! How it runs. One `#[test]` per mode (`peers_fork`, `peers_exec`, `peers_threads`) runs this
//! binary again as a child ([`crate::helper`]) that runs the ignored `helper_run_peers` alone
//! (`--test-threads=1`), so every scenario has the process to itself. The child runs the
//! scenarios one after another and prints one line for each (`PEERS PASS|FAIL|SKIP <index>`).
//! Around each scenario:
//!
//! * a watchdog thread ends the child (`std::process::exit`) with the scenario's name if it
//!   has not finished in [`WATCHDOG`]; the helpers that wait ([`join_within`], [`finish`],
//!   [`block_on`]) give up sooner, with a precise reason, and end the child the same way (a
//!   hung pool cannot be dropped, so the process it lives in is given up);
//! * after it, a leak check: no process of ours left besides the fork server, no extra open
//!   descriptor, memfd or thread, no new `/dev/shm` entry (baseline taken after a warm-up
//!   pool, since the fork server and its socket live as long as the program).
//!
//! The parent reads the lines, starts the child again after the scenario that ended it, kills
//! it past the mode's total limit, and fails with every failing scenario by name and reason.
//! `PEERS_ONLY=<text>` runs only the scenarios whose name contains the text.
//!
//! The scenario files: [`fault`] (the values and tasks that misbehave on cue), [`loky`],
//! [`cpython`], [`pebble`], and [`known`] (the regression scenarios of the eight failures
//! known when this was written, named `known<N>_...`).
//!
//! Longer than 600 lines: the harness (child per mode, watchdog, leak checks) and the
//! scenario table it runs are one piece; split, neither reads alone.

mod cpython;
mod fault;
mod known;
mod loky;
mod pebble;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use proctor::{Pool, PoolBuilder, StartMethod, Task, TaskError};

/// The longest one scenario may take before the watchdog ends the child.
const WATCHDOG: Duration = Duration::from_secs(30);
/// The longest a scenario waits for one outcome, an `await` or a pool's drop before it calls
/// the pool hung.
pub(super) const WAIT_LIMIT: Duration = Duration::from_secs(6);
/// How long the leak check waits for what a dropped pool leaves to go away.
const LEAK_GRACE: Duration = Duration::from_secs(4);
/// The longest one mode's child processes may run in all.
const MODE_LIMIT: Duration = Duration::from_secs(420);

/// Where a scenario runs its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// Worker processes forked from the fork server.
    Fork,
    /// Worker processes that re-execute this binary.
    Exec,
    /// Worker threads.
    Threads,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Fork, Mode::Exec, Mode::Threads];

    fn name(self) -> &'static str {
        match self {
            Mode::Fork => "fork",
            Mode::Exec => "exec",
            Mode::Threads => "threads",
        }
    }

    pub(super) fn is_process(self) -> bool {
        self != Mode::Threads
    }
}

/// A builder for a pool of `workers` in `mode`, with workers' stderr kept off the terminal
/// (crashes are the point here; their last words stay in the errors).
pub(super) fn builder(mode: Mode, workers: usize) -> PoolBuilder {
    let b = match mode {
        Mode::Fork => Pool::processes(workers).start_method(StartMethod::Fork),
        Mode::Exec => Pool::processes(workers).start_method(StartMethod::Exec),
        Mode::Threads => Pool::threads(workers),
    };
    b.forward_stderr(false)
}

/// A pool of `workers` in `mode`, with no other option.
pub(super) fn pool(mode: Mode, workers: usize) -> Pool {
    builder(mode, workers).build().expect("building the pool")
}

/// A ported scenario as a table row: its name, the peer test it ports, its body, and why it
/// is for worker processes only (if it is).
pub(super) type Row = (&'static str, &'static str, fn(Mode), Option<&'static str>);

/// Adds the scenarios of `rows`.
pub(super) fn push_rows(s: &mut Vec<Scenario>, rows: &[Row]) {
    for &(name, peer, run, only) in rows {
        let sc = Scenario::new(name, peer, run);
        s.push(match only {
            Some(why) => sc.processes_only(why),
            None => sc,
        });
    }
}

/// One ported scenario.
pub(super) struct Scenario {
    pub(super) name: String,
    /// The peer test it ports, as `project file::test`.
    pub(super) peer: &'static str,
    /// Why it does not apply in thread mode, if it does not.
    no_threads: Option<&'static str>,
    run: Box<dyn Fn(Mode) + Send + Sync>,
}

impl Scenario {
    pub(super) fn new(
        name: impl Into<String>,
        peer: &'static str,
        run: impl Fn(Mode) + Send + Sync + 'static,
    ) -> Scenario {
        Scenario {
            name: name.into(),
            peer,
            no_threads: None,
            run: Box::new(run),
        }
    }

    /// Marks the scenario as one for worker processes only, saying why.
    pub(super) fn processes_only(mut self, why: &'static str) -> Scenario {
        self.no_threads = Some(why);
        self
    }

    fn skip_reason(&self, mode: Mode) -> Option<&'static str> {
        match mode {
            Mode::Threads => self.no_threads,
            _ => None,
        }
    }
}

/// Every scenario, in the order they run.
fn all() -> Vec<Scenario> {
    let mut s = Vec::new();
    known::scenarios(&mut s);
    loky::scenarios(&mut s);
    cpython::scenarios(&mut s);
    pebble::scenarios(&mut s);
    let mut names = BTreeSet::new();
    for sc in &s {
        assert!(
            names.insert(sc.name.clone()),
            "two scenarios named {}",
            sc.name
        );
    }
    s
}

fn selected(name: &str) -> bool {
    std::env::var("PEERS_ONLY").map_or(true, |only| name.contains(&only))
}

// ---------------------------------------------------------------------------------------
// Helpers the scenarios share.

/// This process's pid in the child that runs the scenarios: a value's code can tell whether
/// it runs in the caller or in a worker process (forked from the fork server before it was
/// set, or re-executed, a worker sees 0).
static CALLER_PID: AtomicU32 = AtomicU32::new(0);

/// True inside a worker: a worker process, or one of a thread pool's worker threads.
pub(super) fn in_worker() -> bool {
    std::process::id() != CALLER_PID.load(Ordering::Relaxed)
        || std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("proctor-worker-") || n.starts_with("proctor-map-"))
}

/// The directory this run of the child may write to (made by the parent, one per mode).
pub(super) fn scratch(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("PEERS_DIR").expect("PEERS_DIR is set by the parent");
    std::path::Path::new(&dir).join(name)
}

pub(super) fn double(n: u64) -> u64 {
    2 * n
}

/// Which worker ran the task: its pid and thread name.
pub(super) fn whoami(_: u64) -> String {
    format!(
        "{}:{}",
        std::process::id(),
        std::thread::current().name().unwrap_or("")
    )
}

/// Whoami after `ms` milliseconds (so that tasks submitted together overlap).
pub(super) fn slow_whoami(ms: u64) -> String {
    crate::sleep_ms(ms);
    whoami(0)
}

/// Writes this worker's pid to the `started` marker, then sleeps `ms`.
pub(super) fn started_then_sleep(ms: u64) -> u64 {
    std::fs::write(scratch("started"), std::process::id().to_string()).expect("the marker");
    crate::sleep_ms(ms)
}

/// Waits for `started_then_sleep` to start; the pid of its worker.
pub(super) fn wait_started() -> u32 {
    let marker = scratch("started");
    wait_for("the task never started", || marker.exists());
    let mut pid = String::new();
    wait_for("the marker stayed empty", || {
        pid = std::fs::read_to_string(&marker).unwrap_or_default();
        !pid.is_empty()
    });
    pid.trim().parse().expect("a pid in the marker")
}

/// The pool still works: a `map` and a `submit` give the right values.
pub(super) fn reuse<S: 'static>(pool: &Pool<S>) {
    let out = pool.map(double, 0..20u64);
    let want: Vec<Result<u64, TaskError>> = (0..20).map(|n| Ok(2 * n)).collect();
    assert_eq!(out, want, "a map after the scenario");
    assert_eq!(
        join_within(pool.submit(double, 21), "a submit after the scenario"),
        Ok(42)
    );
}

/// Drops `pool` on another thread and waits for that, so that a drop that never returns is
/// a failure with a reason rather than a silent hang.
pub(super) fn finish<S: 'static>(pool: Pool<S>) {
    within("drop(pool)", move || drop(pool));
}

/// `pool.shutdown()`, which must return.
pub(super) fn shutdown_within<S: 'static>(pool: Pool<S>) {
    within("pool.shutdown()", move || pool.shutdown());
}

/// Runs `f` on another thread; the child gives up if it has not returned in [`WAIT_LIMIT`].
pub(super) fn within(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(f));
        let _ = tx.send(r.err().map(|p| panic_text(p.as_ref())));
    });
    match rx.recv_timeout(WAIT_LIMIT) {
        Ok(None) => {
            let _ = t.join();
        }
        Ok(Some(panic)) => panic!("{what} panicked: {panic}"),
        Err(_) => hung(&format!("{what} did not return within {WAIT_LIMIT:?}")),
    }
}

/// The task's outcome, or the child gives up if it has none in [`WAIT_LIMIT`].
pub(super) fn join_within<R>(task: Task<R>, what: &str) -> Result<R, TaskError> {
    match task.join_timeout(WAIT_LIMIT) {
        Ok(r) => r,
        Err(task) => {
            // The pool is stuck: neither the task nor its pool can be dropped safely.
            std::mem::forget(task);
            hung(&format!("{what}: no outcome within {WAIT_LIMIT:?}"))
        }
    }
}

/// Runs `f`, turning a panic that escapes it into a failure that says it escaped from `call`
/// (a pool call must give outcomes, not panics).
pub(super) fn no_escape<T>(call: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => panic!(
            "a panic escaped from `{call}` to its caller: {}",
            panic_text(p.as_ref())
        ),
    }
}

/// Polls `fut` to its end on this thread; the child gives up after [`WAIT_LIMIT`].
pub(super) fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        let now = Instant::now();
        if now >= deadline {
            hung(&format!("an await did not complete within {WAIT_LIMIT:?}"));
        }
        std::thread::park_timeout(deadline - now);
    }
}

/// Waits until `done()` or the child gives up, saying `what` never happened.
pub(super) fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_LIMIT;
    while !done() {
        if Instant::now() > deadline {
            hung(&format!("{what} within {WAIT_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Says what the scenario is doing now (the watchdog's message names it).
pub(super) fn step(what: &str) {
    lock(&CURRENT).step = what.to_string();
}

// ---------------------------------------------------------------------------------------
// The child: runs the scenarios of one mode.

#[derive(Default)]
struct Current {
    index: usize,
    name: String,
    step: String,
    started: Option<Instant>,
}

static CURRENT: Mutex<Current> = Mutex::new(Current {
    index: 0,
    name: String::new(),
    step: String::new(),
    started: None,
});

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Prints one line for the parent (and flushes it, since the child may end at any moment).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "PEERS {}", line.replace('\n', " | "));
    let _ = out.flush();
}

/// Gives up on the current scenario: its pool is stuck, so the whole child ends and the
/// parent starts another after it.
pub(super) fn hung(reason: &str) -> ! {
    let (index, step) = {
        let c = lock(&CURRENT);
        (c.index, c.step.clone())
    };
    let step = if step.is_empty() {
        String::new()
    } else {
        format!(" (last step: {step})")
    };
    say(&format!("FAIL {index} hung: {reason}{step}"));
    std::process::exit(3);
}

thread_local! {
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// What this process holds that a pool might leave behind.
#[derive(Debug, Clone, PartialEq)]
struct Holdings {
    /// Our descendant processes (pid, command), the fork server among them.
    descendants: BTreeMap<i32, String>,
    fds: usize,
    memfds: usize,
    threads: usize,
    shm: BTreeSet<String>,
}

fn holdings() -> Holdings {
    let me = std::process::id() as i32;
    let mut children: BTreeMap<i32, Vec<(i32, String)>> = BTreeMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; the command may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        let mut rest = stat[close + 1..].split_whitespace();
        let state = rest.next().unwrap_or("?");
        let Some(ppid) = rest.next().and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        children
            .entry(ppid)
            .or_default()
            .push((pid, format!("{comm} [{state}]")));
    }
    let mut descendants = BTreeMap::new();
    let mut todo = vec![me];
    while let Some(p) = todo.pop() {
        for (c, what) in children.get(&p).into_iter().flatten() {
            descendants.insert(*c, what.clone());
            todo.push(*c);
        }
    }
    let mut fds = 0;
    let mut memfds = 0;
    for entry in std::fs::read_dir("/proc/self/fd")
        .into_iter()
        .flatten()
        .flatten()
    {
        fds += 1;
        let target = std::fs::read_link(entry.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with("/memfd:") {
            memfds += 1;
        }
    }
    let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
    let shm = std::fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    Holdings {
        descendants,
        fds,
        memfds,
        threads,
        shm,
    }
}

/// What `now` holds beyond `base`, in words; `None` when nothing.
fn leaked(base: &Holdings, now: &Holdings) -> Option<String> {
    let mut what = Vec::new();
    let extra: Vec<String> = now
        .descendants
        .iter()
        .filter(|(pid, _)| !base.descendants.contains_key(pid))
        .map(|(pid, comm)| format!("{pid} {comm}"))
        .collect();
    if !extra.is_empty() {
        what.push(format!("processes left: {}", extra.join(", ")));
    }
    let gone: Vec<String> = base
        .descendants
        .iter()
        .filter(|(pid, _)| !now.descendants.contains_key(pid))
        .map(|(pid, comm)| format!("{pid} {comm}"))
        .collect();
    if !gone.is_empty() {
        what.push(format!(
            "processes of the baseline gone: {}",
            gone.join(", ")
        ));
    }
    if now.fds > base.fds {
        what.push(format!("{} more open descriptors", now.fds - base.fds));
    }
    if now.memfds > base.memfds {
        what.push(format!("{} more memfds", now.memfds - base.memfds));
    }
    if now.threads > base.threads {
        what.push(format!("{} more threads", now.threads - base.threads));
    }
    let shm: Vec<&String> = now.shm.difference(&base.shm).collect();
    if !shm.is_empty() {
        what.push(format!("new /dev/shm entries: {shm:?}"));
    }
    (!what.is_empty()).then(|| what.join("; "))
}

/// Waits up to [`LEAK_GRACE`] for the holdings to come back to `base`.
fn check_leaks(base: &Holdings) -> Result<(), String> {
    let deadline = Instant::now() + LEAK_GRACE;
    loop {
        let now = holdings();
        match leaked(base, &now) {
            None => return Ok(()),
            Some(what) if Instant::now() > deadline => {
                return Err(format!("leak after the pool was dropped: {what}"));
            }
            Some(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A first pool in `mode`, built, used and dropped, so that what lives as long as the
/// program (the fork server, its socket) is in the baseline.
fn warm_up(mode: Mode) -> Holdings {
    let p = pool(mode, 2);
    reuse(&p);
    finish(p);
    // The first process pool of the program starts the thread that reads the fork server's
    // replies, for good; a thread-mode scenario may build a process pool in a task.
    #[cfg(target_os = "linux")]
    if let Ok(p) = Pool::processes(1).build() {
        reuse(&p);
        finish(p);
    }
    // Anything that goes away with a pool has gone: take the quietest view.
    std::thread::sleep(Duration::from_millis(50));
    holdings()
}

fn mode_from_env() -> Option<Mode> {
    let m = std::env::var("PEERS_MODE").ok()?;
    Mode::ALL.into_iter().find(|x| x.name() == m)
}

/// Not a test on its own: the child process of `peers_fork`, `peers_exec` and
/// `peers_threads`, which runs the scenarios of one mode from `PEERS_FROM` on.
#[test]
#[ignore = "helper run as a child process by the peers_* tests"]
fn helper_run_peers() {
    let Some(mode) = mode_from_env() else {
        return;
    };
    CALLER_PID.store(std::process::id(), Ordering::Relaxed);
    let from: usize = std::env::var("PEERS_FROM")
        .ok()
        .and_then(|f| f.parse().ok())
        .unwrap_or(0);
    // Panics of the harness thread become FAIL lines; others (a pool's threads) still print.
    let harness = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == harness {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_AT.with(|p| *p.borrow_mut() = at);
        } else {
            previous(info);
        }
    }));
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(100));
            let c = lock(&CURRENT);
            if c.started.is_some_and(|s| s.elapsed() > WATCHDOG) {
                let line = format!(
                    "FAIL {} hung: {} did not end within {WATCHDOG:?} (last step: {})",
                    c.index, c.name, c.step
                );
                say(&line);
                std::process::exit(4);
            }
        }
    });
    let base = warm_up(mode);
    for (index, sc) in all().into_iter().enumerate().skip(from) {
        if !selected(&sc.name) {
            continue;
        }
        if let Some(why) = sc.skip_reason(mode) {
            say(&format!("SKIP {index} {why}"));
            continue;
        }
        {
            let mut c = lock(&CURRENT);
            *c = Current {
                index,
                name: sc.name.clone(),
                step: String::new(),
                started: Some(Instant::now()),
            };
        }
        say(&format!("START {index} {}", sc.name));
        let start = Instant::now();
        let run = catch_unwind(AssertUnwindSafe(|| (sc.run)(mode)));
        let ran = start.elapsed();
        let verdict = match run {
            Ok(()) => check_leaks(&base),
            Err(p) => {
                let at = PANIC_AT.with(|a| a.borrow_mut().take()).unwrap_or_default();
                Err(format!("{} [{at}]", panic_text(p.as_ref())))
            }
        };
        lock(&CURRENT).started = None;
        match verdict {
            Ok(()) => say(&format!("PASS {index} {}", ran.as_millis())),
            Err(why) => {
                // A failed scenario may have left a pool behind: measure the next one anew.
                say(&format!("FAIL {index} {why}"));
                say("RESTART");
                return;
            }
        }
    }
    say("DONE");
}

// ---------------------------------------------------------------------------------------
// The parent: one test per mode.

#[derive(Debug, Clone)]
enum Verdict {
    Pass(u64),
    Fail(String),
    Skip,
}

fn run_mode(mode: Mode) {
    let scenarios = all();
    let names: Vec<(String, &'static str)> =
        scenarios.iter().map(|s| (s.name.clone(), s.peer)).collect();
    drop(scenarios);
    let wanted: Vec<usize> = (0..names.len())
        .filter(|&i| selected(&names[i].0))
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "proctor-peers-{}-{}",
        std::process::id(),
        mode.name()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut verdicts: BTreeMap<usize, Verdict> = BTreeMap::new();
    let begun = Instant::now();
    let mut from = 0;
    let mut runs = 0;
    'children: while from < names.len() && wanted.iter().any(|&i| i >= from) {
        runs += 1;
        let mut child = crate::helper("peers::helper_run_peers", ("PEERS_MODE", mode.name()))
            .env("PEERS_FROM", from.to_string())
            .env("PEERS_DIR", &dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting the child");
        let (tx, rx) = mpsc::channel::<String>();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let tail = Arc::new(Mutex::new(String::new()));
        let keep = Arc::clone(&tail);
        let err_reader = std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let mut t = lock(&keep);
                t.push_str(&line);
                t.push('\n');
                if t.len() > 4096 {
                    let cut = t.len() - 2048;
                    let cut = (cut..t.len()).find(|&i| t.is_char_boundary(i)).unwrap_or(0);
                    t.drain(..cut);
                }
            }
        });
        let mut running: Option<usize> = None;
        let mut done = false;
        let mut killed = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    // libtest's "test name ... " may precede the first line on its own line.
                    let Some(at) = line.find("PEERS ") else {
                        continue;
                    };
                    let rest = &line[at + "PEERS ".len()..];
                    let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                    let (index, text) = rest.split_once(' ').unwrap_or((rest, ""));
                    let index: usize = index.parse().unwrap_or(usize::MAX);
                    match word {
                        "START" => running = Some(index),
                        "PASS" => {
                            verdicts.insert(index, Verdict::Pass(text.parse().unwrap_or(0)));
                            running = None;
                            from = index + 1;
                        }
                        "FAIL" => {
                            verdicts.insert(index, Verdict::Fail(text.to_string()));
                            running = None;
                            from = index + 1;
                        }
                        "SKIP" => {
                            verdicts.insert(index, Verdict::Skip);
                            from = index + 1;
                        }
                        "DONE" => done = true,
                        _ => {}
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if begun.elapsed() > MODE_LIMIT {
                        let _ = child.kill();
                        killed = true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let status = child.wait().expect("waiting for the child");
        let _ = err_reader.join();
        if let Some(index) = running {
            let t = lock(&tail).clone();
            let lines: Vec<&str> = t.lines().collect();
            let t = lines[lines.len().saturating_sub(6)..].join(" | ");
            let why = if killed {
                format!("killed: the mode's limit of {MODE_LIMIT:?} passed")
            } else {
                format!("the child process died ({status}); its stderr ends: {t}")
            };
            verdicts.insert(index, Verdict::Fail(why));
            from = index + 1;
        }
        if done || killed {
            break 'children;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    let (mut pass, mut skip, mut fail) = (0, 0, Vec::new());
    let mut slowest: Vec<(u64, &str)> = Vec::new();
    for &i in &wanted {
        let (name, peer) = &names[i];
        match verdicts.get(&i) {
            Some(Verdict::Pass(ms)) => {
                pass += 1;
                slowest.push((*ms, name));
            }
            Some(Verdict::Skip) => skip += 1,
            Some(Verdict::Fail(why)) => fail.push(format!("{name} ({peer}): {why}")),
            None => fail.push(format!("{name} ({peer}): never ran")),
        }
    }
    slowest.sort_unstable_by(|a, b| b.cmp(a));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(ms, n)| format!("{n} {ms} ms"))
        .collect();
    eprintln!(
        "peers [{}]: {pass} passed, {} failed, {skip} skipped of {} in {:.1} s ({runs} child runs); slowest: {}",
        mode.name(),
        fail.len(),
        wanted.len(),
        begun.elapsed().as_secs_f64(),
        slowest.join(", ")
    );
    for f in &fail {
        eprintln!("  FAIL [{}] {f}", mode.name());
    }
    assert!(
        fail.is_empty(),
        "{} of {} peer scenarios failed in mode {}:\n{}",
        fail.len(),
        wanted.len(),
        mode.name(),
        fail.join("\n")
    );
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn peers_fork() {
    run_mode(Mode::Fork);
}

#[test]
#[cfg_attr(not(target_os = "linux"), ignore)]
fn peers_exec() {
    run_mode(Mode::Exec);
}

#[test]
fn peers_threads() {
    run_mode(Mode::Threads);
}
