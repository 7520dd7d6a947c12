//! What the CLI prints that came from a worker: console lines, results, error messages and
//! probe reports, each bounded and with control characters escaped.
//!
//! The code `roma run` runs is untrusted, and so is the worker that runs it: a handler can log
//! without end (`for(;;) console.error("x".repeat(61440))`) or write terminal escape sequences
//! (`console.log("\x1b]0;title\x07")` retitles a terminal). So every console line is cut on the
//! host at [`MAX_LINE_BYTES`] (the worker cuts at 64 KiB, but the host does not rely on it),
//! error-level lines held until the result is known are capped at [`MAX_HELD_LINES`] lines and
//! [`MAX_HELD_BYTES`] bytes (then a "... N more lines dropped" marker), and every control
//! character but tab is escaped with the same function that escapes worker stderr
//! ([`roma::tools::escape_control`]).

use roma::tools::escape_control;

/// The longest console line printed, in bytes of the message before escaping.
pub const MAX_LINE_BYTES: usize = 16 << 10;
/// The most error-level lines held until the invocation's result is known.
pub const MAX_HELD_LINES: usize = 1000;
/// The most bytes (escaped) of error-level lines held until the result is known.
pub const MAX_HELD_BYTES: usize = 1 << 20;

/// One console message as one terminal line: cut at [`MAX_LINE_BYTES`] on a character
/// boundary (with a note saying so), then escaped.
pub fn console_line(msg: &str) -> String {
    if msg.len() <= MAX_LINE_BYTES {
        return escape_control(msg);
    }
    let mut end = MAX_LINE_BYTES;
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{} [roma: line cut at {MAX_LINE_BYTES} bytes of {}]",
        escape_control(&msg[..end]),
        msg.len()
    )
}

/// Multi-line text from a worker (a JS stack): each line escaped, the line breaks kept.
pub fn escaped_lines(text: &str) -> String {
    text.split('\n')
        .map(escape_control)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Error-level console lines held until the result is known, bounded in lines and bytes.
#[derive(Debug, Default)]
pub struct HeldLines {
    lines: Vec<String>,
    bytes: usize,
    dropped: u64,
}

impl HeldLines {
    /// Holds `msg` as a [`console_line`], or counts it as dropped once the bounds are reached.
    pub fn push(&mut self, msg: &str) {
        if self.lines.len() >= MAX_HELD_LINES || self.bytes >= MAX_HELD_BYTES {
            self.dropped += 1;
            return;
        }
        let line = console_line(msg);
        self.bytes += line.len();
        self.lines.push(line);
    }

    /// The held lines, then the marker for the dropped ones (if any); empties the holder.
    pub fn take(&mut self) -> (Vec<String>, Option<String>) {
        let dropped = std::mem::take(&mut self.dropped);
        self.bytes = 0;
        let marker = (dropped > 0).then(|| {
            format!(
                "... {dropped} more lines dropped (roma run holds at most {MAX_HELD_LINES} \
                 error lines, {} KiB)",
                MAX_HELD_BYTES >> 10
            )
        });
        (std::mem::take(&mut self.lines), marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_on_a_character_boundary_and_escaped() {
        assert_eq!(console_line("\u{1b}]0;title\u{7}"), "\\u{1b}]0;title\\u{7}");
        let long = "é".repeat(MAX_LINE_BYTES); // two bytes each
        let line = console_line(&long);
        assert!(line.starts_with(&"é".repeat(MAX_LINE_BYTES / 2)), "cut");
        assert!(line.ends_with(&format!(
            "[roma: line cut at {MAX_LINE_BYTES} bytes of {}]",
            long.len()
        )));
        assert_eq!(escaped_lines("a\u{1b}\n  at b\r"), "a\\u{1b}\n  at b\\u{d}");
    }

    #[test]
    fn held_lines_stop_at_the_line_and_byte_bounds() {
        let mut held = HeldLines::default();
        for _ in 0..MAX_HELD_LINES + 5 {
            held.push("x");
        }
        let (lines, marker) = held.take();
        assert_eq!(lines.len(), MAX_HELD_LINES);
        assert!(marker.unwrap().starts_with("... 5 more lines dropped"));
        assert_eq!(held.take(), (Vec::new(), None));

        let big = "y".repeat(60 << 10);
        for _ in 0..1000 {
            held.push(&big);
        }
        let (lines, marker) = held.take();
        let bytes: usize = lines.iter().map(String::len).sum();
        assert!(bytes <= MAX_HELD_BYTES + MAX_LINE_BYTES + 64, "{bytes}");
        let kept = lines.len();
        assert!(
            marker
                .unwrap()
                .starts_with(&format!("... {} more", 1000 - kept))
        );
    }
}
