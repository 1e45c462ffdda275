//! The suite has teeth: a scheduler with one fault fails the case that covers it.
#![cfg(feature = "conformance")]
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use gofer_core::fake::FakeScheduler;
use gofer_core::testing::conformance::{self, Workloads};
use gofer_core::{
    Capabilities, ContainerId, ContainerSpec, ContainerState, ContainerSummary, ExitStatus,
    LogStream, OutputStream, PullPolicy, Scheduler, SchedulerError,
};

#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    DropsEmptyEnvValues,
    MergesStderrIntoStdout,
    LosesLastChunk,
    /// An attach made after the start: the first output is gone.
    LosesFirstChunk,
    KillsWithoutGrace,
    PullsWhenPresent,
    RemoveLeavesContainer,
    ReusesNames,
    ForgetsExitedContainers,
}

#[derive(Debug)]
struct Faulty {
    inner: FakeScheduler,
    fault: Fault,
}

#[async_trait]
impl Scheduler for Faulty {
    fn name(&self) -> &'static str {
        "faulty"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
    async fn start(&self, mut spec: ContainerSpec) -> Result<ContainerId, SchedulerError> {
        match self.fault {
            Fault::DropsEmptyEnvValues => spec.env.retain(|_, v| !v.expose().is_empty()),
            Fault::PullsWhenPresent if spec.pull_policy == PullPolicy::IfNotPresent => {
                spec.pull_policy = PullPolicy::Always;
            }
            Fault::ReusesNames => spec.name = format!("{}-{}", spec.name, rand_suffix()),
            _ => {}
        }
        self.inner.start(spec).await
    }
    async fn wait(&self, id: &ContainerId) -> Result<ExitStatus, SchedulerError> {
        self.inner.wait(id).await
    }
    async fn state(&self, id: &ContainerId) -> Result<ContainerState, SchedulerError> {
        self.inner.state(id).await
    }
    async fn start_created(&self, id: &ContainerId) -> Result<(), SchedulerError> {
        self.inner.start_created(id).await
    }
    async fn logs(&self, id: &ContainerId) -> Result<LogStream, SchedulerError> {
        let logs = self.inner.logs(id).await?;
        Ok(match self.fault {
            Fault::MergesStderrIntoStdout => logs
                .map(|c| {
                    c.map(|mut c| {
                        c.stream = OutputStream::Stdout;
                        c
                    })
                })
                .boxed(),
            Fault::LosesFirstChunk => logs.skip(1).boxed(),
            Fault::LosesLastChunk => {
                let all: Vec<_> = logs.collect().await;
                let n = all.len().saturating_sub(1);
                futures::stream::iter(all.into_iter().take(n)).boxed()
            }
            _ => logs,
        })
    }
    async fn stop(&self, id: &ContainerId, grace: Duration) -> Result<(), SchedulerError> {
        let grace = if self.fault == Fault::KillsWithoutGrace {
            Duration::ZERO
        } else {
            grace
        };
        self.inner.stop(id, grace).await
    }
    async fn remove(&self, id: &ContainerId, force: bool) -> Result<(), SchedulerError> {
        if self.fault == Fault::RemoveLeavesContainer && !force {
            return Ok(());
        }
        self.inner.remove(id, force).await
    }
    async fn list(
        &self,
        labels: &BTreeMap<String, String>,
    ) -> Result<Vec<ContainerSummary>, SchedulerError> {
        let mut all = self.inner.list(labels).await?;
        if self.fault == Fault::ForgetsExitedContainers {
            all.retain(|c| c.state == ContainerState::Running);
        }
        Ok(all)
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn faulty(fault: Fault) -> (Faulty, Workloads) {
    let (inner, w) = FakeScheduler::conformance();
    (Faulty { inner, fault }, w)
}

macro_rules! catches {
    ($test:ident, $fault:expr, $case:ident) => {
        #[tokio::test(start_paused = true)]
        async fn $test() {
            let (s, w) = faulty($fault);
            let r = conformance::$case(&s, &w).await;
            let e = r.expect_err("the case should fail on this fault");
            assert!(!e.is_empty());
            // The case cleaned up after itself even though it failed.
            assert_eq!(s.inner.running(), 0, "{e}");
        }
    };
}

catches!(
    env_case_catches_dropped_empty_values,
    Fault::DropsEmptyEnvValues,
    env_reaches_container_exactly
);
catches!(
    logs_case_catches_merged_streams,
    Fault::MergesStderrIntoStdout,
    logs_complete_and_ordered_per_stream
);
catches!(
    big_output_case_catches_a_lost_chunk,
    Fault::LosesLastChunk,
    large_output_arrives_whole
);
catches!(
    first_output_case_catches_a_late_attach,
    Fault::LosesFirstChunk,
    first_output_is_never_lost
);
catches!(
    stop_case_catches_a_missing_grace,
    Fault::KillsWithoutGrace,
    stop_kills_term_ignoring_process_after_grace
);
catches!(
    pull_case_catches_a_needless_pull,
    Fault::PullsWhenPresent,
    if_not_present_does_not_pull_present_image
);
catches!(
    remove_case_catches_a_remove_that_keeps_the_container,
    Fault::RemoveLeavesContainer,
    remove_leaves_nothing_behind
);
catches!(
    duplicate_case_catches_reused_names,
    Fault::ReusesNames,
    duplicate_name_conflicts
);
catches!(
    list_case_catches_forgotten_exited_containers,
    Fault::ForgetsExitedContainers,
    list_by_label_finds_exactly_labelled
);

#[tokio::test(start_paused = true)]
async fn run_all_passes_on_the_fake_and_names_every_case() {
    let (fake, w) = FakeScheduler::conformance();
    let failed = conformance::run_all(&fake, &w).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!(conformance::CASES.len(), 27);
    assert!(fake.volumes().is_empty(), "every case removed its volumes");
    assert_eq!(fake.containers(), 0, "every case cleaned up");
    assert!(fake.requests().len() > 40);
}

#[tokio::test(start_paused = true)]
async fn the_env_case_sends_awkward_values_and_the_fake_records_them() {
    let (fake, w) = FakeScheduler::conformance();
    conformance::env_reaches_container_exactly(&fake, &w)
        .await
        .unwrap();
    let req = &fake.requests()[0];
    assert_eq!(req.env["GOFER_CONF_EQUALS"].expose(), "a=b==c=");
    assert_eq!(req.env["GOFER_CONF_EMPTY"].expose(), "");
    assert!(req.env["GOFER_CONF_SECRET"].is_secret());
    assert!(req.labels.contains_key(conformance::CONFORMANCE_LABEL));
}

#[tokio::test(start_paused = true)]
async fn the_if_not_present_case_does_not_pull_on_the_fake() {
    let (fake, w) = FakeScheduler::conformance();
    conformance::if_not_present_does_not_pull_present_image(&fake, &w)
        .await
        .unwrap();
    assert!(fake.pulls().is_empty(), "{:?}", fake.pulls());
}

#[tokio::test(start_paused = true)]
async fn capability_gated_cases_skip_without_the_capability() {
    let (fake, w) = FakeScheduler::conformance();
    let fake = fake.with_capabilities(Capabilities::none());
    conformance::network_sandbox_can_be_joined(&fake, &w)
        .await
        .unwrap();
    conformance::out_of_memory_is_reported(&fake, &w)
        .await
        .unwrap();
    assert!(fake.requests().is_empty(), "skipped cases start nothing");
    assert!(fake.sandbox_requests().is_empty());
}

/// The whole suite also passes in real time on a multi-threaded runtime (about
/// five seconds of sleeps), so the fake relies on neither paused time nor one thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_all_passes_in_real_time_on_many_threads() {
    let (fake, w) = FakeScheduler::conformance();
    let failed = conformance::run_all(&fake, &w).await;
    assert!(failed.is_empty(), "{failed:?}");
}
