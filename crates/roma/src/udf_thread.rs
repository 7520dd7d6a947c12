//! The UDF handler thread of one worker: where that worker's synchronous host-function calls
//! run, so that the slot thread can stop waiting for one when its request's time is up.
//!
//! A host function is user code and may block; run on the slot thread, a blocked one would
//! hold the slot (and its request) hostage past every timeout. Here the slot thread hands the
//! call over and waits with the request's deadline. A call that misses it is answered with an
//! error, and its thread is abandoned (it exits when the call returns); the next call gets a
//! fresh thread. Neither side spins: on two cores a spinning host thread starves the worker
//! (measured: a 200 µs spin made a call 16x slower); the two extra wake-ups cost about 24 µs a
//! call against running inline (`Config::host_functions_inline`).

use crate::hooks::Hooks;
use roma_udf::BindingCall;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Instant;

struct Job<M> {
    name: String,
    payload: Vec<u8>,
    meta: Arc<M>,
    limit: usize,
}

/// The thread, from the slot's side.
pub(crate) struct UdfThread<M> {
    jobs: Sender<Job<M>>,
    results: Receiver<BindingCall>,
}

impl<M: Send + Sync + 'static> UdfThread<M> {
    pub fn start(index: usize, hooks: Arc<Hooks<M>>) -> std::io::Result<Self> {
        let (jobs, job_rx) = mpsc::channel::<Job<M>>();
        let (result_tx, results) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("roma-udf-{index}"))
            .spawn(move || {
                while let Some(job) = recv_until(&job_rx, None) {
                    let call = hooks.call_binding(&job.name, &job.payload, &job.meta, job.limit);
                    drop(job.meta);
                    if result_tx.send(call).is_err() {
                        return;
                    }
                }
            })?;
        Ok(UdfThread { jobs, results })
    }

    /// Runs one call, waiting until `deadline`. `None`: the call did not finish in time (or the
    /// thread is gone); this thread must not be used again.
    pub fn call(
        &self,
        name: String,
        payload: Vec<u8>,
        meta: &Arc<M>,
        limit: usize,
        deadline: Instant,
    ) -> Option<BindingCall> {
        let job = Job {
            name,
            payload,
            meta: Arc::clone(meta),
            limit,
        };
        self.jobs.send(job).ok()?;
        recv_until(&self.results, Some(deadline))
    }
}

/// Receives, sleeping until `deadline` (`None`: forever).
fn recv_until<T>(rx: &Receiver<T>, deadline: Option<Instant>) -> Option<T> {
    match deadline {
        None => rx.recv().ok(),
        // A timeout and a vanished thread both mean: no answer in time.
        Some(d) => rx
            .recv_timeout(d.saturating_duration_since(Instant::now()))
            .ok(),
    }
}
