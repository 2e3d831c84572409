//! Worker state and call context, kept in the thread that runs tasks (a worker process's
//! only thread, or a pool thread).
//!
//! * The *state* is what a worker initializer ([`crate::PoolBuilder::init_worker`]) returned:
//!   made once per worker, before its first task, and lent to every task of
//!   [`crate::Pool::map_state`] and [`crate::Pool::submit_state`].
//! * The *context* is the read-only value of one [`crate::Pool::map_with`] call: in process
//!   mode it is sent to a worker once, before the first of that call's jobs it runs, not once
//!   per item.
//!
//! Both are found by type: a task function is a zero-sized type (it carries nothing), so the
//! adapter that hands it the state is zero-sized too, and the same code runs in a worker
//! process, which looks the value up in its own thread-local slot.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

thread_local! {
    static STATE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// Why this thread's initializer failed (thread mode: the thread lives on without state).
    static INIT_FAILED: RefCell<Option<String>> = const { RefCell::new(None) };
    static CONTEXT: RefCell<Option<Result<Box<dyn Any>, String>>> = const { RefCell::new(None) };
}

/// Runs a worker initializer in this thread and keeps its value as the thread's state.
/// `Err` holds the panic's message if it panicked.
pub(crate) type InitFn = fn() -> Result<(), String>;

/// Decodes a call's context from its bytes and keeps it as this thread's context.
#[cfg(target_os = "linux")]
pub(crate) type ContextFn = fn(&[u8]);

/// The [`InitFn`] of the initializer `I`.
pub(crate) fn init_entry<S: 'static, I: Fn() -> S + Copy>() -> Result<(), String> {
    let init: I = conjure::<I>();
    match catch_unwind(AssertUnwindSafe(init)) {
        Ok(state) => {
            STATE.with(|s| *s.borrow_mut() = Some(Box::new(state)));
            Ok(())
        }
        Err(payload) => {
            let (message, location) = crate::panic::details(payload.as_ref());
            let why = match location {
                Some(at) => format!("{message} (at {at})"),
                None => message,
            };
            INIT_FAILED.with(|f| *f.borrow_mut() = Some(why.clone()));
            Err(why)
        }
    }
}

/// Calls `f` with this worker's state. Panics (a `Panicked` outcome for the task) if this
/// worker has none of type `S` — its initializer failed (only a replacement thread can live
/// on in that state: a worker process whose initializer failed is gone).
pub(crate) fn with_state<S: 'static, R>(f: impl FnOnce(&S) -> R) -> R {
    STATE.with(|slot| {
        let state = slot.borrow();
        if let Some(s) = state.as_ref().and_then(|s| s.downcast_ref::<S>()) {
            return f(s);
        }
        // A pool without an initializer has the state `()`.
        if let Some(unit) = (&() as &dyn Any).downcast_ref::<S>() {
            return f(unit);
        }
        let why = INIT_FAILED.with(|w| w.borrow().clone());
        match why {
            Some(why) => panic!("this worker has no state: its initializer panicked: {why}"),
            None => panic!("this worker has no state: its initializer never ran"),
        }
    })
}

/// The [`ContextFn`] of context type `C`: a context that does not decode is kept as the
/// reason, and each task of its call fails with it.
#[cfg(target_os = "linux")]
pub(crate) fn context_entry<C: serde::de::DeserializeOwned + 'static>(bytes: &[u8]) {
    let decoded = match catch_unwind(|| postcard::from_bytes::<C>(bytes)) {
        Ok(Ok(c)) => Ok(Box::new(c) as Box<dyn Any>),
        Ok(Err(e)) => Err(crate::codec::de_error::<C>(bytes, &e)),
        Err(payload) => Err(format!(
            "Deserialize panicked: {}",
            crate::panic::details(payload.as_ref()).0
        )),
    };
    CONTEXT.with(|c| *c.borrow_mut() = Some(decoded));
}

/// How the error of a task whose call's context did not decode begins.
#[cfg(target_os = "linux")]
const CONTEXT_ERROR: &str = "the call's context could not be decoded: ";

/// Whether `outcome` is the error of a task whose call's context did not decode.
#[cfg(target_os = "linux")]
pub(crate) fn is_context_error<R>(outcome: &Result<R, crate::TaskError>) -> bool {
    matches!(outcome, Err(crate::TaskError::Codec { message, .. }) if message.starts_with(CONTEXT_ERROR))
}

/// Calls `f` with the context this worker was sent for the current call.
#[cfg(target_os = "linux")]
pub(crate) fn with_context<C: 'static, R>(f: impl FnOnce(&C) -> R) -> R {
    CONTEXT.with(|slot| match slot.borrow().as_ref() {
        Some(Ok(c)) => match c.downcast_ref::<C>() {
            Some(c) => f(c),
            None => panic!("this worker holds the context of another call"),
        },
        // The task's codec error, not a panic of its own.
        Some(Err(why)) => {
            std::panic::panic_any(crate::codec::Undecodable(format!("{CONTEXT_ERROR}{why}")))
        }
        None => panic!("this worker was sent no context for the call"),
    })
}

/// Makes a value of the zero-sized task type `F`.
pub(crate) fn conjure<F: Copy>() -> F {
    // Checked at run time: the public entry points refuse other types at compile time (see
    // `pool::plain_fn`), and a second compile-time check here would only add a second error.
    assert!(
        std::mem::size_of::<F>() == 0,
        "conjure: a task type with data"
    );
    // SAFETY: `F` is zero-sized (asserted just above), so a value of it has no bytes
    // and reading one from a dangling, well-aligned pointer is defined. Every value of a fn
    // item or closure type without captures is the same value. The pool only accepts
    // `F: Fn(..) -> R + Copy`, which on stable Rust only fn items, fn pointers and closures
    // implement; the zero-size assertion rules out fn pointers and capturing closures.
    unsafe { std::ptr::NonNull::<F>::dangling().as_ptr().read() }
}
