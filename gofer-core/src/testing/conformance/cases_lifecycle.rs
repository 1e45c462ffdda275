//! Cases about the container state machine: stop, wait, remove, names, listing.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::StreamExt;
use tokio::time::Instant;

use super::support::{ensure, run_case, text, within};
use super::workloads::{Workload, Workloads};
use crate::error::SchedulerError;
use crate::scheduler::{ContainerId, ContainerState, DynScheduler, ExitStatus};

/// The grace period of the stop cases.
pub const STOP_GRACE: Duration = Duration::from_secs(2);
/// How much longer than the grace period a stop may take (the one timed check). It is
/// a bound that proves the kill came (a process ignoring SIGTERM would run for
/// minutes otherwise), not a speed target: generous enough for a loaded 2-core machine.
pub const STOP_SLACK: Duration = Duration::from_secs(3);

/// A TERM-trapping process exits on its own during the grace period (exit 0, its
/// handler ran), and the stop returns within grace + [`Workloads::stop_slack`] (3 s by default).
pub async fn stop_lets_term_trapping_process_exit(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "stop-trap", |ctx| async move {
        let id = ctx
            .start(ctx.spec(&w.trap_term, "trap").stop_grace(STOP_GRACE))
            .await?;
        ctx.stdout_until(&id, "ready").await?;
        let began = Instant::now();
        within("stop", ctx.s.stop(&id, STOP_GRACE))
            .await?
            .map_err(|e| format!("stop: {e}"))?;
        let took = began.elapsed();
        ensure(took <= STOP_GRACE + w.stop_slack, || {
            format!("stop with grace {STOP_GRACE:?} took {took:?}")
        })?;
        let status = ctx.wait(&id).await?;
        ensure(status == ExitStatus::Exited { code: 0 }, || {
            format!("the TERM-trapping process should exit 0 by itself, got {status:?}")
        })?;
        let (out, _) = ctx.output(&id).await?;
        ensure(text(&out).contains("term"), || {
            format!("the TERM handler did not run; stdout: {:?}", text(&out))
        })
    })
    .await
}

/// A TERM-ignoring process is killed after the grace period (exit 137), not before
/// and not more than [`Workloads::stop_slack`] (3 s by default) after.
pub async fn stop_kills_term_ignoring_process_after_grace(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "stop-ignore", |ctx| async move {
        let id = ctx
            .start(ctx.spec(&w.ignore_term, "ignore").stop_grace(STOP_GRACE))
            .await?;
        ctx.stdout_until(&id, "ready").await?;
        let began = Instant::now();
        within("stop", ctx.s.stop(&id, STOP_GRACE))
            .await?
            .map_err(|e| format!("stop: {e}"))?;
        let took = began.elapsed();
        ensure(
            took >= STOP_GRACE && took <= STOP_GRACE + w.stop_slack,
            || format!("stop with grace {STOP_GRACE:?} of a TERM-ignoring process took {took:?}"),
        )?;
        let status = ctx.wait(&id).await?;
        ensure(status == ExitStatus::Exited { code: 137 }, || {
            format!("the TERM-ignoring process should be killed (137), got {status:?}")
        })
    })
    .await
}

/// With [`Capabilities::per_stop_grace`](crate::Capabilities::per_stop_grace), the
/// grace of the stop call wins over the one known at create: a TERM-ignoring process
/// made with a grace of a minute and stopped with [`STOP_GRACE`] is killed after
/// [`STOP_GRACE`], not before and not more than [`Workloads::stop_slack`] after.
pub async fn stop_honours_the_grace_of_each_call(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    if !s.capabilities().per_stop_grace {
        println!(
            "skipped: {} fixes the stop grace at create (the stop cases prove that one)",
            s.name()
        );
        return Ok(());
    }
    run_case(s, "stop-call-grace", |ctx| async move {
        let spec = ctx
            .spec(&w.ignore_term, "ignore")
            .stop_grace(Duration::from_secs(60));
        let id = ctx.start(spec).await?;
        ctx.stdout_until(&id, "ready").await?;
        let began = Instant::now();
        within("stop", ctx.s.stop(&id, STOP_GRACE))
            .await?
            .map_err(|e| format!("stop: {e}"))?;
        let took = began.elapsed();
        ensure(
            took >= STOP_GRACE && took <= STOP_GRACE + w.stop_slack,
            || {
                format!(
                    "stop with grace {STOP_GRACE:?} of a container made with 60 s took {took:?}"
                )
            },
        )?;
        let status = ctx.wait(&id).await?;
        ensure(status == ExitStatus::Exited { code: 137 }, || {
            format!("the TERM-ignoring process should be killed (137), got {status:?}")
        })
    })
    .await
}

/// Waiting on an exited container returns at once, again and again; stopping it is
/// not an error and changes nothing.
pub async fn wait_on_exited_returns_at_once(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "wait-exited", |ctx| async move {
        let id = ctx.start(ctx.spec(w.exit_code(3)?, "exited")).await?;
        let first = ctx.wait(&id).await?;
        for _ in 0..2 {
            let again = tokio::time::timeout(Duration::from_secs(10), ctx.s.wait(&id))
                .await
                .map_err(|_| "wait on an exited container did not return at once".to_string())?
                .map_err(|e| format!("wait: {e}"))?;
            ensure(again == first, || {
                format!("first wait {first:?}, then {again:?}")
            })?;
        }
        ctx.s
            .stop(&id, Duration::from_secs(1))
            .await
            .map_err(|e| format!("stop of an exited container: {e}"))?;
        let state = ctx.s.state(&id).await.map_err(|e| format!("state: {e}"))?;
        ensure(state == ContainerState::Exited { status: first }, || {
            format!("after stop of an exited container, state is {state:?}")
        })
    })
    .await
}

/// A container removed while waited on ends the wait: with
/// [`ExitStatus::Removed`], or with the kill (137) on engines that kill first.
pub async fn wait_ends_when_container_removed(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "wait-removed", |ctx| async move {
        let id = ctx.start(ctx.spec(&w.run_until_stopped, "removed")).await?;
        let remover = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ctx.s.remove(&id, true).await
        };
        let (waited, removed) = within(
            "wait and remove",
            futures::future::join(ctx.s.wait(&id), remover),
        )
        .await?;
        removed.map_err(|e| format!("force remove: {e}"))?;
        let status = waited.map_err(|e| format!("wait: {e}"))?;
        ensure(
            matches!(
                status,
                ExitStatus::Removed | ExitStatus::Exited { code: 137 }
            ),
            || format!("wait on a removed container reported {status:?}"),
        )
    })
    .await
}

fn is_no_such<T: std::fmt::Debug>(r: &Result<T, SchedulerError>) -> bool {
    matches!(r, Err(SchedulerError::NoSuchContainer { .. }))
}

/// Removal leaves nothing behind: state, wait, logs, stop and a second remove give
/// `NoSuchContainer` and the label lists nothing.
pub async fn remove_leaves_nothing_behind(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "remove", |ctx| async move {
        let id = ctx.start(ctx.spec(&w.run_until_stopped, "stopped")).await?;
        ctx.s
            .stop(&id, Duration::from_secs(1))
            .await
            .map_err(|e| format!("stop: {e}"))?;
        ctx.s
            .remove(&id, false)
            .await
            .map_err(|e| format!("remove of a stopped container: {e}"))?;
        let forced = ctx.start(ctx.spec(&w.run_until_stopped, "forced")).await?;
        ctx.s
            .remove(&forced, true)
            .await
            .map_err(|e| format!("force remove: {e}"))?;
        for id in [&id, &forced] {
            check_gone(&ctx.s, id).await?;
        }
        let listed = ctx
            .s
            .list(&ctx.labels())
            .await
            .map_err(|e| format!("list: {e}"))?;
        ensure(listed.is_empty(), || {
            format!("removed containers are still listed: {listed:?}")
        })
    })
    .await
}

async fn check_gone(s: &&DynScheduler, id: &ContainerId) -> Result<(), String> {
    let state = s.state(id).await;
    ensure(is_no_such(&state), || {
        format!("state of removed {id}: {state:?}")
    })?;
    let wait = s.wait(id).await;
    ensure(is_no_such(&wait), || {
        format!("wait on removed {id}: {wait:?}")
    })?;
    // A backend may report an unknown id when the stream is opened or as its first item.
    let logs = match s.logs(id).await {
        Ok(mut stream) => match stream.next().await {
            Some(Err(e)) => Err(e),
            Some(Ok(chunk)) => Ok(Some(chunk)),
            None => Ok(None),
        },
        Err(e) => Err(e),
    };
    ensure(is_no_such(&logs), || {
        format!("logs of removed {id}: {logs:?}")
    })?;
    let stop = s.stop(id, Duration::from_secs(1)).await;
    ensure(is_no_such(&stop), || {
        format!("stop of removed {id}: {stop:?}")
    })?;
    let remove = s.remove(id, true).await;
    ensure(is_no_such(&remove), || {
        format!("second remove of {id}: {remove:?}")
    })
}

/// An unknown id gives `NoSuchContainer` from every operation.
pub async fn unknown_container_is_no_such_container(
    s: &DynScheduler,
    _w: &Workloads,
) -> Result<(), String> {
    run_case(s, "unknown", |ctx| async move {
        check_gone(&ctx.s, &ContainerId(ctx.name("never-created"))).await
    })
    .await
}

/// Removing a running container without force is a `Conflict` and leaves it running.
pub async fn remove_running_without_force_conflicts(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "remove-running", |ctx| async move {
        let id = ctx.start(ctx.spec(&w.run_until_stopped, "running")).await?;
        let r = ctx.s.remove(&id, false).await;
        ensure(matches!(r, Err(SchedulerError::Conflict { .. })), || {
            format!("remove of a running container without force: expected Conflict, got {r:?}")
        })?;
        let state = ctx.s.state(&id).await.map_err(|e| format!("state: {e}"))?;
        ensure(state == ContainerState::Running, || {
            format!("after a refused remove, state is {state:?}")
        })
    })
    .await
}

/// Starting a second container with a name in use is a `Conflict` and leaves the
/// first one alone.
pub async fn duplicate_name_conflicts(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "duplicate", |ctx| async move {
        let spec = ctx.spec(&w.run_until_stopped, "dup");
        let id = ctx.start(spec.clone()).await?;
        let r = ctx.s.start(spec).await;
        ensure(matches!(r, Err(SchedulerError::Conflict { .. })), || {
            format!("second start of the same name: expected Conflict, got {r:?}")
        })?;
        let state = ctx.s.state(&id).await.map_err(|e| format!("state: {e}"))?;
        ensure(state == ContainerState::Running, || {
            format!("after a conflicting start, the first container is {state:?}")
        })?;
        let listed = ctx
            .s
            .list(&ctx.labels())
            .await
            .map_err(|e| format!("list: {e}"))?;
        ensure(listed.len() == 1 && listed[0].id == id, || {
            format!("expected only the first container, list found {listed:?}")
        })
    })
    .await
}

/// Listing by labels finds exactly the containers carrying all of them, running or
/// exited, with their names and labels.
pub async fn list_by_label_finds_exactly_labelled(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "list", |ctx| async move {
        let group = "dev.gofer.conformance.group";
        let mut want_a = BTreeSet::new();
        let mut ids = Vec::new();
        for (i, workload) in [&w.run_until_stopped, w.exit_code(0)?, &w.run_until_stopped]
            .into_iter()
            .enumerate()
        {
            let spec = ctx.spec(workload, &format!("a{i}")).label(group, "a");
            want_a.insert(spec.name.clone());
            ids.push(ctx.start(spec).await?);
        }
        // The listing tells each container's state: a1 has exited, the others run.
        ctx.wait(&ids[1]).await?;
        for i in 0..2 {
            ctx.start(
                ctx.spec(&w.run_until_stopped, &format!("b{i}"))
                    .label(group, "b"),
            )
            .await?;
        }
        let mut by_a = ctx.labels();
        by_a.insert(group.to_string(), "a".to_string());
        let found = ctx.s.list(&by_a).await.map_err(|e| format!("list: {e}"))?;
        let names: BTreeSet<String> = found
            .iter()
            .map(|c| c.name.trim_start_matches('/').to_string())
            .collect();
        ensure(names == want_a, || {
            format!("list by group a found {names:?}, expected {want_a:?}")
        })?;
        ensure(
            found
                .iter()
                .all(|c| c.labels.get(group).map(String::as_str) == Some("a")),
            || format!("listed containers lack their labels: {found:?}"),
        )?;
        for c in &found {
            let want = if c.id == ids[1] {
                ContainerState::Exited {
                    status: ExitStatus::Exited { code: 0 },
                }
            } else {
                ContainerState::Running
            };
            ensure(c.state == want, || {
                format!(
                    "list reports {} as {:?}, expected {want:?}",
                    c.name, c.state
                )
            })?;
        }
        let all = ctx
            .s
            .list(&ctx.labels())
            .await
            .map_err(|e| format!("list: {e}"))?;
        ensure(all.len() == 5, || {
            format!("list by the run label found {} of 5", all.len())
        })?;
        let mut by_c = ctx.labels();
        by_c.insert(group.to_string(), "c".to_string());
        let none = ctx.s.list(&by_c).await.map_err(|e| format!("list: {e}"))?;
        ensure(none.is_empty(), || {
            format!("list by an unused label value found {none:?}")
        })
    })
    .await
}

/// `start_created` never runs a container a second time: on a container that already
/// ran it changes nothing (its output stays as it was), and an unknown id is
/// `NoSuchContainer`. A backend may not support it (`NotSupported`): recovery then
/// records such a task as orphaned instead of starting it.
pub async fn start_created_never_runs_twice(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "start-created", |ctx| async move {
        let once = Workload::new(w.image.clone()).command(["echo", "once"]);
        let id = ctx.start(ctx.spec(&once, "once")).await?;
        let first = ctx.wait(&id).await?;
        match ctx.s.start_created(&id).await {
            Err(SchedulerError::NotSupported { .. }) => return Ok(()),
            Err(e) => return Err(format!("start_created of an exited container: {e}")),
            Ok(()) => {}
        }
        let again = ctx.wait(&id).await?;
        ensure(again == first, || {
            format!("exit {first:?} became {again:?} after start_created")
        })?;
        let (out, _) = ctx.output(&id).await?;
        ensure(text(&out) == "once\n", || {
            format!("the container ran again: its output is {:?}", text(&out))
        })?;
        match ctx
            .s
            .start_created(&ContainerId(ctx.name("never-created")))
            .await
        {
            Err(SchedulerError::NoSuchContainer { .. }) => Ok(()),
            other => Err(format!("start_created of an unknown id gave {other:?}")),
        }
    })
    .await
}
