//! The store shared by replicas on many machines: etcd's v3 API.
//!
//! Layout under the prefix (default `/roma/`): `code/<hex code id>/<hex version>` holds a
//! version's stored object, and `rev` is rewritten by every write in the same transaction.
//! The key names carry what eviction needs, so a write plans with a keys-only listing, and
//! the one `rev` key lets a write detect any concurrent write with a single comparison: the
//! transaction commits only if `rev` is unchanged since the listing, else it lists and plans
//! again. Replicas watch only `rev`, so a watch message stays small however large the code
//! is; they fetch each changed version by itself, at the listing's revision, so every
//! message is bounded by `max_object_bytes`.

use crate::codec;
use crate::plan::plan_put;
use crate::{BoxFuture, CodeStore, Entry, Listing, PutReceipt, Revision, StoreError, StoreLimits};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp, WatchOptions,
};
use roma_core::CodeObject;
use std::time::Duration;

/// How many times a write lists and plans again when another write came between.
const WRITE_TRIES: usize = 16;

/// Where etcd is and how long to wait for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdSettings {
    /// `host:port` or `http://host:port` of each member.
    pub endpoints: Vec<String>,
    /// The key prefix every key of this store starts with (default `/roma/`).
    pub prefix: String,
    /// How long one request may take (default 5 s).
    pub request_timeout: Duration,
    /// How long connecting may take (default 3 s).
    pub connect_timeout: Duration,
}

impl EtcdSettings {
    /// Settings for `endpoints` with the defaults.
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdSettings {
            endpoints,
            prefix: "/roma/".into(),
            request_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// Versions kept in etcd.
pub struct EtcdStore {
    settings: EtcdSettings,
    limits: StoreLimits,
    client: Client,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("settings", &self.settings)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn unavailable(e: etcd_client::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn revision(r: i64) -> Revision {
    u64::try_from(r).unwrap_or(0)
}

impl EtcdStore {
    /// A store on the etcd at `settings.endpoints`. Connecting happens on use: this succeeds while
    /// etcd is down, and each operation then fails with [`StoreError::Unavailable`] until it
    /// is back.
    pub async fn connect(settings: EtcdSettings, limits: StoreLimits) -> Result<Self, StoreError> {
        if settings.endpoints.is_empty() {
            return Err(StoreError::Settings("store.etcd_endpoints is empty".into()));
        }
        if !settings.prefix.ends_with('/') {
            return Err(StoreError::Settings(format!(
                "store.etcd_prefix {:?} must end with '/'",
                settings.prefix
            )));
        }
        let options = ConnectOptions::new()
            .with_timeout(settings.request_timeout)
            .with_connect_timeout(settings.connect_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true);
        // The client balances over its endpoints and connects on use, so this does not wait
        // for etcd.
        let client = Client::connect(&settings.endpoints, Some(options))
            .await
            .map_err(|e| StoreError::Settings(e.to_string()))?;
        Ok(EtcdStore {
            settings,
            limits,
            client,
        })
    }

    fn rev_key(&self) -> String {
        format!("{}rev", self.settings.prefix)
    }

    fn code_prefix(&self) -> String {
        format!("{}code/", self.settings.prefix)
    }

    fn key(&self, code_id: &str, version: &str) -> String {
        format!("{}{}/{}", self.code_prefix(), hex(code_id), hex(version))
    }

    /// The versions and the `rev` key's mod revision, at one revision.
    async fn listing(&self) -> Result<(Listing, i64), StoreError> {
        let mut kv = self.client.kv_client();
        let r = kv
            .get(
                self.settings.prefix.clone(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await
            .map_err(unavailable)?;
        let at = r.header().map(|h| h.revision()).unwrap_or(0);
        let rev_key = self.rev_key();
        let code_prefix = self.code_prefix();
        let mut rev_mod = 0;
        let mut entries = Vec::new();
        for kv in r.kvs() {
            let Ok(key) = std::str::from_utf8(kv.key()) else {
                continue;
            };
            if key == rev_key {
                rev_mod = kv.mod_revision();
                continue;
            }
            let Some(rest) = key.strip_prefix(&code_prefix) else {
                continue;
            };
            let parsed = rest
                .split_once('/')
                .and_then(|(id, v)| Some((unhex(id)?, unhex(v)?)));
            let Some((code_id, version)) = parsed else {
                tracing::warn!(
                    key,
                    "code store: a key under the prefix that roma did not write; ignored"
                );
                continue;
            };
            entries.push(Entry {
                version,
                code_id,
                create_revision: revision(kv.create_revision()),
                mod_revision: revision(kv.mod_revision()),
            });
        }
        entries.sort_by(|a, b| a.version.cmp(&b.version));
        Ok((
            Listing {
                revision: revision(at),
                entries,
            },
            rev_mod,
        ))
    }
}

impl CodeStore for EtcdStore {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, StoreError>> {
        Box::pin(async move { Ok(self.listing().await?.0) })
    }

    fn get<'a>(
        &'a self,
        entry: &'a Entry,
        at: Revision,
    ) -> BoxFuture<'a, Result<CodeObject, StoreError>> {
        Box::pin(async move {
            let mut kv = self.client.kv_client();
            let key = self.key(&entry.code_id, &entry.version);
            let at = i64::try_from(at).unwrap_or(i64::MAX);
            let r = kv
                .get(key, Some(GetOptions::new().with_revision(at)))
                .await
                .map_err(unavailable)?;
            let Some(found) = r.kvs().first() else {
                return Err(StoreError::Missing(entry.version.clone()));
            };
            let code = codec::decode(found.value(), self.limits.max_object_bytes)?;
            if code.version_string != entry.version || code.id != entry.code_id {
                return Err(StoreError::Corrupt(format!(
                    "the key of version {:?} holds version {:?} of code id {:?}",
                    entry.version, code.version_string, code.id
                )));
            }
            Ok(code)
        })
    }

    fn put<'a>(&'a self, code: &'a CodeObject) -> BoxFuture<'a, Result<PutReceipt, StoreError>> {
        Box::pin(async move {
            let bytes = codec::encode(code, self.limits.max_object_bytes)?;
            let key = self.key(&code.id, &code.version_string);
            let mut kv = self.client.kv_client();
            for _ in 0..WRITE_TRIES {
                let (listing, rev_mod) = self.listing().await?;
                let plan = plan_put(
                    &listing.entries,
                    &code.version_string,
                    &code.id,
                    &self.limits,
                )?;
                let mut ops = vec![TxnOp::put(key.clone(), bytes.clone(), None)];
                if let Some(old) = plan.replaces.as_ref().filter(|e| e.code_id != code.id) {
                    ops.push(TxnOp::delete(self.key(&old.code_id, &old.version), None));
                }
                for e in &plan.evict {
                    ops.push(TxnOp::delete(self.key(&e.code_id, &e.version), None));
                }
                ops.push(TxnOp::put(
                    self.rev_key(),
                    code.version_string.clone().into_bytes(),
                    None,
                ));
                // An absent `rev` has mod revision 0 in etcd's comparisons.
                let txn = Txn::new()
                    .when([Compare::mod_revision(
                        self.rev_key(),
                        CompareOp::Equal,
                        rev_mod,
                    )])
                    .and_then(ops);
                let r = kv.txn(txn).await.map_err(unavailable)?;
                if r.succeeded() {
                    return Ok(PutReceipt {
                        revision: revision(r.header().map(|h| h.revision()).unwrap_or(0)),
                        evicted: plan.evict.into_iter().map(|e| e.version).collect(),
                    });
                }
            }
            Err(StoreError::Contended(WRITE_TRIES))
        })
    }

    fn wait_for_change(&self, after: Revision) -> BoxFuture<'_, Result<Revision, StoreError>> {
        Box::pin(async move {
            let mut w = self.client.watch_client();
            let start = i64::try_from(after.saturating_add(1)).unwrap_or(i64::MAX);
            let mut stream = w
                .watch(
                    self.rev_key(),
                    Some(WatchOptions::new().with_start_revision(start)),
                )
                .await
                .map_err(unavailable)?;
            loop {
                match stream.message().await.map_err(unavailable)? {
                    None => {
                        return Err(StoreError::Unavailable("the watch ended".into()));
                    }
                    Some(m) if m.canceled() => {
                        // Compacted past `after`: whatever the caller had is older than the
                        // store's history, so it lists again.
                        return Ok(revision(m.compact_revision()).max(after + 1));
                    }
                    Some(m) => {
                        if let Some(kv) = m.events().last().and_then(|e| e.kv()) {
                            return Ok(revision(kv.mod_revision()));
                        }
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_any_string() {
        for s in ["", "v1", "a/b", "ü\n\u{0}"] {
            assert_eq!(unhex(&hex(s)).as_deref(), Some(s));
        }
        assert_eq!(unhex("6"), None);
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex("ff"), None);
    }
}
