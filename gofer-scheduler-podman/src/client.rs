//! The connection to the Podman service: the podman-api client, plus a small raw
//! JSON client over the same socket for the calls whose typed podman-api responses
//! this crate avoids (see the crate README, "What goes through podman-api").

use std::path::Path;

use bytes::Bytes;
use containers_api::conn::hyper::{self, Body, Client as HyperClient, Method, Request};
use containers_api::conn::{get_unix_connector, Transport};
use gofer_core::{BoxError, SchedulerError};
use podman_api::Podman;
use serde::de::DeserializeOwned;

use crate::NAME;

/// Path prefix of the libpod endpoints. Podman serves every libpod API version from
/// 4.0.0 up under its own version, so one prefix works for 4.x and 5.x.
const LIBPOD: &str = "/v4.0.0/libpod";

/// A failed call to the service, before it is given its gofer meaning.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The socket could not be reached.
    #[error("{0}")]
    Connect(#[source] BoxError),
    /// The service answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The service's message.
        message: String,
    },
    /// Anything else (I/O mid-response, a body that does not parse).
    #[error("{0}")]
    Other(#[source] BoxError),
}

impl ApiError {
    /// The HTTP status, when the service answered.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the service's message contains `needle` (case-insensitive).
    pub(crate) fn says(&self, needle: &str) -> bool {
        match self {
            Self::Status { message, .. } => message.to_lowercase().contains(needle),
            _ => false,
        }
    }

    /// The general mapping: unreachable → `Connection`, anything else → `Engine`.
    pub(crate) fn into_scheduler(self, operation: &'static str, endpoint: &str) -> SchedulerError {
        match self {
            Self::Connect(source) => SchedulerError::Connection {
                scheduler: NAME,
                endpoint: endpoint.to_string(),
                source,
            },
            other => SchedulerError::engine(NAME, operation, other),
        }
    }

    /// Whether the service says the container does not exist: a 404, or the 500 that
    /// libpod answers while a removal is under way ("does not exist in database: no such
    /// container").
    pub(crate) fn is_gone(&self) -> bool {
        self.status() == Some(404) || self.says("no such container")
    }

    /// `NoSuchContainer` when the container is gone, else [`ApiError::into_scheduler`].
    pub(crate) fn for_container(
        self,
        operation: &'static str,
        endpoint: &str,
        id: &str,
    ) -> SchedulerError {
        if self.is_gone() {
            SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: id.to_string(),
            }
        } else {
            self.into_scheduler(operation, endpoint)
        }
    }
}

impl From<containers_api::conn::Error> for ApiError {
    fn from(e: containers_api::conn::Error) -> Self {
        use containers_api::conn::Error as E;
        match e {
            E::Fault { code, message } => Self::Status {
                status: code.as_u16(),
                message,
            },
            E::Hyper(h) if h.is_connect() => Self::Connect(Box::new(h)),
            E::IO(io)
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::NotFound
                        | std::io::ErrorKind::ConnectionRefused
                        | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                Self::Connect(Box::new(io))
            }
            other => Self::Other(Box::new(other)),
        }
    }
}

impl From<podman_api::Error> for ApiError {
    fn from(e: podman_api::Error) -> Self {
        match e {
            podman_api::Error::Fault { code, message } => Self::Status {
                status: code.as_u16(),
                message,
            },
            podman_api::Error::Error(conn) => conn.into(),
            other => Self::Other(Box::new(other)),
        }
    }
}

/// Both clients, sharing one socket path.
#[derive(Clone)]
pub(crate) struct Api {
    /// The typed client.
    pub(crate) podman: Podman,
    /// The raw transport.
    transport: Transport,
    /// `unix:///...`, for errors.
    pub(crate) endpoint: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// Clients for the service at `socket`; connects lazily.
    pub(crate) fn new(socket: &Path, endpoint: String) -> Self {
        Self {
            podman: Podman::unix(socket),
            transport: Transport::Unix {
                client: HyperClient::builder()
                    .pool_max_idle_per_host(0)
                    .build(get_unix_connector()),
                path: socket.to_path_buf(),
            },
            endpoint,
        }
    }

    /// One raw libpod call; `path` is below `/libpod` and may carry a query. Returns the
    /// body of a 2xx answer. The body is never logged: an inspect answer holds the
    /// container's environment, which may hold secret values.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        json_body: Option<Vec<u8>>,
    ) -> Result<Bytes, ApiError> {
        let uri = self.transport.make_uri(&format!("{LIBPOD}{path}"))?;
        let mut req = Request::builder().method(method).uri(uri);
        let body = match json_body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        let req = req.body(body).map_err(|e| ApiError::Other(Box::new(e)))?;
        let resp = self.transport.request(req).await?;
        let status = resp.status();
        let bytes = hyper::body::to_bytes(resp.into_body())
            .await
            .map_err(|e| ApiError::Other(Box::new(e)))?;
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(ApiError::Status {
                status: status.as_u16(),
                message: error_message(&bytes),
            })
        }
    }

    /// A raw GET whose JSON answer is parsed into `T` (which should ignore unknown
    /// fields and default missing ones).
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.call(Method::GET, path, None).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Other(Box::new(e)))
    }

    /// A raw POST with no body whose answer is returned as is.
    pub(crate) async fn post(&self, path: &str) -> Result<Bytes, ApiError> {
        self.call(Method::POST, path, None).await
    }

    /// A raw DELETE.
    pub(crate) async fn delete(&self, path: &str) -> Result<Bytes, ApiError> {
        self.call(Method::DELETE, path, None).await
    }

    /// A raw POST that upgrades the connection (an attach): the raw stream after the
    /// service's `101` answer.
    pub(crate) async fn upgrade(&self, path: &str) -> Result<hyper::upgrade::Upgraded, ApiError> {
        let uri = self.transport.make_uri(&format!("{LIBPOD}{path}"))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("connection", "Upgrade")
            .header("upgrade", "tcp")
            .body(Body::empty())
            .map_err(|e| ApiError::Other(Box::new(e)))?;
        let resp = self.transport.request(req).await?;
        let status = resp.status();
        if status != hyper::StatusCode::SWITCHING_PROTOCOLS {
            let bytes = hyper::body::to_bytes(resp.into_body())
                .await
                .map_err(|e| ApiError::Other(Box::new(e)))?;
            return Err(ApiError::Status {
                status: status.as_u16(),
                message: error_message(&bytes),
            });
        }
        hyper::upgrade::on(resp)
            .await
            .map_err(|e| ApiError::Other(Box::new(e)))
    }
}

/// The `message` of libpod's error body (`{"cause":..,"message":..,"response":..}`), or
/// the body itself.
fn error_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) if !e.message.is_empty() => e.message,
        _ => String::from_utf8_lossy(body).trim().to_string(),
    }
}

/// Percent-encodes one query value (RFC 3986 unreserved characters kept).
pub(crate) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encodes a container id or name for use as a path segment.
pub(crate) fn segment(id: &str) -> String {
    encode(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_removal_race_500_counts_as_gone() {
        let race = ApiError::Status {
            status: 500,
            message: "container abc does not exist in database: no such container".into(),
        };
        assert!(race.is_gone());
        assert!(matches!(
            race.for_container("wait", "unix:///x", "abc"),
            SchedulerError::NoSuchContainer { .. }
        ));
        let other = ApiError::Status {
            status: 500,
            message: "runtime failure".into(),
        };
        assert!(!other.is_gone());
    }

    #[test]
    fn error_message_prefers_the_message_field() {
        assert_eq!(
            error_message(br#"{"cause":"no such container","message":"no container with name or ID \"x\" found: no such container","response":404}"#),
            "no container with name or ID \"x\" found: no such container"
        );
        assert_eq!(error_message(b"plain failure\n"), "plain failure");
    }

    #[test]
    fn encode_escapes_everything_but_unreserved() {
        assert_eq!(encode("a=b c/d{}"), "a%3Db%20c%2Fd%7B%7D");
        assert_eq!(encode("gofer-x_1.2~"), "gofer-x_1.2~");
    }
}
