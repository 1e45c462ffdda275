//! The engine's errors: what it answered, whether it was reached, and secret values
//! kept out of what it quotes back.

use bollard::errors::Error as BollardError;
use gofer_core::{Env, SchedulerError, MASK};

/// The HTTP status the engine answered with, when the error is an engine answer.
pub fn status(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message, when the error is an engine answer (else the error's text).
pub fn message(err: &BollardError) -> String {
    match err {
        BollardError::DockerResponseServerError { message, .. } => message.clone(),
        BollardError::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    }
}

/// Whether the engine could not be reached at all (no socket, a broken connection, no
/// answer in time), as opposed to an answer.
pub fn is_connection(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::HyperLegacyError { .. }
            | BollardError::SocketNotFoundError(_)
            | BollardError::IOError { .. }
            | BollardError::RequestTimeoutError
    )
}

/// [`SchedulerError::Connection`] of `scheduler` to `endpoint`.
pub fn connection(scheduler: &'static str, endpoint: &str, source: BollardError) -> SchedulerError {
    SchedulerError::Connection {
        scheduler,
        endpoint: endpoint.to_string(),
        source: Box::new(source),
    }
}

/// [`SchedulerError::InvalidRequest`] of `scheduler` naming `field`.
pub fn invalid(scheduler: &'static str, field: &'static str, message: String) -> SchedulerError {
    SchedulerError::InvalidRequest {
        scheduler,
        field,
        message,
    }
}

/// Whether a message from the engine or a registry says access was refused.
pub fn says_unauthorized(msg: &str) -> bool {
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

/// `text` with every occurrence of `secret` replaced by [`MASK`] (an empty secret
/// changes nothing).
pub fn scrub(text: String, secret: &str) -> String {
    if !secret.is_empty() && text.contains(secret) {
        text.replace(secret, MASK)
    } else {
        text
    }
}

/// The engine's answer with every secret value of `env`, and `password` (a registry
/// password), masked out of its message: an engine may quote a request back.
pub fn scrub_request(err: BollardError, env: &Env, password: Option<&str>) -> BollardError {
    match err {
        BollardError::DockerResponseServerError {
            status_code,
            mut message,
        } => {
            for value in env.values().filter(|v| v.is_secret()) {
                message = scrub(message, value.expose());
            }
            if let Some(p) = password {
                message = scrub(message, p);
            }
            BollardError::DockerResponseServerError {
                status_code,
                message,
            }
        }
        other => other,
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
    fn secret_values_are_masked_out_of_answers() {
        let env = Env::from([
            (
                "PW".to_string(),
                gofer_core::EnvValue::Secret("hunter2".to_string().into()),
            ),
            ("PLAIN".to_string(), "visible".into()),
        ]);
        let e = scrub_request(
            server(400, "bad env PW=hunter2 PLAIN=visible auth s3cret"),
            &env,
            Some("s3cret"),
        );
        let shown = format!("{e} {e:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("visible") && shown.contains(MASK), "{shown}");
        assert_eq!(status(&e), Some(400));
    }

    #[test]
    fn answers_and_unreachable_engines_are_told_apart() {
        assert_eq!(status(&server(409, "in use")), Some(409));
        assert_eq!(message(&server(409, "in use")), "in use");
        assert!(!is_connection(&server(500, "boom")));
        assert!(is_connection(&BollardError::RequestTimeoutError));
        assert_eq!(scrub("x".into(), ""), "x");
    }

    #[test]
    fn registry_refusals_are_recognised() {
        assert!(says_unauthorized(
            "Head \"http://localhost:5001/v2/\": no basic auth credentials"
        ));
        assert!(says_unauthorized("unauthorized: authentication required"));
        assert!(!says_unauthorized("manifest unknown"));
    }
}
