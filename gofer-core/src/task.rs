//! The [`Task`] model: one container a run executes.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::interpolate::Placeholder;
use crate::retry::RetryPolicy;

/// What a parent task must have ended with for a child to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RequiredParentStatus {
    /// The parent ended Successful, Failed or Skipped.
    #[default]
    Any,
    /// The parent ended Successful.
    Success,
    /// The parent ended Failed.
    Failure,
}

/// When the scheduler pulls a task's image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PullPolicy {
    /// Pull before every start.
    Always,
    /// Pull only when the image is not present locally.
    #[default]
    IfNotPresent,
    /// Never pull; fail when the image is absent.
    Never,
}

/// Credentials for the registry that holds a task's image.
///
/// The password is a [`SecretString`]: it is not shown by `Debug` and it is **never
/// serialized** — a serialized task omits it, so deserializing that output again fails
/// with "missing field `password`" rather than silently running with no credentials.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryAuth {
    /// The user name.
    pub username: String,
    /// The password or token.
    #[serde(skip_serializing)]
    pub password: SecretString,
}

impl RegistryAuth {
    /// Credentials from a user name and a password.
    ///
    /// A password that is exactly one secret placeholder (`secret{{key}}`,
    /// `pipeline_secret{{key}}` or `global_secret{{key}}`) is looked up in the engine's
    /// secret store when the task starts, like a variable's, and masked in its log.
    /// Such a password is no secret itself, so run stores keep it: a host that
    /// restarts resumes the task with its credentials without the pipeline being
    /// registered again (a literal password is never stored).
    ///
    /// ```
    /// use gofer_core::{PlaceholderKind, RegistryAuth};
    /// let auth = RegistryAuth::new("ci", "secret{{registry_token}}");
    /// let p = auth.password_placeholder().unwrap();
    /// assert_eq!((p.kind, p.key.as_str()), (PlaceholderKind::PipelineSecret, "registry_token"));
    /// assert!(RegistryAuth::new("ci", "hunter2").password_placeholder().is_none());
    /// ```
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: SecretString::from(password.into()),
        }
    }

    /// The secret placeholder the password is, when it is exactly one.
    pub fn password_placeholder(&self) -> Option<Placeholder> {
        crate::interpolate::parse_placeholder(self.password.expose_secret())
            .ok()
            .flatten()
            .filter(|p| p.kind.is_secret())
    }
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

impl PartialEq for RegistryAuth {
    fn eq(&self, other: &Self) -> bool {
        self.username == other.username
            && self.password.expose_secret() == other.password.expose_secret()
    }
}

/// Resource limits of a task's container.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// Memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// CPU limit in CPUs (1.5 = one and a half cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
}

/// One container a run executes: an image, a command and its configuration.
///
/// Built with the seed's builder:
///
/// ```
/// use gofer_core::Task;
/// let task = Task::new("simple_task", "ubuntu:latest")
///     .description("This task simply prints our hello-world message and exists!")
///     .command(["echo", "Hello from Gofer!"]);
/// assert_eq!(task.command.as_deref(), Some(&["echo".to_string(), "Hello from Gofer!".to_string()][..]));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Task {
    /// Unique id within its pipeline (3–64 of `[A-Za-z0-9_-]`).
    pub id: String,
    /// Container image reference.
    pub image: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Replaces the image's command (`CMD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Variables of source [`crate::VariableSource::PipelineConfig`]; values may be placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// Parent task id → what the parent must have ended with.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, RequiredParentStatus>,
    /// Credentials for pulling [`Task::image`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_auth: Option<RegistryAuth>,
    /// Inject `GOFER_API_TOKEN` when the engine has a token issuer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inject_api_token: bool,
    /// When to pull the image.
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// Longest the container may run; `None` is no limit. Written like `"30s"` or `"5m"`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Memory and CPU limits.
    #[serde(default, skip_serializing_if = "is_default_limits")]
    pub resources: ResourceLimits,
    /// How a failed attempt is retried; `None` is one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryPolicy>,
    /// Ids of the pipeline's services this task needs: it starts once they are
    /// ready, and fails if one of them is not (see [`crate::Service`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub services: std::collections::BTreeSet<String>,
    /// Run this task once per combination of values (see [`crate::matrix`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix: Option<crate::Matrix>,
    /// Set on the tasks [`Pipeline::expanded`](crate::Pipeline::expanded) makes of a
    /// matrix task: which one, and this combination's values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_cell: Option<crate::MatrixCell>,
    /// The concurrency group the task is a member of (see [`crate::Concurrency`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::Concurrency>,
    /// Directories kept between runs (see [`crate::cache`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<crate::Cache>,
}

fn is_default_limits(l: &ResourceLimits) -> bool {
    *l == ResourceLimits::default()
}

impl Task {
    /// A task with an id and an image, and every other setting at its default.
    pub fn new(id: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            image: image.into(),
            description: None,
            command: None,
            entrypoint: None,
            variables: BTreeMap::new(),
            depends_on: BTreeMap::new(),
            registry_auth: None,
            inject_api_token: false,
            pull_policy: PullPolicy::default(),
            timeout: None,
            resources: ResourceLimits::default(),
            retry: None,
            services: std::collections::BTreeSet::new(),
            matrix: None,
            matrix_cell: None,
            concurrency: None,
            caches: Vec::new(),
        }
    }

    /// Makes the task a member of a concurrency group (see [`crate::Concurrency`]).
    #[must_use]
    pub fn concurrency(mut self, c: crate::Concurrency) -> Self {
        self.concurrency = Some(c);
        self
    }

    /// Adds a cache (see [`crate::cache`]).
    #[must_use]
    pub fn cache(mut self, c: crate::Cache) -> Self {
        self.caches.push(c);
        self
    }

    /// Runs the task once per combination of `matrix` (see [`crate::matrix`]).
    #[must_use]
    pub fn matrix(mut self, matrix: crate::Matrix) -> Self {
        self.matrix = Some(matrix);
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets the command, replacing the image's.
    #[must_use]
    pub fn command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = Some(command.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the entrypoint, replacing the image's.
    #[must_use]
    pub fn entrypoint<I, S>(mut self, entrypoint: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(entrypoint.into_iter().map(Into::into).collect());
        self
    }

    /// Adds one variable (a later call with the same key replaces the value).
    #[must_use]
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.insert(key.into(), value.into());
        self
    }

    /// Adds many variables.
    #[must_use]
    pub fn variables<I, K, V>(mut self, variables: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.variables
            .extend(variables.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Makes this task wait for `parent` and run only if it ended as `status` requires.
    #[must_use]
    pub fn depends_on(mut self, parent: impl Into<String>, status: RequiredParentStatus) -> Self {
        self.depends_on.insert(parent.into(), status);
        self
    }

    /// Adds many parents at once.
    #[must_use]
    pub fn depends_on_many<I, S>(mut self, parents: I) -> Self
    where
        I: IntoIterator<Item = (S, RequiredParentStatus)>,
        S: Into<String>,
    {
        self.depends_on
            .extend(parents.into_iter().map(|(p, s)| (p.into(), s)));
        self
    }

    /// Sets the registry credentials used to pull the image.
    #[must_use]
    pub fn registry_auth(
        mut self,
        username: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.registry_auth = Some(RegistryAuth::new(username, password));
        self
    }

    /// Asks for a per-run `GOFER_API_TOKEN`.
    #[must_use]
    pub fn inject_api_token(mut self, inject: bool) -> Self {
        self.inject_api_token = inject;
        self
    }

    /// Sets the pull policy.
    #[must_use]
    pub fn pull_policy(mut self, policy: PullPolicy) -> Self {
        self.pull_policy = policy;
        self
    }

    /// Sets the timeout; the task fails with reason `Timeout` when it runs longer.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Retries the task as `policy` says when an attempt fails (see [`RetryPolicy`]).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Makes this task need the pipeline's service `service` (see [`crate::Service`]).
    #[must_use]
    pub fn needs_service(mut self, service: impl Into<String>) -> Self {
        self.services.insert(service.into());
        self
    }

    /// How many attempts the task may have (1 without a retry policy).
    pub fn max_attempts(&self) -> u32 {
        self.retry.as_ref().map_or(1, |r| r.attempts.max(1))
    }

    /// Sets the memory limit in bytes.
    #[must_use]
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.resources.memory_bytes = Some(bytes);
        self
    }

    /// Sets the CPU limit in CPUs.
    #[must_use]
    pub fn cpu_limit(mut self, cpus: f64) -> Self {
        self.resources.cpus = Some(cpus);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_builder_compiles_and_sets_fields() {
        let t = Task::new("simple_task", "ubuntu:latest")
            .description("This task simply prints our hello-world message and exists!")
            .command(["echo", "Hello from Gofer!"]);
        assert_eq!(t.id, "simple_task");
        assert_eq!(t.image, "ubuntu:latest");
        assert_eq!(
            t.command,
            Some(vec!["echo".to_string(), "Hello from Gofer!".to_string()])
        );
        assert_eq!(t.pull_policy, PullPolicy::IfNotPresent);
    }

    #[test]
    fn password_is_not_in_debug_or_serialized() {
        let t = Task::new("login", "localhost:5001/private/busybox")
            .registry_auth("gofer", "s3cret-pw");
        assert!(!format!("{t:?}").contains("s3cret-pw"));
        let json = serde_json::to_string(&t).expect("serialize");
        assert!(!json.contains("s3cret-pw"), "{json}");
        let err = serde_json::from_str::<Task>(&json).expect_err("password was dropped");
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn loads_from_toml_and_json() {
        let t: Task = toml::from_str(
            r#"
            id = "build"
            image = "busybox"
            command = ["sh", "-c", "make"]
            pull_policy = "never"
            timeout = "90s"
            variables = { A = "1" }
            depends_on = { fetch = "success" }
            registry_auth = { username = "u", password = "p" }
            resources = { memory_bytes = 1048576, cpus = 0.5 }
            "#,
        )
        .expect("toml");
        assert_eq!(t.pull_policy, PullPolicy::Never);
        assert_eq!(t.timeout, Some(Duration::from_secs(90)));
        assert_eq!(t.depends_on["fetch"], RequiredParentStatus::Success);
        assert_eq!(t.resources.cpus, Some(0.5));
        let back: Task = serde_json::from_str(
            &serde_json::to_string(&Task {
                registry_auth: None,
                ..t.clone()
            })
            .expect("json"),
        )
        .expect("json back");
        assert_eq!(back.variables, t.variables);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<Task>(r#"{"id":"abc","image":"x","imagee":"y"}"#)
            .expect_err("typo");
        assert!(err.to_string().contains("imagee"));
    }
}
