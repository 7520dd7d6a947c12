//! Host functions, metadata and logging through real workers.

use crate::common::*;
use roma::{
    BindingOutput, Config, ErrorKind, FunctionBindingObject, FunctionBindingPayload, LogLevel,
    RomaService,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Metadata that counts its drops.
#[derive(Default)]
struct Meta {
    tenant: String,
    drops: Option<Arc<AtomicUsize>>,
}

impl Drop for Meta {
    fn drop(&mut self) {
        if let Some(d) = &self.drops {
            d.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn bindings_config() -> Config<Meta> {
    let mut c = config::<Meta>(1);
    c.register_function_binding(FunctionBindingObject::new(
        "cool_function",
        |p: &mut FunctionBindingPayload<'_, Meta>| {
            let s = p.io.input_string().unwrap_or_default().to_owned();
            p.io.set_output_string(format!("{s} String from Rust for {}", p.metadata.tenant));
        },
    ));
    c.register_function_binding(FunctionBindingObject::new(
        "foo.bar.shape",
        |p: &mut FunctionBindingPayload<'_, Meta>| {
            let out = match &p.io.input {
                roma::BindingInput::None => BindingOutput::None,
                roma::BindingInput::String(s) => BindingOutput::String(format!("string:{s}")),
                roma::BindingInput::List(l) => {
                    BindingOutput::List(l.iter().rev().cloned().collect())
                }
                roma::BindingInput::Map(m) => BindingOutput::Map(
                    m.iter()
                        .map(|(k, v)| (v.clone(), k.clone()))
                        .collect::<BTreeMap<_, _>>(),
                ),
                roma::BindingInput::Bytes(b) => {
                    BindingOutput::Bytes(b.iter().map(|x| x.wrapping_add(1)).collect())
                }
                roma::BindingInput::Json(j) => BindingOutput::String(format!("json:{j}")),
            };
            p.io.output = out;
        },
    ));
    c.register_function_binding(FunctionBindingObject::new(
        "fails",
        |p: &mut FunctionBindingPayload<'_, Meta>| p.io.add_error("lookup failed"),
    ));
    c.register_function_binding(FunctionBindingObject::new(
        "panics",
        |_: &mut FunctionBindingPayload<'_, Meta>| panic!("binding bug"),
    ));
    c
}

const JS: &str = r#"
function Cool(x) { return cool_function(x); }
function Shapes() {
  const s = foo.bar.shape;
  const list = s(["a", "b", "c"]);
  const map = s(new Map([["k1", "v1"], ["k2", "v2"]]));
  const bytes = s(new Uint8Array([1, 2, 255]));
  return {
    none: s() === undefined,
    string: s("x"),
    list: Array.isArray(list) ? list : "not an array",
    map: map instanceof Map ? Object.fromEntries(map) : "not a map",
    bytes: bytes instanceof Uint8Array ? Array.from(bytes) : "not bytes",
    json: s({a: 1, b: [true]}),
  };
}
function Catch(f) {
  try { f(); return "no throw"; } catch (e) { return e.name + ": " + e.message; }
}
function Wrong() {
  return [
    Catch(() => cool_function(42)),
    Catch(() => cool_function("a", "b")),
    Catch(() => cool_function([1, 2])),
    Catch(() => { const o = {}; o.self = o; cool_function(o); }),
    Catch(() => cool_function(new Proxy({}, {}))),
    Catch(() => fails()),
    Catch(() => panics()),
  ];
}
function Logs() { console.log("hello", {a: 1}); console.warn("careful"); console.debug("quiet"); return 1; }
function Throws() { throw new Error("uncaught boom"); }
"#;

fn request_with(tenant: &str, handler: &str, inputs: &[&str]) -> roma::InvocationRequest<Meta> {
    let mut r = request::<Meta>("v1", handler, inputs);
    r.metadata.tenant = tenant.into();
    r
}

/// A service over [`bindings_config`] with [`JS`] loaded as `v1`.
fn bindings_service() -> RomaService<Meta> {
    let svc = RomaService::new(bindings_config()).unwrap();
    load(&svc, code("v1", JS)).unwrap();
    svc
}

/// Checks that `Cool` called with the string `input` as `tenant` is answered by the binding,
/// with the tenant's metadata.
fn assert_cool(svc: &RomaService<Meta>, tenant: &str, input: &str) {
    let r = exec(
        svc,
        request_with(tenant, "Cool", &[&format!("\"{input}\"")]),
    )
    .unwrap();
    assert_eq!(r.resp, format!("\"{input} String from Rust for {tenant}\""));
}

#[test]
fn a_binding_gets_its_input_and_the_request_metadata() {
    let svc = bindings_service();
    assert_cool(&svc, "acme", "Foobar");
    assert_cool(&svc, "globex", "x");
}

#[test]
fn every_input_and_output_shape_converts() {
    let svc = bindings_service();
    let r = exec(&svc, request_with("t", "Shapes", &[])).unwrap();
    let v: serde_json::Value = serde_json::from_str(&r.resp).unwrap();
    assert_eq!(v["none"], true);
    assert_eq!(v["string"], "string:x");
    assert_eq!(v["list"], serde_json::json!(["c", "b", "a"]));
    assert_eq!(v["map"], serde_json::json!({"v1": "k1", "v2": "k2"}));
    assert_eq!(v["bytes"], serde_json::json!([2, 3, 0]));
    assert_eq!(v["json"], r#"json:{"a":1,"b":[true]}"#);
}

#[test]
fn wrong_arguments_errors_and_panics_throw_in_js_and_the_worker_goes_on() {
    let svc = bindings_service();
    let r = exec(&svc, request_with("t", "Wrong", &[])).unwrap();
    let v: Vec<String> = serde_json::from_str(&r.resp).unwrap();
    // What each of `Wrong`'s calls threw: its error's name, and a part of its message.
    let thrown = [
        (0, "TypeError", "cool_function"),
        (1, "TypeError", "at most one"),
        (2, "TypeError", "not a string"),
        (3, "TypeError", "JSON"),
        (4, "TypeError", "Proxy"),
        (6, "Error", "binding bug"),
    ];
    for (i, name, part) in thrown {
        assert!(
            v[i].starts_with(name) && v[i].contains(part),
            "call {i}: {v:?}"
        );
    }
    assert_eq!(v[5], "Error: lookup failed");
    assert_cool(&svc, "t", "after");
}

#[test]
fn metadata_is_dropped_once_after_its_callback_on_every_path() {
    let svc = bindings_service();
    let drops = Arc::new(AtomicUsize::new(0));
    let mut n = 0;
    for handler in ["Cool", "Throws", "Missing", "Wrong"] {
        let mut r = request_with("t", handler, &[r#""m""#]);
        r.metadata.drops = Some(Arc::clone(&drops));
        let _ = exec(&svc, r);
        n += 1;
        // The metadata is dropped right after the callback returns, on the slot's thread.
        wait_for(|| drops.load(Ordering::SeqCst) >= n);
        assert_eq!(drops.load(Ordering::SeqCst), n, "after {handler}");
    }
    // Refused at once (unknown version): dropped before execute returns.
    let mut r = request::<Meta>("nope", "Cool", &[]);
    r.metadata.drops = Some(Arc::clone(&drops));
    assert!(svc.execute(r, |_| {}).is_err());
    assert_eq!(drops.load(Ordering::SeqCst), n + 1);
}

#[test]
fn console_and_uncaught_errors_reach_the_logging_function_with_metadata() {
    let logs: Arc<Mutex<Vec<(LogLevel, String, String)>>> = Arc::default();
    let mut c = bindings_config();
    let sink = Arc::clone(&logs);
    c.set_logging_function(move |level, meta: &Meta, msg| {
        sink.lock()
            .unwrap()
            .push((level, meta.tenant.clone(), msg.to_owned()));
    });
    let svc = RomaService::new(c).unwrap();
    load(&svc, code("v1", JS)).unwrap();
    let mut r = request_with("acme", "Logs", &[]);
    r.min_log_level = LogLevel::Info;
    exec(&svc, r).unwrap();
    let e = exec(&svc, request_with("globex", "Throws", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Execution);
    let logs = logs.lock().unwrap();
    assert_eq!(
        logs[0],
        (LogLevel::Info, "acme".into(), r#"hello {"a":1}"#.into())
    );
    assert_eq!(
        logs[1],
        (LogLevel::Warning, "acme".into(), "careful".into())
    );
    assert!(
        !logs.iter().any(|l| l.2 == "quiet"),
        "debug below min level leaked"
    );
    let last = logs.last().unwrap();
    assert_eq!((last.0, last.1.as_str()), (LogLevel::Error, "globex"));
    assert!(
        last.2.contains("uncaught boom") && last.2.contains("Throws"),
        "{}",
        last.2
    );
}

#[test]
fn bad_binding_names_fail_new() {
    for names in [
        vec!["dup", "dup"],
        vec!["console"],
        vec!["foo", "foo.bar"],
        vec!["1x"],
    ] {
        let mut c = config::<()>(1);
        for n in &names {
            c.register_function_binding(FunctionBindingObject::new(
                *n,
                |_: &mut FunctionBindingPayload<'_, ()>| {},
            ));
        }
        let e = RomaService::new(c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{names:?}");
    }
}

/// Three asynchronous lookups that each wait until all three have started: the handler's
/// `Promise.all` completes only if they run at once (a sequential host would time out).
#[test]
fn async_bindings_run_concurrently_and_settle_promises() {
    let mut c = config::<Meta>(1);
    let barrier = Arc::new(std::sync::Barrier::new(3));
    let b = Arc::clone(&barrier);
    c.register_function_binding(FunctionBindingObject::new_async(
        "lookup",
        move |io: roma::FunctionBindingIo, meta: &Meta| -> roma::BindingFuture {
            let b = Arc::clone(&b);
            let tenant = meta.tenant.clone();
            Box::pin(async move {
                let key = io.input_string().unwrap_or_default().to_owned();
                b.wait();
                let mut out = roma::FunctionBindingIo::default();
                if key == "bad" {
                    out.add_error("no such key");
                } else {
                    out.set_output_string(format!("{tenant}:{key}"));
                }
                out
            })
        },
    ));
    c.register_function_binding(FunctionBindingObject::new_async(
        "fail_async",
        |_: roma::FunctionBindingIo, _: &Meta| -> roma::BindingFuture {
            Box::pin(async {
                let mut io = roma::FunctionBindingIo::default();
                io.add_error("async failure");
                io
            })
        },
    ));
    let svc = RomaService::new(c).unwrap();
    load(
        &svc,
        code(
            "v1",
            r#"
            async function FanOut() {
              const p = lookup("a");
              if (!(p instanceof Promise)) return "not a promise";
              const r = await Promise.all([p, lookup("b"), lookup("c")]);
              return r.join(",");
            }
            async function Rejects() {
              try { await fail_async(); return "resolved"; } catch (e) { return "caught " + e.message; }
            }
            "#,
        ),
    )
    .unwrap();
    let mut r = request_with("acme", "FanOut", &[]);
    r.timeout = Some(std::time::Duration::from_secs(20));
    let out = exec(&svc, r).unwrap();
    assert_eq!(out.resp, r#""acme:a,acme:b,acme:c""#);
    let out = exec(&svc, request_with("t", "Rejects", &[])).unwrap();
    assert_eq!(out.resp, r#""caught async failure""#);
}

/// Once a request's first synchronous call has moved it to the UDF thread, everything else
/// the worker sends for it (more calls, console lines, asynchronous calls and awaits, an
/// uncaught error) is still handled, with the request's metadata.
#[test]
fn a_request_mixing_every_kind_of_message_after_its_first_sync_call() {
    let mut c = bindings_config();
    c.register_function_binding(FunctionBindingObject::new_async(
        "later",
        |io: roma::FunctionBindingIo, meta: &Meta| -> roma::BindingFuture {
            let tenant = meta.tenant.clone();
            Box::pin(async move {
                let mut out = roma::FunctionBindingIo::default();
                let key = io.input_string().unwrap_or_default().to_owned();
                out.set_output_string(format!("{tenant}/{key}"));
                out
            })
        },
    ));
    let logs = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&logs);
    c.set_logging_function(move |_, meta: &Meta, msg| {
        sink.lock().unwrap().push(format!("{}: {msg}", meta.tenant));
    });
    let svc = RomaService::new(c).unwrap();
    let js = format!(
        "{JS}\n\
         async function Mixed() {{\n\
           const a = cool_function('1');\n\
           console.log('after sync');\n\
           const p = later('x');\n\
           const b = cool_function('2');\n\
           const [x, y] = await Promise.all([p, later('y')]);\n\
           console.log('after await');\n\
           return [a, b, x, y, cool_function('3')].join('|');\n\
         }}\n\
         function SyncThenThrow() {{ cool_function('1'); throw new Error('late boom'); }}"
    );
    load(&svc, code("v1", &js)).unwrap();
    for _ in 0..3 {
        let out = exec(&svc, request_with("acme", "Mixed", &[])).unwrap();
        assert_eq!(
            out.resp,
            "\"1 String from Rust for acme|2 String from Rust for acme|acme/x|acme/y|\
             3 String from Rust for acme\""
        );
    }
    let e = exec(&svc, request_with("globex", "SyncThenThrow", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Execution, "{e}");
    assert!(e.message().contains("late boom"), "{e}");
    let logs = logs.lock().unwrap();
    let acme: Vec<_> = logs.iter().filter(|l| l.starts_with("acme: ")).collect();
    assert_eq!(acme.len(), 6, "{logs:?}");
    assert!(
        acme[0].ends_with("after sync") && acme[1].ends_with("after await"),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("globex: ") && l.contains("late boom")),
        "{logs:?}"
    );
}

/// Ten requests in flight at once on two workers: each binding call sees only its own
/// request's metadata.
#[test]
fn concurrent_requests_each_see_only_their_own_metadata() {
    let mut c = bindings_config();
    c.number_of_workers(2);
    let svc = RomaService::new(c).unwrap();
    load(&svc, code("v1", JS)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..10 {
        let tx = tx.clone();
        let tenant = format!("tenant-{i}");
        let input = format!("\"call-{i}\"");
        svc.execute(request_with(&tenant, "Cool", &[&input]), move |r| {
            let _ = tx.send((i, r));
        })
        .unwrap();
    }
    for _ in 0..10 {
        let (i, r) = rx.recv_timeout(PATIENCE).unwrap();
        assert_eq!(
            r.unwrap().resp,
            format!("\"call-{i} String from Rust for tenant-{i}\"")
        );
    }
}

/// 10 000 mixed requests (successes, throws, timeouts, cancels, refusals, host-function
/// calls): every metadata value created is dropped exactly once, none is left behind.
#[test]
fn no_metadata_is_left_after_ten_thousand_mixed_requests() {
    let mut c = bindings_config();
    c.number_of_workers(2);
    c.worker_queue_max_items(200);
    let svc = RomaService::new(c).unwrap();
    load(
        &svc,
        code(
            "v1",
            &format!("{JS}\nfunction Spin() {{ while (true) {{}} }}"),
        ),
    )
    .unwrap();
    let created = Arc::new(AtomicUsize::new(0));
    let drops = Arc::new(AtomicUsize::new(0));
    let delivered = Arc::new(AtomicUsize::new(0));
    let mut accepted = 0usize;
    for i in 0..10_000usize {
        let (handler, timeout_ms) = match i % 10 {
            0..=4 => ("Cool", None),
            5 => ("Throws", None),
            6 => ("Spin", Some(5)),
            7 => ("Shapes", None),
            8 => ("Missing", None),
            _ => ("Wrong", None),
        };
        let mut r = request_with("t", handler, &[r#""x""#]);
        if i % 997 == 0 {
            r.version_string = "nope".into(); // refused at once
        }
        r.timeout = timeout_ms.map(std::time::Duration::from_millis);
        r.metadata.drops = Some(Arc::clone(&drops));
        created.fetch_add(1, Ordering::SeqCst);
        let d = Arc::clone(&delivered);
        loop {
            // Back off when the queues are full; a refused request drops its metadata too.
            let d = Arc::clone(&d);
            match svc.execute(std::mem::take(&mut r), move |_| {
                d.fetch_add(1, Ordering::SeqCst);
            }) {
                Ok(token) => {
                    accepted += 1;
                    if i % 13 == 0 {
                        svc.cancel(&token);
                    }
                    break;
                }
                Err(e) if e.kind() == ErrorKind::QueueFull => {
                    // The refused request (and its metadata) was dropped, counted; `take` left
                    // a default one (no counter) behind: build a new one.
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    r = request_with("t", handler, &[r#""x""#]);
                    r.timeout = timeout_ms.map(std::time::Duration::from_millis);
                    r.metadata.drops = Some(Arc::clone(&drops));
                    created.fetch_add(1, Ordering::SeqCst);
                }
                Err(_) => break,
            }
        }
    }
    wait_for(|| delivered.load(Ordering::SeqCst) >= accepted);
    svc.stop();
    wait_for(|| drops.load(Ordering::SeqCst) >= created.load(Ordering::SeqCst));
    assert_eq!(delivered.load(Ordering::SeqCst), accepted);
    assert_eq!(drops.load(Ordering::SeqCst), created.load(Ordering::SeqCst));
}

/// A host function that blocks far past its request's timeout: the request still ends at its
/// timeout, and the worker's next calls run on a fresh UDF thread.
#[test]
fn a_blocking_binding_is_bounded_by_the_request_timeout() {
    let mut c = bindings_config();
    let release = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
    let r2 = Arc::clone(&release);
    c.register_function_binding(FunctionBindingObject::new(
        "blocks",
        move |_: &mut FunctionBindingPayload<'_, Meta>| {
            let (lock, cv) = &*r2;
            let mut released = lock.lock().unwrap();
            while !*released {
                released = cv.wait(released).unwrap();
            }
        },
    ));
    let svc = RomaService::new(c).unwrap();
    load(
        &svc,
        code(
            "v1",
            &format!(
                "{JS}\nfunction Block() {{ blocks(); return 'returned'; }}\n\
                 function CallsThenBlocks() {{ cool_function('a'); cool_function('b'); \
                 blocks(); return 'returned'; }}\n\
                 function Many() {{ let n = 0; for (let i = 0; i < 500; i++) \
                 if (cool_function('x' + i).endsWith('for u')) n++; return n; }}"
            ),
        ),
    )
    .unwrap();
    let mut r = request_with("t", "Block", &[]);
    r.timeout = Some(std::time::Duration::from_millis(300));
    let e = exec(&svc, r).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(
        e.message(),
        "the invocation of Block ran past its 300ms timeout in a host function",
        "the timeout is said once"
    );
    assert_cool(&svc, "t", "next");
    // Blocking after several calls of the same request went through the UDF thread: the
    // request is taken back from the stuck thread mid-way.
    let mut r = request_with("t", "CallsThenBlocks", &[]);
    r.timeout = Some(std::time::Duration::from_millis(300));
    let e = exec(&svc, r).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // A fresh UDF thread serves many calls in one request afterwards.
    let ok = exec(&svc, request_with("u", "Many", &[])).unwrap();
    assert_eq!(ok.resp, "500");
    // Let the stuck call finish so its thread exits.
    *release.0.lock().unwrap() = true;
    release.1.notify_all();
}
