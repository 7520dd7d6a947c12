//! A point in time past which a wait on the peer gives up.
//!
//! Every wait on the peer (poll, futex) is sliced against one [`Deadline`], so a peer that
//! withholds bytes or wake-ups costs the caller at most the timeout it asked for.

use crate::IpcError;
use rustix::thread::futex::Timespec;
use std::time::{Duration, Instant};

/// The end of a wait, and the budget it came from (for the error message).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    at: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` from now. A budget too large for `Instant` is clamped to ~a year.
    pub(crate) fn after(budget: Duration) -> Self {
        let now = Instant::now();
        let at = now
            .checked_add(budget)
            .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
        Deadline { at, budget }
    }

    /// Time left, or `None` once the deadline has passed.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        let left = self.at.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Time left, capped at `slice`, or the timeout error once the deadline has passed.
    pub(crate) fn slice(&self, slice: Duration) -> Result<Duration, IpcError> {
        self.remaining()
            .map(|left| left.min(slice))
            .ok_or_else(|| self.timeout())
    }

    /// The error to return when the deadline passes.
    pub(crate) fn timeout(&self) -> IpcError {
        IpcError::Timeout(self.budget)
    }
}

/// A duration as the kernel's timespec (saturating at `i64::MAX` seconds).
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_deadline_reports_its_budget() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.remaining().is_none());
        match d.slice(Duration::from_secs(1)) {
            Err(IpcError::Timeout(b)) => assert_eq!(b, Duration::ZERO),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let long = Deadline::after(Duration::MAX);
        assert!(long.slice(Duration::from_millis(5)).unwrap() <= Duration::from_millis(5));
        let ts = timespec(Duration::from_millis(1500));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1, 500_000_000));
    }
}
