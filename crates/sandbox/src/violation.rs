//! Naming the system call that broke the seccomp filter: the worker's `SIGSYS` handler and the
//! report it sends the host, one fixed-size record on a pipe of its own.
//!
//! The allow-list answers a call it does not allow with `SECCOMP_RET_TRAP`: the kernel skips the
//! call and sends the calling thread `SIGSYS` with the call's number (`si_syscall`). The handler,
//! installed by [`crate::install_worker_filter`] just before the filter, writes a [`RECORD_LEN`]
//! record to the violation pipe (`--jail-violation-fd`, inherited from the host) and then makes
//! a call that is never allowed: `SIGSYS` is blocked while its handler runs, so the kernel
//! restores the default action and the process dies of `SIGSYS`, as it did when the filter
//! killed it outright (pid 1 of a pid namespace included: a forced signal clears its
//! protection). JavaScript cannot catch or block a signal, and the filter refuses
//! `rt_sigaction` on `SIGSYS`, so no code in the worker can replace the handler after the filter
//! is in. A call made while `SIGSYS` is blocked (glibc blocks every signal inside `posix_spawn`)
//! cannot reach the handler: the kernel resets the action and kills the process unnamed.
//!
//! What the host may believe: that the worker died of `SIGSYS` comes from the kernel (the wait
//! status). The number comes from the worker. A compromised worker can write any record at any
//! time, or none, so the host reads the pipe only after a `SIGSYS` death, reads at most
//! [`MAX_READ`] bytes without blocking, and accepts only a well-formed first record whose
//! number is in `0..MAX_SYSCALL_NR`; the error then says the worker reported it.

use std::ffi::{c_int, c_uint, c_void};
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

/// The record's first bytes, so that stray bytes are not read as a number.
const MAGIC: [u8; 4] = *b"RSYS";
/// A record: [`MAGIC`], the audit architecture (u32 LE), the system call number (i32 LE).
pub(crate) const RECORD_LEN: usize = 12;
/// The most the host reads from the pipe.
pub(crate) const MAX_READ: usize = 64;
/// Numbers at or above this are refused as implausible (x86-64 has fewer than 500 calls).
pub(crate) const MAX_SYSCALL_NR: i64 = 1024;
/// `AUDIT_ARCH_X86_64`: the only architecture the filter lets through.
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
/// `si_code` of a signal sent by a seccomp `SECCOMP_RET_TRAP`.
const SYS_SECCOMP: c_int = 1;
/// A number no x86-64 system call has (335..=423 are left unassigned for good: new calls share
/// numbers from 424 across architectures), so every filter refuses it; without a filter the
/// kernel answers `ENOSYS`.
pub(crate) const NEVER_ALLOWED_SYSCALL: i64 = 400;

/// The record for a trapped call.
pub(crate) fn encode(arch: u32, syscall: i32) -> [u8; RECORD_LEN] {
    let mut r = [0u8; RECORD_LEN];
    r[..4].copy_from_slice(&MAGIC);
    r[4..8].copy_from_slice(&arch.to_le_bytes());
    r[8..].copy_from_slice(&syscall.to_le_bytes());
    r
}

/// The system call number in the first record of `bytes`, if it is well-formed, for x86-64,
/// and below [`MAX_SYSCALL_NR`].
pub(crate) fn decode(bytes: &[u8]) -> Option<i64> {
    let r = bytes.get(..RECORD_LEN)?;
    if r[..4] != MAGIC {
        return None;
    }
    let arch = u32::from_le_bytes(r[4..8].try_into().ok()?);
    let nr = i64::from(i32::from_le_bytes(r[8..12].try_into().ok()?));
    (arch == AUDIT_ARCH_X86_64 && (0..MAX_SYSCALL_NR).contains(&nr)).then_some(nr)
}

/// Host side: the number a dead worker reported, read from the pipe's read end without waiting.
pub(crate) fn read_report(fd: &OwnedFd) -> Option<i64> {
    let mut buf = [0u8; MAX_READ];
    let mut len = 0;
    while len < RECORD_LEN {
        match rustix::io::read(fd.as_fd(), &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            // EAGAIN: nothing (more) was written; anything else: nothing to learn.
            Err(_) => break,
        }
    }
    decode(&buf[..len])
}

/// The fields of a `SIGSYS` siginfo that seccomp fills in (the kernel's `_sigsys` layout on
/// x86-64: after the three ints and padding come the call address, the number, the arch).
#[repr(C)]
struct SigsysInfo {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _pad: c_int,
    call_addr: *mut c_void,
    syscall: c_int,
    arch: c_uint,
}

const _: () = assert!(std::mem::size_of::<SigsysInfo>() <= std::mem::size_of::<libc::siginfo_t>());

/// The violation pipe's write end in the worker, or -1.
static REPORT_FD: AtomicI32 = AtomicI32::new(-1);

/// The `SIGSYS` handler. Async-signal-safe: it reads the siginfo, writes one record from the
/// stack and makes raw system calls; no allocation, no locks.
extern "C" fn on_sigsys(_signal: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    if info.is_null() {
        return;
    }
    // SAFETY: the kernel passes a valid siginfo (SA_SIGINFO), at least as large as SigsysInfo
    // (checked at compile time), whose layout SigsysInfo mirrors.
    let info = unsafe { &*(info as *const SigsysInfo) };
    if info.code != SYS_SECCOMP {
        // Sent by a process, not by the filter: nothing was refused.
        return;
    }
    let record = encode(info.arch, info.syscall);
    let fd = REPORT_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        // SAFETY: write(2) reads RECORD_LEN bytes from a stack array that outlives the call; the
        // descriptor is non-blocking (the host made the pipe O_NONBLOCK), so a full pipe cannot
        // hang the handler. A failed write only loses the name.
        unsafe { libc::write(fd, record.as_ptr().cast(), record.len()) };
    }
    // SAFETY: a raw system call with no arguments. The filter traps it while SIGSYS is blocked
    // (it is, inside this handler), so the kernel kills the process with SIGSYS.
    unsafe { libc::syscall(NEVER_ALLOWED_SYSCALL) };
    // SAFETY: _exit is async-signal-safe; only reached if no filter trapped the call above.
    unsafe { libc::_exit(128 + libc::SIGSYS) };
}

/// Installs the `SIGSYS` handler that reports a trapped call on `fd` (when given). Call it
/// before the filter, which then refuses to change the `SIGSYS` action.
pub(crate) fn install_handler(fd: Option<RawFd>) -> Result<(), crate::SandboxError> {
    REPORT_FD.store(fd.unwrap_or(-1), Ordering::Relaxed);
    // SAFETY: a zeroed sigaction is a valid starting value; every field used is set below, the
    // handler has the SA_SIGINFO signature, and sigaction only reads `action`.
    let rc = unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // Nothing interrupts the report.
        libc::sigfillset(&mut action.sa_mask);
        libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut())
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(crate::SandboxError::os(
            "install the SIGSYS handler",
            std::io::Error::last_os_error(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn records_round_trip_and_bad_ones_are_refused() {
        assert_eq!(decode(&encode(AUDIT_ARCH_X86_64, 329)), Some(329));
        let mut two = encode(AUDIT_ARCH_X86_64, 57).to_vec();
        two.extend_from_slice(&encode(AUDIT_ARCH_X86_64, 1));
        assert_eq!(decode(&two), Some(57), "the first record counts");
        assert_eq!(decode(&encode(AUDIT_ARCH_X86_64, 0)), Some(0));
        for bad in [
            encode(0x4000_0003, 329).to_vec(), // i386
            encode(AUDIT_ARCH_X86_64, -1).to_vec(),
            encode(AUDIT_ARCH_X86_64, 1024).to_vec(),
            encode(AUDIT_ARCH_X86_64, 329)[..RECORD_LEN - 1].to_vec(),
            b"XSYS\x3e\x00\x00\xc0\x01\x00\x00\x00".to_vec(),
            Vec::new(),
        ] {
            assert_eq!(decode(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_host_reads_a_bounded_report_without_waiting() {
        use rustix::pipe::{PipeFlags, pipe_with};
        let (r, w) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK).unwrap();
        assert_eq!(read_report(&r), None, "an empty pipe must not block");
        let mut flood = encode(AUDIT_ARCH_X86_64, 62).to_vec();
        flood.extend(std::iter::repeat_n(0xffu8, 10_000));
        rustix::io::write(&w, &flood).unwrap();
        assert_eq!(read_report(&r), Some(62));
        drop(w);
        assert_eq!(
            read_report(&r),
            None,
            "garbage after the record is no record"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            if let Some(nr) = decode(&bytes) {
                prop_assert!((0..MAX_SYSCALL_NR).contains(&nr));
            }
        }
    }
}
