//! What every request shares: the roma service, the tokens, the metrics, and the drain state
//! that admits requests and counts the ones in flight, so a drain knows when all are answered.

use crate::api::RequestMetadata;
use crate::auth::Tokens;
use crate::error::{ApiError, outcome};
use crate::metrics::{Metrics, ServiceFigures};
use crate::settings::Limits;
use roma::WorkerHealth;
use roma::{CodeObject, ExecutionToken, InvocationRequest, ResponseObject, RomaError, RomaService};
use roma_store::PutReceipt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;

/// The state of one server.
#[derive(Debug)]
pub struct AppState {
    /// The roma service; shared so a drain can stop it while requests still hold it.
    pub service: Arc<RomaService<RequestMetadata>>,
    /// The bearer tokens.
    pub tokens: Tokens,
    /// The counters.
    pub metrics: Metrics,
    /// The code store and what this server has applied of it.
    pub replica: Arc<crate::replica::Replica>,
    /// The request limits.
    pub limits: Limits,
    /// `service.default_timeout`: what a client's deadline is compared with when the request
    /// names no timeout.
    pub default_timeout: Duration,
    draining: AtomicBool,
    /// Wakes a drain each time a request is answered.
    answered: Notify,
    next_id: AtomicU64,
    id_prefix: String,
    /// Executions a client named (gRPC `request_id`), for `Cancel`; each entry lives while
    /// its execution is in flight, so the map is bounded by the queues.
    named: std::sync::Mutex<std::collections::HashMap<String, NamedSlot>>,
}

/// Removes a named execution from the map when its call ends, however it ends.
#[derive(Debug)]
pub struct Named<'a> {
    state: &'a AppState,
    id: String,
}

/// What a reserved name holds: its execution once submitted, or a cancel that came first.
#[derive(Debug, Default)]
struct NamedSlot {
    token: Option<ExecutionToken>,
    cancel_requested: bool,
}

impl Named<'_> {
    /// Gives the name its submitted execution, which is cancelled at once if a cancel for the
    /// name came while it was being submitted (it may already be running then).
    pub fn attach(&self, token: &ExecutionToken) {
        let mut map = self.state.named_map();
        let Some(slot) = map.get_mut(&self.id) else {
            return;
        };
        if slot.cancel_requested {
            drop(map);
            self.state.service.cancel(token);
        } else {
            slot.token = Some(token.clone());
        }
    }
}

impl Drop for Named<'_> {
    fn drop(&mut self) {
        self.state.named_map().remove(&self.id);
    }
}

/// Held while a request is being served; dropping it counts the request answered.
#[derive(Debug)]
pub struct Admission<'a>(&'a AppState);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        self.0.metrics.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.0.answered.notify_waiters();
    }
}

/// Cancels the executions it holds when dropped before [`disarm`](Self::disarm): the client
/// went away (its connection closed, so the handler's future was dropped) and nobody waits
/// for the answer, so the worker stops running it.
#[derive(Debug)]
pub struct CancelOnDrop<'a> {
    service: &'a RomaService<RequestMetadata>,
    tokens: Vec<ExecutionToken>,
}

impl CancelOnDrop<'_> {
    /// The answer came: nothing to cancel.
    pub fn disarm(mut self) {
        self.tokens.clear();
    }
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        for t in &self.tokens {
            self.service.cancel(t);
        }
    }
}

impl AppState {
    /// State for `service`.
    pub fn new(
        service: RomaService<RequestMetadata>,
        tokens: Tokens,
        limits: Limits,
        default_timeout: Duration,
        replica: Arc<crate::replica::Replica>,
    ) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        AppState {
            service: Arc::new(service),
            tokens,
            metrics: Metrics::default(),
            replica,
            limits,
            default_timeout,
            draining: AtomicBool::new(false),
            answered: Notify::new(),
            next_id: AtomicU64::new(1),
            id_prefix: format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff),
            named: Default::default(),
        }
    }

    /// Admits a request, or `None` while draining.
    pub fn admit(&self) -> Option<Admission<'_>> {
        // Counted before the check, so a drain that sees 0 in flight after setting the flag
        // knows no request slipped in between.
        self.metrics.in_flight.fetch_add(1, Ordering::SeqCst);
        let a = Admission(self);
        if self.draining.load(Ordering::SeqCst) {
            return None;
        }
        Some(a)
    }

    /// Cancels `tokens` if the guard is dropped before it is disarmed.
    pub fn cancel_on_drop(&self, tokens: Vec<ExecutionToken>) -> CancelOnDrop<'_> {
        CancelOnDrop {
            service: &self.service,
            tokens,
        }
    }

    /// Loads `code` through the code store and counts the load by its outcome.
    pub async fn load_code(
        &self,
        code: CodeObject,
    ) -> Result<(ResponseObject, PutReceipt), ApiError> {
        let version = code.version_string.clone();
        let r = self.replica.load(&self.service, code).await;
        self.metrics.record_load(&version, outcome(&r));
        r
    }

    /// Submits `requests` as one batch and waits for their results, in request order. Dropped
    /// before they come (the client went away), it cancels the batch's executions.
    pub async fn run_batch(
        &self,
        requests: Vec<InvocationRequest<RequestMetadata>>,
    ) -> Result<Vec<Result<ResponseObject, RomaError>>, RomaError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tokens = self.service.batch_execute(requests, move |results| {
            let _ = tx.send(results);
        })?;
        let guard = self.cancel_on_drop(tokens);
        let results = rx.await.map_err(|_| {
            RomaError::internal("the batch's callback was dropped without being called")
        })?;
        guard.disarm();
        Ok(results)
    }

    fn named_map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, NamedSlot>> {
        self.named.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves the name `id` for an execution about to be submitted, until the guard drops
    /// ([`Named::attach`] gives it the execution); `None` if that name is taken. The name
    /// exists before the submission so that a cancel arriving while it is submitted reaches it.
    pub fn reserve_name(&self, id: &str) -> Option<Named<'_>> {
        let mut map = self.named_map();
        if map.contains_key(id) {
            return None;
        }
        map.insert(id.to_string(), NamedSlot::default());
        Some(Named {
            state: self,
            id: id.to_string(),
        })
    }

    /// Cancels the execution named `id`; false if none is in flight.
    pub fn cancel_named(&self, id: &str) -> bool {
        let token = {
            let mut map = self.named_map();
            let Some(slot) = map.get_mut(id) else {
                return false;
            };
            match &slot.token {
                Some(t) => t.clone(),
                None => {
                    // Still being submitted: `attach` cancels it.
                    slot.cancel_requested = true;
                    return true;
                }
            }
        };
        self.service.cancel(&token)
    }

    /// A new request id.
    pub fn next_request_id(&self) -> String {
        format!(
            "{}-{}",
            self.id_prefix,
            self.next_id.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Starts refusing new requests (503) and reporting not ready.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether a drain started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight, or `within` passed; true if none is.
    pub async fn wait_idle(&self, within: Duration) -> bool {
        let until = tokio::time::Instant::now() + within;
        loop {
            let notified = self.answered.notified();
            if self.metrics.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return self.metrics.in_flight.load(Ordering::SeqCst) == 0;
            }
        }
    }

    /// Ready: not draining, the code store read once, a worker up, and some code loaded.
    pub fn readiness(&self) -> Result<(), &'static str> {
        if self.is_draining() {
            return Err("draining");
        }
        if !self.replica.synced() {
            return Err("the code store has not been read yet");
        }
        let stats = self.service.stats();
        if !stats.workers.iter().any(|w| w.health == WorkerHealth::Up) {
            return Err("no worker is up");
        }
        if !self.metrics.any_loaded() {
            return Err("no code loaded");
        }
        Ok(())
    }

    /// The service's figures for `/metrics`.
    pub fn figures(&self) -> ServiceFigures {
        let s = self.service.stats();
        let count = |h: WorkerHealth| s.workers.iter().filter(|w| w.health == h).count();
        ServiceFigures {
            queued: s.queued,
            capacity: s.capacity,
            workers: [
                ("up", count(WorkerHealth::Up)),
                ("respawning", count(WorkerHealth::Respawning)),
                ("down", count(WorkerHealth::Down)),
            ],
            cached_versions: s.cached_versions,
        }
    }
}
