//! Where the Podman service listens, and the knobs of [`PodmanScheduler`](crate::PodmanScheduler).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gofer_core::SchedulerError;

use crate::NAME;

/// The rootful service socket.
pub const ROOTFUL_SOCKET: &str = "/run/podman/podman.sock";

/// Configuration of a [`PodmanScheduler`](crate::PodmanScheduler).
///
/// Built with [`PodmanConfig::from_env`] (the usual places) or [`PodmanConfig::unix`]
/// (an explicit socket), then adjusted with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PodmanConfig {
    /// The unix socket of the Podman API service.
    pub socket: PathBuf,
    /// How often the Podman service itself re-checks a container while a
    /// [`wait`](gofer_core::Scheduler::wait) request is open (the `interval` parameter of
    /// libpod's wait endpoint). This crate sends one request per wait and never polls;
    /// Podman 4.x checks the container's state on the server at this interval, so a
    /// shorter interval notices an exit sooner at a small CPU cost in the service.
    pub wait_interval: Duration,
    /// How many log chunks may be read ahead of a slow log reader before reading pauses
    /// (back-pressure, nothing is dropped).
    pub log_buffer: usize,
    /// The log driver of the containers this scheduler creates (as `podman run
    /// --log-driver`); `None` (the default) keeps Podman's default. The live output
    /// comes from an attach, not from the driver; the driver's log is what
    /// [`Scheduler::logs`](gofer_core::Scheduler::logs) reads again after a broken
    /// stream and for a container adopted after a restart. `"none"` spares conmon that
    /// copy, and leaves nothing to read again.
    pub log_driver: Option<String>,
    /// Whether live output is read straight from conmon's attach socket on this machine
    /// (the default, as `podman run` does), rather than through the service's attach
    /// endpoint. The endpoint is used anyway when the socket cannot be reached.
    pub conmon_attach: bool,
}

impl Default for PodmanConfig {
    fn default() -> Self {
        Self::unix(ROOTFUL_SOCKET)
    }
}

impl PodmanConfig {
    /// A configuration for the service listening on `socket`.
    pub fn unix(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            wait_interval: Duration::from_millis(10),
            log_buffer: 256,
            log_driver: None,
            conmon_attach: true,
        }
    }

    /// The service the environment points at, as the `podman` command finds it:
    /// `CONTAINER_HOST` (`unix:///path/to/podman.sock`) when set, else the rootless socket
    /// `$XDG_RUNTIME_DIR/podman/podman.sock` when it exists, else the rootful
    /// [`ROOTFUL_SOCKET`].
    ///
    /// # Errors
    ///
    /// [`SchedulerError::InvalidRequest`] when `CONTAINER_HOST` is not a `unix://` URL
    /// (this backend speaks to a local unix socket only; forward a remote service's
    /// socket with `ssh -L` to use one).
    pub fn from_env() -> Result<Self, SchedulerError> {
        let host = std::env::var("CONTAINER_HOST").ok();
        let runtime_dir = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        Self::discover(host.as_deref(), runtime_dir.as_deref(), |p| p.exists())
    }

    /// [`PodmanConfig::from_env`] with its inputs given, for tests.
    fn discover(
        container_host: Option<&str>,
        runtime_dir: Option<&Path>,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<Self, SchedulerError> {
        if let Some(host) = container_host.filter(|h| !h.is_empty()) {
            return Self::from_url(host);
        }
        if let Some(dir) = runtime_dir {
            let rootless = dir.join("podman").join("podman.sock");
            if exists(&rootless) {
                return Ok(Self::unix(rootless));
            }
        }
        Ok(Self::unix(ROOTFUL_SOCKET))
    }

    /// A configuration from a URL of the form `unix:///path/to/podman.sock`.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::InvalidRequest`] for any other scheme.
    pub fn from_url(url: &str) -> Result<Self, SchedulerError> {
        match url.strip_prefix("unix://") {
            Some(path) if path.starts_with('/') => Ok(Self::unix(path)),
            _ => Err(SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "CONTAINER_HOST",
                message: format!(
                    "{url:?} is not a unix:///absolute/path URL; this backend speaks to a \
                     local unix socket only"
                ),
            }),
        }
    }

    /// Sets [`PodmanConfig::log_driver`].
    #[must_use]
    pub fn with_log_driver(mut self, driver: impl Into<String>) -> Self {
        self.log_driver = Some(driver.into());
        self
    }

    /// Sets [`PodmanConfig::conmon_attach`].
    #[must_use]
    pub fn with_conmon_attach(mut self, conmon_attach: bool) -> Self {
        self.conmon_attach = conmon_attach;
        self
    }

    /// Sets [`PodmanConfig::wait_interval`].
    #[must_use]
    pub fn with_wait_interval(mut self, interval: Duration) -> Self {
        self.wait_interval = interval;
        self
    }

    /// Sets [`PodmanConfig::log_buffer`] (at least 1).
    #[must_use]
    pub fn with_log_buffer(mut self, chunks: usize) -> Self {
        self.log_buffer = chunks.max(1);
        self
    }

    /// The endpoint as shown in errors: `unix:///run/podman/podman.sock`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn container_host_wins() {
        let c = PodmanConfig::discover(
            Some("unix:///tmp/p.sock"),
            Some(Path::new("/run/user/1")),
            |_| true,
        )
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/tmp/p.sock"));
    }

    #[test]
    fn rootless_socket_when_present() {
        let c = PodmanConfig::discover(None, Some(Path::new("/run/user/1000")), |p| {
            p == Path::new("/run/user/1000/podman/podman.sock")
        })
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/run/user/1000/podman/podman.sock"));
    }

    #[test]
    fn rootful_socket_otherwise() {
        let c = PodmanConfig::discover(None, Some(Path::new("/run/user/1000")), |_| false).unwrap();
        assert_eq!(c.socket, PathBuf::from(ROOTFUL_SOCKET));
        let c = PodmanConfig::discover(Some(""), None, |_| true).unwrap();
        assert_eq!(c.socket, PathBuf::from(ROOTFUL_SOCKET));
    }

    #[test]
    fn other_schemes_are_refused_naming_the_variable() {
        for url in [
            "tcp://127.0.0.1:8080",
            "ssh://core@host/run/podman.sock",
            "unix://relative",
        ] {
            let err = PodmanConfig::from_url(url).unwrap_err();
            assert!(
                matches!(
                    err,
                    SchedulerError::InvalidRequest {
                        field: "CONTAINER_HOST",
                        ..
                    }
                ),
                "{url}: {err}"
            );
        }
    }
}
