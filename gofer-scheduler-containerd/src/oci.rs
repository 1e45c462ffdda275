//! The OCI runtime spec of a container, from its [`ContainerSpec`] over its image's
//! configuration: what `docker run` would give it (the same default capabilities,
//! masked paths and mounts), with runc as the runtime.

use std::path::Path;

use gofer_core::{ContainerSpec, MountSource, SchedulerError};
use serde_json::{json, Value};

use crate::image::ImageConfig;
use crate::NAME;

/// Where the init binary is mounted in a container started with an init.
pub(crate) const INIT_PATH: &str = "/sbin/gofer-init";

/// The PATH a container gets when its image sets none (Docker's default).
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capability set, so images behave as they do under Docker.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// What the spec needs besides the request and the image.
pub(crate) struct Parts<'a> {
    /// The network namespace to join (a pinned one), or `None` for a fresh one.
    pub(crate) netns: Option<&'a Path>,
    /// The container's `cgroupsPath`.
    pub(crate) cgroup: String,
    /// The container's `/etc/hosts` and `/etc/resolv.conf` on the host.
    pub(crate) hosts: &'a Path,
    pub(crate) resolv: &'a Path,
    /// Where named volumes' content is.
    pub(crate) volume_dir: &'a dyn Fn(&str) -> std::path::PathBuf,
    /// The init binary, when the container runs under one.
    pub(crate) init: Option<&'a Path>,
    /// Whether memory+swap can be limited (swap accounting on).
    pub(crate) swap_accounting: bool,
    /// The shim group: containers of one group share one runc shim process (the
    /// runc v2 shim's `io.containerd.runc.v2.group` annotation), so only a group's
    /// first container pays for starting one.
    pub(crate) group: Option<String>,
}

/// The shim group of a container: its run's (engine, pipeline and run labels), so a
/// run's tasks, services and sandbox share a shim and nothing else does.
pub(crate) fn group(labels: &std::collections::BTreeMap<String, String>) -> Option<String> {
    use gofer_core::naming::{LABEL_ENGINE, LABEL_PIPELINE, LABEL_RUN};
    let engine = labels.get(LABEL_ENGINE)?;
    let pipeline = labels.get(LABEL_PIPELINE)?;
    let run = labels.get(LABEL_RUN)?;
    Some(format!("gofer-{engine}-{pipeline}-{run}"))
}

fn invalid(field: &'static str, message: String) -> SchedulerError {
    SchedulerError::InvalidRequest {
        scheduler: NAME,
        field,
        message,
    }
}

/// The process arguments: the request's entrypoint and command over the image's, as
/// Docker combines them (an entrypoint given without a command drops the image's).
pub(crate) fn args(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    let entrypoint = spec
        .entrypoint
        .clone()
        .unwrap_or_else(|| image.entrypoint.clone());
    let command = match (&spec.command, &spec.entrypoint) {
        (Some(c), _) => c.clone(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone(),
    };
    entrypoint.into_iter().chain(command).collect()
}

/// The environment: the image's, then the request's (which wins, key by key).
pub(crate) fn env(spec: &ContainerSpec, image: &ImageConfig) -> Vec<String> {
    let mut out: Vec<String> = image
        .env
        .iter()
        .filter(|kv| {
            let key = kv.split_once('=').map_or(kv.as_str(), |(k, _)| k);
            !spec.env.contains_key(key)
        })
        .cloned()
        .collect();
    if !out.iter().any(|kv| kv.starts_with("PATH=")) && !spec.env.contains_key("PATH") {
        out.insert(0, DEFAULT_PATH.to_string());
    }
    out.extend(spec.env.iter().map(|(k, v)| format!("{k}={}", v.expose())));
    out
}

/// The numeric user of an image's `User` (`uid`, `uid:gid`); names would need the
/// image's `/etc/passwd` and are refused, naming the field.
pub(crate) fn user(image: &ImageConfig) -> Result<(u32, u32), SchedulerError> {
    let u = image.user.trim();
    if u.is_empty() {
        return Ok((0, 0));
    }
    let (uid, gid) = u.split_once(':').unwrap_or((u, ""));
    let uid: u32 = uid.parse().map_err(|_| {
        invalid(
            "image",
            format!(
                "the image {:?} runs as user {u:?}: only numeric users (uid or uid:gid) are supported by this backend",
                image.name
            ),
        )
    })?;
    let gid: u32 = if gid.is_empty() {
        uid
    } else {
        gid.parse().map_err(|_| {
            invalid(
                "image",
                format!(
                    "the image {:?} runs as group {gid:?}: only numeric groups are supported",
                    image.name
                ),
            )
        })?
    };
    Ok((uid, gid))
}

fn bind(source: &Path, target: &str, read_only: bool) -> Value {
    json!({
        "destination": target, "type": "bind", "source": source,
        "options": ["rbind", "rprivate", if read_only { "ro" } else { "rw" }],
    })
}

/// The runtime spec as JSON.
pub(crate) fn spec(
    spec: &ContainerSpec,
    image: &ImageConfig,
    parts: &Parts<'_>,
) -> Result<Value, SchedulerError> {
    let mut args = args(spec, image);
    if args.is_empty() {
        return Err(invalid(
            "command",
            format!(
                "neither the request nor the image {:?} gives a command",
                image.name
            ),
        ));
    }
    if let Some(_init) = parts.init {
        args.splice(0..0, [INIT_PATH.to_string(), "--".to_string()]);
    }
    let (uid, gid) = user(image)?;
    let cwd = if image.working_dir.is_empty() {
        "/".to_string()
    } else {
        image.working_dir.clone()
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
        bind(parts.hosts, "/etc/hosts", false),
        bind(parts.resolv, "/etc/resolv.conf", false),
    ];
    for m in &spec.mounts {
        let source = match &m.source {
            MountSource::Volume(name) => (parts.volume_dir)(name),
            MountSource::Bind(path) => path.clone(),
            _ => {
                return Err(invalid(
                    "mounts",
                    format!(
                        "the mount at {:?} has a source this backend does not know",
                        m.target
                    ),
                ))
            }
        };
        mounts.push(bind(&source, &m.target, m.read_only));
    }
    if let Some(init) = parts.init {
        mounts.push(bind(init, INIT_PATH, true));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    namespaces.push(match parts.netns {
        Some(path) => json!({"type": "network", "path": path}),
        None => json!({"type": "network"}),
    });
    let mut resources = json!({"devices": [{"allow": false, "access": "rwm"}]});
    if let Some(bytes) = spec.resources.memory_bytes {
        let limit = i64::try_from(bytes).map_err(|_| {
            invalid(
                "resources.memory_bytes",
                format!("{bytes} bytes is more than a kernel can limit"),
            )
        })?;
        resources["memory"] = if parts.swap_accounting {
            json!({"limit": limit, "swap": limit})
        } else {
            json!({"limit": limit})
        };
    }
    if let Some(cpus) = spec.resources.cpus {
        if !(cpus.is_finite() && cpus > 0.0 && cpus <= 4096.0) {
            return Err(invalid(
                "resources.cpus",
                format!("{cpus} is not a number of CPUs"),
            ));
        }
        let period: u64 = 100_000;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let quota = ((cpus * period as f64).round() as i64).max(1000);
        resources["cpu"] = json!({"quota": quota, "period": period});
    }
    let hostname: String = spec.name.chars().take(63).collect();
    let annotations = match &parts.group {
        Some(g) => json!({"io.containerd.runc.v2.group": g}),
        None => json!({}),
    };
    Ok(json!({
        "annotations": annotations,
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": args,
            "env": env(spec, image),
            "cwd": cwd,
            "capabilities": {
                "bounding": CAPABILITIES, "effective": CAPABILITIES, "permitted": CAPABILITIES,
            },
            "noNewPrivileges": false,
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "cgroupsPath": parts.cgroup,
            "resources": resources,
            "namespaces": namespaces,
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware",
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
            ],
        },
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn image() -> ImageConfig {
        ImageConfig {
            name: "docker.io/library/x:latest".into(),
            env: vec!["PATH=/bin".into(), "KEEP=image".into(), "OVER=image".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            working_dir: String::new(),
            user: String::new(),
            chain_id: "sha256:0".into(),
        }
    }

    #[test]
    fn entrypoint_and_command_combine_as_docker_does() {
        let i = image();
        let s = ContainerSpec::new("c", "x");
        assert_eq!(args(&s, &i), ["/entry", "default"]);
        let s = ContainerSpec::new("c", "x").command(["cmd"]);
        assert_eq!(args(&s, &i), ["/entry", "cmd"]);
        let s = ContainerSpec::new("c", "x").entrypoint(["echo"]);
        assert_eq!(args(&s, &i), ["echo"]);
        let s = ContainerSpec::new("c", "x")
            .entrypoint(["echo"])
            .command(["a"]);
        assert_eq!(args(&s, &i), ["echo", "a"]);
    }

    #[test]
    fn request_env_wins_over_the_image() {
        let s = ContainerSpec::new("c", "x")
            .env_var("OVER", "req")
            .env_var("NEW", "a=b");
        let e = env(&s, &image());
        assert_eq!(e, ["PATH=/bin", "KEEP=image", "NEW=a=b", "OVER=req"]);
        let mut bare = image();
        bare.env.clear();
        assert!(env(&ContainerSpec::new("c", "x"), &bare)[0].starts_with("PATH=/usr/local/sbin"));
    }

    #[test]
    fn users_are_numeric_or_refused() {
        let mut i = image();
        assert_eq!(user(&i).unwrap(), (0, 0));
        i.user = "1000".into();
        assert_eq!(user(&i).unwrap(), (1000, 1000));
        i.user = "1000:50".into();
        assert_eq!(user(&i).unwrap(), (1000, 50));
        i.user = "postgres".into();
        let e = user(&i).unwrap_err();
        assert!(e.to_string().contains("postgres"), "{e}");
    }

    #[test]
    fn extreme_limits_are_typed_errors() {
        let i = image();
        let p = std::path::PathBuf::from("/x");
        let vol = |n: &str| std::path::PathBuf::from(n);
        let parts = Parts {
            netns: None,
            cgroup: "/g".into(),
            hosts: &p,
            resolv: &p,
            volume_dir: &vol,
            init: None,
            swap_accounting: true,
            group: None,
        };
        let mut s = ContainerSpec::new("c", "x");
        s.resources.memory_bytes = Some(u64::MAX);
        assert!(matches!(
            spec(&s, &i, &parts),
            Err(SchedulerError::InvalidRequest {
                field: "resources.memory_bytes",
                ..
            })
        ));
        let mut s = ContainerSpec::new("c", "x");
        s.resources.cpus = Some(f64::NAN);
        assert!(matches!(
            spec(&s, &i, &parts),
            Err(SchedulerError::InvalidRequest {
                field: "resources.cpus",
                ..
            })
        ));
        let mut s = ContainerSpec::new("c", "x");
        s.resources.cpus = Some(0.5);
        let v = spec(&s, &i, &parts).unwrap();
        assert_eq!(v["linux"]["resources"]["cpu"]["quota"], 50_000);
    }
}
