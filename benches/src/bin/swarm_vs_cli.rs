//! N trivial tasks through the gofer engine on the two-node test swarm against N
//! `docker service create --mode replicated-job … true` of the CLI (which waits for the
//! job to complete) followed by `docker service rm`, and against the engine on the
//! Docker backend (the main engine), all measured in the same run, one at a time and
//! four at a time. Printed as ratios of wall time per task (lower is better):
//! swarm engine / swarm CLI, and swarm engine / Docker engine.
//!
//! ```text
//! cargo run --release -p gofer-benches --bin swarm_vs_cli -- [N] [ROUNDS]
//! ```
//!
//! Needs the test swarm (`scripts/setup-swarm.sh`, manager at
//! `unix:///run/gofer-swarm/manager.sock`, or `GOFER_SWARM_HOST`), the main Docker
//! engine, and the image `gofer-test/busybox:latest` on both. Goal: the engine on the
//! swarm at most 0.8 of the CLI per task.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, Task};
use gofer_engine::{Engine, InMemoryLogSink, Limits};
use gofer_scheduler_docker::DockerScheduler;
use gofer_scheduler_swarm::{SwarmConfig, SwarmScheduler};

const IMAGE: &str = "gofer-test/busybox:latest";
const MANAGER: &str = "unix:///run/gofer-swarm/manager.sock";
/// The goal: engine per task / CLI per task on the swarm.
const GOAL: f64 = 0.8;

fn docker_cli(host: &str, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("docker")
        .arg("-H")
        .arg(host)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .context("cannot run the docker CLI")?;
    if !status.success() {
        bail!("docker {args:?} failed: {status}");
    }
    Ok(())
}

/// `n` replicated jobs of `true` by the CLI, each created, awaited and removed,
/// `concurrency` at a time.
fn cli(host: &str, n: usize, concurrency: usize, round: usize) -> anyhow::Result<Duration> {
    let next = AtomicUsize::new(0);
    let began = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n {
                            return Ok(());
                        }
                        let name = format!("gofer-bench-cli-{}-{round}-{i}", std::process::id());
                        docker_cli(
                            host,
                            &[
                                "service",
                                "create",
                                "--detach=false",
                                "-q",
                                "--name",
                                &name,
                                "--mode",
                                "replicated-job",
                                "--replicas",
                                "1",
                                "--restart-condition",
                                "none",
                                "--no-resolve-image",
                                IMAGE,
                                "true",
                            ],
                        )?;
                        docker_cli(host, &["service", "rm", &name])?;
                    }
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
    n: usize,
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let engine = Engine::builder(scheduler.clone())
        .instance_id("bench")
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .limits(Limits::default().max_running_containers(concurrency))
        .build()?;
    let pipeline = Pipeline::new("bench", "Benchmark")
        .tasks((0..n).map(|i| Task::new(format!("task{i:04}"), IMAGE).command(["true"])));
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("N must be a number")?
        .unwrap_or(8);
    let rounds: usize = args
        .next()
        .map(|a| a.parse())
        .transpose()
        .context("ROUNDS must be a number")?
        .unwrap_or(3);
    let host = std::env::var("GOFER_SWARM_HOST").unwrap_or_else(|_| MANAGER.to_string());
    let swarm = SwarmScheduler::connect(SwarmConfig::new().host(&host))
        .await
        .context("no test swarm (run scripts/setup-swarm.sh as root)")?;
    let docker = DockerScheduler::connect_default()
        .await
        .context("no Docker engine (run scripts/setup-docker.sh as root)")?;
    let on_swarm: Arc<DynScheduler> = Arc::new(swarm);
    let on_docker: Arc<DynScheduler> = Arc::new(docker);

    // Warm up every path.
    {
        let host = host.clone();
        tokio::task::spawn_blocking(move || cli(&host, 1, 1, usize::MAX)).await??;
    }
    engine(&on_swarm, 2, 1).await?;
    engine(&on_docker, 2, 1).await?;

    println!(
        "swarm_vs_cli: {n} trivial tasks ({IMAGE} true) per batch, {rounds} rounds, two-node swarm; \
         ratio = median over rounds of the same round's per-task times"
    );
    println!(
        "{:<22} {:>15} {:>16} {:>17} {:>14} {:>16}",
        "case", "CLI ms/task", "swarm ms/task", "docker ms/task", "swarm/CLI", "swarm/docker"
    );
    let mut misses = 0;
    for concurrency in [1usize, 4] {
        let mut times: [Vec<f64>; 3] = Default::default();
        let mut vs_cli = Vec::new();
        let mut vs_docker = Vec::new();
        for round in 0..rounds {
            let mut took = [Duration::ZERO; 3];
            // Rotate the order so that drift in the machine's load spreads evenly.
            for k in 0..3 {
                let idx = (k + round) % 3;
                took[idx] = match idx {
                    0 => {
                        let host = host.clone();
                        tokio::task::spawn_blocking(move || cli(&host, n, concurrency, round))
                            .await??
                    }
                    1 => engine(&on_swarm, n, concurrency).await?,
                    _ => engine(&on_docker, n, concurrency).await?,
                };
            }
            for (idx, t) in took.iter().enumerate() {
                times[idx].push(per_task(*t, n));
            }
            vs_cli.push(took[1].as_secs_f64() / took[0].as_secs_f64());
            vs_docker.push(took[1].as_secs_f64() / took[2].as_secs_f64());
        }
        let ratio = median(vs_cli);
        let verdict = if ratio <= GOAL {
            format!("<= {GOAL} ok")
        } else {
            misses += 1;
            format!("> {GOAL} MISS")
        };
        let at = if concurrency == 1 {
            "one at a time"
        } else {
            "4 at a time"
        };
        println!(
            "{at:<22} {:>15.1} {:>16.1} {:>17.1} {:>8.3} {verdict:>5} {:>16.3}",
            median(times[0].clone()),
            median(times[1].clone()),
            median(times[2].clone()),
            ratio,
            median(vs_docker),
        );
    }
    if misses > 0 {
        println!("{misses} goal(s) missed");
    }
    Ok(())
}
