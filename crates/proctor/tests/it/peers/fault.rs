//! Values and tasks that misbehave on cue: loky's `ErrorAtPickle`, `CrashAtUnpickle`,
//! `ExitAtPickle`, `CrashAtGCInWorker` and the rest, as one Rust type whose `Serialize`,
//! `Deserialize` and `Drop` (and the task run on it) fail at the point and in the way the
//! value says.

use std::fmt;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::in_worker;

/// Where a [`Bomb`] goes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Point {
    /// Serializing the argument, in the caller.
    SerArg,
    /// Deserializing the argument, in the worker.
    DeArg,
    /// Running the task, in the worker.
    Task,
    /// Serializing the result, in the worker.
    SerRes,
    /// Deserializing the result, in the caller.
    DeRes,
    /// Dropping the argument, in the worker (inside the task, which consumes it).
    DropArg,
    /// Dropping the result, in the worker (after it was sent).
    DropRes,
}

impl Point {
    pub(super) const ALL: [Point; 7] = [
        Point::SerArg,
        Point::DeArg,
        Point::Task,
        Point::SerRes,
        Point::DeRes,
        Point::DropArg,
        Point::DropRes,
    ];

    fn code(self) -> u8 {
        Point::ALL.iter().position(|p| *p == self).unwrap() as u8 + 1
    }

    fn from_code(c: u8) -> Option<Point> {
        Point::ALL.get((c as usize).checked_sub(1)?).copied()
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Point::SerArg => "serialize_arg",
            Point::DeArg => "deserialize_arg",
            Point::Task => "task",
            Point::SerRes => "serialize_result",
            Point::DeRes => "deserialize_result",
            Point::DropArg => "drop_arg",
            Point::DropRes => "drop_result",
        }
    }

    /// True where the value is in the caller when it goes off.
    pub(super) fn in_caller(self) -> bool {
        matches!(self, Point::SerArg | Point::DeRes)
    }
}

/// How a [`Bomb`] goes off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// An `Err` from serde (or from the task).
    Error,
    /// A panic.
    Panic,
    /// `std::process::exit(0)`, as loky's `c_exit()`: a worker that ends "successfully" in
    /// the middle of a task.
    Exit,
    /// `std::process::abort()`.
    Abort,
    /// A segmentation fault.
    Segv,
}

impl Kind {
    pub(super) const ALL: [Kind; 5] = [
        Kind::Error,
        Kind::Panic,
        Kind::Exit,
        Kind::Abort,
        Kind::Segv,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Error => "error",
            Kind::Panic => "panic",
            Kind::Exit => "exit",
            Kind::Abort => "abort",
            Kind::Segv => "segfault",
        }
    }

    /// True for the kinds that end the process they happen in.
    pub(super) fn is_fatal(self) -> bool {
        matches!(self, Kind::Exit | Kind::Abort | Kind::Segv)
    }
}

/// The text a bomb of item `n` says (its error's message, or its panic's).
pub(super) fn message(kind: Kind, point: Point, n: u64) -> String {
    format!("{} raised at {} of item {n}", kind.name(), point.name())
}

/// Goes off: returns the error's text for [`Kind::Error`], else does not return.
pub(super) fn detonate(kind: Kind, point: Point, n: u64) -> String {
    let text = message(kind, point, n);
    match kind {
        Kind::Error => text,
        Kind::Panic => panic!("{text}"),
        Kind::Exit => std::process::exit(0),
        Kind::Abort => std::process::abort(),
        Kind::Segv => segfault(),
    }
}

/// A real segmentation fault (a read of the never-mapped first page).
pub(super) fn segfault() -> ! {
    let p = std::ptr::dangling::<u64>();
    // SAFETY: not safe at all: the point is the SIGSEGV, inside a worker process.
    let v = unsafe { p.read_volatile() };
    unreachable!("the read of the first page returned {v}")
}

/// Whether a bomb is an argument (on its way to a task) or a result (on its way back).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Arg,
    Res,
}

/// An item `n` that goes off at `at` in the way `kind` says; `at: None` is a plain item. A
/// result's `n` is twice its item's.
pub(super) struct Bomb {
    pub(super) n: u64,
    role: Role,
    at: Option<Point>,
    kind: Kind,
}

impl fmt::Debug for Bomb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at {
            Some(at) => write!(f, "Bomb({}, {} at {})", self.n, self.kind.name(), at.name()),
            None => write!(f, "Bomb({})", self.n),
        }
    }
}

impl Bomb {
    /// A plain argument `n`.
    pub(super) fn plain(n: u64) -> Bomb {
        Bomb {
            n,
            role: Role::Arg,
            at: None,
            kind: Kind::Error,
        }
    }

    /// An argument `n` that goes off at `at`.
    pub(super) fn armed(n: u64, at: Point, kind: Kind) -> Bomb {
        Bomb {
            n,
            role: Role::Arg,
            at: Some(at),
            kind,
        }
    }

    /// The number of the item the bomb was made for (a result holds twice it).
    fn item(&self) -> u64 {
        match self.role {
            Role::Arg => self.n,
            Role::Res => self.n / 2,
        }
    }

    /// Whether the bomb goes off here, at `point`.
    fn fires(&self, point: Point) -> bool {
        let mine = match self.role {
            Role::Arg => matches!(point, Point::SerArg | Point::DeArg | Point::DropArg),
            Role::Res => matches!(point, Point::SerRes | Point::DeRes | Point::DropRes),
        };
        // Argument copies the caller keeps (to resend a job) drop in the caller; results
        // drop in the caller too in thread mode: only the side the point names counts.
        mine && self.at == Some(point) && (in_worker() != point.in_caller())
    }
}

impl Serialize for Bomb {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let point = match self.role {
            Role::Arg => Point::SerArg,
            Role::Res => Point::SerRes,
        };
        if self.fires(point) {
            return Err(S::Error::custom(detonate(self.kind, point, self.item())));
        }
        let role = matches!(self.role, Role::Res) as u8;
        let at = self.at.map_or(0, Point::code);
        let kind = Kind::ALL.iter().position(|k| *k == self.kind).unwrap() as u8;
        (self.n, role, at, kind).serialize(s)
    }
}

impl<'de> Deserialize<'de> for Bomb {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (n, role, at, kind) = <(u64, u8, u8, u8)>::deserialize(d)?;
        let b = Bomb {
            n,
            role: if role == 1 { Role::Res } else { Role::Arg },
            at: Point::from_code(at),
            kind: *Kind::ALL
                .get(kind as usize)
                .ok_or_else(|| D::Error::custom("no such kind"))?,
        };
        let point = match b.role {
            Role::Arg => Point::DeArg,
            Role::Res => Point::DeRes,
        };
        if b.fires(point) {
            let (kind, n) = (b.kind, b.item());
            std::mem::forget(b);
            return Err(D::Error::custom(detonate(kind, point, n)));
        }
        Ok(b)
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        let point = match self.role {
            Role::Arg => Point::DropArg,
            Role::Res => Point::DropRes,
        };
        if self.fires(point) && !std::thread::panicking() {
            // A `Drop` has no error to return: an `Error` bomb here is a plain value.
            if self.kind != Kind::Error {
                detonate(self.kind, point, self.item());
            }
        }
    }
}

/// The task of the crash matrix: the result `2n`, or the bomb goes off while it runs (an
/// `Error` bomb makes the task return `Err`). The argument drops at the end, inside the task.
pub(super) fn run_bomb(b: Bomb) -> Result<Bomb, String> {
    if b.at == Some(Point::Task) && in_worker() {
        return Err(detonate(b.kind, Point::Task, b.n));
    }
    Ok(Bomb {
        n: 2 * b.n,
        role: Role::Res,
        at: b.at,
        kind: b.kind,
    })
}

/// A task that breaks its worker: a segfault in a worker process (`fatal`), a panic in a
/// thread.
pub(super) fn misbehave(fatal: bool) -> u64 {
    if fatal && in_worker() {
        segfault()
    }
    panic!("a task broke its worker")
}

/// What the guilty task of a matrix case must end with.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Expect {
    /// `Ok(Ok(2n))`: nothing went off where it could matter (a thread pool moves values
    /// without encoding them, and drops results in the caller).
    Value,
    /// `Ok(Err(text))`: the task returned its error.
    TaskErr,
    /// `Panicked` with the bomb's text.
    Panicked,
    /// `Codec` whose message holds the bomb's text (the user's own serde message, or the
    /// panic's).
    Codec,
    /// `Crashed` in the way the kind says (exit code 0, SIGABRT or SIGSEGV).
    Crashed,
    /// `Poisoned`: the job killed its worker twice before its task started.
    Poisoned,
    /// The task's own outcome either way: its value (sent before the bomb went off) or the
    /// error of the bomb (`Panicked` for a panic, `Crashed` for a fatal kind).
    ValueOrOwn,
}

/// What the guilty task must end with, for a bomb of `kind` at `point`, in a process pool
/// (`process`) or a thread pool.
pub(super) fn expect(point: Point, kind: Kind, process: bool) -> Expect {
    if !process {
        // Values move between threads without being encoded, and a result is dropped where
        // the caller drops it: only the task and the argument's drop (inside it) go off.
        return match (point, kind) {
            (Point::Task, Kind::Error) => Expect::TaskErr,
            (Point::Task, _) | (Point::DropArg, _) => Expect::Panicked,
            _ => Expect::Value,
        };
    }
    match (point, kind) {
        (Point::Task, Kind::Error) => Expect::TaskErr,
        (Point::Task | Point::DropArg, Kind::Panic) => Expect::Panicked,
        (
            Point::SerArg | Point::DeArg | Point::SerRes | Point::DeRes,
            Kind::Error | Kind::Panic,
        ) => Expect::Codec,
        // The worker died decoding the argument: before its task started, twice.
        (Point::DeArg, _) => Expect::Poisoned,
        (Point::DropRes, _) => Expect::ValueOrOwn,
        (_, _) => Expect::Crashed,
    }
}

/// Whether a matrix case can run at all: a fatal bomb in the caller would end the caller
/// (no pool can contain that), a `Drop` has no error to return, and in thread mode a fatal
/// bomb anywhere ends the whole program.
pub(super) fn applies(point: Point, kind: Kind) -> Option<&'static str> {
    if kind.is_fatal() && point.in_caller() {
        return Some("it would end the caller's own process, which no pool can contain");
    }
    if kind == Kind::Error && matches!(point, Point::DropArg | Point::DropRes) {
        return Some("a Drop has no error to return");
    }
    None
}

/// Checks the outcome of the guilty item `n` (a bomb of `kind` at `point`) against `want`.
pub(super) fn check_guilty(
    want: &Expect,
    kind: Kind,
    point: Point,
    n: u64,
    got: &Result<Result<Bomb, String>, proctor::TaskError>,
) -> Result<(), String> {
    use proctor::TaskError as E;
    let text = message(kind, point, n);
    let crashed_as_kind = |signal: &Option<i32>, exit_code: &Option<u8>| match kind {
        Kind::Exit => signal.is_none() && *exit_code == Some(0),
        Kind::Abort => *signal == Some(libc::SIGABRT),
        Kind::Segv => *signal == Some(libc::SIGSEGV),
        _ => false,
    };
    let ok = match (want, got) {
        (Expect::Value | Expect::ValueOrOwn, Ok(Ok(b))) => b.n == 2 * n,
        (Expect::TaskErr, Ok(Err(e))) => *e == text,
        (Expect::Panicked, Err(E::Panicked { message, .. })) => message.contains(&text),
        (Expect::Codec, Err(E::Codec { message, .. })) => message.contains(&text),
        (
            Expect::Crashed,
            Err(E::Crashed {
                signal, exit_code, ..
            }),
        ) => crashed_as_kind(signal, exit_code),
        (Expect::Poisoned, Err(E::Poisoned { .. })) => true,
        (Expect::ValueOrOwn, Err(E::Panicked { message, .. })) => {
            kind == Kind::Panic && message.contains(&text)
        }
        (
            Expect::ValueOrOwn,
            Err(E::Crashed {
                signal, exit_code, ..
            }),
        ) => crashed_as_kind(signal, exit_code),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "item {n} ({} at {}): want {want:?}{}, got {}",
            kind.name(),
            point.name(),
            match want {
                Expect::Codec | Expect::Panicked | Expect::TaskErr => format!(" holding {text:?}"),
                _ => String::new(),
            },
            show(got)
        ))
    }
}

/// An outcome in one line.
pub(super) fn show(got: &Result<Result<Bomb, String>, proctor::TaskError>) -> String {
    match got {
        Ok(Ok(b)) => format!("Ok({b:?})"),
        Ok(Err(e)) => format!("Ok(Err({e:?}))"),
        Err(e) => format!("Err({e:?})"),
    }
}

/// Checks an innocent item `n`: its own value, `2n`.
pub(super) fn check_innocent(
    n: u64,
    got: &Result<Result<Bomb, String>, proctor::TaskError>,
) -> Result<(), String> {
    match got {
        Ok(Ok(b)) if b.n == 2 * n => Ok(()),
        _ => Err(format!("innocent item {n}: want Ok(2n), got {}", show(got))),
    }
}
