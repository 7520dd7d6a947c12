//! Checks `roma check` makes from the host side, on a started worker, of protections the worker
//! cannot see from inside its jail (it has no `/proc`, and would only learn what it is told):
//! whether any process of the jail is host uid 0, and whether the jail is tied to the host's
//! life through the lifeline pipe.
//!
//! Each check reads `/proc` of the host and reports a [`ProbeOutcome`] like the in-jail probes,
//! so the two lists print as one.

use crate::probe::ProbeOutcome;
use crate::probe::Verdict::{Held, NotHeld};
use crate::procfs;

/// The names of the checks [`check_started_worker`] makes, in order.
pub const HOST_CHECK_NAMES: [&str; 2] = ["worker host uid is not 0", "jail ends with the host"];

/// Checks the worker whose host-side process (its launcher, or the worker itself without a jail)
/// is `pid`.
pub fn check_started_worker(pid: u32) -> Vec<ProbeOutcome> {
    vec![host_uid(pid), tied_to_host(pid)]
}

/// The real, effective, saved and filesystem uids of `pid` as the host sees them.
fn uids(pid: u32) -> Option<Vec<u32>> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().map(|n| n.parse().ok()).collect()
}

fn host_uid(pid: u32) -> ProbeOutcome {
    let name = HOST_CHECK_NAMES[0];
    let mut pids = vec![pid];
    match procfs::descendants_of(pid) {
        Ok(below) => pids.extend(below.iter().filter(|p| !p.is_zombie()).map(|p| p.pid)),
        Err(e) => {
            return ProbeOutcome::not_attempted(name, NotHeld, format!("cannot read /proc: {e}"));
        }
    }
    let mut seen: Vec<u32> = Vec::new();
    for p in &pids {
        let Some(ids) = uids(*p) else {
            return ProbeOutcome::not_attempted(
                name,
                NotHeld,
                format!("cannot read the uids of pid {p}"),
            );
        };
        if ids.contains(&0) {
            return ProbeOutcome::attempted(
                name,
                NotHeld,
                format!(
                    "pid {p} of the jail runs as host uid 0 (the host is root and this backend \
                     keeps its uid)"
                ),
            );
        }
        seen.extend(ids);
    }
    seen.sort_unstable();
    seen.dedup();
    let list: Vec<String> = seen.iter().map(u32::to_string).collect();
    ProbeOutcome::attempted(name, Held, format!("host uid {}", list.join(",")))
}

fn tied_to_host(pid: u32) -> ProbeOutcome {
    let name = HOST_CHECK_NAMES[1];
    let Some(lifeline) = crate::backend::lifeline_read_end_made() else {
        return ProbeOutcome::not_attempted(
            name,
            NotHeld,
            "no launcher: the worker outlives a SIGKILLed host unless it exits by itself",
        );
    };
    let Ok(ours) = std::fs::read_link(format!("/proc/self/fd/{lifeline}")) else {
        return ProbeOutcome::not_attempted(name, NotHeld, "cannot read the host's lifeline fd");
    };
    let dir = format!("/proc/{pid}/fd");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) => {
            return ProbeOutcome::not_attempted(name, NotHeld, format!("cannot list {dir}: {e}"));
        }
    };
    let watched = entries
        .flatten()
        .any(|e| std::fs::read_link(e.path()).is_ok_and(|target| target == ours));
    if watched {
        ProbeOutcome::attempted(
            name,
            Held,
            format!(
                "the launcher holds the host's lifeline {} and kills the jail at its end",
                ours.display()
            ),
        )
    } else {
        ProbeOutcome::attempted(
            name,
            NotHeld,
            "the launcher does not hold the host's lifeline pipe",
        )
    }
}
