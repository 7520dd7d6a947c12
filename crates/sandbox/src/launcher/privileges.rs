//! Dropping privilege inside the jail before `exec`: no_new_privs, an empty capability bounding
//! set, no ambient capabilities, locked securebits, and empty effective/permitted/inheritable
//! sets. After this even uid 0 inside the user namespace gets no capabilities from `exec`.
//!
//! Also what a launcher started as host root does so that its jail is not host root: tell
//! whether it is, become an unprivileged host uid before a backend builds its own user
//! namespace (birdcage), and check that the uid can still reach the worker binary.

use crate::SandboxError;
use std::io;

// securebits (linux/securebits.h): NOROOT, NO_SETUID_FIXUP, NO_CAP_AMBIENT_RAISE and KEEP_CAPS,
// each with its lock bit, except KEEP_CAPS itself.
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

fn prctl(option: libc::c_int, arg: libc::c_ulong) -> Result<(), io::Error> {
    // SAFETY: the prctl options used here (NO_NEW_PRIVS, CAPBSET_DROP, CAP_AMBIENT,
    // SET_SECUREBITS) take integer arguments only and change this process's credentials.
    let rc = unsafe { libc::prctl(option, arg, 0 as libc::c_ulong, 0 as libc::c_ulong, 0) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Drops every privilege this process holds. Must run after all mounts.
pub(crate) fn drop_all() -> Result<(), SandboxError> {
    rustix::thread::set_no_new_privs(true).map_err(SandboxError::at("PR_SET_NO_NEW_PRIVS"))?;
    for cap in 0..64 {
        match prctl(libc::PR_CAPBSET_DROP, cap) {
            Ok(()) => {}
            // EINVAL: past the kernel's last capability.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(e) => return Err(SandboxError::os(format!("PR_CAPBSET_DROP({cap})"), e)),
        }
    }
    prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )
    .map_err(SandboxError::at("PR_CAP_AMBIENT_CLEAR_ALL"))?;
    prctl(
        libc::PR_SET_SECUREBITS,
        SECBIT_NOROOT
            | SECBIT_NOROOT_LOCKED
            | SECBIT_NO_SETUID_FIXUP
            | SECBIT_NO_SETUID_FIXUP_LOCKED
            | SECBIT_KEEP_CAPS_LOCKED
            | SECBIT_NO_CAP_AMBIENT_RAISE
            | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
    )
    .map_err(SandboxError::at("PR_SET_SECUREBITS"))?;
    let none = rustix::thread::CapabilitySet::empty();
    rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets {
            effective: none,
            permitted: none,
            inheritable: none,
        },
    )
    .map_err(SandboxError::at("capset"))?;
    Ok(())
}

/// Whether uid 0 of this process's user namespace is uid 0 of its parent too (always so in the
/// initial namespace), so that running the jail as this uid would run it as root. A rootless
/// container's uid 0 is an ordinary uid outside, and keeps the plain mapping. Unreadable maps
/// count as root.
pub(crate) fn zero_is_parent_root() -> bool {
    let Ok(map) = std::fs::read_to_string("/proc/self/uid_map") else {
        return true;
    };
    map.lines().any(|line| {
        let mut f = line.split_whitespace();
        f.next() == Some("0") && f.next() == Some("0")
    })
}

/// After the switch to host uid `target`: the worker binary must be executable, and each read-only
/// path readable, by host uid `target`, which can no longer read root's private folders. Says
/// so plainly instead of failing later inside the jail with a bare `EACCES`.
pub(crate) fn check_access_as(
    target: u32,
    exe: &std::path::Path,
    paths: &[std::path::PathBuf],
) -> Result<(), SandboxError> {
    use rustix::fs::{Access, access};
    let checks = std::iter::once((exe, Access::READ_OK | Access::EXEC_OK))
        .chain(paths.iter().map(|p| (p.as_path(), Access::READ_OK)));
    for (path, mode) in checks {
        if let Err(e) = access(path, mode) {
            return Err(SandboxError::JailSetup(format!(
                "the jail runs as host uid {target} (the host is root), which cannot {} {}: {e}; \
                 put it where uid {target} can (every folder above it searchable by others), or \
                 choose a worker uid that can",
                if mode.contains(Access::EXEC_OK) {
                    "execute"
                } else {
                    "read"
                },
                path.display()
            )));
        }
    }
    Ok(())
}

/// For a launcher started as host root whose backend builds its own user namespace (birdcage):
/// becomes host uid and gid `target` with no supplementary groups, before the namespace is made,
/// so that every process of the jail is `target`. The process stays dumpable, as any process
/// that changed its own uid must be to write its own `/proc/self/uid_map` (the kernel makes a
/// process that dropped root non-dumpable, which gives its `/proc` files to root).
#[cfg(feature = "birdcage")]
pub(crate) fn become_unprivileged(target: u32) -> Result<(), SandboxError> {
    // SAFETY: setgroups with a count of 0 reads no memory; setresgid/setresuid and prctl take
    // integers. They change only this process's credentials; it is single-threaded, so no
    // other thread keeps the old ones.
    unsafe {
        if libc::setgroups(0, std::ptr::null()) != 0 {
            return Err(SandboxError::os(
                "drop supplementary groups",
                io::Error::last_os_error(),
            ));
        }
        if libc::setresgid(target, target, target) != 0 {
            return Err(SandboxError::os(
                format!("setresgid({target})"),
                io::Error::last_os_error(),
            ));
        }
        if libc::setresuid(target, target, target) != 0 {
            return Err(SandboxError::os(
                format!("setresuid({target})"),
                io::Error::last_os_error(),
            ));
        }
        if libc::prctl(libc::PR_SET_DUMPABLE, 1 as libc::c_ulong, 0, 0, 0) != 0 {
            return Err(SandboxError::os(
                "PR_SET_DUMPABLE",
                io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}
