//! The load-timeout thread: answers a load with `Timeout` when its workers take too long.
//!
//! The workers keep going: the load still completes (or fails) on each of them, and its final
//! outcome still updates the version cache; only the caller's callback is answered early.

use super::job::call_guarded;
use super::state::Shared;
use roma_core::{ErrorKind, RomaError};
use std::sync::{Arc, PoisonError};
use std::time::Instant;

/// The thread body; returns when the dispatcher stops.
pub(crate) fn run<M>(shared: Arc<Shared<M>>) {
    let mut st = shared.lock();
    loop {
        if st.stopping {
            return;
        }
        let now = Instant::now();
        let mut expired = Vec::new();
        let mut next: Option<Instant> = None;
        for agg in st.loads.values_mut() {
            if agg.callback.is_none() {
                continue;
            }
            if agg.deadline <= now {
                if let Some(cb) = agg.callback.take() {
                    expired.push((cb, agg.version.clone(), agg.pending));
                }
            } else {
                next = Some(next.map_or(agg.deadline, |n| n.min(agg.deadline)));
            }
        }
        if !expired.is_empty() {
            drop(st);
            let timeout = shared.config.load_timeout;
            for (cb, version, pending) in expired {
                let err = RomaError::new(
                    ErrorKind::Timeout,
                    format!(
                        "loading version `{version}` took longer than {timeout:?} \
                         ({pending} worker(s) had not answered)"
                    ),
                );
                call_guarded(move || cb(Err(err)));
            }
            st = shared.lock();
            continue;
        }
        st = match next {
            Some(at) => {
                shared
                    .timer_cv
                    .wait_timeout(st, at.saturating_duration_since(now))
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => shared
                .timer_cv
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}
