//! What a fake container's process does: a small script of output, pauses and an end.

use std::time::Duration;

use bytes::Bytes;

use crate::scheduler::OutputStream;

/// One step of a [`Behaviour`]'s script.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// Writes bytes to a stream.
    Output(OutputStream, Bytes),
    /// Pauses (in tokio time, so `tokio::time::pause()` makes it instant and exact).
    Sleep(Duration),
    /// Writes the process environment to stdout as `KEY=VALUE` lines, like `env`.
    PrintEnv,
    /// Writes the process arguments after the program (space-separated, then a newline)
    /// to stdout, like `echo`.
    EchoArgs,
}

/// How the script ends once its steps are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// Exits with this code.
    Exit(i64),
    /// Is killed by the kernel for exceeding its memory limit (exit code 137).
    OutOfMemory,
    /// Keeps running until stopped or killed.
    RunUntilStopped,
}

/// What the process does when it receives SIGTERM.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnTerm {
    /// No handler: with an init process the signal kills it (exit code 143); as PID 1
    /// without init the kernel drops the signal, so it keeps running (as real engines do).
    #[default]
    Default,
    /// Ignores SIGTERM; only a kill (after the grace period) ends it, with code 137.
    Ignore,
    /// Traps SIGTERM and runs this handler instead of the rest of its script.
    Trap(Box<Behaviour>),
}

/// A pull failure a [`Behaviour`] can script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullFailure {
    /// The registry does not have the image.
    NoSuchImage,
    /// The registry refuses the credentials.
    Unauthorized,
}

/// A scripted container process, chosen by image, by program or by container name
/// (see [`FakeScheduler`](super::FakeScheduler)).
///
/// Built fluently; the default behaviour exits 0 at once without output:
///
/// ```
/// use std::time::Duration;
/// use gofer_core::fake::Behaviour;
///
/// let b = Behaviour::new()
///     .stdout("building\n")
///     .sleep(Duration::from_secs(2))
///     .stderr("warning: slow\n")
///     .exit_code(3);
/// let graceful = Behaviour::run_until_stopped()
///     .trap_term(Behaviour::new().stdout("bye\n").exit_code(0));
/// # let _ = (b, graceful);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behaviour {
    pub(crate) steps: Vec<Step>,
    pub(crate) end: End,
    pub(crate) on_term: OnTerm,
    pub(crate) pull_failure: Option<PullFailure>,
    pub(crate) pull_delay: Duration,
    pub(crate) start_failure: Option<String>,
    pub(crate) hold_created: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self::new()
    }
}

impl Behaviour {
    /// Exits 0 at once, without output.
    pub fn new() -> Self {
        Self {
            steps: Vec::new(),
            end: End::Exit(0),
            on_term: OnTerm::Default,
            pull_failure: None,
            pull_delay: Duration::ZERO,
            start_failure: None,
            hold_created: false,
        }
    }

    /// Exits with `code` at once, without output.
    pub fn exit(code: i64) -> Self {
        Self::new().exit_code(code)
    }

    /// Runs until stopped (no TERM handler: with init, SIGTERM ends it with 143).
    pub fn run_until_stopped() -> Self {
        Self::new().then_run_until_stopped()
    }

    /// Prints its environment as `KEY=VALUE` lines (like `env`) and exits 0.
    pub fn print_env() -> Self {
        Self::new().step(Step::PrintEnv)
    }

    /// Prints its arguments (like `echo`) and exits 0.
    pub fn echo() -> Self {
        Self::new().step(Step::EchoArgs)
    }

    /// Adds a step.
    #[must_use]
    pub fn step(mut self, step: Step) -> Self {
        self.steps.push(step);
        self
    }

    /// Writes `data` to stdout.
    #[must_use]
    pub fn stdout(self, data: impl Into<Bytes>) -> Self {
        self.step(Step::Output(OutputStream::Stdout, data.into()))
    }

    /// Writes `data` to stderr.
    #[must_use]
    pub fn stderr(self, data: impl Into<Bytes>) -> Self {
        self.step(Step::Output(OutputStream::Stderr, data.into()))
    }

    /// Pauses for `d` (tokio time).
    #[must_use]
    pub fn sleep(self, d: Duration) -> Self {
        self.step(Step::Sleep(d))
    }

    /// Ends with this exit code after the steps.
    #[must_use]
    pub fn exit_code(mut self, code: i64) -> Self {
        self.end = End::Exit(code);
        self
    }

    /// Keeps running after the steps until stopped or killed.
    #[must_use]
    pub fn then_run_until_stopped(mut self) -> Self {
        self.end = End::RunUntilStopped;
        self
    }

    /// Is killed for memory after the steps ([`ExitStatus::OutOfMemory`](crate::ExitStatus::OutOfMemory) with 137).
    #[must_use]
    pub fn out_of_memory(mut self) -> Self {
        self.end = End::OutOfMemory;
        self
    }

    /// Traps SIGTERM: on the signal, runs `handler` instead of the rest of the script.
    #[must_use]
    pub fn trap_term(mut self, handler: Behaviour) -> Self {
        self.on_term = OnTerm::Trap(Box::new(handler));
        self
    }

    /// Ignores SIGTERM, so a stop kills it after the grace period (exit code 137).
    #[must_use]
    pub fn ignore_term(mut self) -> Self {
        self.on_term = OnTerm::Ignore;
        self
    }

    /// Makes pulling the image fail this way (the pull is still recorded).
    #[must_use]
    pub fn fail_pull(mut self, failure: PullFailure) -> Self {
        self.pull_failure = Some(failure);
        self
    }

    /// Makes each pull of the image take `d` (tokio time), to model slow registries.
    #[must_use]
    pub fn pull_delay(mut self, d: Duration) -> Self {
        self.pull_delay = d;
        self
    }

    /// Makes starting the container fail with an engine error carrying `message`
    /// (no container is left behind).
    #[must_use]
    pub fn fail_start(mut self, message: impl Into<String>) -> Self {
        self.start_failure = Some(message.into());
        self
    }

    /// Makes a start create the container but leave it in state `Created`, as if the
    /// host died between the engine's create and its start (the start still returns
    /// the id). [`Scheduler::start_created`](crate::Scheduler::start_created) then
    /// plays the behaviour; [`FakeScheduler::started_count`](super::FakeScheduler::started_count)
    /// counts either kind of start.
    #[must_use]
    pub fn hold_created(mut self) -> Self {
        self.hold_created = true;
        self
    }
}
