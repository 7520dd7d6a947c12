//! When a slot may replace its backend: the respawn backoff schedule, and the rule that tells a
//! crash loop from an occasional crash (the "Crash loops" paragraph of the dispatcher's module
//! docs gives the rule and why). Kept apart from the slot thread so the rule is plain data that
//! unit tests can drive with made-up clock readings.

use std::time::{Duration, Instant};

/// A slot's respawn waits: `initial`, doubling up to `max`. Failed respawn attempts and early
/// deaths climb the same schedule; a healthy backend's death resets it.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The wait to observe now; the one after it doubles, up to `max`.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = wait.saturating_mul(2).min(self.max);
        wait
    }

    /// Back to `initial`, after a backend proved healthy.
    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

/// How the slot's current backend has fared so far.
#[derive(Debug)]
pub(crate) struct Lifetime {
    born: Instant,
    proven: bool,
}

impl Lifetime {
    /// A backend created now, not yet proved healthy.
    pub fn starting_at(born: Instant) -> Self {
        Lifetime {
            born,
            proven: false,
        }
    }

    /// Whether the backend has completed an execution and survived it.
    pub fn proven(&self) -> bool {
        self.proven
    }

    /// Records that the backend completed an execution and survived it.
    pub fn prove(&mut self) {
        self.proven = true;
    }

    /// Whether a death at `now` is early: the backend never proved healthy and lived less
    /// than `grace` (the slot's `respawn_backoff_max`).
    pub fn died_early(&self, now: Instant, grace: Duration) -> bool {
        !self.proven && now.saturating_duration_since(self.born) < grace
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_schedule_doubles_up_to_its_cap_and_resets() {
        let mut b = Backoff::new(10 * MS, 50 * MS);
        let waits: Vec<_> = (0..5).map(|_| b.next_wait()).collect();
        assert_eq!(waits, vec![10 * MS, 20 * MS, 40 * MS, 50 * MS, 50 * MS]);
        b.reset();
        assert_eq!(b.next_wait(), 10 * MS);
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.next_wait(), Duration::MAX, "no overflow");
        assert_eq!(huge.next_wait(), Duration::MAX);
    }

    #[test]
    fn a_death_is_early_unless_the_backend_proved_healthy_or_grew_old() {
        let born = Instant::now();
        let grace = 100 * MS;
        let mut life = Lifetime::starting_at(born);
        assert!(life.died_early(born, grace), "dead at birth");
        assert!(life.died_early(born + 99 * MS, grace));
        assert!(
            !life.died_early(born + grace, grace),
            "lived as long as the cap"
        );
        life.prove();
        assert!(life.proven());
        assert!(!life.died_early(born, grace), "completed an execution");
    }
}
