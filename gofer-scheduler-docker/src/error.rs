//! Mapping of the engine's errors onto [`SchedulerError`].

use bollard::errors::Error as BollardError;
pub(crate) use gofer_bollard::status;
use gofer_bollard::{is_connection, message, says_unauthorized};
use gofer_core::{Env, SchedulerError};

use crate::NAME;

/// A connection failure or a generic engine failure of `operation`.
pub(crate) fn engine(endpoint: &str, operation: &'static str, err: BollardError) -> SchedulerError {
    if is_connection(&err) {
        SchedulerError::Connection {
            scheduler: NAME,
            endpoint: endpoint.to_string(),
            source: Box::new(err),
        }
    } else {
        SchedulerError::engine(NAME, operation, err)
    }
}

/// Maps an error of an operation on the container `id`: 404 → no such container,
/// 409 → conflict.
pub(crate) fn container(
    endpoint: &str,
    operation: &'static str,
    id: &str,
    err: BollardError,
) -> SchedulerError {
    match status(&err) {
        Some(404) => SchedulerError::NoSuchContainer {
            scheduler: NAME,
            id: id.to_string(),
        },
        Some(409) => SchedulerError::Conflict {
            scheduler: NAME,
            id: id.to_string(),
            message: message(&err),
        },
        _ => engine(endpoint, operation, err),
    }
}

/// Whether a message from the engine says the image does not exist.
fn says_not_found(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "not found",
        "manifest unknown",
        "no such image",
        "does not exist",
    ]
    .iter()
    .any(|needle| m.contains(needle))
}

/// The engine's answer with every secret value of `env` masked out of its message.
pub(crate) fn scrub_env(err: BollardError, env: &Env) -> BollardError {
    gofer_bollard::scrub_request(err, env, None)
}

/// Maps a pull failure of `image`: refused access → unauthorized, unknown image → no
/// such image. `secret` (the registry password) is masked out of every message.
pub(crate) fn pull(
    endpoint: &str,
    image: &str,
    err: BollardError,
    secret: Option<&str>,
) -> SchedulerError {
    if is_connection(&err) {
        return engine(endpoint, "pull", err);
    }
    let msg = match secret {
        Some(p) => gofer_bollard::scrub(message(&err), p),
        None => message(&err),
    };
    let code = status(&err);
    if matches!(code, Some(401 | 403)) || says_unauthorized(&msg) {
        SchedulerError::Unauthorized {
            scheduler: NAME,
            image: image.to_string(),
            message: msg,
        }
    } else if code == Some(404) || says_not_found(&msg) {
        SchedulerError::NoSuchImage {
            scheduler: NAME,
            image: image.to_string(),
            message: msg,
        }
    } else {
        // The engine's text names the registry host at best: name the image.
        SchedulerError::Engine {
            scheduler: NAME,
            operation: "pull",
            source: format!("image {image:?}: {msg}").into(),
        }
    }
}

/// Whether a create failed because the image is not present locally.
pub(crate) fn is_missing_image(err: &BollardError) -> bool {
    status(err) == Some(404) && message(err).to_ascii_lowercase().contains("no such image")
}

/// The no-such-image error for an image that is absent and may not be pulled.
pub(crate) fn missing_image(image: &str, err: &BollardError) -> SchedulerError {
    SchedulerError::NoSuchImage {
        scheduler: NAME,
        image: image.to_string(),
        message: message(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gofer_core::MASK;

    fn server(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: message.to_string(),
        }
    }

    #[test]
    fn pull_errors_are_classified() {
        let e = pull("x", "img", server(500, "Head \"http://localhost:5001/v2/private/busybox/manifests/latest\": no basic auth credentials"), None);
        assert!(matches!(e, SchedulerError::Unauthorized { .. }), "{e:?}");
        let e = pull(
            "x",
            "img",
            server(500, "unauthorized: authentication required"),
            None,
        );
        assert!(matches!(e, SchedulerError::Unauthorized { .. }), "{e:?}");
        let e = pull(
            "x",
            "img",
            server(
                404,
                "manifest for localhost:5000/nope:latest not found: manifest unknown",
            ),
            None,
        );
        assert!(matches!(e, SchedulerError::NoSuchImage { .. }), "{e:?}");
        let e = pull(
            "x",
            "img",
            server(500, "dial tcp: connection refused"),
            None,
        );
        assert!(matches!(e, SchedulerError::Engine { .. }), "{e:?}");
    }

    #[test]
    fn secrets_are_masked_out_of_messages() {
        let e = pull(
            "x",
            "img",
            server(500, "bad password hunter2 for gofer"),
            Some("hunter2"),
        );
        let shown = format!("{e} {e:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains(MASK), "{shown}");
    }

    #[test]
    fn container_errors_are_classified() {
        let e = container("x", "remove", "c1", server(404, "No such container: c1"));
        assert!(matches!(e, SchedulerError::NoSuchContainer { ref id, .. } if id == "c1"));
        let e = container(
            "x",
            "create",
            "c1",
            server(
                409,
                "Conflict. The container name \"/c1\" is already in use",
            ),
        );
        assert!(matches!(e, SchedulerError::Conflict { .. }));
        assert!(is_missing_image(&server(404, "No such image: foo:latest")));
        assert!(!is_missing_image(&server(404, "No such container: foo")));
    }
}
