//! Finding a process's descendants in `/proc`, with their parent, name, state and memory.
//!
//! Why it exists: the fault tests, `cargo xtask soak` and `roma bench` look at a service's worker
//! processes from the outside (to SIGKILL them, count them, or add up their resident memory),
//! and the jailed engine processes are not the host's children (they run under their launcher).
//! They all need the same walk of the process table, and it is easy to get subtly wrong, so it
//! lives here once.
//!
//! Reading `/proc` is racy by nature: a process can exit between the directory listing and the
//! read of its files, or between two of its files. Such a process is left out, as if it had
//! exited before the walk (which is the truth a moment later). Every read is bounded, and
//! `/proc/PID/stat` is split at the *last* `)`, because the command name between the
//! parentheses is chosen by the process (`prctl(PR_SET_NAME)`) and may contain spaces and
//! parentheses of its own.
//!
//! ```no_run
//! # fn main() -> Result<(), roma_sandbox::procfs::ProcfsError> {
//! use roma_sandbox::procfs;
//! let me = std::process::id();
//! let workers = procfs::descendants_named(me, "roma-worker")?;
//! let rss_kb: u64 = workers.iter().map(|p| p.rss_kb).sum();
//! let direct = workers.iter().filter(|p| p.ppid == me).count();
//! # let _ = (rss_kb, direct); Ok(()) }
//! ```
//!
//! Linux only, like the rest of this crate. With `/proc` mounted `hidepid`, processes of other
//! users are invisible; a process's own descendants (same user) are not affected.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// The most bytes read from `/proc/PID/stat`: 52 numeric fields and a name of at most 64 bytes
/// take well under 1 KiB.
const MAX_STAT_BYTES: usize = 4096;

/// The most bytes read from `/proc/PID/statm`: seven page counts.
const MAX_STATM_BYTES: usize = 512;

/// Why `/proc` could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcfsError {
    /// The `/proc` directory could not be listed (not mounted?).
    #[error("cannot list /proc: {0}")]
    List(#[source] io::Error),
    /// A file of a process that exists could not be read (permissions, or an I/O error).
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file, e.g. `/proc/42/stat`.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file had a shape the kernel does not write.
    #[error("{path}: unexpected content: {what}")]
    Malformed {
        /// The file, e.g. `/proc/42/stat`.
        path: PathBuf,
        /// What was wrong with it.
        what: &'static str,
    },
}

/// One process, as `/proc/PID/stat` and `/proc/PID/statm` describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcInfo {
    /// Its process id (thread group id), in the pid namespace of the `/proc` that was read.
    pub pid: u32,
    /// Its parent's pid (0 for init and `kthreadd`).
    pub ppid: u32,
    /// Its command name: the executable's file name truncated to 15 bytes, unless the process
    /// renamed itself. Bytes that are not UTF-8 are replaced with U+FFFD.
    pub comm: String,
    /// Its state letter: `R` running, `S` sleeping, `D` disk sleep, `T` stopped, `t` traced,
    /// `Z` zombie, `X` dead, `I` idle kernel thread, ...
    pub state: char,
    /// Resident memory in KiB (the `resident` page count of `/proc/PID/statm`, the same figure
    /// as `VmRSS` in `/proc/PID/status`); 0 for zombies and kernel threads.
    pub rss_kb: u64,
}

impl ProcInfo {
    /// Whether it has exited and waits to be reaped by its parent (state `Z`).
    pub fn is_zombie(&self) -> bool {
        self.state == 'Z'
    }

    /// Whether it is stopped by a signal (`T`) or by a tracer (`t`).
    pub fn is_stopped(&self) -> bool {
        matches!(self.state, 'T' | 't')
    }
}

/// The fields of `/proc/PID/stat` this module uses.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stat {
    pid: u32,
    ppid: u32,
    comm: String,
    state: char,
}

/// Parses `pid (comm) state ppid ...`. The name may hold anything but NUL, `)` included, so it
/// ends at the last `)`.
fn parse_stat(stat: &[u8]) -> Result<Stat, &'static str> {
    let open = stat
        .iter()
        .position(|&b| b == b'(')
        .ok_or("no `(` before the name")?;
    let close = stat
        .iter()
        .rposition(|&b| b == b')')
        .filter(|&close| close > open)
        .ok_or("no `)` after the name")?;
    let head = stat.get(..open).ok_or("no pid")?;
    let pid = std::str::from_utf8(head)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or("the pid is not a number")?;
    let comm = String::from_utf8_lossy(stat.get(open + 1..close).ok_or("no name")?).into_owned();
    let tail = std::str::from_utf8(stat.get(close + 1..).ok_or("nothing after the name")?)
        .map_err(|_| "the fields after the name are not text")?;
    let mut fields = tail.split_ascii_whitespace();
    let mut state_chars = fields.next().ok_or("no state")?.chars();
    let state = match (state_chars.next(), state_chars.next()) {
        (Some(c), None) => c,
        _ => return Err("the state is not one letter"),
    };
    let ppid = fields
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("the parent pid is not a number")?;
    Ok(Stat {
        pid,
        ppid,
        comm,
        state,
    })
}

/// `utime + stime` in clock ticks from the contents of `/proc/PID/stat`: fields 14 and 15,
/// counted after the name like the rest (the name ends at the last `)`).
fn parse_stat_cpu_ticks(stat: &[u8]) -> Result<u64, &'static str> {
    let close = stat
        .iter()
        .rposition(|&b| b == b')')
        .ok_or("no `)` after the name")?;
    let tail = std::str::from_utf8(stat.get(close + 1..).ok_or("nothing after the name")?)
        .map_err(|_| "the fields after the name are not text")?;
    // After the name: state(3) ppid(4) ... utime(14) stime(15), so indexes 11 and 12 here.
    let mut fields = tail.split_ascii_whitespace().skip(11);
    let mut tick = || -> Result<u64, &'static str> {
        fields
            .next()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or("utime or stime is not a number")
    };
    Ok(tick()?.saturating_add(tick()?))
}

/// The CPU time `pid` has used so far (user + system, all its threads, not its children);
/// `Ok(None)` when the process is gone.
///
/// # Errors
/// [`ProcfsError`] when its `stat` cannot be read or makes no sense.
pub fn cpu_time(pid: u32) -> Result<Option<std::time::Duration>, ProcfsError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let Some(bytes) = read_bounded(&path, MAX_STAT_BYTES)? else {
        return Ok(None);
    };
    let ticks = parse_stat_cpu_ticks(&bytes).map_err(|what| ProcfsError::Malformed {
        path: path.clone(),
        what,
    })?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0).unwrap_or(100);
    Ok(Some(std::time::Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000 / hz),
    )))
}

/// Resident KiB from the contents of `/proc/PID/statm` (`size resident shared ...`, in pages).
fn parse_statm_rss_kb(statm: &[u8], page_size: u64) -> Result<u64, &'static str> {
    let pages: u64 = std::str::from_utf8(statm)
        .ok()
        .and_then(|s| s.split_ascii_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("no resident page count")?;
    Ok(pages.saturating_mul(page_size) / 1024)
}

/// Whether `e` says the process is gone: its directory vanished (`ENOENT`), or it was reaped
/// while its file was open (`ESRCH`).
fn is_gone(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads at most `limit` bytes of `path`; `Ok(None)` when the process is gone.
fn read_bounded(path: &Path, limit: usize) -> Result<Option<Vec<u8>>, ProcfsError> {
    let read = || -> io::Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(limit.min(1024));
        File::open(path)?
            .take(limit as u64 + 1)
            .read_to_end(&mut buf)?;
        Ok(buf)
    };
    match read() {
        Ok(buf) if buf.len() > limit => Err(ProcfsError::Malformed {
            path: path.to_path_buf(),
            what: "longer than the kernel writes",
        }),
        Ok(buf) => Ok(Some(buf)),
        Err(e) if is_gone(&e) => Ok(None),
        Err(source) => Err(ProcfsError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// `/proc/PID/stat`, parsed; `Ok(None)` when the process is gone.
fn read_stat(pid: u32) -> Result<Option<Stat>, ProcfsError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    let Some(bytes) = read_bounded(&path, MAX_STAT_BYTES)? else {
        return Ok(None);
    };
    parse_stat(&bytes)
        .map(Some)
        .map_err(|what| ProcfsError::Malformed { path, what })
}

/// Resident KiB of `pid`; `Ok(None)` when the process is gone.
fn read_rss_kb(pid: u32) -> Result<Option<u64>, ProcfsError> {
    let path = PathBuf::from(format!("/proc/{pid}/statm"));
    let Some(bytes) = read_bounded(&path, MAX_STATM_BYTES)? else {
        return Ok(None);
    };
    let page_size = u64::try_from(rustix::param::page_size()).unwrap_or(4096);
    parse_statm_rss_kb(&bytes, page_size)
        .map(Some)
        .map_err(|what| ProcfsError::Malformed { path, what })
}

/// Completes `stat` with the resident memory; `Ok(None)` when the process is gone.
fn with_rss(stat: Stat) -> Result<Option<ProcInfo>, ProcfsError> {
    Ok(read_rss_kb(stat.pid)?.map(|rss_kb| ProcInfo {
        pid: stat.pid,
        ppid: stat.ppid,
        comm: stat.comm,
        state: stat.state,
        rss_kb,
    }))
}

/// One process; `Ok(None)` when there is no process `pid` (or it exited during the read).
pub fn process(pid: u32) -> Result<Option<ProcInfo>, ProcfsError> {
    match read_stat(pid)? {
        Some(stat) => with_rss(stat),
        None => Ok(None),
    }
}

/// Every process `/proc` lists, as far as its `stat` could be read: processes that exit during
/// the walk, and those whose files cannot be read or make no sense, are left out.
fn process_table() -> Result<Vec<Stat>, ProcfsError> {
    let mut table = Vec::new();
    for entry in std::fs::read_dir("/proc").map_err(ProcfsError::List)? {
        let Ok(entry) = entry else { continue };
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse().ok()) else {
            continue; // not a process directory (`self`, `meminfo`, ...)
        };
        if let Ok(Some(stat)) = read_stat(pid) {
            table.push(stat);
        }
    }
    Ok(table)
}

/// The entries of `table` that descend from `ancestor` (children, grandchildren, ...), not
/// `ancestor` itself, in the order of `table`. Guards against a cycle, which a table read
/// non-atomically could show if pids were reused during the read.
fn descendants_in(table: &[Stat], ancestor: u32) -> Vec<&Stat> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for s in table {
        children.entry(s.ppid).or_default().push(s.pid);
    }
    let mut found: HashSet<u32> = HashSet::new();
    let mut queue = vec![ancestor];
    while let Some(parent) = queue.pop() {
        for &child in children.get(&parent).into_iter().flatten() {
            if child != ancestor && found.insert(child) {
                queue.push(child);
            }
        }
    }
    table.iter().filter(|s| found.contains(&s.pid)).collect()
}

/// Every process below `ancestor` (children, grandchildren, ...; not `ancestor` itself, zombies
/// included), sorted by pid. Processes that exit during the walk, or whose files cannot be read,
/// are left out.
///
/// # Errors
/// [`ProcfsError::List`] when `/proc` cannot be listed.
pub fn descendants_of(ancestor: u32) -> Result<Vec<ProcInfo>, ProcfsError> {
    descendants_matching(ancestor, |_| true)
}

/// The processes of [`descendants_of`] whose command name starts with `comm_prefix`, e.g.
/// `"roma-worker"`. The descent goes through processes of any name.
///
/// # Errors
/// [`ProcfsError::List`] when `/proc` cannot be listed.
pub fn descendants_named(ancestor: u32, comm_prefix: &str) -> Result<Vec<ProcInfo>, ProcfsError> {
    descendants_matching(ancestor, |s| s.comm.starts_with(comm_prefix))
}

fn descendants_matching(
    ancestor: u32,
    keep: impl Fn(&Stat) -> bool,
) -> Result<Vec<ProcInfo>, ProcfsError> {
    let table = process_table()?;
    let mut found: Vec<ProcInfo> = descendants_in(&table, ancestor)
        .into_iter()
        .filter(|s| keep(s))
        .filter_map(|s| with_rss(s.clone()).ok().flatten())
        .collect();
    found.sort_unstable_by_key(|p| p.pid);
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn cpu_tick_parsing_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse_stat_cpu_ticks(&bytes);
        }
    }

    #[test]
    fn cpu_ticks_are_counted_after_a_hostile_name() {
        let line = b"42 (a) b) 1 2 3) S 1 42 42 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 1 0 0\n";
        assert_eq!(parse_stat_cpu_ticks(line), Ok(12));
        assert!(parse_stat_cpu_ticks(b"42 (x) S 1").is_err());
        assert!(parse_stat_cpu_ticks(b"no name").is_err());
    }

    #[test]
    fn own_cpu_time_grows_with_work() {
        let me = std::process::id();
        let before = cpu_time(me).unwrap().unwrap();
        // Spin until the kernel has counted a tick more; the deadline only turns a broken
        // reader into a failure.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        let mut after = before;
        while after <= before && Instant::now() < deadline {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            after = cpu_time(me).unwrap().unwrap();
        }
        assert!(after > before, "{before:?} -> {after:?}");
        assert_eq!(cpu_time(u32::MAX).unwrap(), None);
    }
    use std::process::{Child, Command};
    use std::time::{Duration, Instant};

    fn stat(pid: u32, ppid: u32) -> Stat {
        Stat {
            pid,
            ppid,
            comm: format!("p{pid}"),
            state: 'S',
        }
    }

    #[test]
    fn parses_a_plain_stat_line() {
        let line = b"1234 (roma-worker) S 1200 1234 1200 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 \
                     5 0 99 123456 789 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0\n";
        assert_eq!(
            parse_stat(line),
            Ok(Stat {
                pid: 1234,
                ppid: 1200,
                comm: "roma-worker".into(),
                state: 'S',
            })
        );
    }

    #[test]
    fn parses_a_name_with_spaces_and_parentheses() {
        let line = b"77 (a) b (c)) Z 5 77 5 0 -1 0 0 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!((s.pid, s.ppid, s.state), (77, 5, 'Z'));
        assert_eq!(s.comm, "a) b (c)");
        let s = parse_stat(b"8 ( ) ) R 1 2 3").unwrap();
        assert_eq!((s.comm.as_str(), s.state, s.ppid), (" ) ", 'R', 1));
        let s = parse_stat(b"9 () T 0 2 3").unwrap();
        assert_eq!((s.comm.as_str(), s.state, s.ppid), ("", 'T', 0));
    }

    #[test]
    fn a_name_that_is_not_utf8_is_kept_lossily() {
        let s = parse_stat(b"9 (x\xffy) S 3 4").unwrap();
        assert_eq!(s.comm, "x\u{fffd}y");
    }

    #[test]
    fn rejects_malformed_stat_lines() {
        for bad in [
            &b""[..],
            b"12 noparens S 1",
            b"12 (open S 1",
            b"12 close) S 1",
            b"x (n) S 1",
            b"12 (n)",
            b"12 (n) S",
            b"12 (n) S x",
            b"12 (n) SS 1",
            b")12 (n S 1",
        ] {
            assert!(
                parse_stat(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn parses_statm() {
        assert_eq!(
            parse_statm_rss_kb(b"1000 250 10 5 0 80 0\n", 4096),
            Ok(1000)
        );
        assert_eq!(parse_statm_rss_kb(b"0 0 0 0 0 0 0\n", 4096), Ok(0));
        assert!(parse_statm_rss_kb(b"1000\n", 4096).is_err());
        assert!(parse_statm_rss_kb(b"", 4096).is_err());
    }

    #[test]
    fn descendants_are_found_at_any_depth_and_cycles_end() {
        // 1 -> 10 -> 11 -> 12, 1 -> 20; 30 and 31 are each other's parent (a torn read).
        let table = [
            stat(1, 0),
            stat(10, 1),
            stat(11, 10),
            stat(12, 11),
            stat(20, 1),
            stat(30, 31),
            stat(31, 30),
        ];
        let pids = |a| {
            descendants_in(&table, a)
                .iter()
                .map(|s| s.pid)
                .collect::<Vec<_>>()
        };
        assert_eq!(pids(10), [11, 12]);
        assert_eq!(pids(1), [10, 11, 12, 20]);
        assert_eq!(pids(12), Vec::<u32>::new());
        assert_eq!(pids(30), [31]);
        assert_eq!(pids(99), Vec::<u32>::new());
    }

    #[test]
    fn the_current_process_is_found_with_its_parent() {
        let me = std::process::id();
        let info = process(me).unwrap().expect("this process is in /proc");
        assert_eq!(info.pid, me);
        // SAFETY: getppid(2) cannot fail.
        let parent = unsafe { libc::getppid() };
        assert_eq!(i64::from(info.ppid), i64::from(parent));
        assert!(info.rss_kb > 0, "{info:?}");
        assert!(!info.is_zombie());
        // And it is among its parent's descendants.
        let below_parent = descendants_of(info.ppid).unwrap();
        assert!(below_parent.iter().any(|p| p.pid == me));
    }

    #[test]
    fn no_such_process_is_none() {
        // Above the largest pid_max (2^22).
        assert_eq!(process(u32::MAX - 1).unwrap(), None);
    }

    /// A `sleep` child, killed and reaped when dropped.
    struct Sleeper(Child);

    impl Drop for Sleeper {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Polls `f` until it returns `Some`, for up to 10 s.
    fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(v) = f() {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out: {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_child_is_a_descendant_until_it_is_reaped() {
        let me = std::process::id();
        let mut child = Sleeper(Command::new("sleep").arg("30").spawn().unwrap());
        let pid = child.0.id();
        // Right after fork the child may still carry this test's name: wait for the exec.
        let found = eventually("the child runs sleep", || {
            descendants_named(me, "sleep")
                .unwrap()
                .into_iter()
                .find(|p| p.pid == pid)
        });
        assert_eq!((found.ppid, found.comm.as_str()), (me, "sleep"));
        assert!(!found.is_zombie() && !found.is_stopped(), "{found:?}");
        assert!(found.rss_kb > 0, "{found:?}");
        assert!(descendants_of(me).unwrap().iter().any(|p| p.pid == pid));
        assert!(
            descendants_named(me, "no-such-name").unwrap().is_empty(),
            "the filter keeps only matching names"
        );

        child.0.kill().unwrap();
        let zombie = eventually("the killed child is a zombie", || {
            process(pid).unwrap().filter(ProcInfo::is_zombie)
        });
        assert_eq!(zombie.rss_kb, 0);
        assert!(descendants_of(me).unwrap().iter().any(|p| p.pid == pid));

        child.0.wait().unwrap();
        assert!(!descendants_of(me).unwrap().iter().any(|p| p.pid == pid));
    }
}
