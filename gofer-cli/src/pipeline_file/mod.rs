//! Pipeline files: TOML, YAML and JSON (also the Gofer SDK's pipeline JSON), mapped
//! onto [`gofer_core::Pipeline`].

mod convert;
mod format;
mod locate;
pub(crate) mod parse;
#[cfg(test)]
mod tests;

pub(crate) use convert::{duration, load, LoadedPipeline};
pub(crate) use format::json_schema;
pub(crate) use parse::FileError;
