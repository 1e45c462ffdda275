//! Pipeline validation that reports every problem, each naming its field and task.
//!
//! Messages never grow with the input: a task id, key or value is quoted as an
//! excerpt of at most [`EXCERPT_CHARS`] characters followed by `… (N bytes)`, and a
//! cycle lists at most [`CYCLE_SHOWN`] tasks.

use std::collections::HashSet;
use std::time::Duration;

use crate::id::validate_id;
use crate::interpolate::{parse_placeholder, PlaceholderError};
use crate::pipeline::{Pipeline, MAX_PARALLELISM};
use crate::validate_cycles::find_cycles;
use crate::validate_text::{check_task_text, check_text, excerpt};
use crate::variable::is_valid_env_key;

pub use crate::validate_text::{
    EXCERPT_CHARS, MAX_ARG_BYTES, MAX_COMMAND_BYTES, MAX_ENVIRONMENT_BYTES,
};

pub use crate::validation::{ValidationErrors, ValidationIssue, CYCLE_SHOWN};

/// Smallest memory limit a container engine accepts (Docker's minimum is 6 MiB).
pub const MIN_MEMORY_BYTES: u64 = 6 * 1024 * 1024;

/// Smallest CPU limit: 0.01 CPU. Both engines enforce CPU limits as a CFS quota per
/// 100 ms period with a 1 ms minimum (Docker refuses less than 0.01 CPU; below it a
/// quota rounds to 0, which the kernel reads as no limit at all).
pub const MIN_CPUS: f64 = 0.01;

/// Largest CPU limit: 1024 CPUs, more than any host these engines run on; a larger
/// value is a mistake (the engines refuse more CPUs than the host has at start).
pub const MAX_CPUS: f64 = 1024.0;

/// Each matrix expands, its combinations' ids are valid and clash with nothing, and no
/// task variable has an axis' name.
fn check_matrices(issues: &mut Vec<ValidationIssue>, p: &Pipeline, ids: &HashSet<&str>) {
    let mut combination_ids = HashSet::new();
    for t in &p.tasks {
        let Some(m) = &t.matrix else { continue };
        let task = excerpt(&t.id);
        let mut problem = |message: String| {
            issues.push(ValidationIssue::InvalidMatrix {
                task: task.clone(),
                message,
            });
        };
        let combos = match m.combinations() {
            Ok(c) => c,
            Err(message) => {
                problem(message);
                continue;
            }
        };
        for key in m.axes.keys().chain(m.include.iter().flat_map(|e| e.keys())) {
            if !is_valid_env_key(key) {
                problem(format!("key {:?} is not a variable name", excerpt(key)));
            }
            if t.variables.contains_key(key) {
                problem(format!(
                    "key {:?} is also one of the task's variables",
                    excerpt(key)
                ));
            }
        }
        for values in &combos {
            let id = crate::matrix::combination_id(&t.id, values);
            if let Err(e) = validate_id(&id) {
                problem(format!("combination id {:?}: {e}", excerpt(&id)));
            } else if ids.contains(id.as_str()) || !combination_ids.insert(id.clone()) {
                problem(format!(
                    "combination id {:?} is another task's or another combination's",
                    excerpt(&id)
                ));
            }
        }
    }
}

pub(crate) fn validate_pipeline(p: &Pipeline) -> Result<(), ValidationErrors> {
    errors(p, pipeline_issues(p))
}

/// `Ok` without issues, else the pipeline's errors.
fn errors(p: &Pipeline, issues: Vec<ValidationIssue>) -> Result<(), ValidationErrors> {
    if issues.is_empty() {
        Ok(())
    } else {
        Err(ValidationErrors {
            pipeline: excerpt(&p.id),
            issues,
        })
    }
}

/// Every problem of the pipeline itself, in a stable order.
fn pipeline_issues(p: &Pipeline) -> Vec<ValidationIssue> {
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
    if let Some(message) = p.concurrency.as_ref().and_then(crate::Concurrency::problem) {
        issues.push(ValidationIssue::InvalidPipelineConcurrency { message });
    }
    check_text(&mut issues, None, "name", &p.name);
    if let Some(d) = &p.description {
        check_text(&mut issues, None, "description", d);
    }
    let mut seen = HashSet::new();
    let mut reported_dup = HashSet::new();
    // A parent is a task, or a matrix task of an expanded pipeline (its combinations).
    let ids: HashSet<&str> = p
        .tasks
        .iter()
        .map(|t| t.id.as_str())
        .chain(
            p.tasks
                .iter()
                .filter_map(|t| t.matrix_cell.as_ref().map(|c| c.task.as_str())),
        )
        .collect();
    check_matrices(&mut issues, p, &ids);
    for t in &p.tasks {
        let task = excerpt(&t.id);
        if let Err(source) = validate_id(&t.id) {
            issues.push(ValidationIssue::InvalidTaskId {
                task: task.clone(),
                source,
            });
        }
        if !seen.insert(t.id.as_str()) && reported_dup.insert(t.id.as_str()) {
            let positions = p
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, o)| o.id == t.id)
                .map(|(i, _)| i)
                .take(crate::validation::CYCLE_SHOWN)
                .collect();
            issues.push(ValidationIssue::DuplicateTask {
                task: task.clone(),
                positions,
            });
        }
        if t.image.trim().is_empty() {
            issues.push(ValidationIssue::EmptyImage { task: task.clone() });
        }
        for (field, list) in [("command", &t.command), ("entrypoint", &t.entrypoint)] {
            if list.as_ref().is_some_and(Vec::is_empty) {
                issues.push(ValidationIssue::EmptyList {
                    task: task.clone(),
                    field,
                });
            }
        }
        check_task_text(&mut issues, &task, t);
        for (key, value) in &t.variables {
            if !is_valid_env_key(key) {
                issues.push(ValidationIssue::InvalidVariableKey {
                    task: task.clone(),
                    key: excerpt(key),
                });
            }
            if let Err(source) = parse_placeholder(value) {
                issues.push(ValidationIssue::InvalidPlaceholder {
                    task: task.clone(),
                    key: excerpt(key),
                    source: bounded(source),
                });
            }
        }
        if t.timeout == Some(Duration::ZERO) {
            issues.push(ValidationIssue::ZeroTimeout { task: task.clone() });
        }
        if let Some(message) = t.concurrency.as_ref().and_then(crate::Concurrency::problem) {
            issues.push(ValidationIssue::InvalidConcurrency {
                task: task.clone(),
                message,
            });
        }
        if t.caches.len() > crate::MAX_CACHES {
            issues.push(ValidationIssue::InvalidCache {
                task: task.clone(),
                field: "caches".into(),
                message: format!("{} caches; at most {}", t.caches.len(), crate::MAX_CACHES),
            });
        }
        for (i, c) in t.caches.iter().enumerate() {
            let clash = t.caches[..i].iter().position(|o| o.path == c.path);
            let message = c
                .problem()
                .or_else(|| {
                    clash.map(|j| format!("path {:?} is also the path of caches[{j}]", c.path))
                })
                .or_else(|| {
                    (!p.workspace && !c.digest_paths().is_empty()).then(|| {
                        "the key takes a file's digest, but the pipeline has no workspace \
                         (set `workspace: true`)"
                            .to_string()
                    })
                });
            if let Some(message) = message {
                issues.push(ValidationIssue::InvalidCache {
                    task: task.clone(),
                    field: format!("caches[{i}]"),
                    message,
                });
            }
        }
        if let Some(retry) = &t.retry {
            for (field, message) in retry.problems() {
                issues.push(ValidationIssue::InvalidRetry {
                    task: task.clone(),
                    field,
                    message,
                });
            }
        }
        if let Some(m) = t.resources.memory_bytes {
            if m < MIN_MEMORY_BYTES {
                issues.push(ValidationIssue::InvalidResource {
                    task: task.clone(),
                    field: "memory_bytes",
                    message: format!("{m} is below the minimum of {MIN_MEMORY_BYTES} bytes"),
                });
            }
        }
        if let Some(c) = t.resources.cpus {
            if !(c.is_finite() && c > 0.0) {
                issues.push(ValidationIssue::InvalidResource {
                    task: task.clone(),
                    field: "cpus",
                    message: format!("{c} must be a positive number of CPUs"),
                });
            } else if !(MIN_CPUS..=MAX_CPUS).contains(&c) {
                issues.push(ValidationIssue::ResourceOutOfRange {
                    task: task.clone(),
                    field: "cpus",
                    value: c,
                    min: MIN_CPUS,
                    max: MAX_CPUS,
                });
            }
        }
        for parent in t.depends_on.keys() {
            if !ids.contains(parent.as_str()) {
                issues.push(ValidationIssue::UnknownParent {
                    task: task.clone(),
                    parent: excerpt(parent),
                });
            }
        }
        for service in &t.services {
            if !p.services.iter().any(|s| s.id == *service) {
                issues.push(ValidationIssue::UnknownService {
                    task: task.clone(),
                    service: excerpt(service),
                });
            }
        }
    }
    validate_services(p, &mut issues);
    issues.extend(
        find_cycles(p)
            .into_iter()
            .map(|cycle| ValidationIssue::Cycle {
                cycle: cycle.iter().map(|id| excerpt(id)).collect(),
            }),
    );
    issues
}

/// The rules of the pipeline's services: ids valid and unique, an image, variable
/// keys and placeholders as for tasks, a readiness check with a command and non-zero
/// times.
fn validate_services(p: &Pipeline, issues: &mut Vec<ValidationIssue>) {
    let mut seen = std::collections::HashSet::new();
    for s in &p.services {
        let service = excerpt(&s.id);
        let mut bad = |field: &str, message: String| {
            issues.push(ValidationIssue::InvalidService {
                service: service.clone(),
                field: field.to_string(),
                message,
            });
        };
        if let Err(e) = validate_id(&s.id) {
            bad("id", e.to_string());
        }
        if !seen.insert(s.id.as_str()) {
            bad("id", "the id is used by more than one service".to_string());
        }
        if s.image.trim().is_empty() {
            bad("image", "must not be empty".to_string());
        }
        for (key, value) in &s.variables {
            if !is_valid_env_key(key) {
                bad(
                    "variables",
                    format!("key {:?} is not an environment variable name", excerpt(key)),
                );
            } else if let Err(e) = parse_placeholder(value) {
                bad(
                    "variables",
                    format!("value of {:?}: {}", excerpt(key), bounded(e)),
                );
            }
        }
        if let Some(r) = &s.readiness {
            if r.command.is_empty() {
                bad("readiness.command", "must not be empty".to_string());
            }
            if r.interval.is_zero() {
                bad(
                    "readiness.interval",
                    "must be greater than zero".to_string(),
                );
            }
            if r.deadline.is_zero() {
                bad(
                    "readiness.deadline",
                    "must be greater than zero".to_string(),
                );
            }
        }
    }
}

/// A placeholder error with its key and prefix as excerpts.
fn bounded(e: PlaceholderError) -> PlaceholderError {
    match e {
        PlaceholderError::InvalidKey { prefix, key } => PlaceholderError::InvalidKey {
            prefix,
            key: excerpt(&key),
        },
        other => other,
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

impl Pipeline {
    /// Checks every rule and reports every problem found.
    ///
    /// # Errors
    /// [`ValidationErrors`] lists each problem with the field and task it concerns.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        validate_pipeline(self)
    }

    /// [`Pipeline::validate`], and what a backend with `caps` cannot do: a cache
    /// ([`crate::cache`]) needs volumes every container sees
    /// ([`VolumeScope::Engine`](crate::VolumeScope)).
    ///
    /// # Errors
    /// Every problem, each naming its field.
    pub fn validate_for(&self, caps: &crate::Capabilities) -> Result<(), ValidationErrors> {
        let mut issues = pipeline_issues(self);
        let holds_caches = caps.volumes && caps.volume_scope == crate::VolumeScope::Engine;
        if !holds_caches {
            for t in self.tasks.iter().filter(|t| !t.caches.is_empty()) {
                issues.push(ValidationIssue::InvalidCache {
                    task: excerpt(&t.id),
                    field: "caches".into(),
                    message: if caps.volumes {
                        "the backend keeps a volume on one node (volume scope Node), so it holds no caches".into()
                    } else {
                        "the backend cannot make volumes (capability `volumes`), so it holds no caches".into()
                    },
                });
            }
        }
        errors(self, issues)
    }
}
