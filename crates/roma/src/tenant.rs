//! Tenant pools: one dispatcher (its own worker processes and queues) per tenant, so a worker
//! that one tenant's code compromised never receives another tenant's requests, inputs or
//! metadata. Exists apart from the service so that, with the option off, the request path is
//! the plain dispatcher and pays only the branch that chooses it.
//!
//! At `max_tenants`, a new tenant's load evicts the least recently used pool that is idle and
//! that no caller holds (see `State::eviction_candidate`), so eviction never cuts a request or a
//! load short; the evicted tenant's versions go with it.

use roma_core::{CodeObject, ErrorKind, InvocationRequest, RomaError};
use roma_dispatch::{Dispatcher, DispatcherConfig, DispatcherStats};
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
    pools: HashMap<String, Pool<M>>,
    /// Which tenants loaded each version, for requests that name no tenant.
    owners: HashMap<String, Vec<String>>,
    /// Counts uses, for least-recently-used eviction.
    clock: u64,
}

/// One tenant's dispatcher and when it was last chosen.
struct Pool<M: Send + Sync + 'static> {
    dispatcher: Arc<Dispatcher<M>>,
    last_used: u64,
}

impl<M: Send + Sync + 'static> State<M> {
    /// The pool of `tenant`, marked as just used.
    fn touch(&mut self, tenant: &str) -> Option<Arc<Dispatcher<M>>> {
        self.clock += 1;
        let now = self.clock;
        self.pools.get_mut(tenant).map(|p| {
            p.last_used = now;
            Arc::clone(&p.dispatcher)
        })
    }

    /// The least recently used pool that may be evicted now: idle (nothing queued, running
    /// or loading), and held by no caller. Every caller that submits to a pool holds a clone
    /// of its `Arc` from the moment it is chosen (under this lock) until its submission is
    /// queued, where `is_idle` sees it; so no request chosen for an evicted pool exists.
    fn eviction_candidate(&self) -> Option<String> {
        self.pools
            .iter()
            .filter(|(_, p)| Arc::strong_count(&p.dispatcher) == 1 && p.dispatcher.is_idle())
            .min_by_key(|(_, p)| p.last_used)
            .map(|(t, _)| t.clone())
    }

    /// Removes `tenant`'s pool and its claims on versions; the caller stops the pool.
    fn evict(&mut self, tenant: &str) -> Option<Arc<Dispatcher<M>>> {
        let pool = self.pools.remove(tenant)?;
        self.owners.retain(|_, owners| {
            owners.retain(|t| t != tenant);
            !owners.is_empty()
        });
        Some(pool.dispatcher)
    }
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
                clock: 0,
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
            let mut st = self.lock();
            if st.stopped {
                return Err(stopped());
            }
            if let Some(p) = st.touch(tenant) {
                return Ok(p);
            }
            if st.pools.len() >= self.max_tenants && st.eviction_candidate().is_none() {
                return Err(too_many(self.max_tenants));
            }
        }
        // Started without the lock, so other tenants' requests go on meanwhile; a pool that
        // loses a race with another start for the same tenant is stopped. The pool to evict
        // is chosen only once the new one runs, so that a start that fails evicts nothing.
        let started = Arc::new((self.start)(self.per_tenant.clone())?);
        let mut st = self.lock();
        let mut evicted = None;
        let refusal = if st.stopped {
            Some(stopped())
        } else if let Some(p) = st.touch(tenant) {
            drop(st);
            started.stop();
            return Ok(p);
        } else if st.pools.len() >= self.max_tenants {
            match st.eviction_candidate() {
                Some(victim) => {
                    evicted = st.evict(&victim);
                    None
                }
                None => Some(too_many(self.max_tenants)),
            }
        } else {
            None
        };
        if let Some(e) = refusal {
            drop(st);
            started.stop();
            return Err(e);
        }
        st.clock += 1;
        let last_used = st.clock;
        st.pools.insert(
            tenant.to_owned(),
            Pool {
                dispatcher: Arc::clone(&started),
                last_used,
            },
        );
        drop(st);
        // Idle and held by no one: stopping it cuts nothing short.
        if let Some(old) = evicted {
            old.stop();
        }
        Ok(started)
    }

    /// The pool a request runs in: its tenant tag's, else its version's only owner.
    pub(crate) fn for_request(
        &self,
        request: &InvocationRequest<M>,
    ) -> Result<Arc<Dispatcher<M>>, RomaError> {
        let mut st = self.lock();
        if st.stopped {
            return Err(stopped());
        }
        let tenant = match request.tags.get(TENANT_TAG) {
            Some(t) => t.clone(),
            None => match st.owners.get(&request.version_string).map(Vec::as_slice) {
                Some([only]) => only.clone(),
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
        st.touch(&tenant)
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
        self.lock()
            .pools
            .values()
            .map(|p| Arc::clone(&p.dispatcher))
            .collect()
    }

    /// One tenant's pool, if it has one.
    pub(crate) fn get(&self, tenant: &str) -> Option<Arc<Dispatcher<M>>> {
        self.lock()
            .pools
            .get(tenant)
            .map(|p| Arc::clone(&p.dispatcher))
    }

    /// Stops every pool; no pool starts after this.
    pub(crate) fn stop(&self) {
        let pools = {
            let mut st = self.lock();
            st.stopped = true;
            st.pools
                .values()
                .map(|p| Arc::clone(&p.dispatcher))
                .collect::<Vec<_>>()
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
        "every tenant pool is taken and busy (max_tenants = {max}; an idle one would have been \
         evicted); raise Config::max_tenants or load again once one is idle"
    ))
}

fn not_loaded(version: &str) -> RomaError {
    RomaError::new(
        ErrorKind::VersionNotFound,
        format!(
            "version {version:?} is not loaded for this request's tenant (a tenant whose idle \
             pool was evicted at max_tenants loads its code again)"
        ),
    )
}
