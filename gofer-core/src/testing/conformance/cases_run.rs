//! Cases about what a container sees and reports: environment, command, exit codes,
//! many at once, memory kills, sandboxes.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::SecretString;

use super::support::{ensure, run_case, text, Ctx};
use super::workloads::{Workload, Workloads};
use crate::scheduler::{ContainerState, DynScheduler, ExitStatus, NetworkMode, SandboxSpec};
use crate::task::ResourceLimits;
use crate::variable::EnvValue;

/// The environment the env case sends: awkward values on purpose.
fn awkward_env() -> BTreeMap<String, EnvValue> {
    let plain = |v: &str| EnvValue::Plain(v.to_string());
    BTreeMap::from([
        ("GOFER_CONF_PLAIN".to_string(), plain("value")),
        ("GOFER_CONF_EQUALS".to_string(), plain("a=b==c=")),
        (
            "GOFER_CONF_SPACES".to_string(),
            plain("  two  spaces and trailing  "),
        ),
        (
            "GOFER_CONF_UNICODE".to_string(),
            plain("héllo wörld ✓ 日本語 🚀"),
        ),
        ("GOFER_CONF_EMPTY".to_string(), plain("")),
        (
            "GOFER_CONF_QUOTES".to_string(),
            plain("it's \"quoted\" $HOME `id` \\ back"),
        ),
        (
            "GOFER_CONF_SECRET".to_string(),
            EnvValue::Secret(SecretString::from("s3cr=t value".to_string())),
        ),
        ("gofer_conf_lower".to_string(), plain("lower-case key")),
    ])
}

/// Parses `KEY=VALUE` lines (split at the first `=`).
fn parse_env(out: &[u8]) -> Result<BTreeMap<String, Vec<String>>, String> {
    let text = String::from_utf8(out.to_vec())
        .map_err(|e| format!("the environment printed is not UTF-8: {e}"))?;
    let mut env: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    Ok(env)
}

fn ours(key: &str) -> bool {
    key.to_ascii_uppercase().starts_with("GOFER_CONF_")
}

/// The environment reaches the container exactly: keys and values with `=`, spaces,
/// quotes, unicode, empty values and secrets, nothing more of ours and nothing less.
pub async fn env_reaches_container_exactly(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "env", |ctx| async move {
        let sent = awkward_env();
        let id = ctx
            .start(ctx.spec(&w.print_env, "env").env(sent.clone()))
            .await?;
        let (out, _) = ctx.output(&id).await?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the env container ended with {status:?}")
        })?;
        let seen = parse_env(&out)?;
        for (k, v) in &sent {
            let got = seen.get(k);
            ensure(got == Some(&vec![v.expose().to_string()]), || {
                format!("{k}: sent {:?}, the container saw {got:?}", v.expose())
            })?;
        }
        let extra: Vec<_> = seen
            .keys()
            .filter(|k| ours(k) && !sent.contains_key(*k))
            .collect();
        ensure(extra.is_empty(), || {
            format!("the container saw keys never sent: {extra:?}")
        })
    })
    .await
}

/// A request's command and entrypoint replace the image's.
pub async fn command_and_entrypoint_override_image(
    s: &DynScheduler,
    w: &Workloads,
) -> Result<(), String> {
    run_case(s, "override", |ctx| async move {
        let both = Workload::new(w.image.clone())
            .entrypoint(["echo", "from-entrypoint"])
            .command(["from-command"]);
        let id = ctx.start(ctx.spec(&both, "both")).await?;
        let (out, _) = ctx.output(&id).await?;
        ensure(text(&out) == "from-entrypoint from-command\n", || {
            format!("entrypoint+command override printed {:?}", text(&out))
        })?;
        let cmd = Workload::new(w.image.clone()).command(["echo", "only-command"]);
        let id = ctx.start(ctx.spec(&cmd, "cmd")).await?;
        let (out, _) = ctx.output(&id).await?;
        ensure(text(&out) == "only-command\n", || {
            format!("command override printed {:?}", text(&out))
        })
    })
    .await
}

/// Exit codes 0, 1, 3 and 137 are reported by `wait` and `state`.
pub async fn exit_codes_are_reported(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "exit-codes", |ctx| async move {
        for code in [0, 1, 3, 137] {
            let id = ctx
                .start(ctx.spec(w.exit_code(code)?, &format!("exit{code}")))
                .await?;
            let status = ctx.wait(&id).await?;
            ensure(status == ExitStatus::Exited { code }, || {
                format!("expected exit code {code}, wait reported {status:?}")
            })?;
            let state = ctx.s.state(&id).await.map_err(|e| format!("state: {e}"))?;
            ensure(state == ContainerState::Exited { status }, || {
                format!("after exit {code}, state is {state:?}")
            })?;
        }
        Ok(())
    })
    .await
}

/// Twenty containers started at once all run, each with its own environment.
pub async fn twenty_containers_at_once(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    run_case(s, "twenty", |ctx| async move {
        let starts = (0..20).map(|i| {
            let spec = ctx
                .spec(&w.print_env, &format!("n{i}"))
                .env_var("GOFER_CONF_INDEX", i.to_string());
            ctx.start(spec)
        });
        let ids = futures::future::join_all(starts)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let distinct: BTreeSet<_> = ids.iter().collect();
        ensure(distinct.len() == 20, || {
            format!("20 starts gave {} distinct ids", distinct.len())
        })?;
        let checks = ids.iter().enumerate().map(|(i, id)| {
            let ctx = ctx.clone();
            async move {
                let (out, _) = ctx.output(id).await?;
                let status = ctx.wait(id).await?;
                ensure(status.success(), || {
                    format!("container {i} ended with {status:?}")
                })?;
                let env = parse_env(&out)?;
                let got = env.get("GOFER_CONF_INDEX");
                ensure(got == Some(&vec![i.to_string()]), || {
                    format!("container {i} saw GOFER_CONF_INDEX {got:?}")
                })
            }
        });
        futures::future::join_all(checks)
            .await
            .into_iter()
            .collect::<Result<Vec<()>, _>>()?;
        let listed = ctx
            .s
            .list(&ctx.labels())
            .await
            .map_err(|e| format!("list: {e}"))?;
        ensure(listed.len() == 20, || {
            format!("list found {} of 20 containers", listed.len())
        })
    })
    .await
}

/// A container over its memory limit is reported as killed for memory. Skipped
/// without [`Capabilities::memory_limit`](crate::Capabilities::memory_limit) or a
/// [`Workloads::oom`] workload.
pub async fn out_of_memory_is_reported(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    let Some(oom) = &w.oom else {
        println!("skipped: the workloads have no out-of-memory container");
        return Ok(());
    };
    if !s.capabilities().memory_limit {
        println!("skipped: {} does not enforce memory limits", s.name());
        return Ok(());
    }
    run_case(s, "oom", |ctx| async move {
        let limits = ResourceLimits {
            memory_bytes: Some(w.oom_memory_bytes),
            cpus: None,
        };
        let id = ctx.start(ctx.spec(oom, "oom").resources(limits)).await?;
        let status = ctx.wait(&id).await?;
        ensure(matches!(status, ExitStatus::OutOfMemory { .. }), || {
            format!("expected a kill for memory, wait reported {status:?}")
        })
    })
    .await
}

/// A container joins a network sandbox; the holder is listed by its labels and goes
/// away on removal. Skipped without
/// [`Capabilities::network_sandbox`](crate::Capabilities::network_sandbox).
pub async fn network_sandbox_can_be_joined(s: &DynScheduler, w: &Workloads) -> Result<(), String> {
    if !s.capabilities().network_sandbox {
        println!("skipped: {} has no network sandbox", s.name());
        return Ok(());
    }
    run_case(s, "sandbox", |ctx: Ctx<'_>| async move {
        let spec =
            SandboxSpec::new(ctx.name("sandbox"), w.sandbox_image.clone()).labels(ctx.labels());
        let sandbox = ctx
            .s
            .create_sandbox(spec)
            .await
            .map_err(|e| format!("create_sandbox: {e}"))?;
        let state = ctx
            .s
            .state(&sandbox)
            .await
            .map_err(|e| format!("state: {e}"))?;
        ensure(state == ContainerState::Running, || {
            format!("the sandbox is {state:?}")
        })?;
        let spec = ctx
            .spec(w.exit_code(0)?, "member")
            .network(NetworkMode::Sandbox(sandbox.clone()));
        let id = ctx.start(spec).await?;
        let status = ctx.wait(&id).await?;
        ensure(status.success(), || {
            format!("the member ended with {status:?}")
        })?;
        let listed = ctx
            .s
            .list(&ctx.labels())
            .await
            .map_err(|e| format!("list: {e}"))?;
        ensure(listed.len() == 2, || {
            format!("list found {} of 2 containers", listed.len())
        })?;
        ctx.s
            .remove(&sandbox, true)
            .await
            .map_err(|e| format!("remove of the sandbox: {e}"))?;
        let gone = ctx.s.state(&sandbox).await;
        ensure(
            matches!(gone, Err(crate::SchedulerError::NoSuchContainer { .. })),
            || format!("after removal the sandbox state is {gone:?}"),
        )
    })
    .await
}
