//! A call's context, made once and reused while calls repeat it: `map_with`'s (and streams')
//! read-only value. Thread mode keeps the last plain context's encoding and value, so a call
//! whose context encodes to the same bytes shares that value instead of a new round trip
//! through the codec; process mode keeps the last `Context` frame the same way (`process/`).

use std::any::{Any, TypeId};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Whether `value` encodes to exactly `prev`, found as it is encoded: nothing is allocated,
/// and the encoding stops at the first byte that differs. A `Serialize` that fails or
/// panics is not the same (the panic is the caller's to contain).
pub(crate) fn same_encoding<T: Serialize + ?Sized>(value: &T, prev: &[u8]) -> bool {
    struct Same<'a> {
        prev: &'a [u8],
        at: usize,
    }
    impl postcard::ser_flavors::Flavor for Same<'_> {
        type Output = usize;
        #[inline]
        fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
            let end = self.at + data.len();
            if self.prev.get(self.at..end) != Some(data) {
                // Not an overflow: a difference, which ends the comparison.
                return Err(postcard::Error::SerializeBufferFull);
            }
            self.at = end;
            Ok(())
        }
        #[inline]
        fn try_push(&mut self, b: u8) -> postcard::Result<()> {
            self.try_extend(&[b])
        }
        fn finalize(self) -> postcard::Result<usize> {
            Ok(self.at)
        }
    }
    postcard::serialize_with_flavor(value, Same { prev, at: 0 }) == Ok(prev.len())
}

/// Thread mode's last plain context: its type, its encoding, and the value decoded from it.
struct Last {
    type_id: TypeId,
    bytes: Vec<u8>,
    value: Arc<dyn Any + Send + Sync>,
}

/// Thread mode's context cache (one per pool).
#[derive(Default)]
pub(crate) struct ThreadContexts {
    last: Mutex<Option<Arc<Last>>>,
}

impl std::fmt::Debug for ThreadContexts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadContexts").finish_non_exhaustive()
    }
}

impl ThreadContexts {
    /// The value the threads of a call with `context` share: the last call's, if `context`
    /// encodes to the same bytes, or one owned copy made by a round trip through the codec
    /// (so the bounds are those of process mode and no `Clone` is needed). The `Serialize`
    /// and `Deserialize` are the user's: a panic or an error in either is the `Err`, in the
    /// user's own words.
    pub(crate) fn get<C>(&self, context: &C) -> Result<Arc<C>, String>
    where
        C: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let last = self.lock().clone();
        if let Some(last) = last.filter(|l| l.type_id == TypeId::of::<C>()) {
            let same = crate::codec::guarded("Serialize", || same_encoding(context, &last.bytes));
            if same == Ok(true)
                && let Ok(value) = Arc::clone(&last.value).downcast::<C>()
            {
                return Ok(value);
            }
        }
        holds_shared();
        let bytes = crate::codec::guarded("Serialize", || postcard::to_allocvec(context))
            .and_then(|r| r.map_err(|e| crate::codec::ser_error(context, &e)))?;
        let value = crate::codec::guarded("Deserialize", || postcard::from_bytes::<C>(&bytes))
            .and_then(|r| r.map_err(|e| crate::codec::de_error::<C>(&bytes, &e)))?;
        let value = Arc::new(value);
        if holds_shared() {
            // Not kept: that would keep its regions alive after the caller dropped them, and
            // its round trip costs a handle's few bytes anyway.
            return Ok(value);
        }
        *self.lock() = Some(Arc::new(Last {
            type_id: TypeId::of::<C>(),
            bytes,
            value: Arc::clone(&value) as Arc<dyn Any + Send + Sync>,
        }));
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Last>>> {
        // Every change is one assignment: the slot is whole after any panic.
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Whether a [`crate::Shared`] or [`crate::SharedBytes`] was encoded on this thread since the
/// last call.
fn holds_shared() -> bool {
    #[cfg(target_os = "linux")]
    return crate::shared::take_serialized();
    #[cfg(not(target_os = "linux"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_encoding_is_true_only_for_exactly_the_same_bytes() {
        let v = (7u32, "a context".to_string(), vec![1u8, 2, 3]);
        let bytes = postcard::to_allocvec(&v).unwrap();
        assert!(same_encoding(&v, &bytes));
        // Another value of the same type and length, differing in its last byte.
        assert!(!same_encoding(
            &(7u32, "a context".to_string(), vec![1u8, 2, 4]),
            &bytes
        ));
        // A prefix of the encoding, and an encoding with a byte more.
        assert!(!same_encoding(&v, &bytes[..bytes.len() - 1]));
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(!same_encoding(&v, &longer));
        assert!(!same_encoding(&v, &[]));
    }

    #[test]
    fn a_thread_context_is_reused_only_while_calls_repeat_it() {
        let cache = ThreadContexts::default();
        let a = cache.get(&vec![1u64, 2, 3]).unwrap();
        let again = cache.get(&vec![1u64, 2, 3]).unwrap();
        assert!(Arc::ptr_eq(&a, &again), "the same bytes share one value");
        let b = cache.get(&vec![1u64, 2, 4]).unwrap();
        assert_eq!(*b, vec![1, 2, 4]);
        // Another type with the same encoding is decoded as its own type.
        let same_bytes = (3u8, 1u64, 2u64, 4u64);
        assert!(same_encoding(
            &same_bytes,
            &postcard::to_allocvec(&*b).unwrap()
        ));
        let c = cache.get(&same_bytes);
        assert_eq!(*c.unwrap(), (3, 1, 2, 4));
        let d = cache.get(&vec![1u64, 2, 4]).unwrap();
        assert!(!Arc::ptr_eq(&b, &d), "only the last context is kept");
    }
}
