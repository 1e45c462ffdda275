//! The engine's concurrency groups (see [`gofer_core::Concurrency`]): a fair semaphore
//! per group name, and the members in it — waiting or running — with a way to cancel
//! each, for `cancel_in_progress`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use gofer_core::ConcurrencyPolicy;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

type Cancel = Arc<dyn Fn() + Send + Sync>;

struct Member {
    id: u64,
    running: bool,
    cancel: Cancel,
}

struct Group {
    slots: Arc<Semaphore>,
    members: Mutex<Vec<Member>>,
}

/// Every group of one engine.
#[derive(Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Arc<Group>>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups").finish_non_exhaustive()
    }
}

/// A place in a group, waiting or held; leaving it (dropping) frees the slot and
/// forgets the member.
pub(crate) struct Place {
    groups: Arc<Groups>,
    name: String,
    group: Arc<Group>,
    id: u64,
    permit: Option<OwnedSemaphorePermit>,
}

impl Groups {
    /// Joins group `name` (made with `limit` slots when new) as a member `cancel`
    /// stops. With `CancelInProgress`, first cancels the members waiting and the oldest
    /// running ones until a slot is free for this one.
    pub(crate) fn join(
        self: &Arc<Self>,
        name: &str,
        limit: u32,
        policy: ConcurrencyPolicy,
        cancel: Cancel,
    ) -> Place {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let group = {
            let mut groups = self.groups.lock().unwrap_or_else(PoisonError::into_inner);
            groups
                .entry(name.to_string())
                .or_insert_with(|| {
                    Arc::new(Group {
                        slots: Arc::new(Semaphore::new(limit.max(1) as usize)),
                        members: Mutex::new(Vec::new()),
                    })
                })
                .clone()
        };
        {
            let mut members = group.members.lock().unwrap_or_else(PoisonError::into_inner);
            if policy == ConcurrencyPolicy::CancelInProgress {
                for m in members.iter().filter(|m| !m.running) {
                    (m.cancel)();
                }
                // No slot free: the oldest running member makes room.
                if group.slots.available_permits() == 0 {
                    if let Some(m) = members.iter().find(|m| m.running) {
                        (m.cancel)();
                    }
                }
            }
            members.push(Member {
                id,
                running: false,
                cancel,
            });
        }
        Place {
            groups: self.clone(),
            name: name.to_string(),
            group,
            id,
            permit: None,
        }
    }
}

impl Place {
    /// Waits for a slot (in arrival order).
    pub(crate) async fn acquire(&mut self) {
        if self.permit.is_some() {
            return;
        }
        if let Ok(p) = self.group.slots.clone().acquire_owned().await {
            self.permit = Some(p);
            let mut members = self
                .group
                .members
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(m) = members.iter_mut().find(|m| m.id == self.id) {
                m.running = true;
            }
        }
    }

    /// Whether a slot is free right now (nobody to wait for).
    pub(crate) fn free(&self) -> bool {
        self.group.slots.available_permits() > 0
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let empty = {
            let mut members = self
                .group
                .members
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            members.retain(|m| m.id != self.id);
            members.is_empty()
        };
        self.permit.take();
        if empty {
            // A group nobody is in goes (its next first member sets the limit again).
            let mut groups = self
                .groups
                .groups
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(g) = groups.get(&self.name) {
                let still_empty = g
                    .members
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_empty();
                if Arc::ptr_eq(g, &self.group) && still_empty {
                    groups.remove(&self.name);
                }
            }
        }
    }
}
