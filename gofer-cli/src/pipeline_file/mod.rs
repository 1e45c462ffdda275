//! Pipeline files: TOML, YAML and JSON (also the Gofer SDK's pipeline JSON), mapped
//! onto [`gofer_core::Pipeline`].

mod convert;
mod format;
mod parse;
#[cfg(test)]
mod tests;

pub use convert::{convert, load, LoadedPipeline};
pub use format::{
    json_schema, ParentStatus, PipelineFile, PullPolicyFile, RegistryAuthFile, ResourcesFile,
    TaskFile,
};
pub use parse::{parse_text, read, FileError, Format, Position};
