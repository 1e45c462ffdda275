//! How to reach the Docker engine and how to run sandbox holders.

use std::time::Duration;

pub use gofer_bollard::{DEFAULT_API_VERSION, DEFAULT_HOST};

/// Settings of a [`DockerScheduler`](crate::DockerScheduler).
///
/// Built with [`DockerConfig::new`] (or `Default`) and the builder methods.
///
/// ```
/// use std::time::Duration;
/// use gofer_scheduler_docker::DockerConfig;
///
/// let config = DockerConfig::new()
///     .host("unix:///var/run/docker.sock")
///     .request_timeout(Duration::from_secs(60));
/// assert_eq!(config.host.as_deref(), Some("unix:///var/run/docker.sock"));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DockerConfig {
    /// The engine endpoint (`unix:///path`, `tcp://host:port`, `http://host:port`);
    /// `None` reads `DOCKER_HOST`, then falls back to [`DEFAULT_HOST`].
    pub host: Option<String>,
    /// The highest API version to speak, as `(major, minor)`; lowered to the engine's
    /// own version when that is older.
    pub api_version: (usize, usize),
    /// How long to wait for the engine to answer a request (response headers; streams
    /// such as logs and wait are not cut by it).
    pub request_timeout: Duration,
    /// The command a sandbox holder runs: it must keep running until stopped and use
    /// no resources. Run under an init process, so a plain `sleep` is enough.
    pub sandbox_command: Vec<String>,
    /// The engine's log driver for the containers this scheduler creates (as
    /// `docker run --log-driver`); `None` (the default) keeps the engine's default
    /// driver. The live output comes from an attach, not from the driver; the driver's
    /// log is what [`Scheduler::logs`](gofer_core::Scheduler::logs) reads again after
    /// a broken stream and for a container adopted after a restart. `"none"` spares the
    /// engine that copy, and leaves nothing to read again.
    pub log_driver: Option<String>,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            host: None,
            api_version: DEFAULT_API_VERSION,
            request_timeout: Duration::from_secs(120),
            sandbox_command: vec![
                "sh".to_string(),
                "-c".to_string(),
                "trap 'exit 0' TERM INT; sleep 2147483647 & wait".to_string(),
            ],
            log_driver: None,
        }
    }
}

impl DockerConfig {
    /// The defaults: `DOCKER_HOST` or the default socket, API 1.41, 120 s requests.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the engine endpoint.
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

    /// Sets the command sandbox holders run.
    #[must_use]
    pub fn sandbox_command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.sandbox_command = command.into_iter().map(Into::into).collect();
        self
    }

    /// Sets [`DockerConfig::log_driver`].
    #[must_use]
    pub fn log_driver(mut self, driver: impl Into<String>) -> Self {
        self.log_driver = Some(driver.into());
        self
    }

    /// The endpoint this config connects to: [`DockerConfig::host`], else
    /// `DOCKER_HOST`, else [`DEFAULT_HOST`].
    pub fn endpoint(&self) -> String {
        gofer_bollard::endpoint(self.host.as_deref())
    }
}
