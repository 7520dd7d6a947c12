//! Follows the frames of what an HTTP/2 client sends, only far enough to tell when a header
//! block is open: from a HEADERS (or PUSH_PROMISE) frame's first byte until the whole frame
//! that carries END_HEADERS is in. hyper's HTTP/2 server bounds a header list's size but not
//! how long it takes to arrive, and while a block is open no other frame may come on the
//! connection; the listener cuts a connection whose block stays open past
//! `limits.header_read_timeout`, as it does a slow HTTP/1.1 head.
//!
//! It reads frame headers (9 bytes: length, type, flags, stream) and skips payloads; it
//! never buffers more than one frame header, and a client that sends something that is not
//! HTTP/2 gets its error from hyper, not from here.

/// The length of the client connection preface, which comes before the first frame.
const PREFACE_BYTES: u64 = 24;
const FRAME_HEADER_BYTES: usize = 9;
const HEADERS: u8 = 0x1;
const PUSH_PROMISE: u8 = 0x5;
const CONTINUATION: u8 = 0x9;
const END_HEADERS: u8 = 0x4;

/// Where a client's byte stream stands.
#[derive(Debug)]
pub(crate) struct HeaderBlocks {
    /// Bytes to pass before the next frame header: the preface, then each payload.
    skip: u64,
    head: [u8; FRAME_HEADER_BYTES],
    /// How much of the next frame header is in `head`.
    have: usize,
    /// Whether the frame being skipped ends the open header block.
    ends_block: bool,
    open: bool,
}

impl HeaderBlocks {
    /// At the start of a connection, before the preface.
    pub(crate) fn new() -> Self {
        HeaderBlocks {
            skip: PREFACE_BYTES,
            head: [0; FRAME_HEADER_BYTES],
            have: 0,
            ends_block: false,
            open: false,
        }
    }

    /// Whether a header block has begun and not yet ended.
    pub(crate) fn open(&self) -> bool {
        self.open
    }

    /// Takes the next bytes the client sent.
    pub(crate) fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() as u64);
                bytes = &bytes[n as usize..];
                self.skip -= n;
                if self.skip == 0 {
                    self.frame_done();
                }
                continue;
            }
            let n = (FRAME_HEADER_BYTES - self.have).min(bytes.len());
            self.head[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < FRAME_HEADER_BYTES {
                return;
            }
            self.have = 0;
            let [l0, l1, l2, ty, flags, ..] = self.head;
            let len = (u64::from(l0) << 16) | (u64::from(l1) << 8) | u64::from(l2);
            if matches!(ty, HEADERS | PUSH_PROMISE) {
                self.open = true;
            }
            self.ends_block =
                matches!(ty, HEADERS | PUSH_PROMISE | CONTINUATION) && flags & END_HEADERS != 0;
            self.skip = len;
            if len == 0 {
                self.frame_done();
            }
        }
    }

    /// The frame being skipped is all in.
    fn frame_done(&mut self) {
        if self.ends_block {
            self.open = false;
            self.ends_block = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![
            (n >> 16) as u8,
            (n >> 8) as u8,
            n as u8,
            ty,
            flags,
            0,
            0,
            0,
            1,
        ];
        f.extend_from_slice(payload);
        f
    }

    /// The state after each byte of `bytes`, fed one byte at a time, and whether feeding them
    /// all at once ends in the same state.
    fn byte_by_byte(bytes: &[u8]) -> Vec<bool> {
        let mut one = HeaderBlocks::new();
        let states = bytes
            .iter()
            .map(|b| {
                one.scan(std::slice::from_ref(b));
                one.open()
            })
            .collect();
        let mut all = HeaderBlocks::new();
        all.scan(bytes);
        assert_eq!(all.open(), one.open());
        states
    }

    #[test]
    fn a_block_is_open_from_its_headers_frame_to_the_end_of_its_end_headers_frame() {
        let preface = [b'P'; 24];
        let settings = frame(0x4, 0, &[0; 6]);
        let whole = frame(HEADERS, END_HEADERS | 0x1, b"abc");
        let mut stream = preface.to_vec();
        stream.extend(&settings);
        stream.extend(&whole);
        let states = byte_by_byte(&stream);
        let before = preface.len() + settings.len();
        // Closed through the preface (however much it looks like frames) and SETTINGS.
        assert!(states[..before].iter().all(|o| !o));
        // Open from the HEADERS frame's header until its last payload byte is in.
        assert!(states[before + 8..stream.len() - 1].iter().all(|o| *o));
        assert!(!states[stream.len() - 1]);

        // Split across CONTINUATION frames: open until the one with END_HEADERS is in.
        let mut stream = preface.to_vec();
        stream.extend(frame(HEADERS, 0, b"ab"));
        stream.extend(frame(CONTINUATION, 0, b""));
        let cont_end = stream.len();
        stream.extend(frame(CONTINUATION, END_HEADERS, b"cd"));
        stream.extend(frame(0x0, 0x1, b"body"));
        let states = byte_by_byte(&stream);
        assert!(states[24 + 8..cont_end + 10].iter().all(|o| *o));
        assert!(!states[cont_end + 10]);
        assert!(!*states.last().unwrap());

        // A HEADERS frame that never ends its block leaves it open; DATA never opens one.
        let mut stream = preface.to_vec();
        stream.extend(frame(HEADERS, 0, b"abc"));
        assert!(*byte_by_byte(&stream).last().unwrap());
        let mut stream = preface.to_vec();
        stream.extend(frame(0x0, 0, &[0; 300]));
        assert!(byte_by_byte(&stream).iter().all(|o| !o));
    }
}
