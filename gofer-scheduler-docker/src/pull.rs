//! Pulling images, with progress reports and registry credentials.

use bollard::auth::DockerCredentials;
use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures::StreamExt;
use gofer_core::secrecy::ExposeSecret;
use gofer_core::{PullProgress, PullProgressFn, RegistryAuth, SchedulerError};

use crate::error;

/// The reference the engine should pull: `image` with `:latest` added when it names
/// neither a tag nor a digest (the engine would otherwise pull every tag).
pub(crate) fn pull_reference(image: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// The registry host of `image` (`localhost:5000` for `localhost:5000/busybox`), or
/// `None` for Docker Hub.
pub(crate) fn registry_host(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    (is_host && !rest.is_empty()).then_some(first)
}

/// The credentials as the engine wants them in the `X-Registry-Auth` header.
///
/// `DockerCredentials` shows the password in `Debug`: the value lives only for the
/// duration of the pull request and is never logged.
fn credentials(image: &str, auth: &RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: Some(auth.username.clone()),
        password: Some(auth.password.expose_secret().to_string()),
        serveraddress: Some(
            registry_host(image)
                .unwrap_or("https://index.docker.io/v1/")
                .to_string(),
        ),
        ..Default::default()
    }
}

/// Pulls `image`, reporting progress to `progress`; credentials go only into the
/// `X-Registry-Auth` header.
///
/// # Errors
///
/// [`SchedulerError::Unauthorized`] when the registry refuses access,
/// [`SchedulerError::NoSuchImage`] when the image does not exist there, else an engine
/// or connection error. No message holds the password.
#[tracing::instrument(skip_all, fields(scheduler = crate::NAME, image = %image, auth = auth.is_some()))]
pub(crate) async fn pull(
    docker: &Docker,
    endpoint: &str,
    image: &str,
    auth: Option<&RegistryAuth>,
    progress: Option<&PullProgressFn>,
) -> Result<(), SchedulerError> {
    let options = CreateImageOptions {
        from_image: Some(pull_reference(image)),
        ..Default::default()
    };
    let secret = auth.map(|a| a.password.expose_secret());
    let mut stream = docker.create_image(Some(options), None, auth.map(|a| credentials(image, a)));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| error::pull(endpoint, image, e, secret))?;
        if let Some(report) = progress {
            let mut p =
                PullProgress::new(image, error::scrub(info.status.unwrap_or_default(), secret));
            p.layer = info.id;
            if let Some(detail) = info.progress_detail {
                p.current = detail.current.and_then(|c| u64::try_from(c).ok());
                p.total = detail.total.and_then(|t| u64::try_from(t).ok());
            }
            report(p);
        }
    }
    tracing::debug!("pulled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_gets_latest_only_without_tag_or_digest() {
        assert_eq!(pull_reference("busybox"), "busybox:latest");
        assert_eq!(
            pull_reference("localhost:5000/busybox"),
            "localhost:5000/busybox:latest"
        );
        assert_eq!(
            pull_reference("localhost:5000/busybox:1"),
            "localhost:5000/busybox:1"
        );
        assert_eq!(pull_reference("busybox@sha256:abc"), "busybox@sha256:abc");
    }

    #[test]
    fn registry_host_is_found() {
        assert_eq!(
            registry_host("localhost:5001/private/busybox:latest"),
            Some("localhost:5001")
        );
        assert_eq!(registry_host("ghcr.io/a/b"), Some("ghcr.io"));
        assert_eq!(registry_host("library/busybox"), None);
        assert_eq!(registry_host("busybox"), None);
    }

    #[test]
    fn credentials_carry_the_registry() {
        let c = credentials(
            "localhost:5001/private/busybox",
            &RegistryAuth::new("gofer", "pw"),
        );
        assert_eq!(c.serveraddress.as_deref(), Some("localhost:5001"));
        assert_eq!(c.username.as_deref(), Some("gofer"));
    }
}
