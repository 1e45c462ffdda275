//! The seed's hello-world task, run on the local Podman service through the executor.
//!
//! ```text
//! cargo run -p gofer-scheduler-podman --example hello
//! ```
//!
//! The service is found as `podman` finds it (`CONTAINER_HOST`, else the rootless socket,
//! else `/run/podman/podman.sock`). The image is `gofer-test/busybox:latest` (made by
//! `scripts/setup-podman.sh`), or the one named by `GOFER_HELLO_IMAGE`.

use std::process::ExitCode;
use std::sync::Arc;

use futures::StreamExt;
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, SchedulerError, Task};
use gofer_engine::{Engine, InMemoryLogSink};
use gofer_scheduler_podman::{PodmanConfig, PodmanScheduler};

const DEFAULT_IMAGE: &str = "gofer-test/busybox:latest";

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let image = std::env::var("GOFER_HELLO_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    let config = PodmanConfig::from_env()?;
    let podman = match PodmanScheduler::connect(config.clone()).await {
        Ok(p) => p,
        Err(e @ SchedulerError::Connection { .. }) => {
            eprintln!(
                "Cannot reach a Podman API service at {}.",
                config.endpoint()
            );
            eprintln!("  cause: {e}");
            eprintln!("What is missing: Podman's REST API service listening on that socket");
            eprintln!("(`podman system service --time=0 unix://...`), and the test image");
            eprintln!("{DEFAULT_IMAGE}. To get both, run as root:  scripts/setup-podman.sh");
            eprintln!("(or point CONTAINER_HOST at a running service's unix socket, and");
            eprintln!("GOFER_HELLO_IMAGE at an image with `echo`).");
            return Ok(ExitCode::from(2));
        }
        Err(e) => return Err(e.into()),
    };

    let engine = Engine::builder(Arc::new(podman) as Arc<DynScheduler>)
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
                "The image {image} could not be found or pulled. Run scripts/setup-podman.sh \
                 as root to create {DEFAULT_IMAGE}, or set GOFER_HELLO_IMAGE to an image \
                 present on the service."
            );
        }
        Ok(ExitCode::FAILURE)
    }
}
