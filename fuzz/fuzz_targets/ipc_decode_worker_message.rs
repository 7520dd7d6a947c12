//! The host-side decoder of everything a (possibly hostile) worker sends:
//! `roma_ipc::decode_worker_message`. It must never panic, and whatever it accepts must
//! re-encode to bytes that decode to the same message (compared as bytes: metrics may be NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use roma_ipc::{decode_worker_message, encode_message};

fuzz_target!(|data: &[u8]| {
    let Ok(msg) = decode_worker_message(data) else {
        return;
    };
    let once = encode_message(&msg).expect("an accepted message re-encodes");
    let again = decode_worker_message(&once).expect("a re-encoded message decodes");
    let twice = encode_message(&again).expect("re-encodes");
    assert_eq!(once, twice, "decode/encode is not stable");
});
