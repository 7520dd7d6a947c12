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
//!
//! One exception lets a thread block: a thread that serves a single connection may run that
//! connection's execution itself, on an idle worker's channel ([`hold_alone`]), which spares
//! the two hand-overs to roma's slot thread and back that make most of an idle request's
//! overhead. Nothing else can be waiting on such a thread, and nothing new comes to it: while it
//! holds, new connections go to the other threads, and at most all threads but one hold at
//! once, so a new connection always finds a thread that runs.

use std::cell::OnceCell;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::watch;

/// Set in a thread's state while its one connection's request blocks it ([`hold_alone`]); the
/// bits below count the thread's open connections.
const HOLDING: usize = 1 << (usize::BITS - 1);

/// One connection thread: its runtime's handle and its state (open connections, [`HOLDING`]).
struct ConnThread {
    handle: tokio::runtime::Handle,
    open: Arc<AtomicUsize>,
}

/// What a connection thread knows for [`hold_alone`]: its own state, how many threads hold
/// now, and how many threads there are.
struct Here {
    open: Arc<AtomicUsize>,
    holders: Arc<AtomicUsize>,
    threads: usize,
}

thread_local! {
    /// Set once on each connection thread as it starts; unset everywhere else.
    static HERE: OnceCell<Here> = const { OnceCell::new() };
}

/// A connection thread that may block for its one connection's request; dropping it lets
/// new connections come to the thread again.
pub(crate) struct Holding {
    open: Arc<AtomicUsize>,
    holders: Arc<AtomicUsize>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.open.fetch_and(!HOLDING, Ordering::SeqCst);
        self.holders.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Lets the calling thread block for a request of its connection: `Some` when it is a
/// connection thread serving just that one connection, and another thread stays free for new
/// connections. While the guard lives no connection is placed on the thread, so a blocking
/// call holds up nothing but the connection whose request it is (whose next request, over
/// HTTP/1.1, waits for this answer anyway).
///
/// Only for a connection that carries one request at a time: an HTTP/2 connection's other
/// streams would wait behind the block.
pub(crate) fn hold_alone() -> Option<Holding> {
    HERE.with(|here| {
        let h = here.get()?;
        // At most all threads but one hold: a new connection always has a thread that runs.
        h.holders
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n + 1 < h.threads).then_some(n + 1)
            })
            .ok()?;
        // Exactly one connection (the caller's) and not holding; a connection placed here
        // meanwhile makes this fail, and then the caller does not block.
        if h.open
            .compare_exchange(1, 1 | HOLDING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            h.holders.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Holding {
            open: Arc::clone(&h.open),
            holders: Arc::clone(&h.holders),
        })
    })
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
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts connection thread `i` of `threads`, which runs until `stopped` turns true or its
/// sender is gone.
fn start_thread(
    i: usize,
    threads: usize,
    holders: &Arc<AtomicUsize>,
    mut stopped: watch::Receiver<bool>,
) -> std::io::Result<ConnThread> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = runtime.handle().clone();
    let open = Arc::new(AtomicUsize::new(0));
    let here = Here {
        open: Arc::clone(&open),
        holders: Arc::clone(holders),
        threads,
    };
    std::thread::Builder::new()
        .name(format!("roma-conn-{i}"))
        .spawn(move || {
            HERE.with(|h| {
                let _ = h.set(here);
            });
            runtime.block_on(async move {
                // Either a stop or the sender's drop ends the thread.
                let _ = stopped.wait_for(|s| *s).await;
            });
        })?;
    Ok(ConnThread { handle, open })
}

impl ConnThreads {
    /// Starts `n` (at least 1) threads, named `roma-conn-<i>`.
    pub(crate) fn start(n: usize) -> std::io::Result<ConnThreads> {
        let (stop, stopped) = watch::channel(false);
        let n = n.max(1);
        let holders = Arc::new(AtomicUsize::new(0));
        let first = start_thread(0, n, &holders, stopped.clone())?;
        let rest = (1..n)
            .map(|i| start_thread(i, n, &holders, stopped.clone()))
            .collect::<std::io::Result<_>>()?;
        Ok(ConnThreads { first, rest, stop })
    }

    /// Runs `connection` on the thread with the fewest open connections (the lowest-numbered
    /// of those) among those not holding ([`hold_alone`]). The future runs only there, so the
    /// sockets it registers once polled belong to that thread's reactor.
    pub(crate) fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let t = self.place();
        let on = OnThread(Arc::clone(&t.open));
        t.handle.spawn(async move {
            let _on = on;
            connection.await;
        });
    }

    /// Picks a thread and counts a connection on it. A thread that holds is never picked; at
    /// least one thread does not hold at any moment ([`hold_alone`]'s bound), so the search
    /// ends unless threads keep changing under it, and after a few tries the connection goes
    /// to the first thread's count anyway (it then waits for that thread's block to end).
    fn place(&self) -> &ConnThread {
        let all = || std::iter::once(&self.first).chain(&self.rest);
        for _ in 0..16 {
            let free = all()
                .map(|t| (t, t.open.load(Ordering::SeqCst)))
                .filter(|(_, v)| v & HOLDING == 0)
                .min_by_key(|(_, v)| *v);
            let Some((t, _)) = free else { continue };
            let counted = t
                .open
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                    (v & HOLDING == 0).then_some(v + 1)
                })
                .is_ok();
            if counted {
                return t;
            }
        }
        self.first.open.fetch_add(1, Ordering::SeqCst);
        &self.first
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
                .all(|t| t.open.load(Ordering::SeqCst) == 1)
        );
        drop(threads);
        for _ in 0..2 {
            assert!(matches!(
                rx.recv_timeout(Duration::from_secs(10)),
                Ok(Seen::Dropped)
            ));
        }
    }

    const PATIENCE: Duration = Duration::from_secs(10);

    /// Runs a connection that, once `go` fires, tries to hold its thread and reports its
    /// thread and whether it holds. Holding, it blocks its thread (as an execution run there
    /// does) until `release` fires, then lets go and reports `()`. Then it stays open.
    fn holder(
        threads: &ConnThreads,
        go: tokio::sync::oneshot::Receiver<()>,
        release: mpsc::Receiver<()>,
        report: mpsc::Sender<(ThreadId, bool)>,
        released: mpsc::Sender<()>,
    ) {
        threads.spawn(async move {
            let _ = go.await;
            let holding = hold_alone();
            let _ = report.send((std::thread::current().id(), holding.is_some()));
            if let Some(h) = holding {
                let _ = release.recv_timeout(PATIENCE);
                drop(h);
                let _ = released.send(());
            }
            std::future::pending::<()>().await;
        });
    }

    /// One [`holder`]'s controls: its `go` and its `release`.
    struct Held {
        go: Option<tokio::sync::oneshot::Sender<()>>,
        release: mpsc::Sender<()>,
    }

    impl Held {
        fn go(&mut self) {
            if let Some(go) = self.go.take() {
                let _ = go.send(());
            }
        }
    }

    /// Connection threads and the channels their [`holder`]s report on.
    struct Rig {
        threads: ConnThreads,
        report: mpsc::Sender<(ThreadId, bool)>,
        reports: mpsc::Receiver<(ThreadId, bool)>,
        released: mpsc::Sender<()>,
        releases: mpsc::Receiver<()>,
    }

    impl Rig {
        fn new(threads: usize) -> Rig {
            let (report, reports) = mpsc::channel();
            let (released, releases) = mpsc::channel();
            Rig {
                threads: ConnThreads::start(threads).unwrap(),
                report,
                reports,
                released,
                releases,
            }
        }

        /// A new [`holder`] connection, waiting for its `go`.
        fn connect(&self) -> Held {
            let (go, go_rx) = tokio::sync::oneshot::channel();
            let (release, release_rx) = mpsc::channel();
            holder(
                &self.threads,
                go_rx,
                release_rx,
                self.report.clone(),
                self.released.clone(),
            );
            Held {
                go: Some(go),
                release,
            }
        }

        /// Lets `held` go and tries to hold: its thread, and whether it holds.
        fn try_hold(&self, held: &mut Held) -> (ThreadId, bool) {
            held.go();
            self.reports
                .recv_timeout(PATIENCE)
                .expect("a connection reported")
        }

        /// Ends `held`'s hold and waits until it let go.
        fn release(&self, held: &Held) {
            held.release.send(()).unwrap();
            self.releases.recv_timeout(PATIENCE).expect("let go");
        }
    }

    #[test]
    fn a_thread_holds_only_alone_and_new_connections_go_around_it() {
        let rig = Rig::new(2);
        // A is alone on its thread: it holds, and blocks that thread.
        let mut a = rig.connect();
        let (a_thread, a_holds) = rig.try_hold(&mut a);
        assert!(a_holds, "a connection alone on its thread holds it");
        // Two more come while A holds: both go to the other thread, and run there.
        let mut b = rig.connect();
        let mut c = rig.connect();
        let (b_thread, b_holds) = rig.try_hold(&mut b);
        let (c_thread, c_holds) = rig.try_hold(&mut c);
        assert!(
            a_thread != b_thread && b_thread == c_thread,
            "the holding thread took no connection"
        );
        assert!(!b_holds && !c_holds, "two on a thread: neither holds");
        // A lets go; the next connection goes to its thread (the fewest connections again),
        // which it shares with A, so it does not hold.
        rig.release(&a);
        let mut d = rig.connect();
        let (d_thread, d_holds) = rig.try_hold(&mut d);
        assert_eq!(d_thread, a_thread);
        assert!(!d_holds, "A and D share the thread");
    }

    #[test]
    fn one_thread_always_stays_free() {
        // Two threads, one connection alone on each: only one of them may hold at once.
        let rig = Rig::new(2);
        let mut a = rig.connect();
        let mut b = rig.connect();
        let (a_thread, a_holds) = rig.try_hold(&mut a);
        let (b_thread, b_holds) = rig.try_hold(&mut b);
        assert_ne!(a_thread, b_thread);
        assert!(
            a_holds && !b_holds,
            "the second alone may not hold while the first does"
        );
        rig.release(&a);

        // With one thread, nothing ever holds.
        let one = Rig::new(1);
        let mut e = one.connect();
        assert!(!one.try_hold(&mut e).1, "a single thread never holds");
        // Nor does a thread that is not a connection thread.
        assert!(hold_alone().is_none());
    }
}
