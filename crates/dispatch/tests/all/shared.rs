//! Helpers that the tests of roma-dispatch (through `fake.rs`) and of roma (through
//! `crates/roma/tests/all/common.rs`) share, in one file that both include as a module by path:
//! the two test suites build the same code objects and wait on futures the same way.
//!
//! The including module provides `CodeObject` (the same type, `roma_core`'s, under either
//! crate's name) and `PATIENCE`, its suite's safety net against hangs.

use super::{CodeObject, PATIENCE};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

/// A JS code object of version `version`, with the id `load-<version>`.
pub fn code(version: &str, js: &str) -> CodeObject {
    CodeObject {
        id: format!("load-{version}"),
        version_string: version.into(),
        js: js.into(),
        ..Default::default()
    }
}

/// Runs a future to completion on this thread (no executor crate needed); fails the test after
/// `PATIENCE`.
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        assert!(Instant::now() < deadline, "future never completed");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}
