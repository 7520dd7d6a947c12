//! The CPU time a jailed worker has used, read from `/proc` by the host.
//!
//! Why it exists: the host recycles a worker that burns CPU while idle, and a jailed worker is
//! several processes (the launcher and what it started), none of them the worker's own
//! children once the jail is set up. The clock finds them below the launcher once per
//! launcher and adds up their CPU time on each read.

use crate::procfs;
use std::time::Duration;

/// Adds up the CPU time of a worker's host-side processes: the launcher (its host pid) and
/// every process below it.
#[derive(Debug, Default)]
pub struct JailCpuClock {
    /// The launcher first, then the processes below it; looked up again when the launcher's
    /// pid changes (a new worker).
    pids: Vec<u32>,
}

impl JailCpuClock {
    /// A clock that has looked up nothing yet.
    pub fn new() -> JailCpuClock {
        JailCpuClock::default()
    }

    /// The CPU time (user and system, all threads) used so far by the launcher `host_pid` and
    /// the processes below it; `None` when `/proc` cannot be read or one of them is gone (the
    /// worker is ending).
    pub fn read(&mut self, host_pid: u32) -> Option<Duration> {
        // Their pids live as long as the worker does, so they are looked up once per launcher.
        if self.pids.first() != Some(&host_pid) {
            let below = procfs::descendants_of(host_pid).ok()?;
            self.pids = std::iter::once(host_pid)
                .chain(below.iter().map(|p| p.pid))
                .collect();
        }
        let mut total = Duration::ZERO;
        for &pid in &self.pids {
            total = total.saturating_add(procfs::cpu_time(pid).ok()??);
        }
        Some(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_cpu_and_its_clock_does_not_run_back() {
        let mut clock = JailCpuClock::new();
        let me = std::process::id();
        // Burn a little CPU so the reading cannot be zero on a coarse tick.
        let mut x = 0u64;
        let t0 = std::time::Instant::now();
        while t0.elapsed() < Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let a = clock.read(me).expect("reads /proc");
        let b = clock.read(me).expect("reads /proc");
        assert!(b >= a, "{a:?} then {b:?}");
        assert!(b > Duration::ZERO);
    }

    #[test]
    fn a_pid_that_does_not_exist_reads_none() {
        let mut clock = JailCpuClock::new();
        // Above the kernel's pid_max (at most 2^22).
        assert_eq!(clock.read(u32::MAX - 1), None);
    }
}
