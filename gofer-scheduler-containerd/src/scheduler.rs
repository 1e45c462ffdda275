//! [`ContainerdScheduler`]: the [`Scheduler`] trait over containerd's gRPC services.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    container::Runtime, Container, CreateContainerRequest, CreateTaskRequest,
    DeleteContainerRequest, GetContainerRequest, GetRequest, KillRequest, ListContainersRequest,
    ListTasksRequest, StartRequest,
};
use containerd_client::types::v1::Status as TaskStatus;
use containerd_client::types::Mount as RootMount;
use gofer_core::{
    check_mounts, Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary,
    ExitStatus, LogStream, MountSource, NetworkMode, OutputStream, SandboxNetwork, SandboxSpec,
    Scheduler, SchedulerError, VolumeScope, VolumeSpec, VolumeSummary,
};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::client::{exists, gone_ok, not_found, Client};
use crate::config::ContainerdConfig;
use crate::exits::{self, Exits, LABEL_EXIT};
use crate::image::Images;
use crate::logs;
use crate::net::{Cni, LABEL_NETNS};
use crate::oci;
use crate::volumes::{Volumes, LABEL_VOLUME_PREFIX};
use crate::NAME;

/// The labels this backend adds for itself, kept out of what `list` reports.
const INTERNAL_LABEL_PREFIX: &str = "dev.gofer.containerd.";

/// The name prefix of the network namespaces this backend pins (under `/run/netns`).
pub const NETNS_PREFIX: &str = "gofer-ctrd-";

/// The label of a run's network sandbox: a container record without a task, owning
/// a pinned network namespace (which needs no process to hold it).
const LABEL_SANDBOX: &str = "dev.gofer.containerd.sandbox";

const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;

/// A [`Scheduler`] that runs containers on containerd, through its gRPC API: images
/// pulled into its content store and unpacked into snapshots, containers as OCI specs
/// run by the runc shim, output written to files by the shim, exits from the task
/// service's blocking wait. Cheap to clone (clones share the connection).
///
/// Needs root on the machine containerd runs on (it runs runc, makes network
/// namespaces and reads the containers' output files); rootless containerd is not
/// supported.
#[derive(Debug, Clone)]
pub struct ContainerdScheduler {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: Client,
    config: ContainerdConfig,
    version: String,
    images: Images,
    exits: Exits,
    cni: Cni,
    volumes: Volumes,
    init: Option<PathBuf>,
    swap_accounting: bool,
}

/// The containerd id of a container name: the name itself when containerd accepts it
/// (`[A-Za-z0-9]+([._-][A-Za-z0-9]+)*`, at most 76 bytes), else a digest of it. The
/// same name always gives the same id, and an id maps to itself.
pub(crate) fn container_id(name: &str) -> String {
    let valid = !name.is_empty()
        && name.len() <= 76
        && name
            .split(['.', '_', '-'])
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric()));
    if valid {
        name.to_string()
    } else {
        let digest = format!("{:x}", Sha256::digest(name.as_bytes()));
        format!("gofer-h-{}", &digest[..48])
    }
}

/// The pinned network namespace a container or sandbox owns.
fn netns_name(id: &str) -> String {
    format!("{NETNS_PREFIX}{id}")
}

fn no_such(id: &str) -> SchedulerError {
    SchedulerError::NoSuchContainer {
        scheduler: NAME,
        id: id.to_string(),
    }
}

impl ContainerdScheduler {
    /// Connects to the containerd `config` names and checks that it answers.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Connection`] naming the socket when containerd does not
    /// answer; [`SchedulerError::Engine`] when the state directory cannot be made.
    #[tracing::instrument(skip_all, fields(scheduler = NAME, endpoint = %config.endpoint()))]
    pub async fn connect(config: ContainerdConfig) -> Result<Self, SchedulerError> {
        let client = Client::connect(&config).await?;
        let version = client
            .version()
            .version(tonic::Request::new(()))
            .await
            .map_err(|s| client.error("version", s))?
            .into_inner()
            .version;
        tracing::debug!(%version, namespace = %config.namespace, "connected to containerd");
        for d in ["containers", "volumes", "cni"] {
            std::fs::create_dir_all(config.state_dir.join(d)).map_err(|e| {
                SchedulerError::engine(
                    NAME,
                    "connect",
                    format!(
                        "cannot make the state directory {}: {e}",
                        config.state_dir.display()
                    ),
                )
            })?;
        }
        let init = config.init_binary.clone().or_else(|| {
            ["/usr/bin/tini-static", "/usr/bin/docker-init"]
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
        });
        let swap_accounting = Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
            .exists()
            || Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let cni = Cni::new(&config);
        cni.host_rules(&config.subnet).await;
        let inner = Inner {
            images: Images::new(
                client.clone(),
                config.snapshotter.clone(),
                config.insecure_registries.clone(),
            ),
            cni,
            volumes: Volumes::new(&config.state_dir),
            exits: Exits::default(),
            client,
            version,
            init,
            swap_accounting,
            config,
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// [`ContainerdScheduler::connect`] to the containerd the environment points at
    /// (see [`ContainerdConfig::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`ContainerdScheduler::connect`].
    pub async fn connect_default() -> Result<Self, SchedulerError> {
        Self::connect(ContainerdConfig::from_env()).await
    }

    /// The containerd version reported on connect.
    pub fn server_version(&self) -> &str {
        &self.inner.version
    }

    /// The configuration.
    pub fn config(&self) -> &ContainerdConfig {
        &self.inner.config
    }

    fn client(&self) -> &Client {
        &self.inner.client
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.inner.config.state_dir.join("containers").join(id)
    }

    fn engine_error(&self, op: &'static str, s: tonic::Status) -> SchedulerError {
        self.client().error(op, s)
    }

    async fn get_container(&self, id: &str) -> Result<Option<Container>, SchedulerError> {
        let c = self.client();
        match c
            .containers()
            .get(c.req(GetContainerRequest { id: id.to_string() }))
            .await
        {
            Ok(r) => Ok(r.into_inner().container),
            Err(s) if not_found(&s) => Ok(None),
            Err(s) => Err(self.engine_error("inspect", s)),
        }
    }

    /// The task's process, if there is a task.
    async fn get_task(
        &self,
        id: &str,
    ) -> Result<Option<containerd_client::types::v1::Process>, SchedulerError> {
        let c = self.client();
        match c
            .tasks()
            .get(c.req(GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().process),
            Err(s) if not_found(&s) => Ok(None),
            Err(s) => Err(self.engine_error("inspect", s)),
        }
    }

    /// Makes a run's network sandbox: a pinned network namespace wired to the bridge,
    /// and a container record that owns it, so that it is listed, labelled, adopted and
    /// removed like a container. No holder process: the namespace lives as long as its
    /// pin (the sandbox's image is not needed).
    async fn make_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        let id = container_id(&spec.name);
        let netns = netns_name(&id);
        let mut labels: HashMap<String, String> = spec.labels.into_iter().collect();
        labels.insert(format!("{INTERNAL_LABEL_PREFIX}name"), spec.name.clone());
        labels.insert(LABEL_NETNS.to_string(), netns.clone());
        labels.insert(LABEL_SANDBOX.to_string(), "1".to_string());
        let record = Container {
            id: id.clone(),
            labels,
            image: spec.image,
            runtime: Some(Runtime {
                name: self.inner.config.runtime.clone(),
                options: None,
            }),
            // Never run; containerd wants a spec on every container.
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_string(),
                value: b"{}".to_vec(),
            }),
            ..Default::default()
        };
        self.create_record(record, &spec.name, "create_sandbox")
            .await?;
        let dir = self.dir(&id);
        let made = async {
            write_files(&dir, &spec.name)
                .map_err(|e| SchedulerError::engine(NAME, "create_sandbox", e))?;
            self.inner.cni.create(&netns, &id).await.map(|_| ())
        }
        .await;
        if let Err(e) = made {
            let _ = self.remove(&ContainerId(id), true).await;
            return Err(e);
        }
        Ok(ContainerId(id))
    }

    /// Creates a container record; a name already taken is a conflict (someone else's
    /// container: nothing to clean up).
    #[tracing::instrument(name = "create", skip_all)]
    async fn create_record(
        &self,
        record: Container,
        name: &str,
        operation: &'static str,
    ) -> Result<(), SchedulerError> {
        let c = self.client();
        match c
            .containers()
            .create(c.req(CreateContainerRequest {
                container: Some(record),
            }))
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if exists(&s) => Err(SchedulerError::Conflict {
                scheduler: NAME,
                id: name.to_string(),
                message: "a container of this name exists".into(),
            }),
            Err(s) => Err(self.engine_error(operation, s)),
        }
    }

    /// The state of a container from its record and its task.
    fn state_of(
        &self,
        container: &Container,
        task: Option<&containerd_client::types::v1::Process>,
    ) -> ContainerState {
        if container.labels.contains_key(LABEL_SANDBOX) {
            let pinned = container
                .labels
                .get(LABEL_NETNS)
                .is_some_and(|n| Cni::netns_path(n).exists());
            return if pinned {
                ContainerState::Running
            } else {
                ContainerState::Exited {
                    status: ExitStatus::Removed,
                }
            };
        }
        if let Some(status) = container
            .labels
            .get(LABEL_EXIT)
            .and_then(|l| exits::decode(l))
        {
            return ContainerState::Exited { status };
        }
        match task {
            None => ContainerState::Created,
            Some(p) => match TaskStatus::try_from(p.status).unwrap_or(TaskStatus::Unknown) {
                TaskStatus::Created => ContainerState::Created,
                TaskStatus::Stopped => {
                    let code = i64::from(p.exit_status);
                    let cgroup = exits::cgroup_path(&self.inner.config.namespace, &container.id);
                    let status = if exits::killed_for_memory(&cgroup) {
                        ExitStatus::OutOfMemory { code }
                    } else {
                        ExitStatus::Exited { code }
                    };
                    ContainerState::Exited { status }
                }
                _ => ContainerState::Running,
            },
        }
    }

    /// The exit receiver of a container, starting its watcher when it has a task.
    async fn exit_of(
        &self,
        container: &Container,
    ) -> Result<tokio::sync::watch::Receiver<Option<ExitStatus>>, SchedulerError> {
        let id = &container.id;
        let ex = &self.inner.exits;
        if !ex.watched(id) {
            if let Some(status) = container
                .labels
                .get(LABEL_EXIT)
                .and_then(|l| exits::decode(l))
            {
                ex.known(id, status);
            } else if self.get_task(id).await?.is_some() {
                ex.watch(self.client(), &self.inner.config.namespace, id);
            }
        }
        Ok(ex.subscribe(id))
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<(), SchedulerError> {
        let c = self.client();
        let r = c
            .tasks()
            .kill(c.req(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all,
            }))
            .await;
        match r {
            Ok(_) => Ok(()),
            // Gone, or exited already ("process already finished").
            Err(s) if not_found(&s) || s.code() == tonic::Code::FailedPrecondition => Ok(()),
            Err(s) => Err(self.engine_error("stop", s)),
        }
    }

    /// Creates and starts in a task of its own, so that a caller who stops waiting
    /// cannot cut it short half-way; when the caller is gone by the time it is done,
    /// the container it made is removed.
    async fn start_detached(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let name = spec.name.clone();
        tokio::spawn(
            async move {
                let result = this.create_and_start(spec).await;
                if let Err(Ok(id)) = tx.send(result) {
                    tracing::debug!(container = %id, "start abandoned by its caller; removing");
                    if let Err(e) = this.remove(&id, true).await {
                        tracing::warn!(container = %id, error = %e, "cannot remove abandoned container");
                    }
                }
            }
            .instrument(tracing::Span::current()),
        );
        rx.await.map_err(|_| {
            SchedulerError::engine(
                NAME,
                "start",
                format!("the start of container {name:?} ended without a result"),
            )
        })?
    }

    async fn create_and_start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        check_mounts(NAME, &spec.mounts)?;
        let id = container_id(&spec.name);
        let began = std::time::Instant::now();
        let mut lap = Laps::new();
        let image = self.inner.images.ensure(&spec).await?;
        lap.mark("image_us");
        let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
        labels.insert(format!("{INTERNAL_LABEL_PREFIX}name"), spec.name.clone());
        let (netns_path, owned) = match &spec.network {
            NetworkMode::Default => {
                let name = netns_name(&id);
                (Some(Cni::netns_path(&name)), Some(name))
            }
            NetworkMode::None => (None, None),
            NetworkMode::Sandbox(holder) => {
                let holder_id = container_id(&holder.0);
                let netns = self
                    .get_container(&holder_id)
                    .await?
                    .and_then(|c| c.labels.get(LABEL_NETNS).cloned())
                    .ok_or_else(|| SchedulerError::InvalidRequest {
                        scheduler: NAME,
                        field: "network",
                        message: format!("no network sandbox {holder}"),
                    })?;
                (Some(Cni::netns_path(&netns)), None)
            }
            other => {
                return Err(SchedulerError::InvalidRequest {
                    scheduler: NAME,
                    field: "network",
                    message: format!("network mode {other:?} is not supported"),
                })
            }
        };
        if let Some(n) = &owned {
            labels.insert(LABEL_NETNS.to_string(), n.clone());
        }
        for m in &spec.mounts {
            if let MountSource::Volume(v) = &m.source {
                self.inner.volumes.ensure(v)?;
                labels.insert(format!("{LABEL_VOLUME_PREFIX}{v}"), "1".to_string());
            }
        }
        let dir = self.dir(&id);
        let init = if spec.init {
            Some(self.inner.init.clone().ok_or_else(|| SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "init",
                message: "no init binary: install tini (/usr/bin/tini-static) or set ContainerdConfig::init_binary".into(),
            })?)
        } else {
            None
        };
        let volumes = self.inner.volumes.clone();
        let volume_dir = move |name: &str| volumes.data(name);
        let hosts = dir.join("hosts");
        let resolv = dir.join("resolv.conf");
        let runtime_spec = oci::spec(
            &spec,
            &image,
            &oci::Parts {
                netns: netns_path.as_deref(),
                cgroup: exits::cgroup_path(&self.inner.config.namespace, &id),
                hosts: &hosts,
                resolv: &resolv,
                volume_dir: &volume_dir,
                init: init.as_deref(),
                swap_accounting: self.inner.swap_accounting,
                group: oci::group(&spec.labels),
            },
        )?;
        let container = Container {
            id: id.clone(),
            labels,
            image: image.name.clone(),
            runtime: Some(Runtime {
                name: self.inner.config.runtime.clone(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".to_string(),
                value: runtime_spec.to_string().into_bytes(),
            }),
            snapshotter: self.inner.config.snapshotter.clone(),
            snapshot_key: id.clone(),
            ..Default::default()
        };
        self.create_record(container, &spec.name, "create").await?;
        lap.mark("container_us");
        // From here on, a failure removes what was made.
        let made = async {
            write_files(&dir, &spec.name).map_err(|e| {
                SchedulerError::engine(
                    NAME,
                    "create",
                    format!("container files in {}: {e}", dir.display()),
                )
            })?;
            let rootfs = self.prepare_snapshot(&id, &image.chain_id).await?;
            lap.mark("snapshot_us");
            if let Some(n) = &owned {
                self.inner.cni.create(n, &id).await?;
            }
            lap.mark("network_us");
            self.create_task(&id, &dir, rootfs).await?;
            lap.mark("task_us");
            self.start_task(&id).await?;
            lap.mark("start_us");
            Ok(())
        }
        .await;
        if let Err(e) = made {
            if let Err(r) = self.remove(&ContainerId(id.clone()), true).await {
                tracing::warn!(container = %id, error = %r, "cannot remove the half-made container");
            }
            return Err(e);
        }
        lap.report(&id, began);
        Ok(ContainerId(id))
    }

    async fn prepare_snapshot(
        &self,
        id: &str,
        parent: &str,
    ) -> Result<Vec<RootMount>, SchedulerError> {
        let c = self.client();
        let snapshotter = self.inner.config.snapshotter.clone();
        let r = c
            .snapshots()
            .prepare(c.req(PrepareSnapshotRequest {
                snapshotter: snapshotter.clone(),
                key: id.to_string(),
                parent: parent.to_string(),
                labels: HashMap::new(),
            }))
            .await;
        match r {
            Ok(r) => Ok(r.into_inner().mounts),
            Err(s) if exists(&s) => self.snapshot_mounts(id).await,
            Err(s) => Err(self.engine_error("create", s)),
        }
    }

    async fn snapshot_mounts(&self, id: &str) -> Result<Vec<RootMount>, SchedulerError> {
        let c = self.client();
        c.snapshots()
            .mounts(c.req(MountsRequest {
                snapshotter: self.inner.config.snapshotter.clone(),
                key: id.to_string(),
            }))
            .await
            .map(|r| r.into_inner().mounts)
            .map_err(|s| self.engine_error("create", s))
    }

    #[tracing::instrument(name = "create_task", skip_all)]
    async fn create_task(
        &self,
        id: &str,
        dir: &Path,
        rootfs: Vec<RootMount>,
    ) -> Result<(), SchedulerError> {
        let c = self.client();
        let stdio = crate::logger::uri(dir);
        let r = c
            .tasks()
            .create(c.req(CreateTaskRequest {
                container_id: id.to_string(),
                rootfs,
                stdin: String::new(),
                stdout: stdio.clone(),
                stderr: stdio,
                terminal: false,
                ..Default::default()
            }))
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(s) => Err(self.engine_error("create", s)),
        }
    }

    async fn start_task(&self, id: &str) -> Result<(), SchedulerError> {
        let c = self.client();
        // The watcher first: its wait is open before the process can exit.
        self.inner.exits.watch(c, &self.inner.config.namespace, id);
        c.tasks()
            .start(c.req(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
            .map(|_| ())
            .map_err(|s| self.engine_error("start", s))
    }

    /// Removes a container and all it owns: its task (killed first when `force`), its
    /// record, its snapshot, its network namespace and its files.
    async fn remove_container(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let cid = container_id(&id.0);
        let container = self
            .get_container(&cid)
            .await?
            .ok_or_else(|| no_such(&id.0))?;
        let task = if container.labels.contains_key(LABEL_EXIT) {
            None
        } else {
            self.get_task(&cid).await?
        };
        if let Some(p) = &task {
            let status = TaskStatus::try_from(p.status).unwrap_or(TaskStatus::Unknown);
            let running = matches!(
                status,
                TaskStatus::Running | TaskStatus::Paused | TaskStatus::Pausing
            );
            if running && !force {
                return Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: id.0.clone(),
                    message: "the container is running; remove it with force".into(),
                });
            }
            let mut rx = self.exit_of(&container).await?;
            self.kill(&cid, SIGKILL, true).await?;
            // The watcher deletes the task once it has ended.
            exited(&mut rx).await;
        }
        // The rest does not depend on each other: record, snapshot, network and files
        // go side by side.
        let c = self.client();
        let record = async {
            gone_ok(
                c.containers()
                    .delete(c.req(DeleteContainerRequest { id: cid.clone() }))
                    .await,
            )
            .map_err(|s| self.engine_error("remove", s))
        };
        let snapshot = async {
            gone_ok(
                c.snapshots()
                    .remove(c.req(RemoveSnapshotRequest {
                        snapshotter: self.inner.config.snapshotter.clone(),
                        key: cid.clone(),
                    }))
                    .await,
            )
            .map_err(|s| self.engine_error("remove", s))
        };
        let network = async {
            match container.labels.get(LABEL_NETNS) {
                Some(n) => self.inner.cni.remove(n, &cid).await,
                None => Ok(()),
            }
        };
        let dir = self.dir(&cid);
        let files = async {
            match tokio::fs::remove_dir_all(&dir).await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(SchedulerError::engine(NAME, "remove", e)),
            }
        };
        let (record, snapshot, network, files) = tokio::join!(record, snapshot, network, files);
        self.inner.exits.forget(&cid);
        record.and(snapshot).and(network).and(files)
    }

    /// The volumes mounted by any container of the namespace.
    async fn volumes_in_use(&self) -> Result<BTreeSet<String>, SchedulerError> {
        let c = self.client();
        let all = c
            .containers()
            .list(c.req(ListContainersRequest { filters: vec![] }))
            .await
            .map_err(|s| self.engine_error("list", s))?
            .into_inner()
            .containers;
        Ok(all
            .iter()
            .flat_map(|c| c.labels.keys())
            .filter_map(|k| k.strip_prefix(LABEL_VOLUME_PREFIX))
            .map(str::to_string)
            .collect())
    }
}

/// Where a start's time went, reported as one event of the target
/// [`TIMING_TARGET`](crate::TIMING_TARGET) at debug level (microseconds per step).
struct Laps {
    last: std::time::Instant,
    steps: Vec<(&'static str, u64)>,
}

impl Laps {
    fn new() -> Self {
        Self {
            last: std::time::Instant::now(),
            steps: Vec::with_capacity(6),
        }
    }

    fn mark(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        let us = u64::try_from(now.duration_since(self.last).as_micros()).unwrap_or(u64::MAX);
        self.steps.push((step, us));
        self.last = now;
    }

    fn get(&self, step: &str) -> u64 {
        self.steps
            .iter()
            .find(|(s, _)| *s == step)
            .map_or(0, |(_, us)| *us)
    }

    fn report(&self, id: &str, began: std::time::Instant) {
        tracing::debug!(
            target: crate::TIMING_TARGET,
            container = %id,
            image_us = self.get("image_us"),
            container_us = self.get("container_us"),
            snapshot_us = self.get("snapshot_us"),
            network_us = self.get("network_us"),
            task_us = self.get("task_us"),
            start_us = self.get("start_us"),
            total_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
            "container started"
        );
    }
}

/// The exit once it is known; a watcher gone without one reads as a removal.
async fn exited(rx: &mut tokio::sync::watch::Receiver<Option<ExitStatus>>) -> ExitStatus {
    match rx.wait_for(Option::is_some).await {
        Ok(s) => s.unwrap_or(ExitStatus::Removed),
        Err(_) => ExitStatus::Removed,
    }
}

/// The container's own files: empty output files (so a reader can open them before
/// the shim writes), `/etc/hosts` and `/etc/resolv.conf`.
fn write_files(dir: &Path, name: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::File::create(logs::file(dir, OutputStream::Stdout))?;
    std::fs::File::create(logs::file(dir, OutputStream::Stderr))?;
    let host: String = name.chars().take(63).collect();
    std::fs::write(
        dir.join("hosts"),
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{host}\n"
        ),
    )?;
    // The host's resolvers, without loopback ones (they do not answer in the
    // container's namespace), as Docker does.
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let kept: String = resolv
        .lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.join("resolv.conf"), kept)
}

#[async_trait]
impl Scheduler for ContainerdScheduler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
            .with_memory_limit(true)
            .with_cpu_limit(true)
            .with_network_sandbox(true)
            .with_sandbox_network(SandboxNetwork::SharedNamespace)
            .with_registry_auth(true)
            .with_mounts(true)
            .with_local_bind_mounts(true)
            .with_volumes(true)
            .with_volume_scope(VolumeScope::Engine)
            .with_per_stop_grace(true)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %spec.name, image = %spec.image))]
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        self.start_detached(spec).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        let cid = container_id(&id.0);
        let container = self
            .get_container(&cid)
            .await?
            .ok_or_else(|| no_such(&id.0))?;
        let mut rx = self.exit_of(&container).await?;
        Ok(exited(&mut rx).await)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        let cid = container_id(&id.0);
        let container = self
            .get_container(&cid)
            .await?
            .ok_or_else(|| no_such(&id.0))?;
        if container.labels.contains_key(LABEL_EXIT) {
            return Ok(self.state_of(&container, None));
        }
        let task = self.get_task(&cid).await?;
        Ok(self.state_of(&container, task.as_ref()))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        let cid = container_id(&id.0);
        let container = self
            .get_container(&cid)
            .await?
            .ok_or_else(|| no_such(&id.0))?;
        if container.labels.contains_key(LABEL_EXIT) || container.labels.contains_key(LABEL_SANDBOX)
        {
            return Ok(());
        }
        match self.get_task(&cid).await? {
            Some(p) if p.status == TaskStatus::Created as i32 => self.start_task(&cid).await,
            Some(_) => {
                self.inner
                    .exits
                    .watch(self.client(), &self.inner.config.namespace, &cid);
                Ok(())
            }
            None => {
                // Made, but its task never was: make it now, from the same snapshot,
                // output files and network.
                let dir = self.dir(&cid);
                if !logs::file(&dir, OutputStream::Stdout).exists() {
                    write_files(&dir, &cid)
                        .map_err(|e| SchedulerError::engine(NAME, "start", e))?;
                }
                let rootfs = self.snapshot_mounts(&cid).await?;
                if let Some(n) = container.labels.get(LABEL_NETNS) {
                    if !Cni::netns_path(n).exists() {
                        self.inner.cni.create(n, &cid).await?;
                    }
                }
                match self.create_task(&cid, &dir, rootfs).await {
                    Ok(()) => {}
                    // Made meanwhile by another start: start it if nobody has.
                    Err(SchedulerError::Engine { .. }) if self.get_task(&cid).await?.is_some() => {}
                    Err(e) => return Err(e),
                }
                match self.get_task(&cid).await? {
                    Some(p) if p.status == TaskStatus::Created as i32 => {
                        self.start_task(&cid).await
                    }
                    _ => Ok(()),
                }
            }
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        let cid = container_id(&id.0);
        let container = self
            .get_container(&cid)
            .await?
            .ok_or_else(|| no_such(&id.0))?;
        let dir = self.dir(&cid);
        if !logs::file(&dir, OutputStream::Stdout).exists() {
            return Err(SchedulerError::engine(
                NAME,
                "logs",
                format!("container {id} has no output files in {}", dir.display()),
            ));
        }
        let rx = self.exit_of(&container).await?;
        Ok(logs::follow(dir, rx))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, grace = ?grace))]
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        let cid = container_id(&id.0);
        let container = self
            .get_container(&cid)
            .await?
            .ok_or_else(|| no_such(&id.0))?;
        if container.labels.contains_key(LABEL_EXIT) || self.get_task(&cid).await?.is_none() {
            return Ok(());
        }
        let mut rx = self.exit_of(&container).await?;
        self.kill(&cid, SIGTERM, false).await?;
        let ended = tokio::time::timeout(grace, exited(&mut rx)).await;
        if ended.is_err() {
            self.kill(&cid, SIGKILL, true).await?;
            exited(&mut rx).await;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, force))]
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let began = std::time::Instant::now();
        let r = self.remove_container(id, force).await;
        tracing::debug!(
            target: crate::TIMING_TARGET,
            container = %id,
            remove_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
            "container removed"
        );
        r
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let c = self.client();
        let all = c
            .containers()
            .list(c.req(ListContainersRequest { filters: vec![] }))
            .await
            .map_err(|s| self.engine_error("list", s))?
            .into_inner()
            .containers;
        let tasks: HashMap<String, containerd_client::types::v1::Process> = c
            .tasks()
            .list(c.req(ListTasksRequest {
                filter: String::new(),
            }))
            .await
            .map_err(|s| self.engine_error("list", s))?
            .into_inner()
            .tasks
            .into_iter()
            // The task service names a task's container in `id` (`container_id` is
            // for exec processes).
            .map(|p| {
                let key = if p.container_id.is_empty() {
                    p.id.clone()
                } else {
                    p.container_id.clone()
                };
                (key, p)
            })
            .collect();
        let mut out = Vec::new();
        for container in all {
            if !labels
                .iter()
                .all(|(k, v)| container.labels.get(k) == Some(v))
            {
                continue;
            }
            let state = self.state_of(&container, tasks.get(&container.id));
            let name = container
                .labels
                .get(&format!("{INTERNAL_LABEL_PREFIX}name"))
                .cloned()
                .unwrap_or_else(|| container.id.clone());
            let shown: BTreeMap<String, String> = container
                .labels
                .into_iter()
                .filter(|(k, _)| !k.starts_with(INTERNAL_LABEL_PREFIX))
                .collect();
            out.push(ContainerSummary::new(
                ContainerId(container.id),
                name,
                shown,
                state,
            ));
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, sandbox = %spec.name))]
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        // As a start: not cut short by a caller who stops waiting.
        tokio::spawn(
            async move {
                let result = this.make_sandbox(spec).await;
                if let Err(Ok(id)) = tx.send(result) {
                    let _ = this.remove(&id, true).await;
                }
            }
            .instrument(tracing::Span::current()),
        );
        rx.await.map_err(|_| {
            SchedulerError::engine(NAME, "create_sandbox", "the sandbox was not made")
        })?
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, volume = %spec.name))]
    async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
        self.inner.volumes.create(&spec)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, volume = %name))]
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        let in_use = self.volumes_in_use().await?;
        self.inner.volumes.remove(name, &in_use)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        self.inner.volumes.list(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_containerd_refuses_become_stable_digests() {
        assert_eq!(
            container_id("gofer-e1-build-7-test.3"),
            "gofer-e1-build-7-test.3"
        );
        let odd = container_id("gofer-e1-hello_world-1-x__y");
        assert!(odd.starts_with("gofer-h-"), "{odd}");
        assert_eq!(container_id(&odd), odd);
        assert_eq!(container_id("gofer-e1-hello_world-1-x__y"), odd);
        let long = "a".repeat(77);
        assert_ne!(container_id(&long), long);
        assert_ne!(container_id(""), "");
    }
}
