//! A cgroup per worker: kernel limits on the memory, tasks and CPU time of everything in one
//! jail, which hold whatever native code inside it does (rlimits are per process, and V8's limits
//! bind only JavaScript).
//!
//! The host makes the worker's cgroup (one directory under cgroup v2, one per controller under
//! cgroup v1), writes the limits, and opens its `cgroup.procs` before it forks; the forked child
//! writes `0` (itself) there before `exec`, so the launcher, and every process of the jail after
//! it, is in the cgroup before any code of the worker binary runs. The cgroup is removed (what is
//! left in it killed first) when the worker is reaped or dropped.
//!
//! The hierarchy is chosen when a cgroup is made: cgroup v2 where the host's cgroup (or a
//! configured parent, such as a subtree systemd delegated) offers every needed controller, else
//! the cgroup v1 hierarchy of each controller, else [`CgroupUnavailable`] with both reasons.

mod hierarchy;

use crate::SandboxError;
use crate::probe::ProbeOutcome;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The prefix of every worker cgroup's name: `roma-<host pid>-<n>`.
const NAME_PREFIX: &str = "roma-";
/// How long removing a cgroup waits for its killed processes to leave it.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(2);

/// A cgroup controller roma sets a limit with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Controller {
    /// `memory.max` (v2) / `memory.limit_in_bytes` (v1).
    Memory,
    /// `pids.max`: processes and threads.
    Pids,
    /// `cpu.max` (v2) / `cpu.cfs_quota_us` and `cpu.cfs_period_us` (v1).
    Cpu,
}

impl Controller {
    /// The controller's name, the same in both versions.
    pub fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Cpu => "cpu",
        }
    }
}

/// Which cgroup interface the worker cgroups use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller (`/sys/fs/cgroup/<controller>`).
    V1,
    /// The unified hierarchy.
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "cgroup v1",
            CgroupVersion::V2 => "cgroup v2",
        })
    }
}

/// A CPU bandwidth limit: `quota_us` of CPU time (all threads together) per `period_us`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuMax {
    /// CPU time allowed per period, in microseconds (at least 1000).
    pub quota_us: u64,
    /// The period, in microseconds (1000 to 1 000 000).
    pub period_us: u64,
}

/// The limits of one worker's cgroup; a worker with none set gets no cgroup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupLimits {
    /// Memory (resident and page cache charged to the jail), in bytes (at least 1 MiB). A jail
    /// that reaches it and cannot reclaim is killed by the kernel's OOM killer.
    pub memory_max_bytes: Option<u64>,
    /// Processes and threads in the jail (at least 1).
    pub pids_max: Option<u64>,
    /// CPU bandwidth of the jail.
    pub cpu_max: Option<CpuMax>,
    /// cgroup v2 only: the directory to make worker cgroups in instead of the host's own cgroup
    /// (a subtree delegated to the host, with no processes of its own).
    pub parent: Option<PathBuf>,
}

impl CgroupLimits {
    /// Whether no limit is set.
    pub fn is_empty(&self) -> bool {
        self.memory_max_bytes.is_none() && self.pids_max.is_none() && self.cpu_max.is_none()
    }

    /// The controllers the set limits need.
    pub fn controllers(&self) -> Vec<Controller> {
        let mut c = Vec::new();
        if self.memory_max_bytes.is_some() {
            c.push(Controller::Memory);
        }
        if self.pids_max.is_some() {
            c.push(Controller::Pids);
        }
        if self.cpu_max.is_some() {
            c.push(Controller::Cpu);
        }
        c
    }

    /// Checks the values; the message names the limit.
    pub fn validate(&self) -> Result<(), SandboxError> {
        let bad = |m: &str| Err(SandboxError::InvalidSpec(m.into()));
        if self.memory_max_bytes.is_some_and(|b| b < 1 << 20) {
            return bad("cgroup memory_max must be at least 1 MiB");
        }
        if self.pids_max == Some(0) {
            return bad("cgroup pids_max must be at least 1");
        }
        if let Some(c) = self.cpu_max {
            if !(1000..=1_000_000).contains(&c.period_us) {
                return bad("cgroup cpu_max period must be 1000 to 1000000 microseconds");
            }
            if c.quota_us < 1000 {
                return bad("cgroup cpu_max quota must be at least 1000 microseconds");
            }
        }
        if self.parent.as_ref().is_some_and(|p| !p.is_absolute()) {
            return bad("cgroup parent must be an absolute path");
        }
        Ok(())
    }
}

/// No cgroup can be made for the limits asked for; the text says why (for each version).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no usable cgroup: {0}")]
pub struct CgroupUnavailable(pub String);

/// Which hierarchy worker cgroups with `limits` would use, proven by making one and removing it
/// (it also removes empty cgroups that hosts no longer alive left behind). For a service's start
/// and `roma check`: `Ok` names the version and the directories.
pub fn probe_cgroups(limits: &CgroupLimits) -> Result<String, CgroupUnavailable> {
    let needs = limits.controllers();
    if needs.is_empty() {
        return Err(CgroupUnavailable("no cgroup limit is set".into()));
    }
    let (version, parents) = hierarchy::choose(&needs, limits.parent.as_deref())?;
    for (_, dir) in &parents {
        remove_stale(dir);
    }
    let cg = WorkerCgroup::create(limits).map_err(|e| CgroupUnavailable(e.to_string()))?;
    let dirs: Vec<String> = parents
        .iter()
        .map(|(c, d)| format!("{} at {}", c.name(), d.display()))
        .collect();
    drop(cg);
    Ok(format!("{version} ({})", dirs.join(", ")))
}

/// The names of the worker cgroups of this host process that exist now (one per worker, in
/// any of its directories), under the hierarchy `limits` would use: what a test checks is
/// empty once every worker has ended.
pub fn live_worker_cgroups(limits: &CgroupLimits) -> Vec<String> {
    let Ok((_, parents)) = hierarchy::choose(&limits.controllers(), limits.parent.as_deref())
    else {
        return Vec::new();
    };
    let ours = format!("{NAME_PREFIX}{}-", std::process::id());
    let mut found = Vec::new();
    for (_, dir) in parents {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if let Some(n) = e.file_name().to_str().filter(|n| n.starts_with(&ours)) {
                found.push(n.to_owned());
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// What the kernel counted in a worker's cgroup, read before it is removed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CgroupEvents {
    /// The version the cgroup used.
    pub version: Option<CgroupVersion>,
    /// The limits it had.
    pub limits: CgroupLimits,
    /// Processes the OOM killer ended because the jail reached its memory limit.
    pub oom_kills: Option<u64>,
    /// Process or thread creations refused at `pids.max`.
    pub pids_refused: Option<u64>,
    /// Periods in which the jail was throttled at its CPU limit.
    pub cpu_throttled_periods: Option<u64>,
}

impl CgroupEvents {
    /// Whether the memory limit killed a process of the jail.
    pub fn memory_limit_killed(&self) -> bool {
        self.oom_kills.is_some_and(|n| n > 0)
    }

    /// Whether a process or thread creation was refused at the pids limit.
    pub fn pids_limit_hit(&self) -> bool {
        self.pids_refused.is_some_and(|n| n > 0)
    }

    /// A note for an error message on which limits the jail ran into, if any.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let (true, Some(b)) = (self.memory_limit_killed(), self.limits.memory_max_bytes) {
            parts.push(format!(
                "its cgroup's memory limit ({} MiB) killed {} process(es)",
                b >> 20,
                self.oom_kills.unwrap_or(0)
            ));
        }
        if let (true, Some(n)) = (self.pids_limit_hit(), self.limits.pids_max) {
            parts.push(format!(
                "its cgroup's pids limit ({n}) refused {} process or thread creation(s)",
                self.pids_refused.unwrap_or(0)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// One worker's cgroup: made before the worker is forked, removed when it has ended.
#[derive(Debug)]
pub struct WorkerCgroup {
    version: CgroupVersion,
    limits: CgroupLimits,
    /// The cgroup's directories with the controllers each one carries (one under v2).
    dirs: Vec<(Vec<Controller>, PathBuf)>,
    /// `cgroup.procs` of each directory, open for writing (close-on-exec).
    procs: Vec<OwnedFd>,
    removed: bool,
}

impl WorkerCgroup {
    /// Makes a cgroup with `limits` (each set one), ready for a process to join.
    pub(crate) fn create(limits: &CgroupLimits) -> Result<WorkerCgroup, SandboxError> {
        limits.validate()?;
        let needs = limits.controllers();
        let (version, parents) = hierarchy::choose(&needs, limits.parent.as_deref())
            .map_err(|e| SandboxError::Cgroup(e.to_string()))?;
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{NAME_PREFIX}{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut dirs: Vec<(Vec<Controller>, PathBuf)> = Vec::new();
        match version {
            CgroupVersion::V2 => {
                let parent = &parents[0].1;
                enable_v2_controllers(parent, &needs)?;
                dirs.push((needs.clone(), parent.join(&name)));
            }
            CgroupVersion::V1 => {
                // Controllers mounted together (`cpu,cpuacct` style) share one directory.
                for (c, parent) in &parents {
                    let dir = parent.join(&name);
                    match dirs.iter_mut().find(|(_, d)| *d == dir) {
                        Some((ctls, _)) => ctls.push(*c),
                        None => dirs.push((vec![*c], dir)),
                    }
                }
            }
        }
        let mut cg = WorkerCgroup {
            version,
            limits: limits.clone(),
            dirs: Vec::new(),
            procs: Vec::new(),
            removed: false,
        };
        // Each directory joins `cg` as soon as it exists, so that a later failure removes it.
        for (ctls, dir) in dirs {
            std::fs::create_dir(&dir).map_err(|e| {
                SandboxError::Cgroup(format!("cannot create {}: {e}", dir.display()))
            })?;
            cg.dirs.push((ctls, dir));
        }
        for (ctls, dir) in &cg.dirs {
            for c in ctls {
                cg.write_limit(*c, dir)?;
            }
            let procs = OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_CLOEXEC)
                .open(dir.join("cgroup.procs"))
                .map_err(|e| {
                    SandboxError::Cgroup(format!("cannot open {}/cgroup.procs: {e}", dir.display()))
                })?;
            cg.procs.push(procs.into());
        }
        Ok(cg)
    }

    fn write_limit(&self, c: Controller, dir: &Path) -> Result<(), SandboxError> {
        let l = &self.limits;
        let mut writes: Vec<(&str, String, bool)> = Vec::new(); // (file, value, required)
        match (c, self.version) {
            (Controller::Memory, v) => {
                let b = l.memory_max_bytes.unwrap_or(u64::MAX).to_string();
                if v == CgroupVersion::V2 {
                    writes.push(("memory.max", b, true));
                    // No swap, so the limit is on memory the jail holds, and the OOM killer ends
                    // the jail as one, never leaving part of a worker behind.
                    writes.push(("memory.swap.max", "0".into(), false));
                    writes.push(("memory.oom.group", "1".into(), false));
                } else {
                    writes.push(("memory.limit_in_bytes", b.clone(), true));
                    writes.push(("memory.memsw.limit_in_bytes", b, false));
                }
            }
            (Controller::Pids, _) => {
                writes.push(("pids.max", l.pids_max.unwrap_or(0).to_string(), true));
            }
            (Controller::Cpu, v) => {
                let m = l.cpu_max.unwrap_or(CpuMax {
                    quota_us: 100_000,
                    period_us: 100_000,
                });
                if v == CgroupVersion::V2 {
                    writes.push(("cpu.max", format!("{} {}", m.quota_us, m.period_us), true));
                } else {
                    writes.push(("cpu.cfs_period_us", m.period_us.to_string(), true));
                    writes.push(("cpu.cfs_quota_us", m.quota_us.to_string(), true));
                }
            }
        }
        for (file, value, required) in writes {
            let path = dir.join(file);
            match std::fs::write(&path, &value) {
                Ok(()) => {}
                Err(_) if !required => {}
                Err(e) => {
                    return Err(SandboxError::Cgroup(format!(
                        "cannot write {value} to {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// The `cgroup.procs` descriptors a forked child writes `0` to, to join the cgroup.
    pub(crate) fn procs_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// The cgroup's directories (one per controller under v1, one under v2).
    pub fn dirs(&self) -> Vec<&Path> {
        self.dirs.iter().map(|(_, d)| d.as_path()).collect()
    }

    /// The interface the cgroup uses.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// What the kernel counted in the cgroup so far.
    pub fn events(&self) -> CgroupEvents {
        let mut ev = CgroupEvents {
            version: Some(self.version),
            limits: self.limits.clone(),
            ..CgroupEvents::default()
        };
        if self.removed {
            return ev;
        }
        for (ctls, dir) in &self.dirs {
            for c in ctls {
                match c {
                    Controller::Memory => {
                        let file = match self.version {
                            CgroupVersion::V2 => "memory.events",
                            CgroupVersion::V1 => "memory.oom_control",
                        };
                        ev.oom_kills = read_key(&dir.join(file), "oom_kill");
                    }
                    Controller::Pids => ev.pids_refused = read_key(&dir.join("pids.events"), "max"),
                    Controller::Cpu => {
                        ev.cpu_throttled_periods = read_key(&dir.join("cpu.stat"), "nr_throttled");
                    }
                }
            }
        }
        ev
    }

    /// For `roma check`: for each limit, whether process `pid` is in this cgroup and the kernel
    /// holds the limit as set (read back from the host's view of the cgroup files).
    pub fn check(&self, pid: u32) -> Vec<ProbeOutcome> {
        let mut out = Vec::new();
        for (ctls, dir) in &self.dirs {
            let member = std::fs::read_to_string(dir.join("cgroup.procs"))
                .map(|t| t.lines().any(|l| l.trim() == pid.to_string()));
            for c in ctls {
                let (file, want) = self.readback(*c);
                let name = format!("cgroup {} limit", c.name());
                let got = std::fs::read_to_string(dir.join(file)).map(|s| s.trim().to_owned());
                let (held, detail) = match (&member, got) {
                    (Ok(true), Ok(v)) if v == want => (
                        true,
                        format!(
                            "{}: the worker is in {} with {file} = {v}",
                            self.version,
                            dir.display()
                        ),
                    ),
                    (Ok(true), Ok(v)) => (false, format!("{file} reads {v}, not {want}")),
                    (Ok(false), _) => (
                        false,
                        format!("the worker (pid {pid}) is not in {}", dir.display()),
                    ),
                    (Err(e), _) => (false, format!("cannot read {}: {e}", dir.display())),
                    (_, Err(e)) => (false, format!("cannot read {}: {e}", dir.display())),
                };
                out.push(ProbeOutcome {
                    name,
                    attempted: true,
                    held,
                    detail,
                });
            }
        }
        out
    }

    /// The file that shows controller `c`'s limit, and what it reads when set.
    fn readback(&self, c: Controller) -> (&'static str, String) {
        let l = &self.limits;
        match (c, self.version) {
            (Controller::Memory, CgroupVersion::V2) => {
                ("memory.max", l.memory_max_bytes.unwrap_or(0).to_string())
            }
            // v1 rounds the limit down to whole pages.
            (Controller::Memory, CgroupVersion::V1) => (
                "memory.limit_in_bytes",
                (l.memory_max_bytes.unwrap_or(0) / 4096 * 4096).to_string(),
            ),
            (Controller::Pids, _) => ("pids.max", l.pids_max.unwrap_or(0).to_string()),
            (Controller::Cpu, CgroupVersion::V2) => {
                let m = l.cpu_max.unwrap_or(CpuMax {
                    quota_us: 0,
                    period_us: 0,
                });
                ("cpu.max", format!("{} {}", m.quota_us, m.period_us))
            }
            (Controller::Cpu, CgroupVersion::V1) => (
                "cpu.cfs_quota_us",
                l.cpu_max.map_or(0, |m| m.quota_us).to_string(),
            ),
        }
    }

    /// Kills whatever is left in the cgroup and removes its directories. Idempotent; a
    /// directory that stays busy past a bound is left (and reported on stderr) rather than
    /// hanging the host.
    pub(crate) fn remove(&mut self) {
        if self.removed {
            return;
        }
        self.removed = true;
        self.procs.clear();
        for (_, dir) in self.dirs.iter().rev() {
            if let Err(e) = remove_dir(dir) {
                eprintln!(
                    "roma-sandbox: cannot remove the worker cgroup {}: {e}",
                    dir.display()
                );
            }
        }
    }
}

impl Drop for WorkerCgroup {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Enables `needs` for the children of v2 cgroup `parent`.
fn enable_v2_controllers(parent: &Path, needs: &[Controller]) -> Result<(), SandboxError> {
    let file = parent.join("cgroup.subtree_control");
    let enabled = std::fs::read_to_string(&file).unwrap_or_default();
    let add: Vec<String> = needs
        .iter()
        .filter(|c| !enabled.split_whitespace().any(|e| e == c.name()))
        .map(|c| format!("+{}", c.name()))
        .collect();
    if add.is_empty() {
        return Ok(());
    }
    std::fs::write(&file, add.join(" ")).map_err(|e| {
        let why = if e.raw_os_error() == Some(libc::EBUSY) {
            " (the cgroup holds processes of its own, and cgroup v2 enables controllers only \
             for the children of a cgroup without any: give the host a delegated cgroup with no \
             processes as the cgroup parent)"
        } else {
            ""
        };
        SandboxError::Cgroup(format!(
            "cannot enable {} in {}: {e}{why}",
            add.join(" "),
            file.display()
        ))
    })
}

/// The number after `key` on its line of a `key value` file.
fn read_key(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Kills every process in cgroup `dir` and removes it, waiting (bounded) for them to leave.
fn remove_dir(dir: &Path) -> std::io::Result<()> {
    let deadline = Instant::now() + REMOVE_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() != Some(libc::EBUSY) || Instant::now() > deadline => {
                return Err(e);
            }
            Err(_) => {}
        }
        // v2 kills the whole cgroup in one write (kernel 5.14+); else each listed process.
        if std::fs::write(dir.join("cgroup.kill"), "1").is_err() {
            let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                if pid > 0 {
                    // SAFETY: kill(2) on a pid listed in the worker's own cgroup, which only
                    // the worker's processes join; it has no memory effects.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        // The kernel takes the killed processes out asynchronously and has no event for it
        // under v1: back off and retry.
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

/// Removes worker cgroups under `parent` whose host process is gone (a host that was killed
/// cannot remove its own).
fn remove_stale(parent: &Path) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(NAME_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest
            .split_once('-')
            .and_then(|(p, _)| p.parse::<i32>().ok())
            .filter(|&p| p > 0)
        else {
            continue;
        };
        // SAFETY: signal 0 sends nothing; it only asks whether the pid exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
        if gone {
            let _ = remove_dir(&e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_and_name_the_limit() {
        CgroupLimits::default().validate().unwrap();
        let ok = CgroupLimits {
            memory_max_bytes: Some(64 << 20),
            pids_max: Some(64),
            cpu_max: Some(CpuMax {
                quota_us: 50_000,
                period_us: 100_000,
            }),
            parent: None,
        };
        ok.validate().unwrap();
        assert_eq!(
            ok.controllers(),
            [Controller::Memory, Controller::Pids, Controller::Cpu]
        );
        for (bad, word) in [
            (
                CgroupLimits {
                    memory_max_bytes: Some(4096),
                    ..ok.clone()
                },
                "memory_max",
            ),
            (
                CgroupLimits {
                    pids_max: Some(0),
                    ..ok.clone()
                },
                "pids_max",
            ),
            (
                CgroupLimits {
                    cpu_max: Some(CpuMax {
                        quota_us: 10,
                        period_us: 100_000,
                    }),
                    ..ok.clone()
                },
                "quota",
            ),
            (
                CgroupLimits {
                    cpu_max: Some(CpuMax {
                        quota_us: 10_000,
                        period_us: 10,
                    }),
                    ..ok.clone()
                },
                "period",
            ),
            (
                CgroupLimits {
                    parent: Some("rel".into()),
                    ..ok.clone()
                },
                "parent",
            ),
        ] {
            let e = bad.validate().unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }

    #[test]
    fn each_version_writes_its_own_files() {
        let root = std::env::temp_dir().join(format!("roma-cg-files-{}", std::process::id()));
        let limits = CgroupLimits {
            memory_max_bytes: Some(64 << 20),
            pids_max: Some(32),
            cpu_max: Some(CpuMax {
                quota_us: 20_000,
                period_us: 100_000,
            }),
            parent: None,
        };
        let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
        for (version, files) in [
            (
                CgroupVersion::V2,
                vec![
                    ("memory.max", "67108864"),
                    ("memory.swap.max", "0"),
                    ("memory.oom.group", "1"),
                    ("pids.max", "32"),
                    ("cpu.max", "20000 100000"),
                ],
            ),
            (
                CgroupVersion::V1,
                vec![
                    ("memory.limit_in_bytes", "67108864"),
                    ("memory.memsw.limit_in_bytes", "67108864"),
                    ("pids.max", "32"),
                    ("cpu.cfs_period_us", "100000"),
                    ("cpu.cfs_quota_us", "20000"),
                ],
            ),
        ] {
            let dir = root.join(format!("{version:?}"));
            std::fs::create_dir_all(&dir).unwrap();
            let cg = WorkerCgroup {
                version,
                limits: limits.clone(),
                dirs: Vec::new(),
                procs: Vec::new(),
                removed: true,
            };
            for c in limits.controllers() {
                cg.write_limit(c, &dir).unwrap();
            }
            for (f, want) in files {
                assert_eq!(read(&dir, f), want, "{version:?} {f}");
            }
        }
        // v2 enables only what its children lack.
        std::fs::write(root.join("cgroup.subtree_control"), "cpu").unwrap();
        enable_v2_controllers(
            &root,
            &[Controller::Memory, Controller::Cpu, Controller::Pids],
        )
        .unwrap();
        assert_eq!(read(&root, "cgroup.subtree_control"), "+memory +pids");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reads_counters_by_key() {
        let f = std::env::temp_dir().join(format!("roma-cg-key-{}", std::process::id()));
        std::fs::write(&f, "oom 2\noom_kill 3\nmax 0\n").unwrap();
        assert_eq!(read_key(&f, "oom_kill"), Some(3));
        assert_eq!(read_key(&f, "oom"), Some(2));
        assert_eq!(read_key(&f, "absent"), None);
        std::fs::remove_file(&f).unwrap();
    }

    #[test]
    fn events_name_the_limit_that_was_hit() {
        let ev = CgroupEvents {
            version: Some(CgroupVersion::V1),
            limits: CgroupLimits {
                memory_max_bytes: Some(64 << 20),
                pids_max: Some(8),
                ..CgroupLimits::default()
            },
            oom_kills: Some(1),
            pids_refused: Some(0),
            cpu_throttled_periods: None,
        };
        let d = ev.describe().unwrap();
        assert!(d.contains("memory limit (64 MiB)"), "{d}");
        assert!(!d.contains("pids"), "{d}");
        assert_eq!(CgroupEvents::default().describe(), None);
    }
}
