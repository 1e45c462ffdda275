//! PodmanScheduler against the real Podman service.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{assert_clean, case_labels, cleanup, read_all, unique_name, IMAGE};
use gofer_core::naming::{engine_filter, sandbox_labels, task_labels};
use gofer_core::testing::stdout_until;
use gofer_core::{
    ContainerId, ContainerSpec, ContainerState, ExitStatus, NetworkMode, PullPolicy, PullProgress,
    RegistryAuth, ResourceLimits, SandboxSpec, Scheduler, SchedulerError,
};
use gofer_scheduler_podman::{PodmanConfig, PodmanScheduler};

#[tokio::test]
async fn runs_a_container_with_env_command_and_labels() {
    let s = podman_or_skip!();
    let labels = case_labels("run");
    let spec = ContainerSpec::new(unique_name("run"), IMAGE)
        .env_var("GREETING", "hello")
        .env_var(
            "SECRET_ONE",
            gofer_core::EnvValue::Secret("s3cr3t-value".into()),
        )
        .command([
            "sh",
            "-c",
            "echo \"$GREETING $SECRET_ONE\"; echo oops >&2; exit 3",
        ])
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 3 });
    assert_eq!(
        s.state(&id).await.unwrap(),
        ContainerState::Exited {
            status: ExitStatus::Exited { code: 3 }
        }
    );
    // Logs opened after exit return everything, streams apart.
    let (out, err) = read_all(s.logs(&id).await.unwrap()).await;
    assert_eq!(out, "hello s3cr3t-value\n");
    assert_eq!(err, "oops\n");
    // Listed by label, with its labels and name.
    let listed = s.list(&labels).await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].labels, labels);
    assert!(listed[0].name.starts_with("gofer-ptest-"));
    // Waiting again returns at once with the same status.
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 3 });
    s.remove(&id, false).await.unwrap();
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn entrypoint_replaces_the_image_entrypoint_and_limits_apply() {
    let s = podman_or_skip!();
    let labels = case_labels("limits");
    let mut spec = ContainerSpec::new(unique_name("limits"), IMAGE)
        .entrypoint(["cat"])
        .command([
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        ])
        .labels(labels.clone());
    spec.resources = ResourceLimits {
        memory_bytes: Some(64 * 1024 * 1024),
        cpus: Some(0.5),
    };
    let id = s.start(spec).await.unwrap();
    let logs = s.logs(&id).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    let (out, err) = read_all(logs).await;
    assert_eq!(out, "67108864\n50000\n", "stderr: {err}");
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn logs_follow_a_running_container_until_it_exits() {
    let s = podman_or_skip!();
    let labels = case_labels("follow");
    let spec = ContainerSpec::new(unique_name("follow"), IMAGE)
        .command([
            "sh",
            "-c",
            "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.2; done; printf tail",
        ])
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    let (out, err) = read_all(s.logs(&id).await.unwrap()).await;
    assert_eq!(out, "out1\nout2\nout3\ntail");
    assert_eq!(err, "err1\nerr2\nerr3\n");
    assert!(s.wait(&id).await.unwrap().success());
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

/// Two streams printing as fast as they can: the attached output (the first read)
/// and the re-read from the container's log both hold every line, in order, streams
/// apart.
#[tokio::test]
async fn no_line_is_lost_under_load_attached_or_read_again() {
    let Some(_) = common::podman().await else {
        return;
    };
    // The attach read from conmon's socket, and through the service.
    for conmon in [true, false] {
        let config = PodmanConfig::from_env().unwrap().with_conmon_attach(conmon);
        no_line_is_lost(PodmanScheduler::connect(config).await.unwrap()).await;
    }
}

async fn no_line_is_lost(s: PodmanScheduler) {
    let labels = case_labels("load");
    let n = 100_000;
    let spec = ContainerSpec::new(unique_name("load"), IMAGE)
        .command(["sh", "-c", &format!("seq 1 {n} & seq 1 {n} >&2; wait")])
        .labels(labels.clone())
        .attach_output(true);
    let id = s.start(spec).await.unwrap();
    let want: String = (1..=n).map(|i| format!("{i}\n")).collect();
    let (out, err) = read_all(s.logs(&id).await.unwrap()).await;
    assert!(
        out == want,
        "attached stdout: {} bytes, want {}",
        out.len(),
        want.len()
    );
    assert!(
        err == want,
        "attached stderr: {} bytes, want {}",
        err.len(),
        want.len()
    );
    assert!(s.wait(&id).await.unwrap().success());
    let (out, err) = read_all(s.logs(&id).await.unwrap()).await;
    assert!(
        out == want,
        "re-read stdout: {} bytes, want {}",
        out.len(),
        want.len()
    );
    assert!(
        err == want,
        "re-read stderr: {} bytes, want {}",
        err.len(),
        want.len()
    );
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn name_conflict_is_a_conflict_and_leaves_the_first_alone() {
    let s = podman_or_skip!();
    let labels = case_labels("conflict");
    let name = unique_name("conflict");
    let spec = ContainerSpec::new(&name, IMAGE)
        .command(["sleep", "30"])
        .labels(labels.clone());
    let id = s.start(spec.clone()).await.unwrap();
    let err = s.start(spec).await.unwrap_err();
    assert!(
        matches!(&err, SchedulerError::Conflict { id, .. } if *id == name),
        "{err}"
    );
    assert_eq!(s.state(&id).await.unwrap(), ContainerState::Running);
    // A running container needs force.
    let err = s.remove(&id, false).await.unwrap_err();
    assert!(matches!(err, SchedulerError::Conflict { .. }), "{err}");
    s.remove(&id, true).await.unwrap();
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn failed_start_leaves_no_container() {
    let s = podman_or_skip!();
    let labels = case_labels("badcmd");
    let spec = ContainerSpec::new(unique_name("badcmd"), IMAGE)
        .command(["/no/such/binary"])
        .init(false)
        .labels(labels.clone());
    let err = s.start(spec).await.unwrap_err();
    assert!(
        matches!(
            err,
            SchedulerError::Engine {
                operation: "start",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("gofer-ptest-"), "{err}");
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn never_policy_with_an_absent_image_is_no_such_image() {
    let s = podman_or_skip!();
    let labels = case_labels("never");
    let spec = ContainerSpec::new(unique_name("never"), "localhost:5000/gofer-absent:none")
        .pull_policy(PullPolicy::Never)
        .labels(labels.clone());
    let err = s.start(spec).await.unwrap_err();
    assert!(
        matches!(&err, SchedulerError::NoSuchImage { image, .. } if image == "localhost:5000/gofer-absent:none"),
        "{err}"
    );
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn stop_sends_term_then_kills_a_container_that_ignores_it() {
    let s = podman_or_skip!();
    let labels = case_labels("stop");
    // With init, the shell is not PID 1; it ignores SIGTERM, so only the kill ends it.
    let spec = ContainerSpec::new(unique_name("stop"), IMAGE)
        .command([
            "sh",
            "-c",
            "trap '' TERM; echo ready; while true; do sleep 1; done",
        ])
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    s.stop(&id, Duration::from_millis(300)).await.unwrap();
    let status = s.wait(&id).await.unwrap();
    assert_eq!(status.code(), Some(137), "{status:?}");
    // Stopping an exited container is fine.
    s.stop(&id, Duration::ZERO).await.unwrap();
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn a_stop_with_the_largest_grace_does_not_panic_and_the_container_goes() {
    let s = podman_or_skip!();
    let labels = case_labels("maxgrace");
    for grace in [Duration::MAX, Duration::from_secs(u64::MAX)] {
        let spec = ContainerSpec::new(unique_name("maxgrace"), IMAGE)
            .init(true)
            .command([
                "sh",
                "-c",
                "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
            ])
            .labels(labels.clone());
        let id = s.start(spec).await.unwrap();
        // A SIGTERM sent before init has set up its handling is dropped, and with this
        // grace the stop would then wait forever: act once the trap is set.
        stdout_until(&s, &id, "ready").await.unwrap();
        // A guard against a hang, not a timing assertion: with init, the shell gets
        // SIGTERM and exits at once.
        tokio::time::timeout(Duration::from_secs(120), s.stop(&id, grace))
            .await
            .expect("stop returned")
            .unwrap();
        // Stopped: it has exited (by its trap, or by the signal if that came first),
        // so a remove without force succeeds.
        let status = s.wait(&id).await.unwrap();
        s.remove(&id, false).await.unwrap();
        assert!(matches!(status, ExitStatus::Exited { .. }), "{status:?}");
    }
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn stop_ends_a_container_that_honours_term() {
    let s = podman_or_skip!();
    let labels = case_labels("term");
    let spec = ContainerSpec::new(unique_name("term"), IMAGE)
        .command([
            "sh",
            "-c",
            "trap 'echo bye; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    stdout_until(&s, &id, "ready").await.unwrap();
    s.stop(&id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 7 });
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn removal_during_wait_and_unknown_ids() {
    let s = podman_or_skip!();
    let labels = case_labels("removed");
    let spec = ContainerSpec::new(unique_name("removed"), IMAGE)
        .command(["sleep", "60"])
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    let waiter = {
        let s = s.clone();
        let id = id.clone();
        tokio::spawn(async move { s.wait(&id).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.remove(&id, true).await.unwrap();
    let status = waiter.await.unwrap().expect("wait during removal");
    // The kill may be seen before the removal: both are truthful.
    assert!(
        matches!(
            status,
            ExitStatus::Removed | ExitStatus::Exited { code: 137 }
        ),
        "{status:?}"
    );
    for err in [
        s.wait(&id).await.unwrap_err(),
        s.state(&id).await.unwrap_err(),
        s.stop(&id, Duration::ZERO).await.unwrap_err(),
        s.remove(&id, true).await.unwrap_err(),
        s.logs(&id).await.err().unwrap(),
    ] {
        assert!(
            matches!(err, SchedulerError::NoSuchContainer { .. }),
            "{err}"
        );
    }
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn no_network_means_loopback_only() {
    let s = podman_or_skip!();
    let labels = case_labels("nonet");
    let spec = ContainerSpec::new(unique_name("nonet"), IMAGE)
        .command(["sh", "-c", "ls /sys/class/net"])
        .network(NetworkMode::None)
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    let (out, _) = read_all(s.logs(&id).await.unwrap()).await;
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

/// Removes an image from the service's store (so a pull must happen).
async fn remove_image(image: &str) {
    let socket = gofer_scheduler_podman::PodmanConfig::from_env()
        .unwrap()
        .socket;
    let podman = podman_api::Podman::unix(socket);
    let _ = podman.images().get(image).remove().await;
}

#[tokio::test]
async fn pulls_an_absent_image_from_the_local_registry_with_progress() {
    let s = podman_or_skip!();
    let labels = case_labels("pull");
    let image = "localhost:5000/busybox:latest";
    remove_image(image).await;
    let seen: Arc<Mutex<Vec<PullProgress>>> = Arc::default();
    let sink = seen.clone();
    let spec = ContainerSpec::new(unique_name("pull"), image)
        .command(["true"])
        .on_pull_progress(Arc::new(move |p| sink.lock().unwrap().push(p)))
        .labels(labels.clone());
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    cleanup(&s, &id).await;
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "no pull progress was reported");
    assert!(seen.iter().all(|p| p.image == image));
    assert!(seen.iter().any(|p| p.layer.is_some()), "{seen:?}");
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn pulls_with_credentials_and_refuses_without() {
    let s = podman_or_skip!();
    let labels = case_labels("auth");
    let image = "localhost:5001/private/busybox:latest";
    remove_image(image).await;

    // No credentials: Unauthorized, no container.
    let spec = ContainerSpec::new(unique_name("auth"), image)
        .command(["true"])
        .labels(labels.clone());
    let err = s.start(spec).await.unwrap_err();
    assert!(
        matches!(&err, SchedulerError::Unauthorized { image: i, .. } if i == image),
        "{err}"
    );

    // Wrong password: Unauthorized, and the password is nowhere in the error.
    let spec = ContainerSpec::new(unique_name("auth"), image)
        .command(["true"])
        .registry_auth(Some(RegistryAuth::new("gofer", "wrong-pass-XYZ")))
        .labels(labels.clone());
    let err = s.start(spec).await.unwrap_err();
    assert!(matches!(err, SchedulerError::Unauthorized { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-pass-XYZ"));

    // Right credentials: pulled (policy Always) and run.
    let spec = ContainerSpec::new(unique_name("auth"), image)
        .command(["true"])
        .pull_policy(PullPolicy::Always)
        .registry_auth(Some(RegistryAuth::new("gofer", "s3cret")))
        .labels(labels.clone());
    assert!(!format!("{spec:?}").contains("s3cret"));
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn sandbox_tasks_share_localhost_and_the_holder_takes_them_along() {
    let s = podman_or_skip!();
    let labels = case_labels("sandbox");
    let holder = s
        .create_sandbox(SandboxSpec::new(unique_name("holder"), IMAGE).labels(labels.clone()))
        .await
        .unwrap();
    assert_eq!(s.state(&holder).await.unwrap(), ContainerState::Running);
    let server = s
        .start(
            ContainerSpec::new(unique_name("server"), IMAGE)
                // busybox `nc -l` ends when its own stdin ends, which can be before the
                // peer's data is read: keep nc's stdin open, print what it got.
                .command(["sh", "-c", "sleep 120 | nc -l -p 18080 > /tmp/got & while [ ! -s /tmp/got ]; do sleep 0.05; done; cat /tmp/got"])
                .network(NetworkMode::Sandbox(holder.clone()))
                .labels(labels.clone()),
        )
        .await
        .unwrap();
    let client = s
        .start(
            ContainerSpec::new(unique_name("client"), IMAGE)
                .command([
                    "sh",
                    "-c",
                    "i=0; while [ $i -lt 100 ]; do echo pong | nc 127.0.0.1 18080 && exit 0; i=$((i+1)); sleep 0.1; done; exit 1",
                ])
                .network(NetworkMode::Sandbox(holder.clone()))
                .labels(labels.clone()),
        )
        .await
        .unwrap();
    let logs = s.logs(&server).await.unwrap();
    assert!(s.wait(&client).await.unwrap().success());
    assert!(s.wait(&server).await.unwrap().success());
    assert_eq!(read_all(logs).await.0, "pong\n");
    // A long-running member is still there; removing the holder takes it along.
    let sleeper = s
        .start(
            ContainerSpec::new(unique_name("sleeper"), IMAGE)
                .command(["sleep", "60"])
                .network(NetworkMode::Sandbox(holder.clone()))
                .labels(labels.clone()),
        )
        .await
        .unwrap();
    let err = s.remove(&holder, false).await.unwrap_err();
    assert!(matches!(err, SchedulerError::Conflict { .. }), "{err}");
    s.remove(&holder, true).await.unwrap();
    for id in [&holder, &sleeper, &server] {
        assert!(matches!(
            s.state(id).await,
            Err(SchedulerError::NoSuchContainer { .. })
        ));
    }
    cleanup(&s, &client).await;
    // Joining a sandbox that does not exist names it.
    let err = s
        .start(
            ContainerSpec::new(unique_name("orphan"), IMAGE)
                .network(NetworkMode::Sandbox(ContainerId::from(
                    "gofer-no-such-holder",
                )))
                .labels(labels.clone()),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SchedulerError::NoSuchContainer { id, .. } if id == "gofer-no-such-holder"),
        "{err}"
    );
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn reaper_removes_only_this_engine_instances_containers() {
    let s = podman_or_skip!();
    let mine = format!("ptestr{}", common::run_id().replace('-', ""));
    let other = format!("ptesto{}", common::run_id().replace('-', ""));
    let mut ids = Vec::new();
    for (engine, labels) in [
        (&mine, task_labels(&mine, "pipe", 1, "a")),
        (&mine, sandbox_labels(&mine, "pipe", 1)),
        (&other, task_labels(&other, "pipe", 1, "a")),
    ] {
        let spec = ContainerSpec::new(unique_name(&format!("reap-{engine}")), IMAGE)
            .command(["sleep", "60"])
            .labels(labels);
        ids.push(s.start(spec).await.unwrap());
    }
    let report = gofer_engine::reap(&s, &engine_filter(&mine)).await;
    assert!(report.is_complete(), "{:?}", report.failed);
    let mut reaped: Vec<_> = report.removed.iter().map(|c| c.id.clone()).collect();
    reaped.sort();
    let mut expected = ids[..2].to_vec();
    expected.sort();
    assert_eq!(reaped, expected);
    // The holder went after the task that uses its network.
    assert_eq!(report.removed[1].id, ids[1], "{:?}", report.removed);
    assert!(s.list(&engine_filter(&mine)).await.unwrap().is_empty());
    assert_eq!(s.list(&engine_filter(&other)).await.unwrap().len(), 1);
    cleanup(&s, &ids[2]).await;
    assert!(s.list(&engine_filter(&other)).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_start_dropped_midway_leaves_nothing() {
    use futures::StreamExt;
    let s = podman_or_skip!();
    let labels = case_labels("dropped");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 1;
    let mut dropped = 0;
    for delay_ms in [1, 10, 30, 60, 100, 150, 250] {
        let spec = ContainerSpec::new(unique_name("dropped"), IMAGE)
            .command(["sleep", "60"])
            .labels(labels.clone());
        match tokio::time::timeout(Duration::from_millis(delay_ms), s.start(spec)).await {
            Ok(started) => cleanup(&s, &started.unwrap()).await,
            Err(_elapsed) => dropped += 1, // the backend must clean up by itself
        }
    }
    // A start dropped before its create reached the service makes no container; one
    // dropped later makes a container that the backend removes by itself. So every
    // `create` event of this case must be matched by a `remove` (the service pushes
    // both); wait for that, then for a quiet spell in which no late create shows up.
    let podman = podman_api::Podman::unix(&s.config().socket);
    let opts = podman_api::opts::EventsOpts::builder()
        .since(since.to_string())
        .stream(true)
        .filters([
            ("type".to_string(), vec!["container".to_string()]),
            (
                "event".to_string(),
                vec!["create".to_string(), "remove".to_string()],
            ),
            (
                "label".to_string(),
                vec!["dev.gofer.test.case=dropped".to_string()],
            ),
        ])
        .build();
    let subscribe = || {
        podman
            .events(&opts)
            .filter(|e| {
                let ours = e
                    .as_ref()
                    .ok()
                    .and_then(|e| e.actor.attributes.get(common::TEST_LABEL))
                    .map(String::as_str)
                    == Some(common::run_id());
                futures::future::ready(ours)
            })
            .boxed()
    };
    let mut events = subscribe();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let (mut creates, mut removes) = (0usize, 0usize);
    loop {
        match tokio::time::timeout(Duration::from_secs(3), events.next()).await {
            Ok(Some(Ok(e))) => match e.action.as_str() {
                "create" => creates += 1,
                "remove" => removes += 1,
                _ => {}
            },
            Ok(Some(Err(e))) => panic!("event stream failed: {e}"),
            // The service ended the stream: read it again from the start.
            Ok(None) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the event stream keeps ending: {creates} created, {removes} removed"
                );
                (creates, removes) = (0, 0);
                events = subscribe();
            }
            Err(_quiet) if creates == removes => break,
            Err(_quiet) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the dropped starts were not cleaned up: {creates} created, {removes} removed"
                );
            }
        }
    }
    assert_eq!(creates, removes, "{dropped} starts were dropped");
    // The starts that were not dropped made a container each.
    assert!(
        creates >= 7 - dropped,
        "{creates} creates for {dropped} dropped starts"
    );
    assert_clean(&s, &labels).await;
}

#[tokio::test]
async fn bind_mounts_reach_the_container_and_read_only_holds() {
    let s = podman_or_skip!();
    let labels = case_labels("mounts");
    let name = unique_name("mounts");
    let dir = std::env::temp_dir().join(&name);
    std::fs::create_dir_all(dir.join("rw")).unwrap();
    std::fs::create_dir_all(dir.join("ro")).unwrap();
    std::fs::write(dir.join("ro/in"), "from the host").unwrap();
    let spec = ContainerSpec::new(name, IMAGE)
        .labels(labels.clone())
        .mount(gofer_core::Mount::bind(dir.join("rw"), "/rw"))
        .mount(gofer_core::Mount::bind(dir.join("ro"), "/ro").read_only())
        .command([
            "sh",
            "-c",
            "cat /ro/in; echo written > /rw/out; touch /ro/x 2>/dev/null || echo ' refused'",
        ]);
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    let (out, _) = read_all(s.logs(&id).await.unwrap()).await;
    assert_eq!(out, "from the host refused\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("rw/out")).unwrap(),
        "written\n"
    );
    assert!(!dir.join("ro/x").exists());
    cleanup(&s, &id).await;
    assert_clean(&s, &labels).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first read after a start with `attach_output` is served by the attach made
/// before the start, not by the logs endpoint: under the `none` log driver that
/// endpoint has nothing to give (a read of it fails), yet the first read has every
/// byte of both streams, from the first.
#[tokio::test]
async fn the_first_read_comes_from_the_attach_not_the_logs_endpoint() {
    let Some(_) = common::podman().await else {
        return;
    };
    for conmon in [true, false] {
        let config = PodmanConfig::from_env()
            .unwrap()
            .with_log_driver("none")
            .with_conmon_attach(conmon);
        let s = PodmanScheduler::connect(config).await.unwrap();
        let labels = case_labels("attach-first");
        let spec = ContainerSpec::new(unique_name("attach-first"), IMAGE).labels(labels.clone());
        gofer_core::testing::attach::first_read_comes_from_the_attach(&s, spec).await;
        assert_clean(&s, &labels).await;
    }
}

/// The Podman service records an `attach` event for each attach made through it: by
/// default the live output is read from conmon's socket and there is none, while with
/// [`PodmanConfig::with_conmon_attach`] off there is one. Both give every byte.
#[tokio::test]
async fn live_output_is_read_from_conmon_not_through_the_service() {
    let Some(_) = common::podman().await else {
        return;
    };
    for conmon in [true, false] {
        let config = PodmanConfig::from_env().unwrap().with_conmon_attach(conmon);
        let s = PodmanScheduler::connect(config).await.unwrap();
        let labels = case_labels("conmon");
        let spec = ContainerSpec::new(unique_name("conmon"), IMAGE)
            .command(["sh", "-c", "seq 1 5000; echo err >&2"])
            .labels(labels.clone())
            .attach_output(true);
        let id = s.start(spec).await.unwrap();
        let (out, err) = read_all(s.logs(&id).await.unwrap()).await;
        let want: String = (1..=5000).map(|i| format!("{i}\n")).collect();
        assert!(
            out == want,
            "stdout: {} bytes, want {}",
            out.len(),
            want.len()
        );
        assert_eq!(err, "err\n");
        assert!(s.wait(&id).await.unwrap().success());
        let events = std::process::Command::new("podman")
            .args([
                "events",
                "--stream=false",
                "--since",
                "10m",
                "--format",
                "{{.Status}}",
            ])
            .args(["--filter", &format!("container={}", id.0)])
            .args(["--filter", "event=attach"])
            .output()
            .unwrap();
        let attaches = String::from_utf8_lossy(&events.stdout).lines().count();
        assert_eq!(
            attaches,
            usize::from(!conmon),
            "conmon attach {conmon}: {events:?}"
        );
        cleanup(&s, &id).await;
        assert_clean(&s, &labels).await;
    }
}
