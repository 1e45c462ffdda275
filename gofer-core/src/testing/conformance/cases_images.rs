//! Cases about images and pull policies.

use super::support::{ensure, run_case, Ctx};
use super::workloads::{Workload, Workloads};
use crate::error::SchedulerError;
use crate::scheduler::DynScheduler;
use crate::task::{PullPolicy, RegistryAuth};

async fn expect_no_such_image(
    ctx: &Ctx<'_>,
    policy: PullPolicy,
    suffix: &str,
    image: &str,
) -> Result<(), String> {
    let spec = ctx.spec(&Workload::new(image), suffix).pull_policy(policy);
    let name = spec.name.clone();
    let result = ctx.s.start(spec).await;
    ensure(
        matches!(result, Err(SchedulerError::NoSuchImage { .. })),
        || {
            format!("start of absent image {image:?} with {policy:?}: expected NoSuchImage, got {result:?}")
        },
    )?;
    let state = ctx.s.state(&name.as_str().into()).await;
    ensure(
        matches!(state, Err(SchedulerError::NoSuchContainer { .. })),
        || format!("a failed start left container {name} behind: {state:?}"),
    )
}

/// A missing image gives `NoSuchImage` (with `IfNotPresent` and `Always`), and no
/// container is left behind.
pub async fn missing_image_is_no_such_image(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "missing-image", |ctx| async move {
        expect_no_such_image(&ctx, PullPolicy::IfNotPresent, "ifnp", &w.absent_image).await?;
        expect_no_such_image(&ctx, PullPolicy::Always, "always", &w.absent_image).await?;
        let listed = ctx
            .s
            .list(&ctx.labels())
            .await
            .map_err(|e| format!("list: {e}"))?;
        ensure(listed.is_empty(), || {
            format!("failed starts left containers: {listed:?}")
        })
    })
    .await
}

/// Pull policy `Never` with an absent image fails with `NoSuchImage`.
pub async fn pull_never_with_absent_image_fails(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "pull-never", |ctx| async move {
        expect_no_such_image(&ctx, PullPolicy::Never, "never", &w.absent_image).await
    })
    .await
}

/// `IfNotPresent` does not pull an image that is present: the local-only image
/// cannot be pulled, so a successful run proves no pull was tried. `Never` runs it too.
pub async fn if_not_present_does_not_pull_present_image(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "if-not-present", |ctx| async move {
        for (policy, suffix) in [
            (PullPolicy::IfNotPresent, "ifnp"),
            (PullPolicy::Never, "never"),
        ] {
            let spec = ctx.spec(&w.local_only, suffix).pull_policy(policy);
            let id = ctx.start(spec).await?;
            let status = ctx.wait(&id).await?;
            ensure(status.success(), || {
                format!("the local-only container under {policy:?} ended with {status:?}")
            })?;
        }
        Ok(())
    })
    .await
}

/// A registry that requires credentials refuses a pull without them or with wrong
/// ones (`Unauthorized`, nothing left behind) and serves it with the right ones.
/// Skipped without [`Capabilities::registry_auth`](crate::Capabilities::registry_auth)
/// or a [`Workloads::private_image`].
pub async fn registry_credentials_are_honoured(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    let Some((image, auth)) = &w.private_image else {
        println!("skipped: the workloads have no private registry image");
        return Ok(());
    };
    if !s.capabilities().registry_auth {
        println!("skipped: {} does not send registry credentials", s.name());
        return Ok(());
    }
    run_case(s, "registry-auth", |ctx| async move {
        let wrong = RegistryAuth::new(auth.username.clone(), "certainly-not-the-password");
        for (suffix, creds) in [("none", None), ("wrong", Some(wrong))] {
            let spec = ctx
                .spec(&Workload::new(image.clone()), suffix)
                .pull_policy(PullPolicy::Always)
                .registry_auth(creds);
            let r = ctx.s.start(spec).await;
            ensure(matches!(r, Err(SchedulerError::Unauthorized { .. })), || {
                format!("pull of {image:?} with {suffix} credentials: expected Unauthorized, got {r:?}")
            })?;
        }
        let listed = ctx.s.list(&ctx.labels()).await.map_err(|e| format!("list: {e}"))?;
        ensure(listed.is_empty(), || format!("refused pulls left containers: {listed:?}"))?;
        let spec = ctx
            .spec(&Workload::new(image.clone()), "right")
            .pull_policy(PullPolicy::Always)
            .registry_auth(Some(auth.clone()));
        let id = ctx.start(spec).await?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || format!("the private image's container ended with {status:?}"))
    })
    .await
}
