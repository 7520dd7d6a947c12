//! [`RomaService`]: the public API over the dispatcher and its sandboxed workers.

use crate::config::Config;
use crate::hooks::Hooks;
use crate::locate::find_worker;
use crate::tenant::Tenants;
use crate::worker_client::{WorkerClient, WorkerMode, WorkerSetup};
use roma_core::{CodeObject, InvocationRequest, ResponseObject, RomaError};
use roma_dispatch::{DispatchFuture, Dispatcher, DispatcherStats, ExecutionToken, Submitted};
use std::ops::Deref;
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// Runs untrusted JavaScript and WebAssembly in a pool of jailed worker processes.
///
/// `M` is the metadata type of requests: it reaches the host functions and the logging
/// function of its request, stays in the host, and is dropped once the request's callback has
/// run (on every path: success, error, cancel, refusal, worker crash).
///
/// Every request accepted (`Ok` from `execute`, `batch_execute`, `load_code_obj`) gets exactly
/// one callback; a refused one (`Err`) gets none. See the crate docs for the threading and
/// ordering rules.
pub struct RomaService<M: Send + Sync + 'static = ()> {
    pools: Pools<M>,
    /// `Config::queue_wait_timeout`.
    queue_wait: Duration,
    /// [`RomaService::cgroups`].
    cgroups: Option<String>,
}

/// Where requests run: one pool for all, or one per tenant ([`Config::tenant_pools`]).
enum Pools<M: Send + Sync + 'static> {
    Shared(Dispatcher<M>),
    /// Boxed: the shared variant, the common one, stays small.
    Tenants(Box<Tenants<M>>),
}

/// The pool one call goes to: the shared one, borrowed (no reference count touched on the
/// common path), or a tenant's, held for the call.
enum Pool<'a, M: Send + Sync + 'static> {
    Shared(&'a Dispatcher<M>),
    Tenant(Arc<Dispatcher<M>>),
}

impl<M: Send + Sync + 'static> Deref for Pool<'_, M> {
    type Target = Dispatcher<M>;

    fn deref(&self) -> &Dispatcher<M> {
        match self {
            Pool::Shared(d) => d,
            Pool::Tenant(d) => d,
        }
    }
}

impl<M: Send + Sync + 'static> RomaService<M> {
    /// Starts and warms `config.number_of_workers` workers, in parallel. Fails (and leaves
    /// nothing running) if the worker (node and the worker library), V8 or the sandbox cannot start.
    pub fn new(mut config: Config<M>) -> Result<Self, RomaError> {
        config.validate()?;
        let binary = find_worker(
            config.worker_library.as_deref(),
            config.node_binary.as_deref(),
        )?;
        let bindings = roma_udf::Registry::new(std::mem::take(&mut config.bindings))
            .map_err(|e| RomaError::invalid_argument(e.to_string()))?;
        let mut setup = WorkerSetup::from_config(&config, binary, WorkerMode::Serve)?;
        setup.binding_names = bindings.names();
        let cgroups = setup.cgroup_mode.clone();
        let setup = Arc::new(setup);
        let executor = if bindings.has_async() {
            Some(
                roma_udf::Executor::new(config.async_binding_threads).map_err(|e| {
                    RomaError::internal(format!("cannot start the binding executor: {e}"))
                })?,
            )
        } else {
            None
        };
        let hooks = Arc::new(Hooks {
            logger: config.logger.take(),
            bindings,
            executor,
        });
        let queue_wait = config.queue_wait_timeout;
        let pools = match config.tenant_pools {
            None => Pools::Shared(Dispatcher::new(config.dispatcher(), move |index| {
                WorkerClient::start(index, Arc::clone(&setup), Arc::clone(&hooks))
            })?),
            Some(per_tenant) => {
                let mut dc = config.dispatcher();
                dc.number_of_workers = per_tenant;
                Pools::Tenants(Box::new(Tenants::new(
                    dc,
                    config.max_tenants,
                    Box::new(move |dc| {
                        let (setup, hooks) = (Arc::clone(&setup), Arc::clone(&hooks));
                        Dispatcher::new(dc, move |index| {
                            WorkerClient::start(index, Arc::clone(&setup), Arc::clone(&hooks))
                        })
                    }),
                )))
            }
        };
        Ok(RomaService {
            pools,
            queue_wait,
            cgroups,
        })
    }

    /// Loads a code object into every worker (with tenant pools, every worker of its tenant;
    /// a tenant's first load starts its workers and returns once they are warm). `callback`
    /// runs once every worker has it, with the first failure if any. Loading an existing
    /// version replaces it.
    pub fn load_code_obj<F>(&self, code: CodeObject, callback: F) -> Result<(), RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        self.pool_for_load(&code)?.load(code, callback)
    }

    /// Runs a handler of a loaded version on the least busy worker. `Ok` means accepted:
    /// `callback` runs later, once. `Err` means refused at once (queue full, unknown version,
    /// bad request, stopped), and `callback` is dropped without being called.
    pub fn execute<F>(
        &self,
        request: InvocationRequest<M>,
        callback: F,
    ) -> Result<ExecutionToken, RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        self.pool_for(&request)?.execute(request, callback)
    }

    /// [`execute`](Self::execute), but while the queues are full it waits for room, up to
    /// [`Config::queue_wait_timeout`], instead of failing at once: many threads can submit
    /// more requests than the queues hold without a retry loop. `QueueFull` only once the
    /// queues stayed full that long. Called from a callback (on one of roma's threads), it
    /// does not wait.
    pub fn execute_waiting<F>(
        &self,
        request: InvocationRequest<M>,
        callback: F,
    ) -> Result<ExecutionToken, RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        self.pool_for(&request)?
            .execute_waiting(request, self.queue_wait, callback)
    }

    /// Runs a request and waits for its response on the calling thread: waits for room in the
    /// queues as [`execute_waiting`](Self::execute_waiting) does, then for the answer (which
    /// the request's own timeout bounds). From a callback (on one of roma's threads) it is
    /// refused with `InvalidArgument`: the thread it would block may be the one to run the
    /// request. A host function that blocks on it holds its own request until that answer.
    ///
    /// When a worker is idle and nothing is queued, the request runs on the calling thread,
    /// which drives the idle worker's channel itself (no roma thread is woken for it, and the
    /// answer needs no wake-up of the caller); host functions run inline
    /// ([`Config::host_functions_inline`]) then run on the calling thread too.
    pub fn execute_blocking(
        &self,
        request: InvocationRequest<M>,
    ) -> Result<ResponseObject, RomaError> {
        self.refuse_on_own_thread("execute_blocking")?;
        self.pool_for(&request)?
            .execute_blocking(request, self.queue_wait, |_| {})
    }

    /// Loads a code object into every worker and waits until every worker has it (or for
    /// the first failure, or the load timeout).
    pub fn load_blocking(&self, code: CodeObject) -> Result<ResponseObject, RomaError> {
        self.refuse_on_own_thread("load_blocking")?;
        let (tx, rx) = mpsc::channel();
        self.load_code_obj(code, move |r| {
            let _ = tx.send(r);
        })?;
        answer(rx.recv())
    }

    /// Runs every request, or refuses them all at once if they do not all fit in the queues
    /// now (`QueueFull`, naming `worker_queue_max_items`). For a batch of any size, use
    /// [`batch_execute_waiting`](Self::batch_execute_waiting).
    /// `callback` runs once, with one result per request, in request order.
    pub fn batch_execute<F>(
        &self,
        requests: Vec<InvocationRequest<M>>,
        callback: F,
    ) -> Result<Vec<ExecutionToken>, RomaError>
    where
        F: FnOnce(Vec<Result<ResponseObject, RomaError>>) + Send + 'static,
    {
        match self.pool_for_batch(&requests)? {
            Some(d) => d.batch_execute(requests, callback),
            None => {
                callback(Vec::new());
                Ok(Vec::new())
            }
        }
    }

    /// A batch of any size, as Roma's `BatchExecute`: the requests are enqueued in order as
    /// room frees in the queues (a batch larger than the queues runs in pieces), waiting up to
    /// [`Config::queue_wait_timeout`] whenever they are full; returns once all are enqueued.
    /// `callback` runs once, with one result per request, in request order. `Err` (and no
    /// callback) when the batch is refused before any request is enqueued; a later piece that
    /// cannot be enqueued is answered in the callback, each of its requests with the error.
    pub fn batch_execute_waiting<F>(
        &self,
        requests: Vec<InvocationRequest<M>>,
        callback: F,
    ) -> Result<Vec<ExecutionToken>, RomaError>
    where
        F: FnOnce(Vec<Result<ResponseObject, RomaError>>) + Send + 'static,
    {
        match self.pool_for_batch(&requests)? {
            Some(d) => d.batch_execute_waiting(requests, self.queue_wait, callback),
            None => {
                callback(Vec::new());
                Ok(Vec::new())
            }
        }
    }

    /// [`batch_execute_waiting`](Self::batch_execute_waiting), then waits for every result,
    /// on the calling thread.
    pub fn batch_execute_blocking(
        &self,
        requests: Vec<InvocationRequest<M>>,
    ) -> Result<Vec<Result<ResponseObject, RomaError>>, RomaError> {
        self.refuse_on_own_thread("batch_execute_blocking")?;
        let (tx, rx) = mpsc::channel();
        self.batch_execute_waiting(requests, move |r| {
            let _ = tx.send(Ok(r));
        })?;
        answer(rx.recv())
    }

    /// Cancels an accepted execution: a queued one is answered `Cancelled` at once, a running
    /// one is stopped inside the worker and answered `Cancelled`. Returns false if it had
    /// already finished.
    pub fn cancel(&self, token: &ExecutionToken) -> bool {
        match &self.pools {
            Pools::Shared(d) => d.cancel(token),
            // A token names its dispatcher: every other pool answers false at once.
            Pools::Tenants(t) => t.all().iter().any(|d| d.cancel(token)),
        }
    }

    /// [`load_code_obj`](Self::load_code_obj) as a future. The futures of roma need no
    /// particular runtime: a roma thread completes them and wakes their task through the
    /// `Waker` they were polled with, so they work under tokio, async-std, smol or
    /// `futures::executor::block_on` alike.
    pub fn load_code_obj_async(&self, code: CodeObject) -> DispatchFuture<ResponseObject> {
        match self.pool_for_load(&code) {
            Ok(d) => d.load_async(code),
            Err(e) => DispatchFuture::refused(e),
        }
    }

    /// [`execute`](Self::execute) as a future, for any executor. Dropping the future does not
    /// cancel the request; use its token.
    pub fn execute_async(&self, request: InvocationRequest<M>) -> DispatchFuture<ResponseObject> {
        match self.pool_for(&request) {
            Ok(d) => d.execute_async(request),
            Err(e) => DispatchFuture::refused(e),
        }
    }

    /// For a caller that may block its thread for the run when a worker is idle: when the
    /// worker the request would go to is idle and nothing is queued, the request holds that
    /// worker and comes back as [`Submitted::Here`], whose [`run`](roma_dispatch::DirectRun::run)
    /// drives it on the calling thread, as [`execute_blocking`](Self::execute_blocking) does
    /// (no roma thread woken, no wake-up of the caller for the answer); otherwise it is
    /// submitted as by [`execute_async`](Self::execute_async) and comes back as
    /// [`Submitted::Queued`]. `run` blocks the calling thread for the whole execution, so an
    /// async server calls this only on a thread whose blocking holds up nothing else (roma
    /// serve: a connection thread serving that one connection); an idle request then skips
    /// two thread hand-overs, and a busy service blocks no more threads than it has idle
    /// workers.
    pub fn execute_here_or_async(&self, request: InvocationRequest<M>) -> Submitted<M> {
        match self.pool_for(&request) {
            Ok(d) => d.execute_here_or_async(request),
            Err(e) => Submitted::Queued(DispatchFuture::refused(e)),
        }
    }

    /// [`batch_execute`](Self::batch_execute) as a future, for any executor.
    pub fn batch_execute_async(
        &self,
        requests: Vec<InvocationRequest<M>>,
    ) -> DispatchFuture<Vec<Result<ResponseObject, RomaError>>> {
        match self.pool_for_batch(&requests) {
            Ok(Some(d)) => d.batch_execute_async(requests),
            Ok(None) => DispatchFuture::ready(Ok(Vec::new())),
            Err(e) => DispatchFuture::refused(e),
        }
    }

    /// The pool a load goes to (with tenant pools, its tenant's, started on first use).
    fn pool_for_load(&self, code: &CodeObject) -> Result<Pool<'_, M>, RomaError> {
        match &self.pools {
            Pools::Shared(d) => Ok(Pool::Shared(d)),
            Pools::Tenants(t) => t.for_load(code).map(Pool::Tenant),
        }
    }

    /// The pool a request goes to.
    fn pool_for(&self, request: &InvocationRequest<M>) -> Result<Pool<'_, M>, RomaError> {
        match &self.pools {
            Pools::Shared(d) => Ok(Pool::Shared(d)),
            Pools::Tenants(t) => t.for_request(request).map(Pool::Tenant),
        }
    }

    /// The pool a batch goes to; `None` for an empty batch under tenant pools (it names no
    /// tenant, and is answered with no results).
    fn pool_for_batch(
        &self,
        requests: &[InvocationRequest<M>],
    ) -> Result<Option<Pool<'_, M>>, RomaError> {
        match &self.pools {
            Pools::Shared(d) => Ok(Some(Pool::Shared(d))),
            Pools::Tenants(t) => Ok(t.for_batch(requests)?.map(Pool::Tenant)),
        }
    }

    /// Stops the service: queued requests and unanswered loads get `Cancelled`, running ones
    /// finish and answer, workers exit. Later calls are refused. Also done on drop, so a
    /// service must outlive the requests it is to run: drop it (or call `stop`) only after
    /// their callbacks ran, or use the `_blocking` forms, which return with the answer.
    /// Stopping cannot fail: every worker is ended whatever state it is in.
    pub fn stop(&self) {
        match &self.pools {
            Pools::Shared(d) => d.stop(),
            Pools::Tenants(t) => t.stop(),
        }
    }

    /// A blocking form called from a callback would block the roma thread that may be the one
    /// to run its request: refused, so it cannot hang.
    fn refuse_on_own_thread(&self, what: &str) -> Result<(), RomaError> {
        let own = match &self.pools {
            Pools::Shared(d) => d.on_dispatcher_thread(),
            Pools::Tenants(t) => t.all().iter().any(|d| d.on_dispatcher_thread()),
        };
        if own {
            return Err(RomaError::invalid_argument(format!(
                "{what} was called from a callback, on one of roma's own threads, where it could \
                 wait for itself; submit with a callback there instead"
            )));
        }
        Ok(())
    }

    /// The queues and workers, as they are now; with tenant pools, every pool's added
    /// together (workers listed pool after pool, in no fixed order of tenants).
    pub fn stats(&self) -> DispatcherStats {
        match &self.pools {
            Pools::Shared(d) => d.stats(),
            Pools::Tenants(t) => t.stats(),
        }
    }

    /// With cgroup limits set ([`Config::cgroup_memory_max_mb`] and the others), which cgroup
    /// interface the workers' cgroups use and where, as chosen at start (`cgroup v2 (...)` or
    /// `cgroup v1 (memory at ..., ...)`); `None` without cgroup limits.
    pub fn cgroups(&self) -> Option<&str> {
        self.cgroups.as_deref()
    }

    /// With tenant pools, one tenant's queues and workers; `None` without tenant pools or
    /// before the tenant's first load.
    pub fn tenant_stats(&self, tenant: &str) -> Option<DispatcherStats> {
        match &self.pools {
            Pools::Shared(_) => None,
            Pools::Tenants(t) => t.get(tenant).map(|d| d.stats()),
        }
    }
}

impl<M: Send + Sync + 'static> std::fmt::Debug for RomaService<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomaService")
            .field(
                "dispatcher",
                match &self.pools {
                    Pools::Shared(d) => d as &dyn std::fmt::Debug,
                    Pools::Tenants(_) => &"one per tenant",
                },
            )
            .finish()
    }
}

/// The answer a callback sent: every accepted request gets exactly one callback, so a closed
/// channel means it was dropped unanswered, a bug in roma.
fn answer<T>(r: Result<Result<T, RomaError>, mpsc::RecvError>) -> Result<T, RomaError> {
    r.unwrap_or_else(|_| {
        Err(RomaError::internal(
            "the request's callback was dropped without being called",
        ))
    })
}
