//! [`Task`]: the handle of one submitted task, over either backend's own handle, and its
//! `Future` implementation.

use std::time::Duration;

#[cfg(target_os = "linux")]
use super::process;
use super::{Output, thread};
use crate::error::TaskError;

/// A handle to one submitted task. [`Task::join`] waits for its outcome; [`Task::is_finished`],
/// [`Task::try_join`] and [`Task::join_timeout`] look without waiting or for a while, and
/// [`Task::cancel`] stops it.
///
/// Dropping a `Task` does not cancel it; its outcome is discarded.
#[derive(Debug)]
#[must_use = "a task's outcome is lost unless it is joined"]
pub struct Task<R> {
    pub(super) inner: TaskInner<R>,
}

#[derive(Debug)]
pub(crate) enum TaskInner<R> {
    Thread(thread::ThreadTask<R>),
    #[cfg(target_os = "linux")]
    Process(process::ProcessTask<R>),
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Ready(Result<R, TaskError>),
    /// Its outcome went to an `await`.
    Taken,
}

const TAKEN: &str = "a proctor::Task was used after an `await` on it completed";

impl<R> Task<R> {
    /// True once the task's outcome is ready: [`Task::join`] will not wait.
    ///
    /// ```
    /// # fn square(n: u64) -> u64 { n * n }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let task = pool.submit(square, 3);
    /// while !task.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert_eq!(task.join(), Ok(9));
    /// ```
    pub fn is_finished(&self) -> bool {
        match &self.inner {
            TaskInner::Thread(t) => t.is_finished(),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.is_finished(),
            TaskInner::Ready(_) | TaskInner::Taken => true,
        }
    }

    /// Cancels the task. A task still queued never runs. A running one: process mode kills
    /// its worker (and starts a replacement); thread mode cannot stop a thread, so the task
    /// runs on and this returns false. True if the task's outcome is now
    /// [`TaskError::Cancelled`] (false too when it had already finished).
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let busy = pool.submit(nap, 200);
    /// let queued = pool.submit(nap, 1);
    /// assert!(queued.cancel());
    /// assert!(queued.join().unwrap_err().is_cancelled());
    /// assert_eq!(busy.join(), Ok(200));
    /// ```
    pub fn cancel(&self) -> bool {
        match &self.inner {
            TaskInner::Thread(t) => t.cancel(),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.cancel(),
            TaskInner::Ready(_) | TaskInner::Taken => false,
        }
    }

    /// The task's outcome if it has finished, without waiting; otherwise the task back.
    ///
    /// # Errors
    ///
    /// `Err(task)` when the outcome is not ready yet: join it later.
    ///
    /// ```
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(std::time::Duration::from_millis(ms)); ms }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let task = pool.submit(nap, 100);
    /// let task = task.try_join().expect_err("not finished yet");
    /// assert_eq!(task.join(), Ok(100));
    /// ```
    pub fn try_join(self) -> Result<Result<R, TaskError>, Task<R>> {
        self.join_deadline(std::time::Instant::now())
    }

    /// Waits up to `timeout` for the task's outcome; the task back if it has none by then.
    /// The task itself goes on either way (its own limit is the pool's `task_timeout`).
    ///
    /// # Errors
    ///
    /// `Err(task)` when `timeout` passed first: join it later.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let task = pool.submit(nap, 300);
    /// let task = task.join_timeout(Duration::from_millis(1)).expect_err("still running");
    /// assert_eq!(task.join_timeout(Duration::from_secs(30)).ok(), Some(Ok(300)));
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<R, TaskError>, Task<R>> {
        self.join_deadline(std::time::Instant::now() + timeout)
    }

    fn join_deadline(self, deadline: std::time::Instant) -> Result<Result<R, TaskError>, Task<R>> {
        let back = |inner| Task { inner };
        match self.inner {
            TaskInner::Thread(t) => t
                .join_deadline(deadline)
                .map_err(|t| back(TaskInner::Thread(t))),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t
                .join_deadline(deadline)
                .map_err(|t| back(TaskInner::Process(t))),
            TaskInner::Ready(r) => Ok(r),
            TaskInner::Taken => panic!("{TAKEN}"),
        }
    }

    /// Waits for the task's outcome, and returns it with what the task wrote to stdout and
    /// stderr (see [`PoolBuilder::capture_output`](super::PoolBuilder::capture_output); without it the [`Output`] is empty).
    ///
    /// ```
    /// // Without capture (here a thread pool, which cannot capture) the output is empty.
    /// let pool = proctor::Pool::threads(1).build().unwrap();
    /// let (outcome, output) = pool.submit(|n: u64| n * 2, 4).join_captured();
    /// assert_eq!((outcome, output), (Ok(8), proctor::Output::default()));
    /// ```
    pub fn join_captured(self) -> (Result<R, TaskError>, Output) {
        match self.inner {
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.join_captured(),
            inner => (Task { inner }.join(), Output::default()),
        }
    }

    /// Waits for the task's outcome.
    ///
    /// With a `task_timeout`, a task that runs too long ends in [`TaskError::TimedOut`]; the
    /// timeout counts from when the task started on a worker.
    pub fn join(self) -> Result<R, TaskError> {
        match self.inner {
            TaskInner::Thread(t) => t.join(),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.join(),
            TaskInner::Ready(r) => r,
            TaskInner::Taken => panic!("{TAKEN}"),
        }
    }
}

// The task never pins its outcome in place (it is moved out whole), so a `Task` may move
// while awaited whatever `R` is.
impl<R> Unpin for Task<R> {}

/// `pool.submit(f, x).await` waits for the outcome without blocking the thread: the task's
/// handle is a `Future`, woken through the standard `Waker` (no runtime is assumed). The
/// waker runs with none of the pool's locks held, so a runtime whose waker polls inline may
/// `submit` more tasks (or drop the pool) from it; a waker that panics is contained and
/// logged, and the pool goes on.
///
/// Polling it again after it returned `Ready` panics, as the `Future` contract allows.
impl<R> std::future::Future for Task<R> {
    type Output = Result<R, TaskError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let poll = match &mut self.inner {
            TaskInner::Thread(t) => t.poll_outcome(cx),
            #[cfg(target_os = "linux")]
            TaskInner::Process(t) => t.poll_outcome(cx),
            TaskInner::Ready(_) => {
                let TaskInner::Ready(r) = std::mem::replace(&mut self.inner, TaskInner::Taken)
                else {
                    unreachable!("matched Ready above")
                };
                return Poll::Ready(r);
            }
            TaskInner::Taken => panic!("{TAKEN}"),
        };
        if poll.is_ready() {
            self.inner = TaskInner::Taken;
        }
        poll
    }
}
