//! `roma check`: start one worker in the chosen sandbox, in probe mode, and ask it to try what
//! the jail must forbid.

use crate::config::{Config, SandboxKind};
use crate::hooks::Hooks;
use crate::locate::find_worker;
use crate::worker_client::{WorkerClient, WorkerMode, WorkerSetup};
use roma_core::RomaError;
use roma_sandbox::CgroupLimits;
use std::sync::Arc;
use std::time::Duration;

pub use roma_ipc::ProbeResult;

/// Starts a worker in `sandbox` in probe mode and returns what each probe found. A probe whose
/// `held` is false names a protection the sandbox did not give on this machine.
///
/// The worker gets a cgroup with a generous limit of each kind this host can give one (4 GiB
/// of memory, 1024 tasks, every core's CPU time), and the report says for each whether the
/// worker was in it with the limit set, or why the host cannot give one.
pub fn check(sandbox: SandboxKind) -> Result<Vec<ProbeResult>, RomaError> {
    let mut config = Config::default();
    config.sandbox(sandbox);
    let cores = crate::tools::cores() as u32;
    let period = Duration::from_millis(100);
    let mut unavailable = Vec::new();
    for (name, limits) in [
        (
            "memory",
            CgroupLimits {
                memory_max_bytes: Some(CHECK_MEMORY_MB << 20),
                ..CgroupLimits::default()
            },
        ),
        (
            "pids",
            CgroupLimits {
                pids_max: Some(CHECK_PIDS),
                ..CgroupLimits::default()
            },
        ),
        (
            "cpu",
            CgroupLimits {
                cpu_max: Some(roma_sandbox::CpuMax {
                    quota_us: 100_000 * u64::from(cores),
                    period_us: 100_000,
                }),
                ..CgroupLimits::default()
            },
        ),
    ] {
        match roma_sandbox::cgroup::probe_cgroups(&limits) {
            Ok(_) => {
                match name {
                    "memory" => config.cgroup_memory_max_mb(CHECK_MEMORY_MB),
                    "pids" => config.cgroup_pids_max(CHECK_PIDS),
                    _ => config.cgroup_cpu_max(period * cores, period),
                };
            }
            Err(e) => unavailable.push(ProbeResult {
                name: format!("cgroup {name} limit"),
                attempted: "no".into(),
                held: false,
                detail: e.to_string(),
            }),
        }
    }
    let setup = WorkerSetup::from_config(&config, find_worker(None, None)?, WorkerMode::Probe)?;
    let hooks = Arc::new(Hooks::<()> {
        logger: None,
        bindings: roma_udf::Registry::new(Vec::new())
            .map_err(|e| RomaError::internal(e.to_string()))?,
        executor: None,
    });
    let mut client = WorkerClient::start(0, Arc::new(setup), hooks)?;
    let mut results = client.probe()?;
    results.extend(unavailable);
    Ok(results)
}

/// The cgroup limits the check's worker runs under: far above what it needs.
const CHECK_MEMORY_MB: u64 = 4096;
const CHECK_PIDS: u64 = 1024;
