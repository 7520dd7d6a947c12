//! The threads the connections are served on. Each runs a single-threaded tokio runtime, and a
//! connection lives on one of them from its accept to its close: its reads, its requests'
//! handlers and the wake from roma's callback all happen on that thread.
//!
//! Why not the work-stealing runtime the server starts on: there, a task woken from outside
//! (roma's callback, a socket's readiness) wakes one parked worker thread, and that thread,
//! finding the task, wakes another to look for more work, which finds none and parks again. An
//! idle request pays two such extra wake-ups, and on a small machine the woken thread takes the
//! CPU that roma's slot thread or the worker was about to run on (docs/performance.md, "One
//! runtime per connection thread"). A connection pinned to a thread wakes only that thread.
//!
//! A new connection goes to the thread with the fewest open connections, so long-lived
//! connections spread evenly; one busy connection cannot move its neighbours, which is the price
//! of the pinning (a request's handler runs for microseconds: the execution itself is on roma's
//! threads).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// One connection thread: its runtime's handle and how many connections it holds.
struct ConnThread {
    handle: tokio::runtime::Handle,
    open: Arc<AtomicUsize>,
}

/// The connection threads. Dropping this stops them: connections still open on them are
/// dropped (closed) with their runtimes.
pub(crate) struct ConnThreads {
    /// There is always one, so a connection always has a thread to go to.
    first: ConnThread,
    rest: Vec<ConnThread>,
    stop: watch::Sender<bool>,
}

/// Counts a connection on its thread while its future lives.
struct OnThread(Arc<AtomicUsize>);

impl Drop for OnThread {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Starts connection thread `i`, which runs until `stopped` turns true or its sender is gone.
fn start_thread(i: usize, mut stopped: watch::Receiver<bool>) -> std::io::Result<ConnThread> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name(format!("roma-conn-{i}"))
        .spawn(move || {
            runtime.block_on(async move {
                // Either a stop or the sender's drop ends the thread.
                let _ = stopped.wait_for(|s| *s).await;
            });
        })?;
    Ok(ConnThread {
        handle,
        open: Arc::new(AtomicUsize::new(0)),
    })
}

impl ConnThreads {
    /// Starts `n` (at least 1) threads, named `roma-conn-<i>`.
    pub(crate) fn start(n: usize) -> std::io::Result<ConnThreads> {
        let (stop, stopped) = watch::channel(false);
        let first = start_thread(0, stopped.clone())?;
        let rest = (1..n)
            .map(|i| start_thread(i, stopped.clone()))
            .collect::<std::io::Result<_>>()?;
        Ok(ConnThreads { first, rest, stop })
    }

    /// Runs `connection` on the thread with the fewest open connections (the lowest-numbered
    /// of those). The future runs only there, so the sockets it registers once polled belong
    /// to that thread's reactor.
    pub(crate) fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let open = |t: &ConnThread| t.open.load(Ordering::Relaxed);
        let t = self.rest.iter().fold(
            &self.first,
            |best, t| if open(t) < open(best) { t } else { best },
        );
        t.open.fetch_add(1, Ordering::Relaxed);
        let on = OnThread(Arc::clone(&t.open));
        t.handle.spawn(async move {
            let _on = on;
            connection.await;
        });
    }
}

impl Drop for ConnThreads {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::thread::ThreadId;
    use std::time::Duration;

    enum Seen {
        /// A connection's thread when it began, and whether it was still there after awaiting.
        Ran(ThreadId, bool),
        Dropped,
    }

    struct Dropped(mpsc::Sender<Seen>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            let _ = self.0.send(Seen::Dropped);
        }
    }

    #[test]
    fn connections_spread_stay_on_their_thread_and_end_with_the_threads() {
        let threads = ConnThreads::start(2).unwrap();
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            threads.spawn(async move {
                let _dropped = Dropped(tx.clone());
                let first = std::thread::current().id();
                tokio::time::sleep(Duration::from_millis(1)).await;
                let _ = tx.send(Seen::Ran(first, std::thread::current().id() == first));
                std::future::pending::<()>().await;
            });
        }
        let mut ran = Vec::new();
        for _ in 0..2 {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok(Seen::Ran(id, stayed)) => {
                    assert!(stayed, "a connection moved between threads");
                    ran.push(id);
                }
                Ok(Seen::Dropped) => panic!("a connection ended early"),
                Err(e) => panic!("a connection did not run: {e}"),
            }
        }
        // Both were open at once, so the second went to the other thread.
        assert_ne!(ran[0], ran[1]);
        assert!(ran.iter().all(|id| *id != std::thread::current().id()));
        assert!(
            std::iter::once(&threads.first)
                .chain(&threads.rest)
                .all(|t| t.open.load(Ordering::Relaxed) == 1)
        );
        drop(threads);
        for _ in 0..2 {
            assert!(matches!(
                rx.recv_timeout(Duration::from_secs(10)),
                Ok(Seen::Dropped)
            ));
        }
    }
}
