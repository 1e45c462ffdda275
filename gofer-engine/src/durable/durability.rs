//! The engine's durable side: its run store, the pipelines hosts registered, the runs
//! it is executing (so a simulated crash can stop them), and whether it has recovered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::task::JoinHandle;

use gofer_core::{DynRunStore, RunSpec};
use gofer_core::{Pipeline, RegistryAuth};

use crate::durable::recorder::Recorder;

struct LiveRun {
    task: JoinHandle<()>,
    recorder: Weak<Recorder>,
}

/// What an engine with a run store keeps beside it.
pub(crate) struct Durability {
    pub(crate) store: Arc<DynRunStore>,
    registered: Mutex<HashMap<String, Pipeline>>,
    recovered: AtomicBool,
    live: Mutex<Vec<LiveRun>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Durability {
    pub(crate) fn new(store: Arc<DynRunStore>) -> Self {
        Self {
            store,
            registered: Mutex::new(HashMap::new()),
            recovered: AtomicBool::new(false),
            live: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn recovered(&self) -> bool {
        self.recovered.load(Ordering::SeqCst)
    }

    pub(crate) fn set_recovered(&self) {
        self.recovered.store(true, Ordering::SeqCst);
    }

    pub(crate) fn register(&self, pipeline: &Pipeline) {
        lock(&self.registered).insert(pipeline.id.clone(), pipeline.clone());
    }

    /// The stored pipeline of a run with the registry credentials of the pipeline the
    /// host registered (for the tasks whose credentials were not stored).
    /// A task the host did not register credentials for gets its stored placeholder
    /// password back (resolved from the secret store at its start).
    pub(crate) fn with_credentials(&self, spec: &RunSpec) -> Pipeline {
        let mut p = spec.pipeline.clone();
        let registered = lock(&self.registered);
        let host = registered.get(&p.id);
        for t in &mut p.tasks {
            if !spec.credentials_removed.contains(&t.id) {
                continue;
            }
            let matrix_task = t.matrix_cell.as_ref().map(|c| c.task.clone());
            t.registry_auth = host
                .and_then(|h| {
                    h.get_task(&t.id)
                        .or_else(|| matrix_task.as_deref().and_then(|m| h.get_task(m)))
                })
                .and_then(|h| h.registry_auth.clone())
                .or_else(|| {
                    spec.registry_placeholders
                        .iter()
                        .find(|r| r.task == t.id)
                        .map(|r| RegistryAuth::new(&r.username, &r.password_placeholder))
                });
        }
        p
    }

    /// Remembers a run's executor task.
    pub(crate) fn track(&self, task: JoinHandle<()>, recorder: &Arc<Recorder>) {
        let mut live = lock(&self.live);
        live.retain(|l| !l.task.is_finished());
        live.push(LiveRun {
            task,
            recorder: Arc::downgrade(recorder),
        });
    }

    /// Stops every run's executor at once, as if the host died: no container is
    /// stopped or removed, nothing more is recorded after what was already sent.
    pub(crate) async fn crash(&self) {
        let live: Vec<LiveRun> = std::mem::take(&mut *lock(&self.live));
        for l in &live {
            l.task.abort();
        }
        for l in live {
            // Wait until the executor is gone, then until what it sent has landed;
            // then detach the journal so nothing more is written.
            let _ = l.task.await;
            if let Some(r) = l.recorder.upgrade() {
                let _ = r.flush().await;
                r.detach_journal();
            }
        }
    }
}
