//! Wiring the engine: the container engine, the stores, the log sink, one instance
//! slot.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use gofer_core::secrecy::SecretString;
use gofer_core::{
    BoxError, DynObjectStore, DynRunStore, DynScheduler, DynSecretStore, Engine, Limits,
    TokenIssuer,
};
use gofer_scheduler_docker::DockerScheduler;
use gofer_scheduler_podman::PodmanScheduler;

use crate::cli::EngineChoice;
use crate::error::CliError;
use crate::home::Home;
use crate::slots::Slot;

/// Connects to the container engine: Docker when reachable, else Podman, or the one
/// named.
///
/// # Errors
/// [`CliError::NoEngine`] naming what was tried and why it failed.
pub async fn connect(choice: EngineChoice) -> Result<Arc<DynScheduler>, CliError> {
    let mut tried = Vec::new();
    if matches!(choice, EngineChoice::Auto | EngineChoice::Docker) {
        match DockerScheduler::connect_default().await {
            Ok(d) => return Ok(Arc::new(d)),
            Err(e) => tried.push(format!("docker: {e}")),
        }
    }
    if matches!(choice, EngineChoice::Auto | EngineChoice::Podman) {
        match PodmanScheduler::connect_default().await {
            Ok(p) => return Ok(Arc::new(p)),
            Err(e) => tried.push(format!("podman: {e}")),
        }
    }
    Err(CliError::NoEngine {
        tried: tried.join("; "),
    })
}

/// Connects to the engine a slot recorded (`docker`, `podman`), or to `choice` when
/// it recorded none.
///
/// # Errors
/// As [`connect`].
pub async fn connect_recorded(
    recorded: Option<&str>,
    choice: EngineChoice,
) -> Result<Arc<DynScheduler>, CliError> {
    let choice = match recorded {
        Some(n) if n == gofer_scheduler_docker::NAME => EngineChoice::Docker,
        Some(n) if n == gofer_scheduler_podman::NAME => EngineChoice::Podman,
        _ => choice,
    };
    connect(choice).await
}

/// The stores every engine of this process shares.
#[derive(Debug, Clone)]
pub struct Stores {
    /// The run store.
    pub runs: Arc<DynRunStore>,
    /// The secret store.
    pub secrets: Arc<DynSecretStore>,
    /// The object store.
    pub objects: Arc<DynObjectStore>,
}

impl Stores {
    /// Opens the three stores of `home`.
    ///
    /// # Errors
    /// As [`Home::run_store`], [`Home::secret_store`], [`Home::object_store`].
    pub async fn open(home: &Home) -> Result<Self, CliError> {
        Ok(Self {
            runs: home.run_store().await?,
            secrets: home.secret_store().await?,
            objects: home.object_store().await?,
        })
    }
}

/// Builds the engine of one slot.
///
/// # Errors
/// [`CliError::Engine`].
pub fn build(
    scheduler: Arc<DynScheduler>,
    home: &Home,
    stores: &Stores,
    slot: &Slot,
    grace: Duration,
) -> Result<Engine, CliError> {
    Ok(Engine::builder(scheduler)
        .run_store(stores.runs.clone())
        .secret_store(stores.secrets.clone())
        .object_store(stores.objects.clone())
        .log_sink(Arc::new(home.log_sink()))
        .token_issuer(Arc::new(LocalTokenIssuer))
        .limits(Limits::default().stop_grace(grace))
        .instance_id(slot.id())
        .build()?)
}

/// Issues a random token per run for tasks that ask for `GOFER_API_TOKEN`.
///
/// There is no gofer API server yet that could check it: the token lets tasks written
/// for Gofer find the variable they expect, and it is masked like any secret.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalTokenIssuer;

#[async_trait]
impl TokenIssuer for LocalTokenIssuer {
    async fn issue(&self, _pipeline: &str, _run: u64) -> Result<SecretString, BoxError> {
        let mut bytes = [0u8; 24];
        getrandom::fill(&mut bytes).map_err(|e| -> BoxError { e.to_string().into() })?;
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(SecretString::from(token))
    }

    async fn revoke(
        &self,
        _pipeline: &str,
        _run: u64,
        _token: SecretString,
    ) -> Result<(), BoxError> {
        Ok(())
    }
}
