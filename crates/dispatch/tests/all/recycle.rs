//! Planned recycling: a healthy backend is replaced after N executions, at an age, or when it
//! uses CPU while idle; the new one holds every cached version before it takes a request, and no
//! request fails because of it, under load included.

use crate::fake::{Event, Harness, code, load_ok, recv, req, run, sink};
use crate::{config, loaded, wait_stats};
use roma_core::RomaError;
use roma_dispatch::{Dispatcher, DispatcherConfig};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

fn recycling(workers: usize, requests: u64, age: Duration, cpu: Duration) -> DispatcherConfig {
    DispatcherConfig {
        recycle_after_requests: requests,
        recycle_after_age: age,
        recycle_idle_cpu_per_sec: cpu,
        // Room for every request the load test submits at once.
        ..config(workers, 1000)
    }
}

fn echo_ok(d: &roma_dispatch::Dispatcher<()>, version: &str, input: &str) {
    let out = run(d, req(version, "echo", &[input])).expect("the request succeeds");
    assert!(out.resp.starts_with(&format!("{version}|")), "{}", out.resp);
}

/// Every backend generation of `worker` from 2 on was given `versions`, in order, before it
/// ran any execution.
fn replayed_before_serving(h: &Harness, worker: usize, versions: &[&str]) {
    let events = h.events();
    for g in 2..=h.spawns(worker) {
        assert_eq!(h.loads(worker, g), versions, "generation {g}");
        let last_load = events.iter().rposition(|e| {
            matches!(e, Event::Load { worker: w, generation, .. } if *w == worker && *generation == g)
        });
        let first_exec = events.iter().position(|e| {
            matches!(e, Event::Exec { worker: w, generation, .. } if *w == worker && *generation == g)
        });
        if let (Some(l), Some(x)) = (last_load, first_exec) {
            assert!(
                l < x,
                "generation {g} ran a request before its replay: {events:?}"
            );
        }
    }
}

/// Checks [`replayed_before_serving`] for each of `workers`, then stops `d` and checks that
/// every backend was dropped.
fn stop_after_replays(h: &Harness, d: &Dispatcher<()>, workers: &[usize], versions: &[&str]) {
    for &w in workers {
        replayed_before_serving(h, w, versions);
    }
    d.stop();
    assert!(h.all_dropped());
}

#[test]
fn a_worker_is_recycled_after_n_requests_with_every_version_replayed_first() {
    let (h, d) = loaded(recycling(1, 3, Duration::ZERO, Duration::ZERO));
    load_ok(&d, code("v2", "two"));
    for i in 0..10 {
        echo_ok(&d, if i % 2 == 0 { "v1" } else { "v2" }, &i.to_string());
    }
    // Replaced after requests 3, 6 and 9: generations 2, 3 and 4; the tenth ran on the fourth.
    assert_eq!(h.spawns(0), 4);
    let per_generation: Vec<usize> = (1..=4)
        .map(|g| {
            h.execs()
                .iter()
                .filter(|(_, generation, _)| *generation == g)
                .count()
        })
        .collect();
    assert_eq!(per_generation, [3, 3, 3, 1]);
    let s = wait_stats(&d, "three recycles counted", |s| s.workers[0].recycled == 3);
    assert_eq!(s.workers[0].recycled, 3);
    stop_after_replays(&h, &d, &[0], &["v1", "v2"]);
}

#[test]
fn an_idle_worker_is_recycled_at_its_age() {
    let (h, d) = loaded(recycling(1, 0, Duration::from_millis(30), Duration::ZERO));
    // No request comes: the idle slot wakes for the age rule by itself.
    h.wait_spawned(0, 3);
    echo_ok(&d, "v1", "after");
    stop_after_replays(&h, &d, &[0], &["v1"]);
}

#[test]
fn a_worker_that_uses_cpu_while_idle_is_recycled_and_a_quiet_one_is_not() {
    let (h, d) = loaded(recycling(2, 0, Duration::ZERO, Duration::from_millis(200)));
    h.spin_while_idle(1);
    h.wait_spawned(1, 2);
    // Worker 0 reported no CPU use in the same time: it is still its first backend.
    assert_eq!(h.spawns(0), 1);
    echo_ok(&d, "v1", "after");
    stop_after_replays(&h, &d, &[1], &["v1"]);
}

#[test]
fn no_request_fails_while_workers_recycle_under_load() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 150;
    let (h, d) = loaded(recycling(3, 2, Duration::from_millis(5), Duration::ZERO));
    let d = Arc::new(d);
    let (tx, rx) = mpsc::channel::<Result<roma_core::ResponseObject, RomaError>>();
    let submitters: Vec<_> = (0..THREADS)
        .map(|t| {
            let d = Arc::clone(&d);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..PER_THREAD {
                    d.execute(req("v1", "echo", &[&format!("{t}-{i}")]), sink(&tx))
                        .expect("accepted (the queue holds them all)");
                }
            })
        })
        .collect();
    for s in submitters {
        s.join().unwrap();
    }
    drop(tx);
    let mut answered = 0;
    for _ in 0..THREADS * PER_THREAD {
        let out = recv(&rx).expect("no request fails because of a recycle");
        assert!(out.resp.starts_with("v1|"), "{}", out.resp);
        answered += 1;
    }
    assert_eq!(answered, THREADS * PER_THREAD);
    assert!(rx.try_recv().is_err(), "a request was answered twice");
    let recycled: u64 = d.stats().workers.iter().map(|w| w.recycled).sum();
    assert!(recycled >= 100, "only {recycled} recycles for 600 requests");
    stop_after_replays(&h, &d, &[0, 1, 2], &["v1"]);
}
