//! The [`TokenIssuer`] trait: per-run API tokens for `GOFER_API_TOKEN`.

use std::fmt;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::BoxError;

/// Issues the API token a run's tasks get as `GOFER_API_TOKEN` (when a task asks with
/// `inject_api_token`).
///
/// Contract: [`TokenIssuer::issue`] returns a token unique to the run; the executor calls
/// it at most once per run, only when some task asks for a token, and calls
/// [`TokenIssuer::revoke`] with that token once the run has ended (whatever its status,
/// also when it was cancelled). Errors must not hold the token.
#[async_trait]
pub trait TokenIssuer: fmt::Debug + Send + Sync + 'static {
    /// Issues a token for one run.
    ///
    /// # Errors
    /// Any error; tasks that asked for a token then fail with reason
    /// `FailedPrecondition`.
    async fn issue(&self, pipeline: &str, run: u64) -> Result<SecretString, BoxError>;

    /// Revokes the token issued for the run.
    ///
    /// # Errors
    /// Any error; it is logged, the run's result does not change.
    async fn revoke(&self, pipeline: &str, run: u64, token: SecretString) -> Result<(), BoxError>;

    /// The token of a run resumed by `gofer_engine::Engine::recover`
    /// after a host restart: the one issued before, which the run's containers
    /// already hold, made valid again — when the issuer can give it again. The
    /// engine then masks it in the logs it reads again. `None` (the default): the
    /// engine issues a new token; containers that kept running through the restart
    /// still hold the old one, which then neither works nor can be masked in their
    /// logs read again (the engine warns).
    ///
    /// # Errors
    /// Any error; the engine then issues a new token, as for `None`.
    async fn resume(&self, pipeline: &str, run: u64) -> Result<Option<SecretString>, BoxError> {
        let _ = (pipeline, run);
        Ok(None)
    }

    /// The run a presented token was issued for, while it is valid (issued and not
    /// yet revoked); `None` for any other string. An API serving tasks asks this.
    ///
    /// Contract: the comparison must not leak, through its timing, how much of a
    /// valid token the presented one matches. The default knows no token (an issuer
    /// whose tokens another service checks).
    async fn verify(&self, token: &str) -> Option<TokenGrant> {
        let _ = token;
        None
    }
}

/// What a valid token grants: exactly one run of one pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct TokenGrant {
    /// The pipeline id.
    pub pipeline: String,
    /// The run number.
    pub run: u64,
}

impl TokenGrant {
    /// A grant of one run.
    pub fn new(pipeline: impl Into<String>, run: u64) -> Self {
        Self {
            pipeline: pipeline.into(),
            run,
        }
    }
}
