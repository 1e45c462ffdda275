//! Runs left by `gofer` processes that died: found by their free slot, finished by
//! the next command.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use gofer_core::DynScheduler;

use gofer_engine::{Engine, RunHandle};

use crate::cli::EngineChoice;
use crate::engine::{self, Stores};
use crate::error::CliError;
use crate::home::Home;
use crate::slots::{self, Slot};

/// A dead process's slot, now held by this process, with the runs it resumed.
#[derive(Debug)]
pub struct Adopted {
    /// The engine of the slot (held until this is dropped).
    pub _engine: Engine,
    /// The slot (held until this is dropped).
    pub _slot: Slot,
    /// The resumed runs.
    pub runs: Vec<RunHandle>,
    /// The API served again on the slot's socket, for the resumed runs' tasks that
    /// kept running (they hold the socket's directory and, with the token key, a
    /// token that works again).
    pub api: Option<gofer_api::ApiServer>,
}

/// Takes every free slot other than `own` that has unfinished runs in the run store,
/// and recovers it (its runs go on in this process). Connects to the container
/// engine only when there is such a slot: the one the slot recorded, else `choice`
/// (`scheduler` caches a connection).
///
/// # Errors
/// The store, the slot files, the container engine or the recovery.
pub async fn adopt(
    home: &Home,
    stores: &Stores,
    choice: EngineChoice,
    scheduler: &mut Option<Arc<DynScheduler>>,
    grace: Duration,
    own: Option<&str>,
) -> Result<Vec<Adopted>, CliError> {
    let prefix = slots::prefix(home.id());
    let ids: BTreeSet<String> = stores
        .runs
        .unfinished_runs()
        .await?
        .into_iter()
        .map(|u| u.spec.engine)
        .filter(|e| slots::is_slot_id(&prefix, e) && Some(e.as_str()) != own)
        .collect();
    let mut adopted = Vec::new();
    for id in ids {
        let Some(slot) = slots::try_take(&home.slots_dir(), &id)? else {
            continue; // a live process holds it
        };
        let recorded = slots::recorded_engine(&home.slots_dir(), &id);
        let s = match scheduler {
            Some(s) if recorded.as_deref().is_none_or(|r| r == s.name()) => s.clone(),
            _ => engine::connect_recorded(recorded.as_deref(), choice).await?,
        };
        if scheduler.is_none() {
            *scheduler = Some(s.clone());
        }
        let sandbox = slots::recorded_sandbox(&home.slots_dir(), &id);
        let engine = engine::build(s, home, stores, &slot, grace, sandbox.as_deref())?;
        let report = engine.recover().await?;
        for r in &report.runs {
            eprintln!(
                "gofer: finishing run {} of pipeline {} left by a gofer process that ended (slot {})",
                r.run_id(),
                r.pipeline_id(),
                slot.id()
            );
        }
        let api = if report.runs.is_empty() {
            None
        } else {
            serve_api(&engine).await
        };
        adopted.push(Adopted {
            _engine: engine,
            _slot: slot,
            runs: report.runs,
            api,
        });
    }
    Ok(adopted)
}

/// The API on an adopted slot's socket; a failure only means the resumed tasks'
/// calls fail (said on standard error).
async fn serve_api(engine: &Engine) -> Option<gofer_api::ApiServer> {
    let dir = engine.api_socket_dir()?;
    let api = match gofer_api::Api::new(engine.clone()) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("gofer: the resumed runs' tasks get no API: {e}");
            return None;
        }
    };
    match api.serve_unix(dir).await {
        Ok(server) => Some(server),
        Err(e) => {
            eprintln!("gofer: the resumed runs' tasks get no API: {e}");
            None
        }
    }
}

/// Stops the APIs of adopted slots and releases the slots.
pub async fn close(adopted: Vec<Adopted>) {
    for a in adopted {
        engine::stop_api(a.api).await;
    }
}

/// Waits until every adopted run is complete; Ctrl-C cancels them (with `grace`).
pub async fn finish(adopted: &[Adopted], grace: Duration) {
    let runs: Vec<&RunHandle> = adopted.iter().flat_map(|a| a.runs.iter()).collect();
    if runs.is_empty() {
        return;
    }
    let all = futures::future::join_all(runs.iter().map(|r| r.wait()));
    tokio::pin!(all);
    tokio::select! {
        _ = &mut all => return,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("gofer: cancelling the runs being finished");
            for r in &runs {
                r.cancel(grace);
            }
        }
    }
    all.await;
}

/// For commands that read history: finishes the runs of dead processes first, so
/// what is shown is their real end.
///
/// # Errors
/// As [`adopt`].
pub async fn settle(home: &Home, stores: &Stores, choice: EngineChoice) -> Result<(), CliError> {
    let grace = Duration::from_secs(10);
    let adopted = adopt(home, stores, choice, &mut None, grace, None).await?;
    finish(&adopted, grace).await;
    close(adopted).await;
    Ok(())
}
