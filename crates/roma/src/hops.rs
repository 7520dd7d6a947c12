//! Places a worker's moments of one execution among the host's, for the per-hop metrics
//! (`roma_core::metrics::HOPS`).
//!
//! The worker reports two readings of the shared monotonic clock (`roma_ipc::clock`): when it
//! received the request and when its engine returned. They come from a process that may be
//! hostile, so they are figures for people only: each is clamped into the window the host saw
//! itself (after it sent the request, before it had the answer), kept in order, and nothing
//! the host decides depends on them.

use roma_core::metrics;
use roma_ipc::clock::{WORKER_DONE_CLOCK_KEY, WORKER_RECEIVED_CLOCK_KEY};
use std::collections::BTreeMap;
use std::time::Instant;

/// A host moment: when it happened, and the shared clock's reading then (ms).
pub(crate) type Moment = (Instant, f64);

/// Replaces the worker's clock readings in `m` (and any hop keys the worker put there itself)
/// with the backend hops of `roma_core::metrics::BACKEND_HOPS`, as `metrics::hop_stamp`s.
pub(crate) fn place(m: &mut BTreeMap<String, f64>, sent: Moment, answered: Moment) {
    let received = m.remove(WORKER_RECEIVED_CLOCK_KEY);
    let done = m.remove(WORKER_DONE_CLOCK_KEY);
    // Hop keys are the host's to write.
    for key in metrics::HOPS {
        m.remove(key);
    }
    let lo = metrics::hop_stamp(sent.0);
    let hi = metrics::hop_stamp(answered.0).max(lo);
    // The worker's reading on the host's scale: its distance from the host's reading at `sent`.
    let on_host = |clock: Option<f64>, floor: f64| -> f64 {
        match clock.map(|c| lo + (c - sent.1)) {
            Some(v) if v.is_finite() => v.clamp(floor, hi),
            _ => floor,
        }
    };
    let received = on_host(received, lo);
    let context = match m.get(metrics::CONTEXT_CREATION_MS) {
        Some(&c) if c.is_finite() && c >= 0.0 => received + c,
        _ => received,
    };
    let done = on_host(done, received);
    let context = context.clamp(received, done);
    m.insert(metrics::HOP_SENT_MS.into(), lo);
    m.insert(metrics::HOP_WORKER_RECEIVED_MS.into(), received);
    m.insert(metrics::HOP_CONTEXT_READY_MS.into(), context);
    m.insert(metrics::HOP_HANDLER_DONE_MS.into(), done);
    m.insert(metrics::HOP_ANSWER_RECEIVED_MS.into(), hi);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A window of 10 ms on both clocks, the host's clock reading 1000 ms at `sent`.
    fn window() -> (Moment, Moment) {
        let t0 = Instant::now();
        ((t0, 1000.0), (t0 + Duration::from_millis(10), 1010.0))
    }

    fn hops(m: &BTreeMap<String, f64>, sent: Moment) -> Vec<f64> {
        let origin = metrics::hop_stamp(sent.0);
        metrics::BACKEND_HOPS
            .iter()
            .map(|k| ((m[*k] - origin) * 1e3).round() / 1e3)
            .collect()
    }

    #[test]
    fn honest_readings_land_where_they_happened() {
        let (sent, answered) = window();
        let mut m = BTreeMap::from([
            (WORKER_RECEIVED_CLOCK_KEY.to_owned(), 1002.0),
            (WORKER_DONE_CLOCK_KEY.to_owned(), 1007.0),
            (metrics::CONTEXT_CREATION_MS.to_owned(), 1.5),
        ]);
        place(&mut m, sent, answered);
        assert_eq!(hops(&m, sent), [0.0, 2.0, 3.5, 7.0, 10.0]);
        assert!(
            !m.contains_key(WORKER_RECEIVED_CLOCK_KEY) && !m.contains_key(WORKER_DONE_CLOCK_KEY)
        );
    }

    #[test]
    fn lying_readings_stay_inside_the_hosts_window_and_in_order() {
        let (sent, answered) = window();
        for (received, done, context) in [
            (f64::NAN, f64::INFINITY, f64::NAN),
            (-1e300, 1e300, 1e300),
            (1009.0, 1001.0, -5.0),
            (5e15, 0.0, 3.0),
        ] {
            let mut m = BTreeMap::from([
                (WORKER_RECEIVED_CLOCK_KEY.to_owned(), received),
                (WORKER_DONE_CLOCK_KEY.to_owned(), done),
                (metrics::CONTEXT_CREATION_MS.to_owned(), context),
                // A worker that writes the host's own keys is overruled.
                (metrics::HOP_SENT_MS.to_owned(), -7.0),
                (metrics::HOP_CALLBACK_MS.to_owned(), 1e9),
            ]);
            place(&mut m, sent, answered);
            let h = hops(&m, sent);
            assert!(
                h.windows(2).all(|w| w[0] <= w[1]),
                "{received} {done}: {h:?}"
            );
            assert_eq!((h[0], h[4]), (0.0, 10.0), "{received} {done}: {h:?}");
            assert!(!m.contains_key(metrics::HOP_CALLBACK_MS));
        }
    }

    #[test]
    fn missing_readings_collapse_onto_sent() {
        let (sent, answered) = window();
        let mut m = BTreeMap::new();
        place(&mut m, sent, answered);
        assert_eq!(hops(&m, sent), [0.0, 0.0, 0.0, 0.0, 10.0]);
    }
}
