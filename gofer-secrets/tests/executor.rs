//! The stores of this crate plugged into gofer-core's engine, with the FakeScheduler.

use std::sync::Arc;

use bytes::Bytes;
use gofer_core::fake::{Behaviour, FakeScheduler, Step};
use gofer_core::secrecy::SecretString;
use gofer_core::{
    ObjectStore, Pipeline, RunOptions, RunStatus, SecretStore, StatusReason, Task, TaskStatus, MASK,
};
use gofer_engine::{Engine, InMemoryLogSink, LogKey};
use gofer_secrets::{EncryptionKey, SqliteObjectStore, SqliteSecretStore};

const INSTANCE: &str = "secrets-test";
const DB_PW: &str = "s3cr3t-from-sqlite-Zq9w";
const REGISTRY: &str = "global-from-sqlite-Kp4x";

struct Setup {
    _dir: tempfile::TempDir,
    fake: FakeScheduler,
    sink: InMemoryLogSink,
    objects: SqliteObjectStore,
    engine: Engine,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gofer.db");
    let secrets = SqliteSecretStore::open(&path, EncryptionKey::generate().expect("key"))
        .await
        .expect("open secrets");
    secrets
        .put_pipeline_secret("deploy", "db_pw", SecretString::from(DB_PW), false)
        .await
        .expect("put");
    secrets
        .put_global_secret(
            "REGISTRY",
            SecretString::from(REGISTRY),
            vec!["deploy".into()],
            false,
        )
        .await
        .expect("put global");
    let objects = SqliteObjectStore::open(&path)
        .await
        .expect("open objects")
        .keep_runs(1);
    let fake = FakeScheduler::new()
        .image(
            "printer",
            Behaviour::new()
                .stdout(format!(
                    "connecting with {DB_PW} to the registry {REGISTRY}\n"
                ))
                .step(Step::PrintEnv),
        )
        .image("ok", Behaviour::new());
    let sink = InMemoryLogSink::new();
    let engine = Engine::builder(Arc::new(fake.clone()))
        .instance_id(INSTANCE)
        .log_sink(Arc::new(sink.clone()))
        .secret_store(Arc::new(secrets))
        .object_store(Arc::new(objects.clone()))
        .build()
        .expect("engine");
    Setup {
        _dir: dir,
        fake,
        sink,
        objects,
        engine,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_gets_secrets_from_sqlite_and_its_log_masks_them() {
    let s = setup().await;
    let p = Pipeline::new("deploy", "deploy").task(
        Task::new("migrate", "printer")
            .variable("DB_PW", "pipeline_secret{{db_pw}}")
            .variable("REG", "global_secret{{ REGISTRY }}"),
    );
    let run = s
        .engine
        .start_run(&p, RunOptions::new())
        .expect("start")
        .wait()
        .await
        .expect("run");
    assert_eq!(run.status, RunStatus::Successful, "{run:?}");

    // The container saw the real values, as secret values.
    let name = gofer_core::naming::task_container_name(INSTANCE, "deploy", 1, "migrate");
    let req = s.fake.request(&name).expect("container request");
    assert_eq!(req.env["DB_PW"].expose(), DB_PW);
    assert_eq!(req.env["REG"].expose(), REGISTRY);
    assert!(req.env["DB_PW"].is_secret() && req.env["REG"].is_secret());

    // Its log shows them masked, in its own output and in the printed environment.
    let lines = s.sink.lines(&LogKey::new("deploy", 1, "migrate"));
    let log: String = lines.iter().map(|l| format!("{}\n", l.text())).collect();
    assert!(!log.contains(DB_PW) && !log.contains(REGISTRY), "{log}");
    assert!(
        log.contains(&format!("connecting with {MASK} to the registry {MASK}")),
        "{log}"
    );
    assert!(log.contains(&format!("DB_PW={MASK}")), "{log}");
    assert!(log.contains(&format!("REG={MASK}")), "{log}");

    // The run's details mask them too.
    let shown = format!("{run:?}");
    assert!(
        !shown.contains(DB_PW) && !shown.contains(REGISTRY),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_and_forbidden_secrets_fail_the_task_before_a_container() {
    let s = setup().await;
    let p = Pipeline::new("other", "other").tasks([
        Task::new("missing", "ok").variable("X", "secret{{db_pw}}"),
        Task::new("forbidden", "ok").variable("Y", "global_secret{{REGISTRY}}"),
    ]);
    let run = s
        .engine
        .start_run(&p, RunOptions::new())
        .expect("start")
        .wait()
        .await
        .expect("run");
    assert_eq!(run.status, RunStatus::Failed);
    for (task, key) in [("missing", "db_pw"), ("forbidden", "REGISTRY")] {
        let t = run.task(task).expect("task");
        assert_eq!(t.status, TaskStatus::Failed, "{t:?}");
        assert_eq!(t.reason, Some(StatusReason::FailedPrecondition), "{t:?}");
        assert!(
            format!("{t:?}").contains(key),
            "the failure names {key}: {t:?}"
        );
        let name = gofer_core::naming::task_container_name(INSTANCE, "other", 1, task);
        assert!(s.fake.request(&name).is_none(), "no container for {task}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_runs_expire_old_run_objects_in_sqlite() {
    let s = setup().await;
    let p = Pipeline::new("deploy", "deploy").task(Task::new("quick", "ok"));
    for run in 1..=2u64 {
        s.objects
            .put_run_object("deploy", run, "artifact", Bytes::from_static(b"a"), false)
            .await
            .expect("put");
        let h = s.engine.start_run(&p, RunOptions::new()).expect("start");
        assert_eq!(h.run_id(), run);
        h.wait().await.expect("run");
    }
    // keep_runs(1): the engine reported both runs finished, so run 1 expired.
    assert!(s
        .objects
        .get_run_object("deploy", 1, "artifact")
        .await
        .expect_err("expired")
        .is_not_found());
    s.objects
        .get_run_object("deploy", 2, "artifact")
        .await
        .expect("kept");
}
