//! Pipeline validation that reports every problem, each naming its field and task.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use crate::id::{validate_id, IdError};
use crate::interpolate::{parse_placeholder, PlaceholderError};
use crate::pipeline::{Pipeline, MAX_PARALLELISM};
use crate::variable::is_valid_env_key;

/// One problem found in a pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationIssue {
    /// The pipeline id is not a valid id.
    #[error("field `id` of the pipeline: {source}")]
    InvalidPipelineId {
        /// The rule that failed.
        source: IdError,
    },
    /// A task id is not a valid id.
    #[error("field `id` of task {task:?}: {source}")]
    InvalidTaskId {
        /// The offending id.
        task: String,
        /// The rule that failed.
        source: IdError,
    },
    /// Two tasks share an id.
    #[error("task {task:?}: the id is used by more than one task")]
    DuplicateTask {
        /// The shared id.
        task: String,
    },
    /// A task depends on a task that is not in the pipeline.
    #[error("field `depends_on` of task {task:?}: unknown parent {parent:?}")]
    UnknownParent {
        /// The child.
        task: String,
        /// The missing parent.
        parent: String,
    },
    /// The dependencies form a cycle; the list starts and ends with the same task.
    #[error("field `depends_on`: tasks form a cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The tasks of the cycle in order, first repeated at the end.
        cycle: Vec<String>,
    },
    /// A task has an empty image.
    #[error("field `image` of task {task:?}: must not be empty")]
    EmptyImage {
        /// The task.
        task: String,
    },
    /// A variable key is not an environment-variable name.
    #[error("field `variables` of task {task:?}: key {key:?} is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")]
    InvalidVariableKey {
        /// The task.
        task: String,
        /// The key.
        key: String,
    },
    /// A variable value holds a malformed placeholder.
    #[error("field `variables` of task {task:?}: value of {key:?}: {source}")]
    InvalidPlaceholder {
        /// The task.
        task: String,
        /// The key.
        key: String,
        /// What is wrong.
        source: PlaceholderError,
    },
    /// A timeout of zero.
    #[error("field `timeout` of task {task:?}: must be greater than zero")]
    ZeroTimeout {
        /// The task.
        task: String,
    },
    /// A resource limit that cannot be honoured.
    #[error("field `resources.{field}` of task {task:?}: {message}")]
    InvalidResource {
        /// The task.
        task: String,
        /// `memory_bytes` or `cpus`.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Parallelism above [`MAX_PARALLELISM`].
    #[error("field `parallelism` of the pipeline: {value} exceeds the maximum {MAX_PARALLELISM} (0 means unlimited)")]
    Parallelism {
        /// The value given.
        value: u32,
    },
    /// A pipeline without tasks.
    #[error("field `tasks` of the pipeline: a pipeline needs at least one task")]
    NoTasks,
    /// A command or entrypoint given as an empty list.
    #[error("field `{field}` of task {task:?}: must not be an empty list (leave it unset to keep the image's)")]
    EmptyList {
        /// The task.
        task: String,
        /// `command` or `entrypoint`.
        field: &'static str,
    },
}

/// Every problem found in one pipeline.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ValidationErrors {
    /// The pipeline's id as given.
    pub pipeline: String,
    /// The problems, in a stable order.
    pub issues: Vec<ValidationIssue>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pipeline {:?} is invalid ({} problem{})",
            self.pipeline,
            self.issues.len(),
            if self.issues.len() == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "; {issue}")?;
        }
        Ok(())
    }
}

/// Smallest memory limit a container engine accepts (Docker's minimum is 6 MiB).
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

pub(crate) fn validate_pipeline(p: &Pipeline) -> Result<(), ValidationErrors> {
    let mut issues = Vec::new();
    if let Err(source) = validate_id(&p.id) {
        issues.push(ValidationIssue::InvalidPipelineId { source });
    }
    if p.parallelism > MAX_PARALLELISM {
        issues.push(ValidationIssue::Parallelism {
            value: p.parallelism,
        });
    }
    if p.tasks.is_empty() {
        issues.push(ValidationIssue::NoTasks);
    }
    let mut seen = HashSet::new();
    let mut reported_dup = HashSet::new();
    let ids: HashSet<&str> = p.tasks.iter().map(|t| t.id.as_str()).collect();
    for t in &p.tasks {
        if let Err(source) = validate_id(&t.id) {
            issues.push(ValidationIssue::InvalidTaskId {
                task: t.id.clone(),
                source,
            });
        }
        if !seen.insert(t.id.as_str()) && reported_dup.insert(t.id.as_str()) {
            issues.push(ValidationIssue::DuplicateTask { task: t.id.clone() });
        }
        if t.image.trim().is_empty() {
            issues.push(ValidationIssue::EmptyImage { task: t.id.clone() });
        }
        for (field, list) in [("command", &t.command), ("entrypoint", &t.entrypoint)] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                issues.push(ValidationIssue::EmptyList {
                    task: t.id.clone(),
                    field,
                });
            }
        }
        for (key, value) in &t.variables {
            if !is_valid_env_key(key) {
                issues.push(ValidationIssue::InvalidVariableKey {
                    task: t.id.clone(),
                    key: key.clone(),
                });
            }
            if let Err(source) = parse_placeholder(value) {
                issues.push(ValidationIssue::InvalidPlaceholder {
                    task: t.id.clone(),
                    key: key.clone(),
                    source,
                });
            }
        }
        if t.timeout == Some(Duration::ZERO) {
            issues.push(ValidationIssue::ZeroTimeout { task: t.id.clone() });
        }
        if let Some(m) = t.resources.memory_bytes {
            if m < MIN_MEMORY_BYTES {
                issues.push(ValidationIssue::InvalidResource {
                    task: t.id.clone(),
                    field: "memory_bytes",
                    message: format!("{m} is below the minimum of {MIN_MEMORY_BYTES} bytes"),
                });
            }
        }
        if let Some(c) = t.resources.cpus {
            if !(c.is_finite() && c > 0.0) {
                issues.push(ValidationIssue::InvalidResource {
                    task: t.id.clone(),
                    field: "cpus",
                    message: format!("{c} must be a positive number of CPUs"),
                });
            }
        }
        for parent in t.depends_on.keys() {
            if !ids.contains(parent.as_str()) {
                issues.push(ValidationIssue::UnknownParent {
                    task: t.id.clone(),
                    parent: parent.clone(),
                });
            }
        }
    }
    issues.extend(
        find_cycles(p)
            .into_iter()
            .map(|cycle| ValidationIssue::Cycle { cycle }),
    );
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors {
            pipeline: p.id.clone(),
            issues,
        })
    }
}

/// Finds cycles in the dependency graph (edges child → parent), each reported once,
/// rotated so it starts at its smallest id. Iterative, so deep chains cannot overflow
/// the stack.
fn find_cycles(p: &Pipeline) -> Vec<Vec<String>> {
    // First task with each id wins; duplicates are reported elsewhere.
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for t in &p.tasks {
        graph
            .entry(t.id.as_str())
            .or_insert_with(|| t.depends_on.keys().map(String::as_str).collect());
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnStack,
        Done,
    }
    let mut mark: HashMap<&str, Mark> = graph.keys().map(|k| (*k, Mark::New)).collect();
    let mut cycles: Vec<Vec<String>> = Vec::new();
    let mut seen_cycles = HashSet::new();
    for &root in graph.keys() {
        if mark[root] != Mark::New {
            continue;
        }
        // Stack of (node, next edge index).
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        mark.insert(root, Mark::OnStack);
        while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
            let parents = &graph[node];
            if *edge < parents.len() {
                let next = parents[*edge];
                *edge += 1;
                match mark.get(next).copied() {
                    None | Some(Mark::Done) => {}
                    Some(Mark::New) => {
                        mark.insert(next, Mark::OnStack);
                        stack.push((next, 0));
                    }
                    Some(Mark::OnStack) => {
                        let start = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        // Edges go child -> parent; report in dependency order (parent first).
                        let mut cycle: Vec<String> = stack[start..]
                            .iter()
                            .rev()
                            .map(|(n, _)| n.to_string())
                            .collect();
                        let min = cycle
                            .iter()
                            .enumerate()
                            .min_by(|a, b| a.1.cmp(b.1))
                            .map_or(0, |(i, _)| i);
                        cycle.rotate_left(min);
                        if seen_cycles.insert(cycle.clone()) {
                            let first = cycle[0].clone();
                            cycle.push(first);
                            cycles.push(cycle);
                        }
                    }
                }
            } else {
                mark.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{RequiredParentStatus::*, Task};

    fn issues(p: &Pipeline) -> Vec<ValidationIssue> {
        p.validate().err().map(|e| e.issues).unwrap_or_default()
    }

    #[test]
    fn valid_pipeline_passes() {
        let p = Pipeline::new("pipe", "P")
            .task(Task::new("aaa", "busybox"))
            .task(Task::new("bbb", "busybox").depends_on("aaa", Success));
        assert_eq!(p.validate(), Ok(()));
    }

    #[test]
    fn reports_every_problem_with_field_and_task() {
        let p = Pipeline::new("p", "P")
            .parallelism(MAX_PARALLELISM + 1)
            .task(Task::new("ok_task", " "))
            .task(Task::new("ok_task", "busybox").variable("1BAD", "x"))
            .task(Task::new("bad id", "busybox").depends_on("ghost", Any))
            .task(
                Task::new("zero", "busybox")
                    .timeout(Duration::ZERO)
                    .memory_limit(1)
                    .cpu_limit(0.0),
            )
            .task(Task::new("cmd", "busybox").command(Vec::<String>::new()))
            .task(Task::new("vars", "busybox").variable("K", "secret{{}}"));
        let err = p.validate().expect_err("invalid");
        let text = err.to_string();
        let got = err.issues;
        assert!(got.contains(&ValidationIssue::InvalidPipelineId {
            source: IdError::Length { len: 1 }
        }));
        assert!(got.contains(&ValidationIssue::Parallelism {
            value: MAX_PARALLELISM + 1
        }));
        assert!(got.contains(&ValidationIssue::EmptyImage {
            task: "ok_task".into()
        }));
        assert!(got.contains(&ValidationIssue::DuplicateTask {
            task: "ok_task".into()
        }));
        assert!(got.contains(&ValidationIssue::InvalidVariableKey {
            task: "ok_task".into(),
            key: "1BAD".into()
        }));
        assert!(got.contains(&ValidationIssue::InvalidTaskId {
            task: "bad id".into(),
            source: IdError::Character { found: ' ' }
        }));
        assert!(got.contains(&ValidationIssue::UnknownParent {
            task: "bad id".into(),
            parent: "ghost".into()
        }));
        assert!(got.contains(&ValidationIssue::ZeroTimeout {
            task: "zero".into()
        }));
        assert!(got.iter().any(|i| matches!(
            i,
            ValidationIssue::InvalidResource {
                field: "memory_bytes",
                ..
            }
        )));
        assert!(got
            .iter()
            .any(|i| matches!(i, ValidationIssue::InvalidResource { field: "cpus", .. })));
        assert!(got.contains(&ValidationIssue::EmptyList {
            task: "cmd".into(),
            field: "command"
        }));
        assert!(got
            .iter()
            .any(|i| matches!(i, ValidationIssue::InvalidPlaceholder { key, .. } if key == "K")));
        assert!(text.contains("field `timeout` of task \"zero\""), "{text}");
        assert_eq!(got.len(), 12, "{got:#?}");
    }

    #[test]
    fn empty_pipeline_is_rejected() {
        assert_eq!(
            issues(&Pipeline::new("pipe", "P")),
            vec![ValidationIssue::NoTasks]
        );
    }

    #[test]
    fn cycle_is_named_in_order() {
        let p = Pipeline::new("pipe", "P")
            .task(Task::new("aaa", "i").depends_on("ccc", Any))
            .task(Task::new("bbb", "i").depends_on("aaa", Any))
            .task(Task::new("ccc", "i").depends_on("bbb", Any))
            .task(Task::new("ddd", "i").depends_on("ddd", Any));
        let got = issues(&p);
        assert!(
            got.contains(&ValidationIssue::Cycle {
                cycle: vec!["aaa".into(), "bbb".into(), "ccc".into(), "aaa".into()]
            }),
            "{got:?}"
        );
        assert!(got.contains(&ValidationIssue::Cycle {
            cycle: vec!["ddd".into(), "ddd".into()]
        }));
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let mut p = Pipeline::new("pipe", "P").task(Task::new("t00000", "i"));
        for i in 1..20_000 {
            p = p
                .task(Task::new(format!("t{i:05}"), "i").depends_on(format!("t{:05}", i - 1), Any));
        }
        assert_eq!(p.validate(), Ok(()));
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use crate::task::{RequiredParentStatus, Task};
    use proptest::prelude::*;

    fn status() -> impl Strategy<Value = RequiredParentStatus> {
        prop_oneof![
            Just(RequiredParentStatus::Any),
            Just(RequiredParentStatus::Success),
            Just(RequiredParentStatus::Failure)
        ]
    }

    /// A DAG: task i may depend only on tasks with a smaller index.
    fn dag() -> impl Strategy<Value = Vec<Vec<(usize, RequiredParentStatus)>>> {
        (1usize..40).prop_flat_map(|n| {
            (0..n)
                .map(|i| proptest::collection::vec((0..i.max(1), status()), 0..(i.min(4) + 1)))
                .collect::<Vec<_>>()
                .prop_map(|mut v| {
                    v[0].clear();
                    v
                })
        })
    }

    fn build(prefix: &str, edges: &[Vec<(usize, RequiredParentStatus)>]) -> Vec<Task> {
        edges
            .iter()
            .enumerate()
            .map(|(i, parents)| {
                Task::new(format!("{prefix}{i:03}"), "busybox")
                    .variable("KEY_1", "value")
                    .depends_on_many(parents.iter().map(|(p, s)| (format!("{prefix}{p:03}"), *s)))
            })
            .collect()
    }

    proptest! {
        #[test]
        fn every_generated_valid_pipeline_validates(edges in dag(), par in 0..=MAX_PARALLELISM) {
            let p = Pipeline::new("pipe", "P").parallelism(par).tasks(build("t", &edges));
            prop_assert_eq!(p.validate(), Ok(()));
        }

        #[test]
        fn every_generated_cycle_is_reported(
            edges in dag(),
            ring_len in 1usize..8,
            into_ring in proptest::collection::vec((0usize..40, 0usize..8), 0..10),
        ) {
            // A ring r0 <- r1 <- ... <- r(k-1) <- r0, plus DAG tasks that may depend on ring
            // tasks (never the reverse), so the ring is the only cycle.
            let mut tasks = build("t", &edges);
            for i in 0..ring_len {
                let parent = format!("r{:03}", (i + 1) % ring_len);
                tasks.push(Task::new(format!("r{i:03}"), "busybox").depends_on(parent, RequiredParentStatus::Any));
            }
            for (t, r) in into_ring {
                if let Some(task) = tasks.get_mut(t % edges.len()) {
                    task.depends_on.insert(format!("r{:03}", r % ring_len), RequiredParentStatus::Any);
                }
            }
            let err = Pipeline::new("pipe", "P").tasks(tasks).validate().expect_err("cycle");
            let cycles: Vec<_> = err.issues.iter().filter_map(|i| match i {
                ValidationIssue::Cycle { cycle } => Some(cycle.clone()),
                _ => None,
            }).collect();
            prop_assert_eq!(cycles.len(), 1, "{:?}", err.issues);
            let cycle = &cycles[0];
            prop_assert_eq!(cycle.len(), ring_len + 1);
            prop_assert_eq!(cycle.first(), cycle.last());
            let mut members: Vec<_> = cycle[..ring_len].to_vec();
            members.sort();
            let expected: Vec<_> = (0..ring_len).map(|i| format!("r{i:03}")).collect();
            prop_assert_eq!(members, expected);
            prop_assert_eq!(err.issues.len(), 1);
        }
    }
}
