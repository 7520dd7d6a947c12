//! [`DispatchFuture`]: the future returned by the dispatcher's `*_async` methods.
//!
//! The request is submitted when the `*_async` method is called, not when the future is first
//! polled; a synchronous refusal (queue full, unknown version, stopped) makes a future that is
//! ready at once.
//!
//! # Cancel safety
//! Dropping the future does not cancel the request: it still runs and its result is discarded.
//! Use [`DispatchFuture::token`] with `Dispatcher::cancel` to cancel it.

use super::job::ExecutionToken;
use super::oneshot;
use roma_core::RomaError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Resolves to the result the request's callback would have received.
pub struct DispatchFuture<T> {
    state: State<T>,
    token: Option<ExecutionToken>,
}

enum State<T> {
    Ready(Option<RomaError>),
    Waiting(oneshot::Receiver<Result<T, RomaError>>),
}

// The future never pins `T`: values are moved out of the channel, so it is `Unpin` whatever `T`.
impl<T> Unpin for DispatchFuture<T> {}

impl<T> DispatchFuture<T> {
    /// A future that is ready at once with `value`.
    pub fn ready(value: Result<T, RomaError>) -> Self {
        match value {
            Err(e) => Self::refused(e),
            Ok(v) => {
                let (tx, rx) = super::oneshot::channel();
                tx.send(Ok(v));
                DispatchFuture::waiting(rx, None)
            }
        }
    }

    /// A future that is ready at once with `err`: a request refused before it reached a
    /// dispatcher (a layer above one, such as tenant routing, refused it).
    pub fn refused(err: RomaError) -> Self {
        DispatchFuture {
            state: State::Ready(Some(err)),
            token: None,
        }
    }

    pub(crate) fn waiting(
        rx: oneshot::Receiver<Result<T, RomaError>>,
        token: Option<ExecutionToken>,
    ) -> Self {
        DispatchFuture {
            state: State::Waiting(rx),
            token,
        }
    }

    /// The token of the submitted execution, for `cancel`; `None` for loads, batches and
    /// refused requests.
    pub fn token(&self) -> Option<&ExecutionToken> {
        self.token.as_ref()
    }
}

impl<T> Future for DispatchFuture<T> {
    type Output = Result<T, RomaError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            State::Ready(err) => Poll::Ready(Err(err
                .take()
                .unwrap_or_else(|| RomaError::internal("DispatchFuture polled after completion")))),
            State::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(r)) => Poll::Ready(r),
                Poll::Ready(None) => Poll::Ready(Err(RomaError::internal(
                    "the dispatcher dropped a callback without calling it",
                ))),
            },
        }
    }
}

impl<T> fmt::Debug for DispatchFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Ready(_) => "ready",
            State::Waiting(_) => "waiting",
        };
        f.debug_struct("DispatchFuture")
            .field("state", &state)
            .field("token", &self.token)
            .finish()
    }
}
