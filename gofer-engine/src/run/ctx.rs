//! What the runs of an engine share ([`Shared`]) and what the tasks of one run share
//! ([`RunCtx`]).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use secrecy::SecretString;
use tokio::sync::Semaphore;

use gofer_core::{BoxError, ContainerId, DynObjectStore, DynSecretStore, Pipeline, RunOptions};

use crate::durable::clock::Clock;
use crate::durable::durability::Durability;
use crate::durable::plan::Resume;
use crate::durable::recorder::Recorder;
use crate::logs::pipe::Writers;
use crate::logs::redact::SecretRegistry;
use crate::logs::sink::LogSink;
use crate::run::admission::Admission;
use crate::run::container::Containers;
use crate::run::handle::RunHandle;
use crate::run::limits::Limits;
use crate::run::pump::Output;
use crate::run::resolve::Placeholders;
use crate::run::secrets::RunSecrets;
use crate::run::service_state::Services;
use crate::run::stop::{StopSignal, StopWatch, TaskStops};
use gofer_core::TokenIssuer;

/// Everything an engine's runs share; built once by the engine builder.
pub(crate) struct Shared {
    /// What starts, stops and removes containers.
    pub(crate) containers: Containers,
    pub(crate) secrets: Arc<DynSecretStore>,
    pub(crate) objects: Arc<DynObjectStore>,
    pub(crate) sink: Arc<dyn LogSink>,
    /// Where the runs register their secret values for the host's own logs.
    pub(crate) registry: Option<SecretRegistry>,
    /// The log writer threads still running (a simulated crash waits for them).
    pub(crate) log_writers: Writers,
    pub(crate) tokens: Option<Arc<dyn TokenIssuer>>,
    pub(crate) limits: Limits,
    pub(crate) instance_id: String,
    pub(crate) sandbox_image: Option<String>,
    /// Task containers running at once, when capped.
    pub(crate) container_slots: Option<Arc<Semaphore>>,
    /// The cache settings, and the entries being restored from.
    pub(crate) caches: crate::run::caches::CacheState,
    /// The concurrency groups of every run of this engine.
    pub(crate) groups: Arc<crate::run::concurrency::Groups>,
    /// Run numbers and each pipeline's parallelism.
    pub(crate) admission: Admission,
    pub(crate) durable: Option<Durability>,
    pub(crate) clock: Clock,
    /// Whether a task whose log is incomplete ends Failed.
    pub(crate) fail_on_incomplete_log: bool,
    /// The runs in progress, by pipeline and run number ([`Engine::run`](crate::Engine::run)).
    pub(crate) live: Mutex<HashMap<(String, u64), RunHandle>>,
    /// The host directory whose `api.sock` serves the API to tasks that ask for a token.
    pub(crate) api_socket_dir: Option<PathBuf>,
}

/// Why the run's API token could not be issued (shared by every task asking for it).
pub(crate) type TokenFailure = Arc<BoxError>;

/// What a run is, fixed when it starts (or is resumed): only read afterwards.
pub(crate) struct RunPlan {
    pub(crate) pipeline: Pipeline,
    pub(crate) run_id: u64,
    pub(crate) options: RunOptions,
    /// Every placeholder of the run's variables, parsed once.
    pub(crate) placeholders: Placeholders,
    /// How each task goes on, for a run resumed by recovery (empty otherwise).
    pub(crate) resume: Vec<Resume>,
    /// Resumed by recovery: containers already under a task's name are adopted.
    pub(crate) recovered: bool,
}

/// What the runner prepares for the tasks before any of them starts (the token, the
/// sandbox, the workspace, the services' states): set once, then only read.
#[derive(Default)]
pub(crate) struct RunSetup {
    /// The run's API token: `None` when none was asked for, `Err` when issuing failed.
    pub(crate) token: Option<Result<SecretString, TokenFailure>>,
    /// The run's network sandbox.
    pub(crate) sandbox: Option<ContainerId>,
    /// The run's workspace volume, when the pipeline has one.
    pub(crate) workspace: Option<String>,
    /// The run's services, as the tasks needing them see them.
    pub(crate) services: Services,
}

/// How the run, and each of its tasks, is asked to stop.
pub(crate) struct RunStops {
    /// The run's (`RunHandle::cancel`, the run timeout).
    pub(crate) run: Arc<StopSignal>,
    /// Each task's own (`RunHandle::cancel_task`).
    pub(crate) tasks: Arc<TaskStops>,
}

/// What the tasks of one run share, in parts a reader can tell apart: the engine's
/// shared state, the run's plan (read only), what the runner set up (read only once
/// tasks run), its stops, its record (every change goes through the recorder) and the
/// secret values it has seen (tasks only add to them).
pub(crate) struct RunCtx {
    pub(crate) engine: Arc<Shared>,
    pub(crate) plan: RunPlan,
    pub(crate) setup: RunSetup,
    pub(crate) stops: RunStops,
    pub(crate) recorder: Arc<Recorder>,
    /// Every secret value the run has seen, for its log masker.
    pub(crate) secrets: RunSecrets,
}

impl RunCtx {
    pub(crate) fn new(
        engine: Arc<Shared>,
        pipeline: Pipeline,
        run_id: u64,
        options: RunOptions,
        recorder: Arc<Recorder>,
    ) -> Self {
        Self {
            stops: RunStops {
                run: Arc::new(StopSignal::new()),
                tasks: Arc::new(TaskStops::new(pipeline.tasks.len())),
            },
            plan: RunPlan {
                placeholders: Placeholders::parse(&pipeline, &options),
                pipeline,
                run_id,
                options,
                resume: Vec::new(),
                recovered: false,
            },
            secrets: RunSecrets::new(engine.registry.as_ref().map(|r| r.register([]))),
            engine,
            setup: RunSetup::default(),
            recorder,
        }
    }

    /// Task `idx`'s view of the stops: the run's and its own.
    pub(crate) fn task_stop(&self, idx: usize) -> StopWatch {
        match self.stops.tasks.signal(idx) {
            Some(own) => self.stops.run.subscribe_with(own),
            None => self.stops.run.subscribe(),
        }
    }

    /// A plain value (no placeholder: a secret never names a group or a cache) of the
    /// run's variable `key`: the last `--var`-style run variable of that key, or
    /// `GOFER_PIPELINE_ID`.
    pub(crate) fn plain_run_variable(&self, key: &str) -> Option<String> {
        self.plan
            .options
            .variable_list()
            .iter()
            .rev()
            .find(|(k, v)| k == key && is_plain(v))
            .map(|(_, v)| v.clone())
            .or_else(|| (key == "GOFER_PIPELINE_ID").then(|| self.plan.pipeline.id.clone()))
    }

    /// What the run's log pumps read from and write to.
    pub(crate) fn output(&self) -> Output<'_> {
        Output {
            containers: &self.engine.containers,
            sink: &self.engine.sink,
            clock: self.engine.clock,
            secrets: &self.secrets,
            writers: &self.engine.log_writers,
            metrics: &self.recorder.metrics,
        }
    }
}

/// Whether a variable's value is plain text (no store placeholder).
pub(crate) fn is_plain(value: &str) -> bool {
    matches!(gofer_core::parse_placeholder(value), Ok(None))
}
