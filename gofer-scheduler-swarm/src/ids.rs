//! What a [`ContainerId`] of this backend names (a service, or a run network), and the
//! swarm names made from gofer's container names.

use gofer_core::ContainerId;

/// The prefix of the ids of run networks (the sandboxes of this backend); a service
/// id never holds a `:`.
const NETWORK_PREFIX: &str = "network:";

/// Swarm's longest service and network name.
const MAX_NAME: usize = 63;

/// What an id refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// A service (one task execution), by service id.
    Service(&'a str),
    /// A run network, by network id.
    Network(&'a str),
}

/// Reads an id.
pub(crate) fn target(id: &ContainerId) -> Target<'_> {
    match id.0.strip_prefix(NETWORK_PREFIX) {
        Some(net) => Target::Network(net),
        None => Target::Service(&id.0),
    }
}

/// The id of the run network with the swarm id `net`.
pub(crate) fn network_id(net: &str) -> ContainerId {
    ContainerId(format!("{NETWORK_PREFIX}{net}"))
}

/// FNV-1a, 64 bits: a stable short digest for names that must be cut.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The swarm name for a gofer name: a DNS name component of at most 63 characters.
///
/// Characters other than `[A-Za-z0-9_-]` become `-` (Swarm refuses a `.`, which
/// [`sandbox_container_name`](gofer_core::naming::sandbox_container_name) uses); a name
/// that is still too long keeps its first 46 characters and gets a digest of the whole
/// name, so the mapping stays deterministic (a second start of one name still
/// conflicts) and distinct names stay distinct. The gofer name itself is kept in the
/// [`LABEL_NAME`](crate::LABEL_NAME) label.
pub(crate) fn swarm_name(name: &str) -> String {
    let mut clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let changed = clean != name;
    if clean.len() > MAX_NAME || (changed && clean.len() > MAX_NAME - 17) {
        clean.truncate(MAX_NAME - 17);
    }
    if changed || name.len() > MAX_NAME {
        // Keep the cleaned name apart from a name that was already clean.
        clean = format!("{}-{:016x}", clean.trim_end_matches('-'), fnv1a(name));
    }
    clean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_say_what_they_name() {
        assert_eq!(
            target(&ContainerId::from("abc123")),
            Target::Service("abc123")
        );
        assert_eq!(target(&network_id("n1")), Target::Network("n1"));
    }

    #[test]
    fn clean_short_names_are_kept() {
        assert_eq!(
            swarm_name("gofer-ci1-build-7-simple_task"),
            "gofer-ci1-build-7-simple_task"
        );
    }

    #[test]
    fn dots_and_long_names_are_made_valid_and_stay_distinct() {
        let sandbox = swarm_name("gofer-ci1-build-7.sandbox");
        assert!(!sandbox.contains('.'), "{sandbox}");
        assert_ne!(sandbox, swarm_name("gofer-ci1-build-7-sandbox"));
        let long_a = format!("gofer-{}-a", "x".repeat(70));
        let long_b = format!("gofer-{}-b", "x".repeat(70));
        let (a, b) = (swarm_name(&long_a), swarm_name(&long_b));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME, "{a} {b}");
        assert_ne!(a, b);
        assert_eq!(a, swarm_name(&long_a), "deterministic");
    }
}
