//! Tenant pools with real worker processes: each tenant's requests run in its own workers, a
//! host function called from one tenant's worker only ever sees that tenant's metadata, one
//! tenant's stuck worker does not hold up another, and stop ends every pool.

use crate::common::shared::block_on;
use crate::common::*;
use roma::{
    ErrorKind, FunctionBindingObject, FunctionBindingPayload, InvocationRequest, RomaService,
    TENANT_TAG,
};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::Duration;

/// Who called the host function: the request's metadata and the host thread that served the
/// call (each worker's host calls run on that worker's own UDF thread).
type Calls = Arc<Mutex<Vec<(String, ThreadId)>>>;

fn tenant_service(calls: &Calls) -> RomaService<String> {
    let mut c = config::<String>(1);
    c.tenant_pools(1);
    let calls = Arc::clone(calls);
    c.register_function_binding(FunctionBindingObject::new(
        "who",
        move |p: &mut FunctionBindingPayload<'_, String>| {
            calls
                .lock()
                .unwrap()
                .push((p.metadata.clone(), std::thread::current().id()));
            p.io.set_output_string(p.metadata.clone());
        },
    ));
    RomaService::new(c).expect("service starts")
}

const WHO: &str = "function Handler() { return who(); }";

fn req(version: &str, meta: &str) -> InvocationRequest<String> {
    let mut r = request::<String>(version, "Handler", &[]);
    r.metadata = meta.to_owned();
    r
}

#[test]
fn tenants_run_in_disjoint_workers_and_host_calls_see_only_their_metadata() {
    let calls = Calls::default();
    let svc = tenant_service(&calls);
    // Tenants by code id: "load-a" and "load-b".
    load(&svc, code("a", WHO)).expect("a loads");
    load(&svc, code("b", WHO)).expect("b loads");
    let (tx, rx) = mpsc::channel();
    for i in 0..20 {
        let (v, meta) = if i % 2 == 0 { ("a", "A") } else { ("b", "B") };
        let tx = tx.clone();
        svc.execute(req(v, meta), move |r| {
            let _ = tx.send((meta, r));
        })
        .expect("accepted");
    }
    drop(tx);
    for _ in 0..20 {
        let (meta, r) = rx.recv_timeout(PATIENCE).expect("answered");
        assert_eq!(r.expect("runs").resp, format!("\"{meta}\""));
    }
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 20);
    let threads =
        |m: &str| -> HashSet<ThreadId> { calls.iter().filter(|c| c.0 == m).map(|c| c.1).collect() };
    let (a, b) = (threads("A"), threads("B"));
    assert!(!a.is_empty() && !b.is_empty());
    assert!(a.is_disjoint(&b), "a worker served both tenants: {calls:?}");
    assert_eq!(
        svc.tenant_stats("load-a").expect("a's pool").workers.len(),
        1
    );
    assert_eq!(
        svc.tenant_stats("load-b").expect("b's pool").workers.len(),
        1
    );
    assert_eq!(svc.stats().workers.len(), 2);
    // Tenant b's workers never received a's code: a's version named as b's is unknown there.
    let mut cross = req("a", "B");
    cross.tags.insert(TENANT_TAG.into(), "load-b".into());
    let e = exec(&svc, cross).expect_err("a's version is not in b's workers");
    assert_eq!(e.kind(), ErrorKind::VersionNotFound, "{e}");
    svc.stop();
}

#[test]
fn a_stuck_tenant_does_not_hold_up_another() {
    let calls = Calls::default();
    let svc = tenant_service(&calls);
    let spin = "function Spin() { while (true) {} }";
    load(&svc, code("a", spin)).expect("a loads");
    load(&svc, code("b", WHO)).expect("b loads");
    let (tx, rx) = mpsc::channel();
    let mut stuck = request::<String>("a", "Spin", &[]);
    stuck.timeout = Some(Duration::from_secs(20));
    let token = svc
        .execute(stuck, move |r| {
            let _ = tx.send(r);
        })
        .expect("accepted");
    // With one shared worker, b's request would wait behind a's 20 s spin.
    let r = exec(&svc, req("b", "B")).expect("b runs while a's worker spins");
    assert_eq!(r.resp, "\"B\"");
    assert!(rx.try_recv().is_err(), "a's request is still running");
    // Cancel reaches a's pool through the service.
    assert!(svc.cancel(&token), "a's request is cancelled");
    let e = rx
        .recv_timeout(PATIENCE)
        .expect("a is answered")
        .expect_err("a is cancelled");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    let r = exec(&svc, req("b", "B")).expect("b still runs");
    assert_eq!(r.resp, "\"B\"");
    svc.stop();
}

#[test]
fn routing_rules_batches_limits_and_stop() {
    let calls = Calls::default();
    let mut c = config::<String>(1);
    c.tenant_pools(1).max_tenants(2);
    let svc = RomaService::new(c).expect("service starts");
    // Two tenants by tag, each loading its own "v1".
    for t in ["t1", "t2"] {
        let mut code = code("v1", &format!("function Handler() {{ return '{t}'; }}"));
        code.tags.insert(TENANT_TAG.into(), t.into());
        load(&svc, code).expect("loads");
    }
    let tagged = |t: &str| {
        let mut r = req("v1", t);
        r.tags.insert(TENANT_TAG.into(), t.into());
        r
    };
    assert_eq!(exec(&svc, tagged("t1")).expect("t1").resp, "\"t1\"");
    assert_eq!(exec(&svc, tagged("t2")).expect("t2").resp, "\"t2\"");
    // Untagged, "v1" has two owners: refused rather than guessed.
    let e = svc.execute(req("v1", "x"), |_| {}).expect_err("ambiguous");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = svc.execute(req("nope", "x"), |_| {}).expect_err("unknown");
    assert_eq!(e.kind(), ErrorKind::VersionNotFound, "{e}");
    // A batch runs within one tenant; across tenants it is refused whole.
    let out = svc
        .batch_execute_blocking(vec![tagged("t1"), tagged("t1")])
        .expect("one tenant's batch");
    assert_eq!(out.len(), 2);
    let e = svc
        .batch_execute(vec![tagged("t1"), tagged("t2")], |_| {})
        .expect_err("across tenants");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    // The async forms route the same way.
    let r = block_on(svc.execute_async(tagged("t2"))).expect("t2, async");
    assert_eq!(r.resp, "\"t2\"");
    let e = block_on(svc.execute_async(req("nope", "x"))).expect_err("unknown, async");
    assert_eq!(e.kind(), ErrorKind::VersionNotFound, "{e}");
    let out = block_on(svc.batch_execute_async(Vec::new())).expect("an empty batch");
    assert!(out.is_empty());
    // Stop ends every pool; nothing is accepted after.
    svc.stop();
    let e = svc.batch_execute(Vec::new(), |_| {}).expect_err("stopped");
    assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    for t in ["t1", "t2"] {
        let e = svc.execute(tagged(t), |_| {}).expect_err("stopped");
        assert_eq!(e.kind(), ErrorKind::Cancelled, "{e}");
    }
    assert!(calls.lock().unwrap().is_empty());
}

/// A handler that keeps its worker busy for a while, then answers.
const SLOW: &str = "function Slow() { const end = Date.now() + 300; while (Date.now() < end) {} \
                    return 'slow'; } function Handler() { return 'hi'; }";

#[test]
fn at_max_tenants_the_least_recently_used_idle_pool_is_evicted_and_nothing_is_lost() {
    let mut c = config::<()>(1);
    c.tenant_pools(1).max_tenants(2);
    let svc = RomaService::new(c).expect("service starts");
    // Tenants by code id: "load-a", "load-b", then "load-c" and "load-d".
    load(&svc, code("a", SLOW)).expect("a loads");
    load(&svc, code("b", SLOW)).expect("b loads");
    for v in ["b", "a"] {
        exec(&svc, request(v, "Handler", &[])).expect("served");
    }
    // b is the least recently used, but busy: a request of its own is running or queued.
    let (tx, rx) = mpsc::channel();
    let slow = |v: &str, tx: &mpsc::Sender<_>| {
        let tx = tx.clone();
        svc.execute(request(v, "Slow", &[]), move |r| {
            let _ = tx.send(r);
        })
        .expect("accepted");
    };
    slow("b", &tx);
    load(&svc, code("c", SLOW)).expect("c loads, evicting an idle pool");
    assert!(svc.tenant_stats("load-a").is_none(), "idle a was evicted");
    assert!(svc.tenant_stats("load-b").is_some(), "busy b was kept");
    assert_eq!(svc.stats().workers.len(), 2, "a's worker stopped");
    let r = rx.recv_timeout(PATIENCE).expect("b's request is answered");
    assert_eq!(r.expect("and succeeds").resp, "\"slow\"");
    // The evicted tenant's versions are gone with its pool, and say so; loading again brings
    // them back, evicting the least recently used idle pool (b, whose request ended).
    let e = exec(&svc, request("a", "Handler", &[])).expect_err("evicted");
    assert_eq!(e.kind(), ErrorKind::VersionNotFound, "{e}");
    assert!(e.message().contains("evicted"), "{e}");
    // The callback may run just before its slot is marked free.
    wait_for(|| {
        let b = svc.tenant_stats("load-b").expect("b's pool");
        b.queued == 0 && b.workers.iter().all(|w| !w.running)
    });
    load(&svc, code("a", SLOW)).expect("a loads again");
    assert!(svc.tenant_stats("load-b").is_none(), "b was evicted");
    assert_eq!(
        exec(&svc, request("a", "Handler", &[])).expect("a").resp,
        "\"hi\""
    );
    // Every pool busy: a new tenant is refused, and the running requests still succeed.
    slow("a", &tx);
    slow("c", &tx);
    let e = svc
        .load_code_obj(code("d", SLOW), |_| {})
        .expect_err("every pool is busy");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("max_tenants"), "{e}");
    drop(tx);
    for _ in 0..2 {
        let r = rx.recv_timeout(PATIENCE).expect("answered");
        assert_eq!(r.expect("succeeds").resp, "\"slow\"");
    }
    svc.stop();
}
