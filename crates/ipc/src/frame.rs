//! Length-prefixed frames: a `u32` little-endian length, then that many bytes.
//!
//! `FrameReader` assembles frames from a byte stream that may deliver them in pieces and may
//! stall. It keeps its progress across calls, so a receive that times out mid-frame loses nothing
//! and the next receive continues where it stopped. A claimed length above the cap is rejected
//! before anything is allocated, and the reader then skips that frame's body (in bounded chunks)
//! so the stream stays in step. Body memory grows with the bytes that actually arrived, never with
//! the claimed length.

use crate::IpcError;

/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;
/// Most bytes a body read asks for at once (and the most memory reserved ahead of the data).
const CHUNK: usize = 1 << 20;

/// The prefix for a body of `len` bytes. `len` must fit in `u32` (callers check the cap first).
pub fn encode_header(len: u32) -> [u8; HEADER_LEN] {
    len.to_le_bytes()
}

/// Where a frame reader gets its bytes. Each call returns at least one byte or an error
/// (EOF is [`IpcError::Closed`], a passed deadline [`IpcError::Timeout`]).
pub(crate) trait ByteSource {
    /// Reads into `buf` (non-empty).
    fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, IpcError>;
    /// Appends at most `max` (> 0) bytes to `out`.
    fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, IpcError>;
}

#[derive(Debug)]
enum State {
    Header { buf: [u8; HEADER_LEN], got: usize },
    Body { len: usize },
    Discard { left: usize },
}

/// Assembles frames; see the module docs.
#[derive(Debug)]
pub(crate) struct FrameReader {
    max_frame: usize,
    state: State,
    body: Vec<u8>,
}

impl FrameReader {
    /// A reader that rejects frames longer than `max_frame` bytes.
    pub(crate) fn new(max_frame: usize) -> Self {
        FrameReader {
            max_frame,
            state: State::Header {
                buf: [0; HEADER_LEN],
                got: 0,
            },
            body: Vec::new(),
        }
    }

    /// True when no frame is partly read (nothing pending from an earlier call).
    #[cfg(test)]
    pub(crate) fn is_idle(&self) -> bool {
        matches!(self.state, State::Header { got: 0, .. })
    }

    /// Reads the next whole frame into `out` (replacing its contents).
    pub(crate) fn read_frame<S: ByteSource>(
        &mut self,
        src: &mut S,
        out: &mut Vec<u8>,
    ) -> Result<(), IpcError> {
        loop {
            match &mut self.state {
                State::Discard { left } => {
                    let mut scratch = [0u8; 8192];
                    let want = (*left).min(scratch.len());
                    let n = src.read_into(&mut scratch[..want])?;
                    *left -= n.min(*left);
                    if *left == 0 {
                        self.state = State::Header {
                            buf: [0; HEADER_LEN],
                            got: 0,
                        };
                    }
                }
                State::Header { buf, got } => {
                    let n = src.read_into(&mut buf[*got..])?;
                    *got += n;
                    if *got < HEADER_LEN {
                        continue;
                    }
                    let len = u32::from_le_bytes(*buf) as usize;
                    if len > self.max_frame {
                        self.state = State::Discard { left: len };
                        return Err(IpcError::PayloadTooLarge {
                            len: len as u64,
                            limit: self.max_frame as u64,
                            what: "frame cap",
                        });
                    }
                    self.body.clear();
                    self.state = State::Body { len };
                }
                State::Body { len } => {
                    let left = *len - self.body.len();
                    if left > 0 {
                        src.read_append(&mut self.body, left.min(CHUNK))?;
                        continue;
                    }
                    std::mem::swap(&mut self.body, out);
                    self.body.clear();
                    self.state = State::Header {
                        buf: [0; HEADER_LEN],
                        got: 0,
                    };
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An in-memory source that hands out at most `step` bytes per call, then times out.
    pub(crate) struct Chunked<'a> {
        pub data: &'a [u8],
        pub step: usize,
    }

    impl ByteSource for Chunked<'_> {
        fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, IpcError> {
            let n = buf.len().min(self.step).min(self.data.len());
            if n == 0 {
                return Err(IpcError::Timeout(std::time::Duration::ZERO));
            }
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
        fn read_append(&mut self, out: &mut Vec<u8>, max: usize) -> Result<usize, IpcError> {
            let mut tmp = vec![0u8; max];
            let n = self.read_into(&mut tmp)?;
            out.extend_from_slice(&tmp[..n]);
            Ok(n)
        }
    }

    fn framed(bodies: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for b in bodies {
            v.extend_from_slice(&encode_header(b.len() as u32));
            v.extend_from_slice(b);
        }
        v
    }

    #[test]
    fn resumes_after_timeout_mid_frame() {
        let wire = framed(&[b"hello", b""]);
        let mut r = FrameReader::new(64);
        let mut out = Vec::new();
        // Only 3 bytes available: header incomplete, then a timeout.
        let mut src = Chunked {
            data: &wire[..3],
            step: 2,
        };
        assert!(r.read_frame(&mut src, &mut out).unwrap_err().is_timeout());
        assert!(!r.is_idle());
        let mut src = Chunked {
            data: &wire[3..],
            step: 1,
        };
        r.read_frame(&mut src, &mut out).unwrap();
        assert_eq!(out, b"hello");
        r.read_frame(&mut src, &mut out).unwrap();
        assert!(out.is_empty());
        assert!(r.is_idle());
    }

    #[test]
    fn oversize_is_rejected_then_skipped() {
        let wire = framed(&[&[7u8; 100], b"ok"]);
        let mut r = FrameReader::new(10);
        let mut out = Vec::new();
        let mut src = Chunked {
            data: &wire,
            step: 33,
        };
        match r.read_frame(&mut src, &mut out) {
            Err(IpcError::PayloadTooLarge { len: 100, .. }) => {}
            other => panic!("expected PayloadTooLarge, got {other:?}"),
        }
        r.read_frame(&mut src, &mut out).unwrap();
        assert_eq!(out, b"ok");
    }

    #[test]
    fn huge_claim_allocates_nothing() {
        let wire = encode_header(u32::MAX);
        let mut r = FrameReader::new(crate::config::MAX_WIRE_LEN);
        let mut out = Vec::new();
        let mut src = Chunked {
            data: &wire,
            step: 4,
        };
        // The claim is within the cap, but no body arrives: a timeout, with memory bounded by
        // what arrived (nothing), not by the claim.
        assert!(r.read_frame(&mut src, &mut out).unwrap_err().is_timeout());
        assert!(r.body.capacity() <= CHUNK);
    }

    proptest! {
        #[test]
        fn frames_survive_any_chunking(
            bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..8),
            step in 1usize..64,
        ) {
            let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_slice()).collect();
            let wire = framed(&refs);
            let mut r = FrameReader::new(1000);
            let mut src = Chunked { data: &wire, step };
            let mut out = Vec::new();
            for b in &bodies {
                r.read_frame(&mut src, &mut out).unwrap();
                prop_assert_eq!(&out, b);
            }
            prop_assert!(r.is_idle());
        }

        #[test]
        fn random_bytes_never_panic(wire in proptest::collection::vec(any::<u8>(), 0..512), step in 1usize..64) {
            let mut r = FrameReader::new(128);
            let mut src = Chunked { data: &wire, step };
            let mut out = Vec::new();
            for _ in 0..64 {
                if let Err(e) = r.read_frame(&mut src, &mut out) && e.is_timeout() {
                    break;
                }
                prop_assert!(out.len() <= 128);
            }
        }
    }
}
