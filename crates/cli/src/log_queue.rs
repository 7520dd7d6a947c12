//! `roma serve`'s log lines leave through a thread of their own. A server's stderr is a pipe
//! to whatever collects its logs, and a collector can stall; a line written straight from a
//! runtime thread (a request's line) or a slot thread (the code's console output) would then
//! stall requests with it. Lines queue instead, up to [`MAX_QUEUED_BYTES`]; past that they
//! are dropped and counted, and the count is written as a line of its own once the reader
//! catches up. Nothing a client or the code does can make the server wait for its stderr.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// The most bytes of lines waiting for stderr.
pub const MAX_QUEUED_BYTES: usize = 1 << 20;

/// How long the last lines may take to reach stderr when the server exits.
const FLUSH_PATIENCE: Duration = Duration::from_secs(2);

enum Message {
    Line(Vec<u8>),
    /// Answered once every line sent before it is written.
    Flush(mpsc::SyncSender<()>),
}

struct Shared {
    queued: AtomicUsize,
    dropped: AtomicU64,
}

/// Where the log lines go: hand one to the subscriber (it makes one writer per line).
#[derive(Clone)]
pub struct LogQueue {
    tx: mpsc::Sender<Message>,
    shared: Arc<Shared>,
}

impl LogQueue {
    /// Starts the thread that writes the lines to `out` (stderr).
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<LogQueue> {
        let (tx, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("roma-log".into())
            .spawn(move || write_lines(rx, &s, out))?;
        Ok(LogQueue { tx, shared })
    }

    /// Queues one line (with its line break), or counts it dropped when the queue is full.
    pub fn send(&self, line: Vec<u8>) {
        let n = line.len();
        let queued = self.shared.queued.fetch_add(n, Ordering::AcqRel);
        if queued + n > MAX_QUEUED_BYTES || self.tx.send(Message::Line(line)).is_err() {
            self.shared.queued.fetch_sub(n, Ordering::AcqRel);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Waits, at most [`FLUSH_PATIENCE`], until the lines queued so far are written.
    pub fn flush(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        if self.tx.send(Message::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(FLUSH_PATIENCE);
        }
    }
}

fn write_lines(rx: mpsc::Receiver<Message>, shared: &Shared, mut out: impl Write) {
    for m in rx {
        match m {
            Message::Line(line) => {
                // A write error (stderr closed) loses the line; the server goes on.
                let _ = out.write_all(&line);
                shared.queued.fetch_sub(line.len(), Ordering::AcqRel);
                let dropped = shared.dropped.swap(0, Ordering::Relaxed);
                if dropped > 0 {
                    let _ = writeln!(
                        out,
                        "roma serve: {dropped} log lines dropped: stderr was not read fast enough"
                    );
                }
            }
            Message::Flush(done) => {
                let _ = out.flush();
                let _ = done.try_send(());
            }
        }
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
}
