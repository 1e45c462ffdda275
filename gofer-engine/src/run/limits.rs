//! Engine-wide limits.

use std::time::Duration;

/// Engine-wide limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most task containers running at once across all runs; 0 is unlimited (the
    /// default).
    pub max_running_containers: usize,
    /// Grace period between SIGTERM and kill when a task or run times out (default
    /// 10 s). [`RunHandle::cancel`](crate::RunHandle::cancel) takes its own.
    pub stop_grace: Duration,
    /// Default run timeout; [`RunOptions::timeout`](gofer_core::RunOptions::timeout) overrides it. `None` (the default)
    /// is no limit.
    pub run_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_running_containers: 0,
            stop_grace: Duration::from_secs(10),
            run_timeout: None,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_running_containers`].
    #[must_use]
    pub fn max_running_containers(mut self, n: usize) -> Self {
        self.max_running_containers = n;
        self
    }

    /// Sets [`Limits::stop_grace`].
    #[must_use]
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Sets [`Limits::run_timeout`].
    #[must_use]
    pub fn run_timeout(mut self, timeout: Duration) -> Self {
        self.run_timeout = Some(timeout);
        self
    }
}
