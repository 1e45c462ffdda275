//! Wiring the engine: the container engine, the stores, the log sink, one instance
//! slot.

use std::sync::Arc;
use std::time::Duration;

use gofer_api::{Api, ApiServer, RunTokens};
use gofer_core::secrecy::{ExposeSecret, SecretBox};
use gofer_core::{DynObjectStore, DynRunStore, DynScheduler, DynSecretStore};
use gofer_engine::{Engine, Limits};
use gofer_scheduler_containerd::ContainerdScheduler;
use gofer_scheduler_docker::DockerScheduler;
use gofer_scheduler_podman::PodmanScheduler;
use gofer_scheduler_swarm::{SwarmConfig, SwarmScheduler};

use crate::cli::EngineChoice;
use crate::error::CliError;
use crate::home::Home;
use crate::slots::Slot;

/// Connects to the container engine: Docker when reachable, else Podman, else
/// containerd, or the one named (a swarm only when named).
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
    if matches!(choice, EngineChoice::Auto | EngineChoice::Containerd) {
        match ContainerdScheduler::connect_default().await {
            Ok(c) => return Ok(Arc::new(c)),
            Err(e) => tried.push(format!("containerd: {e}")),
        }
    }
    if choice == EngineChoice::Swarm {
        let mut config = SwarmConfig::new();
        if let Some(host) = std::env::var("GOFER_SWARM_HOST")
            .ok()
            .filter(|h| !h.is_empty())
        {
            config = config.host(host);
        }
        match SwarmScheduler::connect(config).await {
            Ok(s) => return Ok(Arc::new(s)),
            Err(e) => tried.push(format!("swarm: {e}")),
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
        Some(n) if n == gofer_scheduler_containerd::NAME => EngineChoice::Containerd,
        Some(n) if n == gofer_scheduler_swarm::NAME => EngineChoice::Swarm,
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
    /// The key run tokens derive from ([`Home::stores_and_token_key`]).
    pub token_key: Arc<SecretBox<[u8; 32]>>,
}

impl Stores {
    /// Opens the three stores of `home`.
    ///
    /// # Errors
    /// As [`Home::run_store`], [`Home::secret_store`], [`Home::object_store`].
    pub async fn open(home: &Home) -> Result<Self, CliError> {
        let (runs, secrets, token_key) = home.stores_and_token_key().await?;
        Ok(Self {
            runs,
            secrets,
            objects: home.object_store().await?,
            token_key: Arc::new(token_key),
        })
    }
}

/// Builds the engine of one slot; with `sandbox_image`, every run gets a network
/// sandbox of that image (what services need).
///
/// # Errors
/// [`CliError::Engine`].
pub fn build(
    scheduler: Arc<DynScheduler>,
    home: &Home,
    stores: &Stores,
    slot: &Slot,
    grace: Duration,
    sandbox_image: Option<&str>,
) -> Result<Engine, CliError> {
    let local_binds = scheduler.capabilities().local_bind_mounts;
    let mut builder = Engine::builder(scheduler)
        .run_store(stores.runs.clone())
        .secret_store(stores.secrets.clone())
        .object_store(stores.objects.clone())
        .log_sink(Arc::new(home.log_sink()))
        // `gofer run` serves the API on this instance's socket (gofer-api checks
        // the issuer's tokens).
        .token_issuer(Arc::new(RunTokens::keyed(SecretBox::init_with_mut(
            |k: &mut [u8; 32]| k.copy_from_slice(stores.token_key.expose_secret()),
        ))))
        .limits(Limits::default().stop_grace(grace))
        .secret_registry(crate::logging::registry())
        .instance_id(slot.id());
    if local_binds {
        builder = builder.api_socket_dir(home.api_dir(slot.id()));
    }
    if let Some(image) = sandbox_image {
        builder = builder.network_sandbox(image);
    }
    Ok(builder.build()?)
}

/// Serves the API (crate `gofer-api`) on the engine's socket, so tasks with
/// `inject_api_token` can call it with their `GOFER_API_TOKEN`. Not served when the
/// engine has no socket directory (a backend without local bind mounts).
///
/// # Errors
/// [`CliError::Api`] when the socket cannot be served and `pipeline` has a task that
/// asks for a token; for other pipelines a failure only means no API (nothing asks).
pub async fn serve_api(
    engine: &Engine,
    pipeline: &gofer_core::Pipeline,
) -> Result<Option<ApiServer>, CliError> {
    let Some(dir) = engine.api_socket_dir() else {
        return Ok(None);
    };
    let api = Api::new(engine.clone()).map_err(|e| CliError::Usage(e.to_string()))?;
    match api.serve_unix(dir).await {
        Ok(server) => Ok(Some(server)),
        Err(e) if pipeline.tasks.iter().any(|t| t.inject_api_token) => Err(e.into()),
        Err(e) => {
            tracing::debug!(error = %e, "API not served; no task asks for a token");
            Ok(None)
        }
    }
}

/// Stops the API server and removes its socket and directory.
pub async fn stop_api(server: Option<ApiServer>) {
    if let Some(server) = server {
        let dir = server
            .socket_path()
            .parent()
            .map(std::path::Path::to_path_buf);
        if let Err(e) = server.shutdown().await {
            tracing::warn!(error = %e, "the API server failed");
        }
        if let Some(dir) = dir {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
