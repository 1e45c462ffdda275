//! Cost of durable run history: the same runs on the FakeScheduler with no run store
//! (the baseline), with the in-memory store and with the SQLite store (WAL,
//! `synchronous = FULL`, in a temporary directory).
//!
//! A wide run (independent tasks, whose changes the journal batches into few
//! transactions) and a chain (each task waits for its parent, so every container start
//! waits for its own fsync). Prints µs per task and the ratio against the baseline.
//!
//! `cargo run --release -p gofer-benches --bin run_store_overhead`

use std::sync::Arc;
use std::time::{Duration, Instant};

use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{
    DynRunStore, InMemoryRunStore, Pipeline, RequiredParentStatus, RunOptions, RunStatus, Task,
};
use gofer_engine::{Engine, InMemoryLogSink};
use gofer_store_sqlite::SqliteRunStore;

const WIDE: usize = 2_000;
const CHAIN: usize = 200;

fn wide() -> Pipeline {
    Pipeline::new("wide", "wide").tasks((0..WIDE).map(|i| Task::new(format!("t{i:05}"), "ok")))
}

fn chain() -> Pipeline {
    Pipeline::new("chain", "chain").tasks((0..CHAIN).map(|i| {
        let t = Task::new(format!("t{i:05}"), "ok");
        if i == 0 {
            t
        } else {
            t.depends_on(format!("t{:05}", i - 1), RequiredParentStatus::Success)
        }
    }))
}

async fn time_run(store: Option<Arc<DynRunStore>>, p: &Pipeline) -> anyhow::Result<Duration> {
    let fake = FakeScheduler::new().image("ok", Behaviour::new());
    let mut b = Engine::builder(Arc::new(fake))
        .instance_id("bench")
        .log_sink(Arc::new(InMemoryLogSink::new()));
    if let Some(s) = store {
        b = b.run_store(s);
    }
    let engine = b.build()?;
    engine.recover().await?;
    let start = Instant::now();
    let run = engine.start_run(p, RunOptions::new())?.wait().await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(run.status == RunStatus::Successful, "run failed: {run:?}");
    Ok(elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("gofer-bench-runstore-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (label, p, n) in [("wide", wide(), WIDE), ("chain", chain(), CHAIN)] {
        let base = time_run(None, &p).await?;
        let memory = time_run(Some(Arc::new(InMemoryRunStore::new())), &p).await?;
        let sqlite_store = SqliteRunStore::open(dir.join(format!("{label}.sqlite3")))?;
        let sqlite = time_run(Some(Arc::new(sqlite_store)), &p).await?;
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        println!(
            "{label:5} ({n} tasks): no store {:8.1} µs/task | memory {:8.1} µs/task ({:.2}x) | sqlite {:8.1} µs/task ({:.2}x)",
            per(base),
            per(memory),
            memory.as_secs_f64() / base.as_secs_f64(),
            per(sqlite),
            sqlite.as_secs_f64() / base.as_secs_f64(),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
