//! `roma check`: start one worker in the chosen sandbox, in probe mode, and ask it to try what
//! the jail must forbid.

use crate::config::{Config, SandboxKind};
use crate::hooks::Hooks;
use crate::locate::find_worker;
use crate::worker_client::{WorkerClient, WorkerSetup};
use roma_core::RomaError;
use std::sync::Arc;

pub use roma_ipc::ProbeResult;

/// Starts a worker in `sandbox` in probe mode and returns what each probe found. A probe whose
/// `held` is false names a protection the sandbox did not give on this machine.
pub fn check(sandbox: SandboxKind) -> Result<Vec<ProbeResult>, RomaError> {
    let mut config = Config::default();
    config.sandbox(sandbox);
    let setup = WorkerSetup::from_config(&config, find_worker(None, None)?, true)?;
    let hooks = Arc::new(Hooks::<()> {
        logger: None,
        bindings: roma_udf::Registry::new(Vec::new())
            .map_err(|e| RomaError::internal(e.to_string()))?,
        executor: None,
    });
    let mut client = WorkerClient::start(0, Arc::new(setup), hooks)?;
    client.probe()
}
