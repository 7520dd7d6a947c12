//! The executor of asynchronous host functions: a fixed pool of threads, each driving one
//! [`BindingFuture`] at a time to completion and handing its io to a completion callback.
//!
//! Why threads and not a runtime: roma depends on no async runtime, and a binding's future may
//! block (a synchronous client inside `async`); a thread per running future keeps such bindings
//! from stalling each other. The pool is bounded: futures past `threads` wait in its queue, and
//! each request may have at most [`MAX_PENDING_PER_REQUEST`] calls outstanding (enforced by the
//! caller), so hostile JS cannot make the host spawn without bound.

use crate::binding::BindingFuture;
use crate::io::FunctionBindingIo;
use crate::registry::why;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

/// Most asynchronous calls one request may have outstanding at once.
pub const MAX_PENDING_PER_REQUEST: usize = 64;

type Done = Box<dyn FnOnce(FunctionBindingIo) + Send>;
type Job = (BindingFuture, Done);

/// A pool of threads running binding futures.
pub struct Executor {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<thread::JoinHandle<()>>>,
}

impl Executor {
    /// Starts `threads` threads (at least 1).
    pub fn new(threads: usize) -> std::io::Result<Executor> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut handles = Vec::new();
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            handles.push(
                thread::Builder::new()
                    .name(format!("roma-udf-async-{i}"))
                    .spawn(move || {
                        loop {
                            let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                            let Ok((fut, done)) = job else { return };
                            let io = match catch_unwind(AssertUnwindSafe(|| block_on(fut))) {
                                Ok(io) => io,
                                Err(panic) => {
                                    let mut io = FunctionBindingIo::default();
                                    io.add_error(format!(
                                        "asynchronous host function panicked: {}",
                                        why(&*panic)
                                    ));
                                    io
                                }
                            };
                            let _ = catch_unwind(AssertUnwindSafe(|| done(io)));
                        }
                    })?,
            );
        }
        Ok(Executor {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(handles),
        })
    }

    /// Runs `fut`; `done` gets its io (or an error io if it panicked). Returns false if the
    /// executor is shut down (then `done` is not called).
    pub fn spawn(
        &self,
        fut: BindingFuture,
        done: impl FnOnce(FunctionBindingIo) + Send + 'static,
    ) -> bool {
        let guard = self.tx.lock().unwrap_or_else(PoisonError::into_inner);
        match guard.as_ref() {
            Some(tx) => tx.send((fut, Box::new(done))).is_ok(),
            None => false,
        }
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Closing the queue ends each thread once its current future finishes. Futures that
        // never finish would block a join, so the threads are detached instead.
        self.tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        self.threads
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").finish_non_exhaustive()
    }
}

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

fn block_on(mut fut: BindingFuture) -> FunctionBindingIo {
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(io) = fut.as_mut().poll(&mut cx) {
            return io;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn futures_run_in_parallel_and_panics_become_errors() {
        let ex = Executor::new(4).unwrap();
        let (tx, rx) = mpsc::channel();
        // Each future waits for the other two: they complete only if all three run at once.
        let barrier = Arc::new(std::sync::Barrier::new(3));
        for i in 0..3 {
            let tx = tx.clone();
            let barrier = Arc::clone(&barrier);
            let fut: BindingFuture = Box::pin(async move {
                barrier.wait();
                let mut io = FunctionBindingIo::default();
                io.set_output_string(format!("{i}"));
                io
            });
            assert!(ex.spawn(fut, move |io| tx.send(io).unwrap()));
        }
        for _ in 0..3 {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("the futures did not run in parallel");
        }
        let boom: BindingFuture = Box::pin(async { panic!("async boom") });
        let tx2 = tx.clone();
        ex.spawn(boom, move |io| tx2.send(io).unwrap());
        let io = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(io.errors[0].contains("async boom"));
    }
}
