//! Named volumes. containerd has none, so a volume is a directory of the backend's
//! state directory (`volumes/<name>/_data`, bind-mounted), its labels beside it in
//! `labels.json`. A container that mounts one carries a label naming it, which is how
//! a removal finds that the volume is still in use.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use gofer_core::{check_volume_name, SchedulerError, VolumeSpec, VolumeSummary};

use crate::NAME;

/// The label prefix a container carries for each volume it mounts.
pub(crate) const LABEL_VOLUME_PREFIX: &str = "dev.gofer.containerd.volume.";

fn io_error(op: &'static str, name: &str, e: std::io::Error) -> SchedulerError {
    SchedulerError::engine(NAME, op, format!("volume {name:?}: {e}"))
}

/// The volumes under one state directory.
#[derive(Debug, Clone)]
pub(crate) struct Volumes {
    root: PathBuf,
}

impl Volumes {
    pub(crate) fn new(state_dir: &Path) -> Self {
        Self {
            root: state_dir.join("volumes"),
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Where a volume's content is (what containers mount).
    pub(crate) fn data(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    fn read_labels(&self, name: &str) -> Option<BTreeMap<String, String>> {
        let text = std::fs::read(self.dir(name).join("labels.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Makes the volume (see the contract of `create_volume`).
    pub(crate) fn create(&self, spec: &VolumeSpec) -> Result<(), SchedulerError> {
        check_volume_name(NAME, &spec.name)?;
        if self.dir(&spec.name).exists() {
            return match self.read_labels(&spec.name) {
                Some(l) if l == spec.labels => Ok(()),
                _ => Err(SchedulerError::Conflict {
                    scheduler: NAME,
                    id: spec.name.clone(),
                    message: "a volume of this name with other labels exists".into(),
                }),
            };
        }
        self.make(&spec.name, &spec.labels)
    }

    /// Makes the volume a mount names when it is not there (as Docker does).
    pub(crate) fn ensure(&self, name: &str) -> Result<(), SchedulerError> {
        check_volume_name(NAME, name).map_err(|_| SchedulerError::InvalidRequest {
            scheduler: NAME,
            field: "mounts",
            message: format!("{name:?} is not a volume name"),
        })?;
        if self.data(name).is_dir() {
            return Ok(());
        }
        self.make(name, &BTreeMap::new())
    }

    fn make(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<(), SchedulerError> {
        let dir = self.dir(name);
        std::fs::create_dir_all(dir.join("_data"))
            .map_err(|e| io_error("create_volume", name, e))?;
        let tmp = dir.join("labels.json.tmp");
        let body = serde_json::to_vec(labels)
            .map_err(|e| SchedulerError::engine(NAME, "create_volume", e))?;
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, dir.join("labels.json")))
            .map_err(|e| io_error("create_volume", name, e))
    }

    /// Removes the volume unless one of `in_use` is its name.
    pub(crate) fn remove(
        &self,
        name: &str,
        in_use: &BTreeSet<String>,
    ) -> Result<(), SchedulerError> {
        if check_volume_name(NAME, name).is_err() || !self.dir(name).exists() {
            return Err(SchedulerError::NoSuchContainer {
                scheduler: NAME,
                id: name.to_string(),
            });
        }
        if in_use.contains(name) {
            return Err(SchedulerError::Conflict {
                scheduler: NAME,
                id: name.to_string(),
                message: "the volume is mounted by a container".into(),
            });
        }
        std::fs::remove_dir_all(self.dir(name)).map_err(|e| io_error("remove_volume", name, e))
    }

    /// The volumes carrying every label in `labels`.
    pub(crate) fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list_volumes", "*", e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            let Some(have) = self.read_labels(&name) else {
                continue;
            };
            if labels.iter().all(|(k, v)| have.get(k) == Some(v)) {
                out.push(VolumeSummary::new(name, have));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
