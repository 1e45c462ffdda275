//! The stop signal of a run: a cancel or the run timeout asks every task to stop.

use std::time::Duration;

use tokio::sync::watch;

/// Why a run is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// `RunHandle::cancel`.
    Cancelled,
    /// The run timeout elapsed.
    Timeout,
}

/// A request to stop a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    pub(crate) cause: StopCause,
    pub(crate) grace: Duration,
}

/// Set once, by the first cancel or timeout; read by every task of the run.
#[derive(Debug)]
pub(crate) struct StopSignal {
    tx: watch::Sender<Option<Stop>>,
}

impl StopSignal {
    pub(crate) fn new() -> Self {
        Self {
            tx: watch::channel(None).0,
        }
    }

    /// Asks the run to stop; returns false (and changes nothing) when it already was
    /// with a grace as short. A later request with a shorter grace shortens the grace
    /// of stops under way (a second Ctrl-C); the cause stays the first one.
    pub(crate) fn request(&self, stop: Stop) -> bool {
        self.tx.send_if_modified(|s| match s {
            None => {
                *s = Some(stop);
                true
            }
            Some(current) if stop.grace < current.grace => {
                current.grace = stop.grace;
                true
            }
            Some(_) => false,
        })
    }

    /// The stop asked for, if any.
    pub(crate) fn current(&self) -> Option<Stop> {
        *self.tx.borrow()
    }

    pub(crate) fn subscribe(&self) -> StopWatch {
        StopWatch(self.tx.subscribe())
    }
}

/// One task's view of the stop signal.
#[derive(Debug)]
pub(crate) struct StopWatch(watch::Receiver<Option<Stop>>);

impl StopWatch {
    /// The stop asked for, if any.
    pub(crate) fn current(&self) -> Option<Stop> {
        *self.0.borrow()
    }

    /// Waits until the stop's grace is shorter than `than`.
    pub(crate) async fn shortened(&mut self, than: Duration) -> Stop {
        match self
            .0
            .wait_for(|s| s.is_some_and(|s| s.grace < than))
            .await
            .ok()
            .and_then(|s| *s)
        {
            Some(stop) => stop,
            None => std::future::pending().await,
        }
    }

    /// Waits until the run is asked to stop.
    pub(crate) async fn stopped(&mut self) -> Stop {
        match self.0.wait_for(Option::is_some).await.ok().and_then(|s| *s) {
            Some(stop) => stop,
            // The signal's owner (the run) outlives every task of the run.
            None => std::future::pending().await,
        }
    }
}
