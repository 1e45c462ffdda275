//! Where in a pipeline file a problem found after parsing is: the line of the entry it
//! is about.
//!
//! The parsers keep no positions once a file is read, so this reads the text again
//! for one thing only: the line of the pipeline's `id`, or of the `id` of the task or
//! service a problem names (`... of task "build": ...`), inside the file's `tasks` or
//! `services` list. It knows the block forms people write (YAML block lists, TOML
//! `[[tasks]]` tables, JSON arrays, with flow or inline entries among them); an entry
//! it cannot find (a matrix combination, an id that is not a plain string) gets no
//! line, and the problem is shown without one.

use regex::Regex;

use super::parse::Format;

/// What a problem is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject<'a> {
    Pipeline,
    Task(&'a str),
    Service(&'a str),
}

/// The subject a problem's text names: `of task "ID"`, `of service "ID"` or `of the
/// pipeline`.
fn subject_of(problem: &str) -> Option<(Subject<'_>, String)> {
    if problem.contains(" of the pipeline") {
        return Some((Subject::Pipeline, String::new()));
    }
    for (marker, task) in [(" of task \"", true), (" of service \"", false)] {
        if let Some(i) = problem.find(marker) {
            let rest = &problem[i + marker.len()..];
            let id = rest.split('"').next()?;
            if id.contains('\\') {
                return None;
            }
            let subject = if task {
                Subject::Task(id)
            } else {
                Subject::Service(id)
            };
            return Some((subject, id.to_string()));
        }
    }
    None
}

/// Lines (0-based, end exclusive) of the file's list `key` (`tasks`, `services`).
fn list_lines(text: &str, format: Format, key: &str) -> Vec<std::ops::Range<usize>> {
    let lines: Vec<&str> = text.lines().collect();
    match format {
        Format::Yaml => {
            let Some(start) = lines.iter().position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|r| r.trim_start().starts_with(':'))
            }) else {
                return Vec::new();
            };
            let end = lines[start + 1..]
                .iter()
                .position(|l| {
                    l.chars()
                        .next()
                        .is_some_and(|c| !c.is_whitespace() && c != '-' && c != '#')
                })
                .map_or(lines.len(), |n| start + 1 + n);
            std::iter::once(start..end).collect()
        }
        Format::Toml => {
            let header = format!("[[{key}]]");
            let own = [format!("[{key}."), format!("[[{key}.")];
            let mut out = Vec::new();
            let mut open: Option<usize> = None;
            for (i, l) in lines.iter().enumerate() {
                let t = l.trim_start();
                if t.starts_with('[') {
                    // A sub-table of an entry (`[tasks.variables]`) ends the entry's own
                    // keys; the next `[[tasks]]` starts the next entry.
                    if let Some(s) = open.take() {
                        out.push(s..i);
                    }
                    if t.starts_with(&header) && !own.iter().any(|o| t.starts_with(o.as_str())) {
                        open = Some(i);
                    }
                } else if open.is_none()
                    && t.strip_prefix(key)
                        .is_some_and(|r| r.trim_start().starts_with('='))
                {
                    // An inline array: its lines until the brackets close.
                    out.push(i..bracket_end(&lines, i));
                }
            }
            if let Some(s) = open {
                out.push(s..lines.len());
            }
            out
        }
        Format::Json => {
            let quoted = format!("\"{key}\"");
            let Some(start) = lines.iter().position(|l| l.contains(&quoted)) else {
                return Vec::new();
            };
            std::iter::once(start..bracket_end(&lines, start)).collect()
        }
    }
}

/// The line after the one where the first `[` from line `start` is closed (strings
/// skipped); the end of the file when it is never closed.
fn bracket_end(lines: &[&str], start: usize) -> usize {
    let mut depth = 0usize;
    let mut seen = false;
    let mut in_string = false;
    let mut escaped = false;
    for (i, l) in lines.iter().enumerate().skip(start) {
        for c in l.chars() {
            if in_string {
                match (escaped, c) {
                    (true, _) => escaped = false,
                    (false, '\\') => escaped = true,
                    (false, '"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '[' | '{' => {
                    depth += 1;
                    seen = true;
                }
                ']' | '}' => {
                    depth = depth.saturating_sub(1);
                    if seen && depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
    }
    lines.len()
}

/// A pattern for the `id` key holding `id` in `format`.
fn id_pattern(format: Format, id: &str) -> Option<Regex> {
    let v = regex::escape(id);
    let p = match format {
        Format::Yaml => format!(r#"(?:^|[\s{{,\-])id\s*:\s*(?:"{v}"|'{v}'|{v})\s*(?:$|[,}}#])"#),
        Format::Toml => format!(r#"(?:^|[\s{{,])id\s*=\s*(?:"{v}"|'{v}')"#),
        Format::Json => format!(r#""id"\s*:\s*"{v}""#),
    };
    Regex::new(&p).ok()
}

/// The 1-based line of the pipeline's own `id`.
fn pipeline_line(text: &str, format: Format) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    match format {
        Format::Yaml => lines.iter().position(|l| {
            l.strip_prefix("id")
                .is_some_and(|r| r.trim_start().starts_with(':'))
        }),
        Format::Toml => lines
            .iter()
            .take_while(|l| !l.trim_start().starts_with('['))
            .position(|l| {
                l.trim_start()
                    .strip_prefix("id")
                    .is_some_and(|r| r.trim_start().starts_with('='))
            }),
        Format::Json => {
            let skip: Vec<_> = ["tasks", "services"]
                .iter()
                .flat_map(|k| list_lines(text, format, k))
                .collect();
            lines
                .iter()
                .enumerate()
                .position(|(i, l)| l.contains("\"id\"") && !skip.iter().any(|r| r.contains(&i)))
        }
    }
    .map(|i| i + 1)
}

/// The 1-based line of the entry a problem is about, when it can be found; `nth`
/// (from 0) picks among entries of one id (the second of two tasks `a` that both
/// have a bad id is the second match), the last when there are fewer.
pub(crate) fn line_of(text: &str, format: Format, problem: &str, nth: usize) -> Option<usize> {
    let (subject, id) = subject_of(problem)?;
    let key = match subject {
        Subject::Pipeline => return pipeline_line(text, format),
        Subject::Task(_) => "tasks",
        Subject::Service(_) => "services",
    };
    let pattern = id_pattern(format, &id)?;
    let lines: Vec<&str> = text.lines().collect();
    let found: Vec<usize> = list_lines(text, format, key)
        .into_iter()
        .flat_map(|r| r.start..r.end.min(lines.len()))
        .filter(|&i| {
            pattern.is_match(lines[i]) && (format != Format::Yaml || entry_level(&lines, i))
        })
        .collect();
    found.get(nth).or(found.last()).map(|i| i + 1)
}

/// Whether YAML line `i` is at the level of a list entry's own keys (`- id: x`,
/// `- {id: x}`, or `id: x` indented as the entry's first key), not in a map nested in
/// an entry (a variable called `id`).
fn entry_level(lines: &[&str], i: usize) -> bool {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let line = lines[i];
    if line.trim_start().starts_with('-') {
        return true;
    }
    // The entry this line belongs to: the nearest line above that starts with `-`.
    let Some(dash) = (0..i)
        .rev()
        .find(|&j| lines[j].trim_start().starts_with("- "))
    else {
        return false;
    };
    let d = lines[dash];
    let content =
        indent(d) + 1 + (d.trim_start()[1..].len() - d.trim_start()[1..].trim_start().len());
    indent(line) == content
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "id: demo\nservices:\n  - id: db\n    image: pg\ntasks:\n  - id: build\n    image: b\n    variables:\n      id: ship\n  - {id: test, image: t}\n  - image: c\n    id: \"ship\"\n";
    const TOML: &str = "id = \"demo\"\n\n[[services]]\nid = \"build\"\nimage = \"x\"\n\n[[tasks]]\nid = \"build\"\nimage = \"b\"\n\n[tasks.variables]\nid = \"test\"\n\n[[tasks]]\nimage = \"t\"\nid = \"test\"\n";
    const JSON: &str = "{\n  \"services\": [{\"id\": \"build\", \"image\": \"x\"}],\n  \"tasks\": [\n    {\"id\": \"build\", \"image\": \"b\"},\n    {\n      \"image\": \"t\",\n      \"id\": \"test\"\n    }\n  ],\n  \"id\": \"demo\"\n}\n";

    #[test]
    fn tasks_services_and_the_pipeline_are_found_in_each_format() {
        let task = |id: &str| format!("field `image` of task {id:?}: empty");
        assert_eq!(line_of(YAML, Format::Yaml, &task("build"), 0), Some(6));
        assert_eq!(line_of(YAML, Format::Yaml, &task("test"), 0), Some(10));
        // A variable called id is not the task.
        assert_eq!(line_of(YAML, Format::Yaml, &task("ship"), 0), Some(12));
        assert_eq!(
            line_of(YAML, Format::Yaml, "field `image` of service \"db\": x", 0),
            Some(3)
        );
        assert_eq!(
            line_of(YAML, Format::Yaml, "field `id` of the pipeline: x", 0),
            Some(1)
        );
        // A service of the same id, and a variable called id, are not the task.
        assert_eq!(line_of(TOML, Format::Toml, &task("build"), 0), Some(8));
        assert_eq!(line_of(TOML, Format::Toml, &task("test"), 0), Some(16));
        assert_eq!(
            line_of(TOML, Format::Toml, "field `id` of the pipeline: x", 0),
            Some(1)
        );
        assert_eq!(line_of(JSON, Format::Json, &task("build"), 0), Some(4));
        assert_eq!(line_of(JSON, Format::Json, &task("test"), 0), Some(7));
        assert_eq!(
            line_of(JSON, Format::Json, "field `id` of the pipeline: x", 0),
            Some(10)
        );
        // A combination of a matrix, or an unknown id: no line.
        assert_eq!(line_of(YAML, Format::Yaml, &task("test_OS-a"), 0), None);
        assert_eq!(line_of(YAML, Format::Yaml, "something else", 0), None);
    }
}
