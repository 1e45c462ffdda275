//! [`mockall`] mocks of the public traits, for a host's tests. Feature `mock`.
//!
//! **Fake or mock?** Use the [fake](crate::fake) for behaviour: [`FakeScheduler`](crate::fake::FakeScheduler)
//! is a real state machine that passes the conformance suite, and the in-memory
//! stores ([`InMemorySecretStore`](crate::InMemorySecretStore),
//! [`InMemoryObjectStore`](crate::InMemoryObjectStore),
//! [`InMemoryRunStore`](crate::InMemoryRunStore))
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
//!
//! Each mock implements every method of its trait, defaults included
//! (`create_sandbox`, `start_created`, `run_finished`): a call without a matching
//! expectation panics, so script what the code under test calls.
//!
//! # Examples
//!
//! A scheduler whose start fails: the error is what the code under test sees, and
//! nothing else was asked of it (the crate `gofer-engine` runs the same mock through
//! its engine, in `gofer_engine::mock`).
//!
//! ```
//! use gofer_core::mock::MockScheduler;
//! use gofer_core::{ContainerSpec, Scheduler, SchedulerError};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let mut scheduler = MockScheduler::new();
//! scheduler
//!     .expect_start()
//!     .times(1)
//!     .withf(|spec| spec.image == "busybox")
//!     .returning(|spec| Err(SchedulerError::NoSuchImage {
//!         scheduler: "mock",
//!         image: spec.image,
//!         message: "not in the registry".into(),
//!     }));
//! let err = scheduler.start(ContainerSpec::new("c1", "busybox")).await.unwrap_err();
//! assert!(matches!(err, SchedulerError::NoSuchImage { .. }));
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
    GlobalSecretInfo, LogStream, ObjectStore, Pipeline, Run, RunChange, RunStore, SandboxSpec,
    Scheduler, SchedulerError, SecretStore, StoreError, TaskDetails, UnfinishedRun,
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
