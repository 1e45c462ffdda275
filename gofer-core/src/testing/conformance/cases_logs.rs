//! Cases about output: order, separation, size, availability after exit.

use super::support::{ensure, run_case, text, Ctx};
use super::workloads::{expected_big_output, expected_burst, Workloads, INTERLEAVED_LINES};
use crate::scheduler::{ContainerId, DynScheduler};

fn expected_lines(prefix: &str) -> String {
    (1..=INTERLEAVED_LINES)
        .map(|i| format!("{prefix}-{i}\n"))
        .collect()
}

async fn check_interleaved(ctx: &Ctx<'_>, id: &ContainerId, when: &str) -> Result<(), String> {
    let (out, err) = ctx.output(id).await?;
    ensure(text(&out) == expected_lines("out"), || {
        format!(
            "stdout read {when} is incomplete or out of order: {:?}",
            text(&out)
        )
    })?;
    ensure(text(&err) == expected_lines("err"), || {
        format!(
            "stderr read {when} is incomplete or out of order: {:?}",
            text(&err)
        )
    })
}

/// Logs followed from the start (of a container started with
/// [`attach_output`](crate::ContainerSpec::attach_output)) are complete and ordered per
/// stream, with stdout and stderr kept apart, and the stream ends when the container
/// exits.
pub async fn logs_complete_and_ordered_per_stream(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "logs-follow", |ctx| async move {
        let id = ctx
            .start(ctx.spec(&w.interleaved, "logs").attach_output(true))
            .await?;
        check_interleaved(&ctx, &id, "while following").await?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the container ended with {status:?}")
        })
    })
    .await
}

/// Logs opened after the exit return everything from the start, more than once.
pub async fn logs_readable_after_exit(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "logs-after", |ctx| async move {
        let id = ctx.start(ctx.spec(&w.interleaved, "logs")).await?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the container ended with {status:?}")
        })?;
        check_interleaved(&ctx, &id, "after exit").await?;
        check_interleaved(&ctx, &id, "after exit, a second time").await
    })
    .await
}

/// 10 MiB of output arrives whole and in order, both followed live (the first read of
/// a container started with [`attach_output`](crate::ContainerSpec::attach_output))
/// and read after exit.
pub async fn large_output_arrives_whole(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "big", |ctx| async move {
        let expected = expected_big_output();
        let id = ctx
            .start(ctx.spec(&w.big_output, "big").attach_output(true))
            .await?;
        let (out, err) = ctx.output(&id).await?;
        compare_big(&out, &expected, "followed")?;
        ensure(err.is_empty(), || {
            format!("unexpected stderr: {:?}", text(&err))
        })?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the container ended with {status:?}")
        })?;
        let (out, _) = ctx.output(&id).await?;
        compare_big(&out, &expected, "read after exit")
    })
    .await
}

/// Output printed in the container's first millisecond, and a burst of lines on both
/// streams right up to an immediate exit, is never lost: the first read after a start
/// with [`attach_output`](crate::ContainerSpec::attach_output) (a backend may serve it
/// from an attach made before the start) has every
/// byte, stdout and stderr apart, although the container printed before the read was
/// opened; a read after the exit (from the engine's log) has the same bytes.
pub async fn first_output_is_never_lost(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "first", |ctx| async move {
        let (want_out, want_err) = expected_burst();
        let id = ctx
            .start(ctx.spec(&w.burst, "first").attach_output(true))
            .await?;
        let (out, err) = ctx.output(&id).await?;
        compare_big(&out, &want_out, "stdout, first read")?;
        compare_big(&err, &want_err, "stderr, first read")?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the container ended with {status:?}")
        })?;
        let (out, err) = ctx.output(&id).await?;
        compare_big(&out, &want_out, "stdout, read after exit")?;
        compare_big(&err, &want_err, "stderr, read after exit")
    })
    .await
}

fn compare_big(got: &[u8], expected: &[u8], how: &str) -> Result<(), String> {
    if got == expected {
        return Ok(());
    }
    let at = got
        .iter()
        .zip(expected)
        .position(|(a, b)| a != b)
        .unwrap_or(got.len().min(expected.len()));
    let from = at.saturating_sub(40);
    Err(format!(
        "large output {how}: got {} bytes, expected {}; first difference at byte {at}: got {:?}, expected {:?}",
        got.len(),
        expected.len(),
        text(&got[from..got.len().min(at + 40)]),
        text(&expected[from..expected.len().min(at + 40)]),
    ))
}
