//! Checks on keys, pipeline ids and allow-list patterns shared by the stores.

use gofer_core::StoreError;

/// Longest key in characters.
pub(crate) const KEY_MAX_CHARS: usize = 256;

/// A key is 1 to 256 characters without control characters (as the in-memory stores).
pub(crate) fn check_key(store: &'static str, key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.chars().count() > KEY_MAX_CHARS || key.chars().any(char::is_control) {
        return Err(StoreError::InvalidKey {
            store,
            key: key.to_string(),
            message: format!("keys are 1 to {KEY_MAX_CHARS} characters without control characters"),
        });
    }
    Ok(())
}

/// A pipeline id follows [`gofer_core::validate_id`].
pub(crate) fn check_pipeline(store: &'static str, pipeline: &str) -> Result<(), StoreError> {
    gofer_core::validate_id(pipeline).map_err(|e| StoreError::InvalidKey {
        store,
        key: pipeline.to_string(),
        message: format!("pipeline id {e}"),
    })
}

/// An allow-list pattern is a pipeline id that may contain `*`.
pub(crate) fn check_allow(
    store: &'static str,
    key: &str,
    allow: &[String],
) -> Result<(), StoreError> {
    for pattern in allow {
        let ok = !pattern.is_empty()
            && pattern.len() <= gofer_core::ID_MAX_LEN
            && pattern
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '*'));
        if !ok {
            return Err(StoreError::InvalidKey {
                store,
                key: key.to_string(),
                message: format!(
                    "allow-list pattern {pattern:?} must be 1 to {} characters of A-Z, a-z, 0-9, '_', '-' and '*'",
                    gofer_core::ID_MAX_LEN
                ),
            });
        }
    }
    Ok(())
}

/// The scope text used in errors for a pipeline.
pub(crate) fn pipeline_scope(pipeline: &str) -> Option<String> {
    Some(format!("pipeline {pipeline:?}"))
}

/// The scope text used in errors for a run.
pub(crate) fn run_scope(pipeline: &str, run: u64) -> Option<String> {
    Some(format!("run {run} of pipeline {pipeline:?}"))
}
