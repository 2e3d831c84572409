//! Panic details (message and location) for tasks whose panics are caught.

use std::cell::{Cell, RefCell};

thread_local! {
    static LAST_PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
    static QUIET_PANICS: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once) a panic hook that records each panic's location for [`details`],
/// then defers to the previous hook unless this thread asked for quiet panics.
pub(crate) fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let loc = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()));
            LAST_PANIC_LOCATION.with(|c| *c.borrow_mut() = loc);
            if !QUIET_PANICS.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
}

/// The message and location of a caught panic.
pub(crate) fn details(payload: &(dyn std::any::Any + Send)) -> (String, Option<String>) {
    let message = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    };
    let location = LAST_PANIC_LOCATION.with(|c| c.borrow_mut().take());
    (message, location)
}

/// Silences the printing of caught panics on this thread (worker processes and pool threads,
/// where the panic becomes a typed error instead).
pub(crate) fn set_quiet(quiet: bool) {
    QUIET_PANICS.with(|q| q.set(quiet));
}

/// Wakes `waker` (user code: an async runtime's), containing a panic: a waker that panics
/// must not take down the pool thread that delivered the outcome (the supervisor, a worker
/// thread), or every later task would wait on a thread that is gone. The panic is logged.
pub(crate) fn wake_contained(waker: std::task::Waker) {
    let woke = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake()));
    if let Err(payload) = woke {
        let (message, _) = details(payload.as_ref());
        log::error!("proctor: a task's waker panicked (the pool goes on): {message}");
    }
}
