//! Turning a [`ContainerSpec`] into the service a task execution runs as.

use std::collections::HashMap;

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, NetworkAttachmentConfig, ResourceObject,
    ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};
use gofer_core::naming::LABEL_TASK;
use gofer_core::{ContainerSpec, NetworkMode, SchedulerError};

use crate::ids::{self, Target};
use crate::{SwarmConfig, NAME};

/// Label on every service and network this backend makes: the gofer name it was made
/// for (the swarm name may be a cleaned or shortened form of it, see the crate docs).
pub const LABEL_NAME: &str = "dev.gofer.swarm.name";

/// The environment variable through which a task asks for placement: Swarm placement
/// constraints separated by `;`, such as `node.labels.disk==ssd;node.role!=manager`.
///
/// A task sets it like any variable (`Task::variable`), so it also reaches the
/// container; each expression must compare with `==` or `!=`.
pub const CONSTRAINTS_ENV: &str = "GOFER_SWARM_CONSTRAINTS";

/// The constraint a stop adds: no node ever has this id, so the task the stop's
/// rolling update creates stays pending and never runs (see the crate docs, "Stop").
pub(crate) const STOP_CONSTRAINT: &str = "node.id==gofer-stopped";

fn invalid(field: &'static str, message: String) -> SchedulerError {
    gofer_bollard::invalid(NAME, field, message)
}

/// The placement constraints a spec asks for through [`CONSTRAINTS_ENV`].
pub(crate) fn constraints(spec: &ContainerSpec) -> Result<Vec<String>, SchedulerError> {
    let Some(value) = spec.env.get(CONSTRAINTS_ENV) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for c in value
        .expose()
        .split(';')
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        if !(c.contains("==") || c.contains("!=")) {
            return Err(invalid(
                "env.GOFER_SWARM_CONSTRAINTS",
                format!("placement constraint {c:?} must compare with == or !="),
            ));
        }
        out.push(c.to_string());
    }
    Ok(out)
}

fn limits(
    spec: &ContainerSpec,
    config: &SwarmConfig,
) -> Result<Option<TaskSpecResources>, SchedulerError> {
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
        Some(c) if c.is_finite() && c > 0.0 && c < 1e6 => Some((c * 1e9).round() as i64),
        Some(c) => {
            return Err(invalid(
                "resources.cpus",
                format!("{c} CPUs is not a positive number"),
            ))
        }
    };
    if memory.is_none() && nano_cpus.is_none() {
        return Ok(None);
    }
    Ok(Some(TaskSpecResources {
        limits: Some(Limit {
            nano_cpus,
            memory_bytes: memory,
            pids: None,
        }),
        reservations: config.reserve_limits.then_some(ResourceObject {
            nano_cpus,
            memory_bytes: memory,
            generic_resources: None,
        }),
        ..Default::default()
    }))
}

/// The network attachments for a network choice; the task id is the alias on a run
/// network.
fn networks(spec: &ContainerSpec) -> Result<Option<Vec<NetworkAttachmentConfig>>, SchedulerError> {
    match &spec.network {
        NetworkMode::Sandbox(id) => match ids::target(id) {
            Target::Network(net) => Ok(Some(vec![NetworkAttachmentConfig {
                target: Some(net.to_string()),
                aliases: spec.labels.get(LABEL_TASK).map(|t| vec![t.clone()]),
                driver_opts: None,
            }])),
            Target::Service(_) => Err(SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: id.0.clone(),
            }),
        },
        NetworkMode::None => Ok(Some(vec![NetworkAttachmentConfig {
            target: Some("none".to_string()),
            ..Default::default()
        }])),
        _ => Ok(None),
    }
}

/// The service for `spec`: one replica, never restarted, labelled and named as the
/// spec says.
///
/// The spec holds secret environment values in plain text (the nodes need them): it is
/// never logged or shown.
///
/// # Errors
///
/// [`SchedulerError::InvalidRequest`] naming the field for an empty name or image, an
/// environment key the engine cannot take, limits out of range or a malformed
/// placement constraint; [`SchedulerError::NoSuchContainer`] for a sandbox id that is
/// not a run network.
pub(crate) fn service(
    spec: &ContainerSpec,
    config: &SwarmConfig,
) -> Result<ServiceSpec, SchedulerError> {
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
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_NAME.to_string(), spec.name.clone());
    let constraints = constraints(spec)?;
    let grace = spec.stop_grace.unwrap_or(config.stop_grace);
    let grace = i64::try_from(grace.as_nanos()).unwrap_or(i64::MAX);
    Ok(ServiceSpec {
        name: Some(ids::swarm_name(&spec.name)),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(spec.image.clone()),
                labels: Some(labels),
                // Swarm's Command replaces the image's ENTRYPOINT, Args its CMD.
                command: spec.entrypoint.clone(),
                args: spec.command.clone(),
                env: Some(env),
                init: Some(spec.init),
                tty: Some(false),
                open_stdin: Some(false),
                stop_grace_period: Some(grace),
                mounts: gofer_bollard::mounts(NAME, spec)?,
                ..Default::default()
            }),
            resources: limits(spec, config)?,
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                max_attempts: Some(0),
                ..Default::default()
            }),
            placement: (!constraints.is_empty()).then(|| TaskSpecPlacement {
                constraints: Some(constraints),
                ..Default::default()
            }),
            networks: networks(spec)?,
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        // A stop is a rolling update (see the crate docs): take the old task down
        // first, never roll back (a rollback would run the task again).
        update_config: Some(ServiceSpecUpdateConfig {
            parallelism: Some(1),
            failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::PAUSE),
            order: Some(ServiceSpecUpdateConfigOrderEnum::STOP_FIRST),
            ..Default::default()
        }),
        // This kernel-independent mode needs no IPVS virtual IP.
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ports: None,
        }),
        ..Default::default()
    })
}

/// The spec of a stop: the same service, placed where no node is (see
/// [`STOP_CONSTRAINT`]).
pub(crate) fn stopped(mut spec: ServiceSpec) -> ServiceSpec {
    if let Some(task) = spec.task_template.as_mut() {
        let placement = task.placement.get_or_insert_with(Default::default);
        let constraints = placement.constraints.get_or_insert_with(Vec::new);
        if !constraints.iter().any(|c| c == STOP_CONSTRAINT) {
            constraints.push(STOP_CONSTRAINT.to_string());
        }
    }
    spec
}

/// Whether a service spec is one a stop has made.
pub(crate) fn is_stopped(spec: &ServiceSpec) -> bool {
    spec.task_template
        .as_ref()
        .and_then(|t| t.placement.as_ref())
        .and_then(|p| p.constraints.as_ref())
        .is_some_and(|c| c.iter().any(|c| c == STOP_CONSTRAINT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::MountType;
    use gofer_core::ResourceLimits;
    use std::time::Duration;

    fn container(s: &ServiceSpec) -> &TaskSpecContainerSpec {
        s.task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref())
            .expect("container spec")
    }

    #[test]
    fn spec_becomes_one_never_restarted_replica() {
        let limits = ResourceLimits {
            memory_bytes: Some(64 << 20),
            cpus: Some(0.5),
        };
        let spec = ContainerSpec::new("c1", "img")
            .env_var("A", "1")
            .entrypoint(["sh", "-c"])
            .command(["echo hi"])
            .label("k", "v")
            .resources(limits);
        let config = SwarmConfig::new().stop_grace(Duration::from_secs(3));
        let s = service(&spec, &config).expect("valid");
        assert_eq!(s.name.as_deref(), Some("c1"));
        assert_eq!(
            s.mode
                .as_ref()
                .and_then(|m| m.replicated.as_ref())
                .and_then(|r| r.replicas),
            Some(1)
        );
        let c = container(&s);
        assert_eq!(c.env, Some(vec!["A=1".to_string()]));
        assert_eq!(c.command, Some(vec!["sh".to_string(), "-c".to_string()]));
        assert_eq!(c.args, Some(vec!["echo hi".to_string()]));
        assert_eq!(c.init, Some(true));
        assert_eq!(c.stop_grace_period, Some(3_000_000_000));
        assert_eq!(c.mounts, None);
        // The spec's grace, known at create, wins over the config's.
        let s = service(&spec.clone().stop_grace(Duration::from_secs(5)), &config).expect("valid");
        assert_eq!(container(&s).stop_grace_period, Some(5_000_000_000));
        let s = service(&spec.clone().stop_grace(Duration::MAX), &config).expect("valid");
        assert_eq!(container(&s).stop_grace_period, Some(i64::MAX));
        let m = gofer_core::Mount::volume("ws", "/workspace");
        let s = service(&spec.clone().mount(m), &config).expect("valid");
        let mounts = container(&s).mounts.clone().expect("mounts");
        assert_eq!(mounts[0].typ, Some(MountType::VOLUME));
        assert_eq!(mounts[0].target.as_deref(), Some("/workspace"));
        assert_eq!(
            c.labels
                .as_ref()
                .and_then(|l| l.get(LABEL_NAME))
                .map(String::as_str),
            Some("c1")
        );
        assert_eq!(
            s.labels
                .as_ref()
                .and_then(|l| l.get("k"))
                .map(String::as_str),
            Some("v")
        );
        let t = s.task_template.as_ref().expect("task");
        assert_eq!(
            t.restart_policy.as_ref().and_then(|r| r.condition),
            Some(TaskSpecRestartPolicyConditionEnum::NONE)
        );
        let r = t.resources.as_ref().expect("resources");
        assert_eq!(
            r.limits.as_ref().and_then(|l| l.memory_bytes),
            Some(64 << 20)
        );
        assert_eq!(
            r.reservations.as_ref().and_then(|l| l.nano_cpus),
            Some(500_000_000)
        );
        let no_reserve = service(&spec, &SwarmConfig::new().reserve_limits(false)).expect("valid");
        let r = no_reserve
            .task_template
            .and_then(|t| t.resources)
            .expect("resources");
        assert!(r.reservations.is_none());
    }

    #[test]
    fn a_run_network_is_joined_with_the_task_id_as_alias() {
        let spec = ContainerSpec::new("c1", "img")
            .label(LABEL_TASK, "server")
            .network(NetworkMode::Sandbox(ids::network_id("net1")));
        let s = service(&spec, &SwarmConfig::new()).expect("valid");
        let nets = s.task_template.and_then(|t| t.networks).expect("networks");
        assert_eq!(nets[0].target.as_deref(), Some("net1"));
        assert_eq!(nets[0].aliases, Some(vec!["server".to_string()]));
        let not_a_network =
            ContainerSpec::new("c1", "img").network(NetworkMode::Sandbox("svc".into()));
        assert!(matches!(
            service(&not_a_network, &SwarmConfig::new()),
            Err(SchedulerError::NoSuchContainer { .. })
        ));
    }

    #[test]
    fn placement_comes_from_the_constraints_variable() {
        let spec = ContainerSpec::new("c1", "img").env_var(
            CONSTRAINTS_ENV,
            "node.labels.disk==ssd; node.role!=manager ;",
        );
        let s = service(&spec, &SwarmConfig::new()).expect("valid");
        let p = s
            .task_template
            .and_then(|t| t.placement)
            .and_then(|p| p.constraints);
        assert_eq!(
            p,
            Some(vec![
                "node.labels.disk==ssd".to_string(),
                "node.role!=manager".to_string()
            ])
        );
        let bad = ContainerSpec::new("c1", "img").env_var(CONSTRAINTS_ENV, "node.labels.disk");
        assert!(matches!(
            service(&bad, &SwarmConfig::new()),
            Err(SchedulerError::InvalidRequest {
                field: "env.GOFER_SWARM_CONSTRAINTS",
                ..
            })
        ));
    }

    #[test]
    fn a_stop_places_the_service_nowhere_once() {
        let s = service(&ContainerSpec::new("c1", "img"), &SwarmConfig::new()).expect("valid");
        assert!(!is_stopped(&s));
        let s = stopped(stopped(s));
        assert!(is_stopped(&s));
        let c = s
            .task_template
            .and_then(|t| t.placement)
            .and_then(|p| p.constraints)
            .expect("constraints");
        assert_eq!(c, vec![STOP_CONSTRAINT.to_string()]);
    }

    #[test]
    fn bad_fields_are_named() {
        let spec = ContainerSpec::new("c1", "img").env_var("A=B", "1");
        assert!(matches!(
            service(&spec, &SwarmConfig::new()),
            Err(SchedulerError::InvalidRequest { field: "env", .. })
        ));
        let limits = ResourceLimits {
            cpus: Some(-1.0),
            ..Default::default()
        };
        let spec = ContainerSpec::new("c1", "img").resources(limits);
        assert!(matches!(
            service(&spec, &SwarmConfig::new()),
            Err(SchedulerError::InvalidRequest {
                field: "resources.cpus",
                ..
            })
        ));
    }
}
