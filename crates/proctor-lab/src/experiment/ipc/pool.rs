//! The pool's round trips beside the transports': a trivial task submitted and joined on a
//! thread pool, a local process pool and a remote worker over loopback TCP.

use super::*;

pub(super) fn add_one(n: u64) -> u64 {
    n + 1
}

/// Pins a worker process to the first CPU it may run on: the CPU the lab pins itself to (a
/// remote agent started from the pinned thread has only that one already).
pub(super) fn pin_worker() {
    if let Some(&cpu) = measure::allowed_cpus().first() {
        measure::pin_to_raw(cpu);
    }
}

/// The CPUs a worker may run on, to check its pin.
pub(super) fn worker_cpus(_: ()) -> Vec<usize> {
    measure::allowed_cpus()
}

impl PoolKind {
    /// A one-worker pool of this kind, its worker pinned to `pin` when given.
    pub(super) fn build(self, pin: Option<usize>) -> Result<proctor::Pool<()>> {
        let b = match self {
            PoolKind::Thread => return Ok(proctor::Pool::threads(1).build()?),
            PoolKind::Process => proctor::Pool::processes(1),
            PoolKind::Remote => {
                proctor::Pool::processes(1).remote(crate::experiment::loopback_remote())
            }
        };
        let b = b.forward_stderr(false);
        let b = if pin.is_some() {
            b.init_worker(pin_worker)
        } else {
            b
        };
        let pool = b
            .build()
            .with_context(|| format!("building a one-worker pool with a {}", self.label()))?;
        if let Some(cpu) = pin {
            let cpus = pool
                .submit(worker_cpus, ())
                .join()
                .context("asking the worker for its CPUs")?;
            if cpus != [cpu] {
                bail!(
                    "the {} runs on CPUs {cpus:?}, not on cpu {cpu} with the lab",
                    self.label()
                );
            }
        }
        Ok(pool)
    }
}

/// The pool round trip, `submit(add_one, n).join()`, on a fresh one-worker pool of `kind` at
/// `placement` (pinned or unpinned).
pub(super) fn pool_rtt(kind: PoolKind, placement: Placement, plan: &Plan) -> Result<Measurement> {
    // Pinned before the build: the pool's own threads, and a remote agent, inherit it.
    let _pin = match placement.cpus() {
        Some((cpu, _)) => Some(measure::pin_current_thread(cpu)?),
        None => None,
    };
    let pool = kind.build(placement.cpus().map(|(cpu, _)| cpu))?;
    let mut i = 0u64;
    let m = measure::measure(plan, |n, sampler| {
        time_ops(n, sampler, || {
            i += 1;
            let out = pool
                .submit(add_one, black_box(i))
                .join()
                .context("the round-trip task")?;
            if out != i + 1 {
                bail!("the worker returned {out} for {i}, not {}", i + 1);
            }
            Ok(())
        })
    })?;
    drop(pool);
    Ok(m)
}
