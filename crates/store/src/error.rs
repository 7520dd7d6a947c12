//! The ways a store operation fails, by kind, so the server can choose an answer (413, 507,
//! 503) without reading messages.

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The encoded code object is larger than `max_object_bytes`.
    #[error("the code object takes {size} bytes stored, more than store.max_object_bytes ({max})")]
    TooLarge {
        /// Its encoded size.
        size: usize,
        /// The bound.
        max: usize,
    },
    /// A new version would pass `max_versions`.
    #[error(
        "the store holds {held} versions, store.max_versions; load into an existing code id (its oldest version is evicted) or raise the bound"
    )]
    Full {
        /// Versions held.
        held: usize,
    },
    /// The store cannot be reached (etcd down, a partition).
    #[error("the code store is unreachable: {0}")]
    Unavailable(String),
    /// Concurrent writers kept changing the store; the write was not made.
    #[error("the code store kept changing under the write ({0} tries); try again")]
    Contended(usize),
    /// The entry is not in the store (any more).
    #[error("version {0:?} is not in the store")]
    Missing(String),
    /// Bytes read from the store are not a code object this store wrote.
    #[error("a stored object is damaged: {0}")]
    Corrupt(String),
    /// A file operation of the local store failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS's error.
        source: std::io::Error,
    },
    /// A setting is wrong (an etcd endpoint that does not parse, ...).
    #[error("store settings: {0}")]
    Settings(String),
}

impl StoreError {
    /// Whether trying again later may succeed (the store was unreachable or busy).
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Contended(_))
    }
}
