//! The direct hand-off through real workers: `execute_blocking` on an idle worker runs the
//! request on the calling thread, with timeouts, host functions run inline and tenant pools.

use crate::common::*;
use roma::{
    ErrorKind, FunctionBindingObject, FunctionBindingPayload, InvocationRequest, RomaService,
};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

const SPIN: &str = "function Spin() { while (true) {} }";

/// Waits until worker `i` is parked for the hand-off.
fn parked(svc: &RomaService, i: usize) {
    wait_for(|| svc.stats().workers[i].parked);
}

fn hello(svc: &RomaService, i: usize) {
    let input = format!("\"{i}\"");
    let r = svc
        .execute_blocking(request("v1", "Handler", &[&input]))
        .unwrap();
    assert_eq!(r.resp, format!("\"Hello world! \\\"{i}\\\"\""));
}

#[test]
fn blocking_requests_on_an_idle_worker_keep_their_timeouts() {
    let svc = service(1);
    load(&svc, code("v1", &format!("{SPIN} {HELLO}"))).unwrap();
    parked(&svc, 0);
    for i in 0..5 {
        hello(&svc, i);
        // Run here and given back parked: the slot thread was not woken for it.
        assert!(svc.stats().workers[0].parked, "request {i}");
    }
    // The worker's deadline holds on the borrowing thread, and the worker goes on serving.
    let mut spin: InvocationRequest = request("v1", "Spin", &[]);
    spin.timeout = Some(Duration::from_millis(200));
    let err = svc.execute_blocking(spin).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    parked(&svc, 0);
    hello(&svc, 5);
}

#[test]
fn a_host_function_run_inline_on_the_borrowing_thread_cannot_block_on_the_service() {
    let mut c = config::<()>(1);
    c.host_functions_inline(true);
    let service: Arc<OnceLock<Weak<RomaService>>> = Arc::new(OnceLock::new());
    let reach = Arc::clone(&service);
    c.register_function_binding(FunctionBindingObject::new(
        "nested",
        move |p: &mut FunctionBindingPayload<'_, ()>| {
            let Some(svc) = reach.get().and_then(Weak::upgrade) else {
                p.io.add_error("no service");
                return;
            };
            let r = svc.execute_blocking(request("v1", "Handler", &[]));
            p.io.set_output_string(match r {
                Ok(_) => "ran".to_owned(),
                Err(e) => format!("{:?}", e.kind()),
            });
        },
    ));
    let svc = Arc::new(RomaService::new(c).unwrap());
    service.set(Arc::downgrade(&svc)).unwrap();
    let js = format!("function Nested() {{ return nested(); }} {HELLO}");
    load(&svc, code("v1", &js)).unwrap();
    parked(&svc, 0);
    // On the slot thread and on the borrowing thread alike, the nested blocking call is
    // refused instead of waiting for the worker its own request holds.
    let r = svc.execute_blocking(request("v1", "Nested", &[])).unwrap();
    assert_eq!(r.resp, "\"InvalidArgument\"");
    hello(&svc, 0);
}

#[test]
fn tenant_pools_hand_off_in_each_tenants_own_pool() {
    let mut c = config::<()>(1);
    c.tenant_pools(1);
    let svc = RomaService::new(c).unwrap();
    // Tenants by code id: "load-a" and "load-b".
    load(&svc, code("a", HELLO)).unwrap();
    load(&svc, code("b", HELLO)).unwrap();
    for tenant in ["load-a", "load-b"] {
        wait_for(|| {
            svc.tenant_stats(tenant)
                .is_some_and(|s| s.workers[0].parked)
        });
    }
    for i in 0..4 {
        let v = if i % 2 == 0 { "a" } else { "b" };
        let r = svc.execute_blocking(request(v, "Handler", &[])).unwrap();
        assert_eq!(r.resp, "\"Hello world! undefined\"");
    }
    for tenant in ["load-a", "load-b"] {
        let s = svc.tenant_stats(tenant).unwrap();
        assert!(
            s.workers[0].parked && !s.workers[0].running,
            "{tenant}: {s:?}"
        );
    }
}
