//! [`DockerScheduler`]: the [`Scheduler`] over the Docker Engine API.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bollard::errors::Error as BollardError;
use bollard::models::HostConfigLogConfig;
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, RemoveContainerOptions, StopContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, NetworkMode, PullPolicy, SandboxSpec, Scheduler, SchedulerError, VolumeSpec,
    VolumeSummary,
};
use tracing::Instrument;

use crate::cleanup::{self, HalfMade};
use crate::{create, error, logs, pull, state, volumes, DockerConfig, NAME};

/// A [`Scheduler`] that runs containers on a Docker engine.
///
/// Cheap to clone: clones share one connection pool.
///
/// # Examples
///
/// ```no_run
/// # async fn demo() -> Result<(), gofer_core::SchedulerError> {
/// use gofer_core::{ContainerSpec, Scheduler};
/// use gofer_scheduler_docker::DockerScheduler;
///
/// let docker = DockerScheduler::connect_default().await?;
/// let id = docker
///     .start(ContainerSpec::new("hello", "busybox:latest").command(["echo", "hi"]))
///     .await?;
/// let status = docker.wait(&id).await?;
/// docker.remove(&id, true).await?;
/// println!("{status:?}");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct DockerScheduler {
    docker: Docker,
    endpoint: String,
    config: DockerConfig,
    capabilities: Capabilities,
    /// Ids of containers this scheduler started and has not removed: known to exist,
    /// so opening their logs needs no extra round trip to check.
    started: Arc<Mutex<HashSet<String>>>,
    /// Output streams attached before start and not taken by `logs` yet.
    attached: Arc<Mutex<HashMap<String, LogStream>>>,
}

impl fmt::Debug for DockerScheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.docker.client_version();
        f.debug_struct("DockerScheduler")
            .field("endpoint", &self.endpoint)
            .field(
                "api_version",
                &format_args!("{}.{}", v.major_version, v.minor_version),
            )
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl DockerScheduler {
    /// Connects with [`DockerConfig::default`]: `DOCKER_HOST` or the default socket.
    ///
    /// # Errors
    ///
    /// As [`DockerScheduler::connect`].
    pub async fn connect_default() -> Result<Self, SchedulerError> {
        Self::connect(DockerConfig::default()).await
    }

    /// Connects to the engine, negotiates the API version and reads what the engine
    /// supports.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Connection`] when the engine cannot be reached or does not
    /// answer; [`SchedulerError::InvalidRequest`] for an endpoint scheme other than
    /// `unix://`, `tcp://` or `http://`.
    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    pub async fn connect(config: DockerConfig) -> Result<Self, SchedulerError> {
        let endpoint = config.endpoint();
        let (docker, info) =
            gofer_bollard::connect(NAME, &endpoint, config.api_version, config.request_timeout)
                .await?;
        let capabilities = Capabilities::none()
            .with_memory_limit(info.memory_limit.unwrap_or(false))
            .with_cpu_limit(info.cpu_cfs_quota.unwrap_or(false))
            .with_network_sandbox(true)
            .with_registry_auth(true)
            .with_mounts(true)
            .with_local_bind_mounts(true)
            .with_volumes(true)
            .with_per_stop_grace(true);
        let v = docker.client_version();
        tracing::debug!(
            endpoint = %endpoint,
            api = %format_args!("{}.{}", v.major_version, v.minor_version),
            "connected"
        );
        Ok(Self {
            docker,
            endpoint,
            config,
            capabilities,
            started: Arc::default(),
            attached: Arc::default(),
        })
    }

    fn attached(&self) -> MutexGuard<'_, HashMap<String, LogStream>> {
        self.attached.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Attaches to a created container before it starts, so that its first
    /// `logs` gets the live output from the first byte. An attach that fails is
    /// not fatal: `logs` then reads the logs endpoint, which has every byte too.
    async fn attach_before_start(&self, id: &str) -> Option<LogStream> {
        match logs::attach(&self.docker, &self.endpoint, id).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "cannot attach; logs will be read from the engine's log");
                None
            }
        }
    }

    fn started(&self) -> MutexGuard<'_, HashSet<String>> {
        self.started.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The endpoint this scheduler talks to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The API version in use, as `(major, minor)`.
    pub fn api_version(&self) -> (usize, usize) {
        let v = self.docker.client_version();
        (v.major_version, v.minor_version)
    }

    /// The underlying bollard client, for what the [`Scheduler`] trait does not cover.
    pub fn client(&self) -> &Docker {
        &self.docker
    }

    /// The configuration this scheduler was connected with.
    pub fn config(&self) -> &DockerConfig {
        &self.config
    }

    /// Pulls `image` now, whatever its presence (what [`PullPolicy::Always`] does).
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Unauthorized`], [`SchedulerError::NoSuchImage`], or an engine
    /// error.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<&gofer_core::RegistryAuth>,
    ) -> Result<(), SchedulerError> {
        pull::pull(&self.docker, &self.endpoint, image, auth, None).await
    }

    async fn create(
        &self,
        spec: &ContainerSpec,
        body: &bollard::models::ContainerCreateBody,
    ) -> Result<String, BollardError> {
        let options = CreateContainerOptions {
            name: Some(spec.name.clone()),
            ..Default::default()
        };
        Ok(self
            .docker
            .create_container(Some(options), body.clone())
            .await?
            .id)
    }

    fn create_error(&self, spec: &ContainerSpec, err: BollardError) -> SchedulerError {
        let err = error::scrub_env(err, &spec.env);
        match (error::status(&err), &spec.network) {
            (Some(404), NetworkMode::Sandbox(sandbox)) => SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: sandbox.0.clone(),
            },
            (Some(400), _) => SchedulerError::InvalidRequest {
                scheduler: NAME,
                field: "spec",
                message: err.to_string(),
            },
            _ => error::container(&self.endpoint, "create", &spec.name, err),
        }
    }

    /// Creates the container, pulling per the policy: `IfNotPresent` tries the create
    /// first and pulls only when the engine lacks the image (no extra round trip on the
    /// hot path).
    async fn create_pulling(&self, spec: &ContainerSpec) -> Result<String, SchedulerError> {
        let mut body = create::body(spec)?;
        if let (Some(driver), Some(host)) = (&self.config.log_driver, &mut body.host_config) {
            host.log_config = Some(HostConfigLogConfig {
                typ: Some(driver.clone()),
                config: None,
            });
        }
        // Child spans of the caller's (the engine's `start`): the waterfall shows the
        // pull (`pull::pull`'s span) and the create apart.
        let pull = || {
            pull::pull(
                &self.docker,
                &self.endpoint,
                &spec.image,
                spec.registry_auth.as_ref(),
                spec.pull_progress.as_ref(),
            )
        };
        let create = || {
            self.create(spec, &body)
                .instrument(tracing::info_span!("create"))
        };
        if spec.pull_policy == PullPolicy::Always {
            pull().await?;
        }
        match create().await {
            Ok(id) => Ok(id),
            Err(e) if error::is_missing_image(&e) => match spec.pull_policy {
                PullPolicy::IfNotPresent => {
                    pull().await?;
                    create().await.map_err(|e| self.create_error(spec, e))
                }
                _ => Err(error::missing_image(&spec.image, &e)),
            },
            Err(e) => Err(self.create_error(spec, e)),
        }
    }

    async fn inspect_state(
        &self,
        id: &ContainerId,
    ) -> Result<bollard::models::ContainerState, SchedulerError> {
        Ok(self.inspect(id).await?.state.unwrap_or_default())
    }

    async fn inspect(
        &self,
        id: &ContainerId,
    ) -> Result<bollard::models::ContainerInspectResponse, SchedulerError> {
        self.docker
            .inspect_container(&id.0, None)
            .await
            .map_err(|e| error::container(&self.endpoint, "inspect", &id.0, e))
    }

    /// After the wait endpoint reported `code` (or nothing), looks closer: a container
    /// gone or being removed was removed, an OOM kill is reported as such.
    async fn settle(
        &self,
        id: &ContainerId,
        code: Option<i64>,
    ) -> Result<ExitStatus, SchedulerError> {
        let (status, memory_limited) = self.settle_once(id, code).await?;
        if status != (ExitStatus::Exited { code: 137 }) || !memory_limited {
            return Ok(status);
        }
        // Killed under a memory limit: the engine handles the cgroup's OOM event apart
        // from the exit and may mark the kill as OOM just after the wait returned. Look
        // again, for a while; a container without a limit cannot be OOM-killed by it
        // and pays nothing.
        for wait in OOM_SETTLE {
            tokio::time::sleep(wait).await;
            match self.settle_once(id, code).await {
                Ok((oom @ ExitStatus::OutOfMemory { .. }, _)) => return Ok(oom),
                // Still a plain kill; or gone meanwhile: the exit seen stands.
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(status)
    }

    /// The exit status, and whether the container has a memory limit.
    async fn settle_once(
        &self,
        id: &ContainerId,
        code: Option<i64>,
    ) -> Result<(ExitStatus, bool), SchedulerError> {
        match self.inspect(id).await {
            Ok(inspect) => {
                let memory_limited = inspect
                    .host_config
                    .as_ref()
                    .and_then(|h| h.memory)
                    .is_some_and(|m| m > 0);
                let s = inspect.state.unwrap_or_default();
                let status = match (state::from_inspect(&s), code) {
                    (
                        ContainerState::Exited {
                            status: ExitStatus::Exited { .. },
                        },
                        Some(code),
                    ) => ExitStatus::Exited { code },
                    (ContainerState::Exited { status }, _) => status,
                    (other, _) => {
                        return Err(SchedulerError::engine(
                            NAME,
                            "wait",
                            format!("the wait for {id} ended while the container is {other:?}"),
                        ))
                    }
                };
                Ok((status, memory_limited))
            }
            Err(SchedulerError::NoSuchContainer { .. }) => Ok((ExitStatus::Removed, false)),
            Err(e) => Err(e),
        }
    }
}

/// The waits before looking again at a memory-limited container killed by SIGKILL
/// (exit 137) for the engine's OOM flag, which it may set just after the exit (about
/// 1.5 s in all: the event goes from the kernel through the shim and containerd to
/// dockerd, each of which a busy host may hold up).
const OOM_SETTLE: [Duration; 4] = [
    Duration::from_millis(50),
    Duration::from_millis(200),
    Duration::from_millis(500),
    Duration::from_millis(750),
];

/// The stop grace in the engine's unit, whole seconds: rounded up (a grace is never
/// cut short) and saturating at `i32::MAX` seconds (about 68 years, the API's range),
/// so any [`Duration`], `Duration::MAX` included, is a valid request.
pub(crate) fn grace_secs(grace: Duration) -> i32 {
    let secs = grace
        .as_secs()
        .saturating_add(u64::from(grace.subsec_nanos() > 0));
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// The client timeout of a stop request: the usual one plus the grace plus 5 s for
/// the kill, saturating.
pub(crate) fn stop_request_timeout(request_timeout: Duration, grace_secs: i32) -> Duration {
    let grace = Duration::from_secs(u64::try_from(grace_secs).unwrap_or(0));
    request_timeout
        .saturating_add(grace)
        .saturating_add(Duration::from_secs(5))
}

#[async_trait]
impl Scheduler for DockerScheduler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %spec.name, image = %spec.image))]
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        let id = self.create_pulling(&spec).await?;
        // Should this future be dropped before the container runs, remove what was made.
        let mut guard = HalfMade {
            docker: self.docker.clone(),
            id: Some(id.clone()),
        };
        let attached = if spec.attach_output {
            self.attach_before_start(&id).await
        } else {
            None
        };
        let started = self.docker.start_container(&id, None).await;
        guard.id = None;
        if let Err(e) = started {
            drop(attached);
            cleanup::discard(&self.docker, &id).await;
            let e = error::scrub_env(e, &spec.env);
            return Err(match error::status(&e) {
                Some(400) => SchedulerError::InvalidRequest {
                    scheduler: NAME,
                    field: "command",
                    message: e.to_string(),
                },
                Some(404) if matches!(spec.network, NetworkMode::Sandbox(_)) => {
                    self.create_error(&spec, e)
                }
                _ => error::container(&self.endpoint, "start", &spec.name, e),
            });
        }
        tracing::debug!(id = %id, "started");
        self.started().insert(id.clone());
        if let Some(stream) = attached {
            self.attached().insert(id.clone(), stream);
        }
        Ok(ContainerId(id))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        let mut stream = self.docker.wait_container(&id.0, None);
        let code = match stream.next().await {
            Some(Ok(resp)) => {
                let failed = resp
                    .error
                    .and_then(|e| e.message)
                    .is_some_and(|m| !m.is_empty());
                (!failed).then_some(resp.status_code)
            }
            // bollard turns a non-zero exit into an error: map it back to the code.
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(e)) => return Err(error::container(&self.endpoint, "wait", &id.0, e)),
            None => None,
        };
        match code {
            Some(0) => Ok(ExitStatus::Exited { code: 0 }),
            other => self.settle(id, other).await,
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        Ok(state::from_inspect(&self.inspect_state(id).await?))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        // Only a container never started is started: Docker would run an exited one
        // again.
        if state::from_inspect(&self.inspect_state(id).await?) != ContainerState::Created {
            return Ok(());
        }
        match self.docker.start_container(&id.0, None).await {
            // 304: a start still in flight won the race.
            Ok(()) => {}
            Err(e) if error::status(&e) == Some(304) => {}
            Err(e) => return Err(error::container(&self.endpoint, "start", &id.0, e)),
        }
        tracing::debug!(id = %id, "started a container left created");
        self.started().insert(id.0.clone());
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        // The first read after a start: the stream attached before it.
        if let Some(stream) = self.attached().remove(&id.0) {
            return Ok(stream);
        }
        // An unknown id must fail here, not in the stream; what this scheduler started
        // and did not remove exists (if removed behind its back, the stream says so).
        if !self.started().contains(&id.0) {
            self.inspect_state(id).await?;
        }
        Ok(logs::follow(&self.docker, &self.endpoint, &id.0))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX)))]
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        let t = grace_secs(grace);
        let options = StopContainerOptions {
            t: Some(t),
            signal: None,
        };
        // The engine answers once the container has exited: allow for the grace.
        let needed = stop_request_timeout(self.config.request_timeout, t);
        let docker = if needed > self.config.request_timeout {
            self.docker.clone().with_timeout(needed)
        } else {
            self.docker.clone()
        };
        docker
            .stop_container(&id.0, Some(options))
            .await
            .map_err(|e| error::container(&self.endpoint, "stop", &id.0, e))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, force))]
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let options = RemoveContainerOptions {
            force,
            v: true,
            ..Default::default()
        };
        // Detach first: an attached container may be waiting for its reader.
        drop(self.attached().remove(&id.0));
        let result = self.docker.remove_container(&id.0, Some(options)).await;
        if result.is_ok()
            || result
                .as_ref()
                .is_err_and(|e| error::status(e) == Some(404))
        {
            self.started().remove(&id.0);
        }
        match result {
            Ok(()) => Ok(()),
            Err(e)
                if force
                    && error::status(&e) == Some(409)
                    && e.to_string().contains("already in progress") =>
            {
                Ok(())
            }
            Err(e) => Err(error::container(&self.endpoint, "remove", &id.0, e)),
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            labels.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        )]);
        let options = ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        };
        let found = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| error::engine(&self.endpoint, "list", e))?;
        Ok(found
            .into_iter()
            .map(|c| {
                let name = c
                    .names
                    .as_ref()
                    .and_then(|n| n.first())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default();
                let state = state::from_summary(c.state, c.status.as_deref());
                ContainerSummary::new(
                    ContainerId(c.id.unwrap_or_default()),
                    name,
                    c.labels.unwrap_or_default().into_iter().collect(),
                    state,
                )
            })
            .collect())
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %spec.name, image = %spec.image))]
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        let holder = ContainerSpec::new(spec.name, spec.image)
            .entrypoint(self.config.sandbox_command.clone())
            .labels(spec.labels)
            .init(true)
            .network(NetworkMode::Default);
        self.start(holder).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, volume = %spec.name))]
    async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
        volumes::create(&self.docker, &self.endpoint, spec).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, volume = %name))]
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        volumes::remove(&self.docker, &self.endpoint, name).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        volumes::list(&self.docker, &self.endpoint, labels).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_is_whole_seconds_rounded_up_and_saturating() {
        assert_eq!(grace_secs(Duration::ZERO), 0);
        assert_eq!(grace_secs(Duration::from_millis(1)), 1);
        assert_eq!(grace_secs(Duration::from_millis(10_001)), 11);
        assert_eq!(grace_secs(Duration::MAX), i32::MAX);
        assert_eq!(grace_secs(Duration::from_secs(u64::MAX)), i32::MAX);
    }

    #[test]
    fn the_stop_request_timeout_saturates() {
        let two_min = Duration::from_secs(120);
        assert_eq!(stop_request_timeout(two_min, 10), Duration::from_secs(135));
        assert_eq!(stop_request_timeout(Duration::MAX, i32::MAX), Duration::MAX);
    }
}
