//! Where containerd listens, and the knobs of [`ContainerdScheduler`](crate::ContainerdScheduler).

use std::path::PathBuf;

/// containerd's usual socket.
pub const DEFAULT_SOCKET: &str = "/run/containerd/containerd.sock";

/// The containerd namespace gofer's containers, images, snapshots and leases live in,
/// unless configured otherwise. Nothing outside it is touched (Docker's is `moby`,
/// Kubernetes' `k8s.io`).
pub const DEFAULT_NAMESPACE: &str = "gofer";

/// Configuration of a [`ContainerdScheduler`](crate::ContainerdScheduler).
///
/// Built with [`ContainerdConfig::from_env`] or [`ContainerdConfig::unix`], then adjusted
/// with the `with_*` methods.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerdConfig {
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// The containerd namespace (one per engine configuration).
    pub namespace: String,
    /// Where the backend keeps what containerd does not: containers' output files
    /// (written by the shim, so they outlive the host process), volumes, per-container
    /// `/etc/hosts` and `/etc/resolv.conf`, and its CNI state. One per namespace.
    pub state_dir: PathBuf,
    /// The snapshotter (`overlayfs`).
    pub snapshotter: String,
    /// The runtime shim (`io.containerd.runc.v2`).
    pub runtime: String,
    /// Where the CNI plugins are (`/usr/lib/cni`, Debian's `containernetworking-plugins`).
    pub cni_bin_dir: PathBuf,
    /// The IPv4 subnet of the bridge containers get outbound access through.
    pub subnet: String,
    /// The Linux bridge device the CNI bridge plugin makes.
    pub bridge: String,
    /// A static init binary bind-mounted into containers started with
    /// [`ContainerSpec::init`](gofer_core::ContainerSpec::init) (tini; `None` looks for
    /// `/usr/bin/tini-static`, then `/usr/bin/docker-init`).
    pub init_binary: Option<PathBuf>,
    /// Registries reached over plain HTTP (besides `localhost` and `127.0.0.1`, which
    /// always are, as with Docker).
    pub insecure_registries: Vec<String>,
}

impl Default for ContainerdConfig {
    fn default() -> Self {
        Self::unix(DEFAULT_SOCKET)
    }
}

impl ContainerdConfig {
    /// A configuration for the containerd listening on `socket`, namespace
    /// [`DEFAULT_NAMESPACE`].
    pub fn unix(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            namespace: DEFAULT_NAMESPACE.to_string(),
            state_dir: PathBuf::from("/var/lib/gofer/containerd").join(DEFAULT_NAMESPACE),
            snapshotter: "overlayfs".to_string(),
            runtime: "io.containerd.runc.v2".to_string(),
            cni_bin_dir: PathBuf::from("/usr/lib/cni"),
            subnet: "10.91.0.0/16".to_string(),
            bridge: "gofer0".to_string(),
            init_binary: None,
            insecure_registries: Vec::new(),
        }
    }

    /// The socket in `CONTAINERD_ADDRESS`, else [`DEFAULT_SOCKET`]; the namespace in
    /// `GOFER_CONTAINERD_NAMESPACE`, else [`DEFAULT_NAMESPACE`].
    pub fn from_env() -> Self {
        let socket = std::env::var_os("CONTAINERD_ADDRESS")
            .filter(|s| !s.is_empty())
            .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
        let mut config = Self::unix(socket);
        if let Some(ns) = std::env::var("GOFER_CONTAINERD_NAMESPACE")
            .ok()
            .filter(|s| !s.is_empty())
        {
            config = config.with_namespace(ns);
        }
        config
    }

    /// Sets the namespace (and the state directory with it, when it was the default).
    #[must_use]
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> Self {
        let namespace = namespace.into();
        if self.state_dir == PathBuf::from("/var/lib/gofer/containerd").join(&self.namespace) {
            self.state_dir = PathBuf::from("/var/lib/gofer/containerd").join(&namespace);
        }
        self.namespace = namespace;
        self
    }

    /// Sets [`ContainerdConfig::state_dir`].
    #[must_use]
    pub fn with_state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = dir.into();
        self
    }

    /// Sets [`ContainerdConfig::insecure_registries`].
    #[must_use]
    pub fn with_insecure_registries(mut self, hosts: Vec<String>) -> Self {
        self.insecure_registries = hosts;
        self
    }

    /// Sets [`ContainerdConfig::init_binary`].
    #[must_use]
    pub fn with_init_binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.init_binary = Some(path.into());
        self
    }

    /// The socket as text, for errors and spans.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }
}
