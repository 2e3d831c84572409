//! What a failed `Serialize` or `Deserialize` says, in the user's own words.
//!
//! postcard's error type keeps no text: a `Deserialize` that returns
//! `Err(D::Error::custom("message raised in child"))` comes back as "Serde Deserialization
//! Error", and the user's reason is lost. The fast path stays postcard's (an error costs
//! nothing until it happens); when one happens, the value is encoded or decoded once more
//! through `erased-serde`, whose error keeps the text, to find what the user said. (No crate
//! gives postcard's codec an error with text; this wrapper is written here for that.)
//!
//! A `Serialize` or `Deserialize` that panics is user code too: [`guarded`] turns the panic
//! into an error for the task it belongs to.

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The payload of a panic that means "this task's input could not be decoded" (a
/// `map_with` context, found undecodable only when a task asks for it): the worker commits
/// it as the task's `Codec` error, not as a panic of the task's own.
#[derive(Debug)]
pub(crate) struct Undecodable(pub(crate) String);

/// Why `bytes` did not decode as a `T`, given postcard's error `e`: the user's own message
/// where their `Deserialize` gave one.
#[cold]
#[inline(never)]
pub(crate) fn de_error<T: DeserializeOwned>(bytes: &[u8], e: &postcard::Error) -> String {
    if *e != postcard::Error::SerdeDeCustom {
        return e.to_string();
    }
    let again = catch_unwind(AssertUnwindSafe(|| {
        let mut de = postcard::Deserializer::from_bytes(bytes);
        let mut erased = <dyn erased_serde::Deserializer>::erase(&mut de);
        erased_serde::deserialize::<T>(&mut erased).err()
    }));
    match again {
        Ok(Some(why)) => why.to_string(),
        // It decoded the second time, or panicked: postcard's word is all there is.
        _ => e.to_string(),
    }
}

/// Why `value` did not encode, given postcard's error `e`: the user's own message where
/// their `Serialize` gave one.
#[cold]
#[inline(never)]
pub(crate) fn ser_error<T: Serialize + ?Sized>(value: &T, e: &postcard::Error) -> String {
    if *e != postcard::Error::SerdeSerCustom {
        return e.to_string();
    }
    let again = catch_unwind(AssertUnwindSafe(|| {
        let mut ser = postcard::Serializer {
            output: postcard::ser_flavors::Size::default(),
        };
        let mut erased = <dyn erased_serde::Serializer>::erase(&mut ser);
        erased_serde::Serialize::erased_serialize(value, &mut erased).err()
    }));
    match again {
        Ok(Some(why)) => why.to_string(),
        _ => e.to_string(),
    }
}

/// Runs `f`, a call into a user's `Serialize` or `Deserialize`; a panic becomes `Err` with
/// its message ("Serialize panicked: ..." for `what` = "Serialize").
#[inline]
pub(crate) fn guarded<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, String> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| panicked(what, payload.as_ref()))
}

#[cold]
#[inline(never)]
fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> String {
    let (message, _) = crate::panic::details(payload);
    format!("{what} panicked: {message}")
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::*;

    #[derive(Debug)]
    struct Picky;

    impl Serialize for Picky {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("message raised in parent"))
        }
    }

    impl<'de> Deserialize<'de> for Picky {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let n = u8::deserialize(d)?;
            Err(serde::de::Error::custom(format!(
                "message raised in child ({n})"
            )))
        }
    }

    #[test]
    fn the_users_own_words_survive_postcards_error() {
        let e = postcard::from_bytes::<Picky>(&[7]).unwrap_err();
        assert_eq!(de_error::<Picky>(&[7], &e), "message raised in child (7)");
        let e = postcard::to_allocvec(&Picky).unwrap_err();
        assert_eq!(ser_error(&Picky, &e), "message raised in parent");
        // postcard's own errors keep postcard's text.
        let e = postcard::from_bytes::<u64>(&[]).unwrap_err();
        assert_eq!(de_error::<u64>(&[], &e), e.to_string());
    }

    #[test]
    fn a_panic_is_an_error_with_its_message() {
        crate::panic::install_hook();
        let r = guarded("Serialize", || -> u8 { panic!("boom") });
        assert_eq!(r.unwrap_err(), "Serialize panicked: boom");
        assert_eq!(guarded("Serialize", || 3), Ok(3));
    }
}
