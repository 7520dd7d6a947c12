//! How long a wait for a quick follow-up message spins before it sleeps.
//!
//! A request that calls host functions ping-pongs on its channel: the worker sends a call and
//! waits for the reply; the host replies and waits for the next call. Both waits are usually a
//! few microseconds, far less than a futex wake-up across cores on a VM (about 10 µs each way
//! here), so each side spins for about twice the last such wait before it sleeps. The spin is
//! bounded by [`MAX_FOLLOW_UP_SPIN`], and a wait that was long (a slow host function, or heavy
//! JS between calls) returns the caller to its configured spin. The doorbell spins only while
//! the peer last ran on another CPU: on a shared core a spinner would hold off its own peer.

use std::time::Duration;

/// The most a follow-up wait spins.
pub const MAX_FOLLOW_UP_SPIN: Duration = Duration::from_micros(40);
/// The least a follow-up wait spins once the last such wait was short.
pub const MIN_FOLLOW_UP_SPIN: Duration = Duration::from_micros(10);

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
