//! What a failed `Serialize` or `Deserialize` says, in the user's own words.
//!
//! postcard's error type keeps no text: a `Deserialize` that returns
//! `Err(D::Error::custom("message raised in child"))` comes back as "Serde Deserialization
//! Error", and the user's reason is lost. The fast path stays postcard's (an error costs
//! nothing until it happens); when one happens, the value is encoded or decoded once more by
//! [`words`], whose error keeps the text, to find what the user said.
//!
//! A `Serialize` or `Deserialize` that panics is user code too: [`guarded`] turns the panic
//! into an error for the task it belongs to.
//!
//! A leaf below the pool, the worker and the worker state: it imports only `panic`.

mod words;

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
    // Decoded again: it panics, or decodes this time, and postcard's word is all there is.
    catch_unwind(AssertUnwindSafe(|| words::de_message::<T>(bytes)))
        .ok()
        .flatten()
        .unwrap_or_else(|| e.to_string())
}

/// Why `value` did not encode, given postcard's error `e`: the user's own message where
/// their `Serialize` gave one.
#[cold]
#[inline(never)]
pub(crate) fn ser_error<T: Serialize + ?Sized>(value: &T, e: &postcard::Error) -> String {
    if *e != postcard::Error::SerdeSerCustom {
        return e.to_string();
    }
    catch_unwind(AssertUnwindSafe(|| words::ser_message(value)))
        .ok()
        .flatten()
        .unwrap_or_else(|| e.to_string())
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

    /// Nested: inside an `Ok`, a struct's field, a `Vec`, an `Option`, a map.
    #[derive(Debug, Serialize, Deserialize)]
    struct Nest {
        a: u8,
        inner: Vec<Option<Result<Picky, String>>>,
    }

    #[test]
    fn nested_values_keep_the_users_words_too() {
        let bytes = postcard::to_allocvec(&(3u8, vec![Some(Ok::<u8, String>(9))])).unwrap();
        let e = postcard::from_bytes::<Nest>(&bytes).unwrap_err();
        assert_eq!(de_error::<Nest>(&bytes, &e), "message raised in child (9)");
        let mut map = std::collections::BTreeMap::new();
        map.insert("k".to_string(), (1u64, Picky));
        let value = Ok::<_, ()>(map);
        let e = postcard::to_allocvec(&value).unwrap_err();
        assert_eq!(ser_error(&value, &e), "message raised in parent");
    }

    /// Every kind of value postcard encodes, decoded by the message reader as postcard does.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Unit,
        New(i16),
        Tuple(u32, char),
        Struct { x: f32, y: Option<i128> },
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Everything {
        b: bool,
        small: (u8, i8, u16, i32, i64, u128),
        big: (u64, u32, i64),
        f: f64,
        s: String,
        bytes: serde_bytes::ByteBuf,
        shapes: Vec<Shape>,
        map: std::collections::BTreeMap<String, Vec<u8>>,
        unit: (),
        nested: Option<Box<Everything>>,
    }

    #[test]
    fn the_message_reader_reads_postcards_format() {
        let leaf = Everything {
            b: true,
            small: (255, -128, 65_535, i32::MIN, -1, u128::MAX),
            big: (u64::MAX, 300, i64::MAX),
            f: -2.5e300,
            s: "héllo".into(),
            bytes: serde_bytes::ByteBuf::from(vec![0, 1, 255]),
            shapes: vec![
                Shape::Unit,
                Shape::New(-300),
                Shape::Tuple(7, 'ß'),
                Shape::Struct {
                    x: 1.5,
                    y: Some(-5),
                },
                Shape::Struct { x: 0.0, y: None },
            ],
            map: [("a".to_string(), vec![1, 2]), ("b".to_string(), vec![])].into(),
            unit: (),
            nested: None,
        };
        let all = Everything {
            nested: Some(Box::new(leaf)),
            ..Everything {
                b: false,
                small: (0, 0, 0, 0, 0, 0),
                big: (0, 0, i64::MIN),
                f: 0.0,
                s: String::new(),
                bytes: serde_bytes::ByteBuf::new(),
                shapes: vec![],
                map: Default::default(),
                unit: (),
                nested: None,
            }
        };
        let bytes = postcard::to_allocvec(&all).unwrap();
        let back = Everything::deserialize(&mut words::Reader::new(&bytes)).unwrap();
        assert_eq!(back, all);
        // Cut short anywhere: an error, never a panic.
        for n in 0..bytes.len() {
            assert!(Everything::deserialize(&mut words::Reader::new(&bytes[..n])).is_err());
        }
    }

    /// The reader decodes bytes a worker wrote (a result that failed to decode): on any bytes
    /// it ends in an error or a value, never a panic, and allocates no more than they hold.
    #[test]
    fn the_message_reader_survives_any_bytes() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = Everything::deserialize(&mut words::Reader::new(&bytes));
            let _ = words::de_message::<Vec<(String, Option<Shape>)>>(&bytes);
            let _ = de_error::<Nest>(&bytes, &postcard::Error::SerdeDeCustom);
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
