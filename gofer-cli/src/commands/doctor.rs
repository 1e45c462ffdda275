//! `gofer doctor`: [`gofer_engine::Engine::health`] for this data directory and the
//! container engine, each check with what to do when it fails; exit 1 when one does.

use std::process::ExitCode;
use std::sync::Arc;

use gofer_engine::Engine;

use crate::commands::{print, Ctx};
use crate::engine::{self, Stores};
use crate::error::CliError;

fn size_of(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata() {
                total += if m.is_dir() {
                    size_of(&e.path())
                } else {
                    m.len()
                };
            }
        }
    }
    total
}

fn mib(n: u64) -> String {
    format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
}

/// `gofer doctor`.
///
/// # Errors
/// Only output errors: every failed check is printed, and the exit code says it.
pub async fn doctor(ctx: &Ctx) -> Result<ExitCode, CliError> {
    let mut ok = true;
    let mut out = String::new();
    let stores = Stores::open(&ctx.home).await;
    match engine::connect(ctx.engine).await {
        Err(e) => {
            ok = false;
            out.push_str(&format!(
                "backend    FAILED: {e}\n           what to do: start the container engine, or point DOCKER_HOST, \
                 CONTAINER_HOST, CONTAINERD_ADDRESS or GOFER_SWARM_HOST at it, or choose one with --engine\n"
            ));
        }
        Ok(s) => {
            let mut b = Engine::builder(s).log_sink(Arc::new(ctx.home.log_sink()));
            if let Ok(stores) = &stores {
                b = b.run_store(stores.runs.clone());
            }
            let health = b.build()?.health().await;
            let (name, check) = &health.backend;
            match check {
                Ok(what) => out.push_str(&format!("backend    {name}: {what}\n")),
                Err(why) => {
                    ok = false;
                    out.push_str(&format!(
                        "backend    {name} FAILED: {why}\n           what to do: check that the {name} daemon runs and this user may use its socket\n"
                    ));
                }
            }
            match &health.run_store {
                Some(Ok(what)) => out.push_str(&format!("run store  {what}\n")),
                Some(Err(why)) => {
                    ok = false;
                    out.push_str(&format!(
                        "run store  FAILED: {why}\n           what to do: check the free space and permissions of {}\n",
                        ctx.home.dir().display()
                    ));
                }
                None => {}
            }
            out.push_str(&format!(
                "removals   {} pending in this process (failed removals are retried; the next run's recovery reaps what is left)\n",
                health.pending_removals
            ));
        }
    }
    if let Err(e) = &stores {
        ok = false;
        out.push_str(&format!(
            "stores     FAILED: {e}\n           what to do: check {} (its files, their permissions, GOFER_SECRET_KEY)\n",
            ctx.home.dir().display()
        ));
    }
    match ctx.home.retention() {
        Ok(Some(p)) => out.push_str(&format!(
            "retention  keep {} runs per pipeline{}\n",
            p.kept_runs().map_or("all".to_string(), |n| n.to_string()),
            p.age_limit()
                .map(|d| format!(", none that ended more than {} ago", humantime::format_duration(d)))
                .unwrap_or_default()
        )),
        Ok(None) => out.push_str(
            "retention  not set: history grows with every run; set [retention] keep / older_than in config.toml, or run `gofer prune`\n",
        ),
        Err(e) => {
            ok = false;
            out.push_str(&format!("retention  FAILED: {e}\n"));
        }
    }
    out.push_str(&format!(
        "data       {} in {} ({} of logs)\n",
        mib(size_of(ctx.home.dir())),
        ctx.home.dir().display(),
        mib(size_of(&ctx.home.logs_dir()))
    ));
    print(&out)?;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::commands::run::EXIT_FAILED)
    })
}
