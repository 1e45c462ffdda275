//! Unit tests of the fake's images, pulls and scripting.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::tests::{output, spec};
use super::*;
use crate::error::SchedulerError;
use crate::scheduler::{
    Capabilities, ContainerSpec, ContainerState, ExitStatus, NetworkMode, SandboxSpec, Scheduler,
};
use crate::task::{PullPolicy, RegistryAuth};

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
    assert!(!format!("{fake:?}").contains("s3cret"));
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

#[tokio::test(start_paused = true)]
async fn pulls_can_be_slow_and_are_skipped_for_present_images() {
    let fake = FakeScheduler::new().image(
        "slow",
        Behaviour::exit(0).pull_delay(Duration::from_secs(30)),
    );
    let begin = tokio::time::Instant::now();
    let id = fake.start(spec("a", "slow")).await.unwrap();
    assert_eq!(begin.elapsed(), Duration::from_secs(30));
    assert!(fake.wait(&id).await.unwrap().success());
    let begin = tokio::time::Instant::now();
    fake.start(spec("b", "slow")).await.unwrap();
    assert_eq!(
        begin.elapsed(),
        Duration::ZERO,
        "a present image is not pulled again"
    );
    assert_eq!(fake.pulls().len(), 1);
}
