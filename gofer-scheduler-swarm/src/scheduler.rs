//! [`SwarmScheduler`]: the [`Scheduler`] over a Docker Swarm manager.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::{Service, Task};
use bollard::query_parameters::ListTasksOptions;
use bollard::Docker;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, NetworkMode, SandboxNetwork, SandboxSpec, Scheduler, SchedulerError, VolumeScope,
};
use tokio::time::Instant;

use crate::error::{self, SwarmError};
use crate::ids::{self, Target};
use crate::tasks::{self, Phase};
use crate::wait::Backoff;
use crate::{create, logs, SwarmConfig, NAME};

/// A [`Scheduler`] that runs each container as a one-replica service of a Docker
/// Swarm, on whichever node the swarm picks.
///
/// Talks to one manager. Cheap to clone: clones share one connection pool.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), gofer_core::SchedulerError> {
/// use gofer_core::{ContainerSpec, Scheduler};
/// use gofer_scheduler_swarm::{SwarmConfig, SwarmScheduler};
///
/// let swarm = SwarmScheduler::connect(SwarmConfig::new().host("unix:///run/gofer-swarm/manager.sock")).await?;
/// let id = swarm
///     .start(ContainerSpec::new("hello", "busybox:latest").command(["echo", "hi"]))
///     .await?;
/// let status = swarm.wait(&id).await?;
/// swarm.remove(&id, true).await?;
/// println!("{status:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SwarmScheduler {
    pub(crate) docker: Docker,
    pub(crate) endpoint: String,
    pub(crate) config: SwarmConfig,
    capabilities: Capabilities,
    /// Node id → host name, for errors and placement reports.
    nodes: Arc<Mutex<HashMap<String, String>>>,
}

impl fmt::Debug for SwarmScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.docker.client_version();
        f.debug_struct("SwarmScheduler")
            .field("endpoint", &self.endpoint)
            .field(
                "api_version",
                &format_args!("{}.{}", v.major_version, v.minor_version),
            )
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// The longest pause between two looks at a starting task.
const START_POLL_MAX: Duration = Duration::from_millis(25);

/// Removes a service whose start did not finish (the start's future was dropped).
struct HalfMade {
    docker: Docker,
    id: Option<String>,
}

impl Drop for HalfMade {
    fn drop(&mut self) {
        if let (Some(id), Ok(rt)) = (self.id.take(), tokio::runtime::Handle::try_current()) {
            let docker = self.docker.clone();
            rt.spawn(async move {
                let _ = docker.delete_service(&id).await;
            });
        }
    }
}

impl SwarmScheduler {
    /// Connects to a swarm manager, negotiates the API version and checks that the
    /// engine is an active manager.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Connection`] when the engine cannot be reached or is not a
    /// swarm manager; [`SchedulerError::InvalidRequest`] for an endpoint scheme other
    /// than `unix://`, `tcp://` or `http://`.
    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    pub async fn connect(config: SwarmConfig) -> Result<Self, SchedulerError> {
        let endpoint = config.endpoint();
        let (docker, info) =
            gofer_bollard::connect(NAME, &endpoint, config.api_version, config.request_timeout)
                .await?;
        let swarm = info.swarm.unwrap_or_default();
        if swarm.control_available != Some(true) {
            let state = swarm
                .local_node_state
                .map(|s| s.to_string())
                .unwrap_or_default();
            return Err(SchedulerError::Connection {
                scheduler: NAME,
                endpoint,
                source: format!("the engine is not a swarm manager (swarm state {state:?})").into(),
            });
        }
        // Limits are enforced by each node's engine; the manager's report stands for
        // the nodes it leads.
        let capabilities = Capabilities::none()
            .with_memory_limit(info.memory_limit.unwrap_or(false))
            .with_cpu_limit(info.cpu_cfs_quota.unwrap_or(false))
            .with_network_sandbox(true)
            .with_sandbox_network(SandboxNetwork::RunNetwork)
            .with_registry_auth(true)
            .with_mounts(true)
            // A bind is a path on the node the task lands on, not on this host.
            .with_local_bind_mounts(false)
            // A volume lives on the node a task lands on: tasks of one run on two
            // nodes would see two volumes. So no volumes (no shared workspace) here:
            // what holds is declared, never faked.
            .with_volumes(false)
            .with_volume_scope(VolumeScope::Node);
        tracing::debug!(endpoint = %endpoint, nodes = swarm.nodes.unwrap_or(0), "connected");
        Ok(Self {
            docker,
            endpoint,
            config,
            capabilities,
            nodes: Arc::default(),
        })
    }

    /// The endpoint this scheduler talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The underlying bollard client, for what the [`Scheduler`] trait does not cover.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The configuration this scheduler was connected with.
    pub fn config(&self) -> &SwarmConfig {
        &self.config
    }

    /// The host name of the node that ran (or runs) the task of container `id`, or
    /// `None` while the swarm has not placed it.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::NoSuchContainer`] for an unknown id or a run network, or a
    /// manager error.
    pub async fn node_of(&self, id: &ContainerId) -> Result<Option<String>, SchedulerError> {
        let Target::Service(service) = ids::target(id) else {
            return Err(SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: id.0.clone(),
            });
        };
        self.inspect(service).await?;
        let task = self.task_of(service).await?;
        Ok(self.node_name(task.as_ref()).await)
    }

    /// The service, or [`SchedulerError::NoSuchContainer`].
    pub(crate) async fn inspect(&self, service: &str) -> Result<Service, SchedulerError> {
        self.docker
            .inspect_service(service, None)
            .await
            .map_err(|e| error::service(&self.endpoint, "inspect", service, e))
    }

    /// The service's task (see [`tasks::ours`]); `None` before the swarm made it or
    /// once the service is gone.
    pub(crate) async fn task_of(&self, service: &str) -> Result<Option<Task>, SchedulerError> {
        let options = ListTasksOptions {
            filters: Some(HashMap::from([(
                "service".to_string(),
                vec![service.to_string()],
            )])),
        };
        let found = match self.docker.list_tasks(Some(options)).await {
            Ok(found) => found,
            // The manager answers 404 when the service filter names no service.
            Err(e) if error::status(&e) == Some(404) => return Ok(None),
            Err(e) => return Err(error::api(&self.endpoint, "list tasks", service, None, e)),
        };
        // The filter also matches by name prefix: keep this service's tasks only.
        Ok(tasks::ours(
            found
                .into_iter()
                .filter(|t| t.service_id.as_deref() == Some(service))
                .collect(),
        ))
    }

    /// The host name of the node a task is on, if placed (looked up once per node).
    pub(crate) async fn node_name(&self, task: Option<&Task>) -> Option<String> {
        let node = task?.node_id.clone().filter(|n| !n.is_empty())?;
        let known = self
            .nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&node)
            .cloned();
        if known.is_some() {
            return known;
        }
        let name = self
            .docker
            .inspect_node(&node)
            .await
            .ok()
            .and_then(|n| n.description)
            .and_then(|d| d.hostname)
            .unwrap_or_else(|| node.clone());
        self.nodes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node, name.clone());
        Some(name)
    }

    /// The task's phase, polled until `done` says so; `Ok(None)` when the service went
    /// away meanwhile.
    pub(crate) async fn poll_until(
        &self,
        service: &str,
        deadline: Option<Instant>,
        done: impl Fn(&Phase) -> bool,
    ) -> Result<Option<(Phase, Option<Task>)>, SchedulerError> {
        self.poll_until_with(service, deadline, self.config.poll_max, done)
            .await
    }

    /// [`SwarmScheduler::poll_until`] with pauses of at most `max`.
    pub(crate) async fn poll_until_with(
        &self,
        service: &str,
        deadline: Option<Instant>,
        max: Duration,
        done: impl Fn(&Phase) -> bool,
    ) -> Result<Option<(Phase, Option<Task>)>, SchedulerError> {
        let mut backoff = Backoff::new(&self.config).capped(max);
        loop {
            match self.task_of(service).await? {
                Some(task) => {
                    let phase = tasks::phase(&task);
                    if done(&phase) {
                        return Ok(Some((phase, Some(task))));
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Ok(Some((phase, Some(task))));
                    }
                }
                None => match self.docker.inspect_service(service, None).await {
                    Err(e) if error::status(&e) == Some(404) => return Ok(None),
                    _ if deadline.is_some_and(|d| Instant::now() >= d) => {
                        return Ok(Some((Phase::Waiting, None)));
                    }
                    _ => {}
                },
            }
            backoff.pause().await;
        }
    }

    /// Maps a create failure.
    fn create_error(&self, spec: &ContainerSpec, err: BollardError) -> SchedulerError {
        let password = spec.registry_auth.as_ref().map(|a| {
            use secrecy::ExposeSecret;
            a.password.expose_secret().to_string()
        });
        let err = error::scrub_request(err, &spec.env, password.as_deref());
        match (error::status(&err), &spec.network) {
            (Some(404), NetworkMode::Sandbox(sandbox)) => SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: sandbox.0.clone(),
            },
            (Some(409), _) => SchedulerError::Conflict {
                scheduler: NAME,
                id: spec.name.clone(),
                message: error::message(&err),
            },
            (Some(400), _) => SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "spec",
                message: error::message(&err),
            },
            _ => error::api(&self.endpoint, "create", &spec.name, None, err),
        }
    }

    /// Maps a task that ended before its container ran.
    fn failed_to_run(
        &self,
        spec: &ContainerSpec,
        node: Option<String>,
        message: String,
    ) -> SchedulerError {
        if error::says_no_such_image(&message) {
            SchedulerError::NoSuchImage {
                scheduler: NAME,
                image: spec.image.clone(),
                message,
            }
        } else if error::says_unauthorized(&message) {
            SchedulerError::Unauthorized {
                scheduler: NAME,
                image: spec.image.clone(),
                message,
            }
        } else if message.starts_with("starting container failed") {
            SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "command",
                message,
            }
        } else {
            SwarmError::TaskFailed {
                service: spec.name.clone(),
                node,
                message,
            }
            .into_scheduler("start")
        }
    }
}

#[async_trait]
impl Scheduler for SwarmScheduler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %spec.name, image = %spec.image))]
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        let service = create::service(&spec, &self.config)?;
        let credentials = spec
            .registry_auth
            .as_ref()
            .map(|a| gofer_bollard::credentials(&spec.image, a));
        let id = self
            .docker
            .create_service(service, credentials)
            .await
            .map_err(|e| self.create_error(&spec, e))?
            .id
            .ok_or_else(|| {
                SchedulerError::engine(NAME, "create", "the manager returned no service id")
            })?;
        // Should this future be dropped before the task runs, remove what was made.
        let mut guard = HalfMade {
            docker: self.docker.clone(),
            id: Some(id.clone()),
        };
        let deadline = Instant::now() + self.config.schedule_timeout;
        // Placing and starting takes the swarm about half a second: look closely.
        let max = self.config.poll_max.min(START_POLL_MAX);
        let seen = self
            .poll_until_with(&id, Some(deadline), max, |p| !matches!(p, Phase::Waiting))
            .await;
        let failure = match seen {
            Ok(Some((Phase::Running | Phase::Ended(_), task))) => {
                guard.id = None;
                let node = self.node_name(task.as_ref()).await;
                tracing::debug!(id = %id, node = ?node, "started");
                return Ok(ContainerId(id));
            }
            Ok(Some((Phase::FailedToRun(message), task))) => {
                let node = self.node_name(task.as_ref()).await;
                self.failed_to_run(&spec, node, message)
            }
            Ok(Some((Phase::Waiting, task))) => SwarmError::Unschedulable {
                service: spec.name.clone(),
                waited: self.config.schedule_timeout.into(),
                message: task
                    .as_ref()
                    .map(tasks::message)
                    .unwrap_or_else(|| "no task yet".to_string()),
            }
            .into_scheduler("start"),
            Ok(None) => SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: spec.name.clone(),
            },
            Err(e) => e,
        };
        guard.id = None;
        let _ = self.docker.delete_service(&id).await;
        Err(failure)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        let service = match ids::target(id) {
            Target::Network(net) => {
                self.wait_network(net, id).await?;
                return Ok(ExitStatus::Removed);
            }
            Target::Service(s) => s,
        };
        self.inspect(service).await?;
        let ended = |p: &Phase| matches!(p, Phase::Ended(_) | Phase::FailedToRun(_));
        match self.poll_until(service, None, ended).await? {
            Some((Phase::Ended(status), _)) => Ok(status),
            Some((Phase::FailedToRun(message), task)) => Err(SwarmError::TaskFailed {
                service: service.to_string(),
                node: self.node_name(task.as_ref()).await,
                message,
            }
            .into_scheduler("wait")),
            Some(_) | None => Ok(ExitStatus::Removed),
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        let service = match ids::target(id) {
            Target::Network(net) => {
                self.inspect_network(net, id).await?;
                return Ok(ContainerState::Running);
            }
            Target::Service(s) => s,
        };
        self.inspect(service).await?;
        Ok(match self.task_of(service).await? {
            Some(task) => tasks::container_state(&tasks::phase(&task)),
            None => ContainerState::Created,
        })
    }

    /// A service's task is started by the swarm itself, once (restart condition
    /// `none`): there is nothing to start, so this waits until the task runs or has
    /// ended, as [`Scheduler::start`] does, and never makes a second task.
    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        let service = match ids::target(id) {
            Target::Network(net) => return self.inspect_network(net, id).await.map(|_| ()),
            Target::Service(s) => s,
        };
        self.inspect(service).await?;
        let deadline = Instant::now() + self.config.schedule_timeout;
        let max = self.config.poll_max.min(START_POLL_MAX);
        match self
            .poll_until_with(service, Some(deadline), max, |p| {
                !matches!(p, Phase::Waiting)
            })
            .await?
        {
            Some((Phase::Waiting, task)) => Err(SwarmError::Unschedulable {
                service: service.to_string(),
                waited: self.config.schedule_timeout.into(),
                message: task
                    .as_ref()
                    .map(tasks::message)
                    .unwrap_or_else(|| "no task yet".to_string()),
            }
            .into_scheduler("start")),
            Some(_) => Ok(()),
            None => Err(SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: id.0.clone(),
            }),
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        let service = match ids::target(id) {
            Target::Network(net) => {
                // A run network has no output.
                self.inspect_network(net, id).await?;
                return Ok(Box::pin(futures::stream::empty()));
            }
            Target::Service(s) => s,
        };
        self.inspect(service).await?;
        let task = self.task_of(service).await?.ok_or_else(|| {
            SwarmError::LogIncomplete {
                service: service.to_string(),
                node: None,
                reason: "the service has no task".to_string(),
            }
            .into_scheduler("logs")
        })?;
        let node = self.node_name(Some(&task)).await;
        Ok(logs::follow(
            &self.docker,
            &self.endpoint,
            &self.config,
            service,
            &task,
            node,
        ))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, grace_ms = grace.as_millis() as u64))]
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        match ids::target(id) {
            Target::Network(net) => self.inspect_network(net, id).await.map(|_| ()),
            Target::Service(service) => self.stop_service(service, grace).await,
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, force))]
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let service = match ids::target(id) {
            Target::Network(net) => return self.remove_network(net, id, force).await,
            Target::Service(s) => s,
        };
        self.inspect(service).await?;
        if !force {
            let phase = self.task_of(service).await?.map(|t| tasks::phase(&t));
            if matches!(phase, Some(Phase::Running | Phase::Waiting)) {
                return Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: id.0.clone(),
                    message: "the task is running; remove with force".to_string(),
                });
            }
        }
        // Swarm stops a running task of a removed service with its stop grace.
        self.docker
            .delete_service(service)
            .await
            .map_err(|e| error::service(&self.endpoint, "remove", service, e))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        self.list_labelled(labels).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, sandbox = %spec.name))]
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.create_network(spec).await
    }
}
