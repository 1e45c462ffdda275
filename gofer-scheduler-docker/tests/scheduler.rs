//! The Docker scheduler against the real engine: lifecycle, logs, stop, errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use gofer_core::testing::stdout_until;
use gofer_core::{
    Capabilities, ContainerId, ContainerState, ExitStatus, PullPolicy, ResourceLimits, Scheduler,
    SchedulerError,
};
use gofer_scheduler_docker::{DockerConfig, DockerScheduler};

#[tokio::test]
async fn connects_with_a_negotiated_api_version() {
    let Some(s) = scheduler().await else { return };
    let (major, minor) = s.api_version();
    assert_eq!(major, 1);
    assert!(
        minor <= 41,
        "asked for a version the engine may refuse: 1.{minor}"
    );
    let caps: Capabilities = s.capabilities();
    assert!(caps.network_sandbox && caps.registry_auth);
    assert!(!caps.exec && !caps.attach);
    assert!(format!("{s:?}").contains("docker.sock") || !s.endpoint().is_empty());
}

#[tokio::test]
async fn runs_a_container_and_demultiplexes_its_output() {
    let Some(s) = scheduler().await else { return };
    let case = unique("demux");
    let spec = spec(&case, &case).env_var("GREETING", "hello").command([
        "sh",
        "-c",
        "echo \"$GREETING out\"; echo err >&2; echo out2",
    ]);
    let id = s.start(spec).await.unwrap();
    // Followed while running ...
    let (out, err) = output(&s, &id).await;
    assert_eq!(out, "hello out\nout2\n");
    assert_eq!(err, "err\n");
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 0 });
    // ... and readable again after exit, with the engine's timestamps.
    let (out_again, err_again) = output(&s, &id).await;
    assert_eq!(
        (out_again.as_str(), err_again.as_str()),
        ("hello out\nout2\n", "err\n")
    );
    assert_eq!(
        s.state(&id).await.unwrap(),
        ContainerState::Exited {
            status: ExitStatus::Exited { code: 0 }
        }
    );
    s.remove(&id, false).await.unwrap();
    assert!(matches!(
        s.state(&id).await,
        Err(SchedulerError::NoSuchContainer { .. })
    ));
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn entrypoint_command_env_and_labels_reach_the_container() {
    let Some(s) = scheduler().await else { return };
    let case = unique("entry");
    let spec = spec(&case, &case)
        .entrypoint(["/bin/sh", "-c"])
        .command(["printf '%s|%s' \"$A\" \"$B\""])
        .env_var("A", "1")
        .env_var("B", "two words");
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    assert_eq!(output(&s, &id).await.0, "1|two words");
    let listed = s.list(&case_labels(&case)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);
    assert_eq!(listed[0].name, case);
    assert_eq!(listed[0].labels.get(CASE_LABEL), Some(&case));
    assert_eq!(
        listed[0].state,
        ContainerState::Exited {
            status: ExitStatus::Exited { code: 0 }
        }
    );
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn non_zero_exit_codes_are_reported() {
    let Some(s) = scheduler().await else { return };
    let case = unique("exit");
    let id = s
        .start(spec(&case, &case).command(["sh", "-c", "exit 3"]))
        .await
        .unwrap();
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 3 });
    // A second wait on an exited container returns at once with the same result.
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 3 });
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn out_of_memory_is_told_apart() {
    let Some(s) = scheduler().await else { return };
    if !s.capabilities().memory_limit {
        eprintln!("skipping: the engine does not enforce memory limits");
        return;
    }
    let case = unique("oom");
    let limits = ResourceLimits {
        memory_bytes: Some(16 << 20),
        cpus: Some(0.5),
    };
    let id = s
        .start(spec(&case, &case).resources(limits).command([
            "sh",
            "-c",
            "head -c 200000000 /dev/zero | tail -c 100000000 >/dev/null",
        ]))
        .await
        .unwrap();
    let exit = s.wait(&id).await.unwrap();
    cleanup(&s, &case).await;
    assert!(matches!(exit, ExitStatus::OutOfMemory { .. }), "{exit:?}");
}

#[tokio::test]
async fn stop_kills_a_shell_that_ignores_sigterm_after_the_grace() {
    let Some(s) = scheduler().await else { return };
    let case = unique("stop");
    for init in [true, false] {
        let name = format!("{case}-{init}");
        let id = s
            .start(spec(&case, &name).init(init).command([
                "sh",
                "-c",
                "trap '' TERM; echo ready; while true; do sleep 1; done",
            ]))
            .await
            .unwrap();
        assert_eq!(s.state(&id).await.unwrap(), ContainerState::Running);
        s.stop(&id, Duration::from_millis(300)).await.unwrap();
        // stop returns once the container has exited: killed, 128 + 9.
        assert_eq!(
            s.state(&id).await.unwrap(),
            ContainerState::Exited {
                status: ExitStatus::Exited { code: 137 }
            }
        );
        assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 137 });
        // Stopping an exited container is not an error.
        s.stop(&id, Duration::from_secs(1)).await.unwrap();
    }
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn stop_lets_a_cooperative_container_exit_on_sigterm() {
    let Some(s) = scheduler().await else { return };
    let case = unique("term");
    let id = s
        .start(spec(&case, &case).command([
            "sh",
            "-c",
            "trap 'exit 7' TERM; echo ready; while true; do sleep 1; done",
        ]))
        .await
        .unwrap();
    // The shell is PID 1: a SIGTERM before its trap is set would be dropped.
    stdout_until(&s, &id, "ready").await.unwrap();
    s.stop(&id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(s.wait(&id).await.unwrap(), ExitStatus::Exited { code: 7 });
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn a_stop_with_the_largest_grace_does_not_panic_and_the_container_goes() {
    let Some(s) = scheduler().await else { return };
    let case = unique("maxgrace");
    for (i, grace) in [Duration::MAX, Duration::from_secs(u64::MAX)]
        .into_iter()
        .enumerate()
    {
        let id = s
            .start(spec(&case, &format!("{case}-{i}")).init(true).command([
                "sh",
                "-c",
                "trap 'exit 7' TERM; echo ready; while true; do sleep 0.1; done",
            ]))
            .await
            .unwrap();
        // A SIGTERM sent before init has set up its handling is dropped, and with this
        // grace the stop would then wait forever: act once the trap is set.
        stdout_until(&s, &id, "ready").await.unwrap();
        // A guard against a hang, not a timing assertion: the container exits on
        // SIGTERM at once.
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
    assert!(s.list(&case_labels(&case)).await.unwrap().is_empty());
}

#[tokio::test]
async fn remove_needs_force_for_a_running_container() {
    let Some(s) = scheduler().await else { return };
    let case = unique("rm");
    let id = s
        .start(spec(&case, &case).command(["sleep", "600"]))
        .await
        .unwrap();
    assert!(matches!(
        s.remove(&id, false).await,
        Err(SchedulerError::Conflict { .. })
    ));
    s.remove(&id, true).await.unwrap();
    assert!(matches!(
        s.remove(&id, true).await,
        Err(SchedulerError::NoSuchContainer { .. })
    ));
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn a_container_removed_while_waited_on_reports_removed() {
    let Some(s) = scheduler().await else { return };
    let case = unique("rmwait");
    let id = s
        .start(spec(&case, &case).command(["sleep", "600"]))
        .await
        .unwrap();
    let waiter = {
        let s = s.clone();
        let id = id.clone();
        tokio::spawn(async move { s.wait(&id).await })
    };
    // Wait is event-driven: it is still pending while the container runs.
    tokio::task::yield_now().await;
    assert_eq!(s.state(&id).await.unwrap(), ContainerState::Running);
    s.remove(&id, true).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), ExitStatus::Removed);
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn unknown_containers_are_named_in_errors() {
    let Some(s) = scheduler().await else { return };
    let id = ContainerId::from(unique("nosuch"));
    for result in [
        s.wait(&id).await.map(|_| ()),
        s.state(&id).await.map(|_| ()),
        s.logs(&id).await.map(|_| ()),
        s.stop(&id, Duration::from_secs(1)).await,
        s.remove(&id, true).await,
    ] {
        match result {
            Err(SchedulerError::NoSuchContainer { id: got, .. }) => assert_eq!(got, id.0),
            other => panic!("expected NoSuchContainer, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_name_in_use_is_a_conflict_and_leaves_the_first_alone() {
    let Some(s) = scheduler().await else { return };
    let case = unique("conflict");
    let first = s
        .start(spec(&case, &case).command(["sleep", "600"]))
        .await
        .unwrap();
    let second = s.start(spec(&case, &case).command(["true"])).await;
    assert!(
        matches!(second, Err(SchedulerError::Conflict { ref id, .. }) if *id == case),
        "{second:?}"
    );
    assert_eq!(s.state(&first).await.unwrap(), ContainerState::Running);
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn a_failed_start_leaves_no_container() {
    let Some(s) = scheduler().await else { return };
    let case = unique("badcmd");
    let result = s
        .start(spec(&case, &case).init(false).command(["/no/such/binary"]))
        .await;
    assert!(result.is_err(), "{result:?}");
    eprintln!("{}", result.unwrap_err());
    assert!(s.list(&case_labels(&case)).await.unwrap().is_empty());
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn never_with_an_absent_image_is_no_such_image_and_creates_nothing() {
    let Some(s) = scheduler().await else { return };
    let case = unique("never");
    let mut spec = spec(&case, &case).pull_policy(PullPolicy::Never);
    spec.image = "localhost:5000/gofer-absent:never".to_string();
    match s.start(spec).await {
        Err(SchedulerError::NoSuchImage { image, .. }) => {
            assert_eq!(image, "localhost:5000/gofer-absent:never")
        }
        other => panic!("expected NoSuchImage, got {other:?}"),
    }
    assert!(s.list(&case_labels(&case)).await.unwrap().is_empty());
}

#[tokio::test]
async fn network_none_has_only_loopback() {
    let Some(s) = scheduler().await else { return };
    let case = unique("nonet");
    let id = s
        .start(
            spec(&case, &case)
                .network(gofer_core::NetworkMode::None)
                .command(["sh", "-c", "ls /sys/class/net"]),
        )
        .await
        .unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    assert_eq!(
        output(&s, &id)
            .await
            .0
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["lo"]
    );
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn limits_init_and_labels_reach_the_engine() {
    let Some(s) = scheduler().await else { return };
    let case = unique("limits");
    let limits = ResourceLimits {
        memory_bytes: Some(64 << 20),
        cpus: Some(1.5),
    };
    let id = s
        .start(
            spec(&case, &case)
                .resources(limits)
                .command(["sleep", "600"]),
        )
        .await
        .unwrap();
    let inspect = s.client().inspect_container(&id.0, None).await.unwrap();
    let host = inspect.host_config.unwrap();
    assert_eq!(host.memory, Some(64 << 20));
    assert_eq!(host.nano_cpus, Some(1_500_000_000));
    assert_eq!(host.init, Some(true));
    let labels = inspect.config.unwrap().labels.unwrap();
    assert_eq!(labels.get(CASE_LABEL), Some(&case));
    cleanup(&s, &case).await;
}

#[tokio::test]
async fn bind_mounts_reach_the_container_and_read_only_holds() {
    let Some(s) = scheduler().await else { return };
    let case = unique("mounts");
    let dir = std::env::temp_dir().join(&case);
    std::fs::create_dir_all(dir.join("rw")).unwrap();
    std::fs::create_dir_all(dir.join("ro")).unwrap();
    std::fs::write(dir.join("ro/in"), "from the host").unwrap();
    let spec = spec(&case, &case)
        .mount(gofer_core::Mount::bind(dir.join("rw"), "/rw"))
        .mount(gofer_core::Mount::bind(dir.join("ro"), "/ro").read_only())
        .command([
            "sh",
            "-c",
            "cat /ro/in; echo written > /rw/out; touch /ro/x 2>/dev/null || echo ' refused'",
        ]);
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    assert_eq!(output(&s, &id).await.0, "from the host refused\n");
    assert_eq!(
        std::fs::read_to_string(dir.join("rw/out")).unwrap(),
        "written\n"
    );
    assert!(!dir.join("ro/x").exists());
    cleanup(&s, &case).await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The first read after a start with `attach_output` is served by the attach made
/// before the start, not by the engine's logs endpoint: under the `none` log driver
/// that endpoint has nothing to give (a read of it fails), yet the first read has
/// every byte of both streams, from the first.
#[tokio::test]
async fn the_first_read_comes_from_the_attach_not_the_logs_endpoint() {
    let Some(_) = scheduler().await else { return };
    let s = DockerScheduler::connect(DockerConfig::new().log_driver("none"))
        .await
        .unwrap();
    let case = unique("attach-first");
    gofer_core::testing::attach::first_read_comes_from_the_attach(&s, spec(&case, &case)).await;
    cleanup(&s, &case).await;
}
