//! N trivial tasks through the gofer engine on Podman against the same N
//! `podman run --rm gofer-test/busybox:latest true` of the Podman CLI, measured in the
//! same process, one at a time and four at a time, with and without the run-scoped
//! network sandbox. Printed as ratios (engine / CLI; below 1 means the engine is faster).
//!
//! ```text
//! cargo run --release -p gofer-benches --bin podman_vs_cli -- [N]     # N defaults to 12
//! ```
//!
//! Needs the Podman API service and the `podman` command (`scripts/setup-podman.sh`).

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use gofer_core::naming::engine_filter;
use gofer_core::{
    ContainerSpec, DynScheduler, NetworkMode, Pipeline, RunOptions, RunStatus, Scheduler, Task,
};
use gofer_engine::{Engine, InMemoryLogSink, Limits};
use gofer_scheduler_podman::PodmanScheduler;

const IMAGE: &str = "gofer-test/busybox:latest";

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().context("N must be a positive number")?,
        None => 12,
    };
    let podman = match PodmanScheduler::connect_default().await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("podman_vs_cli: Podman is unreachable ({e}); run scripts/setup-podman.sh");
            return Ok(ExitCode::from(2));
        }
    };
    println!(
        "podman_vs_cli: {n} tasks `true` on {IMAGE}, Podman {}",
        podman.server_version().unwrap_or("?")
    );
    // Warm up both paths (image, CNI, caches).
    cli(2, 2, None).await?;
    engine(&podman, 2, 2, false).await?;

    println!(
        "{:<34} {:>10} {:>10} {:>8}",
        "case", "engine", "cli", "ratio"
    );
    for (label, parallel, sandbox, cli_net) in [
        ("sequential, default network", 1, false, None),
        ("4 at a time, default network", 4, false, None),
        ("sequential, sandbox", 1, true, None),
        ("4 at a time, sandbox", 4, true, None),
        ("sequential, sandbox vs cli none", 1, true, Some("none")),
        ("4 at a time, sandbox vs cli none", 4, true, Some("none")),
    ] {
        let e = engine(&podman, n, parallel, sandbox).await?;
        let c = cli(n, parallel, cli_net).await?;
        println!(
            "{label:<34} {:>8.0}ms {:>8.0}ms {:>8.2}",
            per_task(e, n),
            per_task(c, n),
            e.as_secs_f64() / c.as_secs_f64()
        );
    }
    // Where the engine's time goes: the scheduler alone, one container at a time.
    let holder = podman
        .create_sandbox(gofer_core::SandboxSpec::new(
            format!("bench-holder-{}", std::process::id()),
            IMAGE,
        ))
        .await?;
    for (label, network, with_logs) in [
        (
            "scheduler only, default network",
            NetworkMode::Default,
            false,
        ),
        (
            "scheduler only, sandbox",
            NetworkMode::Sandbox(holder.clone()),
            false,
        ),
        (
            "scheduler only, sandbox + logs",
            NetworkMode::Sandbox(holder.clone()),
            true,
        ),
    ] {
        let t = Instant::now();
        for i in 0..n {
            let spec = ContainerSpec::new(format!("bench-raw-{}-{i}", std::process::id()), IMAGE)
                .command(["true"])
                .network(network.clone());
            let id = podman.start(spec).await?;
            if with_logs {
                // As the executor does: logs and wait side by side.
                let drain = async {
                    let mut logs = podman.logs(&id).await?;
                    while logs.next().await.is_some() {}
                    Ok::<_, gofer_core::SchedulerError>(())
                };
                let (logs, exit) = tokio::join!(drain, podman.wait(&id));
                logs?;
                exit?;
            } else {
                podman.wait(&id).await?;
            }
            podman.remove(&id, true).await?;
        }
        println!("{label:<34} {:>8.0}ms", per_task(t.elapsed(), n));
    }
    podman.remove(&holder, true).await?;
    println!("(per-task wall time = total / N; ratio = engine total / CLI total)");
    Ok(ExitCode::SUCCESS)
}

fn per_task(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

/// One run of `n` independent `true` tasks, `parallel` containers at a time.
async fn engine(
    podman: &PodmanScheduler,
    n: usize,
    parallel: usize,
    sandbox: bool,
) -> anyhow::Result<Duration> {
    let instance = format!("bench{}", std::process::id());
    let mut builder = Engine::builder(Arc::new(podman.clone()) as Arc<DynScheduler>)
        .instance_id(&instance)
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .limits(Limits::default().max_running_containers(parallel));
    if sandbox {
        builder = builder.network_sandbox(IMAGE);
    }
    let engine = builder.build()?;
    let mut pipeline = Pipeline::new("bench", "Benchmark");
    for i in 0..n {
        pipeline = pipeline.task(Task::new(format!("t{i:03}"), IMAGE).command(["true"]));
    }
    let t = Instant::now();
    let run = engine
        .start_run(&pipeline, RunOptions::new())?
        .wait()
        .await?;
    let took = t.elapsed();
    if run.status != RunStatus::Successful {
        bail!("the benchmark run ended {}: {run:?}", run.status);
    }
    let left = podman.list(&engine_filter(&instance)).await?;
    if !left.is_empty() {
        bail!("the engine left {} containers", left.len());
    }
    Ok(took)
}

/// `n` times `podman run --rm IMAGE true`, `parallel` at a time.
async fn cli(n: usize, parallel: usize, network: Option<&str>) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..n)
        .map(|_| async move {
            let mut cmd = tokio::process::Command::new("podman");
            cmd.arg("run").arg("--rm");
            if let Some(net) = network {
                cmd.arg(format!("--network={net}"));
            }
            let status = cmd
                .args([IMAGE, "true"])
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status()
                .await
                .context("running the podman command")?;
            if !status.success() {
                bail!("podman run failed: {status}");
            }
            Ok(())
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    for r in results {
        r?;
    }
    Ok(t.elapsed())
}
