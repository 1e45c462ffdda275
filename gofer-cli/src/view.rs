//! How runs and task executions are shown: aligned text, or JSON for scripts.

use std::time::SystemTime;

use gofer_core::{InjectedVariable, Run, TaskExecution, VariableSource};
use serde::Serialize;

use crate::progress::{reason_text, state_word};

/// A time for JSON: RFC 3339 in UTC.
fn time(t: Option<SystemTime>) -> Option<String> {
    t.map(crate::progress::timestamp)
}

/// A time for people: in the local time zone with its offset when standard output is
/// a terminal (`2026-12-08 01:19:18 +01:00`), else as in JSON (RFC 3339, UTC), so
/// piped text stays stable for scripts.
fn shown(t: Option<SystemTime>) -> Option<String> {
    use std::io::IsTerminal;
    static TTY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let tty = *TTY.get_or_init(|| std::io::stdout().is_terminal());
    t.map(|t| local_or_utc(t, tty))
}

fn local_or_utc(t: SystemTime, local: bool) -> String {
    if local {
        chrono::DateTime::<chrono::Local>::from(t)
            .format("%Y-%m-%d %H:%M:%S %:z")
            .to_string()
    } else {
        crate::progress::timestamp(t)
    }
}

fn duration(a: Option<SystemTime>, b: Option<SystemTime>) -> Option<String> {
    let d = b?.duration_since(a?).ok()?;
    Some(humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string())
}

fn source_word(s: VariableSource) -> &'static str {
    match s {
        VariableSource::PipelineConfig => "pipeline_config",
        VariableSource::RunOptions => "run_options",
        VariableSource::System => "system",
    }
}

/// A run as scripts see it.
#[derive(Debug, Serialize)]
pub struct RunView {
    /// The pipeline id.
    pub pipeline: String,
    /// The run number.
    pub run: u64,
    /// `pending`, `running`, `complete`.
    pub state: gofer_core::RunState,
    /// `successful`, `failed`, `cancelled`, `unknown`.
    pub status: gofer_core::RunStatus,
    /// Why, when cancelled or timed out.
    pub reason: Option<gofer_core::StatusReason>,
    /// An explanation.
    pub message: Option<String>,
    /// RFC 3339.
    pub started: Option<String>,
    /// RFC 3339.
    pub ended: Option<String>,
    /// The task executions (only in `run get`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<TaskView>,
}

/// A task execution as scripts see it.
#[derive(Debug, Serialize)]
pub struct TaskView {
    /// The task id.
    pub task: String,
    /// The image.
    pub image: String,
    /// `processing`, `waiting`, `running`, `complete`.
    pub state: gofer_core::TaskState,
    /// `successful`, `failed`, `cancelled`, `skipped`, `unknown`.
    pub status: gofer_core::TaskStatus,
    /// Why, when not successful.
    pub reason: Option<gofer_core::StatusReason>,
    /// An explanation.
    pub message: Option<String>,
    /// The container's exit code.
    pub exit_code: Option<i64>,
    /// RFC 3339.
    pub started: Option<String>,
    /// RFC 3339.
    pub ended: Option<String>,
    /// The container's name.
    pub container: Option<String>,
    /// The attempt the fields above describe (1 for the first).
    pub attempt: u32,
    /// The earlier attempts, each failed, oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub earlier_attempts: Vec<AttemptView>,
    /// Every injected variable with its source; secret values masked.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub variables: Vec<VariableView>,
    /// Where the log is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// An earlier attempt of a retried task.
#[derive(Debug, Serialize)]
pub struct AttemptView {
    /// Its number (1 for the first).
    pub attempt: u32,
    /// How it ended.
    pub status: gofer_core::TaskStatus,
    /// Why.
    pub reason: Option<gofer_core::StatusReason>,
    /// An explanation.
    pub message: Option<String>,
    /// The container's exit code.
    pub exit_code: Option<i64>,
    /// RFC 3339.
    pub started: Option<String>,
    /// RFC 3339.
    pub ended: Option<String>,
    /// How long it ran, in milliseconds.
    pub duration_ms: Option<u64>,
}

fn duration_ms(
    started: Option<std::time::SystemTime>,
    ended: Option<std::time::SystemTime>,
) -> Option<u64> {
    let d = ended?.duration_since(started?).ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// An injected variable.
#[derive(Debug, Serialize)]
pub struct VariableView {
    /// The key.
    pub key: String,
    /// The value (`****` when it came from a secret).
    pub value: String,
    /// `pipeline_config`, `run_options` or `system`.
    pub source: &'static str,
    /// The store placeholder it came from.
    pub placeholder: Option<gofer_core::PlaceholderKind>,
    /// Whether the value is masked.
    pub masked: bool,
}

impl RunView {
    /// A run, with or without its tasks.
    pub fn new(run: &Run, with_tasks: bool) -> Self {
        Self {
            pipeline: run.pipeline_id.clone(),
            run: run.run_id,
            state: run.state,
            status: run.status,
            reason: run.reason,
            message: run.message.clone(),
            started: time(run.started),
            ended: time(run.ended),
            tasks: if with_tasks {
                run.tasks
                    .iter()
                    .map(|t| TaskView::new(t, false, None))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }
}

impl TaskView {
    /// A task execution, with or without its variables.
    pub fn new(t: &TaskExecution, with_variables: bool, log: Option<String>) -> Self {
        Self {
            task: t.task_id.clone(),
            image: t.image.clone(),
            state: t.state,
            status: t.status,
            reason: t.reason,
            message: t.message.clone(),
            exit_code: t.exit_code,
            started: time(t.started),
            ended: time(t.ended),
            container: t.container.as_ref().map(|c| c.name.clone()),
            attempt: t.attempt,
            earlier_attempts: t
                .attempts
                .iter()
                .map(|a| AttemptView {
                    attempt: a.attempt,
                    status: a.status,
                    reason: a.reason,
                    message: a.message.clone(),
                    exit_code: a.exit_code,
                    started: time(a.started),
                    ended: time(a.ended),
                    duration_ms: duration_ms(a.started, a.ended),
                })
                .collect(),
            variables: if with_variables {
                t.variables.iter().map(VariableView::new).collect()
            } else {
                Vec::new()
            },
            log,
        }
    }
}

impl VariableView {
    fn new(v: &InjectedVariable) -> Self {
        Self {
            key: v.key.clone(),
            value: v.value.clone(),
            source: source_word(v.source),
            placeholder: v.placeholder,
            masked: v.masked,
        }
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:w$}  ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn or_dash(s: Option<String>) -> String {
    s.unwrap_or_else(|| "-".into())
}

fn status_text(
    status: impl std::fmt::Display,
    reason: Option<&gofer_core::StatusReason>,
) -> String {
    match reason {
        Some(r) => format!("{status} ({})", reason_text(r)),
        None => status.to_string(),
    }
}

/// `run list` as text.
pub fn runs_text(runs: &[Run]) -> String {
    let mut rows = vec![vec![
        "RUN".into(),
        "STATE".into(),
        "STATUS".into(),
        "STARTED".into(),
        "ENDED".into(),
        "DURATION".into(),
    ]];
    for r in runs {
        rows.push(vec![
            r.run_id.to_string(),
            format!("{:?}", r.state),
            status_text(r.status, r.reason.as_ref()),
            or_dash(shown(r.started)),
            or_dash(shown(r.ended)),
            or_dash(duration(r.started, r.ended)),
        ]);
    }
    table(&rows)
}

/// `run get` as text.
pub fn run_text(run: &Run) -> String {
    let mut out = format!(
        "pipeline {} run {}\nstate:   {:?}\nstatus:  {}\nstarted: {}\nended:   {}\n",
        run.pipeline_id,
        run.run_id,
        run.state,
        status_text(run.status, run.reason.as_ref()),
        or_dash(shown(run.started)),
        or_dash(shown(run.ended)),
    );
    if let Some(m) = &run.message {
        out.push_str(&format!("message: {m}\n"));
    }
    out.push('\n');
    let mut rows = vec![vec![
        "TASK".into(),
        "STATE".into(),
        "STATUS".into(),
        "EXIT".into(),
        "STARTED".into(),
        "DURATION".into(),
    ]];
    for t in &run.tasks {
        rows.push(vec![
            t.task_id.clone(),
            state_word(t.state).into(),
            status_text(t.status, t.reason.as_ref()),
            or_dash(t.exit_code.map(|c| c.to_string())),
            or_dash(shown(t.started)),
            or_dash(duration(t.started, t.ended)),
        ]);
    }
    out.push_str(&table(&rows));
    out
}

/// `task get` as text.
pub fn task_text(pipeline: &str, run: u64, t: &TaskExecution, log: Option<&str>) -> String {
    let mut out = format!(
        "pipeline {pipeline} run {run} task {}\nimage:     {}\nstate:     {}\nstatus:    {}\nexit code: {}\nstarted:   {}\nended:     {}\n",
        t.task_id,
        t.image,
        state_word(t.state),
        status_text(t.status, t.reason.as_ref()),
        or_dash(t.exit_code.map(|c| c.to_string())),
        or_dash(shown(t.started)),
        or_dash(shown(t.ended)),
    );
    if let Some(m) = &t.message {
        out.push_str(&format!("message:   {m}\n"));
    }
    if t.attempt > 1 || !t.attempts.is_empty() {
        out.push_str(&format!("attempt:   {}\n", t.attempt));
        for a in &t.attempts {
            let took = duration_ms(a.started, a.ended)
                .map(|ms| {
                    format!(
                        " after {}",
                        humantime::format_duration(std::time::Duration::from_millis(ms))
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "  attempt {}: {}{took}{}\n",
                a.attempt,
                status_text(a.status, a.reason.as_ref()),
                a.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ));
        }
    }
    if let Some(c) = &t.container {
        out.push_str(&format!("container: {}\n", c.name));
    }
    // A task that never made a container has no log to point at.
    let never_made = t.container.is_none() && t.attempts.is_empty();
    if let Some(l) = log.filter(|_| !never_made) {
        out.push_str(&format!("log:       {l}\n"));
    }
    out.push_str("\nvariables (most important source first wins):\n");
    let mut rows = vec![vec!["KEY".into(), "SOURCE".into(), "VALUE".into()]];
    for v in &t.variables {
        let mut value = v.value.clone();
        if let Some(p) = v.placeholder {
            value.push_str(&format!("  (from {p:?})"));
        }
        rows.push(vec![v.key.clone(), source_word(v.source).into(), value]);
    }
    if t.variables.is_empty() && t.state == gofer_core::TaskState::Complete {
        // Skipped, cancelled before its start, a failed precondition or pull.
        out.push_str("  (none: the task ended before its container was made)\n");
    } else if t.variables.is_empty() {
        out.push_str("  (none injected yet)\n");
    } else {
        out.push_str(&table(&rows));
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod time_tests {
    use super::*;

    #[test]
    fn people_get_local_time_with_its_offset_scripts_get_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_700_000);
        assert_eq!(local_or_utc(t, false), "2026-12-08T03:20:00Z");
        let local = local_or_utc(t, true);
        let parsed = chrono::DateTime::parse_from_str(&local, "%Y-%m-%d %H:%M:%S %:z").unwrap();
        assert_eq!(SystemTime::from(parsed), t, "{local}");
    }
}
