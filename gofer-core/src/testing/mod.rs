//! Test kits for backend authors (feature `conformance`, alias `testing`).

pub mod attach;
pub mod conformance;
pub mod runstore;
pub mod stores;

use futures::StreamExt;

use crate::{ContainerId, DynScheduler, OutputStream};

/// Follows the stdout of container `id` until it holds `marker`, so a test can act
/// only once the workload says it is ready.
///
/// A stop sent right after a start can be lost: until the container's first process
/// has set up its signal handling, the kernel drops a stop signal sent to it (it is
/// PID 1 of its namespace). A test that stops a container whose workload traps the
/// signal waits for the trap to be set with this first.
///
/// # Errors
/// A message naming the container when the logs cannot be read, or when it ends
/// without printing `marker`.
pub async fn stdout_until(s: &DynScheduler, id: &ContainerId, marker: &str) -> Result<(), String> {
    let mut logs = s
        .logs(id)
        .await
        .map_err(|e| format!("logs of {id} failed: {e}"))?;
    let mut out = Vec::new();
    while let Some(chunk) = logs.next().await {
        let chunk = chunk.map_err(|e| format!("log stream of {id} failed: {e}"))?;
        if chunk.stream == OutputStream::Stdout {
            out.extend_from_slice(&chunk.data);
            if String::from_utf8_lossy(&out).contains(marker) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "{id} ended without printing `{marker}`; stdout was {:?}",
        String::from_utf8_lossy(&out)
    ))
}
