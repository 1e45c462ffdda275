//! Mapping of the manager's errors onto [`SchedulerError`], and this backend's own
//! error, which names the service and the node.

use bollard::errors::Error as BollardError;
use gofer_bollard::is_connection;
pub(crate) use gofer_bollard::{message, says_unauthorized, scrub_request, status};
use gofer_core::SchedulerError;

use crate::NAME;

/// `" on node <hostname>"`, or nothing when the node is not known (yet).
fn on_node(node: &Option<String>) -> String {
    node.as_ref()
        .map(|n| format!(" on node {n}"))
        .unwrap_or_default()
}

/// What went wrong on the swarm, naming the service (and the node, once the swarm has
/// placed the task). Carried as the source of [`SchedulerError::Engine`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwarmError {
    /// The manager failed a request about a service.
    #[error("{operation} of service {service}{}: {source}", on_node(.node))]
    Api {
        /// The operation (`"inspect"`, `"update"`, `"logs"`, ...).
        operation: &'static str,
        /// The service name or id.
        service: String,
        /// The node's host name, when known.
        node: Option<String>,
        /// The manager's answer.
        #[source]
        source: BollardError,
    },
    /// The task ended before its container ran (rejected by the node, failed to start).
    #[error("the task of service {service}{} failed before it ran: {message}", on_node(.node))]
    TaskFailed {
        /// The service name or id.
        service: String,
        /// The node's host name, when known.
        node: Option<String>,
        /// What the swarm said.
        message: String,
    },
    /// No node started the task within
    /// [`SwarmConfig::schedule_timeout`](crate::SwarmConfig::schedule_timeout).
    #[error("no node started the task of service {service} within {waited}: {message}")]
    Unschedulable {
        /// The service name.
        service: String,
        /// How long the start waited.
        waited: humantime::Duration,
        /// The task's last state and message.
        message: String,
    },
    /// A stopped task did not end within the stop grace and a margin.
    #[error("the task of service {service}{} did not end after the stop", on_node(.node))]
    StopTimeout {
        /// The service id.
        service: String,
        /// The node's host name, when known.
        node: Option<String>,
    },
    /// Part of a task's log cannot be had: the log is incomplete.
    #[error("the log of service {service}{} is incomplete: {reason}", on_node(.node))]
    LogIncomplete {
        /// The service id.
        service: String,
        /// The node's host name, when known.
        node: Option<String>,
        /// Why the rest cannot be had.
        reason: String,
    },
    /// The run network could not be removed: tasks are still attached.
    #[error("the run network {network} still has tasks attached: {message}")]
    NetworkBusy {
        /// The network name or id.
        network: String,
        /// What the manager said.
        message: String,
    },
}

impl SwarmError {
    /// Wraps this error as the [`SchedulerError`] callers match on.
    pub(crate) fn into_scheduler(self, operation: &'static str) -> SchedulerError {
        SchedulerError::engine(NAME, operation, self)
    }
}

/// A connection failure or a failure of `operation` on the service `service`.
pub(crate) fn api(
    endpoint: &str,
    operation: &'static str,
    service: &str,
    node: Option<String>,
    err: BollardError,
) -> SchedulerError {
    if is_connection(&err) {
        SchedulerError::Connection {
            scheduler: NAME,
            endpoint: endpoint.to_string(),
            source: Box::new(err),
        }
    } else {
        SwarmError::Api {
            operation,
            service: service.to_string(),
            node,
            source: err,
        }
        .into_scheduler(operation)
    }
}

/// Maps an error of an operation on the service `id`: 404 → no such container,
/// 409 → conflict, else [`api`].
pub(crate) fn service(
    endpoint: &str,
    operation: &'static str,
    id: &str,
    err: BollardError,
) -> SchedulerError {
    match status(&err) {
        Some(404) => SchedulerError::NoSuchContainer {
            scheduler: NAME,
            id: id.to_string(),
        },
        Some(409) => SchedulerError::Conflict {
            scheduler: NAME,
            id: id.to_string(),
            message: message(&err),
        },
        _ => api(endpoint, operation, id, None, err),
    }
}

/// Whether a task error says the node lacks the image (and could not pull it).
pub(crate) fn says_no_such_image(msg: &str) -> bool {
    let m = msg.to_ascii_lowercase();
    m.contains("no such image")
        || m.contains("manifest unknown")
        || m.contains("not found: manifest")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> BollardError {
        BollardError::DockerResponseServerError {
            status_code,
            message: message.to_string(),
        }
    }

    #[test]
    fn service_errors_are_classified() {
        let e = service("x", "inspect", "s1", server(404, "service s1 not found"));
        assert!(matches!(e, SchedulerError::NoSuchContainer { ref id, .. } if id == "s1"));
        let e = service(
            "x",
            "create",
            "s1",
            server(
                409,
                "rpc error: code = AlreadyExists desc = name conflicts with an existing object",
            ),
        );
        assert!(matches!(e, SchedulerError::Conflict { .. }));
        let e = service("x", "update", "s1", server(500, "boom"));
        let shown = e.to_string();
        assert!(
            shown.contains("service s1") && shown.contains("update"),
            "{shown}"
        );
        assert!(e.is_retryable());
    }

    #[test]
    fn errors_name_the_node_when_known() {
        let e = SwarmError::TaskFailed {
            service: "gofer-a-b-1-c".to_string(),
            node: Some("gofer-swarm-worker".to_string()),
            message: "No such image: x:latest".to_string(),
        };
        let shown = e.to_string();
        assert!(
            shown.contains("gofer-a-b-1-c") && shown.contains("on node gofer-swarm-worker"),
            "{shown}"
        );
        let e = SwarmError::StopTimeout {
            service: "s".to_string(),
            node: None,
        };
        assert!(!e.to_string().contains("on node"));
    }

    #[test]
    fn task_messages_are_classified() {
        assert!(says_no_such_image(
            "No such image: localhost:5000/absent:latest"
        ));
        assert!(!says_no_such_image("task: non-zero exit (3)"));
        assert!(says_unauthorized("Head ...: no basic auth credentials"));
    }
}
