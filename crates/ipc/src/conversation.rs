//! The rules of one request's conversation that both ends keep: when its time is up
//! ([`RequestTime`]), what a host call cut off by that time makes of the request's result
//! ([`HostCallTimeout`]), how host calls are numbered ([`CallIds`]), and how long a wait on
//! the peer spins before it sleeps ([`answer_spin`], [`follow_up_spin`]).
//!
//! Between `Execute` and `Executed` both ends hold the request: the host serves its host
//! functions and waits for the answer, the worker runs the JS and waits for host-function
//! replies. They must agree when a host call comes too late and what the request then ends as.
//! The rules are written here once; the host's exchange and the worker's request loop call them.
//!
//! - **Time.** A request has its timeout, counted by each end from its own first moment (the
//!   host: before it sends `Execute`; the worker: when it receives it). Host calls run until the
//!   timeout ([`RequestTime::calls`]); the host waits for the answer a grace period longer
//!   ([`RequestTime::answer`]), so that the worker's own timeout (its watchdog) reports first.
//! - **A host call past the timeout** is cut off: the worker stops waiting for its reply at its
//!   deadline, and the host answers a call that arrives after its deadline, or whose function
//!   has not returned by then, with [`HostToWorker::BindingTimedOut`](crate::HostToWorker).
//!   The JS gets an error ([`HostCallTimeout::call_error`]). Whatever it makes of that error
//!   (it rethrows it, or the watchdog ends it), the request timed out: the worker reports the
//!   timeout once ([`HostCallTimeout::apply`]); the host passes on what the worker reports.
//! - **Spinning.** The callers set what the spin policy returns with
//!   [`crate::Endpoint::set_spin`]. A request's answer: [`answer_spin`]. The host spins about
//!   as long as the last answer took when that was quick: an idle worker with a pre-warmed
//!   context answers in tens of microseconds, and catching that answer without sleeping saves a
//!   futex wake-up. Under load answers take hundreds of microseconds and the spin stays at the
//!   configured few microseconds, because a spinning host thread would take CPU from the
//!   workers. A follow-up message: [`follow_up_spin`]. A request that calls host functions
//!   ping-pongs on its channel: the worker sends a call and waits for the reply; the host
//!   replies and waits for the next call. Both waits are usually a few microseconds, far less
//!   than a futex wake-up across cores (about 10 µs each way on a 2-vCPU VM), so each side
//!   spins for about twice the last such wait before it sleeps. The spin is bounded by
//!   [`MAX_FOLLOW_UP_SPIN`], and a wait that was long (a slow host function, or heavy JS
//!   between calls) returns the caller to its configured spin. The doorbell spins only while
//!   the peer last ran on another CPU: on a shared core a spinner would hold off its own peer.

use crate::deadline::Deadline;
use roma_core::{ErrorKind, RomaError};
use std::time::{Duration, Instant};

/// The most a follow-up wait spins.
pub const MAX_FOLLOW_UP_SPIN: Duration = Duration::from_micros(40);
/// The least a follow-up wait spins once the last such wait was short.
pub const MIN_FOLLOW_UP_SPIN: Duration = Duration::from_micros(10);

/// Below this, the last answer counts as quick and the next wait may spin for about as long.
pub const QUICK_ANSWER: Duration = Duration::from_micros(150);
/// The most a wait for an answer spins on the strength of a quick previous answer.
pub const MAX_ANSWER_SPIN: Duration = Duration::from_micros(80);

/// The spin for the wait on a request's answer, whose previous answer took `last_round_trip`
/// (`None`: none yet): a quarter more than that when it was quick (at most
/// [`MAX_ANSWER_SPIN`]), else `configured`. A zero `configured` (spinning off) stays zero.
pub fn answer_spin(last_round_trip: Option<Duration>, configured: Duration) -> Duration {
    match last_round_trip {
        Some(rt) if rt < QUICK_ANSWER && !configured.is_zero() => {
            (rt + rt / 4).min(MAX_ANSWER_SPIN)
        }
        _ => configured,
    }
}

/// The spin for a wait whose last counterpart took `last_wait` (`None`: not seen yet): about
/// twice that when it was short, else `default`. A zero `default` (spinning turned off) stays
/// zero.
pub fn follow_up_spin(last_wait: Option<Duration>, default: Duration) -> Duration {
    match last_wait {
        _ if default.is_zero() => Duration::ZERO,
        Some(w) if w <= MAX_FOLLOW_UP_SPIN => (w * 2).clamp(MIN_FOLLOW_UP_SPIN, MAX_FOLLOW_UP_SPIN),
        _ => default,
    }
}

/// A request's time on one end: its timeout, from the moment this end started it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestTime {
    started: Instant,
    timeout: Duration,
    grace: Duration,
}

impl RequestTime {
    /// A request of `timeout` that this end started at `started` (the host: when it sent it;
    /// the worker: when it received it). The answer may come `grace` after the timeout (the
    /// host's wait for it); the worker, which gives the answer, has no grace.
    pub fn new(started: Instant, timeout: Duration, grace: Duration) -> Self {
        RequestTime {
            started,
            timeout,
            grace,
        }
    }

    /// When this end started the request.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The request's own timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Until then host calls of the request run; after it they are cut off.
    pub fn calls(&self) -> Deadline {
        Deadline::since(self.started, self.timeout)
    }

    /// By then the worker must have answered: the timeout plus the grace.
    pub fn answer(&self) -> Deadline {
        self.calls().extended(self.grace)
    }
}

/// The ids of one worker's host calls: increasing over the worker's life, so that a late reply
/// (to a call given up at its request's timeout) is never taken for the answer to a newer call.
/// The worker chooses them; the host echoes them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CallIds {
    last: u64,
}

impl CallIds {
    /// The id of a new call.
    pub fn new_id(&mut self) -> u64 {
        self.last += 1;
        self.last
    }

    /// Whether an answer for call `id` belongs to a call older than the latest, given up on.
    pub fn is_late(&self, id: u64) -> bool {
        id < self.last
    }
}

/// Whether a host call of one request was cut off by the request's timeout, and what that
/// makes of the request's result. The worker keeps one per request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostCallTimeout {
    cut_off: bool,
}

impl HostCallTimeout {
    /// Records that a host call ran out of the request's time: its reply did not come by the
    /// deadline, or the host answered it with `BindingTimedOut`.
    pub fn cut_off(&mut self) {
        self.cut_off = true;
    }

    /// Whether a host call of the request was cut off.
    pub fn happened(&self) -> bool {
        self.cut_off
    }

    /// The error the JS gets from a call of host function `name` that was cut off.
    pub fn call_error(name: &str) -> String {
        format!("host function `{name}` did not return within the request's timeout")
    }

    /// The request's result under the rule. After a cut-off, an error other than a cancel
    /// becomes one `Timeout` that names the handler and its timeout, with the JS stack of the
    /// error kept: the worker's own report (its watchdog's timeout, or the call's error
    /// rethrown uncaught) only repeats the timeout. A value the JS returned anyway stands, and
    /// without a cut-off the result is left as it is.
    pub fn apply<T>(
        &self,
        result: Result<T, RomaError>,
        handler: &str,
        timeout: Duration,
    ) -> Result<T, RomaError> {
        match result {
            Err(e) if self.cut_off && e.kind() != ErrorKind::Cancelled => {
                let err = RomaError::new(
                    ErrorKind::Timeout,
                    format!(
                        "the invocation of {handler} ran past its {} timeout in a host function",
                        roma_core::format_duration(timeout)
                    ),
                );
                Err(match e.stack() {
                    Some(stack) => err.with_stack(stack),
                    None => err,
                })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_end_at_the_timeout_and_the_answer_after_the_grace() {
        let t0 = Instant::now();
        let time = RequestTime::new(t0, Duration::from_millis(300), Duration::from_secs(2));
        assert_eq!(time.started(), t0);
        assert_eq!(time.timeout(), Duration::from_millis(300));
        assert_eq!(time.calls().at(), t0 + Duration::from_millis(300));
        assert_eq!(time.answer().at(), t0 + Duration::from_millis(2300));
        let over = RequestTime::new(t0, Duration::ZERO, Duration::from_secs(30));
        assert!(over.calls().passed());
        assert!(!over.answer().passed());
    }

    #[test]
    fn a_cut_off_turns_errors_into_one_timeout_and_leaves_the_rest() {
        let t = Duration::from_millis(300);
        let rethrown = RomaError::new(ErrorKind::Execution, HostCallTimeout::call_error("f"))
            .with_stack("at H (<anonymous>:1:1)");
        let none = HostCallTimeout::default();
        assert!(!none.happened());
        let e = none.apply::<()>(Err(rethrown.clone()), "H", t).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Execution);

        let mut cut = HostCallTimeout::default();
        cut.cut_off();
        assert!(cut.happened());
        let e = cut.apply::<()>(Err(rethrown), "H", t).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(
            e.message(),
            "the invocation of H ran past its 300ms timeout in a host function"
        );
        assert_eq!(e.stack(), Some("at H (<anonymous>:1:1)"));
        let watchdog = RomaError::new(ErrorKind::Timeout, "ran past its timeout");
        assert!(
            cut.apply::<()>(Err(watchdog), "H", t)
                .unwrap_err()
                .stack()
                .is_none()
        );
        // A cancel stays a cancel; a value the JS returned anyway stands.
        let c = RomaError::new(ErrorKind::Cancelled, "cancelled");
        let c = cut.apply::<()>(Err(c), "H", t).unwrap_err();
        assert_eq!(c.kind(), ErrorKind::Cancelled);
        assert_eq!(cut.apply(Ok(5), "H", t).unwrap(), 5);
    }

    #[test]
    fn call_ids_grow_and_tell_late_answers() {
        let mut ids = CallIds::default();
        let first = ids.new_id();
        let second = ids.new_id();
        assert!(second > first);
        assert!(ids.is_late(first));
        assert!(!ids.is_late(second));
    }

    #[test]
    fn answers_spin_after_quick_answers_only() {
        let configured = Duration::from_micros(5);
        assert_eq!(answer_spin(None, configured), configured);
        let quick = Some(Duration::from_micros(40));
        assert_eq!(answer_spin(quick, configured), Duration::from_micros(50));
        let near = Some(Duration::from_micros(140));
        assert_eq!(answer_spin(near, configured), MAX_ANSWER_SPIN);
        assert_eq!(answer_spin(Some(QUICK_ANSWER), configured), configured);
        assert_eq!(answer_spin(quick, Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn follows_short_waits_within_bounds() {
        let default = Duration::from_micros(3);
        assert_eq!(follow_up_spin(None, default), default);
        let short = Some(Duration::from_micros(1));
        assert_eq!(follow_up_spin(short, default), MIN_FOLLOW_UP_SPIN);
        let mid = Some(Duration::from_micros(12));
        assert_eq!(follow_up_spin(mid, default), Duration::from_micros(24));
        let near_cap = Some(Duration::from_micros(30));
        assert_eq!(follow_up_spin(near_cap, default), MAX_FOLLOW_UP_SPIN);
        // A long wait (a slow host function, heavy JS between calls): the configured spin.
        let long = Some(Duration::from_millis(2));
        assert_eq!(follow_up_spin(long, default), default);
        // Spinning turned off.
        assert_eq!(follow_up_spin(short, Duration::ZERO), Duration::ZERO);
    }
}
