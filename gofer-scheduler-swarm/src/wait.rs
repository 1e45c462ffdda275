//! Waiting on the swarm: it emits no task events (the manager's event stream has
//! services, nodes, networks, secrets and configs, not tasks), so a wait looks at the
//! task again and again, with pauses that grow from
//! [`SwarmConfig::poll_initial`] by a fifth on each look up to [`SwarmConfig::poll_max`]
//! (20 ms to 500 ms by default: the end of a task is seen at most about a fifth of its
//! run time late, and a long task costs two requests a second).

use std::time::Duration;

use crate::SwarmConfig;

/// Growing pauses between two looks.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// The pauses of `config`.
    pub(crate) fn new(config: &SwarmConfig) -> Self {
        Self {
            next: config.poll_initial,
            max: config.poll_max.max(config.poll_initial),
        }
    }

    /// The same pauses, but none longer than `max`.
    pub(crate) fn capped(mut self, max: Duration) -> Self {
        self.max = self.max.min(max).max(Duration::from_millis(1));
        self.next = self.next.min(self.max);
        self
    }

    /// The next pause, without sleeping.
    pub(crate) fn step(&mut self) -> Duration {
        let now = self.next;
        self.next = (self.next + self.next / 5).min(self.max);
        now
    }

    /// Sleeps for the next pause.
    pub(crate) async fn pause(&mut self) {
        tokio::time::sleep(self.step()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_by_a_fifth_up_to_the_max() {
        let config = SwarmConfig::new().poll(Duration::from_millis(20), Duration::from_millis(30));
        let mut b = Backoff::new(&config);
        let got: Vec<u128> = (0..5).map(|_| b.step().as_millis()).collect();
        assert_eq!(got, [20, 24, 28, 30, 30]);
        let mut capped = Backoff::new(&SwarmConfig::new()).capped(Duration::from_millis(25));
        let got: Vec<u128> = (0..3).map(|_| capped.step().as_millis()).collect();
        assert_eq!(got, [20, 24, 25]);
    }
}
