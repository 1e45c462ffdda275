//! Registry credentials and image references, as the engine wants them.

use bollard::auth::DockerCredentials;
use gofer_core::secrecy::ExposeSecret;
use gofer_core::RegistryAuth;

/// The reference a pull asks for: `image` with `:latest` added when it names neither
/// a tag nor a digest (the engine would otherwise pull every tag).
pub fn pull_reference(image: &str) -> String {
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
pub fn registry_host(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    let is_host = first.contains('.') || first.contains(':') || first == "localhost";
    (is_host && !rest.is_empty()).then_some(first)
}

/// The credentials for `image`'s registry as the engine wants them in the
/// `X-Registry-Auth` header (of a pull, or of a service create that the manager hands
/// to the nodes).
///
/// `DockerCredentials` shows the password in `Debug`: keep the value only for the
/// request and never log it.
pub fn credentials(image: &str, auth: &RegistryAuth) -> DockerCredentials {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_get_a_tag_only_when_they_have_none() {
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
        let hub = credentials("busybox", &RegistryAuth::new("gofer", "pw"));
        assert_eq!(
            hub.serveraddress.as_deref(),
            Some("https://index.docker.io/v1/")
        );
    }
}
