//! Faults a worker can be told to commit, for the host's fault-injection tests. Compiled only
//! into debug builds (`cfg(debug_assertions)`): a release worker has none of this.
//!
//! A request whose handler name is one of the names below does not run JS; the worker
//! misbehaves instead, the way a compromised or broken worker could:
//! - `__roma_fault_garbage`: writes random-looking bytes as a frame, then goes on;
//! - `__roma_fault_wrong_id`: answers as if it were another request;
//! - `__roma_fault_exit`: exits at once with status 3;
//! - `__roma_fault_abort`: aborts (SIGABRT);
//! - `__roma_fault_hang`: sleeps forever, ignoring cancel and timeouts;
//! - `__roma_fault_log_flood`: sends 10 000 log lines, then answers;
//! - `__roma_fault_stderr`: writes to its stderr a plain line, a line with terminal escapes, a
//!   10 000-byte line and 1 000 more lines at once, then answers;
//! - `__roma_fault_forbidden_call`: makes a socket pair (`socketpair`, which the seccomp filter
//!   refuses: the worker dies of SIGSYS after naming the call); exits with status 4 where no
//!   filter stopped it (`--sandbox none`).

use roma_core::{ExecOutput, LogLevel};
use roma_ipc::{IpcError, WorkerEndpoint, WorkerToHost};

/// Commits the fault named by `handler`, if it names one. Returns `Ok(true)` when the request
/// was handled (answered or deliberately not) and the worker should go to the next message.
pub(crate) fn inject(
    ep: &mut WorkerEndpoint,
    request_id: u64,
    handler: &str,
) -> Result<bool, IpcError> {
    match handler {
        "__roma_fault_garbage" => {
            let junk: Vec<u8> = (0..4096u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            ep.send_raw(&junk)?;
            Ok(true)
        }
        "__roma_fault_wrong_id" => {
            ep.send(&WorkerToHost::Executed {
                request_id: request_id.wrapping_add(1000),
                result: Ok(ExecOutput::default()),
            })?;
            Ok(true)
        }
        "__roma_fault_exit" => std::process::exit(3),
        "__roma_fault_abort" => std::process::abort(),
        "__roma_fault_hang" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        "__roma_fault_log_flood" => {
            for i in 0..10_000 {
                ep.send(&WorkerToHost::Log {
                    request_id,
                    level: LogLevel::Info,
                    message: format!("flood {i}"),
                })?;
            }
            answer(ep, request_id, "\"flooded\"")
        }
        "__roma_fault_stderr" => {
            use std::io::Write;
            let mut text = b"plain line\n\x1b[2J\x1b[31mforged\x1b[0m\n".to_vec();
            text.extend(std::iter::repeat_n(b'x', 10_000));
            text.push(b'\n');
            for i in 0..1000 {
                text.extend_from_slice(format!("spam {i}\n").as_bytes());
            }
            // One write, so the lines arrive within the same second.
            let _ = std::io::stderr().write_all(&text);
            answer(ep, request_id, "\"written\"")
        }
        "__roma_fault_forbidden_call" => {
            let _ = std::os::unix::net::UnixDatagram::pair();
            std::process::exit(4)
        }
        _ => Ok(false),
    }
}

/// Answers `request_id` with `resp`, as if its handler had returned it.
fn answer(ep: &mut WorkerEndpoint, request_id: u64, resp: &str) -> Result<bool, IpcError> {
    ep.send(&WorkerToHost::Executed {
        request_id,
        result: Ok(ExecOutput {
            resp: resp.into(),
            ..Default::default()
        }),
    })?;
    Ok(true)
}
