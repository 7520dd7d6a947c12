//! [`Registry`]: a service's validated host functions, and where their calls run.

use crate::binding::{BindingFuture, Func, FunctionBindingObject, FunctionBindingPayload};
use crate::io::{FunctionBindingIo, UdfError};
use std::collections::{BTreeSet, HashMap};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// Globals the sandbox needs or JS defines: a binding's first name segment may not be one of
/// them, so that no binding shadows what the code or roma relies on.
pub const RESERVED_GLOBALS: &[&str] = &[
    "AggregateError",
    "Array",
    "ArrayBuffer",
    "Atomics",
    "BigInt",
    "BigInt64Array",
    "BigUint64Array",
    "Boolean",
    "DataView",
    "Date",
    "Error",
    "EvalError",
    "FinalizationRegistry",
    "Float32Array",
    "Float64Array",
    "Function",
    "Infinity",
    "Int16Array",
    "Int32Array",
    "Int8Array",
    "Intl",
    "JSON",
    "Map",
    "Math",
    "NaN",
    "Number",
    "Object",
    "Promise",
    "Proxy",
    "RangeError",
    "ReferenceError",
    "Reflect",
    "RegExp",
    "Set",
    "SharedArrayBuffer",
    "String",
    "Symbol",
    "SyntaxError",
    "TypeError",
    "URIError",
    "Uint16Array",
    "Uint32Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "WeakMap",
    "WeakRef",
    "WeakSet",
    "WebAssembly",
    "console",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "escape",
    "eval",
    "globalThis",
    "isFinite",
    "isNaN",
    "parseFloat",
    "parseInt",
    "performance",
    "undefined",
    "unescape",
];

/// A service's host functions, in registration order (a function's index is its position).
pub struct Registry<M> {
    bindings: Vec<FunctionBindingObject<M>>,
    by_name: HashMap<String, usize>,
}

impl<M> Registry<M> {
    /// Checks the names: each dotted segment a JS identifier, no duplicates, no name that is
    /// both a function and an object (`foo` and `foo.bar`), no reserved global.
    pub fn new(bindings: Vec<FunctionBindingObject<M>>) -> Result<Self, UdfError> {
        let mut by_name = HashMap::new();
        for (i, b) in bindings.iter().enumerate() {
            check_name(b.name())?;
            if by_name.insert(b.name().to_owned(), i).is_some() {
                return Err(UdfError::BadName(format!(
                    "host function `{}` is registered twice",
                    b.name()
                )));
            }
        }
        let names: BTreeSet<&str> = by_name.keys().map(String::as_str).collect();
        for name in &names {
            let mut prefix = String::new();
            for seg in name.split('.') {
                if !prefix.is_empty() && names.contains(prefix.as_str()) {
                    return Err(UdfError::BadName(format!(
                        "host function `{prefix}` clashes with `{name}`: a name cannot be both a \
                         function and an object"
                    )));
                }
                if !prefix.is_empty() {
                    prefix.push('.');
                }
                prefix.push_str(seg);
            }
        }
        Ok(Registry { bindings, by_name })
    }

    /// The names, in index order (what the engine installs).
    pub fn names(&self) -> Vec<String> {
        self.bindings.iter().map(|b| b.name().to_owned()).collect()
    }

    /// Whether the binding `name` exists and is asynchronous.
    pub fn is_async(&self, name: &str) -> bool {
        self.by_name
            .get(name)
            .is_some_and(|&i| self.bindings[i].is_async())
    }

    /// Whether any binding is asynchronous.
    pub fn has_async(&self) -> bool {
        self.bindings.iter().any(FunctionBindingObject::is_async)
    }

    /// Whether there are no bindings.
    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Runs the binding `name` with `io` and the request's metadata: a synchronous one to the
    /// end, an asynchronous one up to the future it returns. An unknown name, or a panicking
    /// function, comes back as an error in `io.errors` (a JS `Error`).
    pub fn call(&self, name: &str, io: FunctionBindingIo, metadata: &M) -> BindingCall {
        let Some(&i) = self.by_name.get(name) else {
            let mut io = io;
            io.add_error(format!("no host function `{name}` is registered"));
            return BindingCall::Done(io);
        };
        match &self.bindings[i].func {
            Func::Sync(f) => {
                let mut payload = FunctionBindingPayload { io, metadata };
                let ran = catch_unwind(AssertUnwindSafe(|| f(&mut payload)));
                let mut io = payload.io;
                if let Err(panic) = ran {
                    io.add_error(format!("host function `{name}` panicked: {}", why(&*panic)));
                }
                BindingCall::Done(io)
            }
            Func::Async(f) => match catch_unwind(AssertUnwindSafe(|| f(io, metadata))) {
                Ok(fut) => BindingCall::Pending(fut),
                Err(panic) => {
                    let mut io = FunctionBindingIo::default();
                    io.add_error(format!("host function `{name}` panicked: {}", why(&*panic)));
                    BindingCall::Done(io)
                }
            },
        }
    }
}

/// What [`Registry::call`] did.
pub enum BindingCall {
    /// The call finished: its io.
    Done(FunctionBindingIo),
    /// An asynchronous function started: the future of its io.
    Pending(BindingFuture),
}

impl std::fmt::Debug for BindingCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindingCall::Done(io) => f.debug_tuple("Done").field(io).finish(),
            BindingCall::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// The text of a panic payload.
pub(crate) fn why(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl<M> std::fmt::Debug for Registry<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("names", &self.names())
            .finish()
    }
}

fn check_name(name: &str) -> Result<(), UdfError> {
    let bad = |why: &str| UdfError::BadName(format!("host function name `{name}` {why}"));
    if name.is_empty() || name.len() > 256 {
        return Err(bad("must be 1 to 256 characters"));
    }
    for seg in name.split('.') {
        let mut chars = seg.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
        if !first_ok || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            return Err(bad(
                "must be dot-separated identifiers (letters, digits, _ and $; not starting with a digit)",
            ));
        }
    }
    let first = name.split('.').next().unwrap_or(name);
    if RESERVED_GLOBALS.contains(&first) {
        return Err(bad(&format!(
            "clashes with the JS global `{first}` that the sandbox needs"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(name: &str) -> FunctionBindingObject<u32> {
        FunctionBindingObject::new(name, |p: &mut FunctionBindingPayload<'_, u32>| {
            let s = p.io.input_string().unwrap_or_default().to_owned();
            let m = *p.metadata;
            p.io.set_output_string(format!("{s}:{m}"));
        })
    }

    #[test]
    fn names_are_checked() {
        assert!(Registry::new(vec![b("cool_function"), b("foo.bar.func1")]).is_ok());
        for bad in [
            "",
            "1abc",
            "a..b",
            "a.",
            "a b",
            "console",
            "JSON.x",
            "globalThis",
        ] {
            assert!(Registry::new(vec![b(bad)]).is_err(), "{bad}");
        }
        assert!(Registry::new(vec![b("x"), b("x")]).is_err());
        assert!(Registry::new(vec![b("foo"), b("foo.bar")]).is_err());
        assert!(Registry::new(vec![b("foo.bar"), b("foo.baz")]).is_ok());
    }

    #[test]
    fn calls_get_io_and_metadata_and_panics_are_contained() {
        let panics =
            FunctionBindingObject::new("boom", |_: &mut FunctionBindingPayload<'_, u32>| {
                panic!("kaboom")
            });
        let r = Registry::new(vec![b("echo"), panics]).unwrap();
        let io = FunctionBindingIo {
            input: crate::BindingInput::String("hi".into()),
            ..Default::default()
        };
        let done = |c: BindingCall| match c {
            BindingCall::Done(io) => io,
            BindingCall::Pending(_) => panic!("a sync binding returned a future"),
        };
        let out = done(r.call("echo", io.clone(), &7));
        assert_eq!(out.output, crate::BindingOutput::String("hi:7".into()));
        let out = done(r.call("boom", io.clone(), &7));
        assert!(out.errors[0].contains("kaboom"), "{:?}", out.errors);
        let out = done(r.call("nope", io, &7));
        assert!(out.errors[0].contains("nope"));
    }
}
