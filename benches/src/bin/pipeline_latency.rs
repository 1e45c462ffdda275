//! The critical path of a pipeline, per backend, against the backend's own command line
//! in the same run: a chain of three `sleep 0.5`, one `sleep 0.5`, and ten `echo` at
//! once, through the engine (with the run's network sandbox) and through the CLI
//! (`docker run --rm`, `podman run --rm`, `ctr run --rm`), medians of N. From the engine's
//! own record it reports the gap between a parent's recorded end and its child's start
//! (median and max) — what a chain pays per link beyond the work itself.
//!
//! ```text
//! cargo run --release -p gofer-benches --bin pipeline_latency -- [docker|podman|containerd] [N]
//! ```
//!
//! Needs the backend and its CLI (`scripts/engines.sh`). Goals on Docker with the
//! sandbox: the chain at most 0.8x the CLI, the gap at most 60 ms median, one `sleep 0.5`
//! at most 0.9x, ten at once at most 0.6x.

use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::stream::{self, StreamExt};
use gofer_core::{DynScheduler, Pipeline, RequiredParentStatus, RunOptions, RunStatus, Task};
use gofer_engine::{Engine, InMemoryLogSink};

const IMAGE: &str = "gofer-test/busybox:latest";

fn containerd_socket() -> String {
    std::env::var("CONTAINERD_ADDRESS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/run/gofer-containerd/containerd.sock".to_string())
}

async fn scheduler(backend: &str) -> anyhow::Result<Arc<DynScheduler>> {
    Ok(match backend {
        "docker" => Arc::new(gofer_scheduler_docker::DockerScheduler::connect_default().await?),
        "podman" => Arc::new(gofer_scheduler_podman::PodmanScheduler::connect_default().await?),
        "containerd" => Arc::new(
            gofer_scheduler_containerd::ContainerdScheduler::connect(
                gofer_scheduler_containerd::ContainerdConfig::unix(containerd_socket()),
            )
            .await?,
        ),
        other => bail!("unknown backend {other:?} (docker, podman or containerd)"),
    })
}

/// One `<cli> run --rm IMAGE sh -c <script>`.
async fn cli_once(backend: &str, script: &str, tag: &str) -> anyhow::Result<()> {
    let mut cmd = match backend {
        "containerd" => {
            let mut c = tokio::process::Command::new("ctr");
            c.args([
                "--address",
                &containerd_socket(),
                "-n",
                "gofer",
                "run",
                "--rm",
            ])
            .arg(format!("docker.io/{IMAGE}"))
            .arg(format!("bench-lat-{}-{tag}", std::process::id()));
            c
        }
        cli => {
            let mut c = tokio::process::Command::new(cli);
            c.args(["run", "--rm", IMAGE]);
            c
        }
    };
    let status = cmd
        .args(["sh", "-c", script])
        .stdout(Stdio::null())
        .status()
        .await
        .context("running the CLI")?;
    if !status.success() {
        bail!("the CLI failed: {status}");
    }
    Ok(())
}

/// The workload through the CLI: `steps` one after another, `width` at once each.
async fn cli(
    backend: &str,
    steps: &[&str],
    width: usize,
    round: usize,
) -> anyhow::Result<Duration> {
    let t = Instant::now();
    for (i, step) in steps.iter().enumerate() {
        let results: Vec<anyhow::Result<()>> = stream::iter(0..width)
            .map(|j| async move { cli_once(backend, step, &format!("{round}-{i}-{j}")).await })
            .buffer_unordered(width)
            .collect()
            .await;
        for r in results {
            r?;
        }
    }
    Ok(t.elapsed())
}

/// The workload through the engine; its wall time and the parent-end → child-start gaps.
async fn engine(
    e: &Engine,
    steps: &[&str],
    width: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let mut p = Pipeline::new("latency", "Latency");
    for (i, step) in steps.iter().enumerate() {
        for j in 0..width {
            let mut t = Task::new(format!("s{i}w{j:02}"), IMAGE).command(["sh", "-c", step]);
            if i > 0 {
                for k in 0..width {
                    t = t.depends_on(format!("s{}w{k:02}", i - 1), RequiredParentStatus::Success);
                }
            }
            p = p.task(t);
        }
    }
    let t = Instant::now();
    let run = e.start_run(&p, RunOptions::new())?.wait().await?;
    let took = t.elapsed();
    if run.status != RunStatus::Successful {
        bail!("the run ended {}: {run:?}", run.status);
    }
    let mut gaps = Vec::new();
    for i in 1..steps.len() {
        let parents_end = run
            .tasks
            .iter()
            .filter(|t| t.task_id.starts_with(&format!("s{}w", i - 1)))
            .filter_map(|t| t.ended)
            .max();
        for child in run
            .tasks
            .iter()
            .filter(|t| t.task_id.starts_with(&format!("s{i}w")))
        {
            if let (Some(end), Some(start)) = (parents_end, child.started) {
                gaps.push(start.duration_since(end).unwrap_or_default());
            }
        }
    }
    Ok((took, gaps))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let backend = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docker".to_string());
    let n: usize = match std::env::args().nth(2) {
        Some(a) => a.parse().context("N must be a positive number")?,
        None => 5,
    };
    let s = match scheduler(&backend).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("pipeline_latency: {backend} is unreachable ({e}); run scripts/engines.sh");
            return Ok(ExitCode::from(2));
        }
    };
    let e = Engine::builder(s)
        .instance_id(format!("benchlat{}", std::process::id()))
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .network_sandbox(IMAGE)
        .build()?;
    println!("pipeline_latency on {backend}, medians of {n} (engine with the run sandbox)");
    // Warm both paths.
    engine(&e, &["true"], 1).await?;
    cli(&backend, &["true"], 1, 999).await?;
    let mut met = true;
    for (label, steps, width, goal) in [
        ("chain of three sleep 0.5", vec!["sleep 0.5"; 3], 1, 0.8),
        ("one sleep 0.5", vec!["sleep 0.5"], 1, 0.9),
        ("ten echo at once", vec!["echo hi"], 10, 0.6),
    ] {
        let (mut eng, mut c, mut gaps) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..n {
            c.push(cli(&backend, &steps, width, round).await?);
            let (t, g) = engine(&e, &steps, width).await?;
            eng.push(t);
            gaps.extend(g);
        }
        let (eng, c) = (median(eng), median(c));
        let ratio = eng.as_secs_f64() / c.as_secs_f64();
        let ok = ratio <= goal;
        met &= backend != "docker" || ok;
        println!(
            "  {label:<26} engine {:>7.0} ms  cli {:>7.0} ms  ratio {ratio:.2} (goal <= {goal:.2} on docker: {})",
            ms(eng),
            ms(c),
            if ok { "met" } else { "not met" }
        );
        if !gaps.is_empty() {
            let max = gaps.iter().max().copied().unwrap_or_default();
            let med = median(gaps);
            met &= backend != "docker" || med <= Duration::from_millis(60);
            println!(
                "  {:<26} parent end -> child start: median {:.0} ms, max {:.0} ms (goal median <= 60 ms on docker)",
                "",
                ms(med),
                ms(max)
            );
        }
    }
    Ok(if met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
