//! The API on its own, over the fake scheduler: every route, every refusal, the
//! limits, concurrent writers.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::*;
use gofer_api::{Api, BuildError, KeyList};
use gofer_core::bytes::Bytes;
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::mock::MockObjectStore;
use gofer_core::{
    Capabilities, DynObjectStore, Engine, EngineError, InMemoryObjectStore, ObjectStore, Run,
    RunState, StoreError, TaskExecution, GOFER_API_TOKEN, MASK,
};

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
fn routes(pipeline: &str, run: u64) -> Vec<(Method, String)> {
    let base = format!("/api/v1/pipelines/{pipeline}");
    let run = format!("{base}/runs/{run}");
    vec![
        (Method::GET, run.clone()),
        (Method::GET, format!("{run}/tasks/hold")),
        (Method::GET, format!("{run}/objects")),
        (Method::GET, format!("{run}/objects/k")),
        (Method::PUT, format!("{run}/objects/k")),
        (Method::DELETE, format!("{run}/objects/k")),
        (Method::GET, format!("{base}/objects")),
        (Method::GET, format!("{base}/objects/k")),
        (Method::PUT, format!("{base}/objects/k")),
        (Method::DELETE, format!("{base}/objects/k")),
    ]
}

async fn untouched(objects: &InMemoryObjectStore, pipeline: &str, run: u64) {
    assert_eq!(
        objects
            .get_run_object(pipeline, run, "k")
            .await
            .expect("kept"),
        "before"
    );
    assert_eq!(
        objects
            .get_pipeline_object(pipeline, "k")
            .await
            .expect("kept"),
        "before"
    );
}

#[tokio::test]
async fn no_bad_or_expired_token_is_401_and_changes_nothing() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    f.objects
        .put_run_object(PIPELINE, 1, "k", "before".into(), false)
        .await
        .expect("put");
    f.objects
        .put_pipeline_object(PIPELINE, "k", "before".into(), false)
        .await
        .expect("put");
    let r = f.api.clone().pipeline_object_writes(true).router();

    let headers: [Option<String>; 7] = [
        None,
        Some(String::new()),
        Some("Basic Z29mZXI6czNjcmV0".into()),
        Some("Bearer".into()),
        Some("Bearer ".into()),
        Some("Bearer gofer_not-a-token".into()),
        Some(format!("Bearer {token}x")),
    ];
    for (method, path) in routes(PIPELINE, 1) {
        for h in &headers {
            let mut req = axum::http::Request::builder()
                .method(method.clone())
                .uri(&path);
            if let Some(h) = h {
                req = req.header("authorization", h);
            }
            let a = raw(&r, req.body(axum::body::Body::from("after")).expect("req")).await;
            assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path} {h:?}");
            assert_eq!(a.error().error, "unauthorized");
            assert!(a.headers.contains_key("www-authenticate"));
        }
    }
    untouched(&f.objects, PIPELINE, 1).await;

    // The run ends: its token is revoked.
    end(&run).await;
    assert_eq!(f.tokens.live(), 0);
    assert!(f.engine.run(PIPELINE, 1).is_none());
    for (method, path) in routes(PIPELINE, 1) {
        let a = send(&r, method.clone(), &path, Some(&token), "after").await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {path}");
        assert!(a.error().message.contains("run has ended"), "{}", a.text());
    }
    untouched(&f.objects, PIPELINE, 1).await;
}

async fn raw(r: &axum::Router, req: axum::http::Request<axum::body::Body>) -> Answer {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let response = r.clone().oneshot(req).await.expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

#[tokio::test]
async fn another_runs_or_pipelines_token_is_403_and_changes_nothing() {
    let f = Fixture::new();
    let (run1, _token1) = f.start(&pipeline(PIPELINE)).await;
    let (run2, token2) = f.start(&pipeline(PIPELINE)).await;
    let (other, token_other) = f.start(&pipeline("other_pipe")).await;
    assert_eq!(run2.run_id(), 2);
    f.objects
        .put_run_object(PIPELINE, 1, "k", "before".into(), false)
        .await
        .expect("put");
    f.objects
        .put_pipeline_object(PIPELINE, "k", "before".into(), false)
        .await
        .expect("put");
    let r = f.api.clone().pipeline_object_writes(true).router();

    for (method, path) in routes(PIPELINE, 1) {
        let run_route = path.contains("/runs/");
        // Run 2's token: refused on run 1's routes; the pipeline's routes are its own.
        if run_route {
            let a = send(&r, method.clone(), &path, Some(&token2), "after").await;
            assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {path}");
            assert_eq!(a.error().error, "forbidden");
            assert!(a.error().message.contains("not run 1"), "{}", a.text());
        }
        let a = send(&r, method.clone(), &path, Some(&token_other), "after").await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(a.error().message.contains("other_pipe"), "{}", a.text());
    }
    untouched(&f.objects, PIPELINE, 1).await;
    end(&run1).await;
    end(&run2).await;
    end(&other).await;
}

#[tokio::test]
async fn bad_run_number_unknown_route_and_method_are_json_errors() {
    let f = Fixture::new();
    let (run, token) = f.start(&pipeline(PIPELINE)).await;
    let r = f.router();
    for bad in ["x", "-1", "1.0", "18446744073709551616", "%20"] {
        let a = send(
            &r,
            Method::GET,
            &format!("/api/v1/pipelines/{PIPELINE}/runs/{bad}"),
            Some(&token),
            "",
        )
        .await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(a.error().message.starts_with("run:"), "{}", a.text());
    }
    let a = send(&r, Method::GET, "/api/v1/nothing", Some(&token), "").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.error().error, "not_found");
    let a = send(
        &r,
        Method::POST,
        &run_path(PIPELINE, 1, "/objects/k"),
        Some(&token),
        "x",
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(a.error().error, "method_not_allowed");
    end(&run).await;
}

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
        .log_sink(Arc::new(gofer_core::InMemoryLogSink::new()))
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
