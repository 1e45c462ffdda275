//! [`ApiError`]: every refusal the API answers with, as a status and a JSON body.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gofer_core::StoreError;
use serde::{Deserialize, Serialize};

/// The longest [`ErrorBody::message`]; longer ones are cut (with `...`).
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The JSON body of every error answer: `{"error": "<code>", "message": "<what was wrong>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `not_found`, `bad_request`,
    /// `conflict`, `payload_too_large`, `not_supported`, `method_not_allowed`,
    /// `unavailable`, `internal`.
    pub error: String,
    /// What was wrong, naming the header, parameter, key or run.
    pub message: String,
}

/// Why a request was refused. Each variant maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No token, a malformed `Authorization` header, or a token that is not (or no
    /// longer) valid: 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid token asked for another run or pipeline, or a write the host does not
    /// allow: 403.
    #[error("{0}")]
    Forbidden(String),
    /// No such route, run, task or object: 404.
    #[error("{0}")]
    NotFound(String),
    /// A bad path parameter or body: 400.
    #[error("{field}: {message}")]
    BadRequest {
        /// The parameter or part of the request.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The body is larger than the API accepts: 413.
    #[error("request body larger than the limit of {limit} bytes")]
    BodyTooLarge {
        /// The limit.
        limit: usize,
    },
    /// The route exists but not with this method: 405.
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    /// The object store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApiError {
    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Store(e) => match e {
                StoreError::NotFound { .. } => StatusCode::NOT_FOUND,
                StoreError::AlreadyExists { .. } => StatusCode::CONFLICT,
                StoreError::Forbidden { .. } => StatusCode::FORBIDDEN,
                StoreError::InvalidKey { .. } => StatusCode::BAD_REQUEST,
                StoreError::Limit { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                StoreError::NotSupported { .. } => StatusCode::NOT_IMPLEMENTED,
                StoreError::Backend { .. } => StatusCode::SERVICE_UNAVAILABLE,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            },
        }
    }

    /// The stable code of [`ErrorBody::error`].
    pub fn code(&self) -> &'static str {
        match self.status() {
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::BAD_REQUEST => "bad_request",
            StatusCode::CONFLICT => "conflict",
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::NOT_IMPLEMENTED => "not_supported",
            StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
            StatusCode::SERVICE_UNAVAILABLE => "unavailable",
            _ => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut message = self.to_string();
        if message.len() > MAX_MESSAGE_BYTES {
            // Store errors quote keys whole; a key may be as long as a URI.
            let mut end = MAX_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push_str("...");
        }
        let body = ErrorBody {
            error: self.code().to_string(),
            message,
        };
        let mut response = (status, axum::Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"gofer\""),
            );
        }
        response
    }
}
