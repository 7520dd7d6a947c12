//! Tenant pools: one dispatcher (its own worker processes and queues) per tenant, so a worker
//! that one tenant's code compromised never receives another tenant's requests, inputs or
//! metadata. Exists apart from the service so that, with the option off, the request path is
//! the plain dispatcher and pays only the branch that chooses it.

use roma_core::{
    CodeObject, Dispatcher, DispatcherConfig, DispatcherStats, ErrorKind, InvocationRequest,
    RomaError,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The tag (on a code object and on a request) that names its tenant under
/// [`crate::Config::tenant_pools`]. Without it a code object's tenant is its `id`, and a
/// request's is the tenant that loaded its version.
pub const TENANT_TAG: &str = "roma.tenant";

/// Starts one tenant's dispatcher.
pub(crate) type PoolFactory<M> =
    dyn Fn(DispatcherConfig) -> Result<Dispatcher<M>, RomaError> + Send + Sync;

/// Every tenant's pool, created on the tenant's first load.
pub(crate) struct Tenants<M: Send + Sync + 'static> {
    /// One tenant's dispatcher settings (`number_of_workers` is the per-tenant count).
    per_tenant: DispatcherConfig,
    max_tenants: usize,
    start: Box<PoolFactory<M>>,
    state: Mutex<State<M>>,
}

struct State<M: Send + Sync + 'static> {
    stopped: bool,
    pools: HashMap<String, Arc<Dispatcher<M>>>,
    /// Which tenants loaded each version, for requests that name no tenant.
    owners: HashMap<String, Vec<String>>,
}

impl<M: Send + Sync + 'static> Tenants<M> {
    pub(crate) fn new(
        per_tenant: DispatcherConfig,
        max_tenants: usize,
        start: Box<PoolFactory<M>>,
    ) -> Self {
        Tenants {
            per_tenant,
            max_tenants,
            start,
            state: Mutex::new(State {
                stopped: false,
                pools: HashMap::new(),
                owners: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // The state is a pair of maps updated in single statements: a panic elsewhere leaves
        // it consistent, so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pool that `code` loads into, started (blocking until its workers are warm) on the
    /// tenant's first load; records the tenant as an owner of the code's version.
    pub(crate) fn for_load(&self, code: &CodeObject) -> Result<Arc<Dispatcher<M>>, RomaError> {
        let tenant = code.tags.get(TENANT_TAG).unwrap_or(&code.id).clone();
        let pool = self.pool_or_start(&tenant)?;
        let mut st = self.lock();
        let owners = st.owners.entry(code.version_string.clone()).or_default();
        if !owners.contains(&tenant) {
            owners.push(tenant);
        }
        Ok(pool)
    }

    fn pool_or_start(&self, tenant: &str) -> Result<Arc<Dispatcher<M>>, RomaError> {
        {
            let st = self.lock();
            if st.stopped {
                return Err(stopped());
            }
            if let Some(p) = st.pools.get(tenant) {
                return Ok(Arc::clone(p));
            }
            if st.pools.len() >= self.max_tenants {
                return Err(too_many(self.max_tenants));
            }
        }
        // Started without the lock, so other tenants' requests go on meanwhile; a pool that
        // loses a race with another start for the same tenant is stopped.
        let started = Arc::new((self.start)(self.per_tenant.clone())?);
        let mut st = self.lock();
        let refusal = if st.stopped {
            Some(stopped())
        } else if let Some(p) = st.pools.get(tenant) {
            let p = Arc::clone(p);
            drop(st);
            started.stop();
            return Ok(p);
        } else if st.pools.len() >= self.max_tenants {
            Some(too_many(self.max_tenants))
        } else {
            None
        };
        if let Some(e) = refusal {
            drop(st);
            started.stop();
            return Err(e);
        }
        st.pools.insert(tenant.to_owned(), Arc::clone(&started));
        Ok(started)
    }

    /// The pool a request runs in: its tenant tag's, else its version's only owner.
    pub(crate) fn for_request(
        &self,
        request: &InvocationRequest<M>,
    ) -> Result<Arc<Dispatcher<M>>, RomaError> {
        let st = self.lock();
        if st.stopped {
            return Err(stopped());
        }
        let tenant = match request.tags.get(TENANT_TAG) {
            Some(t) => t.as_str(),
            None => match st.owners.get(&request.version_string).map(Vec::as_slice) {
                Some([only]) => only.as_str(),
                Some(_) => {
                    return Err(RomaError::invalid_argument(format!(
                        "version {:?} was loaded by several tenants; name the request's tenant \
                         with the {TENANT_TAG:?} tag",
                        request.version_string
                    )));
                }
                None => return Err(not_loaded(&request.version_string)),
            },
        };
        st.pools
            .get(tenant)
            .cloned()
            .ok_or_else(|| not_loaded(&request.version_string))
    }

    /// The one pool every request of a batch runs in; a batch across tenants is refused.
    pub(crate) fn for_batch(
        &self,
        requests: &[InvocationRequest<M>],
    ) -> Result<Option<Arc<Dispatcher<M>>>, RomaError> {
        if self.lock().stopped {
            return Err(stopped());
        }
        let mut chosen: Option<Arc<Dispatcher<M>>> = None;
        for r in requests {
            let pool = self.for_request(r)?;
            match &chosen {
                Some(c) if !Arc::ptr_eq(c, &pool) => {
                    return Err(RomaError::invalid_argument(
                        "a batch's requests belong to several tenants; with tenant pools a \
                         batch runs in one tenant's workers: submit one batch per tenant",
                    ));
                }
                Some(_) => {}
                None => chosen = Some(pool),
            }
        }
        Ok(chosen)
    }

    /// Every pool, as they are now.
    pub(crate) fn all(&self) -> Vec<Arc<Dispatcher<M>>> {
        self.lock().pools.values().cloned().collect()
    }

    /// One tenant's pool, if it has one.
    pub(crate) fn get(&self, tenant: &str) -> Option<Arc<Dispatcher<M>>> {
        self.lock().pools.get(tenant).cloned()
    }

    /// Stops every pool; no pool starts after this.
    pub(crate) fn stop(&self) {
        let pools = {
            let mut st = self.lock();
            st.stopped = true;
            st.pools.values().cloned().collect::<Vec<_>>()
        };
        for p in pools {
            p.stop();
        }
    }

    /// The pools' stats, added together (workers listed pool after pool).
    pub(crate) fn stats(&self) -> DispatcherStats {
        let mut total = DispatcherStats {
            workers: Vec::new(),
            queued: 0,
            capacity: 0,
            cached_versions: 0,
        };
        for p in self.all() {
            let s = p.stats();
            total.workers.extend(s.workers);
            total.queued += s.queued;
            total.capacity += s.capacity;
            total.cached_versions += s.cached_versions;
        }
        total
    }
}

fn stopped() -> RomaError {
    RomaError::new(ErrorKind::Cancelled, "the service was stopped")
}

fn too_many(max: usize) -> RomaError {
    RomaError::invalid_argument(format!(
        "every tenant pool is taken (max_tenants = {max}); raise Config::max_tenants"
    ))
}

fn not_loaded(version: &str) -> RomaError {
    RomaError::new(
        ErrorKind::VersionNotFound,
        format!("version {version:?} is not loaded for this request's tenant"),
    )
}
