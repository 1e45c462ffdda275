//! The scheduler conformance suite: one set of behaviour tests every [`Scheduler`]
//! must pass.
//!
//! Each case is a free function `async fn case(s: &DynScheduler, w: &Workloads) ->
//! Result<(), String>`: `Ok` when the backend behaves, `Err` with a message that names
//! what was expected and what happened. (Cases return errors rather than panic, so
//! cleanup always runs and a host can run them outside a test harness; the generated
//! tests turn an `Err` into a panic.) Every case labels what it creates with
//! [`CONFORMANCE_LABEL`] and a run-unique value, names its containers uniquely, and
//! force-removes everything carrying that label at the end, also when it failed or
//! panicked; leftovers make the case fail.
//!
//! Differences between backends are data: the [`Workloads`] say which images and
//! commands produce the behaviour a case needs ([`Workloads::busybox`] for real
//! engines, [`FakeScheduler::conformance`](crate::fake::FakeScheduler::conformance) for
//! the fake). A case that needs a capability the backend does not declare (see
//! [`Capabilities`](crate::Capabilities)) prints why and passes without running.
//!
//! A backend crate runs the whole suite, one `#[tokio::test]` per case, with
//! [`conformance_tests!`](crate::conformance_tests) in its `tests/conformance.rs`;
//! see the crate docs, "Writing a backend".

mod cases_images;
mod cases_lifecycle;
mod cases_logs;
mod cases_run;
mod cases_volumes;
mod serial;
mod support;
mod workloads;

pub use cases_images::{
    if_not_present_does_not_pull_present_image, missing_image_is_no_such_image,
    pull_never_with_absent_image_fails, registry_credentials_are_honoured,
};
pub use cases_lifecycle::{
    duplicate_name_conflicts, list_by_label_finds_exactly_labelled, remove_leaves_nothing_behind,
    remove_running_without_force_conflicts, start_created_never_runs_twice,
    stop_honours_the_grace_of_each_call, stop_kills_term_ignoring_process_after_grace,
    stop_lets_term_trapping_process_exit, unknown_container_is_no_such_container,
    wait_ends_when_container_removed, wait_on_exited_returns_at_once, STOP_GRACE, STOP_SLACK,
};
pub use cases_logs::{
    first_output_is_never_lost, large_output_arrives_whole, logs_complete_and_ordered_per_stream,
    logs_readable_after_exit,
};
pub use cases_run::{
    command_and_entrypoint_override_image, env_reaches_container_exactly, exit_codes_are_reported,
    network_sandbox_can_be_joined, out_of_memory_is_reported, twenty_containers_at_once,
};
pub use cases_volumes::{volume_is_shared_between_containers, volume_life_cycle, VOLUME_TARGET};
pub use serial::{one_at_a_time, Exclusive};
pub use support::{CONFORMANCE_LABEL, STEP_LIMIT};
pub use workloads::{
    expected_big_output, expected_burst, Workload, Workloads, BIG_OUTPUT_LINES,
    BIG_OUTPUT_LINE_LEN, BURST_LINES, INTERLEAVED_LINES,
};

use crate::scheduler::{DynScheduler, Scheduler};

/// What a conformance setup expression may produce: a scheduler with its workloads,
/// or `None` to skip the suite (for instance, outside CI, when the engine is not
/// reachable — print why before returning it).
pub trait IntoSetup {
    /// The scheduler and workloads, or `None` to skip.
    fn into_setup(self) -> Option<(Box<DynScheduler>, Workloads)>;
}

impl<S: Scheduler> IntoSetup for (S, Workloads) {
    fn into_setup(self) -> Option<(Box<DynScheduler>, Workloads)> {
        Some((Box::new(self.0), self.1))
    }
}

impl<S: Scheduler> IntoSetup for Option<(S, Workloads)> {
    fn into_setup(self) -> Option<(Box<DynScheduler>, Workloads)> {
        self.and_then(IntoSetup::into_setup)
    }
}

/// Expands `$m!(case_a, case_b, ...)` with every case name; the single list the
/// macros and [`run_all`] share.
#[doc(hidden)]
#[macro_export]
macro_rules! __gofer_conformance_cases {
    ($m:path { $($args:tt)* }) => {
        $m! {
            { $($args)* }
            env_reaches_container_exactly,
            command_and_entrypoint_override_image,
            exit_codes_are_reported,
            twenty_containers_at_once,
            out_of_memory_is_reported,
            network_sandbox_can_be_joined,
            logs_complete_and_ordered_per_stream,
            logs_readable_after_exit,
            large_output_arrives_whole,
            first_output_is_never_lost,
            missing_image_is_no_such_image,
            pull_never_with_absent_image_fails,
            registry_credentials_are_honoured,
            if_not_present_does_not_pull_present_image,
            stop_lets_term_trapping_process_exit,
            stop_kills_term_ignoring_process_after_grace,
            stop_honours_the_grace_of_each_call,
            wait_on_exited_returns_at_once,
            wait_ends_when_container_removed,
            remove_leaves_nothing_behind,
            unknown_container_is_no_such_container,
            remove_running_without_force_conflicts,
            duplicate_name_conflicts,
            list_by_label_finds_exactly_labelled,
            start_created_never_runs_twice,
            volume_life_cycle,
            volume_is_shared_between_containers
        }
    };
}

/// Generates one `#[tokio::test]` per conformance case.
///
/// Call it once, at the top level of a backend crate's `tests/conformance.rs`, with an
/// expression that evaluates to a future of a scheduler and its [`Workloads`]
/// (anything [`IntoSetup`]: `(S, Workloads)` or `Option<(S, Workloads)>`, where `None`
/// skips). The expression is evaluated afresh in each test. Call the macro once per
/// module (it defines the test functions, named after the cases, and a helper).
///
/// Prefix the expression with `one_at_a_time:` to run the cases one after another
/// (the test harness runs tests in parallel; on a small machine a real engine busy
/// with twenty containers of one case can slow the timed stop of another); see
/// [`one_at_a_time`]. Prefix it with
/// `paused_time:` to run the tests under `tokio::time::pause()` (for in-memory
/// backends; real engines need real time). The calling crate needs `tokio` (features
/// `macros`, `rt`, and `test-util` for `paused_time:`) as a dev-dependency and
/// `gofer-core` with the feature `conformance`.
///
/// ```
/// # #[cfg(feature = "conformance")]
/// # mod t {
/// use gofer_core::fake::FakeScheduler;
///
/// gofer_core::conformance_tests!(paused_time: async { FakeScheduler::conformance() });
/// # }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (paused_time: $setup:expr $(,)?) => {
        $crate::__gofer_conformance_cases!($crate::__gofer_conformance_test {
            [tokio::test(start_paused = true)] $setup
        });
    };
    (one_at_a_time: $setup:expr $(,)?) => {
        $crate::conformance_tests!(
            async {
                let turn = $crate::testing::conformance::one_at_a_time().await;
                $crate::testing::conformance::IntoSetup::into_setup($setup.await)
                    .map(|(s, w)| ($crate::testing::conformance::Exclusive::new(s, turn), w))
            }
        );
    };
    ($setup:expr $(,)?) => {
        $crate::__gofer_conformance_cases!($crate::__gofer_conformance_test {
            [tokio::test] $setup
        });
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __gofer_conformance_test {
    ({ [$attr:meta] $setup:expr } $($case:ident),* $(,)?) => {
        /// The setup expression, evaluated afresh by each generated test (a function
        /// outside the tests, so it is type-checked in every build).
        #[allow(dead_code)]
        async fn __gofer_conformance_setup() -> ::core::option::Option<(
            ::std::boxed::Box<$crate::DynScheduler>,
            $crate::testing::conformance::Workloads,
        )> {
            $crate::testing::conformance::IntoSetup::into_setup($setup.await)
        }

        $(
            #[$attr]
            async fn $case() {
                let ::core::option::Option::Some((scheduler, workloads)) =
                    __gofer_conformance_setup().await
                else {
                    return;
                };
                if let ::core::result::Result::Err(e) =
                    $crate::testing::conformance::$case(&*scheduler, &workloads).await
                {
                    ::core::panic!(
                        "conformance case `{}` failed on `{}`: {}",
                        ::core::stringify!($case),
                        $crate::Scheduler::name(&*scheduler),
                        e
                    );
                }
            }
        )*
    };
}

macro_rules! case_names {
    ({} $($case:ident),* $(,)?) => {
        /// The name of every case, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(::core::stringify!($case)),*];

        /// Runs every case in turn and returns the failures as `(case, message)`; for
        /// hosts that check a scheduler outside a test harness.
        pub async fn run_all(s: &DynScheduler, w: &Workloads) -> Vec<(&'static str, String)> {
            let mut failed = Vec::new();
            $(
                if let Err(e) = $case(s, w).await {
                    failed.push((::core::stringify!($case), e));
                }
            )*
            failed
        }
    };
}

crate::__gofer_conformance_cases!(case_names {});
