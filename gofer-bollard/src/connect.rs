//! Reaching the engine: the endpoint, the client, the negotiated API version.

use std::time::Duration;

use bollard::models::SystemInfo;
use bollard::{ClientVersion, Docker};
use gofer_core::SchedulerError;

use crate::error::{connection, invalid};

/// The API version asked for when a backend's config sets none: Docker 20.10.
///
/// The client never asks for a newer version than the one given (newer engines still
/// serve it); when the engine is older, the version is negotiated down at connect time.
pub const DEFAULT_API_VERSION: (usize, usize) = (1, 41);

/// The endpoint when neither the config nor `DOCKER_HOST` names one.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// The endpoint to connect to: `host`, else `DOCKER_HOST` (when not empty), else
/// [`DEFAULT_HOST`].
///
/// ```
/// assert_eq!(gofer_bollard::endpoint(Some("tcp://10.0.0.1:2375")), "tcp://10.0.0.1:2375");
/// ```
pub fn endpoint(host: Option<&str>) -> String {
    host.map(str::to_string)
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_string())
}

/// Connects to the engine at `endpoint`, negotiates the API version down from
/// `api_version` and reads the engine's `info`.
///
/// `request_timeout` bounds each request's answer (at least a second); streams such as
/// logs and waits are not cut by it.
///
/// # Errors
/// [`SchedulerError::InvalidRequest`] (field `host`) for a scheme other than
/// `unix://`, `tcp://` or `http://`; [`SchedulerError::Connection`] naming the
/// endpoint when the engine cannot be reached or does not answer.
pub async fn connect(
    scheduler: &'static str,
    endpoint: &str,
    api_version: (usize, usize),
    request_timeout: Duration,
) -> Result<(Docker, SystemInfo), SchedulerError> {
    let version = ClientVersion {
        major_version: api_version.0,
        minor_version: api_version.1,
    };
    let timeout = request_timeout.as_secs().max(1);
    let docker = if endpoint.starts_with("unix://") || endpoint.starts_with('/') {
        Docker::connect_with_unix(endpoint, timeout, &version)
    } else if endpoint.starts_with("tcp://") || endpoint.starts_with("http://") {
        Docker::connect_with_http(endpoint, timeout, &version)
    } else {
        return Err(invalid(
            scheduler,
            "host",
            format!("unsupported endpoint {endpoint:?} (use unix://, tcp:// or http://)"),
        ));
    }
    .map_err(|e| connection(scheduler, endpoint, e))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(|e| connection(scheduler, endpoint, e))?;
    let info = docker
        .info()
        .await
        .map_err(|e| connection(scheduler, endpoint, e))?;
    Ok((docker, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_scheme_is_refused_naming_the_field() {
        let rt = tokio_free_block_on(connect(
            "docker",
            "ftp://x",
            DEFAULT_API_VERSION,
            Duration::ZERO,
        ));
        match rt {
            Err(SchedulerError::InvalidRequest { field, message, .. }) => {
                assert_eq!(field, "host");
                assert!(message.contains("ftp://x"), "{message}");
            }
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }

    /// Runs a future that finishes without waiting (the refusal comes before any I/O).
    fn tokio_free_block_on<F: std::future::Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the refusal must not wait"),
        }
    }

    #[test]
    fn the_host_wins_over_the_environment() {
        assert_eq!(endpoint(Some("unix:///x.sock")), "unix:///x.sock");
    }
}
