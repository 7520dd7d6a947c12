//! Versions: coexistence, replacement, LRU eviction.

use crate::common::*;
use roma_core::ErrorKind;

fn two_versions_coexist_and_overwrite_replaces_only_its_own() {
    let mut e = loaded("function H() { return 'one'; }");
    e.load(&js("v2", "function H() { return 'two'; }")).unwrap();
    assert_eq!(run_ok(&mut e, "v1", "H", &[]), r#""one""#);
    assert_eq!(run_ok(&mut e, "v2", "H", &[]), r#""two""#);
    e.load(&js("v1", "function H() { return 'uno'; }")).unwrap();
    assert_eq!(run_ok(&mut e, "v1", "H", &[]), r#""uno""#);
    assert_eq!(run_ok(&mut e, "v2", "H", &[]), r#""two""#);
}

fn a_failed_reload_keeps_the_old_version() {
    let mut e = loaded("function H() { return 'one'; }");
    assert!(e.load(&js("v1", "function H( {")).is_err());
    assert_eq!(run_ok(&mut e, "v1", "H", &[]), r#""one""#);
}

fn lru_evicts_the_least_recently_used() {
    let mut e = engine_with(|l| l.version_cache_size = 2);
    e.load(&js("a", "function H() { return 'a'; }")).unwrap();
    e.load(&js("b", "function H() { return 'b'; }")).unwrap();
    run_ok(&mut e, "a", "H", &[]); // a is now more recent than b
    e.load(&js("c", "function H() { return 'c'; }")).unwrap();
    assert!(e.has_version("a") && e.has_version("c") && !e.has_version("b"));
    run_err(&mut e, "b", "H", &[], ErrorKind::VersionNotFound);
    assert_eq!(run_ok(&mut e, "a", "H", &[]), r#""a""#);
    assert_eq!(e.versions(), vec!["a".to_string(), "c".to_string()]);
}

/// The tests of this module, by name.
pub const TESTS: &[(&str, fn())] = &[
    (
        "versions::two_versions_coexist_and_overwrite_replaces_only_its_own",
        two_versions_coexist_and_overwrite_replaces_only_its_own,
    ),
    (
        "versions::a_failed_reload_keeps_the_old_version",
        a_failed_reload_keeps_the_old_version,
    ),
    (
        "versions::lru_evicts_the_least_recently_used",
        lru_evicts_the_least_recently_used,
    ),
];
