//! How long a wait on the peer spins before it sleeps: the one spin policy of both ends. The
//! callers set what it returns with [`crate::Endpoint::set_spin`].
//!
//! A request's answer: [`answer_spin`]. The host spins about as long as the last answer took
//! when that was quick: an idle worker with a pre-warmed context answers in tens of
//! microseconds, and catching that answer without sleeping saves a futex wake-up. Under load
//! answers take hundreds of microseconds and the spin stays at the configured few microseconds,
//! because a spinning host thread would take CPU from the workers.
//!
//! A follow-up message: [`follow_up_spin`]. A request that calls host functions ping-pongs on
//! its channel: the worker sends a call and waits for the reply; the host replies and waits for
//! the next call. Both waits are usually a few microseconds, far less than a futex wake-up
//! across cores (about 10 µs each way on a 2-vCPU VM), so each side spins for about twice the
//! last such wait before it sleeps. The spin is bounded by [`MAX_FOLLOW_UP_SPIN`], and a wait
//! that was long (a slow host function, or heavy JS between calls) returns the caller to its
//! configured spin. The doorbell spins only while the peer last ran on another CPU: on a shared
//! core a spinner would hold off its own peer.

use std::time::Duration;

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

#[cfg(test)]
mod tests {
    use super::*;

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
