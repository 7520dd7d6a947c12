//! When a slot replaces a healthy backend (planned recycling), as plain data that unit tests
//! drive with made-up clock readings; the slot thread (`worker.rs`) does the replacing.
//!
//! A worker that a V8 exploit took over answers requests on time and so never crashes; only a
//! rule the host enforces ends it. Three rules, each off unless configured
//! ([`super::DispatcherConfig`]): a number of executions, an age, and CPU time used while the
//! slot gave the worker nothing to do (a compromised worker's own threads at work between
//! requests: mining, or waiting for a later tenant's data).

use super::config::Recycle;
use std::time::{Duration, Instant};

/// The shortest idle stretch whose CPU use is judged, and how often an idle slot samples it.
/// A second smooths over a garbage-collection burst right after a request.
pub(crate) const IDLE_CPU_WINDOW: Duration = Duration::from_secs(1);

/// How long a slot has been idle before it takes the first CPU sample of the stretch. Reading
/// a worker's CPU time is a few `/proc` reads; a busy slot goes idle between most requests, and
/// sampling at once would pay them for nearly every request, for stretches that end long before
/// a window. A stretch shorter than this is never sampled; what a worker does in the first
/// `IDLE_CPU_SETTLE` of a stretch (its next context's pre-warm) is not counted as idle work.
pub(crate) const IDLE_CPU_SETTLE: Duration = Duration::from_millis(20);

/// Where an idle stretch's CPU sampling stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Idle {
    /// Not idle, or not measurable.
    No,
    /// Idle since then; its first sample is due at `IDLE_CPU_SETTLE` past it.
    Settling(Instant),
    /// Sampled then, with the backend's CPU time at that moment.
    Sampled(Instant, Duration),
}

/// What the slot's current backend has done, for the rules.
#[derive(Debug)]
pub(crate) struct Usage {
    born: Instant,
    /// Executions it has run.
    pub served: u64,
    /// The current idle stretch's sampling.
    idle: Idle,
    /// It used too much CPU while idle.
    over_idle_cpu: bool,
    /// A failed replacement: no new attempt before this.
    not_before: Option<Instant>,
}

impl Usage {
    /// A backend created at `born`.
    pub fn new(born: Instant) -> Self {
        Usage {
            born,
            served: 0,
            idle: Idle::No,
            over_idle_cpu: false,
            not_before: None,
        }
    }

    /// The slot has nothing for the backend from `now`. Its CPU time is first sampled
    /// `IDLE_CPU_SETTLE` later, if the stretch lasts that long.
    pub fn idle_from(&mut self, now: Instant) {
        self.idle = Idle::Settling(now);
    }

    /// The slot gave the backend work: the idle stretch (if any) is over.
    pub fn busy(&mut self) {
        self.idle = Idle::No;
    }

    /// When the current idle stretch takes its next CPU sample: its first at `IDLE_CPU_SETTLE`
    /// in, then one per `IDLE_CPU_WINDOW`. `None`: not idle, or not measurable.
    fn sample_at(&self) -> Option<Instant> {
        match self.idle {
            Idle::No => None,
            Idle::Settling(since) => since.checked_add(IDLE_CPU_SETTLE),
            Idle::Sampled(since, _) => since.checked_add(IDLE_CPU_WINDOW),
        }
    }

    /// Whether the idle stretch is due a CPU sample at `now`.
    pub fn sample_due(&self, now: Instant) -> bool {
        self.sample_at().is_some_and(|at| now >= at)
    }

    /// Whether the idle stretch has a window sampled at both ends due at `now`: what the slot
    /// judges before it gives the backend its next request (a stretch still settling has no
    /// window to judge, and its first sample would be wasted).
    pub fn window_due(&self, now: Instant) -> bool {
        matches!(self.idle, Idle::Sampled(..)) && self.sample_due(now)
    }

    /// Takes a CPU sample of the idle backend at `now` (`cpu`; `None`: it cannot be measured,
    /// and the stretch is not judged). The first one of a stretch starts its window; each later
    /// one judges the window it ends: over `per_sec` per second of it marks the backend for
    /// recycling. A new window starts at each sample.
    pub fn sample(&mut self, now: Instant, cpu: Option<Duration>, per_sec: Duration) {
        let Some(after) = cpu else {
            self.idle = Idle::No;
            return;
        };
        match self.idle {
            Idle::No => return,
            Idle::Settling(_) => {}
            Idle::Sampled(since, before) => {
                let wall = now.saturating_duration_since(since);
                let used = after.saturating_sub(before);
                if used > per_sec.mul_f64(wall.as_secs_f64()) {
                    self.over_idle_cpu = true;
                }
            }
        }
        self.idle = Idle::Sampled(now, after);
    }

    /// No replacement before `at` (the last attempt failed).
    pub fn postpone(&mut self, at: Instant) {
        self.not_before = Some(at);
    }

    /// Whether a rule says the backend should be replaced now.
    pub fn due(&self, rules: &Recycle, now: Instant) -> bool {
        if self.not_before.is_some_and(|t| now < t) {
            return false;
        }
        rules.after_requests.is_some_and(|n| self.served >= n)
            || rules
                .after_age
                .is_some_and(|age| now.saturating_duration_since(self.born) >= age)
            || self.over_idle_cpu
    }

    /// Until when the age rule lets the backend run requests the slot thread does not see
    /// (the direct hand-off, `direct.rs`): its age limit, or a failed replacement's
    /// postponement when that is later. `None`: no age rule.
    pub fn age_limit(&self, rules: &Recycle) -> Option<Instant> {
        let at = rules.after_age.and_then(|a| self.born.checked_add(a))?;
        Some(self.not_before.map_or(at, |t| at.max(t)))
    }

    /// When an idle slot must wake to check the rules (`None`: never, the plain wait).
    pub fn next_check(&self, rules: &Recycle) -> Option<Instant> {
        let age = rules.after_age.and_then(|a| self.born.checked_add(a));
        let cpu = rules.idle_cpu_per_sec.and(self.sample_at());
        let at = match (age, cpu) {
            (Some(a), Some(c)) => Some(a.min(c)),
            (a, c) => a.or(c),
        }?;
        Some(self.not_before.map_or(at, |t| at.max(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn rules(requests: u64, age_ms: u64, cpu_ms: u64) -> Recycle {
        Recycle {
            after_requests: Some(requests).filter(|&n| n > 0),
            after_age: Some(MS * age_ms as u32).filter(|d| !d.is_zero()),
            idle_cpu_per_sec: Some(MS * cpu_ms as u32).filter(|d| !d.is_zero()),
        }
    }

    #[test]
    fn off_rules_are_never_due_and_never_wake_the_slot() {
        let t0 = Instant::now();
        let mut u = Usage::new(t0);
        u.served = 1_000_000;
        u.idle_from(t0);
        let off = Recycle::default();
        assert!(!off.any());
        assert!(!u.due(&off, t0 + Duration::from_secs(86_400)));
        assert_eq!(u.next_check(&off), None);
    }

    #[test]
    fn requests_and_age_rules() {
        let t0 = Instant::now();
        let mut u = Usage::new(t0);
        let r = rules(3, 0, 0);
        u.served = 2;
        assert!(!u.due(&r, t0));
        u.served = 3;
        assert!(u.due(&r, t0));
        let r = rules(0, 100, 0);
        assert!(!u.due(&r, t0 + 99 * MS));
        assert!(u.due(&r, t0 + 100 * MS));
        assert_eq!(u.next_check(&r), Some(t0 + 100 * MS));
    }

    #[test]
    fn idle_cpu_is_judged_per_second_of_idleness_from_a_first_sample_after_the_settle() {
        let t0 = Instant::now();
        let r = rules(0, 0, 200);
        let mut u = Usage::new(t0);
        assert_eq!(u.next_check(&r), None, "not idle: nothing to sample");
        u.idle_from(t0);
        // No sample until the stretch has settled: a short one is never read.
        let t_s = t0 + IDLE_CPU_SETTLE;
        assert_eq!(u.next_check(&r), Some(t_s));
        assert!(!u.sample_due(t_s - MS));
        assert!(u.sample_due(t_s));
        assert!(!u.window_due(t_s), "settled, but no window yet");
        // The first sample only starts the window, however much CPU the clock says.
        u.sample(t_s, Some(Duration::from_secs(7)), 200 * MS);
        assert!(!u.due(&r, t_s));
        assert_eq!(u.next_check(&r), Some(t_s + IDLE_CPU_WINDOW));
        assert!(!u.sample_due(t_s + IDLE_CPU_WINDOW - MS));
        assert!(u.window_due(t_s + IDLE_CPU_WINDOW));
        // 150 ms in 1 s: within the limit; the next window starts at the sample.
        let t1 = t_s + IDLE_CPU_WINDOW;
        u.sample(t1, Some(Duration::from_secs(7) + 150 * MS), 200 * MS);
        assert!(!u.due(&r, t1));
        // 900 ms in the next second: a worker at work with no request.
        let t2 = t1 + IDLE_CPU_WINDOW;
        u.sample(t2, Some(Duration::from_secs(8) + 50 * MS), 200 * MS);
        assert!(u.due(&r, t2));
        // A backend that cannot be measured is not judged, and not sampled again until its
        // next idle stretch.
        let mut blind = Usage::new(t0);
        blind.idle_from(t0);
        blind.sample(t_s, None, 200 * MS);
        assert!(!blind.sample_due(t2));
        assert_eq!(blind.next_check(&r), None);
        assert!(!blind.due(&r, t2));
        // Work ends a stretch before its first sample: nothing is read.
        let mut brief = Usage::new(t0);
        brief.idle_from(t0);
        brief.busy();
        assert!(!brief.sample_due(t2));
        // A sample that comes while busy (a stale wake-up) starts nothing.
        brief.sample(t2, Some(Duration::ZERO), 200 * MS);
        assert!(!brief.sample_due(t2 + 2 * IDLE_CPU_WINDOW));
    }

    #[test]
    fn a_failed_replacement_postpones_the_next_attempt() {
        let t0 = Instant::now();
        let r = rules(1, 50, 0);
        let mut u = Usage::new(t0);
        u.served = 1;
        u.postpone(t0 + 500 * MS);
        assert!(!u.due(&r, t0 + 499 * MS));
        assert!(u.due(&r, t0 + 500 * MS));
        assert_eq!(u.next_check(&r), Some(t0 + 500 * MS));
    }
}
