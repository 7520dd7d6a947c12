//! Many threads submitting, cancelling and crashing workers at once: every accepted request is
//! answered exactly once and every metadata value is dropped exactly once.

use crate::fake::{Harness, Meta, MetaLog, Seen, code, load_ok, recv, req};
use crate::{health_is, loaded, wait_stats, with_backoff};
use roma_core::ErrorKind;
use roma_dispatch::{Dispatcher, DispatcherConfig, ExecutionToken, WorkerHealth};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

const THREADS: u32 = 4;
const OPS: u32 = 300;
const LOADS: usize = 30;

#[derive(Default)]
struct Tally {
    /// Executions accepted (a batch counts each request).
    accepted: AtomicUsize,
    /// Executions refused (a refused batch counts each request).
    refused: AtomicUsize,
    /// Single-execution callbacks that ran.
    delivered: AtomicUsize,
    /// Batches accepted, and batch callbacks that ran.
    batches: AtomicUsize,
    batch_callbacks: AtomicUsize,
    /// Tags of accepted single executions, and of every request in an accepted batch.
    singles: std::sync::Mutex<Vec<u32>>,
    batched: std::sync::Mutex<Vec<u32>>,
    refused_tags: std::sync::Mutex<Vec<u32>>,
    /// Loads accepted, and load callbacks that ran.
    loads: AtomicUsize,
    load_callbacks: Arc<AtomicUsize>,
}

/// A small deterministic generator (one per thread).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

fn submit_one(
    d: &Dispatcher<Meta>,
    log: &Arc<MetaLog>,
    t: &Arc<Tally>,
    tag: u32,
    handler: &str,
) -> Option<ExecutionToken> {
    let tally = Arc::clone(t);
    let l = Arc::clone(log);
    let cb = move |_r| {
        l.push(Seen::Callback(tag));
        tally.delivered.fetch_add(1, Ordering::SeqCst);
    };
    match d.execute(log.req(tag, req("v1", handler, &[])), cb) {
        Ok(token) => {
            t.accepted.fetch_add(1, Ordering::SeqCst);
            t.singles.lock().unwrap().push(tag);
            Some(token)
        }
        Err(e) => {
            assert!(
                matches!(
                    e.kind(),
                    ErrorKind::QueueFull | ErrorKind::WorkerCrashed | ErrorKind::VersionNotFound
                ),
                "{e}"
            );
            t.refused.fetch_add(1, Ordering::SeqCst);
            t.refused_tags.lock().unwrap().push(tag);
            None
        }
    }
}

fn worker_thread(
    h: &Harness,
    d: &Dispatcher<Meta>,
    log: &Arc<MetaLog>,
    t: &Arc<Tally>,
    thread: u32,
) {
    let mut rng = Lcg(u64::from(thread) * 7919 + 1);
    let mut tokens: Vec<ExecutionToken> = Vec::new();
    for i in 0..OPS {
        let tag = (thread * OPS + i) * 4;
        match rng.next() % 20 {
            0..=9 => tokens.extend(submit_one(d, log, t, tag, "echo")),
            10..=11 => tokens.extend(submit_one(d, log, t, tag, "fail")),
            12 => tokens.extend(submit_one(d, log, t, tag, "crash")),
            13 => tokens.extend(submit_one(d, log, t, tag, "panic")),
            14 => {
                // Cancelled at once, running or queued: must end promptly.
                if let Some(token) = submit_one(d, log, t, tag, "loop") {
                    assert!(d.cancel(&token), "a loop cannot have completed on its own");
                }
            }
            15..=16 => {
                let batch: Vec<_> = (0..3)
                    .map(|k| log.req(tag + k, req("v1", "echo", &[])))
                    .collect();
                let tally = Arc::clone(t);
                match d.batch_execute(batch, move |rs| {
                    assert_eq!(rs.len(), 3);
                    tally.batch_callbacks.fetch_add(1, Ordering::SeqCst);
                }) {
                    Ok(_) => {
                        t.accepted.fetch_add(3, Ordering::SeqCst);
                        t.batches.fetch_add(1, Ordering::SeqCst);
                        t.batched.lock().unwrap().extend(tag..tag + 3);
                    }
                    Err(e) => {
                        assert!(
                            matches!(
                                e.kind(),
                                ErrorKind::QueueFull
                                    | ErrorKind::WorkerCrashed
                                    | ErrorKind::VersionNotFound
                            ),
                            "{e}"
                        );
                        t.refused.fetch_add(3, Ordering::SeqCst);
                        t.refused_tags.lock().unwrap().extend(tag..tag + 3);
                    }
                }
            }
            17 => h.kill(rng.next() as usize % 3),
            _ => {
                if !tokens.is_empty() {
                    let k = rng.next() as usize % tokens.len();
                    d.cancel(&tokens.swap_remove(k));
                }
            }
        }
    }
}

/// Submits, cancels, crashes, kills and loads from several threads at once; returns when
/// every thread is done (requests may still be queued or running).
fn storm(h: &Arc<Harness>, d: &Dispatcher<Meta>, log: &Arc<MetaLog>, t: &Arc<Tally>) {
    std::thread::scope(|s| {
        for thread in 0..THREADS {
            s.spawn(move || worker_thread(h, d, log, t, thread));
        }
        // Loads (good, and failing on one worker) interleave with the executions.
        s.spawn(move || {
            for i in 0..LOADS {
                let js = if i % 3 == 2 { "bad-on-1" } else { "js" };
                let version = if i % 2 == 0 { "v1" } else { "v2" };
                let l = Arc::clone(&t.load_callbacks);
                match d.load(code(version, js), move |_| {
                    l.fetch_add(1, Ordering::SeqCst);
                }) {
                    Ok(()) => {
                        t.loads.fetch_add(1, Ordering::SeqCst);
                    }
                    // Every slot can be down for a moment (a kill during a replay).
                    Err(e) => assert_eq!(e.kind(), ErrorKind::WorkerCrashed, "{e}"),
                }
            }
        });
    });
}

/// After the dispatcher is gone: every accepted request was answered once, every metadata
/// value dropped once.
fn check_accounting(log: &MetaLog, t: &Tally) {
    let singles = t.singles.lock().unwrap().clone();
    let batched = t.batched.lock().unwrap().clone();
    let refused = t.refused_tags.lock().unwrap().clone();
    assert_eq!(
        t.delivered.load(Ordering::SeqCst) + 3 * t.batch_callbacks.load(Ordering::SeqCst),
        t.accepted.load(Ordering::SeqCst),
        "submitted == delivered"
    );
    assert_eq!(
        t.batches.load(Ordering::SeqCst),
        t.batch_callbacks.load(Ordering::SeqCst)
    );
    for tag in singles {
        assert_eq!(log.of(tag), vec![Seen::Callback(tag), Seen::Dropped(tag)]);
    }
    for tag in batched.into_iter().chain(refused) {
        assert_eq!(log.of(tag), vec![Seen::Dropped(tag)]);
    }
    assert_eq!(
        log.drops(),
        t.accepted.load(Ordering::SeqCst) + t.refused.load(Ordering::SeqCst)
    );
    assert!(t.accepted.load(Ordering::SeqCst) > 0);
    assert_eq!(
        t.load_callbacks.load(Ordering::SeqCst),
        t.loads.load(Ordering::SeqCst),
        "one callback per accepted load"
    );
}

/// Three slots (20 queued requests each, respawns retried after 1 ms) with `v1` loaded, right
/// after a storm: what the storm did is in the log and the tally.
fn after_a_storm() -> (Arc<Harness>, Dispatcher<Meta>, Arc<MetaLog>, Arc<Tally>) {
    let ms = Duration::from_millis(1);
    let (h, d) = loaded::<Meta>(DispatcherConfig {
        worker_queue_max_items: 20,
        ..with_backoff(3, ms, ms)
    });
    let log = MetaLog::new();
    let tally = Arc::new(Tally::default());
    storm(&h, &d, &log, &tally);
    (h, d, log, tally)
}

#[test]
fn every_accepted_request_is_answered_exactly_once_through_a_stop() {
    let (h, d, log, tally) = after_a_storm();
    // Whatever is still queued is cancelled by stop; running requests finish first.
    drop(d);
    assert!(h.all_dropped());
    check_accounting(&log, &tally);
}

#[test]
fn after_a_storm_the_dispatcher_still_recovers_and_serves() {
    let (_h, d, log, tally) = after_a_storm();
    // Idle too, so that the load below does not race the storm's last requests and loads.
    // (A backend killed from outside while idle still shows as up; the dispatcher replaces it
    // when it next gives it work, a load included.)
    wait_stats(&d, "queues drained and every slot up and idle", |s| {
        s.queued == 0
            && (0..3).all(|i| {
                health_is(s, i, WorkerHealth::Up)
                    && !s.workers[i].running
                    && s.workers[i].pending_loads == 0
            })
    });
    load_ok(&d, code("v1", "js"));
    let after = MetaLog::new();
    let (tx, rx) = mpsc::channel();
    after.submit(&d, 0, "crash", &tx);
    assert_eq!(recv(&rx).unwrap_err().kind(), ErrorKind::WorkerCrashed);
    for tag in 1..=6 {
        after.submit(&d, tag, "echo", &tx);
        assert_eq!(recv(&rx).unwrap().resp, "v1|js|");
    }
    drop(d);
    for tag in 0..=6 {
        after.assert_answered_once(tag);
    }
    check_accounting(&log, &tally);
}
