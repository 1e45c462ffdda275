//! A run's service containers (see [`gofer_core::Service`]): started in the run's network
//! sandbox before the tasks that need them, probed for readiness with short probe
//! containers, watched while tasks need them, their output kept live in the log sink
//! (like a task's), then stopped and removed once every task of the run has ended.

use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use gofer_core::{
    naming, ContainerId, ContainerSpec, ContainerState, ExitStatus, Mount, NetworkMode, Service,
    Task, WORKSPACE_PATH,
};

use crate::logs::sink::LogKey;
use crate::run::container::guarded;
use crate::run::ctx::RunCtx;
use crate::run::pump::pump;
use crate::run::resolve::{resolve, Lookup};
use crate::run::service_state::{ServiceSenders, ServiceState};

/// A task that is aborted when dropped: a crashed executor's service tasks and log
/// pumps stop with it (a probe's task does not: it removes its container).
struct Aborting<T>(JoinHandle<T>);

impl<T> Drop for Aborting<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A started service: its container and the pump keeping its log.
struct Started {
    id: ContainerId,
    /// Told once the container exited: the pump then stops waiting for more output
    /// than the engine still has.
    exited: Option<oneshot::Sender<()>>,
    /// Why the log is incomplete, when it is.
    pump: Aborting<Option<String>>,
}

/// Where a service's task puts its container once it exists.
type Slot = Arc<Mutex<Option<Started>>>;

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<Started>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The running services of a run, for [`stop_all`].
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    /// The service's index in the pipeline, its task, its container.
    services: Vec<(usize, Aborting<()>, Slot)>,
    /// Held (read) by every probe's task until its container is removed: taken
    /// (write) once the services stopped, so no probe outlives the run's cleanup.
    probes: Probes,
}

/// See [`Running::probes`].
type Probes = Arc<tokio::sync::RwLock<()>>;

/// Starts every needed service of the run, each in a task of its own.
pub(crate) fn start_all(ctx: &Arc<RunCtx>, senders: ServiceSenders) -> Running {
    let (stop, stop_rx) = watch::channel(false);
    let probes = Probes::default();
    let services = senders
        .0
        .into_iter()
        .map(|(j, tx)| {
            let slot = Arc::new(Mutex::new(None));
            let task = tokio::spawn(run_service(
                ctx.clone(),
                j,
                tx,
                stop_rx.clone(),
                slot.clone(),
                probes.clone(),
            ));
            (j, Aborting(task), slot)
        })
        .collect();
    Running {
        stop,
        services,
        probes,
    }
}

/// Stops every service of the run at once (every task has ended), waits until each
/// one's output is in its log, and removes it.
pub(crate) async fn stop_all(ctx: &Arc<RunCtx>, running: Running) {
    let _ = running.stop.send(true);
    let stops = running.services.into_iter().map(|(j, mut task, slot)| {
        let ctx = ctx.clone();
        async move {
            if let Err(e) = (&mut task.0).await {
                warn!(error = %e, "a service's task failed");
            }
            let started = lock(&slot).take();
            let Some(Started {
                id,
                exited,
                mut pump,
            }) = started
            else {
                return;
            };
            let s = ctx.engine.containers.scheduler();
            let grace = ctx.engine.limits.stop_grace;
            if let Err(e) = guarded(s, "stop", s.stop(&id, grace)).await {
                // Not stopped: removed (killed) now, so its output, and the pump,
                // end; what could not be read is reported as the log's loss.
                warn!(container = %id, error = %e, "cannot stop the service; removing it");
                ctx.engine.containers.remove(&id).await;
            }
            if let Some(exited) = exited {
                let _ = exited.send(());
            }
            let incomplete = match (&mut pump.0).await {
                Ok(incomplete) => incomplete,
                Err(e) => Some(format!("the service's log pump failed: {e}")),
            };
            let service = &ctx.plan.pipeline.services[j].id;
            ctx.recorder.service_log_done(service, incomplete).await;
            ctx.engine.containers.remove(&id).await;
        }
    });
    futures::future::join_all(stops).await;
    // Every probe's container is gone before the workspace and sandbox go.
    drop(running.probes.write().await);
}

/// Removes the run's service containers still there after [`stop_all`]: in a resumed
/// run, those kept for adoption that no service took.
pub(crate) async fn remove_unadopted(ctx: &Arc<RunCtx>) {
    let s = ctx.engine.containers.scheduler();
    let mut filter = naming::sandbox_labels(
        &ctx.engine.instance_id,
        &ctx.plan.pipeline.id,
        ctx.plan.run_id,
    );
    filter.insert(naming::LABEL_ROLE.to_string(), "service".to_string());
    match guarded(s, "list", s.list(&filter)).await {
        Ok(left) => {
            for c in left {
                debug!(container = %c.id, "removing a service container no service adopted");
                ctx.engine.containers.remove(&c.id).await;
            }
        }
        Err(e) => {
            warn!(error = %e, "cannot list the run's service containers; the next recovery reaps them")
        }
    }
}

/// The name of a service's container.
fn container_name(ctx: &RunCtx, service: &str) -> String {
    naming::service_container_name(
        &ctx.engine.instance_id,
        &ctx.plan.pipeline.id,
        ctx.plan.run_id,
        service,
    )
}

fn labels(ctx: &RunCtx, service: &str, role: &str) -> std::collections::BTreeMap<String, String> {
    let mut l = naming::sandbox_labels(
        &ctx.engine.instance_id,
        &ctx.plan.pipeline.id,
        ctx.plan.run_id,
    );
    l.insert(naming::LABEL_ROLE.to_string(), role.to_string());
    l.insert(naming::LABEL_SERVICE.to_string(), service.to_string());
    l
}

/// A spec in the run's sandbox (and workspace) for `service`.
fn spec_for(
    ctx: &RunCtx,
    name: String,
    image: &str,
    role: &str,
    service: &Service,
) -> ContainerSpec {
    let mut spec = ContainerSpec::new(name, image.to_string())
        .pull_policy(service.pull_policy)
        .labels(labels(ctx, &service.id, role))
        .init(true);
    if let Some(sandbox) = &ctx.setup.sandbox {
        spec = spec.network(NetworkMode::Sandbox(sandbox.clone()));
    }
    if let Some(volume) = &ctx.setup.workspace {
        spec = spec.mount(Mount::volume(volume.clone(), WORKSPACE_PATH));
    }
    spec
}

async fn run_service(
    ctx: Arc<RunCtx>,
    j: usize,
    tx: watch::Sender<ServiceState>,
    mut stop: watch::Receiver<bool>,
    slot: Slot,
    probes: Probes,
) {
    let service = &ctx.plan.pipeline.services[j];
    let id = &service.id;
    let fail = |why: String| {
        debug!(service = %id, %why, "service failed");
        let _ = tx.send(ServiceState::Failed(why));
    };
    if ctx.setup.sandbox.is_none() {
        return fail(format!(
            "service {id:?} cannot start: services need the engine's network sandbox \
             (EngineBuilder::network_sandbox), which is how tasks reach them on localhost"
        ));
    }
    let engine = &ctx.engine;
    let as_task = Task::new(id.clone(), service.image.clone()).variables(service.variables.clone());
    let lookup = Lookup {
        secrets: &*engine.secrets,
        objects: &*engine.objects,
        pipeline: &ctx.plan.pipeline.id,
        run: ctx.plan.run_id,
        options: &ctx.plan.options,
        placeholders: &ctx.plan.placeholders,
        token: ctx.setup.token.as_ref(),
        // A service gets no API token, so no API socket either.
        api_socket: false,
        attempt: None,
    };
    let resolved = match resolve(&lookup, ctx.plan.pipeline.tasks.len() + j, &as_task).await {
        Ok(r) => r,
        Err(e) => return fail(format!("service {id:?} cannot start: {e}")),
    };
    ctx.secrets.add(resolved.secrets);
    let name = container_name(&ctx, id);
    let mut spec =
        spec_for(&ctx, name.clone(), &service.image, "service", service).env(resolved.env);
    spec.entrypoint = service.entrypoint.clone();
    spec.command = service.command.clone();
    // Seen through even when the run ends meanwhile: a start dropped after the engine
    // got it could leave a container no one knows of. Once it is in the slot,
    // `stop_all` stops and removes it.
    let cid = match engine.containers.start(spec, ctx.plan.recovered).await {
        Ok(cid) => cid,
        Err(e) => return fail(format!("service {id:?} cannot start: {e}")),
    };
    // Its log is kept live from here on, like a task's.
    let (exited_tx, exited_rx) = oneshot::channel();
    let pump = tokio::spawn(keep_log(ctx.clone(), id.clone(), cid.clone(), exited_rx));
    *lock(&slot) = Some(Started {
        id: cid.clone(),
        exited: Some(exited_tx),
        pump: Aborting(pump),
    });
    if *stop.borrow() {
        return;
    }
    let s = engine.containers.scheduler();

    if let Some(readiness) = &service.readiness {
        let started = tokio::time::Instant::now();
        let deadline = started.checked_add(readiness.deadline);
        let mut probe = 0u32;
        let mut last = String::from("no probe finished");
        loop {
            probe += 1;
            let mut pspec = spec_for(
                &ctx,
                format!("{name}.probe-{probe}"),
                &service.image,
                "probe",
                service,
            );
            pspec.command = Some(readiness.command.clone());
            let until = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let ready = tokio::select! {
                r = run_probe(&ctx, pspec, &probes) => match r {
                    Ok(ExitStatus::Exited { code: 0 }) => true,
                    Ok(other) => { last = format!("its readiness command ended with {other:?}"); false }
                    Err(e) => { last = format!("its readiness probe failed: {e}"); false }
                },
                () = until => false,
                _ = stop.wait_for(|s| *s) => return,
            };
            if ready {
                break;
            }
            if let Ok(ContainerState::Exited { status }) = guarded(s, "state", s.state(&cid)).await
            {
                return fail(format!(
                    "service {id:?} exited before it was ready ({status:?})"
                ));
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return fail(format!(
                    "service {id:?} was not ready within {}: {last}",
                    humantime::format_duration(readiness.deadline)
                ));
            }
            tokio::select! {
                () = tokio::time::sleep(readiness.interval) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }
    debug!(service = %id, "ready");
    let _ = tx.send(ServiceState::Ready);
    // Watched while tasks need it: an exit before the run's end fails them.
    let exit = tokio::select! {
        exit = guarded(s, "wait", s.wait(&cid)) => Some(exit),
        _ = stop.wait_for(|s| *s) => None,
    };
    if let Some(exit) = exit {
        if let Some(exited) = lock(&slot).as_mut().and_then(|s| s.exited.take()) {
            let _ = exited.send(());
        }
        if !*stop.borrow() {
            fail(format!(
                "service {id:?} exited while tasks needed it ({exit:?})"
            ));
        }
    }
}

/// Runs one probe container to its end and removes it. The probe lives in a task of
/// its own: when this future is dropped (the deadline, the run's end) the task sees
/// the start through, stops waiting and removes the container, so no probe is left.
async fn run_probe(
    ctx: &Arc<RunCtx>,
    spec: ContainerSpec,
    probes: &Probes,
) -> Result<ExitStatus, String> {
    let engine = ctx.engine.clone();
    let recovered = ctx.plan.recovered;
    let held = probes.clone().read_owned().await;
    // Dropped with this future: the probe's task then stops waiting.
    let (_dropped, gone) = oneshot::channel::<()>();
    let probe = tokio::spawn(async move {
        let s = engine.containers.scheduler();
        let id = engine
            .containers
            .start(spec, recovered)
            .await
            .map_err(|e| e.to_string())?;
        let exit = tokio::select! {
            exit = guarded(s, "wait", s.wait(&id)) => exit.map_err(|e| e.to_string()),
            _ = gone => Err("the probe is no longer awaited".to_string()),
        };
        engine.containers.remove(&id).await;
        drop(held);
        exit
    });
    probe
        .await
        .unwrap_or_else(|e| Err(format!("the probe's task failed: {e}")))
}

/// Keeps the service's output, masked, in its log while it runs and until its output
/// ends; returns why the log is incomplete, when it is.
async fn keep_log(
    ctx: Arc<RunCtx>,
    service: String,
    id: ContainerId,
    exited: oneshot::Receiver<()>,
) -> Option<String> {
    let key = LogKey::service(ctx.plan.pipeline.id.clone(), ctx.plan.run_id, &service);
    let recorder = ctx.recorder.clone();
    let notify: Arc<dyn Fn() + Send + Sync> = Arc::new(move || recorder.log_written());
    let opened = || ctx.recorder.service_log_opened(&service);
    pump(ctx.output(), key, notify, opened, &id, exited).await
}
