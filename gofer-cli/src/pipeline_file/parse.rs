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
            message,
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
                let position = e.location().map(|l| Position {
                    line: l.line(),
                    column: l.column(),
                });
                syntax(field, position, strip_position(&e.to_string()))
            })
        }
        Format::Toml => {
            let de = toml::Deserializer::new(text);
            tracked(de).map_err(|(field, e)| {
                let position = e.span().map(|s| position_of(text, s.start));
                syntax(field, position, e.message().trim().to_string())
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

/// Reads and parses a pipeline file, the format by extension.
///
/// # Errors
/// [`FileError::Io`], [`FileError::UnknownFormat`] or [`FileError::Syntax`].
pub fn read(path: &Path) -> Result<PipelineFile, FileError> {
    let format = Format::of(path).ok_or_else(|| FileError::UnknownFormat {
        path: path.to_path_buf(),
    })?;
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_text(path, format, &text)
}
