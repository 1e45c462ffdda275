//! How a container ends: one watcher per started container waits on containerd's task
//! exit (a blocking `Wait`, no polling), tells a kill for memory from the cgroup's own
//! counter, writes the exit into the container's labels (so it outlives the task and
//! the host process), deletes the task (which is when the shim has written the last
//! byte of output), and only then reports the exit to every waiter.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use containerd_client::services::v1::{
    Container, DeleteTaskRequest, UpdateContainerRequest, WaitRequest,
};
use gofer_core::ExitStatus;
use tokio::sync::watch;
use tonic::Code;

use crate::client::{not_found, Client};

/// The label that keeps a container's exit once its task is gone.
pub(crate) const LABEL_EXIT: &str = "dev.gofer.containerd.exit";

/// An exit as the label holds it: `exited:N` or `oom:N`.
pub(crate) fn encode(status: ExitStatus) -> String {
    match status {
        ExitStatus::OutOfMemory { code } => format!("oom:{code}"),
        other => format!("exited:{}", other.code().unwrap_or(-1)),
    }
}

/// The exit a label holds, if it is one.
pub(crate) fn decode(label: &str) -> Option<ExitStatus> {
    let (kind, code) = label.split_once(':')?;
    let code: i64 = code.parse().ok()?;
    match kind {
        "exited" => Some(ExitStatus::Exited { code }),
        "oom" => Some(ExitStatus::OutOfMemory { code }),
        _ => None,
    }
}

/// The cgroup of a container (its `cgroupsPath`, cgroupfs layout).
pub(crate) fn cgroup_path(namespace: &str, id: &str) -> String {
    format!("/gofer/{namespace}/{id}")
}

/// Whether the kernel killed something in the cgroup for memory (v1 and v2 layouts).
pub(crate) fn killed_for_memory(cgroup: &str) -> bool {
    let rel = cgroup.trim_start_matches('/');
    let files = [
        PathBuf::from("/sys/fs/cgroup/memory")
            .join(rel)
            .join("memory.oom_control"),
        PathBuf::from("/sys/fs/cgroup")
            .join(rel)
            .join("memory.events"),
    ];
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|text| {
            text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
        })
    })
}

type Slot = watch::Sender<Option<ExitStatus>>;

/// Every container's exit this process knows or waits for.
#[derive(Clone, Default)]
pub(crate) struct Exits(Arc<Mutex<HashMap<String, (Slot, bool)>>>);

impl std::fmt::Debug for Exits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exits").finish_non_exhaustive()
    }
}

impl Exits {
    /// A receiver of the container's exit (`None` until it is known).
    pub(crate) fn subscribe(&self, id: &str) -> watch::Receiver<Option<ExitStatus>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(id.to_string())
            .or_insert_with(|| (watch::channel(None).0, false))
            .0
            .subscribe()
    }

    /// Whether a watcher runs (or ran) for the container in this process.
    pub(crate) fn watched(&self, id: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(id).is_some_and(|(_, w)| *w)
    }

    /// Records an exit known from the container's label.
    pub(crate) fn known(&self, id: &str, status: ExitStatus) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = map
            .entry(id.to_string())
            .or_insert_with(|| (watch::channel(None).0, true));
        slot.1 = true;
        slot.0.send_replace(Some(status));
    }

    /// Starts the container's watcher unless one runs already.
    pub(crate) fn watch(&self, client: &Client, namespace: &str, id: &str) {
        let tx = {
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = map
                .entry(id.to_string())
                .or_insert_with(|| (watch::channel(None).0, false));
            if slot.1 {
                return;
            }
            slot.1 = true;
            slot.0.clone()
        };
        let client = client.clone();
        let id = id.to_string();
        let cgroup = cgroup_path(namespace, &id);
        tokio::spawn(async move {
            let status = watch_task(&client, &id, &cgroup).await;
            tx.send_replace(Some(status));
        });
    }

    /// Forgets a removed container (a later wait finds no container).
    pub(crate) fn forget(&self, id: &str) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// Waits for the task's exit, records it, deletes the task. A task that is gone
/// before its exit was seen (removed under the wait) reads as removed.
async fn watch_task(client: &Client, id: &str, cgroup: &str) -> ExitStatus {
    let mut unavailable = 0u32;
    let code = loop {
        let req = client.req(WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        });
        match client.tasks().wait(req).await {
            Ok(r) => break Some(i64::from(r.into_inner().exit_status)),
            Err(s) if not_found(&s) => break None,
            // containerd restarting: the shim keeps the task, so ask again.
            Err(s) if s.code() == Code::Unavailable && unavailable < 100 => {
                unavailable += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(s) => {
                tracing::warn!(container = %id, error = %s, "wait on containerd task failed");
                break None;
            }
        }
    };
    let Some(code) = code else {
        return ExitStatus::Removed;
    };
    let status = if killed_for_memory(cgroup) {
        ExitStatus::OutOfMemory { code }
    } else {
        ExitStatus::Exited { code }
    };
    let update = UpdateContainerRequest {
        container: Some(Container {
            id: id.to_string(),
            labels: HashMap::from([(LABEL_EXIT.to_string(), encode(status))]),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec![format!("labels.{LABEL_EXIT}")],
        }),
    };
    match client.containers().update(client.req(update)).await {
        Ok(_) => {}
        Err(s) if not_found(&s) => {}
        Err(s) => tracing::warn!(container = %id, error = %s, "cannot record the exit"),
    }
    let delete = client.req(DeleteTaskRequest {
        container_id: id.to_string(),
    });
    let began = std::time::Instant::now();
    match client.tasks().delete(delete).await {
        Ok(_) => {}
        Err(s) if not_found(&s) => {}
        Err(s) => tracing::warn!(container = %id, error = %s, "cannot delete the exited task"),
    }
    tracing::debug!(
        target: crate::TIMING_TARGET,
        container = %id,
        delete_us = u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
        "container exited"
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_round_trip_through_the_label() {
        for s in [
            ExitStatus::Exited { code: 0 },
            ExitStatus::Exited { code: 137 },
            ExitStatus::OutOfMemory { code: 137 },
        ] {
            assert_eq!(decode(&encode(s)), Some(s));
        }
        assert_eq!(decode("exited:x"), None);
        assert_eq!(decode("what:1"), None);
        assert_eq!(decode(""), None);
    }
}
