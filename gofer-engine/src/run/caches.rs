//! The cache entries of a backend, across runs: listing and eviction
//! ([`Engine::caches`](crate::Engine::caches), [`Engine::prune_caches`](crate::Engine::prune_caches)).
//! What an entry is and how tasks use them: [`gofer_core::cache`]; the task's side:
//! [`super::cache`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::{debug, warn};

use gofer_core::cache::{
    cache_used_name, CACHE_ROLE_ENTRY, CACHE_ROLE_USED, LABEL_CACHE, LABEL_CACHE_AT,
    LABEL_CACHE_ENTRY, LABEL_CACHE_KEY, LABEL_CACHE_SCOPE, SHARED_SCOPE,
};
use gofer_core::{DynScheduler, SchedulerError, VolumeSpec, VolumeSummary};

use crate::run::container::guarded;

/// Label: an entry's size in bytes, measured when it was saved.
pub(crate) const LABEL_CACHE_SIZE: &str = "dev.gofer.cache.size";

/// How [`Engine::prune_caches`](crate::Engine::prune_caches) evicts, and what the engine
/// applies after every save when set with
/// [`EngineBuilder::cache_policy`](crate::EngineBuilder::cache_policy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachePolicy {
    /// Entries not restored or saved for longer than this go.
    pub max_age: Option<Duration>,
    /// Least recently used entries go until the entries' total size is at most this.
    pub max_bytes: Option<u64>,
}

impl CachePolicy {
    /// No limit: a prune removes only entries a newer entry of their key replaced.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`CachePolicy::max_age`].
    #[must_use]
    pub fn max_age(mut self, age: Duration) -> Self {
        self.max_age = Some(age);
        self
    }

    /// Sets [`CachePolicy::max_bytes`].
    #[must_use]
    pub fn max_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes);
        self
    }
}

/// A saved cache as [`Engine::caches`](crate::Engine::caches) lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheEntry {
    /// The engine volume holding it.
    pub volume: String,
    /// Its resolved key.
    pub key: String,
    /// The pipeline it belongs to, or `*` when the engine shares caches.
    pub scope: String,
    /// When it was saved.
    pub saved: SystemTime,
    /// When it was last restored (or saved, if never restored).
    pub last_used: SystemTime,
    /// Its size, measured when it was saved.
    pub size_bytes: u64,
}

/// What a prune removed and what it had to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// The entries removed.
    pub removed: Vec<CacheEntry>,
    /// Entries the policy would remove that are in use (being restored from), kept.
    pub in_use: Vec<String>,
    /// The bytes the removed entries held.
    pub freed_bytes: u64,
}

/// The engine's cache settings and the entries its tasks are restoring from now.
#[derive(Debug, Default)]
pub(crate) struct CacheState {
    /// Entries shared by every pipeline.
    pub(crate) shared: bool,
    /// The image helper containers run (default: the task's own).
    pub(crate) helper_image: Option<String>,
    /// Applied after every save.
    pub(crate) policy: Option<CachePolicy>,
    in_use: Mutex<HashMap<String, usize>>,
}

impl CacheState {
    /// The scope of `pipeline`'s entries.
    pub(crate) fn scope(&self, pipeline: &str) -> String {
        if self.shared {
            SHARED_SCOPE.to_string()
        } else {
            pipeline.to_string()
        }
    }

    /// Marks `entry` in use until the guard drops.
    pub(crate) fn hold(&self, entry: &str) -> InUse<'_> {
        *self.lock().entry(entry.to_string()).or_default() += 1;
        InUse {
            state: self,
            entry: entry.to_string(),
        }
    }

    fn is_in_use(&self, entry: &str) -> bool {
        self.lock().get(entry).is_some_and(|n| *n > 0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_use
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An entry held in use ([`CacheState::hold`]).
pub(crate) struct InUse<'a> {
    state: &'a CacheState,
    entry: String,
}

impl Drop for InUse<'_> {
    fn drop(&mut self) {
        let mut m = self.state.lock();
        if let Some(n) = m.get_mut(&self.entry) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.entry);
            }
        }
    }
}

/// Milliseconds since the epoch, as the labels hold them.
pub(crate) fn millis(t: SystemTime) -> String {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .to_string()
}

fn time_of(label: Option<&String>) -> Option<SystemTime> {
    let ms: u64 = label?.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(ms))
}

/// The entries (of `scope`, or all), each with its last use, newest saved first.
pub(crate) async fn list(
    s: &DynScheduler,
    scope: Option<&str>,
) -> Result<Vec<CacheEntry>, SchedulerError> {
    let mut filter = BTreeMap::from([(LABEL_CACHE.to_string(), CACHE_ROLE_ENTRY.to_string())]);
    if let Some(scope) = scope {
        filter.insert(LABEL_CACHE_SCOPE.to_string(), scope.to_string());
    }
    let entries = guarded(s, "list_volumes", s.list_volumes(&filter)).await?;
    let used_filter = BTreeMap::from([(LABEL_CACHE.to_string(), CACHE_ROLE_USED.to_string())]);
    let used: HashMap<String, SystemTime> =
        guarded(s, "list_volumes", s.list_volumes(&used_filter))
            .await?
            .into_iter()
            .filter_map(|v| {
                Some((
                    v.labels.get(LABEL_CACHE_ENTRY)?.clone(),
                    time_of(v.labels.get(LABEL_CACHE_AT))?,
                ))
            })
            .collect();
    let mut out: Vec<CacheEntry> = entries
        .into_iter()
        .filter_map(|v| entry_of(v, &used))
        .collect();
    out.sort_by(|a, b| b.saved.cmp(&a.saved).then_with(|| a.volume.cmp(&b.volume)));
    Ok(out)
}

fn entry_of(v: VolumeSummary, used: &HashMap<String, SystemTime>) -> Option<CacheEntry> {
    let saved = time_of(v.labels.get(LABEL_CACHE_AT))?;
    let last_used = used.get(&v.name).copied().map_or(saved, |u| u.max(saved));
    Some(CacheEntry {
        key: v.labels.get(LABEL_CACHE_KEY)?.clone(),
        scope: v.labels.get(LABEL_CACHE_SCOPE)?.clone(),
        size_bytes: v
            .labels
            .get(LABEL_CACHE_SIZE)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
        saved,
        last_used,
        volume: v.name,
    })
}

/// Records that `entry` was restored now: its use record is replaced (volume labels
/// cannot change). Best effort: a lost record only makes the entry look older.
pub(crate) async fn touch(s: &DynScheduler, entry: &str, scope: &str) {
    let name = cache_used_name(entry);
    let _ = guarded(s, "remove_volume", s.remove_volume(&name)).await;
    let spec = VolumeSpec::new(name).labels([
        (LABEL_CACHE.to_string(), CACHE_ROLE_USED.to_string()),
        (LABEL_CACHE_ENTRY.to_string(), entry.to_string()),
        (LABEL_CACHE_SCOPE.to_string(), scope.to_string()),
        (LABEL_CACHE_AT.to_string(), millis(SystemTime::now())),
    ]);
    if let Err(e) = guarded(s, "create_volume", s.create_volume(spec)).await {
        // Another restore of the same entry recorded its use at the same moment.
        debug!(entry, error = %e, "cannot record the cache's use");
    }
}

/// Removes an entry and its use record; `Ok(false)` when it is in use.
pub(crate) async fn remove_entry(s: &DynScheduler, entry: &str) -> Result<bool, SchedulerError> {
    match guarded(s, "remove_volume", s.remove_volume(entry)).await {
        Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
        Err(SchedulerError::Conflict { .. }) => return Ok(false),
        Err(e) => return Err(e),
    }
    match guarded(s, "remove_volume", s.remove_volume(&cache_used_name(entry))).await {
        Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
        Err(e) => warn!(entry, error = %e, "cannot remove the cache's use record"),
    }
    Ok(true)
}

/// Which of `entries` `policy` evicts at `now`, in order: too old, replaced by a newer
/// entry of their key, then least recently used beyond the size budget.
pub(crate) fn victims(entries: &[CacheEntry], policy: &CachePolicy, now: SystemTime) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    if let Some(age) = policy.max_age {
        for (i, e) in entries.iter().enumerate() {
            if now.duration_since(e.last_used).unwrap_or_default() > age {
                out.push(i);
            }
        }
    }
    // `entries` is newest saved first: every later entry of a key seen is replaced.
    let mut seen = std::collections::HashSet::new();
    for (i, e) in entries.iter().enumerate() {
        if !seen.insert((&e.scope, &e.key)) && !out.contains(&i) {
            out.push(i);
        }
    }
    if let Some(budget) = policy.max_bytes {
        let mut rest: Vec<usize> = (0..entries.len()).filter(|i| !out.contains(i)).collect();
        let mut total: u64 = rest.iter().map(|&i| entries[i].size_bytes).sum();
        rest.sort_by_key(|&i| (entries[i].last_used, entries[i].saved));
        for i in rest {
            if total <= budget {
                break;
            }
            total = total.saturating_sub(entries[i].size_bytes);
            out.push(i);
        }
    }
    out
}

/// Evicts what `policy` says from the entries of `scope` (or all).
pub(crate) async fn prune(
    s: &DynScheduler,
    state: &CacheState,
    policy: &CachePolicy,
    scope: Option<&str>,
) -> Result<PruneReport, SchedulerError> {
    let entries = list(s, scope).await?;
    let mut report = PruneReport::default();
    for i in victims(&entries, policy, SystemTime::now()) {
        let e = &entries[i];
        if state.is_in_use(&e.volume) || !remove_entry(s, &e.volume).await? {
            report.in_use.push(e.volume.clone());
            continue;
        }
        debug!(entry = %e.volume, key = %e.key, "cache evicted");
        report.freed_bytes = report.freed_bytes.saturating_add(e.size_bytes);
        report.removed.push(e.clone());
    }
    Ok(report)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn entry(name: &str, key: &str, saved_s: u64, used_s: u64, size: u64) -> CacheEntry {
        CacheEntry {
            volume: name.into(),
            key: key.into(),
            scope: "p".into(),
            saved: UNIX_EPOCH + Duration::from_secs(saved_s),
            last_used: UNIX_EPOCH + Duration::from_secs(used_s),
            size_bytes: size,
        }
    }

    #[test]
    fn eviction_takes_the_old_the_replaced_then_the_least_recently_used() {
        // Newest saved first, as `list` gives them.
        let entries = vec![
            entry("d", "k1", 400, 400, 10),
            entry("c", "k2", 300, 900, 10),
            entry("b", "k1", 200, 200, 10),
            entry("a", "k3", 100, 500, 10),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let none = victims(&entries, &CachePolicy::new(), now);
        assert_eq!(none, [2], "only the replaced entry of k1");
        let old = victims(
            &entries,
            &CachePolicy::new().max_age(Duration::from_secs(550)),
            now,
        );
        assert_eq!(old, [0, 2], "used before 450, and the replaced one");
        let budget = victims(&entries, &CachePolicy::new().max_bytes(15), now);
        // After b (replaced): d (used 400) then a (500) go, c (900) stays.
        assert_eq!(budget, [2, 0, 3]);
        let all = victims(&entries, &CachePolicy::new().max_bytes(0), now);
        assert_eq!(all.len(), 4);
    }
}
