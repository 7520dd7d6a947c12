//! Setting up a channel for a child process: the host creates everything, keeps its end, and hands
//! the worker a set of inherited fds plus a one-line description of them ([`ChildSpec`]) to put on
//! the worker's command line. The worker rebuilds its end with
//! [`WorkerLink::from_inherited_fds`].
//!
//! Every fd is created `O_CLOEXEC`, so it reaches no process by accident (other workers spawned
//! concurrently included). Only the child it is meant for clears the flag, between `fork` and
//! `exec` ([`ChildHandoff::spawn`], or [`crate::clear_cloexec`] in a custom spawner). The host
//! closes its copies of the worker's fds right after the spawn, so that the worker's death shows up
//! as EOF on the host's socket.

use crate::IpcError;
use crate::config::{ChannelConfig, OversizePolicy, TransportKind};
use crate::control::{ControlReceiver, ControlSender, control_pair};
use crate::region::Region;
use crate::shm::ShmTransport;
use crate::socket::{SocketTransport, stream_pair};
use crate::sockio::clear_cloexec;
use crate::transport::AnyTransport;
use rustix::io::{FdFlags, fcntl_getfd, fcntl_setfd};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command};

const SPEC_PREFIX: &str = "roma-ipc1:";

/// The worker's view of its channel: fd numbers and the channel's shape. Printed with
/// [`ChildSpec::to_arg`] on the host and read back with [`ChildSpec::parse`] in the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildSpec {
    /// The transport.
    pub kind: TransportKind,
    /// The worker's end of the main socket.
    pub socket: RawFd,
    /// The worker's end of the control socket.
    pub control: RawFd,
    /// Shared memory only: the host-to-worker and worker-to-host memfds.
    pub regions: Option<(RawFd, RawFd)>,
    /// Payload capacity of each region.
    pub region_payload_bytes: usize,
    /// Absolute frame cap.
    pub max_frame_bytes: usize,
    /// What to do with payloads larger than a region.
    pub oversize: OversizePolicy,
}

impl ChildSpec {
    /// One command-line argument: `roma-ipc1:kind=shm,sock=5,ctl=6,h2w=7,w2h=8,region=...`.
    pub fn to_arg(&self) -> String {
        let kind = match self.kind {
            TransportKind::Socket => "socket",
            TransportKind::SharedMemory => "shm",
        };
        let oversize = match self.oversize {
            OversizePolicy::SlowPath => "slow",
            OversizePolicy::Reject => "reject",
        };
        let mut s = format!(
            "{SPEC_PREFIX}kind={kind},sock={},ctl={}",
            self.socket, self.control
        );
        if let Some((h2w, w2h)) = self.regions {
            s.push_str(&format!(",h2w={h2w},w2h={w2h}"));
        }
        s.push_str(&format!(
            ",region={},max={},oversize={oversize}",
            self.region_payload_bytes, self.max_frame_bytes
        ));
        s
    }

    /// Parses [`ChildSpec::to_arg`]'s output strictly: every key once, nothing unknown, distinct
    /// non-negative fds, sizes that [`ChannelConfig::validate`] accepts.
    pub fn parse(arg: &str) -> Result<ChildSpec, IpcError> {
        let body = arg.strip_prefix(SPEC_PREFIX).ok_or_else(|| {
            IpcError::setup(format!("channel spec must start with {SPEC_PREFIX}"))
        })?;
        let mut fields: [(&str, Option<&str>); 8] = [
            ("kind", None),
            ("sock", None),
            ("ctl", None),
            ("h2w", None),
            ("w2h", None),
            ("region", None),
            ("max", None),
            ("oversize", None),
        ];
        for pair in body.split(',') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| IpcError::setup(format!("bad channel spec field `{pair}`")))?;
            let slot = fields
                .iter_mut()
                .find(|(k, _)| *k == key)
                .ok_or_else(|| IpcError::setup(format!("unknown channel spec key `{key}`")))?;
            if slot.1.replace(value).is_some() {
                return Err(IpcError::setup(format!("channel spec repeats `{key}`")));
            }
        }
        let get = |key: &str| -> Result<&str, IpcError> {
            fields
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| *v)
                .ok_or_else(|| IpcError::setup(format!("channel spec lacks `{key}`")))
        };
        let fd = |key: &str| -> Result<RawFd, IpcError> {
            get(key)?
                .parse::<RawFd>()
                .ok()
                .filter(|fd| *fd >= 0)
                .ok_or_else(|| IpcError::setup(format!("bad fd for `{key}`")))
        };
        let size = |key: &str| -> Result<usize, IpcError> {
            get(key)?
                .parse::<usize>()
                .map_err(|_| IpcError::setup(format!("bad size for `{key}`")))
        };
        let kind = match get("kind")? {
            "socket" => TransportKind::Socket,
            "shm" => TransportKind::SharedMemory,
            other => return Err(IpcError::setup(format!("unknown transport `{other}`"))),
        };
        let oversize = match get("oversize")? {
            "slow" => OversizePolicy::SlowPath,
            "reject" => OversizePolicy::Reject,
            other => {
                return Err(IpcError::setup(format!(
                    "unknown oversize policy `{other}`"
                )));
            }
        };
        let regions = match kind {
            TransportKind::SharedMemory => Some((fd("h2w")?, fd("w2h")?)),
            TransportKind::Socket => {
                if get("h2w").is_ok() || get("w2h").is_ok() {
                    return Err(IpcError::setup("socket channel spec names memfds"));
                }
                None
            }
        };
        let spec = ChildSpec {
            kind,
            socket: fd("sock")?,
            control: fd("ctl")?,
            regions,
            region_payload_bytes: size("region")?,
            max_frame_bytes: size("max")?,
            oversize,
        };
        let mut fds = spec.fds();
        fds.sort_unstable();
        if fds.windows(2).any(|w| w[0] == w[1]) {
            return Err(IpcError::setup("channel spec names the same fd twice"));
        }
        spec.config().validate()?;
        Ok(spec)
    }

    /// The fd numbers the worker inherits.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.socket, self.control];
        if let Some((a, b)) = self.regions {
            v.extend([a, b]);
        }
        v
    }

    /// The channel configuration this spec implies (timeouts and spin at their defaults).
    pub fn config(&self) -> ChannelConfig {
        ChannelConfig {
            kind: self.kind,
            region_payload_bytes: self.region_payload_bytes,
            oversize: self.oversize,
            max_frame_bytes: self.max_frame_bytes,
            ..ChannelConfig::default()
        }
    }
}

/// The host's end of a worker channel.
#[derive(Debug)]
pub struct HostLink {
    /// The main channel.
    pub transport: AnyTransport,
    /// The control channel (cancellation).
    pub control: ControlSender,
}

/// The worker's fds, held by the host until the worker is spawned.
#[derive(Debug)]
pub struct ChildHandoff {
    spec: ChildSpec,
    fds: Vec<OwnedFd>,
}

impl ChildHandoff {
    /// The description of the fds, for the worker's command line.
    pub fn spec(&self) -> &ChildSpec {
        &self.spec
    }

    /// Shorthand for `spec().to_arg()`.
    pub fn arg(&self) -> String {
        self.spec.to_arg()
    }

    /// Spawns `cmd` with exactly these fds inherited (CLOEXEC cleared in the child only), then
    /// closes the host's copies. Add [`ChildHandoff::arg`] to `cmd`'s arguments first.
    pub fn spawn(self, cmd: &mut Command) -> std::io::Result<Child> {
        use std::os::unix::process::CommandExt;
        let raw: Vec<RawFd> = self.fds.iter().map(AsRawFd::as_raw_fd).collect();
        // SAFETY: the hook runs in the forked child before exec. It only calls `fcntl` (through
        // `clear_cloexec`), which is async-signal-safe, and does not allocate (the Vec was built
        // before fork). The fd numbers are open in the child: `self.fds` keeps them open in the
        // parent until `spawn` returns, and fork duplicates the table.
        unsafe {
            cmd.pre_exec(move || {
                for &fd in &raw {
                    clear_cloexec(BorrowedFd::borrow_raw(fd))?;
                }
                Ok(())
            });
        }
        let child = cmd.spawn();
        drop(self.fds);
        child
    }

    /// Gives up the fds to a custom spawner, which must clear CLOEXEC in the child
    /// ([`crate::clear_cloexec`]) and close these copies after the spawn.
    pub fn into_fds(self) -> (ChildSpec, Vec<OwnedFd>) {
        (self.spec, self.fds)
    }
}

/// Creates a worker channel: the host's end and the worker's fds.
pub fn spawn_pair(config: &ChannelConfig) -> Result<(HostLink, ChildHandoff), IpcError> {
    config.validate()?;
    let (host_sock, child_sock) = stream_pair()?;
    let (host_ctl, child_ctl) = control_pair()?;
    let mut spec = ChildSpec {
        kind: config.kind,
        socket: child_sock.as_raw_fd(),
        control: child_ctl.as_raw_fd(),
        regions: None,
        region_payload_bytes: config.region_payload_bytes,
        max_frame_bytes: config.max_frame_bytes,
        oversize: config.oversize,
    };
    let mut fds = vec![child_sock, child_ctl];
    let transport = match config.kind {
        TransportKind::Socket => AnyTransport::Socket(SocketTransport::from_fd(host_sock, config)),
        TransportKind::SharedMemory => {
            let h2w = Region::create("roma-ipc-h2w", config.region_payload_bytes)?;
            let w2h = Region::create("roma-ipc-w2h", config.region_payload_bytes)?;
            let h2w_fd = h2w.fd().try_clone_to_owned()?;
            let w2h_fd = w2h.fd().try_clone_to_owned()?;
            spec.regions = Some((h2w_fd.as_raw_fd(), w2h_fd.as_raw_fd()));
            fds.extend([h2w_fd, w2h_fd]);
            AnyTransport::SharedMemory(ShmTransport::new(host_sock, h2w, w2h, config))
        }
    };
    Ok((
        HostLink {
            transport,
            control: ControlSender::new(host_ctl),
        },
        ChildHandoff { spec, fds },
    ))
}

/// The worker's end of its channel.
#[derive(Debug)]
pub struct WorkerLink {
    /// The main channel.
    pub transport: AnyTransport,
    /// The control channel, to watch on its own thread.
    pub control: ControlReceiver,
}

impl WorkerLink {
    /// Rebuilds the worker's end from inherited fds, taking ownership of them and marking them
    /// CLOEXEC again so they reach none of the worker's own children.
    ///
    /// # Safety
    ///
    /// Every fd named in `spec` must be open in this process, inherited for this channel, and
    /// owned by nothing else (they are closed when the link drops). Call this once per spec.
    pub unsafe fn from_inherited_fds(spec: &ChildSpec) -> Result<WorkerLink, IpcError> {
        for fd in spec.fds() {
            // SAFETY: the caller promises the fd is open and ours; we only read and set its flags.
            let fd = unsafe { BorrowedFd::borrow_raw(fd) };
            let flags =
                fcntl_getfd(fd).map_err(|e| IpcError::setup(format!("inherited fd: {e}")))?;
            fcntl_setfd(fd, flags | FdFlags::CLOEXEC)?;
        }
        // SAFETY: (for each from_raw_fd below) the caller transfers ownership of these distinct
        // (ChildSpec::parse checks) open fds to us.
        let own = |fd: RawFd| unsafe { OwnedFd::from_raw_fd(fd) };
        let config = spec.config();
        let socket = own(spec.socket);
        let control = ControlReceiver::new(own(spec.control));
        let transport = match (spec.kind, spec.regions) {
            (TransportKind::Socket, _) => {
                AnyTransport::Socket(SocketTransport::from_fd(socket, &config))
            }
            (TransportKind::SharedMemory, Some((h2w, w2h))) => {
                let rx = Region::from_inherited(own(h2w), spec.region_payload_bytes)?;
                let tx = Region::from_inherited(own(w2h), spec.region_payload_bytes)?;
                AnyTransport::SharedMemory(ShmTransport::new(socket, tx, rx, &config))
            }
            (TransportKind::SharedMemory, None) => {
                return Err(IpcError::setup("shared-memory channel spec without memfds"));
            }
        };
        Ok(WorkerLink { transport, control })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: TransportKind) -> ChildSpec {
        ChildSpec {
            kind,
            socket: 5,
            control: 6,
            regions: (kind == TransportKind::SharedMemory).then_some((7, 8)),
            region_payload_bytes: 1 << 20,
            max_frame_bytes: 64 << 20,
            oversize: OversizePolicy::Reject,
        }
    }

    #[test]
    fn spec_round_trips() {
        for kind in [TransportKind::Socket, TransportKind::SharedMemory] {
            let s = spec(kind);
            assert_eq!(ChildSpec::parse(&s.to_arg()).unwrap(), s);
        }
    }

    #[test]
    fn bad_specs_are_rejected() {
        let good = spec(TransportKind::SharedMemory).to_arg();
        let bad = [
            String::new(),
            good.replace("roma-ipc1:", "roma-ipc9:"),
            good.replace("sock=5", "sock=-1"),
            good.replace("sock=5", "sock=6"),
            good.replace(",h2w=7", ""),
            format!("{good},kind=shm"),
            format!("{good},extra=1"),
            good.replace("max=67108864", "max=0"),
            good.replace("oversize=reject", "oversize=maybe"),
            spec(TransportKind::Socket).to_arg() + ",h2w=9",
        ];
        for b in bad {
            assert!(ChildSpec::parse(&b).is_err(), "{b}");
        }
    }

    #[test]
    fn host_keeps_cloexec_fds() {
        let (_host, child) = spawn_pair(&ChannelConfig::default()).unwrap();
        assert_eq!(child.spec().fds().len(), 4);
        for fd in &child.fds {
            assert!(fcntl_getfd(fd).unwrap().contains(FdFlags::CLOEXEC));
        }
    }
}
