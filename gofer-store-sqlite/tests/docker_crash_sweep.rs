//! At most once, whenever the host dies: a sweep of SIGKILLs over a three-task chain
//! on the real Docker engine.
//!
//! This test binary is also the host: run with `GOFER_SWEEP_DIR` set, its
//! `sweep_host` test recovers (or starts) a run of a three-task chain with a SQLite run
//! store in that directory and waits for it. The sweep starts it as a child, kills it
//! with SIGKILL after a delay that moves through the whole run (creates, starts, log
//! reads, exits, removals, the store's writes), starts it again on the same directory
//! and checks, from Docker's own event log, that every task's container was created
//! and started exactly once, that the run ended Successful with every log whole, and
//! that nothing is left. The middle task fails its first attempt and is retried
//! (counting its attempts in the run's workspace): each attempt's container, too, is
//! created and started exactly once, and the recovered run ends at attempt 2. In CI (`CI=true`) an unreachable Docker engine fails the
//! test; outside CI it skips, saying why.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gofer_core::naming::{engine_filter, task_container_name_attempt, LABEL_ENGINE};
use gofer_core::{
    Pipeline, PullPolicy, RequiredParentStatus, RetryPolicy, RunOptions, RunStatus, RunStore,
    Scheduler, Task,
};
use gofer_engine::{Engine, FileLogSink, LogKey, LogSink};
use gofer_scheduler_docker::DockerScheduler;
use gofer_store_sqlite::SqliteRunStore;

const IMAGE: &str = "gofer-test/busybox:latest";
const DIR_ENV: &str = "GOFER_SWEEP_DIR";
const INSTANCE_ENV: &str = "GOFER_SWEEP_INSTANCE";
const PIPELINE: &str = "sweep";
const TASKS: [&str; 3] = ["one", "two", "three"];
/// The retried task: its first attempt fails, its second succeeds.
const RETRIED: &str = "two";
/// Kill points: this many delays, `STEP` apart, from the host's start.
const POINTS: u64 = 16;
const STEP: Duration = Duration::from_millis(110);

fn pipeline() -> Pipeline {
    let mut p = Pipeline::new(PIPELINE, "Crash sweep").workspace(true);
    let mut parent: Option<&str> = None;
    for t in TASKS {
        let script = if t == RETRIED {
            // The attempt count lives in the run's workspace: an attempt run twice would
            // show as a third container.
            format!(
                "n=$(cat /gofer/workspace/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /gofer/workspace/n; \
                 echo {t} start; echo {t} end; [ $n -ge 2 ]"
            )
        } else {
            format!("echo {t} start; echo {t} end")
        };
        let mut task = Task::new(t, IMAGE)
            .command(["sh", "-c", &script])
            .pull_policy(PullPolicy::Never);
        if t == RETRIED {
            task = task.retry(RetryPolicy::new(3));
        }
        if let Some(parent) = parent {
            task = task.depends_on(parent, RequiredParentStatus::Success);
        }
        p = p.task(task);
        parent = Some(t);
    }
    p
}

/// The host: recover, start the run when the store has none, wait for it.
#[tokio::test]
async fn sweep_host() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        return; // Only meaningful as the child of the sweep.
    };
    let instance = std::env::var(INSTANCE_ENV).unwrap();
    let docker = DockerScheduler::connect_default().await.unwrap();
    let store = SqliteRunStore::open_dir(&dir).unwrap();
    let (engine, report) = Engine::builder(Arc::new(docker))
        .instance_id(instance)
        .log_sink(Arc::new(FileLogSink::new(Path::new(&dir).join("logs"))))
        .run_store(Arc::new(store.clone()))
        .build_and_recover()
        .await
        .unwrap();
    let handle = match report.runs.into_iter().next() {
        Some(h) => h,
        None if store.list_runs(PIPELINE).await.unwrap().is_empty() => {
            engine.start_run(&pipeline(), RunOptions::new()).unwrap()
        }
        None => return,
    };
    let run = handle.wait().await.unwrap();
    println!("GOFER: DONE {}", run.status);
}

fn host(dir: &Path, instance: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["sweep_host", "--exact", "--nocapture", "--test-threads=1"])
        .env(DIR_ENV, dir)
        .env(INSTANCE_ENV, instance)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Docker's `create` and `start` events of the instance's containers since `since`,
/// counted per container name.
fn lifecycle_events(instance: &str, since: u64) -> BTreeMap<(String, String), usize> {
    let until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let out = Command::new("docker")
        .args([
            "events",
            "--since",
            &since.to_string(),
            "--until",
            &until.to_string(),
            "--filter",
            &format!("label={LABEL_ENGINE}={instance}"),
            "--filter",
            "type=container",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "docker events failed: {out:?}");
    let mut counts = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((action, name)) = line.split_once(' ') {
            if action == "create" || action == "start" {
                *counts
                    .entry((name.to_string(), action.to_string()))
                    .or_insert(0) += 1;
            }
        }
    }
    counts
}

#[tokio::test]
async fn host_killed_anywhere_runs_each_task_once() {
    let docker = match DockerScheduler::connect_default().await {
        Ok(d) => d,
        Err(e) => {
            let reason = format!("Docker engine unreachable ({e}); run scripts/setup-docker.sh");
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
            eprintln!("skipping: {reason}");
            return;
        }
    };
    let mut duplicates = Vec::new();
    let mut orphans = 0usize;
    for point in 0..POINTS {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let instance = format!("sweep{point}x{:x}", nanos.subsec_nanos());
        let dir = std::env::temp_dir().join(format!("gofer-{instance}"));
        let since = nanos.as_secs().saturating_sub(1);

        let mut first = host(&dir, &instance);
        tokio::time::sleep(STEP * u32::try_from(point).unwrap()).await;
        first.kill().unwrap();
        first.wait().unwrap();

        let mut second = host(&dir, &instance);
        let reports: Vec<String> = BufReader::new(second.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect();
        assert!(
            second.wait().unwrap().success(),
            "point {point}: {reports:?}"
        );

        let store = SqliteRunStore::open_dir(&dir).unwrap();
        let runs = store.list_runs(PIPELINE).await.unwrap();
        assert_eq!(runs.len(), 1, "point {point}: one run");
        assert_eq!(
            runs[0].status,
            RunStatus::Successful,
            "point {point}: {runs:?}"
        );
        let sink = FileLogSink::new(dir.join("logs"));
        let events = lifecycle_events(&instance, since);
        let run = store.get_run(PIPELINE, 1).await.unwrap();
        let retried = run.task(RETRIED).unwrap();
        assert_eq!(
            (retried.attempt, retried.attempts.len()),
            (2, 1),
            "point {point}: {retried:?}"
        );
        for t in TASKS {
            let attempts = if t == RETRIED { 2 } else { 1 };
            for attempt in 1..=attempts {
                let key = LogKey::attempt(PIPELINE, 1, t, attempt);
                let (lines, _) = sink.read(&key, 0, 100).unwrap();
                let texts: Vec<String> = lines.iter().map(|l| l.text().into_owned()).collect();
                assert_eq!(
                    texts,
                    [format!("{t} start"), format!("{t} end")],
                    "point {point}: log of {t}, attempt {attempt}"
                );
                let name = task_container_name_attempt(&instance, PIPELINE, 1, t, attempt);
                for action in ["create", "start"] {
                    let n = events
                        .get(&(name.clone(), action.to_string()))
                        .copied()
                        .unwrap_or(0);
                    if n != 1 {
                        duplicates.push(format!("point {point}: {name} {action} x{n}"));
                    }
                }
            }
            let third = task_container_name_attempt(&instance, PIPELINE, 1, t, attempts + 1);
            if events.contains_key(&(third.clone(), "create".to_string())) {
                duplicates.push(format!("point {point}: {third} was created"));
            }
        }
        let left = docker.list(&engine_filter(&instance)).await.unwrap();
        orphans += left.len();
        for c in &left {
            let _ = docker.remove(&c.id, true).await;
        }
        let volumes = docker
            .list_volumes(&engine_filter(&instance))
            .await
            .unwrap();
        orphans += volumes.len();
        for v in &volumes {
            let _ = docker.remove_volume(&v.name).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "crash sweep: {POINTS} kill points, {} duplicated creates/starts, {orphans} containers or volumes left",
        duplicates.len()
    );
    assert!(
        duplicates.is_empty(),
        "tasks ran more than once: {duplicates:?}"
    );
    assert_eq!(orphans, 0, "containers or volumes left behind");
}
