//! The API's refusals: no, malformed, unknown, expired and other runs' tokens (401,
//! 403, and nothing changed), bad run numbers, unknown routes and methods.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use gofer_core::{InMemoryObjectStore, ObjectStore};

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
