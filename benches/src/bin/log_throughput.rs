//! A task that prints a lot, through the engine with a file sink, against the CLI
//! with its output sent to a file (`docker run --rm IMAGE ... > file`, and
//! `podman run --rm` likewise), interleaved in the same run. Printed as ratios: engine
//! wall time (from `start_run` to the end of `wait`) / CLI wall time (lower is better),
//! with the host's peak RSS growth during each engine run, the log file's bytes on
//! disk per byte of output and its read-back speed. Every byte is checked: the CLI's
//! file must hold the whole output and the engine's log every byte of it.
//!
//! ```text
//! cargo run --release -p gofer-benches --bin log_throughput -- [MiB] [rounds] [engines] [cases]
//! ```
//!
//! Cases: `MiB` (default 100) of 100-byte lines; `MiB` of 2-byte lines; one 10 MiB
//! line. `rounds` (default 1) repeats each case; the median ratio is printed.
//! `engines` is `docker,podman` (the default), `docker` or `podman`; `cases` picks
//! some of `lines100,lines2,one_line` (all by default). Needs the image
//! `gofer-test/busybox:latest` (see `scripts/setup-docker.sh`, `scripts/setup-podman.sh`)
//! or `GOFER_BENCH_IMAGE`. Goals: at most 1.1 of the CLI on each engine, peak RSS
//! growth under 64 MiB.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use gofer_core::{DynScheduler, Pipeline, RunOptions, RunStatus, Task};
use gofer_engine::{Engine, FileLogSink, LogKey, LogSink};
use gofer_scheduler_docker::DockerScheduler;
use gofer_scheduler_podman::PodmanScheduler;

const DEFAULT_IMAGE: &str = "gofer-test/busybox:latest";
const RATIO_GOAL: f64 = 1.1;
const RSS_GOAL_MIB: f64 = 64.0;

struct Case {
    id: &'static str,
    name: String,
    script: String,
    bytes: u64,
    /// The output ends with a line end.
    ends_with_newline: bool,
}

fn cases(mib: u64) -> Vec<Case> {
    let bytes = mib << 20;
    let line99 = "0123456789".repeat(10)[..99].to_string();
    vec![
        Case {
            id: "lines100",
            name: format!("{mib} MiB of 100-byte lines"),
            script: format!("yes {line99} | head -c {bytes}"),
            bytes,
            ends_with_newline: bytes % 100 == 0,
        },
        Case {
            id: "lines2",
            name: format!("{mib} MiB of 2-byte lines"),
            script: format!("yes | head -c {bytes}"),
            bytes,
            ends_with_newline: bytes % 2 == 0,
        },
        Case {
            id: "one_line",
            name: "one 10 MiB line".into(),
            script: format!("head -c {} /dev/zero | tr '\\0' y", 10u64 << 20),
            bytes: 10 << 20,
            ends_with_newline: false,
        },
    ]
}

/// `<cli> run --rm IMAGE sh -c SCRIPT > file`; checks the file's size.
fn cli(cli: &str, image: &str, case: &Case, dir: &Path) -> anyhow::Result<Duration> {
    let path = dir.join(format!("{cli}.out"));
    let out = File::create(&path).context("creating the CLI's output file")?;
    let began = Instant::now();
    let status = Command::new(cli)
        .args(["run", "--rm", image, "sh", "-c", &case.script])
        .stdout(out)
        .stderr(Stdio::inherit())
        .status()
        .with_context(|| format!("cannot run the {cli} CLI"))?;
    let took = began.elapsed();
    ensure!(status.success(), "{cli} run failed: {status}");
    let got = std::fs::metadata(&path)?.len();
    ensure!(
        got == case.bytes,
        "{cli} run wrote {got} bytes, expected {}",
        case.bytes
    );
    std::fs::remove_file(&path)?;
    Ok(took)
}

/// What one engine run measured.
struct EngineRun {
    took: Duration,
    rss_growth_mib: f64,
    disk_per_byte: f64,
    read_mib_s: f64,
}

fn proc_status_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/self/status"))?;
    line.split_whitespace()
        .nth(1)
        .context("malformed /proc/self/status")?
        .parse()
        .context("malformed /proc/self/status")
}

async fn engine(
    scheduler: &Arc<DynScheduler>,
    image: &str,
    case: &Case,
    dir: &Path,
) -> anyhow::Result<EngineRun> {
    let sink = FileLogSink::new(dir.join("logs"));
    let engine = Engine::builder(scheduler.clone())
        .instance_id(format!("logbench{}", std::process::id()))
        .log_sink(Arc::new(sink.clone()))
        .build()?;
    let pipeline = Pipeline::new("logbench", "Log throughput")
        .task(Task::new("print", image).command(["sh", "-c", &case.script]));
    // Peak RSS from here: the kernel resets the high-water mark on "5".
    std::fs::write("/proc/self/clear_refs", "5").context("resetting the peak RSS")?;
    let rss_before = proc_status_kib("VmRSS:")?;
    let began = Instant::now();
    let run = engine
        .start_run(&pipeline, RunOptions::new())?
        .wait()
        .await?;
    let took = began.elapsed();
    let peak = proc_status_kib("VmHWM:")?;
    if run.status != RunStatus::Successful {
        bail!("the benchmark run ended {}: {run:?}", run.status);
    }
    let key = LogKey::new("logbench", run.run_id, "print");
    let on_disk = std::fs::metadata(sink.path(&key))?.len();
    // Read the whole log back, counting its bytes.
    let read_began = Instant::now();
    let mut reader = sink.reader(&key)?;
    let (mut data, mut full) = (0u64, 0u64);
    loop {
        let lines = reader.next_lines(&sink, 4096)?;
        if lines.is_empty() {
            break;
        }
        for l in &lines {
            data += l.data.len() as u64;
            full += u64::from(!l.partial);
        }
    }
    let read_took = read_began.elapsed();
    let got = data + full - u64::from(!case.ends_with_newline);
    ensure!(
        got == case.bytes,
        "the engine's log holds {got} bytes, expected {}",
        case.bytes
    );
    std::fs::remove_dir_all(dir.join("logs"))?;
    Ok(EngineRun {
        took,
        rss_growth_mib: peak.saturating_sub(rss_before) as f64 / 1024.0,
        disk_per_byte: on_disk as f64 / case.bytes as f64,
        read_mib_s: case.bytes as f64 / (1 << 20) as f64 / read_took.as_secs_f64(),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mib: u64 = args.next().map_or(Ok(100), |a| a.parse()).context("MiB")?;
    let rounds: usize = args.next().map_or(Ok(1), |a| a.parse()).context("rounds")?;
    let engines = args.next().unwrap_or_else(|| "docker,podman".into());
    let picked = args
        .next()
        .unwrap_or_else(|| "lines100,lines2,one_line".into());
    ensure!(rounds > 0, "rounds must be at least 1");
    let image = std::env::var("GOFER_BENCH_IMAGE").unwrap_or_else(|_| DEFAULT_IMAGE.to_string());
    let dir = tempfile_dir()?;
    let mut backends: Vec<(&str, Arc<DynScheduler>)> = Vec::new();
    if engines.split(',').any(|e| e == "docker") {
        backends.push((
            "docker",
            Arc::new(DockerScheduler::connect_default().await?),
        ));
    }
    if engines.split(',').any(|e| e == "podman") {
        backends.push((
            "podman",
            Arc::new(PodmanScheduler::connect_default().await?),
        ));
    }
    ensure!(!backends.is_empty(), "no engine among {engines:?}");
    println!(
        "log_throughput: {rounds} round(s), interleaved; ratio = engine (file sink) wall time / `<cli> run --rm` > file, median over rounds"
    );
    println!(
        "{:<28} {:<7} {:>8} {:>9} {:>7} {:>9} {:>11} {:>11}  goal",
        "case", "engine", "CLI s", "gofer s", "ratio", "RSS MiB", "disk B/B", "read MiB/s"
    );
    let mut missed = 0;
    for case in cases(mib)
        .into_iter()
        .filter(|c| picked.split(',').any(|p| p == c.id))
    {
        let mut results: Vec<(Vec<f64>, Vec<f64>, Vec<EngineRun>)> =
            backends.iter().map(|_| (vec![], vec![], vec![])).collect();
        for _ in 0..rounds {
            for (i, (name, s)) in backends.iter().enumerate() {
                let c = cli(name, &image, &case, &dir)?;
                let e = engine(s, &image, &case, &dir)
                    .await
                    .with_context(|| format!("{} on {name}", case.name))?;
                results[i].0.push(c.as_secs_f64());
                results[i].1.push(e.took.as_secs_f64() / c.as_secs_f64());
                results[i].2.push(e);
            }
        }
        for ((name, _), (cli_s, ratios, runs)) in backends.iter().zip(results) {
            let ratio = median(ratios);
            let rss = runs.iter().map(|r| r.rss_growth_mib).fold(0.0, f64::max);
            let ok = ratio <= RATIO_GOAL && rss < RSS_GOAL_MIB;
            missed += usize::from(!ok);
            println!(
                "{:<28} {:<7} {:>8.2} {:>9.2} {:>7.2} {:>9.1} {:>11.2} {:>11.0}  <= {RATIO_GOAL}, < {RSS_GOAL_MIB} MiB {}",
                case.name,
                name,
                median(cli_s),
                median(runs.iter().map(|r| r.took.as_secs_f64()).collect()),
                ratio,
                rss,
                median(runs.iter().map(|r| r.disk_per_byte).collect()),
                median(runs.iter().map(|r| r.read_mib_s).collect()),
                if ok { "ok" } else { "MISS" }
            );
        }
    }
    std::fs::remove_dir_all(&dir)?;
    if missed > 0 {
        println!("{missed} goal(s) missed");
    }
    Ok(())
}

/// A fresh directory under the temporary directory for this run's files.
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("gofer-log-throughput-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
