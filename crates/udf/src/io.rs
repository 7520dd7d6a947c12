//! [`FunctionBindingIo`]: what a host function reads and writes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Declares a value that crosses between JS and a host function: the kinds both directions
/// carry, then the kinds only this direction does.
macro_rules! binding_value {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $var:ident($ty:ty),)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            /// `undefined` (for an argument: none).
            #[default]
            None,
            /// A string.
            String(String),
            /// An `Array` of strings.
            List(Vec<String>),
            /// A JS `Map` of strings to strings.
            Map(BTreeMap<String, String>),
            /// A `Uint8Array`.
            Bytes(Vec<u8>),
            $($(#[$vdoc])* $var($ty),)*
        }
    };
}

binding_value! {
    /// The argument JS passed to a host function.
    BindingInput {
        /// Any other plain object, as JSON text (Roma's `Struct`).
        Json(String),
    }
}

binding_value! {
    /// What a host function returns to JS.
    BindingOutput {}
}

/// One call's input and output. A function that pushes to `errors` makes the JS call throw an
/// `Error` with those messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionBindingIo {
    /// The argument.
    pub input: BindingInput,
    /// The result.
    pub output: BindingOutput,
    /// Errors to throw in JS instead of returning `output`.
    pub errors: Vec<String>,
}

impl FunctionBindingIo {
    /// The input, if it is a string.
    pub fn input_string(&self) -> Option<&str> {
        match &self.input {
            BindingInput::String(s) => Some(s),
            _ => None,
        }
    }

    /// The input, if it is a list of strings.
    pub fn input_list(&self) -> Option<&[String]> {
        match &self.input {
            BindingInput::List(l) => Some(l),
            _ => None,
        }
    }

    /// The input, if it is a map.
    pub fn input_map(&self) -> Option<&BTreeMap<String, String>> {
        match &self.input {
            BindingInput::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The input, if it is bytes.
    pub fn input_bytes(&self) -> Option<&[u8]> {
        match &self.input {
            BindingInput::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The input as JSON text, if it was a plain object.
    pub fn input_json(&self) -> Option<&str> {
        match &self.input {
            BindingInput::Json(s) => Some(s),
            _ => None,
        }
    }

    /// Returns a string to JS.
    pub fn set_output_string(&mut self, s: impl Into<String>) {
        self.output = BindingOutput::String(s.into());
    }

    /// Returns an `Array` of strings to JS.
    pub fn set_output_list(&mut self, l: Vec<String>) {
        self.output = BindingOutput::List(l);
    }

    /// Returns a `Map` to JS.
    pub fn set_output_map(&mut self, m: BTreeMap<String, String>) {
        self.output = BindingOutput::Map(m);
    }

    /// Returns a `Uint8Array` to JS.
    pub fn set_output_bytes(&mut self, b: Vec<u8>) {
        self.output = BindingOutput::Bytes(b);
    }

    /// Makes the JS call throw an `Error` with `msg`.
    pub fn add_error(&mut self, msg: impl Into<String>) {
        self.errors.push(msg.into());
    }
}

/// Why a payload could not be decoded or a binding not registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UdfError {
    /// The bytes are not a valid payload (or exceed the limit).
    #[error("malformed host-function payload: {0}")]
    Malformed(String),
    /// A binding name is empty, badly formed, reserved or registered twice.
    #[error("{0}")]
    BadName(String),
}

const CONFIG: bincode::config::Configuration = bincode::config::standard();

/// Encodes a call's io for the process boundary.
pub fn encode_io(io: &FunctionBindingIo) -> Vec<u8> {
    // Encoding plain owned data into a Vec cannot fail.
    bincode::serde::encode_to_vec(io, CONFIG).unwrap_or_default()
}

/// Decodes a call's io from the other process, allocating at most about `limit` bytes, and
/// rejecting trailing bytes.
pub fn decode_io(bytes: &[u8], limit: usize) -> Result<FunctionBindingIo, UdfError> {
    if bytes.len() > limit {
        return Err(UdfError::Malformed(format!(
            "{} bytes, more than the limit of {limit}",
            bytes.len()
        )));
    }
    // The input's own length bounds every length prefix inside it: a prefix larger than what
    // is left fails before allocating.
    let (io, used): (FunctionBindingIo, usize) =
        bincode::serde::decode_from_slice(bytes, CONFIG.with_limit::<{ 64 << 20 }>())
            .map_err(|e| UdfError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(UdfError::Malformed(format!(
            "{} trailing bytes",
            bytes.len() - used
        )));
    }
    Ok(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip() {
        let mut io = FunctionBindingIo {
            input: BindingInput::List(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        io.set_output_map(BTreeMap::from([("k".into(), "v".into())]));
        io.add_error("e");
        let bytes = encode_io(&io);
        assert_eq!(decode_io(&bytes, 1 << 20).unwrap(), io);
        assert!(decode_io(&bytes, 2).is_err());
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_io(&long, 1 << 20).is_err());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = decode_io(&bytes, 1 << 20);
        }
    }
}
