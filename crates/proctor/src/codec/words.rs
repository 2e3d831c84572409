//! A serializer and a deserializer whose errors keep the user's text, for the error path
//! only (see the module above): postcard's error type drops what `Error::custom` is given,
//! at every level a value nests, so no adapter over postcard (erased-serde's included) keeps
//! a message raised inside an `Ok(..)` or a struct's field.
//!
//! * [`Walk`] serializes into nothing: it only walks the value, so the first `custom` error
//!   the user's `Serialize` raises comes back with its text. (Output does not matter: a
//!   `Serialize` fails the same way whatever it writes to, being asked for the same
//!   non-human-readable format as postcard's.)
//! * [`Reader`] decodes postcard's wire format (varints, zigzag, length-prefixed sequences
//!   and strings, variant indices), which the message needs to be reached at all.
//!
//! Written by hand: no crate decodes postcard's format with an error that keeps text.

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};

/// An error with its text: the user's (`Custom`), or the walk's own.
#[derive(Debug)]
pub(crate) enum Words {
    Custom(String),
    Format(&'static str),
}

impl std::fmt::Display for Words {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Words::Custom(m) => f.write_str(m),
            Words::Format(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Words {}

impl ser::Error for Words {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Words::Custom(msg.to_string())
    }
}

impl de::Error for Words {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Words::Custom(msg.to_string())
    }
}

/// The user's own message where serializing `value` raises one.
pub(crate) fn ser_message<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    match value.serialize(Walk) {
        Err(Words::Custom(m)) => Some(m),
        _ => None,
    }
}

/// The user's own message where decoding `bytes` as a `T` raises one.
pub(crate) fn de_message<T: de::DeserializeOwned>(bytes: &[u8]) -> Option<String> {
    match T::deserialize(&mut Reader::new(bytes)) {
        Err(Words::Custom(m)) => Some(m),
        _ => None,
    }
}

/// Serializes into nothing.
pub(crate) struct Walk;

type Done = Result<(), Words>;

/// Scalars: nothing to walk.
macro_rules! walk_scalars {
    ($($method:ident($ty:ty)),* $(,)?) => {$(
        fn $method(self, _: $ty) -> Done {
            Ok(())
        }
    )*};
}

impl ser::Serializer for Walk {
    type Ok = ();
    type Error = Words;
    type SerializeSeq = Walk;
    type SerializeTuple = Walk;
    type SerializeTupleStruct = Walk;
    type SerializeTupleVariant = Walk;
    type SerializeMap = Walk;
    type SerializeStruct = Walk;
    type SerializeStructVariant = Walk;

    fn is_human_readable(&self) -> bool {
        false
    }
    walk_scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_bytes(&[u8]),
        serialize_unit_struct(&'static str),
    );
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Done {
        Ok(())
    }
    fn serialize_none(self) -> Done {
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Done {
        v.serialize(Walk)
    }
    fn serialize_unit(self) -> Done {
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, v: &T) -> Done {
        v.serialize(Walk)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> Done {
        v.serialize(Walk)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Walk, Words> {
        Ok(Walk)
    }
    fn serialize_tuple(self, _: usize) -> Result<Walk, Words> {
        Ok(Walk)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Walk, Words> {
        Ok(Walk)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, Words> {
        Ok(Walk)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Walk, Words> {
        Ok(Walk)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Walk, Words> {
        Ok(Walk)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Walk, Words> {
        Ok(Walk)
    }
}

/// The compound parts of a value, walked element by element: the same body for each of
/// serde's seven traits, whose methods differ in name and in a field name.
macro_rules! walk_parts {
    ($($part:ident :: $method:ident $(($name:ty))?),* $(,)?) => {$(
        impl ser::$part for Walk {
            type Ok = ();
            type Error = Words;
            fn $method<T: Serialize + ?Sized>(&mut self, $(_: $name,)? v: &T) -> Done {
                v.serialize(Walk)
            }
            fn end(self) -> Done {
                Ok(())
            }
        }
    )*};
}

walk_parts!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
    SerializeStruct::serialize_field(&'static str),
    SerializeStructVariant::serialize_field(&'static str),
);

impl ser::SerializeMap for Walk {
    type Ok = ();
    type Error = Words;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Done {
        k.serialize(Walk)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Done {
        v.serialize(Walk)
    }
    fn end(self) -> Done {
        Ok(())
    }
}

/// Decodes postcard's wire format from `input`.
pub(crate) struct Reader<'de> {
    input: &'de [u8],
}

impl<'de> Reader<'de> {
    pub(crate) fn new(input: &'de [u8]) -> Self {
        Reader { input }
    }
}

const CUT: Words = Words::Format("the bytes end early");

impl<'de> Reader<'de> {
    fn take(&mut self, n: usize) -> Result<&'de [u8], Words> {
        if n > self.input.len() {
            return Err(CUT);
        }
        let (head, tail) = self.input.split_at(n);
        self.input = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, Words> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned varint of at most `bits` bits.
    fn varint(&mut self, bits: u32) -> Result<u128, Words> {
        let mut v: u128 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return if bits < 128 && v >> bits != 0 {
                    Err(Words::Format("a varint overflows its type"))
                } else {
                    Ok(v)
                };
            }
            shift += 7;
            if shift >= bits + 7 {
                return Err(Words::Format("a varint runs too long"));
            }
        }
    }

    /// A zigzag-encoded signed varint of at most `bits` bits.
    fn zigzag(&mut self, bits: u32) -> Result<i128, Words> {
        let u = self.varint(bits)?;
        Ok(((u >> 1) as i128) ^ -((u & 1) as i128))
    }

    fn len(&mut self) -> Result<usize, Words> {
        usize::try_from(self.varint(64)?).map_err(|_| Words::Format("a length overflows"))
    }

    fn bytes(&mut self) -> Result<&'de [u8], Words> {
        let n = self.len()?;
        self.take(n)
    }

    fn str(&mut self) -> Result<&'de str, Words> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Words::Format("a string is not UTF-8"))
    }
}

/// Integers wider than a byte: varints (zigzag for the signed), of at most so many bits.
macro_rules! read_ints {
    ($($method:ident $visit:ident $read:ident $bits:literal $ty:ty),* $(,)?) => {$(
        fn $method<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
            v.$visit(self.$read($bits)? as $ty)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Words;

    fn is_human_readable(&self) -> bool {
        false
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Words> {
        Err(Words::Format("the format is not self-describing"))
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        match self.byte()? {
            0 => v.visit_bool(false),
            1 => v.visit_bool(true),
            _ => Err(Words::Format("a bool is neither 0 nor 1")),
        }
    }
    fn deserialize_i8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        v.visit_i8(self.byte()? as i8)
    }
    read_ints!(
        deserialize_i16 visit_i16 zigzag 16 i16,
        deserialize_i32 visit_i32 zigzag 32 i32,
        deserialize_i64 visit_i64 zigzag 64 i64,
        deserialize_i128 visit_i128 zigzag 128 i128,
        deserialize_u16 visit_u16 varint 16 u16,
        deserialize_u32 visit_u32 varint 32 u32,
        deserialize_u64 visit_u64 varint 64 u64,
        deserialize_u128 visit_u128 varint 128 u128,
    );
    fn deserialize_u8<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        v.visit_u8(self.byte()?)
    }
    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        let b = self.take(4)?;
        v.visit_f32(f32::from_le_bytes(b.try_into().expect("4 bytes")))
    }
    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        let b = self.take(8)?;
        v.visit_f64(f64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn deserialize_char<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        let mut chars = self.str()?.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) => v.visit_char(c),
            _ => Err(Words::Format("a char is not one character")),
        }
    }
    fn deserialize_str<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        v.visit_borrowed_str(self.str()?)
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        self.deserialize_str(v)
    }
    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        v.visit_borrowed_bytes(self.bytes()?)
    }
    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        self.deserialize_bytes(v)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        match self.byte()? {
            0 => v.visit_none(),
            1 => v.visit_some(self),
            _ => Err(Words::Format("an option tag is neither 0 nor 1")),
        }
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        v.visit_unit()
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Words> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, Words> {
        v.visit_newtype_struct(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        let left = self.len()?;
        v.visit_seq(Items { r: self, left })
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, n: usize, v: V) -> Result<V::Value, Words> {
        v.visit_seq(Items { r: self, left: n })
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        n: usize,
        v: V,
    ) -> Result<V::Value, Words> {
        self.deserialize_tuple(n, v)
    }
    fn deserialize_map<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        let left = self.len()?;
        v.visit_map(Items { r: self, left })
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Words> {
        self.deserialize_tuple(fields.len(), v)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Words> {
        v.visit_enum(self)
    }
    fn deserialize_identifier<V: Visitor<'de>>(self, v: V) -> Result<V::Value, Words> {
        v.visit_u32(self.varint(32)? as u32)
    }
    fn deserialize_ignored_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Words> {
        Err(Words::Format("the format is not self-describing"))
    }
}

/// The elements of a sequence, tuple or map: `left` more to come.
struct Items<'a, 'de> {
    r: &'a mut Reader<'de>,
    left: usize,
}

impl<'de> de::SeqAccess<'de> for Items<'_, 'de> {
    type Error = Words;
    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Words> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn size_hint(&self) -> Option<usize> {
        // What serde preallocates from: no more than the bytes left could hold.
        Some(self.left.min(self.r.input.len()))
    }
}

impl<'de> de::MapAccess<'de> for Items<'_, 'de> {
    type Error = Words;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Words> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(&mut *self.r).map(Some)
    }
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Words> {
        seed.deserialize(&mut *self.r)
    }
    fn size_hint(&self) -> Option<usize> {
        Some(self.left.min(self.r.input.len()))
    }
}

impl<'de> de::EnumAccess<'de> for &mut Reader<'de> {
    type Error = Words;
    type Variant = Self;
    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), Words> {
        let index = self.varint(32)? as u32;
        let v = seed.deserialize(IntoDeserializer::<Words>::into_deserializer(index))?;
        Ok((v, self))
    }
}

impl<'de> de::VariantAccess<'de> for &mut Reader<'de> {
    type Error = Words;
    fn unit_variant(self) -> Result<(), Words> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, Words> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, n: usize, v: V) -> Result<V::Value, Words> {
        de::Deserializer::deserialize_tuple(self, n, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, Words> {
        de::Deserializer::deserialize_tuple(self, fields.len(), v)
    }
}
