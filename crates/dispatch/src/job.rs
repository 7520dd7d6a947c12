//! The units of work the dispatcher moves around, and the one function that completes them.
//!
//! A [`Job`] owns an accepted execution's callback and metadata; whoever holds the `Job` is the
//! only party that may complete it, and [`Job::finish`] consumes it. That is how the
//! exactly-once rule is made a property of the types rather than of bookkeeping.

use roma_core::{CodeObject, Invocation, ResponseObject, RomaError};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// The callback of one execution.
pub type ExecCallback = Box<dyn FnOnce(Result<ResponseObject, RomaError>) + Send + 'static>;
/// The callback of a batch: one result per request, in request order.
pub type BatchCallback = Box<dyn FnOnce(Vec<Result<ResponseObject, RomaError>>) + Send + 'static>;
/// The callback of a load: called once every worker has the version, or on failure or timeout.
pub type LoadCallback = Box<dyn FnOnce(Result<ResponseObject, RomaError>) + Send + 'static>;

/// Names one accepted execution, for [`super::Dispatcher::cancel`]. Opaque; tokens of one
/// dispatcher never match requests of another.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExecutionToken {
    pub(crate) dispatcher: u64,
    pub(crate) request: u64,
}

/// Runs `f` (a user callback), containing a panic so the calling dispatcher thread goes on.
/// Returns whether the callback completed without panicking.
pub(crate) fn call_guarded(f: impl FnOnce()) -> bool {
    catch_unwind(AssertUnwindSafe(f)).is_ok()
}

/// An accepted execution: everything needed to run it and to answer it exactly once.
pub(crate) struct Job<M> {
    /// Dispatcher-wide request id: the key in queues, `cancel`'s target, the backend's id.
    pub id: u64,
    /// The caller's id, echoed in the response.
    pub caller_id: String,
    pub invocation: Invocation,
    /// Shared with the backend while the request runs (a host function still running after
    /// its request timed out may hold it a little longer); dropped after the callback.
    pub metadata: Arc<M>,
    pub callback: ExecCallback,
    pub accepted: Instant,
}

impl<M> Job<M> {
    /// The job of request `id`, accepted now.
    pub fn accepted(
        id: u64,
        request: roma_core::InvocationRequest<M>,
        invocation: Invocation,
        callback: ExecCallback,
    ) -> Self {
        Job {
            id,
            caller_id: request.id,
            invocation,
            metadata: Arc::new(request.metadata),
            callback,
            accepted: Instant::now(),
        }
    }

    /// Calls the callback with `result` (panics contained), then drops the metadata: the
    /// metadata lives exactly until its callback has returned.
    pub fn finish(self, mut result: Result<ResponseObject, RomaError>) {
        let Job {
            callback,
            metadata,
            accepted,
            ..
        } = self;
        if let Ok(r) = &mut result {
            // The last hop: taken just before the callback, which receives it.
            let at = millis(accepted.elapsed());
            let floor = r.metrics.get(roma_core::metrics::DURATION_MS).copied();
            let at = floor.map_or(at, |f| at.max(f));
            r.metrics
                .insert(roma_core::metrics::HOP_CALLBACK_MS.into(), at);
        }
        call_guarded(move || callback(result));
        // The metadata is the caller's type; a panic in its `Drop` must not stop this thread.
        call_guarded(move || drop(metadata));
    }
}

impl<M> fmt::Debug for Job<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("version", &self.invocation.version_string)
            .field("handler", &self.invocation.handler_name)
            .finish_non_exhaustive()
    }
}

/// A load as queued on one slot's control queue.
#[derive(Clone, Debug)]
pub(crate) struct LoadJob {
    /// The load's sequence number (from the version cache); keys its [`LoadAggregate`].
    pub seq: u64,
    pub code: Arc<CodeObject>,
}

/// The state of one load across all workers; lives in the dispatcher state until every
/// enlisted worker answered (or the dispatcher stops).
pub(crate) struct LoadAggregate {
    pub version: String,
    pub caller_id: String,
    /// Workers that have not answered yet.
    pub pending: usize,
    pub first_error: Option<RomaError>,
    /// Taken by whoever answers the caller first: the last worker, the timer, or `stop`.
    pub callback: Option<LoadCallback>,
    pub accepted: Instant,
    pub deadline: Instant,
}

impl LoadAggregate {
    /// The response a successful load reports.
    pub fn response(&self) -> ResponseObject {
        let mut resp = ResponseObject {
            id: self.caller_id.clone(),
            ..Default::default()
        };
        resp.metrics.insert(
            roma_core::metrics::DURATION_MS.into(),
            millis(self.accepted.elapsed()),
        );
        resp
    }
}

/// Milliseconds as the metrics map stores them.
pub(crate) fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Collects a batch's results; the last request to complete calls the batch callback.
pub(crate) struct BatchCollector {
    inner: Mutex<BatchInner>,
}

struct BatchInner {
    results: Vec<Option<Result<ResponseObject, RomaError>>>,
    remaining: usize,
    callback: Option<BatchCallback>,
}

impl BatchCollector {
    pub fn new(len: usize, callback: BatchCallback) -> Arc<Self> {
        Arc::new(BatchCollector {
            inner: Mutex::new(BatchInner {
                results: (0..len).map(|_| None).collect(),
                remaining: len,
                callback: Some(callback),
            }),
        })
    }

    /// Records the result of request `index`; when it was the last, calls the batch callback
    /// (outside the collector's lock).
    pub fn complete(&self, index: usize, result: Result<ResponseObject, RomaError>) {
        let done = {
            let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            if g.remaining == 0 {
                // Already answered: a late or duplicate result would be a dispatcher bug.
                return;
            }
            match g.results.get_mut(index) {
                Some(slot @ None) => {
                    *slot = Some(result);
                    g.remaining -= 1;
                }
                // A second result for one index would be a dispatcher bug; keep the first.
                _ => return,
            }
            if g.remaining == 0 {
                let results: Vec<_> = g
                    .results
                    .iter_mut()
                    .map(|r| {
                        r.take().unwrap_or_else(|| {
                            Err(RomaError::internal("batch result went missing"))
                        })
                    })
                    .collect();
                g.callback.take().map(|cb| (cb, results))
            } else {
                None
            }
        };
        if let Some((cb, results)) = done {
            // The batch callback runs inside the last request's guarded callback; guard it on its
            // own anyway so the contract does not depend on the caller.
            call_guarded(move || cb(results));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn batch_calls_back_once_in_order() {
        let calls = Arc::new(AtomicUsize::new(0));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (c, g) = (Arc::clone(&calls), Arc::clone(&got));
        let b = BatchCollector::new(
            3,
            Box::new(move |r| {
                c.fetch_add(1, Ordering::SeqCst);
                *g.lock().unwrap() = r.into_iter().map(|r| r.unwrap().id).collect();
            }),
        );
        let resp = |id: &str| {
            Ok(ResponseObject {
                id: id.into(),
                ..Default::default()
            })
        };
        b.complete(2, resp("c"));
        b.complete(0, resp("a"));
        b.complete(0, resp("dup"));
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        b.complete(1, resp("b"));
        b.complete(1, resp("again"));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(*got.lock().unwrap(), vec!["a", "b", "c"]);
    }

    #[test]
    fn guarded_call_contains_panics() {
        assert!(!call_guarded(|| panic!("callback bug")));
        assert!(call_guarded(|| {}));
    }
}
