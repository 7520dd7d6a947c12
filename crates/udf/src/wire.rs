//! The compact encoding between the engine's C++ shim and Rust, inside the worker.
//!
//! The shim encodes a host function's argument; Rust decodes it into a [`BindingInput`]. Rust
//! encodes the reply; the shim decodes it into a JS value or a thrown error. Each message opens
//! with a kind byte, [`ArgKind`] or [`ReplyKind`]; these enums are the one definition of those
//! bytes: `roma-v8`'s build script writes them into the shim's header (`roma_abi.h`), so the
//! C++ cannot name a kind this file does not. Little-endian:
//!
//! | byte | argument (shim to Rust, [`ArgKind`]) | reply (Rust to shim, [`ReplyKind`]) |
//! | --- | --- | --- |
//! | 0 | `None`: none | `Undefined`: `undefined` |
//! | 1 | `String`: string | `String`: string |
//! | 2 | `List`: `u32` n, n strings | `List`: `Array` of strings |
//! | 3 | `Map`: `u32` n, n key/value string pairs | `Map`: `Map` |
//! | 4 | `Bytes`: bytes | `Bytes`: `Uint8Array` |
//! | 5 | `Json`: JSON text of a plain object | `Error`: throw `Error(message)` |
//! | 6 | - | `TypeError`: throw `TypeError(message)` |
//! | 7 | - | `Pending`: a promise; an asynchronous call started; its id (`u64` as two `u32`) |
//!
//! A string or bytes is a `u32` length and that many bytes. Both sides check every length
//! against what is left before reading.

use crate::io::{BindingInput, BindingOutput, FunctionBindingIo, UdfError};
use std::collections::BTreeMap;

/// Declares a kind-byte enum with its list, its decoder and its name in the shim's header.
macro_rules! kind_enum {
    // `..values` stands for the value kinds, 1 to 4: the same bytes in both directions, as their
    // layouts are (`put_tagged`, `put_list`, `put_map`).
    ($(#[$doc:meta])* $name:ident, $prefix:literal {
        $(#[$v0doc:meta])* $v0:ident = $val0:literal => $c0:literal,
        ..values,
        $($rest:tt)*
    }) => {
        kind_enum! {
            $(#[$doc])*
            $name, $prefix {
                $(#[$v0doc])*
                $v0 = $val0 => $c0,
                /// A string.
                String = 1 => "STRING",
                /// An array of strings (`Array`).
                List = 2 => "LIST",
                /// A `Map` of strings to strings.
                Map = 3 => "MAP",
                /// A `Uint8Array`.
                Bytes = 4 => "BYTES",
                $($rest)*
            }
        }
    };
    ($(#[$doc:meta])* $name:ident, $prefix:literal {
        $($(#[$vdoc:meta])* $var:ident = $val:literal => $c:literal,)*
    }) => {
        $(#[$doc])*
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $var = $val,)*
        }

        impl $name {
            /// Every kind, in byte order.
            pub const ALL: &'static [$name] = &[$($name::$var,)*];

            /// The kind a byte names, if any.
            pub fn from_u8(b: u8) -> Option<$name> {
                match b {
                    $($val => Some($name::$var),)*
                    _ => None,
                }
            }

            #[doc = concat!("The kind's name in the shim's header (`", $prefix, "` and this).")]
            pub fn c_name(self) -> &'static str {
                match self {
                    $($name::$var => $c,)*
                }
            }
        }
    };
}

kind_enum! {
    /// The kind byte that opens a host function's argument (shim to Rust).
    ArgKind, "ROMA_ARG_" {
        /// No argument (`undefined`).
        None = 0 => "NONE",
        ..values,
        /// A plain object, as JSON text.
        Json = 5 => "JSON",
    }
}

kind_enum! {
    /// The kind byte that opens a host function's reply (Rust to shim).
    ReplyKind, "ROMA_REPLY_" {
        /// `undefined`.
        Undefined = 0 => "UNDEFINED",
        ..values,
        /// Throws `Error(message)`.
        Error = 5 => "ERROR",
        /// Throws `TypeError(message)`.
        TypeError = 6 => "TYPE_ERROR",
        /// An asynchronous call started: JS gets a promise that the call's reply settles.
        Pending = 7 => "PENDING",
    }
}

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
    let kind = r.u8()?;
    let Some(kind) = ArgKind::from_u8(kind) else {
        return Err(UdfError::Malformed(format!("unknown argument kind {kind}")));
    };
    let input = match kind {
        ArgKind::None => BindingInput::None,
        ArgKind::String => BindingInput::String(r.string()?),
        ArgKind::List => {
            let n = r.count(4)?;
            BindingInput::List((0..n).map(|_| r.string()).collect::<Result<_, _>>()?)
        }
        ArgKind::Map => {
            let n = r.count(8)?;
            let mut m = BTreeMap::new();
            for _ in 0..n {
                let k = r.string()?;
                m.insert(k, r.string()?);
            }
            BindingInput::Map(m)
        }
        ArgKind::Bytes => BindingInput::Bytes(r.bytes()?.to_vec()),
        ArgKind::Json => BindingInput::Json(r.string()?),
    };
    r.finish()?;
    Ok(input)
}

/// Encodes an argument as the shim does (tests and fuzzing).
pub fn encode_arg(input: &BindingInput) -> Vec<u8> {
    let mut out = Vec::new();
    match input {
        BindingInput::None => out.push(ArgKind::None as u8),
        BindingInput::String(s) => put_tagged(&mut out, ArgKind::String as u8, s.as_bytes()),
        BindingInput::List(l) => put_list(&mut out, ArgKind::List as u8, l),
        BindingInput::Map(m) => put_map(&mut out, ArgKind::Map as u8, m),
        BindingInput::Bytes(b) => put_tagged(&mut out, ArgKind::Bytes as u8, b),
        BindingInput::Json(s) => put_tagged(&mut out, ArgKind::Json as u8, s.as_bytes()),
    }
    out
}

fn put_tagged(out: &mut Vec<u8>, kind: u8, b: &[u8]) {
    out.push(kind);
    put_bytes(out, b);
}

// The list and map layouts are the same in both directions; the caller names its kind byte.
fn put_list(out: &mut Vec<u8>, kind: u8, l: &[String]) {
    out.push(kind);
    put_count(out, l.len());
    l.iter().for_each(|s| put_bytes(out, s.as_bytes()));
}

fn put_map(out: &mut Vec<u8>, kind: u8, m: &BTreeMap<String, String>) {
    out.push(kind);
    put_count(out, m.len());
    for (k, v) in m {
        put_bytes(out, k.as_bytes());
        put_bytes(out, v.as_bytes());
    }
}

/// A reply that throws `Error(message)` in JS ([`ReplyKind::Error`]).
pub fn error_reply(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_tagged(&mut out, ReplyKind::Error as u8, message.as_bytes());
    out
}

/// A reply that throws `TypeError(message)` in JS ([`ReplyKind::TypeError`]).
pub fn type_error_reply(message: &str) -> Vec<u8> {
    let mut out = Vec::new();
    put_tagged(&mut out, ReplyKind::TypeError as u8, message.as_bytes());
    out
}

/// The reply that says an asynchronous call started: JS gets a promise that the reply of call
/// `call_id` will settle ([`ReplyKind::Pending`], then the id as two little-endian `u32`s, low
/// first).
pub fn pending_reply(call_id: u64) -> Vec<u8> {
    let mut out = vec![ReplyKind::Pending as u8];
    out.extend_from_slice(&(call_id as u32).to_le_bytes());
    out.extend_from_slice(&((call_id >> 32) as u32).to_le_bytes());
    out
}

/// The reply for a finished call: its errors joined into one thrown `Error` if there are any,
/// else its output.
pub fn encode_reply(io: &FunctionBindingIo) -> Vec<u8> {
    if !io.errors.is_empty() {
        return error_reply(&io.errors.join("; "));
    }
    let mut out = Vec::new();
    match &io.output {
        BindingOutput::None => out.push(ReplyKind::Undefined as u8),
        BindingOutput::String(s) => put_tagged(&mut out, ReplyKind::String as u8, s.as_bytes()),
        BindingOutput::List(l) => put_list(&mut out, ReplyKind::List as u8, l),
        BindingOutput::Map(m) => put_map(&mut out, ReplyKind::Map as u8, m),
        BindingOutput::Bytes(b) => put_tagged(&mut out, ReplyKind::Bytes as u8, b),
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
        let mut b = vec![ArgKind::List as u8];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_arg(&b).is_err());
    }

    #[test]
    fn errors_win_over_output() {
        let mut io = FunctionBindingIo::default();
        io.set_output_string("x");
        io.add_error("bad");
        assert_eq!(encode_reply(&io), error_reply("bad"));
    }

    #[test]
    fn every_kind_byte_round_trips_and_all_lists_every_kind() {
        let args: Vec<ArgKind> = (0..=u8::MAX).filter_map(ArgKind::from_u8).collect();
        assert_eq!(args, ArgKind::ALL);
        for &k in ArgKind::ALL {
            assert_eq!(ArgKind::from_u8(k as u8), Some(k));
        }
        let replies: Vec<ReplyKind> = (0..=u8::MAX).filter_map(ReplyKind::from_u8).collect();
        assert_eq!(replies, ReplyKind::ALL);
        for &k in ReplyKind::ALL {
            assert_eq!(ReplyKind::from_u8(k as u8), Some(k));
        }
    }

    #[test]
    fn replies_open_with_their_kind() {
        assert_eq!(error_reply("e")[0], ReplyKind::Error as u8);
        assert_eq!(type_error_reply("e")[0], ReplyKind::TypeError as u8);
        assert_eq!(pending_reply(u64::MAX)[0], ReplyKind::Pending as u8);
        assert_eq!(pending_reply(1).len(), 9);
        assert_eq!(
            encode_reply(&FunctionBindingIo::default()),
            [ReplyKind::Undefined as u8]
        );
    }
}
