//! Deserializing the structured payload into a `Vec` reserved beforehand: a forked consumer
//! may not allocate, so the array fills the reserved capacity and never grows it.

use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};

use super::Item;

/// Deserializes a JSON array of [`Item`]s into `into`, within its reserved capacity.
pub(in crate::experiment::ipc) fn decode_into(
    json: &[u8],
    into: &mut Vec<Item>,
) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_slice(json);
    Fill(into).deserialize(&mut de)?;
    de.end()
}

/// Fills a reserved `Vec` from a JSON array without growing it.
struct Fill<'a>(&'a mut Vec<Item>);

impl<'de> DeserializeSeed<'de> for Fill<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of items")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.0.clear();
        while let Some(item) = seq.next_element::<Item>()? {
            if self.0.len() == self.0.capacity() {
                return Err(de::Error::custom("more items than were reserved"));
            }
            self.0.push(item);
        }
        Ok(())
    }
}
