//! `roma check` reports the protections seen from the host (the worker's host uid, the tie to
//! the host's life) beside the in-jail probes, and says honestly when they are missing.

use roma::{SandboxKind, check};

fn find<'a>(results: &'a [roma::ProbeResult], name: &str) -> &'a roma::ProbeResult {
    results
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("no `{name}` in {results:?}"))
}

#[test]
fn check_reports_the_host_uid_and_the_tie_to_the_host() {
    let _cgroups = crate::common::cgroup_lock();
    let jailed = check(SandboxKind::Namespaces).expect("roma check under namespaces");
    for name in ["worker host uid is not 0", "jail ends with the host"] {
        let r = find(&jailed, name);
        assert!(r.held, "{r:?}");
    }
    let bare = check(SandboxKind::None).expect("roma check under none");
    let tie = find(&bare, "jail ends with the host");
    assert!(!tie.held, "no launcher, no tie: {tie:?}");
    let uid = find(&bare, "worker host uid is not 0");
    // Unjailed, the worker is the host's own uid: open exactly when that is root.
    // SAFETY: getuid takes no arguments and cannot fail.
    let host_uid = unsafe { libc::getuid() };
    assert_eq!(uid.held, host_uid != 0, "{uid:?}");
}
