//! The retry model: [`RetryPolicy`] says how often a task is attempted, how long the
//! engine waits between attempts, and which failures are retried ([`RetryOn`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most attempts a [`RetryPolicy`] may ask for.
pub const MAX_ATTEMPTS: u32 = 100;

/// The largest backoff factor a [`RetryPolicy`] may have.
pub const MAX_FACTOR: f64 = 1000.0;

/// Which failures of an attempt lead to another attempt.
///
/// Never retried, whatever this says: a success, a failed precondition (a missing or
/// forbidden key gives the same answer again), a cancel of the run or of the task,
/// and the run's timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum RetryOn {
    /// Any failure of the attempt: a non-zero exit, a scheduler error (pull, start,
    /// wait), the task's own timeout, a container that vanished, an incomplete log
    /// the engine fails.
    #[default]
    AnyFailure,
    /// Only an exit with one of these codes.
    ExitCodes(Vec<i64>),
    /// Only a scheduler error: the image could not be pulled, the container could not
    /// be created or started, or its exit could not be awaited.
    SchedulerErrors,
}

/// How a failed task is attempted again.
///
/// Each attempt is its own container (named with the attempt number, see
/// [`naming::task_container_name_attempt`](crate::naming::task_container_name_attempt)),
/// its own log and its own record; the task's status is its last attempt's. The
/// task's timeout applies to each attempt. The wait before attempt *n + 1* is
/// `initial_backoff × factor^(n − 1)`, at most `max_backoff`.
///
/// ```
/// use std::time::Duration;
/// use gofer_core::{RetryOn, RetryPolicy, Task};
/// let task = Task::new("flaky_test", "busybox")
///     .command(["sh", "-c", "make test"])
///     .retry(
///         RetryPolicy::new(3)
///             .backoff(Duration::from_secs(1), 2.0, Duration::from_secs(30))
///             .retry_on(RetryOn::ExitCodes(vec![1])),
///     );
/// let policy = task.retry.as_ref().unwrap();
/// assert_eq!(policy.backoff_after(1), Duration::from_secs(1));
/// assert_eq!(policy.backoff_after(2), Duration::from_secs(2));
/// assert_eq!(policy.backoff_after(50), Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// How many attempts in all, the first included (1 to [`MAX_ATTEMPTS`]).
    pub attempts: u32,
    /// The wait before the second attempt. Written like `"1s"` or `"500ms"`.
    #[serde(default, with = "humantime_serde")]
    pub initial_backoff: Duration,
    /// What each later wait is multiplied by (1.0 to [`MAX_FACTOR`]).
    #[serde(default = "one")]
    pub factor: f64,
    /// The longest wait (at least `initial_backoff`). Written like `"1m"`.
    #[serde(default = "max_backoff_default", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Which failures are retried.
    #[serde(default)]
    pub retry_on: RetryOn,
}

fn one() -> f64 {
    1.0
}

fn max_backoff_default() -> Duration {
    Duration::from_secs(300)
}

impl RetryPolicy {
    /// `attempts` attempts in all, no wait between them, any failure retried.
    pub fn new(attempts: u32) -> Self {
        Self {
            attempts,
            initial_backoff: Duration::ZERO,
            factor: 1.0,
            max_backoff: max_backoff_default(),
            retry_on: RetryOn::AnyFailure,
        }
    }

    /// Sets the backoff: the first wait, its growth factor and the longest wait.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, factor: f64, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.factor = factor;
        self.max_backoff = max;
        self
    }

    /// Sets which failures are retried.
    #[must_use]
    pub fn retry_on(mut self, on: RetryOn) -> Self {
        self.retry_on = on;
        self
    }

    /// The wait after attempt `attempt` (1-based) failed, before the next one:
    /// `initial_backoff × factor^(attempt − 1)`, capped at `max_backoff`. Never
    /// panics: a product too large to represent is the cap.
    pub fn backoff_after(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let scale = self.factor.powi(exp);
        let wait = Duration::try_from_secs_f64(self.initial_backoff.as_secs_f64() * scale)
            .unwrap_or(self.max_backoff);
        wait.min(self.max_backoff)
    }

    /// The problems of this policy, as `(field, message)` (empty when it is valid).
    pub(crate) fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            out.push((
                "retry.attempts",
                format!("{} must be between 1 and {MAX_ATTEMPTS}", self.attempts),
            ));
        }
        if !(self.factor.is_finite() && (1.0..=MAX_FACTOR).contains(&self.factor)) {
            out.push((
                "retry.factor",
                format!("{} must be a number from 1 to {MAX_FACTOR}", self.factor),
            ));
        }
        if self.max_backoff < self.initial_backoff {
            out.push((
                "retry.max_backoff",
                format!(
                    "{} is shorter than retry.initial_backoff ({})",
                    humantime::format_duration(self.max_backoff),
                    humantime::format_duration(self.initial_backoff)
                ),
            ));
        }
        if let RetryOn::ExitCodes(codes) = &self.retry_on {
            if codes.is_empty() {
                out.push((
                    "retry.retry_on",
                    "exit_codes must list at least one code".to_string(),
                ));
            } else if codes.contains(&0) {
                out.push((
                    "retry.retry_on",
                    "exit code 0 is a success and is never retried".to_string(),
                ));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped_without_overflow() {
        let p =
            RetryPolicy::new(5).backoff(Duration::from_millis(100), 3.0, Duration::from_secs(1));
        assert_eq!(p.backoff_after(1), Duration::from_millis(100));
        assert_eq!(p.backoff_after(2), Duration::from_millis(300));
        assert_eq!(p.backoff_after(3), Duration::from_millis(900));
        assert_eq!(p.backoff_after(4), Duration::from_secs(1));
        assert_eq!(p.backoff_after(u32::MAX), Duration::from_secs(1));
        let huge = RetryPolicy::new(100).backoff(Duration::MAX, MAX_FACTOR, Duration::MAX);
        assert_eq!(huge.backoff_after(100), Duration::MAX);
        assert!(huge.problems().is_empty());
    }

    #[test]
    fn extremes_are_named_problems() {
        let fields = |p: RetryPolicy| p.problems().into_iter().map(|(f, _)| f).collect::<Vec<_>>();
        assert_eq!(fields(RetryPolicy::new(0)), ["retry.attempts"]);
        assert_eq!(
            fields(RetryPolicy::new(MAX_ATTEMPTS + 1)),
            ["retry.attempts"]
        );
        for factor in [f64::NAN, f64::INFINITY, 0.5, -1.0, MAX_FACTOR * 2.0] {
            let p = RetryPolicy::new(2).backoff(Duration::ZERO, factor, Duration::ZERO);
            assert_eq!(fields(p), ["retry.factor"], "{factor}");
        }
        let p = RetryPolicy::new(2).backoff(Duration::from_secs(2), 1.0, Duration::from_secs(1));
        assert_eq!(fields(p), ["retry.max_backoff"]);
        assert_eq!(
            fields(RetryPolicy::new(2).retry_on(RetryOn::ExitCodes(vec![]))),
            ["retry.retry_on"]
        );
        assert_eq!(
            fields(RetryPolicy::new(2).retry_on(RetryOn::ExitCodes(vec![0, 1]))),
            ["retry.retry_on"]
        );
    }

    #[test]
    fn loads_from_toml() {
        let p: RetryPolicy = toml::from_str(
            r#"
            attempts = 3
            initial_backoff = "1s"
            factor = 2.0
            max_backoff = "10s"
            retry_on = { exit_codes = [1, 2] }
            "#,
        )
        .expect("toml");
        assert_eq!(p.attempts, 3);
        assert_eq!(p.retry_on, RetryOn::ExitCodes(vec![1, 2]));
        let p: RetryPolicy =
            toml::from_str("attempts = 2\nretry_on = \"scheduler_errors\"").expect("toml");
        assert_eq!(p.retry_on, RetryOn::SchedulerErrors);
        assert_eq!(p.factor, 1.0);
    }
}
