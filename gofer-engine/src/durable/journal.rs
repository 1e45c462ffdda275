//! The journal: carries a run's changes, in order, from the recorder to the run store.
//!
//! The recorder queues every change while it holds the run's lock, so the store sees
//! changes in the order the run made them. A writer task applies them in batches (one
//! transaction each). The queue is bounded: after recording a change the executor
//! awaits [`Journal::room`], which waits while more than [`CAPACITY`] changes are
//! queued, so a slow run store slows the run down instead of growing memory. (The
//! queue can pass the capacity by the few changes each concurrently recording task
//! makes before it waits.) Before the executor acts on something outside the process —
//! starting or removing a container, reporting the run finished — it awaits
//! [`Journal::flush`], which returns once everything queued before it is durable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::{watch, Notify};
use tracing::warn;

use gofer_core::StoreError;
use gofer_core::{DynRunStore, RunChange};

/// Most changes written in one transaction.
const MAX_BATCH: usize = 512;

/// Changes queued before the executor waits for the store.
pub(crate) const CAPACITY: u64 = 1024;

/// Why the journal cannot make a run's changes durable.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum JournalError {
    /// A write to the run store failed; every later flush fails too (the store no
    /// longer holds the run's whole history).
    #[error("cannot record the run in the run store: {0}")]
    Store(Arc<StoreError>),
    /// The writer stopped (the runtime is shutting down).
    #[error("the run store writer has stopped")]
    Stopped,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    /// How many changes are durable.
    written: u64,
    failed: Option<JournalError>,
    stopped: bool,
}

struct Inner {
    queue: Mutex<VecDeque<RunChange>>,
    /// How many changes were ever queued.
    sent: AtomicU64,
    wake: Arc<Notify>,
    progress: watch::Sender<Progress>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Let the writer see that no change will come any more.
        self.wake.notify_one();
    }
}

/// The sending side, held by a run's recorder. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("sent", &self.inner.sent.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Journal {
    /// A journal writing to `store`, and the writer future to spawn.
    pub(crate) fn new(
        store: Arc<DynRunStore>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            queue: Mutex::new(VecDeque::new()),
            sent: AtomicU64::new(0),
            wake: wake.clone(),
            progress: watch::channel(Progress::default()).0,
        });
        let writer = writer(store, Arc::downgrade(&inner), wake);
        (Self { inner }, writer)
    }

    /// Queues a change (in order with every other change of the run). Never waits:
    /// callers await [`Journal::room`] once they released the run's lock.
    pub(crate) fn send(&self, change: RunChange) {
        lock(&self.inner.queue).push_back(change);
        self.inner.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.wake.notify_one();
    }

    /// Waits while more than [`CAPACITY`] changes wait for the store.
    pub(crate) async fn room(&self) {
        let mut rx = self.inner.progress.subscribe();
        let sent = &self.inner.sent;
        let _ = rx
            .wait_for(|p| {
                p.stopped
                    || p.failed.is_some()
                    || sent.load(Ordering::SeqCst).saturating_sub(p.written) <= CAPACITY
            })
            .await;
    }

    /// Waits until every change queued before this call is durable.
    ///
    /// # Errors
    /// [`JournalError`] once a write failed or the writer stopped.
    pub(crate) async fn flush(&self) -> Result<(), JournalError> {
        let target = self.inner.sent.load(Ordering::SeqCst);
        let mut rx = self.inner.progress.subscribe();
        let p = rx
            .wait_for(|p| p.written >= target || p.failed.is_some() || p.stopped)
            .await
            .map_err(|_| JournalError::Stopped)?
            .clone();
        match p.failed {
            Some(e) => Err(e),
            None if p.written >= target => Ok(()),
            None => Err(JournalError::Stopped),
        }
    }
}

async fn writer(store: Arc<DynRunStore>, inner: Weak<Inner>, wake: Arc<Notify>) {
    let _guard = WriterGuard(inner.clone());
    let mut failed: Option<JournalError> = None;
    loop {
        wake.notified().await;
        loop {
            let Some(journal) = inner.upgrade() else {
                return;
            };
            let batch: Vec<RunChange> = {
                let mut q = lock(&journal.queue);
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                break;
            }
            if failed.is_none() {
                if let Err(e) = store.apply(&batch).await {
                    warn!(store = store.name(), error = %e, "run store write failed");
                    failed = Some(JournalError::Store(Arc::new(e)));
                }
            }
            let n = batch.len() as u64;
            journal.progress.send_modify(|p| {
                p.written += n;
                p.failed.clone_from(&failed);
            });
        }
    }
}

/// Marks the journal stopped when the writer goes away (its runtime shut down), so
/// flushes and waits for room do not wait forever.
struct WriterGuard(Weak<Inner>);

impl Drop for WriterGuard {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.progress.send_modify(|p| p.stopped = true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gofer_core::Event;
    use gofer_core::InMemoryRunStore;
    use std::time::SystemTime;

    /// A run store that does not answer: the queue stops growing at the capacity
    /// (the executor waits for room), instead of holding every change in memory.
    #[tokio::test(start_paused = true)]
    async fn a_slow_store_makes_the_executor_wait() {
        #[derive(Debug)]
        struct Stuck(InMemoryRunStore);
        #[async_trait::async_trait]
        impl gofer_core::RunStore for Stuck {
            fn name(&self) -> &'static str {
                "stuck"
            }
            async fn apply(&self, _: &[RunChange]) -> Result<(), StoreError> {
                std::future::pending().await
            }
            async fn put_pipeline(&self, p: &gofer_core::Pipeline) -> Result<(), StoreError> {
                self.0.put_pipeline(p).await
            }
            async fn get_pipeline(&self, id: &str) -> Result<gofer_core::Pipeline, StoreError> {
                self.0.get_pipeline(id).await
            }
            async fn list_pipelines(&self) -> Result<Vec<String>, StoreError> {
                self.0.list_pipelines().await
            }
            async fn get_run(&self, p: &str, r: u64) -> Result<gofer_core::Run, StoreError> {
                self.0.get_run(p, r).await
            }
            async fn list_runs(&self, p: &str) -> Result<Vec<gofer_core::Run>, StoreError> {
                self.0.list_runs(p).await
            }
            async fn get_task(
                &self,
                p: &str,
                r: u64,
                t: &str,
            ) -> Result<gofer_core::TaskDetails, StoreError> {
                self.0.get_task(p, r, t).await
            }
            async fn events(&self, p: &str, r: u64) -> Result<Vec<Event>, StoreError> {
                self.0.events(p, r).await
            }
            async fn unfinished_runs(&self) -> Result<Vec<gofer_core::UnfinishedRun>, StoreError> {
                self.0.unfinished_runs().await
            }
            async fn next_run_id(&self, p: &str) -> Result<u64, StoreError> {
                self.0.next_run_id(p).await
            }
            async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, StoreError> {
                self.0.last_run_ids().await
            }
        }
        let (journal, writer) = Journal::new(Arc::new(Stuck(InMemoryRunStore::new())));
        tokio::spawn(writer);
        let event = || RunChange::Event {
            pipeline: "p".into(),
            run: 1,
            event: Event::Run {
                state: gofer_core::RunState::Running,
                status: gofer_core::RunStatus::Unknown,
                at: SystemTime::UNIX_EPOCH,
            },
        };
        for _ in 0..CAPACITY {
            journal.send(event());
        }
        // The writer took a batch and is stuck on it; up to the capacity there is room.
        tokio::task::yield_now().await;
        tokio::time::timeout(std::time::Duration::from_secs(1), journal.room())
            .await
            .expect("room up to the capacity");
        journal.send(event());
        let waited =
            tokio::time::timeout(std::time::Duration::from_secs(3600), journal.room()).await;
        assert!(
            waited.is_err(),
            "room() must wait while the store is behind"
        );
    }
}
