//! What a [`RunStore`](super::RunStore) keeps: the run's specification, its changes,
//! its events and the details of each task execution.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::pipeline::Pipeline;
use crate::run::{Event, Run, RunHeader, RunOptions, TaskExecution};

/// What a run was started with, kept so that a restarted host can resume it.
///
/// Registry passwords are never stored: a task's `registry_auth` is removed from the
/// stored pipeline and its id listed in [`RunSpec::credentials_removed`]; to start such
/// a task after a restart the host registers the pipeline with the new engine again
/// (its credentials are then taken from there). A password that is a secret
/// placeholder is kept ([`RunSpec::registry_placeholders`]), so such a task needs no
/// registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunSpec {
    /// The engine instance that runs it.
    pub engine: String,
    /// The pipeline as it was when the run started (without registry passwords).
    pub pipeline: Pipeline,
    /// Run-option variables, in the order given (values may be store placeholders;
    /// they are never secret values themselves).
    pub variables: Vec<(String, String)>,
    /// The run's own timeout, when one was given.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Tasks whose registry credentials were removed before storing.
    #[serde(default)]
    pub credentials_removed: Vec<String>,
    /// Of those, the tasks whose registry password is a secret placeholder (see
    /// [`RegistryAuth::new`](crate::RegistryAuth::new)), kept because it is no secret:
    /// a resumed task gets its credentials from the secret store again.
    #[serde(default)]
    pub registry_placeholders: Vec<StoredRegistryAuth>,
}

/// A task's registry credentials whose password is a secret placeholder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredRegistryAuth {
    /// The task.
    pub task: String,
    /// The user name.
    pub username: String,
    /// The placeholder text (`secret{{key}}`, ...), never a password.
    pub password_placeholder: String,
}

impl RunSpec {
    /// The specification of a run of `pipeline` on engine `engine`.
    pub fn new(engine: impl Into<String>, pipeline: &Pipeline, options: &RunOptions) -> Self {
        let registry_placeholders = pipeline
            .tasks
            .iter()
            .filter_map(|t| {
                let auth = t.registry_auth.as_ref()?;
                auth.password_placeholder()?;
                Some(StoredRegistryAuth {
                    task: t.id.clone(),
                    username: auth.username.clone(),
                    password_placeholder: auth.password.expose_secret().to_string(),
                })
            })
            .collect();
        let (pipeline, credentials_removed) = without_credentials(pipeline);
        Self {
            engine: engine.into(),
            pipeline,
            variables: options.variables.clone(),
            timeout: options.timeout,
            credentials_removed,
            registry_placeholders,
        }
    }

    /// The run options the run was started with.
    pub fn options(&self) -> RunOptions {
        RunOptions {
            variables: self.variables.clone(),
            timeout: self.timeout,
        }
    }
}

/// A copy of `pipeline` without registry credentials, and the ids of the tasks that had
/// some. Stores keep pipelines in this form: a registry password is a secret and a
/// [`RegistryAuth`](crate::RegistryAuth) never serializes it.
pub fn without_credentials(pipeline: &Pipeline) -> (Pipeline, Vec<String>) {
    let mut p = pipeline.clone();
    let mut removed = Vec::new();
    for t in &mut p.tasks {
        if t.registry_auth.take().is_some() {
            removed.push(t.id.clone());
        }
    }
    (p, removed)
}

/// One change to a run's durable record. A store applies a batch of changes in order,
/// all or nothing.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// `Created` is made once per run; the frequent changes are small (`Task` shares the
// execution through an `Arc`).
#[allow(clippy::large_enum_variant)]
pub enum RunChange {
    /// A new run with every task execution. Fails with
    /// [`StoreError::AlreadyExists`](crate::StoreError::AlreadyExists) when the run
    /// number is taken.
    Created {
        /// The run, with its task executions.
        run: Run,
        /// What it was started with.
        spec: RunSpec,
    },
    /// The run-level fields (state, status, reason, message, times) changed.
    Run(RunHeader),
    /// One task execution, replaced whole.
    Task {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The task execution (shared with the executor's record: no copy per change).
        task: Arc<TaskExecution>,
    },
    /// Where a task execution's log lives.
    Log {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The task.
        task: String,
        /// The log sink's locator (a file path for the file sink).
        location: String,
    },
    /// An event, appended to the run's events.
    Event {
        /// The pipeline.
        pipeline: String,
        /// The run.
        run: u64,
        /// The event.
        event: Event,
    },
}

impl RunChange {
    /// The (pipeline, run) the change is about.
    pub fn run_key(&self) -> (&str, u64) {
        match self {
            Self::Created { run, .. } => (&run.pipeline_id, run.run_id),
            Self::Run(h) => (&h.pipeline_id, h.run_id),
            Self::Task { pipeline, run, .. }
            | Self::Log { pipeline, run, .. }
            | Self::Event { pipeline, run, .. } => (pipeline, *run),
        }
    }
}

/// A task execution's details (the seed's `task get <pipeline> <run> <task>`): every
/// injected variable with its source (secret values masked), status, reason, container
/// and where its log lives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TaskDetails {
    /// The pipeline.
    pub pipeline: String,
    /// The run.
    pub run: u64,
    /// The execution.
    pub execution: TaskExecution,
    /// The log sink's locator of its log, once it has one.
    pub log: Option<String>,
}

impl TaskDetails {
    /// Details of one task execution.
    pub fn new(
        pipeline: impl Into<String>,
        run: u64,
        execution: TaskExecution,
        log: Option<String>,
    ) -> Self {
        Self {
            pipeline: pipeline.into(),
            run,
            execution,
            log,
        }
    }
}

/// A run that is not complete, with what it needs to be resumed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UnfinishedRun {
    /// The run as last recorded.
    pub run: Run,
    /// What it was started with.
    pub spec: RunSpec,
}

impl UnfinishedRun {
    /// An unfinished run.
    pub fn new(run: Run, spec: RunSpec) -> Self {
        Self { run, spec }
    }
}
