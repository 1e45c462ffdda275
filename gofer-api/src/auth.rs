//! Request parsing: the bearer token, path parameters, and the [`Scope`] a request
//! is allowed to act in.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use gofer_core::TokenGrant;

use crate::error::ApiError;
use crate::state::ApiState;

/// The longest `Authorization` header value looked at; longer ones are refused
/// unread (a token is 49 characters).
pub const MAX_AUTHORIZATION_LEN: usize = 1024;

/// The token of an `Authorization: Bearer <token>` header.
///
/// The scheme is case-insensitive (RFC 9110); exactly one header, one space and a
/// token of visible ASCII characters are accepted.
///
/// # Errors
/// [`ApiError::Unauthorized`] saying what is missing or malformed (never quoting the
/// header, which may hold a token).
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(ApiError::Unauthorized(
        "no Authorization header: send `Authorization: Bearer $GOFER_API_TOKEN`",
    ))?;
    if values.next().is_some() {
        return Err(ApiError::Unauthorized("more than one Authorization header"));
    }
    if value.len() > MAX_AUTHORIZATION_LEN {
        return Err(ApiError::Unauthorized("Authorization header too long"));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::Unauthorized("Authorization header is not ASCII"))?;
    let (scheme, token) = value.split_once(' ').ok_or(ApiError::Unauthorized(
        "Authorization is not `Bearer <token>`",
    ))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthorized("Authorization scheme is not Bearer"));
    }
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::Unauthorized(
            "the bearer token is empty or malformed",
        ));
    }
    Ok(token)
}

/// A run number path parameter: a decimal `u64` (1, 2, 3, ...).
///
/// # Errors
/// [`ApiError::BadRequest`] naming the parameter `run`.
pub fn parse_run(text: &str) -> Result<u64, ApiError> {
    let bad = || ApiError::BadRequest {
        field: "run",
        message: format!("{:?} is not a run number", excerpt(text)),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// At most 64 characters of a user-given text, for messages.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text.to_string(),
    }
}

/// What an authenticated request may act on: the pipeline and, for run routes, the
/// run its token grants, with the route's other path parameters (already decoded).
#[derive(Debug)]
pub(crate) struct Scope {
    pub(crate) grant: TokenGrant,
    pub(crate) params: HashMap<String, String>,
}

impl Scope {
    /// A path parameter the route declares.
    pub(crate) fn param(&self, name: &'static str) -> Result<&str, ApiError> {
        self.params
            .get(name)
            .map(String::as_str)
            .ok_or(ApiError::BadRequest {
                field: name,
                message: "missing".into(),
            })
    }
}

impl FromRequestParts<ApiState> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        // Authentication comes first: nothing about the request is looked at, and no
        // body is read, before the token is known to be valid.
        let token = bearer_token(&parts.headers)?;
        let grant = state
            .issuer
            .verify(token)
            .await
            .ok_or(ApiError::Unauthorized(
                "the token is not valid: unknown, or its run has ended",
            ))?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::BadRequest {
                field: "path",
                message: e.body_text(),
            })?;
        if let Some(pipeline) = params.get("pipeline") {
            if *pipeline != grant.pipeline {
                return Err(ApiError::Forbidden(format!(
                    "the token grants pipeline {:?}, not {:?}",
                    grant.pipeline,
                    excerpt(pipeline)
                )));
            }
        }
        if let Some(run) = params.get("run") {
            let run = parse_run(run)?;
            if run != grant.run {
                return Err(ApiError::Forbidden(format!(
                    "the token grants run {} of pipeline {:?}, not run {run}",
                    grant.run, grant.pipeline
                )));
            }
        }
        Ok(Self { grant, params })
    }
}
