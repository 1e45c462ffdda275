//! Pulls from the local registries: plain (127.0.0.1:5000) and with basic auth
//! (127.0.0.1:5001, user gofer / password s3cret).
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::{Arc, Mutex};

use bollard::query_parameters::{RemoveImageOptions, TagImageOptions};
use common::*;
use gofer_core::{PullPolicy, PullProgress, RegistryAuth, Scheduler, SchedulerError};
use gofer_scheduler_docker::DockerScheduler;

const PLAIN: &str = "localhost:5000/busybox:latest";
const PRIVATE: &str = "localhost:5001/private/busybox:latest";
const PASSWORD: &str = "s3cret";

/// Removes an image from the engine so that the next start must pull it.
async fn forget_image(s: &DockerScheduler, image: &str) {
    let options = RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    match s.client().remove_image(image, Some(options), None).await {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {}
        Err(e) => panic!("cannot remove image {image}: {e}"),
    }
}

fn recorder() -> (Arc<Mutex<Vec<PullProgress>>>, gofer_core::PullProgressFn) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    (seen, Arc::new(move |p| sink.lock().unwrap().push(p)))
}

#[tokio::test]
async fn pulls_an_absent_image_from_the_local_registry_with_progress() {
    let Some(s) = scheduler().await else { return };
    forget_image(&s, PLAIN).await;
    let case = unique("pull");
    let (seen, report) = recorder();
    let mut spec = spec(&case, &case)
        .pull_policy(PullPolicy::IfNotPresent)
        .on_pull_progress(report)
        .command(["echo", "pulled"]);
    spec.image = PLAIN.to_string();
    let id = s.start(spec).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    assert_eq!(output(&s, &id).await.0, "pulled\n");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "no pull progress reported");
    assert!(seen.iter().all(|p| p.image == PLAIN));
    assert!(
        seen.iter()
            .any(|p| p.status.contains("Downloaded newer image")
                || p.status.contains("Pull complete")
                || p.status.contains("Digest")),
        "{seen:?}"
    );
    cleanup(&s, &case).await;
    forget_image(&s, PLAIN).await;
}

#[tokio::test]
async fn an_unknown_image_in_the_registry_is_no_such_image() {
    let Some(s) = scheduler().await else { return };
    let case = unique("unknown");
    let mut spec = spec(&case, &case).pull_policy(PullPolicy::Always);
    spec.image = "localhost:5000/gofer-no-such-image:latest".to_string();
    match s.start(spec).await {
        Err(SchedulerError::NoSuchImage { image, .. }) => {
            assert_eq!(image, "localhost:5000/gofer-no-such-image:latest")
        }
        other => panic!("expected NoSuchImage, got {other:?}"),
    }
    assert!(s.list(&case_labels(&case)).await.unwrap().is_empty());
}

#[tokio::test]
async fn if_not_present_does_not_contact_the_registry_for_a_present_image() {
    let Some(s) = scheduler().await else { return };
    // Tag the local image under a registry that does not exist: only a pull would fail.
    let offline = "localhost:5999/gofer-offline";
    s.client()
        .tag_image(
            IMAGE,
            Some(TagImageOptions {
                repo: Some(offline.to_string()),
                tag: Some("latest".to_string()),
            }),
        )
        .await
        .unwrap();
    let image = format!("{offline}:latest");
    let case = unique("present");
    let mut present = spec(&case, &case).pull_policy(PullPolicy::IfNotPresent);
    present.image = image.clone();
    let id = s.start(present).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    let mut always = spec(&case, &format!("{case}-always")).pull_policy(PullPolicy::Always);
    always.image = image.clone();
    assert!(
        s.start(always).await.is_err(),
        "Always must contact the registry"
    );
    cleanup(&s, &case).await;
    forget_image(&s, &image).await;
}

#[tokio::test]
async fn private_registry_needs_credentials_and_never_shows_them() {
    let Some(s) = scheduler().await else { return };
    let case = unique("auth");
    forget_image(&s, PRIVATE).await;

    // Without credentials: refused.
    let mut anonymous = spec(&case, &format!("{case}-anon")).pull_policy(PullPolicy::Always);
    anonymous.image = PRIVATE.to_string();
    match s.start(anonymous).await {
        Err(e @ SchedulerError::Unauthorized { .. }) => {
            assert!(e.to_string().contains(PRIVATE), "{e}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    // A wrong password: refused, and the password is in no message.
    let wrong = "wrong-Pa55word-xyz";
    let mut bad = spec(&case, &format!("{case}-bad"))
        .pull_policy(PullPolicy::Always)
        .registry_auth(Some(RegistryAuth::new("gofer", wrong)));
    bad.image = PRIVATE.to_string();
    assert!(!format!("{bad:?}").contains(wrong));
    match s.start(bad).await {
        Err(e @ SchedulerError::Unauthorized { .. }) => {
            let shown = format!("{e} {e:?}");
            assert!(!shown.contains(wrong), "{shown}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }

    // The right credentials: pulled and run; the password shows nowhere.
    let (seen, report) = recorder();
    let mut good = spec(&case, &format!("{case}-good"))
        .pull_policy(PullPolicy::Always)
        .registry_auth(Some(RegistryAuth::new("gofer", PASSWORD)))
        .on_pull_progress(report)
        .command(["echo", "private"]);
    good.image = PRIVATE.to_string();
    let shown = format!("{good:?} {s:?}");
    assert!(!shown.contains(PASSWORD), "{shown}");
    let id = s.start(good).await.unwrap();
    assert!(s.wait(&id).await.unwrap().success());
    assert_eq!(output(&s, &id).await.0, "private\n");
    let progress = format!("{:?}", seen.lock().unwrap());
    assert!(!progress.contains(PASSWORD), "{progress}");
    assert!(
        s.capabilities().registry_auth,
        "credentials are honoured, so the capability is declared"
    );

    cleanup(&s, &case).await;
    forget_image(&s, PRIVATE).await;
}
