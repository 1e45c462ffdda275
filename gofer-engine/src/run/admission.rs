//! Admission: run numbers, and which runs of a pipeline may leave Pending under its
//! parallelism (first come, first served).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use gofer_core::Pipeline;

#[derive(Default)]
struct PipelineRuns {
    next_run: u64,
    running: u32,
    queue: VecDeque<oneshot::Sender<()>>,
}

/// Every pipeline's run numbers and slots. Cheap to clone; clones share.
#[derive(Clone, Default)]
pub(crate) struct Admission {
    map: Arc<Mutex<HashMap<String, PipelineRuns>>>,
}

/// How a new run gets its pipeline slot.
pub(crate) enum AdmissionWait {
    /// Unlimited parallelism.
    Free,
    /// A slot was free.
    Granted,
    /// Queued; the sender fires when a slot is handed over.
    Queued(oneshot::Receiver<()>),
}

impl Admission {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, PipelineRuns>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether any run was ever numbered (started or resumed).
    pub(crate) fn started_any(&self) -> bool {
        !self.lock().is_empty()
    }

    /// Run numbers of `pipeline` continue after `last`.
    pub(crate) fn seed_next_run(&self, pipeline: &str, last: u64) {
        let mut map = self.lock();
        let slots = map.entry(pipeline.to_string()).or_default();
        slots.next_run = slots.next_run.max(last);
    }

    /// A pipeline slot for a run (and, for a new run, its number).
    pub(crate) fn take(&self, pipeline: &Pipeline, new_run: bool) -> (u64, AdmissionWait) {
        let mut map = self.lock();
        let slots = map.entry(pipeline.id.clone()).or_default();
        if new_run {
            slots.next_run = slots.next_run.saturating_add(1);
        }
        let wait = if pipeline.parallelism == 0 {
            AdmissionWait::Free
        } else if slots.running < pipeline.parallelism {
            slots.running += 1;
            AdmissionWait::Granted
        } else {
            let (tx, rx) = oneshot::channel();
            slots.queue.push_back(tx);
            AdmissionWait::Queued(rx)
        };
        (slots.next_run, wait)
    }

    /// Gives a finished run's slot to the oldest waiting run, or frees it.
    pub(crate) fn release(&self, pipeline: &str) {
        let mut map = self.lock();
        let Some(slots) = map.get_mut(pipeline) else {
            return;
        };
        while let Some(next) = slots.queue.pop_front() {
            if next.send(()).is_ok() {
                return;
            }
        }
        slots.running = slots.running.saturating_sub(1);
    }

    /// A permit on a slot already taken (or none, for unlimited parallelism).
    pub(crate) fn permit(&self, pipeline: &str, held: bool) -> SlotPermit {
        SlotPermit {
            slots: held.then(|| self.clone()),
            pipeline: pipeline.to_string(),
        }
    }
}

/// A pipeline-parallelism slot held by a running run; freed on drop.
pub(crate) struct SlotPermit {
    slots: Option<Admission>,
    pipeline: String,
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(s) = self.slots.take() {
            s.release(&self.pipeline);
        }
    }
}
