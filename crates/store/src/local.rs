//! The store of one machine: a directory with one file per version, or memory only.
//!
//! Each file is written to a temporary name, flushed, renamed over the old one and the
//! directory flushed, so a crash leaves the old file or the new one, never half of either.
//! At start every file is read back defensively: a file that does not parse (damage, a
//! stray file) is renamed `*.damaged` and logged, never served. Replicas on other machines do
//! not see a directory; that is what [`crate::EtcdStore`] is for.

use crate::codec;
use crate::plan::plan_put;
use crate::{BoxFuture, CodeStore, Entry, Listing, PutReceipt, Revision, StoreError, StoreLimits};
use roma_core::CodeObject;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tokio::sync::watch;

const SUFFIX: &str = ".code";
/// A file's header: its create and mod revisions and a checksum of both.
const HEADER: usize = 24;

#[derive(Debug)]
struct Stored {
    entry: Entry,
    code: CodeObject,
}

#[derive(Debug, Default)]
struct State {
    revision: Revision,
    versions: BTreeMap<String, Stored>,
}

/// A directory (or memory) holding versions.
#[derive(Debug)]
pub struct LocalStore {
    dir: Option<PathBuf>,
    limits: StoreLimits,
    state: Mutex<State>,
    changed: watch::Sender<Revision>,
}

impl LocalStore {
    /// A store that keeps nothing across restarts.
    pub fn memory(limits: StoreLimits) -> Self {
        let (changed, _) = watch::channel(0);
        LocalStore {
            dir: None,
            limits,
            state: Mutex::new(State::default()),
            changed,
        }
    }

    /// The store in `dir` (created if missing), with every version found there.
    pub fn open(dir: &Path, limits: StoreLimits) -> Result<Self, StoreError> {
        let io = |what: String| move |source| StoreError::Io { what, source };
        std::fs::create_dir_all(dir).map_err(io(format!("cannot create {}", dir.display())))?;
        let mut state = State::default();
        let read = std::fs::read_dir(dir).map_err(io(format!("cannot read {}", dir.display())))?;
        for item in read {
            let item = item.map_err(io(format!("cannot read {}", dir.display())))?;
            let path = item.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if name.starts_with(".tmp-") {
                // A write that did not finish: its rename never happened.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if !name.ends_with(SUFFIX) {
                continue;
            }
            match read_file(&path, name, &limits) {
                Ok(s) => {
                    state.revision = state.revision.max(s.entry.mod_revision);
                    state.versions.insert(s.entry.version.clone(), s);
                }
                Err(e) => {
                    let aside = path.with_extension("damaged");
                    tracing::error!(file = %path.display(), error = %e, moved_to = %aside.display(), "code store: a file does not parse; it is set aside and not served");
                    let _ = std::fs::rename(&path, &aside);
                }
            }
        }
        let (changed, _) = watch::channel(state.revision);
        Ok(LocalStore {
            dir: Some(dir.to_path_buf()),
            limits,
            state: Mutex::new(state),
            changed,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn put_now(&self, code: &CodeObject) -> Result<PutReceipt, StoreError> {
        let bytes = codec::encode(code, self.limits.max_object_bytes)?;
        let mut st = self.lock();
        let entries: Vec<Entry> = st.versions.values().map(|s| s.entry.clone()).collect();
        let plan = plan_put(&entries, &code.version_string, &code.id, &self.limits)?;
        let revision = st.revision + 1;
        let create_revision = match &plan.replaces {
            Some(e) if e.code_id == code.id => e.create_revision,
            _ => revision,
        };
        let entry = Entry {
            version: code.version_string.clone(),
            code_id: code.id.clone(),
            create_revision,
            mod_revision: revision,
        };
        if let Some(dir) = &self.dir {
            write_file(dir, &entry, &bytes)?;
            for e in &plan.evict {
                let path = dir.join(file_name(&e.version));
                match std::fs::remove_file(&path) {
                    Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                        return Err(StoreError::Io {
                            what: format!("cannot remove {}", path.display()),
                            source,
                        });
                    }
                    _ => {}
                }
            }
            sync_dir(dir)?;
        }
        for e in &plan.evict {
            st.versions.remove(&e.version);
        }
        st.versions.insert(
            entry.version.clone(),
            Stored {
                entry,
                code: code.clone(),
            },
        );
        st.revision = revision;
        drop(st);
        self.changed.send_replace(revision);
        Ok(PutReceipt {
            revision,
            evicted: plan.evict.into_iter().map(|e| e.version).collect(),
        })
    }
}

/// A version's file name: hex, so any version string is a safe name.
fn file_name(version: &str) -> String {
    let mut s = String::with_capacity(version.len() * 2 + SUFFIX.len());
    for b in version.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s.push_str(SUFFIX);
    s
}

fn header(entry: &Entry) -> [u8; HEADER] {
    let mut h = [0u8; HEADER];
    h[..8].copy_from_slice(&entry.create_revision.to_le_bytes());
    h[8..16].copy_from_slice(&entry.mod_revision.to_le_bytes());
    let sum = codec::checksum(&h[..16]);
    h[16..].copy_from_slice(&sum.to_le_bytes());
    h
}

fn write_file(dir: &Path, entry: &Entry, bytes: &[u8]) -> Result<(), StoreError> {
    let name = file_name(&entry.version);
    let tmp = dir.join(format!(".tmp-{name}"));
    let io = |what: String| move |source| StoreError::Io { what, source };
    let mut f =
        std::fs::File::create(&tmp).map_err(io(format!("cannot create {}", tmp.display())))?;
    f.write_all(&header(entry))
        .and_then(|()| f.write_all(bytes))
        .and_then(|()| f.sync_all())
        .map_err(io(format!("cannot write {}", tmp.display())))?;
    drop(f);
    std::fs::rename(&tmp, dir.join(&name)).map_err(io(format!("cannot rename {}", tmp.display())))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StoreError::Io {
            what: format!("cannot flush {}", dir.display()),
            source,
        })
}

fn read_file(path: &Path, name: &str, limits: &StoreLimits) -> Result<Stored, StoreError> {
    let meta = std::fs::metadata(path).map_err(|source| StoreError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    if meta.len() > (limits.max_object_bytes + HEADER) as u64 {
        return Err(StoreError::Corrupt(format!(
            "{} bytes, more than store.max_object_bytes allows",
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| StoreError::Io {
        what: format!("cannot read {}", path.display()),
        source,
    })?;
    if bytes.len() < HEADER {
        return Err(StoreError::Corrupt("shorter than its header".into()));
    }
    let (h, body) = bytes.split_at(HEADER);
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&h[i..i + 8]);
        u64::from_le_bytes(w)
    };
    if codec::checksum(&h[..16]) != word(16) {
        return Err(StoreError::Corrupt(
            "the header's checksum does not match".into(),
        ));
    }
    let code = codec::decode(body, limits.max_object_bytes)?;
    if file_name(&code.version_string) != name {
        return Err(StoreError::Corrupt(format!(
            "it holds version {:?}, not the one its name says",
            code.version_string
        )));
    }
    let (create_revision, mod_revision) = (word(0), word(8));
    if create_revision == 0 || create_revision > mod_revision {
        return Err(StoreError::Corrupt("its revisions are out of order".into()));
    }
    Ok(Stored {
        entry: Entry {
            version: code.version_string.clone(),
            code_id: code.id.clone(),
            create_revision,
            mod_revision,
        },
        code,
    })
}

impl CodeStore for LocalStore {
    fn kind(&self) -> &'static str {
        if self.dir.is_some() { "dir" } else { "memory" }
    }

    fn limits(&self) -> StoreLimits {
        self.limits
    }

    fn list(&self) -> BoxFuture<'_, Result<Listing, StoreError>> {
        let st = self.lock();
        let listing = Listing {
            revision: st.revision,
            entries: st.versions.values().map(|s| s.entry.clone()).collect(),
        };
        drop(st);
        Box::pin(async move { Ok(listing) })
    }

    fn get<'a>(
        &'a self,
        entry: &'a Entry,
        _at: Revision,
    ) -> BoxFuture<'a, Result<CodeObject, StoreError>> {
        // Memory holds only the newest content; a caller that listed at an older revision
        // gets the newer content with its newer revision noted by the next listing.
        let r = self
            .lock()
            .versions
            .get(&entry.version)
            .filter(|s| s.entry.code_id == entry.code_id)
            .map(|s| s.code.clone())
            .ok_or_else(|| StoreError::Missing(entry.version.clone()));
        Box::pin(async move { r })
    }

    fn put<'a>(&'a self, code: &'a CodeObject) -> BoxFuture<'a, Result<PutReceipt, StoreError>> {
        Box::pin(async move {
            // File writes and fsync block: on a multi-threaded runtime the thread says so, so
            // other tasks move off it. The lock keeps writes in revision order.
            let multi = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi {
                tokio::task::block_in_place(|| self.put_now(code))
            } else {
                self.put_now(code)
            }
        })
    }

    fn wait_for_change(&self, after: Revision) -> BoxFuture<'_, Result<Revision, StoreError>> {
        let mut rx = self.changed.subscribe();
        Box::pin(async move {
            match rx.wait_for(|r| *r > after).await {
                Ok(r) => Ok(*r),
                // The sender lives as long as the store, which outlives this borrow.
                Err(_) => Err(StoreError::Unavailable("the store was dropped".into())),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("roma-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn code(version: &str, id: &str) -> CodeObject {
        let mut c = CodeObject::js(
            version,
            format!("function Handler() {{ return {version:?}; }}"),
        );
        c.id = id.into();
        c
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_reopened_directory_has_every_version_and_revision() {
        let d = tmp("reopen");
        let limits = StoreLimits {
            max_versions_per_code_id: 2,
            ..Default::default()
        };
        let s = LocalStore::open(&d, limits).unwrap();
        s.put(&code("a1", "a")).await.unwrap();
        s.put(&code("b1", "b")).await.unwrap();
        s.put(&code("a2", "a")).await.unwrap();
        let r = s.put(&code("a3", "a")).await.unwrap();
        assert_eq!(r.evicted, vec!["a1".to_string()]);
        let before = s.list().await.unwrap();
        drop(s);
        // Damage and debris: a torn temporary file and a file that is not a code object.
        std::fs::write(d.join(".tmp-61ff.code"), b"torn").unwrap();
        std::fs::write(d.join("6262.code"), b"not code").unwrap();
        let s = LocalStore::open(&d, limits).unwrap();
        let after = s.list().await.unwrap();
        assert_eq!(after, before);
        assert_eq!(after.revision, 4);
        let got = s.get(&after.entries[1], after.revision).await.unwrap();
        assert_eq!(got, code("a3", "a"));
        assert!(d.join("6262.damaged").exists());
        assert!(!d.join(".tmp-61ff.code").exists());
        // A new write continues the revisions.
        assert_eq!(s.put(&code("c1", "c")).await.unwrap().revision, 5);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_file_renamed_to_another_version_is_refused() {
        let d = tmp("renamed");
        let s = LocalStore::open(&d, StoreLimits::default()).unwrap();
        s.put(&code("a1", "a")).await.unwrap();
        drop(s);
        std::fs::rename(d.join(file_name("a1")), d.join(file_name("zz"))).unwrap();
        let s = LocalStore::open(&d, StoreLimits::default()).unwrap();
        assert!(s.list().await.unwrap().entries.is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn waiters_wake_on_a_write_and_limits_hold() {
        let s = std::sync::Arc::new(LocalStore::memory(StoreLimits {
            max_object_bytes: 200,
            max_versions_per_code_id: 8,
            max_versions: 1,
        }));
        let w = {
            let s = std::sync::Arc::clone(&s);
            tokio::spawn(async move { s.wait_for_change(0).await })
        };
        s.put(&code("a1", "a")).await.unwrap();
        assert_eq!(w.await.unwrap().unwrap(), 1);
        assert_eq!(s.wait_for_change(0).await.unwrap(), 1);
        assert!(matches!(
            s.put(&code("b1", "b")).await,
            Err(StoreError::Full { .. })
        ));
        let big = CodeObject::js("a1", "x".repeat(300));
        assert!(matches!(
            s.put(&big).await,
            Err(StoreError::TooLarge { .. })
        ));
    }
}
