//! The [`RunStore`] trait: durable run history, the ground a restarted host recovers
//! its runs from.
//!
//! A run store keeps the pipelines hosts registered, every run with its task
//! executions (statuses, reasons, every injected variable with its source — secret
//! values only masked — and each task's container name, recorded before the container
//! is started), the runs' events and where each task's log lives. The engine writes
//! [`RunChange`]s through [`RunStore::apply`]; hosts read with the query methods.
//!
//! [`InMemoryRunStore`] keeps everything in memory (for tests and hosts that need no
//! history across restarts); `gofer-store-sqlite` keeps it in an embedded SQLite
//! database. Both pass the same behaviour suite
//! (`gofer_core::testing::runstore`, feature `testing`).

mod groups;
mod memory;
mod record;

pub use groups::{enter as enter_group, member_name, GroupEntry, GroupMember, GroupTurn};

pub use memory::InMemoryRunStore;
pub use record::{
    without_credentials, RunChange, RunSpec, StoredRegistryAuth, TaskDetails, UnfinishedRun,
};

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::pipeline::Pipeline;
use crate::run::{Event, Run};

/// Durable run history.
///
/// Errors are [`StoreError`]s: `NotFound` (kind `"pipeline"`, `"run"`, `"task
/// execution"`) for a missing record, `AlreadyExists` for a run number that is taken,
/// `Backend` when the storage fails (retryable). Every method is safe to call
/// concurrently.
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait RunStore: fmt::Debug + Send + Sync + 'static {
    /// A short store name (`"memory"`, `"sqlite"`), used in errors.
    fn name(&self) -> &'static str;

    /// Applies changes in order, all or nothing.
    ///
    /// Contract: when this returns `Ok` the changes are durable (they survive the host
    /// process being killed; the store documents whether they survive a power loss) and
    /// visible to every query. A change about an unknown run fails with `NotFound`
    /// (kind `"run"`) and a `Task`/`Log` change about a task the run does not have
    /// with `NotFound` (kind `"task execution"`); the batch is then not applied.
    async fn apply(&self, changes: &[RunChange]) -> Result<(), StoreError>;

    /// Registers (or replaces) a pipeline, without its registry credentials (see
    /// [`without_credentials`]).
    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError>;

    /// A registered pipeline.
    async fn get_pipeline(&self, id: &str) -> Result<Pipeline, StoreError>;

    /// The ids of every registered pipeline, sorted.
    async fn list_pipelines(&self) -> Result<Vec<String>, StoreError>;

    /// One run with its task executions (in pipeline order).
    async fn get_run(&self, pipeline: &str, run: u64) -> Result<Run, StoreError>;

    /// The runs of a pipeline, newest first; empty when it has none.
    async fn list_runs(&self, pipeline: &str) -> Result<Vec<Run>, StoreError>;

    /// One task execution's details (the seed's `task get <pipeline> <run> <task>`).
    async fn get_task(
        &self,
        pipeline: &str,
        run: u64,
        task: &str,
    ) -> Result<TaskDetails, StoreError>;

    /// The events of a run, in the order they were appended.
    async fn events(&self, pipeline: &str, run: u64) -> Result<Vec<Event>, StoreError>;

    /// Every run not yet complete, with its specification, oldest first (by pipeline,
    /// then run number).
    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError>;

    /// The number the pipeline's next run gets: one more than the highest recorded
    /// (1 when it has none).
    async fn next_run_id(&self, pipeline: &str) -> Result<u64, StoreError>;

    /// The highest run number recorded for every pipeline that has runs, sorted by
    /// pipeline.
    async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Deletes a complete run with its task executions and events, atomically, and
    /// records it as awaiting cleanup ([`cleanups`](Self::cleanups)): the run's logs
    /// and run objects live elsewhere and go after its rows, so a reader never finds
    /// a run whose logs are gone. The run's number stays taken:
    /// [`next_run_id`](Self::next_run_id) and [`last_run_ids`](Self::last_run_ids)
    /// never hand it out again.
    ///
    /// # Errors
    /// `NotFound` (kind `"run"`); `RunNotComplete` for a run not complete (nothing
    /// is deleted). Default: `NotSupported`.
    async fn delete_run(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let _ = (pipeline, run);
        Err(StoreError::NotSupported {
            store: self.name(),
            operation: "delete run",
        })
    }

    /// The runs deleted whose cleanup (logs, run objects) is not known to be done,
    /// oldest deletion first. Default: none.
    async fn cleanups(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(Vec::new())
    }

    /// Records that a deleted run's logs and objects are gone. Forgetting a run that
    /// awaits no cleanup is not an error. Default: nothing to record.
    async fn cleanup_done(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let _ = (pipeline, run);
        Ok(())
    }

    /// Checks that the store takes writes now (for health checks), changing nothing:
    /// SQLite takes its write lock and rolls back. Default: `Ok` (a store in memory
    /// always does).
    async fn probe_write(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether this store keeps concurrency groups ([`enter_group`](Self::enter_group)
    /// and [`leave_group`](Self::leave_group)). An engine with a store that does keeps
    /// every group in it, so engines sharing the store share the groups; else in its
    /// own memory. Default: `false`.
    fn keeps_groups(&self) -> bool {
        false
    }

    /// Enters (or, for a member already in it, keeps) the member's place in its group,
    /// by the rules of [`enter_group`](crate::enter_group) applied atomically with
    /// the store's other writers, and says whether it holds a slot, whether it was
    /// superseded, and who is ahead of it. A member keeps its place while its run is
    /// unfinished in the store, across a crash of its process.
    ///
    /// Default: fails with `Backend` (the store keeps no groups).
    async fn enter_group(&self, entry: &GroupEntry) -> Result<GroupTurn, StoreError> {
        Err(no_groups(self.name(), &entry.group))
    }

    /// Removes `member` ([`member_name`]) from `group`: its slot goes to the next
    /// waiter. Removing a member that is not there is not an error.
    ///
    /// Default: fails with `Backend` (the store keeps no groups).
    async fn leave_group(&self, group: &str, member: &str) -> Result<(), StoreError> {
        let _ = member;
        Err(no_groups(self.name(), group))
    }
}

fn no_groups(store: &'static str, group: &str) -> StoreError {
    StoreError::Backend {
        store,
        operation: "concurrency group",
        source: format!("this store keeps no concurrency groups (group {group:?})").into(),
    }
}

/// A run store behind dynamic dispatch.
pub type DynRunStore = dyn RunStore;

macro_rules! forward_run_store {
    ($t:ty) => {
        #[async_trait]
        impl<S: RunStore + ?Sized> RunStore for $t {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            async fn apply(&self, changes: &[RunChange]) -> Result<(), StoreError> {
                (**self).apply(changes).await
            }
            async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
                (**self).put_pipeline(pipeline).await
            }
            async fn get_pipeline(&self, id: &str) -> Result<Pipeline, StoreError> {
                (**self).get_pipeline(id).await
            }
            async fn list_pipelines(&self) -> Result<Vec<String>, StoreError> {
                (**self).list_pipelines().await
            }
            async fn get_run(&self, pipeline: &str, run: u64) -> Result<Run, StoreError> {
                (**self).get_run(pipeline, run).await
            }
            async fn list_runs(&self, pipeline: &str) -> Result<Vec<Run>, StoreError> {
                (**self).list_runs(pipeline).await
            }
            async fn get_task(
                &self,
                pipeline: &str,
                run: u64,
                task: &str,
            ) -> Result<TaskDetails, StoreError> {
                (**self).get_task(pipeline, run, task).await
            }
            async fn events(&self, pipeline: &str, run: u64) -> Result<Vec<Event>, StoreError> {
                (**self).events(pipeline, run).await
            }
            async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
                (**self).unfinished_runs().await
            }
            async fn next_run_id(&self, pipeline: &str) -> Result<u64, StoreError> {
                (**self).next_run_id(pipeline).await
            }
            async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, StoreError> {
                (**self).last_run_ids().await
            }
            async fn delete_run(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
                (**self).delete_run(pipeline, run).await
            }
            async fn cleanups(&self) -> Result<Vec<(String, u64)>, StoreError> {
                (**self).cleanups().await
            }
            async fn cleanup_done(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
                (**self).cleanup_done(pipeline, run).await
            }
            async fn probe_write(&self) -> Result<(), StoreError> {
                (**self).probe_write().await
            }
            fn keeps_groups(&self) -> bool {
                (**self).keeps_groups()
            }
            async fn enter_group(&self, entry: &GroupEntry) -> Result<GroupTurn, StoreError> {
                (**self).enter_group(entry).await
            }
            async fn leave_group(&self, group: &str, member: &str) -> Result<(), StoreError> {
                (**self).leave_group(group, member).await
            }
        }
    };
}

forward_run_store!(Arc<S>);
forward_run_store!(Box<S>);
