//! Cases for named volumes ([`Capabilities::volumes`](crate::Capabilities::volumes)):
//! their life cycle, and files shared through one.

use super::support::{ensure, run_case, text, within, Ctx};
use super::workloads::Workloads;
use crate::error::SchedulerError;
use crate::mount::Mount;
use crate::scheduler::DynScheduler;
use crate::volume::VolumeSpec;

/// Where the volume cases mount their volume.
pub const VOLUME_TARGET: &str = "/gofer-conformance";

fn skip(s: &DynScheduler) -> bool {
    if s.capabilities().volumes {
        return false;
    }
    println!("skipped: {} has no volumes", s.name());
    true
}

async fn create(ctx: &Ctx<'_>, name: &str) -> Result<(), String> {
    within(
        "create_volume",
        ctx.s
            .create_volume(VolumeSpec::new(name).labels(ctx.labels())),
    )
    .await?
    .map_err(|e| format!("create_volume {name}: {e}"))
}

/// A volume is made (again without error, with the same labels), listed by its labels,
/// refused removal while a container mounts it, removed, and then gone; a bad name is
/// an `InvalidRequest` naming the field.
pub async fn volume_life_cycle(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    if skip(s) {
        return Ok(());
    }
    run_case(s, "volume_life", |ctx: Ctx<'_>| async move {
        let name = ctx.name("vol");
        create(&ctx, &name).await?;
        create(&ctx, &name)
            .await
            .map_err(|e| format!("a second create: {e}"))?;
        let listed = within("list_volumes", ctx.s.list_volumes(&ctx.labels()))
            .await?
            .map_err(|e| format!("list_volumes: {e}"))?;
        ensure(listed.len() == 1 && listed[0].name == name, || {
            format!("list_volumes found {listed:?}, expected only {name}")
        })?;
        ensure(listed[0].labels == ctx.labels(), || {
            format!("the volume's labels are {:?}", listed[0].labels)
        })?;
        let spec = ctx
            .spec(w.exit_code(0)?, "user")
            .mount(Mount::volume(name.clone(), VOLUME_TARGET));
        let id = ctx.start(spec).await?;
        ctx.wait(&id).await?;
        let busy = within("remove_volume", ctx.s.remove_volume(&name)).await?;
        ensure(matches!(busy, Err(SchedulerError::Conflict { .. })), || {
            format!("removing a volume a container mounts gave {busy:?}, expected Conflict")
        })?;
        within("remove", ctx.s.remove(&id, true))
            .await?
            .map_err(|e| format!("remove: {e}"))?;
        within("remove_volume", ctx.s.remove_volume(&name))
            .await?
            .map_err(|e| format!("remove_volume: {e}"))?;
        let again = within("remove_volume", ctx.s.remove_volume(&name)).await?;
        ensure(
            matches!(again, Err(SchedulerError::NoSuchContainer { .. })),
            || format!("removing a removed volume gave {again:?}, expected NoSuchContainer"),
        )?;
        let left = within("list_volumes", ctx.s.list_volumes(&ctx.labels()))
            .await?
            .map_err(|e| format!("list_volumes: {e}"))?;
        ensure(left.is_empty(), || format!("volumes left: {left:?}"))?;
        let bad = within(
            "create_volume",
            ctx.s
                .create_volume(VolumeSpec::new("-bad/name").labels(ctx.labels())),
        )
        .await?;
        ensure(
            matches!(
                bad,
                Err(SchedulerError::InvalidRequest { field: "name", .. })
            ),
            || format!("a bad volume name gave {bad:?}, expected InvalidRequest for `name`"),
        )
    })
    .await
}

/// A file one container writes into a volume is read by the next container mounting
/// it.
pub async fn volume_is_shared_between_containers(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    if skip(s) {
        return Ok(());
    }
    let Some((writer, reader)) = &w.volume_share else {
        println!("skipped: no volume workloads for {}", s.name());
        return Ok(());
    };
    run_case(s, "volume_share", |ctx: Ctx<'_>| async move {
        let name = ctx.name("vol");
        create(&ctx, &name).await?;
        let mount = Mount::volume(name.clone(), VOLUME_TARGET);
        let id = ctx
            .start(ctx.spec(writer, "writer").mount(mount.clone()))
            .await?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the writer ended with {status:?}")
        })?;
        let id = ctx.start(ctx.spec(reader, "reader").mount(mount)).await?;
        let (out, err) = ctx.output(&id).await?;
        ensure(text(&out).trim_end() == "shared", || {
            format!(
                "the reader printed {:?} (stderr {:?}), expected `shared`",
                text(&out),
                text(&err)
            )
        })
    })
    .await
}
