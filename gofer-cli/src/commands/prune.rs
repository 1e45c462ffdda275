//! `gofer prune [--keep N] [--older-than D] [--dry-run]`: removes old complete runs
//! with their logs and run objects ([`gofer_engine::prune_history`]), by the flags or,
//! without them, by the data directory's `[retention]` setting. Needs no container
//! engine. `gofer run` applies the setting after each run, so a data directory with a
//! policy stays bounded without anyone calling `prune`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use gofer_engine::{LogSink, PrunedRun, RetentionPolicy, RetentionReport};

use crate::cli::Output;
use crate::commands::{print, print_json, Ctx};
use crate::engine::Stores;
use crate::error::CliError;
use crate::home::Home;

/// `gofer prune`.
///
/// # Errors
/// No policy (neither flags nor a setting), a bad setting, the stores.
pub async fn prune(
    ctx: &Ctx,
    keep: Option<u32>,
    older_than: Option<Duration>,
    dry_run: bool,
) -> Result<ExitCode, CliError> {
    let mut policy = RetentionPolicy::new();
    if let Some(n) = keep {
        policy = policy.keep_last(n);
    }
    if let Some(d) = older_than {
        policy = policy.max_age(d);
    }
    if policy.is_empty() {
        policy = ctx.home.retention()?.ok_or_else(|| {
            CliError::Usage(format!(
                "say what to keep: --keep N and/or --older-than D, or [retention] keep / older_than in {}",
                ctx.home.dir().join("config.toml").display()
            ))
        })?;
    }
    let stores = Stores::open(&ctx.home).await?;
    if dry_run {
        let plan = gofer_engine::retention::plan(&*stores.runs, &policy)
            .await
            .map_err(retention_error)?;
        match ctx.output {
            Output::Json => print_json(&serde_json::json!({
                "dry_run": true,
                "would_remove": plan.iter().map(run_json).collect::<Vec<_>>(),
            }))?,
            Output::Text => {
                let mut text = format!("would remove {} runs\n", plan.len());
                for r in &plan {
                    text.push_str(&format!("  {} run {}\n", r.pipeline, r.run));
                }
                print(&text)?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = run_policy(&ctx.home, &stores, &policy).await?;
    match ctx.output {
        Output::Json => print_json(&serde_json::json!({
            "removed": report.removed.iter().map(run_json).collect::<Vec<_>>(),
            "finished": report.finished.iter().map(|(p, r)| serde_json::json!({"pipeline": p, "run": r})).collect::<Vec<_>>(),
            "log_bytes": report.log_bytes,
            "objects": report.objects,
            "left": report.left,
        }))?,
        Output::Text => print(&format!("{}\n", summary(&report)))?,
    }
    if !report.left.is_empty() {
        for l in &report.left {
            eprintln!("gofer: left for the next prune: {l}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prunes the data directory's history by `policy`.
///
/// # Errors
/// The stores'.
pub(crate) async fn run_policy(
    home: &Home,
    stores: &Stores,
    policy: &RetentionPolicy,
) -> Result<RetentionReport, CliError> {
    let sink: Arc<dyn LogSink> = Arc::new(home.log_sink());
    gofer_engine::prune_history(&*stores.runs, &sink, &*stores.objects, policy)
        .await
        .map_err(retention_error)
}

/// `removed 3 runs (12 KiB of logs, 2 run objects)`.
pub(crate) fn summary(r: &RetentionReport) -> String {
    let mut text = format!(
        "removed {} runs ({} of logs, {} run objects)",
        r.removed.len(),
        bytes(r.log_bytes),
        r.objects
    );
    if !r.finished.is_empty() {
        text.push_str(&format!(
            "; finished removing {} runs an earlier prune left",
            r.finished.len()
        ));
    }
    text
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

fn run_json(r: &PrunedRun) -> serde_json::Value {
    serde_json::json!({
        "pipeline": r.pipeline,
        "run": r.run,
        "ended": r.ended.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
    })
}

fn retention_error(e: gofer_engine::RetentionError) -> CliError {
    match e {
        gofer_engine::RetentionError::Store(s) => CliError::from(s),
        other => CliError::Usage(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(bytes(12), "12 bytes");
        assert_eq!(bytes(12 * 1024 + 512), "12.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
    }
}
