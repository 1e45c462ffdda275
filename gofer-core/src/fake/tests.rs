//! Unit tests of the fake's state machine and scripting.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use secrecy::SecretString;
use tokio::time::Instant;

use super::*;
use crate::error::SchedulerError;
use crate::scheduler::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ExitStatus, NetworkMode,
    OutputStream, SandboxSpec, Scheduler,
};
use crate::task::{PullPolicy, RegistryAuth};
use crate::variable::EnvValue;

fn spec(name: &str, image: &str) -> ContainerSpec {
    ContainerSpec::new(name, image)
}

async fn output(s: &FakeScheduler, id: &ContainerId) -> (String, String) {
    let mut logs = s.logs(id).await.unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while let Some(c) = logs.next().await {
        let c = c.unwrap();
        match c.stream {
            OutputStream::Stdout => out.extend_from_slice(&c.data),
            OutputStream::Stderr => err.extend_from_slice(&c.data),
        }
    }
    (
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn records_every_request_whole_with_env_and_secrets() {
    let fake = FakeScheduler::new().image("busybox", Behaviour::exit(0));
    let s = spec("a", "busybox")
        .env_var("PLAIN", "x=y")
        .env_var(
            "TOKEN",
            EnvValue::Secret(SecretString::from("hunter2".to_string())),
        )
        .label("k", "v");
    let id = fake.start(s).await.unwrap();
    fake.wait(&id).await.unwrap();
    let _ = fake.start(spec("a", "busybox")).await.unwrap_err();
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2, "failed requests are recorded too");
    assert_eq!(reqs[0].env["PLAIN"].expose(), "x=y");
    assert_eq!(reqs[0].env["TOKEN"].expose(), "hunter2");
    assert!(reqs[0].env["TOKEN"].is_secret());
    assert_eq!(reqs[0].labels["k"], "v");
    assert!(!format!("{:?}", reqs[0]).contains("hunter2"));
    assert_eq!(
        fake.request("a").unwrap().env.len(),
        0,
        "last request of that name"
    );
}

#[tokio::test(start_paused = true)]
async fn a_name_cannot_be_used_twice_until_removed() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let id = fake.start(spec("n", "img")).await.unwrap();
    let err = fake.start(spec("n", "img")).await.unwrap_err();
    assert!(
        matches!(err, SchedulerError::Conflict { ref id, .. } if id == "n"),
        "{err}"
    );
    assert_eq!(fake.containers(), 1);
    fake.remove(&id, true).await.unwrap();
    let again = fake.start(spec("n", "img")).await.unwrap();
    assert_ne!(again, id, "a new container gets a new id");
}

#[tokio::test(start_paused = true)]
async fn concurrent_starts_of_one_name_give_one_container() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let results = futures::future::join_all((0..5).map(|_| fake.start(spec("same", "img")))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert!(results
        .iter()
        .filter_map(|r| r.as_ref().err())
        .all(|e| matches!(e, SchedulerError::Conflict { .. })));
    assert_eq!(fake.containers(), 1);
}

#[tokio::test(start_paused = true)]
async fn logs_follow_in_tokio_time_and_stay_readable_after_exit() {
    let b = Behaviour::new()
        .stdout("one\n")
        .sleep(Duration::from_secs(5))
        .stderr("two\n")
        .stdout("three\n")
        .exit_code(2);
    let fake = FakeScheduler::new().image("img", b);
    let begin = Instant::now();
    let id = fake.start(spec("l", "img")).await.unwrap();
    let mut logs = fake.logs(&id).await.unwrap();
    let first = logs.next().await.unwrap().unwrap();
    assert_eq!(&first.data[..], b"one\n");
    assert_eq!(fake.state(&id).await.unwrap(), ContainerState::Running);
    let second = logs.next().await.unwrap().unwrap();
    assert_eq!(second.stream, OutputStream::Stderr);
    assert_eq!(
        begin.elapsed(),
        Duration::from_secs(5),
        "paused time is exact"
    );
    let ts = second.timestamp.duration_since(first.timestamp).unwrap();
    assert_eq!(ts, Duration::from_secs(5), "timestamps follow tokio time");
    assert_eq!(&logs.next().await.unwrap().unwrap().data[..], b"three\n");
    assert!(logs.next().await.is_none(), "the stream ends after exit");
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 2 }
    );
    let (out, err) = output(&fake, &id).await;
    assert_eq!((out.as_str(), err.as_str()), ("one\nthree\n", "two\n"));
}

#[tokio::test(start_paused = true)]
async fn large_output_is_chunked_and_whole() {
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let fake = FakeScheduler::new().image("img", Behaviour::new().stdout(big.clone()));
    let id = fake.start(spec("big", "img")).await.unwrap();
    let mut logs = fake.logs(&id).await.unwrap();
    let mut got = Vec::with_capacity(big.len());
    let mut chunks = 0;
    while let Some(c) = logs.next().await {
        let c = c.unwrap();
        assert!(c.data.len() <= 64 * 1024);
        got.extend_from_slice(&c.data);
        chunks += 1;
    }
    assert_eq!(chunks, 160);
    assert!(got == big);
}

#[tokio::test(start_paused = true)]
async fn stop_runs_the_term_trap_within_the_grace() {
    let b = Behaviour::run_until_stopped().trap_term(
        Behaviour::new()
            .sleep(Duration::from_millis(300))
            .stdout("bye\n")
            .exit_code(0),
    );
    let fake = FakeScheduler::new().image("img", b);
    let id = fake.start(spec("t", "img")).await.unwrap();
    let begin = Instant::now();
    fake.stop(&id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_millis(300));
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 0 }
    );
    assert_eq!(output(&fake, &id).await.0, "bye\n");
}

#[tokio::test(start_paused = true)]
async fn a_trap_slower_than_the_grace_is_killed() {
    let b = Behaviour::run_until_stopped()
        .trap_term(Behaviour::new().sleep(Duration::from_secs(30)).exit_code(0));
    let fake = FakeScheduler::new().image("img", b);
    let id = fake.start(spec("t", "img")).await.unwrap();
    let begin = Instant::now();
    fake.stop(&id, Duration::from_secs(2)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(2));
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 137 }
    );
}

#[tokio::test(start_paused = true)]
async fn stop_kills_a_term_ignoring_process_exactly_after_the_grace() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped().ignore_term());
    let id = fake.start(spec("i", "img")).await.unwrap();
    let begin = Instant::now();
    fake.stop(&id, Duration::from_secs(3)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(3));
    assert_eq!(
        fake.state(&id).await.unwrap(),
        ContainerState::Exited {
            status: ExitStatus::Exited { code: 137 }
        }
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_handler_term_kills_under_init_and_is_dropped_for_pid_1() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let with_init = fake.start(spec("init", "img")).await.unwrap();
    fake.stop(&with_init, Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        fake.wait(&with_init).await.unwrap(),
        ExitStatus::Exited { code: 143 }
    );
    let pid1 = fake.start(spec("pid1", "img").init(false)).await.unwrap();
    let begin = Instant::now();
    fake.stop(&pid1, Duration::from_secs(5)).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(5));
    assert_eq!(
        fake.wait(&pid1).await.unwrap(),
        ExitStatus::Exited { code: 137 }
    );
}

#[tokio::test(start_paused = true)]
async fn stop_of_an_exited_container_is_ok_and_changes_nothing() {
    let fake = FakeScheduler::new().image("img", Behaviour::exit(4));
    let id = fake.start(spec("e", "img")).await.unwrap();
    fake.wait(&id).await.unwrap();
    fake.stop(&id, Duration::from_secs(1)).await.unwrap();
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::Exited { code: 4 }
    );
}

#[tokio::test(start_paused = true)]
async fn remove_needs_force_while_running_and_ends_waits_with_removed() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let id = fake.start(spec("r", "img")).await.unwrap();
    let err = fake.remove(&id, false).await.unwrap_err();
    assert!(matches!(err, SchedulerError::Conflict { .. }), "{err}");
    let waiter = {
        let fake = fake.clone();
        let id = id.clone();
        tokio::spawn(async move { fake.wait(&id).await })
    };
    let logs = fake.logs(&id).await.unwrap();
    tokio::task::yield_now().await;
    fake.remove(&id, true).await.unwrap();
    assert_eq!(waiter.await.unwrap().unwrap(), ExitStatus::Removed);
    assert_eq!(logs.count().await, 0, "an open log stream ends on removal");
    assert_eq!(fake.containers(), 0);
    for r in [
        fake.state(&id).await.map(|_| ()),
        fake.wait(&id).await.map(|_| ()),
        fake.logs(&id).await.map(|_| ()),
        fake.stop(&id, Duration::ZERO).await,
        fake.remove(&id, true).await,
    ] {
        assert!(
            matches!(r, Err(SchedulerError::NoSuchContainer { .. })),
            "{r:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn containers_are_found_by_id_or_name_and_listed_by_labels() {
    let fake = FakeScheduler::new().image("img", Behaviour::run_until_stopped());
    let a = fake
        .start(spec("a", "img").label("run", "1").label("task", "x"))
        .await
        .unwrap();
    fake.start(spec("b", "img").label("run", "1"))
        .await
        .unwrap();
    fake.start(spec("c", "img").label("run", "2"))
        .await
        .unwrap();
    assert_eq!(
        fake.state(&ContainerId::from("a")).await.unwrap(),
        ContainerState::Running
    );
    let run1 = BTreeMap::from([("run".to_string(), "1".to_string())]);
    let mut names: Vec<_> = fake
        .list(&run1)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    names.sort();
    assert_eq!(names, ["a", "b"]);
    let both = BTreeMap::from([
        ("run".to_string(), "1".to_string()),
        ("task".to_string(), "x".to_string()),
    ]);
    let found = fake.list(&both).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, a);
    assert_eq!(fake.list(&BTreeMap::new()).await.unwrap().len(), 3);
    assert_eq!(fake.running(), 3);
}

#[tokio::test(start_paused = true)]
async fn pull_policies_are_modelled() {
    let fake = FakeScheduler::new()
        .image("remote", Behaviour::exit(0))
        .local_image("local-only");
    // Never + absent: NoSuchImage, no pull.
    let err = fake
        .start(spec("n1", "remote").pull_policy(PullPolicy::Never))
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::NoSuchImage { .. }), "{err}");
    assert!(fake.pulls().is_empty());
    assert_eq!(fake.containers(), 0);
    // IfNotPresent + present: no pull.
    fake.start(spec("n2", "local-only")).await.unwrap();
    assert!(fake.pulls().is_empty());
    // IfNotPresent + absent: one pull, then the image is local.
    fake.start(spec("n3", "remote")).await.unwrap();
    fake.start(spec("n4", "remote:latest")).await.unwrap();
    assert_eq!(fake.pulls().len(), 1);
    assert!(fake.pulls()[0].succeeded);
    assert!(fake.has_local_image("remote"));
    // Always: pulls every time.
    fake.start(spec("n5", "remote").pull_policy(PullPolicy::Always))
        .await
        .unwrap();
    assert_eq!(fake.pulls().len(), 2);
    assert_eq!(fake.pulls()[1].policy, PullPolicy::Always);
    // Always with an image the registry lacks fails even when present locally.
    let err = fake
        .start(spec("n6", "local-only").pull_policy(PullPolicy::Always))
        .await
        .unwrap_err();
    assert!(matches!(err, SchedulerError::NoSuchImage { .. }), "{err}");
    assert!(!fake.pulls()[2].succeeded);
    // An image in neither place.
    let err = fake.start(spec("n7", "nowhere")).await.unwrap_err();
    assert!(matches!(err, SchedulerError::NoSuchImage { ref image, .. } if image == "nowhere"));
}

#[tokio::test(start_paused = true)]
async fn private_registry_images_need_the_right_credentials() {
    let fake = FakeScheduler::new().private_registry_image("reg/private", "gofer", "s3cret");
    let none = fake.start(spec("p1", "reg/private")).await.unwrap_err();
    assert!(
        matches!(none, SchedulerError::Unauthorized { .. }),
        "{none}"
    );
    let wrong = fake
        .start(spec("p2", "reg/private").registry_auth(Some(RegistryAuth::new("gofer", "nope"))))
        .await
        .unwrap_err();
    assert!(
        matches!(wrong, SchedulerError::Unauthorized { .. }),
        "{wrong}"
    );
    assert!(!wrong.to_string().contains("nope"));
    fake.start(spec("p3", "reg/private").registry_auth(Some(RegistryAuth::new("gofer", "s3cret"))))
        .await
        .unwrap();
    let pulls = fake.pulls();
    assert_eq!(pulls.len(), 3);
    assert_eq!(pulls[2].username.as_deref(), Some("gofer"));
    assert!(pulls[2].succeeded && !pulls[1].succeeded);
    assert_eq!(fake.containers(), 1);
}

#[tokio::test(start_paused = true)]
async fn scripted_pull_and_start_failures_leave_nothing_behind() {
    let progress = Arc::new(Mutex::new(Vec::new()));
    let fake = FakeScheduler::new()
        .image("ok", Behaviour::exit(0))
        .image("gone", Behaviour::new().fail_pull(PullFailure::NoSuchImage))
        .image(
            "denied",
            Behaviour::new().fail_pull(PullFailure::Unauthorized),
        )
        .image(
            "broken",
            Behaviour::new().fail_start("no space left on device"),
        );
    let e = fake.start(spec("a", "gone")).await.unwrap_err();
    assert!(matches!(e, SchedulerError::NoSuchImage { .. }), "{e}");
    let e = fake.start(spec("a", "denied")).await.unwrap_err();
    assert!(matches!(e, SchedulerError::Unauthorized { .. }), "{e}");
    let e = fake.start(spec("a", "broken")).await.unwrap_err();
    assert!(e.to_string().contains("no space left"), "{e}");
    assert_eq!(fake.containers(), 0, "failed starts leave no container");
    let p = Arc::clone(&progress);
    let report = Arc::new(move |r: crate::PullProgress| p.lock().unwrap().push(r.status));
    fake.start(spec("a", "ok").on_pull_progress(report))
        .await
        .unwrap();
    assert_eq!(
        fake.containers(),
        1,
        "the name is free again after failures"
    );
    assert!(!progress.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn behaviour_is_chosen_by_name_then_program_then_image() {
    let fake = FakeScheduler::new()
        .image("img", Behaviour::exit(1))
        .program("tool", Behaviour::exit(2))
        .on_name("job-", Behaviour::exit(3))
        .on_name("job-special", Behaviour::exit(4))
        .default_behaviour(Behaviour::exit(5))
        .registry_image("other");
    let code = |name: &'static str, s: ContainerSpec| {
        let fake = fake.clone();
        async move {
            let id = fake.start(s).await.unwrap();
            let _ = name;
            fake.wait(&id).await.unwrap().code().unwrap()
        }
    };
    assert_eq!(code("a", spec("a", "img")).await, 1);
    assert_eq!(
        code("b", spec("b", "img").command(["/usr/bin/tool", "x"])).await,
        2
    );
    assert_eq!(code("c", spec("job-1", "img").command(["tool"])).await, 3);
    assert_eq!(code("d", spec("job-special-1", "img")).await, 4);
    assert_eq!(code("e", spec("e", "other")).await, 5);
}

#[tokio::test(start_paused = true)]
async fn effective_command_follows_image_defaults_and_overrides() {
    let fake = FakeScheduler::new()
        .image("img", Behaviour::echo())
        .image_config(
            "img",
            ImageConfig::cmd(["default", "cmd"]).entrypoint(["echo", "ep"]),
        );
    let run = |s: ContainerSpec| {
        let fake = fake.clone();
        async move {
            let id = fake.start(s).await.unwrap();
            fake.wait(&id).await.unwrap();
            output(&fake, &id).await.0
        }
    };
    assert_eq!(run(spec("a", "img")).await, "ep default cmd\n");
    assert_eq!(run(spec("b", "img").command(["mine"])).await, "ep mine\n");
    // Overriding the entrypoint drops the image's command, as Docker does.
    assert_eq!(run(spec("c", "img").entrypoint(["echo"])).await, "\n");
    assert_eq!(
        run(spec("d", "img").entrypoint(["echo", "x"]).command(["y"])).await,
        "x y\n"
    );
}

#[tokio::test(start_paused = true)]
async fn print_env_prints_image_env_overridden_by_the_request() {
    let fake = FakeScheduler::new()
        .image("img", Behaviour::print_env())
        .image_config(
            "img",
            ImageConfig::default().env("PATH", "/bin").env("A", "image"),
        );
    let s = spec("e", "img")
        .env_var("A", "request")
        .env_var("EMPTY", "")
        .env_var("EQ", "k=v");
    let id = fake.start(s).await.unwrap();
    assert_eq!(
        output(&fake, &id).await.0,
        "A=request\nEMPTY=\nEQ=k=v\nPATH=/bin\n"
    );
}

#[tokio::test(start_paused = true)]
async fn out_of_memory_is_reported_as_such() {
    let fake = FakeScheduler::new().image(
        "img",
        Behaviour::new()
            .sleep(Duration::from_secs(1))
            .out_of_memory(),
    );
    let id = fake.start(spec("m", "img")).await.unwrap();
    assert_eq!(
        fake.wait(&id).await.unwrap(),
        ExitStatus::OutOfMemory { code: 137 }
    );
}

#[tokio::test(start_paused = true)]
async fn sandboxes_follow_the_declared_capability() {
    let fake = FakeScheduler::new().image("img", Behaviour::exit(0));
    let sb = fake
        .create_sandbox(SandboxSpec::new("sb", "img"))
        .await
        .unwrap();
    assert_eq!(fake.state(&sb).await.unwrap(), ContainerState::Running);
    let id = fake
        .start(spec("m", "img").network(NetworkMode::Sandbox(sb.clone())))
        .await
        .unwrap();
    assert!(fake.wait(&id).await.unwrap().success());
    let e = fake
        .start(spec("m2", "img").network(NetworkMode::Sandbox("missing".into())))
        .await
        .unwrap_err();
    assert!(matches!(e, SchedulerError::NoSuchContainer { .. }), "{e}");
    assert_eq!(fake.sandbox_requests().len(), 1);

    let bare = FakeScheduler::new().with_capabilities(Capabilities::none());
    assert!(!bare.capabilities().network_sandbox);
    let e = bare
        .create_sandbox(SandboxSpec::new("sb", "img"))
        .await
        .unwrap_err();
    assert!(matches!(e, SchedulerError::NotSupported { .. }), "{e}");
    assert_eq!(bare.containers(), 0);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_engine() {
    let fake = FakeScheduler::new().image("img", Behaviour::exit(0));
    let other = fake.clone();
    let id = other.start(spec("x", "img")).await.unwrap();
    assert!(fake.wait(&id).await.unwrap().success());
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(fake.name(), "fake");
}
