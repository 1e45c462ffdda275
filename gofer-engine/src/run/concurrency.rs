//! The engine's concurrency groups (see [`gofer_core::Concurrency`]).
//!
//! Where they live:
//!
//! - **In the run store**, when the engine has one that keeps groups
//!   ([`RunStore::keeps_groups`]): every engine sharing the store (the `gofer`
//!   command's concurrent processes) shares each group's limit and order. A member
//!   enters by [`RunStore::enter_group`] and polls it while it waits (every
//!   [`WAIT_POLL`], at once when a member of this engine leaves) and while it holds a
//!   slot (every [`HOLD_POLL`], to learn that a newer member of another process
//!   superseded it). A member keeps its place while its run is unfinished in the store,
//!   so a run recovered after a crash enters again where it was, holding or not.
//! - **In memory** otherwise: a fair semaphore per group name and the members in it,
//!   with a way to cancel each, for `cancel_in_progress`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gofer_core::{ConcurrencyPolicy, DynRunStore, GroupEntry};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tracing::warn;

type Cancel = Arc<dyn Fn() + Send + Sync>;

/// How often a member waiting in a store-kept group asks the store again.
pub(crate) const WAIT_POLL: Duration = Duration::from_millis(250);
/// How often a member holding a slot of a store-kept group asks whether it was
/// superseded.
pub(crate) const HOLD_POLL: Duration = Duration::from_secs(1);

struct Member {
    id: u64,
    running: bool,
    cancel: Cancel,
}

struct Group {
    slots: Arc<Semaphore>,
    members: Mutex<Vec<Member>>,
}

/// Who joins a group: a run (`task: None`) or one of its tasks.
pub(crate) struct Joiner {
    pub(crate) pipeline: String,
    pub(crate) run: u64,
    pub(crate) task: Option<String>,
}

/// Every group of one engine.
#[derive(Default)]
pub(crate) struct Groups {
    groups: Mutex<HashMap<String, Arc<Group>>>,
    next: AtomicU64,
    store: Option<Arc<DynRunStore>>,
    /// Told when a member of a store-kept group of this engine joins or leaves.
    changed: Arc<Notify>,
    /// Set by a simulated crash: members no longer leave the store's groups (a dead
    /// process leaves nothing).
    dead: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Groups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Groups")
            .field("in_store", &self.store.is_some())
            .finish_non_exhaustive()
    }
}

enum Kind {
    Local {
        group: Arc<Group>,
        id: u64,
        permit: Option<OwnedSemaphorePermit>,
    },
    Store {
        store: Arc<DynRunStore>,
        entry: GroupEntry,
        holds: bool,
        superseded: bool,
        watcher: Option<tokio::task::JoinHandle<()>>,
    },
}

/// A place in a group, waiting or held; leaving it (dropping) frees the slot and
/// forgets the member.
pub(crate) struct Place {
    groups: Arc<Groups>,
    name: String,
    cancel: Cancel,
    kind: Kind,
}

impl Groups {
    /// Groups kept in `store` when it keeps groups, else in memory.
    pub(crate) fn new(store: Option<Arc<DynRunStore>>) -> Self {
        Self {
            store: store.filter(|s| s.keeps_groups()),
            ..Self::default()
        }
    }

    /// From now on, places dropped do not leave the store's groups, as when the
    /// process dies (for `Engine::simulate_crash`).
    pub(crate) fn play_dead(&self) {
        self.dead.store(true, Ordering::SeqCst);
    }

    /// Whether the groups are kept in the run store (a member's run must then be
    /// recorded there before it joins).
    pub(crate) fn in_store(&self) -> bool {
        self.store.is_some()
    }

    /// Joins group `name` (with `limit` slots) as `who`, a member `cancel` stops. With
    /// `CancelInProgress`, first cancels the members waiting and the oldest running
    /// ones until a slot is free for this one.
    pub(crate) async fn join(
        self: &Arc<Self>,
        name: &str,
        who: Joiner,
        limit: u32,
        policy: ConcurrencyPolicy,
        cancel: Cancel,
    ) -> Place {
        let kind = match &self.store {
            Some(store) => {
                let entry = GroupEntry {
                    group: name.to_string(),
                    pipeline: who.pipeline,
                    run: who.run,
                    task: who.task,
                    limit,
                    policy,
                };
                let mut kind = Kind::Store {
                    store: store.clone(),
                    entry,
                    holds: false,
                    superseded: false,
                    watcher: None,
                };
                enter(&mut kind, &cancel).await;
                // Members of this engine that were superseded learn it now.
                self.changed.notify_waiters();
                kind
            }
            None => self.join_local(name, limit, policy, cancel.clone()),
        };
        Place {
            groups: self.clone(),
            name: name.to_string(),
            cancel,
            kind,
        }
    }

    fn join_local(
        &self,
        name: &str,
        limit: u32,
        policy: ConcurrencyPolicy,
        cancel: Cancel,
    ) -> Kind {
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
        Kind::Local {
            group,
            id,
            permit: None,
        }
    }
}

/// Asks the store where a store-kept member stands (entering the group when it is not
/// in it), and stops the member once when it learns it was superseded. A store that
/// fails is said and asked again later.
async fn enter(kind: &mut Kind, cancel: &Cancel) {
    let Kind::Store {
        store,
        entry,
        holds,
        superseded,
        ..
    } = kind
    else {
        return;
    };
    match store.enter_group(entry).await {
        Ok(turn) => {
            *holds = turn.holds;
            if turn.superseded && !*superseded {
                *superseded = true;
                cancel();
            }
        }
        Err(e) => {
            warn!(group = %entry.group, error = %e, "concurrency group: the run store failed; asking again")
        }
    }
}

impl Place {
    /// Waits for a slot (in arrival order).
    pub(crate) async fn acquire(&mut self) {
        match &mut self.kind {
            Kind::Local {
                group, id, permit, ..
            } => {
                if permit.is_some() {
                    return;
                }
                if let Ok(p) = group.slots.clone().acquire_owned().await {
                    *permit = Some(p);
                    let mut members = group.members.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(m) = members.iter_mut().find(|m| m.id == *id) {
                        m.running = true;
                    }
                }
            }
            Kind::Store { .. } => {
                let changed = self.groups.changed.clone();
                loop {
                    if let Kind::Store { holds: true, .. } = self.kind {
                        break;
                    }
                    let notified = changed.notified();
                    tokio::pin!(notified);
                    notified.as_mut().enable();
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep(WAIT_POLL) => {}
                    }
                    enter(&mut self.kind, &self.cancel).await;
                }
                self.watch();
            }
        }
    }

    /// Polls a held store-kept slot until the place is left, stopping the member when
    /// a newer one supersedes it.
    fn watch(&mut self) {
        let Kind::Store {
            store,
            entry,
            superseded,
            watcher,
            ..
        } = &mut self.kind
        else {
            return;
        };
        if watcher.is_some() || *superseded {
            return;
        }
        let mut kind = Kind::Store {
            store: store.clone(),
            entry: entry.clone(),
            holds: true,
            superseded: false,
            watcher: None,
        };
        let cancel = self.cancel.clone();
        let changed = self.groups.changed.clone();
        *watcher = Some(tokio::spawn(async move {
            loop {
                let notified = changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                tokio::select! {
                    () = notified => {}
                    () = tokio::time::sleep(HOLD_POLL) => {}
                }
                enter(&mut kind, &cancel).await;
                if let Kind::Store {
                    superseded: true, ..
                } = kind
                {
                    return;
                }
            }
        }));
    }

    /// Whether no slot is free right now (the member will wait).
    pub(crate) fn waiting(&self) -> bool {
        match &self.kind {
            Kind::Local { group, permit, .. } => {
                permit.is_none() && group.slots.available_permits() == 0
            }
            Kind::Store { holds, .. } => !holds,
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        match &mut self.kind {
            Kind::Local { group, id, permit } => {
                let empty = {
                    let mut members = group.members.lock().unwrap_or_else(PoisonError::into_inner);
                    members.retain(|m| m.id != *id);
                    members.is_empty()
                };
                permit.take();
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
                        if Arc::ptr_eq(g, group) && still_empty {
                            groups.remove(&self.name);
                        }
                    }
                }
            }
            Kind::Store {
                store,
                entry,
                watcher,
                ..
            } => {
                if let Some(w) = watcher.take() {
                    w.abort();
                }
                if self.groups.dead.load(Ordering::SeqCst) {
                    return;
                }
                // Without a runtime (the host is going away) the member stays until its
                // run completes, which frees it too.
                let Ok(rt) = tokio::runtime::Handle::try_current() else {
                    return;
                };
                let (store, group, member) = (store.clone(), entry.group.clone(), entry.member());
                let changed = self.groups.changed.clone();
                rt.spawn(async move {
                    if let Err(e) = store.leave_group(&group, &member).await {
                        warn!(%group, %member, error = %e, "concurrency group: leaving failed; the slot frees when the run completes");
                    }
                    changed.notify_waiters();
                });
            }
        }
    }
}
