//! What the tasks of a run know of its services: one watch channel per service, which
//! the service's own task (`super::services`) sets as it starts, turns ready or fails.

use std::collections::{BTreeSet, HashMap};

use gofer_core::{Service, Task};
use tokio::sync::watch;

/// Where one service is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServiceState {
    /// Being started or probed.
    Starting,
    /// Ready: the tasks needing it may start.
    Ready,
    /// It could not start, was not ready in time, or exited: why.
    Failed(String),
}

/// What the tasks of a run know of its services.
#[derive(Debug, Default)]
pub(crate) struct Services {
    states: HashMap<String, watch::Receiver<ServiceState>>,
}

/// The senders of [`Services`], handed to the services' tasks.
pub(crate) struct ServiceSenders(pub(crate) Vec<(usize, watch::Sender<ServiceState>)>);

impl Services {
    /// One channel per service some task of `tasks` (those still to run) needs; the
    /// others never start.
    pub(crate) fn channels<'a>(
        services: &[Service],
        tasks: impl IntoIterator<Item = &'a Task>,
    ) -> (Self, ServiceSenders) {
        let needed: BTreeSet<&str> = tasks
            .into_iter()
            .flat_map(|t| t.services.iter().map(String::as_str))
            .collect();
        let mut states = HashMap::new();
        let mut senders = Vec::new();
        for (j, s) in services.iter().enumerate() {
            if needed.contains(s.id.as_str()) {
                let (tx, rx) = watch::channel(ServiceState::Starting);
                states.insert(s.id.clone(), rx);
                senders.push((j, tx));
            }
        }
        (Self { states }, ServiceSenders(senders))
    }

    /// Waits until every service in `needed` is ready; the first failure's message
    /// otherwise.
    pub(crate) async fn ready(&self, needed: &BTreeSet<String>) -> Result<(), String> {
        for id in needed {
            let Some(rx) = self.states.get(id) else {
                return Err(format!("service {id:?} is not one of the run's"));
            };
            let mut rx = rx.clone();
            let state = rx
                .wait_for(|s| *s != ServiceState::Starting)
                .await
                .map(|s| s.clone())
                .unwrap_or_else(|_| ServiceState::Failed(format!("service {id:?} stopped")));
            if let ServiceState::Failed(why) = state {
                return Err(why);
            }
        }
        Ok(())
    }

    /// Resolves with the message of the first service in `needed` that fails; never,
    /// when none does.
    pub(crate) async fn failed(&self, needed: &BTreeSet<String>) -> String {
        let waits = needed
            .iter()
            .filter_map(|id| self.states.get(id))
            .map(|rx| {
                let mut rx = rx.clone();
                Box::pin(async move {
                    let why = rx
                        .wait_for(|s| matches!(s, ServiceState::Failed(_)))
                        .await
                        .ok()
                        .and_then(|s| match &*s {
                            ServiceState::Failed(why) => Some(why.clone()),
                            _ => None,
                        });
                    match why {
                        Some(why) => why,
                        // The run is over: nothing fails any more.
                        None => std::future::pending().await,
                    }
                })
            });
        let waits: Vec<_> = waits.collect();
        if waits.is_empty() {
            return std::future::pending().await;
        }
        futures::future::select_all(waits).await.0
    }
}
