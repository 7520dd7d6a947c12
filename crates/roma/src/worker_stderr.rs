//! What a worker writes to its stderr, relayed to the host as bounded, escaped lines.
//!
//! A worker's stderr carries its own diagnostics (V8's fatal-error reports, jail setup
//! failures, panics), but the worker runs untrusted code: a compromised one could write
//! terminal escape sequences into an operator's terminal, forge lines that look like the host's
//! own, or flood the host's log. So each worker's stderr is a pipe (`WorkerSpec::capture_stderr`)
//! read by one thread per worker process, which hands the worker output function (by default:
//! the host's stderr, prefixed with `roma-worker N:`) lines that are:
//! - cut at [`MAX_LINE_BYTES`] (the rest of an overlong line is skipped, and the line says so);
//! - decoded lossily and with every control character but tab escaped (`\u{1b}`,
//!   [`escape_control`], which is also what `roma run` applies to everything it prints that came
//!   from a worker);
//! - limited to [`MAX_LINES_PER_SECOND`]; lines past that are counted, not passed on, and the
//!   count is reported once the second is over (or at the end).
//!
//! The thread reads until end-of-file whatever it passes on, because a worker whose stderr pipe
//! fills up blocks in its next write; it ends when the worker process and every copy of the
//! pipe are gone.

use std::fs::File;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where worker output goes: the worker's index and one line.
pub type WorkerOutputFn = dyn Fn(usize, &str) + Send + Sync;

/// The longest line passed on, in bytes (before escaping).
pub const MAX_LINE_BYTES: usize = 4096;
/// The most lines passed on per second per worker process.
pub const MAX_LINES_PER_SECOND: u32 = 100;

/// The default worker output function: the host's stderr, one prefixed line each.
pub(crate) fn to_host_stderr(index: usize, line: &str) {
    eprintln!("roma-worker {index}: {line}");
}

/// Starts the thread that relays worker `index`'s stderr (`fd`) to `sink`.
pub(crate) fn relay(index: usize, fd: OwnedFd, sink: Arc<WorkerOutputFn>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name(format!("roma-stderr-{index}"))
        .spawn(move || {
            let mut lines = Lines::new(|line: &str| sink(index, line));
            let mut file = File::from(fd);
            let mut buf = [0u8; 8192];
            loop {
                match file.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => lines.push(&buf[..n], Instant::now()),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            lines.finish();
        })?;
    Ok(())
}

/// Splits a byte stream into bounded, escaped, rate-limited lines.
struct Lines<F: FnMut(&str)> {
    emit: F,
    line: Vec<u8>,
    /// The current line passed [`MAX_LINE_BYTES`]: the rest of it is skipped.
    overlong: bool,
    window_start: Option<Instant>,
    in_window: u32,
    dropped: u64,
}

impl<F: FnMut(&str)> Lines<F> {
    fn new(emit: F) -> Self {
        Lines {
            emit,
            line: Vec::new(),
            overlong: false,
            window_start: None,
            in_window: 0,
            dropped: 0,
        }
    }

    /// Takes bytes read at `now`.
    fn push(&mut self, bytes: &[u8], now: Instant) {
        for chunk in bytes.split_inclusive(|&b| b == b'\n') {
            let (body, ends) = match chunk.split_last() {
                Some((b'\n', body)) => (body, true),
                _ => (chunk, false),
            };
            if !self.overlong {
                let room = MAX_LINE_BYTES - self.line.len();
                if body.len() > room {
                    self.line.extend_from_slice(&body[..room]);
                    self.overlong = true;
                } else {
                    self.line.extend_from_slice(body);
                }
            }
            if ends {
                self.end_line(now);
            }
        }
    }

    /// Passes on what is left at end-of-file, and the last count of dropped lines.
    fn finish(&mut self) {
        if !self.line.is_empty() || self.overlong {
            self.end_line(Instant::now());
        }
        self.report_dropped();
    }

    fn end_line(&mut self, now: Instant) {
        let text = escape(&self.line, self.overlong);
        self.line.clear();
        self.overlong = false;
        let fresh = self
            .window_start
            .is_none_or(|s| now.duration_since(s) >= Duration::from_secs(1));
        if fresh {
            self.report_dropped();
            self.window_start = Some(now);
            self.in_window = 0;
        }
        if self.in_window < MAX_LINES_PER_SECOND {
            self.in_window += 1;
            (self.emit)(&text);
        } else {
            self.dropped += 1;
        }
    }

    fn report_dropped(&mut self) {
        if self.dropped > 0 {
            let n = std::mem::take(&mut self.dropped);
            (self.emit)(&format!(
                "[roma: {n} more lines dropped: over {MAX_LINES_PER_SECOND} lines per second]"
            ));
        }
    }
}

/// `text` safe for a terminal: every control character but tab (C0, DEL, C1, line breaks
/// included) written as a Rust escape, `\u{1b}`. For any text that came from a worker: a
/// terminal escape sequence in it then shows as text instead of acting on the operator's
/// terminal, and it cannot start a line of its own that looks like the host's.
pub fn escape_control(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`escape_control`] for JSON text: the control characters written as JSON escapes
/// (`\u009b`), so the text stays the same JSON value. JSON may hold control characters raw only
/// as whitespace between tokens (tab, line feed, carriage return, which stay) and as DEL and C1
/// characters inside strings, which serializers leave as they are (`\u{9b}` is a
/// one-character CSI for some terminals); it escapes C0 in strings itself.
pub fn escape_control_json(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    for c in json.chars() {
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The line as text: lossy UTF-8, control characters but tab escaped, a mark if it was cut.
fn escape(line: &[u8], cut: bool) -> String {
    let mut out = escape_control(&String::from_utf8_lossy(line));
    if cut {
        out.push_str(&format!(" [roma: line cut at {MAX_LINE_BYTES} bytes]"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(chunks: &[&[u8]], step: Duration) -> Vec<String> {
        let mut out = Vec::new();
        let t0 = Instant::now();
        {
            let mut lines = Lines::new(|l: &str| out.push(l.to_owned()));
            for (i, c) in chunks.iter().enumerate() {
                lines.push(c, t0 + step * i as u32);
            }
            lines.finish();
        }
        out
    }

    #[test]
    fn splits_lines_across_reads_and_keeps_a_last_partial_line() {
        let out = collect(&[b"one\ntw", b"o\n\nthree"], Duration::ZERO);
        assert_eq!(out, ["one", "two", "", "three"]);
    }

    #[test]
    fn escapes_control_characters_and_invalid_utf8() {
        let out = collect(&[b"\x1b[31mred\x1b[0m\tok\r\xff\n"], Duration::ZERO);
        assert_eq!(out, ["\\u{1b}[31mred\\u{1b}[0m\tok\\u{d}\u{fffd}"]);
    }

    #[test]
    fn json_escaping_keeps_the_value() {
        // What a serializer writes: C0 escaped, DEL and C1 raw.
        let text =
            serde_json::to_string(&serde_json::json!({"a": "x\u{9b}31m\u{7f}\u{1b}\tz"})).unwrap();
        assert!(text.contains('\u{9b}'), "{text}");
        let safe = escape_control_json(&text);
        assert!(!safe.chars().any(char::is_control), "{safe}");
        assert_eq!(
            escape_control_json("[1,\n2]"),
            "[1,\n2]",
            "whitespace stays"
        );
        let before: serde_json::Value = serde_json::from_str(&text).unwrap();
        let after: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(before, after);
        assert_eq!(escape_control("a\nb\u{9b}"), "a\\u{a}b\\u{9b}");
    }

    #[test]
    fn cuts_overlong_lines_and_goes_on_with_the_next() {
        let long = vec![b'x'; MAX_LINE_BYTES * 3];
        let out = collect(&[&long[..5000], &long[5000..], b"\nnext\n"], Duration::ZERO);
        assert_eq!(out.len(), 2);
        assert!(out[0].starts_with(&"x".repeat(MAX_LINE_BYTES)));
        assert!(
            out[0].ends_with("[roma: line cut at 4096 bytes]"),
            "{}",
            &out[0][4090..]
        );
        assert_eq!(
            out[0].len(),
            MAX_LINE_BYTES + " [roma: line cut at 4096 bytes]".len()
        );
        assert_eq!(out[1], "next");
    }

    #[test]
    fn limits_lines_per_second_and_reports_the_dropped_ones() {
        let flood: Vec<u8> = (0..1000)
            .flat_map(|i| format!("spam {i}\n").into_bytes())
            .collect();
        // All in one second, then one more line two seconds later.
        let out = collect(&[&flood, b"later\n"], Duration::from_secs(2));
        let limit = MAX_LINES_PER_SECOND as usize;
        assert_eq!(out.len(), limit + 2, "{:?}", &out[limit..]);
        assert_eq!(out[limit - 1], format!("spam {}", limit - 1));
        assert_eq!(
            out[limit],
            format!(
                "[roma: {} more lines dropped: over {limit} lines per second]",
                1000 - limit
            )
        );
        assert_eq!(out[limit + 1], "later");
    }

    #[test]
    fn reports_dropped_lines_at_the_end() {
        let flood: Vec<u8> = (0..150)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let out = collect(&[&flood], Duration::ZERO);
        assert_eq!(out.len(), MAX_LINES_PER_SECOND as usize + 1);
        assert!(
            out.last()
                .is_some_and(|l| l.starts_with("[roma: 50 more lines dropped"))
        );
    }
}
