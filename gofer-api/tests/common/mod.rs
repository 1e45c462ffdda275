//! Shared fixture of the API tests: an engine on the fake scheduler with a run held
//! in progress, and requests sent straight to the router.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use gofer_api::{Api, ErrorBody, RunTokens};
use gofer_core::fake::{Behaviour, FakeScheduler};
use gofer_core::{
    DynObjectStore, InMemoryObjectStore, Pipeline, RunOptions, Task, TaskState, GOFER_API_TOKEN,
};
use gofer_engine::{Engine, InMemoryLogSink, RunHandle};
use http_body_util::BodyExt;
use tower::ServiceExt;

pub const PIPELINE: &str = "api_test";

pub struct Fixture {
    pub engine: Engine,
    pub scheduler: Arc<FakeScheduler>,
    pub tokens: Arc<RunTokens>,
    pub objects: Arc<InMemoryObjectStore>,
    pub api: Api,
}

pub fn pipeline(id: &str) -> Pipeline {
    Pipeline::new(id, "API test").task(
        Task::new("hold", "busybox")
            .command(["sleep", "1000"])
            .inject_api_token(true),
    )
}

impl Fixture {
    pub fn new() -> Self {
        Self::with_objects(Arc::new(InMemoryObjectStore::new()))
    }

    pub fn with_objects(objects: Arc<InMemoryObjectStore>) -> Self {
        let store: Arc<DynObjectStore> = objects.clone();
        Self::build(objects, store)
    }

    pub fn build(objects: Arc<InMemoryObjectStore>, store: Arc<DynObjectStore>) -> Self {
        let scheduler =
            Arc::new(FakeScheduler::new().image("busybox", Behaviour::run_until_stopped()));
        let tokens = Arc::new(RunTokens::new());
        let engine = Engine::builder(scheduler.clone())
            .log_sink(Arc::new(InMemoryLogSink::new()))
            .object_store(store)
            .token_issuer(tokens.clone())
            .build()
            .expect("engine");
        let api = Api::new(engine.clone()).expect("api");
        Self {
            engine,
            scheduler,
            tokens,
            objects,
            api,
        }
    }

    /// Starts a run of `pipeline` and waits until its task holds a token.
    pub async fn start(&self, pipeline: &Pipeline) -> (RunHandle, String) {
        let run = self
            .engine
            .start_run(pipeline, RunOptions::new())
            .expect("start");
        let task = pipeline.tasks[0].id.clone();
        run.wait_task(&task, TaskState::Running)
            .await
            .expect("running");
        let spec = self
            .scheduler
            .requests()
            .into_iter()
            .find(|s| {
                s.name
                    .contains(&format!("-{}-{}-", pipeline.id, run.run_id()))
            })
            .expect("request");
        let token = spec
            .env
            .get(GOFER_API_TOKEN)
            .expect("token")
            .expose()
            .to_string();
        (run, token)
    }

    pub fn router(&self) -> Router {
        self.api.router()
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn error(&self) -> ErrorBody {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {:?}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> T {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

pub async fn send(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let response = router
        .clone()
        .oneshot(req.body(body.into()).expect("request"))
        .await
        .expect("infallible");
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

pub fn run_path(pipeline: &str, run: u64, rest: &str) -> String {
    format!("/api/v1/pipelines/{pipeline}/runs/{run}{rest}")
}

pub async fn end(run: &RunHandle) {
    run.cancel(Duration::ZERO);
    run.wait().await.expect("wait");
}
