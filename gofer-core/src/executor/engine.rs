//! The [`Engine`]: what a host builds once and starts runs on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{oneshot, Semaphore};

use crate::id::{validate_id, IdError};
use crate::interpolate::{parse_placeholder, PlaceholderError};
use crate::pipeline::Pipeline;
use crate::scheduler::DynScheduler;
use crate::store::{DynObjectStore, DynSecretStore, InMemoryObjectStore, InMemorySecretStore};
use crate::validate::ValidationErrors;
use crate::variable::is_valid_env_key;

use super::file_sink::FileLogSink;
use super::handle::RunHandle;
use super::logs::LogSink;
use super::model::{Run, RunState, RunStatus, TaskExecution};
use super::recorder::Recorder;
use super::run::{execute_run, RunCtx};
use super::token::TokenIssuer;

/// Engine-wide limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Most task containers running at once across all runs; 0 is unlimited (the
    /// default).
    pub max_running_containers: usize,
    /// Grace period between SIGTERM and kill when a task or run times out (default
    /// 10 s). [`RunHandle::cancel`] takes its own.
    pub stop_grace: Duration,
    /// Default run timeout; [`RunOptions::timeout`] overrides it. `None` (the default)
    /// is no limit.
    pub run_timeout: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_running_containers: 0,
            stop_grace: Duration::from_secs(10),
            run_timeout: None,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_running_containers`].
    #[must_use]
    pub fn max_running_containers(mut self, n: usize) -> Self {
        self.max_running_containers = n;
        self
    }

    /// Sets [`Limits::stop_grace`].
    #[must_use]
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// Sets [`Limits::run_timeout`].
    #[must_use]
    pub fn run_timeout(mut self, timeout: Duration) -> Self {
        self.run_timeout = Some(timeout);
        self
    }
}

/// Options of one run: variables of source
/// [`RunOptions`](crate::VariableSource::RunOptions) and a timeout.
///
/// Values may be store placeholders (`secret{{key}}`, `run_object{{key}}`, ...); they
/// are substituted like the task's own variables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunOptions {
    pub(crate) variables: Vec<(String, String)>,
    pub(crate) timeout: Option<Duration>,
}

impl RunOptions {
    /// No variables, the engine's default timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a variable (a later one with the same key wins).
    #[must_use]
    pub fn variable(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.variables.push((key.into(), value.into()));
        self
    }

    /// Adds many variables.
    #[must_use]
    pub fn variables<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.variables
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Fails the run (status Failed, reason Timeout) when it runs longer than this,
    /// counted from when it leaves Pending.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Why a run could not be started, or could not be followed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The pipeline is invalid; nothing was started.
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// A run-option variable is invalid; nothing was started.
    #[error("run option variable {key:?}: {message}")]
    InvalidVariable {
        /// The key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A zero run timeout; nothing was started.
    #[error("run option `timeout` must be greater than zero")]
    ZeroTimeout,
    /// `start_run` was called outside a Tokio runtime.
    #[error("start_run must be called from within a Tokio runtime")]
    NoRuntime,
    /// No task with this id in the run.
    #[error("run {run} of pipeline {pipeline:?} has no task {task:?}")]
    UnknownTask {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The task asked for.
        task: String,
    },
    /// The executor stopped before the run completed (a panic, or the runtime shut
    /// down); its containers carry labels so they can be found and removed.
    #[error("run {run} of pipeline {pipeline:?} was aborted before it completed")]
    Aborted {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
    },
}

/// Why an engine could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The engine instance id is not a valid id.
    #[error("engine instance id {id:?}: {source}")]
    InvalidInstanceId {
        /// The id given.
        id: String,
        /// The rule that failed.
        source: IdError,
    },
    /// The network sandbox image is empty.
    #[error("network sandbox image must not be empty")]
    EmptySandboxImage,
    /// A network sandbox was asked for but the scheduler has no such capability.
    #[error("scheduler {scheduler} does not support network sandboxes")]
    SandboxNotSupported {
        /// The scheduler's name.
        scheduler: &'static str,
    },
}

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
        }
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

    /// The log sink (default: a [`FileLogSink`] under
    /// `<temp dir>/gofer-logs/<instance id>`).
    pub fn log_sink(mut self, sink: Arc<dyn LogSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// The issuer of per-run API tokens (default: none, so no `GOFER_API_TOKEN`).
    pub fn token_issuer(mut self, issuer: Arc<dyn TokenIssuer>) -> Self {
        self.tokens = Some(issuer);
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
    /// [`Capabilities::network_sandbox`](crate::Capabilities) (checked by
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
        let sink = self.sink.unwrap_or_else(|| {
            Arc::new(FileLogSink::new(
                std::env::temp_dir()
                    .join("gofer-logs")
                    .join(&self.instance_id),
            ))
        });
        let containers = (self.limits.max_running_containers > 0)
            .then(|| Arc::new(Semaphore::new(self.limits.max_running_containers)));
        Ok(Engine {
            inner: Arc::new(EngineInner {
                scheduler: self.scheduler,
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
                containers,
                pipelines: Mutex::new(HashMap::new()),
            }),
        })
    }
}

#[derive(Default)]
struct PipelineSlots {
    next_run: u64,
    running: u32,
    queue: VecDeque<oneshot::Sender<()>>,
}

pub(crate) struct EngineInner {
    pub(crate) scheduler: Arc<DynScheduler>,
    pub(crate) secrets: Arc<DynSecretStore>,
    pub(crate) objects: Arc<DynObjectStore>,
    pub(crate) sink: Arc<dyn LogSink>,
    pub(crate) tokens: Option<Arc<dyn TokenIssuer>>,
    pub(crate) limits: Limits,
    pub(crate) instance_id: String,
    pub(crate) sandbox_image: Option<String>,
    pub(crate) containers: Option<Arc<Semaphore>>,
    pipelines: Mutex<HashMap<String, PipelineSlots>>,
}

impl EngineInner {
    fn pipelines(&self) -> MutexGuard<'_, HashMap<String, PipelineSlots>> {
        self.pipelines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives a finished run's slot to the oldest waiting run, or frees it.
    pub(crate) fn release_slot(&self, pipeline: &str) {
        let mut map = self.pipelines();
        let Some(slots) = map.get_mut(pipeline) else {
            return;
        };
        while let Some(next) = slots.queue.pop_front() {
            if next.send(()).is_ok() {
                return;
            }
        }
        slots.running = slots.running.saturating_sub(1);
    }
}

/// A pipeline-parallelism slot held by a running run; freed on drop.
pub(crate) struct SlotPermit {
    engine: Option<Arc<EngineInner>>,
    pipeline: String,
}

impl SlotPermit {
    pub(crate) fn new(engine: Option<Arc<EngineInner>>, pipeline: String) -> Self {
        Self { engine, pipeline }
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if let Some(e) = self.engine.take() {
            e.release_slot(&self.pipeline);
        }
    }
}

/// How a new run gets its pipeline slot.
pub(crate) enum SlotWait {
    /// Unlimited parallelism.
    Free,
    /// A slot was free.
    Granted,
    /// Queued; the sender fires when a slot is handed over.
    Queued(oneshot::Receiver<()>),
}

/// The embeddable engine: starts runs of pipelines on a scheduler.
///
/// Cheap to clone; clones share everything. Runs execute on tasks spawned on the Tokio
/// runtime, owned by the engine, not by the caller: dropping a [`RunHandle`] (or the
/// future that holds it) does not stop a run; it goes on to completion and cleans up
/// its containers. Only [`RunHandle::cancel`] (or a timeout) stops a run early.
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<EngineInner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("instance_id", &self.inner.instance_id)
            .field("scheduler", &self.inner.scheduler.name())
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

    /// Validates the pipeline and the options, gives the run the pipeline's next run
    /// number (1, 2, 3, ...) and starts it in the background.
    ///
    /// The run waits in [`RunState::Pending`] while the pipeline already has
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
        pipeline.validate()?;
        for (key, value) in &options.variables {
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
        if options.timeout == Some(Duration::ZERO) {
            return Err(RunError::ZeroTimeout);
        }
        let rt = tokio::runtime::Handle::try_current().map_err(|_| RunError::NoRuntime)?;

        let (run_id, wait) = {
            let mut map = self.inner.pipelines();
            let slots = map.entry(pipeline.id.clone()).or_default();
            slots.next_run += 1;
            let wait = if pipeline.parallelism == 0 {
                SlotWait::Free
            } else if slots.running < pipeline.parallelism {
                slots.running += 1;
                SlotWait::Granted
            } else {
                let (tx, rx) = oneshot::channel();
                slots.queue.push_back(tx);
                SlotWait::Queued(rx)
            };
            (slots.next_run, wait)
        };

        let run = Run {
            pipeline_id: pipeline.id.clone(),
            run_id,
            state: RunState::Pending,
            status: RunStatus::Unknown,
            reason: None,
            message: None,
            started: None,
            ended: None,
            tasks: pipeline
                .tasks
                .iter()
                .map(|t| TaskExecution::new(&t.id, &t.image))
                .collect(),
        };
        let recorder = Arc::new(Recorder::new(run));
        let ctx = RunCtx::new(
            self.inner.clone(),
            pipeline.clone(),
            run_id,
            options,
            recorder.clone(),
        );
        rt.spawn(execute_run(ctx, wait));
        Ok(RunHandle::new(
            pipeline.id.clone(),
            run_id,
            recorder,
            self.inner.sink.clone(),
        ))
    }
}
