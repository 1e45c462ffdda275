//! Reading a pipeline file: the format by extension, syntax errors with the line,
//! column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use super::format::PipelineFile;

/// A file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// `.toml`
    Toml,
    /// `.yaml`, `.yml`
    Yaml,
    /// `.json`
    Json,
}

impl Format {
    /// The format of a file, by its extension.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "toml" => Some(Self::Toml),
            "yaml" | "yml" => Some(Self::Yaml),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Toml => "TOML",
            Self::Yaml => "YAML",
            Self::Json => "JSON",
        })
    }
}

/// Where in a file a problem is (1-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// The line.
    pub line: usize,
    /// The column.
    pub column: usize,
}

/// Why a pipeline file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read.
    #[error("{}: cannot read the pipeline file: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The extension names no known format.
    #[error("{}: unknown pipeline file format (use .toml, .yaml, .yml or .json)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// The file is not valid in its format, or does not fit the pipeline schema.
    #[error("{}{}: {}{message}", path.display(),
        position.map(|p| format!(":{}:{}", p.line, p.column)).unwrap_or_default(),
        field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// Its format.
        format: Format,
        /// The field (`tasks[0].image`), when known.
        field: Option<String>,
        /// Where, when known.
        position: Option<Position>,
        /// What is wrong.
        message: String,
    },
    /// The file parsed but describes an invalid pipeline: every problem, each naming
    /// its field.
    #[error("{}: invalid pipeline:\n  {}", path.display(), problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<String>,
    },
}

/// Parses `text` (the content of `path`) in `format`.
///
/// # Errors
/// [`FileError::Syntax`] with the field and, when the parser knows it, the position.
pub fn parse_text(path: &Path, format: Format, text: &str) -> Result<PipelineFile, FileError> {
    let syntax =
        |field: Option<String>, position: Option<Position>, message: String| FileError::Syntax {
            path: path.to_path_buf(),
            format,
            field,
            position,
            message: plain_words(&message, format),
        };
    match format {
        Format::Json => {
            let mut de = serde_json::Deserializer::from_str(text);
            tracked(&mut de)
                .and_then(|v| {
                    de.end().map_err(|e| (None, e))?;
                    Ok(v)
                })
                .map_err(|(field, e)| {
                    let position = (e.line() > 0).then(|| Position {
                        line: e.line(),
                        column: e.column(),
                    });
                    syntax(field, position, strip_position(&e.to_string()))
                })
        }
        Format::Yaml => {
            let de = yaml_serde::Deserializer::from_str(text);
            tracked(de).map_err(|(field, e)| {
                let raw = e.to_string();
                // "found X at line 5 column 1, while scanning a quoted scalar at line 3
                // column 9": the place that matters is where the scalar opens.
                if let Some((problem, context, at)) = scanner_context(&raw) {
                    let message = if problem.contains("end of stream") {
                        format!("the file ends inside {context} that starts here")
                    } else {
                        format!("{problem} inside {context} that starts here")
                    };
                    return syntax(field, Some(at), message);
                }
                let position = e.location().map(|l| Position {
                    line: l.line(),
                    column: l.column(),
                });
                // The YAML library starts a message with the path, which is shown as
                // the field already.
                let message = strip_position(&raw);
                let message = match &field {
                    Some(f) => message
                        .strip_prefix(&format!("{f}: "))
                        .map(str::to_string)
                        .unwrap_or(message),
                    None => message,
                };
                syntax(field, position, message)
            })
        }
        Format::Toml => {
            let de = toml::Deserializer::new(text);
            tracked(de).map_err(|(field, e)| {
                let position = e.span().map(|s| position_of(text, s.start));
                // A syntax error has no field from the deserializer: the key of the
                // line it is on, under the table it is in.
                let field = field.or_else(|| position.and_then(|p| toml_key_at(text, p.line)));
                // One line: "invalid string\nexpected `\"`, `'`" reads as "invalid
                // string; expected ...".
                let message = e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                syntax(field, position, message)
            })
        }
    }
}

/// Deserializes, keeping the path of the field an error is in.
fn tracked<'de, D, T>(de: D) -> Result<T, (Option<String>, D::Error)>
where
    D: serde::Deserializer<'de>,
    T: DeserializeOwned,
{
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        (field, e.into_inner())
    })
}

/// A parser's message in the words of the file's format: Rust type names become what
/// to write (`expected u32` reads `expected a whole number`, a sequence is a list, a
/// map a table, mapping or object), and a list of accepted spellings that differ only
/// in case (`ANY`, `Any`, `any`) is given once, in lower case.
fn plain_words(message: &str, format: Format) -> String {
    let map = match format {
        Format::Toml => "a table",
        Format::Yaml => "a mapping",
        Format::Json => "an object",
    };
    let mut out = message.replace(
        "data did not match any variant of untagged enum ScalarFile",
        "expected a single value (text, a number, or true or false)",
    );
    for (rust, plain) in [
        ("u8", "a whole number"),
        ("u16", "a whole number"),
        ("u32", "a whole number"),
        ("u64", "a whole number"),
        ("usize", "a whole number"),
        ("i32", "a whole number"),
        ("i64", "a whole number"),
        ("f32", "a number"),
        ("f64", "a number"),
        ("a sequence", "a list"),
        ("a map", map),
        ("a boolean", "true or false"),
    ] {
        for tail in ["", ",", ")"] {
            let from = format!("expected {rust}{tail}");
            if let Some(i) = out.find(&from) {
                let end = i + from.len();
                // Whole words only: `expected u32` but not `expected u320`.
                if tail.is_empty() && out[end..].chars().next().is_some_and(char::is_alphanumeric) {
                    continue;
                }
                out = format!("{}expected {plain}{tail}{}", &out[..i], &out[end..]);
            }
        }
    }
    if let Some((head, list)) = out.split_once("expected one of ") {
        let mut seen: Vec<String> = Vec::new();
        for v in list.split(", ") {
            let v = v.trim().trim_matches('`').to_string();
            if !seen.iter().any(|s| s.eq_ignore_ascii_case(&v)) {
                seen.push(v);
            }
        }
        let folded = list.split(", ").count() != seen.len();
        if folded {
            let lower: Vec<String> = seen
                .iter()
                .map(|v| format!("`{}`", v.to_ascii_lowercase()))
                .collect();
            out = format!("{head}expected one of {} (any case)", lower.join(", "));
        }
    }
    out
}

/// Splits a YAML scanner message `"<problem> at line L column C, while <context> at
/// line L2 column C2"` into the problem, the context (`"a quoted scalar"` reads
/// `"a quoted string"`) and the context's position.
fn scanner_context(message: &str) -> Option<(String, String, Position)> {
    let (head, tail) = message.split_once(", while ")?;
    let (context, at) = tail.rsplit_once(" at line ")?;
    let (line, column) = at.split_once(" column ")?;
    let position = Position {
        line: line.trim().parse().ok()?,
        column: column.trim().parse().ok()?,
    };
    let context = context
        .trim_start_matches("scanning ")
        .trim_start_matches("parsing ")
        .replace("quoted scalar", "quoted string");
    Some((strip_position(head), context, position))
}

/// The dotted path of the key on 1-based `line` of a TOML text (`tasks[1].image`),
/// from the table headers above it; `None` when the line holds no `key =`.
fn toml_key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let key = here.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') || key.contains(char::is_whitespace) {
        return None;
    }
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for l in &lines[..line - 1] {
        let t = l.trim();
        if let Some(name) = t
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(n, _)| n.trim())
        {
            let n = counts.entry(name.to_string()).or_insert(0);
            *n += 1;
            table = format!("{name}[{}]", *n - 1);
        } else if let Some(name) = t
            .strip_prefix('[')
            .and_then(|r| r.split_once(']'))
            .map(|(n, _)| n.trim())
        {
            // `[tasks.variables]` under the last `[[tasks]]`.
            table = match name.split_once('.') {
                Some((parent, rest)) if counts.contains_key(parent) => {
                    format!("{parent}[{}].{rest}", counts[parent] - 1)
                }
                _ => name.to_string(),
            };
        }
    }
    Some(if table.is_empty() {
        key.to_string()
    } else {
        format!("{table}.{key}")
    })
}

/// The 1-based line and column of a byte offset.
fn position_of(text: &str, offset: usize) -> Position {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit_once('\n')
        .map_or(before, |(_, rest)| rest)
        .chars()
        .count()
        + 1;
    Position { line, column }
}

/// Drops the " at line L column C" the parsers append (the position is shown
/// before the message).
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// Reads and parses a pipeline file, the format by extension; also gives the format
/// and the text (to place the problems found later).
///
/// # Errors
/// [`FileError::Io`], [`FileError::UnknownFormat`] or [`FileError::Syntax`].
pub fn read(path: &Path) -> Result<(PipelineFile, Format, String), FileError> {
    let format = Format::of(path).ok_or_else(|| FileError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file = parse_text(path, format, &text)?;
    Ok((file, format, text))
}
