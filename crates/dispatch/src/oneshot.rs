//! A single-value channel whose receiver is a [`Future`], built on `std::sync::Mutex` and
//! [`Waker`] so the async API works under any executor without depending on one.
//!
//! The sender is moved into a dispatcher callback; the receiver is polled by the caller. If the
//! sender is dropped without sending, the receiver resolves to `None` instead of hanging.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

struct Inner<T> {
    value: Option<T>,
    waker: Option<Waker>,
    sender_gone: bool,
}

/// The sending half; consumed by [`Sender::send`].
pub(crate) struct Sender<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// The receiving half: a future resolving to the sent value, or `None` if the sender was
/// dropped without sending.
pub(crate) struct Receiver<T> {
    inner: Arc<Mutex<Inner<T>>>,
}

/// A connected pair.
pub(crate) fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let inner = Arc::new(Mutex::new(Inner {
        value: None,
        waker: None,
        sender_gone: false,
    }));
    (
        Sender {
            inner: Arc::clone(&inner),
        },
        Receiver { inner },
    )
}

impl<T> Sender<T> {
    /// Delivers `value` and wakes the receiver's task.
    pub(crate) fn send(self, value: T) {
        let waker = {
            let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            g.value = Some(value);
            g.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        // `Drop` runs next and marks the sender gone; the receiver reads `value` first.
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
            g.sender_gone = true;
            g.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(v) = g.value.take() {
            return Poll::Ready(Some(v));
        }
        if g.sender_gone {
            return Poll::Ready(None);
        }
        match &g.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => g.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountWake(AtomicUsize);
    impl Wake for CountWake {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll<T>(rx: &mut Receiver<T>, w: &Arc<CountWake>) -> Poll<Option<T>> {
        let waker = Waker::from(Arc::clone(w));
        let mut cx = Context::from_waker(&waker);
        Pin::new(rx).poll(&mut cx)
    }

    #[test]
    fn pending_then_woken_then_ready() {
        let w = Arc::new(CountWake(AtomicUsize::new(0)));
        let (tx, mut rx) = channel();
        assert!(poll(&mut rx, &w).is_pending());
        tx.send(7);
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &w), Poll::Ready(Some(7)));
    }

    #[test]
    fn send_before_poll() {
        let w = Arc::new(CountWake(AtomicUsize::new(0)));
        let (tx, mut rx) = channel();
        tx.send("x");
        assert_eq!(poll(&mut rx, &w), Poll::Ready(Some("x")));
    }

    #[test]
    fn dropped_sender_resolves_to_none() {
        let w = Arc::new(CountWake(AtomicUsize::new(0)));
        let (tx, mut rx) = channel::<u8>();
        assert!(poll(&mut rx, &w).is_pending());
        drop(tx);
        assert_eq!(w.0.load(Ordering::SeqCst), 1);
        assert_eq!(poll(&mut rx, &w), Poll::Ready(None));
    }

    #[test]
    fn works_across_threads() {
        let w = Arc::new(CountWake(AtomicUsize::new(0)));
        let (tx, mut rx) = channel();
        let t = std::thread::spawn(move || tx.send(vec![1, 2]));
        t.join().unwrap();
        assert_eq!(poll(&mut rx, &w), Poll::Ready(Some(vec![1, 2])));
    }
}
