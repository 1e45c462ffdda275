//! [`Mount`]: a volume or a host path made visible inside a container.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::error::SchedulerError;

/// What a [`Mount`] makes visible.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MountSource {
    /// A named volume of the engine. Engines that create volumes on first use (Docker,
    /// Podman) do so; a volume the run owns is made and removed by the executor.
    Volume(String),
    /// A path on the machine the engine runs on (on a cluster: the node's).
    Bind(PathBuf),
}

/// A filesystem mount into a container.
///
/// ```
/// use gofer_core::{ContainerSpec, Mount};
///
/// let spec = ContainerSpec::new("c1", "busybox")
///     .mount(Mount::volume("cache", "/cache"))
///     .mount(Mount::bind("/etc/ssl/certs", "/etc/ssl/certs").read_only());
/// assert_eq!(spec.mounts.len(), 2);
/// assert!(spec.mounts[1].read_only);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Mount {
    /// What is mounted.
    pub source: MountSource,
    /// The absolute path inside the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

impl Mount {
    /// A named volume at `target`, read-write.
    pub fn volume(name: impl Into<String>, target: impl Into<String>) -> Self {
        Self {
            source: MountSource::Volume(name.into()),
            target: target.into(),
            read_only: false,
        }
    }

    /// A host path at `target`, read-write.
    pub fn bind(host_path: impl Into<PathBuf>, target: impl Into<String>) -> Self {
        Self {
            source: MountSource::Bind(host_path.into()),
            target: target.into(),
            read_only: false,
        }
    }

    /// Makes the mount read-only.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }
}

/// Checks mounts as every backend must before creating anything: targets absolute,
/// free of NUL and distinct, and not `/`; volume names non-empty with no `/` or NUL;
/// host paths absolute and free of NUL.
///
/// # Errors
///
/// [`SchedulerError::InvalidRequest`] with field `mounts`, naming the mount.
pub fn check_mounts(scheduler: &'static str, mounts: &[Mount]) -> Result<(), SchedulerError> {
    let invalid = |message: String| SchedulerError::InvalidRequest {
        scheduler,
        field: "mounts",
        message,
    };
    let mut targets = BTreeSet::new();
    for m in mounts {
        let t = m.target.trim_end_matches('/');
        if !m.target.starts_with('/') || m.target.contains('\0') {
            return Err(invalid(format!(
                "mount target {:?} is not an absolute path",
                m.target
            )));
        }
        if t.is_empty() {
            return Err(invalid("a mount cannot replace the root directory".into()));
        }
        if !targets.insert(t) {
            return Err(invalid(format!("two mounts at {:?}", m.target)));
        }
        match &m.source {
            MountSource::Volume(name) => {
                if name.is_empty() || name.contains(['/', '\0']) {
                    return Err(invalid(format!(
                        "volume name {name:?} for {:?} is not a volume name",
                        m.target
                    )));
                }
            }
            MountSource::Bind(path) => {
                let utf8 = path.to_str();
                if !path.is_absolute() || utf8.is_none_or(|s| s.contains('\0')) {
                    return Err(invalid(format!(
                        "host path {path:?} for {:?} is not an absolute UTF-8 path",
                        m.target
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(r: Result<(), SchedulerError>) -> Option<&'static str> {
        match r {
            Err(SchedulerError::InvalidRequest { field, .. }) => Some(field),
            _ => None,
        }
    }

    #[test]
    fn good_mounts_pass() {
        let ok = [
            Mount::volume("ws", "/workspace"),
            Mount::bind("/run/api", "/run/gofer").read_only(),
        ];
        assert!(check_mounts("t", &ok).is_ok());
        assert!(check_mounts("t", &[]).is_ok());
    }

    #[test]
    fn bad_mounts_name_the_field() {
        let bad = [
            vec![Mount::volume("v", "relative")],
            vec![Mount::volume("v", "")],
            vec![Mount::volume("v", "/")],
            vec![Mount::volume("v", "/a\0b")],
            vec![Mount::volume("", "/a")],
            vec![Mount::volume("a/b", "/a")],
            vec![Mount::bind("rel", "/a")],
            vec![Mount::bind("/a\0", "/a")],
            vec![Mount::volume("v", "/a"), Mount::bind("/x", "/a/")],
        ];
        for mounts in bad {
            assert_eq!(
                field(check_mounts("t", &mounts)),
                Some("mounts"),
                "{mounts:?}"
            );
        }
    }
}
