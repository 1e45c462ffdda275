//! Concurrency groups kept by a run store, so that engines in several processes sharing
//! one store (the `gofer` command's concurrent runs) keep one group's limit and order
//! between them (see [`RunStore::enter_group`](super::RunStore::enter_group)).
//!
//! The rules are [`enter`], a pure function over a group's members that every store
//! applies inside one transaction:
//!
//! - A member is a run (`<pipeline>/<run>`, a pipeline's group) or a task of a run
//!   (`<pipeline>/<run>/<task>`). It keeps its place while its run is unfinished in the
//!   store: a process that dies leaves its runs unfinished, so their members keep their
//!   places and order until the run is recovered (entering again finds the same place,
//!   holding or not) or completes. A member whose run is complete, or not in the store,
//!   is dropped by the next entry.
//! - Members hold slots in order of arrival (`seq`): one may hold when the holders and
//!   the waiters that arrived before it are fewer than the limit. The limit is the one
//!   the oldest member entered with (as for groups in an engine's memory: the first
//!   member's, while the group is in use).
//! - A member arriving with [`ConcurrencyPolicy::CancelInProgress`] marks every waiting
//!   member superseded and, when no slot is free, the oldest holder; superseded members
//!   are told so when they next enter (the engines poll) and stop with their grace. A
//!   superseded holder keeps its slot until it leaves.

use crate::concurrency::ConcurrencyPolicy;

/// A member asking for (or keeping) its place in a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    /// The group's resolved name.
    pub group: String,
    /// The member's pipeline.
    pub pipeline: String,
    /// The member's run.
    pub run: u64,
    /// The task, for a task's group; `None` for a pipeline's group (the whole run).
    pub task: Option<String>,
    /// How many members may hold a slot at once (at least 1).
    pub limit: u32,
    /// What a new member does to those in progress.
    pub policy: ConcurrencyPolicy,
}

impl GroupEntry {
    /// The member's name: `<pipeline>/<run>` or `<pipeline>/<run>/<task>`.
    pub fn member(&self) -> String {
        member_name(&self.pipeline, self.run, self.task.as_deref())
    }
}

/// A member's name: `<pipeline>/<run>` or `<pipeline>/<run>/<task>`.
pub fn member_name(pipeline: &str, run: u64, task: Option<&str>) -> String {
    match task {
        Some(t) => format!("{pipeline}/{run}/{t}"),
        None => format!("{pipeline}/{run}"),
    }
}

/// One member of a group, as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Its name ([`GroupEntry::member`]).
    pub member: String,
    /// Its run's pipeline.
    pub pipeline: String,
    /// Its run.
    pub run: u64,
    /// Its place in arrival order (smaller arrived first).
    pub seq: u64,
    /// Whether it holds a slot.
    pub holds: bool,
    /// Whether a newer member asked it to stop.
    pub superseded: bool,
    /// The limit it entered with.
    pub limit: u32,
}

/// What a member entering learns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupTurn {
    /// It holds a slot (it may run).
    pub holds: bool,
    /// A newer member of a cancel-in-progress group asked it to stop.
    pub superseded: bool,
    /// The members ahead of it (holders, then earlier waiters), oldest first; empty
    /// when it holds.
    pub ahead: Vec<String>,
}

/// Applies `entry` to the group's `members` (every member of `entry.group`, any
/// order): drops the members whose run `live` says is over (never the entering one),
/// adds the entering member when new (with the next `seq`, superseding others under
/// cancel-in-progress), gives it a slot when its turn has come, and says where it
/// stands. The members come back sorted by `seq`.
pub fn enter(
    members: &mut Vec<GroupMember>,
    entry: &GroupEntry,
    live: impl Fn(&str, u64) -> bool,
) -> GroupTurn {
    let name = entry.member();
    members.retain(|m| m.member == name || live(&m.pipeline, m.run));
    members.sort_by_key(|m| m.seq);
    let limit = members.first().map_or(entry.limit, |m| m.limit).max(1) as usize;
    if !members.iter().any(|m| m.member == name) {
        if entry.policy == ConcurrencyPolicy::CancelInProgress {
            for m in members.iter_mut().filter(|m| !m.holds) {
                m.superseded = true;
            }
            let holders = members.iter().filter(|m| m.holds).count();
            if holders >= limit {
                // The oldest holders not yet asked make room for this one.
                let asked = members.iter().filter(|m| m.holds && m.superseded).count();
                let need = (holders + 1 - limit).saturating_sub(asked);
                for m in members
                    .iter_mut()
                    .filter(|m| m.holds && !m.superseded)
                    .take(need)
                {
                    m.superseded = true;
                }
            }
        }
        let seq = members.iter().map(|m| m.seq).max().unwrap_or(0) + 1;
        members.push(GroupMember {
            member: name.clone(),
            pipeline: entry.pipeline.clone(),
            run: entry.run,
            seq,
            holds: false,
            superseded: false,
            limit: entry.limit,
        });
    }
    let holders: Vec<String> = members
        .iter()
        .filter(|m| m.holds)
        .map(|m| m.member.clone())
        .collect();
    let pos = members
        .iter()
        .position(|m| m.member == name)
        .unwrap_or(members.len() - 1);
    let earlier: Vec<String> = members[..pos]
        .iter()
        .filter(|m| !m.holds && !m.superseded)
        .map(|m| m.member.clone())
        .collect();
    let me = &mut members[pos];
    if !me.holds && !me.superseded && holders.len() + earlier.len() < limit {
        me.holds = true;
    }
    GroupTurn {
        holds: me.holds,
        superseded: me.superseded,
        ahead: if me.holds {
            Vec::new()
        } else {
            holders.into_iter().chain(earlier).collect()
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(run: u64, policy: ConcurrencyPolicy) -> GroupEntry {
        GroupEntry {
            group: "g".into(),
            pipeline: "p".into(),
            run,
            task: None,
            limit: 1,
            policy,
        }
    }

    #[test]
    fn members_hold_in_arrival_order_and_name_who_is_ahead() {
        let mut m = Vec::new();
        let all = |_: &str, _: u64| true;
        assert!(enter(&mut m, &entry(1, ConcurrencyPolicy::Queue), all).holds);
        let t2 = enter(&mut m, &entry(2, ConcurrencyPolicy::Queue), all);
        let t3 = enter(&mut m, &entry(3, ConcurrencyPolicy::Queue), all);
        assert!(!t2.holds && !t3.holds);
        assert_eq!(t3.ahead, ["p/1", "p/2"]);
        // Run 1 is over: 2 (not 3) gets the slot, even when 3 asks first.
        let over1 = |_: &str, r: u64| r != 1;
        assert!(!enter(&mut m, &entry(3, ConcurrencyPolicy::Queue), over1).holds);
        assert!(enter(&mut m, &entry(2, ConcurrencyPolicy::Queue), over1).holds);
        // Entering again keeps the place.
        assert!(enter(&mut m, &entry(2, ConcurrencyPolicy::Queue), over1).holds);
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn cancel_in_progress_supersedes_waiters_and_the_oldest_holder() {
        let mut m = Vec::new();
        let all = |_: &str, _: u64| true;
        enter(&mut m, &entry(1, ConcurrencyPolicy::CancelInProgress), all);
        enter(&mut m, &entry(2, ConcurrencyPolicy::CancelInProgress), all);
        let t3 = enter(&mut m, &entry(3, ConcurrencyPolicy::CancelInProgress), all);
        assert!(!t3.holds);
        assert_eq!(t3.ahead, ["p/1"]);
        let t1 = enter(&mut m, &entry(1, ConcurrencyPolicy::CancelInProgress), all);
        assert!(t1.holds && t1.superseded);
        let t2 = enter(&mut m, &entry(2, ConcurrencyPolicy::CancelInProgress), all);
        assert!(!t2.holds && t2.superseded);
        // 1 leaves (its run ends): 3 holds; the superseded 2 never does.
        let gone = |_: &str, r: u64| r != 1;
        assert!(!enter(&mut m, &entry(2, ConcurrencyPolicy::CancelInProgress), gone).holds);
        assert!(enter(&mut m, &entry(3, ConcurrencyPolicy::CancelInProgress), gone).holds);
    }

    #[test]
    fn a_limit_of_two_lets_two_hold() {
        let mut m = Vec::new();
        let all = |_: &str, _: u64| true;
        let two = |r| GroupEntry {
            limit: 2,
            ..entry(r, ConcurrencyPolicy::Queue)
        };
        assert!(enter(&mut m, &two(1), all).holds);
        assert!(enter(&mut m, &two(2), all).holds);
        assert!(!enter(&mut m, &two(3), all).holds);
    }
}
