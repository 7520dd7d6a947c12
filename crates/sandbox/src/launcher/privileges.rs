//! Dropping privilege inside the jail before `exec`: no_new_privs, an empty capability bounding
//! set, no ambient capabilities, locked securebits, and empty effective/permitted/inheritable
//! sets. After this even uid 0 inside the user namespace gets no capabilities from `exec`.

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
