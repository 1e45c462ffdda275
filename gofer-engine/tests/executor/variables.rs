//! Variables: precedence, substitution, preconditions, details, API tokens.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::secrecy::SecretString;
use gofer_core::RequiredParentStatus::Success;
use gofer_core::{
    Event, InMemoryObjectStore, InMemorySecretStore, ObjectStore, Pipeline, PlaceholderKind,
    RunOptions, RunStatus, SecretStore, StatusReason, Task, TaskState, TaskStatus, VariableSource,
    MASK,
};

use crate::common::*;

fn fake() -> FakeScheduler {
    FakeScheduler::new()
        .image("ok", Behaviour::new())
        .image("slow", Behaviour::new().sleep(Duration::from_secs(10)))
}

fn env_of(fake: &FakeScheduler, name: &str) -> Vec<(String, String)> {
    fake.request(name)
        .unwrap()
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.expose().to_string()))
        .collect()
}

fn get(env: &[(String, String)], key: &str) -> Option<String> {
    env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

#[tokio::test(start_paused = true)]
async fn precedence_config_over_run_options_over_system() {
    let fake = fake();
    let p = Pipeline::new("prec", "prec").task(
        Task::new("task", "ok")
            .variable("GOFER_PIPELINE_ID", "mine")
            .variable("SHARED", "from-config"),
    );
    let opts = RunOptions::new()
        .variable("SHARED", "from-run")
        .variable("GOFER_TASK_ID", "from-run")
        .variable("ONLY_RUN", "r");
    let run = finish(&engine(&fake).start_run(&p, opts).unwrap()).await;
    let env = env_of(&fake, &cname("prec", 1, "task"));
    assert_eq!(get(&env, "GOFER_PIPELINE_ID").unwrap(), "mine");
    assert_eq!(get(&env, "SHARED").unwrap(), "from-config");
    assert_eq!(get(&env, "GOFER_TASK_ID").unwrap(), "from-run");
    assert_eq!(get(&env, "ONLY_RUN").unwrap(), "r");
    assert_eq!(get(&env, "GOFER_RUN_ID").unwrap(), "1");
    assert_eq!(get(&env, "GOFER_TASK_IMAGE").unwrap(), "ok");
    assert_eq!(get(&env, "GOFER_TASK_ATTEMPT").unwrap(), "1");
    assert!(get(&env, "GOFER_API_TOKEN").is_none());
    let details = &task(&run, "task").variables;
    let source = |k: &str| details.iter().find(|v| v.key == k).unwrap().source;
    assert_eq!(source("GOFER_PIPELINE_ID"), VariableSource::PipelineConfig);
    assert_eq!(source("GOFER_TASK_ID"), VariableSource::RunOptions);
    assert_eq!(source("GOFER_RUN_ID"), VariableSource::System);
    assert_eq!(details.len(), env.len());
}

async fn stores() -> (Arc<InMemorySecretStore>, Arc<InMemoryObjectStore>) {
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret(
            "subst",
            "db_pw",
            SecretString::from("pw-1234-secret".to_string()),
            false,
        )
        .await
        .unwrap();
    secrets
        .put_global_secret(
            "shared",
            SecretString::from("global-5678-value".to_string()),
            vec!["sub*".into()],
            false,
        )
        .await
        .unwrap();
    secrets
        .put_global_secret(
            "private",
            SecretString::from("nope-nope".to_string()),
            vec!["other".into()],
            false,
        )
        .await
        .unwrap();
    let objects = Arc::new(InMemoryObjectStore::new());
    objects
        .put_pipeline_object("subst", "region", Bytes::from_static(b"eu-west"), false)
        .await
        .unwrap();
    (secrets, objects)
}

#[tokio::test(start_paused = true)]
async fn substitution_from_every_store_and_run_object_left_by_parent() {
    let fake = fake();
    let (secrets, objects) = stores().await;
    let e = builder(&fake)
        .0
        .secret_store(secrets)
        .object_store(objects.clone())
        .build()
        .unwrap();
    let p = Pipeline::new("subst", "subst").tasks([
        Task::new("parent", "slow"),
        Task::new("child", "ok")
            .depends_on("parent", Success)
            .variable("PW", "Secret{{ db_pw }}")
            .variable("GLOBAL", "global_secret{{shared}}")
            .variable("REGION", "pipeline_object{{region}}")
            .variable("ARTIFACT", "run_object{{artifact}}"),
    ]);
    let opts = RunOptions::new().variable("FROM_RUN", "pipeline_secret{{db_pw}}");
    let h = e.start_run(&p, opts).unwrap();
    // The parent leaves a run object while it runs (as a task would through the API).
    let mut events = h.events();
    while let Some(ev) = events.next().await {
        if matches!(&ev, Event::Task { task_id, state: TaskState::Running, .. } if &**task_id == "parent")
        {
            objects
                .put_run_object(
                    "subst",
                    h.run_id(),
                    "artifact",
                    Bytes::from_static(b"build-42"),
                    false,
                )
                .await
                .unwrap();
            break;
        }
    }
    let run = finish(&h).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let env = env_of(&fake, &cname("subst", 1, "child"));
    assert_eq!(get(&env, "PW").unwrap(), "pw-1234-secret");
    assert_eq!(get(&env, "GLOBAL").unwrap(), "global-5678-value");
    assert_eq!(get(&env, "REGION").unwrap(), "eu-west");
    assert_eq!(get(&env, "ARTIFACT").unwrap(), "build-42");
    assert_eq!(get(&env, "FROM_RUN").unwrap(), "pw-1234-secret");
    // The container saw the secrets as secret values.
    let req = fake.request(&cname("subst", 1, "child")).unwrap();
    assert!(req.env["PW"].is_secret() && req.env["GLOBAL"].is_secret());
    assert!(!req.env["REGION"].is_secret());

    // Details: every key with its source; secrets masked.
    let details = &task(&run, "child").variables;
    let var = |k: &str| details.iter().find(|v| v.key == k).unwrap();
    assert_eq!(var("PW").value, MASK);
    assert!(var("PW").masked);
    assert_eq!(var("PW").placeholder, Some(PlaceholderKind::PipelineSecret));
    assert_eq!(var("PW").source, VariableSource::PipelineConfig);
    assert_eq!(var("GLOBAL").value, MASK);
    assert_eq!(var("FROM_RUN").value, MASK);
    assert_eq!(var("FROM_RUN").source, VariableSource::RunOptions);
    assert_eq!(var("REGION").value, "eu-west");
    assert_eq!(
        var("ARTIFACT").placeholder,
        Some(PlaceholderKind::RunObject)
    );
    // No secret anywhere in the run, its Debug output or its events.
    let shown = format!("{run:?} {:?}", h.events().collect::<Vec<_>>().await);
    for secret in ["pw-1234-secret", "global-5678-value"] {
        assert!(!shown.contains(secret), "{secret} leaked");
    }
}

#[tokio::test(start_paused = true)]
async fn missing_or_forbidden_keys_fail_before_any_container() {
    let fake = fake();
    let (secrets, objects) = stores().await;
    let e = builder(&fake)
        .0
        .secret_store(secrets)
        .object_store(objects)
        .build()
        .unwrap();
    let p = Pipeline::new("subst", "subst").tasks([
        Task::new("missing_secret", "ok").variable("A", "secret{{nothing_here}}"),
        Task::new("forbidden", "ok").variable("B", "global_secret{{private}}"),
        Task::new("missing_object", "ok").variable("C", "run_object{{not_left}}"),
        Task::new("fine", "ok"),
        Task::new("after", "ok").depends_on("missing_secret", Success),
    ]);
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    for (id, key) in [
        ("missing_secret", "nothing_here"),
        ("forbidden", "private"),
        ("missing_object", "not_left"),
    ] {
        let t = task(&run, id);
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        assert_eq!(t.reason, Some(StatusReason::FailedPrecondition));
        assert!(t.message.as_deref().unwrap().contains(key), "{t:?}");
        assert!(
            fake.request(&cname("subst", 1, id)).is_none(),
            "{id} got a container"
        );
    }
    assert!(task(&run, "forbidden")
        .message
        .as_deref()
        .unwrap()
        .contains("not allowed"));
    assert!(!format!("{run:?}").contains("nope-nope"));
    assert_eq!(task(&run, "fine").status, TaskStatus::Successful);
    assert_eq!(task(&run, "after").status, TaskStatus::Skipped);
    assert_eq!(fake.requests().len(), 1);
    assert_eq!(run.status, RunStatus::Failed);
}

#[tokio::test(start_paused = true)]
async fn api_token_is_unique_per_run_masked_and_revoked() {
    let fake = fake();
    let tokens = Arc::new(Tokens::default());
    let e = builder(&fake)
        .0
        .token_issuer(tokens.clone())
        .build()
        .unwrap();
    let p = Pipeline::new("tok", "tok").tasks([
        Task::new("wants", "ok").inject_api_token(true),
        Task::new("plain", "ok"),
    ]);
    let r1 = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let r2 = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let issued = tokens.issued.lock().unwrap().clone();
    assert_eq!(issued.len(), 2);
    assert_ne!(issued[0].1, issued[1].1);
    let mut revoked = tokens.revoked.lock().unwrap().clone();
    revoked.sort();
    assert_eq!(revoked, issued);
    for (run, (n, token)) in [(&r1, &issued[0]), (&r2, &issued[1])] {
        let env = env_of(&fake, &cname("tok", *n, "wants"));
        assert_eq!(get(&env, "GOFER_API_TOKEN").as_ref(), Some(token));
        assert!(get(
            &env_of(&fake, &cname("tok", *n, "plain")),
            "GOFER_API_TOKEN"
        )
        .is_none());
        let var = task(run, "wants")
            .variables
            .iter()
            .find(|v| v.key == "GOFER_API_TOKEN")
            .unwrap()
            .clone();
        assert_eq!(var.value, MASK);
        assert_eq!(var.source, VariableSource::System);
        assert!(!format!("{run:?}").contains(token.as_str()));
    }
}

#[tokio::test(start_paused = true)]
async fn no_token_is_issued_when_no_task_asks() {
    let fake = fake();
    let tokens = Arc::new(Tokens::default());
    let e = builder(&fake)
        .0
        .token_issuer(tokens.clone())
        .build()
        .unwrap();
    let p = Pipeline::new("notok", "notok").task(Task::new("plain", "ok"));
    finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert!(tokens.issued.lock().unwrap().is_empty());
}

#[derive(Debug)]
struct BrokenIssuer;

#[async_trait::async_trait]
impl gofer_core::TokenIssuer for BrokenIssuer {
    async fn issue(&self, _: &str, _: u64) -> Result<SecretString, gofer_core::BoxError> {
        Err("token service down".into())
    }
    async fn revoke(&self, _: &str, _: u64, _: SecretString) -> Result<(), gofer_core::BoxError> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn failed_token_issue_fails_only_tasks_that_asked() {
    let fake = fake();
    let e = builder(&fake)
        .0
        .token_issuer(Arc::new(BrokenIssuer))
        .build()
        .unwrap();
    let p = Pipeline::new("tokfail", "tokfail").tasks([
        Task::new("wants", "ok").inject_api_token(true),
        Task::new("plain", "ok"),
    ]);
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    let t = task(&run, "wants");
    assert_eq!(t.status, TaskStatus::Failed);
    assert_eq!(t.reason, Some(StatusReason::FailedPrecondition));
    assert!(t.message.as_deref().unwrap().contains("GOFER_API_TOKEN"));
    assert!(fake.request(&cname("tokfail", 1, "wants")).is_none());
    assert_eq!(task(&run, "plain").status, TaskStatus::Successful);
}

#[tokio::test(start_paused = true)]
async fn registry_password_is_masked_in_logs() {
    let fake = FakeScheduler::new()
        .private_registry_image("reg.example/private/tool", "gofer", "s3cret-pw")
        .image(
            "reg.example/private/tool",
            Behaviour::new().stdout("login with s3cret-pw\n"),
        )
        .private_registry_image("reg.example/private/tool", "gofer", "s3cret-pw");
    let (b, sink) = builder(&fake);
    let e = b.build().unwrap();
    let p = Pipeline::new("regpw", "regpw").task(
        Task::new("tool", "reg.example/private/tool")
            .registry_auth("gofer", "s3cret-pw")
            .pull_policy(gofer_core::PullPolicy::Always),
    );
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");
    let lines = sink.lines(&gofer_engine::LogKey::new("regpw", 1, "tool"));
    assert_eq!(lines[0].text(), format!("login with {MASK}"));
}

/// A registry password given as a secret placeholder is looked up in the secret store
/// at the task's start, masked in its log; a missing secret fails the task before any
/// container, naming the field.
#[tokio::test(start_paused = true)]
async fn a_registry_password_placeholder_comes_from_the_secret_store() {
    let fake = FakeScheduler::new()
        .image(
            "reg.example/private/tool",
            Behaviour::new().stdout("login with s3cret-pw\n"),
        )
        .private_registry_image("reg.example/private/tool", "gofer", "s3cret-pw");
    let secrets = Arc::new(InMemorySecretStore::new());
    secrets
        .put_pipeline_secret(
            "regph",
            "registry_pw",
            SecretString::from("s3cret-pw".to_string()),
            false,
        )
        .await
        .unwrap();
    let (b, sink) = builder(&fake);
    let e = b.secret_store(secrets).build().unwrap();
    let p = Pipeline::new("regph", "regph")
        .task(
            Task::new("tool", "reg.example/private/tool")
                .registry_auth("gofer", "secret{{registry_pw}}")
                .pull_policy(gofer_core::PullPolicy::Always),
        )
        .task(
            Task::new("other", "reg.example/private/tool")
                .registry_auth("gofer", "secret{{missing_pw}}")
                .pull_policy(gofer_core::PullPolicy::Always),
        );
    let run = finish(&e.start_run(&p, RunOptions::new()).unwrap()).await;
    assert_eq!(task(&run, "tool").status, TaskStatus::Successful, "{run:?}");
    let lines = sink.lines(&gofer_engine::LogKey::new("regph", 1, "tool"));
    assert_eq!(lines[0].text(), format!("login with {MASK}"));
    let other = task(&run, "other");
    assert_eq!(other.reason, Some(StatusReason::FailedPrecondition));
    let message = other.message.as_deref().unwrap();
    assert!(
        message.contains("registry_auth.password") && message.contains("missing_pw"),
        "{message}"
    );
    assert!(fake.request(&cname("regph", 1, "other")).is_none());
}
