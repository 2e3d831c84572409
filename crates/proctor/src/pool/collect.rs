//! How a `map`'s outcomes become its result: [`Assembler`] puts runs that arrive in any order
//! into input order, and a [`Collect`] decides what the call returns ([`All`] outcomes, or
//! values [`UntilError`]). Both backends fill them.

use super::thread;
use crate::error::TaskError;

/// Puts outcomes that arrive in runs, in any order, into one vector in input order.
///
/// Runs that continue the vector are appended at once (so assembly overlaps with the
/// workers' progress); runs that arrive early wait in a map until their turn.
#[derive(Debug)]
pub(crate) struct Assembler<T> {
    out: Vec<T>,
    parked: std::collections::BTreeMap<usize, Vec<T>>,
}

impl<T> Assembler<T> {
    pub(crate) fn new(n: usize) -> Assembler<T> {
        Assembler {
            out: Vec::with_capacity(n),
            parked: Default::default(),
        }
    }

    /// Adds the run of items that starts at index `first`.
    pub(crate) fn add(&mut self, first: usize, items: impl IntoIterator<Item = T>) {
        if first == self.out.len() {
            // `for_each`, not `extend`: it runs the iterator's own `fold`, which the process
            // pool's record decoder makes fast.
            items.into_iter().for_each(|item| self.out.push(item));
            self.unpark();
        } else {
            // `for_each` again (not `collect`), for the same fast decode.
            let items = items.into_iter();
            let mut run = Vec::with_capacity(items.size_hint().0);
            items.for_each(|item| run.push(item));
            self.parked.insert(first, run);
        }
    }

    /// Adds a run held in a vector (moved in one copy).
    pub(crate) fn add_run(&mut self, first: usize, mut run: Vec<T>) {
        if first == self.out.len() {
            self.out.append(&mut run);
            self.unpark();
        } else {
            self.parked.insert(first, run);
        }
    }

    /// Appends the parked runs that now continue the vector.
    fn unpark(&mut self) {
        while let Some(mut next) = self.parked.remove(&self.out.len()) {
            self.out.append(&mut next);
        }
    }

    /// The assembled vector; items never delivered are filled in by `missing(index)`.
    pub(crate) fn finish(mut self, n: usize, missing: impl Fn(usize) -> T) -> Vec<T> {
        self.unpark();
        while self.out.len() < n {
            self.out.push(missing(self.out.len()));
            self.unpark();
        }
        self.out
    }

    /// The assembled vector, or the index of the first item never delivered.
    pub(crate) fn complete(mut self, n: usize) -> Result<Vec<T>, usize> {
        self.unpark();
        if self.out.len() < n {
            Err(self.out.len())
        } else {
            Ok(self.out)
        }
    }
}

/// What a map-like call keeps of its outcomes: [`All`] of them (`map`), or the values until a
/// task fails ([`UntilError`], `try_map`, which then needs no room for errors: 8 bytes per
/// `u64` result instead of 32).
pub(crate) trait Collect<R>: Send + 'static {
    /// What the call returns.
    type Output;
    /// Room for `n` outcomes.
    fn with_len(n: usize) -> Self;
    /// Outcomes for items `first..`, in order.
    fn add(&mut self, first: usize, outcomes: impl Iterator<Item = Result<R, TaskError>>);
    /// Outcomes for items `first..`, in order, held in a vector.
    fn add_run(&mut self, first: usize, outcomes: Vec<Result<R, TaskError>>) {
        self.add(first, outcomes.into_iter());
    }
    /// Results of items `first..` that all succeeded (the common case, 8 bytes a `u64`
    /// instead of an outcome's 32).
    fn add_values(&mut self, first: usize, values: Vec<R>) {
        self.add(first, values.into_iter().map(Ok));
    }
    /// The result; a missing item gets a `Cancelled` error that names its index.
    fn finish(self, n: usize) -> Self::Output;
    /// Runs `f` over `items` on `threads`, each result written in place (thread mode); or
    /// gives the items back (the default), for a
    /// collector that is faster through the pool's own workers.
    fn in_place<A, F>(
        threads: &thread::MapThreads,
        f: F,
        items: Vec<A>,
    ) -> Result<Self::Output, Vec<A>>
    where
        A: Send,
        F: Fn(A) -> R + Sync,
    {
        let _ = (threads, f);
        Err(items)
    }
}

/// Every outcome, in input order.
#[derive(Debug)]
pub(crate) struct All<R>(Assembler<Result<R, TaskError>>);

impl<R: Send + 'static> Collect<R> for All<R> {
    type Output = Vec<Result<R, TaskError>>;

    fn with_len(n: usize) -> Self {
        All(Assembler::new(n))
    }

    fn add(&mut self, first: usize, outcomes: impl Iterator<Item = Result<R, TaskError>>) {
        self.0.add(first, outcomes);
    }

    fn add_run(&mut self, first: usize, outcomes: Vec<Result<R, TaskError>>) {
        self.0.add_run(first, outcomes);
    }

    fn finish(self, n: usize) -> Self::Output {
        self.0
            .finish(n, |i| Err(TaskError::Cancelled { index: i as u64 }))
    }
    // Not `in_place`: an outcome has room for an error (32 bytes for a `u64`), and writing
    // those from the work-stealing threads measured slower (5.4 ms against 3.9 for a million
    // `u64`, pinned) than the pool's workers returning bare values that are wrapped once here.
}

/// The values in input order, or the failure with the lowest index.
#[derive(Debug)]
pub(crate) struct UntilError<R> {
    values: Assembler<R>,
    error: Option<(usize, TaskError)>,
}

impl<R: Send + 'static> Collect<R> for UntilError<R> {
    type Output = Result<Vec<R>, TaskError>;

    fn with_len(n: usize) -> Self {
        UntilError {
            values: Assembler::new(n),
            error: None,
        }
    }

    fn add(&mut self, first: usize, outcomes: impl Iterator<Item = Result<R, TaskError>>) {
        let lower = |i: usize, error: &Option<(usize, TaskError)>| {
            error.as_ref().is_none_or(|(e, _)| i < *e)
        };
        if self.error.is_some() {
            // Values no longer matter; only an earlier failure would.
            for (k, o) in outcomes.enumerate() {
                if let Err(e) = o {
                    if lower(first + k, &self.error) {
                        self.error = Some((first + k, e));
                    }
                    break;
                }
            }
            return;
        }
        let mut failed = None;
        let mut k = 0;
        let mut outcomes = outcomes;
        let values = outcomes.by_ref().map_while(|o| match o {
            Ok(v) => {
                k += 1;
                Some(v)
            }
            Err(e) => {
                failed = Some(e);
                None
            }
        });
        self.values.add(first, values);
        if let Some(e) = failed {
            self.error = Some((first + k, e));
            self.values = Assembler::new(0);
        }
    }

    fn add_values(&mut self, first: usize, values: Vec<R>) {
        if self.error.is_none() {
            self.values.add_run(first, values);
        }
    }

    fn finish(self, n: usize) -> Self::Output {
        if let Some((_, e)) = self.error {
            return Err(e);
        }
        self.values
            .complete(n)
            .map_err(|i| TaskError::Cancelled { index: i as u64 })
    }
    fn in_place<A, F>(
        threads: &thread::MapThreads,
        f: F,
        items: Vec<A>,
    ) -> Result<Self::Output, Vec<A>>
    where
        A: Send,
        F: Fn(A) -> R + Sync,
    {
        Ok(threads.values(f, items))
    }
}

#[cfg(test)]
mod tests {
    use super::Assembler;

    #[test]
    fn assembler_orders_runs_and_fills_gaps() {
        let mut a = Assembler::new(8);
        a.add(3, vec![3, 4]);
        assert_eq!(a.out.len(), 0);
        a.add(0, vec![0, 1, 2]);
        assert_eq!(a.out.len(), 5);
        a.add(6, vec![6]);
        assert_eq!(a.finish(8, |i| 100 + i), vec![0, 1, 2, 3, 4, 105, 6, 107]);
    }
}

#[cfg(test)]
mod collect_tests {
    use super::*;

    #[test]
    fn until_error_keeps_the_lowest_failure() {
        let mut c = UntilError::<u32>::with_len(6);
        c.add(
            3,
            &mut vec![Ok(3), Err(TaskError::Cancelled { index: 4 }), Ok(5)].into_iter(),
        );
        c.add(
            0,
            &mut vec![Ok(0), Err(TaskError::Cancelled { index: 1 }), Ok(2)].into_iter(),
        );
        assert_eq!(c.finish(6), Err(TaskError::Cancelled { index: 1 }));
        let mut c = UntilError::<u32>::with_len(4);
        c.add(2, &mut vec![Ok(2), Ok(3)].into_iter());
        c.add(0, &mut vec![Ok(0), Ok(1)].into_iter());
        assert_eq!(c.finish(4), Ok(vec![0, 1, 2, 3]));
        let mut c = UntilError::<u32>::with_len(3);
        c.add(0, &mut vec![Ok(0)].into_iter());
        assert_eq!(c.finish(3), Err(TaskError::Cancelled { index: 1 }));
    }
}
