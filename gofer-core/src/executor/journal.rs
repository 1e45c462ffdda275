//! The journal: carries a run's changes, in order, from the recorder to the run store.
//!
//! The recorder sends every change while it holds the run's lock, so the store sees
//! changes in the order the run made them. A writer task applies them in batches (one
//! transaction each). Before the executor acts on something outside the process —
//! starting or removing a container, reporting the run finished — it awaits
//! [`Journal::flush`], which returns once everything sent before it is durable.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::runstore::{DynRunStore, RunChange};

/// Most changes written in one transaction.
const MAX_BATCH: usize = 512;

enum Op {
    Change(Box<RunChange>),
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The sending side, held by a run's recorder.
#[derive(Debug, Clone)]
pub(crate) struct Journal {
    tx: mpsc::UnboundedSender<Op>,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Op::Change(_) => f.write_str("Change"),
            Op::Flush(_) => f.write_str("Flush"),
        }
    }
}

impl Journal {
    /// A journal writing to `store`, and the writer future to spawn.
    pub(crate) fn new(
        store: Arc<DynRunStore>,
    ) -> (Self, impl std::future::Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, writer(store, rx))
    }

    /// Queues a change (in order with every other change of the run).
    pub(crate) fn send(&self, change: RunChange) {
        // A closed writer (the runtime is shutting down) has already reported its
        // failure to the flushes that matter.
        let _ = self.tx.send(Op::Change(Box::new(change)));
    }

    /// Waits until every change sent before this call is durable.
    ///
    /// # Errors
    /// The store's error message, once a write failed (every later flush fails too:
    /// the store no longer holds the run's whole history).
    pub(crate) async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Op::Flush(tx)).is_err() {
            return Err("the run store writer has stopped".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the run store writer has stopped".into()))
    }
}

async fn writer(store: Arc<DynRunStore>, mut rx: mpsc::UnboundedReceiver<Op>) {
    let mut failed: Option<String> = None;
    let mut batch = Vec::new();
    let mut waiters = Vec::new();
    while let Some(op) = rx.recv().await {
        let mut next = Some(op);
        while let Some(op) = next.take() {
            match op {
                Op::Change(c) => batch.push(*c),
                Op::Flush(w) => waiters.push(w),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if failed.is_none() && !batch.is_empty() {
            if let Err(e) = store.apply(&batch).await {
                let message = format!("cannot record the run in the run store: {e}");
                warn!(store = store.name(), error = %e, "run store write failed");
                failed = Some(message);
            }
        }
        batch.clear();
        for w in waiters.drain(..) {
            let _ = w.send(failed.clone().map_or(Ok(()), Err));
        }
    }
}
