#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod auth;
mod error;
mod routes;
mod serve;
mod state;
mod tokens;

use std::path::Path;
use std::sync::Arc;

use gofer_engine::Engine;

pub use auth::{bearer_token, parse_run, MAX_AUTHORIZATION_LEN};
pub use error::{ApiError, ErrorBody, MAX_MESSAGE_BYTES};
pub use routes::KeyList;
pub use serve::{ApiServer, ServeError};
pub use tokens::{RunTokens, TOKEN_BYTES, TOKEN_PREFIX};

/// The default limit of a request body: 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why an [`Api`] cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The engine has no token issuer, so no request could ever be authenticated.
    #[error("the engine has no token issuer: build it with EngineBuilder::token_issuer(Arc::new(RunTokens::new()))")]
    NoTokenIssuer,
}

/// The HTTP API over an [`Engine`]: run state and run and pipeline objects, for the
/// tasks that hold their run's `GOFER_API_TOKEN`.
#[derive(Clone)]
pub struct Api {
    state: state::ApiState,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("engine", &self.state.engine)
            .field("pipeline_writes", &self.state.pipeline_writes)
            .field("max_body", &self.state.max_body)
            .finish_non_exhaustive()
    }
}

impl Api {
    /// The API over `engine`, checking tokens with the engine's own issuer and
    /// reading and writing the engine's object store.
    ///
    /// # Errors
    /// [`BuildError::NoTokenIssuer`] when the engine has no token issuer.
    pub fn new(engine: Engine) -> Result<Self, BuildError> {
        let issuer = engine
            .token_issuer()
            .cloned()
            .ok_or(BuildError::NoTokenIssuer)?;
        let objects = engine.object_store().clone();
        Ok(Self {
            state: state::ApiState {
                engine,
                issuer,
                objects,
                pipeline_writes: false,
                max_body: DEFAULT_MAX_BODY_BYTES,
            },
        })
    }

    /// Whether tasks may write and delete their pipeline's objects (default: no,
    /// they may only read them; writes get 403).
    #[must_use]
    pub fn pipeline_object_writes(mut self, allow: bool) -> Self {
        self.state.pipeline_writes = allow;
        self
    }

    /// The largest request body accepted (default [`DEFAULT_MAX_BODY_BYTES`]);
    /// larger ones get 413 and nothing is written. The object store's own limits
    /// apply as well.
    #[must_use]
    pub fn max_body_bytes(mut self, limit: usize) -> Self {
        self.state.max_body = limit;
        self
    }

    /// The API's routes (all under `/api/v1`), to serve on their own or merge into
    /// a host's router (`host.merge(api.router())`).
    pub fn router(&self) -> axum::Router {
        routes::router(self.state.clone())
    }

    /// Serves the API on the Unix socket `<dir>/api.sock` until the returned server
    /// is shut down or dropped. Give the same `dir` to
    /// [`EngineBuilder::api_socket_dir`](gofer_engine::EngineBuilder::api_socket_dir) so
    /// the engine mounts it into the tasks that ask for a token.
    ///
    /// # Errors
    /// [`ServeError`] naming the path that could not be used.
    pub async fn serve_unix(&self, dir: impl AsRef<Path>) -> Result<ApiServer, ServeError> {
        serve::serve_unix(self.router(), dir.as_ref()).await
    }
}

/// A fresh [`RunTokens`] behind an `Arc`, for [`EngineBuilder::token_issuer`](gofer_engine::EngineBuilder::token_issuer).
pub fn run_tokens() -> Arc<RunTokens> {
    Arc::new(RunTokens::new())
}
