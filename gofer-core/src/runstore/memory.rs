//! [`InMemoryRunStore`]: run history kept in memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::error::StoreError;
use crate::pipeline::Pipeline;
use crate::run::{Event, Run, RunState};

use super::groups::{enter, GroupEntry, GroupMember, GroupTurn};
use super::record::{without_credentials, RunChange, RunSpec, TaskDetails, UnfinishedRun};
use super::RunStore;

const NAME: &str = "memory";

#[derive(Debug, Clone)]
struct RunEntry {
    run: Run,
    spec: RunSpec,
    logs: Vec<Option<String>>,
    events: Vec<Event>,
}

#[derive(Debug, Default)]
struct Maps {
    pipelines: BTreeMap<String, Pipeline>,
    runs: BTreeMap<(String, u64), RunEntry>,
    groups: BTreeMap<String, Vec<GroupMember>>,
    /// The highest run number each pipeline ever had (deleted runs' included).
    highest: BTreeMap<String, u64>,
    /// Deleted runs awaiting cleanup, in deletion order.
    cleanups: Vec<(String, u64)>,
}

/// Keeps run history in memory; nothing survives the process. Suitable for tests and
/// for hosts that need no recovery across restarts. Cheap to clone; clones share the
/// data, so a test can hand the same store to a second engine.
#[derive(Debug, Default, Clone)]
pub struct InMemoryRunStore {
    inner: Arc<Mutex<Maps>>,
}

impl InMemoryRunStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Maps> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn apply_one(
    runs: &mut BTreeMap<(String, u64), RunEntry>,
    c: &RunChange,
) -> Result<(), StoreError> {
    let (pipeline, run_id) = c.run_key();
    let key = (pipeline.to_string(), run_id);
    if let RunChange::Created { run, spec } = c {
        if runs.contains_key(&key) {
            return Err(StoreError::run_exists(NAME, pipeline, run_id));
        }
        runs.insert(
            key,
            RunEntry {
                run: run.clone(),
                spec: spec.clone(),
                logs: vec![None; run.tasks.len()],
                events: Vec::new(),
            },
        );
        return Ok(());
    }
    let entry = runs
        .get_mut(&key)
        .ok_or_else(|| StoreError::run_not_found(NAME, pipeline, run_id))?;
    let task_index = |entry: &RunEntry, task: &str| {
        entry
            .run
            .tasks
            .iter()
            .position(|t| t.task_id == task)
            .ok_or_else(|| StoreError::task_not_found(NAME, pipeline, run_id, task))
    };
    match c {
        RunChange::Created { .. } => {}
        RunChange::Run(header) => entry.run.apply_header(header),
        RunChange::Task { task, .. } => {
            let i = task_index(entry, &task.task_id)?;
            entry.run.tasks[i] = (**task).clone();
        }
        RunChange::Log { task, location, .. } => {
            let i = task_index(entry, task)?;
            entry.logs[i] = Some(location.clone());
        }
        RunChange::Event { event, .. } => entry.events.push(event.clone()),
    }
    Ok(())
}

#[async_trait]
impl RunStore for InMemoryRunStore {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn apply(&self, changes: &[RunChange]) -> Result<(), StoreError> {
        let mut maps = self.lock();
        // All or nothing: check every change first (runs created earlier in the batch
        // count), then apply them all.
        let mut created: BTreeMap<(String, u64), &Run> = BTreeMap::new();
        for c in changes {
            let (p, r) = c.run_key();
            let key = (p.to_string(), r);
            let existing = maps.runs.get(&key).map(|e| &e.run);
            if let RunChange::Created { run, .. } = c {
                if existing.is_some() || created.contains_key(&key) {
                    return Err(StoreError::run_exists(NAME, p, r));
                }
                created.insert(key, run);
                continue;
            }
            let run = created
                .get(&key)
                .copied()
                .or(existing)
                .ok_or_else(|| StoreError::run_not_found(NAME, p, r))?;
            let task = match c {
                RunChange::Task { task, .. } => Some(task.task_id.as_str()),
                RunChange::Log { task, .. } => Some(task.as_str()),
                _ => None,
            };
            if let Some(task) = task {
                if !run.tasks.iter().any(|t| t.task_id == task) {
                    return Err(StoreError::task_not_found(NAME, p, r, task));
                }
            }
        }
        for c in changes {
            apply_one(&mut maps.runs, c)?;
        }
        Ok(())
    }

    async fn put_pipeline(&self, pipeline: &Pipeline) -> Result<(), StoreError> {
        let (p, _) = without_credentials(pipeline);
        self.lock().pipelines.insert(p.id.clone(), p);
        Ok(())
    }

    async fn get_pipeline(&self, id: &str) -> Result<Pipeline, StoreError> {
        self.lock()
            .pipelines
            .get(id)
            .cloned()
            .ok_or_else(|| StoreError::pipeline_not_found(NAME, id))
    }

    async fn list_pipelines(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.lock().pipelines.keys().cloned().collect())
    }

    async fn get_run(&self, pipeline: &str, run: u64) -> Result<Run, StoreError> {
        self.lock()
            .runs
            .get(&(pipeline.to_string(), run))
            .map(|e| e.run.clone())
            .ok_or_else(|| StoreError::run_not_found(NAME, pipeline, run))
    }

    async fn list_runs(&self, pipeline: &str) -> Result<Vec<Run>, StoreError> {
        let maps = self.lock();
        Ok(maps
            .runs
            .range((pipeline.to_string(), 0)..=(pipeline.to_string(), u64::MAX))
            .rev()
            .map(|(_, e)| e.run.clone())
            .collect())
    }

    async fn get_task(
        &self,
        pipeline: &str,
        run: u64,
        task: &str,
    ) -> Result<TaskDetails, StoreError> {
        let maps = self.lock();
        let entry = maps
            .runs
            .get(&(pipeline.to_string(), run))
            .ok_or_else(|| StoreError::run_not_found(NAME, pipeline, run))?;
        let i = entry
            .run
            .tasks
            .iter()
            .position(|t| t.task_id == task)
            .ok_or_else(|| StoreError::task_not_found(NAME, pipeline, run, task))?;
        Ok(TaskDetails::new(
            pipeline,
            run,
            entry.run.tasks[i].clone(),
            entry.logs[i].clone(),
        ))
    }

    async fn events(&self, pipeline: &str, run: u64) -> Result<Vec<Event>, StoreError> {
        self.lock()
            .runs
            .get(&(pipeline.to_string(), run))
            .map(|e| e.events.clone())
            .ok_or_else(|| StoreError::run_not_found(NAME, pipeline, run))
    }

    async fn unfinished_runs(&self) -> Result<Vec<UnfinishedRun>, StoreError> {
        Ok(self
            .lock()
            .runs
            .values()
            .filter(|e| e.run.state != RunState::Complete)
            .map(|e| UnfinishedRun::new(e.run.clone(), e.spec.clone()))
            .collect())
    }

    async fn next_run_id(&self, pipeline: &str) -> Result<u64, StoreError> {
        let maps = self.lock();
        let live = maps
            .runs
            .range((pipeline.to_string(), 0)..=(pipeline.to_string(), u64::MAX))
            .next_back()
            .map_or(0, |((_, r), _)| *r);
        let deleted = maps.highest.get(pipeline).copied().unwrap_or(0);
        Ok(live.max(deleted) + 1)
    }

    async fn delete_run(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        let mut maps = self.lock();
        let key = (pipeline.to_string(), run);
        let entry = maps
            .runs
            .get(&key)
            .ok_or_else(|| StoreError::run_not_found(NAME, pipeline, run))?;
        if entry.run.state != RunState::Complete {
            return Err(StoreError::RunNotComplete {
                store: NAME,
                pipeline: pipeline.to_string(),
                run,
            });
        }
        maps.runs.remove(&key);
        let h = maps.highest.entry(pipeline.to_string()).or_default();
        *h = (*h).max(run);
        maps.cleanups.push(key);
        Ok(())
    }

    async fn cleanups(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self.lock().cleanups.clone())
    }

    async fn cleanup_done(&self, pipeline: &str, run: u64) -> Result<(), StoreError> {
        self.lock()
            .cleanups
            .retain(|(p, r)| !(p == pipeline && *r == run));
        Ok(())
    }

    fn keeps_groups(&self) -> bool {
        true
    }

    async fn enter_group(&self, entry: &GroupEntry) -> Result<GroupTurn, StoreError> {
        let mut maps = self.lock();
        let Maps { runs, groups, .. } = &mut *maps;
        let members = groups.entry(entry.group.clone()).or_default();
        Ok(enter(members, entry, |p, r| {
            runs.get(&(p.to_string(), r))
                .is_some_and(|e| e.run.state != RunState::Complete)
        }))
    }

    async fn leave_group(&self, group: &str, member: &str) -> Result<(), StoreError> {
        let mut maps = self.lock();
        if let Some(members) = maps.groups.get_mut(group) {
            members.retain(|m| m.member != member);
            if members.is_empty() {
                maps.groups.remove(group);
            }
        }
        Ok(())
    }

    async fn last_run_ids(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let maps = self.lock();
        let mut out: BTreeMap<String, u64> = maps.highest.clone();
        for (p, r) in maps.runs.keys() {
            let e = out.entry(p.clone()).or_default();
            *e = (*e).max(*r);
        }
        Ok(out.into_iter().collect())
    }
}
