//! The host's decoder of a UDF call's io from the other process: `roma_udf::decode_io`.
//! Never panics; the limit is honoured; an accepted io round-trips through `encode_io`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roma_udf::{decode_io, encode_io};

fuzz_target!(|data: &[u8]| {
    // The first byte picks a limit, so the limit check itself is exercised too.
    let (limit, bytes) = match data.split_first() {
        Some((&l, rest)) if l < 16 => (usize::from(l), rest),
        Some((_, rest)) => (1 << 20, rest),
        None => (1 << 20, data),
    };
    let Ok(io) = decode_io(bytes, limit) else {
        return;
    };
    assert!(
        bytes.len() <= limit,
        "accepted {} bytes over a limit of {limit}",
        bytes.len()
    );
    let re = encode_io(&io);
    let back = decode_io(&re, usize::MAX).expect("an accepted io re-decodes");
    assert_eq!(back, io, "decode_io/encode_io round trip changed the io");
});
