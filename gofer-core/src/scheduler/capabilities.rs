//! What a backend can do: [`Capabilities`], which the engine and the suites read
//! instead of asking which backend it is.

use crate::volume::VolumeScope;

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
    /// [`Scheduler::create_sandbox`](crate::Scheduler::create_sandbox) works.
    pub network_sandbox: bool,
    /// What kind of sandbox [`Scheduler::create_sandbox`](crate::Scheduler::create_sandbox) makes (meaningful with
    /// [`Capabilities::network_sandbox`]).
    pub sandbox_network: SandboxNetwork,
    /// Running a command in a running container.
    pub exec: bool,
    /// Attaching to a container's stdin.
    pub attach: bool,
    /// Registry credentials are honoured on pull.
    pub registry_auth: bool,
    /// [`ContainerSpec::mounts`](crate::ContainerSpec::mounts) are honoured (bind and named-volume mounts).
    pub mounts: bool,
    /// A bind mount's host path is on the host the engine runs on, so a host file or
    /// socket reaches the container (false where a container may run on another node).
    /// The engine needs it to mount its API socket
    /// (`gofer_engine::EngineBuilder::api_socket_dir`).
    pub local_bind_mounts: bool,
    /// [`Scheduler::create_volume`](crate::Scheduler::create_volume), [`Scheduler::remove_volume`](crate::Scheduler::remove_volume) and
    /// [`Scheduler::list_volumes`](crate::Scheduler::list_volumes) work (and volume mounts of the volumes made).
    pub volumes: bool,
    /// Where a volume's content is seen (see [`VolumeScope`]).
    pub volume_scope: VolumeScope,
    /// The `grace` of each [`Scheduler::stop`](crate::Scheduler::stop) call is honoured. Off, the engine fixes
    /// the grace when the container is made and uses [`ContainerSpec::stop_grace`](crate::ContainerSpec::stop_grace)
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
