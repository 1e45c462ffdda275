//! The [`Scheduler`] trait itself, [`DynScheduler`] and the forwarding impls.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::SchedulerError;
use crate::volume::{VolumeSpec, VolumeSummary};

use super::capabilities::Capabilities;
use super::output::LogStream;
use super::spec::{ContainerId, ContainerSpec, SandboxSpec};
use super::state::{ContainerState, ContainerSummary, ExitStatus};

/// A container backend.
///
/// Every method is safe to call concurrently for different containers. Errors are
/// [`SchedulerError`]s; a caller that gets an error from [`Scheduler::start`] owns no
/// container (the backend removes whatever it half-made).
#[cfg_attr(feature = "mock", mockall::automock)]
#[async_trait]
pub trait Scheduler: fmt::Debug + Send + Sync + 'static {
    /// A short backend name (`"docker"`, `"podman"`, `"fake"`), used in errors and spans.
    fn name(&self) -> &'static str;

    /// What this backend supports beyond the required operations.
    fn capabilities(&self) -> Capabilities;

    /// Pulls the image as `spec.pull_policy` says, then creates and starts the container.
    ///
    /// Contract: on success the container is running (or already exited) and its id is
    /// returned. `Never` with an absent image gives [`SchedulerError::NoSuchImage`];
    /// `IfNotPresent` does not contact the registry when the image is present. A name
    /// already in use gives [`SchedulerError::Conflict`]. On any error no container
    /// named `spec.name` created by this call is left behind.
    async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError>;

    /// Waits until the container exits, without polling, and returns how it ended.
    ///
    /// Returns at once for a container that has already exited. A container removed
    /// while waited on gives [`ExitStatus::Removed`]; an unknown id gives
    /// [`SchedulerError::NoSuchContainer`].
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError>;

    /// The container's current state.
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError>;

    /// Starts a container that was created but never started — one whose start a host
    /// that died had asked for, found by crash recovery in state
    /// [`ContainerState::Created`].
    ///
    /// Contract: the container runs at most once. A container that is already running
    /// or has exited is left as it is and the call succeeds (a start that was still in
    /// flight may have won the race); only a `Created` container is started. An
    /// unknown id gives [`SchedulerError::NoSuchContainer`]. Backends that cannot do
    /// this return [`SchedulerError::NotSupported`] (the default), and recovery then
    /// records the task as orphaned rather than starting a second container.
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        let _ = id;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "start_created",
        })
    }

    /// The container's output from its start: follows a running container until it exits,
    /// returns everything and ends when opened after exit. Order is kept within each
    /// stream; stdout and stderr are never mixed up.
    ///
    /// Live output: for a container started with [`ContainerSpec::attach_output`], the
    /// first call after [`Scheduler::start`] may be served from a stream the backend
    /// attached to the container *before* starting it, as `docker run` does: nothing
    /// the container prints is missed, even in its first millisecond, and the
    /// engine's log-reading API (often much slower) is not on the path. Later calls,
    /// and calls for other containers (such as those adopted by crash recovery), read
    /// the output again from its start. A caller that restarts a read skips what it
    /// already has (see [`OutputCursor`](crate::OutputCursor)), so both kinds of stream must deliver the
    /// same bytes per stream.
    ///
    /// An attached container is held back while nobody reads its output (the engine
    /// gives back-pressure; Podman holds even the exit of a container with a few
    /// kilobytes unread): whoever sets `attach_output` opens this stream right after
    /// the start and reads it, or drops it to detach. [`Scheduler::remove`] drops a
    /// stream not taken.
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError>;

    /// Sends SIGTERM, waits up to `grace`, then kills. Returns once the container has
    /// exited. Stopping an exited container is not an error.
    ///
    /// The container's first process is PID 1 of its namespace, and the kernel drops
    /// a signal sent to it before it has set up its handling (an init it was given, or
    /// its own trap). A stop that comes in the first moments after the start can
    /// therefore go unseen and end only when `grace` runs out, as with `docker stop`
    /// and `podman stop`.
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError>;

    /// Removes the container. A running container needs `force` (which kills it);
    /// without it the call fails with [`SchedulerError::Conflict`].
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError>;

    /// Lists containers (running or not) carrying every label in `labels`.
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError>;

    /// Creates and starts a network sandbox holder (see [`SandboxSpec`]) and returns its
    /// id, to be used as [`NetworkMode::Sandbox`](crate::NetworkMode::Sandbox). Remove it with [`Scheduler::remove`].
    ///
    /// Backends without [`Capabilities::network_sandbox`] return
    /// [`SchedulerError::NotSupported`] (the default).
    async fn create_sandbox(&self, spec: SandboxSpec) -> Result<ContainerId, SchedulerError> {
        let _ = spec;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "create_sandbox",
        })
    }

    /// Creates a named volume carrying `spec.labels`, for containers to mount with
    /// [`Mount::volume`](crate::Mount::volume).
    ///
    /// Contract: a name already taken by a volume carrying the same labels is not an
    /// error (a host that died after asking may ask again); taken by another volume it
    /// gives [`SchedulerError::Conflict`]. A bad name gives
    /// [`SchedulerError::InvalidRequest`] (field `name`). Backends without
    /// [`Capabilities::volumes`] return [`SchedulerError::NotSupported`] (the default).
    async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
        let _ = spec;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "create_volume",
        })
    }

    /// Removes a named volume and its content.
    ///
    /// Contract: a volume that does not exist gives
    /// [`SchedulerError::NoSuchContainer`] with the volume's name as `id` (the reaper
    /// counts it as gone); a volume a container still mounts gives
    /// [`SchedulerError::Conflict`]. Backends without [`Capabilities::volumes`] return
    /// [`SchedulerError::NotSupported`] (the default).
    async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
        let _ = name;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "remove_volume",
        })
    }

    /// Lists the volumes carrying every label in `labels`. Backends without
    /// [`Capabilities::volumes`] return [`SchedulerError::NotSupported`] (the default).
    async fn list_volumes(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<VolumeSummary>, SchedulerError> {
        let _ = labels;
        Err(SchedulerError::NotSupported {
            scheduler: self.name(),
            operation: "list_volumes",
        })
    }
}

/// A scheduler behind dynamic dispatch.
pub type DynScheduler = dyn Scheduler;

macro_rules! forward_scheduler {
    ($t:ty) => {
        #[async_trait]
        impl<S: Scheduler + ?Sized> Scheduler for $t {
            fn name(&self) -> &'static str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn start(&self, spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
                (**self).start(spec).await
            }
            async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
                (**self).wait(id).await
            }
            async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
                (**self).state(id).await
            }
            async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
                (**self).start_created(id).await
            }
            async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
                (**self).logs(id).await
            }
            async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
                (**self).stop(id, grace).await
            }
            async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
                (**self).remove(id, force).await
            }
            async fn list(
                &self,
                labels: &BTreeMap<String, String>,
            ) -> Result<Vec<ContainerSummary>, SchedulerError> {
                (**self).list(labels).await
            }
            async fn create_sandbox(
                &self,
                spec: SandboxSpec,
            ) -> Result<ContainerId, SchedulerError> {
                (**self).create_sandbox(spec).await
            }
            async fn create_volume(&self, spec: VolumeSpec) -> Result<(), SchedulerError> {
                (**self).create_volume(spec).await
            }
            async fn remove_volume(&self, name: &str) -> Result<(), SchedulerError> {
                (**self).remove_volume(name).await
            }
            async fn list_volumes(
                &self,
                labels: &BTreeMap<String, String>,
            ) -> Result<Vec<VolumeSummary>, SchedulerError> {
                (**self).list_volumes(labels).await
            }
        }
    };
}

forward_scheduler!(Arc<S>);
forward_scheduler!(Box<S>);
