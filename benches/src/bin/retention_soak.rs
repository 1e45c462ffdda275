//! The data directory under a retention policy, over thousands of runs: the same runs
//! on the FakeScheduler with a SQLite run store and a file log sink (as the `gofer`
//! command keeps them), once with no policy (the baseline: history grows with every
//! run) and once keeping the newest 20 runs, pruned every 50 runs (as
//! `Engine::start_pruner` would). Prints the directory's size at checkpoints, and for
//! each the ratio of the last checkpoint to the first: about 1.0 is flat.
//!
//! `cargo run --release -p gofer-benches --bin retention_soak [RUNS]` (default 2000)

use std::path::Path;
use std::sync::Arc;

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{Pipeline, RunOptions, RunStatus, Task};
use gofer_engine::{Engine, FileLogSink, RetentionPolicy};
use gofer_store_sqlite::SqliteRunStore;

fn size_of(dir: &Path) -> u64 {
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

/// The sizes after each tenth of `runs`.
async fn soak(dir: &Path, runs: u64, policy: Option<RetentionPolicy>) -> anyhow::Result<Vec<u64>> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let store = Arc::new(SqliteRunStore::open(dir.join("runs.sqlite3"))?);
    let lines: String = (0..40)
        .map(|i| format!("log line {i} of a task\n"))
        .collect();
    let fake = FakeScheduler::new().image("ok", Behaviour::new().stdout(lines));
    let engine = Engine::builder(Arc::new(fake))
        .instance_id("soak")
        .log_sink(Arc::new(FileLogSink::new(dir.join("logs"))))
        .run_store(store)
        .build()?;
    engine.recover().await?;
    let p =
        Pipeline::new("soak", "soak").tasks([Task::new("build", "ok"), Task::new("test", "ok")]);
    let mut sizes = Vec::new();
    for n in 1..=runs {
        let run = engine.start_run(&p, RunOptions::new())?.wait().await?;
        anyhow::ensure!(run.status == RunStatus::Successful, "run failed: {run:?}");
        if let Some(policy) = &policy {
            if n % 50 == 0 {
                engine.prune(policy).await?;
            }
        }
        if n % (runs / 10).max(1) == 0 {
            sizes.push(size_of(dir));
        }
    }
    Ok(sizes)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let dir = std::env::temp_dir().join(format!("gofer-bench-retention-{}", std::process::id()));
    let baseline = soak(&dir.join("none"), runs, None).await?;
    let kept = soak(
        &dir.join("keep20"),
        runs,
        Some(RetentionPolicy::new().keep_last(20)),
    )
    .await?;
    let _ = std::fs::remove_dir_all(&dir);
    println!("retention_soak: {runs} runs of 2 tasks (40 log lines each), size after each tenth");
    for (label, sizes) in [("no policy (baseline)", &baseline), ("keep_last 20", &kept)] {
        let kib: Vec<String> = sizes.iter().map(|s| format!("{}", s / 1024)).collect();
        let (first, last) = (
            sizes.first().copied().unwrap_or(1),
            sizes.last().copied().unwrap_or(0),
        );
        println!(
            "  {label:<22} KiB: {}  last/first = {:.2}",
            kib.join(" "),
            last as f64 / first.max(1) as f64
        );
    }
    let (b, k) = (
        baseline.last().copied().unwrap_or(0),
        kept.last().copied().unwrap_or(0),
    );
    println!(
        "  kept/baseline at the end = {:.3}",
        k as f64 / b.max(1) as f64
    );
    Ok(())
}
