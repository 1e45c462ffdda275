//! [`Engine::health`]: what an operator checks first — the backend reachable, the run
//! store writable, removals pending, the task queued the longest.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::engine::Engine;

/// One check of [`Health`]: `Ok` with what was found, or `Err` with why not.
pub type Check = Result<String, String>;

/// The oldest queued task: free to start (its parents ended) and not running yet.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueuedTask {
    /// The pipeline.
    pub pipeline: String,
    /// The run.
    pub run: u64,
    /// The task.
    pub task: String,
    /// How long it has waited.
    pub waited: Duration,
}

/// What [`Engine::health`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Health {
    /// The backend's name and whether it answered a listing of containers.
    pub backend: (&'static str, Check),
    /// Whether the run store takes a write (`None`: the engine has no run store).
    pub run_store: Option<Check>,
    /// Exited containers whose removal failed and is being retried.
    pub pending_removals: usize,
    /// The task of a live run queued the longest, if any.
    pub oldest_queued: Option<QueuedTask>,
    /// Runs in progress in this engine.
    pub live_runs: usize,
}

impl Health {
    /// Whether every check passed (queued tasks and pending removals are reported,
    /// not failures).
    pub fn ok(&self) -> bool {
        self.backend.1.is_ok() && self.run_store.as_ref().is_none_or(Result::is_ok)
    }
}

impl Engine {
    /// Checks the engine as an operator would: lists containers on the backend (a
    /// label no container has, so the answer is short), opens a write on the run store
    /// and rolls it back ([`RunStore::probe_write`](gofer_core::RunStore::probe_write)),
    /// and reports pending removals and the task queued the longest.
    pub async fn health(&self) -> Health {
        let s = self.inner.containers.scheduler();
        let probe = BTreeMap::from([("dev.gofer.health".to_string(), "probe".to_string())]);
        let backend = match tokio::time::timeout(Duration::from_secs(10), s.list(&probe)).await {
            Ok(Ok(_)) => Ok("reachable".to_string()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer within 10 s".to_string()),
        };
        let run_store = match self.run_store() {
            None => None,
            Some(store) => Some(match store.probe_write().await {
                Ok(()) => Ok(format!("{} store takes writes", store.name())),
                Err(e) => Err(e.to_string()),
            }),
        };
        let live: Vec<crate::RunHandle> = self
            .inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let oldest_queued = live
            .iter()
            .filter_map(|h| {
                h.oldest_queued().map(|(task, waited)| QueuedTask {
                    pipeline: h.pipeline_id().to_string(),
                    run: h.run_id(),
                    task,
                    waited,
                })
            })
            .max_by_key(|q| q.waited);
        Health {
            backend: (s.name(), backend),
            run_store,
            pending_removals: self.pending_removals(),
            oldest_queued,
            live_runs: live.len(),
        }
    }
}
