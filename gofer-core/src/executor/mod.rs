//! The run executor: an [`Engine`] that runs pipelines on a scheduler.
//!
//! See the crate documentation for the flow of a run and of each task.

mod engine;
mod handle;
mod logs;
mod mask;
mod model;
mod recorder;
mod run;
mod task;
mod token;

pub use engine::{
    Engine, EngineBuilder, EngineError, Limits, RunError, RunOptions, DEFAULT_INSTANCE_ID,
};
pub use handle::RunHandle;
pub use logs::{
    FileLogSink, InMemoryLogSink, LogError, LogKey, LogLine, LogSink, LogWriter, MAX_LINE_BYTES,
};
pub use mask::{mask_str, MaskPatterns, Masker, MIN_MASK_LEN};
pub use model::{
    ContainerRef, Event, InjectedVariable, Run, RunState, RunStatus, StatusReason, TaskExecution,
    TaskState, TaskStatus,
};
pub use token::TokenIssuer;
