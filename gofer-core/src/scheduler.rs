//! The [`Scheduler`] trait: the one contract every container backend implements.
//!
//! A backend turns a [`ContainerSpec`] into a running container and reports on it.
//! The run executor only ever talks to `dyn Scheduler`; the in-memory
//! [`FakeScheduler`](crate::fake::FakeScheduler) and the Docker and Podman crates
//! implement it and pass the same conformance suite.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use crate::volume::{VolumeScope, VolumeSpec, VolumeSummary};

use crate::error::SchedulerError;
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
    /// Join the run's sandbox made by [`Scheduler::create_sandbox`]: share its network
    /// namespace ([`SandboxNetwork::SharedNamespace`]) or attach to its run network
    /// ([`SandboxNetwork::RunNetwork`]), as the backend's
    /// [`Capabilities::sandbox_network`] says.
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
    /// [`Capabilities::per_stop_grace`] off) uses it; the others take the grace of
    /// each [`Scheduler::stop`] and may ignore this one.
    pub stop_grace: Option<Duration>,
    /// Where to report pull progress.
    pub pull_progress: Option<PullProgressFn>,
    /// The caller reads the output at once: the backend may attach to the container
    /// before starting it and serve the first [`Scheduler::logs`] from that attach
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

    /// Sets [`ContainerSpec::attach_output`]: the caller opens [`Scheduler::logs`]
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

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum ExitStatus {
    /// The main process exited with this code (128 + n when killed by signal n).
    Exited {
        /// The exit code.
        code: i64,
    },
    /// The kernel killed it for exceeding its memory limit.
    OutOfMemory {
        /// The exit code reported (usually 137).
        code: i64,
    },
    /// The container was removed before it could report an exit.
    Removed,
}

impl ExitStatus {
    /// The exit code, when there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Exited { code } | Self::OutOfMemory { code } => Some(*code),
            Self::Removed => None,
        }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited { code: 0 })
    }
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Ended.
    Exited {
        /// How.
        status: ExitStatus,
    },
}

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl OutputStream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stdout => "stdout",
            Self::Stderr => "stderr",
        }
    }
}

/// A chunk of a container's output, as the engine delivered it (not necessarily a
/// whole line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Which stream.
    pub stream: OutputStream,
    /// When the engine received it (or when the backend read it).
    pub timestamp: SystemTime,
    /// The bytes.
    pub data: Bytes,
}

impl LogChunk {
    /// A chunk from an engine message that may start with the engine's timestamp
    /// (`2006-01-02T15:04:05.999999999Z `, what Docker's and Swarm's `timestamps=true`
    /// log reads prefix): the prefix becomes the timestamp; a message without one is
    /// kept whole and stamped with the time it was read.
    pub fn timestamped(stream: OutputStream, message: Bytes) -> Self {
        let parsed = message
            .iter()
            .take(40)
            .position(|b| *b == b' ')
            .and_then(|space| {
                let ts = std::str::from_utf8(&message[..space]).ok()?;
                Some((humantime::parse_rfc3339(ts).ok()?, space))
            });
        match parsed {
            Some((timestamp, space)) => Self {
                stream,
                timestamp,
                data: message.slice(space + 1..),
            },
            None => Self {
                stream,
                timestamp: SystemTime::now(),
                data: message,
            },
        }
    }
}

/// How much of a container's output, per stream, has been delivered: when the output
/// is read again from its start (a follow that ended early or broke, a crash), only
/// what lies beyond it is delivered again. Backends and the executor use it alike.
///
/// ```
/// use std::time::SystemTime;
/// use gofer_core::{LogChunk, OutputCursor, OutputStream};
/// let chunk = |d: &'static [u8]| LogChunk {
///     stream: OutputStream::Stdout,
///     timestamp: SystemTime::now(),
///     data: bytes::Bytes::from_static(d),
/// };
/// let mut cursor = OutputCursor::new();
/// assert!(cursor.fresh(chunk(b"ab")).is_some()); // first read: all new
/// cursor.reread();
/// assert!(cursor.fresh(chunk(b"a")).is_none()); // already delivered
/// assert_eq!(&cursor.fresh(chunk(b"bcd")).unwrap().data[..], b"cd");
/// assert_eq!(cursor.delivered(OutputStream::Stdout), 4);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutputCursor {
    /// Bytes delivered per stream (stdout, stderr).
    delivered: [u64; 2],
    /// Bytes of the current read seen per stream.
    seen: [u64; 2],
}

impl OutputCursor {
    /// Nothing delivered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes of `stream` delivered so far.
    pub fn delivered(&self, stream: OutputStream) -> u64 {
        self.delivered[Self::index(stream)]
    }

    /// Bytes of `stream` seen in the current read (delivered again or not).
    pub fn seen(&self, stream: OutputStream) -> u64 {
        self.seen[Self::index(stream)]
    }

    /// A new read of the output from its start begins.
    pub fn reread(&mut self) {
        self.seen = [0, 0];
    }

    /// The part of `chunk` (the next chunk of the current read) not delivered yet, or
    /// `None` when all of it was; counts it as delivered.
    pub fn fresh(&mut self, chunk: LogChunk) -> Option<LogChunk> {
        let i = Self::index(chunk.stream);
        let len = chunk.data.len() as u64;
        let start = self.seen[i];
        self.seen[i] = start.saturating_add(len);
        if start.saturating_add(len) <= self.delivered[i] {
            return None;
        }
        let skip = usize::try_from(self.delivered[i].saturating_sub(start)).unwrap_or(usize::MAX);
        self.delivered[i] = start.saturating_add(len);
        Some(LogChunk {
            data: chunk.data.slice(skip.min(chunk.data.len())..),
            ..chunk
        })
    }

    fn index(stream: OutputStream) -> usize {
        usize::from(stream == OutputStream::Stderr)
    }
}

/// A container's output: chunks in order per stream, ending when the container has
/// exited and everything has been delivered.
pub type LogStream = BoxStream<'static, Result<LogChunk, SchedulerError>>;

/// One container found by [`Scheduler::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerSummary {
    /// The engine's id.
    pub id: ContainerId,
    /// The container's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: ContainerState,
}

impl ContainerSummary {
    /// A summary.
    pub fn new(
        id: ContainerId,
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        state: ContainerState,
    ) -> Self {
        Self {
            id,
            name: name.into(),
            labels,
            state,
        }
    }
}

/// How the tasks of one network sandbox reach each other (see
/// [`Capabilities::sandbox_network`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SandboxNetwork {
    /// One network namespace, held by a holder container, shared by every task of the
    /// run: peers are on `127.0.0.1` (Docker, Podman, the fake). Cannot span machines.
    #[default]
    SharedNamespace,
    /// A network of the run that spans machines (a cluster overlay): each task has its
    /// own address and is reachable by its task id (the
    /// [`LABEL_TASK`](crate::naming::LABEL_TASK) label) as a host name; there is no
    /// shared `127.0.0.1`. The sandbox is the network itself, listed and removed like a
    /// container.
    RunNetwork,
}

/// What a backend can do beyond the required operations. Declared, never faked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Memory limits are enforced.
    pub memory_limit: bool,
    /// CPU limits are enforced.
    pub cpu_limit: bool,
    /// [`Scheduler::create_sandbox`] works.
    pub network_sandbox: bool,
    /// What kind of sandbox [`Scheduler::create_sandbox`] makes (meaningful with
    /// [`Capabilities::network_sandbox`]).
    pub sandbox_network: SandboxNetwork,
    /// Running a command in a running container.
    pub exec: bool,
    /// Attaching to a container's stdin.
    pub attach: bool,
    /// Registry credentials are honoured on pull.
    pub registry_auth: bool,
    /// [`ContainerSpec::mounts`] are honoured (bind and named-volume mounts).
    pub mounts: bool,
    /// A bind mount's host path is on the host the engine runs on, so a host file or
    /// socket reaches the container (false where a container may run on another node).
    /// The engine needs it to mount its API socket
    /// (`gofer_engine::EngineBuilder::api_socket_dir`).
    pub local_bind_mounts: bool,
    /// [`Scheduler::create_volume`], [`Scheduler::remove_volume`] and
    /// [`Scheduler::list_volumes`] work (and volume mounts of the volumes made).
    pub volumes: bool,
    /// Where a volume's content is seen (see [`VolumeScope`]).
    pub volume_scope: VolumeScope,
    /// The `grace` of each [`Scheduler::stop`] call is honoured. Off, the engine fixes
    /// the grace when the container is made and uses [`ContainerSpec::stop_grace`]
    /// for every stop: a stop with another grace (a cancel's own) still sends SIGTERM
    /// at once and kills after the create-time grace.
    pub per_stop_grace: bool,
}

impl Capabilities {
    /// Every capability off.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets [`Capabilities::memory_limit`].
    #[must_use]
    pub fn with_memory_limit(mut self, on: bool) -> Self {
        self.memory_limit = on;
        self
    }

    /// Sets [`Capabilities::cpu_limit`].
    #[must_use]
    pub fn with_cpu_limit(mut self, on: bool) -> Self {
        self.cpu_limit = on;
        self
    }

    /// Sets [`Capabilities::network_sandbox`].
    #[must_use]
    pub fn with_network_sandbox(mut self, on: bool) -> Self {
        self.network_sandbox = on;
        self
    }

    /// Sets [`Capabilities::sandbox_network`].
    #[must_use]
    pub fn with_sandbox_network(mut self, kind: SandboxNetwork) -> Self {
        self.sandbox_network = kind;
        self
    }

    /// Sets [`Capabilities::exec`].
    #[must_use]
    pub fn with_exec(mut self, on: bool) -> Self {
        self.exec = on;
        self
    }

    /// Sets [`Capabilities::attach`].
    #[must_use]
    pub fn with_attach(mut self, on: bool) -> Self {
        self.attach = on;
        self
    }

    /// Sets [`Capabilities::registry_auth`].
    #[must_use]
    pub fn with_registry_auth(mut self, on: bool) -> Self {
        self.registry_auth = on;
        self
    }

    /// Sets [`Capabilities::per_stop_grace`].
    #[must_use]
    pub fn with_per_stop_grace(mut self, on: bool) -> Self {
        self.per_stop_grace = on;
        self
    }

    /// Sets [`Capabilities::mounts`].
    #[must_use]
    pub fn with_mounts(mut self, on: bool) -> Self {
        self.mounts = on;
        self
    }

    /// Sets [`Capabilities::local_bind_mounts`].
    #[must_use]
    pub fn with_local_bind_mounts(mut self, on: bool) -> Self {
        self.local_bind_mounts = on;
        self
    }

    /// Sets [`Capabilities::volumes`].
    #[must_use]
    pub fn with_volumes(mut self, on: bool) -> Self {
        self.volumes = on;
        self
    }

    /// Sets [`Capabilities::volume_scope`].
    #[must_use]
    pub fn with_volume_scope(mut self, scope: VolumeScope) -> Self {
        self.volume_scope = scope;
        self
    }
}

/// A container backend.
///
/// Every method is safe to call concurrently for different containers. Errors are
/// [`SchedulerError`]s; a caller that gets an error from [`Scheduler::start`] owns no
/// container (the backend removes whatever it half-made).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Scheduler: fmt::Debug + Send + Sync + 'static {
    /// A short backend name (`"docker"`, `"podman"`, `"fake"`), used in errors and spans.
    fn name(&self) -> &'static str;

    /// What this backend supports beyond the required operations.
    fn capabilities(&self) -> Capabilities;

    /// Pulls the image as `spec.pull_policy` says, then creates and starts the container.
    ///
    /// Contract: on success the container is running (or already exited) and its id is
    /// returned. `Never` with an absent image gives [`SchedulerError::NoSuchImage`];
    /// `IfNotPresent` does not contact the registry when the image is present. A name
    /// already in use gives [`SchedulerError::Conflict`]. On any error no container
    /// named `spec.name` created by this call is left behind.
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError>;

    /// Waits until the container exits, without polling, and returns how it ended.
    ///
    /// Returns at once for a container that has already exited. A container removed
    /// while waited on gives [`ExitStatus::Removed`]; an unknown id gives
    /// [`SchedulerError::NoSuchContainer`].
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError>;

    /// The container's current state.
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError>;

    /// Starts a container that was created but never started — one whose start a host
    /// that died had asked for, found by crash recovery in state
    /// [`ContainerState::Created`].
    ///
    /// Contract: the container runs at most once. A container that is already running
    /// or has exited is left as it is and the call succeeds (a start that was still in
    /// flight may have won the race); only a `Created` container is started. An
    /// unknown id gives [`SchedulerError::NoSuchContainer`]. Backends that cannot do
    /// this return [`SchedulerError::NotSupported`] (the default), and recovery then
    /// records the task as orphaned rather than starting a second container.
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        let _ = id;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "start_created",
        })
    }

    /// The container's output from its start: follows a running container until it exits,
    /// returns everything and ends when opened after exit. Order is kept within each
    /// stream; stdout and stderr are never mixed up.
    ///
    /// Live output: for a container started with [`ContainerSpec::attach_output`], the
    /// first call after [`Scheduler::start`] may be served from a stream the backend
    /// attached to the container *before* starting it, as `docker run` does: nothing
    /// the container prints is missed, even in its first millisecond, and the
    /// engine's log-reading API (often much slower) is not on the path. Later calls,
    /// and calls for other containers (such as those adopted by crash recovery), read
    /// the output again from its start. A caller that restarts a read skips what it
    /// already has (see [`OutputCursor`]), so both kinds of stream must deliver the
    /// same bytes per stream.
    ///
    /// An attached container is held back while nobody reads its output (the engine
    /// gives back-pressure; Podman holds even the exit of a container with a few
    /// kilobytes unread): whoever sets `attach_output` opens this stream right after
    /// the start and reads it, or drops it to detach. [`Scheduler::remove`] drops a
    /// stream not taken.
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError>;

    /// Sends SIGTERM, waits up to `grace`, then kills. Returns once the container has
    /// exited. Stopping an exited container is not an error.
    ///
    /// The container's first process is PID 1 of its namespace, and the kernel drops
    /// a signal sent to it before it has set up its handling (an init it was given, or
    /// its own trap). A stop that comes in the first moments after the start can
    /// therefore go unseen and end only when `grace` runs out, as with `docker stop`
    /// and `podman stop`.
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError>;

    /// Removes the container. A running container needs `force` (which kills it);
    /// without it the call fails with [`SchedulerError::Conflict`].
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError>;

    /// Lists containers (running or not) carrying every label in `labels`.
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError>;

    /// Creates and starts a network sandbox holder (see [`SandboxSpec`]) and returns its
    /// id, to be used as [`NetworkMode::Sandbox`]. Remove it with [`Scheduler::remove`].
    ///
    /// Backends without [`Capabilities::network_sandbox`] return
    /// [`SchedulerError::NotSupported`] (the default).
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        let _ = spec;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "create_sandbox",
        })
    }

    /// Creates a named volume carrying `spec.labels`, for containers to mount with
    /// [`Mount::volume`](crate::Mount::volume).
    ///
    /// Contract: a name already taken by a volume carrying the same labels is not an
    /// error (a host that died after asking may ask again); taken by another volume it
    /// gives [`SchedulerError::Conflict`]. A bad name gives
    /// [`SchedulerError::InvalidRequest`] (field `name`). Backends without
    /// [`Capabilities::volumes`] return [`SchedulerError::NotSupported`] (the default).
    async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
        let _ = spec;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "create_volume",
        })
    }

    /// Removes a named volume and its content.
    ///
    /// Contract: a volume that does not exist gives
    /// [`SchedulerError::NoSuchContainer`] with the volume's name as `id` (the reaper
    /// counts it as gone); a volume a container still mounts gives
    /// [`SchedulerError::Conflict`]. Backends without [`Capabilities::volumes`] return
    /// [`SchedulerError::NotSupported`] (the default).
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        let _ = name;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "remove_volume",
        })
    }

    /// Lists the volumes carrying every label in `labels`. Backends without
    /// [`Capabilities::volumes`] return [`SchedulerError::NotSupported`] (the default).
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        let _ = labels;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "list_volumes",
        })
    }
}

/// A scheduler behind dynamic dispatch.
pub type DynScheduler = dyn Scheduler;

macro_rules! forward_scheduler {
    ($t:ty) => {
        #[async_trait]
        impl<S: Scheduler + ?Sized> Scheduler for $t {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
                (**self).start(spec).await
            }
            async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
                (**self).wait(id).await
            }
            async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
                (**self).state(id).await
            }
            async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
                (**self).start_created(id).await
            }
            async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
                (**self).logs(id).await
            }
            async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
                (**self).stop(id, grace).await
            }
            async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
                (**self).remove(id, force).await
            }
            async fn list(
                &self,
                labels: &BTreeMap<String, String>,
            ) -> Result<Vec<ContainerSummary>, SchedulerError> {
                (**self).list(labels).await
            }
            async fn create_sandbox(
                &self,
                spec: SandboxSpec,
            ) -> Result<ContainerId, SchedulerError> {
                (**self).create_sandbox(spec).await
            }
            async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
                (**self).create_volume(spec).await
            }
            async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
                (**self).remove_volume(name).await
            }
            async fn list_volumes(
                &self,
                labels: &BTreeMap<String, String>,
            ) -> Result<Vec<VolumeSummary>, SchedulerError> {
                (**self).list_volumes(labels).await
            }
        }
    };
}

forward_scheduler!(Arc<S>);
forward_scheduler!(Box<S>);

#[cfg(test)]
mod log_chunk_tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn timestamps_are_split_off() {
        let a = LogChunk::timestamped(
            OutputStream::Stdout,
            Bytes::from_static(b"2026-11-28T02:45:12.123456789Z hello world\n"),
        );
        assert_eq!(a.data, Bytes::from_static(b"hello world\n"));
        let since = a.timestamp.duration_since(UNIX_EPOCH).expect("after epoch");
        assert_eq!(since.subsec_nanos(), 123_456_789);
        let b = LogChunk::timestamped(
            OutputStream::Stderr,
            Bytes::from_static(b"2026-11-28T02:45:12.5Z x"),
        );
        assert_eq!(
            b.timestamp.duration_since(a.timestamp).expect("later"),
            Duration::from_nanos(376_543_211)
        );
        assert_eq!(b.stream, OutputStream::Stderr);
    }

    #[test]
    fn messages_without_timestamp_are_kept_whole() {
        for m in [&b"no timestamp here"[..], b"nospace", b""] {
            let c = LogChunk::timestamped(OutputStream::Stdout, Bytes::copy_from_slice(m));
            assert_eq!(&c.data[..], m);
        }
    }
}
