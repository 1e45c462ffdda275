//! Image presence and pulls, with progress and registry credentials.

use futures::StreamExt;
use gofer_core::secrecy::ExposeSecret;
use gofer_core::{PullProgress, PullProgressFn, RegistryAuth, SchedulerError};
use podman_api::opts::{PullOpts, PullPolicy as PodmanPullPolicy, RegistryAuth as PodmanAuth};

use crate::client::{Api, ApiError};
use crate::NAME;

/// Pulls `image`, reporting each status line of the service as progress.
///
/// Credentials travel only in the `X-Registry-Auth` header (never in the URL, which
/// podman-api's transport logs at trace level) and are never logged.
#[tracing::instrument(skip_all, fields(scheduler = NAME, image = %image))]
pub(crate) async fn pull(
    api: &Api,
    image: &str,
    auth: Option<&RegistryAuth>,
    progress: Option<&PullProgressFn>,
) -> Result<(), SchedulerError> {
    let mut opts = PullOpts::builder()
        .reference(image)
        .policy(PodmanPullPolicy::Always);
    if let Some(auth) = auth {
        opts.auth(
            PodmanAuth::builder()
                .username(auth.username.clone())
                .password(auth.password.expose_secret().to_string())
                .server_address(registry_of(image))
                .build(),
        );
    }
    let opts = opts.build();
    let images = api.podman.images();
    let mut stream = images.pull(&opts);
    let mut pulled = false;
    while let Some(report) = stream.next().await {
        let report = report.map_err(|e| pull_failure(image, ApiError::from(e), &api.endpoint))?;
        if let Some(error) = report.error.filter(|e| !e.is_empty()) {
            return Err(classify_pull_error(image, error));
        }
        if let Some(line) = report.stream {
            let line = line.trim_end();
            tracing::debug!(image, status = line, "pull progress");
            if let Some(report_fn) = progress {
                report_fn(progress_of(image, line));
            }
        }
        if report.id.is_some() || report.images.is_some() {
            pulled = true;
        }
    }
    if pulled {
        Ok(())
    } else {
        Err(SchedulerError::engine(
            NAME,
            "pull",
            format!("pull of {image:?} ended without reporting an image"),
        ))
    }
}

/// A progress report from one status line (`Copying blob sha256:...` names a layer).
fn progress_of(image: &str, line: &str) -> PullProgress {
    let mut p = PullProgress::new(image, line);
    for prefix in ["Copying blob ", "Copying config "] {
        if let Some(rest) = line.strip_prefix(prefix) {
            p.layer = rest.split_whitespace().next().map(str::to_string);
        }
    }
    p
}

fn pull_failure(image: &str, e: ApiError, endpoint: &str) -> SchedulerError {
    match e {
        ApiError::Status { message, .. } => classify_pull_error(image, message),
        other => other.into_scheduler("pull", endpoint),
    }
}

/// Maps the service's pull error text to a typed error. The text never holds the
/// credentials (they are sent in a header the service does not echo).
pub(crate) fn classify_pull_error(image: &str, message: String) -> SchedulerError {
    let lower = message.to_lowercase();
    let unauthorized = ["unauthorized", "authentication required", "denied", "401"]
        .iter()
        .any(|n| lower.contains(n));
    let missing = [
        "manifest unknown",
        "not found",
        "name unknown",
        "no such image",
        "image not known",
        "404",
    ]
    .iter()
    .any(|n| lower.contains(n));
    if unauthorized {
        SchedulerError::Unauthorized {
            scheduler: NAME,
            image: image.to_string(),
            message,
        }
    } else if missing {
        SchedulerError::NoSuchImage {
            scheduler: NAME,
            image: image.to_string(),
            message,
        }
    } else {
        SchedulerError::engine(NAME, "pull", format!("pull of {image:?} failed: {message}"))
    }
}

/// The registry host of an image reference (`localhost:5001/private/busybox:latest` →
/// `localhost:5001`), or Docker Hub's for a reference without one.
pub(crate) fn registry_of(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first.to_string()
        }
        _ => "docker.io".to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn registry_host() {
        assert_eq!(
            registry_of("localhost:5001/private/busybox:latest"),
            "localhost:5001"
        );
        assert_eq!(registry_of("quay.io/x/y"), "quay.io");
        assert_eq!(registry_of("localhost/x"), "localhost");
        assert_eq!(registry_of("gofer-test/busybox:latest"), "docker.io");
        assert_eq!(registry_of("busybox"), "docker.io");
    }

    #[test]
    fn pull_errors_classified() {
        let e = classify_pull_error(
            "localhost:5001/private/busybox:latest",
            "initializing source docker://localhost:5001/private/busybox:latest: reading manifest latest in localhost:5001/private/busybox: unauthorized: authentication required".into(),
        );
        assert!(matches!(e, SchedulerError::Unauthorized { .. }), "{e}");
        let e = classify_pull_error(
            "localhost:5000/nope:latest",
            "reading manifest latest in localhost:5000/nope: manifest unknown: manifest unknown"
                .into(),
        );
        assert!(matches!(e, SchedulerError::NoSuchImage { .. }), "{e}");
        let e = classify_pull_error("x", "pinging container registry: connection refused".into());
        assert!(matches!(e, SchedulerError::Engine { .. }), "{e}");
        assert!(e.to_string().contains("\"x\""), "{e}");
    }

    #[test]
    fn progress_names_layers() {
        let p = progress_of("i", "Copying blob sha256:425d done");
        assert_eq!(p.layer.as_deref(), Some("sha256:425d"));
        assert_eq!(p.status, "Copying blob sha256:425d done");
        assert_eq!(progress_of("i", "Storing signatures").layer, None);
    }
}
