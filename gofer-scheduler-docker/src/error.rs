//! Mapping of the engine's errors onto [`SchedulerError`].

use bollard::errors::Error as BollardError;
use gofer_core::{Env, SchedulerError, MASK};

use crate::NAME;

/// The HTTP status the engine answered with, when the error is an engine answer.
pub(crate) fn status(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message, when the error is an engine answer.
fn message(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// Whether the engine could not be reached at all.
fn is_connection(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::HyperLegacyError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
    )
}

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

/// Whether a message from the engine says the registry refused access.
fn says_unauthorized(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    [
        "unauthorized",
        "no basic auth credentials",
        "authentication required",
        "access denied",
        "denied: ",
        "incorrect username or password",
        "forbidden",
    ]
    .iter()
    .any(|needle| m.contains(needle))
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

/// Replaces every occurrence of `secret` in `text` by [`MASK`].
pub(crate) fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(s) if !s.is_empty() && text.contains(s) => text.replace(s, MASK),
        _ => text,
    }
}

/// The engine's answer with every secret value of `env` masked out of its message
/// (the engine may quote a request back).
pub(crate) fn scrub_env(err: BollardError, env: &Env) -> BollardError {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            mut message,
        } => {
            for value in env.values().filter(|v| v.is_secret()) {
                message = scrub(message, Some(value.expose()));
            }
            BollardError::DockerResponseServerError {
                status_code,
                message,
            }
        }
        other => other,
    }
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
    let msg = scrub(message(&err), secret);
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
        SchedulerError::Engine {
            scheduler: NAME,
            operation: "pull",
            source: msg.into(),
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
    fn secret_env_values_are_masked_out_of_engine_answers() {
        let env = Env::from([
            (
                "PW".to_string(),
                gofer_core::EnvValue::Secret("hunter2".to_string().into()),
            ),
            ("PLAIN".to_string(), "visible".into()),
        ]);
        let e = scrub_env(server(400, "bad env PW=hunter2 PLAIN=visible"), &env);
        let shown = e.to_string();
        assert!(
            !shown.contains("hunter2") && shown.contains("visible"),
            "{shown}"
        );
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
