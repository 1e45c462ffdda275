//! Checks on the text a task hands to a process (NUL bytes, the kernel's size
//! limits) and bounded excerpts for messages.

use crate::task::Task;
use crate::validate::ValidationIssue;

/// Longest text quoted whole in a message, in characters; a longer one is quoted as
/// its first [`EXCERPT_CHARS`] characters, then `… (N bytes)`.
pub const EXCERPT_CHARS: usize = 64;

/// Longest single argument, entrypoint element or `KEY=value` environment entry, in
/// bytes: 128 KiB less the terminating NUL, Linux's `MAX_ARG_STRLEN`. A longer one
/// makes the container's `execve` fail (`E2BIG`).
pub const MAX_ARG_BYTES: usize = 128 * 1024 - 1;

/// Most bytes of a task's command and entrypoint together (each element counted with
/// its terminating NUL): 512 KiB.
///
/// With [`MAX_ENVIRONMENT_BYTES`] that is 1 MiB, half of Linux's usual 2 MiB limit on
/// a process's arguments and environment together (`ARG_MAX`), leaving the other
/// half to the image's own environment, the run's variables and the system ones.
pub const MAX_COMMAND_BYTES: usize = 512 * 1024;

/// Most bytes of a task's variables as environment entries (`KEY=value` and its NUL,
/// each): 512 KiB. See [`MAX_COMMAND_BYTES`].
pub const MAX_ENVIRONMENT_BYTES: usize = 512 * 1024;

/// `text` itself when at most [`EXCERPT_CHARS`] characters, else its first
/// [`EXCERPT_CHARS`] characters, `…` and its length in bytes.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes)", &text[..cut], text.len()),
    }
}

/// A NUL byte anywhere in `text` (a field of the pipeline when `task` is `None`).
pub(crate) fn check_text(
    issues: &mut Vec<ValidationIssue>,
    task: Option<&str>,
    field: &str,
    text: &str,
) {
    if let Some(at) = text.bytes().position(|b| b == 0) {
        issues.push(ValidationIssue::NulByte {
            task: task.map(str::to_string),
            field: field.to_string(),
            at,
        });
    }
}

fn check_arg(issues: &mut Vec<ValidationIssue>, task: &str, field: String, text: &str, len: usize) {
    check_text(issues, Some(task), &field, text);
    if len > MAX_ARG_BYTES {
        issues.push(ValidationIssue::TooLong {
            task: Some(task.to_string()),
            field,
            len,
            max: MAX_ARG_BYTES,
        });
    }
}

/// NUL bytes and sizes in what reaches the container: image, description, command,
/// entrypoint, variables. `task` is the excerpt of the task's id.
pub(crate) fn check_task_text(issues: &mut Vec<ValidationIssue>, task: &str, t: &Task) {
    check_text(issues, Some(task), "image", &t.image);
    if let Some(d) = &t.description {
        check_text(issues, Some(task), "description", d);
    }
    let mut command_bytes = 0usize;
    for (name, list) in [("command", &t.command), ("entrypoint", &t.entrypoint)] {
        for (i, arg) in list.iter().flatten().enumerate() {
            check_arg(issues, task, format!("{name}[{i}]"), arg, arg.len());
            command_bytes = command_bytes.saturating_add(arg.len()).saturating_add(1);
        }
    }
    if command_bytes > MAX_COMMAND_BYTES {
        issues.push(ValidationIssue::TooLong {
            task: Some(task.to_string()),
            field: "command".into(),
            len: command_bytes,
            max: MAX_COMMAND_BYTES,
        });
    }
    let mut env_bytes = 0usize;
    for (key, value) in &t.variables {
        let field = format!("variables[{}]", excerpt(key));
        // The entry the process gets: KEY=value.
        let entry = key.len().saturating_add(1).saturating_add(value.len());
        // A NUL in a key makes it no environment name: InvalidVariableKey says so.
        check_arg(issues, task, field, value, entry);
        env_bytes = env_bytes.saturating_add(entry).saturating_add(1);
    }
    if env_bytes > MAX_ENVIRONMENT_BYTES {
        issues.push(ValidationIssue::TooLong {
            task: Some(task.to_string()),
            field: "variables".into(),
            len: env_bytes,
            max: MAX_ENVIRONMENT_BYTES,
        });
    }
}
