//! The [`Engine`]: what a host builds once and starts runs on.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;

use gofer_core::{
    is_valid_env_key, parse_placeholder, validate_id, DynObjectStore, DynScheduler, DynSecretStore,
    InMemoryObjectStore, InMemorySecretStore, Pipeline, PlaceholderError, Run, RunOptions,
    TaskExecution,
};
use gofer_core::{DynRunStore, RunChange, RunSpec};

use crate::durable::clock::Clock;
use crate::durable::durability::Durability;
use crate::durable::journal::Journal;
use crate::durable::plan::RecoveryError;
use crate::durable::recorder::Recorder;
use crate::logs::file_sink::FileLogSink;
use crate::logs::pipe::Writers;
use crate::logs::redact::SecretRegistry;
use crate::logs::sink::LogSink;
use crate::run::admission::Admission;
use crate::run::caches::{CacheEntry, CachePolicy, CacheState, PruneReport};
use crate::run::container::Containers;
use crate::run::ctx::{RunCtx, Shared};
use crate::run::errors::{EngineError, RunError};
use crate::run::handle::RunHandle;
use crate::run::limits::Limits;
use crate::run::runner::launch;
use gofer_core::TokenIssuer;

/// Builds an [`Engine`].
#[derive(Debug)]
#[must_use]
pub struct EngineBuilder {
    scheduler: Arc<DynScheduler>,
    secrets: Option<Arc<DynSecretStore>>,
    objects: Option<Arc<DynObjectStore>>,
    sink: Option<Arc<dyn LogSink>>,
    tokens: Option<Arc<dyn TokenIssuer>>,
    limits: Limits,
    instance_id: String,
    sandbox_image: Option<String>,
    store: Option<Arc<DynRunStore>>,
    fail_on_incomplete_log: bool,
    api_socket_dir: Option<PathBuf>,
    registry: Option<SecretRegistry>,
    caches: CacheState,
}

/// The default engine instance id.
pub const DEFAULT_INSTANCE_ID: &str = "local";

impl EngineBuilder {
    /// A builder over a scheduler; every other part has a default.
    pub fn new(scheduler: Arc<DynScheduler>) -> Self {
        Self {
            scheduler,
            secrets: None,
            objects: None,
            sink: None,
            tokens: None,
            limits: Limits::default(),
            instance_id: DEFAULT_INSTANCE_ID.to_string(),
            sandbox_image: None,
            store: None,
            fail_on_incomplete_log: true,
            api_socket_dir: None,
            registry: None,
            caches: CacheState::default(),
        }
    }

    /// The run store that keeps run history durably (default: none, nothing survives
    /// the process). With a store, every change of a run is written to it, and a
    /// task's container name before the container is started; call
    /// [`Engine::recover`] once the engine is built to resume unfinished runs.
    pub fn run_store(mut self, store: Arc<DynRunStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The secret store (default: an empty [`InMemorySecretStore`]).
    pub fn secret_store(mut self, store: Arc<DynSecretStore>) -> Self {
        self.secrets = Some(store);
        self
    }

    /// The object store (default: an empty [`InMemoryObjectStore`]).
    pub fn object_store(mut self, store: Arc<DynObjectStore>) -> Self {
        self.objects = Some(store);
        self
    }

    /// The log sink (default: a [`FileLogSink`] in a directory of its own,
    /// [`FileLogSink::unique_under`]`(<temp dir>/gofer-logs, <instance id>)`, so a new
    /// engine never overwrites an earlier one's logs; [`Engine::log_sink`] tells
    /// where). Hosts that keep logs give a sink (or [`EngineBuilder::log_dir`]).
    pub fn log_sink(mut self, sink: Arc<dyn LogSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Keeps logs in files under `dir` ([`FileLogSink::new`]): one file per task
    /// execution, `<dir>/<pipeline>/<run>/<task>.log`. With a run store run numbers
    /// continue across engines, so no log is overwritten; without one, give each
    /// engine its own directory.
    pub fn log_dir(self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.log_sink(Arc::new(FileLogSink::new(dir)))
    }

    /// Whether a task whose container ended well but whose log could not be kept
    /// whole ends `Failed` with reason
    /// [`IncompleteLog`](gofer_core::StatusReason::IncompleteLog) (the default, `true`),
    /// or keeps its status. Either way the loss is recorded
    /// ([`TaskExecution::log_incomplete`], an
    /// [`Event::LogIncomplete`](gofer_core::Event::LogIncomplete), the run store, and
    /// [`RunHandle::logs`] ending with an error).
    ///
    /// The default fails the task: in CI a log is the evidence of what a step did
    /// (test reports, warnings, what was deployed); a green step whose evidence is
    /// partly missing cannot be trusted, and the engine already re-read what it
    /// could before giving up, so this is rare and worth a look.
    pub fn fail_on_incomplete_log(mut self, fail: bool) -> Self {
        self.fail_on_incomplete_log = fail;
        self
    }

    /// The issuer of per-run API tokens (default: none, so no `GOFER_API_TOKEN`).
    pub fn token_issuer(mut self, issuer: Arc<dyn TokenIssuer>) -> Self {
        self.tokens = Some(issuer);
        self
    }

    /// Makes the host's API reachable from tasks that ask for a token
    /// (`inject_api_token`): the host serves it on the Unix socket
    /// `<dir>/`[`API_SOCKET_NAME`](gofer_core::API_SOCKET_NAME) (for example with `gofer-api`), and each such task's
    /// container gets `dir` bind-mounted at [`API_MOUNT_DIR`](gofer_core::API_MOUNT_DIR) and the system variables
    /// `GOFER_API_SOCKET` (the socket's path in the container) and `GOFER_API_URL`
    /// (`unix://` and that path) beside `GOFER_API_TOKEN`.
    ///
    /// The directory is mounted rather than the socket file, so a host that restarts
    /// its server (a new socket file) is still reached. The scheduler must honour host
    /// bind mounts on the host the engine runs on
    /// ([`Capabilities::local_bind_mounts`](gofer_core::Capabilities)); for one that cannot
    /// (Docker Swarm: a task may run on another node) [`EngineBuilder::build`] fails
    /// with [`EngineError::ApiSocketNotSupported`].
    pub fn api_socket_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.api_socket_dir = Some(dir.into());
        self
    }

    /// Registers every secret value a run sees (substituted secrets, its API token,
    /// registry passwords) in `registry` while the run lives and for the registry's
    /// grace period after, so the host's own logs can be masked with it
    /// ([`SecretRegistry::make_writer`] under a `tracing_subscriber::fmt` layer).
    pub fn secret_registry(mut self, registry: SecretRegistry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Makes cache entries ([`gofer_core::cache`]) shared by every pipeline of this
    /// engine's backend instead of kept per pipeline (the default): a task then
    /// restores any pipeline's entry of its key. Only for hosts whose pipelines trust
    /// each other: a cache is code another pipeline's tasks run with.
    pub fn share_caches(mut self, shared: bool) -> Self {
        self.caches.shared = shared;
        self
    }

    /// The image cache helpers run (default: each task's own image), for tasks whose
    /// images have no `sh`, `cp`, `du` and `sha256sum` (distroless ones).
    pub fn cache_helper_image(mut self, image: impl Into<String>) -> Self {
        self.caches.helper_image = Some(image.into());
        self
    }

    /// Evicts cache entries by `policy` after every save (default: only entries a
    /// newer one of their key replaced go, and only on [`Engine::prune_caches`]).
    pub fn cache_policy(mut self, policy: CachePolicy) -> Self {
        self.caches.policy = Some(policy);
        self
    }

    /// Engine-wide limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// This engine's instance id (default [`DEFAULT_INSTANCE_ID`]), used in container
    /// names and labels. Hosts sharing one container engine need distinct ids.
    pub fn instance_id(mut self, id: impl Into<String>) -> Self {
        self.instance_id = id.into();
        self
    }

    /// Gives every run its own network sandbox: a holder container from `image`,
    /// created when the run starts and removed when it ends, whose network every task
    /// container of the run joins. The scheduler must support
    /// [`Capabilities::network_sandbox`](gofer_core::Capabilities) (checked by
    /// [`EngineBuilder::build`]); if creating a run's sandbox fails, the run's tasks
    /// fail with reason `SchedulerError` and no task container is created.
    pub fn network_sandbox(mut self, image: impl Into<String>) -> Self {
        self.sandbox_image = Some(image.into());
        self
    }

    /// Builds the engine.
    ///
    /// # Errors
    /// [`EngineError`] naming the bad setting.
    pub fn build(self) -> Result<Engine, EngineError> {
        validate_id(&self.instance_id).map_err(|source| EngineError::InvalidInstanceId {
            id: self.instance_id.clone(),
            source,
        })?;
        if let Some(image) = &self.sandbox_image {
            if image.is_empty() {
                return Err(EngineError::EmptySandboxImage);
            }
            if !self.scheduler.capabilities().network_sandbox {
                return Err(EngineError::SandboxNotSupported {
                    scheduler: self.scheduler.name(),
                });
            }
        }
        if self.api_socket_dir.is_some() && !self.scheduler.capabilities().local_bind_mounts {
            return Err(EngineError::ApiSocketNotSupported {
                scheduler: self.scheduler.name(),
            });
        }
        let sink = self.sink.unwrap_or_else(|| {
            Arc::new(FileLogSink::unique_under(
                std::env::temp_dir().join("gofer-logs"),
                &self.instance_id,
            ))
        });
        let container_slots = (self.limits.max_running_containers > 0).then(|| {
            Arc::new(Semaphore::new(
                self.limits
                    .max_running_containers
                    .min(Semaphore::MAX_PERMITS),
            ))
        });
        Ok(Engine {
            inner: Arc::new(Shared {
                containers: Containers::new(self.scheduler),
                secrets: self
                    .secrets
                    .unwrap_or_else(|| Arc::new(InMemorySecretStore::new())),
                objects: self
                    .objects
                    .unwrap_or_else(|| Arc::new(InMemoryObjectStore::new())),
                sink,
                tokens: self.tokens,
                limits: self.limits,
                instance_id: self.instance_id,
                sandbox_image: self.sandbox_image,
                container_slots,
                caches: self.caches,
                groups: Arc::new(crate::run::concurrency::Groups::new(self.store.clone())),
                log_writers: Writers::default(),
                admission: Admission::default(),
                durable: self.store.map(Durability::new),
                clock: Clock::new(),
                fail_on_incomplete_log: self.fail_on_incomplete_log,
                live: Mutex::new(HashMap::new()),
                // Mounts need an absolute host path.
                api_socket_dir: self
                    .api_socket_dir
                    .map(|d| std::path::absolute(&d).unwrap_or(d)),
                registry: self.registry,
            }),
        })
    }
}

/// Why [`EngineBuilder::build_and_recover`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is wrong.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// Recovery failed.
    #[error(transparent)]
    Recovery(#[from] RecoveryError),
}

/// The embeddable engine: starts runs of pipelines on a scheduler.
///
/// Cheap to clone; clones share everything. Runs execute on tasks spawned on the Tokio
/// runtime, owned by the engine, not by the caller: dropping a [`RunHandle`] (or the
/// future that holds it) does not stop a run; it goes on to completion and cleans up
/// its containers. Only [`RunHandle::cancel`] (or a timeout) stops a run early.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Shared>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instance_id", &self.inner.instance_id)
            .field("scheduler", &self.inner.containers.scheduler().name())
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// A builder over a scheduler.
    pub fn builder(scheduler: Arc<DynScheduler>) -> EngineBuilder {
        EngineBuilder::new(scheduler)
    }

    /// This engine's instance id.
    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// The log sink, to read logs of finished task executions.
    pub fn log_sink(&self) -> &Arc<dyn LogSink> {
        &self.inner.sink
    }

    /// The run `run` of `pipeline` while it is in progress (from [`Engine::start_run`]
    /// or resumed by recovery); `None` once it has ended or if it never existed.
    pub fn run(&self, pipeline: &str, run: u64) -> Option<RunHandle> {
        self.inner
            .live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(pipeline.to_string(), run))
            .cloned()
    }

    /// The object store the engine's runs read their `*_object{{key}}` placeholders from.
    pub fn object_store(&self) -> &Arc<DynObjectStore> {
        &self.inner.objects
    }

    /// The issuer of the runs' API tokens, if the engine has one.
    pub fn token_issuer(&self) -> Option<&Arc<dyn TokenIssuer>> {
        self.inner.tokens.as_ref()
    }

    /// The host directory whose [`API_SOCKET_NAME`](gofer_core::API_SOCKET_NAME) tasks reach the API on
    /// ([`EngineBuilder::api_socket_dir`]).
    pub fn api_socket_dir(&self) -> Option<&std::path::Path> {
        self.inner.api_socket_dir.as_deref()
    }

    /// How many containers whose removal failed (the engine could not be reached) are
    /// being retried in the background; each is retried with backoff until the engine
    /// answers again.
    pub fn pending_removals(&self) -> usize {
        self.inner.containers.pending_removals()
    }

    /// The cache entries on the backend ([`gofer_core::cache`]): of `pipeline`'s scope
    /// (its own, or the shared one when the engine shares caches), or every entry with
    /// `None`; newest saved first.
    ///
    /// # Errors
    /// The backend's, when it cannot list volumes.
    pub async fn caches(
        &self,
        pipeline: Option<&str>,
    ) -> Result<Vec<CacheEntry>, gofer_core::SchedulerError> {
        let scope = pipeline.map(|p| self.inner.caches.scope(p));
        crate::run::caches::list(self.inner.containers.scheduler(), scope.as_deref()).await
    }

    /// Evicts cache entries by `policy` (see [`CachePolicy`]): of `pipeline`'s scope,
    /// or of every scope with `None`. An entry being restored from is kept, and named
    /// in the report.
    ///
    /// # Errors
    /// The backend's, when it cannot list or remove volumes.
    pub async fn prune_caches(
        &self,
        policy: &CachePolicy,
        pipeline: Option<&str>,
    ) -> Result<PruneReport, gofer_core::SchedulerError> {
        let scope = pipeline.map(|p| self.inner.caches.scope(p));
        crate::run::caches::prune(
            self.inner.containers.scheduler(),
            &self.inner.caches,
            policy,
            scope.as_deref(),
        )
        .await
    }

    /// Validates the pipeline and the options, gives the run the pipeline's next run
    /// number (1, 2, 3, ...) and starts it in the background.
    ///
    /// The run waits in [`RunState::Pending`](gofer_core::RunState::Pending) while the pipeline already has
    /// `parallelism` runs in progress; waiting runs start in the order they were
    /// started.
    ///
    /// # Errors
    /// [`RunError::Invalid`], [`RunError::InvalidVariable`] or
    /// [`RunError::ZeroTimeout`] before anything starts; [`RunError::NoRuntime`]
    /// outside a Tokio runtime.
    pub fn start_run(
        &self,
        pipeline: &Pipeline,
        options: RunOptions,
    ) -> Result<RunHandle, RunError> {
        pipeline.validate_for(&self.inner.containers.scheduler().capabilities())?;
        // A matrix task runs as its combinations: the run (and its record) holds those.
        let expanded = pipeline.expanded();
        let pipeline = &expanded;
        for (key, value) in options.variable_list() {
            if !is_valid_env_key(key) {
                return Err(RunError::InvalidVariable {
                    key: key.clone(),
                    message: "not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)".into(),
                });
            }
            if let Err(e) = parse_placeholder(value) {
                return Err(RunError::InvalidVariable {
                    key: key.clone(),
                    message: PlaceholderError::to_string(&e),
                });
            }
        }
        if options.timeout_value() == Some(Duration::ZERO) {
            return Err(RunError::ZeroTimeout);
        }
        let rt = tokio::runtime::Handle::try_current().map_err(|_| RunError::NoRuntime)?;
        if self.inner.durable.as_ref().is_some_and(|d| !d.recovered()) {
            return Err(RunError::NotRecovered);
        }

        let (run_id, wait) = self.inner.admission.take(pipeline, true);

        let tasks = pipeline
            .tasks
            .iter()
            .map(|t| TaskExecution::new(&t.id, &t.image))
            .collect();
        let run = Run::pending(pipeline.id.clone(), run_id, tasks);
        let metrics =
            crate::metrics::RunMetrics::new(&pipeline.id, self.inner.containers.scheduler().name());
        let recorder = Arc::new(Recorder::new(run, self.inner.clock, metrics));
        if let Some(d) = &self.inner.durable {
            let spec = RunSpec::new(&self.inner.instance_id, pipeline, &options);
            let (journal, writer) = Journal::new(d.store.clone());
            let created = RunChange::Created {
                run: recorder.snapshot(),
                spec,
            };
            recorder.attach_journal(journal, created);
            rt.spawn(writer);
        }
        let ctx = RunCtx::new(
            self.inner.clone(),
            pipeline.clone(),
            run_id,
            options,
            recorder,
        );
        Ok(launch(&self.inner, &rt, ctx, wait))
    }
}
