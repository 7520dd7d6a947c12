//! Where `roma serve` keeps the code it serves, so that every replica serves every loaded
//! version and a restarted server comes back with its code.
//!
//! [`CodeStore`] is the one interface the server uses; two implementations stand behind it:
//! [`LocalStore`] (a directory on one machine, or memory only) and [`EtcdStore`] (etcd's v3
//! API, shared by replicas on many machines). A store is a map from version string to code
//! object with a revision that grows with every change. A replica lists the store at a
//! revision, fetches what changed, and waits for the next change; [`plan_put`] decides, in one
//! place for both implementations, which versions a write evicts, so every replica sees the
//! same deletions in the same order.
//!
//! Everything a store returns is parsed defensively ([`codec`]): a stored object is bounded
//! by [`StoreLimits::max_object_bytes`], carries a checksum, and must name the key it is
//! stored under.

pub mod codec;
mod error;
mod etcd;
mod local;
mod plan;

pub use error::StoreError;
pub use etcd::{EtcdSettings, EtcdStore};
pub use local::LocalStore;
pub use plan::{Plan, plan_put};

use roma_core::CodeObject;
use std::future::Future;
use std::pin::Pin;

/// A store's revision: every write makes it larger; 0 is an empty store that was never
/// written.
pub type Revision = u64;

/// A boxed future, so [`CodeStore`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Bounds on what a store holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreLimits {
    /// The largest encoded code object, in bytes (default 1 MiB, under etcd's default
    /// request limit of 1.5 MiB).
    pub max_object_bytes: usize,
    /// The most versions one code id (a code object's `id`) keeps; a write past it evicts
    /// the versions of that id written first (default 8).
    pub max_versions_per_code_id: usize,
    /// The most versions in the whole store; a write of a new version past it is refused
    /// (default 64, roma's version cache size, so no replica drops a stored version from its
    /// cache).
    pub max_versions: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_object_bytes: 1 << 20,
            max_versions_per_code_id: 8,
            max_versions: 64,
        }
    }
}

/// One stored version, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The version string (what executions name).
    pub version: String,
    /// The code object's `id`: versions of one id share the per-id bound.
    pub code_id: String,
    /// The revision that first wrote this version under this code id.
    pub create_revision: Revision,
    /// The revision that last wrote it.
    pub mod_revision: Revision,
}

/// The store's content at one revision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// The revision the listing was taken at.
    pub revision: Revision,
    /// Every version, ordered by version string.
    pub entries: Vec<Entry>,
}

/// What a durable write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    /// The revision that holds the write: once a replica has applied it, it serves the code.
    pub revision: Revision,
    /// Versions the write evicted (the per-code-id bound).
    pub evicted: Vec<String>,
}

/// A place that keeps code objects: the server's one view of where code lives.
///
/// Every method may fail with [`StoreError::Unavailable`] when the store cannot be reached;
/// the caller keeps what it has and tries again.
pub trait CodeStore: Send + Sync + std::fmt::Debug {
    /// `dir`, `memory` or `etcd`: for logs, `/readyz` and metrics.
    fn kind(&self) -> &'static str;

    /// The bounds this store enforces.
    fn limits(&self) -> StoreLimits;

    /// Every version, at one revision.
    fn list(&self) -> BoxFuture<'_, Result<Listing, StoreError>>;

    /// The code object of `entry`, as of revision `at` (a listing's revision); an entry that
    /// is no longer there at `at` is [`StoreError::Missing`].
    fn get<'a>(
        &'a self,
        entry: &'a Entry,
        at: Revision,
    ) -> BoxFuture<'a, Result<CodeObject, StoreError>>;

    /// Writes `code` (replacing the same version), evicting what [`plan_put`] says; answers
    /// once the write is durable.
    fn put<'a>(&'a self, code: &'a CodeObject) -> BoxFuture<'a, Result<PutReceipt, StoreError>>;

    /// Returns once the store's revision is past `after` (at once if it already is), with the
    /// revision seen.
    fn wait_for_change(&self, after: Revision) -> BoxFuture<'_, Result<Revision, StoreError>>;
}

/// Checks that `code` would be accepted now (size, bounds, and that the store answers),
/// without writing it: run before the code is compiled, so a write that is bound to fail does
/// not leave a compiled version behind.
pub async fn preflight(store: &dyn CodeStore, code: &CodeObject) -> Result<(), StoreError> {
    let limits = store.limits();
    codec::check_size(code, limits.max_object_bytes)?;
    let listing = store.list().await?;
    plan_put(&listing.entries, &code.version_string, &code.id, &limits).map(|_| ())
}
