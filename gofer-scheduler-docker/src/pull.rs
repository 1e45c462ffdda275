//! Pulling images, with progress reports and registry credentials.

use bollard::query_parameters::CreateImageOptions;
use bollard::Docker;
use futures::StreamExt;
use gofer_core::secrecy::ExposeSecret;
use gofer_core::{PullProgress, PullProgressFn, RegistryAuth, SchedulerError};

use crate::error;

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
        from_image: Some(gofer_bollard::pull_reference(image)),
        ..Default::default()
    };
    let secret = auth.map(|a| a.password.expose_secret());
    let mut stream = docker.create_image(
        Some(options),
        None,
        auth.map(|a| gofer_bollard::credentials(image, a)),
    );
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| error::pull(endpoint, image, e, secret))?;
        if let Some(report) = progress {
            let mut p = PullProgress::new(image, scrub(info.status.unwrap_or_default(), secret));
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

/// `text` with the registry password, when there is one, masked out.
fn scrub(text: String, secret: Option<&str>) -> String {
    match secret {
        Some(s) => gofer_bollard::scrub(text, s),
        None => text,
    }
}
