//! One fake container: its state, its output and the task that plays its process.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::behaviour::{Behaviour, End, OnTerm, Step};
use crate::error::SchedulerError;
use crate::scheduler::{
    ContainerId, ContainerSpec, ContainerState, ExitStatus, LogChunk, LogStream, OutputStream,
};

/// Largest chunk the fake hands out, like a pipe buffer: bigger writes are split.
pub(crate) const MAX_CHUNK: usize = 64 * 1024;

/// Exit code of a process killed by SIGKILL.
pub(crate) const KILLED: i64 = 137;
/// Exit code of a process killed by SIGTERM.
pub(crate) const TERMINATED: i64 = 143;

/// A clock that maps tokio time onto wall-clock timestamps, so timestamps follow
/// `tokio::time::pause()`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall: SystemTime,
    instant: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            wall: SystemTime::now(),
            instant: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.wall + self.instant.elapsed()
    }
}

/// Signals sent to the process (a stop sends TERM, then KILL).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Signals {
    pub(crate) term: bool,
    pub(crate) kill: bool,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) state: ContainerState,
    pub(crate) logs: Vec<LogChunk>,
    pub(crate) removed: bool,
    abort: Option<AbortHandle>,
    /// What a container created but not started will play once started.
    pub(crate) pending: Option<(Behaviour, Process)>,
}

/// One fake container.
#[derive(Debug)]
pub(crate) struct Container {
    pub(crate) id: ContainerId,
    pub(crate) name: String,
    pub(crate) labels: BTreeMap<String, String>,
    clock: Clock,
    inner: Mutex<Inner>,
    /// Bumped on every change (output, exit, removal); waiters and log readers watch it.
    changed: watch::Sender<()>,
    signals: watch::Sender<Signals>,
}

/// What the process sees: its arguments and environment.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    pub(crate) argv: Vec<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) init: bool,
}

impl Process {
    pub(crate) fn from_spec(
        spec: &ContainerSpec,
        argv: Vec<String>,
        image_env: &[(String, String)],
    ) -> Self {
        let mut env: BTreeMap<String, String> = image_env.iter().cloned().collect();
        for (k, v) in &spec.env {
            env.insert(k.clone(), v.expose().to_string());
        }
        Self {
            argv,
            env: env.into_iter().collect(),
            init: spec.init,
        }
    }
}

impl Container {
    pub(crate) fn new(
        id: ContainerId,
        name: String,
        labels: BTreeMap<String, String>,
        clock: Clock,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            name,
            labels,
            clock,
            inner: Mutex::new(Inner {
                state: ContainerState::Running,
                logs: Vec::new(),
                removed: false,
                abort: None,
                pending: None,
            }),
            changed: watch::Sender::new(()),
            signals: watch::Sender::new(Signals::default()),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means a panic elsewhere; the data stays consistent
        // because every critical section is a few plain assignments.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> ContainerState {
        self.lock().state
    }

    /// Leaves the container in state Created; [`Container::start_pending`] plays it.
    pub(crate) fn hold(&self, behaviour: Behaviour, process: Process) {
        let mut inner = self.lock();
        inner.state = ContainerState::Created;
        inner.pending = Some((behaviour, process));
    }

    /// Starts a container left Created; returns whether it was started now.
    pub(crate) fn start_pending(self: &Arc<Self>) -> bool {
        let pending = {
            let mut inner = self.lock();
            if inner.state != ContainerState::Created || inner.removed {
                return false;
            }
            inner.state = ContainerState::Running;
            inner.pending.take()
        };
        match pending {
            Some((behaviour, process)) => {
                self.spawn(behaviour, process);
                self.notify();
                true
            }
            None => false,
        }
    }

    /// Starts the task that plays `behaviour`.
    pub(crate) fn spawn(self: &Arc<Self>, behaviour: Behaviour, process: Process) {
        let me = Arc::clone(self);
        let handle = tokio::spawn(async move {
            let status = me.run(behaviour, process).await;
            me.exit(status);
        });
        self.lock().abort = Some(handle.abort_handle());
    }

    fn notify(&self) {
        self.changed.send_replace(());
    }

    fn exit(&self, status: ExitStatus) {
        {
            let mut g = self.lock();
            if g.removed || matches!(g.state, ContainerState::Exited { .. }) {
                return;
            }
            g.state = ContainerState::Exited { status };
            g.abort = None;
        }
        self.notify();
    }

    /// Appends output, split into chunks of at most [`MAX_CHUNK`] bytes.
    fn write(&self, stream: OutputStream, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let timestamp = self.clock.now();
        {
            let mut g = self.lock();
            if g.removed {
                return;
            }
            let mut rest = data;
            while !rest.is_empty() {
                let n = rest.len().min(MAX_CHUNK);
                let data = rest.split_to(n);
                g.logs.push(LogChunk {
                    stream,
                    timestamp,
                    data,
                });
            }
        }
        self.notify();
    }

    pub(crate) fn send_term(&self) {
        self.signals.send_modify(|s| s.term = true);
    }

    pub(crate) fn send_kill(&self) {
        self.signals.send_modify(|s| s.kill = true);
    }

    /// Marks the container removed and ends its process; waiters see
    /// [`ExitStatus::Removed`] unless it had exited already.
    pub(crate) fn mark_removed(&self) {
        {
            let mut g = self.lock();
            g.removed = true;
            if let Some(a) = g.abort.take() {
                a.abort();
            }
        }
        self.notify();
    }

    /// Waits for the exit, event-driven.
    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut rx = self.changed.subscribe();
        loop {
            {
                let g = self.lock();
                if let ContainerState::Exited { status } = g.state {
                    return status;
                }
                if g.removed {
                    return ExitStatus::Removed;
                }
            }
            if rx.changed().await.is_err() {
                return ExitStatus::Removed;
            }
        }
    }

    /// The output from the start; follows until exit.
    pub(crate) fn logs(self: &Arc<Self>) -> LogStream {
        let rx = self.changed.subscribe();
        let state = (Arc::clone(self), 0usize, rx);
        Box::pin(futures::stream::unfold(
            state,
            |(c, idx, mut rx)| async move {
                loop {
                    {
                        let g = c.lock();
                        if let Some(chunk) = g.logs.get(idx) {
                            let chunk = chunk.clone();
                            drop(g);
                            return Some((Ok::<_, SchedulerError>(chunk), (c, idx + 1, rx)));
                        }
                        if g.removed || matches!(g.state, ContainerState::Exited { .. }) {
                            return None;
                        }
                    }
                    if rx.changed().await.is_err() {
                        return None;
                    }
                }
            },
        ))
    }

    async fn run(&self, behaviour: Behaviour, process: Process) -> ExitStatus {
        let mut signals = self.signals.subscribe();
        // A signal sent before this task first ran is already in the channel: look at
        // the current value first, then at every change.
        signals.mark_changed();
        let mut on_term = behaviour.on_term.clone();
        let mut main: Pin<Box<dyn Future<Output = ExitStatus> + Send + '_>> =
            Box::pin(self.play(behaviour, process.clone()));
        let mut term_seen = false;
        loop {
            tokio::select! {
                biased;
                changed = signals.changed() => {
                    if changed.is_err() {
                        return main.await;
                    }
                    let s = *signals.borrow_and_update();
                    if s.kill {
                        return ExitStatus::Exited { code: KILLED };
                    }
                    if s.term && !term_seen {
                        term_seen = true;
                        match std::mem::take(&mut on_term) {
                            OnTerm::Default if process.init => {
                                return ExitStatus::Exited { code: TERMINATED };
                            }
                            OnTerm::Default | OnTerm::Ignore => {}
                            OnTerm::Trap(handler) => {
                                main = Box::pin(self.play(*handler, process.clone()));
                            }
                        }
                    }
                }
                status = &mut main => return status,
            }
        }
    }

    /// Plays a script: its steps, then its end.
    async fn play(&self, behaviour: Behaviour, process: Process) -> ExitStatus {
        for step in behaviour.steps {
            match step {
                Step::Output(stream, data) => self.write(stream, data),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::PrintEnv => {
                    let mut out = BytesMut::new();
                    for (k, v) in &process.env {
                        out.extend_from_slice(k.as_bytes());
                        out.extend_from_slice(b"=");
                        out.extend_from_slice(v.as_bytes());
                        out.extend_from_slice(b"\n");
                    }
                    self.write(OutputStream::Stdout, out.freeze());
                }
                Step::EchoArgs => {
                    let args = process.argv.get(1..).unwrap_or_default().join(" ");
                    self.write(OutputStream::Stdout, Bytes::from(format!("{args}\n")));
                }
            }
        }
        match behaviour.end {
            End::Exit(code) => ExitStatus::Exited { code },
            End::OutOfMemory => ExitStatus::OutOfMemory { code: KILLED },
            End::RunUntilStopped => std::future::pending().await,
        }
    }
}
