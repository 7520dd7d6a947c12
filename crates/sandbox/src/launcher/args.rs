//! The command-line protocol between the host, the launcher and the jailed worker.
//!
//! The host starts `worker --jail <kind> [--jail-fd N]... [--jail-ro PATH]... [--jail-as-mb N]
//! [--jail-data-mb N] [--jail-status-fd N] [--jail-violation-fd N] [--jail-host-fd N]
//! [--jail-uid N] -- <worker args>`. The status descriptor is the write end of a pipe on which the
//! launcher reports a setup failure (see `launcher::status`); it is closed by the successful
//! `exec` into the jail. The violation descriptor is the write end of the pipe on which the
//! worker's `SIGSYS` handler names a refused call (see `violation`); it stays open in the worker.
//! The host descriptor is the read end of the host's lifeline pipe, whose write end only the host
//! holds: it reads end-of-file once the host is gone, however it died (see `launcher::relay`). The
//! uid is the unprivileged host uid the worker runs as when the host is root. The launcher
//! re-executes the worker inside the jail as `worker --jail-entered <kind> [--jail-fd N]...
//! [--jail-as-mb N] [--jail-data-mb N] [--jail-violation-fd N] -- <worker args>`. Everything after
//! `--` belongs to the worker and is passed through untouched.

use crate::{JailKind, SandboxError};
use std::ffi::{OsStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

const JAIL: &str = "--jail";
const ENTERED: &str = "--jail-entered";
const FD: &str = "--jail-fd";
const RO: &str = "--jail-ro";
const AS_MB: &str = "--jail-as-mb";
const DATA_MB: &str = "--jail-data-mb";
const STATUS: &str = "--jail-status-fd";
const VIOLATION: &str = "--jail-violation-fd";
const HOST: &str = "--jail-host-fd";
const UID: &str = "--jail-uid";
const END: &str = "--";

/// Bounds on what the parser accepts, so a corrupt command line cannot make it allocate much.
const MAX_FDS: usize = 64;
const MAX_PATHS: usize = 256;

/// Which side of the jail a command line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JailStage {
    /// `--jail`: build the jail, then re-execute inside it.
    Launch,
    /// `--jail-entered`: already inside; finish (rlimits) and run.
    Entered,
}

/// A parsed jail command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailArgs {
    /// Launch or entered.
    pub stage: JailStage,
    /// The backend.
    pub kind: JailKind,
    /// Channel descriptors that stay open.
    pub channel_fds: Vec<RawFd>,
    /// Extra read-only paths (launch stage only).
    pub read_only_paths: Vec<PathBuf>,
    /// `RLIMIT_AS` in MiB.
    pub address_space_limit_mb: Option<u64>,
    /// `RLIMIT_DATA` in MiB.
    pub data_limit_mb: Option<u64>,
    /// Where the launcher reports a setup failure to the host (launch stage only).
    pub status_fd: Option<RawFd>,
    /// Where the worker's `SIGSYS` handler reports a refused system call (both stages).
    pub violation_fd: Option<RawFd>,
    /// The read end of the host's lifeline pipe (launch stage only): end-of-file there means
    /// the host is gone and the launcher ends the jail.
    pub host_fd: Option<RawFd>,
    /// The host uid (and gid) the jail runs as when the launcher starts as root (launch stage
    /// only); `None`: [`crate::DEFAULT_WORKER_UID`]. Ignored for a launcher that is not root.
    pub worker_uid: Option<u32>,
    /// The worker's own arguments.
    pub rest: Vec<OsString>,
}

impl JailArgs {
    /// The descriptors the launcher keeps open: the channel, the status pipe, the violation
    /// pipe and the host's lifeline.
    pub(crate) fn launcher_fds(&self) -> Vec<RawFd> {
        let mut keep = self.channel_fds.clone();
        keep.extend(self.status_fd);
        keep.extend(self.violation_fd);
        keep.extend(self.host_fd);
        keep
    }

    /// Parses a command line without its program name. `Ok(None)` when it does not start with
    /// `--jail` or `--jail-entered` (a worker started without a jail).
    pub fn parse(args: Vec<OsString>) -> Result<Option<JailArgs>, SandboxError> {
        let mut it = args.into_iter();
        let stage = match it.next() {
            Some(a) if a == JAIL => JailStage::Launch,
            Some(a) if a == ENTERED => JailStage::Entered,
            _ => return Ok(None),
        };
        let kind = JailKind::from_name(utf8(&value(&mut it, "jail kind")?)?)?;
        let mut out = JailArgs {
            stage,
            kind,
            channel_fds: Vec::new(),
            read_only_paths: Vec::new(),
            address_space_limit_mb: None,
            data_limit_mb: None,
            status_fd: None,
            violation_fd: None,
            host_fd: None,
            worker_uid: None,
            rest: Vec::new(),
        };
        loop {
            let Some(flag) = it.next() else {
                return Err(bad(format!("missing `{END}` after the jail options")));
            };
            match flag.to_str() {
                Some(END) => break,
                Some(FD) => {
                    let v = value(&mut it, FD)?;
                    let fd: RawFd = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{FD} {v:?} is not a number")))?;
                    if fd < 3 {
                        return Err(bad(format!("{FD} {fd} is stdio")));
                    }
                    if out.channel_fds.len() >= MAX_FDS {
                        return Err(bad(format!("more than {MAX_FDS} channel fds")));
                    }
                    out.channel_fds.push(fd);
                }
                Some(STATUS) => {
                    let v = value(&mut it, STATUS)?;
                    let fd: RawFd = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{STATUS} {v:?} is not a number")))?;
                    if fd < 3 || out.status_fd.is_some() {
                        return Err(bad(format!("{STATUS} {fd} is stdio or repeated")));
                    }
                    out.status_fd = Some(fd);
                }
                Some(VIOLATION) => {
                    let v = value(&mut it, VIOLATION)?;
                    let fd: RawFd = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{VIOLATION} {v:?} is not a number")))?;
                    if fd < 3 || out.violation_fd.is_some() {
                        return Err(bad(format!("{VIOLATION} {fd} is stdio or repeated")));
                    }
                    out.violation_fd = Some(fd);
                }
                Some(HOST) => {
                    let v = value(&mut it, HOST)?;
                    let fd: RawFd = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{HOST} {v:?} is not a number")))?;
                    if fd < 3 || out.host_fd.is_some() {
                        return Err(bad(format!("{HOST} {fd} is stdio or repeated")));
                    }
                    out.host_fd = Some(fd);
                }
                Some(UID) => {
                    let v = value(&mut it, UID)?;
                    let uid: u32 = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{UID} {v:?} is not a number")))?;
                    // 0 is host root, and u32::MAX is the kernel's "no uid".
                    if uid == 0 || uid == u32::MAX || out.worker_uid.is_some() {
                        return Err(bad(format!("{UID} {uid} is root, invalid or repeated")));
                    }
                    out.worker_uid = Some(uid);
                }
                Some(RO) => {
                    let p = PathBuf::from(value(&mut it, RO)?);
                    if !p.is_absolute() {
                        return Err(bad(format!("{RO} {} is not absolute", p.display())));
                    }
                    if out.read_only_paths.len() >= MAX_PATHS {
                        return Err(bad(format!("more than {MAX_PATHS} read-only paths")));
                    }
                    out.read_only_paths.push(p);
                }
                Some(AS_MB) => {
                    let v = value(&mut it, AS_MB)?;
                    let mb: u64 = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{AS_MB} {v:?} is not a number")))?;
                    if mb == 0 || mb > (u64::MAX >> 20) {
                        return Err(bad(format!("{AS_MB} {mb} is out of range")));
                    }
                    out.address_space_limit_mb = Some(mb);
                }
                Some(DATA_MB) => {
                    let v = value(&mut it, DATA_MB)?;
                    let mb: u64 = utf8(&v)?
                        .parse()
                        .map_err(|_| bad(format!("{DATA_MB} {v:?} is not a number")))?;
                    if mb == 0 || mb > (u64::MAX >> 20) {
                        return Err(bad(format!("{DATA_MB} {mb} is out of range")));
                    }
                    out.data_limit_mb = Some(mb);
                }
                _ => return Err(bad(format!("unknown jail option {flag:?}"))),
            }
        }
        out.rest = it.collect();
        Ok(Some(out))
    }

    /// The command line (without the program name) that [`JailArgs::parse`] reads back.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut v: Vec<OsString> = Vec::new();
        v.push(match self.stage {
            JailStage::Launch => JAIL.into(),
            JailStage::Entered => ENTERED.into(),
        });
        v.push(self.kind.as_str().into());
        for fd in &self.channel_fds {
            v.push(FD.into());
            v.push(fd.to_string().into());
        }
        for p in &self.read_only_paths {
            v.push(RO.into());
            v.push(p.clone().into_os_string());
        }
        if let Some(mb) = self.address_space_limit_mb {
            v.push(AS_MB.into());
            v.push(mb.to_string().into());
        }
        if let Some(mb) = self.data_limit_mb {
            v.push(DATA_MB.into());
            v.push(mb.to_string().into());
        }
        if let Some(fd) = self.status_fd {
            v.push(STATUS.into());
            v.push(fd.to_string().into());
        }
        if let Some(fd) = self.violation_fd {
            v.push(VIOLATION.into());
            v.push(fd.to_string().into());
        }
        if let Some(fd) = self.host_fd {
            v.push(HOST.into());
            v.push(fd.to_string().into());
        }
        if let Some(uid) = self.worker_uid {
            v.push(UID.into());
            v.push(uid.to_string().into());
        }
        v.push(END.into());
        v.extend(self.rest.iter().cloned());
        v
    }

    /// The command line the launcher hands to the worker it starts inside the jail.
    pub fn entered(&self) -> JailArgs {
        JailArgs {
            stage: JailStage::Entered,
            read_only_paths: Vec::new(),
            status_fd: None,
            host_fd: None,
            worker_uid: None,
            ..self.clone()
        }
    }
}

fn bad(msg: String) -> SandboxError {
    SandboxError::BadArgs(msg)
}

fn value(it: &mut impl Iterator<Item = OsString>, what: &str) -> Result<OsString, SandboxError> {
    it.next()
        .ok_or_else(|| bad(format!("{what} needs a value")))
}

fn utf8(s: &OsStr) -> Result<&str, SandboxError> {
    s.to_str()
        .ok_or_else(|| bad(format!("{:?} is not UTF-8", s.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn plain_command_lines_are_not_jail_args() {
        assert_eq!(JailArgs::parse(os(&["serve", "--jail"])).unwrap(), None);
        assert_eq!(JailArgs::parse(Vec::new()).unwrap(), None);
    }

    #[test]
    fn parses_a_launch_line() {
        let a = JailArgs::parse(os(&[
            "--jail",
            "namespaces",
            "--jail-fd",
            "3",
            "--jail-ro",
            "/opt/lib",
            "--jail-as-mb",
            "16384",
            "--jail-status-fd",
            "9",
            "--jail-violation-fd",
            "11",
            "--jail-host-fd",
            "10",
            "--jail-uid",
            "65534",
            "--",
            "serve",
            "--jail-fd",
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(a.stage, JailStage::Launch);
        assert_eq!(a.kind, JailKind::Namespaces);
        assert_eq!(a.channel_fds, vec![3]);
        assert_eq!(a.read_only_paths, vec![PathBuf::from("/opt/lib")]);
        assert_eq!(a.address_space_limit_mb, Some(16384));
        assert_eq!(a.status_fd, Some(9));
        assert_eq!(a.violation_fd, Some(11));
        assert_eq!(a.host_fd, Some(10));
        assert_eq!(a.worker_uid, Some(65534));
        assert_eq!(a.rest, os(&["serve", "--jail-fd"]));
        let e = a.entered();
        assert_eq!(e.stage, JailStage::Entered);
        assert!(e.read_only_paths.is_empty());
        assert_eq!(e.status_fd, None);
        assert_eq!(
            e.violation_fd,
            Some(11),
            "the worker keeps its violation pipe"
        );
        assert_eq!(e.host_fd, None);
        assert_eq!(e.worker_uid, None);
    }

    #[test]
    fn rejects_malformed_lines() {
        for bad in [
            &["--jail"][..],
            &["--jail", "chroot", "--"],
            &["--jail", "none"],
            &["--jail", "none", "--jail-fd", "1", "--"],
            &["--jail", "none", "--jail-fd", "x", "--"],
            &["--jail", "none", "--jail-fd"],
            &["--jail", "none", "--jail-ro", "rel", "--"],
            &["--jail", "none", "--jail-as-mb", "0", "--"],
            &["--jail", "none", "--jail-data-mb", "0", "--"],
            &["--jail", "none", "--bogus", "--"],
            &["--jail", "none", "--jail-status-fd", "2", "--"],
            &["--jail", "none", "--jail-violation-fd", "1", "--"],
            &[
                "--jail",
                "none",
                "--jail-violation-fd",
                "5",
                "--jail-violation-fd",
                "6",
                "--",
            ],
            &[
                "--jail",
                "none",
                "--jail-status-fd",
                "5",
                "--jail-status-fd",
                "6",
                "--",
            ],
            &["--jail", "none", "--jail-host-fd", "1", "--"],
            &[
                "--jail",
                "none",
                "--jail-host-fd",
                "5",
                "--jail-host-fd",
                "6",
                "--",
            ],
            &["--jail", "none", "--jail-uid", "0", "--"],
            &["--jail", "none", "--jail-uid", "-3", "--"],
            &["--jail", "none", "--jail-uid", "4294967295", "--"],
        ] {
            assert!(JailArgs::parse(os(bad)).is_err(), "{bad:?}");
        }
    }

    fn arb_args() -> impl Strategy<Value = JailArgs> {
        (
            prop_oneof![Just(JailStage::Launch), Just(JailStage::Entered)],
            prop::sample::select(JailKind::ALL.to_vec()),
            prop::collection::vec(3..100_000i32, 0..5),
            prop::collection::vec("/[a-z0-9/._ -]{0,20}", 0..4),
            prop::option::of(1..1_000_000u64),
            prop::option::of(1..1_000_000u64),
            prop::option::of(3..1000i32),
            prop::option::of(3..1000i32),
            prop::option::of(3..1000i32),
            prop::option::of(1..u32::MAX),
            prop::collection::vec("\\PC{0,12}", 0..6),
        )
            .prop_map(
                |(stage, kind, fds, paths, mb, data, status, violation, host, uid, rest)| {
                    JailArgs {
                        stage,
                        kind,
                        channel_fds: fds,
                        read_only_paths: paths.into_iter().map(PathBuf::from).collect(),
                        address_space_limit_mb: mb,
                        data_limit_mb: data,
                        status_fd: status,
                        violation_fd: violation,
                        host_fd: host,
                        worker_uid: uid,
                        rest: rest.into_iter().map(OsString::from).collect(),
                    }
                },
            )
    }

    proptest! {
        #[test]
        fn round_trips(a in arb_args()) {
            prop_assert_eq!(JailArgs::parse(a.to_args()).unwrap(), Some(a));
        }

        #[test]
        fn never_panics(v in prop::collection::vec(
            prop_oneof![
                Just("--jail".to_string()), Just("--jail-fd".to_string()),
                Just("--jail-ro".to_string()), Just("--".to_string()),
                Just("namespaces".to_string()), "\\PC{0,8}"
            ],
            0..10,
        )) {
            let _ = JailArgs::parse(v.into_iter().map(OsString::from).collect());
        }
    }
}
