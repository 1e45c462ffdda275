//! Named volumes a backend makes and removes for the engine ([`VolumeSpec`],
//! [`VolumeSummary`], [`VolumeScope`]): the run's shared workspace is one (see
//! [`Pipeline::workspace`](crate::Pipeline::workspace)).

use std::collections::BTreeMap;

/// A request for a named volume.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VolumeSpec {
    /// Deterministic, unique name (`[A-Za-z0-9][A-Za-z0-9_.-]*`).
    pub name: String,
    /// Labels of the volume (for reaping).
    pub labels: BTreeMap<String, String>,
}

impl VolumeSpec {
    /// A volume request.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
        }
    }

    /// Adds labels.
    #[must_use]
    pub fn labels(mut self, labels: impl IntoIterator<Item = (String, String)>) -> Self {
        self.labels.extend(labels);
        self
    }
}

/// A volume as [`Scheduler::list_volumes`](crate::Scheduler::list_volumes) reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VolumeSummary {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl VolumeSummary {
    /// A summary.
    pub fn new(name: impl Into<String>, labels: BTreeMap<String, String>) -> Self {
        Self {
            name: name.into(),
            labels,
        }
    }
}

/// Where a volume's content is seen (meaningful with
/// [`Capabilities::volumes`](crate::Capabilities::volumes)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum VolumeScope {
    /// Every container of the backend mounting the volume sees the same content
    /// (Docker, Podman, the fake: one engine, one machine).
    #[default]
    Engine,
    /// A volume lives on one node: containers placed on another node mounting the same
    /// name get another, empty volume (a Docker Swarm). Tasks of one run cannot share
    /// files through it unless they are pinned to one node.
    Node,
}

/// Checks a volume name as the backends accept it: non-empty, at most 255 bytes,
/// `[A-Za-z0-9][A-Za-z0-9_.-]*`.
///
/// # Errors
/// [`SchedulerError::InvalidRequest`](crate::SchedulerError::InvalidRequest) with
/// field `name`, naming what is wrong.
pub fn check_volume_name(scheduler: &'static str, name: &str) -> Result<(), crate::SchedulerError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(crate::SchedulerError::InvalidRequest {
            scheduler,
            field: "name",
            message: format!(
                "volume name {:?} must be 1 to 255 of [A-Za-z0-9_.-], starting with a letter or digit",
                name.chars().take(64).collect::<String>()
            ),
        })
    }
}
