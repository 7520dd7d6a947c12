//! When an idle worker prewarms its next context (the worker's serve loop asks): right after its answer, or after a short
//! sleep that leaves the CPUs to the host's turnaround.
//!
//! A prewarm is a context's creation, a few hundred microseconds of one CPU that the
//! scheduler does not take back for threads woken meanwhile. Right after an answer those
//! threads are the request's way out: the host thread that takes the answer and, in a
//! server, the one that writes the response and the client's that reads it. On a machine with
//! few cores a prewarm started at once sits on one of the CPUs they need. So an idle worker
//! sleeps [`PREWARM_DEFER`] first, unless its requests have been coming faster than that sleep
//! and the prewarm after it would take: then the next request would find the context
//! unready, and it prewarms at once as before. Under saturation (the worker was not idle) it
//! prewarms at once too: the next request is already on its way.

use std::time::{Duration, Instant};

/// How long an idle worker sleeps after its answer before it prewarms: about one turnaround
/// of a request through a server on loopback.
pub const PREWARM_DEFER: Duration = Duration::from_micros(300);

/// The prewarm's cost assumed before one was timed.
const FIRST_PREWARM_COST: Duration = Duration::from_micros(500);

/// What the worker has seen of its requests' pace and of its prewarms.
#[derive(Debug, Default)]
pub struct PrewarmPacing {
    /// When the last answer went out.
    answered: Option<Instant>,
    /// From the last answer to the message after it.
    last_gap: Option<Duration>,
    /// How long the last prewarm took.
    cost: Option<Duration>,
}

impl PrewarmPacing {
    /// An answer went out at `now`.
    pub fn answered(&mut self, now: Instant) {
        self.answered = Some(now);
    }

    /// A message arrived at `now`.
    pub fn message(&mut self, now: Instant) {
        if let Some(a) = self.answered.take() {
            self.last_gap = Some(now.saturating_duration_since(a));
        }
    }

    /// A prewarm took `took`.
    pub fn prewarmed(&mut self, took: Duration) {
        self.cost = Some(took);
    }

    /// Whether the prewarm after this answer waits [`PREWARM_DEFER`] first; `was_idle`: the
    /// request found the worker idle.
    pub fn defers(&self, was_idle: bool) -> bool {
        let ready_by = PREWARM_DEFER + self.cost.unwrap_or(FIRST_PREWARM_COST);
        was_idle && self.last_gap.is_none_or(|gap| gap >= ready_by)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Pacing after one answer and a next message `gap` later, with prewarms of `cost`.
    fn after(gap: Duration, cost: Duration) -> PrewarmPacing {
        let mut p = PrewarmPacing::default();
        let t = Instant::now();
        p.prewarmed(cost);
        p.answered(t);
        p.message(t + gap);
        p
    }

    #[test]
    fn an_idle_worker_defers_until_requests_come_faster_than_the_deferral_and_prewarm() {
        assert!(
            PrewarmPacing::default().defers(true),
            "nothing seen yet: idle"
        );
        assert!(
            !PrewarmPacing::default().defers(false),
            "saturated: at once"
        );
        let cost = us(400);
        assert!(
            after(us(2_000), cost).defers(true),
            "2 ms gaps: ready long before"
        );
        assert!(
            after(PREWARM_DEFER + cost, cost).defers(true),
            "just in time"
        );
        assert!(
            !after(PREWARM_DEFER + cost - us(1), cost).defers(true),
            "too late"
        );
        assert!(
            !after(us(250), cost).defers(true),
            "requests inside the deferral"
        );
        assert!(!after(us(2_000), cost).defers(false));
    }

    #[test]
    fn the_gap_is_measured_from_the_answer_and_only_once() {
        let mut p = PrewarmPacing::default();
        let t = Instant::now();
        p.prewarmed(us(100));
        p.answered(t);
        p.message(t + us(200));
        assert!(!p.defers(true), "200 µs < 300 + 100");
        // A message with no answer before it (a load, a late host reply) measures nothing.
        p.message(t + us(50_000));
        assert!(!p.defers(true));
        p.answered(t + us(60_000));
        p.message(t + us(70_000));
        assert!(p.defers(true));
    }

    #[test]
    fn a_timed_prewarm_moves_the_bound() {
        assert!(after(us(1_000), us(400)).defers(true));
        assert!(!after(us(1_000), us(800)).defers(true));
        // Before any prewarm was timed the assumed cost counts; a timed one replaces it.
        let gap = PREWARM_DEFER + FIRST_PREWARM_COST - us(1);
        let mut untimed = PrewarmPacing::default();
        let t = Instant::now();
        untimed.answered(t);
        untimed.message(t + gap);
        assert!(!untimed.defers(true));
        assert!(after(gap, us(0)).defers(true));
    }
}
