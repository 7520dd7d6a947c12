//! Which versions a write evicts: one pure function both stores call inside their write, so
//! every replica sees the same deletions, made by the store in the same revision as the
//! write.

use crate::{Entry, StoreError, StoreLimits};

/// What a write of one version does besides writing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The entry of the same version, if it is stored (under this code id or another).
    pub replaces: Option<Entry>,
    /// Versions of the same code id to delete, oldest first.
    pub evict: Vec<Entry>,
}

/// The plan for writing `version` under `code_id` into a store holding `entries`.
///
/// A version keeps its place (its create revision) when it is written again under the same
/// code id; written under another id it counts as new there. The versions of `code_id`, the
/// written one included, are kept newest first up to `max_versions_per_code_id`; the rest,
/// first written first, are evicted (never the one being written). A new version that would
/// pass `max_versions` is refused with [`StoreError::Full`]: eviction never reaches across
/// code ids.
pub fn plan_put(
    entries: &[Entry],
    version: &str,
    code_id: &str,
    limits: &StoreLimits,
) -> Result<Plan, StoreError> {
    let replaces = entries.iter().find(|e| e.version == version).cloned();
    let mut same: Vec<&Entry> = entries
        .iter()
        .filter(|e| e.code_id == code_id && e.version != version)
        .collect();
    same.sort_by(|a, b| (a.create_revision, &a.version).cmp(&(b.create_revision, &b.version)));
    let group = same.len() + 1;
    let max = limits.max_versions_per_code_id.max(1);
    let mut evict = Vec::new();
    if group > max {
        let excess = group - max;
        // The written version is not in `same`, so it is never evicted, even when it keeps an
        // old place.
        evict = same.iter().take(excess).map(|e| (*e).clone()).collect();
    }
    let after = entries.len() + usize::from(replaces.is_none()) - evict.len();
    if after > limits.max_versions {
        return Err(StoreError::Full {
            held: entries.len(),
        });
    }
    Ok(Plan { replaces, evict })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(version: &str, code_id: &str, create: u64) -> Entry {
        Entry {
            version: version.into(),
            code_id: code_id.into(),
            create_revision: create,
            mod_revision: create,
        }
    }

    fn limits(per_id: usize, total: usize) -> StoreLimits {
        StoreLimits {
            max_object_bytes: 1 << 20,
            max_versions_per_code_id: per_id,
            max_versions: total,
        }
    }

    #[test]
    fn evicts_the_oldest_of_the_same_code_id_only() {
        let have = [
            e("a1", "a", 1),
            e("b1", "b", 2),
            e("a2", "a", 3),
            e("a3", "a", 4),
        ];
        let p = plan_put(&have, "a4", "a", &limits(3, 10)).unwrap();
        assert_eq!(p.replaces, None);
        assert_eq!(p.evict, vec![e("a1", "a", 1)]);
        let p = plan_put(&have, "a4", "a", &limits(2, 10)).unwrap();
        assert_eq!(p.evict, vec![e("a1", "a", 1), e("a2", "a", 3)]);
    }

    #[test]
    fn a_replacement_evicts_nothing_when_the_count_stays() {
        let have = [e("a1", "a", 1), e("a2", "a", 3)];
        let p = plan_put(&have, "a1", "a", &limits(2, 10)).unwrap();
        assert_eq!(p.replaces, Some(e("a1", "a", 1)));
        assert!(p.evict.is_empty());
    }

    #[test]
    fn moving_a_version_to_another_code_id_counts_there() {
        let have = [e("x", "a", 1), e("b1", "b", 2)];
        let p = plan_put(&have, "x", "b", &limits(1, 10)).unwrap();
        assert_eq!(p.replaces, Some(e("x", "a", 1)));
        assert_eq!(p.evict, vec![e("b1", "b", 2)]);
    }

    #[test]
    fn the_total_bound_refuses_new_versions_but_not_replacements() {
        let have = [e("a1", "a", 1), e("b1", "b", 2)];
        assert!(matches!(
            plan_put(&have, "c1", "c", &limits(4, 2)),
            Err(StoreError::Full { held: 2 })
        ));
        assert!(plan_put(&have, "a1", "a", &limits(4, 2)).is_ok());
        // A new version that evicts one of its own id fits.
        assert_eq!(
            plan_put(&have, "a2", "a", &limits(1, 2)).unwrap().evict,
            vec![e("a1", "a", 1)]
        );
    }
}
