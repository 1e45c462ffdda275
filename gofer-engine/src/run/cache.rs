//! A task attempt's caches ([`gofer_core::cache`]): before the start, each key is
//! resolved and the best entry copied into a volume of this attempt only; after a
//! success, the volume of a key that had no exact entry is saved as a new entry.
//!
//! The copies run in helper containers (the task's image, or the engine's
//! [`EngineBuilder::cache_helper_image`](crate::EngineBuilder::cache_helper_image)) with
//! `sh`, `cp`, `du` and `sha256sum`, no network, labelled with the run (role `cache`),
//! so a host that dies mid-copy has them reaped with the run's other leftovers.

use std::collections::BTreeMap;
use std::time::SystemTime;

use futures::StreamExt;
use tracing::{debug, warn};

use gofer_core::cache::{
    cache_entry_name, short_digest, CACHE_ROLE_ENTRY, COMPLETE_MARKER, LABEL_CACHE, LABEL_CACHE_AT,
    LABEL_CACHE_KEY, LABEL_CACHE_SCOPE,
};
use gofer_core::naming::{LABEL_ENGINE, LABEL_PIPELINE, LABEL_ROLE, LABEL_RUN};
use gofer_core::{
    ContainerSpec, ExitStatus, Mount, NetworkMode, OutputStream, PullPolicy, RegistryAuth,
    VolumeSpec, WORKSPACE_PATH,
};

use crate::run::caches::{self, millis, LABEL_CACHE_SIZE};
use crate::run::container::guarded;
use crate::run::ctx::RunCtx;

/// Exit code of a restore helper that found the entry incomplete.
const INCOMPLETE: i64 = 97;

/// What an attempt's caches are: the volumes it mounts, and what to save on success.
#[derive(Debug, Default)]
pub(crate) struct TaskCaches {
    /// The attempt's own volumes, one per cache, mounted at the caches' paths.
    pub(crate) mounts: Vec<Mount>,
    /// Saved if the attempt succeeds: (volume, resolved key) of each cache without
    /// an exact entry.
    saves: Vec<(String, String)>,
    /// The image and credentials the helpers use.
    helper: Option<(String, Option<RegistryAuth>)>,
}

impl TaskCaches {
    /// The volumes of the caches of the attempt whose container is `base`, made
    /// before a crash: removed after it, never saved.
    pub(crate) fn existing(base: &str, caches: &[gofer_core::Cache]) -> Self {
        Self {
            mounts: caches
                .iter()
                .enumerate()
                .map(|(i, c)| Mount::volume(format!("{base}.cache{i}"), c.path.clone()))
                .collect(),
            ..Self::default()
        }
    }

    /// The attempt's volumes (removed after its container).
    pub(crate) fn volumes(&self) -> Vec<String> {
        self.mounts
            .iter()
            .filter_map(|m| match &m.source {
                gofer_core::MountSource::Volume(v) => Some(v.clone()),
                _ => None,
            })
            .collect()
    }
}

/// How a cache was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    Hit,
    Fallback,
    Miss,
}

/// Resolves task `idx`'s caches and restores them into volumes of this attempt
/// (`base` is the attempt's container name); the message the task fails with when a
/// key cannot be resolved (a variable unset, a digested file absent).
///
/// A copy that fails (an image without `sh`, an engine error) leaves that cache
/// empty, reported in the log: a cache is a speed-up, never a reason to fail.
pub(crate) async fn prepare(
    ctx: &RunCtx,
    idx: usize,
    base: &str,
    auth: Option<&RegistryAuth>,
    var: &(dyn Fn(&str) -> Option<String> + Sync),
    out: &mut TaskCaches,
) -> Result<(), String> {
    let task = &ctx.plan.pipeline.tasks[idx];
    let engine = &ctx.engine;
    let s = engine.containers.scheduler();
    let image = engine
        .caches
        .helper_image
        .clone()
        .unwrap_or_else(|| task.image.clone());
    out.helper = Some((image, auth.cloned()));
    // The digests every key takes, read at once from the workspace.
    let paths: Vec<String> = {
        let mut all: Vec<String> = Vec::new();
        for c in &task.caches {
            for p in c.digest_paths() {
                if !all.contains(&p) {
                    all.push(p);
                }
            }
        }
        all
    };
    let digests = if paths.is_empty() {
        BTreeMap::new()
    } else {
        digest_files(ctx, out, base, &paths).await?
    };
    let scope = engine.caches.scope(&ctx.plan.pipeline.id);
    let entries = match caches::list(s, Some(&scope)).await {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "cannot list cache entries; the caches start empty");
            Vec::new()
        }
    };
    for (i, c) in task.caches.iter().enumerate() {
        let (key, prefixes) = c
            .resolve(var, |p| digests.get(p).cloned())
            .map_err(|e| format!("caches[{i}]: {e}"))?;
        let volume = format!("{base}.cache{i}");
        let spec = VolumeSpec::new(volume.clone()).labels(run_labels(ctx));
        guarded(s, "create_volume", s.create_volume(spec))
            .await
            .map_err(|e| format!("caches[{i}]: cannot create the cache's volume: {e}"))?;
        out.mounts
            .push(Mount::volume(volume.clone(), c.path.clone()));
        // Candidates: exact key newest first, then each prefix's newest first.
        let mut candidates: Vec<(&str, Found)> = entries
            .iter()
            .filter(|e| e.key == key)
            .map(|e| (e.volume.as_str(), Found::Hit))
            .collect();
        for p in &prefixes {
            candidates.extend(
                entries
                    .iter()
                    .filter(|e| e.key != key && e.key.starts_with(p.as_str()))
                    .map(|e| (e.volume.as_str(), Found::Fallback)),
            );
        }
        let mut found = Found::Miss;
        for (entry, kind) in candidates {
            match restore(ctx, out, &format!("{volume}-restore"), entry, &volume).await {
                Ok(true) => {
                    caches::touch(s, entry, &scope).await;
                    found = kind;
                    debug!(cache = i, %key, entry, ?kind, "cache restored");
                    break;
                }
                Ok(false) => {
                    // Half saved by a host that died: never restored; gone if not in use.
                    warn!(entry, "cache entry incomplete; removing it");
                    let _ = caches::remove_entry(s, entry).await;
                }
                Err(e) => {
                    warn!(cache = i, entry, error = %e, "cannot restore the cache; it starts empty");
                    break;
                }
            }
        }
        if found == Found::Miss {
            debug!(cache = i, %key, "cache miss");
        }
        ctx.recorder.metrics.cache(found != Found::Miss);
        if found != Found::Hit {
            out.saves.push((volume, key));
        }
    }
    Ok(())
}

/// Copies `entry` into `volume`; `Ok(false)` when the entry is incomplete.
async fn restore(
    ctx: &RunCtx,
    caches: &TaskCaches,
    name: &str,
    entry: &str,
    volume: &str,
) -> Result<bool, String> {
    let _held = ctx.engine.caches.hold(entry);
    let script = format!(
        "test -e /from/{COMPLETE_MARKER} || exit {INCOMPLETE}; \
         cp -a /from/. /to/ && rm -f /to/{COMPLETE_MARKER}"
    );
    let mounts = vec![
        Mount::volume(entry, "/from").read_only(),
        Mount::volume(volume, "/to"),
    ];
    match helper(ctx, caches, name, &script, mounts).await? {
        (0, _) => Ok(true),
        (INCOMPLETE, _) => Ok(false),
        (code, err) => Err(format!("the copy exited with {code}: {}", err.trim())),
    }
}

/// The short digests of workspace files, by path.
async fn digest_files(
    ctx: &RunCtx,
    caches: &TaskCaches,
    base: &str,
    paths: &[String],
) -> Result<BTreeMap<String, String>, String> {
    let Some(workspace) = &ctx.setup.workspace else {
        return Err("a cache key takes a file's digest, but the run has no workspace".into());
    };
    let quoted: Vec<String> = paths.iter().map(|p| format!("'{p}'")).collect();
    let script = format!("cd {WORKSPACE_PATH} && sha256sum -- {}", quoted.join(" "));
    let mounts = vec![Mount::volume(workspace.clone(), WORKSPACE_PATH).read_only()];
    let (_, out) = helper(ctx, caches, &format!("{base}.digest"), &script, mounts)
        .await
        .map_err(|e| format!("cannot take the digests of {paths:?}: {e}"))?;
    // `sha256sum` prints `<hex>  <path>` for each file it could read.
    Ok(out
        .lines()
        .filter_map(|l| {
            let (hex, path) = l.split_once("  ")?;
            (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| (path.to_string(), short_digest(hex)))
        })
        .collect())
}

/// Saves each cache of a succeeded attempt that had no exact entry (see the module).
/// Failures are logged: the next run misses and saves again.
pub(crate) async fn save(ctx: &RunCtx, caches: &TaskCaches) {
    let s = ctx.engine.containers.scheduler();
    let scope = ctx.engine.caches.scope(&ctx.plan.pipeline.id);
    let mut saved = false;
    for (volume, key) in &caches.saves {
        match save_one(ctx, caches, volume, key, &scope).await {
            Ok(entry) => {
                debug!(%key, entry, "cache saved");
                saved = true;
            }
            Err(e) => warn!(%key, error = %e, "cannot save the cache"),
        }
    }
    if let (true, Some(policy)) = (saved, ctx.engine.caches.policy) {
        match caches::prune(s, &ctx.engine.caches, &policy, None).await {
            Ok(r) if !r.removed.is_empty() => {
                debug!(
                    removed = r.removed.len(),
                    freed = r.freed_bytes,
                    "caches evicted"
                );
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "cannot evict caches"),
        }
    }
}

async fn save_one(
    ctx: &RunCtx,
    caches: &TaskCaches,
    volume: &str,
    key: &str,
    scope: &str,
) -> Result<String, String> {
    let s = ctx.engine.containers.scheduler();
    // Its size first: labels are set when a volume is made, never after.
    let mounts = vec![Mount::volume(volume, "/from").read_only()];
    let (code, out) = helper(
        ctx,
        caches,
        &format!("{volume}-size"),
        "du -sk /from",
        mounts,
    )
    .await?;
    let kib: u64 = match (code, out.split_whitespace().next().map(str::parse::<u64>)) {
        (0, Some(Ok(kib))) => kib,
        _ => return Err(format!("cannot measure it (exit {code}): {}", out.trim())),
    };
    let now = SystemTime::now();
    let unique = format!("{}{}", millis(now), &volume_digest(volume)[..6]);
    let entry = cache_entry_name(scope, key, &unique);
    let spec = VolumeSpec::new(entry.clone()).labels([
        (LABEL_CACHE.to_string(), CACHE_ROLE_ENTRY.to_string()),
        (LABEL_CACHE_KEY.to_string(), key.to_string()),
        (LABEL_CACHE_SCOPE.to_string(), scope.to_string()),
        (LABEL_CACHE_AT.to_string(), millis(now)),
        (
            LABEL_CACHE_SIZE.to_string(),
            kib.saturating_mul(1024).to_string(),
        ),
    ]);
    guarded(s, "create_volume", s.create_volume(spec))
        .await
        .map_err(|e| format!("cannot create the entry: {e}"))?;
    let _held = ctx.engine.caches.hold(&entry);
    let script = format!("cp -a /from/. /to/ && touch /to/{COMPLETE_MARKER}");
    let mounts = vec![
        Mount::volume(volume, "/from").read_only(),
        Mount::volume(entry.clone(), "/to"),
    ];
    match helper(ctx, caches, &format!("{volume}-save"), &script, mounts).await {
        Ok((0, _)) => Ok(entry),
        other => {
            drop(_held);
            let _ = caches::remove_entry(s, &entry).await;
            match other {
                Ok((code, err)) => Err(format!("the copy exited with {code}: {}", err.trim())),
                Err(e) => Err(e),
            }
        }
    }
}

fn volume_digest(volume: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(volume.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The labels of an attempt's cache volumes and helpers: the run's, role `cache`, so
/// the reaper takes them with the run's other leftovers.
fn run_labels(ctx: &RunCtx) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_ENGINE.to_string(), ctx.engine.instance_id.clone()),
        (LABEL_PIPELINE.to_string(), ctx.plan.pipeline.id.clone()),
        (LABEL_RUN.to_string(), ctx.plan.run_id.to_string()),
        (LABEL_ROLE.to_string(), "cache".to_string()),
    ])
}

/// Runs `script` under `sh -c` in a helper container with `mounts`, no network; its
/// exit code and what it printed (stdout, or stderr when it failed). The container is
/// removed whatever happens.
async fn helper(
    ctx: &RunCtx,
    caches: &TaskCaches,
    name: &str,
    script: &str,
    mounts: Vec<Mount>,
) -> Result<(i64, String), String> {
    let s = ctx.engine.containers.scheduler();
    let (image, auth) = caches
        .helper
        .clone()
        .ok_or_else(|| "no helper image".to_string())?;
    let mut spec = ContainerSpec::new(name, image)
        .pull_policy(PullPolicy::IfNotPresent)
        .registry_auth(auth)
        .labels(run_labels(ctx))
        .network(NetworkMode::None);
    spec.entrypoint = Some(vec!["sh".into(), "-c".into(), script.to_string()]);
    spec.command = Some(Vec::new());
    for m in mounts {
        spec = spec.mount(m);
    }
    // A helper a dead host left under this name goes first.
    let _ = guarded(
        s,
        "remove",
        s.remove(&gofer_core::ContainerId(name.to_string()), true),
    )
    .await;
    let id = guarded(s, "start", s.start(spec))
        .await
        .map_err(|e| e.to_string())?;
    let result = async {
        let status = guarded(s, "wait", s.wait(&id))
            .await
            .map_err(|e| e.to_string())?;
        let code = match status {
            ExitStatus::Exited { code } | ExitStatus::OutOfMemory { code } => code,
            other => return Err(format!("the helper ended with {other:?}")),
        };
        let mut logs = guarded(s, "logs", s.logs(&id))
            .await
            .map_err(|e| e.to_string())?;
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        while let Some(chunk) = logs.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            match chunk.stream {
                OutputStream::Stdout => stdout.extend_from_slice(&chunk.data),
                _ => stderr.extend_from_slice(&chunk.data),
            }
        }
        let text = if code == 0 { stdout } else { stderr };
        Ok((code, String::from_utf8_lossy(&text).into_owned()))
    }
    .await;
    ctx.engine.containers.remove(&id).await;
    result
}
