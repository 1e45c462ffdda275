//! The service model: a [`Service`] is a container a run starts before the tasks that
//! need it (a database, a web server), reachable from them on `localhost`, with a
//! [`Readiness`] check, stopped and removed once every task of the run ended.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::task::PullPolicy;

/// How the engine knows a service is ready: a command that exits 0 once it is.
///
/// The command runs in a short-lived *probe container* of the service's image, in the
/// run's network sandbox (so `localhost` is the service's), every `interval`, until it
/// exits 0 (ready) or `deadline` has passed since the service started (not ready: the
/// tasks needing it fail). A probe container, not an `exec` in the service: it needs
/// nothing of a backend but starting containers in the sandbox, works when the service's
/// image has no shell, and is logged, labelled and reaped like any container of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Readiness {
    /// The probe's command (argv), for example `["nc", "-z", "127.0.0.1", "5432"]`.
    pub command: Vec<String>,
    /// The wait between two probes. Written like `"500ms"`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// The longest the service may take to become ready, from its start. Written like
    /// `"30s"`.
    #[serde(with = "humantime_serde")]
    pub deadline: Duration,
}

impl Readiness {
    /// A readiness check: `command`, run every `interval`, until `deadline`.
    pub fn new<I, S>(command: I, interval: Duration, deadline: Duration) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            command: command.into_iter().map(Into::into).collect(),
            interval,
            deadline,
        }
    }
}

/// A service container of a pipeline (see [`Pipeline::service`](crate::Pipeline::service)).
///
/// Started when a run begins, before any task that needs it
/// ([`Task::needs_service`](crate::Task::needs_service)), in the run's network sandbox
/// (so those tasks reach it on `localhost`; the engine needs
/// `gofer_engine::EngineBuilder::network_sandbox`) and with
/// the run's workspace mounted when the pipeline has one. Its variables are resolved
/// like a task's (placeholders allowed; system variables with `GOFER_TASK_ID` = the
/// service id). It is stopped and removed once every task of the run has ended; its
/// output (masked) is kept live in the log sink under
/// `gofer_engine::LogKey::service`, readable while it runs with
/// `gofer_engine::RunHandle::service_logs`. After a host crash,
/// recovery adopts it while tasks still to run need it. A service that cannot start, is not
/// ready by its deadline, or exits while tasks need it fails those tasks (reason
/// [`ServiceUnavailable`](crate::StatusReason::ServiceUnavailable)) with a message
/// naming it.
///
/// ```
/// use std::time::Duration;
/// use gofer_core::{Pipeline, Readiness, Service, Task};
/// let p = Pipeline::new("web_test", "Web test")
///     .service(
///         Service::new("web", "busybox")
///             .command(["httpd", "-f", "-p", "8080"])
///             .readiness(Readiness::new(
///                 ["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"],
///                 Duration::from_millis(200),
///                 Duration::from_secs(30),
///             )),
///     )
///     .task(Task::new("client", "busybox")
///         .command(["wget", "-q", "-O", "-", "http://127.0.0.1:8080/"])
///         .needs_service("web"));
/// assert_eq!(p.services[0].id, "web");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Service {
    /// Unique id among the pipeline's services (3–64 of `[A-Za-z0-9_-]`).
    pub id: String,
    /// Container image reference.
    pub image: String,
    /// Replaces the image's command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Replaces the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Variables; values may be store placeholders.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// When to pull the image.
    #[serde(default)]
    pub pull_policy: PullPolicy,
    /// How the engine knows it is ready; `None`: ready once started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

impl Service {
    /// A service with an id and an image.
    pub fn new(id: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            image: image.into(),
            command: None,
            entrypoint: None,
            variables: BTreeMap::new(),
            pull_policy: PullPolicy::default(),
            readiness: None,
        }
    }

    /// Sets the command.
    #[must_use]
    pub fn command<I, S>(mut self, command: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = Some(command.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the entrypoint.
    #[must_use]
    pub fn entrypoint<I, S>(mut self, entrypoint: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(entrypoint.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a variable (placeholders allowed).
    #[must_use]
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.insert(key.into(), value.into());
        self
    }

    /// Sets the pull policy.
    #[must_use]
    pub fn pull_policy(mut self, policy: PullPolicy) -> Self {
        self.pull_policy = policy;
        self
    }

    /// Sets the readiness check.
    #[must_use]
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = Some(readiness);
        self
    }
}
