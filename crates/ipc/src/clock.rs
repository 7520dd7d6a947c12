//! The one clock both processes read, so that the host can place the worker's moments of a
//! request (received, handler done) between its own (sent, answer received).
//!
//! `CLOCK_MONOTONIC` is system-wide: the jail gives the worker no time namespace, so host and
//! worker read the same counter. A worker's reading is still untrusted: the host uses it only
//! for the per-hop figures in a response's metrics, clamps it into the window the host saw
//! itself (between sending the request and receiving the answer), and decides nothing on it.

/// The key under which the worker reports, in its execution's metrics, the [`monotonic_ms`]
/// reading taken when it received the request. Wire only: the host takes it out of the
/// metrics and reports `roma_core::metrics::HOP_WORKER_RECEIVED_MS` instead.
pub const WORKER_RECEIVED_CLOCK_KEY: &str = "roma.wire.worker_received_clock_ms";
/// The key of the [`monotonic_ms`] reading the worker takes when the engine has returned
/// (handler done, result serialised), just before it sends the answer. Wire only, as
/// [`WORKER_RECEIVED_CLOCK_KEY`].
pub const WORKER_DONE_CLOCK_KEY: &str = "roma.wire.worker_done_clock_ms";

/// `CLOCK_MONOTONIC` in milliseconds (0 if the clock cannot be read, which Linux does not do
/// for this clock).
///
/// Read through glibc, whose vDSO path was set up at process start: rustix's own vDSO lookup
/// runs on first use and asks the kernel for the auxiliary vector with `prctl`, which the
/// worker's seccomp filter kills once it is installed.
pub fn monotonic_ms() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, and
    // CLOCK_MONOTONIC is a clock id every Linux kernel supports; the seccomp allow-list admits
    // clock_gettime for the case the vDSO does not serve it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0.0;
    }
    ts.tv_sec as f64 * 1e3 + ts.tv_nsec as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// Reads `monotonic_ms` between two `Instant`s.
    fn sandwich() -> (Instant, f64, Instant) {
        let before = Instant::now();
        let clock = monotonic_ms();
        (before, clock, Instant::now())
    }

    #[test]
    fn the_clock_is_the_one_std_instant_reads() {
        let (a0, c0, b0) = sandwich();
        let target = b0 + Duration::from_millis(3);
        while Instant::now() < target {
            std::hint::spin_loop();
        }
        let (a1, c1, b1) = sandwich();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        assert!(c0 > 0.0, "the clock reads a positive value");
        // Both read CLOCK_MONOTONIC: the clock's interval lies between the inner and the
        // outer interval of the Instants around it (up to float rounding).
        let (inner, outer, clock) = (ms(a1 - b0), ms(b1 - a0), c1 - c0);
        assert!(
            inner - 1e-3 <= clock && clock <= outer + 1e-3,
            "clock {clock} ms, instants {inner}..{outer} ms"
        );
    }
}
