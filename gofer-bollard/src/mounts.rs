//! A spec's mounts as the engine's.

use bollard::models::{Mount, MountType};
use gofer_core::{ContainerSpec, MountSource, SchedulerError};

use crate::error::invalid;

/// The engine's mounts for `spec.mounts`, checked first with
/// [`gofer_core::check_mounts`]; `None` when there are none.
///
/// A bind's source is a path on the host that runs the container (for a swarm, the
/// node the task lands on); a volume is a named volume of that engine.
///
/// # Errors
/// [`SchedulerError::InvalidRequest`] (field `mounts`) for a mount `check_mounts`
/// refuses or a source kind this layer does not know.
pub fn mounts(
    scheduler: &'static str,
    spec: &ContainerSpec,
) -> Result<Option<Vec<Mount>>, SchedulerError> {
    gofer_core::check_mounts(scheduler, &spec.mounts)?;
    if spec.mounts.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(spec.mounts.len());
    for m in &spec.mounts {
        let (typ, source) = match &m.source {
            MountSource::Volume(name) => (MountType::VOLUME, name.clone()),
            MountSource::Bind(path) => (
                MountType::BIND,
                path.to_str().unwrap_or_default().to_string(),
            ),
            other => {
                return Err(invalid(
                    scheduler,
                    "mounts",
                    format!("mount source {other:?} is not supported"),
                ))
            }
        };
        out.push(Mount {
            typ: Some(typ),
            source: Some(source),
            target: Some(m.target.clone()),
            read_only: Some(m.read_only),
            ..Default::default()
        });
    }
    Ok(Some(out))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use gofer_core::Mount as SpecMount;

    #[test]
    fn binds_and_volumes_become_engine_mounts() {
        let spec = ContainerSpec::new("c", "img")
            .mount(SpecMount::bind("/srv/data", "/data").read_only())
            .mount(SpecMount::volume("cache-1", "/cache"));
        let m = mounts("docker", &spec).unwrap().unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].typ, Some(MountType::BIND));
        assert_eq!(m[0].source.as_deref(), Some("/srv/data"));
        assert_eq!(m[0].read_only, Some(true));
        assert_eq!(m[1].typ, Some(MountType::VOLUME));
        assert_eq!(m[1].target.as_deref(), Some("/cache"));
        assert!(mounts("docker", &ContainerSpec::new("c", "img"))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_bad_mount_is_refused_naming_the_backend() {
        let spec = ContainerSpec::new("c", "img").mount(SpecMount::bind("relative", "/data"));
        match mounts("swarm", &spec) {
            Err(SchedulerError::InvalidRequest { scheduler, .. }) => assert_eq!(scheduler, "swarm"),
            other => panic!("expected InvalidRequest, got {other:?}"),
        }
    }
}
