//! The hand-written headers in `include/roma/` against the Rust side: every function a header
//! declares is defined in `src/`, every `extern "C"` function of `src/` is declared, and every
//! `#define`d code has the value the Rust code uses.

use roma::{ErrorKind, LogLevel};
use roma_c::{ERROR_KIND_CODES, codes};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, ext: &str) -> Vec<(PathBuf, String)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a readable file");
            (p, text)
        })
        .collect();
    out.sort();
    out
}

fn headers() -> Vec<(PathBuf, String)> {
    let mut h = files(&repo().join("include/roma"), "h");
    h.push((
        repo().join("include/roma.h"),
        std::fs::read_to_string(repo().join("include/roma.h")).expect("roma.h"),
    ));
    h
}

/// Names of functions declared in C: an identifier `roma_...` followed by `(`, at a
/// declaration (preceded by a type, not inside a typedef or a comment).
fn declared() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in headers() {
        let mut in_comment = false;
        let mut stmt = String::new();
        for line in text.lines() {
            let mut l = line.trim().to_string();
            if in_comment {
                match l.find("*/") {
                    Some(i) => {
                        l = l[i + 2..].to_string();
                        in_comment = false;
                    }
                    None => continue,
                }
            }
            if let Some(i) = l.find("/*") {
                if !l[i..].contains("*/") {
                    in_comment = true;
                }
                l.truncate(i);
            }
            if l.starts_with('#') || l.starts_with("//") {
                continue;
            }
            stmt.push_str(&l);
            stmt.push(' ');
            if l.ends_with(';') || l.ends_with('{') || l.ends_with('}') {
                let s = std::mem::take(&mut stmt);
                if s.starts_with("typedef") {
                    continue;
                }
                if let Some(open) = s.find('(') {
                    let head = s[..open].trim_end();
                    let name: String = head
                        .chars()
                        .rev()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    if name.starts_with("roma_") {
                        names.insert(name);
                    }
                }
            }
        }
    }
    names
}

fn defined() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "rs") {
        for l in text.lines() {
            // An `extern "C" fn`, or one made by the `entry!` macro (`fn roma_...(` in its
            // invocation).
            if let Some(i) = l.find("fn roma_") {
                let rest = &l[i + "fn ".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
            // A function made by a setter macro: its name opens a line of the invocation. (A
            // name ending in `_t` opening a line is a type in a `use` list.)
            let t = l.trim();
            if t.starts_with("roma_") {
                let name: String = t
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if t[name.len()..].starts_with(',') && !name.ends_with("_t") {
                    names.insert(name);
                }
            }
        }
    }
    names
}

fn defines() -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for (_, text) in headers() {
        for l in text.lines() {
            let mut it = l.split_whitespace();
            if it.next() == Some("#define")
                && let (Some(name), Some(value)) = (it.next(), it.next())
                && let Ok(v) = value.parse::<u32>()
            {
                out.insert(name.to_string(), v);
            }
        }
    }
    out
}

#[test]
fn every_declared_function_is_defined_and_every_defined_one_declared() {
    let declared = declared();
    let defined = defined();
    assert!(
        declared.len() > 50,
        "too few declarations found: {declared:?}"
    );
    let missing: Vec<_> = declared.difference(&defined).collect();
    let undeclared: Vec<_> = defined.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "declared in include/roma but not defined in crates/capi/src: {missing:?}"
    );
    assert!(
        undeclared.is_empty(),
        "defined in crates/capi/src but not declared in include/roma: {undeclared:?}"
    );
}

/// Checks that the headers `#define` exactly the codes of `rust` (name and value) among the
/// defines that `keep` selects.
fn assert_header_codes<'a>(
    keep: impl Fn(&str) -> bool,
    rust: impl IntoIterator<Item = (&'a str, u32)>,
) {
    let header: BTreeMap<String, u32> = defines().into_iter().filter(|(k, _)| keep(k)).collect();
    let rust: BTreeMap<String, u32> = rust.into_iter().map(|(n, v)| (n.to_string(), v)).collect();
    assert_eq!(header, rust);
}

#[test]
fn the_error_codes_match() {
    assert_header_codes(
        |k| k.starts_with("ROMA_ERROR_"),
        ERROR_KIND_CODES.iter().map(|(_, c, n)| (*n, *c)),
    );
    for kind in ErrorKind::ALL {
        assert!(
            ERROR_KIND_CODES.iter().any(|(k, _, _)| *k == kind),
            "{kind:?} has no C code"
        );
    }
    let distinct: BTreeSet<_> = ERROR_KIND_CODES.iter().map(|(_, c, _)| c).collect();
    assert_eq!(
        distinct.len(),
        ERROR_KIND_CODES.len(),
        "two kinds share a code"
    );
}

#[test]
fn the_other_codes_match() {
    assert_header_codes(
        |k| !k.starts_with("ROMA_ERROR_") && !k.ends_with("_H"),
        codes::ALL.iter().copied(),
    );
    let levels = [
        (codes::LOG_DEBUG, LogLevel::Debug),
        (codes::LOG_INFO, LogLevel::Info),
        (codes::LOG_WARNING, LogLevel::Warning),
        (codes::LOG_ERROR, LogLevel::Error),
    ];
    for (code, level) in levels {
        assert_eq!(LogLevel::from_u8(code as u8), Some(level));
    }
}

/// Every setter of the Rust `roma::Config` has a C counterpart declared in `config.h`: by
/// default `roma_config_set_NAME` (or `_ms` for a duration, or `roma_config_NAME` for one that
/// already starts with a verb), else the one named here. A setting added to the Rust `Config`
/// fails this test until the C API can set it too.
#[test]
fn every_rust_config_setter_has_a_c_setter() {
    let config = std::fs::read_to_string(repo().join("crates/roma/src/config.rs"))
        .expect("crates/roma/src/config.rs");
    let setters: Vec<String> = config
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub fn "))
        .filter(|rest| rest.contains("&mut self"))
        .map(|rest| {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect();
    assert!(setters.len() > 30, "too few setters found: {setters:?}");
    let named: BTreeMap<&str, &str> = [
        (
            "configure_js_engine_resource_constraints",
            "roma_config_set_js_engine_resource_constraints",
        ),
        ("v8_flags", "roma_config_add_v8_flag"),
        ("register_function_binding", "roma_config_register_function"),
        ("register_function", "roma_config_register_function"),
    ]
    .into_iter()
    .collect();
    let declared = declared();
    let missing: Vec<&String> = setters
        .iter()
        .filter(|n| {
            let candidates = match named.get(n.as_str()) {
                Some(c) => vec![c.to_string()],
                None => vec![
                    format!("roma_config_set_{n}"),
                    format!("roma_config_set_{n}_ms"),
                    format!("roma_config_{n}"),
                ],
            };
            !candidates.iter().any(|c| declared.contains(c))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "roma::Config setters without a C setter in include/roma/config.h: {missing:?}"
    );
}
