//! The seed's hello-world task, run on the local Docker engine through the executor.
//!
//! ```text
//! cargo run -p gofer-scheduler-docker --example hello
//! ```
//!
//! The image is `gofer-test/busybox:latest` (made by `scripts/setup-docker.sh`), or the
//! one named by `GOFER_HELLO_IMAGE`.

use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt;
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, SchedulerError, Task};
use gofer_engine::{Engine, InMemoryLogSink};
use gofer_scheduler_docker::{DockerConfig, DockerScheduler};

const DEFAULT_IMAGE: &str = "gofer-test/busybox:latest";

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let image = std::env::var("GOFER_HELLO_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    let config = DockerConfig::new();
    let docker = match DockerScheduler::connect(config.clone()).await {
        Ok(d) => d,
        Err(e @ SchedulerError::Connection { .. }) => {
            eprintln!("Cannot reach a Docker engine at {}.", config.endpoint());
            eprintln!("  cause: {e}");
            eprintln!("What is missing: a running Docker engine (dockerd) on that socket,");
            eprintln!("and the test image {DEFAULT_IMAGE}.");
            eprintln!("To get both, run as root:  scripts/setup-docker.sh");
            eprintln!("(or point DOCKER_HOST at a running engine, and GOFER_HELLO_IMAGE at an");
            eprintln!("image with `echo`).");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };

    let engine = Engine::builder(Arc::new(docker) as Arc<DynScheduler>)
        .log_sink(Arc::new(InMemoryLogSink::new()))
        .build()?;
    let pipeline = Pipeline::new("hello_world", "Hello World").task(
        Task::new("simple_task", image.as_str())
            .description("This task simply prints our hello-world message and exists!")
            .command(["echo", "Hello from Gofer!"]),
    );
    let run = engine.start_run(&pipeline, RunOptions::new())?;

    let mut logs = run.logs("simple_task")?;
    println!("simple_task log:");
    while let Some(line) = logs.next().await {
        println!("  {}", line?.text());
    }
    let result = run.wait().await?;
    let task = result
        .task("simple_task")
        .ok_or_else(|| anyhow::anyhow!("the run has no task simple_task"))?;
    println!(
        "task simple_task: {} (exit code {})",
        task.status,
        task.exit_code
            .map_or_else(|| "none".to_string(), |c| c.to_string())
    );
    if let Some(message) = &task.message {
        println!("  {message}");
    }
    println!(
        "run {} of pipeline {}: {}",
        result.run_id, result.pipeline_id, result.status
    );
    if result.status == RunStatus::Successful {
        Ok(ExitCode::SUCCESS)
    } else {
        if task.reason == Some(gofer_core::StatusReason::SchedulerError) {
            eprintln!(
                "The image {image} could not be found or pulled. Run scripts/setup-docker.sh \
                 as root to create {DEFAULT_IMAGE}, or set GOFER_HELLO_IMAGE to an image \
                 present on the engine."
            );
        }
        Ok(ExitCode::FAILURE)
    }
}
