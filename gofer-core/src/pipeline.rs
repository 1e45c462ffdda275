//! The [`Pipeline`] model: a named set of tasks forming a dependency graph.

use serde::{Deserialize, Serialize};

use crate::service::Service;
use crate::task::Task;

/// Largest accepted [`Pipeline::parallelism`].
pub const MAX_PARALLELISM: u32 = 10_000;

/// A set of tasks that run together as one run.
///
/// ```
/// use gofer_core::{Pipeline, RequiredParentStatus, Task};
/// let pipeline = Pipeline::new("hello", "Hello world")
///     .description("Prints a greeting")
///     .parallelism(2)
///     .task(Task::new("greet", "busybox").command(["echo", "hi"]))
///     .task(Task::new("after", "busybox").depends_on("greet", RequiredParentStatus::Success));
/// pipeline.validate().expect("valid");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Pipeline {
    /// Unique id (3–64 of `[A-Za-z0-9_-]`).
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Free-text description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Most runs of this pipeline that may be in progress at once; 0 is unlimited.
    #[serde(default)]
    pub parallelism: u32,
    /// The tasks.
    #[serde(default)]
    pub tasks: Vec<Task>,
    /// Each run gets a shared workspace: a volume made for the run, mounted at
    /// [`WORKSPACE_PATH`] in every task of the run, removed with the run (see
    /// [`Pipeline::workspace`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub workspace: bool,
    /// Service containers the tasks may need (see [`Service`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
    /// The concurrency group each run of the pipeline is a member of, for the whole
    /// run (see [`crate::Concurrency`]); resolved from the run's variables and
    /// `GOFER_PIPELINE_ID` when the run starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<crate::Concurrency>,
}

/// Where the run's shared workspace is mounted in every task's container.
pub const WORKSPACE_PATH: &str = "/gofer/workspace";

impl Pipeline {
    /// An empty pipeline with an id and a name.
    pub fn new(id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            description: None,
            parallelism: 0,
            tasks: Vec::new(),
            workspace: false,
            services: Vec::new(),
            concurrency: None,
        }
    }

    /// Makes each run a member of a concurrency group (see [`crate::Concurrency`]).
    #[must_use]
    pub fn concurrency(mut self, c: crate::Concurrency) -> Self {
        self.concurrency = Some(c);
        self
    }

    /// Adds a service container (see [`Service`]).
    #[must_use]
    pub fn service(mut self, service: Service) -> Self {
        self.services.push(service);
        self
    }

    /// Gives each run a shared workspace: a volume made for the run (named
    /// [`naming::workspace_volume_name`](crate::naming::workspace_volume_name), labelled
    /// like the run's containers), mounted read-write at [`WORKSPACE_PATH`] in every
    /// task, so one task can leave files for the next (build, then test). It is
    /// removed when the run ends — also when it failed or was cancelled — and a host
    /// that died leaves it to recovery, which reaps it with the run's containers. The
    /// scheduler needs [`Capabilities::volumes`](crate::Capabilities::volumes) with
    /// [`VolumeScope::Engine`](crate::VolumeScope::Engine); otherwise every task of
    /// the run fails (reason `SchedulerError`) naming the missing capability.
    ///
    /// ```
    /// use gofer_core::{Pipeline, RequiredParentStatus, Task, WORKSPACE_PATH};
    /// let p = Pipeline::new("build_and_test", "Build and test")
    ///     .workspace(true)
    ///     .task(Task::new("build", "busybox").command(["sh", "-c", "echo built > /gofer/workspace/out"]))
    ///     .task(Task::new("test", "busybox")
    ///         .command(["cat", "/gofer/workspace/out"])
    ///         .depends_on("build", RequiredParentStatus::Success));
    /// assert!(p.workspace);
    /// assert_eq!(WORKSPACE_PATH, "/gofer/workspace");
    /// ```
    #[must_use]
    pub fn workspace(mut self, on: bool) -> Self {
        self.workspace = on;
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets how many runs may be in progress at once (0 = unlimited).
    #[must_use]
    pub fn parallelism(mut self, parallelism: u32) -> Self {
        self.parallelism = parallelism;
        self
    }

    /// Adds a task.
    #[must_use]
    pub fn task(mut self, task: Task) -> Self {
        self.tasks.push(task);
        self
    }

    /// Adds many tasks.
    #[must_use]
    pub fn tasks(mut self, tasks: impl IntoIterator<Item = Task>) -> Self {
        self.tasks.extend(tasks);
        self
    }

    /// Looks a task up by id.
    pub fn get_task(&self, id: &str) -> Option<&Task> {
        self.tasks.iter().find(|t| t.id == id)
    }

    /// The pipeline with each matrix task replaced by its combinations (see
    /// [`crate::matrix`]): the tasks a run executes. Call it on a valid pipeline
    /// ([`Pipeline::validate`] checks the matrices); a matrix it cannot expand is left
    /// as it is. A pipeline without matrices comes back unchanged.
    ///
    /// ```
    /// use gofer_core::{Matrix, Pipeline, Task};
    /// let p = Pipeline::new("matrix_demo", "Matrix").task(
    ///     Task::new("test", "busybox")
    ///         .command(["sh", "-c", "echo $OS"])
    ///         .matrix(Matrix::new([("OS", vec!["linux", "bsd"])])),
    /// );
    /// p.validate().unwrap();
    /// let ids: Vec<_> = p.expanded().tasks.into_iter().map(|t| t.id).collect();
    /// assert_eq!(ids, ["test_OS-linux", "test_OS-bsd"]);
    /// ```
    pub fn expanded(&self) -> Pipeline {
        if self.tasks.iter().all(|t| t.matrix.is_none()) {
            return self.clone();
        }
        let mut out = self.clone();
        out.tasks = Vec::with_capacity(self.tasks.len());
        for t in &self.tasks {
            let Some(matrix) = &t.matrix else {
                out.tasks.push(t.clone());
                continue;
            };
            let Ok(combos) = matrix.combinations() else {
                out.tasks.push(t.clone());
                continue;
            };
            for values in combos {
                let mut c = t.clone();
                c.id = crate::matrix::combination_id(&t.id, &values);
                c.matrix = None;
                for (k, v) in &values {
                    c.variables.insert(k.clone(), v.clone());
                }
                c.matrix_cell = Some(crate::MatrixCell {
                    task: t.id.clone(),
                    values,
                    fail_fast: matrix.fail_fast,
                });
                out.tasks.push(c);
            }
        }
        out
    }

    /// The indices of the tasks `parent` names in a `depends_on`: the task of that id,
    /// or every combination of the matrix task of that id.
    pub fn parent_indices(&self, parent: &str) -> Vec<usize> {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                t.id == parent || t.matrix_cell.as_ref().is_some_and(|c| c.task == parent)
            })
            .map(|(i, _)| i)
            .collect()
    }
}
