//! What a newcomer embedding roma does first: a config built without type annotations, a host
//! function reading metadata that has no `Default`, a thousand requests from four threads with
//! no retry loop, a batch larger than the queues, and a config error that names its setting.

use crate::common::{HELLO, sandbox};
use roma::{CodeObject, Config, ErrorKind, InvocationRequest, RomaService};
use std::sync::Arc;

/// Stands for a handle to something the host owns (a database): neither `Default` nor `Clone`.
struct Db {
    name: String,
}

#[test]
fn a_thousand_requests_from_four_threads_need_no_retry() {
    let mut config = Config::new();
    config
        .number_of_workers(2)
        .worker_queue_max_items(5)
        .sandbox(sandbox());
    config.register_function("db_name", |p| {
        let db: &Arc<Db> = p.metadata;
        p.io.set_output_string(db.name.clone());
    });
    let svc = Arc::new(RomaService::new(config).expect("service starts"));
    let js = "function Handler(i) { return db_name() + ':' + i; }";
    svc.load_blocking(CodeObject::js("v1", js)).unwrap();
    let db = Arc::new(Db {
        name: "orders".into(),
    });
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let svc = Arc::clone(&svc);
            let db = Arc::clone(&db);
            std::thread::spawn(move || {
                for i in 0..250 {
                    let input = vec![format!("{}", t * 1000 + i)];
                    let request = InvocationRequest::new("v1", "Handler", input)
                        .with_metadata(Arc::clone(&db));
                    let r = svc.execute_blocking(request).expect("every request runs");
                    assert_eq!(r.resp, format!(r#""orders:{}""#, t * 1000 + i));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    svc.stop();
}

#[test]
fn a_batch_larger_than_the_queues_runs() {
    let mut config = Config::default();
    config
        .number_of_workers(1)
        .worker_queue_max_items(4)
        .sandbox(sandbox());
    let svc = RomaService::new(config).expect("service starts");
    svc.load_blocking(CodeObject::js("v1", HELLO)).unwrap();
    let batch = || -> Vec<_> {
        (0..25)
            .map(|i| InvocationRequest::new("v1", "Handler", vec![i.to_string()]))
            .collect()
    };
    let refused = svc.batch_execute(batch(), |_| {}).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::QueueFull);
    assert!(
        refused.message().contains("worker_queue_max_items"),
        "{refused}"
    );
    let results = svc.batch_execute_blocking(batch()).unwrap();
    assert_eq!(results.len(), 25);
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap().resp, format!(r#""Hello world! {i}""#));
    }
}

#[test]
fn a_future_resolves_on_any_executor() {
    let mut config = Config::default();
    config.number_of_workers(1).sandbox(sandbox());
    let svc = RomaService::new(config).expect("service starts");
    crate::common::shared::block_on(svc.load_code_obj_async(CodeObject::js("v1", HELLO))).unwrap();
    let r = crate::common::shared::block_on(svc.execute_async(InvocationRequest::new(
        "v1",
        "Handler",
        vec![r#""async""#.into()],
    )))
    .unwrap();
    assert_eq!(r.resp, r#""Hello world! \"async\"""#);
}

#[test]
fn a_setting_out_of_range_is_named() {
    let mut config = Config::default();
    config.number_of_workers(0);
    let e = RomaService::new(config).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("number_of_workers"), "{e}");
}

#[test]
fn a_blocking_call_from_a_callback_is_refused_instead_of_hanging() {
    let mut config = Config::default();
    config.number_of_workers(1).sandbox(sandbox());
    let svc = Arc::new(RomaService::new(config).expect("service starts"));
    svc.load_blocking(CodeObject::js("v1", HELLO)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let inner = Arc::clone(&svc);
    svc.execute(
        InvocationRequest::new("v1", "Handler", vec!["1".into()]),
        move |_| {
            let nested =
                inner.execute_blocking(InvocationRequest::new("v1", "Handler", vec!["2".into()]));
            let _ = tx.send(nested.map(|r| r.resp).map_err(|e| e.kind()));
        },
    )
    .unwrap();
    let nested = rx.recv_timeout(crate::common::PATIENCE).unwrap();
    assert_eq!(nested, Err(ErrorKind::InvalidArgument));
}
