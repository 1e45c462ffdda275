//! `gofer cache list|prune`: the saved task caches on the engine
//! ([`gofer_engine::Engine::caches`], [`gofer_engine::Engine::prune_caches`]).

use std::process::ExitCode;
use std::time::SystemTime;

use gofer_engine::{CacheEntry, CachePolicy, Engine};

use crate::cli::{CacheCommand, Output};
use crate::commands::{print, print_json, Ctx};
use crate::engine;
use crate::error::CliError;

/// Runs `gofer cache ...`.
///
/// # Errors
/// No engine, or the engine's error listing or removing volumes.
pub async fn cache(ctx: &Ctx, cmd: CacheCommand) -> Result<ExitCode, CliError> {
    let scheduler = engine::connect(ctx.engine).await?;
    let e = Engine::builder(scheduler).build()?;
    match cmd {
        CacheCommand::List { pipeline } => {
            let entries = e.caches(pipeline.as_deref()).await?;
            match ctx.output {
                Output::Json => print_json(&entries.iter().map(json).collect::<Vec<_>>())?,
                Output::Text if entries.is_empty() => print("no saved caches\n")?,
                Output::Text => print(&table(&entries))?,
            }
        }
        CacheCommand::Prune {
            pipeline,
            older_than,
            max_bytes,
        } => {
            let mut policy = CachePolicy::new();
            if let Some(age) = older_than {
                policy = policy.max_age(age);
            }
            if let Some(bytes) = max_bytes {
                policy = policy.max_bytes(bytes);
            }
            let r = e.prune_caches(&policy, pipeline.as_deref()).await?;
            match ctx.output {
                Output::Json => print_json(&serde_json::json!({
                    "removed": r.removed.iter().map(json).collect::<Vec<_>>(),
                    "freed_bytes": r.freed_bytes,
                    "in_use": r.in_use,
                }))?,
                Output::Text => {
                    let mut text = format!(
                        "removed {} caches, {} bytes\n",
                        r.removed.len(),
                        r.freed_bytes
                    );
                    for v in &r.in_use {
                        text.push_str(&format!("kept {v}: in use\n"));
                    }
                    print(&text)?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json(c: &CacheEntry) -> serde_json::Value {
    serde_json::json!({
        "volume": c.volume,
        "key": c.key,
        "pipeline": c.scope,
        "saved": humantime::format_rfc3339_seconds(c.saved).to_string(),
        "last_used": humantime::format_rfc3339_seconds(c.last_used).to_string(),
        "size_bytes": c.size_bytes,
    })
}

fn table(entries: &[CacheEntry]) -> String {
    let now = secs(SystemTime::now());
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|c| {
            [
                c.scope.clone(),
                c.key.clone(),
                format!("{}s ago", now.saturating_sub(secs(c.saved))),
                format!("{}s ago", now.saturating_sub(secs(c.last_used))),
                c.size_bytes.to_string(),
            ]
        })
        .collect();
    let head = ["PIPELINE", "KEY", "SAVED", "LAST USED", "BYTES"];
    let mut width = head.map(str::len);
    for r in &rows {
        for (w, cell) in width.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(width).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(&head);
    for r in &rows {
        out.push_str(&line(&r.each_ref().map(String::as_str)));
    }
    out
}
