//! The run executor: an [`Engine`] that runs pipelines on a [`Scheduler`](crate::Scheduler).
//!
//! Everything here is also re-exported at the crate root.
//!
//! # Embedding
//!
//! ```
//! use std::sync::Arc;
//! use futures::StreamExt;
//! use gofer_core::fake::{Behaviour, FakeScheduler};
//! use gofer_core::{Engine, InMemoryLogSink, Pipeline, RequiredParentStatus, RunOptions, RunStatus, Task};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // Any scheduler: DockerScheduler, PodmanScheduler, or the in-memory fake.
//! let scheduler = FakeScheduler::new().image("busybox", Behaviour::echo());
//! let engine = Engine::builder(Arc::new(scheduler))
//!     .instance_id("ci1")
//!     .log_sink(Arc::new(InMemoryLogSink::new()))
//!     .build()?;
//!
//! let pipeline = Pipeline::new("hello", "Hello world")
//!     .task(Task::new("simple_task", "busybox").command(["echo", "Hello from Gofer!"]))
//!     .task(
//!         Task::new("after", "busybox")
//!             .command(["echo", "done"])
//!             .depends_on("simple_task", RequiredParentStatus::Success),
//!     );
//! let run = engine.start_run(&pipeline, RunOptions::new().variable("TARGET", "world"))?;
//! assert_eq!(run.run_id(), 1);
//!
//! let mut logs = run.logs("simple_task")?;
//! while let Some(line) = logs.next().await {
//!     println!("{}", line?.text()); // Hello from Gofer!
//! }
//! let result = run.wait().await?;
//! assert_eq!(result.status, RunStatus::Successful);
//! for task in &result.tasks {
//!     println!("{}: {:?} {:?} exit {:?}", task.task_id, task.state, task.status, task.exit_code);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What an engine is made of
//!
//! [`EngineBuilder`] takes a scheduler and, optionally: a secret store and an object
//! store (default: empty in-memory ones), a [`LogSink`] (default: a [`FileLogSink`] in
//! a directory of its own per engine, [`FileLogSink::unique_under`]`(<temp
//! dir>/gofer-logs, <instance id>)`, so a new engine never overwrites an earlier one's
//! logs; [`EngineBuilder::log_dir`] names the directory), a
//! [`TokenIssuer`] (default: none, so no `GOFER_API_TOKEN`), [`Limits`], an instance id
//! (default [`DEFAULT_INSTANCE_ID`]; it is part of every container name and label, so
//! hosts sharing a container engine need distinct ids) and an opt-in run-scoped
//! network sandbox ([`EngineBuilder::network_sandbox`]). With
//! [`EngineBuilder::api_socket_dir`], tasks given a token get the host's API socket
//! directory mounted at [`API_MOUNT_DIR`](crate::API_MOUNT_DIR) and its path as
//! `GOFER_API_SOCKET` (the crate `gofer-api` serves the API there); the engine's live
//! runs are found with [`Engine::run`].
//!
//! # The flow of a run
//!
//! [`Engine::start_run`] validates the pipeline and the run options (an error means
//! nothing started), numbers the run (1, 2, 3, ... per pipeline) and spawns it on the
//! Tokio runtime. The run waits `Pending` while the pipeline already has
//! `parallelism` runs in progress (first come, first served), then goes `Running`:
//! it issues the run's API token (once, only when a task asks for one), creates the
//! network sandbox if configured, and executes the task graph. Every task starts
//! `Processing`, is `Waiting` while its parents run, and when they are all complete:
//!
//! 1. **Dependency conditions**: `Any` needs the parent Successful, Failed or Skipped,
//!    `Success` needs Successful, `Failure` needs Failed. Otherwise the task is
//!    `Skipped`, with a message naming the parent and its status.
//! 2. **Variables**: system variables, run options and the task's own variables are
//!    merged by precedence (task config over run options over system), then values that
//!    are exactly one store placeholder are substituted — in task variables **and** in
//!    run options, never in system variables. This happens only now, so a parent can
//!    leave a `run_object{{..}}` for its children. A missing key, a global secret the
//!    pipeline may not read, or a failed token issue fails the task with reason
//!    `FailedPrecondition` and a message naming the key, and **no container is
//!    created**.
//! 3. **Container**: the task waits for a slot under
//!    [`Limits::max_running_containers`], its container name (recorded before the
//!    start) and labels come from [`crate::naming`], with init on, the task's pull
//!    policy, registry credentials, resource limits, and the run's sandbox network.
//! 4. **Logs and exit**: output flows through the masker and line framing into the
//!    log sink while the executor waits for the exit (event-driven, no polling), and
//!    for as long as bytes flow after it. A read that breaks, or stays silent for 30 s
//!    after the exit, is done again from the engine (skipping what was delivered, up
//!    to 3 times); a log that still cannot be made whole is recorded as incomplete
//!    ([`TaskExecution::log_incomplete`](crate::TaskExecution::log_incomplete),
//!    [`Event::LogIncomplete`](crate::Event::LogIncomplete)) and, unless
//!    [`EngineBuilder::fail_on_incomplete_log`] says otherwise, fails the task with
//!    reason `IncompleteLog`. A sink that may block is written by a thread of the
//!    task's own, fed by a bounded channel. The container is removed afterwards,
//!    whatever happened (a failed removal is retried in the background).
//!
//! Statuses: exit 0 is `Successful`; another code `Failed` with reason
//! `AbnormalExit{code}` (also for a memory kill); a scheduler error `Failed`/
//! `SchedulerError`; a container that vanished `Unknown`/`Orphaned`. The run ends
//! `Cancelled` if it was cancelled, else `Failed` if it timed out or any task is
//! `Failed` or `Unknown`, else `Successful`.
//!
//! Timestamps (run, task and event times) follow Tokio's clock from the engine's
//! start, so under `tokio::time::pause()` a test reads real durations from a run.
//! Durations too large to represent as an instant (a timeout of [`Duration::MAX`](std::time::Duration::MAX))
//! mean no limit.
//!
//! # Limits, timeouts, cancellation
//!
//! - A task's `timeout` counts from its container's start; past it the container is
//!   stopped (SIGTERM, [`Limits::stop_grace`], kill) and the task is `Failed`/`Timeout`.
//! - A run timeout ([`RunOptions::timeout`](crate::RunOptions::timeout), default [`Limits::run_timeout`]) counts
//!   from when the run leaves `Pending`: running tasks are stopped and end
//!   `Failed`/`Timeout`, tasks not started yet end `Cancelled`/`Timeout`, the run is
//!   `Failed`/`Timeout`.
//! - [`RunHandle::cancel`] stops running containers with the given grace period, ends
//!   tasks not started yet as `Cancelled`, and the run as `Cancelled` (a `Pending` run
//!   is cancelled without ever starting).
//! - Runs execute on tasks spawned by the engine, not in the caller's future:
//!   **dropping a [`RunHandle`], or the future that awaits it, does not stop the run**;
//!   it runs to completion and removes its containers and sandbox. Only `cancel` or a
//!   timeout stops it early. If the Tokio runtime itself shuts down mid-run, `wait`
//!   reports [`RunError::Aborted`]; the containers carry labels
//!   ([`naming::engine_filter`](crate::naming::engine_filter)) so a host can find and
//!   remove them.
//!
//! # Events and logs
//!
//! [`RunHandle::events`] yields every run and task state change from the start of the
//! run, also to a subscriber that joins late, and ends after the run's `Complete`
//! event. [`RunHandle::logs`] yields a task's masked lines from the first, live, ending
//! when the task's output is complete. Both read from what the run keeps (its event
//! list, the log sink) by position, so a slow consumer never slows the run and never
//! misses anything; memory for events grows with the run, log lines live in the sink.
//!
//! Masking: every secret value the run has seen (substituted secrets, the API token,
//! registry passwords) of at least [`MIN_MASK_LEN`] bytes is replaced by
//! [`MASK`](crate::MASK) before any sink or subscriber sees a byte: also when it is
//! split across reads, each line of a multi-line value, and its base64 encodings
//! (standard and URL-safe, at every alignment). A line longer than
//! [`MAX_LINE_BYTES`] is split into pieces marked [`LogLine::partial`]; nothing is
//! dropped.

// The layers, top to bottom; a file imports only from layers below it:
// engine, resume (Engine::recover) → runner (a run: slot, token, sandbox, graph)
// → lifecycle (a task) → container, pump, resolve → ctx → recover (the plan) →
// handle → recorder, journal, stop, slots, durable, outcome → errors, limits,
// log_writer, logs, file_sink (→ file_format), mask, token, clock → the run model
// (crate::run).
mod clock;
mod container;
mod ctx;
mod durable;
mod engine;
mod errors;
mod file_format;
mod file_sink;
mod handle;
mod journal;
mod lifecycle;
mod limits;
mod log_writer;
mod logs;
mod mask;
mod outcome;
mod pump;
mod recorder;
mod recover;
mod resolve;
mod resume;
mod runner;
mod services;
mod slots;
mod stop;
mod token;

pub use engine::{BuildError, Engine, EngineBuilder, DEFAULT_INSTANCE_ID};
pub use errors::{EngineError, RunError};
pub use file_sink::FileLogSink;
pub use handle::RunHandle;
pub use limits::Limits;
pub use logs::{
    InMemoryLogSink, LineFramer, LogError, LogKey, LogLine, LogReader, LogSink, LogWriter,
    MAX_LINE_BYTES,
};
pub use mask::{mask_str, MaskPatterns, Masker, MIN_MASK_LEN};
pub use recover::{RecoveredTask, RecoveryAction, RecoveryError, RecoveryReport, RegisterError};
pub use token::{TokenGrant, TokenIssuer};
