//! How a blocking caller polls for its answer in the low-latency mode
//! ([`super::DispatcherConfig::idle_poll`]) before it sleeps on its channel.
//!
//! A caller whose request went through a slot thread waits for that thread's callback. Polling
//! the channel catches an answer that comes soon without a futex wake-up of the caller. Two
//! rules keep the poll from costing more than it saves:
//!
//! - **Adaptive budget.** A caller polls about twice as long as the last such wait took (any
//!   caller's), within the configured bound; until a wait has been seen, the bound. After a
//!   wait longer than [`QUICK_WAIT`] it does not poll at all: answers that slow come from a
//!   busy service, whose callers' polls would take CPU from its workers and save a wake-up
//!   that is small beside the wait.
//! - **Yield while polling.** After a short run of pure spins the poller yields its CPU on
//!   every round, so that a runnable worker or slot thread on the same CPU runs at once: on a
//!   machine with fewer cores than runnable threads, a poller that only spins takes the CPU
//!   from the very thread that would answer it (four blocking clients spinning on two cores
//!   drove a saturated service to a sixth of its rate).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest last wait after which the next wait still polls.
pub(crate) const QUICK_WAIT: Duration = Duration::from_micros(500);

/// Pure spins before the poller starts yielding: about a microsecond.
const SPINS_BEFORE_YIELD: u32 = 64;

/// The last blocking wait for an answer that went through a slot thread, shared by all
/// callers of one dispatcher.
#[derive(Debug, Default)]
pub(crate) struct AnswerPoll {
    /// Nanoseconds of the last wait, plus one; zero until a wait has been seen (so that a
    /// wait that took no time at all is still a wait seen).
    last_wait_nanos_plus_one: AtomicU64,
}

impl AnswerPoll {
    /// How long the next wait polls: twice the last wait, within `bound`, or nothing after a
    /// wait longer than [`QUICK_WAIT`]; `bound` until a wait has been seen.
    pub fn budget(&self, bound: Duration) -> Duration {
        match self.last_wait_nanos_plus_one.load(Ordering::Relaxed) {
            0 => bound,
            n => match Duration::from_nanos(n - 1) {
                w if w > QUICK_WAIT => Duration::ZERO,
                w => w.saturating_mul(2).min(bound),
            },
        }
    }

    fn record(&self, wait: Duration) {
        let nanos = u64::try_from(wait.as_nanos()).unwrap_or(u64::MAX - 1);
        self.last_wait_nanos_plus_one
            .store(nanos.saturating_add(1), Ordering::Relaxed);
    }

    /// Polls `rx` for up to `budget(bound)`, then blocks on it. `None`: the sender was
    /// dropped without sending.
    pub fn receive<T>(&self, rx: &mpsc::Receiver<T>, bound: Duration) -> Option<T> {
        let start = Instant::now();
        let until = start + self.budget(bound);
        let mut spins = 0u32;
        let got = loop {
            match rx.try_recv() {
                Ok(v) => break Some(v),
                Err(mpsc::TryRecvError::Disconnected) => return None,
                Err(mpsc::TryRecvError::Empty) => {}
            }
            if spins < SPINS_BEFORE_YIELD {
                spins += 1;
                std::hint::spin_loop();
            } else if Instant::now() >= until {
                break None;
            } else {
                std::thread::yield_now();
            }
        };
        let got = got.or_else(|| rx.recv().ok());
        self.record(start.elapsed());
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_is_the_bound_until_a_wait_is_seen_then_twice_a_quick_last_wait() {
        let p = AnswerPoll::default();
        let bound = Duration::from_millis(5);
        assert_eq!(p.budget(bound), bound);
        p.record(Duration::ZERO);
        assert_eq!(p.budget(bound), Duration::ZERO);
        p.record(Duration::from_micros(300));
        assert_eq!(p.budget(bound), Duration::from_micros(600));
        assert_eq!(
            p.budget(Duration::from_micros(100)),
            Duration::from_micros(100)
        );
        p.record(QUICK_WAIT);
        assert_eq!(p.budget(bound), QUICK_WAIT * 2);
        // A slow answer (a busy service): no poll, until a quick one comes again.
        p.record(QUICK_WAIT + Duration::from_nanos(1));
        assert_eq!(p.budget(bound), Duration::ZERO);
        p.record(Duration::from_micros(50));
        assert_eq!(p.budget(bound), Duration::from_micros(100));
    }

    #[test]
    fn an_answer_sent_later_is_received_and_its_wait_recorded() {
        let p = AnswerPoll::default();
        let (tx, rx) = mpsc::channel();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).ok();
        });
        // A zero bound: no poll, straight to the blocking receive.
        assert_eq!(p.receive(&rx, Duration::ZERO), Some(7));
        sender.join().ok();
        // The wait (20 ms or more) was recorded: too slow for the next wait to poll.
        assert_eq!(p.budget(Duration::from_secs(1)), Duration::ZERO);
    }

    #[test]
    fn a_dropped_sender_ends_the_wait_with_none() {
        let p = AnswerPoll::default();
        let (tx, rx) = mpsc::channel::<u8>();
        drop(tx);
        assert_eq!(p.receive(&rx, Duration::from_millis(50)), None);
        let (tx, rx) = mpsc::channel::<u8>();
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            drop(tx);
        });
        assert_eq!(p.receive(&rx, Duration::from_millis(1)), None);
        sender.join().ok();
    }
}
