//! Images in the fake: their configuration, the registry, and pull records.

use secrecy::SecretString;

use crate::task::PullPolicy;

/// One image pull the fake performed (or tried).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullRecord {
    /// The image reference as requested.
    pub image: String,
    /// The registry user name sent, if any (never the password).
    pub username: Option<String>,
    /// The pull policy of the request.
    pub policy: PullPolicy,
    /// Whether the pull succeeded.
    pub succeeded: bool,
}

/// An image's configuration: what runs when a request overrides nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageConfig {
    /// The image's entrypoint.
    pub entrypoint: Vec<String>,
    /// The image's command.
    pub cmd: Vec<String>,
    /// The image's environment (`ENV` lines); a request's env overrides it.
    pub env: Vec<(String, String)>,
}

impl ImageConfig {
    /// An image whose default command is `cmd`, with no entrypoint and no env.
    pub fn cmd<I, S>(cmd: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            cmd: cmd.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Adds an image environment variable.
    #[must_use]
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Sets the entrypoint.
    #[must_use]
    pub fn entrypoint<I, S>(mut self, e: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = e.into_iter().map(Into::into).collect();
        self
    }
}

#[derive(Debug, Clone)]
pub(super) struct RegistryImage {
    /// `(username, password)` the registry requires, if any.
    pub(super) credentials: Option<(String, SecretString)>,
}

/// `name:latest` when the reference has neither tag nor digest.
pub(crate) fn normalize_image(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if last.contains(':') || last.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}
