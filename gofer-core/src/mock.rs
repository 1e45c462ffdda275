//! [`mockall`] mocks of the public traits, for a host's tests. Feature `mock`.
//!
//! **Fake or mock?** Use the [fake](crate::fake) for behaviour: [`FakeScheduler`](crate::fake::FakeScheduler)
//! is a real state machine that passes the conformance suite, and the in-memory
//! stores ([`InMemorySecretStore`](crate::InMemorySecretStore),
//! [`InMemoryObjectStore`](crate::InMemoryObjectStore),
//! [`InMemoryRunStore`](crate::InMemoryRunStore), [`InMemoryLogSink`](crate::InMemoryLogSink))
//! keep what they are given. Use a mock for **exact expectations and faults**: a
//! backend call that fails or panics, a store that fails on the k-th write, a log
//! stream that errors after N chunks, a call that must happen exactly once with
//! these arguments.
//!
//! | trait | mock |
//! | --- | --- |
//! | [`Scheduler`] | [`MockScheduler`] |
//! | [`SecretStore`] | [`MockSecretStore`] |
//! | [`ObjectStore`] | [`MockObjectStore`] |
//! | [`RunStore`] | [`MockRunStore`] |
//! | [`LogSink`] | [`MockLogSink`] |
//! | [`LogWriter`] | [`MockLogWriter`] |
//!
//! Each mock implements every method of its trait, defaults included
//! (`create_sandbox`, `start_created`, `run_finished`, `locate`, `reader`, `may_block`): a call without a matching
//! expectation panics, so script what the code under test calls.
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
//!     Capabilities, Engine, InMemoryLogSink, Pipeline, RunOptions, RunStatus, SchedulerError,
//!     StatusReason, Task, TaskStatus,
//! };
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

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mockall::mock;
use secrecy::SecretString;

use crate::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, Event, ExitStatus,
    GlobalSecretInfo, LogError, LogKey, LogLine, LogReader, LogSink, LogStream, LogWriter,
    ObjectStore, Pipeline, Run, RunChange, RunStore, SandboxSpec, Scheduler, SchedulerError,
    SecretStore, StoreError, TaskDetails, UnfinishedRun,
};

mock! {
    /// A [`Scheduler`] whose every call is an expectation.
    #[derive(Debug)]
    pub Scheduler {}

    #[async_trait]
    impl Scheduler for Scheduler {
        fn name(&self) -> &'static str;
        fn capabilities(&self) -> Capabilities;
        async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError>;
        async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError>;
        async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError>;
        async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError>;
        async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError>;
        async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError>;
        async fn list(
            &self,
            labels: &BTreeMap<String, String>,
        ) -> Result<Vec<ContainerSummary>, SchedulerError>;
        async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError>;
        async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError>;
    }
}

mock! {
    /// A [`SecretStore`] whose every call is an expectation.
    #[derive(Debug)]
    pub SecretStore {}

    #[async_trait]
    impl SecretStore for SecretStore {
        async fn get_pipeline_secret(
            &self,
            pipeline: &str,
            key: &str,
        ) -> Result<SecretString, StoreError>;
        async fn put_pipeline_secret(
            &self,
            pipeline: &str,
            key: &str,
            value: SecretString,
            force: bool,
        ) -> Result<(), StoreError>;
        async fn list_pipeline_secrets(&self, pipeline: &str) -> Result<Vec<String>, StoreError>;
        async fn delete_pipeline_secret(&self, pipeline: &str, key: &str) -> Result<(), StoreError>;
        async fn get_global_secret(
            &self,
            pipeline: &str,
            key: &str,
        ) -> Result<SecretString, StoreError>;
        async fn put_global_secret(
            &self,
            key: &str,
            value: SecretString,
            allow: Vec<String>,
            force: bool,
        ) -> Result<(), StoreError>;
        async fn list_global_secrets(&self) -> Result<Vec<GlobalSecretInfo>, StoreError>;
        async fn delete_global_secret(&self, key: &str) -> Result<(), StoreError>;
    }
}

mock! {
    /// An [`ObjectStore`] whose every call is an expectation.
    #[derive(Debug)]
    pub ObjectStore {}

    #[async_trait]
    impl ObjectStore for ObjectStore {
        async fn get_pipeline_object(&self, pipeline: &str, key: &str) -> Result<Bytes, StoreError>;
        async fn put_pipeline_object(
            &self,
            pipeline: &str,
            key: &str,
            value: Bytes,
            force: bool,
        ) -> Result<(), StoreError>;
        async fn list_pipeline_objects(&self, pipeline: &str) -> Result<Vec<String>, StoreError>;
        async fn delete_pipeline_object(&self, pipeline: &str, key: &str) -> Result<(), StoreError>;
        async fn get_run_object(
            &self,
            pipeline: &str,
            run: u64,
            key: &str,
        ) -> Result<Bytes, StoreError>;
        async fn put_run_object(
            &self,
            pipeline: &str,
            run: u64,
            key: &str,
            value: Bytes,
            force: bool,
        ) -> Result<(), StoreError>;
        async fn list_run_objects(&self, pipeline: &str, run: u64) -> Result<Vec<String>, StoreError>;
        async fn delete_run_object(
            &self,
            pipeline: &str,
            run: u64,
            key: &str,
        ) -> Result<(), StoreError>;
        async fn run_finished(&self, pipeline: &str, run: u64) -> Result<(), StoreError>;
    }
}

mock! {
    /// A [`RunStore`] whose every call is an expectation.
    #[derive(Debug)]
    pub RunStore {}

    #[async_trait]
    impl RunStore for RunStore {
        fn name(&self) -> &'static str;
        async fn apply(&self, changes: &[RunChange]) -> Result<(), StoreError>;
        async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError>;
        async fn get_pipeline(&self, id: &str) -> Result<Pipeline, StoreError>;
        async fn list_pipelines(&self) -> Result<Vec<String>, StoreError>;
        async fn get_run(&self, pipeline: &str, run: u64) -> Result<Run, StoreError>;
        async fn list_runs(&self, pipeline: &str) -> Result<Vec<Run>, StoreError>;
        async fn get_task(
            &self,
            pipeline: &str,
            run: u64,
            task: &str,
        ) -> Result<TaskDetails, StoreError>;
        async fn events(&self, pipeline: &str, run: u64) -> Result<Vec<Event>, StoreError>;
        async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError>;
        async fn next_run_id(&self, pipeline: &str) -> Result<u64, StoreError>;
        async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, StoreError>;
    }
}

mock! {
    /// A [`LogSink`] whose every call is an expectation.
    #[derive(Debug)]
    pub LogSink {}

    impl LogSink for LogSink {
        fn open(&self, key: &LogKey) -> Result<Box<dyn LogWriter>, LogError>;
        fn read(&self, key: &LogKey, cursor: u64, max: usize) -> Result<(Vec<LogLine>, u64), LogError>;
        fn locate(&self, key: &LogKey) -> Option<String>;
        fn reader(&self, key: &LogKey) -> Result<Box<dyn LogReader>, LogError>;
        fn may_block(&self) -> bool;
    }
}

mock! {
    /// A [`LogWriter`] whose every call is an expectation (return it from
    /// [`MockLogSink::expect_open`]).
    #[derive(Debug)]
    pub LogWriter {}

    impl LogWriter for LogWriter {
        fn write(&mut self, lines: &[LogLine]) -> Result<(), LogError>;
    }
}

#[cfg(test)]
#[path = "mock_tests.rs"]
mod tests;
