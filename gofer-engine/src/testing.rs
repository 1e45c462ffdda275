//! Engine-level checks on a real backend: the seed's hello-world pipeline, the exact
//! environment a task sees, and the run-scoped network sandbox, all through the
//! executor ([`Engine`]).
//!
//! Each function panics with a clear assertion message when the backend misbehaves, and
//! removes what the engine instance left before it asserts that nothing was left.
//! The workloads are `sh` scripts for a busybox image (`env`, `nc`, `sleep`), so they
//! suit real engines; backend differences are arguments, never backend names.
//!
//! ```no_run
//! # async fn demo(s: std::sync::Arc<gofer_core::DynScheduler>) {
//! gofer_engine::testing::hello_world(s, "gofer-test/busybox:latest", "mytest1").await;
//! # }
//! ```

pub mod crash;
pub mod traced;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use crate::{Engine, EngineBuilder, InMemoryLogSink, RunHandle};
use gofer_core::naming::engine_filter;
use gofer_core::{
    DynScheduler, Event, Pipeline, RunOptions, RunStatus, StatusReason, Task, TaskState, TaskStatus,
};

fn builder(s: &Arc<DynScheduler>, instance: &str) -> EngineBuilder {
    Engine::builder(s.clone())
        .instance_id(instance)
        .log_sink(Arc::new(InMemoryLogSink::new()))
}

fn sandboxed(s: &Arc<DynScheduler>, image: &str, instance: &str) -> Engine {
    builder(s, instance)
        .network_sandbox(image)
        .build()
        .expect("an engine with a network sandbox")
}

async fn log_of(h: &RunHandle, task: &str) -> Vec<String> {
    h.logs(task)
        .expect("the task exists")
        .map(|l| l.expect("a log line").text().into_owned())
        .collect()
        .await
}

/// Removes what engine instance `instance` left (containers, then volumes on a backend
/// with [`Capabilities::volumes`](gofer_core::Capabilities::volumes)), then asserts it left
/// nothing.
pub async fn assert_nothing_left(s: &DynScheduler, instance: &str) {
    let left = s
        .list(&engine_filter(instance))
        .await
        .expect("list by label");
    for c in &left {
        let _ = s.remove(&c.id, true).await;
    }
    let mut names: Vec<_> = left.iter().map(|c| c.name.clone()).collect();
    if s.capabilities().volumes {
        let volumes = s
            .list_volumes(&engine_filter(instance))
            .await
            .expect("list volumes by label");
        for v in &volumes {
            let _ = s.remove_volume(&v.name).await;
        }
        names.extend(volumes.into_iter().map(|v| format!("volume {}", v.name)));
    }
    assert!(names.is_empty(), "left behind: {names:?}");
}

/// A task that fails twice then succeeds, counting its attempts in a file of the run's
/// workspace: three attempts, each with its own log; the next task reads the count
/// from the workspace; nothing (container or volume) is left.
pub async fn retried_task_counts_attempts_in_the_workspace(
    s: Arc<DynScheduler>,
    image: &str,
    instance: &str,
) {
    let engine = builder(&s, instance).build().expect("an engine");
    let count = format!("{}/count", gofer_core::WORKSPACE_PATH);
    let pipeline = Pipeline::new("retried", "Retried")
        .workspace(true)
        .task(
            Task::new("flaky", image)
                .command([
                    "sh".to_string(),
                    "-c".to_string(),
                    format!(
                        "n=$(cat {count} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {count}; \
                         echo attempt $n; [ $n -ge 3 ]"
                    ),
                ])
                .retry(gofer_core::RetryPolicy::new(5).backoff(
                    Duration::from_millis(100),
                    2.0,
                    Duration::from_secs(1),
                )),
        )
        .task(
            Task::new("after", image)
                .command(["cat".to_string(), count.clone()])
                .depends_on("flaky", gofer_core::RequiredParentStatus::Success),
        );
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let flaky = run.task("flaky").expect("the task");
    assert_eq!((flaky.attempt, flaky.attempts.len()), (3, 2), "{flaky:?}");
    for a in &flaky.attempts {
        assert_eq!(
            a.reason,
            Some(StatusReason::AbnormalExit { code: 1 }),
            "{a:?}"
        );
    }
    for n in 1..=3u32 {
        let lines: Vec<String> = h
            .attempt_logs("flaky", n)
            .expect("the task")
            .map(|l| l.expect("a log line").text().into_owned())
            .collect()
            .await;
        assert_eq!(lines, [format!("attempt {n}")], "attempt {n}");
    }
    assert_eq!(log_of(&h, "after").await, ["3"]);
    assert_nothing_left(&*s, instance).await;
}

/// Caches across runs on a real backend: a first run misses and saves what its task
/// wrote (under a key taking the digest of a workspace file); the second run restores
/// it (and does not see the completion marker); a failed run saves nothing, so a run
/// of its key starts empty; a prune with a budget for one entry removes the least
/// recently used one, a zero budget every entry of the pipeline; nothing of the runs
/// is left.
pub async fn caches_persist_across_runs(s: Arc<DynScheduler>, image: &str, instance: &str) {
    let engine = builder(&s, instance).build().expect("an engine");
    let pipeline_id = format!("{instance}-cache");
    let sh = |script: &str| ["sh".to_string(), "-c".to_string(), script.to_string()];
    let lock = format!("{}/lock", gofer_core::WORKSPACE_PATH);
    let cached = |script: &str| {
        Pipeline::new(pipeline_id.clone(), "Caches")
            .workspace(true)
            .task(Task::new("prep", image).command(sh(&format!("echo v1 > {lock}"))))
            .task(
                Task::new("build", image)
                    .command(sh(script))
                    .depends_on("prep", gofer_core::RequiredParentStatus::Success)
                    .cache(gofer_core::Cache::new(
                        "deps-{{digest:lock}}-{{KIND}}",
                        "/cache",
                    )),
            )
    };
    let run_of = |p: Pipeline, kind: &str| {
        let h = engine
            .start_run(&p, RunOptions::new().variable("KIND", kind))
            .expect("a run");
        async move {
            let run = h.wait().await.expect("the run ends");
            (run, log_of(&h, "build").await)
        }
    };
    // A miss: empty, saved on success.
    let (run, log) = run_of(
        cached("ls -A /cache | wc -l; echo kept > /cache/stamp; mkdir -p /cache/d && echo deep > /cache/d/f"),
        "ok",
    )
    .await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log, ["0"], "a miss starts empty");
    let entries = engine
        .caches(Some(&pipeline_id))
        .await
        .expect("list caches");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert!(
        entries[0].key.starts_with("deps-") && entries[0].key.ends_with("-ok"),
        "{entries:?}"
    );
    assert!(entries[0].size_bytes > 0, "{entries:?}");
    // A hit: the files, and nothing of the marker.
    let (run, log) = run_of(
        cached(&format!(
            "cat /cache/stamp /cache/d/f; ls -A /cache | grep -c '{}' || true",
            gofer_core::cache::COMPLETE_MARKER
        )),
        "ok",
    )
    .await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log, ["kept", "deep", "0"]);
    // A failure saves nothing: the next run of that key starts empty.
    let (run, _) = run_of(cached("echo bad > /cache/poison; exit 1"), "bad").await;
    assert_eq!(run.status, RunStatus::Failed);
    let (run, log) = run_of(cached("ls -A /cache | wc -l"), "bad").await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log, ["0"], "a failed run poisoned its key");
    assert_nothing_left(&*s, instance).await;
    // Eviction, least recently used first: "ok" is used again after "bad" was saved,
    // so a budget that holds one entry removes "bad".
    let (run, log) = run_of(cached("cat /cache/stamp"), "ok").await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log, ["kept"]);
    let entries = engine
        .caches(Some(&pipeline_id))
        .await
        .expect("list caches");
    assert_eq!(entries.len(), 2, "{entries:?}");
    let ok = entries
        .iter()
        .find(|e| e.key.ends_with("-ok"))
        .expect("the ok entry");
    let report = engine
        .prune_caches(
            &crate::CachePolicy::new().max_bytes(ok.size_bytes),
            Some(&pipeline_id),
        )
        .await
        .expect("prune");
    assert_eq!(report.removed.len(), 1, "{report:?}");
    let kept = engine
        .caches(Some(&pipeline_id))
        .await
        .expect("list caches");
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(
        kept[0].key.ends_with("-ok"),
        "the recently used entry went: {kept:?}"
    );
    // A zero budget removes every entry (and its use record).
    let report = engine
        .prune_caches(&crate::CachePolicy::new().max_bytes(0), Some(&pipeline_id))
        .await
        .expect("prune");
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert!(report.freed_bytes > 0);
    assert!(engine
        .caches(Some(&pipeline_id))
        .await
        .expect("list caches")
        .is_empty());
    let left: Vec<_> = s
        .list_volumes(&std::collections::BTreeMap::new())
        .await
        .expect("list volumes")
        .into_iter()
        .filter(|v| v.labels.get(gofer_core::cache::LABEL_CACHE_SCOPE) == Some(&pipeline_id))
        .map(|v| v.name)
        .collect();
    assert!(left.is_empty(), "cache volumes left: {left:?}");
}

/// One task leaves a file in the run's workspace and the next reads it; the volume
/// goes with the run, also when the run fails.
pub async fn tasks_share_files_through_the_workspace(
    s: Arc<DynScheduler>,
    image: &str,
    instance: &str,
) {
    let engine = builder(&s, instance).build().expect("an engine");
    let file = format!("{}/built.txt", gofer_core::WORKSPACE_PATH);
    let pipeline = Pipeline::new("shared", "Shared workspace")
        .workspace(true)
        .task(Task::new("build", image).command([
            "sh".to_string(),
            "-c".to_string(),
            format!("echo made by build > {file}"),
        ]))
        .task(
            Task::new("test", image)
                .command(["cat".to_string(), file.clone()])
                .depends_on("build", gofer_core::RequiredParentStatus::Success),
        );
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_of(&h, "test").await, ["made by build"]);
    assert_nothing_left(&*s, instance).await;
    // A second run starts with an empty workspace, and a failing one removes it too.
    let failing = Pipeline::new("shared", "Shared workspace")
        .workspace(true)
        .task(Task::new("test", image).command(["cat".to_string(), file]));
    let h = engine
        .start_run(&failing, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(
        run.status,
        RunStatus::Failed,
        "the second run's workspace is new: {run:?}"
    );
    assert_nothing_left(&*s, instance).await;
}

/// Waits until `task` of the run is running.
async fn until_running(h: &RunHandle, task: &str) {
    let mut events = h.events();
    while let Some(e) = events.next().await {
        if let Event::Task {
            task_id,
            state: TaskState::Running,
            ..
        } = e
        {
            if &*task_id == task {
                return;
            }
        }
    }
    panic!("task {task} never ran");
}

/// The seed's hello-world pipeline ends Successful and logs exactly "Hello from Gofer!".
pub async fn hello_world(s: Arc<DynScheduler>, image: &str, instance: &str) {
    let engine = builder(&s, instance).build().expect("an engine");
    let pipeline = Pipeline::new("hello", "Hello world").task(
        Task::new("simple_task", image)
            .description("This task simply prints our hello-world message and exists!")
            .command(["echo", "Hello from Gofer!"]),
    );
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let task = run.task("simple_task").expect("the task");
    assert_eq!(task.status, TaskStatus::Successful);
    assert_eq!(task.exit_code, Some(0));
    assert_eq!(log_of(&h, "simple_task").await, ["Hello from Gofer!"]);
    assert_nothing_left(&*s, instance).await;
}

/// A task that prints its environment sees exactly the contract's variables: the
/// system ones (one overridden by the task), its own and the run's — plus only the keys
/// in `engine_env`, which the image or the engine itself sets (`PATH` must be `/bin`).
pub async fn exact_contract_variables(
    s: Arc<DynScheduler>,
    image: &str,
    instance: &str,
    engine_env: &[&str],
) {
    let engine = builder(&s, instance).build().expect("an engine");
    let pipeline = Pipeline::new("envcheck", "Environment").task(
        Task::new("print_env", image)
            .command(["env"])
            .variable("OWN_VAR", "own value")
            .variable("GOFER_TASK_IMAGE", "overridden by the task"),
    );
    let h = engine
        .start_run(
            &pipeline,
            RunOptions::new().variable("FROM_RUN", "run value"),
        )
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let env: BTreeMap<String, String> = log_of(&h, "print_env")
        .await
        .into_iter()
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect();
    let ours: BTreeMap<&str, &str> = env
        .iter()
        .filter(|(k, _)| !engine_env.contains(&k.as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let expected = BTreeMap::from([
        ("GOFER_PIPELINE_ID", "envcheck"),
        ("GOFER_RUN_ID", "1"),
        ("GOFER_TASK_ID", "print_env"),
        ("GOFER_TASK_IMAGE", "overridden by the task"),
        ("GOFER_TASK_ATTEMPT", "1"),
        ("OWN_VAR", "own value"),
        ("FROM_RUN", "run value"),
    ]);
    assert_eq!(ours, expected);
    assert_eq!(env.get("PATH").map(String::as_str), Some("/bin"));
    assert_nothing_left(&*s, instance).await;
}

/// Tasks of one sandboxed run reach each other on localhost, and the holder goes with
/// the run.
pub async fn sandboxed_tasks_share_localhost(s: Arc<DynScheduler>, image: &str, instance: &str) {
    let engine = sandboxed(&s, image, instance);
    let pipeline = Pipeline::new("pod", "Sandbox")
        // busybox `nc -l` ends when its own stdin ends, which can be before the peer's
        // data is read: keep nc's stdin open and print what it got once it has it.
        .task(Task::new("server", image).command([
            "sh",
            "-c",
            "sleep 120 | nc -l -p 7777 > /tmp/got & while [ ! -s /tmp/got ]; do sleep 0.05; done; cat /tmp/got",
        ]))
        .task(Task::new("client", image).command([
            "sh",
            "-c",
            "i=0; while [ $i -lt 200 ]; do echo 'hello over localhost' | nc 127.0.0.1 7777 && exit 0; sleep 0.1; i=$((i+1)); done; exit 1",
        ]));
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_of(&h, "server").await, ["hello over localhost"]);
    assert_nothing_left(&*s, instance).await;
}

/// A cancelled sandboxed run removes its task and its holder.
pub async fn sandbox_removed_on_cancel(s: Arc<DynScheduler>, image: &str, instance: &str) {
    let engine = sandboxed(&s, image, instance);
    let pipeline = Pipeline::new("cancelme", "Cancelled")
        .task(Task::new("sleeper", image).command(["sleep", "600"]));
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    until_running(&h, "sleeper").await;
    // While it runs, the engine holds the task and its holder.
    let live = s.list(&engine_filter(instance)).await.expect("list");
    assert_eq!(live.len(), 2, "{live:?}");
    h.cancel(Duration::from_secs(1));
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Cancelled);
    assert_nothing_left(&*s, instance).await;
}

/// A failed sandboxed run removes its task and its holder.
pub async fn sandbox_removed_on_failure(s: Arc<DynScheduler>, image: &str, instance: &str) {
    let engine = sandboxed(&s, image, instance);
    let pipeline = Pipeline::new("failme", "Failed")
        .task(Task::new("fails", image).command(["sh", "-c", "exit 4"]));
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.task("fails").expect("the task").reason,
        Some(StatusReason::AbnormalExit { code: 4 })
    );
    assert_nothing_left(&*s, instance).await;
}

/// A run cancelled with the largest grace there is (`Duration::MAX`) ends `Cancelled`
/// and leaves no container: the backend's stop must not overflow on it. The task
/// exits on SIGTERM, so the grace never runs out.
pub async fn cancel_with_the_largest_grace(s: Arc<DynScheduler>, image: &str, instance: &str) {
    let engine = builder(&s, instance).build().expect("an engine");
    let pipeline =
        Pipeline::new("maxgrace", "Largest grace").task(Task::new("trapper", image).command([
            "sh",
            "-c",
            "trap 'exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ]));
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    // A SIGTERM before the shell (PID 1) has set its trap is dropped, and with this
    // grace the run would then never end: cancel once the trap is set.
    let mut log = h.logs("trapper").expect("the task exists");
    while let Some(line) = log.next().await {
        if line.expect("a log line").text() == "ready" {
            break;
        }
    }
    h.cancel(Duration::MAX);
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    assert_nothing_left(&*s, instance).await;
}

/// Tasks of one run with a run network ([`SandboxNetwork::RunNetwork`](gofer_core::SandboxNetwork))
/// reach each other by task id as a host name — on whichever machines they run — and
/// the network goes with the run.
pub async fn run_network_reaches_tasks_by_id(s: Arc<DynScheduler>, image: &str, instance: &str) {
    assert_eq!(
        s.capabilities().sandbox_network,
        gofer_core::SandboxNetwork::RunNetwork,
        "{} has no run network",
        s.name()
    );
    let engine = sandboxed(&s, image, instance);
    let pipeline = Pipeline::new("net", "Run network")
        .task(Task::new("server", image).command([
            "sh",
            "-c",
            "sleep 120 | nc -l -p 7777 > /tmp/got & while [ ! -s /tmp/got ]; do sleep 0.05; done; cat /tmp/got",
        ]))
        .task(Task::new("client", image).command([
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo 'hello over the run network' | nc server 7777 && exit 0; sleep 0.1; i=$((i+1)); done; exit 1",
        ]));
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_of(&h, "server").await, ["hello over the run network"]);
    assert_nothing_left(&*s, instance).await;
}

/// A task reaches a service on `localhost` once its readiness check passed: busybox
/// `httpd` serves a page, probed with `wget` (under `busybox timeout`), and the task
/// prints what it fetched; the service's log is kept and nothing is left.
pub async fn task_reaches_a_service_on_localhost(
    s: Arc<DynScheduler>,
    image: &str,
    instance: &str,
) {
    let sink = InMemoryLogSink::new();
    let engine = builder(&s, instance)
        .log_sink(Arc::new(sink.clone()))
        .network_sandbox(image)
        .build()
        .expect("an engine with a network sandbox");
    let fetch = [
        "busybox",
        "timeout",
        "5",
        "busybox",
        "wget",
        "-q",
        "-O",
        "-",
        "http://127.0.0.1:8080/",
    ];
    let pipeline = Pipeline::new("webtest", "Service")
        .service(
            gofer_core::Service::new("web", image)
                .command([
                    "sh",
                    "-c",
                    "mkdir -p /www && echo \"$GREETING\" > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www",
                ])
                .variable("GREETING", "hello from the service")
                .readiness(gofer_core::Readiness::new(
                    fetch,
                    Duration::from_millis(200),
                    Duration::from_secs(60),
                )),
        )
        .task(Task::new("client", image).command(fetch).needs_service("web"));
    let h = engine
        .start_run(&pipeline, RunOptions::new())
        .expect("a run");
    let live = h.service_logs("web").expect("the service's log");
    let run = h.wait().await.expect("the run ends");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    assert_eq!(log_of(&h, "client").await, ["hello from the service"]);
    // The live stream gives the service's output and ends once it stopped.
    let streamed: Vec<String> = live
        .map(|l| l.expect("a whole service log").text().into_owned())
        .collect()
        .await;
    assert_eq!(
        streamed.first().map(String::as_str),
        Some("serving"),
        "{streamed:?}"
    );
    let kept: Vec<String> = sink
        .lines(&crate::LogKey::service("webtest", 1, "web"))
        .iter()
        .map(|l| l.text().into_owned())
        .collect();
    assert_eq!(streamed, kept);
    assert_nothing_left(&*s, instance).await;
}
