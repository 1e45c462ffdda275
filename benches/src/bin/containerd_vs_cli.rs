//! The containerd backend against the command lines, side by side in one run: a trivial
//! task (`true`) and a chain of three `sleep 0.5` tasks, through the gofer engine on
//! containerd (with the run's network sandbox, the engine's fast path, and without),
//! against `docker run --rm` and `ctr run --rm` doing the same. Printed as medians and
//! ratios (engine / CLI; below 1 means the engine is faster), then where a start's time
//! goes (from the backend's timing events, `gofer_scheduler_containerd::TIMING_TARGET`).
//!
//! ```text
//! cargo run --release -p gofer-benches --bin containerd_vs_cli -- [N]   # N defaults to 9
//! ```
//!
//! Needs the tests' containerd (`scripts/setup-containerd.sh`; `CONTAINERD_ADDRESS`
//! overrides its socket), a Docker engine and `ctr`. Goals: a trivial task at most 0.3x
//! `docker run --rm`; the chain at most 0.75x the CLI's.

use std::collections::BTreeMap;
use std::process::{Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gofer_core::naming::engine_filter;
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, Scheduler, Task};
use gofer_engine::{Engine, InMemoryLogSink};
use gofer_scheduler_containerd::{ContainerdConfig, ContainerdScheduler, TIMING_TARGET};
use tracing_subscriber::layer::SubscriberExt;

const IMAGE: &str = "gofer-test/busybox:latest";
const CTR_IMAGE: &str = "docker.io/gofer-test/busybox:latest";

fn socket() -> String {
    std::env::var("CONTAINERD_ADDRESS")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/run/gofer-containerd/containerd.sock".to_string())
}

/// The backend's timing events, field by field.
#[derive(Default, Clone)]
struct Timings(Arc<Mutex<BTreeMap<String, Vec<u64>>>>);

struct Visit<'a>(&'a mut Vec<(String, u64)>);

impl tracing::field::Visit for Visit<'_> {
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.push((field.name().to_string(), value));
    }
    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Timings {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != TIMING_TARGET {
            return;
        }
        let mut fields = Vec::new();
        event.record(&mut Visit(&mut fields));
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (k, v) in fields {
            map.entry(k).or_default().push(v);
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One command line to its end, timed.
fn timed(program: &str, args: &[&str]) -> anyhow::Result<Duration> {
    let t = Instant::now();
    let status = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {program}"))?;
    if !status.success() {
        bail!("{program} {} failed: {status}", args.join(" "));
    }
    Ok(t.elapsed())
}

/// `steps` commands `sh -c <step>` one after the other through a CLI.
fn cli_chain(cli: &str, steps: &[&str], tag: &str) -> anyhow::Result<Duration> {
    let sock = socket();
    let mut total = Duration::ZERO;
    for (i, step) in steps.iter().enumerate() {
        total += match cli {
            "docker" => timed("docker", &["run", "--rm", IMAGE, "sh", "-c", step])?,
            _ => {
                let id = format!("bench-ctr-{}-{tag}-{i}", std::process::id());
                timed(
                    "ctr",
                    &[
                        "--address",
                        &sock,
                        "-n",
                        "gofer",
                        "run",
                        "--rm",
                        CTR_IMAGE,
                        &id,
                        "sh",
                        "-c",
                        step,
                    ],
                )?
            }
        };
    }
    Ok(total)
}

/// One run of the chain `steps` (each task depends on the one before) on the engine.
async fn engine_chain(
    engine: &Engine,
    s: &ContainerdScheduler,
    instance: &str,
    steps: &[&str],
) -> anyhow::Result<Duration> {
    let mut pipeline = Pipeline::new("bench", "Benchmark");
    for (i, step) in steps.iter().enumerate() {
        let mut task = Task::new(format!("step{i}"), IMAGE).command(["sh", "-c", step]);
        if i > 0 {
            task = task.depends_on(
                format!("step{}", i - 1),
                gofer_core::RequiredParentStatus::Success,
            );
        }
        pipeline = pipeline.task(task);
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
    let left = s.list(&engine_filter(instance)).await?;
    if !left.is_empty() {
        bail!("the engine left {} containers", left.len());
    }
    Ok(took)
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().context("N must be a positive number")?,
        None => 9,
    };
    let timings = Timings::default();
    let subscriber = tracing_subscriber::registry().with(timings.clone()).with(
        tracing_subscriber::filter::Targets::new()
            .with_target(TIMING_TARGET, tracing::Level::DEBUG),
    );
    tracing::subscriber::set_global_default(subscriber)?;
    let s = match ContainerdScheduler::connect(ContainerdConfig::unix(socket())).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("containerd_vs_cli: containerd is unreachable ({e}); run scripts/setup-containerd.sh");
            return Ok(ExitCode::from(2));
        }
    };
    println!(
        "containerd_vs_cli: containerd {}, image {IMAGE}, medians of {n}",
        s.server_version()
    );
    let mut engines = Vec::new();
    for sandbox in [true, false] {
        let instance = format!("benchctr{}{}", std::process::id(), u8::from(sandbox));
        let mut b = Engine::builder(Arc::new(s.clone()) as Arc<DynScheduler>)
            .instance_id(&instance)
            .log_sink(Arc::new(InMemoryLogSink::new()));
        if sandbox {
            b = b.network_sandbox(IMAGE);
        }
        engines.push((sandbox, instance, b.build()?));
    }
    // Warm up every path (page cache, shims, CNI).
    for (_, instance, engine) in &engines {
        engine_chain(engine, &s, instance, &["true"]).await?;
    }
    cli_chain("docker", &["true"], "warm")?;
    cli_chain("ctr", &["true"], "warm")?;
    timings
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clear();

    let mut goals_met = true;
    for (label, steps, goal) in [
        ("trivial task (true)", vec!["true"], 0.30),
        (
            "chain of three sleep 0.5",
            vec!["sleep 0.5", "sleep 0.5", "sleep 0.5"],
            0.75,
        ),
    ] {
        let mut docker = Vec::new();
        let mut ctr = Vec::new();
        let mut with_sandbox = Vec::new();
        let mut without = Vec::new();
        for i in 0..n {
            // Interleaved, so drift on a shared machine hits every path alike.
            docker.push(cli_chain("docker", &steps, &format!("d{i}"))?);
            ctr.push(cli_chain("ctr", &steps, &format!("c{i}"))?);
            for (sandbox, instance, engine) in &engines {
                let d = engine_chain(engine, &s, instance, &steps).await?;
                if *sandbox {
                    with_sandbox.push(d)
                } else {
                    without.push(d)
                }
            }
        }
        let (docker, ctr) = (median(docker), median(ctr));
        let (sb, plain) = (median(with_sandbox), median(without));
        let ratio = sb.as_secs_f64() / docker.as_secs_f64();
        let met = ratio <= goal;
        goals_met &= met;
        println!("\n{label}");
        println!("  docker run --rm           {:>8.1} ms", ms(docker));
        println!(
            "  ctr run --rm              {:>8.1} ms  ({:.2}x docker)",
            ms(ctr),
            ctr.as_secs_f64() / docker.as_secs_f64()
        );
        println!("  engine, run sandbox       {:>8.1} ms  ({ratio:.2}x docker, {:.2}x ctr; goal <= {goal:.2}x docker: {})",
            ms(sb), sb.as_secs_f64() / ctr.as_secs_f64(), if met { "met" } else { "NOT met" });
        println!(
            "  engine, own network each  {:>8.1} ms  ({:.2}x docker, {:.2}x ctr)",
            ms(plain),
            plain.as_secs_f64() / docker.as_secs_f64(),
            plain.as_secs_f64() / ctr.as_secs_f64()
        );
    }
    println!("\nwhere a start goes (backend timing events, medians over every container above):");
    let map = timings
        .0
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    for key in [
        "image_us",
        "container_us",
        "snapshot_us",
        "network_us",
        "task_us",
        "start_us",
        "total_us",
        "delete_us",
        "remove_us",
    ] {
        let mut v = map.get(key).cloned().unwrap_or_default();
        v.sort_unstable();
        let med = v.get(v.len() / 2).copied().unwrap_or_default();
        let max = v.last().copied().unwrap_or_default();
        println!(
            "  {key:<14} median {:>7.2} ms  max {:>7.2} ms  ({} samples)",
            med as f64 / 1000.0,
            max as f64 / 1000.0,
            v.len()
        );
    }
    println!("(network_us is 0 for a task in the run sandbox: it joins the holder's namespace)");
    Ok(if goals_met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
