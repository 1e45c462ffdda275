//! What a backend is asked to run: [`ContainerSpec`] (a task's or a service's container)
//! and [`SandboxSpec`] (a run's network sandbox), with their parts.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::mount::Mount;
use crate::task::{PullPolicy, RegistryAuth, ResourceLimits};
use crate::variable::EnvValue;

/// An engine's handle on a container (its id, or its unique name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContainerId(pub String);

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ContainerId {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl From<String> for ContainerId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// An ordered environment: key → value; secret values never show in `Debug`.
pub type Env = BTreeMap<String, EnvValue>;

/// A progress report while an image is pulled.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PullProgress {
    /// The image being pulled.
    pub image: String,
    /// The engine's status text ("Pulling fs layer", "Download complete", ...).
    pub status: String,
    /// The layer the report is about, if any.
    pub layer: Option<String>,
    /// Bytes done so far for that layer, if known.
    pub current: Option<u64>,
    /// Total bytes of that layer, if known.
    pub total: Option<u64>,
}

impl PullProgress {
    /// A report with only a status.
    pub fn new(image: impl Into<String>, status: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            status: status.into(),
            layer: None,
            current: None,
            total: None,
        }
    }
}

/// Receives pull progress; called from the backend's task, so it must not block.
pub type PullProgressFn = Arc<dyn Fn(PullProgress) + Send + Sync>;

/// Which network a container joins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NetworkMode {
    /// The engine's default network (a bridge, with outbound access).
    #[default]
    Default,
    /// No network at all (loopback only).
    None,
    /// Join the run's sandbox made by [`Scheduler::create_sandbox`](crate::Scheduler::create_sandbox): share its network
    /// namespace ([`SandboxNetwork::SharedNamespace`](crate::SandboxNetwork::SharedNamespace)) or attach to its run network
    /// ([`SandboxNetwork::RunNetwork`](crate::SandboxNetwork::RunNetwork)), as the backend's
    /// [`Capabilities::sandbox_network`](crate::Capabilities::sandbox_network) says.
    Sandbox(ContainerId),
}

/// Everything a backend needs to start one container.
///
/// Built with [`ContainerSpec::new`] and the builder methods; `#[non_exhaustive]` so
/// fields can be added without breaking backends.
#[derive(Clone)]
#[non_exhaustive]
pub struct ContainerSpec {
    /// Deterministic, unique container name (see [`crate::naming`]).
    pub name: String,
    /// The image reference.
    pub image: String,
    /// When to pull.
    pub pull_policy: PullPolicy,
    /// Registry credentials; backends send them to the registry only.
    pub registry_auth: Option<RegistryAuth>,
    /// The environment, exactly as the container must see it.
    pub env: Env,
    /// Replaces the image entrypoint when set.
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image command when set.
    pub command: Option<Vec<String>>,
    /// Labels to attach (for listing, reaping and recovery).
    pub labels: BTreeMap<String, String>,
    /// Memory and CPU limits.
    pub resources: ResourceLimits,
    /// Run a minimal init as PID 1 that forwards signals and reaps zombies.
    pub init: bool,
    /// The network to join.
    pub network: NetworkMode,
    /// Volumes and host paths to mount (checked with [`crate::check_mounts`]).
    pub mounts: Vec<Mount>,
    /// The grace period the container will be stopped with, as far as it is known at
    /// create (the executor sets its `gofer_engine::Limits::stop_grace`).
    /// A backend whose engine fixes the grace when the container is made (Swarm:
    /// [`Capabilities::per_stop_grace`](crate::Capabilities::per_stop_grace) off) uses it; the others take the grace of
    /// each [`Scheduler::stop`](crate::Scheduler::stop) and may ignore this one.
    pub stop_grace: Option<Duration>,
    /// Where to report pull progress.
    pub pull_progress: Option<PullProgressFn>,
    /// The caller reads the output at once: the backend may attach to the container
    /// before starting it and serve the first [`Scheduler::logs`](crate::Scheduler::logs) from that attach
    /// (see there). Off by default; the engine sets it for every task.
    pub attach_output: bool,
}

impl fmt::Debug for ContainerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerSpec")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("pull_policy", &self.pull_policy)
            .field("registry_auth", &self.registry_auth)
            .field("env", &self.env)
            .field("entrypoint", &self.entrypoint)
            .field("command", &self.command)
            .field("labels", &self.labels)
            .field("resources", &self.resources)
            .field("init", &self.init)
            .field("network", &self.network)
            .field("mounts", &self.mounts)
            .field("stop_grace", &self.stop_grace)
            .field("attach_output", &self.attach_output)
            .finish_non_exhaustive()
    }
}

impl ContainerSpec {
    /// A spec with a name and an image; init on, pull policy `IfNotPresent`.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            pull_policy: PullPolicy::IfNotPresent,
            registry_auth: None,
            env: Env::new(),
            entrypoint: None,
            command: None,
            labels: BTreeMap::new(),
            resources: ResourceLimits::default(),
            init: true,
            network: NetworkMode::Default,
            mounts: Vec::new(),
            stop_grace: None,
            pull_progress: None,
            attach_output: false,
        }
    }

    /// Sets [`ContainerSpec::attach_output`]: the caller opens [`Scheduler::logs`](crate::Scheduler::logs)
    /// right after the start and reads it.
    #[must_use]
    pub fn attach_output(mut self, on: bool) -> Self {
        self.attach_output = on;
        self
    }

    /// Sets the pull policy.
    #[must_use]
    pub fn pull_policy(mut self, p: PullPolicy) -> Self {
        self.pull_policy = p;
        self
    }

    /// Sets registry credentials.
    #[must_use]
    pub fn registry_auth(mut self, auth: Option<RegistryAuth>) -> Self {
        self.registry_auth = auth;
        self
    }

    /// Adds one plain environment variable.
    #[must_use]
    pub fn env_var(mut self, key: impl Into<String>, value: impl Into<EnvValue>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Replaces the environment.
    #[must_use]
    pub fn env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Sets the entrypoint.
    #[must_use]
    pub fn entrypoint<I, S>(mut self, e: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.entrypoint = Some(e.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the command.
    #[must_use]
    pub fn command<I, S>(mut self, c: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.command = Some(c.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a label.
    #[must_use]
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Adds many labels.
    #[must_use]
    pub fn labels(mut self, labels: impl IntoIterator<Item = (String, String)>) -> Self {
        self.labels.extend(labels);
        self
    }

    /// Sets resource limits.
    #[must_use]
    pub fn resources(mut self, r: ResourceLimits) -> Self {
        self.resources = r;
        self
    }

    /// Turns the init process on or off.
    #[must_use]
    pub fn init(mut self, init: bool) -> Self {
        self.init = init;
        self
    }

    /// Sets the network.
    #[must_use]
    pub fn network(mut self, n: NetworkMode) -> Self {
        self.network = n;
        self
    }

    /// Adds a mount.
    #[must_use]
    pub fn mount(mut self, m: Mount) -> Self {
        self.mounts.push(m);
        self
    }

    /// Sets the grace period known at create (see [`ContainerSpec::stop_grace`]).
    #[must_use]
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = Some(grace);
        self
    }

    /// Sets the pull-progress receiver.
    #[must_use]
    pub fn on_pull_progress(mut self, f: PullProgressFn) -> Self {
        self.pull_progress = Some(f);
        self
    }
}

/// A request for a run-scoped network sandbox: a small holder container that owns a
/// network namespace which the run's task containers join.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SandboxSpec {
    /// Deterministic, unique name of the holder.
    pub name: String,
    /// Image of the holder (it only needs to sleep until stopped).
    pub image: String,
    /// Labels for the holder (for reaping).
    pub labels: BTreeMap<String, String>,
}

impl SandboxSpec {
    /// A sandbox request.
    pub fn new(name: impl Into<String>, image: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            image: image.into(),
            labels: BTreeMap::new(),
        }
    }

    /// Adds labels.
    #[must_use]
    pub fn labels(mut self, labels: impl IntoIterator<Item = (String, String)>) -> Self {
        self.labels.extend(labels);
        self
    }
}
