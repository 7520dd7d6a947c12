//! The compact encoding between the engine's C++ shim and Rust, inside the worker.
//!
//! The shim encodes a host function's argument; Rust decodes it into a [`BindingInput`]. Rust
//! encodes the reply; the shim decodes it into a JS value or a thrown error. Little-endian:
//!
//! | kind | argument (shim to Rust) | reply (Rust to shim) |
//! | --- | --- | --- |
//! | 0 | none | `undefined` |
//! | 1 | string | string |
//! | 2 | list: `u32` n, n strings | `Array` of strings |
//! | 3 | map: `u32` n, n key/value string pairs | `Map` |
//! | 4 | bytes | `Uint8Array` |
//! | 5 | JSON text of a plain object | throw `Error(message)` |
//! | 6 | - | throw `TypeError(message)` |
//! | 7 | - | a promise: an asynchronous call started; its id (`u64` as two `u32`) |
//!
//! A string or bytes is a `u32` length and that many bytes. Both sides check every length
//! against what is left before reading.

use crate::io::{BindingInput, BindingOutput, FunctionBindingIo, UdfError};
use std::collections::BTreeMap;

/// A reply that throws an `Error` in JS.
pub const REPLY_ERROR: u8 = 5;
/// A reply that throws a `TypeError` in JS.
pub const REPLY_TYPE_ERROR: u8 = 6;

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, UdfError> {
        let (&b, rest) = self.rest.split_first().ok_or_else(|| short("kind"))?;
        self.rest = rest;
        Ok(b)
    }

    fn u32(&mut self) -> Result<u32, UdfError> {
        if self.rest.len() < 4 {
            return Err(short("length"));
        }
        let (n, rest) = self.rest.split_at(4);
        self.rest = rest;
        Ok(u32::from_le_bytes([n[0], n[1], n[2], n[3]]))
    }

    fn bytes(&mut self) -> Result<&'a [u8], UdfError> {
        let n = self.u32()? as usize;
        if n > self.rest.len() {
            return Err(short("bytes"));
        }
        let (b, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(b)
    }

    fn string(&mut self) -> Result<String, UdfError> {
        let b = self.bytes()?;
        // The shim writes V8's UTF-8; anything else is replaced, never trusted.
        Ok(String::from_utf8_lossy(b).into_owned())
    }

    /// A count of items that each take at least `min_item` bytes: bounded by what is left.
    fn count(&mut self, min_item: usize) -> Result<usize, UdfError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_item) > self.rest.len() {
            return Err(short("count"));
        }
        Ok(n)
    }

    fn finish(self) -> Result<(), UdfError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(UdfError::Malformed(format!(
                "{} trailing bytes",
                self.rest.len()
            )))
        }
    }
}

fn short(what: &str) -> UdfError {
    UdfError::Malformed(format!("truncated {what}"))
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    // Lengths are bounded by the channel's frame cap (far below 4 GiB); saturate defensively.
    let n = u32::try_from(b.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&b[..n as usize]);
}

fn put_count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
}

/// Decodes an argument the shim encoded.
pub fn decode_arg(bytes: &[u8]) -> Result<BindingInput, UdfError> {
    let mut r = Reader { rest: bytes };
    let input = match r.u8()? {
        0 => BindingInput::None,
        1 => BindingInput::String(r.string()?),
        2 => {
            let n = r.count(4)?;
            BindingInput::List((0..n).map(|_| r.string()).collect::<Result<_, _>>()?)
        }
        3 => {
            let n = r.count(8)?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let k = r.string()?;
                m.insert(k, r.string()?);
            }
            BindingInput::Map(m)
        }
        4 => BindingInput::Bytes(r.bytes()?.to_vec()),
        5 => BindingInput::Json(r.string()?),
        k => return Err(UdfError::Malformed(format!("unknown argument kind {k}"))),
    };
    r.finish()?;
    Ok(input)
}

/// Encodes an argument as the shim does (tests and fuzzing).
pub fn encode_arg(input: &BindingInput) -> Vec<u8> {
    let mut out = Vec::new();
    match input {
        BindingInput::None => out.push(0),
        BindingInput::String(s) => put_tagged(&mut out, 1, s.as_bytes()),
        BindingInput::List(l) => put_list(&mut out, l),
        BindingInput::Map(m) => put_map(&mut out, m),
        BindingInput::Bytes(b) => put_tagged(&mut out, 4, b),
        BindingInput::Json(s) => put_tagged(&mut out, 5, s.as_bytes()),
    }
    out
}

fn put_tagged(out: &mut Vec<u8>, kind: u8, b: &[u8]) {
    out.push(kind);
    put_bytes(out, b);
}

fn put_list(out: &mut Vec<u8>, l: &[String]) {
    out.push(2);
    put_count(out, l.len());
    l.iter().for_each(|s| put_bytes(out, s.as_bytes()));
}

fn put_map(out: &mut Vec<u8>, m: &BTreeMap<String, String>) {
    out.push(3);
    put_count(out, m.len());
    for (k, v) in m {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

/// A reply that throws `Error(message)` (`kind` [`REPLY_ERROR`]) or `TypeError(message)`
/// ([`REPLY_TYPE_ERROR`]) in JS.
pub fn error_reply(kind: u8, message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_tagged(&mut out, kind, message.as_bytes());
    out
}

/// The reply that says an asynchronous call started: JS gets a promise that the reply of call
/// `call_id` will settle (kind 7, then the id as two little-endian `u32`s, low first).
pub fn pending_reply(call_id: u64) -> Vec<u8> {
    let mut out = vec![7u8];
    out.extend_from_slice(&(call_id as u32).to_le_bytes());
    out.extend_from_slice(&((call_id >> 32) as u32).to_le_bytes());
    out
}

/// The reply for a finished call: its errors joined into one thrown `Error` if there are any,
/// else its output.
pub fn encode_reply(io: &FunctionBindingIo) -> Vec<u8> {
    if !io.errors.is_empty() {
        return error_reply(REPLY_ERROR, &io.errors.join("; "));
    }
    let mut out = Vec::new();
    match &io.output {
        BindingOutput::None => out.push(0),
        BindingOutput::String(s) => put_tagged(&mut out, 1, s.as_bytes()),
        BindingOutput::List(l) => put_list(&mut out, l),
        BindingOutput::Map(m) => put_map(&mut out, m),
        BindingOutput::Bytes(b) => put_tagged(&mut out, 4, b),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn input() -> impl Strategy<Value = BindingInput> {
        prop_oneof![
            Just(BindingInput::None),
            ".*".prop_map(BindingInput::String),
            proptest::collection::vec(".*", 0..5).prop_map(BindingInput::List),
            proptest::collection::btree_map(".*", ".*", 0..5).prop_map(BindingInput::Map),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(BindingInput::Bytes),
            ".*".prop_map(BindingInput::Json),
        ]
    }

    proptest! {
        #[test]
        fn arguments_round_trip(i in input()) {
            prop_assert_eq!(decode_arg(&encode_arg(&i)).unwrap(), i);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_arg(&bytes);
        }

        #[test]
        fn truncations_are_errors(i in input(), cut in 0usize..64) {
            let full = encode_arg(&i);
            if cut < full.len() {
                prop_assert!(decode_arg(&full[..cut]).is_err());
            }
        }
    }

    #[test]
    fn a_huge_count_does_not_allocate() {
        let mut b = vec![2u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_arg(&b).is_err());
    }

    #[test]
    fn errors_win_over_output() {
        let mut io = FunctionBindingIo::default();
        io.set_output_string("x");
        io.add_error("bad");
        assert_eq!(encode_reply(&io), error_reply(REPLY_ERROR, "bad"));
    }
}
