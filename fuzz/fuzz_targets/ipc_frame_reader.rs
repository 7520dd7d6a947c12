//! The frame reader behind `roma_ipc::SocketTransport` (length-prefixed frames on a stream,
//! resumable, oversize frames skipped). The fuzz input is written raw into the peer end of a
//! socketpair, which is then closed; the frames received must be exactly what a ten-line
//! reference framer finds in the same bytes, an oversize frame must be an error (and skipped),
//! the end must be `Closed`, and every frame goes through `decode_worker_message` as the host
//! would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roma_ipc::{ChannelConfig, IpcError, SocketTransport, Transport, decode_worker_message};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Small enough that the fuzzer meets the cap often.
const MAX_FRAME: usize = 256;

#[derive(Debug, PartialEq)]
enum Event {
    Frame(Vec<u8>),
    TooLarge,
    Closed,
}

fn reference(mut rest: &[u8]) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some((len, body)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        if len > MAX_FRAME {
            out.push(Event::TooLarge);
            rest = &body[len.min(body.len())..];
        } else if len <= body.len() {
            out.push(Event::Frame(body[..len].to_vec()));
            rest = &body[len..];
        } else {
            break;
        }
    }
    out.push(Event::Closed);
    out
}

fuzz_target!(|data: &[u8]| {
    let config = ChannelConfig {
        max_frame_bytes: MAX_FRAME,
        ..ChannelConfig::socket()
    };
    let (mut host, worker) = SocketTransport::pair(&config).expect("socketpair");
    let raw = worker.as_fd().try_clone_to_owned().expect("dup");
    drop(worker);
    let mut raw = UnixStream::from(raw);
    // Fuzz inputs are a few KiB at most: far below the socket buffer, so this cannot block.
    raw.write_all(data).expect("write to the socket");
    drop(raw);
    let mut got = Vec::new();
    // Each event consumes at least one input byte (or ends the stream): bounded.
    for _ in 0..=data.len() + 1 {
        match host.recv(Duration::from_secs(10)) {
            Ok(frame) => {
                assert!(
                    frame.len() <= MAX_FRAME,
                    "a frame over the cap came through"
                );
                let _ = decode_worker_message(&frame);
                got.push(Event::Frame(frame));
            }
            Err(IpcError::PayloadTooLarge { .. }) => got.push(Event::TooLarge),
            Err(IpcError::Closed) => {
                got.push(Event::Closed);
                break;
            }
            Err(e) => panic!("unexpected receive error: {e}"),
        }
    }
    assert_eq!(
        got,
        reference(data),
        "the frame reader and the reference framer disagree"
    );
});
