//! Where a container is: [`ContainerState`], [`ExitStatus`] and, from a listing,
//! [`ContainerSummary`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::spec::ContainerId;

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
#[non_exhaustive]
pub enum ExitStatus {
    /// The main process exited with this code (128 + n when killed by signal n).
    Exited {
        /// The exit code.
        code: i64,
    },
    /// The kernel killed it for exceeding its memory limit.
    OutOfMemory {
        /// The exit code reported (usually 137).
        code: i64,
    },
    /// The container was removed before it could report an exit.
    Removed,
}

impl ExitStatus {
    /// The exit code, when there is one.
    pub fn code(&self) -> Option<i64> {
        match self {
            Self::Exited { code } | Self::OutOfMemory { code } => Some(*code),
            Self::Removed => None,
        }
    }

    /// Exited with code 0.
    pub fn success(&self) -> bool {
        matches!(self, Self::Exited { code: 0 })
    }
}

/// A container's state as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
#[non_exhaustive]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Ended.
    Exited {
        /// How.
        status: ExitStatus,
    },
}

/// One container found by [`Scheduler::list`](crate::Scheduler::list).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContainerSummary {
    /// The engine's id.
    pub id: ContainerId,
    /// The container's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its state.
    pub state: ContainerState,
}

impl ContainerSummary {
    /// A summary.
    pub fn new(
        id: ContainerId,
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        state: ContainerState,
    ) -> Self {
        Self {
            id,
            name: name.into(),
            labels,
            state,
        }
    }
}
