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

/// What the slot's current backend has done, for the rules.
#[derive(Debug)]
pub(crate) struct Usage {
    born: Instant,
    /// Executions it has run.
    pub served: u64,
    /// Since when it has been idle, and its CPU time then (`None`: not idle, or not measurable).
    idle: Option<(Instant, Duration)>,
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
            idle: None,
            over_idle_cpu: false,
            not_before: None,
        }
    }

    /// The slot has nothing for the backend from `now`, when its CPU time is `cpu`.
    pub fn idle_from(&mut self, now: Instant, cpu: Option<Duration>) {
        self.idle = cpu.map(|c| (now, c));
    }

    /// The slot gave the backend work: the idle stretch (if any) is over.
    pub fn busy(&mut self) {
        self.idle = None;
    }

    /// Whether the current idle stretch is at least `window` long.
    pub fn idle_window_complete(&self, now: Instant, window: Duration) -> bool {
        self.idle
            .is_some_and(|(since, _)| now.saturating_duration_since(since) >= window)
    }

    /// Judges the idle stretch that ends `now`, when the CPU time is `cpu`: over `per_sec` per
    /// second of it marks the backend for recycling. A new stretch starts `now`.
    pub fn judge_idle(&mut self, now: Instant, cpu: Option<Duration>, per_sec: Duration) {
        let (Some((since, before)), Some(after)) = (self.idle, cpu) else {
            self.idle = None;
            return;
        };
        let wall = now.saturating_duration_since(since);
        let used = after.saturating_sub(before);
        if used > per_sec.mul_f64(wall.as_secs_f64()) {
            self.over_idle_cpu = true;
        }
        self.idle = Some((now, after));
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
        let cpu = rules
            .idle_cpu_per_sec
            .and(self.idle)
            .and_then(|(since, _)| since.checked_add(IDLE_CPU_WINDOW));
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
        u.idle_from(t0, Some(Duration::ZERO));
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
    fn idle_cpu_is_judged_per_second_of_idleness() {
        let t0 = Instant::now();
        let r = rules(0, 0, 200);
        let mut u = Usage::new(t0);
        assert_eq!(u.next_check(&r), None, "not idle: nothing to sample");
        u.idle_from(t0, Some(Duration::from_secs(7)));
        assert_eq!(u.next_check(&r), Some(t0 + IDLE_CPU_WINDOW));
        // 150 ms in 1 s: within the limit; the next stretch starts at the sample.
        u.judge_idle(
            t0 + IDLE_CPU_WINDOW,
            Some(Duration::from_secs(7) + 150 * MS),
            200 * MS,
        );
        assert!(!u.due(&r, t0 + IDLE_CPU_WINDOW));
        // 900 ms in the next second: a worker at work with no request.
        let t1 = t0 + 2 * IDLE_CPU_WINDOW;
        u.judge_idle(t1, Some(Duration::from_secs(8) + 50 * MS), 200 * MS);
        assert!(u.due(&r, t1));
        // A backend that cannot be measured is never judged.
        let mut blind = Usage::new(t0);
        blind.idle_from(t0, None);
        assert!(!blind.idle_window_complete(t1, IDLE_CPU_WINDOW));
        blind.judge_idle(t1, None, 200 * MS);
        assert!(!blind.due(&r, t1));
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
