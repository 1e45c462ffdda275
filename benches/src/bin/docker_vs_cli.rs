//! N trivial tasks through the gofer engine on Docker against N `docker run --rm` of
//! the CLI, measured in the same run, one at a time and four at a time, with and
//! without the run's network sandbox. Printed as ratios: engine wall time per task /
//! CLI wall time per task (lower is better). The scheduler alone (start, wait, remove
//! straight through `DockerScheduler`, with and without a sandbox) shows the floor
//! under the engine.
//!
//! ```text
//! cargo run --release -p gofer-benches --bin docker_vs_cli -- [N]
//! ```
//!
//! Needs a Docker engine and the image `gofer-test/busybox:latest` (see
//! `scripts/setup-docker.sh`); `GOFER_BENCH_IMAGE` names another image with `true`.
//! Goals: with the sandbox, at most 0.5 of the CLI; without, at most 0.95.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use gofer_core::{
    ContainerSpec, DynScheduler, NetworkMode, Pipeline, RunOptions, RunStatus, SandboxSpec,
    Scheduler, Task,
};
use gofer_engine::{Engine, InMemoryLogSink, Limits};
use gofer_scheduler_docker::DockerScheduler;

const DEFAULT_IMAGE: &str = "gofer-test/busybox:latest";

/// `n` runs of `docker run --rm IMAGE true`, `concurrency` at a time.
fn cli(image: &str, n: usize, concurrency: usize) -> anyhow::Result<Duration> {
    let next = AtomicUsize::new(0);
    let began = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    while next.fetch_add(1, Ordering::Relaxed) < n {
                        let status = Command::new("docker")
                            .args(["run", "--rm", image, "true"])
                            .stdout(Stdio::null())
                            .status()
                            .context("cannot run the docker CLI")?;
                        if !status.success() {
                            bail!("docker run failed: {status}");
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join()
                .map_err(|_| anyhow::anyhow!("a CLI worker panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(began.elapsed())
}

/// One run of `n` tasks running `true`, at most `concurrency` containers at once.
async fn engine(
    scheduler: &Arc<DynScheduler>,
    image: &str,
    n: usize,
    concurrency: usize,
    sandbox: bool,
) -> anyhow::Result<Duration> {
    let mut builder = Engine::builder(scheduler.clone())
        .instance_id("bench")
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .limits(Limits::default().max_running_containers(concurrency));
    if sandbox {
        builder = builder.network_sandbox(image);
    }
    let engine = builder.build()?;
    let pipeline = Pipeline::new("bench", "Benchmark")
        .tasks((0..n).map(|i| Task::new(format!("task{i:04}"), image).command(["true"])));
    let began = Instant::now();
    let run = engine
        .start_run(&pipeline, RunOptions::new())?
        .wait()
        .await?;
    let took = began.elapsed();
    if run.status != RunStatus::Successful {
        bail!("the benchmark run failed: {run:?}");
    }
    Ok(took)
}

/// `n` containers straight through the scheduler: start, wait, remove; with `sandbox`,
/// all in one holder's network namespace (the holder's life is timed too).
async fn raw(
    s: &DockerScheduler,
    image: &str,
    n: usize,
    concurrency: usize,
    sandbox: bool,
) -> anyhow::Result<Duration> {
    let began = Instant::now();
    let holder = if sandbox {
        let name = format!("gofer-bench-raw-{}.sandbox", std::process::id());
        Some(s.create_sandbox(SandboxSpec::new(name, image)).await?)
    } else {
        None
    };
    let network = holder
        .clone()
        .map_or(NetworkMode::Default, NetworkMode::Sandbox);
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let network = network.clone();
            async move {
                let name = format!("gofer-bench-raw-{}-{i}", std::process::id());
                let spec = ContainerSpec::new(name, image)
                    .command(["true"])
                    .network(network);
                let id = s.start(spec).await?;
                let status = s.wait(&id).await?;
                s.remove(&id, true).await?;
                if !status.success() {
                    bail!("container ended {status:?}");
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    if let Some(holder) = holder {
        s.remove(&holder, true).await?;
    }
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(began.elapsed())
}

fn per_task(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1000.0 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// What one case measures.
#[derive(Clone, Copy, PartialEq)]
enum Case {
    Cli,
    Engine,
    Sandbox,
    Scheduler,
    SchedulerSandbox,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(12);
    let rounds: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("ROUNDS must be a number")?
        .unwrap_or(5);
    let image = std::env::var("GOFER_BENCH_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    let docker = DockerScheduler::connect_default()
        .await
        .context("no Docker engine (run scripts/setup-docker.sh as root)")?;
    let scheduler: Arc<DynScheduler> = Arc::new(docker.clone());

    // Warm up both paths (image cache, connection pool, first bridge endpoint).
    {
        let image = image.clone();
        tokio::task::spawn_blocking(move || cli(&image, 2, 1)).await??;
    }
    engine(&scheduler, &image, 2, 1, false).await?;
    engine(&scheduler, &image, 2, 1, true).await?;

    println!(
        "docker_vs_cli: {n} trivial tasks ({image} true) per batch, {rounds} rounds; \
         ratio = engine per task / CLI per task of the same round, median over rounds"
    );
    println!(
        "{:<38} {:>11} {:>13} {:>7} {:>10}",
        "case", "CLI ms/task", "gofer ms/task", "ratio", "goal"
    );
    let mut misses = 0;
    for concurrency in [1usize, 4] {
        let order = [
            Case::Cli,
            Case::Engine,
            Case::Sandbox,
            Case::Scheduler,
            Case::SchedulerSandbox,
        ];
        // Per case: (per-task ms, ratio to the round's CLI) of every round.
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); order.len()];
        let mut ratios: Vec<Vec<f64>> = vec![Vec::new(); order.len()];
        for round in 0..rounds {
            let mut took = [Duration::ZERO; 5];
            // Rotate the order so that drift in the machine's load spreads evenly.
            for k in 0..order.len() {
                let idx = (k + round) % order.len();
                took[idx] = match order[idx] {
                    Case::Cli => {
                        let image = image.clone();
                        tokio::task::spawn_blocking(move || cli(&image, n, concurrency)).await??
                    }
                    Case::Engine => engine(&scheduler, &image, n, concurrency, false).await?,
                    Case::Sandbox => engine(&scheduler, &image, n, concurrency, true).await?,
                    Case::Scheduler => raw(&docker, &image, n, concurrency, false).await?,
                    Case::SchedulerSandbox => raw(&docker, &image, n, concurrency, true).await?,
                };
            }
            for idx in 0..order.len() {
                times[idx].push(per_task(took[idx], n));
                ratios[idx].push(took[idx].as_secs_f64() / took[0].as_secs_f64());
            }
        }
        let at = if concurrency == 1 {
            "one at a time"
        } else {
            "4 at a time"
        };
        let cli_ms = median(times[0].clone());
        for (idx, (name, goal)) in [
            ("engine", Some(0.95)),
            ("engine + sandbox", Some(0.5)),
            ("scheduler alone", None),
            ("scheduler alone + sandbox", None),
        ]
        .into_iter()
        .enumerate()
        {
            let idx = idx + 1;
            let ratio = median(ratios[idx].clone());
            let verdict = match goal {
                Some(g) if ratio <= g => format!("<= {g} ok"),
                Some(g) => {
                    misses += 1;
                    format!("> {g} MISS")
                }
                None => "-".to_string(),
            };
            println!(
                "{:<38} {cli_ms:>11.1} {:>13.1} {ratio:>7.3} {verdict:>10}",
                format!("{name}, {at}"),
                median(times[idx].clone()),
            );
        }
    }
    if misses > 0 {
        println!("{misses} goal(s) missed");
    }
    Ok(())
}
