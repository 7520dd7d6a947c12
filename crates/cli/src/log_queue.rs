//! `roma serve`'s log lines leave through a thread of their own. A server's stderr is a pipe
//! to whatever collects its logs, and a collector can stall; a line written straight from a
//! runtime thread (a request's line) or a slot thread (the code's console output) would then
//! stall requests with it. Lines queue instead, up to [`MAX_QUEUED_BYTES`]; past that they
//! are dropped and counted, and the count is written as a line of its own once the reader
//! catches up. Nothing a client or the code does can make the server wait for its stderr.
//!
//! A request does not wake the writer either. Waking a sleeping thread costs the waker a
//! system call and an inter-processor interrupt, and the woken thread takes a CPU just as the
//! answer is being written; on a small machine every wake-up on an idle request's path shows
//! (docs/performance.md, "One runtime per connection thread"). So while lines flow, the writer
//! wakes by itself every [`TICK`] and writes what has queued; only after [`DOZE_AFTER`]
//! without a line does it sleep until woken, and then the next line wakes it (one wake per
//! quiet spell, not one per line). A queue past [`WAKE_BYTES`] and a flush wake it at once.
//! What it finds it writes together, up to [`WRITE_CHUNK`] a write: a busy server's lines cost
//! one system call per tick, not one per line.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::thread::Thread;
use std::time::{Duration, Instant};

/// The most bytes of lines waiting for stderr.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// How often the writer looks for lines while they flow: the most a line waits for stderr
/// when the writer is not stalled by its reader.
const TICK: Duration = Duration::from_millis(10);

/// How long without a line before the writer stops ticking and sleeps until a line wakes it.
const DOZE_AFTER: Duration = Duration::from_secs(1);

/// The most bytes of lines the writer hands stderr in one write.
const WRITE_CHUNK: usize = 64 * 1024;

/// Queued bytes past which a line wakes the writer at once instead of waiting for its tick.
const WAKE_BYTES: usize = 64 * 1024;

/// How long the last lines may take to reach stderr when the server exits.
const FLUSH_PATIENCE: Duration = Duration::from_secs(2);

/// What the writer has to do, guarded by one lock.
#[derive(Default)]
struct Pending {
    lines: VecDeque<Vec<u8>>,
    /// The bytes of `lines` and of the lines the writer took and has not written yet.
    bytes: usize,
    /// Answered once every line queued before it is written.
    flushes: Vec<mpsc::SyncSender<()>>,
    /// Every [`LogQueue`] is gone: write what is left and end.
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    /// Lines refused since the writer last said so.
    dropped: AtomicU64,
    /// The writer sleeps until woken: the next line must wake it. Set by the writer before
    /// its last look at `pending` (under the lock), so a line queued after that look sees it.
    dozing: AtomicBool,
    /// How many times a sender woke the writer (the tests read it).
    wakes: AtomicU64,
}

impl Shared {
    /// The pending work; a writer or sender that panicked while holding the lock left it
    /// consistent (every change to it is a single push, pop or take), so the poison is ignored.
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The senders' side: dropping the last one ends the writer once its lines are written.
struct Handle {
    shared: Arc<Shared>,
    writer: Thread,
}

impl Handle {
    fn wake(&self) {
        self.shared.wakes.fetch_add(1, Ordering::Relaxed);
        self.writer.unpark();
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.pending().closed = true;
        self.writer.unpark();
    }
}

/// Where the log lines go: hand one to the subscriber (it makes one writer per line).
#[derive(Clone)]
pub struct LogQueue {
    handle: Arc<Handle>,
}

impl LogQueue {
    /// Starts the thread that writes the lines to `out` (stderr).
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<LogQueue> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            dropped: AtomicU64::new(0),
            // Nothing has been logged yet: the first line wakes the writer.
            dozing: AtomicBool::new(true),
            wakes: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("roma-log".into())
            .spawn(move || write_lines(&s, out))?;
        Ok(LogQueue {
            handle: Arc::new(Handle {
                shared,
                writer: writer.thread().clone(),
            }),
        })
    }

    /// Queues one line (with its line break), or counts it dropped when the queue is full.
    pub fn send(&self, line: Vec<u8>) {
        let shared = &self.handle.shared;
        let n = line.len();
        let bytes = {
            let mut p = shared.pending();
            if p.bytes + n > MAX_QUEUED_BYTES {
                drop(p);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            p.bytes += n;
            p.lines.push_back(line);
            p.bytes
        };
        // After the lock: a writer that looked at `pending` before this line had set
        // `dozing` before that look, and the lock orders the two.
        if shared.dozing.swap(false, Ordering::SeqCst) || bytes > WAKE_BYTES {
            self.handle.wake();
        }
    }

    /// Waits, at most [`FLUSH_PATIENCE`], until the lines queued so far are written.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        self.handle.shared.pending().flushes.push(done);
        self.handle.wake();
        let _ = wait.recv_timeout(FLUSH_PATIENCE);
    }
}

fn write_lines(shared: &Shared, mut out: impl Write) {
    // None: no line yet, so the writer dozes from the start.
    let mut last_line: Option<Instant> = None;
    let mut chunk = Vec::with_capacity(WRITE_CHUNK);
    loop {
        let (lines, flushes, closed) = {
            let mut p = shared.pending();
            (
                std::mem::take(&mut p.lines),
                std::mem::take(&mut p.flushes),
                p.closed,
            )
        };
        if !lines.is_empty() {
            last_line = Some(Instant::now());
        }
        // The lines taken go out together, up to WRITE_CHUNK a write: one system call per
        // tick instead of one per line. Each line stays counted until its write is done, so a
        // stalled stderr holds at most MAX_QUEUED_BYTES, the chunk being written included,
        // and each chunk written makes room at once.
        let mut lines = lines.into_iter().peekable();
        while lines.peek().is_some() {
            chunk.clear();
            while let Some(line) =
                lines.next_if(|l| chunk.is_empty() || chunk.len() + l.len() <= WRITE_CHUNK)
            {
                chunk.extend_from_slice(&line);
            }
            // A write error (stderr closed) loses the chunk; the server goes on.
            let _ = out.write_all(&chunk);
            shared.pending().bytes -= chunk.len();
        }
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                out,
                "roma serve: {dropped} log lines dropped: stderr was not read fast enough"
            );
        }
        if !flushes.is_empty() {
            let _ = out.flush();
            for done in flushes {
                let _ = done.try_send(());
            }
        }
        if closed {
            let _ = out.flush();
            return;
        }
        if last_line.is_some_and(|t| t.elapsed() < DOZE_AFTER) {
            std::thread::park_timeout(TICK);
            continue;
        }
        shared.dozing.store(true, Ordering::SeqCst);
        let idle = {
            let p = shared.pending();
            p.lines.is_empty() && p.flushes.is_empty() && !p.closed
        };
        if idle {
            // Until a line, a flush or the last sender's drop unparks it; a spurious
            // return only means one more look.
            std::thread::park();
        }
        shared.dozing.store(false, Ordering::SeqCst);
    }
}

/// One line being formatted; queued whole when the subscriber is done with it.
pub struct LineWriter<'a> {
    queue: &'a LogQueue,
    line: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.line.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.queue.send(std::mem::take(&mut self.line));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogQueue {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            queue: self,
            line: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An stderr that blocks until told to go on, then keeps what it is given.
    #[derive(Clone, Default)]
    struct Gate {
        open: Arc<(Mutex<bool>, std::sync::Condvar)>,
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
    }

    impl Gate {
        fn open(&self) {
            *self.open.0.lock().unwrap() = true;
            self.open.1.notify_all();
        }
        fn text(&self) -> String {
            String::from_utf8(self.got.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (m, cv) = &*self.open;
            let mut open = m.lock().unwrap();
            while !*open {
                open = cv.wait(open).unwrap();
            }
            self.got.lock().unwrap().extend_from_slice(buf);
            *self.writes.lock().unwrap() += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_drops_lines_past_the_bound_and_says_how_many() {
        let gate = Gate::default();
        let q = LogQueue::start(gate.clone()).unwrap();
        let line = |i: usize| format!("{i:07} {}\n", "x".repeat(1015)).into_bytes();
        let n = MAX_QUEUED_BYTES / 1024 + 100;
        // Every send returns at once although nothing is written.
        for i in 0..n {
            q.send(line(i));
        }
        gate.open();
        q.flush();
        let text = gate.text();
        let written = text.lines().filter(|l| l.ends_with('x')).count();
        // The line the writer thread holds when the gate opens is out of the queue's count.
        assert!(
            (MAX_QUEUED_BYTES / 1024..=MAX_QUEUED_BYTES / 1024 + 1).contains(&written),
            "{written} of {n} lines written"
        );
        let dropped = n - written;
        assert!(
            text.contains(&format!(
                "roma serve: {dropped} log lines dropped: stderr was not read fast enough"
            )),
            "{}",
            &text[text.len().saturating_sub(300)..]
        );
        // The lines that were kept are the first ones, in order.
        assert!(text.starts_with("0000000 x"));
        // Once the reader has caught up, lines flow again.
        q.send(b"after\n".to_vec());
        q.flush();
        assert!(gate.text().ends_with("after\n"));
    }

    /// Polls `what` until it holds, for at most `within`.
    fn eventually(within: Duration, what: impl Fn() -> bool) -> bool {
        let until = Instant::now() + within;
        while !what() {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    fn open_gate() -> (Gate, LogQueue) {
        let gate = Gate::default();
        gate.open();
        let q = LogQueue::start(gate.clone()).unwrap();
        (gate, q)
    }

    #[test]
    fn lines_that_flow_do_not_wake_the_writer() {
        let (gate, q) = open_gate();
        q.send(b"first\n".to_vec());
        assert!(eventually(Duration::from_secs(5), || gate.text() == "first\n"));
        for i in 0..50 {
            q.send(format!("line {i}\n").into_bytes());
        }
        assert!(eventually(Duration::from_secs(5), || gate
            .text()
            .ends_with("line 49\n")));
        assert_eq!(gate.text().lines().count(), 51);
        // The first line woke the writer from its doze; the rest waited for its tick. (One
        // more wake is possible if this thread was held off the CPU for over DOZE_AFTER
        // between the two sends; one per line is the bug this catches.)
        let wakes = q.handle.shared.wakes.load(Ordering::Relaxed);
        assert!((1..=2).contains(&wakes), "{wakes} wakes for 51 lines");
    }

    #[test]
    fn lines_queued_together_leave_in_one_write_each_chunk() {
        let gate = Gate::default();
        let q = LogQueue::start(gate.clone()).unwrap();
        // The writer takes the first line and blocks writing it; the rest queue meanwhile.
        q.send(b"first\n".to_vec());
        let line = |i: usize| format!("{i:05} {}\n", "y".repeat(1017)).into_bytes();
        let n = 2 * WRITE_CHUNK / 1024 + 10;
        for i in 0..n {
            q.send(line(i));
        }
        gate.open();
        q.flush();
        let text = gate.text();
        assert_eq!(text.lines().count(), n + 1, "every line, once");
        assert!(
            text.starts_with("first\n00000 y")
                && text.ends_with(&format!("{:05} {}\n", n - 1, "y".repeat(1017)))
        );
        // The first line alone (or with the few sent before the writer took it), then the
        // rest in chunks of WRITE_CHUNK: one write per line is what this catches.
        let writes = *gate.writes.lock().unwrap();
        assert!(
            (2..=5).contains(&writes),
            "{writes} writes for {} lines",
            n + 1
        );
    }

    #[test]
    fn a_line_after_a_quiet_spell_wakes_the_dozing_writer() {
        let (gate, q) = open_gate();
        q.send(b"before\n".to_vec());
        assert!(eventually(Duration::from_secs(5), || gate.text() == "before\n"));
        let dozing = || q.handle.shared.dozing.load(Ordering::SeqCst);
        // The writer stops ticking DOZE_AFTER after its last line.
        assert!(eventually(DOZE_AFTER * 10, dozing));
        let wakes = q.handle.shared.wakes.load(Ordering::Relaxed);
        q.send(b"after\n".to_vec());
        assert_eq!(q.handle.shared.wakes.load(Ordering::Relaxed), wakes + 1);
        // No flush: the wake alone brings the line out.
        assert!(eventually(Duration::from_secs(5), || gate.text() == "before\nafter\n"));
    }

    #[test]
    fn a_long_queue_wakes_the_writer_before_its_tick() {
        let (gate, q) = open_gate();
        let line = vec![b'x'; 1023]
            .into_iter()
            .chain([b'\n'])
            .collect::<Vec<u8>>();
        for _ in 0..WAKE_BYTES / 1024 + 8 {
            q.send(line.clone());
        }
        let wakes = q.handle.shared.wakes.load(Ordering::Relaxed);
        // The doze's wake, and a wake for each line past WAKE_BYTES (cheap while the writer
        // is awake: an unpark of a running thread makes no system call).
        assert!(wakes >= 2, "{wakes} wakes");
        q.flush();
        assert_eq!(gate.text().lines().count(), WAKE_BYTES / 1024 + 8);
    }

    #[test]
    fn the_last_sender_dropped_writes_what_is_left() {
        let (gate, q) = open_gate();
        q.send(b"first\n".to_vec());
        assert!(eventually(Duration::from_secs(5), || gate.text() == "first\n"));
        q.send(b"last\n".to_vec());
        drop(q);
        assert!(eventually(Duration::from_secs(5), || gate.text() == "first\nlast\n"));
    }
}
