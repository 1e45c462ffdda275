//! [`mockall`] mocks of the engine's traits ([`LogSink`](crate::LogSink), [`LogWriter`](crate::LogWriter)), for a host's
//! tests. Feature `mock` (it turns on `gofer-core/mock`, whose `gofer_core::mock` has the
//! mocks of the contract's traits: `MockScheduler`, the stores).
//!
//! | trait | mock |
//! | --- | --- |
//! | [`LogSink`](crate::LogSink) | [`MockLogSink`] |
//! | [`LogWriter`](crate::LogWriter) | [`MockLogWriter`] |
//!
//! Generated from the traits themselves (`mockall::automock`), each mock has every
//! method of its trait, defaults included (`locate`, `reader`, `may_block`): a call
//! without a matching expectation panics.
//!
//! # Examples
//!
//! A scheduler whose start fails, run through the [`Engine`](crate::Engine): the task
//! ends `Failed` with reason `SchedulerError`, and nothing else was asked of it.
//!
//! ```
//! use std::sync::Arc;
//! use gofer_core::mock::MockScheduler;
//! use gofer_core::{
//!     Capabilities, Pipeline, RunOptions, RunStatus, SchedulerError, StatusReason, Task, TaskStatus,
//! };
//! use gofer_engine::{Engine, InMemoryLogSink};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut scheduler = MockScheduler::new();
//! scheduler.expect_name().return_const("mock");
//! scheduler.expect_capabilities().return_const(Capabilities::default());
//! scheduler
//!     .expect_start()
//!     .times(1)
//!     .withf(|spec| spec.image == "busybox")
//!     .returning(|spec| Err(SchedulerError::NoSuchImage {
//!         scheduler: "mock",
//!         image: spec.image,
//!         message: "not in the registry".into(),
//!     }));
//! let engine = Engine::builder(Arc::new(scheduler))
//!     .log_sink(Arc::new(InMemoryLogSink::new()))
//!     .build()
//!     .expect("engine");
//! let pipeline = Pipeline::new("mocked", "Mocked").task(Task::new("greet", "busybox"));
//! let run = engine.start_run(&pipeline, RunOptions::new()).expect("start").wait().await.expect("run");
//! let task = run.task("greet").expect("task");
//! assert_eq!(task.status, TaskStatus::Failed);
//! assert_eq!(task.reason, Some(StatusReason::SchedulerError));
//! assert!(task.message.as_deref().unwrap_or_default().contains("not in the registry"));
//! assert_eq!(run.status, RunStatus::Failed);
//! # }
//! ```

pub use crate::logs::sink::{MockLogSink, MockLogWriter};

#[cfg(test)]
#[path = "mock_tests.rs"]
mod tests;
