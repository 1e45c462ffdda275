//! Turning a [`ContainerSpec`] into the engine's create request.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use gofer_core::{ContainerSpec, NetworkMode, SchedulerError};

use crate::NAME;

fn invalid(field: &'static str, message: String) -> SchedulerError {
    gofer_bollard::invalid(NAME, field, message)
}

/// The engine's `network_mode` for a network choice (`None` is the default bridge).
pub(crate) fn network_mode(network: &NetworkMode) -> Option<String> {
    match network {
        NetworkMode::None => Some("none".to_string()),
        NetworkMode::Sandbox(id) => Some(format!("container:{id}")),
        _ => None,
    }
}

/// The create request for `spec`.
///
/// The body holds secret environment values in plain text (the engine needs them): it
/// is never logged or shown.
///
/// # Errors
///
/// [`SchedulerError::InvalidRequest`] naming the field for an empty name or image, an
/// environment key the engine cannot take, or limits out of range.
pub(crate) fn body(spec: &ContainerSpec) -> Result<ContainerCreateBody, SchedulerError> {
    if spec.name.is_empty() {
        return Err(invalid("name", "the container name is empty".to_string()));
    }
    if spec.image.is_empty() {
        return Err(invalid("image", "the image is empty".to_string()));
    }
    let mut env = Vec::with_capacity(spec.env.len());
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(invalid("env", format!("invalid environment key {key:?}")));
        }
        env.push(format!("{key}={}", value.expose()));
    }
    let memory = match spec.resources.memory_bytes {
        None => None,
        Some(m) => Some(i64::try_from(m).map_err(|_| {
            invalid(
                "resources.memory_bytes",
                format!("{m} bytes is out of range"),
            )
        })?),
    };
    let nano_cpus = match spec.resources.cpus {
        None => None,
        // Below 0.01 CPU the engine's quota rounds to 0, which means no limit at all.
        Some(c) if (gofer_core::MIN_CPUS..=gofer_core::MAX_CPUS).contains(&c) => {
            Some((c * 1e9).round() as i64)
        }
        Some(c) if c.is_finite() && c > 0.0 => {
            return Err(invalid(
                "resources.cpus",
                format!(
                    "{c} CPUs is outside {}..={} (the smallest limit the engine enforces, the largest accepted)",
                    gofer_core::MIN_CPUS,
                    gofer_core::MAX_CPUS
                ),
            ))
        }
        Some(c) => {
            return Err(invalid(
                "resources.cpus",
                format!("{c} CPUs is not a positive number"),
            ))
        }
    };
    let mounts = gofer_bollard::mounts(NAME, spec)?;
    let labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ContainerCreateBody {
        image: Some(spec.image.clone()),
        env: Some(env),
        entrypoint: spec.entrypoint.clone(),
        cmd: spec.command.clone(),
        labels: Some(labels),
        attach_stdin: Some(false),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(HostConfig {
            init: Some(spec.init),
            memory,
            memory_swap: memory,
            nano_cpus,
            network_mode: network_mode(&spec.network),
            mounts,
            ..Default::default()
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::MountType;
    use gofer_core::ResourceLimits;

    #[test]
    fn spec_becomes_create_body() {
        let limits = ResourceLimits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
        };
        let spec = ContainerSpec::new("c1", "img")
            .env_var("A", "1")
            .command(["echo", "hi"])
            .label("k", "v")
            .resources(limits)
            .network(NetworkMode::Sandbox("abc".into()));
        let body = body(&spec).expect("valid");
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        assert_eq!(body.cmd, Some(vec!["echo".to_string(), "hi".to_string()]));
        assert_eq!(body.entrypoint, None);
        let host = body.host_config.expect("host config");
        assert_eq!(host.init, Some(true));
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.network_mode.as_deref(), Some("container:abc"));
        assert_eq!(host.mounts, None);
    }

    #[test]
    fn mounts_become_engine_mounts() {
        let spec = ContainerSpec::new("c1", "img")
            .mount(gofer_core::Mount::volume("ws", "/workspace"))
            .mount(gofer_core::Mount::bind("/run/x", "/run/gofer").read_only());
        let host = body(&spec).expect("valid").host_config.expect("host");
        let m = host.mounts.expect("mounts");
        assert_eq!(m[0].typ, Some(MountType::VOLUME));
        assert_eq!(m[0].source.as_deref(), Some("ws"));
        assert_eq!(m[0].target.as_deref(), Some("/workspace"));
        assert_eq!(m[0].read_only, Some(false));
        assert_eq!(m[1].typ, Some(MountType::BIND));
        assert_eq!(m[1].source.as_deref(), Some("/run/x"));
        assert_eq!(m[1].read_only, Some(true));
        let bad = ContainerSpec::new("c1", "img").mount(gofer_core::Mount::volume("v", "rel"));
        assert!(matches!(
            body(&bad),
            Err(SchedulerError::InvalidRequest {
                field: "mounts",
                ..
            })
        ));
    }

    #[test]
    fn bad_fields_are_named() {
        let spec = ContainerSpec::new("c1", "img").env_var("A=B", "1");
        assert!(matches!(
            body(&spec),
            Err(SchedulerError::InvalidRequest { field: "env", .. })
        ));
        // 1e-9 would be 1 nano-CPU, a quota of 0: no limit at all.
        for cpus in [-1.0, 1e-9, 0.009, 1e9, f64::NAN] {
            let limits = ResourceLimits {
                cpus: Some(cpus),
                ..Default::default()
            };
            let spec = ContainerSpec::new("c1", "img").resources(limits);
            assert!(
                matches!(
                    body(&spec),
                    Err(SchedulerError::InvalidRequest {
                        field: "resources.cpus",
                        ..
                    })
                ),
                "{cpus}"
            );
        }
        assert_eq!(network_mode(&NetworkMode::None).as_deref(), Some("none"));
        assert_eq!(network_mode(&NetworkMode::Default), None);
    }
}
