//! Concurrency groups: at most `limit` members of a group at once, engine-wide, and
//! across the engines sharing a run store.
//!
//! A task (or a whole pipeline's run) names a group, a template over variables such as
//! `deploy-{{ENV}}`, resolved when the task is about to start (for a pipeline: when
//! the run starts) from the task's plain variables, the run's variables and
//! `GOFER_PIPELINE_ID`; a `{{NAME}}` none of them sets fails the task (reason
//! `FailedPrecondition`) naming it. Members past the limit wait:
//!
//! - [`ConcurrencyPolicy::Queue`]: in the order they arrived; a waiting task stays
//!   `Waiting` with a message naming the group.
//! - [`ConcurrencyPolicy::CancelInProgress`]: the newcomer cancels every member still
//!   waiting and the oldest running ones until there is room (they end `Cancelled`,
//!   stopped with the engine's grace), then takes their place.
//!
//! A group's limit is the one its first member gave while the group is in use. Runs of
//! one engine share its groups. With a run store that keeps groups (the in-memory and
//! SQLite stores do; see [`RunStore::enter_group`](crate::RunStore::enter_group)), the
//! groups live in the store and every engine sharing it shares them: several `gofer
//! run` processes on one data directory take turns in one order, and a newer member
//! in one process cancels the one in progress in another (which learns it within a
//! second). A member keeps its place while its run is unfinished in the store, so a
//! run recovered after a crash of its host goes on where it was in the order, holding
//! its slot or waiting; a member whose run completed, or is gone from the store,
//! frees its place.

use serde::{Deserialize, Serialize};

/// Largest `limit` of a group.
pub const MAX_CONCURRENCY_LIMIT: u32 = 1000;

/// A concurrency group (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Concurrency {
    /// The group's name, a template over variables (`deploy-{{ENV}}`).
    pub group: String,
    /// Most members running at once (default 1).
    #[serde(default = "one")]
    pub limit: u32,
    /// What a member past the limit does.
    #[serde(default)]
    pub policy: ConcurrencyPolicy,
}

fn one() -> u32 {
    1
}

/// What a member past a group's limit does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConcurrencyPolicy {
    /// Waits its turn, in arrival order.
    #[default]
    Queue,
    /// Cancels the members waiting and the oldest running ones, and takes their place.
    CancelInProgress,
}

impl Concurrency {
    /// A group of limit 1 that queues.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            limit: 1,
            policy: ConcurrencyPolicy::Queue,
        }
    }

    /// Sets the limit.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    /// Sets the policy.
    #[must_use]
    pub fn policy(mut self, policy: ConcurrencyPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// What is wrong with it, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.group.trim().is_empty() {
            return Some("the group name is empty".into());
        }
        if self.group.len() > 256 {
            return Some(format!(
                "the group name is {} bytes; at most 256",
                self.group.len()
            ));
        }
        if !(1..=MAX_CONCURRENCY_LIMIT).contains(&self.limit) {
            return Some(format!(
                "limit {} is not between 1 and {MAX_CONCURRENCY_LIMIT}",
                self.limit
            ));
        }
        self.resolve(|_| Some(String::new())).err()
    }

    /// The group's name with each `{{NAME}}` replaced by `lookup(NAME)`.
    ///
    /// # Errors
    /// A `{{` without its `}}`, a name that is not a variable name, or one `lookup`
    /// does not know, named.
    pub fn resolve(&self, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
        let mut out = String::with_capacity(self.group.len());
        let mut rest = self.group.as_str();
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find("}}") else {
                return Err(format!("{{{{ without }}}} in group {:?}", self.group));
            };
            let name = after[..end].trim();
            if !crate::variable::is_valid_env_key(name) {
                return Err(format!(
                    "{name:?} in group {:?} is not a variable name",
                    self.group
                ));
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(format!(
                        "group {:?} names variable {name:?}, which is not set",
                        self.group
                    ))
                }
            }
            rest = &after[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn groups_resolve_from_variables_and_say_what_is_missing() {
        let c = Concurrency::new("deploy-{{ENV}}-{{ REGION }}");
        let got = c.resolve(|k| match k {
            "ENV" => Some("prod".into()),
            "REGION" => Some("eu".into()),
            _ => None,
        });
        assert_eq!(got.as_deref(), Ok("deploy-prod-eu"));
        let e = c.resolve(|_| None).unwrap_err();
        assert!(e.contains("\"ENV\""), "{e}");
        assert!(Concurrency::new("x-{{ENV")
            .problem()
            .unwrap()
            .contains("without"));
        assert!(Concurrency::new("x-{{1bad}}")
            .problem()
            .unwrap()
            .contains("not a variable"));
        assert!(Concurrency::new(" ").problem().is_some());
        assert!(Concurrency::new("g")
            .limit(0)
            .problem()
            .unwrap()
            .contains("limit 0"));
        assert_eq!(Concurrency::new("g-{{A}}").problem(), None);
    }
}
