//! The API on its own, over the fake scheduler: every route, the limits, concurrent
//! writers, the socket mount (refusals are in refusals.rs).

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::*;
use gofer_api::{Api, BuildError, KeyList};
use gofer_core::bytes::Bytes;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::mock::MockObjectStore;
use gofer_core::{
    Capabilities, DynObjectStore, InMemoryObjectStore, ObjectStore, Run, RunState, StoreError,
    TaskExecution, GOFER_API_TOKEN, MASK,
};
use gofer_engine::{Engine, EngineError};

#[tokio::test]
async fn the_run_and_its_tasks_as_task_get_shows_them_token_masked() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.router();

    let a = send(
        &r,
        Method::GET,
        &run_path(PIPELINE, 1, ""),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    assert!(!a.text().contains(&token), "the token leaked: {}", a.text());
    let got: Run = a.json();
    assert_eq!((got.pipeline_id.as_str(), got.run_id), (PIPELINE, 1));
    assert_eq!(got.state, RunState::Running);
    let hold = &got.tasks[0];
    let shown = hold
        .variables
        .iter()
        .find(|v| v.key == GOFER_API_TOKEN)
        .expect("token variable shown");
    assert!(shown.masked);
    assert_eq!(shown.value, MASK);

    let a = send(
        &r,
        Method::GET,
        &run_path(PIPELINE, 1, "/tasks/hold"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let task: TaskExecution = a.json();
    assert_eq!(task.task_id, "hold");

    let a = send(
        &r,
        Method::GET,
        &run_path(PIPELINE, 1, "/tasks/nope"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a.error().message.contains("nope"), "{}", a.text());
    end(&run).await;
}

#[tokio::test]
async fn run_objects_put_get_list_delete() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.router();
    let obj = |k: &str| run_path(PIPELINE, 1, &format!("/objects/{k}"));

    let a = send(&r, Method::PUT, &obj("version"), Some(&token), "1.2.3").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    // PUT replaces.
    let a = send(&r, Method::PUT, &obj("version"), Some(&token), "1.2.4").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    // A key is one segment, percent-decoded.
    let a = send(
        &r,
        Method::PUT,
        &obj("dir%2Ffile"),
        Some(&token),
        vec![0u8, 255],
    )
    .await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert_eq!(
        f.objects
            .get_run_object(PIPELINE, 1, "dir/file")
            .await
            .expect("stored"),
        Bytes::from_static(&[0, 255])
    );

    let a = send(&r, Method::GET, &obj("version"), Some(&token), "").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b"1.2.4");
    assert_eq!(a.headers["content-type"], "application/octet-stream");

    let a = send(
        &r,
        Method::GET,
        &run_path(PIPELINE, 1, "/objects"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json::<KeyList>().keys, ["dir/file", "version"]);

    let a = send(&r, Method::DELETE, &obj("version"), Some(&token), "").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    let a = send(&r, Method::GET, &obj("version"), Some(&token), "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error().error, "not_found");
    assert!(a.error().message.contains("version"), "{}", a.text());
    let a = send(&r, Method::DELETE, &obj("version"), Some(&token), "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);

    // An invalid key: the store's refusal, named.
    let long = "k".repeat(300);
    let a = send(&r, Method::PUT, &obj(&long), Some(&token), "x").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST, "{}", a.text());
    assert!(a.error().message.contains("invalid key"), "{}", a.text());
    end(&run).await;
}

#[tokio::test]
async fn pipeline_objects_read_and_writes_only_when_allowed() {
    let f = Fixture::new();
    f.objects
        .put_pipeline_object(PIPELINE, "config", "a=1".into(), false)
        .await
        .expect("put");
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.router();
    let path = |k: &str| format!("/api/v1/pipelines/{PIPELINE}/objects/{k}");

    let a = send(&r, Method::GET, &path("config"), Some(&token), "").await;
    assert_eq!((a.status, a.body.as_slice()), (StatusCode::OK, &b"a=1"[..]));
    let a = send(
        &r,
        Method::GET,
        &format!("/api/v1/pipelines/{PIPELINE}/objects"),
        Some(&token),
        "",
    )
    .await;
    assert_eq!(a.json::<KeyList>().keys, ["config"]);

    for method in [Method::PUT, Method::DELETE] {
        let a = send(&r, method.clone(), &path("config"), Some(&token), "a=2").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{method}");
        assert!(
            a.error().message.contains("does not let tasks write"),
            "{}",
            a.text()
        );
    }
    assert_eq!(
        f.objects
            .get_pipeline_object(PIPELINE, "config")
            .await
            .expect("kept"),
        "a=1"
    );

    let r = f.api.clone().pipeline_object_writes(true).router();
    let a = send(&r, Method::PUT, &path("config"), Some(&token), "a=2").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT, "{}", a.text());
    assert_eq!(
        f.objects
            .get_pipeline_object(PIPELINE, "config")
            .await
            .expect("put"),
        "a=2"
    );
    let a = send(&r, Method::DELETE, &path("config"), Some(&token), "").await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    assert!(f
        .objects
        .get_pipeline_object(PIPELINE, "config")
        .await
        .is_err());
    end(&run).await;
}

/// Every route, for the refusals that must change nothing.
#[tokio::test]
async fn a_body_over_the_limit_is_413_and_nothing_is_written() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.api.clone().max_body_bytes(1000).router();
    let path = run_path(PIPELINE, 1, "/objects/big");
    let a = send(&r, Method::PUT, &path, Some(&token), vec![b'x'; 1001]).await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", a.text());
    assert_eq!(a.error().error, "payload_too_large");
    assert!(a.error().message.contains("1000 bytes"), "{}", a.text());
    assert!(f.objects.get_run_object(PIPELINE, 1, "big").await.is_err());
    let a = send(&r, Method::PUT, &path, Some(&token), vec![b'x'; 1000]).await;
    assert_eq!(a.status, StatusCode::NO_CONTENT);
    end(&run).await;
}

#[tokio::test]
async fn the_stores_limit_is_a_clear_413() {
    let mut store = MockObjectStore::new();
    store.expect_put_run_object().returning(|_, _, _, _, _| {
        Err(StoreError::Limit {
            store: "test",
            message: "run objects: at most 10 per run".into(),
        })
    });
    store.expect_run_finished().returning(|_, _| Ok(()));
    let store: Arc<DynObjectStore> = Arc::new(store);
    let f = Fixture::build(Arc::new(InMemoryObjectStore::new()), store);
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let a = send(
        &f.router(),
        Method::PUT,
        &run_path(PIPELINE, 1, "/objects/k"),
        Some(&token),
        "v",
    )
    .await;
    assert_eq!(a.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        a.error().message.contains("at most 10 per run"),
        "{}",
        a.text()
    );
    end(&run).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_land() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.router();
    let mut writers = tokio::task::JoinSet::new();
    for i in 0..64 {
        let (r, token) = (r.clone(), token.clone());
        writers.spawn(async move {
            let own = send(
                &r,
                Method::PUT,
                &run_path(PIPELINE, 1, &format!("/objects/k{i}")),
                Some(&token),
                format!("v{i}"),
            )
            .await;
            let shared = send(
                &r,
                Method::PUT,
                &run_path(PIPELINE, 1, "/objects/shared"),
                Some(&token),
                format!("v{i}"),
            )
            .await;
            (own.status, shared.status)
        });
    }
    while let Some(done) = writers.join_next().await {
        assert_eq!(
            done.expect("writer"),
            (StatusCode::NO_CONTENT, StatusCode::NO_CONTENT)
        );
    }
    let keys = f.objects.list_run_objects(PIPELINE, 1).await.expect("list");
    assert_eq!(keys.len(), 65);
    for i in 0..64 {
        let v = f
            .objects
            .get_run_object(PIPELINE, 1, &format!("k{i}"))
            .await
            .expect("own");
        assert_eq!(v, format!("v{i}"));
    }
    let shared = f
        .objects
        .get_run_object(PIPELINE, 1, "shared")
        .await
        .expect("shared");
    let shared = String::from_utf8(shared.to_vec()).expect("utf8");
    assert!((0..64).any(|i| shared == format!("v{i}")), "{shared}");
    end(&run).await;
}

#[tokio::test]
async fn an_engine_without_a_token_issuer_has_no_api() {
    let engine = Engine::builder(Arc::new(FakeScheduler::new()))
        .build()
        .expect("engine");
    assert!(matches!(Api::new(engine), Err(BuildError::NoTokenIssuer)));
}

#[tokio::test]
async fn the_socket_is_mounted_and_named_only_for_tasks_given_a_token() {
    let scheduler = Arc::new(FakeScheduler::new().image("busybox", Behaviour::exit(0)));
    let dir = tempfile::tempdir().expect("dir");
    let engine = Engine::builder(scheduler.clone())
        .log_sink(Arc::new(gofer_engine::InMemoryLogSink::new()))
        .token_issuer(gofer_api::run_tokens())
        .api_socket_dir(dir.path())
        .build()
        .expect("engine");
    let p = gofer_core::Pipeline::new(PIPELINE, "mounts")
        .task(gofer_core::Task::new("with", "busybox").inject_api_token(true))
        .task(gofer_core::Task::new("without", "busybox"));
    let run = engine
        .start_run(&p, gofer_core::RunOptions::new())
        .expect("start");
    run.wait().await.expect("wait");
    let with = scheduler
        .requests()
        .into_iter()
        .find(|s| s.name.ends_with("-with"))
        .expect("with");
    assert_eq!(
        with.env.get("GOFER_API_SOCKET").map(|v| v.expose()),
        Some("/run/gofer/api.sock")
    );
    assert_eq!(
        with.env.get("GOFER_API_URL").map(|v| v.expose()),
        Some("unix:///run/gofer/api.sock")
    );
    assert_eq!(
        with.mounts,
        [gofer_core::Mount::bind(dir.path(), "/run/gofer")]
    );
    let without = scheduler
        .requests()
        .into_iter()
        .find(|s| s.name.ends_with("-without"))
        .expect("without");
    assert!(without.mounts.is_empty());
    assert!(!without.env.contains_key("GOFER_API_SOCKET"));
    assert!(!without.env.contains_key(gofer_core::GOFER_API_TOKEN));
}

#[tokio::test]
async fn a_backend_without_local_bind_mounts_refuses_the_api_socket() {
    let caps = Capabilities::none()
        .with_mounts(true)
        .with_local_bind_mounts(false);
    let scheduler = FakeScheduler::new().with_capabilities(caps);
    let e = Engine::builder(Arc::new(scheduler))
        .token_issuer(gofer_api::run_tokens())
        .api_socket_dir("/tmp/gofer-api-never")
        .build()
        .expect_err("refused");
    assert!(
        matches!(e, EngineError::ApiSocketNotSupported { .. }),
        "{e}"
    );
    assert!(!std::path::Path::new("/tmp/gofer-api-never").exists());
}
