//! [`RomaService`]: the public API over the dispatcher and its sandboxed workers.

use crate::config::Config;
use crate::hooks::Hooks;
use crate::locate::find_worker;
use crate::worker_client::{WorkerClient, WorkerSetup};
use roma_core::{
    CodeObject, DispatchFuture, Dispatcher, DispatcherStats, ExecutionToken, InvocationRequest,
    ResponseObject, RomaError,
};
use std::sync::Arc;

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
    dispatcher: Dispatcher<M>,
}

impl<M: Send + Sync + 'static> RomaService<M> {
    /// Starts and warms `config.number_of_workers` workers, in parallel. Fails (and leaves
    /// nothing running) if the worker (node and the worker library), V8 or the sandbox cannot start.
    pub fn new(mut config: Config<M>) -> Result<Self, RomaError> {
        let binary = find_worker(
            config.worker_library.as_deref(),
            config.node_binary.as_deref(),
        )?;
        let bindings = roma_udf::Registry::new(std::mem::take(&mut config.bindings))
            .map_err(|e| RomaError::invalid_argument(e.to_string()))?;
        let mut setup = WorkerSetup::from_config(&config, binary, false)?;
        setup.binding_names = bindings.names();
        let setup = Arc::new(setup);
        let executor = if bindings.has_async() {
            let threads = if config.async_binding_threads == 0 {
                16
            } else {
                config.async_binding_threads
            };
            Some(roma_udf::Executor::new(threads).map_err(|e| {
                RomaError::internal(format!("cannot start the binding executor: {e}"))
            })?)
        } else {
            None
        };
        let hooks = Arc::new(Hooks {
            logger: config.logger.take(),
            bindings,
            executor,
        });
        let dispatcher = Dispatcher::new(config.dispatcher(), move |index| {
            WorkerClient::start(index, Arc::clone(&setup), Arc::clone(&hooks))
        })?;
        Ok(RomaService { dispatcher })
    }

    /// Loads a code object into every worker. `callback` runs once every worker has it, with
    /// the first failure if any. Loading an existing version replaces it.
    pub fn load_code_obj<F>(&self, code: CodeObject, callback: F) -> Result<(), RomaError>
    where
        F: FnOnce(Result<ResponseObject, RomaError>) + Send + 'static,
    {
        self.dispatcher.load(code, callback)
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
        self.dispatcher.execute(request, callback)
    }

    /// Runs every request, or refuses them all at once if they do not all fit in the queues.
    /// `callback` runs once, with one result per request, in request order.
    pub fn batch_execute<F>(
        &self,
        requests: Vec<InvocationRequest<M>>,
        callback: F,
    ) -> Result<Vec<ExecutionToken>, RomaError>
    where
        F: FnOnce(Vec<Result<ResponseObject, RomaError>>) + Send + 'static,
    {
        self.dispatcher.batch_execute(requests, callback)
    }

    /// Cancels an accepted execution: a queued one is answered `Cancelled` at once, a running
    /// one is stopped inside the worker and answered `Cancelled`. Returns false if it had
    /// already finished.
    pub fn cancel(&self, token: &ExecutionToken) -> bool {
        self.dispatcher.cancel(token)
    }

    /// [`load_code_obj`](Self::load_code_obj) as a future, for any executor.
    pub fn load_code_obj_async(&self, code: CodeObject) -> DispatchFuture<ResponseObject> {
        self.dispatcher.load_async(code)
    }

    /// [`execute`](Self::execute) as a future, for any executor. Dropping the future does not
    /// cancel the request; use its token.
    pub fn execute_async(&self, request: InvocationRequest<M>) -> DispatchFuture<ResponseObject> {
        self.dispatcher.execute_async(request)
    }

    /// [`batch_execute`](Self::batch_execute) as a future, for any executor.
    pub fn batch_execute_async(
        &self,
        requests: Vec<InvocationRequest<M>>,
    ) -> DispatchFuture<Vec<Result<ResponseObject, RomaError>>> {
        self.dispatcher.batch_execute_async(requests)
    }

    /// Stops the service: queued requests and unanswered loads get `Cancelled`, running ones
    /// finish and answer, workers exit. Later calls are refused. Also done on drop.
    pub fn stop(&self) -> Result<(), RomaError> {
        self.dispatcher.stop();
        Ok(())
    }

    /// The queues and workers, as they are now.
    pub fn stats(&self) -> DispatcherStats {
        self.dispatcher.stats()
    }
}

impl<M: Send + Sync + 'static> std::fmt::Debug for RomaService<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RomaService")
            .field("dispatcher", &self.dispatcher)
            .finish()
    }
}
