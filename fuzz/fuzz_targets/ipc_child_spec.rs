//! `roma_ipc::ChildSpec::parse`, the worker's reader of its channel-spec argument. Never panics;
//! whatever it accepts prints back (`to_arg`) to a string that parses to the same spec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roma_ipc::ChildSpec;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    // Half of the inputs get the right prefix, so the fuzzer reaches the field parser quickly.
    let owned;
    let arg = if data.first().is_some_and(|b| b & 1 == 1) {
        owned = format!("roma-ipc1:{s}");
        owned.as_str()
    } else {
        s
    };
    let Ok(spec) = ChildSpec::parse(arg) else {
        return;
    };
    let printed = spec.to_arg();
    let back = ChildSpec::parse(&printed).expect("a printed spec parses");
    assert_eq!(back, spec, "parse/to_arg round trip changed the spec");
    let _ = spec.config();
});
