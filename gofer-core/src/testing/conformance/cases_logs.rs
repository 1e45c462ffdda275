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

/// Logs followed from the start are complete and ordered per stream, with stdout and
/// stderr kept apart, and the stream ends when the container exits.
pub async fn logs_complete_and_ordered_per_stream(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "logs-follow", |ctx| async move {
        let id = ctx.start(ctx.spec(&w.interleaved, "logs")).await?;
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

/// 10 MiB of output arrives whole and in order, both followed live and read after exit.
pub async fn large_output_arrives_whole(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "big", |ctx| async move {
        let expected = expected_big_output();
        let id = ctx.start(ctx.spec(&w.big_output, "big")).await?;
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
/// streams right up to an immediate exit, is never lost: the first read after the
/// start (a backend may serve it from an attach made before the start) has every
/// byte, stdout and stderr apart, even when the container has exited before the read
/// is opened; a second read (from the engine's log) has the same bytes.
pub async fn first_output_is_never_lost(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "first", |ctx| async move {
        let (want_out, want_err) = expected_burst();
        let id = ctx.start(ctx.spec(&w.burst, "first")).await?;
        // Let the container finish before its output is asked for.
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the container ended with {status:?}")
        })?;
        for read in ["first read", "second read"] {
            let (out, err) = ctx.output(&id).await?;
            compare_big(&out, &want_out, &format!("stdout, {read}"))?;
            compare_big(&err, &want_err, &format!("stderr, {read}"))?;
        }
        Ok(())
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
