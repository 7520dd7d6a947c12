//! A point in time past which a wait on the peer gives up, and the slicing of such a wait.
//!
//! Every wait on the peer (poll, futex, a receive on the channel) is bounded by one
//! [`Deadline`], so a peer that withholds bytes or wake-ups costs the caller at most the timeout
//! it asked for. A long wait is cut into slices ([`Deadline::slice`], [`Deadline::wait_sliced`])
//! so that the waiter can look at something else between them (EOF on the socket, whether the
//! worker process still lives) without ever waiting past the deadline. This is the one place
//! that arithmetic is done: the transports, the host's conversation with a worker and the
//! worker's waits for host-function replies all call it.

use crate::IpcError;
use rustix::thread::futex::Timespec;
use std::time::{Duration, Instant};

/// The end of a wait, and the budget it came from (for the error message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    budget: Duration,
}

/// How far ahead a budget too large for `Instant` is clamped: about a year.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

impl Deadline {
    /// A deadline `budget` from now. A budget too large for `Instant` is clamped to ~a year.
    pub fn after(budget: Duration) -> Self {
        Self::since(Instant::now(), budget)
    }

    /// A deadline `budget` after `start` (which may lie in the past). A budget too large for
    /// `Instant` is clamped to ~a year after `start`.
    pub fn since(start: Instant, budget: Duration) -> Self {
        let at = start
            .checked_add(budget)
            .or_else(|| start.checked_add(FAR))
            .unwrap_or(start);
        Deadline { at, budget }
    }

    /// The same deadline moved `by` later (a grace period); its budget grows with it.
    pub fn extended(&self, by: Duration) -> Self {
        Deadline {
            at: self.at.checked_add(by).unwrap_or(self.at),
            budget: self.budget.saturating_add(by),
        }
    }

    /// When it passes.
    pub fn at(&self) -> Instant {
        self.at
    }

    /// The budget it was made with.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Time left, or `None` once the deadline has passed.
    pub fn remaining(&self) -> Option<Duration> {
        let left = self.left();
        (!left.is_zero()).then_some(left)
    }

    /// Time left; zero once the deadline has passed.
    pub fn left(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        self.remaining().is_none()
    }

    /// Time left, capped at `slice`, or the timeout error once the deadline has passed.
    pub fn slice(&self, slice: Duration) -> Result<Duration, IpcError> {
        self.remaining()
            .map(|left| left.min(slice))
            .ok_or_else(|| self.timeout())
    }

    /// Runs `wait` with one slice of at most `slice` after another until it returns anything
    /// but a timeout, or until the deadline passes (then the timeout error). `between` runs
    /// after each slice that timed out with time left, before the next one. A deadline that
    /// has already passed still gets one wait of zero, so what has arrived is taken.
    pub fn wait_sliced<T>(
        &self,
        slice: Duration,
        mut wait: impl FnMut(Duration) -> Result<T, IpcError>,
        mut between: impl FnMut(),
    ) -> Result<T, IpcError> {
        loop {
            match wait(self.left().min(slice)) {
                Err(e) if e.is_timeout() => {
                    if self.passed() {
                        return Err(self.timeout());
                    }
                    between();
                }
                other => return other,
            }
        }
    }

    /// The error to return when the deadline passes.
    pub fn timeout(&self) -> IpcError {
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
    use std::cell::Cell;

    #[test]
    fn expired_deadline_reports_its_budget() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.remaining().is_none());
        assert!(d.passed());
        assert_eq!(d.left(), Duration::ZERO);
        match d.slice(Duration::from_secs(1)) {
            Err(IpcError::Timeout(b)) => assert_eq!(b, Duration::ZERO),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let long = Deadline::after(Duration::MAX);
        assert!(long.slice(Duration::from_millis(5)).unwrap() <= Duration::from_millis(5));
        let ts = timespec(Duration::from_millis(1500));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1, 500_000_000));
    }

    #[test]
    fn a_deadline_since_a_past_start_and_its_grace() {
        let start = Instant::now();
        let d = Deadline::since(start, Duration::from_secs(30));
        assert_eq!(d.at(), start + Duration::from_secs(30));
        let g = d.extended(Duration::from_secs(2));
        assert_eq!(g.at(), start + Duration::from_secs(32));
        assert_eq!(g.budget(), Duration::from_secs(32));
        assert!(!g.passed());
        // Moved past its end: the deadline is over.
        let past = Deadline::since(start - Duration::from_millis(5), Duration::from_millis(1));
        assert!(past.passed());
        assert!(Deadline::since(start, Duration::MAX).at() > start);
    }

    #[test]
    fn a_sliced_wait_runs_between_slices_and_ends_at_the_deadline() {
        let d = Deadline::after(Duration::from_millis(30));
        let between = Cell::new(0);
        let r: Result<(), IpcError> = d.wait_sliced(
            Duration::from_millis(5),
            |slice| {
                assert!(slice <= Duration::from_millis(5));
                std::thread::sleep(slice);
                Err(IpcError::Timeout(slice))
            },
            || between.set(between.get() + 1),
        );
        assert!(matches!(r, Err(IpcError::Timeout(b)) if b == Duration::from_millis(30)));
        assert!(d.passed());
        assert!(between.get() >= 1, "{}", between.get());
        // Anything but a timeout ends the wait at once.
        let n = Cell::new(0);
        let r = Deadline::after(Duration::from_secs(30)).wait_sliced(
            Duration::from_millis(1),
            |_| {
                n.set(n.get() + 1);
                if n.get() < 3 {
                    Err(IpcError::Timeout(Duration::ZERO))
                } else {
                    Ok(7)
                }
            },
            || {},
        );
        assert_eq!(r.unwrap(), 7);
        assert_eq!(n.get(), 3);
        // Past its deadline, one wait of zero still takes what is there.
        let waits = Cell::new(Vec::new());
        let r = Deadline::after(Duration::ZERO).wait_sliced(
            Duration::from_secs(1),
            |slice| {
                let mut w = waits.take();
                w.push(slice);
                waits.set(w);
                Ok("arrived")
            },
            || {},
        );
        assert_eq!(r.unwrap(), "arrived");
        assert_eq!(waits.take(), [Duration::ZERO]);
    }
}
