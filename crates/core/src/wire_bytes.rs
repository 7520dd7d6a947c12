//! Byte buffers on the wire as one run of bytes, not as a sequence of numbers.
//!
//! serde sees a `Vec<u8>` as a sequence of `u8`, so a format encodes and decodes it one
//! element at a time: for a 10 MB WASM module or host-function argument that is ten million
//! calls through the decoder (seconds in a debug build, milliseconds in a release one). With
//! `#[serde(with = "roma_core::wire_bytes")]` the buffer goes through `serialize_bytes` and
//! `deserialize_byte_buf`: one length and one copy. In bincode the two forms are the same
//! bytes (a length, then the raw bytes), so the change is not visible on the wire; the
//! decoder's size limit still bounds the length before anything is allocated.

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserializer, Serializer};
use std::fmt;

/// Serializes `bytes` as one byte run.
pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytes)
}

/// Deserializes a byte run (or, from a format that has none, a sequence of `u8`).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    d.deserialize_byte_buf(ByteBuf)
}

struct ByteBuf;

impl<'de> Visitor<'de> for ByteBuf {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a byte buffer")
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }

    fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
        // The hint comes from the input: it bounds nothing, so it only caps the first
        // allocation.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(b) = seq.next_element::<u8>()? {
            out.push(b);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Plain {
        a: u64,
        b: Vec<u8>,
        c: String,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct Run {
        a: u64,
        #[serde(with = "super")]
        b: Vec<u8>,
        c: String,
    }

    fn bincode_of<T: Serialize>(v: &T) -> Vec<u8> {
        bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap_or_default()
    }

    proptest! {
        /// The byte run is the same bincode as the plain `Vec<u8>`, both ways: a peer built
        /// with either form reads the other's bytes.
        #[test]
        fn a_byte_run_is_the_same_bincode_as_a_plain_vec(
            a in any::<u64>(),
            b in proptest::collection::vec(any::<u8>(), 0..600),
            c in ".{0,20}",
        ) {
            let plain = Plain { a, b: b.clone(), c: c.clone() };
            let run = Run { a, b, c };
            let bytes = bincode_of(&run);
            prop_assert_eq!(&bytes, &bincode_of(&plain));
            let cfg = bincode::config::standard();
            let (back, used): (Run, usize) =
                bincode::serde::decode_from_slice(&bytes, cfg).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(&back, &run);
            let (plain_back, _): (Plain, usize) =
                bincode::serde::decode_from_slice(&bytes, cfg).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(plain_back, plain);
        }
    }

    #[test]
    fn a_length_past_the_input_is_an_error_not_an_allocation() {
        // a = 0, then a length of 2^40 for `b` with three bytes behind it.
        let mut bytes = vec![0u8];
        bytes.push(253);
        bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
        bytes.extend_from_slice(&[1, 2, 3]);
        let cfg = bincode::config::standard().with_limit::<{ 1 << 20 }>();
        assert!(bincode::serde::decode_from_slice::<Run, _>(&bytes, cfg).is_err());
    }
}
