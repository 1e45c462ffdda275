//! The routes and their handlers.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::auth::{excerpt, Scope};
use crate::error::ApiError;
use crate::state::ApiState;

/// The answer of the list routes: `{"keys": [...]}`, sorted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    /// The object keys.
    pub keys: Vec<String>,
}

/// The API's routes, under `/api/v1`.
pub(crate) fn router(state: ApiState) -> Router {
    let run = "/api/v1/pipelines/{pipeline}/runs/{run}";
    let pipeline = "/api/v1/pipelines/{pipeline}";
    Router::new()
        .route(run, get(get_run))
        .route(&format!("{run}/tasks/{{task}}"), get(get_task))
        .route(&format!("{run}/objects"), get(list_run_objects))
        .route(
            &format!("{run}/objects/{{key}}"),
            get(get_run_object)
                .put(put_run_object)
                .delete(delete_run_object),
        )
        .route(&format!("{pipeline}/objects"), get(list_pipeline_objects))
        .route(
            &format!("{pipeline}/objects/{{key}}"),
            get(get_pipeline_object)
                .put(put_pipeline_object)
                .delete(delete_pipeline_object),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(state.max_body))
        .with_state(state)
}

fn run_handle(state: &ApiState, scope: &Scope) -> Result<gofer_engine::RunHandle, ApiError> {
    state
        .engine
        .run(&scope.grant.pipeline, scope.grant.run)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "run {} of pipeline {:?} is not in progress",
                scope.grant.run, scope.grant.pipeline
            ))
        })
}

async fn get_run(State(state): State<ApiState>, scope: Scope) -> Result<Response, ApiError> {
    Ok(Json(run_handle(&state, &scope)?.snapshot()).into_response())
}

async fn get_task(State(state): State<ApiState>, scope: Scope) -> Result<Response, ApiError> {
    let task = scope.param("task")?;
    let run = run_handle(&state, &scope)?.snapshot();
    let found = run
        .tasks
        .into_iter()
        .find(|t| t.task_id == task)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "run {} of pipeline {:?} has no task {:?}",
                scope.grant.run,
                scope.grant.pipeline,
                excerpt(task)
            ))
        })?;
    Ok(Json(found).into_response())
}

/// A body, or the refusal of one: 413 past the limit.
fn body(state: &ApiState, body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::BodyTooLarge {
                limit: state.max_body,
            }
        } else {
            ApiError::BadRequest {
                field: "body",
                message: e.body_text(),
            }
        }
    })
}

fn object(value: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/octet-stream")], value).into_response()
}

async fn list_run_objects(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<Response, ApiError> {
    let keys = state
        .objects
        .list_run_objects(&scope.grant.pipeline, scope.grant.run)
        .await?;
    Ok(Json(KeyList { keys }).into_response())
}

async fn get_run_object(State(state): State<ApiState>, scope: Scope) -> Result<Response, ApiError> {
    let key = scope.param("key")?;
    let value = state
        .objects
        .get_run_object(&scope.grant.pipeline, scope.grant.run, key)
        .await?;
    Ok(object(value))
}

async fn put_run_object(
    State(state): State<ApiState>,
    scope: Scope,
    value: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    let value = body(&state, value)?;
    let key = scope.param("key")?;
    state
        .objects
        .put_run_object(&scope.grant.pipeline, scope.grant.run, key, value, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_run_object(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<StatusCode, ApiError> {
    let key = scope.param("key")?;
    state
        .objects
        .delete_run_object(&scope.grant.pipeline, scope.grant.run, key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn list_pipeline_objects(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<Response, ApiError> {
    let keys = state
        .objects
        .list_pipeline_objects(&scope.grant.pipeline)
        .await?;
    Ok(Json(KeyList { keys }).into_response())
}

async fn get_pipeline_object(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<Response, ApiError> {
    let key = scope.param("key")?;
    let value = state
        .objects
        .get_pipeline_object(&scope.grant.pipeline, key)
        .await?;
    Ok(object(value))
}

fn pipeline_writes(state: &ApiState, scope: &Scope) -> Result<(), ApiError> {
    if state.pipeline_writes {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "this host does not let tasks write the objects of pipeline {:?}",
            scope.grant.pipeline
        )))
    }
}

async fn put_pipeline_object(
    State(state): State<ApiState>,
    scope: Scope,
    value: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, ApiError> {
    pipeline_writes(&state, &scope)?;
    let value = body(&state, value)?;
    let key = scope.param("key")?;
    state
        .objects
        .put_pipeline_object(&scope.grant.pipeline, key, value, true)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_pipeline_object(
    State(state): State<ApiState>,
    scope: Scope,
) -> Result<StatusCode, ApiError> {
    pipeline_writes(&state, &scope)?;
    let key = scope.param("key")?;
    state
        .objects
        .delete_pipeline_object(&scope.grant.pipeline, key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
