//! `roma_udf::wire::decode_arg`, the worker's decoder of a host-function argument the shim
//! encoded from JS values. Never panics; an accepted argument round-trips as a value
//! (`decode_arg(encode_arg(v)) == v`); and for a canonical encoding (valid UTF-8 everywhere,
//! map keys strictly ascending, so nothing is replaced or merged) the bytes round-trip too:
//! `encode_arg(decode_arg(x)) == x`. A small strict reference reader decides "canonical" and
//! must agree with `decode_arg` on acceptance.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roma_udf::wire::{decode_arg, encode_arg};

struct Strict<'a>(&'a [u8]);

impl<'a> Strict<'a> {
    fn u32(&mut self) -> Option<usize> {
        let (n, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_le_bytes(*n) as usize)
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        if n > self.0.len() {
            return None;
        }
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(b)
    }
}

/// Some(true): canonical; Some(false): well-formed but lossy (bad UTF-8, unsorted or repeated
/// keys); None: malformed.
fn canonical(x: &[u8]) -> Option<bool> {
    let (&kind, rest) = x.split_first()?;
    let mut r = Strict(rest);
    let mut exact = true;
    match kind {
        0 => {}
        1 | 5 => exact &= std::str::from_utf8(r.bytes()?).is_ok(),
        4 => {
            r.bytes()?;
        }
        2 => {
            let n = r.u32()?;
            for _ in 0..n {
                exact &= std::str::from_utf8(r.bytes()?).is_ok();
            }
        }
        3 => {
            let n = r.u32()?;
            let mut last: Option<&[u8]> = None;
            for _ in 0..n {
                let k = r.bytes()?;
                let v = r.bytes()?;
                exact &= std::str::from_utf8(k).is_ok() && std::str::from_utf8(v).is_ok();
                exact &= last.is_none_or(|l| l < k);
                last = Some(k);
            }
        }
        _ => return None,
    }
    r.0.is_empty().then_some(exact)
}

fuzz_target!(|data: &[u8]| {
    let decoded = decode_arg(data);
    let reference = canonical(data);
    assert_eq!(
        decoded.is_ok(),
        reference.is_some(),
        "decode_arg and the reference reader disagree on acceptance: {decoded:?}"
    );
    let Ok(v) = decoded else {
        return;
    };
    let re = encode_arg(&v);
    assert_eq!(decode_arg(&re).as_ref(), Ok(&v), "value round trip failed");
    if reference == Some(true) {
        assert_eq!(
            re, data,
            "a canonical encoding did not round-trip byte for byte"
        );
    }
});
