//! The code store end to end: a directory that brings a restarted server back with its code,
//! and servers sharing a real etcd (load on one, execute on another, eviction, a replica that
//! starts late, etcd down and back).

use crate::common::*;
use crate::etcd::Etcd;
use hyper::StatusCode;
use roma_serve::{EtcdSettings, Settings, StoreKind, StoreLimits};
use std::time::Duration;

fn js(word: &str) -> String {
    format!("function Handler() {{ return {word:?}; }}")
}

async fn run_version(t: &TestServer, version: &str) -> Reply {
    let body =
        serde_json::json!({"version_string": version, "handler_name": "Handler"}).to_string();
    t.post("/v1/execute", Some(EXEC), &[], body).await
}

async fn load_as(t: &TestServer, id: &str, version: &str, code: &str) -> Reply {
    let body = serde_json::json!({"id": id, "version_string": version, "js": code}).to_string();
    t.post("/v1/code", Some(LOAD), &[], body).await
}

/// Waits until `cond` holds, polling; PATIENCE is a safety net, not a timing assertion.
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + PATIENCE;
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < until,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_revision(t: &TestServer, at_least: f64) {
    eventually("the replica applies the revision", || async {
        t.metric("roma_store_revision").await.unwrap_or(0.0) >= at_least
    })
    .await;
}

fn revision_of(r: &Reply) -> f64 {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let h: f64 = r.headers[roma_serve::STORE_REVISION_HEADER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(r.json()["metrics"]["roma.store.revision"].as_f64(), Some(h));
    h
}

fn etcd_settings(etcd: &Etcd, limits: StoreLimits) -> Settings {
    let mut s = settings();
    let mut e = EtcdSettings::new(vec![etcd.endpoint()]);
    e.request_timeout = Duration::from_secs(2);
    e.connect_timeout = Duration::from_secs(1);
    s.store.kind = StoreKind::Etcd(e);
    s.store.limits = limits;
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_comes_back_with_its_code_from_the_directory() {
    let dir = std::env::temp_dir().join(format!("roma-serve-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = settings();
    s.store.kind = StoreKind::Dir(dir.clone());
    let mut a = TestServer::start(s.clone()).await;
    let r = a.get("/readyz").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.body);
    let rev = revision_of(&a.load("v1", &js("one")).await);
    assert_eq!(rev, 1.0);
    revision_of(&a.load("v2", &js("two")).await);
    a.drain().await;
    drop(a);
    let mut s2 = settings();
    s2.store = s.store.clone();
    let b = TestServer::start(s2).await;
    eventually("the restarted server is ready", || async {
        b.get("/readyz").await.status == StatusCode::OK
    })
    .await;
    let ready = b.get("/readyz").await.body;
    assert!(ready.contains("store: dir revision 2 connected"), "{ready}");
    assert_eq!(run_version(&b, "v1").await.json()["resp"], "\"one\"");
    assert_eq!(run_version(&b, "v2").await.json()["resp"], "\"two\"");
    // A load that does not compile is refused and nothing is stored.
    let bad = b.load("v3", "function (").await;
    assert_eq!(bad.kind(), "compile", "{}", bad.body);
    assert_eq!(b.metric("roma_store_revision").await, Some(2.0));
    assert_eq!(run_version(&b, "v3").await.kind(), "version_not_found");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_bounds_objects_and_versions() {
    let mut s = settings();
    s.store.limits = StoreLimits {
        max_object_bytes: 400,
        max_versions_per_code_id: 2,
        max_versions: 3,
    };
    let t = TestServer::start(s).await;
    let big = load_as(&t, "c", "big", &js(&"x".repeat(500))).await;
    assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
    assert!(big.body.contains("store.max_object_bytes"), "{}", big.body);
    assert_eq!(run_version(&t, "big").await.kind(), "version_not_found");
    for v in ["c1", "c2", "c3"] {
        revision_of(&load_as(&t, "c", v, &js(v)).await);
    }
    // c1 was evicted by c3: gone here (and from every replica, see the etcd test).
    assert_eq!(run_version(&t, "c1").await.kind(), "version_not_found");
    assert_eq!(run_version(&t, "c3").await.json()["resp"], "\"c3\"");
    revision_of(&load_as(&t, "d", "d1", &js("d1")).await);
    let full = load_as(&t, "e", "e1", &js("e1")).await;
    assert_eq!(full.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", full.body);
    assert!(full.body.contains("store.max_versions"), "{}", full.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_etcd_serve_every_version_through_an_outage() {
    let Some(mut etcd) = Etcd::start("replicas") else {
        return;
    };
    let limits = StoreLimits {
        max_versions_per_code_id: 2,
        ..Default::default()
    };
    let a = TestServer::start(etcd_settings(&etcd, limits)).await;
    let b = TestServer::start(etcd_settings(&etcd, limits)).await;

    // Load on a, execute on b once b has applied the load's revision.
    let r1 = revision_of(&load_as(&a, "c", "c1", &js("one")).await);
    wait_revision(&b, r1).await;
    assert_eq!(run_version(&b, "c1").await.json()["resp"], "\"one\"");
    eventually("b is ready", || async {
        b.get("/readyz").await.status == StatusCode::OK
    })
    .await;

    // Replaced on b, served new on a.
    let r2 = revision_of(&load_as(&b, "c", "c1", &js("uno")).await);
    assert!(r2 > r1);
    wait_revision(&a, r2).await;
    assert_eq!(run_version(&a, "c1").await.json()["resp"], "\"uno\"");

    // Eviction: two versions per code id; c3 evicts c1 on every replica.
    revision_of(&load_as(&a, "c", "c2", &js("two")).await);
    let r3 = revision_of(&load_as(&a, "c", "c3", &js("three")).await);
    for t in [&a, &b] {
        wait_revision(t, r3).await;
        assert_eq!(run_version(t, "c1").await.kind(), "version_not_found");
        assert_eq!(run_version(t, "c3").await.json()["resp"], "\"three\"");
    }

    // A replica that starts now loads everything before it reports ready.
    let c = TestServer::start(etcd_settings(&etcd, limits)).await;
    eventually("c is ready", || async {
        c.get("/readyz").await.status == StatusCode::OK
    })
    .await;
    assert!(c.metric("roma_store_revision").await.unwrap() >= r3);
    for (v, want) in [("c2", "\"two\""), ("c3", "\"three\"")] {
        assert_eq!(run_version(&c, v).await.json()["resp"], want);
    }

    // etcd down: every replica keeps serving what it has and stays ready; loads fail with
    // `unavailable` and leave nothing behind.
    etcd.stop();
    let down = load_as(&a, "d", "d1", &js("d")).await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.body
    );
    assert_eq!(down.kind(), "unavailable");
    for t in [&a, &b, &c] {
        assert_eq!(run_version(t, "c3").await.json()["resp"], "\"three\"");
        assert_eq!(t.get("/readyz").await.status, StatusCode::OK);
        assert_eq!(run_version(t, "d1").await.kind(), "version_not_found");
    }
    eventually("b notices the outage", || async {
        b.get("/readyz").await.body.contains("disconnected")
    })
    .await;

    // Back: loads work again and every replica catches up.
    etcd.resume().expect("etcd restarts");
    let until = tokio::time::Instant::now() + PATIENCE;
    let r4 = loop {
        let r = load_as(&a, "d", "d1", &js("dee")).await;
        if r.status == StatusCode::OK {
            break revision_of(&r);
        }
        assert_eq!(r.kind(), "unavailable", "{}", r.body);
        assert!(
            tokio::time::Instant::now() < until,
            "no load succeeded after etcd came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for t in [&a, &b, &c] {
        wait_revision(t, r4).await;
        assert_eq!(run_version(t, "d1").await.json()["resp"], "\"dee\"");
        assert!(t.get("/readyz").await.body.contains(" connected"));
    }
}
