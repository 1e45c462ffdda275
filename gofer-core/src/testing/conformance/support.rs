//! Helpers shared by the cases: run-unique names and labels, cleanup, log reading.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{FutureExt, StreamExt};

use super::workloads::Workload;
use crate::error::SchedulerError;
use crate::scheduler::{ContainerId, ContainerSpec, DynScheduler, ExitStatus, OutputStream};

/// The label every conformance container carries; its value is unique per case run.
pub const CONFORMANCE_LABEL: &str = "dev.gofer.conformance";

/// The longest any single step of a case may take before the case fails (a hung
/// backend fails the case instead of hanging the test run).
pub const STEP_LIMIT: Duration = Duration::from_secs(120);

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A value unique to this process run and call: time, process id and a counter.
fn unique() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:x}{:x}{n}", nanos % 0xffff_ffff_ffff, std::process::id())
}

/// One case run: its scheduler, its unique label value and name prefix.
#[derive(Clone)]
pub(crate) struct Ctx<'a> {
    pub(crate) s: &'a DynScheduler,
    run: Arc<str>,
}

impl<'a> Ctx<'a> {
    /// A container name unique to this case run.
    pub(crate) fn name(&self, suffix: &str) -> String {
        format!("gofer-conf-{}-{suffix}", self.run)
    }

    /// The run-unique label.
    pub(crate) fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(CONFORMANCE_LABEL.to_string(), self.run.to_string())])
    }

    /// A spec for a workload, named and labelled for this run.
    pub(crate) fn spec(&self, w: &Workload, suffix: &str) -> ContainerSpec {
        w.spec(self.name(suffix)).labels(self.labels())
    }

    /// Starts a spec; an error names the container.
    pub(crate) async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, String> {
        let name = spec.name.clone();
        within(&format!("start {name}"), self.s.start(spec))
            .await?
            .map_err(|e| format!("start of {name} failed: {e}"))
    }

    /// Waits for an exit.
    pub(crate) async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, String> {
        within(&format!("wait {id}"), self.s.wait(id))
            .await?
            .map_err(|e| format!("wait on {id} failed: {e}"))
    }

    /// Reads the whole output (following until exit): `(stdout, stderr)`.
    pub(crate) async fn output(&self, id: &ContainerId) -> Result<(Vec<u8>, Vec<u8>), String> {
        within(&format!("logs of {id}"), async {
            let mut logs = self
                .s
                .logs(id)
                .await
                .map_err(|e| format!("logs of {id} failed: {e}"))?;
            let (mut out, mut err) = (Vec::new(), Vec::new());
            while let Some(chunk) = logs.next().await {
                let chunk = chunk.map_err(|e| format!("log stream of {id} failed: {e}"))?;
                match chunk.stream {
                    OutputStream::Stdout => out.extend_from_slice(&chunk.data),
                    OutputStream::Stderr => err.extend_from_slice(&chunk.data),
                }
            }
            Ok((out, err))
        })
        .await?
    }

    /// Follows stdout until it holds `marker` (the container signals it is ready).
    pub(crate) async fn stdout_until(&self, id: &ContainerId, marker: &str) -> Result<(), String> {
        within(
            &format!("`{marker}` on stdout of {id}"),
            crate::testing::stdout_until(self.s, id, marker),
        )
        .await?
    }
}

/// Runs `fut`, failing after [`STEP_LIMIT`].
pub(crate) async fn within<F: Future>(what: &str, fut: F) -> Result<F::Output, String> {
    tokio::time::timeout(STEP_LIMIT, fut)
        .await
        .map_err(|_| format!("{what} did not finish within {STEP_LIMIT:?}"))
}

/// Runs a case body with a fresh run-unique label, then removes every container
/// carrying that label, also when the body failed or panicked, and checks that
/// nothing is left.
pub(crate) async fn run_case<'a, F, Fut>(
    s: &'a DynScheduler,
    case: &str,
    body: F,
) -> Result<(), String>
where
    F: FnOnce(Ctx<'a>) -> Fut,
    Fut: Future<Output = Result<(), String>> + 'a,
{
    let run: Arc<str> = format!("{}-{}", case.replace('_', "-"), unique()).into();
    let ctx = Ctx { s, run };
    let outcome = AssertUnwindSafe(body(ctx.clone())).catch_unwind().await;
    let cleaned = cleanup(&ctx).await;
    match outcome {
        Err(panic) => std::panic::resume_unwind(panic),
        Ok(Err(e)) => Err(match cleaned {
            Ok(()) => e,
            Err(c) => format!("{e}; cleanup also failed: {c}"),
        }),
        Ok(Ok(())) => cleaned,
    }
}

async fn cleanup(ctx: &Ctx<'_>) -> Result<(), String> {
    let labels = ctx.labels();
    let found = within("list for cleanup", ctx.s.list(&labels))
        .await?
        .map_err(|e| format!("cleanup: list failed: {e}"))?;
    let mut problems = Vec::new();
    for c in found {
        match within("remove for cleanup", ctx.s.remove(&c.id, true)).await? {
            Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
            Err(e) => problems.push(format!("remove of {} ({}) failed: {e}", c.name, c.id)),
        }
    }
    let left = within("list after cleanup", ctx.s.list(&labels))
        .await?
        .map_err(|e| format!("cleanup: list failed: {e}"))?;
    if !left.is_empty() {
        let names: Vec<_> = left.iter().map(|c| c.name.as_str()).collect();
        problems.push(format!("containers left after force removal: {names:?}"));
    }
    if ctx.s.capabilities().volumes {
        let volumes = within("list volumes for cleanup", ctx.s.list_volumes(&labels))
            .await?
            .map_err(|e| format!("cleanup: list_volumes failed: {e}"))?;
        for v in volumes {
            match within("remove volume for cleanup", ctx.s.remove_volume(&v.name)).await? {
                Ok(()) | Err(SchedulerError::NoSuchContainer { .. }) => {}
                Err(e) => problems.push(format!("remove of volume {} failed: {e}", v.name)),
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// Fails with `message` unless `cond` holds.
pub(crate) fn ensure(cond: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(message())
    }
}

/// Lossy text of some output, for messages and comparisons.
pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
