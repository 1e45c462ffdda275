//! Cache volumes: directories a task keeps between runs ([`Cache`]).
//!
//! A task declares caches, each a key, a mount path and optional fallback key
//! prefixes. The semantics, which every backend with engine-scoped volumes shares:
//!
//! - **Entries are immutable.** A saved cache is a named engine volume (an *entry*)
//!   labelled with its key, its scope and when it was saved; once saved its content
//!   never changes.
//! - **Restore copies.** Before the task starts, the newest complete entry whose key is
//!   the task's key (a *hit*), or else whose key starts with the first fallback prefix
//!   that matches any (a *fallback hit*), is copied into a fresh volume of this attempt
//!   only, which the task mounts read-write at the cache's path. No entry: the volume
//!   starts empty (a *miss*). A task therefore never sees another run's writes, and two
//!   runs with the same key never touch the same volume.
//! - **Save on success, on a miss.** When the attempt succeeds and its key had no exact
//!   entry, its volume is copied into a new entry, which counts only once the copy is
//!   complete (a marker file written last; a half-saved entry left by a crash is never
//!   restored). A failed, cancelled or timed-out attempt saves nothing, so a failure
//!   never poisons a key. After an exact hit nothing is saved: a key names one content,
//!   as GitHub's `actions/cache` does; put what changes the content in the key.
//! - **Scope.** An entry belongs to its pipeline: another pipeline's tasks never
//!   restore it, unless the host shares caches across pipelines
//!   (`EngineBuilder::share_caches`), in which case every pipeline of that engine
//!   sees every entry.
//! - **Keys** are templates over the task's plain variables (its own, the run's, the
//!   matrix values, `GOFER_PIPELINE_ID`) as `{{NAME}}`, and over the content of files
//!   in the run's workspace as `{{digest:PATH}}`: the first 16 hex digits of the
//!   file's SHA-256, read when the task starts (so a parent task can write the file).
//!   A secret never goes into a key (keys are labels anyone listing volumes reads).
//! - **Eviction** (`Engine::prune_caches`): entries unused for longer than an age limit
//!   go, then older entries of a key that has a newer one, then least recently used
//!   entries until the total size is within a budget; an entry being restored from is
//!   never removed.
//!
//! Only backends whose volumes every container sees ([`VolumeScope::Engine`](crate::VolumeScope))
//! hold caches; a pipeline with a cache is refused on the others (Docker Swarm) by
//! [`Pipeline::validate_for`](crate::Pipeline::validate_for), naming the field.

use serde::{Deserialize, Serialize};

/// At most this many caches per task.
pub const MAX_CACHES: usize = 16;

/// A resolved key is at most this many bytes.
pub const MAX_CACHE_KEY_LEN: usize = 512;

/// The label marking a cache volume, with value [`CACHE_ROLE_ENTRY`] or
/// [`CACHE_ROLE_USED`].
pub const LABEL_CACHE: &str = "dev.gofer.cache";
/// Label: an entry's (or a use record's) resolved key.
pub const LABEL_CACHE_KEY: &str = "dev.gofer.cache.key";
/// Label: an entry's scope (its pipeline id, or `*` when caches are shared).
pub const LABEL_CACHE_SCOPE: &str = "dev.gofer.cache.scope";
/// Label: when an entry was saved, or (on a use record) last restored, in
/// milliseconds since the Unix epoch.
pub const LABEL_CACHE_AT: &str = "dev.gofer.cache.at";
/// Label: on a use record, the entry it records the last use of.
pub const LABEL_CACHE_ENTRY: &str = "dev.gofer.cache.entry";
/// [`LABEL_CACHE`] of an entry.
pub const CACHE_ROLE_ENTRY: &str = "entry";
/// [`LABEL_CACHE`] of a use record: an empty volume whose labels say when an entry was
/// last restored (engine volume labels cannot change, so each restore replaces it).
pub const CACHE_ROLE_USED: &str = "used";
/// The scope of entries shared by every pipeline.
pub const SHARED_SCOPE: &str = "*";

/// The file a complete entry holds at its root, written last by a save; never copied
/// into a task's volume.
pub const COMPLETE_MARKER: &str = ".gofer-cache-complete";

/// A directory a task keeps between runs (see the [module](self) for the semantics).
///
/// ```
/// use gofer_core::Cache;
/// let c = Cache::new("cargo-{{digest:Cargo.lock}}", "/usr/local/cargo/registry")
///     .restore_keys(["cargo-"]);
/// assert_eq!(c.problem(), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Cache {
    /// The key template.
    pub key: String,
    /// Where the task sees it (absolute path in the container).
    pub path: String,
    /// Key prefixes (templates too) tried in order on a miss: the newest entry whose
    /// key starts with the first prefix that matches is restored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_keys: Vec<String>,
}

/// A part of a key template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    Text(&'a str),
    Var(&'a str),
    Digest(&'a str),
}

impl Cache {
    /// A cache with a key template and a mount path.
    pub fn new(key: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            path: path.into(),
            restore_keys: Vec::new(),
        }
    }

    /// Sets the fallback key prefixes.
    #[must_use]
    pub fn restore_keys(mut self, prefixes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.restore_keys = prefixes.into_iter().map(Into::into).collect();
        self
    }

    /// What is wrong with the cache as written, if anything.
    pub fn problem(&self) -> Option<String> {
        if !self.path.starts_with('/') {
            return Some(format!("path {:?} is not absolute", self.path));
        }
        if self.path == "/" || self.path.split('/').any(|s| s == "..") {
            return Some(format!("path {:?} cannot hold a cache", self.path));
        }
        if self.key.trim().is_empty() {
            return Some("the key is empty".into());
        }
        for t in std::iter::once(&self.key).chain(&self.restore_keys) {
            if let Err(e) = parts(t) {
                return Some(e);
            }
            if t.len() > MAX_CACHE_KEY_LEN {
                return Some(format!("{t:?} is longer than {MAX_CACHE_KEY_LEN} bytes"));
            }
        }
        if self.restore_keys.iter().any(|k| k.is_empty()) {
            return Some("a restore key is empty (it would match every entry)".into());
        }
        None
    }

    /// The workspace files the key and prefixes take a digest of, in order, once each.
    pub fn digest_paths(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in std::iter::once(&self.key).chain(&self.restore_keys) {
            for p in parts(t).unwrap_or_default() {
                if let Part::Digest(path) = p {
                    if !out.iter().any(|o| o == path) {
                        out.push(path.to_string());
                    }
                }
            }
        }
        out
    }

    /// The key, then the prefixes, resolved: `var` gives a variable's plain value,
    /// `digest` a workspace file's digest.
    ///
    /// # Errors
    /// What could not be resolved (a variable not set, a digest not known, a key too
    /// long), in words naming it.
    pub fn resolve(
        &self,
        var: impl Fn(&str) -> Option<String>,
        digest: impl Fn(&str) -> Option<String>,
    ) -> Result<(String, Vec<String>), String> {
        let one = |t: &str| -> Result<String, String> {
            let mut out = String::new();
            for p in parts(t)? {
                match p {
                    Part::Text(s) => out.push_str(s),
                    Part::Var(name) => out.push_str(&var(name).ok_or_else(|| {
                        format!("key {t:?} names variable {name:?}, which has no plain value")
                    })?),
                    Part::Digest(path) => out.push_str(&digest(path).ok_or_else(|| {
                        format!(
                            "key {t:?} takes the digest of {path:?}, which is not in the workspace"
                        )
                    })?),
                }
            }
            if out.len() > MAX_CACHE_KEY_LEN {
                return Err(format!(
                    "key {t:?} resolves to {} bytes; at most {MAX_CACHE_KEY_LEN}",
                    out.len()
                ));
            }
            if out.is_empty() {
                return Err(format!("key {t:?} resolves to nothing"));
            }
            Ok(out)
        };
        let key = one(&self.key)?;
        let prefixes = self
            .restore_keys
            .iter()
            .map(|t| one(t))
            .collect::<Result<_, _>>()?;
        Ok((key, prefixes))
    }
}

/// Splits a template into text, `{{NAME}}` and `{{digest:PATH}}`.
fn parts(template: &str) -> Result<Vec<Part<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        if start > 0 {
            out.push(Part::Text(&rest[..start]));
        }
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(format!("{{{{ without }}}} in key {template:?}"));
        };
        let inner = after[..end].trim();
        if let Some(path) = inner.strip_prefix("digest:") {
            let path = path.trim();
            check_digest_path(path).map_err(|why| format!("in key {template:?}: {why}"))?;
            out.push(Part::Digest(path));
        } else if crate::variable::is_valid_env_key(inner) {
            out.push(Part::Var(inner));
        } else {
            return Err(format!(
                "{inner:?} in key {template:?} is neither a variable name nor digest:PATH"
            ));
        }
        rest = &after[end + 2..];
    }
    if !rest.is_empty() {
        out.push(Part::Text(rest));
    }
    Ok(out)
}

/// A digest path: relative to the workspace, no `..`, printable without quotes in a
/// POSIX shell's single quotes.
fn check_digest_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("digest: names no file".into());
    }
    if path.starts_with('/') || path.split('/').any(|s| s == "..") {
        return Err(format!(
            "digest path {path:?} must be relative to the workspace, without `..`"
        ));
    }
    if path.contains(['\'', '\n', '\r', '\0']) {
        return Err(format!(
            "digest path {path:?} holds a quote or a line break"
        ));
    }
    Ok(())
}

/// The first 16 hex digits of `sha256sum`'s digest, as a key takes it.
pub fn short_digest(full_hex: &str) -> String {
    full_hex.chars().take(16).collect()
}

/// The name of a cache entry volume: `gofer-cache-` and 20 hex digits of a digest of
/// scope and key, then `-` and `unique` (which tells two saves of one key apart).
pub fn cache_entry_name(scope: &str, key: &str, unique: &str) -> String {
    format!("gofer-cache-{}-{unique}", key_digest(scope, key))
}

/// The name of the use record of entry `entry`.
pub fn cache_used_name(entry: &str) -> String {
    format!("{entry}-used")
}

fn key_digest(scope: &str, key: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    h.finalize()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_resolve_variables_and_digests_and_say_what_is_missing() {
        let c = Cache::new("cargo-{{OS}}-{{ digest:Cargo.lock }}", "/c")
            .restore_keys(["cargo-{{OS}}-"]);
        assert_eq!(c.problem(), None);
        assert_eq!(c.digest_paths(), ["Cargo.lock"]);
        let got = c
            .resolve(
                |k| (k == "OS").then(|| "linux".into()),
                |p| (p == "Cargo.lock").then(|| "0123abcd".into()),
            )
            .unwrap();
        assert_eq!(
            got,
            ("cargo-linux-0123abcd".into(), vec!["cargo-linux-".into()])
        );
        let e = c.resolve(|_| None, |_| Some("x".into())).unwrap_err();
        assert!(e.contains("\"OS\""), "{e}");
        let e = c.resolve(|_| Some("x".into()), |_| None).unwrap_err();
        assert!(e.contains("Cargo.lock"), "{e}");
    }

    #[test]
    fn bad_caches_say_what_is_wrong() {
        let bad = |c: Cache, want: &str| {
            let p = c.problem().unwrap();
            assert!(p.contains(want), "{p}");
        };
        bad(Cache::new("k", "rel"), "not absolute");
        bad(Cache::new("k", "/"), "cannot hold");
        bad(Cache::new(" ", "/c"), "empty");
        bad(Cache::new("k-{{A", "/c"), "without");
        bad(Cache::new("k-{{1x}}", "/c"), "neither");
        bad(Cache::new("k-{{digest:/etc/passwd}}", "/c"), "relative");
        bad(Cache::new("k-{{digest:../x}}", "/c"), "relative");
        bad(Cache::new("k-{{digest:a'b}}", "/c"), "quote");
        bad(Cache::new("k", "/c").restore_keys([""]), "every entry");
        bad(Cache::new("k".repeat(600), "/c"), "longer");
        let long = Cache::new("{{A}}", "/c");
        let e = long
            .resolve(|_| Some("x".repeat(600)), |_| None)
            .unwrap_err();
        assert!(e.contains("600 bytes"), "{e}");
    }

    #[test]
    fn entry_names_are_volume_names_apart_per_scope() {
        let a = cache_entry_name("p", "k", "1");
        assert!(a.starts_with("gofer-cache-"));
        assert!(crate::check_volume_name("t", &a).is_ok());
        assert_ne!(a, cache_entry_name("q", "k", "1"));
        assert_ne!(a, cache_entry_name("p", "k", "2"));
        assert!(crate::check_volume_name("t", &cache_used_name(&a)).is_ok());
    }
}
