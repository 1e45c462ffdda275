//! The engine's clock: wall-clock timestamps that follow Tokio's clock.
//!
//! Every timestamp the engine records (run and task times, events) is the wall-clock
//! time at the engine's start plus the time elapsed on Tokio's clock since. In a real
//! runtime that is the wall clock (steady across system clock jumps); under
//! `tokio::time::pause()` it advances with the paused clock, so a test on the fake can
//! read durations from a run.

use std::time::SystemTime;

use tokio::time::Instant;

/// Wall-clock time anchored at the engine's start, advanced by Tokio's clock.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall: SystemTime,
    start: Instant,
}

impl Clock {
    /// A clock anchored now.
    pub(crate) fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            start: Instant::now(),
        }
    }

    /// The current time.
    pub(crate) fn now(&self) -> SystemTime {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        self.wall.checked_add(elapsed).unwrap_or(self.wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn follows_the_paused_clock() {
        let clock = Clock::new();
        let a = clock.now();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let b = clock.now();
        assert_eq!(b.duration_since(a).ok(), Some(Duration::from_secs(3600)));
    }
}
