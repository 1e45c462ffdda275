//! Where tasks run: a pipeline of 24 tasks spreads over both nodes of the test swarm,
//! and a task that asks for a node label (`GOFER_SWARM_CONSTRAINTS`) runs there. The
//! swarm itself is asked where each task ran (`SwarmScheduler::node_of`, read by a
//! wrapper just before the executor removes the service).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use common::*;
use gofer_core::naming::LABEL_TASK;
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, DynScheduler,
    ExitStatus, LogStream, Pipeline, RunOptions, RunStatus, SandboxSpec, Scheduler, SchedulerError,
    Task,
};
use gofer_engine::testing::assert_nothing_left;
use gofer_engine::{Engine, InMemoryLogSink};
use gofer_scheduler_swarm::{SwarmScheduler, CONSTRAINTS_ENV};

/// The swarm, noting for each started service the task it runs and, before removal,
/// the node the swarm says it ran on.
#[derive(Debug)]
struct WhereRan {
    inner: SwarmScheduler,
    task_of: Mutex<HashMap<ContainerId, String>>,
    ran_on: Mutex<BTreeMap<String, String>>,
}

#[async_trait]
impl Scheduler for WhereRan {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        let task = spec.labels.get(LABEL_TASK).cloned().unwrap_or_default();
        let id = self.inner.start(spec).await?;
        self.task_of.lock().unwrap().insert(id.clone(), task);
        Ok(id)
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        self.inner.wait(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        self.inner.state(id).await
    }
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        self.inner.start_created(id).await
    }
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        self.inner.logs(id).await
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        self.inner.stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        let task = self.task_of.lock().unwrap().get(id).cloned();
        if let Some(task) = task {
            let node = self.inner.node_of(id).await?.unwrap_or_default();
            self.ran_on.lock().unwrap().insert(task, node);
        }
        self.inner.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        self.inner.list(labels).await
    }
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        self.inner.create_sandbox(spec).await
    }
}

async fn run_where(pipeline: &Pipeline) -> Option<BTreeMap<String, String>> {
    let s = scheduler().await?;
    let id = instance();
    let recorder = Arc::new(WhereRan {
        inner: s.clone(),
        task_of: Mutex::default(),
        ran_on: Mutex::default(),
    });
    let engine = Engine::builder(recorder.clone() as Arc<DynScheduler>)
        .instance_id(&id)
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()
        .unwrap();
    let run = engine
        .start_run(pipeline, RunOptions::new())
        .unwrap()
        .wait()
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_nothing_left(&s, &id).await;
    let ran_on = recorder.ran_on.lock().unwrap().clone();
    Some(ran_on)
}

fn per_node(ran_on: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in ran_on.values() {
        *counts.entry(node.clone()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test]
async fn a_pipeline_of_24_tasks_runs_on_both_nodes() {
    let mut pipeline = Pipeline::new("spread", "Spread over the swarm");
    for i in 0..24 {
        pipeline = pipeline.task(Task::new(format!("task{i:02}"), IMAGE).command([
            "sh",
            "-c",
            "echo \"$GOFER_TASK_ID\"; sleep 1",
        ]));
    }
    let Some(ran_on) = run_where(&pipeline).await else {
        return;
    };
    let counts = per_node(&ran_on);
    println!("placement: tasks per node {counts:?}");
    assert_eq!(ran_on.len(), 24, "{ran_on:?}");
    assert_eq!(
        counts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["gofer-swarm-manager", "gofer-swarm-worker"],
        "{ran_on:?}"
    );
}

#[tokio::test]
async fn a_task_asking_for_a_node_label_runs_on_such_a_node() {
    let mut pipeline = Pipeline::new("placed", "Placement by node label");
    for (node, n) in [("worker", 3), ("manager", 3)] {
        for i in 0..n {
            pipeline = pipeline.task(
                Task::new(format!("on_{node}{i}"), IMAGE)
                    .command(["true"])
                    .variable(CONSTRAINTS_ENV, format!("node.labels.gofer-node=={node}")),
            );
        }
    }
    let Some(ran_on) = run_where(&pipeline).await else {
        return;
    };
    println!("placement by label: {ran_on:?}");
    assert_eq!(ran_on.len(), 6);
    for (task, node) in &ran_on {
        let want = if task.starts_with("on_worker") {
            "gofer-swarm-worker"
        } else {
            "gofer-swarm-manager"
        };
        assert_eq!(node, want, "{task} ran on {node}");
    }
}
