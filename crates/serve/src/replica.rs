//! One server as a replica of the code store: every load goes through the store, and a
//! background task keeps the roma service equal to the store's content, so replicas that
//! share a store serve the same versions.
//!
//! A load through this server checks the store will take it, compiles it into the local
//! service, then writes it; the answer comes once the write is durable, with the store
//! revision that holds it. The sync task lists the store at a revision, loads every version
//! whose stored revision differs from what the service holds, forgets versions the store no
//! longer has (evicted), records the listing's revision as applied, and waits for the next
//! change; when the store is unreachable it keeps what it has and tries again. A version is
//! executable only once a load of it finished on every worker ([`Replica::check`]), so no
//! request runs a version some workers lack; the server reports ready only after its first
//! full sync.

use crate::api::RequestMetadata;
use crate::error::ApiError;
use roma::{CodeObject, ErrorKind, ResponseObject, RomaError, RomaService};
use roma_store::{CodeStore, PutReceipt, Revision, StoreError};
use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// The header (and gRPC metadata key) of a load's answer that names the store revision
/// holding it: once a replica's `roma_store_revision` reaches it, that replica serves it.
pub const STORE_REVISION_HEADER: &str = "x-roma-store-revision";

/// The longest pause between tries while the store is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the service holds of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// The store's content as of this revision: executable.
    Serving(Revision),
    /// A load compiled here but its write failed: the service may hold content the store
    /// does not, so the version is not executed until the next sync reloads it.
    Stale,
    /// The stored content at this revision did not load here (an error was logged); the
    /// version is not served until the store holds a newer one.
    Failed(Revision),
}

/// The replica's view of the store and what it has applied.
#[derive(Debug)]
pub struct Replica {
    store: Arc<dyn CodeStore>,
    /// One load into the service at a time, whether a client's or the sync task's, so their
    /// bookkeeping follows the order the service saw.
    load_lock: tokio::sync::Mutex<()>,
    held: std::sync::Mutex<HashMap<String, Held>>,
    applied: watch::Sender<Revision>,
    synced: AtomicBool,
    connected: AtomicBool,
    sync_errors: AtomicU64,
    apply_failures: AtomicU64,
    kick: Notify,
    stop: watch::Sender<bool>,
}

/// A store error as the client sees it.
pub fn api_error(e: StoreError) -> ApiError {
    match e {
        StoreError::TooLarge { .. } | StoreError::Full { .. } => {
            ApiError::Roma(RomaError::new(ErrorKind::PayloadTooLarge, e.to_string()))
        }
        StoreError::Unavailable(_) | StoreError::Contended(_) => {
            ApiError::Unavailable(e.to_string())
        }
        other => ApiError::Roma(RomaError::internal(other.to_string())),
    }
}

/// Opens the store the settings name.
pub async fn open_store(
    settings: &crate::settings::StoreSettings,
) -> Result<Arc<dyn CodeStore>, crate::error::ServeError> {
    use crate::settings::StoreKind;
    let limits = settings.limits;
    let fail = |e: StoreError| crate::error::ServeError::Config {
        key: "store".into(),
        message: e.to_string(),
    };
    Ok(match &settings.kind {
        StoreKind::Memory => Arc::new(roma_store::LocalStore::memory(limits)),
        StoreKind::Dir(d) => {
            let d = d.clone();
            Arc::new(
                tokio::task::spawn_blocking(move || roma_store::LocalStore::open(&d, limits))
                    .await
                    .map_err(|e| fail(StoreError::Settings(e.to_string())))?
                    .map_err(fail)?,
            )
        }
        StoreKind::Etcd(e) => Arc::new(
            roma_store::EtcdStore::connect(e.clone(), limits)
                .await
                .map_err(fail)?,
        ),
    })
}

impl Replica {
    /// A replica of `store`, not yet synced.
    pub fn new(store: Arc<dyn CodeStore>) -> Self {
        Replica {
            store,
            load_lock: tokio::sync::Mutex::new(()),
            held: Default::default(),
            applied: watch::channel(0).0,
            synced: AtomicBool::new(false),
            connected: AtomicBool::new(false),
            sync_errors: AtomicU64::new(0),
            apply_failures: AtomicU64::new(0),
            kick: Notify::new(),
            stop: watch::channel(false).0,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store revision this replica has applied.
    pub fn applied_revision(&self) -> Revision {
        *self.applied.borrow()
    }

    /// Whether the first full sync finished.
    pub fn synced(&self) -> bool {
        self.synced.load(Ordering::SeqCst)
    }

    /// Refuses to execute `version` unless the service holds the store's content of it.
    pub fn check(&self, version: &str) -> Result<(), ApiError> {
        match self.held().get(version) {
            Some(Held::Serving(_)) => Ok(()),
            Some(Held::Stale) => Err(ApiError::Unavailable(format!(
                "version {version:?} is being read again from the code store"
            ))),
            Some(Held::Failed(_)) | None => Err(ApiError::Roma(RomaError::new(
                ErrorKind::VersionNotFound,
                format!("version {version:?} is not loaded"),
            ))),
        }
    }

    /// Loads `code` through the store: checked, compiled here, written; answers once the
    /// write is durable.
    pub async fn load(
        &self,
        service: &RomaService<RequestMetadata>,
        code: CodeObject,
    ) -> Result<(ResponseObject, PutReceipt), ApiError> {
        let _one = self.load_lock.lock().await;
        roma_store::preflight(self.store.as_ref(), &code)
            .await
            .map_err(api_error)?;
        let version = code.version_string.clone();
        let before = self.held().get(&version).copied();
        let response = service.load_code_obj_async(code.clone()).await?;
        match self.store.put(&code).await {
            Ok(receipt) => {
                let mut held = self.held();
                held.insert(version, Held::Serving(receipt.revision));
                for v in &receipt.evicted {
                    held.remove(v);
                }
                Ok((response, receipt))
            }
            Err(e) => {
                // The service holds content the store does not: if it replaced a stored
                // version, that version waits for the next sync to load the stored one.
                if before.is_some() {
                    self.held().insert(version, Held::Stale);
                }
                self.kick.notify_one();
                Err(api_error(e))
            }
        }
    }

    /// Stops the sync task.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Keeps the service equal to the store until [`stop`](Self::stop).
    pub async fn run(
        self: Arc<Self>,
        service: Arc<RomaService<RequestMetadata>>,
        on_load: impl Fn(&str),
    ) {
        let mut stop = self.stop.subscribe();
        let mut backoff = Duration::from_millis(50);
        loop {
            if *stop.borrow() {
                return;
            }
            let step = async {
                let rev = self.sync_once(&service, &on_load).await?;
                self.connected.store(true, Ordering::SeqCst);
                self.synced.store(true, Ordering::SeqCst);
                self.applied.send_replace(rev);
                tokio::select! {
                    r = self.store.wait_for_change(rev) => r.map(|_| ()),
                    () = self.kick.notified() => Ok(()),
                }
            };
            let r = tokio::select! {
                r = step => r,
                _ = stop.wait_for(|s| *s) => return,
            };
            match r {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(e) => {
                    if self.connected.swap(false, Ordering::SeqCst)
                        || backoff == Duration::from_millis(50)
                    {
                        tracing::warn!(store = self.store.kind(), error = %e, "code store: cannot sync; serving what this replica has");
                    }
                    self.sync_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.wait_for(|s| *s) => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One full pass: list, load what differs, forget what is gone. Returns the listing's
    /// revision.
    async fn sync_once(
        &self,
        service: &RomaService<RequestMetadata>,
        on_load: &impl Fn(&str),
    ) -> Result<Revision, StoreError> {
        let listing = self.store.list().await?;
        let _one = self.load_lock.lock().await;
        for entry in &listing.entries {
            let current = self.held().get(&entry.version).copied();
            match current {
                Some(Held::Serving(r) | Held::Failed(r)) if r >= entry.mod_revision => continue,
                _ => {}
            }
            let code = self.store.get(entry, listing.revision).await?;
            let version = entry.version.clone();
            match service.load_code_obj_async(code).await {
                Ok(_) => {
                    self.held()
                        .insert(version.clone(), Held::Serving(entry.mod_revision));
                    on_load(&version);
                    tracing::info!(version = %version, revision = entry.mod_revision, "code store: loaded");
                }
                Err(e) => {
                    self.apply_failures.fetch_add(1, Ordering::Relaxed);
                    self.held()
                        .insert(version.clone(), Held::Failed(entry.mod_revision));
                    tracing::error!(version = %version, revision = entry.mod_revision, error = %e, "code store: a stored version does not load on this replica; it is not served here");
                }
            }
        }
        let present: std::collections::HashSet<&str> =
            listing.entries.iter().map(|e| e.version.as_str()).collect();
        self.held().retain(|v, h| {
            present.contains(v.as_str())
                || matches!(h, Held::Serving(r) | Held::Failed(r) if *r > listing.revision)
        });
        Ok(listing.revision)
    }

    /// The `/readyz` detail line.
    pub fn describe(&self) -> String {
        format!(
            "store: {} revision {} {}\n",
            self.store.kind(),
            self.applied_revision(),
            if self.connected.load(Ordering::SeqCst) {
                "connected"
            } else {
                "disconnected"
            }
        )
    }

    /// The replica's metrics, as Prometheus text.
    pub fn render_metrics(&self) -> String {
        let mut out = String::new();
        let serving = self
            .held()
            .values()
            .filter(|h| matches!(h, Held::Serving(_)))
            .count();
        let gauges = [
            (
                "roma_store_revision",
                "The code store revision this replica has applied.",
                self.applied_revision(),
            ),
            (
                "roma_store_connected",
                "1 while the last sync with the code store succeeded.",
                u64::from(self.connected.load(Ordering::SeqCst)),
            ),
            (
                "roma_store_synced",
                "1 once the first full sync finished.",
                u64::from(self.synced()),
            ),
            (
                "roma_store_versions_serving",
                "Versions executable on this replica.",
                serving as u64,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        for (name, help, v) in [
            (
                "roma_store_sync_errors_total",
                "Syncs with the code store that failed.",
                self.sync_errors.load(Ordering::Relaxed),
            ),
            (
                "roma_store_apply_failures_total",
                "Stored versions that did not load on this replica.",
                self.apply_failures.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        out
    }
}
