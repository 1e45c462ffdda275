//! The few fields this crate reads from libpod's container inspect and list answers.
//!
//! Parsed with minimal structs that ignore every other field and default missing ones,
//! so changes elsewhere in the answer (Podman 5 turned `Config.StopSignal` from a
//! number into a string, which breaks podman-api 0.11's typed inspect) do not matter.

use std::collections::BTreeMap;

use gofer_core::{ContainerState, ExitStatus, SchedulerError};
use serde::Deserialize;

use crate::NAME;

/// `GET /libpod/containers/{id}/json`, reduced.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Inspect {
    /// The full id.
    pub(crate) id: String,
    /// The name.
    pub(crate) name: String,
    /// The state.
    pub(crate) state: InspectState,
    /// Where conmon keeps the container's sockets (absent from older answers).
    pub(crate) static_dir: String,
}

/// `State` of an inspect answer, reduced.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default)]
pub(crate) struct InspectState {
    /// `created`, `running`, `exited`, ...
    #[serde(rename = "Status")]
    pub(crate) status: String,
    /// The exit code once exited.
    #[serde(rename = "ExitCode")]
    pub(crate) exit_code: i64,
    /// Whether the kernel killed it for memory.
    #[serde(rename = "OOMKilled")]
    pub(crate) oom_killed: bool,
}

impl InspectState {
    /// How it ended, given that it has ended.
    pub(crate) fn exit_status(&self) -> ExitStatus {
        if self.oom_killed {
            ExitStatus::OutOfMemory {
                code: self.exit_code,
            }
        } else {
            ExitStatus::Exited {
                code: self.exit_code,
            }
        }
    }

    /// The gofer state.
    pub(crate) fn to_state(&self, id: &str) -> Result<ContainerState, SchedulerError> {
        map_status(&self.status, id, || self.exit_status())
    }
}

/// One entry of `GET /libpod/containers/json`, reduced.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ListEntry {
    /// The full id.
    pub(crate) id: String,
    /// Its names (one).
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) names: Vec<String>,
    /// Its labels.
    #[serde(deserialize_with = "null_as_default")]
    pub(crate) labels: BTreeMap<String, String>,
    /// `created`, `running`, `exited`, ...
    pub(crate) state: String,
    /// The exit code once exited.
    pub(crate) exit_code: i64,
}

/// Maps libpod's state names. Libpod has more states than gofer: `configured` and
/// `initialized` are not started yet, `paused` and `stopping` still run, `stopped` and
/// `exited` have ended, `removing` is going away.
pub(crate) fn map_status(
    status: &str,
    id: &str,
    ended: impl FnOnce() -> ExitStatus,
) -> Result<ContainerState, SchedulerError> {
    Ok(match status.to_ascii_lowercase().as_str() {
        "configured" | "created" | "initialized" => ContainerState::Created,
        "running" | "paused" | "stopping" => ContainerState::Running,
        "exited" | "stopped" => ContainerState::Exited { status: ended() },
        "removing" => ContainerState::Exited {
            status: ExitStatus::Removed,
        },
        other => {
            return Err(SchedulerError::engine(
                NAME,
                "state",
                format!("container {id:?} is in a state gofer does not know: {other:?}"),
            ))
        }
    })
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An inspect answer as Podman 5 gives it: a string `StopSignal` and fields
    /// podman-api 0.11 does not know. Only the reduced fields are read.
    #[test]
    fn inspect_tolerates_podman5_shapes() {
        let json = r#"{"Id":"abc","Name":"n","State":{"Status":"exited","ExitCode":137,
            "OOMKilled":true,"CgroupPath":"/x","NewField":{"a":1}},
            "Config":{"StopSignal":"SIGTERM","Labels":null},"HostConfig":{}}"#;
        let i: Inspect = serde_json::from_str(json).unwrap();
        assert_eq!(i.id, "abc");
        assert_eq!(
            i.state.to_state("abc").unwrap(),
            ContainerState::Exited {
                status: ExitStatus::OutOfMemory { code: 137 }
            }
        );
    }

    #[test]
    fn list_entry_tolerates_nulls() {
        let json = r#"[{"Id":"abc","Names":null,"Labels":null,"State":"running","Size":null,"Created":1700000000}]"#;
        let l: Vec<ListEntry> = serde_json::from_str(json).unwrap();
        assert!(l[0].names.is_empty() && l[0].labels.is_empty());
    }

    #[test]
    fn states_map() {
        let ended = || ExitStatus::Exited { code: 3 };
        assert_eq!(
            map_status("created", "x", ended).unwrap(),
            ContainerState::Created
        );
        assert_eq!(
            map_status("paused", "x", ended).unwrap(),
            ContainerState::Running
        );
        assert_eq!(
            map_status("stopped", "x", ended).unwrap(),
            ContainerState::Exited { status: ended() }
        );
        assert_eq!(
            map_status("removing", "x", ended).unwrap(),
            ContainerState::Exited {
                status: ExitStatus::Removed
            }
        );
        let err = map_status("weird", "x", ended).unwrap_err();
        assert!(err.to_string().contains("weird"), "{err}");
    }
}
