//! A request body that must arrive by a deadline (`limits.body_timeout` from when its head
//! was in), so a client that sends its body slowly, or stops halfway, holds a request open
//! for a bounded time instead of until the idle timeout, which a request in flight never
//! reaches. Past the deadline the body reads as an error: the HTTP API answers it 408 and
//! closes the connection, the gRPC API answers `DEADLINE_EXCEEDED`, both kind
//! `request_timeout`, and the cut-off is counted (`roma_slow_clients_total{phase="body"}`).

use crate::error::ApiError;
use crate::metrics::SlowPhase;
use crate::state::AppState;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// A boxed error, as bodies carry them.
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What a late body reads as: the error each API recognises.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Api {
    /// A [`BodyTimeout`], which the HTTP API's body reader turns into a 408.
    Http,
    /// A `tonic::Status` (`DEADLINE_EXCEEDED`), which tonic's decoder answers as it is.
    Grpc,
}

/// The body of a request did not arrive within `limits.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within limits.body_timeout ({limit:?})")]
pub(crate) struct BodyTimeout {
    limit: Duration,
}

impl BodyTimeout {
    /// The [`BodyTimeout`] behind `e`, if `e` is one or was caused by one.
    pub(crate) fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
        std::iter::successors(Some(e), |e| e.source()).find_map(|e| e.downcast_ref())
    }
}

impl From<&BodyTimeout> for ApiError {
    fn from(t: &BodyTimeout) -> Self {
        ApiError::RequestTimeout(t.to_string())
    }
}

/// A request's body with its deadline.
pub(crate) struct TimedBody {
    inner: Incoming,
    /// `None`: a limit too far off to be a time (it never passes).
    deadline: Option<Instant>,
    limit: Duration,
    api: Api,
    state: Arc<AppState>,
    /// Made the first time the body is not all there yet: a body that is already in (most
    /// small ones) never needs a timer.
    timer: Option<Pin<Box<Sleep>>>,
    late: bool,
}

impl TimedBody {
    /// `inner`, due `limit` from now.
    pub(crate) fn new(inner: Incoming, limit: Duration, api: Api, state: Arc<AppState>) -> Self {
        TimedBody {
            inner,
            deadline: Instant::now().checked_add(limit),
            limit,
            api,
            state,
            timer: None,
            late: false,
        }
    }

    fn error(&self) -> BoxError {
        let late = BodyTimeout { limit: self.limit };
        match self.api {
            Api::Http => Box::new(late),
            Api::Grpc => Box::new(crate::grpc::status(&ApiError::from(&late))),
        }
    }
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.late {
            return Poll::Ready(Some(Err(this.error())));
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let Some(deadline) = this.deadline else {
            return Poll::Pending;
        };
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.late = true;
        this.state.metrics.record_slow(SlowPhase::Body);
        tracing::debug!(limit = ?this.limit, "a request body did not arrive in time: cut off");
        Poll::Ready(Some(Err(this.error())))
    }

    fn is_end_stream(&self) -> bool {
        !self.late && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_timeout_is_found_behind_the_errors_that_wrap_it() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading the body")]
        struct Wrapper(#[source] BoxError);
        let late: BoxError = Box::new(BodyTimeout {
            limit: Duration::from_millis(5),
        });
        let wrapped = Wrapper(late);
        let found = BodyTimeout::find(&wrapped).expect("found");
        assert_eq!(found.limit, Duration::from_millis(5));
        assert!(
            matches!(ApiError::from(found), ApiError::RequestTimeout(m) if m.contains("limits.body_timeout"))
        );
        let other = Wrapper(Box::new(std::io::Error::other("reset")));
        assert!(BodyTimeout::find(&other).is_none());
    }
}
