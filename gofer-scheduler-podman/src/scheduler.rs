//! [`PodmanScheduler`]: the [`Scheduler`] trait over the libpod API.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use containers_api::conn::hyper::Method;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, NetworkMode, PullPolicy, SandboxSpec, Scheduler, SchedulerError, VolumeSpec,
    VolumeSummary,
};
use tracing::Instrument;

use crate::client::{encode, segment, Api, ApiError};
use crate::config::PodmanConfig;
use crate::conmon::StaticDirs;
use crate::create::{create_opts, with_log_driver};
use crate::guard::RemoveOnDrop;
use crate::inspect::{map_status, Inspect, ListEntry};
use crate::pull::pull;
use crate::NAME;

/// A [`Scheduler`] that runs containers on a Podman service through its libpod REST API.
///
/// Cheap to clone (clones share the connection settings). See the crate documentation
/// for what goes through podman-api and what through raw libpod calls, and for the
/// Podman versions it was tested with.
#[derive(Debug, Clone)]
pub struct PodmanScheduler {
    pub(crate) api: Api,
    pub(crate) config: PodmanConfig,
    version: Option<String>,
    attached: Attached,
    static_dirs: Arc<StaticDirs>,
}

/// Output streams attached before start and not taken by `logs` yet, by container id.
#[derive(Clone, Default)]
struct Attached(Arc<Mutex<HashMap<String, LogStream>>>);

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attached").finish_non_exhaustive()
    }
}

impl Attached {
    fn insert(&self, id: String, stream: LogStream) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, stream);
    }

    fn take(&self, id: &str) -> Option<LogStream> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }
}

/// The reduced `GET /libpod/version` answer.
#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
struct Version {
    version: String,
}

impl PodmanScheduler {
    /// A scheduler for the service `config` names. Does no I/O: the first call connects.
    pub fn new(config: PodmanConfig) -> Self {
        Self {
            api: Api::new(&config.socket, config.endpoint()),
            config,
            version: None,
            attached: Attached::default(),
            static_dirs: Arc::default(),
        }
    }

    /// A scheduler for the service `config` names, after checking that it answers.
    ///
    /// # Errors
    ///
    /// [`SchedulerError::Connection`] naming the socket when the service does not
    /// answer, [`SchedulerError::Engine`] when it answers something unexpected.
    #[tracing::instrument(skip_all, fields(scheduler = NAME, endpoint = %config.endpoint()))]
    pub async fn connect(config: PodmanConfig) -> Result<Self, SchedulerError> {
        let mut s = Self::new(config);
        let v: Version = s
            .api
            .get_json("/version")
            .await
            .map_err(|e| e.into_scheduler("version", &s.api.endpoint))?;
        tracing::debug!(version = %v.version, "connected to podman");
        s.version = Some(v.version);
        Ok(s)
    }

    /// [`PodmanScheduler::connect`] to the service the environment points at (see
    /// [`PodmanConfig::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`PodmanConfig::from_env`] and [`PodmanScheduler::connect`].
    pub async fn connect_default() -> Result<Self, SchedulerError> {
        Self::connect(PodmanConfig::from_env()?).await
    }

    /// The Podman version the service reported on [`PodmanScheduler::connect`].
    pub fn server_version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The configuration.
    pub fn config(&self) -> &PodmanConfig {
        &self.config
    }

    /// The reduced inspect answer of a container.
    pub(crate) async fn inspect(&self, id: &str) -> Result<Inspect, ApiError> {
        self.api
            .get_json(&format!("/containers/{}/json", segment(id)))
            .await
    }

    /// One create request. While it is in flight the guard targets the container by
    /// name (its id is not known yet); a failed create made nothing, so the guard is
    /// disarmed (a name conflict is someone else's container). The request body is
    /// podman-api's; the answer is read here, tolerating any shape with an `Id`.
    #[tracing::instrument(name = "create", skip_all)]
    async fn create(
        &self,
        spec: &ContainerSpec,
        body: &[u8],
        guard: &mut RemoveOnDrop,
    ) -> Result<String, SchedulerError> {
        #[derive(serde::Deserialize)]
        struct Created {
            #[serde(rename = "Id")]
            id: String,
        }
        guard.set_target(spec.name.clone());
        let created = self
            .api
            .call(Method::POST, "/containers/create", Some(body.to_vec()))
            .await
            .and_then(|b| {
                serde_json::from_slice::<Created>(&b).map_err(|e| ApiError::Other(Box::new(e)))
            });
        match created {
            Ok(c) => Ok(c.id),
            // The service refused, or was not reached: nothing was made.
            Err(e @ (ApiError::Status { .. } | ApiError::Connect(_))) => {
                guard.disarm();
                Err(create_error(spec, e, &self.api.endpoint))
            }
            // The answer was lost or unreadable: the container may exist.
            Err(e) => {
                guard.remove_now().await;
                Err(create_error(spec, e, &self.api.endpoint))
            }
        }
    }

    /// Creates and starts in a task of its own, so that a caller who stops waiting
    /// (drops the future) cannot cut a request short: the service would finish a create
    /// the client no longer hears about. When the caller is gone by the time the task
    /// is done, the task removes the container it made.
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

    /// Attaches to a created container before it starts, so that its first `logs`
    /// gets the live output from the first byte. An attach that fails is not fatal:
    /// `logs` then reads the container's log, which has every byte too.
    async fn attach_before_start(&self, id: &str) -> Option<LogStream> {
        if self.config.conmon_attach {
            match self.attach_to_conmon(id).await {
                Ok(stream) => return Some(stream),
                Err(e) => {
                    tracing::debug!(container = %id, error = %e, "cannot read conmon's attach socket; attaching through the service");
                }
            }
        }
        match crate::logs::attach(&self.api, id).await {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::debug!(container = %id, error = %e, "cannot attach; logs will be read from the container's log");
                None
            }
        }
    }

    /// Initialises container `id` (conmon then serves its attach socket) and connects
    /// to the socket. The socket's directory is guessed from an earlier container's,
    /// and asked for when the guess does not hold.
    async fn attach_to_conmon(&self, id: &str) -> Result<LogStream, String> {
        match self
            .api
            .post(&format!("/containers/{}/init", segment(id)))
            .await
        {
            // 304: already initialised.
            Err(e) if e.status() != Some(304) => return Err(format!("init: {e}")),
            _ => {}
        }
        let guessed = self
            .static_dirs
            .guess(id)
            .and_then(|dir| crate::conmon::connect(&dir).ok());
        let socket = match guessed {
            Some(socket) => socket,
            None => {
                let inspect = self
                    .inspect(id)
                    .await
                    .map_err(|e| format!("inspect: {e}"))?;
                let dir = std::path::PathBuf::from(inspect.static_dir);
                let socket = crate::conmon::connect(&dir)
                    .map_err(|e| format!("connect in {}: {e}", dir.display()))?;
                self.static_dirs.learn(id, &dir);
                socket
            }
        };
        crate::conmon::stream(socket, id).map_err(|e| e.to_string())
    }

    async fn create_and_start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        let invalid = |message: String| SchedulerError::InvalidRequest {
            scheduler: NAME,
            field: "spec",
            message,
        };
        let mut body = create_opts(&spec)?
            .serialize_vec()
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(driver) = &self.config.log_driver {
            body = with_log_driver(&body, driver).map_err(|e| invalid(e.to_string()))?;
        }
        let pull = || {
            pull(
                &self.api,
                &spec.image,
                spec.registry_auth.as_ref(),
                spec.pull_progress.as_ref(),
            )
        };
        // Until the container is started, dropping this future (or failing) removes
        // what was made.
        let mut guard = RemoveOnDrop::new(self.api.clone());
        let created = match spec.pull_policy {
            PullPolicy::Always => {
                pull().await?;
                self.create(&spec, &body, &mut guard).await?
            }
            // The create itself tells whether the image is present: no extra round trip
            // in the common case, and no registry contact when it is.
            policy => match self.create(&spec, &body, &mut guard).await {
                Err(SchedulerError::NoSuchImage { .. }) if policy != PullPolicy::Never => {
                    pull().await?;
                    self.create(&spec, &body, &mut guard).await?
                }
                Err(SchedulerError::NoSuchImage { image, message, .. }) => {
                    return Err(SchedulerError::NoSuchImage {
                        scheduler: NAME,
                        image,
                        message: format!("{message} (pull policy Never)"),
                    })
                }
                other => other?,
            },
        };
        guard.set_target(created.clone());
        tracing::debug!(container = %created, "created");
        let attached = if spec.attach_output {
            self.attach_before_start(&created).await
        } else {
            None
        };

        if let Err(e) = self
            .api
            .podman
            .containers()
            .get(created.as_str())
            .start(None)
            .await
        {
            let e = ApiError::from(e);
            guard.remove_now().await;
            return Err(match e {
                ApiError::Status { message, .. } => SchedulerError::engine(
                    NAME,
                    "start",
                    format!("container {:?} did not start: {message}", spec.name),
                ),
                other => other.into_scheduler("start", &self.api.endpoint),
            });
        }
        guard.disarm();
        if let Some(stream) = attached {
            self.attached.insert(created.clone(), stream);
        }
        Ok(ContainerId(created))
    }
}

/// Maps a failed create: name in use → `Conflict`; unknown image → `NoSuchImage`;
/// unknown sandbox → `NoSuchContainer` naming the sandbox.
fn create_error(spec: &ContainerSpec, e: ApiError, endpoint: &str) -> SchedulerError {
    if e.says("already in use") || e.says("already exists") {
        return SchedulerError::Conflict {
            scheduler: NAME,
            id: spec.name.clone(),
            message: "a container with this name already exists".into(),
        };
    }
    if e.says("image not known") || e.says("no such image") {
        return SchedulerError::NoSuchImage {
            scheduler: NAME,
            image: spec.image.clone(),
            message: e.to_string(),
        };
    }
    if let NetworkMode::Sandbox(id) = &spec.network {
        if e.says("no such container") || e.status() == Some(404) {
            return SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: id.0.clone(),
            };
        }
    }
    match e {
        ApiError::Status { message, .. } => SchedulerError::engine(
            NAME,
            "create",
            format!("container {:?}: {message}", spec.name),
        ),
        other => other.into_scheduler("create", endpoint),
    }
}

/// How many wait requests [`Scheduler::wait`] makes before giving up on a container
/// that the service says has ended but whose state is not `exited`.
const WAIT_ROUNDS: usize = 20;

/// The wait request: answered once the container is `exited` or `stopped` (two
/// conditions, so that libpod checks the state itself rather than answering as soon as
/// the container stops running, which includes `stopping`).
pub(crate) fn wait_path(id: &str, interval: Duration) -> String {
    format!(
        "/containers/{}/wait?condition=exited&condition=stopped&interval={}",
        segment(id),
        go_duration(interval)
    )
}

/// libpod's `interval` parameter: a Go duration, at least a millisecond and at most
/// Go's largest duration (`i64::MAX` nanoseconds, about 292 years), so a huge
/// interval is a valid request rather than a parse error in the service.
fn go_duration(d: Duration) -> String {
    const GO_MAX_MS: u128 = i64::MAX as u128 / 1_000_000;
    format!("{}ms", d.as_millis().clamp(1, GO_MAX_MS))
}

/// The stop grace in libpod's unit, whole seconds: rounded up (a grace is never cut
/// short) and saturating at `i32::MAX` seconds (about 68 years). libpod multiplies
/// it by a second in a Go `time.Duration` (`i64` nanoseconds), which a larger value
/// would overflow into a negative timeout; so any [`Duration`], `Duration::MAX`
/// included, is a valid request.
pub(crate) fn grace_secs(grace: Duration) -> u64 {
    grace
        .as_secs()
        .saturating_add(u64::from(grace.subsec_nanos() > 0))
        .min(i32::MAX as u64)
}

#[async_trait]
impl Scheduler for PodmanScheduler {
    fn name(&self) -> &'static str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::none()
            .with_memory_limit(true)
            .with_cpu_limit(true)
            .with_network_sandbox(true)
            .with_registry_auth(true)
            .with_mounts(true)
            .with_local_bind_mounts(true)
            .with_volumes(true)
            .with_per_stop_grace(true)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, name = %spec.name, image = %spec.image))]
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        self.start_detached(spec).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        // A wait request is answered when the container has ended; the exit code and
        // the OOM flag are then read from an inspect. Libpod can answer a little early
        // (while a stop is still in progress), so a container that is not exited yet is
        // waited on again; each round is one event-driven request, not a poll.
        for _ in 0..WAIT_ROUNDS {
            match self
                .api
                .post(&wait_path(&id.0, self.config.wait_interval))
                .await
            {
                Ok(_) => {}
                Err(e) if e.status() == Some(404) => {
                    return Err(e.for_container("wait", &self.api.endpoint, &id.0))
                }
                Err(ApiError::Connect(source)) => {
                    return Err(ApiError::Connect(source).into_scheduler("wait", &self.api.endpoint))
                }
                // The container went away under the wait, or the service failed: the
                // inspect tells which.
                Err(e) => tracing::debug!(error = %e, "wait ended without an answer"),
            }
            match self.inspect(&id.0).await {
                Ok(i) => match i.state.to_state(&id.0)? {
                    ContainerState::Exited { status } => return Ok(status),
                    other => tracing::debug!(state = ?other, "not exited yet; waiting again"),
                },
                Err(e) if e.is_gone() => return Ok(ExitStatus::Removed),
                Err(e) => return Err(e.for_container("wait", &self.api.endpoint, &id.0)),
            }
        }
        Err(SchedulerError::engine(
            NAME,
            "wait",
            format!("container {id} did not reach an exited state after {WAIT_ROUNDS} waits"),
        ))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        let i = self
            .inspect(&id.0)
            .await
            .map_err(|e| e.for_container("inspect", &self.api.endpoint, &id.0))?;
        i.state.to_state(&id.0)
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        // Only a container never started is started: libpod would run an exited one
        // again.
        if self.state(id).await? != ContainerState::Created {
            return Ok(());
        }
        if let Err(e) = self
            .api
            .podman
            .containers()
            .get(id.0.as_str())
            .start(None)
            .await
        {
            let e = ApiError::from(e);
            // A start still in flight may have won the race.
            if self.state(id).await? != ContainerState::Created {
                return Ok(());
            }
            return Err(e.for_container("start", &self.api.endpoint, &id.0));
        }
        tracing::debug!(container = %id, "started a container left created");
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id))]
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        // The first read after a start: the stream attached before it.
        if let Some(stream) = self.attached.take(&id.0) {
            return Ok(stream);
        }
        // Fail now, not in the stream, for an unknown container.
        let i = self
            .inspect(&id.0)
            .await
            .map_err(|e| e.for_container("logs", &self.api.endpoint, &id.0))?;
        let running = !matches!(i.state.to_state(&id.0)?, ContainerState::Exited { .. });
        Ok(crate::logs::stream(
            &self.api,
            &id.0,
            running,
            wait_path(&id.0, self.config.wait_interval),
            self.config.log_buffer,
        ))
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, grace_ms = u64::try_from(grace.as_millis()).unwrap_or(u64::MAX)))]
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        let secs = grace_secs(grace);
        let path = format!("/containers/{}/stop?timeout={secs}", segment(&id.0));
        match self.api.post(&path).await {
            Ok(_) => Ok(()),
            // 304: already stopped.
            Err(e) if e.status() == Some(304) => Ok(()),
            Err(e) => Err(e.for_container("stop", &self.api.endpoint, &id.0)),
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, container = %id, force))]
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        // With force: kill at once (timeout=0) and take along containers that joined
        // this one's network namespace (depend), so a sandbox holder always goes.
        let path = if force {
            format!(
                "/containers/{}?force=true&depend=true&timeout=0",
                segment(&id.0)
            )
        } else {
            format!("/containers/{}", segment(&id.0))
        };
        // Detach first: conmon may be waiting for the attached reader to take the
        // container's last output before the container can end.
        drop(self.attached.take(&id.0));
        match self.api.delete(&path).await {
            Ok(_) => Ok(()),
            Err(e) if e.says("state improper") || e.says("dependent containers") => {
                Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: id.0.clone(),
                    message: format!("cannot remove without force: {e}"),
                })
            }
            Err(e) => Err(e.for_container("remove", &self.api.endpoint, &id.0)),
        }
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, labels = ?labels))]
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let mut path = "/containers/json?all=true".to_string();
        if !labels.is_empty() {
            let filter: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let filters = serde_json::json!({ "label": filter }).to_string();
            path.push_str("&filters=");
            path.push_str(&encode(&filters));
        }
        let entries: Vec<ListEntry> = self
            .api
            .get_json(&path)
            .await
            .map_err(|e| e.into_scheduler("list", &self.api.endpoint))?;
        entries
            .into_iter()
            // The service filters already; this keeps the contract if it did not.
            .filter(|e| labels.iter().all(|(k, v)| e.labels.get(k) == Some(v)))
            .map(|e| {
                let code = e.exit_code;
                let state = map_status(&e.state, &e.id, || ExitStatus::Exited { code })?;
                let name = e.names.first().cloned().unwrap_or_default();
                Ok(ContainerSummary::new(
                    ContainerId(e.id),
                    name,
                    e.labels,
                    state,
                ))
            })
            .collect()
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, name = %spec.name, image = %spec.image))]
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.create_and_start(crate::sandbox::holder_spec(spec))
            .await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, volume = %spec.name))]
    async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
        crate::volumes::create(&self.api, spec).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME, volume = %name))]
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        crate::volumes::remove(&self.api, name).await
    }

    #[tracing::instrument(skip_all, fields(scheduler = NAME))]
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        crate::volumes::list(&self.api, labels).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_are_go_durations() {
        assert_eq!(go_duration(Duration::from_millis(25)), "25ms");
        assert_eq!(go_duration(Duration::ZERO), "1ms");
        assert_eq!(go_duration(Duration::MAX), "9223372036854ms");
    }

    #[test]
    fn grace_is_whole_seconds_rounded_up_and_saturating() {
        assert_eq!(grace_secs(Duration::ZERO), 0);
        assert_eq!(grace_secs(Duration::from_millis(1)), 1);
        assert_eq!(grace_secs(Duration::from_secs(10)), 10);
        assert_eq!(grace_secs(Duration::from_millis(10_001)), 11);
        assert_eq!(grace_secs(Duration::MAX), i32::MAX as u64);
        assert_eq!(grace_secs(Duration::from_secs(u64::MAX)), i32::MAX as u64);
    }

    #[test]
    fn declares_its_capabilities() {
        let s = PodmanScheduler::new(PodmanConfig::default());
        let c = s.capabilities();
        assert!(c.memory_limit && c.cpu_limit && c.network_sandbox && c.registry_auth);
        assert!(!c.exec && !c.attach);
        assert_eq!(s.name(), "podman");
    }
}
