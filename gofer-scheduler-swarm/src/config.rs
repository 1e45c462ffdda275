//! How to reach the swarm manager and how services are run and watched.

use std::time::Duration;

pub use gofer_bollard::{DEFAULT_API_VERSION, DEFAULT_HOST};

/// Settings of a [`SwarmScheduler`](crate::SwarmScheduler).
///
/// Built with [`SwarmConfig::new`] (or `Default`) and the builder methods.
///
/// ```
/// use std::time::Duration;
/// use gofer_scheduler_swarm::SwarmConfig;
///
/// let config = SwarmConfig::new()
///     .host("unix:///run/gofer-swarm/manager.sock")
///     .stop_grace(Duration::from_secs(5));
/// assert_eq!(config.stop_grace, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SwarmConfig {
    /// The endpoint of a swarm **manager** (`unix:///path`, `tcp://host:port`,
    /// `http://host:port`); `None` reads `DOCKER_HOST`, then falls back to
    /// [`DEFAULT_HOST`].
    pub host: Option<String>,
    /// The highest API version to speak, as `(major, minor)`; lowered to the engine's
    /// own version when that is older.
    pub api_version: (usize, usize),
    /// How long to wait for the manager to answer a request (streams such as logs are
    /// not cut by it).
    pub request_timeout: Duration,
    /// The grace period between SIGTERM and SIGKILL when a task is stopped or its
    /// service removed.
    ///
    /// Swarm fixes it when the service is created (`StopGracePeriod` of the task
    /// template) and cannot change it for a running task, so the `grace` given to
    /// [`Scheduler::stop`](gofer_core::Scheduler::stop) is not honoured per call
    /// (`Capabilities::per_stop_grace` is off): the spec's
    /// [`ContainerSpec::stop_grace`](gofer_core::ContainerSpec::stop_grace) is (the
    /// executor sets it from its `Limits::stop_grace`), else this one. Default 10 s,
    /// as `docker stop`.
    pub stop_grace: Duration,
    /// The first pause between two looks at a task's state (Swarm has no task events:
    /// waits poll, see the crate docs). Grows by a fifth on each look up to
    /// [`SwarmConfig::poll_max`].
    pub poll_initial: Duration,
    /// The longest pause between two looks at a task's state.
    pub poll_max: Duration,
    /// How long [`Scheduler::start`](gofer_core::Scheduler::start) waits for the swarm
    /// to place and start the task (no node fits, the image is being pulled, ...)
    /// before it gives up and removes the service.
    pub schedule_timeout: Duration,
    /// Also reserve the memory and CPU limits on the node (Swarm then places a task only
    /// where its limits are free). Default on.
    pub reserve_limits: bool,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            host: None,
            api_version: DEFAULT_API_VERSION,
            request_timeout: Duration::from_secs(120),
            stop_grace: Duration::from_secs(10),
            poll_initial: Duration::from_millis(20),
            poll_max: Duration::from_millis(500),
            schedule_timeout: Duration::from_secs(120),
            reserve_limits: true,
        }
    }
}

impl SwarmConfig {
    /// The defaults: `DOCKER_HOST` or the default socket, API 1.41, 10 s stop grace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the manager endpoint.
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// Sets the highest API version to speak.
    #[must_use]
    pub fn api_version(mut self, major: usize, minor: usize) -> Self {
        self.api_version = (major, minor);
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the stop grace period of every service this scheduler creates.
    #[must_use]
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Sets the polling pauses (first and longest).
    #[must_use]
    pub fn poll(mut self, initial: Duration, max: Duration) -> Self {
        self.poll_initial = initial;
        self.poll_max = max.max(initial);
        self
    }

    /// Sets how long a start waits for the task to be placed and started.
    #[must_use]
    pub fn schedule_timeout(mut self, timeout: Duration) -> Self {
        self.schedule_timeout = timeout;
        self
    }

    /// Turns the reservation of limits on or off.
    #[must_use]
    pub fn reserve_limits(mut self, on: bool) -> Self {
        self.reserve_limits = on;
        self
    }

    /// The endpoint this config connects to: [`SwarmConfig::host`], else
    /// `DOCKER_HOST`, else [`DEFAULT_HOST`].
    pub fn endpoint(&self) -> String {
        gofer_bollard::endpoint(self.host.as_deref())
    }
}
