//! From the file format to the engine's [`Pipeline`], with every problem at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use gofer_core::{
    parse_placeholder, Concurrency, ConcurrencyPolicy, Matrix, Pipeline, Placeholder, PullPolicy,
    Readiness, RegistryAuth, RequiredParentStatus, RetryOn, RetryPolicy, Scalar, Service, Task,
};

use super::format::{
    ConcurrencyPolicyFile, ParentStatus, PipelineFile, PullPolicyFile, ReadinessFile,
    RegistryAuthFile, RetryFile, ScalarFile, ServiceFile, TaskFile,
};
use super::parse::{self, FileError};

/// A pipeline read from a file, with the secret placeholders of its registry
/// passwords (resolved from the secret store just before a run starts).
#[derive(Debug, Clone)]
pub struct LoadedPipeline {
    /// The pipeline; a registry password is its placeholder text, which the engine
    /// resolves when the task starts.
    pub pipeline: Pipeline,
    /// Task id → the placeholder of its registry password (checked before a run).
    pub registry_secrets: Vec<(String, Placeholder)>,
    /// The image of the run's network sandbox holder: the file's `sandbox_image`, or
    /// the first service's image when the pipeline has services (they need the
    /// sandbox; the other tasks run in it too).
    pub sandbox_image: Option<String>,
}

/// Reads, parses and validates a pipeline file.
///
/// # Errors
/// [`FileError`]; [`FileError::Invalid`] lists every problem, each naming its field
/// and, where it can be found, the line of the entry it is about (`line 7: field
/// `image` of task "build": ...`).
pub fn load(path: &Path) -> Result<LoadedPipeline, FileError> {
    let (file, format, text) = parse::read(path)?;
    convert(file).map_err(|problems| FileError::Invalid {
        path: path.to_path_buf(),
        problems: problems
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // The same problem twice is about the second entry of that id.
                let nth = problems[..i].iter().filter(|q| *q == p).count();
                match super::locate::line_of(&text, format, p, nth) {
                    Some(line) => format!("line {line}: {p}"),
                    None => p.clone(),
                }
            })
            .collect(),
    })
}

/// Maps a parsed file onto a [`Pipeline`] and validates it.
///
/// # Errors
/// Every problem found, each naming its field (and task).
pub fn convert(file: PipelineFile) -> Result<LoadedPipeline, Vec<String>> {
    let mut problems = Vec::new();
    let mut registry_secrets = Vec::new();
    let name = file.name.clone().unwrap_or_else(|| file.id.clone());
    let mut pipeline = Pipeline::new(file.id, name).parallelism(file.parallelism.unwrap_or(0));
    if let Some(d) = file.description {
        pipeline = pipeline.description(d);
    }
    pipeline = pipeline.workspace(file.workspace.unwrap_or(false));
    if let Some(c) = file.concurrency {
        pipeline = pipeline.concurrency(concurrency(c));
    }
    let sandbox_image = match (&file.sandbox_image, file.services.first()) {
        (Some(image), _) => Some(image.clone()),
        (None, Some(first)) => Some(first.image.clone()),
        (None, None) => None,
    };
    for s in file.services {
        pipeline = pipeline.service(service(s, &mut problems));
    }
    for t in file.tasks {
        let id = t.id.clone();
        match task(t, &mut problems) {
            Some((task, secret)) => {
                if let Some(p) = secret {
                    registry_secrets.push((id, p));
                }
                pipeline = pipeline.task(task);
            }
            None => pipeline = pipeline.task(Task::new(id, "-")),
        }
    }
    if let Err(errors) = pipeline.validate() {
        problems.extend(errors.issues.iter().map(ToString::to_string));
    }
    if problems.is_empty() {
        Ok(LoadedPipeline {
            pipeline,
            registry_secrets,
            sandbox_image,
        })
    } else {
        Err(problems)
    }
}

/// A concurrency group as the engine takes it.
fn concurrency(c: super::format::ConcurrencyFile) -> Concurrency {
    let policy = match c.policy {
        Some(ConcurrencyPolicyFile::CancelInProgress) => ConcurrencyPolicy::CancelInProgress,
        _ => ConcurrencyPolicy::Queue,
    };
    Concurrency::new(c.group)
        .limit(c.limit.unwrap_or(1))
        .policy(policy)
}

fn task(t: TaskFile, problems: &mut Vec<String>) -> Option<(Task, Option<Placeholder>)> {
    let before = problems.len();
    let id = t.id;
    let mut task = Task::new(id.clone(), t.image);
    if let Some(d) = t.description {
        task = task.description(d);
    }
    if let Some(c) = t.command {
        task = task.command(c);
    }
    if let Some(e) = t.entrypoint {
        task = task.entrypoint(e);
    }
    task = task.variables(t.variables.unwrap_or_default());
    for (parent, status) in t.depends_on.unwrap_or_default() {
        let status = match status {
            ParentStatus::Any => RequiredParentStatus::Any,
            ParentStatus::Success => RequiredParentStatus::Success,
            ParentStatus::Failure => RequiredParentStatus::Failure,
        };
        task = task.depends_on(parent, status);
    }
    task = task.inject_api_token(t.inject_api_token.unwrap_or(false));
    let policy = match (t.pull_policy, t.always_pull_newest_image) {
        (Some(p), Some(always)) if (p == PullPolicyFile::Always) != always => {
            problems.push(format!(
                "fields `pull_policy` and `always_pull_newest_image` of task {id:?}: they disagree; give one"
            ));
            PullPolicy::IfNotPresent
        }
        (Some(PullPolicyFile::Always), _) | (None, Some(true)) => PullPolicy::Always,
        (Some(PullPolicyFile::Never), _) => PullPolicy::Never,
        _ => PullPolicy::IfNotPresent,
    };
    task = task.pull_policy(policy);
    if let Some(timeout) = t.timeout {
        match duration(&timeout, "`30s`, `5m`") {
            Ok(d) => task = task.timeout(d),
            Err(why) => problems.push(format!("field `timeout` of task {id:?}: {why}")),
        }
    }
    if let Some(r) = t.resources {
        if let Some(m) = r.memory_bytes {
            task = task.memory_limit(m);
        }
        if let Some(c) = r.cpus {
            task = task.cpu_limit(c);
        }
    }
    if let Some(r) = t.retry {
        if let Some(policy) = retry(&id, r, problems) {
            task = task.retry(policy);
        }
    }
    for s in t.needs_services.unwrap_or_default() {
        task = task.needs_service(s);
    }
    if let Some(m) = t.matrix {
        let entries = |list: Vec<BTreeMap<String, ScalarFile>>| -> Vec<BTreeMap<String, Scalar>> {
            list.into_iter()
                .map(|e| e.into_iter().map(|(k, v)| (k, Scalar(v.text()))).collect())
                .collect()
        };
        let mut matrix = Matrix::new(
            m.axes
                .into_iter()
                .map(|(k, vs)| (k, vs.iter().map(|v| Scalar(v.text())).collect::<Vec<_>>())),
        )
        .fail_fast(m.fail_fast);
        matrix.include = entries(m.include);
        matrix.exclude = entries(m.exclude);
        task = task.matrix(matrix);
    }
    if let Some(c) = t.concurrency {
        task = task.concurrency(concurrency(c));
    }
    for c in t.caches {
        task = task.cache(gofer_core::Cache::new(c.key, c.path).restore_keys(c.restore_keys));
    }
    let mut secret = None;
    if let Some(auth) = t.registry_auth {
        if let Some((username, password, placeholder)) = registry_auth(&id, auth, problems) {
            task.registry_auth = Some(RegistryAuth::new(username, password));
            secret = Some(placeholder);
        }
    }
    (problems.len() == before).then_some((task, secret))
}

fn pull_policy(p: Option<PullPolicyFile>) -> PullPolicy {
    match p {
        Some(PullPolicyFile::Always) => PullPolicy::Always,
        Some(PullPolicyFile::Never) => PullPolicy::Never,
        Some(PullPolicyFile::IfNotPresent) | None => PullPolicy::IfNotPresent,
    }
}

/// A service of the file; its problems are added to `problems` (the pipeline's
/// validation names the rest).
fn service(s: ServiceFile, problems: &mut Vec<String>) -> Service {
    let id = s.id;
    let mut service = Service::new(id.clone(), s.image).pull_policy(pull_policy(s.pull_policy));
    if let Some(c) = s.command {
        service = service.command(c);
    }
    if let Some(e) = s.entrypoint {
        service = service.entrypoint(e);
    }
    for (k, v) in s.variables.unwrap_or_default() {
        service = service.variable(k, v);
    }
    if let Some(r) = s.readiness {
        service = service.readiness(readiness(&id, r, problems));
    }
    service
}

fn readiness(service: &str, r: ReadinessFile, problems: &mut Vec<String>) -> Readiness {
    let mut duration = |field: &str, value: Option<String>, default: Duration| match value {
        None => default,
        Some(text) => duration(&text, "`500ms`, `30s`").unwrap_or_else(|why| {
            problems.push(format!(
                "field `readiness.{field}` of service {service:?}: {why}"
            ));
            default
        }),
    };
    let interval = duration("interval", r.interval, Duration::from_secs(1));
    let deadline = duration("deadline", r.deadline, Duration::from_secs(60));
    Readiness::new(r.command, interval, deadline)
}

fn retry(task: &str, r: RetryFile, problems: &mut Vec<String>) -> Option<RetryPolicy> {
    let mut ok = true;
    let mut duration = |field: &str, value: Option<String>, default: Duration| match value {
        None => default,
        Some(text) => duration(&text, "`1s`, `5m`").unwrap_or_else(|why| {
            problems.push(format!("field `retry.{field}` of task {task:?}: {why}"));
            ok = false;
            default
        }),
    };
    let initial = duration("initial_backoff", r.initial_backoff, Duration::ZERO);
    let max = duration("max_backoff", r.max_backoff, Duration::from_secs(300));
    let on = match (r.exit_codes, r.scheduler_errors_only.unwrap_or(false)) {
        (Some(_), true) => {
            problems.push(format!(
                "field `retry` of task {task:?}: give `exit_codes` or `scheduler_errors_only`, not both"
            ));
            return None;
        }
        (Some(codes), false) => RetryOn::ExitCodes(codes),
        (None, true) => RetryOn::SchedulerErrors,
        (None, false) => RetryOn::AnyFailure,
    };
    ok.then(|| {
        RetryPolicy::new(r.attempts)
            .backoff(initial, r.factor.unwrap_or(1.0), max)
            .retry_on(on)
    })
}

fn registry_auth(
    task: &str,
    auth: RegistryAuthFile,
    problems: &mut Vec<String>,
) -> Option<(String, String, Placeholder)> {
    let field = "field `registry_auth";
    let username = match (auth.username, auth.user) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{field}` of task {task:?}: give `username` or `user`, not both"
            ));
            return None;
        }
        (Some(u), None) | (None, Some(u)) => u,
        (None, None) => {
            problems.push(format!("{field}.username` of task {task:?}: missing"));
            return None;
        }
    };
    let (name, password) = match (auth.password, auth.pass) {
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{field}` of task {task:?}: give `password` or `pass`, not both"
            ));
            return None;
        }
        (Some(p), None) => ("password", p),
        (None, Some(p)) => ("pass", p),
        (None, None) => {
            problems.push(format!("{field}.password` of task {task:?}: missing"));
            return None;
        }
    };
    let how = format!(
        "store the password with `gofer secret set <key> --pipeline <pipeline>` (value on \
         standard input) and write `{name} = \"secret{{{{<key>}}}}\"` (or \
         `global_secret{{{{<key>}}}}`)"
    );
    match parse_placeholder(&password) {
        Ok(Some(p)) if p.kind.is_secret() => Some((username, password, p)),
        Ok(Some(_)) => {
            problems.push(format!(
                "{field}.{name}` of task {task:?}: must be a secret placeholder, not an object one: {how}"
            ));
            None
        }
        Ok(None) | Err(_) => {
            problems.push(format!(
                "{field}.{name}` of task {task:?}: a literal password is not accepted in a pipeline file: {how}"
            ));
            None
        }
    }
}

/// Reads a duration as pipeline files and flags write it (`30s`, `1m 30s`); why not, in
/// words: a negative one is said to be negative (the parser alone would only say that
/// `-` is not a number), anything else quotes `examples`.
pub(crate) fn duration(text: &str, examples: &str) -> Result<Duration, String> {
    let t = text.trim();
    if let Some(rest) = t.strip_prefix('-') {
        if humantime::parse_duration(rest.trim()).is_ok() {
            return Err(format!("{text:?} is negative: a duration is 0 or more"));
        }
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{text:?} is not a duration (such as {examples}): {e}"))
}
