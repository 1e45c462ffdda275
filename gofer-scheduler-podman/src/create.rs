//! Turning a [`ContainerSpec`] into libpod's create request.

use std::collections::BTreeMap;

use gofer_core::{ContainerSpec, MountSource, NetworkMode, ResourceLimits, SchedulerError};
use podman_api::models::{ContainerMount, LinuxResources, NamedVolume, Namespace};
use podman_api::opts::ContainerCreateOpts;

use crate::NAME;

/// The CFS period the CPU limit is expressed in (100 ms, the kernel's default).
const CPU_PERIOD_US: u64 = 100_000;

/// The create request for `spec`. The options hold the environment's secret values,
/// so they are never logged.
pub(crate) fn create_opts(spec: &ContainerSpec) -> Result<ContainerCreateOpts, SchedulerError> {
    validate(spec)?;
    let env: BTreeMap<&str, &str> = spec
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    let mut b = ContainerCreateOpts::builder()
        .name(&spec.name)
        .image(&spec.image)
        .env(env)
        .labels(spec.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .init(spec.init);
    if let Some(entrypoint) = &spec.entrypoint {
        b = b.entrypoint(entrypoint);
    }
    if let Some(command) = &spec.command {
        b = b.command(command);
    }
    if let Some(resources) = resources(&spec.resources)? {
        b = b.resource_limits(resources);
    }
    if let Some(ns) = network(&spec.network) {
        b = b.net_namespace(ns);
    }
    let (binds, volumes) = mounts(spec);
    if !binds.is_empty() {
        b = b.mounts(binds);
    }
    if !volumes.is_empty() {
        b = b.volumes(volumes);
    }
    Ok(b.build())
}

/// A create request with the log driver set. (podman-api's `log_configuration`
/// takes Docker's shape, which libpod does not read: libpod wants `driver`.)
pub(crate) fn with_log_driver(body: &[u8], driver: &str) -> Result<Vec<u8>, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(body)?;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "log_configuration".into(),
            serde_json::json!({ "driver": driver }),
        );
    }
    serde_json::to_vec(&v)
}

/// Bind mounts (OCI mounts) and named volumes, as libpod takes them apart.
fn mounts(spec: &ContainerSpec) -> (Vec<ContainerMount>, Vec<NamedVolume>) {
    let mut binds = Vec::new();
    let mut volumes = Vec::new();
    for m in &spec.mounts {
        let mode = if m.read_only { "ro" } else { "rw" };
        match &m.source {
            MountSource::Volume(name) => volumes.push(NamedVolume {
                dest: Some(m.target.clone()),
                is_anonymous: None,
                name: Some(name.clone()),
                options: Some(vec![mode.to_string()]),
            }),
            MountSource::Bind(path) => binds.push(ContainerMount {
                destination: Some(m.target.clone()),
                options: Some(vec!["rbind".to_string(), mode.to_string()]),
                source: Some(path.to_str().unwrap_or_default().to_string()),
                _type: Some("bind".to_string()),
                uid_mappings: None,
                gid_mappings: None,
            }),
            // Sources added later are refused by `validate` first.
            _ => {}
        }
    }
    (binds, volumes)
}

/// Rejects what the service would refuse or misread, naming the field.
fn validate(spec: &ContainerSpec) -> Result<(), SchedulerError> {
    let invalid = |field: &'static str, message: String| SchedulerError::InvalidRequest {
        scheduler: NAME,
        field,
        message,
    };
    if spec.name.is_empty() {
        return Err(invalid("name", "the container name is empty".into()));
    }
    if spec.image.trim().is_empty() {
        return Err(invalid("image", "the image is empty".into()));
    }
    if let Some(m) = spec.resources.memory_bytes {
        if m == 0 || i64::try_from(m).is_err() {
            return Err(invalid(
                "resources.memory_bytes",
                format!("{m} is not a usable memory limit"),
            ));
        }
    }
    if let Some(c) = spec.resources.cpus {
        if !(gofer_core::MIN_CPUS..=gofer_core::MAX_CPUS).contains(&c) {
            return Err(invalid(
                "resources.cpus",
                format!(
                    "{c} is not a usable CPU limit (accepted: {}..={} CPUs)",
                    gofer_core::MIN_CPUS,
                    gofer_core::MAX_CPUS
                ),
            ));
        }
    }
    gofer_core::check_mounts(NAME, &spec.mounts)?;
    if let Some(m) = spec
        .mounts
        .iter()
        .find(|m| !matches!(m.source, MountSource::Volume(_) | MountSource::Bind(_)))
    {
        return Err(invalid(
            "mounts",
            format!(
                "the mount at {:?} has a source this backend does not know",
                m.target
            ),
        ));
    }
    if let NetworkMode::Sandbox(id) = &spec.network {
        if id.0.is_empty() {
            return Err(invalid("network", "the sandbox id is empty".into()));
        }
    }
    Ok(())
}

/// Memory (with no extra swap) and CPU quota. Built from JSON because the generated
/// models have dozens of optional fields and no `Default`.
fn resources(r: &ResourceLimits) -> Result<Option<LinuxResources>, SchedulerError> {
    if r.memory_bytes.is_none() && r.cpus.is_none() {
        return Ok(None);
    }
    let mut v = serde_json::Map::new();
    if let Some(m) = r.memory_bytes {
        // Swap limit = memory limit: the container gets no swap on top.
        v.insert(
            "memory".into(),
            serde_json::json!({ "limit": m, "swap": m }),
        );
    }
    if let Some(c) = r.cpus {
        let quota = (c * CPU_PERIOD_US as f64).round().max(1000.0) as i64;
        v.insert(
            "cpu".into(),
            serde_json::json!({ "period": CPU_PERIOD_US, "quota": quota }),
        );
    }
    serde_json::from_value(serde_json::Value::Object(v))
        .map(Some)
        .map_err(|e| SchedulerError::InvalidRequest {
            scheduler: NAME,
            field: "resources",
            message: e.to_string(),
        })
}

/// The network namespace: the default network is Podman's own default (left unset).
fn network(n: &NetworkMode) -> Option<Namespace> {
    match n {
        NetworkMode::None => Some(Namespace {
            nsmode: Some("none".into()),
            value: None,
        }),
        NetworkMode::Sandbox(id) => Some(Namespace {
            nsmode: Some("container".into()),
            value: Some(id.0.clone()),
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gofer_core::ContainerId;

    #[test]
    fn a_log_driver_is_set_the_way_libpod_reads_it() {
        let body = create_opts(&ContainerSpec::new("n", "img"))
            .unwrap()
            .serialize_vec()
            .unwrap();
        let j: serde_json::Value =
            serde_json::from_slice(&with_log_driver(&body, "none").unwrap()).unwrap();
        assert_eq!(
            j["log_configuration"],
            serde_json::json!({ "driver": "none" })
        );
        assert_eq!(j["image"], "img");
    }

    fn json(spec: &ContainerSpec) -> serde_json::Value {
        serde_json::from_slice(&create_opts(spec).unwrap().serialize_vec().unwrap()).unwrap()
    }

    #[test]
    fn spec_becomes_a_spec_generator() {
        let mut spec = ContainerSpec::new("gofer-e-p-1-t", "img:1")
            .env_var("A", "1")
            .entrypoint(["sh", "-c"])
            .command(["echo hi"])
            .label("k", "v")
            .network(NetworkMode::Sandbox(ContainerId::from("holder")));
        spec.resources = ResourceLimits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
        };
        let j = json(&spec);
        assert_eq!(j["name"], "gofer-e-p-1-t");
        assert_eq!(j["image"], "img:1");
        assert_eq!(j["env"]["A"], "1");
        assert_eq!(j["entrypoint"], serde_json::json!(["sh", "-c"]));
        assert_eq!(j["command"], serde_json::json!(["echo hi"]));
        assert_eq!(j["labels"]["k"], "v");
        assert_eq!(j["init"], true);
        assert_eq!(j["resource_limits"]["memory"]["limit"], 64 << 20);
        assert_eq!(j["resource_limits"]["cpu"]["quota"], 50_000);
        assert_eq!(j["netns"]["nsmode"], "container");
        assert_eq!(j["netns"]["value"], "holder");
        assert!(j.get("mounts").is_none() && j.get("volumes").is_none());
    }

    #[test]
    fn mounts_become_binds_and_named_volumes() {
        let spec = ContainerSpec::new("n", "img")
            .mount(gofer_core::Mount::volume("ws", "/workspace"))
            .mount(gofer_core::Mount::bind("/run/x", "/run/gofer").read_only());
        let j = json(&spec);
        assert_eq!(j["volumes"][0]["Name"], "ws");
        assert_eq!(j["volumes"][0]["Dest"], "/workspace");
        assert_eq!(j["volumes"][0]["Options"], serde_json::json!(["rw"]));
        assert_eq!(j["mounts"][0]["type"], "bind");
        assert_eq!(j["mounts"][0]["source"], "/run/x");
        assert_eq!(j["mounts"][0]["destination"], "/run/gofer");
        assert_eq!(
            j["mounts"][0]["options"],
            serde_json::json!(["rbind", "ro"])
        );
        let bad = ContainerSpec::new("n", "img").mount(gofer_core::Mount::bind("/x", "rel"));
        assert!(matches!(
            create_opts(&bad).unwrap_err(),
            SchedulerError::InvalidRequest {
                field: "mounts",
                ..
            }
        ));
    }

    #[test]
    fn defaults_leave_the_image_and_network_alone() {
        let j = json(&ContainerSpec::new("n", "img").init(false));
        assert!(j.get("entrypoint").is_none() && j.get("command").is_none());
        assert!(j.get("netns").is_none() && j.get("resource_limits").is_none());
        assert_eq!(j["init"], false);
        let j = json(&ContainerSpec::new("n", "img").network(NetworkMode::None));
        assert_eq!(j["netns"]["nsmode"], "none");
    }

    #[test]
    fn bad_fields_are_named() {
        for cpus in [f64::NAN, 1e-9, 0.009, 1e9, -1.0] {
            let mut spec = ContainerSpec::new("n", "img");
            spec.resources.cpus = Some(cpus);
            let e = create_opts(&spec).unwrap_err();
            assert!(
                matches!(
                    e,
                    SchedulerError::InvalidRequest {
                        field: "resources.cpus",
                        ..
                    }
                ),
                "{cpus}"
            );
        }
        let e = create_opts(&ContainerSpec::new("n", " ")).unwrap_err();
        assert!(matches!(
            e,
            SchedulerError::InvalidRequest { field: "image", .. }
        ));
        let mut spec = ContainerSpec::new("n", "img");
        spec.resources.memory_bytes = Some(u64::MAX);
        let e = create_opts(&spec).unwrap_err();
        assert!(matches!(
            e,
            SchedulerError::InvalidRequest {
                field: "resources.memory_bytes",
                ..
            }
        ));
    }
}
