//! Recycling real worker processes: after N requests a worker process is replaced, the new one
//! serves every loaded version, and no request fails because of it, under load; an honest idle
//! worker is not mistaken for one that works between requests.

use crate::common::*;
use roma::RomaService;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn recycled_workers_serve_every_version_and_no_request_fails_under_load() {
    const REQUESTS: usize = 120;
    let mut c = config::<()>(2);
    c.recycle_after_requests(10);
    let svc = RomaService::new(c).expect("service starts");
    for v in ["v1", "v2"] {
        let js = format!("function Handler(x) {{ return '{v}:' + x; }}");
        load(&svc, code(v, &js)).expect("load");
    }
    let (tx, rx) = mpsc::channel();
    for i in 0..REQUESTS {
        let v = if i % 2 == 0 { "v1" } else { "v2" };
        let input = i.to_string();
        let mut req = request::<()>(v, "Handler", &[input.as_str()]);
        req.id = format!("{v}-{i}");
        let tx = tx.clone();
        svc.execute(req, move |r| {
            let _ = tx.send(r);
        })
        .expect("accepted");
    }
    drop(tx);
    for _ in 0..REQUESTS {
        let r = rx
            .recv_timeout(PATIENCE)
            .expect("every request is answered")
            .expect("no request fails because of a recycle");
        let (v, i) = r.id.split_once('-').unwrap();
        assert_eq!(r.resp, format!("\"{v}:{i}\""), "{}", r.id);
    }
    let recycled: u64 = svc.stats().workers.iter().map(|w| w.recycled).sum();
    assert!(recycled >= 8, "{recycled} recycles for {REQUESTS} requests");
    svc.stop();
}

#[test]
fn an_honest_idle_worker_is_not_recycled_for_idle_cpu() {
    // The default idle-CPU rule is on; a worker that only waits must never meet it.
    let svc = service(1);
    load(&svc, code("v1", HELLO)).expect("load");
    exec(&svc, request("v1", "Handler", &["1"])).expect("a request");
    // An observation window, not a synchronisation: the rule is judged once a second while the
    // worker idles, so two and a half seconds hold two judgements.
    std::thread::sleep(Duration::from_millis(2500));
    exec(&svc, request("v1", "Handler", &["2"])).expect("a request");
    assert_eq!(svc.stats().workers[0].recycled, 0);
    svc.stop();
}
