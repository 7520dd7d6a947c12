//! Per-request CPU profiles (`Config::enable_profilers`, `InvocationRequest::profile`) through
//! jailed workers: V8's sampler signals its own threads inside the seccomp filter.

use crate::common::*;
use roma::{ErrorKind, MAX_PROFILE_BYTES, RomaService};

// One definition of the spinning handler and the profile reader, shared with roma-v8's tests.
#[path = "../../../v8-tests/src/spin.rs"]
mod spin;
use spin::{SPIN, profile_functions};

#[test]
fn a_profiled_request_names_its_handler_and_an_unprofiled_one_has_none() {
    let mut c = config::<()>(1);
    c.enable_profilers(true);
    let svc = RomaService::new(c).expect("service starts");
    load(&svc, code("v1", SPIN)).unwrap();
    let r = exec(
        &svc,
        request::<()>("v1", "SpinHandler", &[]).with_profile(true),
    )
    .unwrap();
    assert_eq!(r.resp, "true");
    assert!(r.profiler_output.len() <= MAX_PROFILE_BYTES);
    let names = profile_functions(&r.profiler_output);
    assert!(
        names.iter().any(|n| n == "SpinHandler") && names.iter().any(|n| n == "busyLoop"),
        "{names:?}"
    );
    let plain = exec(&svc, request::<()>("v1", "SpinHandler", &[])).unwrap();
    assert_eq!(plain.resp, "true");
    assert_eq!(plain.profiler_output, "");
    svc.stop();
}

#[test]
fn a_profile_request_is_refused_while_profilers_are_off() {
    let svc = service(1);
    load(&svc, code("v1", SPIN)).unwrap();
    let e = exec(
        &svc,
        request::<()>("v1", "SpinHandler", &[]).with_profile(true),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("enable_profilers"), "{e}");
    // The worker is untouched and serves the next request.
    let r = exec(&svc, request::<()>("v1", "SpinHandler", &[])).unwrap();
    assert_eq!(r.resp, "true");
    svc.stop();
}
